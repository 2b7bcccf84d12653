/* test_antientropy: Merkle-tree anti-entropy between three real nodes
 * (N = 3, anti_entropy_interval = 1s). Suspicion is slow (10 s or more), so
 * a node killed and restarted within a second is never declared dead:
 * writes meant for it fail on the link and leave no hint.
 *
 * In order, on one cluster (a1, a2, a3): a3 loses its data dir and comes
 * back empty, and anti-entropy alone (no reads, no hints: the writes were
 * made while every node was up) gives it every key back; keys deleted while
 * a3 is down stay deleted when it returns with the old values (no hint
 * holds them, so only anti-entropy carries the tombstones), also after more
 * rounds; and
 * malformed Merkle requests sent straight to a peer port get error answers
 * while the node keeps serving. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nodeproc.h"
#include "rawconn.h"
#include "ringkv.h"
#include "ringkv.pb-c.h"

#define WAIT_MS 45000
#define N_NODES 3
#define NKEYS   10000 /* past 8192: a leaves answer to a3 stops and resumes */
#define NDEL    500

typedef nodeproc_cluster cluster;

static const char *const ids[N_NODES] = {"a1", "a2", "a3"};

static const char conf_text[] = "[gossip]\n"
                                "probe_interval = 100ms\n"
                                "probe_timeout = 50ms\n"
                                "suspicion_mult = 100\n"
                                "suspicion_max_mult = 2\n"
                                "gossip_interval = 50ms\n"
                                "pushpull_interval = 2s\n"
                                "[replication]\n"
                                "n = 3\n"
                                "request_timeout = 1s\n"
                                "[rebalance]\n"
                                "anti_entropy_interval = 1s\n"
                                /* a wiped node enters the ring at once, as
                                 * Cassandra's auto_bootstrap: false; with
                                 * yes it would stream its ranges instead */
                                "bootstrap = no\n";

static void wait_stat(int port, const char *name, long long want, const char *who)
{
    long long v;
    if (raw_wait_stat(port, name, want, WAIT_MS, &v) != 0)
        fail_msg("%s: %s is %lld, waiting for %lld", who, name, v, want);
}

static long long sum_stat(cluster *cl, const char *name)
{
    long long s = 0;
    for (int i = 0; i < N_NODES; i++)
        s += raw_stat(cl->n[i].port, name);
    return s;
}

static void wait_all_alive(cluster *cl)
{
    for (int i = 0; i < N_NODES; i++)
        wait_stat(cl->n[i].port, "members_alive", N_NODES, ids[i]);
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
    wait_all_alive(cl);
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

/* a3 loses everything; anti-entropy alone gives it every key back. */
static void wiped_node_is_restored_without_reads(void **state)
{
    cluster *cl = *state;
    nodeproc *a3 = &cl->n[2];
    raw_tally t;
    assert_int_equal(raw_batch(cl->n[0].port, WIRE_OP_PUT, "w", 0, NKEYS, WIRE_CONSISTENCY_ALL, &t),
                     0);
    if (t.st[WIRE_OK] != NKEYS)
        fail_msg("%zu of %d writes at all OK; last error: %s", t.st[WIRE_OK], NKEYS, t.msg);
    wait_stat(a3->port, "keys", NKEYS, "a3");
    nodeproc_kill(a3, SIGKILL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", a3->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(nodeproc_restart(a3), 0);
    /* nothing waits as a hint: every write reached every node */
    assert_int_equal(raw_stat(cl->n[0].port, "hints_pending"), 0);
    assert_int_equal(raw_stat(cl->n[1].port, "hints_pending"), 0);
    long long reads_before = raw_stat(a3->port, "replica_reads_served");
    wait_all_alive(cl);

    /* watched through STATS only: a read could repair what it touches */
    wait_stat(a3->port, "keys", NKEYS, "a3 after anti-entropy");
    long long moved = raw_stat(a3->port, "ae_keys_pulled") +
                      raw_stat(cl->n[0].port, "ae_keys_pushed") +
                      raw_stat(cl->n[1].port, "ae_keys_pushed");
    if (moved < NKEYS)
        fail_msg("anti-entropy moved %lld keys to a3, expected at least %d", moved, NKEYS);
    assert_true(sum_stat(cl, "ae_ranges_differing") >= 1);
    assert_int_equal(raw_stat(a3->port, "read_repairs"), 0);
    assert_int_equal(raw_stat(a3->port, "replica_reads_served"), reads_before);

    /* and now straight from a3, at one */
    assert_int_equal(raw_batch(a3->port, WIRE_OP_GET, "w", 0, NKEYS, WIRE_CONSISTENCY_ONE, &t), 0);
    if (t.st[WIRE_OK] != NKEYS || t.bad_value)
        fail_msg("a3 serves %zu of %d keys (%zu wrong values); last error: %s", t.st[WIRE_OK],
                 NKEYS, t.bad_value, t.msg);
}

/* Deletes made while a3 is down reach it through anti-entropy; its old
 * values never come back. */
static void deletes_while_down_stay_deleted(void **state)
{
    cluster *cl = *state;
    nodeproc *a3 = &cl->n[2];
    raw_tally t;
    assert_int_equal(raw_batch(cl->n[0].port, WIRE_OP_PUT, "d", 0, NDEL, WIRE_CONSISTENCY_ALL, &t),
                     0);
    assert_int_equal(t.st[WIRE_OK], NDEL);
    long long tomb3 = raw_stat(a3->port, "tombstones");
    long long hints =
        raw_stat(cl->n[0].port, "hints_stored") + raw_stat(cl->n[1].port, "hints_stored");
    long long pushed =
        raw_stat(cl->n[0].port, "ae_keys_pushed") + raw_stat(cl->n[1].port, "ae_keys_pushed");
    nodeproc_kill(a3, SIGKILL);
    assert_int_equal(
        raw_batch(cl->n[0].port, WIRE_OP_DEL, "d", 0, NDEL, WIRE_CONSISTENCY_QUORUM, &t), 0);
    if (t.st[WIRE_OK] != NDEL)
        fail_msg("%zu of %d deletes OK; last error: %s", t.st[WIRE_OK], NDEL, t.msg);
    /* a3 was not yet taken for dead: no hint carries the deletes */
    assert_int_equal(
        raw_stat(cl->n[0].port, "hints_stored") + raw_stat(cl->n[1].port, "hints_stored"), hints);

    assert_int_equal(nodeproc_restart(a3), 0); /* with its old values */
    wait_all_alive(cl);
    wait_stat(a3->port, "tombstones", tomb3 + NDEL, "a3's tombstones");
    /* a3's counters started over with it */
    long long moved = raw_stat(a3->port, "ae_keys_pulled") +
                      raw_stat(cl->n[0].port, "ae_keys_pushed") +
                      raw_stat(cl->n[1].port, "ae_keys_pushed") - pushed;
    if (moved < NDEL)
        fail_msg("anti-entropy carried %lld tombstones to a3, expected at least %d", moved, NDEL);
    /* a few more rounds, then look */
    long long ex = raw_stat(a3->port, "ae_exchanges");
    wait_stat(a3->port, "ae_exchanges", ex + 3, "a3's exchanges");
    assert_int_equal(raw_batch(a3->port, WIRE_OP_GET, "d", 0, NDEL, WIRE_CONSISTENCY_ONE, &t), 0);
    if (t.st[WIRE_NOT_FOUND] != NDEL)
        fail_msg("a3 at one: %zu of %d deleted keys absent", t.st[WIRE_NOT_FOUND], NDEL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            raw_batch(cl->n[i].port, WIRE_OP_GET, "d", 0, NDEL, WIRE_CONSISTENCY_ONE, &t), 0);
        if (t.st[WIRE_NOT_FOUND] != NDEL)
            fail_msg("%s at one: %zu of %d deleted keys absent", ids[i], t.st[WIRE_NOT_FOUND],
                     NDEL);
    }
    assert_int_equal(raw_batch(cl->n[0].port, WIRE_OP_GET, "d", 0, NDEL, WIRE_CONSISTENCY_ALL, &t),
                     0);
    assert_int_equal(t.st[WIRE_NOT_FOUND], NDEL);
}

/* ---- raw peer frames ---- */

static int peer_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int read_full(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Sends env as one frame and returns the answer (free with
 * ringkv__envelope__free_unpacked), or NULL. */
static Ringkv__Envelope *peer_ask(int fd, Ringkv__Envelope *env)
{
    size_t len = ringkv__envelope__get_packed_size(env);
    uint8_t *buf = malloc(8 + len);
    assert_non_null(buf);
    buf[0] = 'R';
    buf[1] = 'K';
    buf[2] = 1;
    buf[3] = 0;
    buf[4] = (uint8_t)(len >> 24);
    buf[5] = (uint8_t)(len >> 16);
    buf[6] = (uint8_t)(len >> 8);
    buf[7] = (uint8_t)len;
    ringkv__envelope__pack(env, buf + 8);
    assert_int_equal(raw_send(fd, buf, 8 + len), 0);
    free(buf);
    uint8_t hdr[8];
    if (read_full(fd, hdr, 8, 5000) != 0)
        return NULL;
    uint32_t blen =
        (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
    uint8_t *body = malloc(blen ? blen : 1);
    assert_non_null(body);
    Ringkv__Envelope *out = NULL;
    if (read_full(fd, body, blen, 5000) == 0)
        out = ringkv__envelope__unpack(NULL, blen, body);
    free(body);
    return out;
}

/* A MerkleReq with these fields must be refused with a message holding
 * `want`. */
static void merkle_refused(int fd, uint64_t epoch, uint64_t lo, uint64_t hi, uint32_t depth,
                           uint32_t level, uint32_t *nodes, size_t n, uint32_t fanout,
                           const char *want)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__MerkleReq q = RINGKV__MERKLE_REQ__INIT;
    env.version = 1;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_REQ;
    env.merkle_req = &q;
    q.id = 77;
    q.lo = lo;
    q.hi = hi;
    q.depth = depth;
    q.level = level;
    q.nodes = nodes;
    q.n_nodes = n;
    q.epoch = epoch;
    q.fanout = fanout;
    Ringkv__Envelope *r = peer_ask(fd, &env);
    assert_non_null(r);
    assert_int_equal(r->body_case, RINGKV__ENVELOPE__BODY_MERKLE_REPLY);
    assert_int_equal(r->merkle_reply->id, 77);
    assert_false(r->merkle_reply->ok);
    if (!strstr(r->merkle_reply->error, want))
        fail_msg("refusal '%s' does not say '%s'", r->merkle_reply->error, want);
    ringkv__envelope__free_unpacked(r, NULL);
}

static void leaves_refused(int fd, uint64_t epoch, uint32_t depth, uint32_t *leaves, size_t n,
                           size_t afterlen, const char *want)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__MerkleLeavesReq q = RINGKV__MERKLE_LEAVES_REQ__INIT;
    static uint8_t after[4096];
    env.version = 1;
    env.body_case = RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ;
    env.merkle_leaves_req = &q;
    q.id = 78;
    q.lo = 1;
    q.hi = 2;
    q.depth = depth;
    q.leaves = leaves;
    q.n_leaves = n;
    q.epoch = epoch;
    q.fanout = 16;
    q.after.data = after;
    q.after.len = afterlen;
    Ringkv__Envelope *r = peer_ask(fd, &env);
    assert_non_null(r);
    assert_int_equal(r->body_case, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REPLY);
    assert_int_equal(r->merkle_leaves_reply->id, 78);
    assert_false(r->merkle_leaves_reply->ok);
    assert_int_equal(r->merkle_leaves_reply->n_records, 0);
    if (!strstr(r->merkle_leaves_reply->error, want))
        fail_msg("refusal '%s' does not say '%s'", r->merkle_leaves_reply->error, want);
    ringkv__envelope__free_unpacked(r, NULL);
}

static void malformed_merkle_requests_are_refused(void **state)
{
    cluster *cl = *state;
    nodeproc *a1 = &cl->n[0];
    rkv_client *c = rkv_connect(a1->addr, NULL, NULL, 0);
    assert_non_null(c);
    struct rkv_topology *topo = NULL;
    assert_int_equal(rkv_topology(c, &topo), RKV_OK);
    uint64_t epoch = topo->epoch;
    rkv_topology_free(topo);
    rkv_close(c);

    int fd = peer_connect(a1->peer_port);
    assert_true(fd >= 0);
    static uint32_t many[5000];
    uint32_t root = 0, five = 5, huge = UINT32_MAX;
    merkle_refused(fd, epoch, 1, 2, 9, 0, &root, 1, 16, "depth 9");
    merkle_refused(fd, epoch, 1, 2, 0, 0, &root, 1, 16, "depth 0");
    merkle_refused(fd, epoch, 1, 2, 3, 0, &five, 1, 16, "node index 5");
    merkle_refused(fd, epoch, 1, 2, 5, 4, &huge, 1, 16, "node index");
    merkle_refused(fd, epoch, 1, 2, 3, 3, &root, 1, 16, "no children");
    merkle_refused(fd, epoch, 1, 2, 3, 1, many, 5000, 16, "5000 node indexes");
    merkle_refused(fd, epoch, 1, 2, 3, 0, &root, 0, 16, "0 node indexes");
    merkle_refused(fd, epoch, 1, 2, 3, 0, &root, 1, 1000000, "fanout");
    merkle_refused(fd, epoch + 1, 1, 2, 3, 0, &root, 1, 16, "ring changed");
    merkle_refused(fd, epoch, 1, 2, 3, 0, &root, 1, 16, "not a range");
    uint32_t down[] = {9, 3}, past[] = {1u << 30};
    leaves_refused(fd, epoch, 2, down, 2, 0, "increase");
    leaves_refused(fd, epoch, 2, past, 1, 0, "leaf index");
    leaves_refused(fd, epoch, 2, many, 5000, 0, "5000 leaf indexes");
    leaves_refused(fd, epoch, 6, &root, 1, 0, "depth 6");
    leaves_refused(fd, epoch, 2, &root, 1, 4000, "after");
    leaves_refused(fd, epoch, 2, &root, 1, 0, "not a range");
    close(fd);
    assert_true(raw_stat(a1->port, "ae_requests_refused") >= 16);
    assert_int_equal(raw_ping(a1->port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wiped_node_is_restored_without_reads),
        cmocka_unit_test(deletes_while_down_stay_deleted),
        cmocka_unit_test(malformed_merkle_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
