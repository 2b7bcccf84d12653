/* antientropy: replicas of a range compare Merkle trees and copy across
 * what is newer, so they converge even without reads (Dynamo, Cassandra's
 * repair).
 *
 * Every [rebalance] anti_entropy_interval (with jitter), for each range of
 * the ring this node replicates, one other replica that is up (in turn) is
 * compared: both build a tree of the range (merkle.c) in bounded steps
 * between event-loop passes; the initiator asks for the children of the
 * nodes that differ, level by level, then for the records under the leaves
 * that differ, applies the peer's newer records locally and writes its own
 * newer (or missing) records to the peer. All of it, both sides, stays
 * under anti_entropy_rate bytes per second. One exchange at a time per
 * node; ranges are skipped while the ring changes. Event-loop thread only.
 */
#ifndef RINGKV_ANTIENTROPY_H
#define RINGKV_ANTIENTROPY_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct server;
struct cluster;
struct replica;

typedef struct antientropy antientropy;

/* Starts anti-entropy for srv: answers peers' Merkle requests on the peer
 * port (when there is one) and, with an interval set, runs exchanges.
 * Create after replica_new; free before replica_free (requests in flight
 * are then dropped without their callbacks). Returns NULL with a message. */
antientropy *antientropy_new(struct server *srv, struct cluster *cl, struct replica *r, char *err,
                             size_t errlen);
void antientropy_free(antientropy *ae);

typedef struct antientropy_stats {
    uint64_t exchanges;        /* exchanges completed (equal or repaired) */
    uint64_t failures;         /* exchanges abandoned: peer down, timeout, ring change */
    uint64_t ranges_compared;  /* roots compared */
    uint64_t ranges_differing; /* of those, roots that differed */
    uint64_t leaves_differing; /* leaves whose records were exchanged */
    uint64_t keys_pulled;      /* newer records taken from a peer */
    uint64_t keys_pushed;      /* records written to a peer that lacked them */
    uint64_t bytes_sent;       /* frames sent: requests, answers, pushed writes */
    uint64_t bytes_received;   /* frames received: answers and requests */
    uint64_t exchange_bytes;   /* both ways, of the exchanges this node started */
    uint64_t in_progress;      /* 1 while this node runs an exchange */
    uint64_t leaves_pending;   /* differing leaves of that exchange not yet done */
    uint64_t ranges_pending;   /* ranges of the current round not yet started */
    uint64_t last_ms;          /* duration of the last exchange */
    uint64_t trees_built;      /* trees built, as initiator or responder */
    uint64_t requests_served;  /* peers' Merkle requests answered */
    uint64_t requests_refused; /* answered with an error (bad input, other ring, busy) */
} antientropy_stats;

void antientropy_get_stats(const antientropy *ae, antientropy_stats *out);

/* Appends the ae_* STATS entries (at most ANTIENTROPY_STATS) to out;
 * returns how many. ae may be NULL (all zero). */
#define ANTIENTROPY_STATS 20
size_t antientropy_wire_stats(const antientropy *ae, wire_stat *out);

#endif
