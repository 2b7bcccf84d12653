/* Unit tests for node/replica.c: two nodes (store, server, peer port, ring
 * view, replica layer) on one event base talking over loopback TCP, plus
 * "black hole" peers that accept and never answer, to drive the link's
 * failure paths: a node that is down, a link cut mid-flight, timeouts, the
 * queue bound, and hinted handoff from store to delivery to deletion.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "cluster.h"
#include "config.h"
#include "gossip.h"
#include "peer.h"
#include "replica.h"
#include "server.h"
#include "store.h"

#define TIMEOUT_MS 3000

typedef struct tnode {
    char id[16];
    char dir[64];
    config cfg;
    store *st;
    server *srv;
    peer *pr;
    cluster *cl;
    replica *r;
} tnode;

/* A peer that accepts and then only holds the connection. */
typedef struct hole {
    struct evconnlistener *l;
    char addr[64];
    evutil_socket_t fd; /* the accepted one, or -1 */
} hole;

typedef struct fx {
    struct event_base *base;
    struct event *tick; /* keeps EVLOOP_ONCE from blocking for long */
    tnode a, b;
    hole h;
} fx;

typedef struct got {
    int calls;
    bool ok, found, tomb, version_only;
    char err[256], val[64], from[STORE_ORIGIN_MAX + 1], origin[STORE_ORIGIN_MAX + 1];
    uint64_t hlc;
    uint64_t b_records_at_ack; /* node b's committed record count when the ack came */
    store *b_st;
    int prefetched;          /* calls of the replica_prefetch_fn with this got */
    int prefetched_at_reply; /* prefetched, when the callback came */
    int order;               /* the callback's place among all the callbacks */
} got;

static int reply_order; /* callbacks so far, for got.order */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void on_unrouted(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    (void)ctx, (void)pc, (void)env;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

static void node_start(fx *f, tnode *n, const char *id, uint64_t timeout_ms, bool fresh)
{
    char err[256];
    if (fresh) {
        snprintf(n->id, sizeof n->id, "%s", id);
        strcpy(n->dir, "/tmp/ringkv-replica-XXXXXX");
        assert_non_null(mkdtemp(n->dir));
    }
    config_defaults(&n->cfg);
    snprintf(n->cfg.listen, sizeof n->cfg.listen, "127.0.0.1:0");
    snprintf(n->cfg.data_dir, sizeof n->cfg.data_dir, "%s", n->dir);
    /* With a record cache, as a node has: a read that names a version is
     * answered from its slot once a read has filled it. */
    store_options so = {.dir = n->dir,
                        .map_size = (size_t)256 << 20,
                        .fsync = STORE_FSYNC_NO,
                        .cache_size = (size_t)8 << 20};
    n->st = store_open(&so, err, sizeof err);
    if (!n->st)
        fail_msg("store_open: %s", err);
    if (!store_node_id(n->st)[0])
        assert_int_equal(store_set_node_id(n->st, id, err, sizeof err), 0);
    n->srv = server_new(f->base, &n->cfg, n->st, err, sizeof err);
    if (!n->srv)
        fail_msg("server_new: %s", err);
    n->pr = peer_new(f->base, "127.0.0.1:0", on_unrouted, NULL, err, sizeof err);
    if (!n->pr)
        fail_msg("peer_new: %s", err);
    n->srv->peer = n->pr;
    n->cl = cluster_new(&n->cfg, id, NULL, err, sizeof err);
    if (!n->cl)
        fail_msg("cluster_new: %s", err);
    n->r = replica_new(n->srv, n->cl, timeout_ms, err, sizeof err);
    if (!n->r)
        fail_msg("replica_new: %s", err);
    n->srv->replica = n->r;
}

static void node_stop(tnode *n)
{
    replica_free(n->r);
    cluster_free(n->cl);
    peer_free(n->pr);
    server_free(n->srv);
    store_close(n->st);
    n->r = NULL, n->cl = NULL, n->pr = NULL, n->srv = NULL, n->st = NULL;
}

/* Tells n's ring view about member id at addr in state st. */
static void see(tnode *n, const char *id, const char *addr, gossip_state st)
{
    gossip_member gm;
    memset(&gm, 0, sizeof gm);
    snprintf(gm.id, sizeof gm.id, "%s", id);
    snprintf(gm.peer_addr, sizeof gm.peer_addr, "%s", addr);
    gm.state = st;
    gm.role = GOSSIP_ROLE_MEMBER;
    gm.incarnation = 1;
    cluster_apply_member(n->cl, &gm);
}

static void on_hole_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int socklen, void *arg)
{
    (void)l, (void)sa, (void)socklen;
    hole *h = arg;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = fd;
}

static void hole_start(fx *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    f->h.fd = -1;
    f->h.l = evconnlistener_new_bind(f->base, on_hole_accept, &f->h,
                                     LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 16,
                                     (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(f->h.l);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(evconnlistener_get_fd(f->h.l), (struct sockaddr *)&ss, &len), 0);
    peer_format_addr((struct sockaddr *)&ss, f->h.addr, sizeof f->h.addr);
}

static int setup_timeout(void **state, uint64_t timeout_ms)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    event_add(f->tick, &tv);
    node_start(f, &f->a, "na", timeout_ms, true);
    node_start(f, &f->b, "nb", timeout_ms, true);
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_ALIVE);
    see(&f->b, "na", peer_bound_addr(f->a.pr), GOSSIP_ALIVE);
    hole_start(f);
    see(&f->a, "hole", f->h.addr, GOSSIP_ALIVE);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_timeout(state, TIMEOUT_MS);
}

static int setup_short(void **state)
{
    return setup_timeout(state, 200);
}

static int teardown(void **state)
{
    fx *f = *state;
    node_stop(&f->a);
    node_stop(&f->b);
    if (f->h.fd >= 0)
        close(f->h.fd);
    evconnlistener_free(f->h.l);
    event_free(f->tick);
    event_base_free(f->base);
    nftw(f->a.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    nftw(f->b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs the loop until *count reaches want or ms pass; true if it did. */
static bool run_until(fx *f, const int *count, int want, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (*count < want && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    return *count >= want;
}

static void run_for(fx *f, uint64_t ms)
{
    int never = 0;
    run_until(f, &never, 1, ms);
}

/* Runs the loop until each of g[0..n) has had its callback, or ms pass;
 * returns the callbacks counted. */
static int run_until_all(fx *f, const got *g, int n, uint64_t ms)
{
    int calls = 0;
    for (uint64_t end = mono_ms() + ms;;) {
        calls = 0;
        for (int i = 0; i < n; i++)
            calls += g[i].calls;
        if (calls >= n || mono_ms() >= end)
            return calls;
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

static void on_reply(void *arg, const char *from, const replica_reply *r)
{
    got *g = arg;
    g->calls++;
    g->prefetched_at_reply = g->prefetched;
    g->order = ++reply_order;
    g->ok = r->ok;
    snprintf(g->err, sizeof g->err, "%s", r->error ? r->error : "");
    snprintf(g->from, sizeof g->from, "%s", from);
    g->found = r->found;
    g->version_only = r->version_only;
    if (r->found) {
        g->tomb = r->rec.tombstone;
        g->hlc = r->rec.version.hlc;
        snprintf(g->origin, sizeof g->origin, "%s", r->rec.version.origin);
        snprintf(g->val, sizeof g->val, "%.*s", (int)r->rec.vlen, (const char *)r->rec.value);
    }
    if (g->b_st) {
        store_stats st;
        store_get_stats(g->b_st, &st);
        g->b_records_at_ack = st.records;
    }
}

static replica_record rec_of(const char *key, const char *val, bool tomb, uint64_t hlc)
{
    replica_record rec = {.key = (const uint8_t *)key,
                          .klen = strlen(key),
                          .value = (const uint8_t *)val,
                          .vlen = val ? strlen(val) : 0,
                          .tombstone = tomb};
    rec.version.hlc = hlc;
    snprintf(rec.version.origin, sizeof rec.version.origin, "na");
    return rec;
}

static void write_ok(fx *f, const char *to, const char *key, const char *val, bool tomb,
                     uint64_t hlc)
{
    got g = {0};
    replica_record rec = rec_of(key, val, tomb, hlc);
    assert_int_equal(replica_write(f->a.r, to, &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    if (!g.ok)
        fail_msg("write to %s failed: %s", to, g.err);
}

/* The ack comes only after the commit that holds the write, and the
 * replica's clock has seen the write's version. */
static void test_write_ack_after_commit(void **state)
{
    fx *f = *state;
    got g = {.b_st = f->b.st};
    uint64_t hlc = (uint64_t)1 << 50;
    replica_record rec = rec_of("k", "v", false, hlc);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_int_equal(g.calls, 0); /* never from replica_write itself */
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
    assert_string_equal(g.from, "nb");
    assert_int_equal(g.b_records_at_ack, 1); /* committed before the ack */
    assert_true(f->b.srv->clock.last >= hlc);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->b.st, "k", 1, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.value_len, 1);
    assert_int_equal(sr.version.hlc, hlc);
    assert_string_equal(sr.version.origin, "na");

    /* An older version is STALE, which is a success under LWW. */
    write_ok(f, "nb", "k", "older", false, hlc - 1);
    assert_int_equal(store_get(f->b.st, "k", 1, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.value_len, 1);

    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.writes_sent, 2);
    assert_int_equal(st.links_up, 1);
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.writes_applied, 2);
}

/* A write's frame is packed once and copied, with its own request id, for
 * the same record's other replicas: here the same node twice, on a link
 * that is up. The record in the same memory with a new version (as a
 * coordinator's reused operation holds it) is packed again. */
static void test_write_frame_copied_for_same_record(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "up", "v", false, (uint64_t)1 << 50); /* the link is up */
    char val[] = "v1";
    uint64_t hlc = ((uint64_t)1 << 50) + 10;
    replica_record rec = rec_of("same", val, false, hlc);
    got g[3] = {{.calls = 0}};
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[0]), 0);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[1]), 0);
    val[1] = '2';
    rec.version.hlc = hlc + 1;
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[2]), 0);
    assert_int_equal(run_until_all(f, g, 3, 5000), 3);
    for (int i = 0; i < 3; i++)
        if (!g[i].ok) /* a copy with the wrong id is never answered */
            fail_msg("write %d failed: %s", i, g[i].err);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->b.st, "same", 4, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.version.hlc, hlc + 1);
    assert_int_equal(sr.value_len, 2);
    assert_memory_equal(sr.value, "v2", 2);
    replica_stats st;
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.writes_applied, 4);
}

static void count_prefetch(replica_cb cb, void *arg)
{
    if (cb == on_reply)
        ((got *)arg)->prefetched++;
}

/* A replica acknowledges the writes of one commit in one frame per
 * connection: 500 writes sent at once come back acknowledged, each with its
 * own callback, once and in the order sent, in a few frames (one apiece
 * before). The answers after an acknowledgement's first go through the
 * replica_prefetch_fn before their callbacks. */
static void test_acks_batched(void **state)
{
    fx *f = *state;
    enum { NW = 500 };
    static got g[NW];
    char keys[NW][16];
    memset(g, 0, sizeof g);
    replica_set_prefetch(f->a.r, count_prefetch);
    peer_stats before, after;
    peer_get_stats(f->b.pr, &before);
    for (int i = 0; i < NW; i++) {
        snprintf(keys[i], sizeof keys[i], "batch%d", i);
        replica_record rec = rec_of(keys[i], "v", false, ((uint64_t)1 << 50) + (uint64_t)i);
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
    }
    assert_int_equal(run_until_all(f, g, NW, 5000), NW);
    int prefetched = 0;
    for (int i = 0; i < NW; i++) {
        assert_int_equal(g[i].calls, 1);
        if (!g[i].ok)
            fail_msg("write %d failed: %s", i, g[i].err);
        assert_string_equal(g[i].from, "nb");
        if (i > 0)
            assert_true(g[i].order > g[i - 1].order);
        assert_true(g[i].prefetched <= 1);
        prefetched += g[i].prefetched_at_reply;
    }
    peer_get_stats(f->b.pr, &after);
    uint64_t frames = after.frames_out - before.frames_out;
    assert_true(frames < NW / 10);
    /* Every answer but each frame's first was fetched ahead. */
    assert_true(prefetched >= NW - (int)frames);
    store_stats st;
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.records, NW);
    replica_stats rs;
    replica_get_stats(f->b.r, &rs);
    assert_int_equal(rs.writes_applied, NW);
}

/* Backpressure: more than REPLICA_PRESSURE_HIGH writes in flight to a peer
 * that answers pause the node's clients (server clients_paused), until the
 * peer has worked its way down to the low mark; every write is applied and
 * none dropped. */
static void test_backpressure(void **state)
{
    fx *f = *state;
    enum { NW = REPLICA_PRESSURE_HIGH + 1000 };
    static got g[NW];
    memset(g, 0, sizeof g);
    write_ok(f, "nb", "first", "v", false, 1); /* the link is up and answering */
    replica_record rec = rec_of("k", "v", false, 2);
    replica_stats st;
    for (int i = 0; i < NW; i++) {
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
        if (i == REPLICA_PRESSURE_HIGH - 2) {
            replica_get_stats(f->a.r, &st);
            assert_false(st.pressed);
            assert_false(f->a.srv->clients_paused);
        }
    }
    replica_get_stats(f->a.r, &st);
    assert_true(st.pressed);
    assert_int_equal(st.pressure_pauses, 1);
    assert_true(f->a.srv->clients_paused);
    assert_int_equal(run_until_all(f, g, NW, 20000), NW);
    for (int i = 0; i < NW; i++)
        assert_true(g[i].ok);
    replica_get_stats(f->a.r, &st);
    assert_false(st.pressed);
    assert_false(f->a.srv->clients_paused);
    assert_int_equal(st.queue_drops, 0);
}

/* Requests that outgrow the socket: a link writes what its socket takes at
 * the pass's end and leaves the rest to the bufferevent. Every write of
 * ten megabytes queued at once arrives and is acknowledged, and the link
 * then goes on as before. */
static void test_link_outgrows_socket(void **state)
{
    fx *f = *state;
    enum { NW = 160, VLEN = 64 * 1024 };
    static got g[NW];
    static uint8_t val[VLEN];
    static char keys[NW][16];
    memset(g, 0, sizeof g);
    memset(val, 'x', sizeof val);
    write_ok(f, "nb", "first", "v", false, 1); /* the link is up */
    for (int i = 0; i < NW; i++) {
        snprintf(keys[i], sizeof keys[i], "big%03d", i);
        replica_record rec = {.key = (const uint8_t *)keys[i], .klen = strlen(keys[i]),
                              .value = val, .vlen = VLEN};
        rec.version.hlc = 2 + (uint64_t)i;
        snprintf(rec.version.origin, sizeof rec.version.origin, "na");
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
    }
    assert_int_equal(run_until_all(f, g, NW, 20000), NW);
    for (int i = 0; i < NW; i++)
        if (!g[i].ok)
            fail_msg("write %d failed: %s", i, g[i].err);
    store_stats st;
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.records, NW + 1);
    write_ok(f, "nb", "last", "v", false, NW + 2);
}

/* A peer that stops answering pauses no one: writes to it queue (and, past
 * REPLICA_MAX_INFLIGHT, drop) as before, so that a stopped node does not
 * stall the writes of a cluster at `one`. */
static void test_stalled_peer_does_not_pause(void **state)
{
    fx *f = *state;
    enum { NW = REPLICA_PRESSURE_HIGH + 10 };
    static got g[NW];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[0]), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    run_for(f, 600); /* past REPLICA_STALL_MS without an answer */
    for (int i = 1; i < NW; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_false(st.pressed);
    assert_int_equal(st.pressure_pauses, 0);
    assert_false(f->a.srv->clients_paused);
    close(f->h.fd); /* every write fails, once */
    f->h.fd = -1;
    assert_int_equal(run_until_all(f, g, NW, 5000), NW);
}

static void read_key_having(fx *f, const char *key, const store_version *have, got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(
        replica_read(f->a.r, "nb", (const uint8_t *)key, strlen(key), have, on_reply, g), 0);
    assert_true(run_until(f, &g->calls, 1, 5000));
    assert_int_equal(g->calls, 1);
}

static void read_key(fx *f, const char *key, got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(
        replica_read(f->a.r, "nb", (const uint8_t *)key, strlen(key), NULL, on_reply, g), 0);
    assert_true(run_until(f, &g->calls, 1, 5000));
    assert_int_equal(g->calls, 1);
}

/* Present, absent and deleted keys; a tombstone is "found" with its
 * version so the coordinator can compare. */
static void test_read(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "here", "value", false, 100);
    write_ok(f, "nb", "gone", "x", false, 100);
    write_ok(f, "nb", "gone", NULL, true, 200);
    got g;
    read_key(f, "here", &g);
    assert_true(g.ok);
    assert_true(g.found);
    assert_false(g.tomb);
    assert_string_equal(g.val, "value");
    assert_int_equal(g.hlc, 100);
    read_key(f, "absent", &g);
    assert_true(g.ok);
    assert_false(g.found);
    read_key(f, "gone", &g);
    assert_true(g.ok);
    assert_true(g.found);
    assert_true(g.tomb);
    assert_int_equal(g.hlc, 200);
}

/* Node b answers a's requests on its own link to a once it has one (a
 * opened its link with a LinkHello naming itself), in the writes that carry
 * b's requests; before that, and for answers that go alone, back on a's
 * link. Every request gets its one answer either way. */
static void test_answers_ride_own_link(void **state)
{
    fx *f = *state;
    replica_stats st;
    write_ok(f, "nb", "k0", "v0", false, 100); /* b has no link to a yet */
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.answers_on_link, 0);
    assert_int_equal(st.links_up, 0);

    /* b writes to a: b's link to a comes up. */
    got g = {0};
    replica_record rec = rec_of("from-b", "x", false, 100);
    assert_int_equal(replica_write(f->b.r, "na", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);

    /* Both ways at once, in the same passes: 200 writes each way, and reads
     * from a to b that b answers without a value (absent) and with one. */
    enum { N = 200 };
    static got ga[N], gb[N], gr[2];
    static replica_record ra[N], rb[N];
    static char keys[N][16];
    memset(ga, 0, sizeof ga), memset(gb, 0, sizeof gb), memset(gr, 0, sizeof gr);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ra[i] = rec_of(keys[i], "a", false, 200);
        rb[i] = rec_of(keys[i], "b", false, 200);
        assert_int_equal(replica_write(f->a.r, "nb", &ra[i], NULL, on_reply, &ga[i]), 0);
        assert_int_equal(replica_write(f->b.r, "na", &rb[i], NULL, on_reply, &gb[i]), 0);
    }
    assert_int_equal(run_until_all(f, ga, N, 5000), N);
    assert_int_equal(run_until_all(f, gb, N, 5000), N);
    for (int i = 0; i < N; i++) {
        if (!ga[i].ok || !gb[i].ok)
            fail_msg("write %d: a->b %s, b->a %s", i, ga[i].err, gb[i].err);
        assert_int_equal(ga[i].calls, 1);
        assert_int_equal(gb[i].calls, 1);
    }
    assert_int_equal(replica_read(f->a.r, "nb", (const uint8_t *)"absent", 6, NULL, on_reply, &gr[0]),
                     0);
    assert_int_equal(replica_read(f->a.r, "nb", (const uint8_t *)"k0", 2, NULL, on_reply, &gr[1]), 0);
    assert_int_equal(run_until_all(f, gr, 2, 5000), 2);
    assert_true(gr[0].ok);
    assert_false(gr[0].found);
    assert_true(gr[1].ok);
    assert_true(gr[1].found);
    assert_string_equal(gr[1].val, "a");

    replica_get_stats(f->b.r, &st);
    assert_true(st.answers_on_link > 0);
    assert_int_equal(st.writes_applied, 1 + N); /* k0, then the N from a */
    replica_get_stats(f->a.r, &st);
    assert_true(st.answers_on_link > 0);
    assert_int_equal(st.links_up, 1); /* no second link: the answers came on b's */
    run_for(f, 50);
    assert_int_equal(ga[0].calls, 1); /* nothing answered twice */
}

/* A read that names a version it has gets the version alone back when the
 * replica's is not newer (the same, or older by HLC or by origin), and the
 * whole record when it is newer or when the read names none. The first
 * read of a key reads its record, and fills the cache; the next ones are
 * answered from its slot, with the same answers. */
static void test_read_with_a_version(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "here", "value", false, 100); /* origin "na" */
    store_version same = {.hlc = 100}, newer = {.hlc = 100}, older = {.hlc = 99};
    snprintf(same.origin, sizeof same.origin, "na");
    snprintf(newer.origin, sizeof newer.origin, "nz"); /* the tie goes to the origin */
    snprintf(older.origin, sizeof older.origin, "nz");
    const store_version *not_newer[] = {&same, &newer, &same, &newer};
    got g;
    store_stats st;
    for (size_t i = 0; i < 4; i++) {
        read_key_having(f, "here", not_newer[i], &g);
        assert_true(g.ok);
        assert_true(g.found);
        assert_true(g.version_only);
        assert_int_equal(g.hlc, 100);
        assert_string_equal(g.origin, "na");
        assert_false(g.tomb); /* a version-only answer holds the version alone */
        assert_string_equal(g.val, "");
    }
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.cache_version_hits, 3);
    read_key_having(f, "here", &older, &g);
    assert_true(g.ok);
    assert_false(g.version_only);
    assert_string_equal(g.val, "value");
    read_key_having(f, "absent", &same, &g);
    assert_true(g.ok);
    assert_false(g.found);
    read_key(f, "here", &g);
    assert_false(g.version_only);
    assert_string_equal(g.val, "value");
}

/* The reads of one pass answered without a value (the version alone, or
 * not found) come back in one ReadReplies frame per connection; answers
 * with a value go alone. 300 reads sent at once: each callback once, in
 * the order sent, with its own answer, and the batched ones through the
 * replica_prefetch_fn first. */
static void test_reads_batched(void **state)
{
    fx *f = *state;
    enum { NK = 100, NR = 3 * NK };
    static got g[NR];
    static char keys[NK][16], absent[NK][16];
    write_ok(f, "nb", "warm", "v", false, 1);
    for (int i = 0; i < NK; i++) {
        snprintf(keys[i], sizeof keys[i], "rk%d", i);
        snprintf(absent[i], sizeof absent[i], "ra%d", i);
        write_ok(f, "nb", keys[i], "value", i % 2 == 1, 100 + (uint64_t)i); /* odd: deleted */
    }
    memset(g, 0, sizeof g);
    replica_set_prefetch(f->a.r, count_prefetch);
    peer_stats before, after;
    peer_get_stats(f->b.pr, &before);
    for (int i = 0; i < NK; i++) {
        store_version have = {.hlc = 100 + (uint64_t)i};
        snprintf(have.origin, sizeof have.origin, "na");
        const uint8_t *k = (const uint8_t *)keys[i], *a = (const uint8_t *)absent[i];
        assert_int_equal(replica_read(f->a.r, "nb", k, strlen(keys[i]), &have, on_reply, &g[3 * i]), 0);
        assert_int_equal(replica_read(f->a.r, "nb", a, strlen(absent[i]), &have, on_reply, &g[3 * i + 1]), 0);
        assert_int_equal(replica_read(f->a.r, "nb", k, strlen(keys[i]), NULL, on_reply, &g[3 * i + 2]), 0);
    }
    assert_int_equal(run_until_all(f, g, NR, 5000), NR);
    for (int i = 0; i < NK; i++) {
        const got *v = &g[3 * i], *n = &g[3 * i + 1], *w = &g[3 * i + 2];
        assert_int_equal(v->calls + n->calls + w->calls, 3);
        assert_true(v->ok && v->found && v->version_only);
        assert_int_equal(v->hlc, 100 + (uint64_t)i);
        assert_false(v->tomb); /* the version alone */
        assert_true(n->ok && !n->found);
        assert_true(w->ok && w->found && !w->version_only);
        assert_int_equal(w->tomb, i % 2 == 1);
        assert_string_equal(w->val, i % 2 == 1 ? "" : "value");
        assert_true(v->order < n->order); /* the batch keeps its order */
        assert_int_equal(v->prefetched_at_reply, 1);
        assert_int_equal(n->prefetched_at_reply, 1);
    }
    peer_get_stats(f->b.pr, &after);
    /* The 100 answers with a value, and the other 200 in a few frames. */
    uint64_t frames = after.frames_out - before.frames_out;
    assert_true(frames >= NK && frames < NK + 20);
    replica_stats st;
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.reads_served, NR);
}

/* A node the ring view sees down fails at once, without a connection. */
static void test_down_peer_fails_at_once(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got g = {0};
    replica_record rec = rec_of("k", "v", false, 1);
    uint64_t t0 = mono_ms();
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(mono_ms() - t0 < 1000);
    assert_false(g.ok);
    assert_non_null(strstr(g.err, "nb is down"));
    run_for(f, 50);
    assert_int_equal(g.calls, 1);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.links_up, 0);
    assert_int_equal(st.failures, 1);
}

/* A link that is up keeps what the cluster said of its node only while
 * the cluster has not changed: the node taken for dead fails the next
 * request at once, and back up it gets the one after; moved to another
 * address, the link follows it there. */
static void test_link_follows_the_cluster(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "k", "v", false, 1);
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got g = {0};
    replica_record rec = rec_of("k", "w", false, 2);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_false(g.ok);
    assert_non_null(strstr(g.err, "nb is down"));
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_ALIVE);
    write_ok(f, "nb", "k", "w", false, 3);
    /* nb now at the black hole's address: the next write goes there. */
    see(&f->a, "nb", f->h.addr, GOSSIP_ALIVE);
    memset(&g, 0, sizeof g);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    assert_int_equal(g.calls, 0); /* the hole never answers */
}

/* A link cut with requests in flight fails each of them exactly once; the
 * next request after the backoff reconnects. */
static void test_link_killed_mid_flight(void **state)
{
    fx *f = *state;
    got g[5];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    run_for(f, 50);
    for (int i = 0; i < 5; i++)
        assert_int_equal(g[i].calls, 0);
    close(f->h.fd);
    f->h.fd = -1;
    int total = 0;
    end = mono_ms() + 3000;
    while (mono_ms() < end) {
        event_base_loop(f->base, EVLOOP_ONCE);
        total = 0;
        for (int i = 0; i < 5; i++)
            total += g[i].calls;
        if (total == 5)
            break;
    }
    assert_int_equal(total, 5);
    /* Within the backoff (100 ms after the first failure) a request fails
     * at once, saying so. */
    got again = {0};
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &again), 0);
    assert_true(run_until(f, &again.calls, 1, 1000));
    assert_non_null(strstr(again.err, "retry in"));
    run_for(f, 300);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_false(g[i].ok);
        assert_non_null(strstr(g[i].err, "lost"));
    }
    assert_int_equal(again.calls, 1);
    /* After it, a new connection. */
    got later = {0};
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &later), 0);
    end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_true(st.reconnects >= 1);
}

/* Requests nobody answers time out, each once, and the link stays. */
static void test_timeout(void **state)
{
    fx *f = *state;
    got g[3];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 3; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    assert_true(run_until(f, &g[2].calls, 1, 3000));
    uint64_t took = mono_ms() - t0;
    assert_true(took >= 150);
    run_for(f, 300);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_non_null(strstr(g[i].err, "timeout"));
    }
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.links_up, 1);
}

/* Past the queue's byte bound, a request fails at once with "queue full". */
static void test_queue_bound(void **state)
{
    fx *f = *state;
    size_t big = (size_t)12 << 20;
    char *val = malloc(big + 1);
    assert_non_null(val);
    memset(val, 'x', big);
    val[big] = '\0';
    got g[8];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", val, false, 1);
    for (int i = 0; i < 8; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    free(val);
    run_for(f, 50);
    int full = 0;
    for (int i = 0; i < 8; i++)
        if (g[i].calls == 1 && strstr(g[i].err, "queue full"))
            full++;
    assert_int_equal(full, 3); /* 5 x 12 MiB fit in 64 MiB */
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.queue_drops, 3);
}

static int hints_pending(tnode *n)
{
    replica_stats st;
    replica_get_stats(n->r, &st);
    return (int)st.hints_pending;
}

/* A write for a down owner is kept as a durable hint (also across a restart
 * of the stand-in), delivered when the owner comes up, and deleted after
 * its ack. */
static void test_hinted_handoff(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    /* Through the network, a write with hint_for is stored as a hint. */
    got g = {0};
    replica_record rec = rec_of("remote", "r", false, 7);
    assert_int_equal(replica_write(f->b.r, "na", &rec, "nb", on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "h%d", i);
        got l = {0};
        rec = rec_of(key, "hv", false, 10 + (uint64_t)i);
        assert_int_equal(replica_apply_local(f->a.r, &rec, "nb", on_reply, &l), 0);
        assert_true(run_until(f, &l.calls, 1, 5000));
        assert_true(l.ok);
    }
    assert_int_equal(hints_pending(&f->a), 4);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->a.st, "h0", 2, 1, &sr, err, sizeof err), STORE_NOT_FOUND);
    assert_int_equal(store_get(f->b.st, "h0", 2, 1, &sr, err, sizeof err), STORE_NOT_FOUND);

    /* The stand-in restarts: the hints are still there. */
    node_stop(&f->a);
    node_start(f, &f->a, "na", TIMEOUT_MS, false);
    see(&f->b, "na", peer_bound_addr(f->a.pr), GOSSIP_ALIVE);
    assert_int_equal(hints_pending(&f->a), 4);

    /* The owner comes up: every hint arrives and is deleted. */
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_ALIVE);
    uint64_t end = mono_ms() + 5000;
    while (hints_pending(&f->a) > 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(hints_pending(&f->a), 0);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "h%d", i);
        assert_int_equal(store_get(f->b.st, key, 2, 1, &sr, err, sizeof err), STORE_OK);
        assert_int_equal(sr.version.hlc, 10 + (uint64_t)i);
    }
    assert_int_equal(store_get(f->b.st, "remote", 6, 1, &sr, err, sizeof err), STORE_OK);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.hints_delivered, 4);
}

/* Hints for an owner that is down stay put; a tick later they go. */
static void test_hints_wait_for_owner(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got l = {0};
    replica_record rec = rec_of("w", "v", false, 5);
    assert_int_equal(replica_apply_local(f->a.r, &rec, "nb", on_reply, &l), 0);
    assert_true(run_until(f, &l.calls, 1, 5000));
    run_for(f, 2500); /* a tick passes with the owner down */
    assert_int_equal(hints_pending(&f->a), 1);
}

/* The bytes proto/README.md shows for a write_ack and a read. */
static void test_documented_frames(void **state)
{
    (void)state;
    static const uint8_t ack_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08,
                                        0x08, 0x01, 0x6a, 0x04, 0x08, 0x07, 0x10, 0x01};
    static const uint8_t read_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08,
                                         0x01, 0x72, 0x05, 0x08, 0x09, 0x12, 0x01, 0x6b};
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWriteAck ack = RINGKV__REPLICA_WRITE_ACK__INIT;
    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    uint8_t *buf;
    size_t len;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE_ACK;
    env.write_ack = &ack;
    ack.id = 7;
    ack.ok = true;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof ack_bytes);
    assert_memory_equal(buf, ack_bytes, len);
    free(buf);
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    rd.id = 9;
    rd.key.data = (uint8_t *)"k";
    rd.key.len = 1;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof read_bytes);
    assert_memory_equal(buf, read_bytes, len);
    free(buf);
    /* A link's first frame, LinkHello{node_id: "na"} (field 25). */
    static const uint8_t hello_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08,
                                          0x01, 0xca, 0x01, 0x04, 0x0a, 0x02, 0x6e, 0x61};
    Ringkv__LinkHello hello = RINGKV__LINK_HELLO__INIT;
    hello.node_id = "na";
    env.body_case = RINGKV__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof hello_bytes);
    assert_memory_equal(buf, hello_bytes, len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_frames),
        cmocka_unit_test_setup_teardown(test_write_ack_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_frame_copied_for_same_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_with_a_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_ride_own_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_outgrows_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_peer_does_not_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_peer_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_follows_the_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_killed_mid_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup_short, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hinted_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_wait_for_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
