/* coord: the request coordinator; see coord.h.
 *
 * Lifetime of an operation: it holds one reference for its start and one
 * per replica request in flight, so a reply that arrives synchronously
 * (the local replica) or late (after the client was answered) always finds
 * it. It is answered once (success, failure or the deadline) and returns to
 * the pool when the last reference goes; a read then repairs the replicas
 * that answered with an older version or nothing. A replica held in reserve
 * takes no reference until it is asked, so a read whose asked replicas have
 * all answered is done, reserve or not.
 *
 * Deadlines: every operation gets the same request_timeout, so the list of
 * unanswered operations in start order is also in deadline order. A read
 * with a reserve waits before it asks one more replica; the wait changes
 * only now and then (see note_latency), so a second list, entered from the
 * tail in retry order, mostly appends. One timer, armed for the earlier of
 * the two heads, serves both.
 */
#include "coord.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quorum.h"

struct coord_op;

/* The coordinator's own state for one replica of an operation; a request
 * to the replica carries a pointer to it, so its answer finds the
 * operation and the replica's place without comparing node ids (the
 * compares' misses in the CPU's cache were 8% of a node under SETs). */
typedef struct coord_slot {
    struct coord_op *op;
    uint32_t idx; /* the replica's place in op's arrays */
    bool local;
    uint64_t sent_ms;                  /* read: when it was asked */
    char hint[STORE_ORIGIN_MAX + 1];   /* stand-in for this owner; "" = none */
} coord_slot;

typedef struct coord_op {
    coord *co;
    struct coord_op *prev, *next; /* unanswered list, or the free list */
    struct coord_op *sprev, *snext; /* reads with a reserve, by retry time */
    int refs;
    bool is_read, is_del, answered, listed, slisted, oom;
    /* A write whose answer is this node's own copy's (one, with a local
     * target): its requests to the others go as background. */
    bool background;
    int level;                    /* stats bucket */
    quorum q;
    uint64_t start_ms, epoch;
    uint64_t retry_ms;            /* when to ask a reserve replica (slisted) */
    coord_done_fn done;
    void *arg;
    uint8_t *key;                 /* copied: read repair needs it late */
    size_t klen, keycap;
    /* read: the newest record seen, copied out of its reply */
    uint8_t *val;
    size_t vlen, valcap;
    bool tombstone;
    uint64_t expires_ms;
    char why[160];                /* the last replica error */
    /* Per replica, sized for the most replicas an operation has needed on
     * this node (N, more while the ring changes): at N = 3 an operation is
     * under 1 KiB where arrays for CLUSTER_MAX_N made it 4, and the
     * operations in flight missed the CPU caches that much more. */
    size_t cap;
    coord_slot *cs;               /* [cap], after qs */
    quorum_slot qs[];             /* [cap] */
} coord_op;

struct coord {
    struct event_base *base;
    hlc *clock;
    coord_ops ops;
    coord_config cfg;
    struct event *timer;
    coord_op *head, *tail;        /* unanswered, oldest first */
    coord_op *shead, *stail;      /* reads with a reserve, next retry first */
    uint64_t timer_due;           /* when the pending timer fires */
    coord_op *spare;              /* the pool */
    size_t slots;                 /* per-replica room of new operations */
    /* Remote replica read latency in 1 ms buckets (the last: 63 ms or
     * more) over the current window of samples; spec_ms: the wait before a
     * speculative ask, from the last full window. */
    uint32_t lat[64];
    uint32_t nlat;
    uint64_t spec_ms;
    size_t live;                  /* operations not back in the pool */
    bool freeing;
    coord_stats st;
    const char *now_id;           /* coord_get_now's result points here */
    char now_msg[320];
};

static void arm_timer(coord *co);
static void send_to(coord_op *op, size_t i, const replica_record *rec);

/* A node id into a fixed buffer (cut at cap - 1 bytes; NULL is ""):
 * snprintf("%s") costs more than the rest of a request's bookkeeping. */
static void copy_id(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

coord *coord_new(struct event_base *base, hlc *clock, const coord_ops *ops,
                 const coord_config *cfg, char *err, size_t errlen)
{
    coord *co = calloc(1, sizeof *co);
    if (!co) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    co->base = base;
    co->clock = clock;
    co->ops = *ops;
    co->cfg = *cfg;
    if (co->cfg.timeout_ms == 0)
        co->cfg.timeout_ms = 1;
    co->timer = NULL;
    co->spec_ms = co->cfg.read_retry_ms;
    co->st.read_retry_ms = co->spec_ms;
    return co;
}

static void op_destroy(coord_op *op)
{
    free(op->key);
    free(op->val);
    free(op);
}

static void coord_destroy(coord *co)
{
    while (co->spare) {
        coord_op *op = co->spare;
        co->spare = op->next;
        op_destroy(op);
    }
    if (co->timer)
        event_free(co->timer);
    free(co);
}

static void unlist(coord_op *op)
{
    coord *co = op->co;
    if (!op->listed)
        return;
    if (op->prev)
        op->prev->next = op->next;
    else
        co->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        co->tail = op->prev;
    op->prev = op->next = NULL;
    op->listed = false;
}

/* Enters op in the retry list at its place, searched from the tail: the
 * wait is the same for reads close in time, so that is nearly always it. */
static void spec_list(coord_op *op, uint64_t due)
{
    coord *co = op->co;
    op->retry_ms = due;
    op->slisted = true;
    coord_op *after = co->stail;
    while (after && after->retry_ms > due)
        after = after->sprev;
    op->sprev = after;
    op->snext = after ? after->snext : co->shead;
    if (op->snext)
        op->snext->sprev = op;
    else
        co->stail = op;
    if (after)
        after->snext = op;
    else
        co->shead = op;
}

#define LAT_WINDOW 512 /* replica read latencies per estimate */

/* A remote replica answered a read after ms. Every LAT_WINDOW answers, the
 * wait before a speculative ask becomes the 95th percentile of them when
 * that is longer than read_retry (Cassandra's speculative_retry is a
 * percentile too): on a loaded cluster, where every replica is slow, at
 * most about 5% of reads ask one more replica, not all of them. */
static void note_latency(coord *co, uint64_t ms)
{
    const size_t nb = sizeof co->lat / sizeof co->lat[0];
    co->lat[ms < nb ? ms : nb - 1]++;
    if (++co->nlat < LAT_WINDOW)
        return;
    uint32_t seen = 0, want = co->nlat - co->nlat / 20;
    size_t b = 0;
    while (b < nb - 1 && (seen += co->lat[b]) < want)
        b++;
    uint64_t p95 = b + 1; /* the bucket's upper end */
    co->spec_ms = p95 > co->cfg.read_retry_ms ? p95 : co->cfg.read_retry_ms;
    co->st.read_retry_ms = co->spec_ms;
    memset(co->lat, 0, sizeof co->lat);
    co->nlat = 0;
}

static void spec_unlist(coord_op *op)
{
    coord *co = op->co;
    if (!op->slisted)
        return;
    if (op->sprev)
        op->sprev->snext = op->snext;
    else
        co->shead = op->snext;
    if (op->snext)
        op->snext->sprev = op->sprev;
    else
        co->stail = op->sprev;
    op->sprev = op->snext = NULL;
    op->slisted = false;
}

static void answer(coord_op *op, wire_status st, const char *msg)
{
    if (op->answered)
        return;
    coord *co = op->co;
    op->answered = true;
    unlist(op);
    spec_unlist(op);
    const char *names[QUORUM_MAX_REPLICAS];
    size_t n = 0;
    for (size_t i = 0; i < op->q.n; i++)
        if (op->q.slot[i].state == QUORUM_ANSWERED_OK)
            names[n++] = op->q.slot[i].replica;
    coord_result res = {.status = st, .msg = msg, .epoch = op->epoch, .replicas = names,
                        .nreplicas = n};
    if (st == WIRE_OK && op->is_read) {
        res.value = op->val;
        res.vlen = op->vlen;
        res.expires_ms = op->expires_ms;
    }
    if (st == WIRE_ERR_UNAVAILABLE)
        co->st.unavailable++;
    else if (st == WIRE_ERR_TIMEOUT)
        co->st.timeouts++;
    op->done(op->arg, &res);
}

/* The quorum decided (or the deadline passed): tell the client. */
static void answer_outcome(coord_op *op)
{
    quorum *q = &op->q;
    char msg[320];
    const char *verb = op->is_read ? "answered" : "acknowledged";
    switch (q->outcome) {
    case QUORUM_PENDING:
        return;
    case QUORUM_SUCCESS:
        if (op->oom) {
            answer(op, WIRE_ERR_INTERNAL, "out of memory keeping the value read");
        } else if (!op->is_read) {
            answer(op, WIRE_OK, NULL);
        } else {
            bool live = quorum_newest(q) && !op->tombstone &&
                        (op->expires_ms == 0 || op->expires_ms > op->co->ops.now_ms(op->co->ops.ctx));
            answer(op, live ? WIRE_OK : WIRE_NOT_FOUND, NULL);
        }
        return;
    case QUORUM_FAILED:
        snprintf(msg, sizeof msg, "%zu of %zu replicas %s, %zu needed%s: %s", q->oks, q->n, verb,
                 q->needed, q->ngroups ? " of the current and of the future owners" : "",
                 op->why[0] ? op->why : "replicas failed");
        answer(op, WIRE_ERR_UNAVAILABLE, msg);
        return;
    case QUORUM_TIMEOUT:
        snprintf(msg, sizeof msg, "%zu of %zu %s, %zu needed%s, after %llu ms", q->oks, q->n,
                 verb, q->needed, q->ngroups ? " of the current and of the future owners" : "",
                 (unsigned long long)op->co->cfg.timeout_ms);
        answer(op, WIRE_ERR_TIMEOUT, msg);
        return;
    }
}

static void on_repair_done(void *arg, const char *from, const replica_reply *r)
{
    (void)arg;
    if (!r->ok)
        log_debug("read repair of %s failed: %s", from, r->error ? r->error : "?");
}

/* Sends the newest record to every replica that answered with an older one
 * or none. Best effort: the next read or anti-entropy retries a failure. */
static void read_repair(coord_op *op)
{
    coord *co = op->co;
    size_t stale[QUORUM_MAX_REPLICAS];
    size_t n = quorum_stale(&op->q, stale);
    const quorum_reply *best = quorum_newest(&op->q);
    if (n == 0 || !best || co->freeing)
        return;
    replica_record rec = {.key = op->key, .klen = op->klen, .value = op->tombstone ? NULL : op->val,
                          .vlen = op->tombstone ? 0 : op->vlen, .tombstone = op->tombstone,
                          .expires_ms = op->expires_ms, .version = best->version};
    for (size_t k = 0; k < n; k++) {
        size_t i = stale[k];
        const char *hint = op->cs[i].hint[0] ? op->cs[i].hint : NULL;
        co->st.read_repairs++;
        if (op->cs[i].local)
            co->ops.apply_local(co->ops.ctx, &rec, hint, on_repair_done, NULL);
        else
            co->ops.write(co->ops.ctx, op->q.slot[i].replica, &rec, hint, true, on_repair_done,
                          NULL);
    }
}

static void op_unref(coord_op *op)
{
    if (--op->refs > 0)
        return;
    coord *co = op->co;
    if (!op->answered) /* cannot happen: the quorum decides once all replied */
        answer(op, WIRE_ERR_INTERNAL, "replicas stopped answering");
    if (op->is_read)
        read_repair(op);
    if (op->cap < co->slots) {
        op_destroy(op); /* smaller than operations need now */
    } else {
        op->next = co->spare;
        co->spare = op;
    }
    co->live--;
    co->st.in_flight = co->live;
    if (co->freeing && co->live == 0)
        coord_destroy(co);
}

/* Keeps a copy of the newest record a read has seen. */
static void keep_record(coord_op *op, const replica_record *rec)
{
    op->tombstone = rec->tombstone;
    op->expires_ms = rec->expires_ms;
    op->vlen = 0;
    if (rec->tombstone || rec->vlen == 0)
        return;
    if (rec->vlen > op->valcap) {
        uint8_t *v = realloc(op->val, rec->vlen);
        if (!v) {
            op->oom = true;
            return;
        }
        op->val = v;
        op->valcap = rec->vlen;
    }
    memcpy(op->val, rec->value, rec->vlen);
    op->vlen = rec->vlen;
}

static void ask_reserves(coord_op *op);

/* arg: the replica's coord_slot. */
static void on_reply(void *arg, const char *from, const replica_reply *r)
{
    coord_slot *cs = arg;
    coord_op *op = cs->op;
    int i = (int)cs->idx;
    if (!from || strcmp(op->q.slot[i].replica, from) != 0)
        i = -1; /* not the replica asked: cannot happen, but never counted */
    replica_reply bad;
    const quorum_reply *best = quorum_newest(&op->q);
    if (r->ok && r->version_only &&
        (!best || quorum_version_cmp(&r->rec.version, &best->version) > 0)) {
        /* Newer than any version the read was sent with, so its value is
         * nowhere: not from a replica that follows the protocol. */
        bad = (replica_reply){.error = "a version-only answer newer than the version asked with"};
        r = &bad;
    }
    if (i >= 0 && op->q.slot[i].state == QUORUM_WAITING) {
        quorum_reply qr = {.ok = r->ok, .found = r->ok && r->found};
        if (qr.found)
            qr.version = r->rec.version;
        if (!r->ok && r->error)
            snprintf(op->why, sizeof op->why, "%s: %s", from, r->error);
        if (op->is_read && r->ok && !op->cs[i].local) {
            uint64_t now = op->co->ops.now_ms(op->co->ops.ctx);
            note_latency(op->co, now > op->cs[i].sent_ms ? now - op->cs[i].sent_ms : 0);
        }
        int before = op->q.newest;
        quorum_on_reply_at(&op->q, (size_t)i, &qr);
        if (op->is_read && op->q.newest == i && op->q.newest != before)
            keep_record(op, &r->rec); /* never a version-only one: not newer */
        answer_outcome(op);
        if (!r->ok && op->is_read)
            ask_reserves(op);
    }
    op_unref(op);
}

/* The lines on_reply reads: the operation's head up to its quorum counts,
 * and the replica's slot. Under pipelined SETs a write's operation waits
 * for its replicas' acknowledgements behind thousands of others and is out
 * of the CPU's caches by then: a miss after a miss per answer was 8-14% of
 * a node (on_reply, and the strcmp on its slot). */
void coord_prefetch_answer(replica_cb cb, void *arg)
{
    if (cb != on_reply || !arg)
        return;
    const coord_slot *cs = arg;
    const char *op = (const char *)cs->op;
    for (size_t off = 0; off < offsetof(coord_op, start_ms); off += 64)
        __builtin_prefetch(op + off, 1);
    __builtin_prefetch(&cs->op->qs[cs->idx], 1);
}

/* An operation with room for nt replicas, from the pool when it has one. */
static coord_op *op_get(coord *co, size_t nt)
{
    if (nt > co->slots)
        co->slots = nt; /* the pool's smaller ones go as they come up */
    coord_op *op;
    while ((op = co->spare) && op->cap < co->slots) {
        co->spare = op->next;
        op_destroy(op);
    }
    if (op) {
        co->spare = op->next;
        if (co->spare) /* its link, read by the next pop: see req_get */
            __builtin_prefetch(&co->spare->next);
    } else {
        size_t cap = co->slots ? co->slots : 1;
        op = calloc(1, sizeof *op + cap * (sizeof(quorum_slot) + sizeof(coord_slot)));
        if (!op)
            return NULL;
        op->cap = cap;
        op->cs = (coord_slot *)(op->qs + cap);
        for (size_t i = 0; i < cap; i++) {
            op->cs[i].op = op;
            op->cs[i].idx = (uint32_t)i;
        }
    }
    op->co = co;
    op->prev = op->next = NULL;
    op->refs = 1;
    op->sprev = op->snext = NULL;
    op->answered = op->listed = op->slisted = op->oom = op->background = false;
    op->vlen = 0;
    op->tombstone = false;
    op->expires_ms = 0;
    op->why[0] = '\0';
    co->live++;
    co->st.in_flight = co->live;
    return op;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    coord *co = arg;
    uint64_t now = co->ops.now_ms(co->ops.ctx);
    while (co->head && co->head->q.deadline_ms <= now) {
        coord_op *op = co->head;
        quorum_check_deadline(&op->q, now);
        answer_outcome(op); /* unlists it */
    }
    /* Speculative retry: a read still undecided asks one more replica,
     * and again after another read_retry while a reserve is left. */
    while (co->shead && co->shead->retry_ms <= now) {
        coord_op *op = co->shead;
        spec_unlist(op);
        int i = quorum_ask_next(&op->q);
        if (i < 0)
            continue;
        co->st.read_speculations++;
        if (quorum_reserves(&op->q) > 0)
            spec_list(op, now + co->spec_ms);
        op->refs++; /* a synchronous answer may end every other request */
        send_to(op, (size_t)i, NULL);
        op_unref(op);
    }
    arm_timer(co);
}

static void arm_timer(coord *co)
{
    if (!co->head || co->freeing)
        return; /* a read with a reserve is always unanswered, so listed */
    uint64_t due = co->head->q.deadline_ms;
    if (co->shead && co->shead->retry_ms < due)
        due = co->shead->retry_ms;
    if (!co->timer) {
        co->timer = evtimer_new(co->base, on_timer, co);
        if (!co->timer)
            return; /* the replica layer's own timeouts still end every op */
    }
    /* Firing early is harmless (on_timer re-arms); late is not. */
    if (evtimer_pending(co->timer, NULL) && co->timer_due <= due)
        return;
    co->timer_due = due;
    uint64_t now = co->ops.now_ms(co->ops.ctx);
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 + 500};
    evtimer_add(co->timer, &tv);
}

/* A read that holds replicas in reserve asks the best ones first: this
 * node's own copy (no network), then the other owners in preference order,
 * then the stand-ins, which hold the key only as a hint for its owner. */
static int read_rank(const cluster_target *t)
{
    return t->hint_for ? 2 : t->local ? 0 : 1;
}

static void order_for_read(cluster_target *t, size_t nt)
{
    /* An insertion sort, stable: a few targets, mostly in order already
     * (three rank passes over a copy were 3% of a coordinator's
     * instructions under quorum GETs). */
    for (size_t i = 1; i < nt; i++) {
        cluster_target x = t[i];
        int r = read_rank(&x);
        size_t j = i;
        for (; j > 0 && read_rank(&t[j - 1]) > r; j--)
            t[j] = t[j - 1];
        t[j] = x;
    }
}

/* Replies a read or write needs at level consistency (or the configured R
 * or W) out of n replicas: at least 1. */
static size_t needed_of(const coord *co, int consistency, bool is_read, size_t n)
{
    size_t needed;
    if (consistency >= QUORUM_ONE && consistency <= QUORUM_ALL) {
        needed = quorum_needed((quorum_level)consistency, n);
    } else {
        uint64_t want = is_read ? co->cfg.r : co->cfg.w;
        needed = want < n ? (size_t)want : n;
    }
    return needed ? needed : 1;
}

/* Where an operation goes: its targets and the answers it needs. */
typedef struct plan {
    cluster_target t[CLUSTER_MAX_N];
    size_t nt, needed;
    int level;                      /* stats bucket */
    bool hold;                      /* read: ask `needed` first, the rest in reserve */
    uint32_t now_mask, future_mask; /* write while the ring changes: joint quorum */
    size_t future_needed;
} plan;

static void plan_targets(coord *co, const uint8_t *key, size_t klen, int consistency,
                         bool is_read, plan *p)
{
    const coord_ops *o = &co->ops;
    p->needed = needed_of(co, consistency, is_read, o->n(o->ctx));
    p->level = consistency >= QUORUM_ONE && consistency <= QUORUM_ALL ? consistency
                                                                      : COORD_LEVEL_DEFAULT;
    p->now_mask = p->future_mask = 0;
    p->future_needed = 0;
    uint64_t token = ring_token(key, klen);
    p->nt = o->targets(o->ctx, token, p->t, CLUSTER_MAX_N);
    /* The ring is changing: the future owners get the write too, and it
     * needs the level's acknowledgements of the current targets and the
     * level's of the key's future owners (those among the targets, and the
     * extras), counting only future owners that are up. */
    if (!is_read && o->write_extra && p->nt < CLUSTER_MAX_N) {
        size_t ncur = p->nt < QUORUM_MAX_REPLICAS ? p->nt : QUORUM_MAX_REPLICAS;
        cluster_future fut;
        p->nt += o->write_extra(o->ctx, token, p->t, p->nt, p->t + p->nt, CLUSTER_MAX_N - p->nt,
                                &fut);
        if (p->nt > QUORUM_MAX_REPLICAS)
            p->nt = QUORUM_MAX_REPLICAS;
        if (fut.count) {
            for (size_t i = 0; i < p->nt; i++) {
                if (i < ncur)
                    p->now_mask |= (uint32_t)1 << i;
                if (i >= ncur || fut.cur_new[i])
                    p->future_mask |= (uint32_t)1 << i;
            }
            size_t up = (size_t)__builtin_popcount(p->future_mask);
            p->future_needed = needed_of(co, consistency, false, fut.n);
            if (p->future_needed > up)
                p->future_needed = up; /* a future owner that is down is not waited for */
        }
    }
    if (p->nt > QUORUM_MAX_REPLICAS)
        p->nt = QUORUM_MAX_REPLICAS;
    /* A read that needs one answer asks only this node when it is one of
     * the key's replicas (not a stand-in): no peer round trip, as a
     * Cassandra coordinator that is a replica does at ONE. Read repair has
     * nothing to compare then; anti-entropy and quorum reads repair. */
    if (is_read && p->needed == 1) {
        for (size_t i = 0; i < p->nt; i++) {
            if (p->t[i].local && !p->t[i].hint_for) {
                p->t[0] = p->t[i];
                p->nt = 1;
                break;
            }
        }
    }
    /* A read that needs fewer answers than it has replicas asks only as
     * many as it needs, as Cassandra's coordinator does: the others wait in
     * reserve for a failure or for the speculative wait. (At ONE that is a
     * node that holds no copy itself: it asks the first owner.) */
    p->hold = is_read && p->needed < p->nt && co->cfg.read_retry_ms > 0;
    if (p->hold)
        order_for_read(p->t, p->nt);
}

/* Prepares op for key as planned: quorum, deadline list. Returns false when
 * it was answered at once (unavailable), or out of memory (not answered). */
static bool op_start(coord_op *op, const uint8_t *key, size_t klen, bool is_read, const plan *p)
{
    coord *co = op->co;
    const coord_ops *o = &co->ops;
    op->is_read = is_read;
    if (klen > op->keycap) {
        uint8_t *k = realloc(op->key, klen);
        if (!k)
            return false;
        op->key = k;
        op->keycap = klen;
    }
    memcpy(op->key, key, klen);
    op->klen = klen;
    op->epoch = o->epoch(o->ctx);
    op->start_ms = o->now_ms(o->ctx);
    op->level = p->level;
    if (is_read)
        co->st.reads[op->level]++;
    else
        co->st.writes[op->level]++;

    size_t nt = p->nt, needed = p->needed;
    const char *ids[QUORUM_MAX_REPLICAS];
    for (size_t i = 0; i < nt; i++) {
        ids[i] = p->t[i].id;
        op->cs[i].local = p->t[i].local;
        copy_id(op->cs[i].hint, sizeof op->cs[i].hint, p->t[i].hint_for);
    }
    if (nt < needed ||
        quorum_init(&op->q, op->qs, is_read, ids, nt, needed, op->start_ms + co->cfg.timeout_ms) != 0 ||
        (p->future_mask &&
         quorum_set_joint(&op->q, p->now_mask, needed, p->future_mask, p->future_needed) != 0)) {
        char msg[96];
        snprintf(msg, sizeof msg, "need %zu replica%s, %zu up", needed, needed == 1 ? "" : "s",
                 nt);
        memset(&op->q, 0, sizeof op->q); /* no replica answered */
        op->q.newest = -1;
        answer(op, WIRE_ERR_UNAVAILABLE, msg);
        return false;
    }
    op->listed = true;
    op->prev = co->tail;
    if (co->tail)
        co->tail->next = op;
    else
        co->head = op;
    co->tail = op;
    if (p->hold) {
        quorum_hold(&op->q, needed);
        spec_list(op, op->start_ms + co->spec_ms);
    }
    return true;
}

/* A read planned to this node's own copy alone, answered from get_local
 * without an operation: what an operation with that one target would
 * answer (same statuses and messages), minus its bookkeeping and the copy
 * of the value. Returns false when the plan is not that (or there is no
 * get_local). */
static bool get_now(coord *co, const plan *p, const uint8_t *key, size_t klen, coord_result *res)
{
    const coord_ops *o = &co->ops;
    if (!o->get_local || p->nt != 1 || p->needed != 1 || !p->t[0].local || p->t[0].hint_for)
        return false;
    co->st.reads[p->level]++;
    char err[256];
    replica_reply r;
    o->get_local(o->ctx, key, klen, &r, err, sizeof err);
    *res = (coord_result){.epoch = o->epoch(o->ctx)};
    if (!r.ok) {
        char why[160] = "";
        if (r.error)
            snprintf(why, sizeof why, "%s: %s", p->t[0].id, r.error);
        snprintf(co->now_msg, sizeof co->now_msg, "0 of 1 replicas answered, 1 needed: %s",
                 why[0] ? why : "replicas failed");
        res->status = WIRE_ERR_UNAVAILABLE;
        res->msg = co->now_msg;
        co->st.unavailable++;
        return true;
    }
    co->now_id = p->t[0].id;
    res->replicas = &co->now_id;
    res->nreplicas = 1;
    bool live = r.found && !r.rec.tombstone &&
                (r.rec.expires_ms == 0 || r.rec.expires_ms > o->now_ms(o->ctx));
    res->status = live ? WIRE_OK : WIRE_NOT_FOUND;
    if (live) {
        res->value = r.rec.value;
        res->vlen = r.rec.vlen;
        res->expires_ms = r.rec.expires_ms;
    }
    return true;
}

int coord_get_now(coord *co, const uint8_t *key, size_t klen, int consistency, coord_result *res)
{
    plan p;
    const coord_ops *o = &co->ops;
    /* A read that needs more than one answer never is: coord_get plans it
     * (planning it here too was 5% of a coordinator's instructions under
     * quorum GETs). */
    if (!o->get_local || needed_of(co, consistency, true, o->n(o->ctx)) != 1)
        return 0;
    plan_targets(co, key, klen, consistency, true, &p);
    return get_now(co, &p, key, klen, res) ? 1 : 0;
}

static void on_hint_stored(void *arg, const char *from, const replica_reply *r)
{
    (void)arg;
    if (!r->ok)
        log_warn("storing a hint on %s failed: %s", from, r->error ? r->error : "?");
}

/* Owners that are down and have no stand-in among the targets get a hint
 * here, on the coordinator. */
static void hint_missing_owners(coord_op *op, const replica_record *rec)
{
    const coord_ops *o = &op->co->ops;
    if (!o->owners || op->q.n >= o->n(o->ctx))
        return;
    cluster_target own[CLUSTER_MAX_N];
    size_t n = o->owners(o->ctx, ring_token(rec->key, rec->klen), own, CLUSTER_MAX_N);
    for (size_t i = 0; i < n; i++) {
        bool covered = own[i].local;
        for (size_t k = 0; k < op->q.n && !covered; k++)
            covered = strcmp(op->q.slot[k].replica, own[i].id) == 0 || strcmp(op->cs[k].hint, own[i].id) == 0;
        if (!covered)
            o->apply_local(o->ctx, rec, own[i].id, on_hint_stored, NULL);
    }
}

/* Sends op's request (rec: a write; NULL: a read) to replica i; a request
 * that cannot be queued is a failure, and a read then asks a reserve. */
static void send_to(coord_op *op, size_t i, const replica_record *rec)
{
    const coord_ops *o = &op->co->ops;
    const char *id = op->q.slot[i].replica;
    const char *hint = op->cs[i].hint[0] ? op->cs[i].hint : NULL;
    int rc;
    op->refs++;
    if (rec) {
        rc = op->cs[i].local
                 ? o->apply_local(o->ctx, rec, hint, on_reply, &op->cs[i])
                 : o->write(o->ctx, id, rec, hint, op->background, on_reply, &op->cs[i]);
    } else if (op->cs[i].local) {
        rc = o->read_local(o->ctx, op->key, op->klen, on_reply, &op->cs[i]);
    } else {
        /* The newest version seen so far (this node's own, asked first):
         * a replica that holds no newer one answers with the version
         * alone, and the value comes from op->val. */
        const quorum_reply *best = quorum_newest(&op->q);
        op->cs[i].sent_ms = o->now_ms(o->ctx);
        rc = o->read(o->ctx, id, op->key, op->klen, best ? &best->version : NULL, on_reply,
                     &op->cs[i]);
    }
    if (rc != 0) {
        op->refs--;
        snprintf(op->why, sizeof op->why, "%s: could not send the request", id);
        quorum_on_failure(&op->q, id);
        answer_outcome(op);
        if (!rec)
            ask_reserves(op);
    }
}

/* A read whose asked replicas failed asks as many reserve replicas as it
 * now lacks, at once, without waiting for read_retry. */
static void ask_reserves(coord_op *op)
{
    coord *co = op->co;
    while (!op->answered && !co->freeing && quorum_short(&op->q) > 0) {
        co->st.read_retries++;
        send_to(op, (size_t)quorum_ask_next(&op->q), NULL);
    }
    if (quorum_reserves(&op->q) == 0)
        spec_unlist(op); /* nothing left to speculate with */
}

/* Sends to every target asked (a read's reserve waits). */
static void op_send(coord_op *op, const replica_record *rec)
{
    coord *co = op->co;
    /* Fixed before the loop: a failure in it may ask a reserve, which is
     * sent there and then. */
    size_t n = op->q.asked;
    for (size_t i = 0; i < n; i++) /* all of them, even once answered */
        send_to(op, i, rec);
    if (rec)
        hint_missing_owners(op, rec);
    if (!op->answered)
        arm_timer(co);
    op_unref(op);
}

int coord_get(coord *co, const uint8_t *key, size_t klen, int consistency, coord_done_fn done,
              void *arg)
{
    plan p;
    coord_result res;
    plan_targets(co, key, klen, consistency, true, &p);
    if (get_now(co, &p, key, klen, &res)) {
        done(arg, &res);
        return 0;
    }
    coord_op *op = op_get(co, p.nt);
    if (!op)
        return -1;
    op->done = done;
    op->arg = arg;
    if (!op_start(op, key, klen, true, &p)) {
        if (!op->answered) { /* out of memory copying the key */
            op->answered = true;
            op_unref(op);
            return -1;
        }
        op_unref(op);
        return 0;
    }
    op_send(op, NULL);
    return 0;
}

int coord_write(coord *co, bool del, const uint8_t *key, size_t klen, const uint8_t *value,
                size_t vlen, uint64_t ttl_ms, int consistency, coord_done_fn done, void *arg)
{
    plan p;
    plan_targets(co, key, klen, consistency, false, &p);
    coord_op *op = op_get(co, p.nt);
    if (!op)
        return -1;
    op->done = done;
    op->arg = arg;
    op->is_del = del;
    /* At one, with a copy of its own, a write is answered by that copy's
     * commit: the others' acknowledgements only settle hints, and their
     * requests may linger to leave with others (not while the ring
     * changes: the future owners' count is waited for then). */
    if (p.needed == 1 && !p.future_mask)
        for (size_t i = 0; i < p.nt; i++)
            op->background |= p.t[i].local;
    if (!op_start(op, key, klen, false, &p)) {
        if (!op->answered) {
            op->answered = true;
            op_unref(op);
            return -1;
        }
        op_unref(op);
        return 0;
    }
    uint64_t now = op->start_ms;
    replica_record rec = {.key = key, .klen = klen, .value = del ? NULL : value,
                          .vlen = del ? 0 : vlen, .tombstone = del};
    if (!del && ttl_ms)
        rec.expires_ms = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
    rec.version.hlc = hlc_now(co->clock, now);
    copy_id(rec.version.origin, sizeof rec.version.origin, co->cfg.self_id);
    op_send(op, &rec);
    return 0;
}

void coord_free(coord *co)
{
    if (!co)
        return;
    co->freeing = true;
    if (co->timer)
        event_del(co->timer);
    co->live++; /* hold it while answering */
    while (co->head)
        answer(co->head, WIRE_ERR_INTERNAL, "the node is shutting down");
    co->live--;
    if (co->live == 0)
        coord_destroy(co);
}

void coord_get_stats(const coord *co, coord_stats *out) { *out = co->st; }
