/* replica_fx: the fixture test_replica.c and test_replica_reads.c share:
 * two nodes (store with a record cache, server, peer port, ring view,
 * replica layer) on one event base talking over loopback TCP, a "black
 * hole" peer that accepts and never answers, and short ways to run the
 * loop and to write a record to a node.
 */
#ifndef RINGKV_REPLICA_FX_H
#define RINGKV_REPLICA_FX_H

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

static inline uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void on_unrouted(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    (void)ctx, (void)pc, (void)env;
}

static inline void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

static inline void node_start(fx *f, tnode *n, const char *id, uint64_t timeout_ms, bool fresh)
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

static inline void node_stop(tnode *n)
{
    replica_free(n->r);
    cluster_free(n->cl);
    peer_free(n->pr);
    server_free(n->srv);
    store_close(n->st);
    n->r = NULL, n->cl = NULL, n->pr = NULL, n->srv = NULL, n->st = NULL;
}

/* Tells n's ring view about member id at addr in state st. */
static inline void see(tnode *n, const char *id, const char *addr, gossip_state st)
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

static inline void on_hole_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                  int socklen, void *arg)
{
    (void)l, (void)sa, (void)socklen;
    hole *h = arg;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = fd;
}

static inline void hole_start(fx *f)
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

static inline int setup_timeout(void **state, uint64_t timeout_ms)
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

static inline int setup(void **state)
{
    return setup_timeout(state, TIMEOUT_MS);
}

static inline int setup_short(void **state)
{
    return setup_timeout(state, 200);
}

static inline int teardown(void **state)
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
static inline bool run_until(fx *f, const int *count, int want, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (*count < want && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    return *count >= want;
}

static inline void run_for(fx *f, uint64_t ms)
{
    int never = 0;
    run_until(f, &never, 1, ms);
}

/* Runs the loop until each of g[0..n) has had its callback, or ms pass;
 * returns the callbacks counted. */
static inline int run_until_all(fx *f, const got *g, int n, uint64_t ms)
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

static inline void on_reply(void *arg, const char *from, const replica_reply *r)
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

static inline replica_record rec_of(const char *key, const char *val, bool tomb, uint64_t hlc)
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

static inline void write_ok(fx *f, const char *to, const char *key, const char *val, bool tomb,
                            uint64_t hlc)
{
    got g = {0};
    replica_record rec = rec_of(key, val, tomb, hlc);
    assert_int_equal(replica_write(f->a.r, to, &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    if (!g.ok)
        fail_msg("write to %s failed: %s", to, g.err);
}

static inline void count_prefetch(replica_cb cb, void *arg)
{
    if (cb == on_reply)
        ((got *)arg)->prefetched++;
}

#endif
