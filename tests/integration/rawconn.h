/* rawconn: a bare TCP connection for tests that must send what no well-behaved
 * client would (garbage, truncated or oversized frames) and read raw replies.
 * Every read waits at most the given time.
 */
#ifndef RINGKV_RAWCONN_H
#define RINGKV_RAWCONN_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Connects to 127.0.0.1:port; returns the fd or -1. */
int raw_connect(int port);

/* Sends all of buf; returns 0 or -1. */
int raw_send(int fd, const void *buf, size_t len);

/* Sends one request frame. */
int raw_send_request(int fd, const wire_request *req);

/* Reads one response frame within timeout_ms and decodes it into *out, whose
 * byte ranges point into *frame (malloc'd; the caller frees it). zone is
 * scratch. Returns 0, 1 on EOF (connection closed by the node), -1 on
 * timeout or error. */
int raw_read_response(int fd, int timeout_ms, msgpack_zone *zone, wire_response *out,
                      uint8_t **frame);

/* Waits up to timeout_ms for the node to close the connection, discarding
 * what arrives meanwhile. Returns 0 when closed, -1 if still open. */
int raw_wait_closed(int fd, int timeout_ms);

/* Opens a connection, sends PING, expects OK, closes. Returns 0 or -1. */
int raw_ping(int port);

#endif
