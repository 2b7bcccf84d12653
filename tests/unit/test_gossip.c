/* Unit tests for node/gossip.c (and its codec and queue): several instances
 * of the state machine on an in-memory network with per-link cuts, loss,
 * latency and duplication, a fake clock, and push-pull run synchronously
 * between two instances. Covers join, probes, suspicion, refutation, death,
 * leave, remove, restart, loss, conflicts and hostile input.
 * RINGKV_TEST_SEED=N in the environment reruns them with other random draws.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gossip.h"
#include "gossip_codec.h"
#include "gossip_queue.h"

#define MAXN    8
#define STEP_MS 5
#define MAXPKT  1400

typedef struct tevent {
    gossip_event_type type;
    char id[GOSSIP_ID_MAX + 1];
    gossip_state old, state;
    uint64_t incarnation, at;
} tevent;

struct tnet;

typedef struct tnode {
    struct tnet *net;
    int idx;
    gossip *g;
    bool running; /* ticked and receiving; false = crashed or paused */
    tevent *ev;
    size_t nev, capev;
} tnode;

typedef struct tpkt {
    uint64_t at;
    int from, to;
    size_t len;
    uint8_t data[MAXPKT];
} tpkt;

typedef struct tpp {
    int from;
    char to[GOSSIP_ADDR_MAX];
    bool join;
} tpp;

typedef struct tnet {
    uint64_t now, rng;
    gossip_config cfg;
    tnode node[MAXN];
    bool cut[MAXN][MAXN];
    uint32_t loss_pct, lat_min, lat_max;
    bool dup;
    tpkt *q;
    size_t nq, capq;
    tpp pp[64];
    size_t npp;
    size_t max_len;
    uint8_t last_pkt[MAXPKT]; /* a real datagram, for the malformed-input test */
    size_t last_len;
} tnet;

static uint64_t trand(tnet *net)
{
    uint64_t z = (net->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void addr_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "10.0.0.%d:7000", i);
}

static int index_of(const char *addr)
{
    int i;
    if (sscanf(addr, "10.0.0.%d:7000", &i) != 1 || i < 0 || i >= MAXN)
        return -1;
    return i;
}

static void t_send(void *ctx, const char *addr, const uint8_t *buf, size_t len)
{
    tnode *nd = ctx;
    tnet *net = nd->net;
    int to = index_of(addr);
    assert_true(len <= net->cfg.max_packet);
    if (len > net->max_len)
        net->max_len = len;
    memcpy(net->last_pkt, buf, len);
    net->last_len = len;
    if (to < 0 || net->cut[nd->idx][to])
        return;
    for (int copy = 0; copy < (net->dup ? 2 : 1); copy++) {
        if (trand(net) % 100 < net->loss_pct)
            continue;
        if (net->nq == net->capq) {
            net->capq = net->capq ? net->capq * 2 : 256;
            net->q = realloc(net->q, net->capq * sizeof(*net->q));
            assert_non_null(net->q);
        }
        tpkt *p = &net->q[net->nq++];
        p->at = net->now + net->lat_min + trand(net) % (net->lat_max - net->lat_min + 1);
        p->from = nd->idx;
        p->to = to;
        p->len = len;
        memcpy(p->data, buf, len);
    }
}

static void t_pushpull(void *ctx, const char *addr, bool join)
{
    tnode *nd = ctx;
    tnet *net = nd->net;
    assert_true(net->npp < 64);
    tpp *r = &net->pp[net->npp++];
    r->from = nd->idx;
    snprintf(r->to, sizeof r->to, "%s", addr);
    r->join = join;
}

static void t_event(void *ctx, const gossip_event *ev)
{
    tnode *nd = ctx;
    if (nd->nev == nd->capev) {
        nd->capev = nd->capev ? nd->capev * 2 : 64;
        nd->ev = realloc(nd->ev, nd->capev * sizeof(*nd->ev));
        assert_non_null(nd->ev);
    }
    tevent *e = &nd->ev[nd->nev++];
    e->type = ev->type;
    snprintf(e->id, sizeof e->id, "%s", ev->member->id);
    e->old = ev->old_state;
    e->state = ev->member->state;
    e->incarnation = ev->member->incarnation;
    e->at = nd->net->now;
}

static tnet *net_new(uint64_t seed)
{
    tnet *net = calloc(1, sizeof(*net));
    assert_non_null(net);
    /* RINGKV_TEST_SEED=N replays every scenario with other random choices */
    const char *env = getenv("RINGKV_TEST_SEED");
    net->rng = seed + (env ? strtoull(env, NULL, 10) * 1000 : 0);
    net->now = 1000000;
    net->lat_min = 1;
    net->lat_max = 2;
    gossip_config_defaults(&net->cfg);
    for (int i = 0; i < MAXN; i++) {
        net->node[i].net = net;
        net->node[i].idx = i;
    }
    return net;
}

static void net_free(tnet *net)
{
    for (int i = 0; i < MAXN; i++) {
        gossip_free(net->node[i].g);
        free(net->node[i].ev);
    }
    free(net->q);
    free(net);
}

static gossip *node_start(tnet *net, int i, const char *id, uint64_t incarnation)
{
    tnode *nd = &net->node[i];
    gossip_member self = {.state = GOSSIP_ALIVE, .incarnation = incarnation, .vnodes = 128};
    snprintf(self.id, sizeof self.id, "%s", id);
    addr_of(i, self.peer_addr, sizeof self.peer_addr);
    snprintf(self.client_addr, sizeof self.client_addr, "10.0.1.%d:7001", i);
    gossip_io io = {.ctx = nd, .send = t_send, .pushpull = t_pushpull, .event = t_event};
    gossip_free(nd->g);
    nd->g =
        gossip_new(&net->cfg, &self, &io, net->rng + (uint64_t)i * 7919 + incarnation, net->now);
    assert_non_null(nd->g);
    nd->running = true;
    nd->nev = 0;
    return nd->g;
}

static void node_join(tnet *net, int i, int seed)
{
    char addr[GOSSIP_ADDR_MAX];
    const char *seeds[1] = {addr};
    addr_of(seed, addr, sizeof addr);
    gossip_join(net->node[i].g, net->now, seeds, seed < 0 ? 0 : 1);
}

static void run_pushpulls(tnet *net)
{
    for (size_t k = 0; k < net->npp; k++) {
        tpp r = net->pp[k];
        tnode *a = &net->node[r.from];
        int b = index_of(r.to);
        bool ok = false;
        if (!a->running)
            continue;
        if (b >= 0 && net->node[b].running && !net->cut[r.from][b] && !net->cut[b][r.from]) {
            uint8_t *buf;
            size_t len;
            char err[256];
            assert_int_equal(gossip_encode_state(a->g, r.join, &buf, &len), 0);
            gossip_merge_result rc =
                gossip_merge_state(net->node[b].g, net->now, buf, len, err, sizeof err);
            free(buf);
            if (rc == GOSSIP_MERGE_OK) {
                assert_int_equal(gossip_encode_state(net->node[b].g, false, &buf, &len), 0);
                ok = gossip_merge_state(a->g, net->now, buf, len, err, sizeof err) ==
                     GOSSIP_MERGE_OK;
                free(buf);
            }
        }
        gossip_pushpull_done(a->g, net->now, r.to, ok);
    }
    net->npp = 0;
}

static void deliver(tnet *net)
{
    size_t keep = 0, n = net->nq;
    for (size_t k = 0; k < n; k++) {
        tpkt *p = &net->q[k];
        if (p->at > net->now) {
            net->q[keep++] = *p;
            continue;
        }
        tnode *to = &net->node[p->to];
        if (!to->running || !to->g)
            continue;
        char from[GOSSIP_ADDR_MAX];
        tpkt copy = *p; /* receiving may send, and sending may move net->q */
        addr_of(copy.from, from, sizeof from);
        gossip_receive(to->g, net->now, from, copy.data, copy.len);
    }
    /* packets sent during delivery were appended past n */
    if (net->nq > n)
        memmove(&net->q[keep], &net->q[n], (net->nq - n) * sizeof(*net->q));
    net->nq = keep + (net->nq - n);
}

static void step(tnet *net)
{
    net->now += STEP_MS;
    deliver(net);
    run_pushpulls(net);
    for (int i = 0; i < MAXN; i++)
        if (net->node[i].running)
            gossip_tick(net->node[i].g, net->now);
    run_pushpulls(net);
}

static void run(tnet *net, uint64_t ms)
{
    for (uint64_t end = net->now + ms; net->now < end;)
        step(net);
}

typedef bool (*pred_fn)(tnet *net, const void *arg);

/* Runs until pred holds; returns the time it took, or -1 past max_ms. */
static long run_until(tnet *net, uint64_t max_ms, pred_fn pred, const void *arg)
{
    uint64_t start = net->now;
    while (!pred(net, arg)) {
        if (net->now - start > max_ms)
            return -1;
        step(net);
    }
    return (long)(net->now - start);
}

static gossip_state state_at(tnet *net, int observer, const char *id)
{
    const gossip_member *m = gossip_find(net->node[observer].g, id);
    return m ? m->state : (gossip_state)-1;
}

typedef struct seen {
    const char *id;
    gossip_state state;
} seen;

/* Every running node other than id's own sees id in the given state. */
static bool all_see(tnet *net, const void *arg)
{
    const seen *s = arg;
    for (int i = 0; i < MAXN; i++) {
        tnode *nd = &net->node[i];
        if (nd->running && strcmp(gossip_self(nd->g)->id, s->id) != 0 &&
            state_at(net, i, s->id) != s->state)
            return false;
    }
    return true;
}

/* Every running node sees every running node alive. */
static bool converged(tnet *net, const void *arg)
{
    (void)arg;
    for (int i = 0; i < MAXN; i++)
        for (int j = 0; j < MAXN; j++)
            if (net->node[i].running && net->node[j].running &&
                state_at(net, i, gossip_self(net->node[j].g)->id) != GOSSIP_ALIVE)
                return false;
    return true;
}

static const char *id_of(int i)
{
    static const char *ids[MAXN] = {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    return ids[i];
}

/* n nodes, all joining through n0; returns once converged. */
static void cluster(tnet *net, int n)
{
    node_start(net, 0, id_of(0), 1);
    node_join(net, 0, -1);
    for (int i = 1; i < n; i++) {
        node_start(net, i, id_of(i), 1);
        node_join(net, i, 0);
    }
    /* a record that gossip missed arrives with push-pull, 15-30 s in */
    assert_true(run_until(net, 40000, converged, NULL) >= 0);
    for (int i = 0; i < n; i++)
        assert_true(gossip_joined(net->node[i].g));
}

static size_t count_events(tnet *net, int observer, const char *id, gossip_state to)
{
    size_t c = 0;
    tnode *nd = &net->node[observer];
    for (size_t k = 0; k < nd->nev; k++)
        if (nd->ev[k].type == GOSSIP_EV_STATE && strcmp(nd->ev[k].id, id) == 0 &&
            nd->ev[k].state == to)
            c++;
    return c;
}

static size_t count_all(tnet *net, const char *id, gossip_state to)
{
    size_t c = 0;
    for (int i = 0; i < MAXN; i++)
        if (net->node[i].g)
            c += count_events(net, i, id, to);
    return c;
}

/* ---- join and probing ---- */

static void test_join_3(void **state)
{
    (void)state;
    tnet *net = net_new(1);
    cluster(net, 3);
    size_t n;
    const gossip_member *m = gossip_members(net->node[2].g, &n);
    assert_int_equal(n, 3);
    assert_string_equal(m[0].id, "n0"); /* sorted by id */
    assert_string_equal(m[2].id, "n2");
    assert_string_equal(m[1].client_addr, "10.0.1.1:7001");
    net_free(net);
}

static void test_join_5(void **state)
{
    (void)state;
    tnet *net = net_new(2);
    cluster(net, 5);
    run(net, 10000);
    assert_true(converged(net, NULL));
    assert_int_equal(count_all(net, "n3", GOSSIP_SUSPECT), 0);
    net_free(net);
}

/* Join retries with backoff until the seed is up. */
static void test_join_retries(void **state)
{
    (void)state;
    tnet *net = net_new(3);
    node_start(net, 1, "n1", 1);
    node_join(net, 1, 0); /* n0 not started yet */
    run(net, 5000);
    assert_false(gossip_joined(net->node[1].g));
    node_start(net, 0, "n0", 1);
    node_join(net, 0, -1);
    assert_true(gossip_joined(net->node[0].g));
    assert_true(run_until(net, 40000, converged, NULL) >= 0);
    assert_true(gossip_joined(net->node[1].g));
    net_free(net);
}

static void test_indirect_probe(void **state)
{
    (void)state;
    tnet *net = net_new(4);
    cluster(net, 4);
    net->cut[0][1] = net->cut[1][0] = true; /* only n0 <-> n1 is down */
    run(net, 30000);
    gossip_stats st;
    gossip_get_stats(net->node[0].g, &st);
    assert_true(st.indirect_probes > 0);
    assert_int_equal(count_all(net, "n1", GOSSIP_DEAD), 0);
    assert_int_equal(count_all(net, "n0", GOSSIP_DEAD), 0);
    assert_int_equal(count_events(net, 0, "n1", GOSSIP_SUSPECT), 0);
    assert_true(converged(net, NULL));
    net_free(net);
}

/* ---- failure detection ---- */

static void test_crash(void **state)
{
    (void)state;
    tnet *net = net_new(5);
    cluster(net, 5);
    run(net, 3000);
    net->node[4].running = false;
    uint64_t t0 = net->now;
    seen dead = {"n4", GOSSIP_DEAD};
    long took = run_until(net, 60000, all_see, &dead);
    assert_true(took >= 0);
    /* n = 5: min = 4 * max(1, log10 5) * 500 ms = 2 s, max = 6 * min = 12 s */
    for (int i = 0; i < 4; i++) {
        tnode *nd = &net->node[i];
        uint64_t suspect_at = 0, dead_at = 0;
        for (size_t k = 0; k < nd->nev; k++) {
            if (strcmp(nd->ev[k].id, "n4") || nd->ev[k].type != GOSSIP_EV_STATE)
                continue;
            if (nd->ev[k].state == GOSSIP_SUSPECT && !suspect_at)
                suspect_at = nd->ev[k].at;
            if (nd->ev[k].state == GOSSIP_DEAD)
                dead_at = nd->ev[k].at;
        }
        assert_true(suspect_at > t0 && dead_at > suspect_at);
        assert_true(dead_at - t0 >= 2000);
        assert_true(dead_at - t0 <= 12000 + 3000); /* max timeout + time to first probe */
        assert_int_equal(count_events(net, i, "n4", GOSSIP_DEAD), 1);
    }
    net_free(net);
}

static void test_refute_after_partition(void **state)
{
    (void)state;
    tnet *net = net_new(6);
    cluster(net, 5);
    uint64_t inc = gossip_self(net->node[4].g)->incarnation;
    for (int i = 0; i < 4; i++)
        net->cut[i][4] = net->cut[4][i] = true;
    uint64_t start = net->now;
    while (count_all(net, "n4", GOSSIP_SUSPECT) == 0 && net->now - start < 10000)
        step(net);
    assert_true(count_all(net, "n4", GOSSIP_SUSPECT) > 0);
    for (int i = 0; i < 4; i++)
        net->cut[i][4] = net->cut[4][i] = false;
    assert_true(run_until(net, 10000, converged, NULL) >= 0);
    run(net, 15000);
    assert_true(converged(net, NULL));
    assert_int_equal(count_all(net, "n4", GOSSIP_DEAD), 0);
    assert_true(gossip_self(net->node[4].g)->incarnation > inc);
    assert_true(gossip_find(net->node[0].g, "n4")->incarnation > inc);
    gossip_stats st;
    gossip_get_stats(net->node[4].g, &st);
    assert_true(st.refutations >= 1);
    net_free(net);
}

/* Regression (found by the fault suite, tests/fault): a partition that
 * outlasts the suspicion timeout leaves each side taking the other for dead.
 * Nobody probes or push-pulls a dead member, so after the cut heals the two
 * sides never spoke again. Push-pull now also reaches for a dead member. */
static void test_heal_after_long_partition(void **state)
{
    (void)state;
    tnet *net = net_new(12);
    cluster(net, 3);
    for (int i = 0; i < 2; i++)
        net->cut[i][2] = net->cut[2][i] = true;
    seen dead = {"n2", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    /* and the cut-off node takes both others for dead */
    while ((state_at(net, 2, "n0") != GOSSIP_DEAD || state_at(net, 2, "n1") != GOSSIP_DEAD) &&
           net->now < 1000000 + 200000)
        step(net);
    assert_int_equal(state_at(net, 2, "n0"), GOSSIP_DEAD);
    assert_int_equal(state_at(net, 2, "n1"), GOSSIP_DEAD);
    run(net, 10000); /* the news of the deaths has been sent its last time */
    for (int i = 0; i < 2; i++)
        net->cut[i][2] = net->cut[2][i] = false;
    /* within two push-pull intervals (30 s each by default) */
    assert_true(run_until(net, 2 * net->cfg.pushpull_interval_ms + 5000, converged, NULL) >= 0);
    net_free(net);
}

static void test_pause_resume(void **state)
{
    (void)state;
    tnet *net = net_new(7);
    cluster(net, 5);
    uint64_t inc = gossip_self(net->node[3].g)->incarnation;
    net->node[3].running = false; /* SIGSTOP */
    seen dead = {"n3", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    net->node[3].running = true; /* SIGCONT */
    assert_true(run_until(net, 20000, converged, NULL) >= 0);
    assert_true(gossip_find(net->node[0].g, "n3")->incarnation > inc);
    run(net, 10000);
    assert_true(converged(net, NULL));
    net_free(net);
}

/* ---- leave, remove, restart ---- */

static void test_leave(void **state)
{
    (void)state;
    tnet *net = net_new(8);
    cluster(net, 4);
    gossip_leave(net->node[2].g, net->now);
    assert_int_equal(gossip_self(net->node[2].g)->state, GOSSIP_LEFT);
    seen left = {"n2", GOSSIP_LEFT};
    assert_true(run_until(net, 5000, all_see, &left) >= 0);
    net->node[2].running = false; /* the process exits */
    run(net, 30000);
    assert_true(all_see(net, &left));
    assert_int_equal(count_all(net, "n2", GOSSIP_SUSPECT), 0);
    assert_int_equal(count_all(net, "n2", GOSSIP_DEAD), 0);
    net_free(net);
}

static void test_remove(void **state)
{
    (void)state;
    tnet *net = net_new(9);
    char err[256];
    cluster(net, 4);
    assert_int_equal(gossip_remove(net->node[0].g, net->now, "n3", err, sizeof err), -1);
    assert_non_null(strstr(err, "alive"));
    assert_int_equal(gossip_remove(net->node[0].g, net->now, "n0", err, sizeof err), -1);
    assert_int_equal(gossip_remove(net->node[0].g, net->now, "nope", err, sizeof err), -1);
    net->node[3].running = false;
    seen dead = {"n3", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    assert_int_equal(gossip_remove(net->node[0].g, net->now, "n3", err, sizeof err), 0);
    seen removed = {"n3", GOSSIP_REMOVED};
    assert_true(run_until(net, 5000, all_see, &removed) >= 0);
    run(net, 40000); /* stale DEAD gossip must not undo it */
    assert_true(all_see(net, &removed));
    net_free(net);
}

static void test_rejoin_after_restart(void **state)
{
    (void)state;
    tnet *net = net_new(10);
    cluster(net, 4);
    net->node[3].running = false;
    seen dead = {"n3", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    node_start(net, 3, "n3", 2); /* same id and address, next incarnation */
    node_join(net, 3, 0);
    assert_true(run_until(net, 10000, converged, NULL) >= 0);
    for (int i = 0; i < 3; i++)
        assert_true(gossip_find(net->node[i].g, "n3")->incarnation >= 2);
    net_free(net);
}

/* ---- an unreliable network ---- */

static void test_loss_20(void **state)
{
    (void)state;
    tnet *net = net_new(11);
    net->loss_pct = 20;
    cluster(net, 6);
    run(net, 120000);
    for (int i = 0; i < 6; i++)
        assert_int_equal(count_all(net, id_of(i), GOSSIP_DEAD), 0);
    assert_true(run_until(net, 10000, converged, NULL) >= 0);
    net_free(net);
}

static void test_dup_reorder(void **state)
{
    (void)state;
    tnet *net = net_new(12);
    net->dup = true;
    net->lat_min = 1;
    net->lat_max = 60; /* reorders freely */
    cluster(net, 5);
    run(net, 20000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(count_all(net, id_of(i), GOSSIP_SUSPECT), 0);
    net->node[1].running = false;
    seen dead = {"n1", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    for (int i = 0; i < 5; i++)
        if (i != 1)
            assert_int_equal(count_events(net, i, "n1", GOSSIP_DEAD), 1);
    net_free(net);
}

static bool role_spread(tnet *net, const void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        if (gossip_find(net->node[i].g, "n1")->role != GOSSIP_ROLE_LEAVING)
            return false;
    return true;
}

/* Each observer reports each change once: one JOIN per member, and every
 * STATE event starts from the state the previous one ended in. */
static void test_events_once(void **state)
{
    (void)state;
    tnet *net = net_new(13);
    net->dup = true;
    cluster(net, 5);
    net->node[4].running = false;
    seen dead = {"n4", GOSSIP_DEAD};
    assert_true(run_until(net, 60000, all_see, &dead) >= 0);
    gossip_set_role(net->node[1].g, net->now, GOSSIP_ROLE_LEAVING, 64);
    assert_true(run_until(net, 40000, role_spread, NULL) >= 0); /* push-pull heals any miss */
    run(net, 3000);
    for (int i = 0; i < 4; i++) {
        tnode *nd = &net->node[i];
        for (int j = 0; j < 5; j++) {
            size_t joins = 0, updates = 0;
            gossip_state cur = GOSSIP_ALIVE;
            for (size_t k = 0; k < nd->nev; k++) {
                tevent *e = &nd->ev[k];
                if (strcmp(e->id, id_of(j)) != 0)
                    continue;
                if (e->type == GOSSIP_EV_JOIN) {
                    joins++;
                    cur = e->state;
                } else if (e->type == GOSSIP_EV_STATE) {
                    assert_int_equal(e->old, cur);
                    assert_int_not_equal(e->old, e->state);
                    cur = e->state;
                } else {
                    updates++;
                }
            }
            assert_int_equal(joins, i == j ? 0 : 1);
            assert_int_equal(updates, j == 1 ? 1 : 0);
        }
    }
    assert_int_equal(gossip_find(net->node[0].g, "n1")->role, GOSSIP_ROLE_LEAVING);
    assert_int_equal(gossip_find(net->node[0].g, "n1")->vnodes, 64);
    net_free(net);
}

/* Same seeds, same run: every random choice comes from the instance. */
static void test_replay(void **state)
{
    (void)state;
    gossip_stats a[2];
    for (int r = 0; r < 2; r++) {
        tnet *net = net_new(14);
        net->loss_pct = 5;
        cluster(net, 5);
        run(net, 10000);
        gossip_get_stats(net->node[2].g, &a[r]);
        net_free(net);
    }
    assert_memory_equal(&a[0], &a[1], sizeof a[0]);
}

/* ---- conflicts and hostile input ---- */

static void test_join_conflict(void **state)
{
    (void)state;
    tnet *net = net_new(15);
    char err[256];
    cluster(net, 3);
    gossip *imp = node_start(net, 5, "n1", 9); /* n1's id at another address */
    uint8_t *buf;
    size_t len;
    assert_int_equal(gossip_encode_state(imp, true, &buf, &len), 0);
    assert_int_equal(gossip_merge_state(net->node[0].g, net->now, buf, len, err, sizeof err),
                     GOSSIP_MERGE_CONFLICT);
    free(buf);
    assert_string_equal(err, "node id 'n1' is already used by a live node at 10.0.0.1:7000");
    node_join(net, 5, 0);
    run(net, 5000);
    assert_false(gossip_joined(imp));
    assert_string_equal(gossip_find(net->node[0].g, "n1")->peer_addr, "10.0.0.1:7000");
    net->node[5].running = false;
    run(net, 5000);
    assert_true(converged(net, NULL));
    net_free(net);
}

static void feed(gossip *g, const uint8_t *buf, size_t len, uint64_t expect_dropped)
{
    gossip_stats st;
    gossip_receive(g, 2000000, "10.0.0.7:7000", buf, len);
    gossip_get_stats(g, &st);
    assert_int_equal(st.packets_dropped, expect_dropped);
}

/* A packed GossipPacket with one record whose id is given raw. */
static size_t craft(uint8_t *out, const char *id, size_t idlen, int state)
{
    uint8_t rec[256];
    size_t r = 0, n = 0;
    rec[r++] = 0x0a; /* id */
    rec[r++] = (uint8_t)idlen;
    memcpy(rec + r, id, idlen);
    r += idlen;
    rec[r++] = 0x12; /* peer_addr */
    rec[r++] = 3;
    memcpy(rec + r, "a:1", 3);
    r += 3;
    if (state) {
        rec[r++] = 0x28;
        rec[r++] = (uint8_t)state;
    }
    out[n++] = GOSSIP_VERSION;
    out[n++] = 0x0a; /* sender_id "x" */
    out[n++] = 1;
    out[n++] = 'x';
    out[n++] = GOSSIP_UPDATE_TAG;
    out[n++] = (uint8_t)r;
    memcpy(out + n, rec, r);
    return n + r;
}

static void test_malformed_packets(void **state)
{
    (void)state;
    tnet *net = net_new(16);
    cluster(net, 2);
    run(net, 2000); /* so that a real datagram has been sent */
    assert_true(net->last_len > 0);
    gossip *g = net->node[0].g;
    uint8_t buf[MAXPKT + 10], good[MAXPKT];
    size_t glen = net->last_len, drops = 0;
    memcpy(good, net->last_pkt, glen);
    net->node[0].running = false; /* feed it by hand */

    size_t n = craft(buf, "ok", 2, 0);
    feed(g, buf, n, drops); /* well formed: accepted */
    assert_non_null(gossip_find(g, "ok"));
    feed(g, buf, 0, ++drops);                     /* empty */
    feed(g, (const uint8_t *)"\x01", 1, ++drops); /* no sender */
    buf[0] = 2;
    feed(g, buf, n, ++drops);         /* wrong version */
    feed(g, good, glen - 1, ++drops); /* truncated */
    memset(buf, 0xff, sizeof buf);
    buf[0] = GOSSIP_VERSION;
    feed(g, buf, 50, ++drops); /* garbage */
    n = craft(buf, "a\0b", 3, 0);
    feed(g, buf, n, ++drops); /* NUL inside a string */
    n = craft(buf, "bad id", 6, 0);
    feed(g, buf, n, ++drops); /* id charset */
    n = craft(buf, "ok2", 3, 9);
    feed(g, buf, n, ++drops); /* state out of range */
    memset(buf, 'a', sizeof buf);
    n = craft(buf, "ok3", 3, 0);
    feed(g, buf, MAXPKT + 1, ++drops); /* oversized */
    feed(g, good, glen, drops);        /* a real packet still passes */
    assert_null(gossip_find(g, "ok2"));
    assert_null(gossip_find(g, "ok3"));

    char err[256];
    uint8_t st[] = {GOSSIP_VERSION, 0x1a, 0x00, 0x1a, 0x00};
    assert_int_equal(gossip_merge_state(g, 1, st, sizeof st, err, sizeof err),
                     GOSSIP_MERGE_MALFORMED);
    assert_true(err[0] != '\0');
    assert_int_equal(gossip_merge_state(g, 1, st, 0, err, sizeof err), GOSSIP_MERGE_MALFORMED);
    st[0] = 9;
    assert_int_equal(gossip_merge_state(g, 1, st, sizeof st, err, sizeof err),
                     GOSSIP_MERGE_MALFORMED);
    net_free(net);
}

/* 200 members with pending updates: every datagram stays within
 * max_packet, and the updates drain within their retransmit limit. */
static void test_packet_size(void **state)
{
    (void)state;
    tnet *net = net_new(17);
    cluster(net, 2);
    Ringkv__GossipMember recs[200], *ptrs[200];
    gossip_member ms[200];
    for (int i = 0; i < 200; i++) {
        memset(&ms[i], 0, sizeof ms[i]);
        snprintf(ms[i].id, sizeof ms[i].id, "member-with-a-long-name-%03d", i);
        snprintf(ms[i].peer_addr, sizeof ms[i].peer_addr, "member-%03d.example.internal:7000", i);
        snprintf(ms[i].client_addr, sizeof ms[i].client_addr, "member-%03d.example:7001", i);
        ms[i].incarnation = 1;
        ms[i].state = GOSSIP_LEFT; /* not probed: all gossip goes to n1 */
        gossip_codec_member_pb(&ms[i], NULL, &recs[i]);
        ptrs[i] = &recs[i];
    }
    Ringkv__GossipPushPull s = RINGKV__GOSSIP_PUSH_PULL__INIT;
    s.sender_id = "n9";
    s.n_members = 200;
    s.members = ptrs;
    uint8_t *buf;
    size_t len;
    char err[256];
    assert_int_equal(gossip_codec_encode_state(&s, &buf, &len), 0);
    assert_int_equal(gossip_merge_state(net->node[0].g, net->now, buf, len, err, sizeof err),
                     GOSSIP_MERGE_OK);
    free(buf);
    size_t n;
    gossip_members(net->node[0].g, &n);
    assert_int_equal(n, 202);
    net->max_len = 0;
    run(net, 20000);
    assert_true(net->max_len > 1200); /* full packets, yet none over the limit */
    assert_true(net->max_len <= 1400);
    for (int i = 0; i < 200; i++)
        assert_non_null(gossip_find(net->node[1].g, ms[i].id));
    net_free(net);
}

/* ---- the queue and the codec on their own ---- */

static void test_queue(void **state)
{
    (void)state;
    gossip_queue *q = gossip_queue_new();
    gossip_qitem *a = NULL, *b = NULL;
    uint8_t out[64];
    assert_int_equal(gossip_queue_put(q, &a, (const uint8_t *)"AAAAAAAAAA", 10), 0);
    assert_int_equal(gossip_queue_put(q, &b, (const uint8_t *)"BBBBBBBBBB", 10), 0);
    assert_int_equal(gossip_queue_put(q, &a, (const uint8_t *)"aaaaaaaaaa", 10), 0); /* replaces */
    assert_int_equal(gossip_queue_len(q), 2);
    assert_int_equal(gossip_queue_fill(q, out, 15, 2), 10); /* one fits: the newest */
    assert_memory_equal(out, "aaaaaaaaaa", 10);
    assert_int_equal(gossip_queue_fill(q, out, 15, 2), 10); /* then the least sent */
    assert_memory_equal(out, "BBBBBBBBBB", 10);
    assert_int_equal(gossip_queue_fill(q, out, 64, 2), 20); /* both, last time */
    assert_int_equal(gossip_queue_len(q), 0);
    assert_null(a);
    assert_null(b);
    assert_int_equal(gossip_queue_put(q, &a, (const uint8_t *)"AAAAAAAAAA", 10), 0);
    gossip_queue_cancel(q, &a);
    assert_null(a);
    assert_int_equal(gossip_queue_put(q, &a, (const uint8_t *)"AAAAAAAAAA", 10), 0);
    gossip_queue_free(q);
    assert_null(a);
}

static void test_codec_validation(void **state)
{
    (void)state;
    assert_true(gossip_codec_valid_id("node-1.a_B"));
    assert_false(gossip_codec_valid_id(""));
    assert_false(gossip_codec_valid_id("a b"));
    char longid[70];
    memset(longid, 'x', 65);
    longid[65] = '\0';
    assert_false(gossip_codec_valid_id(longid));
    longid[64] = '\0';
    assert_true(gossip_codec_valid_id(longid));
    assert_true(gossip_codec_valid_addr("[::1]:7000", false));
    assert_false(gossip_codec_valid_addr("", false));
    assert_true(gossip_codec_valid_addr("", true));
    assert_false(gossip_codec_valid_addr("a b:1", false));
    assert_null(gossip_new(NULL, NULL, NULL, 0, 0));
    gossip_config cfg;
    gossip_config_defaults(&cfg);
    gossip_member self = {.id = "bad id", .peer_addr = "a:1"};
    gossip_io io = {.send = t_send};
    assert_null(gossip_new(&cfg, &self, &io, 1, 0));
    assert_string_equal(gossip_state_name(GOSSIP_REMOVED), "removed");
    assert_string_equal(gossip_role_name(GOSSIP_ROLE_JOINING), "joining");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_3),
        cmocka_unit_test(test_join_5),
        cmocka_unit_test(test_join_retries),
        cmocka_unit_test(test_indirect_probe),
        cmocka_unit_test(test_crash),
        cmocka_unit_test(test_refute_after_partition),
        cmocka_unit_test(test_heal_after_long_partition),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_rejoin_after_restart),
        cmocka_unit_test(test_loss_20),
        cmocka_unit_test(test_dup_reorder),
        cmocka_unit_test(test_events_once),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_join_conflict),
        cmocka_unit_test(test_malformed_packets),
        cmocka_unit_test(test_packet_size),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_codec_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
