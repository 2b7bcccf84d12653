/* client_int: what client.c (connections, routing, data calls) shares with
 * admin.c (stats, members, remove, topology). Internal to libringkv: not
 * installed, not exported.
 */
#ifndef RINGKV_CLIENT_INT_H
#define RINGKV_CLIENT_INT_H

#include <stddef.h>

#include "ringkv.h"
#include "wire.h"

/* Clears the error message at the start of a call. */
void client_clear_err(rkv_client *c);
/* Sets the error message and returns st. */
rkv_status client_fail(rkv_client *c, rkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The address of the node the client last talked to, for messages. */
const char *client_cur_name(const rkv_client *c);
/* A malloc'd NUL-terminated copy of n bytes (s may be NULL when n is 0). */
char *client_dup_range(const char *s, size_t n);
/* One request and its reply (routed by key for GET/PUT/DEL); *resp points
 * into the client's buffers until the next request. */
rkv_status client_roundtrip(rkv_client *c, wire_request *req, wire_response *resp);
/* Gives back receive and send buffers grown past what is worth keeping. */
void client_trim_buffers(rkv_client *c);
/* Fetches the topology from any known node; *copy gets a caller-owned copy
 * when not NULL. */
rkv_status client_topo_fetch(rkv_client *c, struct rkv_topology **copy);
/* A topology from a decoded reply; NULL with a message in err. */
struct rkv_topology *client_topo_build(const wire_topology_view *v, char *err, size_t errlen);

#endif
