/* dispatch: binds the coordinator (coord.c) to the node.
 *
 * It gives the coordinator the node's ring view (cluster.c) and replica
 * layer (replica.c) — or, while they are not set up (unit tests), this node
 * alone with its store — and runs native GET, PUT and DEL through it: each
 * request reserves a reply slot (conn.h) and is answered in request order
 * when the coordinator completes it. Event-loop thread only.
 */
#ifndef RINGKV_DISPATCH_H
#define RINGKV_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "antientropy.h"
#include "coord.h"
#include "server.h"

/* The node's coordinator, created on first use; NULL when out of memory. */
coord *dispatch_coord(server *s);

/* Executes a checked native GET, PUT or DEL through the coordinator; the
 * reply completes c's slot for it. It carries a meta map (epoch, replicas
 * that answered) when the node is a cluster member or the request named a
 * consistency. */
void dispatch_native(server *s, conn *c, const wire_request *req);

/* Appends the coordinator's, replica layer's and anti-entropy's statistics
 * to out (room for DISPATCH_STATS entries); returns how many. */
#define DISPATCH_STATS (29 + ANTIENTROPY_STATS)
size_t dispatch_stats(server *s, wire_stat *out);

/* Answers what is in flight and frees the coordinator (server_free). */
void dispatch_free(server *s);

#endif
