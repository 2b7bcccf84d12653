/* stream: moving ranges when ring membership changes; see stream.h.
 *
 * Work is a list of tasks, one per range: pull (join, repair after a
 * remove) from a source, or push (decommission) to a destination. A task
 * keeps its cursor (the position after the last committed record), so a
 * failed chunk is asked for again, from the next source, after a pause. At
 * most STREAM_MAX_INFLIGHT chunks are on the way at once, each in a call
 * slot of the stream (no allocation per chunk); a plan replaced because the
 * ring moved bumps `gen`, and answers for an older generation are dropped.
 * A one-tenth-second tick decides how a new node enters the ring, replans,
 * refills the rate limit and purges ranges given away.
 */
#include "stream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cluster.h"
#include "config.h"
#include "log.h"
#include "membership.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "server.h"

#define STREAM_TICK_MS        100
#define STREAM_MAX_INFLIGHT   2
#define STREAM_RETRY_MS       1000
#define STREAM_PURGE_BUDGET   10000
#define STREAM_FOUNDER_WAIT_MS 5000
#define STREAM_MIN_CHUNK      4096u
#define STREAM_MAX_CHUNK      (16u << 20)
#define STREAM_MAX_RECORDS    65536 /* records per chunk */
#define STREAM_POS_MAX        512   /* LMDB keys are at most 511 bytes */
#define STREAM_RECORD_OVERHEAD 24   /* protobuf framing of a record, roughly */

typedef enum task_kind { TASK_JOIN, TASK_DECOM, TASK_REPAIR } task_kind;

typedef struct task {
    task_kind kind;
    uint64_t lo, hi;
    char peer[RANGES_MAX_N][STORE_ORIGIN_MAX + 1]; /* pull: sources, best first; push: [0] */
    size_t npeer, peeri;
    uint8_t after[STREAM_POS_MAX];
    size_t afterlen;
    bool done, busy;
    uint64_t retry_at;
} task;

typedef struct call {
    struct stream *st;
    bool used;
    uint64_t gen;
    size_t task;
    uint8_t next[STREAM_POS_MAX]; /* the cursor once this chunk is in */
    size_t nextlen;
    bool last;
} call;

/* A push waiting for the commit of the records it carried. */
typedef struct push_wait {
    struct stream *st;
    peer_conn *pc;
    uint64_t id;
    struct push_wait *prev, *next;
} push_wait;

struct stream {
    server *srv;
    cluster *cl;
    replica *rep;
    membership *m;
    const config *cfg;
    struct event *tick;
    uint64_t start_ms;
    bool decided, leaving, stopping;

    task *tasks;
    size_t ntasks, cap, next_task;
    uint64_t gen;
    bool have_plan;
    uint64_t plan_cur, plan_pend;
    call calls[STREAM_MAX_INFLIGHT];
    push_wait *waits;

    double tokens;
    uint64_t refill_ms;

    uint64_t purge_epoch, purge_since;
    bool purge_done;
    range *pr;
    long npr, pri;

    uint64_t win_start, win_bytes;
    stream_stats n;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *self_id(const stream *st) { return st->srv->node_id; }

static gossip_role self_role(stream *st)
{
    return st->m ? membership_self_role(st->m) : GOSSIP_ROLE_MEMBER;
}

/* ---- records in chunks ---- */

/* Records gathered from a scan for one chunk; pb fields point into LMDB
 * memory, valid until the next write to the store. */
typedef struct batch {
    Ringkv__Record *recs;
    Ringkv__Record **ptrs;
    char (*origins)[STORE_ORIGIN_MAX + 1];
    size_t n, cap;
    size_t bytes, max_bytes;
    uint64_t now_ms;
    uint8_t last[STREAM_POS_MAX];
    size_t lastlen;
} batch;

static void batch_free(batch *b)
{
    free(b->recs);
    free(b->ptrs);
    free(b->origins);
}

static int batch_grow(batch *b)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    if (cap > STREAM_MAX_RECORDS)
        cap = STREAM_MAX_RECORDS;
    Ringkv__Record *r = realloc(b->recs, cap * sizeof *r);
    if (r)
        b->recs = r;
    char(*o)[STORE_ORIGIN_MAX + 1] = realloc(b->origins, cap * sizeof *o);
    if (o)
        b->origins = o;
    Ringkv__Record **p = realloc(b->ptrs, cap * sizeof *p);
    if (p)
        b->ptrs = p;
    if (!r || !o || !p)
        return -1;
    b->cap = cap;
    return 0;
}

/* store_scan callback: adds a record, skipping live ones already expired
 * (every node reads them as absent). Stops at the byte budget. */
static int batch_add(void *arg, const store_item *it)
{
    batch *b = arg;
    if (it->poslen <= sizeof b->last) {
        memcpy(b->last, it->pos, it->poslen);
        b->lastlen = it->poslen;
    }
    if (!it->tombstone && it->expires_ms && it->expires_ms <= b->now_ms)
        return 0;
    if (b->n == b->cap && (b->cap == STREAM_MAX_RECORDS || batch_grow(b) != 0))
        return 1; /* full (or out of memory): the next chunk goes on from here */
    Ringkv__Record *pb = &b->recs[b->n];
    ringkv__record__init(pb);
    pb->key.data = (uint8_t *)it->key;
    pb->key.len = it->klen;
    if (!it->tombstone) {
        pb->value.data = (uint8_t *)it->value;
        pb->value.len = it->vlen;
    }
    pb->tombstone = it->tombstone;
    pb->expires_ms = it->expires_ms;
    pb->hlc = it->version.hlc;
    memcpy(b->origins[b->n], it->version.origin, sizeof b->origins[b->n]);
    b->n++; /* pointers to recs and origins are set once they stop moving */
    b->bytes += it->klen + it->vlen + strlen(it->version.origin) + STREAM_RECORD_OVERHEAD;
    if (b->n == STREAM_MAX_RECORDS)
        return 1;
    return b->bytes >= b->max_bytes;
}

/* Fills b from (lo, hi] after `after`. Returns 0 with *done, or -1 with err. */
static int batch_fill(stream *st, batch *b, uint64_t lo, uint64_t hi, const uint8_t *after,
                      size_t afterlen, bool *done, char *err, size_t errlen)
{
    b->now_ms = server_now_ms(st->srv);
    long n = store_scan(st->srv->st, lo, hi, after, afterlen, STREAM_MAX_RECORDS * 2, batch_add, b,
                        done, err, errlen);
    if (n < 0)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        b->recs[i].origin = b->origins[i];
        b->ptrs[i] = &b->recs[i];
    }
    if (b->lastlen == 0 && afterlen) { /* nothing looked at: the cursor stays */
        memcpy(b->last, after, afterlen);
        b->lastlen = afterlen;
    }
    return 0;
}

/* Applies records off the wire to this pass's batch. Returns 0, or -1 with
 * err (the batch is then lost and the server fails what depended on it). */
static int apply_records(stream *st, Ringkv__Record **recs, size_t n, uint64_t *bytes, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        replica_record rec;
        if (replica_record_from_pb(recs[i], &rec) != 0) {
            snprintf(err, errlen, "a streamed record has an origin over %d bytes",
                     STORE_ORIGIN_MAX);
            return -1;
        }
        if (rec.tombstone) {
            rec.value = NULL;
            rec.vlen = 0;
        } else if (!rec.value) {
            rec.value = (const uint8_t *)""; /* protobuf-c: NULL for empty bytes */
        }
        if (replica_store(st->rep, &rec, NULL, err, errlen) != STORE_OK)
            return -1;
        *bytes += rec.klen + rec.vlen + strlen(rec.version.origin) + STREAM_RECORD_OVERHEAD;
    }
    server_schedule_pass_end(st->srv);
    return 0;
}

/* ---- the serving side: StreamPull and StreamPush ---- */

static void on_pull(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    stream *st = ctx;
    const Ringkv__StreamPull *rq = env->stream_pull;
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamChunk ch = RINGKV__STREAM_CHUNK__INIT;
    char err[256];
    batch b = {0};
    out.version = PEER_VERSION;
    out.body_case = RINGKV__ENVELOPE__BODY_STREAM_CHUNK;
    out.stream_chunk = &ch;
    ch.id = rq ? rq->id : 0;
    if (!rq || rq->after.len > STREAM_POS_MAX - 1 || (rq->after.len && rq->after.len < 8)) {
        ch.error = "malformed stream request: a resume position of 1..7 or over 511 bytes";
        peer_reply(pc, &out);
        return;
    }
    if (st->srv->stopping) {
        ch.error = "node is shutting down";
        peer_reply(pc, &out);
        return;
    }
    uint32_t max = rq->max_bytes;
    b.max_bytes = max < STREAM_MIN_CHUNK ? STREAM_MIN_CHUNK
                  : max > STREAM_MAX_CHUNK ? STREAM_MAX_CHUNK
                                           : max;
    bool done = false;
    if (batch_fill(st, &b, rq->lo, rq->hi, rq->after.data, rq->after.len, &done, err,
                   sizeof err) != 0) {
        ch.error = err;
    } else {
        ch.ok = true;
        ch.n_records = b.n;
        ch.records = b.ptrs;
        ch.next.data = b.last;
        ch.next.len = b.lastlen;
        ch.done = done;
        st->n.records_out += b.n;
        st->n.bytes_out += b.bytes;
    }
    peer_reply(pc, &out);
    batch_free(&b);
}

static void push_wait_free(push_wait *w)
{
    stream *st = w->st;
    if (w->prev)
        w->prev->next = w->next;
    else
        st->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    peer_conn_drop(w->pc);
    free(w);
}

static void send_push_ack(peer_conn *pc, uint64_t id, bool ok, const char *error)
{
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamPushAck ack = RINGKV__STREAM_PUSH_ACK__INIT;
    out.version = PEER_VERSION;
    out.body_case = RINGKV__ENVELOPE__BODY_STREAM_PUSH_ACK;
    out.stream_push_ack = &ack;
    ack.id = id;
    ack.ok = ok;
    ack.error = (char *)(ok || !error ? "" : error);
    if (peer_conn_is_open(pc))
        peer_reply(pc, &out);
}

static void on_push_committed(void *arg, bool ok, const char *err)
{
    push_wait *w = arg;
    send_push_ack(w->pc, w->id, ok, err ? err : "commit failed");
    push_wait_free(w);
}

static void on_push(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    stream *st = ctx;
    const Ringkv__StreamPush *p = env->stream_push;
    char err[256];
    if (!p) {
        send_push_ack(pc, 0, false, "malformed stream push");
        return;
    }
    if (st->srv->stopping) {
        send_push_ack(pc, p->id, false, "node is shutting down");
        return;
    }
    uint64_t bytes = 0;
    if (apply_records(st, p->records, p->n_records, &bytes, err, sizeof err) != 0) {
        send_push_ack(pc, p->id, false, err);
        return;
    }
    push_wait *w = calloc(1, sizeof *w);
    if (!w) {
        send_push_ack(pc, p->id, false, "out of memory");
        return;
    }
    *w = (push_wait){.st = st, .pc = pc, .id = p->id, .next = st->waits};
    if (st->waits)
        st->waits->prev = w;
    st->waits = w;
    peer_conn_hold(pc);
    st->n.records_in += p->n_records;
    st->n.bytes_in += bytes;
    if (server_after_commit(st->srv, on_push_committed, w) != 0) {
        send_push_ack(pc, p->id, false, "out of memory");
        push_wait_free(w);
    }
}

/* ---- tasks ---- */

static task *task_add(stream *st, task_kind kind, uint64_t lo, uint64_t hi)
{
    if (st->ntasks == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        task *t = realloc(st->tasks, cap * sizeof *t);
        if (!t)
            return NULL;
        st->tasks = t;
        st->cap = cap;
    }
    task *t = &st->tasks[st->ntasks++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->lo = lo;
    t->hi = hi;
    st->n.tasks_total++;
    return t;
}

static void task_peer(task *t, const char *id)
{
    for (size_t i = 0; i < t->npeer; i++)
        if (strcmp(t->peer[i], id) == 0)
            return;
    if (t->npeer < RANGES_MAX_N)
        snprintf(t->peer[t->npeer++], sizeof t->peer[0], "%s", id);
}

/* Drops the join and decommission tasks (a new plan follows) and makes
 * every answer in flight stale. */
static void drop_plan(stream *st)
{
    size_t k = 0;
    for (size_t i = 0; i < st->ntasks; i++)
        if (st->tasks[i].kind == TASK_REPAIR) {
            st->tasks[k] = st->tasks[i];
            st->tasks[k++].busy = false;
        }
    st->ntasks = k;
    st->gen++;
    st->next_task = 0;
    st->have_plan = false;
    st->n.tasks_total = st->ntasks;
    st->n.tasks_done = 0;
    for (size_t i = 0; i < st->ntasks; i++)
        st->n.tasks_done += st->tasks[i].done;
}

static bool all_done(const stream *st, task_kind kind)
{
    for (size_t i = 0; i < st->ntasks; i++)
        if (st->tasks[i].kind == kind && !st->tasks[i].done)
            return false;
    return true;
}

static size_t count_kind(const stream *st, task_kind kind, bool pending_only)
{
    size_t n = 0;
    for (size_t i = 0; i < st->ntasks; i++)
        n += st->tasks[i].kind == kind && (!pending_only || !st->tasks[i].done);
    return n;
}

static void plan_join(stream *st, const ring *cur, const ring *pend)
{
    drop_plan(st);
    range_move *mv;
    long n = ranges_gained(cur, pend, cluster_n_of(st->cl, pend), self_id(st), &mv);
    if (n < 0) {
        log_error("stream: out of memory planning the join");
        return;
    }
    for (long i = 0; i < n; i++) {
        task *t = task_add(st, TASK_JOIN, mv[i].lo, mv[i].hi);
        if (!t)
            break;
        for (size_t j = 0; j < mv[i].nsrc; j++)
            task_peer(t, mv[i].src[j]);
        for (size_t j = 0; j < mv[i].nold; j++)
            task_peer(t, mv[i].old[j]);
    }
    free(mv);
    st->have_plan = true;
    st->plan_cur = ring_epoch(cur);
    st->plan_pend = ring_epoch(pend);
    log_info("stream: joining: %ld range%s to stream in from %zu member%s", n, n == 1 ? "" : "s",
             ring_members(cur), ring_members(cur) == 1 ? "" : "s");
}

static void plan_decom(stream *st, const ring *cur, const ring *pend)
{
    drop_plan(st);
    range_handoff *h;
    long n = ranges_handoff(cur, pend, cluster_n_of(st->cl, pend), self_id(st), &h);
    if (n < 0) {
        log_error("stream: out of memory planning the decommission");
        return;
    }
    size_t tasks = 0;
    for (long i = 0; i < n; i++)
        for (size_t j = 0; j < h[i].ndst; j++) {
            task *t = task_add(st, TASK_DECOM, h[i].lo, h[i].hi);
            if (!t)
                break;
            task_peer(t, h[i].dst[j]);
            tasks++;
        }
    free(h);
    st->have_plan = true;
    st->plan_cur = ring_epoch(cur);
    st->plan_pend = ring_epoch(pend);
    log_info("stream: decommissioning: %zu range handover%s to %zu remaining member%s", tasks,
             tasks == 1 ? "" : "s", ring_members(pend), ring_members(pend) == 1 ? "" : "s");
}

/* A member was removed (not decommissioned): pull what this node gains
 * from the remaining owners. */
static void on_ring_change(void *arg, const cluster_ring_change *ch)
{
    stream *st = arg;
    if (!ch->member || ch->decommissioned || !st->decided || st->leaving ||
        self_role(st) != GOSSIP_ROLE_MEMBER || ring_members(ch->to) >= ring_members(ch->from) ||
        ring_find(ch->from, ch->member) < 0 || ring_find(ch->to, ch->member) >= 0)
        return;
    range_move *mv;
    long n = ranges_gained(ch->from, ch->to, cluster_n_of(st->cl, ch->to), self_id(st), &mv);
    if (n <= 0)
        return;
    for (long i = 0; i < n; i++) {
        task *t = task_add(st, TASK_REPAIR, mv[i].lo, mv[i].hi);
        if (!t)
            break;
        for (size_t j = 0; j < mv[i].nold; j++)
            if (strcmp(mv[i].old[j], ch->member) != 0 && strcmp(mv[i].old[j], self_id(st)) != 0)
                task_peer(t, mv[i].old[j]);
        if (t->npeer == 0)
            t->done = true; /* no copy left anywhere: nothing to fetch */
    }
    free(mv);
    log_info("stream: %s was removed: re-replicating %ld range%s from the remaining owners",
             ch->member, n, n == 1 ? "" : "s");
}

/* ---- running tasks ---- */

static void refill(stream *st, uint64_t now)
{
    uint64_t rate = st->cfg->stream_rate;
    if (rate == 0) {
        st->tokens = 1;
        return;
    }
    double cap = (double)(rate / 5 > 2 * st->cfg->stream_chunk ? rate / 5 : 2 * st->cfg->stream_chunk);
    if (now > st->refill_ms)
        st->tokens += (double)rate * (double)(now - st->refill_ms) / 1000.0;
    if (st->tokens > cap)
        st->tokens = cap;
    st->refill_ms = now;
}

static void account(stream *st, uint64_t bytes)
{
    if (st->cfg->stream_rate)
        st->tokens -= (double)bytes;
    st->win_bytes += bytes;
}

static void task_failed(stream *st, task *t, const char *why)
{
    t->busy = false;
    t->retry_at = mono_ms() + STREAM_RETRY_MS;
    const char *peer = t->npeer ? t->peer[t->peeri] : "?";
    if (t->npeer)
        t->peeri = (t->peeri + 1) % t->npeer;
    st->n.failures++;
    log_warn("stream: range (%016llx, %016llx] %s %s failed, retrying in %d ms: %s",
             (unsigned long long)t->lo, (unsigned long long)t->hi,
             t->kind == TASK_DECOM ? "to" : "from", peer, STREAM_RETRY_MS, why);
}

static void task_finished(stream *st, task *t)
{
    t->busy = false;
    if (!t->done) {
        t->done = true;
        st->n.tasks_done++;
    }
}

static void pump(stream *st);

static call *call_get(stream *st, size_t ti)
{
    for (size_t i = 0; i < STREAM_MAX_INFLIGHT; i++)
        if (!st->calls[i].used) {
            call *c = &st->calls[i];
            memset(c, 0, sizeof *c);
            *c = (call){.st = st, .used = true, .gen = st->gen, .task = ti};
            return c;
        }
    return NULL;
}

/* The task a call is for, or NULL (and the call released) when its plan
 * was replaced meanwhile. */
static task *call_task(call *c)
{
    stream *st = c->st;
    if (c->gen != st->gen || c->task >= st->ntasks) {
        c->used = false;
        return NULL;
    }
    return &st->tasks[c->task];
}

static void on_pull_committed(void *arg, bool ok, const char *err)
{
    call *c = arg;
    stream *st = c->st;
    task *t = call_task(c);
    if (!t)
        return;
    c->used = false;
    if (!ok) {
        task_failed(st, t, err ? err : "commit failed");
    } else {
        memcpy(t->after, c->next, c->nextlen);
        t->afterlen = c->nextlen;
        t->busy = false;
        if (c->last)
            task_finished(st, t);
    }
    pump(st);
}

static void on_chunk(void *arg, const char *from, const Ringkv__Envelope *env, const char *err)
{
    (void)from;
    call *c = arg;
    stream *st = c->st;
    task *t = call_task(c);
    if (!t)
        return;
    char why[256];
    const Ringkv__StreamChunk *ch = env ? env->stream_chunk : NULL;
    if (!env || !ch || !ch->ok || ch->next.len >= STREAM_POS_MAX) {
        c->used = false;
        task_failed(st, t,
                    !env  ? err
                    : !ch ? "unexpected answer"
                    : !ch->ok ? (ch->error[0] ? ch->error : "refused")
                              : "bad resume position");
        return;
    }
    uint64_t bytes = 0;
    if (apply_records(st, ch->records, ch->n_records, &bytes, why, sizeof why) != 0) {
        c->used = false;
        task_failed(st, t, why);
        return;
    }
    st->n.records_in += ch->n_records;
    st->n.bytes_in += bytes;
    account(st, bytes);
    if (ch->next.len)
        memcpy(c->next, ch->next.data, ch->next.len);
    c->nextlen = ch->next.len;
    c->last = ch->done;
    if (server_after_commit(st->srv, on_pull_committed, c) != 0) {
        c->used = false;
        task_failed(st, t, "out of memory");
    }
}

static void on_push_ack(void *arg, const char *from, const Ringkv__Envelope *env, const char *err)
{
    (void)from;
    call *c = arg;
    stream *st = c->st;
    task *t = call_task(c);
    if (!t)
        return;
    c->used = false;
    const Ringkv__StreamPushAck *ack = env ? env->stream_push_ack : NULL;
    if (!env || !ack || !ack->ok) {
        task_failed(st, t,
                    !env   ? err
                    : !ack ? "unexpected answer"
                           : (ack->error[0] ? ack->error : "refused"));
        return;
    }
    memcpy(t->after, c->next, c->nextlen);
    t->afterlen = c->nextlen;
    t->busy = false;
    if (c->last)
        task_finished(st, t);
    pump(st);
}

static void start_pull(stream *st, task *t, call *c)
{
    const char *src = NULL;
    for (size_t k = 0; k < t->npeer && !src; k++) {
        size_t i = (t->peeri + k) % t->npeer;
        if (strcmp(t->peer[i], self_id(st)) != 0 && cluster_is_up(st->cl, t->peer[i])) {
            t->peeri = i;
            src = t->peer[i];
        }
    }
    if (!src) {
        c->used = false;
        t->retry_at = mono_ms() + STREAM_RETRY_MS;
        return;
    }
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamPull rq = RINGKV__STREAM_PULL__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PULL;
    env.stream_pull = &rq;
    rq.lo = t->lo;
    rq.hi = t->hi;
    rq.after.data = t->after;
    rq.after.len = t->afterlen;
    rq.max_bytes = (uint32_t)st->cfg->stream_chunk;
    t->busy = true;
    if (replica_call(st->rep, src, &env, &rq.id, on_chunk, c) != 0) {
        c->used = false;
        task_failed(st, t, "out of memory");
    }
}

static void start_push(stream *st, task *t, call *c)
{
    const char *dst = t->peer[0];
    if (!cluster_is_up(st->cl, dst)) {
        c->used = false;
        t->retry_at = mono_ms() + STREAM_RETRY_MS;
        return;
    }
    batch b = {.max_bytes = st->cfg->stream_chunk};
    bool done = false;
    char err[256];
    if (batch_fill(st, &b, t->lo, t->hi, t->after, t->afterlen, &done, err, sizeof err) != 0) {
        batch_free(&b);
        c->used = false;
        task_failed(st, t, err);
        return;
    }
    if (b.n == 0 && done) {
        batch_free(&b);
        c->used = false;
        task_finished(st, t);
        return;
    }
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamPush p = RINGKV__STREAM_PUSH__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PUSH;
    env.stream_push = &p;
    p.n_records = b.n;
    p.records = b.ptrs;
    memcpy(c->next, b.last, b.lastlen);
    c->nextlen = b.lastlen;
    c->last = done;
    t->busy = true;
    st->n.records_out += b.n;
    st->n.bytes_out += b.bytes;
    account(st, b.bytes);
    if (replica_call(st->rep, dst, &env, &p.id, on_push_ack, c) != 0) {
        c->used = false;
        task_failed(st, t, "out of memory");
    }
    batch_free(&b);
}

/* Starts chunks while there are free slots, ready tasks and budget. */
static void pump(stream *st)
{
    if (st->stopping || st->srv->stopping || !st->rep)
        return;
    uint64_t now = mono_ms();
    refill(st, now);
    for (size_t tries = 0; tries < st->ntasks && st->tokens > 0; tries++) {
        size_t i = st->next_task++ % st->ntasks;
        task *t = &st->tasks[i];
        if (t->done || t->busy || t->retry_at > now)
            continue;
        call *c = call_get(st, i);
        if (!c)
            return;
        if (t->kind == TASK_DECOM)
            start_push(st, t, c);
        else
            start_pull(st, t, c);
    }
}

/* ---- entering and leaving the ring ---- */

static void enter_ring(stream *st, const char *why)
{
    char err[256];
    if (store_set_ring_member(st->srv->st, true, err, sizeof err) != 0)
        log_error("stream: cannot record ring membership in the data dir: %s", err);
    if (st->m)
        membership_set_role(st->m, GOSSIP_ROLE_MEMBER);
    st->decided = true;
    log_info("stream: this node is now a ring member: %s", why);
}

static bool has_other_seeds(stream *st)
{
    const char *seeds = st->cfg->seeds;
    const char *self = st->m ? membership_peer_addr(st->m) : "";
    while (*seeds) {
        const char *end = strchr(seeds, ',');
        size_t len = end ? (size_t)(end - seeds) : strlen(seeds);
        while (len && (*seeds == ' ' || *seeds == '\n' || *seeds == '\t'))
            seeds++, len--;
        while (len && (seeds[len - 1] == ' ' || seeds[len - 1] == '\n' || seeds[len - 1] == '\t'))
            len--;
        if (len && !(strlen(self) == len && memcmp(self, seeds, len) == 0) &&
            !(strlen(st->cfg->peer) == len && memcmp(st->cfg->peer, seeds, len) == 0))
            return true;
        if (!end)
            break;
        seeds = end + 1;
    }
    return false;
}

/* How a node without ring membership in its data dir enters the ring. */
static void decide(stream *st)
{
    if (!st->m || store_ring_member(st->srv->st) || self_role(st) == GOSSIP_ROLE_MEMBER) {
        st->decided = true;
        return;
    }
    const ring *cur = cluster_ring(st->cl);
    bool others = ring_members(cur) > (ring_find(cur, self_id(st)) >= 0 ? 1u : 0u);
    if (others) {
        if (!st->cfg->bootstrap) {
            enter_ring(st, "[rebalance] bootstrap = no: entering without streaming (anti-entropy, "
                           "hinted handoff and read repair fill it)");
            return;
        }
        st->decided = true;
        return;
    }
    if (!has_other_seeds(st)) {
        enter_ring(st, "no other seed: founding a new ring");
        return;
    }
    size_t n;
    const gossip_member *gm = membership_members(st->m, &n);
    bool contact = false, smallest = true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(gm[i].id, self_id(st)) == 0 || gm[i].state != GOSSIP_ALIVE)
            continue;
        contact = true;
        if (strcmp(gm[i].id, self_id(st)) < 0)
            smallest = false;
    }
    if (contact && smallest)
        enter_ring(st, "nobody is on the ring yet and this node has the smallest id: founding it");
    else if (!contact && mono_ms() - st->start_ms > STREAM_FOUNDER_WAIT_MS)
        enter_ring(st, "no seed answered within 5 s: founding a new ring (it merges with the "
                       "others when they appear)");
}

static void finish_decom(stream *st)
{
    char err[256];
    st->stopping = true;
    if (store_set_ring_member(st->srv->st, false, err, sizeof err) != 0)
        log_error("stream: cannot clear ring membership in the data dir: %s", err);
    log_info("stream: decommissioned: every range handed over (%llu records, %llu bytes); "
             "leaving the cluster and stopping",
             (unsigned long long)st->n.records_out, (unsigned long long)st->n.bytes_out);
    kill(getpid(), SIGTERM); /* the graceful stop: leave, drain, close */
}

/* ---- purging ranges given away ---- */

static void purge_step(stream *st, uint64_t now)
{
    const ring *cur = cluster_ring(st->cl);
    long self = ring_find(cur, self_id(st));
    if (self < 0 || cluster_pending(st->cl) || self_role(st) != GOSSIP_ROLE_MEMBER ||
        count_kind(st, TASK_REPAIR, true))
        return;
    uint64_t e = ring_epoch(cur);
    if (e != st->purge_epoch) {
        st->purge_epoch = e;
        st->purge_since = now;
        st->purge_done = false;
        free(st->pr);
        st->pr = NULL;
        st->npr = st->pri = 0;
    }
    if (st->purge_done || now - st->purge_since < st->cfg->purge_grace_ms)
        return;
    if (!st->pr) {
        st->npr = ranges_build(cur, cluster_n(st->cl), &st->pr);
        st->pri = 0;
        if (st->npr < 0) {
            st->npr = 0;
            return;
        }
    }
    while (st->pri < st->npr && range_has(&st->pr[st->pri], (uint32_t)self))
        st->pri++;
    if (st->pri >= st->npr) {
        st->purge_done = true;
        free(st->pr);
        st->pr = NULL;
        return;
    }
    char err[256];
    long d = store_drop_range(st->srv->st, st->pr[st->pri].lo, st->pr[st->pri].hi,
                              STREAM_PURGE_BUDGET, err, sizeof err);
    if (d < 0) {
        log_warn("stream: purging a range given away failed (retried later): %s", err);
        server_batch_failed(st->srv, STORE_ERR_IO, err);
        return;
    }
    if (d > 0) {
        st->n.purged += (uint64_t)d;
        log_debug("stream: purged %ld records of a range this node no longer replicates", d);
    }
    if (d < STREAM_PURGE_BUDGET)
        st->pri++;
    server_schedule_pass_end(st->srv);
}

/* ---- the tick ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stream *st = arg;
    if (st->stopping || st->srv->stopping)
        return;
    uint64_t now = mono_ms();
    if (now - st->win_start >= 1000) {
        st->n.rate_bps = st->win_bytes * 1000 / (now - st->win_start);
        st->win_bytes = 0;
        st->win_start = now;
    }
    if (!st->decided)
        decide(st);
    gossip_role role = self_role(st);
    const ring *cur = cluster_ring(st->cl), *pend = cluster_pending(st->cl);
    if (st->decided && role == GOSSIP_ROLE_JOINING && !st->leaving) {
        if (ring_members(cur) == 0) {
            enter_ring(st, "the ring emptied while joining: founding it");
        } else if (pend && (!st->have_plan || st->plan_cur != ring_epoch(cur) ||
                            st->plan_pend != ring_epoch(pend))) {
            plan_join(st, cur, pend);
        } else if (st->have_plan && all_done(st, TASK_JOIN)) {
            char why[96];
            snprintf(why, sizeof why, "joined after streaming %llu records",
                     (unsigned long long)st->n.records_in);
            st->have_plan = false;
            enter_ring(st, why);
        }
    }
    if (st->leaving) {
        if (pend && (!st->have_plan || st->plan_cur != ring_epoch(cur) ||
                     st->plan_pend != ring_epoch(pend)))
            plan_decom(st, cur, pend);
        else if (st->have_plan && all_done(st, TASK_DECOM)) {
            finish_decom(st);
            return;
        }
    }
    /* Finished repairs go; so do join tasks once a member. */
    bool idle = true;
    for (size_t i = 0; i < STREAM_MAX_INFLIGHT; i++)
        idle &= !st->calls[i].used;
    if (role == GOSSIP_ROLE_MEMBER && !st->leaving && st->ntasks && idle &&
        !count_kind(st, TASK_REPAIR, true)) {
        st->ntasks = 0;
        st->n.tasks_total = st->n.tasks_done = 0;
        st->gen++;
    }
    if (st->ntasks)
        pump(st);
    else if (st->decided && !st->leaving)
        purge_step(st, now);
}

/* ---- the API ---- */

static const int routed[] = {RINGKV__ENVELOPE__BODY_STREAM_PULL, RINGKV__ENVELOPE__BODY_STREAM_PUSH};

stream *stream_new(server *srv, cluster *cl, replica *rep, membership *m, char *err,
                   size_t errlen)
{
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->srv = srv;
    st->cl = cl;
    st->rep = rep;
    st->m = m;
    st->cfg = srv->cfg;
    st->start_ms = st->refill_ms = st->win_start = mono_ms();
    st->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, st);
    if (!st->tick) {
        snprintf(err, errlen, "out of memory");
        free(st);
        return NULL;
    }
    struct timeval tv = {0, STREAM_TICK_MS * 1000};
    event_add(st->tick, &tv);
    if (srv->peer && (peer_route(srv->peer, routed[0], on_pull, st) != 0 ||
                      peer_route(srv->peer, routed[1], on_push, st) != 0)) {
        snprintf(err, errlen, "the peer port has no room for streaming's messages");
        stream_free(st);
        return NULL;
    }
    cluster_on_ring_change(cl, on_ring_change, st);
    decide(st);
    return st;
}

void stream_free(stream *st)
{
    if (!st)
        return;
    if (st->srv->peer)
        for (size_t i = 0; i < sizeof routed / sizeof routed[0]; i++)
            peer_route(st->srv->peer, routed[i], NULL, NULL);
    while (st->waits) {
        server_after_commit_cancel(st->srv, on_push_committed, st->waits);
        push_wait_free(st->waits);
    }
    for (size_t i = 0; i < STREAM_MAX_INFLIGHT; i++)
        server_after_commit_cancel(st->srv, on_pull_committed, &st->calls[i]);
    event_free(st->tick);
    free(st->tasks);
    free(st->pr);
    free(st);
}

int stream_decommission(stream *st, char *err, size_t errlen)
{
    if (!st->m) {
        snprintf(err, errlen, "this node runs without membership ([node] peer is empty)");
        return -1;
    }
    if (st->leaving || self_role(st) == GOSSIP_ROLE_LEAVING) {
        snprintf(err, errlen, "this node is already being decommissioned");
        return -1;
    }
    if (self_role(st) != GOSSIP_ROLE_MEMBER || ring_find(cluster_ring(st->cl), self_id(st)) < 0) {
        snprintf(err, errlen, "this node is not a ring member yet (it is %s)",
                 cluster_self_role(st->cl));
        return -1;
    }
    if (ring_members(cluster_ring(st->cl)) < 2) {
        snprintf(err, errlen, "this node is the only ring member: nobody could take its data");
        return -1;
    }
    if (cluster_pending(st->cl)) {
        snprintf(err, errlen, "the ring is already changing (a node is joining or leaving); "
                              "try again when it is done");
        return -1;
    }
    st->leaving = true;
    drop_plan(st);
    membership_set_role(st->m, GOSSIP_ROLE_LEAVING);
    log_info("stream: decommission requested: handing this node's ranges over");
    return 0;
}

void stream_get_stats(stream *st, stream_stats *out)
{
    *out = st->n;
    gossip_role role = self_role(st);
    out->role = role == GOSSIP_ROLE_JOINING ? "joining"
                : role == GOSSIP_ROLE_LEAVING ? "leaving"
                                              : "member";
    out->activity = st->leaving                                        ? "decommissioning"
                    : role == GOSSIP_ROLE_JOINING && st->decided       ? "joining"
                    : role == GOSSIP_ROLE_JOINING                      ? "waiting"
                    : count_kind(st, TASK_REPAIR, true)                ? "repairing"
                    : st->pr && !st->purge_done                        ? "purging"
                                                                       : "idle";
    const ring *cur = cluster_ring(st->cl);
    long self = ring_find(cur, self_id(st));
    out->ranges_owned = 0;
    out->share_ppm = 0;
    if (self < 0)
        return;
    range *g;
    long n = ranges_build(cur, cluster_n(st->cl), &g);
    long double share = 0;
    for (long i = 0; i < n; i++)
        if (range_has(&g[i], (uint32_t)self)) {
            out->ranges_owned++;
            uint64_t span = g[i].hi - g[i].lo;
            share += span ? (long double)span : 18446744073709551616.0L;
        }
    free(g);
    out->share_ppm = (uint64_t)(share / 18446744073709551616.0L * 1e6L + 0.5L);
}
