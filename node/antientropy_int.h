/* antientropy_int: what antientropy.c (rounds, steps, the byte budget),
 * antientropy_exchange.c (the initiator's state machine) and
 * antientropy_serve.c (answering peers) share. Not a public header: the
 * contract is antientropy.h. Event-loop thread only.
 */
#ifndef RINGKV_ANTIENTROPY_INT_H
#define RINGKV_ANTIENTROPY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <xxhash.h>

#include "antientropy.h"
#include "merkle.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "store.h"

struct server;
struct cluster;

#define AE_BUILD_BUDGET   1024       /* records per build or scan step */
#define AE_LEAVES_PER_REQ 1024       /* leaves asked for in one request */
#define AE_MAX_REPLY      (256u << 10) /* bytes of records in one leaves answer */
#define AE_MIN_REPLY      4096
#define AE_REPLY_SCAN     2048 /* records and leaves a leaves answer looks at, at most */
#define AE_PUSH_WINDOW    64   /* pushed writes in flight */
#define AE_PUSH_QUEUE     512  /* records copied, waiting to be pushed */
#define AE_RETRY_MS       100  /* after a "retry" answer */
#define AE_MAX_RETRIES    600  /* about a minute of "not ready" */
#define AE_CACHE_MAX      2    /* trees kept for peers */
#define AE_CACHE_IDLE_MS  30000
#define AE_ROOT_FRESH_MS  1000 /* a root request wants a tree this fresh */
#define AE_POS_MAX        512  /* LMDB keys are at most 511 bytes */
#define AE_ACK_BYTES      24   /* a ReplicaWriteAck frame, at most */

/* ---- the pieces ---- */

/* A tree kept for peers' requests. */
typedef struct ae_tree {
    bool used;
    uint64_t lo, hi, epoch;
    unsigned depth;
    merkle_builder *b; /* while building */
    merkle *m;         /* once built */
    uint64_t built_ms, used_ms;
} ae_tree;

/* A record copied from the store, waiting to be (or being) pushed; or,
 * with pull set, a key (rec.key only) to read from the peer. */
typedef struct push_item {
    struct push_item *prev, *next;
    bool pull;
    struct antientropy *ae;
    replica_record rec;
    uint64_t bytes;
    uint8_t data[]; /* key, value */
} push_item;

/* The peer's versions of the keys in one leaves answer, by 128-bit key hash. */
typedef struct ver_slot {
    bool used;
    XXH128_hash_t h;
    uint64_t hlc;
    char origin[STORE_ORIGIN_MAX + 1];
} ver_slot;

typedef enum x_phase { X_TREES, X_DESCEND, X_LEAVES } x_phase;

typedef struct exchange exchange;
struct exchange {
    uint64_t lo, hi, epoch;
    unsigned depth;
    char peer[STORE_ORIGIN_MAX + 1];
    uint64_t started_ms;
    x_phase phase;
    merkle_builder *b; /* own tree, while building */
    merkle *m;
    bool waiting; /* a request is in flight */
    bool retry_armed;
    unsigned retries;
    char abort[256]; /* set: stop once nothing is in flight */
    bool yielded;    /* stopped for a peer comparing the same range */

    /* descent: the differing nodes at `level` (cur), their children that
     * differ (next); root_children holds the first answer until the own
     * tree is ready */
    bool have_root;
    uint64_t root_children[MERKLE_FANOUT];
    unsigned level;
    uint32_t *cur, *next;
    size_t ncur, curpos, nsent, nnext, capnext;

    /* leaves: the differing ones, done up to leafpos (after `after`) */
    uint32_t *leaves; /* those empty here first (nfull), asked for whole records */
    size_t nleaves, nfull, leafpos, nreq;
    bool versions_only; /* the answer in flight or being worked on */
    uint8_t after[AE_POS_MAX];
    size_t afterlen;
    /* the answer being worked on: own records of leaves[scan_idx..scan_end]
     * are compared with the peer's versions (map), the last one only up to
     * scan_limit when the answer stopped inside it */
    ver_slot *map;
    size_t mapcap;
    bool scanning, limited, scan_oom;
    size_t scan_idx, scan_end;
    uint8_t scan_after[AE_POS_MAX], scan_limit[AE_POS_MAX];
    size_t scan_afterlen, scan_limitlen;
    size_t next_leafpos;
    uint8_t next_after[AE_POS_MAX];
    size_t next_afterlen;
    push_item *q_head, *q_tail, *inflight;
    size_t nqueued, ninflight;

    uint64_t pulled, pushed, leaves_diff;
};

struct antientropy {
    struct server *srv;
    struct cluster *cl;
    replica *rep;
    peer *pr;
    uint64_t interval_ms, rate;
    struct event *tick_ev, *step_ev, *retry_ev;
    double tokens;
    uint64_t refill_ms;
    /* the ring cut into ranges, for ranges_epoch */
    range *ranges;
    long nranges;
    uint64_t ranges_epoch;
    long self_idx;
    bool have_ranges;
    /* the round: indexes into ranges this node replicates */
    size_t *round;
    size_t nround, round_pos;
    uint64_t round_epoch;
    uint64_t rotation;
    size_t round_failures; /* exchanges of this round that failed, for one log line */
    char round_why[400];
    exchange *x;
    ae_tree cache[AE_CACHE_MAX];
    antientropy_stats n;
};

/* antientropy.c */
uint64_t ae_mono_ms(void);
void ae_step_arm(antientropy *ae);             /* a step between loop passes */
uint64_t ae_bucket_wait_ms(antientropy *ae);   /* until the byte budget allows, 0: now */
void ae_sent(antientropy *ae, uint64_t bytes); /* counted and taken from the budget */
void ae_received(antientropy *ae, uint64_t bytes);
uint64_t ae_frame_bytes(const Ringkv__Envelope *env);
/* The range (lo, hi] of the current ring if this node replicates it. */
const range *ae_range_find(antientropy *ae, uint64_t lo, uint64_t hi);
void ae_round_next(antientropy *ae); /* after an exchange ends */

/* antientropy_exchange.c */
void ae_x_advance(antientropy *ae); /* the exchange's next move */
/* Stops the exchange: at once when nothing is in flight, else when the
 * last answer arrives (ae->x may be gone on return). */
void ae_x_abort(antientropy *ae, const char *why);
void ae_x_free(exchange *x);
/* Compares own records of the current stretch of leaves, one step. Returns
 * 1 while more remains, 0 when done or paused for pushes, -1 with err. */
int ae_scan_step(antientropy *ae, char *err, size_t errlen);
/* The retry timer (ae->retry_ev): a "retry" answer's wait, or the byte
 * budget's, is over. */
void ae_on_retry(evutil_socket_t fd, short what, void *arg);

/* antientropy_serve.c */
void ae_on_merkle_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);
void ae_on_leaves_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);
bool ae_trees_step(antientropy *ae); /* builds of trees for peers */
void ae_tree_clear(ae_tree *t);
/* Whether a peer compared range g with this node lately. */
bool ae_served_lately(antientropy *ae, const range *g);

#endif
