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

/* A number from STATS of the node on port, or -1. */
long long raw_stat(int port, const char *name);

/* Polls raw_stat until it is at least want or timeout_ms passed. Returns 0,
 * or -1 with the last value seen in *last. */
int raw_wait_stat(int port, const char *name, long long want, int timeout_ms, long long *last);

/* Replies of a raw_batch, by status. */
typedef struct raw_tally {
    size_t st[8];     /* replies by status */
    size_t bad_value; /* GET OK with another value */
    char msg[256];    /* the last error message (or why the batch broke off) */
} raw_tally;

#define RAW_WINDOW 256 /* requests in flight per connection */

/* "prefix:i" */
void raw_key(const char *prefix, int i, char *buf, size_t len);

/* Sends op for keys prefix:from..to-1 to port, RAW_WINDOW at a time, at
 * consistency (-1: the node's default); counts the replies by status (PUT
 * values and expected GET values are "val-<i>"). Returns 0, or -1 when the
 * connection failed or a reply did not come (t->msg says which). */
int raw_batch(int port, wire_op op, const char *prefix, int from, int to, int consistency,
              raw_tally *t);

#endif
