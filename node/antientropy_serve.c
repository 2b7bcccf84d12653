/* antientropy_serve: the responder's side of anti-entropy; see
 * antientropy.h and proto/README.md. Peers' Merkle requests are checked
 * (shape first, then ring epoch and range) before anything is allocated
 * from their numbers; hashes come from a small cache of trees built in
 * steps (a request that finds its tree still building is told to retry),
 * leaf records straight from the store, at most AE_MAX_REPLY bytes per
 * answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <xxhash.h>

#include "antientropy_int.h"
#include "cluster.h"
#include "log.h"
#include "merkle.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "server.h"
#include "store.h"

/* ---- the responder: trees for peers ---- */

static bool tree_step(antientropy *ae, ae_tree *t);

void ae_tree_clear(ae_tree *t)
{
    merkle_builder_free(t->b);
    merkle_free(t->m);
    memset(t, 0, sizeof *t);
}

/* The cached tree for the request, started if missing. NULL with err when
 * every slot is busy building or out of memory. */
static ae_tree *tree_get(antientropy *ae, uint64_t lo, uint64_t hi, unsigned depth, uint64_t epoch,
                         char *err, size_t errlen)
{
    uint64_t now = ae_mono_ms();
    ae_tree *free_slot = NULL, *lru = NULL;
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        ae_tree *t = &ae->cache[i];
        if (t->used && (t->epoch != epoch || now - t->used_ms > AE_CACHE_IDLE_MS))
            ae_tree_clear(t);
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
    ae_tree_clear(t);
    const config *cfg = ae->srv->cfg;
    t->b = merkle_builder_new(ae->srv->st, lo, hi, depth, server_now_ms(ae->srv),
                              cfg->tombstone_ttl_ms);
    if (!t->b) {
        snprintf(err, errlen, "out of memory for a tree of depth %u", depth);
        return NULL;
    }
    *t = (ae_tree){.used = true,
                   .lo = lo,
                   .hi = hi,
                   .epoch = epoch,
                   .depth = depth,
                   .b = t->b,
                   .used_ms = now};
    ae_step_arm(ae);
    return t;
}

static int check_fanout(uint32_t fanout, char *err, size_t errlen)
{
    if (fanout == MERKLE_FANOUT)
        return 0;
    snprintf(err, errlen, "fanout %u is not supported (this node uses %u)", fanout, MERKLE_FANOUT);
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
    if (cluster_pending(ae->cl)) {
        snprintf(err, errlen, "ring changing: nodes are joining or leaving");
        return -1;
    }
    if (!ae_range_find(ae, lo, hi)) {
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
    ae_sent(ae, ae_frame_bytes(&env));
    peer_reply(pc, &env);
}

void ae_on_merkle_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    antientropy *ae = ctx;
    const Ringkv__MerkleReq *q = env->merkle_req;
    Ringkv__MerkleReply mr = RINGKV__MERKLE_REPLY__INIT;
    char err[256] = "";
    ae_received(ae, ae_frame_bytes(env));
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
        ae_x_abort(ae, "a peer compares this range with this node");
    }
    if (ae_bucket_wait_ms(ae) > 0) {
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
    if (t->m && q->level == 0 && ae_mono_ms() - t->built_ms > AE_ROOT_FRESH_MS) {
        /* a new exchange starts: rebuild, the tree has aged */
        merkle_free(t->m);
        t->m = NULL;
        t->b = merkle_builder_new(ae->srv->st, q->lo, q->hi, q->depth, server_now_ms(ae->srv),
                                  ae->srv->cfg->tombstone_ttl_ms);
        if (!t->b) {
            ae_tree_clear(t);
            mr.error = "out of memory";
            answer_merkle(ae, pc, &mr);
            return;
        }
        ae_step_arm(ae);
    }
    if (t->b && !t->m) {
        /* one step now: a small range is then answered without a retry */
        if (tree_step(ae, t))
            ae_step_arm(ae);
        server_schedule_pass_end(ae->srv); /* releases the read snapshot */
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
    bool full, versions_only;
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
        size_t olen = strlen(it->version.origin);
        size_t vlen = it->tombstone || f->versions_only ? 0 : it->vlen;
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
    ae_sent(ae, ae_frame_bytes(&env));
    peer_reply(pc, &env);
}

void ae_on_leaves_req(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    antientropy *ae = ctx;
    const Ringkv__MerkleLeavesReq *q = env->merkle_leaves_req;
    Ringkv__MerkleLeavesReply lr = RINGKV__MERKLE_LEAVES_REPLY__INIT;
    char err[256] = "";
    ae_received(ae, ae_frame_bytes(env));
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
    if (ae_bucket_wait_ms(ae) > 0) {
        lr.ok = lr.retry = true;
        answer_leaves(ae, pc, &lr);
        return;
    }
    leaves_fill f = {.max_bytes = q->max_bytes ? q->max_bytes : AE_MAX_REPLY,
                     .versions_only = q->versions_only,
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
            f.oom) {
            failed = true;
            break;
        }
        if (done && ++f.seen >= AE_REPLY_SCAN)
            f.full = true; /* a leaf costs its seek even when it holds nothing */
        if (f.full && !done) {
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

/* Whether a peer compared this range with us lately: then this round
 * leaves it, so two replicas do not both walk the same differences. */
bool ae_served_lately(antientropy *ae, const range *g)
{
    uint64_t now = ae_mono_ms();
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        const ae_tree *t = &ae->cache[i];
        if (t->used && t->lo == g->lo && t->hi == g->hi && t->epoch == ae->ranges_epoch &&
            now - t->used_ms < ae->interval_ms / 2)
            return true;
    }
    return false;
}

/* One build step of t. Returns true while it needs more. */
static bool tree_step(antientropy *ae, ae_tree *t)
{
    char err[256];
    int rc = merkle_builder_step(t->b, AE_BUILD_BUDGET, err, sizeof err);
    if (rc == 1) {
        t->m = merkle_builder_take(t->b);
        merkle_builder_free(t->b);
        t->b = NULL;
        t->built_ms = ae_mono_ms();
        ae->n.trees_built++;
    } else if (rc < 0) {
        log_warn("anti-entropy: building a tree for a peer failed: %s", err);
        ae_tree_clear(t);
    }
    return rc == 0;
}

/* One build step for each tree being built for peers. Returns true while
 * any still needs more. */
bool ae_trees_step(antientropy *ae)
{
    bool more = false;
    for (size_t i = 0; i < AE_CACHE_MAX; i++) {
        ae_tree *t = &ae->cache[i];
        if (t->used && t->b && tree_step(ae, t))
            more = true;
    }
    return more;
}
