/* coord_fake: the fake replica layer test_coord.c and test_coord_reads.c
 * drive node/coord.c with: requests are recorded and answered by the test,
 * in any order, synchronously or late, on a clock the test sets.
 */
#ifndef RINGKV_COORD_FAKE_H
#define RINGKV_COORD_FAKE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "coord.h"
#include "quorum.h"

#define MAXREQ 1100 /* speculation_waits_for_slow_replicas makes 1,027 */

typedef struct fake_req {
    char to[STORE_ORIGIN_MAX + 1];
    bool is_write, local, done;
    bool background; /* write: sent as replica_write_background */
    char hint[STORE_ORIGIN_MAX + 1];
    replica_record rec; /* write: version/tombstone/expiry (value copied below) */
    store_version have; /* read: the version it was sent with (hlc 0: none) */
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

static inline uint64_t f_now(void *ctx) { return ((fake *)ctx)->now; }
static inline size_t f_n(void *ctx) { return ((fake *)ctx)->n; }
static inline uint64_t f_epoch(void *ctx) { (void)ctx; return 77; }
static inline size_t f_targets(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    (void)token;
    fake *f = ctx;
    size_t n = f->nt < max ? f->nt : max;
    memcpy(out, f->t, n * sizeof *out);
    return n;
}

static inline size_t f_owners(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    (void)token;
    fake *f = ctx;
    size_t n = f->nown < max ? f->nown : max;
    memcpy(out, f->own, n * sizeof *out);
    return n;
}

static inline int record(fake *f, const char *to, bool local, bool is_write, const replica_record *rec,
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

static inline int f_write(void *ctx, const char *to, const replica_record *rec, const char *hint,
                          bool background, replica_cb cb, void *arg)
{
    fake *f = ctx;
    int rc = record(f, to, false, true, rec, hint, cb, arg);
    if (rc == 0)
        f->req[f->nreq - 1].background = background;
    return rc;
}
static inline int f_read(void *ctx, const char *to, const uint8_t *key, size_t klen,
                         const store_version *have, replica_cb cb, void *arg)
{
    (void)key;
    (void)klen;
    fake *f = ctx;
    int rc = record(ctx, to, false, false, NULL, NULL, cb, arg);
    if (rc == 0 && have)
        f->req[f->nreq - 1].have = *have;
    return rc;
}
static inline int f_apply_local(void *ctx, const replica_record *rec, const char *hint, replica_cb cb,
                         void *arg)
{
    return record(ctx, "a", true, true, rec, hint, cb, arg);
}
enum { LOCAL_ABSENT, LOCAL_FOUND, LOCAL_TOMBSTONE, LOCAL_EXPIRED, LOCAL_ERROR, LOCAL_KINDS };

/* The local replica's answer for f->local_kind. */
static inline void f_get_local(void *ctx, const uint8_t *key, size_t klen, replica_reply *out, char *err,
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

static inline int f_read_local(void *ctx, const uint8_t *key, size_t klen, replica_cb cb, void *arg)
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
static inline void reply(fake *f, size_t i, bool ok, int found_hlc, const char *value, bool tomb,
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

/* Request i answered with a version alone (hlc, origin), as a replica does
 * whose version is not newer than the read's `have`. */
static inline void reply_version_only(fake *f, size_t i, uint64_t hlc, const char *origin)
{
    fake_req *q = &f->req[i];
    assert_false(q->done);
    q->done = true;
    replica_reply r = {.ok = true, .found = true, .version_only = true};
    r.rec.value = (const uint8_t *)"";
    r.rec.version.hlc = hlc;
    snprintf(r.rec.version.origin, sizeof r.rec.version.origin, "%s", origin);
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

static inline void on_done(void *arg, const coord_result *res)
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

static inline size_t f_write_extra(void *ctx, uint64_t token, const cluster_target *cur, size_t ncur,
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

static inline env *env_new_retry(size_t nt, uint64_t r, uint64_t w, uint64_t timeout_ms,
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
static inline env *env_new(size_t nt, uint64_t r, uint64_t w, uint64_t timeout_ms)
{
    return env_new_retry(nt, r, w, timeout_ms, 0);
}

static inline void env_free(env *e)
{
    coord_free(e->co);
    event_base_free(e->base);
    free(e);
}

static const uint8_t K[] = "key";

#endif
