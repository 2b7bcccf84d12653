/* Unit tests for node/membership.c: several membership instances on one
 * libevent loop in one process, over real loopback sockets. They check what
 * the adapter adds around gossip: binding UDP and TCP on one port number,
 * joining through a seed, events reaching subscribers (and no longer after
 * unsubscribing), a duplicate id refused through the fatal callback, leave
 * with its done callback, remove, and the stats. (tests/integration/
 * test_membership.c drives real ringkvd processes.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "membership.h"

#define WAIT_MS 20000

typedef struct node {
    config cfg;
    membership *m;
    char fatal[512];
    int fatal_calls;
} node;

typedef struct fx {
    struct event_base *base;
    node n[3];
    int joins, states, other_calls;
    char last[128];
    bool left_done;
} fx;

static void on_fatal(void *ctx, const char *msg)
{
    node *nd = ctx;
    nd->fatal_calls++;
    snprintf(nd->fatal, sizeof nd->fatal, "%s", msg);
}

static void on_event(void *ctx, const gossip_event *ev)
{
    fx *f = ctx;
    if (ev->type == GOSSIP_EV_JOIN)
        f->joins++;
    if (ev->type == GOSSIP_EV_STATE)
        f->states++;
    snprintf(f->last, sizeof f->last, "%s %s", ev->member->id,
             gossip_state_name(ev->member->state));
}

static void on_other(void *ctx, const gossip_event *ev)
{
    (void)ev;
    ((fx *)ctx)->other_calls++;
}

static void on_left(void *ctx)
{
    ((fx *)ctx)->left_done = true;
}

static void fast_config(config *c, const char *seeds)
{
    config_defaults(c);
    snprintf(c->peer, sizeof c->peer, "127.0.0.1:0");
    snprintf(c->seeds, sizeof c->seeds, "%s", seeds);
    c->gossip.probe_interval_ms = 100;
    c->gossip.probe_timeout_ms = 50;
    c->gossip.suspicion_mult = 2;
    c->gossip.suspicion_max_mult = 3;
    c->gossip.interval_ms = 50;
    c->gossip.pushpull_interval_ms = 2000;
}

static membership *start(fx *f, int i, const char *id, const char *seeds)
{
    node *nd = &f->n[i];
    char err[256] = "";
    fast_config(&nd->cfg, seeds);
    membership_self self = {
        .id = id, .client_addr = "127.0.0.1:9", .resp_addr = "", .incarnation = 1, .vnodes = 16};
    nd->m = membership_new(f->base, &nd->cfg, &self, on_fatal, nd, err, sizeof err);
    if (!nd->m)
        fail_msg("membership_new(%s): %s", id, err);
    membership_start(nd->m);
    return nd->m;
}

/* What m says about id ("" if it does not know it). */
static const char *state_of(membership *m, const char *id)
{
    size_t n;
    const gossip_member *all = membership_members(m, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].id, id) == 0)
            return gossip_state_name(all[i].state);
    return "";
}

typedef bool (*cond_fn)(fx *f, const void *arg);

/* Runs the loop in 10 ms slices until cond holds or WAIT_MS pass. */
static bool run_until(fx *f, cond_fn cond, const void *arg)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        if (cond(f, arg))
            return true;
        struct timeval tv = {0, 10 * 1000};
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
    }
    return cond(f, arg);
}

typedef struct want {
    int node;
    const char *id, *state;
} want;

static bool has_state(fx *f, const void *arg)
{
    const want *w = arg;
    return strcmp(state_of(f->n[w->node].m, w->id), w->state) == 0;
}

static void wait_state(fx *f, int node, const char *id, const char *state)
{
    want w = {node, id, state};
    if (!run_until(f, has_state, &w))
        fail_msg("node %d still says %s is '%s', waiting for '%s'", node, id,
                 state_of(f->n[node].m, id), state);
}

static bool got_datagrams(fx *f, const void *arg)
{
    (void)f;
    membership_stats st;
    membership_get_stats((const membership *)arg, &st);
    return st.gossip.packets_received > 0 && st.gossip.packets_sent > 0;
}

static bool fatal_seen(fx *f, const void *arg)
{
    return f->n[*(const int *)arg].fatal_calls > 0;
}

static bool left_done(fx *f, const void *arg)
{
    (void)arg;
    return f->left_done;
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    *state = f;
    return f->base ? 0 : -1;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        membership_free(f->n[i].m);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void test_join_events_leave_remove(void **state)
{
    fx *f = *state;
    membership *a = start(f, 0, "a", "");
    const char *addr = membership_peer_addr(a);
    assert_non_null(strstr(addr, "127.0.0.1:"));
    assert_true(strcmp(addr, "127.0.0.1:0") != 0); /* the real port */
    assert_int_equal(membership_subscribe(a, on_event, f), 0);
    assert_int_equal(membership_subscribe(a, on_other, f), 0);
    membership_unsubscribe(a, on_other, f);

    /* Its own address among the seeds is skipped, as configs/ do. */
    char seeds[300];
    snprintf(seeds, sizeof seeds, "%s,%s", addr, addr);
    start(f, 1, "b", seeds);
    wait_state(f, 0, "b", "alive");
    wait_state(f, 1, "a", "alive");
    assert_true(f->joins >= 1);
    assert_int_equal(f->other_calls, 0);
    membership_stats st;
    membership_get_stats(a, &st);
    assert_int_equal(st.alive, 2);
    assert_true(run_until(f, got_datagrams, a)); /* probes flow over UDP */

    /* Leave: done is called once it has spread (or 1 s passed), and the
     * other side shows left. */
    membership_leave(f->n[1].m, 1000, on_left, f);
    assert_false(f->left_done); /* never from inside membership_leave */
    assert_true(run_until(f, left_done, NULL));
    wait_state(f, 0, "b", "left");
    assert_non_null(strstr(f->last, "b left"));
    membership_free(f->n[1].m);
    f->n[1].m = NULL;

    char err[256] = "";
    assert_int_equal(membership_remove(a, "a", err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(membership_remove(a, "nobody", err, sizeof err), -1);
    assert_int_equal(membership_remove(a, "b", err, sizeof err), 0);
    assert_string_equal(state_of(a, "b"), "removed");
    membership_get_stats(a, &st);
    assert_true(st.alive == 1 && st.removed == 1);
}

/* A node that claims a live member's id is refused through the fatal
 * callback, with a message naming the id; the live member is unaffected. */
static void test_duplicate_id_is_fatal(void **state)
{
    fx *f = *state;
    membership *a = start(f, 0, "a", "");
    start(f, 1, "b", membership_peer_addr(a));
    wait_state(f, 0, "b", "alive");
    start(f, 2, "b", membership_peer_addr(a));
    int who = 2;
    assert_true(run_until(f, fatal_seen, &who));
    assert_int_equal(f->n[2].fatal_calls, 1);
    assert_non_null(strstr(f->n[2].fatal, "refused this node's join"));
    assert_non_null(strstr(f->n[2].fatal, "b"));
    assert_int_equal(f->n[1].fatal_calls, 0);
    assert_string_equal(state_of(a, "b"), "alive");
}

/* A fixed peer port already taken for UDP (or TCP) is a clear error. */
static void test_port_in_use(void **state)
{
    fx *f = *state;
    membership *a = start(f, 0, "a", "");
    node *nd = &f->n[1];
    fast_config(&nd->cfg, "");
    snprintf(nd->cfg.peer, sizeof nd->cfg.peer, "%s", membership_peer_addr(a));
    membership_self self = {
        .id = "b", .client_addr = "127.0.0.1:9", .resp_addr = "", .incarnation = 1, .vnodes = 16};
    char err[256] = "";
    assert_null(membership_new(f->base, &nd->cfg, &self, on_fatal, nd, err, sizeof err));
    assert_non_null(strstr(err, "cannot"));
}

#define FT(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    log_set_level(LOG_WARN); /* every membership event is an info line */
    const struct CMUnitTest tests[] = {
        FT(test_join_events_leave_remove),
        FT(test_duplicate_id_is_fatal),
        FT(test_port_in_use),
    };
    return cmocka_run_group_tests_name("membership_loop", tests, NULL, NULL);
}
