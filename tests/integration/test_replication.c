/* test_replication: quorum reads and writes, hinted handoff and read repair
 * on three real gossiping nodes with N = 3.
 *
 * The tests run in order on one cluster (r1, r2, r3): 10,000 keys written at
 * quorum survive a kill -9; a write at `all` with a node down is refused as
 * unavailable; the node restarted gets its hints and serves every key at
 * `one`; read repair fixes a replica that missed writes; a client that only
 * knows the old topology keeps working after a node dies. Requests go
 * straight to one node over a raw connection, pipelined, so each test says
 * which node coordinates. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nodeproc.h"
#include "rawconn.h"
#include "ringkv.h"

#define WAIT_MS 30000
#define N_NODES 3
#define NKEYS   10000
#define NDOWN   200 /* keys written while r3 is down */
#define NREPAIR 100

typedef nodeproc_cluster cluster;

static const char *const ids[N_NODES] = {"r1", "r2", "r3"};

static const char conf_text[] = NODEPROC_FAST_GOSSIP "[replication]\n"
                                                     "n = 3\n"
                                                     "request_timeout = 1s\n";

static void wait_stat(int port, const char *name, long long want, const char *who)
{
    long long v;
    if (raw_wait_stat(port, name, want, WAIT_MS, &v) != 0)
        fail_msg("%s: %s is %lld, waiting for %lld", who, name, v, want);
}

static int group_setup(void **state)
{
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -1;
    if (nodeproc_cluster_start(cl, N_NODES, ids, conf_text) != 0) {
        nodeproc_cluster_cleanup(cl);
        free(cl);
        return -1;
    }
    for (int i = 0; i < N_NODES; i++)
        wait_stat(cl->n[i].port, "members_alive", N_NODES, ids[i]);
    *state = cl;
    return 0;
}

static int group_teardown(void **state)
{
    cluster *cl = *state;
    nodeproc_cluster_cleanup(cl);
    free(cl);
    return 0;
}

static void quorum_writes_survive_kill(void **state)
{
    cluster *cl = *state;
    raw_tally t;
    assert_int_equal(
        raw_batch(cl->n[0].port, WIRE_OP_PUT, "k", 0, NKEYS, WIRE_CONSISTENCY_QUORUM, &t), 0);
    if (t.st[WIRE_OK] != NKEYS)
        fail_msg("%zu of %d writes OK; last error: %s", t.st[WIRE_OK], NKEYS, t.msg);
    /* r3 holds them all before it dies (its acks may trail the quorum) */
    wait_stat(cl->n[2].port, "keys", NKEYS, "r3");
    nodeproc_kill(&cl->n[2], SIGKILL);
    for (int via = 0; via < 2; via++) {
        assert_int_equal(
            raw_batch(cl->n[via].port, WIRE_OP_GET, "k", 0, NKEYS, WIRE_CONSISTENCY_QUORUM, &t), 0);
        if (t.st[WIRE_OK] != NKEYS || t.bad_value)
            fail_msg("via %s: %zu of %d reads OK, %zu wrong values; last error: %s", ids[via],
                     t.st[WIRE_OK], NKEYS, t.bad_value, t.msg);
    }
}

static void write_at_all_with_node_down_is_unavailable(void **state)
{
    cluster *cl = *state;
    raw_tally t;
    wait_stat(cl->n[0].port, "members_dead", 1, "r1");
    assert_int_equal(raw_batch(cl->n[0].port, WIRE_OP_PUT, "all", 0, 1, WIRE_CONSISTENCY_ALL, &t),
                     0);
    assert_int_equal(t.st[WIRE_ERR_UNAVAILABLE], 1);
    assert_non_null(strstr(t.msg, "need 3 replicas, 2 up"));
    /* quorum still works, and r3's copies wait as hints */
    long long hints = raw_stat(cl->n[0].port, "hints_stored");
    assert_int_equal(
        raw_batch(cl->n[0].port, WIRE_OP_PUT, "down", 0, NDOWN, WIRE_CONSISTENCY_QUORUM, &t), 0);
    assert_int_equal(t.st[WIRE_OK], NDOWN);
    assert_true(raw_stat(cl->n[0].port, "hints_stored") >= hints + NDOWN);
}

static void restarted_node_gets_its_hints(void **state)
{
    cluster *cl = *state;
    raw_tally t;
    assert_int_equal(nodeproc_restart(&cl->n[2]), 0);
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    for (;;) { /* straight from r3, at one: its own copy answers first */
        assert_int_equal(
            raw_batch(cl->n[2].port, WIRE_OP_GET, "down", 0, NDOWN, WIRE_CONSISTENCY_ONE, &t), 0);
        if (t.st[WIRE_OK] == NDOWN && !t.bad_value)
            break;
        if (nodeproc_now_ms() > deadline)
            fail_msg("r3 serves %zu of %d keys written while it was down", t.st[WIRE_OK], NDOWN);
        nodeproc_sleep_ms(100);
    }
    assert_true(raw_stat(cl->n[0].port, "hints_delivered") >= NDOWN);
    assert_int_equal(raw_batch(cl->n[2].port, WIRE_OP_GET, "k", 0, NKEYS, WIRE_CONSISTENCY_ONE, &t),
                     0);
    assert_int_equal(t.st[WIRE_OK], NKEYS);
    assert_int_equal(t.bad_value, 0);
}

static void read_repair_fixes_a_stale_replica(void **state)
{
    cluster *cl = *state;
    raw_tally t;
    /* r2 dies and comes back before gossip can tell: the writes meant for it
     * fail on the link, with no hint, so only a repair brings them. */
    nodeproc_kill(&cl->n[1], SIGKILL);
    assert_int_equal(
        raw_batch(cl->n[0].port, WIRE_OP_PUT, "rr", 0, NREPAIR, WIRE_CONSISTENCY_QUORUM, &t), 0);
    assert_int_equal(t.st[WIRE_OK], NREPAIR);
    assert_int_equal(nodeproc_restart(&cl->n[1]), 0);
    long long repairs = raw_stat(cl->n[0].port, "read_repairs");
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    for (;;) { /* at all: every replica answers, so r2's gap is seen */
        assert_int_equal(
            raw_batch(cl->n[0].port, WIRE_OP_GET, "rr", 0, NREPAIR, WIRE_CONSISTENCY_ALL, &t), 0);
        if (t.st[WIRE_OK] == NREPAIR)
            break;
        if (nodeproc_now_ms() > deadline)
            fail_msg("reads at all: %zu of %d OK; last error: %s", t.st[WIRE_OK], NREPAIR, t.msg);
        nodeproc_sleep_ms(100);
    }
    deadline = nodeproc_now_ms() + WAIT_MS;
    for (;;) {
        assert_int_equal(
            raw_batch(cl->n[1].port, WIRE_OP_GET, "rr", 0, NREPAIR, WIRE_CONSISTENCY_ONE, &t), 0);
        if (t.st[WIRE_OK] == NREPAIR && !t.bad_value)
            break;
        if (nodeproc_now_ms() > deadline)
            fail_msg("r2 serves %zu of %d repaired keys", t.st[WIRE_OK], NREPAIR);
        nodeproc_sleep_ms(100);
    }
    /* hinted handoff may have raced the repair for some keys, not for all */
    assert_true(raw_stat(cl->n[0].port, "read_repairs") > repairs);
}

static void stale_topology_client_survives_a_death(void **state)
{
    cluster *cl = *state;
    char addrs[256];
    snprintf(addrs, sizeof addrs, "%s,%s,%s", cl->n[0].addr, cl->n[1].addr, cl->n[2].addr);
    rkv_options o = {.connect_timeout_ms = 1000, .request_timeout_ms = 5000};
    rkv_client *c = rkv_connect(addrs, &o, NULL, 0);
    assert_non_null(c);
    assert_int_equal(rkv_put(c, "warm", 4, "x", 1, 0), RKV_OK); /* fetches the topology */
    nodeproc_kill(&cl->n[2], SIGKILL);                          /* the client is not told */
    for (int i = 0; i < 100; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "stale:%d", i);
        snprintf(v, sizeof v, "v%d", i);
        rkv_status st = rkv_put(c, k, strlen(k), v, strlen(v), 0);
        if (st == RKV_ERR_IO) /* the request on the dead connection; never resent */
            st = rkv_put(c, k, strlen(k), v, strlen(v), 0);
        assert_int_equal(st, RKV_OK);
        void *got = NULL;
        size_t len = 0;
        st = rkv_get(c, k, strlen(k), &got, &len);
        if (st == RKV_ERR_IO)
            st = rkv_get(c, k, strlen(k), &got, &len);
        assert_int_equal(st, RKV_OK);
        assert_int_equal(len, strlen(v));
        assert_memory_equal(got, v, len);
        rkv_free(got);
    }
    rkv_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quorum_writes_survive_kill),
        cmocka_unit_test(write_at_all_with_node_down_is_unavailable),
        cmocka_unit_test(restarted_node_gets_its_hints),
        cmocka_unit_test(read_repair_fixes_a_stale_replica),
        cmocka_unit_test(stale_topology_client_survives_a_death),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
