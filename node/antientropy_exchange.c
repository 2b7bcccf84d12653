/* antientropy_exchange: the initiator's side of anti-entropy, one exchange
 * at a time, a small state machine driven by ae_x_advance(): build the own
 * tree in steps while the first request (the root's children) makes the
 * peer build its own; descend level by level through the nodes that
 * differ; then, per batch of differing leaves, take the peer's records
 * (pulling the newer ones at once), scan the own records of the same
 * leaves in steps and write the ones the peer lacks or holds older, a
 * bounded window at a time. An exchange ends only when nothing of it is in
 * flight, so every callback finds it alive.
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

/* ---- the initiator ---- */

/* The initiator's bytes also count toward its exchanges' total: every
 * frame of an exchange passes through the initiator, so this one figure is
 * the whole exchange's traffic, both ways. */
static void x_sent(antientropy *ae, uint64_t bytes)
{
    ae_sent(ae, bytes);
    ae->n.exchange_bytes += bytes;
}

static void x_received(antientropy *ae, uint64_t bytes)
{
    ae_received(ae, bytes);
    ae->n.exchange_bytes += bytes;
}

static void push_free_list(push_item **head)
{
    while (*head) {
        push_item *p = *head;
        *head = p->next;
        free(p);
    }
}

void ae_x_free(exchange *x)
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
    uint64_t dur = ae_mono_ms() - x->started_ms;
    ae->n.last_ms = dur;
    if (x->yielded) {
        log_debug("anti-entropy with %s on (%016llx, %016llx]: left to the peer that compares it "
                  "with this node",
                  x->peer, (unsigned long long)x->lo, (unsigned long long)x->hi);
    } else if (x->abort[0]) {
        ae->n.failures++;
        ae->round_failures++;
        snprintf(ae->round_why, sizeof ae->round_why, "with %s: %s", x->peer, x->abort);
        log_debug("anti-entropy with %s on (%016llx, %016llx] stopped after %llu ms: %s", x->peer,
                  (unsigned long long)x->lo, (unsigned long long)x->hi, (unsigned long long)dur,
                  x->abort);
    } else {
        ae->n.exchanges++;
        if (x->leaves_diff || x->pulled || x->pushed)
            log_info("anti-entropy with %s on (%016llx, %016llx]: %llu of %llu leaves differed; "
                     "pulled %llu newer keys, pushed %llu; %llu ms",
                     x->peer, (unsigned long long)x->lo, (unsigned long long)x->hi,
                     (unsigned long long)x->leaves_diff,
                     (unsigned long long)merkle_level_size(x->depth), (unsigned long long)x->pulled,
                     (unsigned long long)x->pushed, (unsigned long long)dur);
        else
            log_debug("anti-entropy with %s on (%016llx, %016llx]: equal (%llu ms)", x->peer,
                      (unsigned long long)x->lo, (unsigned long long)x->hi,
                      (unsigned long long)dur);
    }
    ae_x_free(x);
    ae->x = NULL;
    ae->n.in_progress = 0;
    ae_round_next(ae);
}

/* Stops the exchange: at once when nothing is in flight, else when the
 * last answer arrives. */
void ae_x_abort(antientropy *ae, const char *why)
{
    exchange *x = ae->x;
    if (!x->abort[0])
        snprintf(x->abort, sizeof x->abort, "%.*s", (int)sizeof x->abort - 1, why);
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

void ae_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    if (!ae->x)
        return;
    ae->x->retry_armed = false;
    if (ae->x->abort[0])
        ae_x_abort(ae, ae->x->abort);
    else
        ae_x_advance(ae);
}

/* The common part of an answer: counts it, checks it is one. Returns the
 * exchange to go on with, or NULL (handled). */
static exchange *x_answer(antientropy *ae, const Ringkv__Envelope *reply, const char *err, int body)
{
    exchange *x = ae->x;
    x->waiting = false;
    if (!reply) {
        ae_x_abort(ae, err ? err : "no answer");
        return NULL;
    }
    x_received(ae, ae_frame_bytes(reply));
    if ((int)reply->body_case != body) {
        ae_x_abort(ae, "unexpected answer");
        return NULL;
    }
    if (x->abort[0]) {
        ae_x_abort(ae, x->abort);
        return NULL;
    }
    return x;
}

static void x_retry_later(antientropy *ae)
{
    exchange *x = ae->x;
    if (++x->retries > AE_MAX_RETRIES) {
        ae_x_abort(ae, "the peer was not ready for a minute");
        return;
    }
    arm_retry(ae, AE_RETRY_MS);
}

static int x_call(antientropy *ae, Ringkv__Envelope *env, uint64_t *idfield, replica_env_fn fn)
{
    exchange *x = ae->x;
    x_sent(ae, ae_frame_bytes(env) + 10); /* + the id, set by replica_call */
    x->waiting = true;
    if (replica_call(ae->rep, x->peer, env, idfield, fn, ae) != 0) {
        x->waiting = false;
        ae_x_abort(ae, "out of memory");
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
        ae_x_abort(ae, why);
        return;
    }
    if (mr->retry) {
        x_retry_later(ae);
        return;
    }
    if (mr->n_hashes != x->nsent * MERKLE_FANOUT) {
        snprintf(why, sizeof why, "%s answered %zu hashes for %zu nodes", x->peer, mr->n_hashes,
                 x->nsent);
        ae_x_abort(ae, why);
        return;
    }
    if (x->phase == X_TREES) {
        memcpy(x->root_children, mr->hashes, sizeof x->root_children);
        x->have_root = true;
    } else {
        if (compare_children(x, x->level, x->cur + x->curpos, x->nsent, mr->hashes) != 0) {
            ae_x_abort(ae, "out of memory");
            return;
        }
        x->curpos += x->nsent;
    }
    x->nsent = 0;
    ae_x_advance(ae);
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
static int queue_pull(antientropy *ae, const uint8_t *key, size_t klen);

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
        store_result res =
            store_get(srv->st, rec.key, rec.klen, server_now_ms(srv), &local, err, sizeof err);
        if (res != STORE_OK && res != STORE_NOT_FOUND) {
            snprintf(why, whylen, "reading the local copy: %s", err);
            return -1;
        }
        if (version_cmp(rec.version.hlc, rec.version.origin, local.version.hlc,
                        local.version.origin) <= 0)
            continue;
        if (x->versions_only) { /* the value comes with a read */
            if (queue_pull(ae, rec.key, rec.klen) != 0) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
            continue;
        }
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
        ae_x_abort(ae, why);
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
        /* every answer must move forward, or a peer could keep us here */
        bool stuck = k == x->leafpos && (!lr->after.len || pos_cmp(lr->after.data, lr->after.len,
                                                                   x->after, x->afterlen) <= 0);
        if (k == end || lr->after.len >= AE_POS_MAX || stuck) {
            snprintf(why, sizeof why, "%s answered with a bad resume position", x->peer);
            ae_x_abort(ae, why);
            return;
        }
    }
    if (take_records(ae, lr, why, sizeof why) != 0) {
        ae_x_abort(ae, why);
        return;
    }
    /* own records of the same stretch, compared in steps */
    x->scan_idx = x->leafpos;
    memcpy(x->scan_after, x->after, x->afterlen);
    x->scan_afterlen = x->afterlen;
    x->limited = lr->more && lr->after.len > 0;
    if (lr->more) {
        x->scan_end = lr->after.len ? k : k - 1; /* k > leafpos when after is empty */
        if (lr->after.len)                       /* protobuf-c: data is NULL when empty */
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
    ae_step_arm(ae);
    ae_x_advance(ae);
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
    /* first the leaves empty here, whole records; then the others, versions
     * only: a request never mixes the two */
    size_t end = x->leafpos < x->nfull ? x->nfull : x->nleaves;
    x->nreq = end - x->leafpos;
    if (x->nreq > AE_LEAVES_PER_REQ)
        x->nreq = AE_LEAVES_PER_REQ;
    x->versions_only = x->leafpos >= x->nfull;
    q.versions_only = x->versions_only;
    q.leaves = x->leaves + x->leafpos;
    q.n_leaves = x->nreq;
    q.after.data = x->after;
    q.after.len = x->afterlen;
    q.max_bytes = AE_MAX_REPLY;
    x_call(ae, &env, &q.id, on_leaves);
}

/* Applies a record read from the peer if it is still newer here. Returns
 * 0, or -1 with why. */
static int apply_pulled(antientropy *ae, const replica_record *rec, char *why, size_t whylen)
{
    exchange *x = ae->x;
    server *srv = ae->srv;
    char err[256];
    if (rec->klen == 0 || rec->klen > srv->cfg->max_key_bytes ||
        rec->vlen > srv->cfg->max_value_bytes)
        return 0;
    store_record local;
    store_result res =
        store_get(srv->st, rec->key, rec->klen, server_now_ms(srv), &local, err, sizeof err);
    if (res != STORE_OK && res != STORE_NOT_FOUND) {
        snprintf(why, whylen, "reading the local copy: %s", err);
        return -1;
    }
    if (version_cmp(rec->version.hlc, rec->version.origin, local.version.hlc,
                    local.version.origin) <= 0)
        return 0;
    if (replica_store(ae->rep, rec, NULL, err, sizeof err) != STORE_OK) {
        snprintf(why, whylen, "storing a pulled record: %s", err);
        return -1;
    }
    server_schedule_pass_end(srv);
    x->pulled++;
    ae->n.keys_pulled++;
    return 0;
}

/* A pushed write acknowledged, or a pulled read answered. */
static void on_item_done(void *arg, const char *from, const replica_reply *r)
{
    (void)from;
    push_item *p = arg;
    antientropy *ae = p->ae;
    exchange *x = ae->x;
    char why[300] = "";
    if (p->prev)
        p->prev->next = p->next;
    else
        x->inflight = p->next;
    if (p->next)
        p->next->prev = p->prev;
    bool pull = p->pull;
    free(p);
    x->ninflight--;
    if (!r->ok) {
        snprintf(why, sizeof why, "%s %s failed: %s", pull ? "reading from" : "pushing to", x->peer,
                 r->error);
    } else if (!pull) {
        x_received(ae, AE_ACK_BYTES);
        x->pushed++;
        ae->n.keys_pushed++;
    } else if (r->found) {
        Ringkv__Record pb = RINGKV__RECORD__INIT;
        replica_record_to_pb(&r->rec, &pb);
        x_received(ae, ringkv__record__get_packed_size(&pb) + AE_ACK_BYTES);
        apply_pulled(ae, &r->rec, why, sizeof why);
    } else {
        x_received(ae, AE_ACK_BYTES); /* gone meanwhile: nothing to take */
    }
    if (why[0] && !x->abort[0]) {
        ae_x_abort(ae, why);
        return;
    }
    if (x->abort[0]) {
        if (!x->ninflight && !x->waiting && !x->retry_armed)
            x_end(ae);
        return;
    }
    if (x->scanning)
        ae_step_arm(ae);
    ae_x_advance(ae);
}

/* Sends queued records while the window and the byte budget allow. */
static void pump(antientropy *ae)
{
    exchange *x = ae->x;
    while (x->q_head && x->ninflight < AE_PUSH_WINDOW) {
        uint64_t wait = ae_bucket_wait_ms(ae);
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
        x_sent(ae, p->bytes);
        int rc = p->pull ? replica_read(ae->rep, x->peer, p->rec.key, p->rec.klen, NULL, on_item_done, p)
                         : replica_write(ae->rep, x->peer, &p->rec, NULL, on_item_done, p);
        if (rc != 0) {
            x->inflight = p->next;
            if (p->next)
                p->next->prev = NULL;
            x->ninflight--;
            free(p);
            ae_x_abort(ae, "out of memory");
            return;
        }
    }
}

static void queue_add(exchange *x, push_item *p)
{
    p->next = NULL;
    if (x->q_tail)
        x->q_tail->next = p;
    else
        x->q_head = p;
    x->q_tail = p;
    x->nqueued++;
}

/* Queues a read of key from the peer (its record is newer there). */
static int queue_pull(antientropy *ae, const uint8_t *key, size_t klen)
{
    push_item *p = malloc(sizeof *p + klen);
    if (!p)
        return -1;
    p->ae = ae;
    p->pull = true;
    memcpy(p->data, key, klen);
    p->rec = (replica_record){.key = p->data, .klen = klen};
    p->bytes = klen + PEER_HEADER_BYTES + 20; /* a ReplicaRead frame */
    queue_add(ae->x, p);
    return 0;
}

static int queue_push(antientropy *ae, const store_item *it)
{
    size_t vlen = it->tombstone ? 0 : it->vlen;
    push_item *p = malloc(sizeof *p + it->klen + vlen);
    if (!p)
        return -1;
    p->ae = ae;
    p->pull = false;
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
    queue_add(ae->x, p);
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
    if (!merkle_included(it->tombstone, it->version.hlc, it->expires_ms, server_now_ms(ae->srv),
                         cfg->tombstone_ttl_ms))
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
int ae_scan_step(antientropy *ae, char *err, size_t errlen)
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
        /* a leaf costs its seek even when it holds nothing here */
        size_t cost = (size_t)n + 1;
        budget -= cost < budget ? cost : budget;
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
        /* Leaves empty here go first, asked for with their values (all of
         * them are missing here); the rest versions only, so a value
         * crosses only when it is needed. Without memory for the reorder,
         * every leaf is asked for versions only: slower, still right. */
        uint32_t *sorted = malloc(x->nleaves * sizeof *sorted);
        x->nfull = 0;
        if (sorted) {
            size_t n = 0;
            for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < x->nleaves; i++)
                    if ((merkle_node(x->m, x->depth, x->leaves[i]) == 0) == (pass == 0))
                        sorted[n++] = x->leaves[i];
            for (size_t i = 0; i < x->nleaves; i++)
                x->nfull += merkle_node(x->m, x->depth, x->leaves[i]) == 0;
            free(x->leaves);
            x->leaves = sorted;
        }
        x->leaves_diff = x->nleaves;
        ae->n.leaves_differing += x->nleaves;
        x->phase = X_LEAVES;
    }
}

void ae_x_advance(antientropy *ae)
{
    exchange *x = ae->x;
    if (!x)
        return;
    if (x->abort[0]) {
        ae_x_abort(ae, x->abort);
        return;
    }
    if (cluster_epoch(ae->cl) != x->epoch || cluster_pending(ae->cl)) {
        ae_x_abort(ae, "the ring changed");
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
                ae_x_abort(ae, "out of memory");
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
            uint64_t wait = ae_bucket_wait_ms(ae);
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
    uint64_t wait = ae_bucket_wait_ms(ae);
    if (wait)
        arm_retry(ae, wait);
    else
        send_leaves(ae);
}
