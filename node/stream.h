/* stream: moving ranges between nodes when ring membership changes.
 *
 * - Join: a node new to the ring announces itself `joining`; it pulls each
 *   range it will replicate from the owners that drop out of that range's
 *   preference list (ranges_gained), chunk by chunk over its peer links
 *   (StreamPull / StreamChunk), asking for the next chunk only once the
 *   last is committed. Meanwhile writes reach it as a future owner
 *   (cluster_write_extra). When every range is in, it becomes a `member`.
 *   The first node of a cluster enters the ring at once; with [rebalance]
 *   bootstrap = no every new node does.
 * - Decommission: the node turns `leaving` and pushes each range to the
 *   node that takes its place (StreamPush, acknowledged after the commit),
 *   then leaves the cluster and stops.
 * - Remove: when a member is removed (not decommissioned), each node that
 *   gains some of its ranges pulls them from the remaining owners.
 * - Purge: once the ring has been steady for [rebalance] purge_grace, a
 *   node drops the ranges it no longer replicates.
 * All of it runs in bounded steps on the event loop, rate-limited by
 * [rebalance] stream_rate. Event-loop thread only.
 */
#ifndef RINGKV_STREAM_H
#define RINGKV_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct cluster;
struct replica;
struct membership;

typedef struct stream stream;

#define STREAM_WIRE_STATS 20 /* STATS entries the server lists for the ring and streaming */

/* Starts streaming for the node: serves StreamPull and StreamPush on the
 * peer port and decides, once gossip has found the others, how this node
 * enters the ring. m may be NULL (no membership: a ring of one). Returns
 * NULL with a message. */
stream *stream_new(struct server *srv, struct cluster *cl, struct replica *rep,
                   struct membership *m, char *err, size_t errlen);
/* Frees st; call it after the event loop stopped and before replica_free.
 * NULL is a no-op. */
void stream_free(stream *st);

/* Starts decommissioning this node. Returns 0, or -1 with a message (not a
 * ring member, already leaving, the only member, no membership). */
int stream_decommission(stream *st, char *err, size_t errlen);

typedef struct stream_stats {
    const char *role;                 /* member, joining, leaving */
    const char *activity;             /* idle, joining, decommissioning, repairing, purging */
    uint64_t tasks_total, tasks_done; /* ranges of the current plan */
    uint64_t records_in, bytes_in;    /* streamed to this node */
    uint64_t records_out, bytes_out;  /* streamed from this node */
    uint64_t rate_bps;                /* bytes/s over the last seconds */
    uint64_t failures;                /* chunks that failed and were retried */
    uint64_t purged;                  /* records dropped from ranges given away */
    uint64_t ranges_owned;            /* ranges of the current ring this node replicates */
    uint64_t share_ppm;               /* of the key space, parts per million */
} stream_stats;
void stream_get_stats(stream *st, stream_stats *out);

#endif
