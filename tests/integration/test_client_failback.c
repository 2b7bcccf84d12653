/* test_client_failback: libringkv sends a key's requests to its first
 * replica again once that node is back from a crash.
 *
 * Regression (found by the fault suite, tests/fault): a client that fetched
 * the topology while a node was dead routed around it for good, since it
 * fetched the topology again only on an epoch change or a failed connection,
 * so after any fault the load stayed off that node. Three real gossiping
 * nodes; every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nodeproc.h"
#include "ringkv.h"

#define WAIT_MS 30000

static const char *const ids[3] = {"fb1", "fb2", "fb3"};

static const char conf_text[] = NODEPROC_FAST_GOSSIP "[replication]\n"
                                                     "n = 3\n"
                                                     "request_timeout = 1s\n";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The state of member id as the node at addr sees it, into buf ("" if unknown). */
static void member_state(const char *addr, const char *id, char *buf, size_t len)
{
    buf[0] = '\0';
    rkv_options o = {.connect_timeout_ms = 500, .request_timeout_ms = 1000};
    rkv_client *c = rkv_connect(addr, &o, NULL, 0);
    rkv_member *m;
    size_t n;
    if (c && rkv_members(c, &m, &n) == RKV_OK) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(m[i].id, id) == 0)
                snprintf(buf, len, "%s", m[i].state);
        rkv_members_free(m, n);
    }
    rkv_close(c);
}

static void wait_state(const char *addr, const char *id, const char *want)
{
    char st[32];
    long long deadline = now_ms() + WAIT_MS;
    for (member_state(addr, id, st, sizeof st); strcmp(st, want) != 0;
         member_state(addr, id, st, sizeof st)) {
        if (now_ms() > deadline)
            fail_msg("%s: member %s is %s, waiting for %s", addr, id, st, want);
        sleep_ms(50);
    }
}

static nodeproc_cluster cl; /* cleaned up by the teardown, even after a failed assert */

static int teardown(void **state)
{
    (void)state;
    nodeproc_cluster_cleanup(&cl);
    return 0;
}

static void failback_after_restart(void **state)
{
    (void)state;
    assert_int_equal(nodeproc_cluster_start(&cl, 3, ids, conf_text), 0);
    for (int i = 0; i < 3; i++)
        wait_state(cl.n[0].addr, ids[i], "alive");
    wait_state(cl.n[1].addr, ids[0], "alive");
    wait_state(cl.n[1].addr, ids[2], "alive");

    char addrs[256];
    snprintf(addrs, sizeof addrs, "%s,%s,%s", cl.n[0].addr, cl.n[1].addr, cl.n[2].addr);
    rkv_options o = {.connect_timeout_ms = 500, .request_timeout_ms = 2000};
    rkv_client *c = rkv_connect(addrs, &o, NULL, 0);
    assert_non_null(c);

    /* A key whose first replica is fb2 (node index 1). */
    struct rkv_topology *t;
    assert_int_equal(rkv_topology(c, &t), RKV_OK);
    char key[32];
    int found = 0;
    for (int k = 0; k < 1000 && !found; k++) {
        snprintf(key, sizeof key, "failback:%d", k);
        size_t idx[3];
        uint64_t token;
        rkv_topology_locate(t, key, strlen(key), &token, idx, 3);
        found = strcmp(t->members[idx[0]].id, ids[1]) == 0;
    }
    rkv_topology_free(t);
    assert_true(found);

    assert_int_equal(rkv_put(c, key, strlen(key), "v1", 2, 0), RKV_OK);
    assert_string_equal(rkv_last_node(c), cl.n[1].addr);

    /* Down: the client routes around fb2, and its topology shows it dead. */
    nodeproc_kill(&cl.n[1], SIGKILL);
    wait_state(cl.n[0].addr, ids[1], "dead");
    wait_state(cl.n[2].addr, ids[1], "dead");
    assert_int_equal(rkv_put(c, key, strlen(key), "v2", 2, 0), RKV_OK);
    assert_string_not_equal(rkv_last_node(c), cl.n[1].addr);

    /* Back: within a few seconds the key's requests go to fb2 again. */
    assert_int_equal(nodeproc_restart(&cl.n[1]), 0);
    wait_state(cl.n[0].addr, ids[1], "alive");
    wait_state(cl.n[2].addr, ids[1], "alive");
    long long deadline = now_ms() + 10000;
    int back = 0;
    while (!back && now_ms() < deadline) {
        assert_int_equal(rkv_put(c, key, strlen(key), "v3", 2, 0), RKV_OK);
        back = strcmp(rkv_last_node(c), cl.n[1].addr) == 0;
        if (!back)
            sleep_ms(100);
    }
    assert_true(back);
    void *v;
    size_t len;
    assert_int_equal(rkv_get(c, key, strlen(key), &v, &len), RKV_OK);
    assert_memory_equal(v, "v3", 2);
    rkv_free(v);

    rkv_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(failback_after_restart, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
