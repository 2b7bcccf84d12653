/* coord: the request coordinator — any node accepts any key.
 *
 * A GET, PUT or DEL becomes one coordinated operation: the key's replicas
 * come from the ring view (sloppy quorum: stand-ins carry hint_for), a write
 * is stamped once with the node's HLC and sent to every replica (the local
 * one through the same replica path), a read answers once R replicas did,
 * with the newest version; replicas that answered with an older version or
 * nothing are then repaired (read repair). A read that needs more than one
 * answer and fewer than all asks only R replicas (its own copy first); the
 * others are its reserve: one is asked at once when an asked replica
 * fails, and one more each read_retry while the read is undecided
 * (speculative retry). The client gets OK / NOT_FOUND on success,
 * UNAVAILABLE at once when fewer replicas are up than the level needs, or
 * when too many failed, and TIMEOUT after request_timeout, saying how many
 * answered.
 *
 * The replica layer and the ring view are reached through coord_ops, so
 * tests drive the coordinator with a fake one. Operations come from a pool
 * (no allocation per request once warm). Event-loop thread only.
 */
#ifndef RINGKV_COORD_H
#define RINGKV_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "cluster.h"
#include "hlc.h"
#include "replica.h"
#include "store.h"
#include "wire.h"

typedef struct coord coord;

/* What the coordinator needs from the rest of the node; ctx is passed back.
 * The send functions follow replica.h: 0 and cb runs exactly once (maybe
 * before they return), or -1 and cb never runs. */
typedef struct coord_ops {
    void *ctx;
    uint64_t (*now_ms)(void *ctx);   /* wall clock, ms */
    size_t (*n)(void *ctx);          /* effective N (cluster_n) */
    uint64_t (*epoch)(void *ctx);    /* ring epoch, for reply meta */
    size_t (*targets)(void *ctx, uint64_t token, cluster_target *out, size_t max);
    /* The key's N owners, up or not (cluster_owners); optional. A write
     * stores a local hint for each owner that is down with nobody to stand
     * in for it (as Cassandra's coordinator does): the hint does not count
     * toward W, but hinted handoff brings the owner up to date. */
    size_t (*owners)(void *ctx, uint64_t token, cluster_target *out, size_t max);
    /* While the ring changes (cluster_write_extra), optional: a write's
     * up future owners beyond its targets (returned in out), and what fut
     * says of the future owners. With fut->count > 0 the write needs its
     * level's quorum of the targets and the same level of the future
     * owners that are up (joint consensus). */
    size_t (*write_extra)(void *ctx, uint64_t token, const cluster_target *cur, size_t ncur,
                          cluster_target *out, size_t max, cluster_future *fut);
    /* background: the operation is answered without this answer (a write
     * at one whose own copy this node writes; a read repair), so the
     * request may linger (replica_write_background). */
    int (*write)(void *ctx, const char *to, const replica_record *rec, const char *hint_for,
                 bool background, replica_cb cb, void *arg);
    /* have: NULL, or the newest version the read has seen (replica_read) */
    int (*read)(void *ctx, const char *to, const uint8_t *key, size_t klen,
                const store_version *have, replica_cb cb, void *arg);
    int (*apply_local)(void *ctx, const replica_record *rec, const char *hint_for, replica_cb cb,
                       void *arg);
    /* The local replica's record of key (tombstones and expired records
     * included, as found = true). */
    int (*read_local)(void *ctx, const uint8_t *key, size_t klen, replica_cb cb, void *arg);
    /* Optional: read_local answered before it returns, into *out (its
     * pointers valid until the next store call; an error's text in err).
     * With it, a read that needs only this node's copy takes no operation
     * from the pool, no quorum and no copy of the value (coord_get_now). */
    void (*get_local)(void *ctx, const uint8_t *key, size_t klen, replica_reply *out, char *err,
                      size_t errlen);
} coord_ops;

typedef struct coord_config {
    const char *self_id;   /* this node's id: the origin of its versions */
    uint64_t r, w;         /* [replication] r and w: replicas a default read or
                            * write waits for, capped by the key's N */
    uint64_t timeout_ms;   /* [replication] request_timeout */
    uint64_t read_retry_ms; /* [replication] read_retry: a read still undecided
                             * this long asks a reserve replica; 0 = a read
                             * asks every replica at once */
} coord_config;

/* Consistency buckets for the statistics: the three levels and "default". */
#define COORD_LEVELS 4
#define COORD_LEVEL_DEFAULT 3

typedef struct coord_stats {
    uint64_t reads[COORD_LEVELS], writes[COORD_LEVELS]; /* by consistency */
    uint64_t unavailable;  /* refused at once, or too many replicas failed */
    uint64_t timeouts;
    uint64_t read_repairs; /* repair writes sent */
    uint64_t read_retries; /* reserve replicas asked because an asked one failed */
    uint64_t read_speculations; /* reserve replicas asked after read_retry */
    uint64_t read_retry_ms;     /* the wait before that now: read_retry, or the
                                 * 95th percentile of replica reads if longer */
    uint64_t in_flight;    /* operations not yet finished */
} coord_stats;

/* The outcome handed to the caller; pointers are valid only during the
 * callback. */
typedef struct coord_result {
    wire_status status;    /* OK, NOT_FOUND, UNAVAILABLE, TIMEOUT, INTERNAL */
    const char *msg;       /* an error's message, else NULL */
    const uint8_t *value;  /* GET OK */
    size_t vlen;
    uint64_t expires_ms;   /* GET OK: 0 = never */
    uint64_t epoch;        /* the ring epoch the request was coordinated with */
    const char *const *replicas; /* the replicas that answered ok */
    size_t nreplicas;
} coord_result;

typedef void (*coord_done_fn)(void *arg, const coord_result *res);

/* Creates a coordinator on base. ops is copied; cfg->self_id is borrowed
 * and must outlive it; clock is the node's HLC (stamped once per write). Returns NULL
 * with a message. */
coord *coord_new(struct event_base *base, hlc *clock, const coord_ops *ops,
                 const coord_config *cfg, char *err, size_t errlen);

/* Answers every pending operation with INTERNAL ("shutting down") and frees
 * the coordinator once the replica layer has called back for each (free the
 * replica layer afterwards, or before: both orders are safe). NULL: no-op. */
void coord_free(coord *co);

/* A read of key at consistency (a wire_consistency, -1 = default R).
 * key is copied. done runs exactly once, possibly before this returns.
 * Returns 0, or -1 when out of memory (done does not run). */
int coord_get(coord *co, const uint8_t *key, size_t klen, int consistency, coord_done_fn done,
              void *arg);

/* coord_get when the read needs only this node's own copy (N = 1, or one
 * answer on a node that holds the key) and ops.get_local is set: answers
 * into *res at once and returns 1; res's pointers are valid until the next
 * call into the coordinator or the store. Returns 0, with nothing counted,
 * when the read needs other replicas: use coord_get. */
int coord_get_now(coord *co, const uint8_t *key, size_t klen, int consistency, coord_result *res);

/* A PUT (value, ttl_ms: 0 = none) or, with del, a DEL (a tombstone) at
 * consistency (-1 = default W). Same rules as coord_get; the value is not
 * kept past the call (every replica send copies it). */
int coord_write(coord *co, bool del, const uint8_t *key, size_t klen, const uint8_t *value,
                size_t vlen, uint64_t ttl_ms, int consistency, coord_done_fn done, void *arg);

void coord_get_stats(const coord *co, coord_stats *out);

/* A replica_prefetch_fn for the replica layer (replica_set_prefetch):
 * fetches the operation an answer to this node's coordinator will update
 * into the CPU's cache; other answers are left alone. */
void coord_prefetch_answer(replica_cb cb, void *arg);

#endif
