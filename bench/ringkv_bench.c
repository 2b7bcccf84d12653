/* ringkv-bench: a load generator for ringkv on libringkv's async API.
 *
 * One thread, one libevent loop, C connections spread over the given nodes,
 * each keeping up to P requests in flight. Closed loop by default (a request
 * goes out when one comes back); with --rate, open loop: request i is due at
 * start + i/rate and its latency is counted from that intended time, so a
 * stalled node shows up as latency instead of as fewer requests sent
 * (coordinated omission). Latencies go into HDR-style histograms
 * (histogram.c); keys are uniform or YCSB's scrambled zipfian (keygen.c).
 * This file is the run loop; options.c reads the command line and report.c
 * prints the results.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "bench.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timeval tv_ns(uint64_t ns)
{
    return (struct timeval){.tv_sec = (time_t)(ns / 1000000000u),
                            .tv_usec = (suseconds_t)(ns % 1000000000u / 1000)};
}

static void pump(bench_conn *c);

/* ---- ending ---- */

static int all_idle(const bench *b)
{
    for (int i = 0; i < b->o.connections; i++)
        if (b->conns[i].inflight)
            return 0;
    return 1;
}

static void finish_run(bench *b)
{
    if (b->phase == BENCH_DONE)
        return;
    if (!b->end_ns)
        b->end_ns = now_ns();
    b->phase = BENCH_DONE;
    event_base_loopbreak(b->base);
}

/* Stops issuing; the run ends when the last request in flight is answered
 * (each has a timeout, so that is bounded). */
static void begin_drain(bench *b)
{
    if (b->phase != BENCH_RUN)
        return;
    b->phase = BENCH_DRAIN;
    b->end_ns = now_ns();
    for (int i = 0; i < b->o.connections; i++)
        if (b->conns[i].timer)
            event_del(b->conns[i].timer);
    if (all_idle(b))
        finish_run(b);
}

static void note_error(bench *b, rkv_status st, const char *why)
{
    b->errors[(unsigned)st < BENCH_NSTATUS ? st : BENCH_NSTATUS - 1]++;
    b->total_errors++;
    b->interval_errors++;
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s: %s", rkv_status_name(st), why);
}

/* ---- the progress line and the timeline ---- */

static void record_tick(bench *b, uint64_t now)
{
    double secs = (double)(now - b->last_tick_ns) / 1e9;
    if (secs <= 0)
        return;
    if (b->nticks == b->capticks) {
        size_t cap = b->capticks ? b->capticks * 2 : 64;
        bench_tick *t = realloc(b->ticks, cap * sizeof *t);
        if (!t)
            return;
        b->ticks = t;
        b->capticks = cap;
    }
    bench_tick *t = &b->ticks[b->nticks++];
    t->t = (double)(now - b->start_ns) / 1e9;
    t->ops_per_sec = (double)b->interval_ops / secs;
    t->p99_us = (double)hist_percentile(&b->interval, 99) / 1e3;
    t->errors = b->interval_errors;
    if (!b->o.quiet)
        fprintf(stderr,
                "[%5.1fs] %10.0f ops/s   p99 %8.3f ms (so far %.3f ms)   errors %" PRIu64 "\n",
                t->t, t->ops_per_sec, t->p99_us / 1e3, (double)hist_percentile(&b->all, 99) / 1e6,
                b->total_errors);
    hist_reset(&b->interval);
    b->interval_ops = b->interval_errors = 0;
    b->last_tick_ns = now;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bench *b = arg;
    if (b->phase == BENCH_RUN)
        record_tick(b, now_ns());
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    begin_drain(arg);
}

/* ---- requests ---- */

static void key_of(bench *b, uint64_t k, char *buf, size_t len, size_t *klen)
{
    (void)b;
    /* The key format of redis-benchmark -r, so both see alike keys. */
    int n = snprintf(buf, len, "key:%012" PRIu64, k);
    *klen = (size_t)n;
}

static void on_reply(rkv_async *ac, const rkv_async_reply *r, void *arg);

/* Sends one request on c. Returns 0, or -1 when the connection refused it
 * (counted as an error; the caller stops pumping c for now). */
static int send_op(bench_conn *c, int op, uint64_t key, uint64_t t0)
{
    bench *b = c->b;
    bench_slot *s = &c->slots[c->free_slot];
    char kbuf[32];
    size_t klen;
    key_of(b, key, kbuf, sizeof kbuf, &klen);
    rkv_status st = op == BENCH_GET ? rkv_async_get(c->ac, kbuf, klen, on_reply, s)
                                    : rkv_async_put(c->ac, kbuf, klen, b->value, b->o.value_size, 0,
                                                    on_reply, s);
    if (st != RKV_OK) {
        if (b->phase == BENCH_PRELOAD)
            b->preload_errors++;
        else
            note_error(b, st, rkv_async_errstr(c->ac));
        if (st == RKV_ERR_IO)
            c->dead = 1;
        return -1;
    }
    c->free_slot = s->next_free;
    s->t0 = t0;
    s->op = (uint8_t)op;
    c->inflight++;
    return 0;
}

static int pick_op(bench *b)
{
    if (b->o.read_ratio >= 1)
        return BENCH_GET;
    if (b->o.read_ratio <= 0)
        return BENCH_PUT;
    return keygen_double(&b->rng) < b->o.read_ratio ? BENCH_GET : BENCH_PUT;
}

static uint64_t pick_key(bench *b)
{
    return b->o.zipfian ? keygen_zipf_next(&b->zipf, &b->rng) : keygen_below(&b->rng, b->o.keys);
}

/* Open loop: when the j-th request of connection c is due. Connections
 * interleave, so the whole bench sends one request every 1/rate s. */
static uint64_t due_ns(const bench_conn *c, uint64_t j)
{
    const bench *b = c->b;
    double idx = (double)j * b->o.connections + c->idx;
    return b->start_ns + (uint64_t)(idx * 1e9 / b->o.rate);
}

static void pump(bench_conn *c)
{
    bench *b = c->b;
    while (!c->dead && c->inflight < b->o.pipeline) {
        if (b->phase == BENCH_PRELOAD) {
            if (b->preload_next >= b->o.keys)
                return;
            if (send_op(c, BENCH_PUT, b->preload_next, now_ns()) < 0)
                return;
            b->preload_next++;
            continue;
        }
        if (b->phase != BENCH_RUN)
            return;
        uint64_t t0 = now_ns();
        if (b->o.rate > 0) {
            if (b->o.ops && (double)c->sent * b->o.connections + c->idx >= (double)b->o.ops)
                return;
            uint64_t due = due_ns(c, c->sent);
            if (due > t0) {
                struct timeval tv = tv_ns(due - t0);
                event_add(c->timer, &tv);
                return;
            }
            t0 = due; /* late: the wait counts as latency */
        } else if (b->o.ops && b->issued >= b->o.ops) {
            return;
        }
        c->sent++;
        b->issued++;
        if (send_op(c, pick_op(b), pick_key(b), t0) < 0)
            return;
    }
}

static void on_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void start_run(bench *b)
{
    b->phase = BENCH_RUN;
    b->start_ns = b->last_tick_ns = now_ns();
    struct timeval one = {1, 0};
    event_add(b->tick_timer, &one);
    if (b->o.duration_s > 0) {
        struct timeval tv = tv_ns((uint64_t)(b->o.duration_s * 1e9));
        event_add(b->stop_timer, &tv);
    }
    for (int i = 0; i < b->o.connections; i++)
        pump(&b->conns[i]);
}

static void start_preload(bench *b)
{
    b->phase = BENCH_PRELOAD;
    b->preload_start_ns = now_ns();
    if (!b->o.quiet)
        fprintf(stderr, "preloading %" PRIu64 " keys of %zu bytes...\n", b->o.keys,
                b->o.value_size);
    for (int i = 0; i < b->o.connections; i++)
        pump(&b->conns[i]);
}

static void after_reply(bench *b, bench_conn *c)
{
    switch (b->phase) {
    case BENCH_PRELOAD:
        if (b->preload_done == b->o.keys) {
            b->preload_end_ns = now_ns();
            start_run(b);
        } else {
            pump(c);
        }
        break;
    case BENCH_RUN:
        pump(c);
        if (b->o.ops && b->completed >= b->o.ops)
            begin_drain(b);
        else if (b->nlive == 0)
            begin_drain(b);
        break;
    case BENCH_DRAIN:
        if (all_idle(b))
            finish_run(b);
        break;
    default:
        break;
    }
}

static void on_reply(rkv_async *ac, const rkv_async_reply *r, void *arg)
{
    (void)ac;
    bench_slot *s = arg;
    bench_conn *c = s->c;
    bench *b = c->b;
    uint64_t now = now_ns();
    c->inflight--;
    s->next_free = c->free_slot;
    c->free_slot = (int)(s - c->slots);
    if (b->phase == BENCH_DONE)
        return; /* teardown failing what a broken-off run left in flight */

    if (b->phase == BENCH_PRELOAD) {
        b->preload_done++;
        if (r->status != RKV_OK) {
            b->preload_errors++;
            if (!b->first_error[0])
                snprintf(b->first_error, sizeof b->first_error, "preload %s: %s",
                         rkv_status_name(r->status), r->errstr);
        }
    } else {
        b->completed++;
        if (r->status == RKV_OK || r->status == RKV_NOT_FOUND) {
            uint64_t lat = now > s->t0 ? now - s->t0 : 0;
            hist_record(&b->lat[s->op], lat);
            hist_record(&b->all, lat);
            hist_record(&b->interval, lat);
            b->ok[s->op]++;
            b->interval_ops++;
            b->not_found += r->status == RKV_NOT_FOUND;
        } else {
            note_error(b, r->status, r->errstr);
        }
    }
    after_reply(b, c);
}

static void on_ping(rkv_async *ac, const rkv_async_reply *r, void *arg)
{
    (void)ac;
    bench_conn *c = arg;
    bench *b = c->b;
    if (b->phase == BENCH_DONE)
        return;
    if (r->status != RKV_OK) {
        fprintf(stderr, "ringkv-bench: cannot reach %s: %s\n", c->addr, r->errstr);
        b->exit_code = 1;
        b->phase = BENCH_DONE;
        event_base_loopbreak(b->base);
        return;
    }
    if (++b->connected < b->o.connections || b->phase != BENCH_CONNECT)
        return;
    if (b->o.preload && b->o.keys)
        start_preload(b);
    else
        start_run(b);
}

static void on_close(rkv_async *ac, rkv_status st, const char *why, void *arg)
{
    (void)ac;
    (void)st;
    bench_conn *c = arg;
    bench *b = c->b;
    c->dead = 1;
    b->nlive--;
    if (!b->o.quiet)
        fprintf(stderr, "ringkv-bench: connection %d: %s\n", c->idx, why);
    if (b->nlive == 0 && b->phase == BENCH_RUN)
        begin_drain(b);
    else if (b->nlive == 0 && b->phase == BENCH_PRELOAD) {
        b->exit_code = 1;
        finish_run(b);
    }
}

/* ---- main ---- */

/* --consistency's word as the library's level ("default": the node's). */
static rkv_consistency consistency_of(const char *s)
{
    if (strcmp(s, "one") == 0)
        return RKV_CONSISTENCY_ONE;
    if (strcmp(s, "quorum") == 0)
        return RKV_CONSISTENCY_QUORUM;
    if (strcmp(s, "all") == 0)
        return RKV_CONSISTENCY_ALL;
    return RKV_CONSISTENCY_DEFAULT;
}

static int setup(bench *b)
{
    const bench_opts *o = &b->o;
    keygen_seed(&b->rng, o->seed);
    if (o->zipfian)
        keygen_zipf_init(&b->zipf, o->keys);
    b->value = malloc(o->value_size ? o->value_size : 1);
    if (!b->value)
        return -1;
    for (size_t i = 0; i < o->value_size; i++)
        b->value[i] = (char)('a' + keygen_below(&b->rng, 26));
    hist_reset(&b->all);
    hist_reset(&b->interval);
    for (int i = 0; i < BENCH_NOPS; i++)
        hist_reset(&b->lat[i]);

    /* A precise timer: open-loop send times are microseconds apart. */
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    b->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    if (!b->base)
        return -1;
    b->stop_timer = evtimer_new(b->base, on_stop, b);
    b->tick_timer = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    b->conns = calloc((size_t)o->connections, sizeof *b->conns);
    if (!b->stop_timer || !b->tick_timer || !b->conns)
        return -1;

    rkv_async_options ao = {.connect_timeout_ms = 5000,
                            .request_timeout_ms = o->timeout_ms,
                            .max_output_bytes = (size_t)64 << 20};
    for (int i = 0; i < o->connections; i++) {
        bench_conn *c = &b->conns[i];
        char err[300];
        c->b = b;
        c->idx = i;
        c->addr = o->addrs[i % o->naddrs];
        c->slots = calloc((size_t)o->pipeline, sizeof *c->slots);
        if (!c->slots)
            return -1;
        for (int k = 0; k < o->pipeline; k++)
            c->slots[k] = (bench_slot){.c = c, .next_free = k + 1};
        if (o->rate > 0 && !(c->timer = evtimer_new(b->base, on_due, c)))
            return -1;
        c->ac = rkv_async_connect(b->base, c->addr, &ao, err, sizeof err);
        if (!c->ac) {
            fprintf(stderr, "ringkv-bench: %s\n", err);
            return -1;
        }
        b->nlive++;
        rkv_async_set_close_cb(c->ac, on_close, c);
        rkv_async_set_consistency(c->ac, consistency_of(o->consistency));
        if (rkv_async_ping(c->ac, on_ping, c) != RKV_OK) {
            fprintf(stderr, "ringkv-bench: %s\n", rkv_async_errstr(c->ac));
            return -1;
        }
    }
    return 0;
}

static void teardown(bench *b)
{
    for (int i = 0; b->conns && i < b->o.connections; i++) {
        bench_conn *c = &b->conns[i];
        c->dead = 1; /* no new requests from the callbacks the frees run */
        rkv_async_free(c->ac);
        if (c->timer)
            event_free(c->timer);
        free(c->slots);
    }
    free(b->conns);
    if (b->stop_timer)
        event_free(b->stop_timer);
    if (b->tick_timer)
        event_free(b->tick_timer);
    if (b->base)
        event_base_free(b->base);
    free(b->ticks);
    free(b->value);
    free(b->o.hosts);
    free(b->o.addrbuf);
}

int main(int argc, char **argv)
{
    /* A node that closes a connection must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    bench *b = calloc(1, sizeof *b);
    if (!b)
        return 1;
    if (options_parse(&b->o, argc, argv) < 0) {
        free(b->o.hosts);
        free(b->o.addrbuf);
        free(b);
        return 2;
    }
    int rc = 1;
    if (setup(b) < 0) {
        fprintf(stderr, "ringkv-bench: setup failed (out of memory or no event base)\n");
        goto out;
    }
    event_base_dispatch(b->base);
    if (b->phase != BENCH_DONE || b->exit_code) {
        rc = b->exit_code ? b->exit_code : 1;
        goto out;
    }
    /* The last part-second: only when long enough for a rate to mean much. */
    uint64_t now = now_ns();
    if ((b->interval_ops || b->interval_errors) && now - b->last_tick_ns > 250000000u)
        record_tick(b, now);
    if (b->o.json)
        report_json(b);
    else
        report_table(b);
    fflush(stdout);
    rc = b->ok[BENCH_GET] + b->ok[BENCH_PUT] > 0 ? 0 : 1;
    if (rc) {
        fprintf(stderr, "ringkv-bench: no request was answered%s%s\n",
                b->first_error[0] ? "; first error: " : "", b->first_error);
    } else if (b->nlive == 0) {
        fprintf(stderr, "ringkv-bench: the run was cut short: every connection was lost\n");
        rc = 1;
    }
    if (b->o.plot && report_plot(b) < 0)
        rc = 1;
    else if (b->o.plot && !b->o.quiet)
        fprintf(stderr, "ringkv-bench: plot written to %s\n", b->o.plot);
out:
    teardown(b);
    free(b);
    return rc;
}
