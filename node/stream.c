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
#include "stream_int.h"

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

static uint64_t refutations(stream *st)
{
    membership_stats ms;
    if (!st->m)
        return 0;
    membership_get_stats(st->m, &ms);
    return ms.gossip.refutations;
}

/* The plan now follows these two rings. */
static void plan_made(stream *st, const ring *cur, const ring *pend)
{
    st->have_plan = true;
    st->plan_cur = ring_epoch(cur);
    st->plan_pend = ring_epoch(pend);
    st->plan_refutations = refutations(st);
}

/* While this node was taken for dead, coordinators stopped sending it the
 * writes of its future ranges (cluster_write_extra): a joining node that
 * had to refute a suspicion streams everything again. */
static bool join_missed_writes(stream *st)
{
    return refutations(st) != st->plan_refutations;
}

/* A member came back up. Writes skipped it while it was down, so a leaving
 * node hands it every range again from the start. */
static void on_member_up(void *arg, const char *id)
{
    stream *st = arg;
    if (!st->leaving)
        return;
    size_t n = 0;
    for (size_t i = 0; i < st->ntasks; i++) {
        task *t = &st->tasks[i];
        if (t->kind != TASK_DECOM || strcmp(t->peer[0], id) != 0)
            continue;
        if (t->done && st->n.tasks_done)
            st->n.tasks_done--;
        t->done = false;
        t->afterlen = 0;
        n++;
    }
    if (n) {
        st->gen++; /* answers in flight for the old cursors are dropped */
        for (size_t i = 0; i < st->ntasks; i++)
            st->tasks[i].busy = false;
        log_info("stream: %s is back up: handing it %zu range%s again from the start", id, n,
                 n == 1 ? "" : "s");
    }
}

static void plan_join(stream *st, const ring *cur, const ring *pend)
{
    drop_plan(st);
    range_move *mv;
    long n = ranges_gained(cur, pend, cluster_n_of(st->cl, pend), stream_self_id(st), &mv);
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
    plan_made(st, cur, pend);
    log_info("stream: joining: %ld range%s to stream in from %zu member%s", n, n == 1 ? "" : "s",
             ring_members(cur), ring_members(cur) == 1 ? "" : "s");
}

static void plan_decom(stream *st, const ring *cur, const ring *pend)
{
    drop_plan(st);
    range_handoff *h;
    long n = ranges_handoff(cur, pend, cluster_n_of(st->cl, pend), stream_self_id(st), &h);
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
    plan_made(st, cur, pend);
    log_info("stream: decommissioning: %zu range handover%s to %zu remaining member%s", tasks,
             tasks == 1 ? "" : "s", ring_members(pend), ring_members(pend) == 1 ? "" : "s");
}

/* A member was removed (not decommissioned): pull what this node gains
 * from the remaining owners. */
static void on_ring_change(void *arg, const cluster_ring_change *ch)
{
    stream *st = arg;
    if (!ch->member || ch->decommissioned || !st->decided || st->leaving ||
        stream_self_role(st) != GOSSIP_ROLE_MEMBER ||
        ring_members(ch->to) >= ring_members(ch->from) || ring_find(ch->from, ch->member) < 0 ||
        ring_find(ch->to, ch->member) >= 0)
        return;
    range_move *mv;
    long n = ranges_gained(ch->from, ch->to, cluster_n_of(st->cl, ch->to), stream_self_id(st), &mv);
    if (n <= 0)
        return;
    for (long i = 0; i < n; i++) {
        task *t = task_add(st, TASK_REPAIR, mv[i].lo, mv[i].hi);
        if (!t)
            break;
        for (size_t j = 0; j < mv[i].nold; j++)
            if (strcmp(mv[i].old[j], ch->member) != 0 &&
                strcmp(mv[i].old[j], stream_self_id(st)) != 0)
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
    double cap =
        (double)(rate / 5 > 2 * st->cfg->stream_chunk ? rate / 5 : 2 * st->cfg->stream_chunk);
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
    t->retry_at = stream_mono_ms() + STREAM_RETRY_MS;
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
                    !env      ? err
                    : !ch     ? "unexpected answer"
                    : !ch->ok ? (ch->error[0] ? ch->error : "refused")
                              : "bad resume position");
        return;
    }
    uint64_t bytes = 0;
    if (stream_apply_records(st, ch->records, ch->n_records, &bytes, why, sizeof why) != 0) {
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
        if (strcmp(t->peer[i], stream_self_id(st)) != 0 && cluster_is_up(st->cl, t->peer[i])) {
            t->peeri = i;
            src = t->peer[i];
        }
    }
    if (!src) {
        c->used = false;
        t->retry_at = stream_mono_ms() + STREAM_RETRY_MS;
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
        t->retry_at = stream_mono_ms() + STREAM_RETRY_MS;
        return;
    }
    batch b = {.max_bytes = st->cfg->stream_chunk};
    bool done = false;
    char err[256];
    if (stream_batch_fill(st, &b, t->lo, t->hi, t->after, t->afterlen, &done, err, sizeof err) !=
        0) {
        stream_batch_free(&b);
        c->used = false;
        task_failed(st, t, err);
        return;
    }
    if (b.n == 0 && done) {
        stream_batch_free(&b);
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
    stream_batch_free(&b);
}

/* Starts chunks while there are free slots, ready tasks and budget. */
static void pump(stream *st)
{
    if (st->stopping || st->srv->stopping || !st->rep)
        return;
    uint64_t now = stream_mono_ms();
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
    if (!st->m || store_ring_member(st->srv->st) || stream_self_role(st) == GOSSIP_ROLE_MEMBER) {
        st->decided = true;
        return;
    }
    const ring *cur = cluster_ring(st->cl);
    bool others = ring_members(cur) > (ring_find(cur, stream_self_id(st)) >= 0 ? 1u : 0u);
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
        if (strcmp(gm[i].id, stream_self_id(st)) == 0 || gm[i].state != GOSSIP_ALIVE)
            continue;
        contact = true;
        if (strcmp(gm[i].id, stream_self_id(st)) < 0)
            smallest = false;
    }
    if (contact && smallest)
        enter_ring(st, "nobody is on the ring yet and this node has the smallest id: founding it");
    else if (!contact && stream_mono_ms() - st->start_ms > STREAM_FOUNDER_WAIT_MS)
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
    long self = ring_find(cur, stream_self_id(st));
    if (self < 0 || cluster_pending(st->cl) || stream_self_role(st) != GOSSIP_ROLE_MEMBER ||
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
    uint64_t now = stream_mono_ms();
    if (now - st->win_start >= 1000) {
        st->n.rate_bps = st->win_bytes * 1000 / (now - st->win_start);
        st->win_bytes = 0;
        st->win_start = now;
    }
    if (!st->decided)
        decide(st);
    gossip_role role = stream_self_role(st);
    const ring *cur = cluster_ring(st->cl), *pend = cluster_pending(st->cl);
    if (st->decided && role == GOSSIP_ROLE_JOINING && !st->leaving) {
        if (ring_members(cur) == 0) {
            enter_ring(st, "the ring emptied while joining: founding it");
        } else if (pend && (!st->have_plan || st->plan_cur != ring_epoch(cur) ||
                            st->plan_pend != ring_epoch(pend) || join_missed_writes(st))) {
            if (st->have_plan && join_missed_writes(st))
                log_info("stream: this node was suspected while joining and may have missed "
                         "writes: streaming every range again");
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

static const int routed[] = {RINGKV__ENVELOPE__BODY_STREAM_PULL,
                             RINGKV__ENVELOPE__BODY_STREAM_PUSH};

stream *stream_new(server *srv, cluster *cl, replica *rep, membership *m, char *err, size_t errlen)
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
    st->start_ms = st->refill_ms = st->win_start = stream_mono_ms();
    st->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, st);
    if (!st->tick) {
        snprintf(err, errlen, "out of memory");
        free(st);
        return NULL;
    }
    struct timeval tv = {0, STREAM_TICK_MS * 1000};
    event_add(st->tick, &tv);
    if (srv->peer && (peer_route(srv->peer, routed[0], stream_on_pull, st) != 0 ||
                      peer_route(srv->peer, routed[1], stream_on_push, st) != 0)) {
        snprintf(err, errlen, "the peer port has no room for streaming's messages");
        stream_free(st);
        return NULL;
    }
    cluster_on_ring_change(cl, on_ring_change, st);
    cluster_on_up(cl, on_member_up, st);
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
        server_after_commit_cancel(st->srv, stream_on_push_committed, st->waits);
        stream_push_wait_free(st->waits);
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
        snprintf(err, errlen, "membership is off (no [node] peer)");
        return -1;
    }
    if (st->leaving || stream_self_role(st) == GOSSIP_ROLE_LEAVING) {
        snprintf(err, errlen, "this node is already being decommissioned");
        return -1;
    }
    if (stream_self_role(st) != GOSSIP_ROLE_MEMBER ||
        ring_find(cluster_ring(st->cl), stream_self_id(st)) < 0) {
        snprintf(err, errlen, "this node is not a ring member yet (it is %s)",
                 cluster_self_role(st->cl));
        return -1;
    }
    if (ring_members(cluster_ring(st->cl)) < 2) {
        snprintf(err, errlen, "this node is the only ring member: nobody could take its data");
        return -1;
    }
    if (cluster_pending(st->cl)) {
        snprintf(err, errlen,
                 "the ring is already changing (a node is joining or leaving); "
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
    gossip_role role = stream_self_role(st);
    out->role = role == GOSSIP_ROLE_JOINING   ? "joining"
                : role == GOSSIP_ROLE_LEAVING ? "leaving"
                                              : "member";
    out->activity = st->leaving                                  ? "decommissioning"
                    : role == GOSSIP_ROLE_JOINING && st->decided ? "joining"
                    : role == GOSSIP_ROLE_JOINING                ? "waiting"
                    : count_kind(st, TASK_REPAIR, true)          ? "repairing"
                    : st->pr && !st->purge_done                  ? "purging"
                                                                 : "idle";
    const ring *cur = cluster_ring(st->cl);
    long self = ring_find(cur, stream_self_id(st));
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
