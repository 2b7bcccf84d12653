/* antientropy: Merkle-tree exchanges between replicas; see antientropy.h.
 *
 * The initiator runs one exchange at a time, a small state machine driven
 * by x_advance(): build its own tree in steps while the first request
 * (the root's children) makes the peer build its own; descend level by
 * level through the nodes that differ; then, per batch of differing
 * leaves, take the peer's records (pulling the newer ones at once), scan
 * its own records of the same leaves in steps and write the ones the peer
 * lacks or has older, a bounded window at a time. An exchange ends only
 * when nothing of it is in flight, so every callback finds it alive.
 *
 * The responder keeps a small cache of trees (per range, depth and ring
 * epoch), built in the same steps; a request that finds its tree still
 * building is told to retry. Leaf records are answered straight from the
 * store, at most AE_MAX_REPLY bytes at a time. One token bucket bounds the
 * bytes of both roles.
 */
#include "antientropy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>
#include <xxhash.h>

#include "cluster.h"
#include "log.h"
#include "merkle.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "server.h"
#include "store.h"

#define AE_BUILD_BUDGET   4096      /* records per build or scan step */
#define AE_LEAVES_PER_REQ 1024      /* leaves asked for in one request */
#define AE_MAX_REPLY      (1u << 20) /* bytes of records in one leaves answer */
#define AE_MIN_REPLY      4096
#define AE_REPLY_SCAN     8192      /* records a leaves answer looks at, at most */
#define AE_PUSH_WINDOW    64        /* pushed writes in flight */
#define AE_PUSH_QUEUE     512       /* records copied, waiting to be pushed */
#define AE_RETRY_MS       100       /* after a "retry" answer */
#define AE_MAX_RETRIES    600       /* about a minute of "not ready" */
#define AE_CACHE_MAX      2         /* trees kept for peers */
#define AE_CACHE_IDLE_MS  30000
#define AE_ROOT_FRESH_MS  1000      /* a root request wants a tree this fresh */
#define AE_POS_MAX        512       /* LMDB keys are at most 511 bytes */
#define AE_ACK_BYTES      24        /* a ReplicaWriteAck frame, at most */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* A record copied from the store, waiting to be (or being) pushed. */
typedef struct push_item {
    struct push_item *prev, *next;
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
    bool waiting;      /* a request is in flight */
    bool retry_armed;
    unsigned retries;
    char abort[256];   /* set: stop once nothing is in flight */
    bool yielded;      /* stopped for a peer comparing the same range */

    /* descent: the differing nodes at `level` (cur), their children that
     * differ (next); root_children holds the first answer until the own
     * tree is ready */
    bool have_root;
    uint64_t root_children[MERKLE_FANOUT];
    unsigned level;
    uint32_t *cur, *next;
    size_t ncur, curpos, nsent, nnext, capnext;

    /* leaves: the differing ones, done up to leafpos (after `after`) */
    uint32_t *leaves;
    size_t nleaves, leafpos, nreq;
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
    server *srv;
    cluster *cl;
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
    exchange *x;
    ae_tree cache[AE_CACHE_MAX];
    antientropy_stats n;
};

static void x_advance(antientropy *ae);
static void x_abort(antientropy *ae, const char *why);
static void round_next(antientropy *ae);

static void step_arm(antientropy *ae)
{
    struct timeval tv = {0, 0};
    evtimer_add(ae->step_ev, &tv);
}

static int version_cmp(uint64_t ahlc, const char *aorigin, uint64_t bhlc, const char *borigin)
{
    if (ahlc != bhlc)
        return ahlc < bhlc ? -1 : 1;
    return strcmp(aorigin, borigin);
}

/* LMDB's default key order: bytes, then length. */
static int pos_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* ---- the byte budget: one token bucket for both roles ---- */

static void bucket_refill(antientropy *ae)
{
    if (!ae->rate)
        return;
    uint64_t now = mono_ms();
    double burst = ae->rate / 8.0 > 65536 ? ae->rate / 8.0 : 65536;
    ae->tokens += (double)(now - ae->refill_ms) * (double)ae->rate / 1000.0;
    if (ae->tokens > burst)
        ae->tokens = burst;
    ae->refill_ms = now;
}

static void bucket_take(antientropy *ae, uint64_t bytes)
{
    if (ae->rate)
        ae->tokens -= (double)bytes;
}

/* Milliseconds until the bucket is out of debt (0: go). */
static uint64_t bucket_wait_ms(antientropy *ae)
{
    if (!ae->rate)
        return 0;
    bucket_refill(ae);
    if (ae->tokens >= 0)
        return 0;
    return (uint64_t)(-ae->tokens * 1000.0 / (double)ae->rate) + 1;
}

static void sent(antientropy *ae, uint64_t bytes)
{
    ae->n.bytes_sent += bytes;
    bucket_take(ae, bytes);
}

static void received(antientropy *ae, uint64_t bytes)
{
    ae->n.bytes_received += bytes;
    bucket_take(ae, bytes);
}

static uint64_t frame_bytes(const Ringkv__Envelope *env)
{
    return ringkv__envelope__get_packed_size(env) + PEER_HEADER_BYTES;
}

/* ---- the ring's ranges ---- */

/* Refreshes the ranges for the current ring. Returns 0, or -1 when out of
 * memory. */
static int ranges_refresh(antientropy *ae)
{
    uint64_t epoch = cluster_epoch(ae->cl);
    if (ae->have_ranges && ae->ranges_epoch == epoch)
        return 0;
    free(ae->ranges);
    ae->ranges = NULL;
    ae->have_ranges = false;
    const ring *rg = cluster_ring(ae->cl);
    long n = ranges_build(rg, cluster_n(ae->cl), &ae->ranges);
    if (n < 0)
        return -1;
    ae->nranges = n;
    ae->ranges_epoch = epoch;
    ae->self_idx = ring_find(rg, ae->srv->node_id);
    ae->have_ranges = true;
    return 0;
}

/* The range (lo, hi] of the current ring if this node replicates it. */
static const range *range_find(antientropy *ae, uint64_t lo, uint64_t hi)
{
    if (ranges_refresh(ae) != 0 || ae->self_idx < 0)
        return NULL;
    for (long i = 0; i < ae->nranges; i++) {
        const range *g = &ae->ranges[i];
        if (g->lo == lo && g->hi == hi)
            return range_has(g, (uint32_t)ae->self_idx) ? g : NULL;
    }
    return NULL;
}

/* ---- the responder: trees for peers ---- */

static void tree_clear(ae_tree *t)
{
    merkle_builder_free(t->b);
    merkle_free(t->m);
    memset(t, 0, sizeof *t);
}

/* The cached tree for the request, started if missing. NULL with err when
 * every slot is busy building or out of memory. */
static ae_tree *tree_get(antientropy *ae, uint64_t lo, uint64_t hi, unsigned depth,
                         uint64_t epoch, char *err, size_t errlen)
{
    uint64_t now = mono_ms();
    ae_tree *free_slot = NULL, *lru = NULL;
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        ae_tree *t = &ae->cache[i];
        if (t->used && (t->epoch != epoch || now - t->used_ms > AE_CACHE_IDLE_MS))
            tree_clear(t);
        if (!t->used) {
            free_slot = free_slot ? free_slot : t;
            continue;
        }
        if (t->lo == lo && t->hi == hi && t->depth == depth) {
            t->used_ms = now;
            return t;
        }
        if (!t->b && (!lru || t->used_ms < lru->used_ms))
            lru = t;
    }
    ae_tree *t = free_slot ? free_slot : lru;
    if (!t) {
        snprintf(err, errlen, "busy: already building %d trees for other peers", AE_CACHE_MAX);
        return NULL;
    }
    tree_clear(t);
    const config *cfg = ae->srv->cfg;
    t->b = merkle_builder_new(ae->srv->st, lo, hi, depth, server_now_ms(ae->srv),
                              cfg->tombstone_ttl_ms);
    if (!t->b) {
        snprintf(err, errlen, "out of memory for a tree of depth %u", depth);
        return NULL;
    }
    *t = (ae_tree){.used = true, .lo = lo, .hi = hi, .epoch = epoch, .depth = depth,
                   .b = t->b, .used_ms = now};
    step_arm(ae);
    return t;
}

static int check_fanout(uint32_t fanout, char *err, size_t errlen)
{
    if (fanout == MERKLE_FANOUT)
        return 0;
    snprintf(err, errlen, "fanout %u is not supported (this node uses %u)", fanout,
             MERKLE_FANOUT);
    return -1;
}

/* Checks a well-formed request against this node's ring: same epoch, and a
 * range this node replicates. Returns 0, or -1 with err. */
static int check_ring(antientropy *ae, uint64_t lo, uint64_t hi, uint64_t epoch, char *err,
                      size_t errlen)
{
    if (ae->srv->stopping) {
        snprintf(err, errlen, "node is shutting down");
        return -1;
    }
    if (epoch != cluster_epoch(ae->cl)) {
        snprintf(err, errlen, "ring changed: epoch %016llx here, %016llx asked",
                 (unsigned long long)cluster_epoch(ae->cl), (unsigned long long)epoch);
        return -1;
    }
    if (!range_find(ae, lo, hi)) {
        snprintf(err, errlen,
                 "(%016llx, %016llx] is not a range this node replicates in the current ring",
                 (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    return 0;
}

static void answer_merkle(antientropy *ae, peer_conn *pc, Ringkv__MerkleReply *mr)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_REPLY;
    env.merkle_reply = mr;
    if (mr->error[0])
        ae->n.requests_refused++;
    else
        ae->n.requests_served++;
    sent(ae, frame_bytes(&env));
    peer_reply(pc, &env);
}

static void on_merkle_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    antientropy *ae = ctx;
    const Ringkv__MerkleReq *q = env->merkle_req;
    Ringkv__MerkleReply mr = RINGKV__MERKLE_REPLY__INIT;
    char err[256] = "";
    received(ae, frame_bytes(env));
    if (!q) {
        mr.error = "malformed Merkle request";
        answer_merkle(ae, pc, &mr);
        return;
    }
    mr.id = q->id;
    if (check_fanout(q->fanout, err, sizeof err) != 0 ||
        merkle_check_nodes(q->depth, q->level, q->nodes, q->n_nodes, err, sizeof err) != 0 ||
        check_ring(ae, q->lo, q->hi, q->epoch, err, sizeof err) != 0) {
        mr.error = err;
        answer_merkle(ae, pc, &mr);
        return;
    }
    /* Two replicas that start on the same range at once would walk the
     * same differences twice: the one with the larger id leaves it. */
    exchange *x = ae->x;
    if (q->level == 0 && x && x->lo == q->lo && x->hi == q->hi && x->phase == X_TREES &&
        !x->abort[0] && strcmp(ae->srv->node_id, x->peer) > 0) {
        x->yielded = true;
        x_abort(ae, "a peer compares this range with this node");
    }
    if (bucket_wait_ms(ae) > 0) {
        mr.ok = mr.retry = true;
        answer_merkle(ae, pc, &mr);
        return;
    }
    ae_tree *t = tree_get(ae, q->lo, q->hi, q->depth, q->epoch, err, sizeof err);
    if (!t) {
        mr.error = err;
        answer_merkle(ae, pc, &mr);
        return;
    }
    if (t->m && q->level == 0 && mono_ms() - t->built_ms > AE_ROOT_FRESH_MS) {
        /* a new exchange starts: rebuild, the tree has aged */
        merkle_free(t->m);
        t->m = NULL;
        t->b = merkle_builder_new(ae->srv->st, q->lo, q->hi, q->depth, server_now_ms(ae->srv),
                                  ae->srv->cfg->tombstone_ttl_ms);
        if (!t->b) {
            tree_clear(t);
            mr.error = "out of memory";
            answer_merkle(ae, pc, &mr);
            return;
        }
        step_arm(ae);
    }
    if (!t->m) {
        mr.ok = mr.retry = true;
        answer_merkle(ae, pc, &mr);
        return;
    }
    uint64_t *h = malloc(q->n_nodes * MERKLE_FANOUT * sizeof *h);
    if (!h) {
        mr.error = "out of memory";
        answer_merkle(ae, pc, &mr);
        return;
    }
    for (size_t i = 0; i < q->n_nodes; i++)
        for (unsigned c = 0; c < MERKLE_FANOUT; c++)
            h[i * MERKLE_FANOUT + c] =
                merkle_node(t->m, q->level + 1, (uint64_t)q->nodes[i] * MERKLE_FANOUT + c);
    mr.ok = true;
    mr.hashes = h;
    mr.n_hashes = q->n_nodes * MERKLE_FANOUT;
    answer_merkle(ae, pc, &mr);
    free(h);
}

/* A leaves answer being filled from the store. */
typedef struct leaves_fill {
    Ringkv__Record **recs;
    size_t n, cap;
    size_t bytes, max_bytes, seen;
    bool full;
    uint64_t now_ms, ttl_ms;
    uint8_t last[AE_POS_MAX];
    size_t lastlen;
    bool oom;
} leaves_fill;

static int on_leaf_item(void *arg, const store_item *it)
{
    leaves_fill *f = arg;
    f->seen++;
    if (it->poslen <= AE_POS_MAX) {
        memcpy(f->last, it->pos, it->poslen);
        f->lastlen = it->poslen;
    }
    if (merkle_included(it->tombstone, it->version.hlc, it->expires_ms, f->now_ms, f->ttl_ms)) {
        size_t olen = strlen(it->version.origin), vlen = it->tombstone ? 0 : it->vlen;
        if (f->n == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : 256;
            Ringkv__Record **r = realloc(f->recs, cap * sizeof *r);
            if (!r) {
                f->oom = true;
                return 1;
            }
            f->recs = r;
            f->cap = cap;
        }
        Ringkv__Record *pb = malloc(sizeof *pb + it->klen + vlen + olen + 1);
        if (!pb) {
            f->oom = true;
            return 1;
        }
        ringkv__record__init(pb);
        uint8_t *p = (uint8_t *)(pb + 1);
        memcpy(p, it->key, it->klen);
        pb->key.data = p;
        pb->key.len = it->klen;
        p += it->klen;
        if (vlen) {
            memcpy(p, it->value, vlen);
            pb->value.data = p;
            pb->value.len = vlen;
            p += vlen;
        }
        memcpy(p, it->version.origin, olen + 1);
        pb->origin = (char *)p;
        pb->tombstone = it->tombstone;
        pb->expires_ms = it->expires_ms;
        pb->hlc = it->version.hlc;
        f->recs[f->n++] = pb;
        f->bytes += it->klen + vlen + olen + 32;
    }
    if (f->bytes >= f->max_bytes || f->seen >= AE_REPLY_SCAN) {
        f->full = true;
        return 1;
    }
    return 0;
}

static void answer_leaves(antientropy *ae, peer_conn *pc, Ringkv__MerkleLeavesReply *lr)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REPLY;
    env.merkle_leaves_reply = lr;
    if (lr->error[0])
        ae->n.requests_refused++;
    else
        ae->n.requests_served++;
    sent(ae, frame_bytes(&env));
    peer_reply(pc, &env);
}

static void on_leaves_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    antientropy *ae = ctx;
    const Ringkv__MerkleLeavesReq *q = env->merkle_leaves_req;
    Ringkv__MerkleLeavesReply lr = RINGKV__MERKLE_LEAVES_REPLY__INIT;
    char err[256] = "";
    received(ae, frame_bytes(env));
    if (!q) {
        lr.error = "malformed Merkle leaves request";
        answer_leaves(ae, pc, &lr);
        return;
    }
    lr.id = q->id;
    if (q->after.len >= AE_POS_MAX)
        snprintf(err, sizeof err, "position `after` is %zu bytes, longer than any store key",
                 q->after.len);
    if (err[0] || check_fanout(q->fanout, err, sizeof err) != 0 ||
        merkle_check_leaves(q->depth, q->leaves, q->n_leaves, err, sizeof err) != 0 ||
        check_ring(ae, q->lo, q->hi, q->epoch, err, sizeof err) != 0) {
        lr.error = err;
        answer_leaves(ae, pc, &lr);
        return;
    }
    if (bucket_wait_ms(ae) > 0) {
        lr.ok = lr.retry = true;
        answer_leaves(ae, pc, &lr);
        return;
    }
    leaves_fill f = {.max_bytes = q->max_bytes ? q->max_bytes : AE_MAX_REPLY,
                     .now_ms = server_now_ms(ae->srv),
                     .ttl_ms = ae->srv->cfg->tombstone_ttl_ms};
    if (f.max_bytes > AE_MAX_REPLY)
        f.max_bytes = AE_MAX_REPLY;
    if (f.max_bytes < AE_MIN_REPLY)
        f.max_bytes = AE_MIN_REPLY;
    bool failed = false;
    for (size_t i = 0; i < q->n_leaves && !f.full && !failed; i++) {
        uint64_t llo, lhi;
        if (!merkle_leaf_range(q->lo, q->hi, q->depth, q->leaves[i], &llo, &lhi))
            continue;
        const uint8_t *after = i == 0 ? q->after.data : NULL;
        size_t afterlen = i == 0 ? q->after.len : 0;
        bool done = false;
        if (store_scan(ae->srv->st, llo, lhi, after, afterlen, AE_REPLY_SCAN, on_leaf_item, &f,
                       &done, err, sizeof err) < 0 ||
            f.oom)
            failed = true;
        else if (f.full && !done) {
            lr.more = true;
            lr.next_leaf = q->leaves[i];
            lr.after.data = f.last;
            lr.after.len = f.lastlen;
        } else if (f.full && i + 1 < q->n_leaves) {
            lr.more = true; /* stopped right at the end of this leaf */
            lr.next_leaf = q->leaves[i + 1];
        }
    }
    server_schedule_pass_end(ae->srv); /* releases the read snapshot */
    if (failed) {
        lr.error = f.oom ? "out of memory" : err;
        lr.more = false;
        lr.after.len = 0;
    } else {
        lr.ok = true;
        lr.records = f.recs;
        lr.n_records = f.n;
    }
    answer_leaves(ae, pc, &lr);
    for (size_t i = 0; i < f.n; i++)
        free(f.recs[i]);
    free(f.recs);
}

/* ---- the initiator ---- */

static void push_free_list(push_item **head)
{
    while (*head) {
        push_item *p = *head;
        *head = p->next;
        free(p);
    }
}

static void x_free(exchange *x)
{
    merkle_builder_free(x->b);
    merkle_free(x->m);
    free(x->cur);
    free(x->next);
    free(x->leaves);
    free(x->map);
    push_free_list(&x->q_head);
    push_free_list(&x->inflight);
    free(x);
}

static void x_end(antientropy *ae)
{
    exchange *x = ae->x;
    uint64_t dur = mono_ms() - x->started_ms;
    ae->n.last_ms = dur;
    if (x->yielded) {
        log_debug("anti-entropy with %s on (%016llx, %016llx]: left to the peer that compares it "
                  "with this node",
                  x->peer, (unsigned long long)x->lo, (unsigned long long)x->hi);
    } else if (x->abort[0]) {
        ae->n.failures++;
        log_info("anti-entropy with %s on (%016llx, %016llx] stopped after %llu ms: %s", x->peer,
                 (unsigned long long)x->lo, (unsigned long long)x->hi, (unsigned long long)dur,
                 x->abort);
    } else {
        ae->n.exchanges++;
        if (x->leaves_diff || x->pulled || x->pushed)
            log_info("anti-entropy with %s on (%016llx, %016llx]: %llu of %llu leaves differed; "
                     "pulled %llu newer keys, pushed %llu; %llu ms",
                     x->peer, (unsigned long long)x->lo, (unsigned long long)x->hi,
                     (unsigned long long)x->leaves_diff, (unsigned long long)merkle_level_size(x->depth),
                     (unsigned long long)x->pulled, (unsigned long long)x->pushed,
                     (unsigned long long)dur);
        else
            log_debug("anti-entropy with %s on (%016llx, %016llx]: equal (%llu ms)", x->peer,
                      (unsigned long long)x->lo, (unsigned long long)x->hi,
                      (unsigned long long)dur);
    }
    x_free(x);
    ae->x = NULL;
    ae->n.in_progress = 0;
    round_next(ae);
}

/* Stops the exchange: at once when nothing is in flight, else when the
 * last answer arrives. */
static void x_abort(antientropy *ae, const char *why)
{
    exchange *x = ae->x;
    if (!x->abort[0])
        snprintf(x->abort, sizeof x->abort, "%s", why);
    x->scanning = false;
    push_free_list(&x->q_head);
    x->q_tail = NULL;
    x->nqueued = 0;
    if (!x->waiting && !x->ninflight && !x->retry_armed)
        x_end(ae);
}

static void arm_retry(antientropy *ae, uint64_t ms)
{
    ae->x->retry_armed = true;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ae->retry_ev, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    if (!ae->x)
        return;
    ae->x->retry_armed = false;
    if (ae->x->abort[0])
        x_abort(ae, ae->x->abort);
    else
        x_advance(ae);
}

/* The common part of an answer: counts it, checks it is one. Returns the
 * exchange to go on with, or NULL (handled). */
static exchange *x_answer(antientropy *ae, const Ringkv__Envelope *reply, const char *err,
                          int body)
{
    exchange *x = ae->x;
    x->waiting = false;
    if (!reply) {
        x_abort(ae, err ? err : "no answer");
        return NULL;
    }
    received(ae, frame_bytes(reply));
    if ((int)reply->body_case != body) {
        x_abort(ae, "unexpected answer");
        return NULL;
    }
    if (x->abort[0]) {
        x_end(ae);
        return NULL;
    }
    return x;
}

static void x_retry_later(antientropy *ae)
{
    exchange *x = ae->x;
    if (++x->retries > AE_MAX_RETRIES) {
        x_abort(ae, "the peer was not ready for a minute");
        return;
    }
    arm_retry(ae, AE_RETRY_MS);
}

static int x_call(antientropy *ae, Ringkv__Envelope *env, uint64_t *idfield, replica_env_fn fn)
{
    exchange *x = ae->x;
    sent(ae, frame_bytes(env) + 10); /* + the id, set by replica_call */
    x->waiting = true;
    if (replica_call(ae->rep, x->peer, env, idfield, fn, ae) != 0) {
        x->waiting = false;
        x_abort(ae, "out of memory");
        return -1;
    }
    return 0;
}

static int next_add(exchange *x, uint32_t idx)
{
    if (x->nnext == x->capnext) {
        size_t cap = x->capnext ? x->capnext * 2 : 64;
        uint32_t *n = realloc(x->next, cap * sizeof *n);
        if (!n)
            return -1;
        x->next = n;
        x->capnext = cap;
    }
    x->next[x->nnext++] = idx;
    return 0;
}

/* Compares the peer's hashes of the children of nodes[0..n) at level with
 * the own tree's; the children that differ go to x->next. */
static int compare_children(exchange *x, unsigned level, const uint32_t *nodes, size_t n,
                            const uint64_t *hashes)
{
    for (size_t i = 0; i < n; i++)
        for (unsigned c = 0; c < MERKLE_FANOUT; c++) {
            uint64_t child = (uint64_t)nodes[i] * MERKLE_FANOUT + c;
            if (merkle_node(x->m, level + 1, child) != hashes[i * MERKLE_FANOUT + c] &&
                next_add(x, (uint32_t)child) != 0)
                return -1;
        }
    return 0;
}

static void on_hashes(void *arg, const char *from, const Ringkv__Envelope *reply, const char *err)
{
    (void)from;
    antientropy *ae = arg;
    exchange *x = x_answer(ae, reply, err, RINGKV__ENVELOPE__BODY_MERKLE_REPLY);
    if (!x)
        return;
    const Ringkv__MerkleReply *mr = reply->merkle_reply;
    char why[300];
    if (!mr->ok) {
        snprintf(why, sizeof why, "%s refused: %s", x->peer, mr->error);
        x_abort(ae, why);
        return;
    }
    if (mr->retry) {
        x_retry_later(ae);
        return;
    }
    if (mr->n_hashes != x->nsent * MERKLE_FANOUT) {
        snprintf(why, sizeof why, "%s answered %zu hashes for %zu nodes", x->peer, mr->n_hashes,
                 x->nsent);
        x_abort(ae, why);
        return;
    }
    if (x->phase == X_TREES) {
        memcpy(x->root_children, mr->hashes, sizeof x->root_children);
        x->have_root = true;
    } else {
        if (compare_children(x, x->level, x->cur + x->curpos, x->nsent, mr->hashes) != 0) {
            x_abort(ae, "out of memory");
            return;
        }
        x->curpos += x->nsent;
    }
    x->nsent = 0;
    x_advance(ae);
}

static void send_nodes(antientropy *ae)
{
    exchange *x = ae->x;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__MerkleReq q = RINGKV__MERKLE_REQ__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_REQ;
    env.merkle_req = &q;
    q.lo = x->lo;
    q.hi = x->hi;
    q.depth = x->depth;
    q.epoch = x->epoch;
    q.fanout = MERKLE_FANOUT;
    uint32_t root = 0;
    if (x->phase == X_TREES) {
        q.level = 0;
        q.nodes = &root;
        q.n_nodes = 1;
    } else {
        q.level = x->level;
        q.nodes = x->cur + x->curpos;
        q.n_nodes = x->ncur - x->curpos;
        if (q.n_nodes > MERKLE_MAX_NODES)
            q.n_nodes = MERKLE_MAX_NODES;
    }
    x->nsent = q.n_nodes;
    x_call(ae, &env, &q.id, on_hashes);
}

/* ---- leaves ---- */

static ver_slot *map_slot(exchange *x, XXH128_hash_t h)
{
    size_t i = (size_t)h.low64 & (x->mapcap - 1);
    while (x->map[i].used && !XXH128_isEqual(x->map[i].h, h))
        i = (i + 1) & (x->mapcap - 1);
    return &x->map[i];
}

static int map_reset(exchange *x, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    if (cap != x->mapcap) {
        free(x->map);
        x->mapcap = 0;
        if (!(x->map = malloc(cap * sizeof *x->map)))
            return -1;
        x->mapcap = cap;
    }
    memset(x->map, 0, cap * sizeof *x->map);
    return 0;
}

/* Takes the peer's records: each newer than the local copy is applied
 * (last-write-wins in this pass's batch); all go to the map. Returns 0, or
 * -1 with why. */
static int take_records(antientropy *ae, const Ringkv__MerkleLeavesReply *lr, char *why,
                        size_t whylen)
{
    exchange *x = ae->x;
    server *srv = ae->srv;
    const config *cfg = srv->cfg;
    char err[256];
    if (map_reset(x, lr->n_records) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    bool wrote = false;
    for (size_t i = 0; i < lr->n_records; i++) {
        replica_record rec;
        if (replica_record_from_pb(lr->records[i], &rec) != 0 || rec.klen == 0 ||
            !store_in_range(x->lo, x->hi, store_token(rec.key, rec.klen))) {
            snprintf(why, whylen, "%s sent a record that is malformed or outside the range",
                     x->peer);
            return -1;
        }
        if (!rec.value)
            rec.value = (const uint8_t *)""; /* protobuf-c: NULL for empty bytes */
        ver_slot *s = map_slot(x, XXH3_128bits(rec.key, rec.klen));
        s->used = true;
        s->h = XXH3_128bits(rec.key, rec.klen);
        s->hlc = rec.version.hlc;
        memcpy(s->origin, rec.version.origin, sizeof s->origin);
        if (rec.klen > cfg->max_key_bytes || rec.vlen > cfg->max_value_bytes)
            continue; /* over this node's limits: leave it */
        store_record local;
        store_result res = store_get(srv->st, rec.key, rec.klen, server_now_ms(srv), &local, err,
                                     sizeof err);
        if (res != STORE_OK && res != STORE_NOT_FOUND) {
            snprintf(why, whylen, "reading the local copy: %s", err);
            return -1;
        }
        if (version_cmp(rec.version.hlc, rec.version.origin, local.version.hlc,
                        local.version.origin) <= 0)
            continue;
        if (replica_store(ae->rep, &rec, NULL, err, sizeof err) != STORE_OK) {
            snprintf(why, whylen, "storing a pulled record: %s", err);
            return -1;
        }
        wrote = true;
        x->pulled++;
        ae->n.keys_pulled++;
    }
    if (wrote)
        server_schedule_pass_end(srv);
    return 0;
}

static void on_leaves(void *arg, const char *from, const Ringkv__Envelope *reply, const char *err)
{
    (void)from;
    antientropy *ae = arg;
    exchange *x = x_answer(ae, reply, err, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REPLY);
    if (!x)
        return;
    const Ringkv__MerkleLeavesReply *lr = reply->merkle_leaves_reply;
    char why[300];
    if (!lr->ok) {
        snprintf(why, sizeof why, "%s refused: %s", x->peer, lr->error);
        x_abort(ae, why);
        return;
    }
    if (lr->retry) {
        x_retry_later(ae);
        return;
    }
    /* where the answer stopped: leaves[k] after `after`, or the batch's end */
    size_t end = x->leafpos + x->nreq, k = end;
    if (lr->more) {
        k = x->leafpos;
        while (k < end && x->leaves[k] != lr->next_leaf)
            k++;
        bool stuck = k == x->leafpos &&
                     (!lr->after.len || (lr->after.len == x->afterlen &&
                                         memcmp(lr->after.data, x->after, x->afterlen) == 0));
        if (k == end || lr->after.len >= AE_POS_MAX || stuck) {
            snprintf(why, sizeof why, "%s answered with a bad resume position", x->peer);
            x_abort(ae, why);
            return;
        }
    }
    if (take_records(ae, lr, why, sizeof why) != 0) {
        x_abort(ae, why);
        return;
    }
    /* own records of the same stretch, compared in steps */
    x->scan_idx = x->leafpos;
    memcpy(x->scan_after, x->after, x->afterlen);
    x->scan_afterlen = x->afterlen;
    x->limited = lr->more && lr->after.len > 0;
    if (lr->more) {
        x->scan_end = lr->after.len ? k : k - 1; /* k > leafpos when after is empty */
        if (lr->after.len) /* protobuf-c: data is NULL when empty */
            memcpy(x->scan_limit, lr->after.data, lr->after.len);
        x->scan_limitlen = lr->after.len;
    } else {
        x->scan_end = end - 1;
    }
    x->next_leafpos = k;
    x->next_afterlen = lr->more ? lr->after.len : 0;
    if (x->next_afterlen)
        memcpy(x->next_after, lr->after.data, x->next_afterlen);
    x->scanning = x->scan_idx <= x->scan_end;
    x->retries = 0;
    step_arm(ae);
    x_advance(ae);
}

static void send_leaves(antientropy *ae)
{
    exchange *x = ae->x;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__MerkleLeavesReq q = RINGKV__MERKLE_LEAVES_REQ__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ;
    env.merkle_leaves_req = &q;
    q.lo = x->lo;
    q.hi = x->hi;
    q.depth = x->depth;
    q.epoch = x->epoch;
    q.fanout = MERKLE_FANOUT;
    x->nreq = x->nleaves - x->leafpos;
    if (x->nreq > AE_LEAVES_PER_REQ)
        x->nreq = AE_LEAVES_PER_REQ;
    q.leaves = x->leaves + x->leafpos;
    q.n_leaves = x->nreq;
    q.after.data = x->after;
    q.after.len = x->afterlen;
    q.max_bytes = AE_MAX_REPLY;
    x_call(ae, &env, &q.id, on_leaves);
}

static void on_pushed(void *arg, const char *from, const replica_reply *r)
{
    (void)from;
    push_item *p = arg;
    antientropy *ae = p->ae;
    exchange *x = ae->x;
    if (p->prev)
        p->prev->next = p->next;
    else
        x->inflight = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
    x->ninflight--;
    received(ae, AE_ACK_BYTES);
    if (r->ok) {
        x->pushed++;
        ae->n.keys_pushed++;
    } else if (!x->abort[0]) {
        char why[300];
        snprintf(why, sizeof why, "pushing to %s failed: %s", x->peer, r->error);
        x_abort(ae, why);
        return;
    }
    if (x->abort[0]) {
        if (!x->ninflight && !x->waiting && !x->retry_armed)
            x_end(ae);
        return;
    }
    if (x->scanning)
        step_arm(ae);
    x_advance(ae);
}

/* Sends queued records while the window and the byte budget allow. */
static void pump(antientropy *ae)
{
    exchange *x = ae->x;
    while (x->q_head && x->ninflight < AE_PUSH_WINDOW) {
        uint64_t wait = bucket_wait_ms(ae);
        if (wait) {
            if (!x->retry_armed)
                arm_retry(ae, wait);
            return;
        }
        push_item *p = x->q_head;
        x->q_head = p->next;
        if (!x->q_head)
            x->q_tail = NULL;
        x->nqueued--;
        p->prev = NULL;
        p->next = x->inflight;
        if (x->inflight)
            x->inflight->prev = p;
        x->inflight = p;
        x->ninflight++;
        sent(ae, p->bytes);
        if (replica_write(ae->rep, x->peer, &p->rec, NULL, on_pushed, p) != 0) {
            x->inflight = p->next;
            if (p->next)
                p->next->prev = NULL;
            x->ninflight--;
            free(p);
            x_abort(ae, "out of memory");
            return;
        }
    }
}

static int queue_push(antientropy *ae, const store_item *it)
{
    exchange *x = ae->x;
    size_t vlen = it->tombstone ? 0 : it->vlen;
    push_item *p = malloc(sizeof *p + it->klen + vlen);
    if (!p)
        return -1;
    p->ae = ae;
    memcpy(p->data, it->key, it->klen);
    if (vlen)
        memcpy(p->data + it->klen, it->value, vlen);
    p->rec = (replica_record){.key = p->data,
                              .klen = it->klen,
                              .value = it->tombstone ? NULL : p->data + it->klen,
                              .vlen = vlen,
                              .tombstone = it->tombstone,
                              .expires_ms = it->expires_ms,
                              .version = it->version};
    Ringkv__Record pb = RINGKV__RECORD__INIT;
    replica_record_to_pb(&p->rec, &pb);
    /* a ReplicaWrite frame: header, Envelope version and tags, the id */
    p->bytes = ringkv__record__get_packed_size(&pb) + PEER_HEADER_BYTES + 20;
    p->next = NULL;
    if (x->q_tail)
        x->q_tail->next = p;
    else
        x->q_head = p;
    x->q_tail = p;
    x->nqueued++;
    return 0;
}

/* One own record of the stretch being compared: queued for the peer when
 * it lacks it or holds an older version. */
static int on_own_item(void *arg, const store_item *it)
{
    antientropy *ae = arg;
    exchange *x = ae->x;
    if (x->limited && x->scan_idx == x->scan_end &&
        pos_cmp(it->pos, it->poslen, x->scan_limit, x->scan_limitlen) > 0) {
        x->scan_idx++; /* past where the peer's answer stopped */
        x->scan_afterlen = 0;
        return 1;
    }
    if (it->poslen <= AE_POS_MAX) {
        memcpy(x->scan_after, it->pos, it->poslen);
        x->scan_afterlen = it->poslen;
    }
    const config *cfg = ae->srv->cfg;
    if (!merkle_included(it->tombstone, it->version.hlc, it->expires_ms,
                         server_now_ms(ae->srv), cfg->tombstone_ttl_ms))
        return 0;
    ver_slot *s = map_slot(x, XXH3_128bits(it->key, it->klen));
    if (s->used && version_cmp(s->hlc, s->origin, it->version.hlc, it->version.origin) >= 0)
        return 0;
    if (queue_push(ae, it) != 0) {
        x->scan_oom = true;
        return 1;
    }
    return x->nqueued >= AE_PUSH_QUEUE;
}

/* Scans own records of the current stretch, up to one step's budget.
 * Returns 1 while more remains for the next step, 0 when done or paused
 * for the push queue to drain, -1 with err. Never ends the exchange. */
static int scan_step(antientropy *ae, char *err, size_t errlen)
{
    exchange *x = ae->x;
    size_t budget = AE_BUILD_BUDGET;
    while (x->scanning && budget && x->nqueued < AE_PUSH_QUEUE) {
        if (x->scan_idx > x->scan_end) {
            x->scanning = false;
            break;
        }
        uint64_t llo, lhi;
        if (!merkle_leaf_range(x->lo, x->hi, x->depth, x->leaves[x->scan_idx], &llo, &lhi)) {
            x->scan_idx++;
            x->scan_afterlen = 0;
            continue;
        }
        size_t idx = x->scan_idx;
        bool done = false;
        long n = store_scan(ae->srv->st, llo, lhi, x->scan_after, x->scan_afterlen, budget,
                            on_own_item, ae, &done, err, errlen);
        if (n < 0)
            return -1;
        if (x->scan_oom) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if (done && x->scan_idx == idx) {
            x->scan_idx++;
            x->scan_afterlen = 0;
        }
    }
    if (x->scan_idx > x->scan_end)
        x->scanning = false;
    return x->scanning && x->nqueued < AE_PUSH_QUEUE;
}


/* ---- driving an exchange ---- */

static void descend_done(antientropy *ae)
{
    exchange *x = ae->x;
    /* x->next: the differing nodes one level down */
    free(x->cur);
    x->cur = x->next;
    x->ncur = x->nnext;
    x->next = NULL;
    x->nnext = x->capnext = 0;
    x->curpos = 0;
    x->level++;
    if (x->ncur && x->level == x->depth) {
        x->leaves = x->cur;
        x->nleaves = x->ncur;
        x->cur = NULL;
        x->ncur = 0;
        x->leaves_diff = x->nleaves;
        ae->n.leaves_differing += x->nleaves;
        x->phase = X_LEAVES;
    }
}

static void x_advance(antientropy *ae)
{
    exchange *x = ae->x;
    if (!x)
        return;
    if (x->abort[0]) {
        x_abort(ae, x->abort);
        return;
    }
    if (cluster_epoch(ae->cl) != x->epoch) {
        x_abort(ae, "the ring changed");
        return;
    }
    if (x->waiting || x->retry_armed)
        return;
    switch (x->phase) {
    case X_TREES:
        if (!x->have_root) {
            send_nodes(ae); /* also makes the peer build its tree */
            return;
        }
        if (!x->m)
            return; /* the step event calls again when the own tree is done */
        ae->n.ranges_compared++;
        x->level = 0;
        {
            uint32_t root = 0;
            if (compare_children(x, 0, &root, 1, x->root_children) != 0) {
                x_abort(ae, "out of memory");
                return;
            }
        }
        if (x->nnext)
            ae->n.ranges_differing++;
        x->phase = X_DESCEND;
        descend_done(ae);
        break;
    case X_DESCEND:
    case X_LEAVES:
        break;
    }
    if (x->phase == X_DESCEND) {
        if (x->curpos == x->ncur && x->ncur)
            descend_done(ae);
        if (x->phase == X_DESCEND) {
            if (!x->ncur) {
                x_end(ae); /* nothing differs */
                return;
            }
            uint64_t wait = bucket_wait_ms(ae);
            if (wait)
                arm_retry(ae, wait);
            else
                send_nodes(ae);
            return;
        }
    }
    /* X_LEAVES */
    if (x->scanning || x->q_head || x->ninflight) {
        pump(ae);
        return;
    }
    if (x->map) { /* a stretch is finished: move on */
        free(x->map);
        x->map = NULL;
        x->mapcap = 0;
        x->leafpos = x->next_leafpos;
        x->afterlen = x->next_afterlen;
        memcpy(x->after, x->next_after, x->afterlen);
    }
    if (x->leafpos >= x->nleaves) {
        x_end(ae);
        return;
    }
    uint64_t wait = bucket_wait_ms(ae);
    if (wait)
        arm_retry(ae, wait);
    else
        send_leaves(ae);
}

/* ---- steps: tree builds and scans, between loop passes ---- */

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    char err[256];
    bool more = false;
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        ae_tree *t = &ae->cache[i];
        if (!t->used || !t->b)
            continue;
        int rc = merkle_builder_step(t->b, AE_BUILD_BUDGET, err, sizeof err);
        if (rc == 1) {
            t->m = merkle_builder_take(t->b);
            merkle_builder_free(t->b);
            t->b = NULL;
            t->built_ms = mono_ms();
            ae->n.trees_built++;
        } else if (rc < 0) {
            log_warn("anti-entropy: building a tree for a peer failed: %s", err);
            tree_clear(t);
        } else {
            more = true;
        }
    }
    exchange *x = ae->x;
    if (x && x->b && !x->abort[0]) {
        int rc = merkle_builder_step(x->b, AE_BUILD_BUDGET, err, sizeof err);
        if (rc == 1) {
            x->m = merkle_builder_take(x->b);
            merkle_builder_free(x->b);
            x->b = NULL;
            ae->n.trees_built++;
            x_advance(ae);
        } else if (rc < 0) {
            x_abort(ae, err);
        } else {
            more = true;
        }
    }
    x = ae->x;
    if (x && x->scanning && !x->abort[0]) {
        int rc = scan_step(ae, err, sizeof err);
        if (rc < 0) {
            x_abort(ae, err);
        } else {
            more |= rc > 0;
            x_advance(ae);
        }
    }
    server_schedule_pass_end(ae->srv); /* commits pulls, releases the read snapshot */
    if (more)
        step_arm(ae);
}

/* ---- rounds ---- */

static uint64_t jittered(uint64_t ms)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        r = (uint32_t)mono_ms();
    /* 75% .. 125% of ms */
    return ms - ms / 4 + (uint64_t)((double)(ms / 2) * (r / 4294967296.0));
}

static void tick_arm(antientropy *ae)
{
    uint64_t ms = jittered(ae->interval_ms);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ae->tick_ev, &tv);
}

/* Whether a peer compared this range with us lately: then this round
 * leaves it, so two replicas do not both walk the same differences. */
static bool served_lately(antientropy *ae, const range *g)
{
    uint64_t now = mono_ms();
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        const ae_tree *t = &ae->cache[i];
        if (t->used && t->lo == g->lo && t->hi == g->hi && t->epoch == ae->ranges_epoch &&
            now - t->used_ms < ae->interval_ms / 2)
            return true;
    }
    return false;
}

/* Starts an exchange of range g with one of its other replicas that is up
 * (in turn). Returns 0 when started, -1 when skipped. */
static int x_start(antientropy *ae, const range *g)
{
    const ring *rg = cluster_ring(ae->cl);
    const char *cand[RANGES_MAX_N];
    size_t nc = 0;
    for (size_t i = 0; i < g->n; i++) {
        const char *id = ring_member_id(rg, g->owner[i]);
        if ((long)g->owner[i] != ae->self_idx && cluster_is_up(ae->cl, id))
            cand[nc++] = id;
    }
    if (!nc || served_lately(ae, g))
        return -1;
    exchange *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->lo = g->lo;
    x->hi = g->hi;
    x->epoch = ae->ranges_epoch;
    snprintf(x->peer, sizeof x->peer, "%s", cand[ae->rotation++ % nc]);
    x->started_ms = mono_ms();
    /* about one record per leaf, from this node's count and the range's share */
    store_stats ss;
    store_get_stats(ae->srv->st, &ss);
    uint64_t span = g->hi - g->lo;
    uint64_t keys = span ? (uint64_t)((double)ss.records * ((double)span / 18446744073709551616.0))
                         : ss.records;
    x->depth = merkle_depth_for(keys);
    x->b = merkle_builder_new(ae->srv->st, x->lo, x->hi, x->depth, server_now_ms(ae->srv),
                              ae->srv->cfg->tombstone_ttl_ms);
    if (!x->b) {
        free(x);
        return -1;
    }
    ae->x = x;
    ae->n.in_progress = 1;
    step_arm(ae);
    x_advance(ae);
    return 0;
}

/* Starts the round's next exchange, or ends the round. */
static void round_next(antientropy *ae)
{
    while (!ae->x && ae->round_pos < ae->nround) {
        if (cluster_epoch(ae->cl) != ae->round_epoch || ranges_refresh(ae) != 0 ||
            ae->ranges_epoch != ae->round_epoch) {
            ae->round_pos = ae->nround; /* the ring changed: the next round starts over */
            break;
        }
        const range *g = &ae->ranges[ae->round[ae->round_pos++]];
        x_start(ae, g);
    }
    if (!ae->x && ae->round_pos >= ae->nround && ae->interval_ms &&
        !evtimer_pending(ae->tick_ev, NULL))
        tick_arm(ae);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    if (ae->x || ae->srv->stopping)
        return; /* the running round re-arms the tick when it ends */
    if (ranges_refresh(ae) != 0) {
        tick_arm(ae);
        return;
    }
    free(ae->round);
    ae->round = NULL;
    ae->nround = ae->round_pos = 0;
    ae->round_epoch = ae->ranges_epoch;
    if (ae->self_idx >= 0 && ae->nranges > 0 &&
        (ae->round = malloc((size_t)ae->nranges * sizeof *ae->round)))
        for (long i = 0; i < ae->nranges; i++)
            if (ae->ranges[i].n >= 2 && range_has(&ae->ranges[i], (uint32_t)ae->self_idx))
                ae->round[ae->nround++] = (size_t)i;
    round_next(ae);
}

/* ---- the API ---- */

antientropy *antientropy_new(struct server *srv, struct cluster *cl, struct replica *r,
                             char *err, size_t errlen)
{
    antientropy *ae = calloc(1, sizeof *ae);
    if (!ae) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ae->srv = srv;
    ae->cl = cl;
    ae->rep = r;
    ae->pr = srv->peer;
    ae->interval_ms = srv->cfg->anti_entropy_interval_ms;
    ae->rate = srv->cfg->anti_entropy_rate;
    ae->refill_ms = mono_ms();
    ae->tokens = 0;
    bucket_refill(ae);
    ae->tick_ev = evtimer_new(srv->base, on_tick, ae);
    ae->step_ev = evtimer_new(srv->base, on_step, ae);
    ae->retry_ev = evtimer_new(srv->base, on_retry, ae);
    if (!ae->tick_ev || !ae->step_ev || !ae->retry_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (ae->pr && (peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_REQ, on_merkle_req, ae) != 0 ||
                   peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ, on_leaves_req,
                              ae) != 0)) {
        snprintf(err, errlen, "the peer port has no room for anti-entropy's messages");
        goto fail;
    }
    if (ae->pr && ae->interval_ms)
        tick_arm(ae);
    return ae;
fail:
    antientropy_free(ae);
    return NULL;
}

void antientropy_free(antientropy *ae)
{
    if (!ae)
        return;
    if (ae->pr) {
        peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_REQ, NULL, NULL);
        peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ, NULL, NULL);
    }
    if (ae->x)
        x_free(ae->x);
    for (size_t i = 0; i < AE_CACHE_MAX; i++)
        tree_clear(&ae->cache[i]);
    if (ae->tick_ev)
        event_free(ae->tick_ev);
    if (ae->step_ev)
        event_free(ae->step_ev);
    if (ae->retry_ev)
        event_free(ae->retry_ev);
    free(ae->ranges);
    free(ae->round);
    free(ae);
}

void antientropy_get_stats(const antientropy *ae, antientropy_stats *out)
{
    *out = ae->n;
}

size_t antientropy_wire_stats(const antientropy *ae, wire_stat *out)
{
    antientropy_stats s = {0};
    uint64_t rate = 0, interval = 0;
    if (ae) {
        s = ae->n;
        rate = ae->rate;
        interval = ae->interval_ms;
    }
    size_t n = 0;
#define NUM(name, v) out[n++] = (wire_stat){name, 1, (uint64_t)(v), NULL}
    NUM("ae_exchanges", s.exchanges);
    NUM("ae_failures", s.failures);
    NUM("ae_ranges_compared", s.ranges_compared);
    NUM("ae_ranges_differing", s.ranges_differing);
    NUM("ae_leaves_differing", s.leaves_differing);
    NUM("ae_keys_pulled", s.keys_pulled);
    NUM("ae_keys_pushed", s.keys_pushed);
    NUM("ae_bytes_sent", s.bytes_sent);
    NUM("ae_bytes_received", s.bytes_received);
    NUM("ae_in_progress", s.in_progress);
    NUM("ae_last_ms", s.last_ms);
    NUM("ae_trees_built", s.trees_built);
    NUM("ae_requests_served", s.requests_served);
    NUM("ae_requests_refused", s.requests_refused);
    NUM("ae_rate", rate);
    NUM("ae_interval_ms", interval);
#undef NUM
    _Static_assert(16 <= ANTIENTROPY_STATS, "room for the ae_* entries");
    return n;
}
