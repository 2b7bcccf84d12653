/* Unit tests for node/coord.c against a fake replica layer: requests are
 * recorded and answered by the test, in any order, synchronously or late —
 * acks, failures, timeouts, late replies, unavailable, newest version and
 * read repair, sloppy-quorum hints, reads that hold replicas in reserve
 * (asked after a failure or after read_retry), shutdown with requests in
 * flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord.h"
#include "quorum.h"

#define MAXREQ 1100 /* speculation_waits_for_slow_replicas makes 1,027 */

typedef struct fake_req {
    char to[STORE_ORIGIN_MAX + 1];
    bool is_write, local, done;
    char hint[STORE_ORIGIN_MAX + 1];
    replica_record rec; /* write: version/tombstone/expiry (value copied below) */
    char value[64];
    replica_cb cb;
    void *arg;
} fake_req;

typedef struct fake {
    uint64_t now;
    size_t n;
    cluster_target t[CLUSTER_MAX_N];
    size_t nt;
    fake_req req[MAXREQ];
    size_t nreq;
    bool refuse;          /* sends return -1 */
    const char *refuse_to; /* sends to this replica return -1 */
    int sync_local_found; /* read_local answers at once: -1 no, 0 absent, 1 found */
    int local_kind;       /* when >= 0, read_local and get_local answer at once with a
                           * LOCAL_* record (overrides sync_local_found) */
    cluster_target own[CLUSTER_MAX_N]; /* owners, when nown > 0 */
    size_t nown;
    cluster_target extra[CLUSTER_MAX_N]; /* write_extra: the up future owners */
    size_t nextra, extra_count, nfuture;
    bool cur_new[CLUSTER_MAX_N]; /* write_extra: targets that are future owners */
} fake;

static uint64_t f_now(void *ctx) { return ((fake *)ctx)->now; }
static size_t f_n(void *ctx) { return ((fake *)ctx)->n; }
static uint64_t f_epoch(void *ctx) { (void)ctx; return 77; }
static size_t f_targets(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    (void)token;
    fake *f = ctx;
    size_t n = f->nt < max ? f->nt : max;
    memcpy(out, f->t, n * sizeof *out);
    return n;
}

static size_t f_owners(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    (void)token;
    fake *f = ctx;
    size_t n = f->nown < max ? f->nown : max;
    memcpy(out, f->own, n * sizeof *out);
    return n;
}

static int record(fake *f, const char *to, bool local, bool is_write, const replica_record *rec,
                  const char *hint, replica_cb cb, void *arg)
{
    if (f->refuse || (f->refuse_to && strcmp(f->refuse_to, to) == 0))
        return -1;
    assert_true(f->nreq < MAXREQ);
    fake_req *q = &f->req[f->nreq++];
    memset(q, 0, sizeof *q);
    snprintf(q->to, sizeof q->to, "%s", to);
    q->local = local;
    q->is_write = is_write;
    snprintf(q->hint, sizeof q->hint, "%s", hint ? hint : "");
    if (rec) {
        q->rec = *rec;
        q->rec.key = NULL;
        if (rec->value && rec->vlen < sizeof q->value)
            memcpy(q->value, rec->value, rec->vlen);
    }
    q->cb = cb;
    q->arg = arg;
    return 0;
}

static int f_write(void *ctx, const char *to, const replica_record *rec, const char *hint,
                   replica_cb cb, void *arg)
{
    return record(ctx, to, false, true, rec, hint, cb, arg);
}
static int f_read(void *ctx, const char *to, const uint8_t *key, size_t klen, replica_cb cb,
                  void *arg)
{
    (void)key;
    (void)klen;
    return record(ctx, to, false, false, NULL, NULL, cb, arg);
}
static int f_apply_local(void *ctx, const replica_record *rec, const char *hint, replica_cb cb,
                         void *arg)
{
    return record(ctx, "a", true, true, rec, hint, cb, arg);
}
enum { LOCAL_ABSENT, LOCAL_FOUND, LOCAL_TOMBSTONE, LOCAL_EXPIRED, LOCAL_ERROR, LOCAL_KINDS };

/* The local replica's answer for f->local_kind. */
static void f_get_local(void *ctx, const uint8_t *key, size_t klen, replica_reply *out, char *err,
                        size_t errlen)
{
    fake *f = ctx;
    *out = (replica_reply){.ok = f->local_kind != LOCAL_ERROR,
                           .found = f->local_kind >= LOCAL_FOUND && f->local_kind <= LOCAL_EXPIRED};
    if (!out->ok) {
        snprintf(err, errlen, "disk on fire");
        out->error = err;
    }
    if (out->found) {
        out->rec = (replica_record){.key = key, .klen = klen, .value = (const uint8_t *)"local",
                                    .vlen = 5, .version.hlc = 5,
                                    .tombstone = f->local_kind == LOCAL_TOMBSTONE,
                                    .expires_ms = f->local_kind == LOCAL_EXPIRED ? f->now - 1
                                                                                 : f->now + 500};
        snprintf(out->rec.version.origin, sizeof out->rec.version.origin, "a");
    }
}

static int f_read_local(void *ctx, const uint8_t *key, size_t klen, replica_cb cb, void *arg)
{
    fake *f = ctx;
    if (f->local_kind >= 0) {
        char err[64];
        replica_reply r;
        f_get_local(ctx, key, klen, &r, err, sizeof err);
        cb(arg, "a", &r);
        return 0;
    }
    if (f->sync_local_found >= 0) {
        replica_reply r = {.ok = true, .found = f->sync_local_found == 1};
        r.rec.key = key;
        r.rec.klen = klen;
        r.rec.value = (const uint8_t *)"local";
        r.rec.vlen = 5;
        r.rec.version.hlc = 5;
        snprintf(r.rec.version.origin, sizeof r.rec.version.origin, "a");
        cb(arg, "a", &r);
        return 0;
    }
    return record(ctx, "a", true, false, NULL, NULL, cb, arg);
}

/* Answers request i: ok, and for a read found with (hlc, value). */
static void reply(fake *f, size_t i, bool ok, int found_hlc, const char *value, bool tomb,
                  uint64_t expires)
{
    fake_req *q = &f->req[i];
    assert_false(q->done);
    q->done = true;
    replica_reply r = {.ok = ok, .error = ok ? NULL : "link down", .found = found_hlc >= 0};
    if (found_hlc >= 0) {
        r.rec.value = (const uint8_t *)value;
        r.rec.vlen = value ? strlen(value) : 0;
        r.rec.tombstone = tomb;
        r.rec.expires_ms = expires;
        r.rec.version.hlc = (uint64_t)found_hlc;
        snprintf(r.rec.version.origin, sizeof r.rec.version.origin, "%s", q->to);
    }
    q->cb(q->arg, q->to, &r);
}

typedef struct result {
    int calls;
    wire_status st;
    char msg[320];
    char value[64];
    size_t nreplicas;
    uint64_t epoch;
} result;

static void on_done(void *arg, const coord_result *res)
{
    result *r = arg;
    r->calls++;
    r->st = res->status;
    snprintf(r->msg, sizeof r->msg, "%s", res->msg ? res->msg : "");
    snprintf(r->value, sizeof r->value, "%.*s", (int)res->vlen,
             res->value ? (const char *)res->value : "");
    r->nreplicas = res->nreplicas;
    r->epoch = res->epoch;
}

static size_t f_write_extra(void *ctx, uint64_t token, const cluster_target *cur, size_t ncur,
                            cluster_target *out, size_t max, cluster_future *fut)
{
    (void)token, (void)cur;
    fake *f = ctx;
    size_t n = f->nextra < max ? f->nextra : max;
    memcpy(out, f->extra, n * sizeof *out);
    memset(fut, 0, sizeof *fut);
    memcpy(fut->cur_new, f->cur_new, ncur * sizeof *fut->cur_new);
    fut->count = f->extra_count;
    fut->n = f->nfuture ? f->nfuture : 3;
    return n;
}

typedef struct env {
    struct event_base *base;
    fake f;
    coord_ops ops;
    hlc clock;
    coord *co;
} env;

static env *env_new_retry(size_t nt, uint64_t r, uint64_t w, uint64_t timeout_ms,
                         uint64_t read_retry_ms)
{
    env *e = calloc(1, sizeof *e);
    e->base = event_base_new();
    e->f.now = 1000000;
    e->f.n = 3;
    e->f.sync_local_found = -1;
    e->f.local_kind = -1;
    static const char *ids[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < nt; i++)
        e->f.t[i] = (cluster_target){.id = ids[i], .local = i == 0};
    e->f.nt = nt;
    e->ops = (coord_ops){.ctx = &e->f, .now_ms = f_now, .n = f_n, .epoch = f_epoch,
                         .targets = f_targets, .owners = f_owners, .write_extra = f_write_extra,
                         .write = f_write, .read = f_read,
                         .apply_local = f_apply_local, .read_local = f_read_local};
    hlc_init(&e->clock, 0);
    coord_config cfg = {.self_id = "a", .r = r, .w = w, .timeout_ms = timeout_ms,
                        .read_retry_ms = read_retry_ms};
    char err[128];
    e->co = coord_new(e->base, &e->clock, &e->ops, &cfg, err, sizeof err);
    assert_non_null(e->co);
    return e;
}

/* read_retry 0: a read asks every replica at once. */
static env *env_new(size_t nt, uint64_t r, uint64_t w, uint64_t timeout_ms)
{
    return env_new_retry(nt, r, w, timeout_ms, 0);
}

static void env_free(env *e)
{
    coord_free(e->co);
    event_base_free(e->base);
    free(e);
}

static const uint8_t K[] = "key";

static void write_acks_at_w(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, -1, on_done, &r),
                     0);
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[0].local);
    /* one HLC stamp for every replica */
    assert_true(e->f.req[0].rec.version.hlc > 0);
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(e->f.req[i].rec.version.hlc, e->f.req[0].rec.version.hlc);
        assert_string_equal(e->f.req[i].rec.version.origin, "a");
        assert_string_equal(e->f.req[i].value, "v1");
    }
    reply(&e->f, 2, true, -1, NULL, false, 0); /* out of order: c first */
    assert_int_equal(r.calls, 0);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(r.nreplicas, 2);
    assert_int_equal(r.epoch, 77);
    reply(&e->f, 1, true, -1, NULL, false, 0); /* late */
    assert_int_equal(r.calls, 1);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.writes[COORD_LEVEL_DEFAULT], 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* While a node joins, a write also goes to the key's future owner and needs
 * a quorum of the current owners and one of the future owners; reads
 * ignore the future owner. Targets a, b, c; d joins and takes c's place. */
static void write_during_ring_change(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.extra[0] = (cluster_target){.id = "d"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.cur_new[0] = e->f.cur_new[1] = true; /* a and b stay owners */
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, -1, on_done, &r),
                     0);
    assert_int_equal(e->f.nreq, 4);
    assert_string_equal(e->f.req[3].to, "d");
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0); /* a and c: a quorum of the old owners only */
    reply(&e->f, 3, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1); /* d: and of the new ones */
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(r.nreplicas, 3);
    reply(&e->f, 1, true, -1, NULL, false, 0);

    /* a and b are owners in both rings: their two acks are enough. */
    result r2 = {0};
    size_t base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v2", 2, 0, -1, on_done, &r2),
                     0);
    assert_int_equal(e->f.nreq, base + 4);
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, WIRE_OK);
    assert_int_equal(r2.nreplicas, 2);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    reply(&e->f, base + 3, true, -1, NULL, false, 0);

    /* b and d fail: the new ring's quorum is out of reach, so the write
     * fails without waiting, although a and c would make the old one. */
    result r3 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v3", 2, 0, -1, on_done, &r3),
                     0);
    reply(&e->f, base + 1, false, -1, NULL, false, 0);
    reply(&e->f, base + 3, false, -1, NULL, false, 0);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r3.msg, "future owners"));
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);

    /* A future owner counted but not sent to (already a target, e.g. as a
     * stand-in for c): its own ack is what the new ring's quorum needs. */
    e->f.nextra = 0;
    e->f.cur_new[2] = true;
    e->f.cur_new[1] = false; /* b drops out instead */
    result r4 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v4", 2, 0, -1, on_done, &r4),
                     0);
    assert_int_equal(e->f.nreq, base + 3);
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    assert_int_equal(r4.calls, 0);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    assert_int_equal(r4.calls, 1);
    assert_int_equal(r4.st, WIRE_OK);

    /* `all` needs every current and every future owner. */
    e->f.nextra = 1;
    e->f.cur_new[1] = true;
    e->f.cur_new[2] = false;
    result r5 = {0};
    base = e->f.nreq;
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v5", 2, 0, QUORUM_ALL, on_done, &r5), 0);
    assert_int_equal(e->f.nreq, base + 4);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, base + i, true, -1, NULL, false, 0);
    assert_int_equal(r5.calls, 0);
    reply(&e->f, base + 3, true, -1, NULL, false, 0);
    assert_int_equal(r5.calls, 1);
    assert_int_equal(r5.st, WIRE_OK);

    /* Reads go to the current owners only. */
    result r6 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_get(e->co, K, 3, -1, on_done, &r6), 0);
    assert_int_equal(e->f.nreq, base + 3);
    for (size_t i = 0; i < e->f.nreq; i++) /* the replica layer answers every request */
        if (!e->f.req[i].done)
            reply(&e->f, i, true, -1, NULL, false, 0);
    env_free(e);
}

/* The ring grows past its size: from a and b (N = 2 of them) to a, b and c
 * (N = 3). Each ring's level counts its own N: `all` needs c too, and a
 * quorum of the three (2) is met by a and b. */
static void write_while_the_ring_grows(void **state)
{
    (void)state;
    env *e = env_new(2, 2, 2, 2000);
    e->f.n = 2;
    e->f.extra[0] = (cluster_target){.id = "c"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.nfuture = 3;
    e->f.cur_new[0] = e->f.cur_new[1] = true;
    result r = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, QUORUM_ALL, on_done, &r), 0);
    assert_int_equal(e->f.nreq, 3);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0); /* all of the old ring, not of the new one */
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);

    result r2 = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v2", 2, 0, QUORUM_QUORUM, on_done, &r2),
        0);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    reply(&e->f, 4, true, -1, NULL, false, 0);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, WIRE_OK);
    reply(&e->f, 5, true, -1, NULL, false, 0);

    /* c is down (not counted, not sent to): `all` of the new ring is the
     * two that are up */
    e->f.nextra = 0;
    e->f.extra_count = 0;
    result r3 = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v3", 2, 0, QUORUM_ALL, on_done, &r3), 0);
    assert_int_equal(e->f.nreq, 8);
    reply(&e->f, 6, true, -1, NULL, false, 0);
    reply(&e->f, 7, true, -1, NULL, false, 0);
    assert_int_equal(r3.st, WIRE_OK);
    env_free(e);
}

static void write_ttl_and_delete(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    e->f.n = 1;
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 5000, -1, on_done, &r);
    assert_int_equal(e->f.req[0].rec.expires_ms, e->f.now + 5000);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    coord_write(e->co, true, K, 3, NULL, 0, 0, QUORUM_ALL, on_done, &r);
    assert_true(e->f.req[1].rec.tombstone);
    assert_true(e->f.req[1].rec.version.hlc > e->f.req[0].rec.version.hlc);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 2);
    env_free(e);
}

static void unavailable_at_once(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    assert_string_equal(r.msg, "need 2 replicas, 1 up");
    assert_int_equal(e->f.nreq, 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.unavailable, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void all_needs_every_replica(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_ALL, on_done, &r);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r.msg, "2 of 3 replicas acknowledged, 3 needed"));
    assert_non_null(strstr(r.msg, "link down"));
    env_free(e);
}

static void fails_early(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1); /* 2 needed, only 1 can still answer */
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    env_free(e);
}

static void send_refused_counts_as_failure(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.refuse = true;
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r),
                     0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void times_out(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 30);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    e->f.now += 31;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_TIMEOUT);
    assert_string_equal(r.msg, "1 of 3 acknowledged, 2 needed, after 30 ms");
    reply(&e->f, 1, true, -1, NULL, false, 0); /* late: ignored */
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void read_newest_and_repair(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 3); /* every replica is asked */
    reply(&e->f, 0, true, 10, "old", false, 0);
    reply(&e->f, 1, true, 20, "new", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "new");
    assert_int_equal(e->f.nreq, 3); /* repair waits for every answer */
    reply(&e->f, 2, true, -1, NULL, false, 0); /* c has nothing */
    assert_int_equal(e->f.nreq, 5);
    /* a (local, older) and c (missing) get the newest record */
    bool to_a = false, to_c = false;
    for (size_t i = 3; i < 5; i++) {
        fake_req *q = &e->f.req[i];
        assert_true(q->is_write);
        assert_int_equal(q->rec.version.hlc, 20);
        assert_string_equal(q->rec.version.origin, "b");
        assert_string_equal(q->value, "new");
        to_a |= q->local;
        to_c |= strcmp(q->to, "c") == 0;
        reply(&e->f, i, true, -1, NULL, false, 0);
    }
    assert_true(to_a && to_c);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_repairs, 2);
    assert_int_equal(st.reads[COORD_LEVEL_DEFAULT], 1);
    env_free(e);
}

static void read_tombstone_and_expired_are_not_found(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    e->f.t[0].local = false; /* a coordinator that is no replica asks all three */
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    reply(&e->f, 1, true, 30, NULL, true, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    reply(&e->f, 0, true, 10, "x", false, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0); /* c failed: not repaired */
    assert_int_equal(e->f.nreq, 4);                /* the tombstone spreads to a */
    assert_true(e->f.req[3].rec.tombstone);
    reply(&e->f, 3, true, -1, NULL, false, 0);

    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r2);
    reply(&e->f, 4, true, 40, "gone", false, e->f.now - 1);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    reply(&e->f, 5, true, 40, "gone", false, e->f.now - 1);
    reply(&e->f, 6, true, 40, "gone", false, e->f.now - 1);
    env_free(e);
}

/* At ONE a coordinator that is one of the key's replicas reads its own copy
 * and asks nobody else. */
static void read_one_asks_only_the_local_replica(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, 1);
    assert_true(e->f.req[0].local);
    reply(&e->f, 0, true, 10, "x", false, 0);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(e->f.nreq, 1); /* nothing to repair */

    result r2 = {0}; /* at quorum, all three are still asked */
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 4);
    for (size_t i = 1; i < 4; i++)
        reply(&e->f, i, true, 10, "x", false, 0);
    assert_int_equal(r2.st, WIRE_OK);
    env_free(e);
}

/* With read_retry, a quorum read of N=3 asks two replicas, its own first;
 * the third is not asked while both answer. */
static void quorum_read_asks_r_replicas(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    e->f.t[0] = (cluster_target){.id = "b"}; /* the local replica is second */
    e->f.t[1] = (cluster_target){.id = "a", .local = true};
    result r = {0};
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r), 0);
    assert_int_equal(e->f.nreq, 2);
    assert_true(e->f.req[0].local);
    assert_string_equal(e->f.req[1].to, "b");
    event_base_loop(e->base, EVLOOP_NONBLOCK); /* no time passed: nothing more */
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 0, true, 10, "x", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "x");
    assert_int_equal(r.nreplicas, 2);
    /* b, which had nothing, is repaired; c was never asked, so it is not */
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[2].is_write);
    assert_string_equal(e->f.req[2].to, "b");
    reply(&e->f, 2, true, -1, NULL, false, 0);

    result r2 = {0}; /* the default R asks two as well */
    assert_int_equal(coord_get(e->co, K, 3, -1, on_done, &r2), 0);
    assert_int_equal(e->f.nreq, 5);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    reply(&e->f, 4, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 0);
    assert_int_equal(st.read_speculations, 0);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Owners are asked before a stand-in, which holds the key only as a hint. */
static void quorum_read_asks_stand_ins_last(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    e->f.t[1] = (cluster_target){.id = "d", .hint_for = "b"};
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    assert_true(e->f.req[0].local);
    assert_string_equal(e->f.req[1].to, "c");
    reply(&e->f, 0, true, 10, "x", false, 0);
    reply(&e->f, 1, false, -1, NULL, false, 0); /* c fails: the stand-in is asked */
    assert_int_equal(e->f.nreq, 3);
    assert_string_equal(e->f.req[2].to, "d");
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(e->f.nreq, 4); /* the stand-in gets the record, as a hint for b */
    assert_string_equal(e->f.req[3].to, "d");
    assert_string_equal(e->f.req[3].hint, "b");
    reply(&e->f, 3, true, -1, NULL, false, 0);
    env_free(e);
}

/* An error reply from an asked replica makes the read ask the third at
 * once; the read still succeeds, and repairs what it saw stale. */
static void quorum_read_error_asks_the_reserve(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 0, true, 10, "old", false, 0);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(e->f.nreq, 3);
    assert_string_equal(e->f.req[2].to, "c");
    assert_false(e->f.req[2].is_write);
    reply(&e->f, 2, true, 20, "new", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "new");
    /* a (older) is repaired; b failed and is left to hints and anti-entropy */
    assert_int_equal(e->f.nreq, 4);
    assert_true(e->f.req[3].is_write && e->f.req[3].local);
    assert_string_equal(e->f.req[3].value, "new");
    reply(&e->f, 3, true, -1, NULL, false, 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 1);
    assert_int_equal(st.read_speculations, 0);
    assert_int_equal(st.read_repairs, 1);
    assert_int_equal(st.in_flight, 0);

    /* A send that cannot be queued counts as a failure too. */
    e->f.refuse_to = "b";
    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 6);
    assert_string_equal(e->f.req[5].to, "c");
    reply(&e->f, 4, true, -1, NULL, false, 0);
    reply(&e->f, 5, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);

    /* Two failures: the reserve cannot make up for both. */
    e->f.refuse_to = NULL;
    result r3 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r3);
    assert_int_equal(e->f.nreq, 8);
    reply(&e->f, 6, false, -1, NULL, false, 0);
    assert_int_equal(e->f.nreq, 9);
    reply(&e->f, 8, false, -1, NULL, false, 0);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r3.msg, "0 of 3 replicas answered, 2 needed"));
    reply(&e->f, 7, true, 20, "new", false, 0); /* late */
    assert_int_equal(e->f.nreq, 9);
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 3);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* A replica that never answers: after read_retry the third is asked too,
 * on the shared timer, reads in the order they started. */
static void quorum_read_speculates_after_read_retry(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0}, r2 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    e->f.now += 10;
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 4);
    reply(&e->f, 0, true, -1, NULL, false, 0); /* b (req 1) stays silent */
    reply(&e->f, 2, true, -1, NULL, false, 0); /* so does the second read's b */
    e->f.now += 10; /* the first read is due, the second not yet */
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 5);
    assert_string_equal(e->f.req[4].to, "c");
    assert_ptr_equal(e->f.req[4].arg, e->f.req[0].arg);
    reply(&e->f, 4, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    e->f.now += 10;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 6);
    assert_string_equal(e->f.req[5].to, "c");
    assert_ptr_equal(e->f.req[5].arg, e->f.req[2].arg);
    reply(&e->f, 5, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    /* late answers from the slow replica end both reads; no more asks */
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    e->f.now += 100;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, 6);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_speculations, 2);
    assert_int_equal(st.read_retries, 0);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Where replicas answer slowly, the wait before a speculative ask follows
 * their 95th percentile, not the shorter read_retry: a loaded cluster is
 * not sent one more request for every read. */
static void speculation_waits_for_slow_replicas(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 2);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retry_ms, 2);
    for (int k = 0; k < 512; k++) {
        result r = {0};
        size_t base = e->f.nreq;
        coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
        assert_int_equal(e->f.nreq, base + 2);
        reply(&e->f, base, true, -1, NULL, false, 0); /* a, this node */
        e->f.now += 9;
        reply(&e->f, base + 1, true, -1, NULL, false, 0); /* b, 9 ms later */
        assert_int_equal(r.calls, 1);
    }
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retry_ms, 10);
    assert_int_equal(st.read_speculations, 0);

    /* b silent: c is asked after 10 ms, not after 2 */
    result r = {0};
    size_t base = e->f.nreq;
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    reply(&e->f, base, true, -1, NULL, false, 0);
    e->f.now += 5;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, base + 2);
    e->f.now += 6;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, base + 3);
    assert_string_equal(e->f.req[base + 2].to, "c");
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_speculations, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Speculation and the deadline share the timer: a read nobody answers
 * asks the third after read_retry, and times out at request_timeout. */
static void quorum_read_speculates_then_times_out(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 30, 20);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    e->f.now += 20;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 3);
    assert_int_equal(r.calls, 0);
    e->f.now += 10;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_TIMEOUT);
    assert_string_equal(r.msg, "0 of 3 answered, 2 needed, after 30 ms");
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, i != 1, -1, NULL, false, 0); /* late, one a failure */
    assert_int_equal(e->f.nreq, 3);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.timeouts, 1);
    env_free(e);
}

/* read_retry 0 asks all three; `all` asks all; `one` asks only its own copy. */
static void read_levels_and_read_retry_zero(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(e->f.nreq, 3);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    env_free(e);

    e = env_new_retry(3, 2, 2, 2000, 20);
    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_ALL, on_done, &r2);
    assert_int_equal(e->f.nreq, 3);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    result r3 = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r3);
    assert_int_equal(e->f.nreq, 4);
    assert_true(e->f.req[3].local);
    reply(&e->f, 3, true, 10, "x", false, 0);
    assert_int_equal(r3.st, WIRE_OK);
    e->f.now += 100;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, 4);
    env_free(e);
}

/* A read at ONE on a node that holds no copy asks the first owner only;
 * its failure makes it ask the next at once. */
static void read_one_without_a_local_copy(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 1, 1, 2000, 20);
    e->f.t[0].local = false; /* the coordinator is none of a, b, c */
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, 1);
    assert_string_equal(e->f.req[0].to, "a");
    reply(&e->f, 0, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(e->f.nreq, 2);
    assert_string_equal(e->f.req[1].to, "b");
    reply(&e->f, 1, true, 10, "x", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "x");
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Shutting down answers a read with a reserve; a late failure then asks
 * nobody. */
static void free_with_a_reserve_held(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    coord_free(e->co);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_INTERNAL);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 0, true, 10, "x", false, 0);
    e->co = NULL;
    env_free(e);
}

static void read_not_found_anywhere(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    assert_int_equal(e->f.nreq, 3); /* nothing to repair */
    env_free(e);
}

static void single_node_completes_synchronously(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    e->f.n = 1;
    e->f.sync_local_found = 1;
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r); /* r=2 is capped by N=1 */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "local");
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* A read of this node's own copy alone is answered from get_local without
 * an operation: the same status, message, value and counters as through an
 * operation (the coordinator without get_local), for every kind of local
 * answer. */
static void local_read_short_path_answers_alike(void **state)
{
    (void)state;
    for (int kind = 0; kind < LOCAL_KINDS; kind++) {
        env *slow = env_new(1, 1, 1, 2000), *fast = env_new(1, 1, 1, 2000);
        slow->f.n = fast->f.n = 1;
        slow->f.local_kind = fast->f.local_kind = kind;
        coord_free(fast->co);
        fast->ops.get_local = f_get_local;
        coord_config cfg = {.self_id = "a", .r = 1, .w = 1, .timeout_ms = 2000};
        char err[128];
        fast->co = coord_new(fast->base, &fast->clock, &fast->ops, &cfg, err, sizeof err);
        assert_non_null(fast->co);

        result a = {0}, b = {0};
        assert_int_equal(coord_get(slow->co, K, 3, -1, on_done, &a), 0);
        assert_int_equal(coord_get(fast->co, K, 3, -1, on_done, &b), 0);
        coord_result now;
        assert_int_equal(coord_get_now(fast->co, K, 3, -1, &now), 1);
        result c = {0};
        on_done(&c, &now);
        assert_int_equal(a.calls, 1);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.st, a.st);
        assert_string_equal(b.msg, a.msg);
        assert_string_equal(b.value, a.value);
        assert_int_equal(b.nreplicas, a.nreplicas);
        assert_int_equal(b.epoch, a.epoch);
        assert_int_equal(c.st, a.st);
        assert_string_equal(c.msg, a.msg);
        assert_string_equal(c.value, a.value);
        assert_int_equal(c.nreplicas, a.nreplicas);
        assert_int_equal(a.st, kind == LOCAL_FOUND   ? WIRE_OK
                               : kind == LOCAL_ERROR ? WIRE_ERR_UNAVAILABLE
                                                     : WIRE_NOT_FOUND);
        coord_stats sa, sb;
        coord_get_stats(slow->co, &sa);
        coord_get_stats(fast->co, &sb);
        assert_int_equal(sb.reads[COORD_LEVEL_DEFAULT], 2 * sa.reads[COORD_LEVEL_DEFAULT]);
        assert_int_equal(sb.unavailable, 2 * sa.unavailable);
        assert_int_equal(sb.in_flight, 0);
        assert_int_equal(fast->f.nreq, 0);
        env_free(slow);
        env_free(fast);
    }
}

/* A read that needs other replicas is not answered now, and not counted. */
static void get_now_declines_remote_reads(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    coord_free(e->co);
    e->ops.get_local = f_get_local;
    e->f.local_kind = LOCAL_FOUND;
    coord_config cfg = {.self_id = "a", .r = 2, .w = 2, .timeout_ms = 2000};
    char err[128];
    e->co = coord_new(e->base, &e->clock, &e->ops, &cfg, err, sizeof err);
    coord_result now;
    assert_int_equal(coord_get_now(e->co, K, 3, -1, &now), 0); /* R = 2 */
    e->f.t[0].local = false; /* this node is not a replica: even `one` goes out */
    assert_int_equal(coord_get_now(e->co, K, 3, QUORUM_ONE, &now), 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    for (int i = 0; i < COORD_LEVELS; i++)
        assert_int_equal(st.reads[i], 0);
    e->f.t[0].local = true;
    assert_int_equal(coord_get_now(e->co, K, 3, QUORUM_ONE, &now), 1);
    assert_int_equal(now.status, WIRE_OK);
    env_free(e);
}

static void hints_reach_stand_ins(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.t[2] = (cluster_target){.id = "d", .local = false, .hint_for = "c"};
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    assert_string_equal(e->f.req[2].to, "d");
    assert_string_equal(e->f.req[2].hint, "c");
    assert_string_equal(e->f.req[1].hint, "");
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    env_free(e);
}

static void coordinator_hints_owner_without_stand_in(void **state)
{
    (void)state;
    env *e = env_new(2, 2, 2, 2000); /* c is down and nobody can stand in */
    e->f.own[0] = (cluster_target){.id = "a", .local = true};
    e->f.own[1] = (cluster_target){.id = "b"};
    e->f.own[2] = (cluster_target){.id = "c"};
    e->f.nown = 3;
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[2].local);
    assert_string_equal(e->f.req[2].hint, "c");
    reply(&e->f, 2, true, -1, NULL, false, 0); /* the hint does not count toward W */
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    env_free(e);
}

static void stranger_reply_ignored(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    snprintf(e->f.req[1].to, sizeof e->f.req[1].to, "zz"); /* answers under another id */
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    env_free(e);
}

static void free_with_requests_in_flight(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    coord_free(e->co); /* answers at once; lives until the replies come */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_INTERNAL);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, (int)i, "v", false, 0);
    assert_int_equal(r.calls, 1);
    e->co = NULL;
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_acks_at_w),
        cmocka_unit_test(write_during_ring_change),
        cmocka_unit_test(write_while_the_ring_grows),
        cmocka_unit_test(write_ttl_and_delete),
        cmocka_unit_test(unavailable_at_once),
        cmocka_unit_test(all_needs_every_replica),
        cmocka_unit_test(fails_early),
        cmocka_unit_test(send_refused_counts_as_failure),
        cmocka_unit_test(times_out),
        cmocka_unit_test(read_newest_and_repair),
        cmocka_unit_test(read_tombstone_and_expired_are_not_found),
        cmocka_unit_test(read_one_asks_only_the_local_replica),
        cmocka_unit_test(quorum_read_asks_r_replicas),
        cmocka_unit_test(quorum_read_asks_stand_ins_last),
        cmocka_unit_test(quorum_read_error_asks_the_reserve),
        cmocka_unit_test(quorum_read_speculates_after_read_retry),
        cmocka_unit_test(speculation_waits_for_slow_replicas),
        cmocka_unit_test(quorum_read_speculates_then_times_out),
        cmocka_unit_test(read_levels_and_read_retry_zero),
        cmocka_unit_test(read_one_without_a_local_copy),
        cmocka_unit_test(free_with_a_reserve_held),
        cmocka_unit_test(read_not_found_anywhere),
        cmocka_unit_test(single_node_completes_synchronously),
        cmocka_unit_test(local_read_short_path_answers_alike),
        cmocka_unit_test(get_now_declines_remote_reads),
        cmocka_unit_test(hints_reach_stand_ins),
        cmocka_unit_test(coordinator_hints_owner_without_stand_in),
        cmocka_unit_test(stranger_reply_ignored),
        cmocka_unit_test(free_with_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
