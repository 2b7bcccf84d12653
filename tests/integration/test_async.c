/* test_async: libringkv's async API (ringkv_async.h) against a real ringkvd.
 *
 * One node serves the group; tests that freeze or kill it restart it after.
 * Every callback is counted per request, so "exactly once" is checked for
 * each request, not only in total. Waits are bounded by a guard timer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodeproc.h"
#include "ringkv.h"
#include "ringkv_async.h"

#define WAIT_MS 30000 /* guard for every wait; sanitizer builds are slow */

typedef struct req {
    struct tctx *t;
    int idx;
    int calls;
    rkv_status status;
    uint64_t id;
    char value[64];
    size_t vlen;
} req;

typedef struct tctx {
    struct event_base *base;
    rkv_async *ac;
    req *reqs;
    int n;
    int done; /* callbacks run */
    int closes;
    rkv_status close_status;
    int order_ok;
    uint64_t last_id;
    /* test_free_in_callback */
    int free_at;
    int refused_after_free;
    /* test_kill_mid_flight */
    nodeproc *kill_np;
    int kill_at;
    int kill_more_from; /* requests [this, n) are sent once the node is dead */
} tctx;

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    nodeproc *np = calloc(1, sizeof *np);
    if (!np || nodeproc_start(np, NULL) < 0) {
        free(np);
        return -1;
    }
    *state = np;
    return 0;
}

static int group_teardown(void **state)
{
    nodeproc *np = *state;
    nodeproc_cleanup(np);
    free(np);
    return 0;
}

static void ensure_running(nodeproc *np)
{
    if (!nodeproc_alive(np))
        assert_int_equal(nodeproc_restart(np), 0);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

/* Runs the loop until *counter reaches target or WAIT_MS pass. */
static void run_until(struct event_base *base, const int *counter, int target)
{
    int expired = 0;
    struct event *guard = evtimer_new(base, on_guard, &expired);
    struct timeval tv = {WAIT_MS / 1000, 0};
    evtimer_add(guard, &tv);
    while (*counter < target && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(guard);
    if (*counter < target)
        fail_msg("waited %d ms for %d callbacks, got %d", WAIT_MS, target, *counter);
}

static void tctx_init(tctx *t, int n)
{
    memset(t, 0, sizeof *t);
    t->base = event_base_new();
    assert_non_null(t->base);
    t->n = n;
    t->reqs = calloc((size_t)n, sizeof *t->reqs);
    assert_non_null(t->reqs);
    for (int i = 0; i < n; i++) {
        t->reqs[i].t = t;
        t->reqs[i].idx = i;
    }
    t->order_ok = 1;
    t->free_at = -1;
    t->kill_at = -1;
}

static void tctx_free(tctx *t)
{
    rkv_async_free(t->ac);
    event_base_free(t->base);
    free(t->reqs);
}

static void on_close(rkv_async *ac, rkv_status st, const char *why, void *arg)
{
    (void)ac;
    assert_non_null(why);
    tctx *t = arg;
    t->closes++;
    t->close_status = st;
}

static rkv_async *connect_to(tctx *t, const char *addr, const rkv_async_options *o)
{
    char err[256] = "";
    rkv_async *ac = rkv_async_connect(t->base, addr, o, err, sizeof err);
    if (!ac)
        fail_msg("rkv_async_connect(%s): %s", addr, err);
    rkv_async_set_close_cb(ac, on_close, t);
    t->ac = ac;
    return ac;
}

static void on_reply(rkv_async *ac, const rkv_async_reply *r, void *arg)
{
    req *q = arg;
    tctx *t = q->t;
    assert_ptr_equal(ac, t->ac);
    q->calls++;
    q->status = r->status;
    q->id = r->id;
    q->vlen = 0;
    if (r->status == RKV_OK && r->value) {
        assert_true(r->value_len < sizeof q->value);
        memcpy(q->value, r->value, r->value_len);
        q->vlen = r->value_len;
    }
    if (r->status != RKV_OK && r->status != RKV_NOT_FOUND)
        assert_true(r->errstr && r->errstr[0]);
    if (r->id <= t->last_id)
        t->order_ok = 0;
    t->last_id = r->id;
    t->done++;
    if (q->idx == t->free_at) {
        rkv_async_free(ac); /* deferred until this callback returns */
        if (rkv_async_ping(ac, on_reply, q) == RKV_ERR_IO)
            t->refused_after_free = 1;
    }
    if (q->idx == t->kill_at) {
        nodeproc_kill(t->kill_np, SIGKILL); /* returns once the node has exited */
        /* Pipelined behind answers the node may all have sent before it
         * died: these can only fail. A request refused at once gets no
         * callback, so it is counted as failed here. */
        for (int i = t->kill_more_from; i < t->n; i++)
            if (rkv_async_put(ac, "km:k", 4, "v", 1, 0, on_reply, &t->reqs[i]) != RKV_OK) {
                t->reqs[i].calls++;
                t->reqs[i].status = RKV_ERR_IO;
                t->done++;
            }
    }
}

static void check_each_once(const tctx *t)
{
    for (int i = 0; i < t->n; i++)
        if (t->reqs[i].calls != 1)
            fail_msg("request %d: callback ran %d times", i, t->reqs[i].calls);
}

/* ---- tests ---- */

static void test_pipelined_10000(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    const int n = 10000;
    tctx t;
    tctx_init(&t, 2 * n);
    rkv_async *ac = connect_to(&t, np->addr, NULL);

    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "pipe:%d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i * 7);
        assert_int_equal(
            rkv_async_put(ac, key, (size_t)kl, val, (size_t)vl, 0, on_reply, &t.reqs[i]), RKV_OK);
    }
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "pipe:%d", i);
        assert_int_equal(rkv_async_get(ac, key, (size_t)kl, on_reply, &t.reqs[n + i]), RKV_OK);
    }
    assert_int_equal(rkv_async_pending(ac), 2 * n);
    run_until(t.base, &t.done, 2 * n);

    check_each_once(&t);
    assert_true(t.order_ok);
    for (int i = 0; i < 2 * n; i++) {
        /* A fresh connection numbers its requests 1, 2, 3, ... */
        assert_int_equal(t.reqs[i].id, (uint64_t)i + 1);
        assert_int_equal(t.reqs[i].status, RKV_OK);
    }
    for (int i = 0; i < n; i++) {
        int vl = snprintf(val, sizeof val, "value-%d", i * 7);
        assert_int_equal(t.reqs[n + i].vlen, (size_t)vl);
        assert_memory_equal(t.reqs[n + i].value, val, (size_t)vl);
    }
    assert_int_equal(rkv_async_pending(ac), 0);
    assert_int_equal(t.closes, 0);
    tctx_free(&t);
}

static void test_mixed_operations(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    tctx t;
    tctx_init(&t, 9);
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    req *q = t.reqs;
    assert_int_equal(rkv_async_ping(ac, on_reply, &q[0]), RKV_OK);
    assert_int_equal(rkv_async_put(ac, "mx:a", 4, "alpha", 5, 0, on_reply, &q[1]), RKV_OK);
    assert_int_equal(rkv_async_put(ac, "mx:b", 4, "", 0, 60000, on_reply, &q[2]), RKV_OK);
    assert_int_equal(rkv_async_get(ac, "mx:a", 4, on_reply, &q[3]), RKV_OK);
    assert_int_equal(rkv_async_get(ac, "mx:b", 4, on_reply, &q[4]), RKV_OK);
    assert_int_equal(rkv_async_del(ac, "mx:a", 4, on_reply, &q[5]), RKV_OK);
    assert_int_equal(rkv_async_get(ac, "mx:a", 4, on_reply, &q[6]), RKV_OK);
    assert_int_equal(rkv_async_del(ac, "mx:never", 8, on_reply, &q[7]), RKV_OK);
    assert_int_equal(rkv_async_get(ac, "mx:never", 8, on_reply, &q[8]), RKV_OK);
    /* Refused at once, without a callback. */
    assert_int_equal(rkv_async_get(ac, "", 0, on_reply, &q[0]), RKV_ERR_ARG);
    assert_non_null(strstr(rkv_async_errstr(ac), "key"));
    assert_int_equal(rkv_async_put(ac, "k", 1, NULL, 3, 0, on_reply, &q[0]), RKV_ERR_ARG);
    run_until(t.base, &t.done, 9);

    check_each_once(&t);
    assert_true(t.order_ok);
    rkv_status want[] = {RKV_OK, RKV_OK,        RKV_OK, RKV_OK,       RKV_OK,
                         RKV_OK, RKV_NOT_FOUND, RKV_OK, RKV_NOT_FOUND};
    for (int i = 0; i < 9; i++)
        assert_int_equal(q[i].status, want[i]);
    assert_int_equal(q[3].vlen, 5);
    assert_memory_equal(q[3].value, "alpha", 5);
    assert_int_equal(q[4].vlen, 0); /* empty value, still found */
    tctx_free(&t);
}

static uint64_t stat_num(const nodeproc *np, const char *name)
{
    rkv_client *c = rkv_connect(np->addr, NULL, NULL, 0);
    rkv_stat *st;
    size_t n;
    uint64_t v = UINT64_MAX;
    assert_int_equal(rkv_stats(c, &st, &n), RKV_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(st[i].name, name) == 0 && st[i].is_num)
            v = st[i].num;
    rkv_stats_free(st, n);
    rkv_close(c);
    assert_true(v != UINT64_MAX);
    return v;
}

/* The consistency set on a connection travels with each request: the node
 * counts the writes and reads it coordinated at each level. */
static void test_consistency_sent(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    uint64_t all_w = stat_num(np, "coord_writes_all"), one_r = stat_num(np, "coord_reads_one");
    tctx t;
    tctx_init(&t, 2);
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    assert_int_equal(rkv_async_set_consistency(ac, (rkv_consistency)7), RKV_ERR_ARG);
    assert_int_equal(rkv_async_set_consistency(ac, RKV_CONSISTENCY_ALL), RKV_OK);
    assert_int_equal(rkv_async_put(ac, "cs:a", 4, "x", 1, 0, on_reply, &t.reqs[0]), RKV_OK);
    assert_int_equal(rkv_async_set_consistency(ac, RKV_CONSISTENCY_ONE), RKV_OK);
    assert_int_equal(rkv_async_get(ac, "cs:a", 4, on_reply, &t.reqs[1]), RKV_OK);
    run_until(t.base, &t.done, 2);
    assert_int_equal(t.reqs[0].status, RKV_OK);
    assert_int_equal(t.reqs[1].status, RKV_OK);
    tctx_free(&t);
    assert_int_equal(stat_num(np, "coord_writes_all"), all_w + 1);
    assert_int_equal(stat_num(np, "coord_reads_one"), one_r + 1);
}

/* A frozen node: requests time out one by one through the connection's
 * timer; when the node runs again, its late replies are dropped and the same
 * connection serves new requests. */
static void test_timeout_while_stopped(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    tctx t;
    tctx_init(&t, 6);
    rkv_async_options o = {.request_timeout_ms = 300};
    rkv_async *ac = connect_to(&t, np->addr, &o);
    assert_int_equal(rkv_async_ping(ac, on_reply, &t.reqs[0]), RKV_OK);
    run_until(t.base, &t.done, 1); /* connected */

    kill(np->pid, SIGSTOP);
    for (int i = 1; i <= 4; i++)
        assert_int_equal(rkv_async_put(ac, "st:k", 4, "v", 1, 0, on_reply, &t.reqs[i]), RKV_OK);
    run_until(t.base, &t.done, 5);
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(t.reqs[i].calls, 1);
        assert_int_equal(t.reqs[i].status, RKV_ERR_TIMEOUT);
    }
    assert_int_equal(rkv_async_pending(ac), 0);
    kill(np->pid, SIGCONT);

    assert_int_equal(rkv_async_get(ac, "st:k", 4, on_reply, &t.reqs[5]), RKV_OK);
    run_until(t.base, &t.done, 6);
    check_each_once(&t);
    assert_int_equal(t.reqs[5].status, RKV_OK);
    assert_int_equal(t.reqs[5].vlen, 1);
    assert_int_equal(t.reqs[5].id, 6);
    assert_int_equal(t.closes, 0);
    tctx_free(&t);
}

/* Killed while requests are in flight: each fails exactly once with
 * RKV_ERR_IO, the close callback runs once, later requests are refused. */
static void test_kill_while_frozen(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    const int n = 500;
    tctx t;
    tctx_init(&t, n);
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    assert_int_equal(rkv_async_ping(ac, on_reply, &t.reqs[0]), RKV_OK);
    run_until(t.base, &t.done, 1);

    kill(np->pid, SIGSTOP); /* so that none of them can be answered */
    for (int i = 1; i < n; i++)
        assert_int_equal(rkv_async_put(ac, "kf:k", 4, "v", 1, 0, on_reply, &t.reqs[i]), RKV_OK);
    /* Let the requests leave; the frozen node cannot answer them. */
    for (int i = 0; i < 5; i++)
        event_base_loop(t.base, EVLOOP_NONBLOCK);
    nodeproc_kill(np, SIGKILL);
    run_until(t.base, &t.done, n);
    run_until(t.base, &t.closes, 1);

    check_each_once(&t);
    assert_true(t.order_ok);
    for (int i = 1; i < n; i++)
        assert_int_equal(t.reqs[i].status, RKV_ERR_IO);
    assert_int_equal(t.closes, 1);
    assert_int_equal(t.close_status, RKV_ERR_IO);
    assert_int_equal(rkv_async_pending(ac), 0);
    assert_int_equal(rkv_async_get(ac, "kf:k", 4, on_reply, &t.reqs[0]), RKV_ERR_IO);
    assert_non_null(strstr(rkv_async_errstr(ac), "ended"));
    tctx_free(&t);
    assert_int_equal(nodeproc_restart(np), 0);
}

/* Killed from inside a callback while thousands are pipelined: every
 * request still gets exactly one callback, answered or failed. */
static void test_kill_mid_flight(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    /* Likely more than the node answers before the kill lands; those sent
     * after it (the last 100) fail whatever the timing. */
    const int n = 50100, sent = 50000;
    tctx t;
    tctx_init(&t, n);
    t.kill_np = np;
    t.kill_at = 100;
    t.kill_more_from = sent;
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    for (int i = 0; i < sent; i++)
        assert_int_equal(rkv_async_put(ac, "km:k", 4, "v", 1, 0, on_reply, &t.reqs[i]), RKV_OK);
    run_until(t.base, &t.done, n);
    run_until(t.base, &t.closes, 1);

    check_each_once(&t);
    assert_true(t.order_ok);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        assert_true(t.reqs[i].status == RKV_OK || t.reqs[i].status == RKV_ERR_IO);
        failed += t.reqs[i].status == RKV_ERR_IO;
        /* Answers come in order, so no OK follows a failure. */
        if (i && t.reqs[i - 1].status == RKV_ERR_IO)
            assert_int_equal(t.reqs[i].status, RKV_ERR_IO);
    }
    assert_true(failed >= n - sent);
    assert_int_equal(t.closes, 1);
    tctx_free(&t);
    assert_int_equal(nodeproc_restart(np), 0);
}

/* rkv_async_free from a request's callback: deferred until the callback
 * returns, then every remaining request fails once with RKV_ERR_IO. */
static void test_free_in_callback(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    const int n = 200;
    tctx t;
    tctx_init(&t, n);
    t.free_at = 10;
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    for (int i = 0; i < n; i++)
        assert_int_equal(rkv_async_get(ac, "fc:k", 4, on_reply, &t.reqs[i]), RKV_OK);
    run_until(t.base, &t.done, n);
    t.ac = NULL; /* freed by the library */

    check_each_once(&t);
    assert_true(t.order_ok);
    assert_true(t.refused_after_free);
    for (int i = 0; i <= 10; i++)
        assert_int_equal(t.reqs[i].status, RKV_NOT_FOUND);
    for (int i = 11; i < n; i++)
        assert_int_equal(t.reqs[i].status, RKV_ERR_IO);
    assert_int_equal(t.closes, 0); /* freeing is not the connection ending */
    /* Nothing of the freed connection is left on the loop. */
    assert_int_equal(event_base_loop(t.base, EVLOOP_NONBLOCK), 1);
    tctx_free(&t);
}

static void on_close_free(rkv_async *ac, rkv_status st, const char *why, void *arg)
{
    on_close(ac, st, why, arg);
    rkv_async_free(ac);
}

/* Freed outside any callback, with requests pending: their callbacks run
 * before rkv_async_free returns. Also: free from the close callback. */
static void test_free_with_pending(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    tctx t;
    tctx_init(&t, 50);
    rkv_async *ac = connect_to(&t, np->addr, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(rkv_async_ping(ac, on_reply, &t.reqs[i]), RKV_OK);
    rkv_async_free(ac);
    t.ac = NULL;
    assert_int_equal(t.done, 50);
    check_each_once(&t);
    for (int i = 0; i < 50; i++)
        assert_int_equal(t.reqs[i].status, RKV_ERR_IO);
    rkv_async_free(NULL);

    /* A connection that fails, freed from its close callback. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    tctx u;
    tctx_init(&u, 3);
    ac = connect_to(&u, addr, NULL);
    rkv_async_set_close_cb(ac, on_close_free, &u);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rkv_async_ping(ac, on_reply, &u.reqs[i]), RKV_OK);
    run_until(u.base, &u.closes, 1);
    u.ac = NULL;
    check_each_once(&u);
    for (int i = 0; i < 3; i++)
        assert_int_equal(u.reqs[i].status, RKV_ERR_IO);
    assert_int_equal(u.close_status, RKV_ERR_IO);
    close(fd);
    tctx_free(&u);
    tctx_free(&t);
}

/* Past max_output_bytes queued, requests are refused at once; what was
 * accepted is answered, and once it drains new requests are accepted. */
static void test_output_limit(void **state)
{
    nodeproc *np = *state;
    ensure_running(np);
    const int n = 1000;
    tctx t;
    tctx_init(&t, n);
    rkv_async_options o = {.max_output_bytes = 64 * 1024};
    rkv_async *ac = connect_to(&t, np->addr, &o);
    char value[1024];
    memset(value, 'x', sizeof value);
    /* Before the loop runs nothing is sent, so everything queues. */
    int accepted = 0;
    rkv_status st = RKV_OK;
    while (accepted < n) {
        st = rkv_async_put(ac, "ol:k", 4, value, sizeof value, 0, on_reply, &t.reqs[accepted]);
        if (st != RKV_OK)
            break;
        accepted++;
    }
    assert_int_equal(st, RKV_ERR_UNAVAILABLE);
    assert_non_null(strstr(rkv_async_errstr(ac), "max_output_bytes"));
    assert_true(accepted >= 50 && accepted <= 64);
    assert_true(rkv_async_queued_bytes(ac) <= 64 * 1024);
    assert_int_equal(rkv_async_pending(ac), accepted);
    run_until(t.base, &t.done, accepted);
    for (int i = 0; i < accepted; i++)
        assert_int_equal(t.reqs[i].status, RKV_OK);
    for (int i = accepted; i < n; i++)
        assert_int_equal(t.reqs[i].calls, 0); /* refused requests get no callback */
    assert_int_equal(
        rkv_async_put(ac, "ol:k", 4, value, sizeof value, 0, on_reply, &t.reqs[accepted]), RKV_OK);
    run_until(t.base, &t.done, accepted + 1);
    assert_int_equal(t.reqs[accepted].status, RKV_OK);
    tctx_free(&t);
}

/* Errors the node reports: a value over its limit fails that request alone
 * (the connection stays usable); past max_clients the node refuses the
 * connection itself (id 0), which fails what was pending with its status. */
static int limited_setup(void **state)
{
    nodeproc *np = calloc(1, sizeof *np);
    if (!np)
        return -1;
    *state = np; /* the teardown cleans up even after a failed start */
    char path[] = "/tmp/ringkv-test-conf-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    dprintf(fd, "[limits]\nmax_clients = 1\nmax_value_bytes = 1KiB\n");
    close(fd);
    const char *args[] = {"--config", path, NULL};
    int rc = nodeproc_start(np, args);
    unlink(path);
    return rc;
}

static int limited_teardown(void **state)
{
    return group_teardown(state);
}

static void test_node_errors(void **state)
{
    nodeproc *np = *state;

    /* The slot frees up once the node has seen nodeproc's start-up ping
     * close; until then a connection is refused. */
    tctx t;
    rkv_async *ac = NULL;
    for (int tries = 0; tries < 100; tries++) {
        tctx_init(&t, 3);
        ac = connect_to(&t, np->addr, NULL);
        assert_int_equal(rkv_async_ping(ac, on_reply, &t.reqs[0]), RKV_OK);
        run_until(t.base, &t.done, 1);
        if (t.reqs[0].status == RKV_OK)
            break;
        tctx_free(&t);
        ac = NULL;
        usleep(50 * 1000);
    }
    assert_non_null(ac);
    t.done = 0;
    t.reqs[0].calls = 0;
    char big[2048];
    memset(big, 'b', sizeof big);
    assert_int_equal(rkv_async_put(ac, "ne:k", 4, big, sizeof big, 0, on_reply, &t.reqs[0]),
                     RKV_OK);
    assert_int_equal(rkv_async_put(ac, "ne:k", 4, big, 10, 0, on_reply, &t.reqs[1]), RKV_OK);
    run_until(t.base, &t.done, 2);
    assert_int_equal(t.reqs[0].status, RKV_ERR_TOO_LARGE);
    assert_int_equal(t.reqs[1].status, RKV_OK);

    /* The only client slot is taken by ac. */
    tctx u;
    tctx_init(&u, 1);
    rkv_async *bc = connect_to(&u, np->addr, NULL);
    assert_int_equal(rkv_async_ping(bc, on_reply, &u.reqs[0]), RKV_OK);
    run_until(u.base, &u.closes, 1);
    check_each_once(&u);
    assert_int_equal(u.reqs[0].status, RKV_ERR_UNAVAILABLE);
    assert_int_equal(u.close_status, RKV_ERR_UNAVAILABLE);
    assert_non_null(strstr(rkv_async_errstr(bc), "refused"));

    /* ac still works. */
    assert_int_equal(rkv_async_get(ac, "ne:k", 4, on_reply, &t.reqs[2]), RKV_OK);
    run_until(t.base, &t.done, 3);
    assert_int_equal(t.reqs[2].status, RKV_OK);
    assert_int_equal(t.reqs[2].vlen, 10);
    check_each_once(&t);
    tctx_free(&u);
    tctx_free(&t);
}

static void test_bad_address_and_refused(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char err[256];
    assert_null(rkv_async_connect(base, "no-port", NULL, err, sizeof err));
    assert_non_null(strstr(err, "host:port"));
    assert_null(rkv_async_connect(base, "127.0.0.1:99999", NULL, err, sizeof err));
    assert_null(rkv_async_connect(NULL, "127.0.0.1:1", NULL, err, sizeof err));
    event_base_free(base);

    /* A port nobody listens on: the pending request and the close callback
     * both report the refusal. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    tctx t;
    tctx_init(&t, 1);
    rkv_async *ac = connect_to(&t, addr, NULL);
    assert_int_equal(rkv_async_ping(ac, on_reply, &t.reqs[0]), RKV_OK);
    run_until(t.base, &t.closes, 1);
    check_each_once(&t);
    assert_int_equal(t.reqs[0].status, RKV_ERR_IO);
    assert_non_null(strstr(rkv_async_errstr(ac), "cannot connect"));
    close(fd);
    tctx_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_10000),
        cmocka_unit_test(test_mixed_operations),
        cmocka_unit_test(test_consistency_sent),
        cmocka_unit_test(test_timeout_while_stopped),
        cmocka_unit_test(test_kill_while_frozen),
        cmocka_unit_test(test_kill_mid_flight),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test_setup_teardown(test_node_errors, limited_setup, limited_teardown),
        cmocka_unit_test(test_bad_address_and_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
