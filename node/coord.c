/* coord: the request coordinator; see coord.h.
 *
 * Lifetime of an operation: it holds one reference for its start and one
 * per replica request in flight, so a reply that arrives synchronously
 * (the local replica) or late (after the client was answered) always finds
 * it. It is answered once (success, failure or the deadline) and returns to
 * the pool when the last reference goes; a read then repairs the replicas
 * that answered with an older version or nothing.
 *
 * Deadlines: every operation gets the same request_timeout, so the list of
 * unanswered operations in start order is also in deadline order, and one
 * timer armed for its head serves them all.
 */
#include "coord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quorum.h"

typedef struct coord_op {
    coord *co;
    struct coord_op *prev, *next; /* unanswered list, or the free list */
    int refs;
    bool is_read, is_del, answered, listed, oom;
    int level;                    /* stats bucket */
    quorum q;
    char hint[QUORUM_MAX_REPLICAS][STORE_ORIGIN_MAX + 1]; /* "" = none */
    bool local[QUORUM_MAX_REPLICAS];
    uint64_t start_ms, epoch;
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
} coord_op;

struct coord {
    struct event_base *base;
    hlc *clock;
    coord_ops ops;
    coord_config cfg;
    struct event *timer;
    coord_op *head, *tail;        /* unanswered, oldest first */
    coord_op *spare;              /* the pool */
    size_t live;                  /* operations not back in the pool */
    bool freeing;
    coord_stats st;
    const char *now_id;           /* coord_get_now's result points here */
    char now_msg[320];
};

static void arm_timer(coord *co);

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

static void answer(coord_op *op, wire_status st, const char *msg)
{
    if (op->answered)
        return;
    coord *co = op->co;
    op->answered = true;
    unlist(op);
    const char *names[QUORUM_MAX_REPLICAS];
    size_t n = 0;
    for (size_t i = 0; i < op->q.n; i++)
        if (op->q.state[i] == QUORUM_ANSWERED_OK)
            names[n++] = op->q.replica[i];
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
        snprintf(msg, sizeof msg, "%zu of %zu replicas %s, %zu needed: %s", q->oks, q->n, verb,
                 q->needed, op->why[0] ? op->why : "replicas failed");
        answer(op, WIRE_ERR_UNAVAILABLE, msg);
        return;
    case QUORUM_TIMEOUT:
        snprintf(msg, sizeof msg, "%zu of %zu %s, %zu needed, after %llu ms", q->oks, q->n, verb,
                 q->needed, (unsigned long long)op->co->cfg.timeout_ms);
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
        const char *hint = op->hint[i][0] ? op->hint[i] : NULL;
        co->st.read_repairs++;
        if (op->local[i])
            co->ops.apply_local(co->ops.ctx, &rec, hint, on_repair_done, NULL);
        else
            co->ops.write(co->ops.ctx, op->q.replica[i], &rec, hint, on_repair_done, NULL);
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
    op->next = co->spare;
    co->spare = op;
    co->live--;
    co->st.in_flight = co->live;
    if (co->freeing && co->live == 0)
        coord_destroy(co);
}

static int slot_of(const coord_op *op, const char *id)
{
    for (size_t i = 0; i < op->q.n; i++)
        if (strcmp(op->q.replica[i], id) == 0)
            return (int)i;
    return -1;
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

static void on_reply(void *arg, const char *from, const replica_reply *r)
{
    coord_op *op = arg;
    int i = from ? slot_of(op, from) : -1;
    if (i >= 0 && op->q.state[i] == QUORUM_WAITING) {
        quorum_reply qr = {.ok = r->ok, .found = r->ok && r->found};
        if (qr.found)
            qr.version = r->rec.version;
        if (!r->ok && r->error)
            snprintf(op->why, sizeof op->why, "%s: %s", from, r->error);
        int before = op->q.newest;
        quorum_on_reply(&op->q, from, &qr);
        if (op->is_read && op->q.newest == i && op->q.newest != before)
            keep_record(op, &r->rec);
        answer_outcome(op);
    }
    op_unref(op);
}

static coord_op *op_get(coord *co)
{
    coord_op *op = co->spare;
    if (op) {
        co->spare = op->next;
    } else {
        op = calloc(1, sizeof *op);
        if (!op)
            return NULL;
    }
    op->co = co;
    op->prev = op->next = NULL;
    op->refs = 1;
    op->answered = op->listed = op->oom = false;
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
    arm_timer(co);
}

static void arm_timer(coord *co)
{
    if (!co->head || co->freeing)
        return;
    if (!co->timer) {
        co->timer = evtimer_new(co->base, on_timer, co);
        if (!co->timer)
            return; /* the replica layer's own timeouts still end every op */
    }
    if (evtimer_pending(co->timer, NULL))
        return;
    uint64_t now = co->ops.now_ms(co->ops.ctx);
    uint64_t due = co->head->q.deadline_ms;
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 + 500};
    evtimer_add(co->timer, &tv);
}

/* Where an operation goes: its targets and the answers it needs. */
typedef struct plan {
    cluster_target t[CLUSTER_MAX_N];
    size_t nt, needed;
    int level; /* stats bucket */
} plan;

static void plan_targets(coord *co, const uint8_t *key, size_t klen, int consistency,
                         bool is_read, plan *p)
{
    const coord_ops *o = &co->ops;
    size_t n = o->n(o->ctx);
    if (consistency >= QUORUM_ONE && consistency <= QUORUM_ALL) {
        p->needed = quorum_needed((quorum_level)consistency, n);
        p->level = consistency;
    } else {
        uint64_t want = is_read ? co->cfg.r : co->cfg.w;
        p->needed = want < n ? (size_t)want : n;
        p->level = COORD_LEVEL_DEFAULT;
    }
    uint64_t token = ring_token(key, klen);
    p->nt = o->targets(o->ctx, token, p->t, CLUSTER_MAX_N);
    if (p->needed == 0)
        p->needed = 1;
    if (!is_read && o->write_extra && p->nt < CLUSTER_MAX_N) {
        /* The ring is changing: the future owners get the write too, and
         * as many more acknowledgements are needed as there are of them. */
        size_t extra = 0;
        p->nt += o->write_extra(o->ctx, token, p->t, p->nt, p->t + p->nt, CLUSTER_MAX_N - p->nt,
                                &extra);
        p->needed += extra;
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
        op->local[i] = p->t[i].local;
        copy_id(op->hint[i], sizeof op->hint[i], p->t[i].hint_for);
    }
    if (nt < needed ||
        quorum_init(&op->q, is_read, ids, nt, needed, op->start_ms + co->cfg.timeout_ms) != 0) {
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
    if (!co->ops.get_local)
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
            covered = strcmp(op->q.replica[k], own[i].id) == 0 || strcmp(op->hint[k], own[i].id) == 0;
        if (!covered)
            o->apply_local(o->ctx, rec, own[i].id, on_hint_stored, NULL);
    }
}

/* Sends to every target; a request that cannot be queued is a failure. */
static void op_send(coord_op *op, const replica_record *rec)
{
    coord *co = op->co;
    const coord_ops *o = &co->ops;
    size_t n = op->q.n;
    for (size_t i = 0; i < n; i++) { /* all of them, even once answered */
        const char *id = op->q.replica[i];
        const char *hint = op->hint[i][0] ? op->hint[i] : NULL;
        int rc;
        op->refs++;
        if (rec)
            rc = op->local[i] ? o->apply_local(o->ctx, rec, hint, on_reply, op)
                              : o->write(o->ctx, id, rec, hint, on_reply, op);
        else
            rc = op->local[i] ? o->read_local(o->ctx, op->key, op->klen, on_reply, op)
                              : o->read(o->ctx, id, op->key, op->klen, on_reply, op);
        if (rc != 0) {
            op->refs--;
            snprintf(op->why, sizeof op->why, "%s: could not send the request", id);
            quorum_on_failure(&op->q, id);
            answer_outcome(op);
        }
    }
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
    coord_op *op = op_get(co);
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
    coord_op *op = op_get(co);
    if (!op)
        return -1;
    op->done = done;
    op->arg = arg;
    op->is_del = del;
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
