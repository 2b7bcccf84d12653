/* test_membership: cluster membership with real ringkvd processes.
 *
 * Three nodes (m1, m2, m3) on free loopback ports, with gossip timings much
 * shorter than the defaults so the whole file runs in seconds. The tests
 * run in order on one cluster: converge, refuse a duplicate id, pause and
 * refute, crash and be declared dead, restart with a higher incarnation,
 * remove, leave. Every wait polls with a generous bound; no test asserts how
 * long anything took.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nodeproc.h"
#include "ringkv.h"

#define WAIT_MS 30000 /* sanitizer builds on a busy machine are slow */
#define N_NODES 3

typedef nodeproc_cluster cluster;

static const char *const ids[N_NODES] = {"m1", "m2", "m3"};

/* A client whose topology predates m3's crash (test_stale_client_fails_over). */
static rkv_client *stale;

/* Fast gossip: a crash is suspected within ~100 ms and declared dead within
 * a second; push-pull every 2 s heals anything a datagram missed. */
static const char gossip_conf[] = "[gossip]\n"
                                  "probe_interval = 100ms\n"
                                  "probe_timeout = 50ms\n"
                                  "suspicion_mult = 2\n"
                                  "suspicion_max_mult = 3\n"
                                  "gossip_interval = 50ms\n"
                                  "pushpull_interval = 2s\n";

/* Starts node i with seeds = the peer addresses of the nodes before it. */

static int group_setup(void **state)
{
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -1;
    if (nodeproc_cluster_start(cl, N_NODES, ids, gossip_conf) != 0) {
        nodeproc_cluster_cleanup(cl);
        free(cl);
        return -1;
    }
    *state = cl;
    return 0;
}

static int group_teardown(void **state)
{
    cluster *cl = *state;
    rkv_close(stale);
    stale = NULL;
    nodeproc_cluster_cleanup(cl);
    free(cl);
    return 0;
}

/* What node np says about member id: its state ("" when np does not know
 * it or cannot be asked) and incarnation. */
static void member_of(const nodeproc *np, const char *id, char *state, size_t len, uint64_t *inc)
{
    rkv_options o = {.connect_timeout_ms = 1000, .request_timeout_ms = 3000};
    rkv_client *c = rkv_connect(np->addr, &o, NULL, 0);
    rkv_member *m = NULL;
    size_t n = 0;
    state[0] = '\0';
    if (c && rkv_members(c, &m, &n) == RKV_OK)
        for (size_t i = 0; i < n; i++)
            if (strcmp(m[i].id, id) == 0) {
                snprintf(state, len, "%s", m[i].state);
                if (inc)
                    *inc = m[i].incarnation;
            }
    rkv_members_free(m, n);
    rkv_close(c);
}

/* Polls until np reports id in want (and, if min_inc, with an incarnation
 * above it); fails the test with what it saw last otherwise. */
static uint64_t wait_state(const nodeproc *np, const char *who, const char *id, const char *want,
                           uint64_t min_inc)
{
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    char state[32];
    uint64_t inc = 0;
    for (;;) {
        member_of(np, id, state, sizeof state, &inc);
        if (strcmp(state, want) == 0 && (!min_inc || inc > min_inc))
            return inc;
        if (nodeproc_now_ms() > deadline)
            fail_msg("%s still reports %s as '%s' (incarnation %llu), waiting for '%s'%s", who, id,
                     state, (unsigned long long)inc, want,
                     min_inc ? " with a higher incarnation" : "");
        nodeproc_sleep_ms(50);
    }
}

static void wait_all_alive(cluster *cl)
{
    for (int i = 0; i < N_NODES; i++)
        for (int k = 0; k < N_NODES; k++)
            wait_state(&cl->n[i], ids[i], ids[k], "alive", 0);
}

static uint64_t num_stat(const nodeproc *np, const char *name)
{
    rkv_client *c = rkv_connect(np->addr, NULL, NULL, 0);
    rkv_stat *s = NULL;
    size_t n = 0;
    uint64_t v = UINT64_MAX;
    if (c && rkv_stats(c, &s, &n) == RKV_OK)
        for (size_t i = 0; i < n; i++)
            if (strcmp(s[i].name, name) == 0 && s[i].is_num)
                v = s[i].num;
    rkv_stats_free(s, n);
    rkv_close(c);
    return v;
}

static int run_cli(const nodeproc *np, const char *const *argv, char **out, char **err)
{
    int rc = nodeproc_cli(np, argv, NULL, 0, out, NULL, err);
    assert_true(rc >= 0);
    return rc;
}

/* ---- tests, in order ---- */

static void test_three_nodes_converge(void **state)
{
    cluster *cl = *state;
    wait_all_alive(cl);
    for (int i = 0; i < N_NODES; i++)
        assert_int_equal(num_stat(&cl->n[i], "members_alive"), 3);

    /* The member list carries every address and the ring fields. */
    rkv_client *c = rkv_connect(cl->n[0].addr, NULL, NULL, 0);
    rkv_member *m;
    size_t n;
    assert_int_equal(rkv_members(c, &m, &n), RKV_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(m[i].id, ids[i]); /* ordered by id */
        assert_string_equal(m[i].peer_addr, cl->n[i].peer_addr);
        assert_string_equal(m[i].client_addr, cl->n[i].addr);
        assert_string_equal(m[i].resp_addr, "");
        assert_string_equal(m[i].role, "member");
        assert_true(m[i].vnodes == 128);
        assert_true(m[i].incarnation >= 1);
    }
    rkv_members_free(m, n);
    rkv_close(c);

    /* The CLI: a table, and JSON. */
    char *out, *err;
    const char *table[] = {"members", NULL};
    assert_int_equal(run_cli(&cl->n[1], table, &out, &err), 0);
    assert_non_null(strstr(out, "ID"));
    assert_non_null(strstr(out, "INCARNATION"));
    assert_non_null(strstr(out, "FOR"));
    for (int i = 0; i < N_NODES; i++) {
        assert_non_null(strstr(out, ids[i]));
        assert_non_null(strstr(out, cl->n[i].peer_addr));
    }
    assert_non_null(strstr(out, "alive"));
    free(out);
    free(err);
    const char *json[] = {"members", "--json", NULL};
    assert_int_equal(run_cli(&cl->n[2], json, &out, &err), 0);
    assert_true(out[0] == '[');
    assert_non_null(strstr(out, "\"id\":\"m1\""));
    assert_non_null(strstr(out, "\"state\":\"alive\""));
    assert_non_null(strstr(out, "\"age_ms\":"));
    free(out);
    free(err);
}

/* Sums the SHARE column of `ringkv ring` and counts its member rows. */
static double ring_share_sum(const char *out, int *rows)
{
    double sum = 0;
    *rows = 0;
    for (const char *line = out; line && *line;) {
        const char *pct = strchr(line, '%');
        const char *eol = strchr(line, '\n');
        if (pct && (!eol || pct < eol)) {
            const char *p = pct;
            while (p > line && p[-1] != ' ')
                p--;
            sum += strtod(p, NULL);
            (*rows)++;
        }
        line = eol ? eol + 1 : NULL;
    }
    return sum;
}

/* Every node serves the same ring of three, and keys spread over it: the
 * CLI's ring and locate, and the library routing each key to its first
 * replica. */
static void test_ring_on_three_nodes(void **state)
{
    cluster *cl = *state;
    wait_all_alive(cl);
    char *out, *err;
    for (int i = 0; i < N_NODES; i++) {
        const char *ring[] = {"ring", NULL};
        assert_int_equal(run_cli(&cl->n[i], ring, &out, &err), 0);
        int rows;
        double sum = ring_share_sum(out, &rows);
        if (rows != 3 || sum < 99.9 || sum > 100.1)
            fail_msg("ring on %s: %d members, shares sum to %.2f%%:\n%s", ids[i], rows, sum, out);
        for (int k = 0; k < N_NODES; k++) {
            assert_non_null(strstr(out, ids[k]));
            assert_non_null(strstr(out, cl->n[k].addr));
        }
        assert_non_null(strstr(out, "replicas per key (N) 3"));
        free(out);
        free(err);
    }
    const char *locate[] = {"locate", "some-key", NULL};
    assert_int_equal(run_cli(&cl->n[1], locate, &out, &err), 0);
    assert_non_null(strstr(out, "token "));
    for (int k = 0; k < N_NODES; k++)
        assert_non_null(strstr(out, ids[k])); /* three distinct replicas */
    assert_non_null(strstr(out, "\n3  "));
    free(out);
    free(err);

    /* Routed by the library: each key to its first replica's client port. */
    rkv_client *c = rkv_connect(cl->n[2].addr, NULL, NULL, 0);
    struct rkv_topology *t;
    assert_int_equal(rkv_topology(c, &t), RKV_OK);
    assert_int_equal(t->nmembers, 3);
    int hits[N_NODES] = {0};
    for (int i = 0; i < 30; i++) {
        char key[16];
        snprintf(key, sizeof key, "route%d", i);
        size_t idx[3];
        assert_int_equal(rkv_topology_locate(t, key, strlen(key), NULL, idx, 3), 3);
        assert_true(idx[0] != idx[1] && idx[1] != idx[2] && idx[0] != idx[2]);
        rkv_status st = rkv_put(c, key, strlen(key), "v", 1, 0);
        if (st != RKV_OK)
            fail_msg("put %s: %s: %s", key, rkv_status_name(st), rkv_errstr(c));
        assert_string_equal(rkv_last_node(c), t->members[idx[0]].client_addr);
        for (int k = 0; k < N_NODES; k++)
            hits[k] += strcmp(t->members[idx[0]].id, ids[k]) == 0;
    }
    for (int k = 0; k < N_NODES; k++)
        assert_true(hits[k] > 0); /* 30 keys reach every node */
    rkv_topology_free(t);
    stale = c; /* connected to all three, with a topology where m3 is alive */
}

/* A fourth node that claims a live member's id is refused by the seed and
 * exits with status 1 and a message that says why. */
static void test_duplicate_id_refused(void **state)
{
    cluster *cl = *state;
    nodeproc dup;
    const char *args[] = {"--config", cl->conf,           "--id", ids[1], "--peer", "127.0.0.1:0",
                          "--seeds",  cl->n[0].peer_addr, NULL};
    assert_int_equal(nodeproc_launch(&dup, args), 0);
    int rc = nodeproc_wait_exit(&dup, WAIT_MS);
    char *log = nodeproc_log(&dup);
    if (rc != 1 || !strstr(log, "refused this node's join") || !strstr(log, ids[1]))
        fail_msg("duplicate node exited with %d; its log:\n%s", rc, log);
    free(log);
    nodeproc_cleanup(&dup);
    /* The seed logged the refusal and the real m2 is unaffected. */
    log = nodeproc_log(&cl->n[0]);
    assert_non_null(strstr(log, "refused a node joining"));
    free(log);
    for (int i = 0; i < N_NODES; i++)
        wait_state(&cl->n[i], ids[i], ids[1], "alive", 0);
}

/* Garbage on the peer port, TCP and UDP: counted and dropped, and the node
 * goes on serving clients and gossiping. */
static void test_bad_peer_input(void **state)
{
    cluster *cl = *state;
    const nodeproc *np = &cl->n[0];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)np->peer_port)};
    uint64_t dropped0 = num_stat(np, "gossip_packets_dropped");
    uint64_t peer0 = num_stat(np, "peer_dropped_connections");

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    static char big[2000], junk[] = "\x01not a gossip packet";
    memset(big, 0x5a, sizeof big);
    assert_int_equal(sendto(u, big, sizeof big, 0, (struct sockaddr *)&a, sizeof a),
                     (ssize_t)sizeof big);
    assert_int_equal(sendto(u, junk, sizeof junk, 0, (struct sockaddr *)&a, sizeof a),
                     (ssize_t)sizeof junk);
    close(u);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(t, (struct sockaddr *)&a, sizeof a), 0);
    static const char http[] = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(send(t, http, sizeof http - 1, 0), (ssize_t)(sizeof http - 1));
    char b;
    assert_int_equal(recv(t, &b, 1, 0), 0); /* the node closes it */
    close(t);

    long long deadline = nodeproc_now_ms() + WAIT_MS;
    while (num_stat(np, "gossip_packets_dropped") < dropped0 + 2 && nodeproc_now_ms() < deadline)
        nodeproc_sleep_ms(20);
    assert_true(num_stat(np, "gossip_packets_dropped") >= dropped0 + 2);
    assert_true(num_stat(np, "peer_dropped_connections") >= peer0 + 1);
    wait_all_alive(cl);
}

/* A node frozen past its suspicion timeout is declared dead; thawed, it
 * learns that, refutes it with a higher incarnation, and is alive again. */
static void test_paused_node_refutes(void **state)
{
    cluster *cl = *state;
    char st[32];
    uint64_t before = 0;
    member_of(&cl->n[0], ids[2], st, sizeof st, &before);
    assert_string_equal(st, "alive");
    assert_int_equal(kill(cl->n[2].pid, SIGSTOP), 0);
    wait_state(&cl->n[0], ids[0], ids[2], "dead", 0);
    wait_state(&cl->n[1], ids[1], ids[2], "dead", 0);
    assert_int_equal(kill(cl->n[2].pid, SIGCONT), 0);
    wait_state(&cl->n[0], ids[0], ids[2], "alive", before);
    wait_state(&cl->n[1], ids[1], ids[2], "alive", before);
    wait_state(&cl->n[2], ids[2], ids[2], "alive", before);
    assert_true(num_stat(&cl->n[2], "gossip_refutations") >= 1);
    char *log = nodeproc_log(&cl->n[0]);
    assert_non_null(strstr(log, "member m3 "));
    assert_non_null(strstr(log, "is now dead"));
    free(log);
}

static uint64_t m3_crash_inc;

/* kill -9: every other node reports the node dead. */
static void test_killed_node_dead(void **state)
{
    cluster *cl = *state;
    char st[32];
    member_of(&cl->n[0], ids[2], st, sizeof st, &m3_crash_inc);
    nodeproc_kill(&cl->n[2], SIGKILL);
    wait_state(&cl->n[0], ids[0], ids[2], "dead", 0);
    wait_state(&cl->n[1], ids[1], ids[2], "dead", 0);
    assert_true(num_stat(&cl->n[0], "members_dead") == 1);
}

/* A client that still thinks m3 is alive: keys whose first replica is m3
 * fail over to the next replica (nothing was sent to m3), and the ring it
 * refreshes to says m3 is dead. */
static void test_stale_client_fails_over(void **state)
{
    cluster *cl = *state;
    assert_non_null(stale);
    struct rkv_topology *t;
    rkv_client *probe = rkv_connect(cl->n[0].addr, NULL, NULL, 0);
    assert_int_equal(rkv_topology(probe, &t), RKV_OK);
    rkv_close(probe);
    int moved = 0;
    for (int i = 0; i < 40 && moved < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "stale%d", i);
        size_t idx[3];
        rkv_topology_locate(t, key, strlen(key), NULL, idx, 3);
        if (strcmp(t->members[idx[0]].id, ids[2]) != 0)
            continue;
        rkv_status st = rkv_put(stale, key, strlen(key), "v", 1, 0);
        if (st != RKV_OK)
            fail_msg("put %s with m3 dead: %s: %s", key, rkv_status_name(st),
                     rkv_errstr(stale));
        assert_string_not_equal(rkv_last_node(stale), cl->n[2].addr);
        moved++;
    }
    assert_true(moved > 0);
    for (size_t k = 0; k < t->nmembers; k++)
        if (strcmp(t->members[k].id, ids[2]) == 0)
            assert_string_equal(t->members[k].state, "dead");
    rkv_topology_free(t);
    rkv_close(stale);
    stale = NULL;
}

/* The same data dir comes back as the same node, with a higher
 * incarnation, and everyone sees it alive. */
static void test_restart_higher_incarnation(void **state)
{
    cluster *cl = *state;
    assert_int_equal(nodeproc_restart(&cl->n[2]), 0);
    for (int i = 0; i < N_NODES; i++)
        wait_state(&cl->n[i], ids[i], ids[2], "alive", m3_crash_inc);
    wait_all_alive(cl);
}

/* remove: refused for live, unknown and own ids; a dead member becomes
 * removed, and the others learn it. */
static void test_remove(void **state)
{
    cluster *cl = *state;
    rkv_client *c = rkv_connect(cl->n[0].addr, NULL, NULL, 0);
    assert_int_equal(rkv_remove(c, ids[1]), RKV_ERR_BAD_REQUEST);
    assert_true(rkv_errstr(c)[0] != '\0');
    assert_int_equal(rkv_remove(c, "no-such-node"), RKV_ERR_BAD_REQUEST);
    assert_int_equal(rkv_remove(c, ids[0]), RKV_ERR_BAD_REQUEST);

    nodeproc_kill(&cl->n[2], SIGKILL);
    wait_state(&cl->n[0], ids[0], ids[2], "dead", 0);
    char *out, *err;
    const char *rm[] = {"remove", ids[2], NULL};
    int rc = run_cli(&cl->n[0], rm, &out, &err);
    if (rc != 0)
        fail_msg("remove m3 exited %d: %s", rc, err);
    assert_string_equal(out, "OK\n");
    free(out);
    free(err);
    wait_state(&cl->n[0], ids[0], ids[2], "removed", 0);
    wait_state(&cl->n[1], ids[1], ids[2], "removed", 0);
    const char *again[] = {"remove", ids[1], NULL};
    assert_int_equal(run_cli(&cl->n[0], again, &out, &err), 2);
    free(out);
    free(err);
    rkv_close(c);
}

/* SIGTERM leaves gracefully: the node exits 0 and the others show `left`,
 * not dead. */
static void test_graceful_leave(void **state)
{
    cluster *cl = *state;
    assert_int_equal(nodeproc_stop(&cl->n[1]), 0);
    wait_state(&cl->n[0], ids[0], ids[1], "left", 0);
    char *log = nodeproc_log(&cl->n[1]);
    assert_non_null(strstr(log, "leaving the cluster"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_nodes_converge),
        cmocka_unit_test(test_ring_on_three_nodes),
        cmocka_unit_test(test_duplicate_id_refused),
        cmocka_unit_test(test_bad_peer_input),
        cmocka_unit_test(test_paused_node_refutes),
        cmocka_unit_test(test_killed_node_dead),
        cmocka_unit_test(test_stale_client_fails_over),
        cmocka_unit_test(test_restart_higher_incarnation),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_graceful_leave),
    };
    return cmocka_run_group_tests_name("membership", tests, group_setup, group_teardown);
}
