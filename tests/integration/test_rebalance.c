/* test_rebalance: growing, shrinking and healing a cluster of real nodes
 * with N = 3, streaming throttled (1 MiB/s) so that each step takes seconds.
 *
 * In order, on one cluster: three nodes hold NKEYS keys; a fourth joins —
 * every key reads at quorum while it streams, writes made meanwhile land on
 * it too, and afterwards every key has exactly three copies (the old owners
 * purged what they gave away) and each node's share is near a quarter; one
 * of the first three is decommissioned — it hands its ranges over and stops,
 * and each remaining node holds every key; a fifth joins while one of its
 * sources is killed, and finishes from the others; the dead node is
 * removed, and the survivors restore three copies of every key; a sixth
 * dies while joining, writes go on without it, and it finishes after a
 * restart with them.
 * "Copies" are counted as the sum of every node's live keys, which equals
 * 3 x keys only when no key has more or fewer. Every wait is bounded.
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

#include <poll.h>

#include "nodeproc.h"
#include "ringkv.pb-c.h"
#include "rawconn.h"
#include "ringkv.h"

#define WAIT_MS 60000
#define NKEYS   100000
#define NJOIN   5000 /* keys written while the fourth node joins */
#define TOTAL   (NKEYS + NJOIN)
#define NDEAD   2000 /* keys written while a joining node is dead */

typedef nodeproc_cluster cluster;

static const char *const ids[] = {"b1", "b2", "b3", "b4", "b5", "b6"};

/* Streaming slowed to 1 MiB/s in 64 KiB chunks: a join takes seconds. */
static const char conf_text[] = NODEPROC_FAST_GOSSIP "[replication]\n"
                                                     "n = 3\n"
                                                     "request_timeout = 1s\n"
                                                     "[rebalance]\n"
                                                     "stream_rate = 1MiB\n"
                                                     "stream_chunk = 64KiB\n"
                                                     "purge_grace = 1s\n"
                                                     "anti_entropy_interval = 0\n";

static bool up(cluster *cl, int i)
{
    return cl->n[i].pid > 0 && nodeproc_alive(&cl->n[i]);
}

/* Sum of live keys over the nodes that are up. */
static long long copies(cluster *cl, int upto)
{
    long long sum = 0;
    for (int i = 0; i < upto; i++)
        if (up(cl, i)) {
            long long k = raw_stat(cl->n[i].port, "keys");
            if (k < 0)
                return -1;
            sum += k;
        }
    return sum;
}

static void wait_copies(cluster *cl, int upto, long long want, const char *when)
{
    long long deadline = nodeproc_now_ms() + WAIT_MS, got;
    while ((got = copies(cl, upto)) != want) {
        if (nodeproc_now_ms() > deadline)
            fail_msg("%s: the nodes hold %lld copies in all, want %lld", when, got, want);
        nodeproc_sleep_ms(100);
    }
}

static bool is_role(const nodeproc *np, const char *role)
{
    char got[32];
    return nodeproc_stat_str(np, "ring_role", got, sizeof got) == 0 && strcmp(got, role) == 0;
}

/* Every key of prefix reads back at quorum through node i. */
static void read_all(cluster *cl, int i, const char *prefix, int count)
{
    raw_tally t;
    if (raw_batch(cl->n[i].port, WIRE_OP_GET, prefix, 0, count, WIRE_CONSISTENCY_QUORUM, &t) != 0)
        fail_msg("reading %s:* through %s: %s", prefix, ids[i], t.msg);
    if (t.st[WIRE_OK] != (size_t)count || t.bad_value)
        fail_msg("through %s: %zu of %d %s:* read back (%zu wrong values; last error: %s)", ids[i],
                 t.st[WIRE_OK], count, prefix, t.bad_value, t.msg);
}

static void start_node(cluster *cl, int i)
{
    assert_int_equal(nodeproc_cluster_start_node(cl, i, ids[i]), 0);
    if (cl->count < i + 1)
        cl->count = i + 1;
}

static int group_setup(void **state)
{
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -1;
    if (nodeproc_cluster_start(cl, 3, ids, conf_text) != 0) {
        nodeproc_cluster_cleanup(cl);
        free(cl);
        return -1;
    }
    raw_tally t;
    if (raw_batch(cl->n[0].port, WIRE_OP_PUT, "k", 0, NKEYS, WIRE_CONSISTENCY_ALL, &t) != 0 ||
        t.st[WIRE_OK] != NKEYS) {
        fprintf(stderr, "loading failed: %zu ok: %s\n", t.st[WIRE_OK], t.msg);
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
    if (getenv("RINGKV_KEEP_LOGS"))
        for (int i = 0; i < cl->count; i++) {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "cp %s/ringkvd.log /tmp/rebalance-%s.log", cl->n[i].dir,
                     ids[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "could not keep %s's log\n", ids[i]);
        }
    nodeproc_cluster_cleanup(cl);
    free(cl);
    return 0;
}

static void join_fourth(void **state)
{
    cluster *cl = *state;
    start_node(cl, 3);
    /* While b4 streams: every key reads at quorum, and writes succeed. */
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    while (!is_role(&cl->n[3], "joining")) {
        if (nodeproc_now_ms() > deadline || is_role(&cl->n[3], "member"))
            fail_msg("b4 never showed as joining");
        nodeproc_sleep_ms(20);
    }
    raw_tally t;
    assert_int_equal(
        raw_batch(cl->n[1].port, WIRE_OP_PUT, "j", 0, NJOIN, WIRE_CONSISTENCY_QUORUM, &t), 0);
    assert_int_equal(t.st[WIRE_OK], NJOIN);
    int rounds_while_joining = 0;
    while (is_role(&cl->n[3], "joining")) {
        read_all(cl, rounds_while_joining % 3, "k", NKEYS);
        rounds_while_joining++;
        if (nodeproc_now_ms() > deadline)
            fail_msg("b4 still joining after %d s", WAIT_MS / 1000);
    }
    assert_true(rounds_while_joining >= 1);
    assert_int_equal(nodeproc_cluster_wait_ring(cl, 4, 4, WAIT_MS), 0);
    assert_true(raw_stat(cl->n[3].port, "stream_records_in") > 0);

    /* After: every key, through the new node too; three copies each once
     * the old owners purged; shares near a quarter. */
    read_all(cl, 3, "k", NKEYS);
    read_all(cl, 0, "j", NJOIN);
    read_all(cl, 3, "j", NJOIN);
    wait_copies(cl, 4, 3LL * TOTAL, "after the join");
    for (int i = 0; i < 4; i++) {
        long long share = raw_stat(cl->n[i].port, "ring_share_ppm");
        long long keys = raw_stat(cl->n[i].port, "keys");
        print_message("%s: share %.1f%%, %lld keys\n", ids[i], share / 1e4, keys);
        assert_true(share > 150000 && share < 350000);
        assert_true(keys > TOTAL / 2 && keys < TOTAL);
    }
    long long purged = 0;
    for (int i = 0; i < 3; i++)
        purged += raw_stat(cl->n[i].port, "stream_purged");
    assert_true(purged > 0);
}

static void decommission_one(void **state)
{
    cluster *cl = *state;
    rkv_client *c = rkv_connect(cl->n[1].addr, NULL, NULL, 0);
    assert_non_null(c);
    assert_int_equal(rkv_decommission(c), RKV_OK);
    /* A second request while it leaves is refused with a reason. */
    assert_int_equal(rkv_decommission(c), RKV_ERR_UNAVAILABLE);
    assert_non_null(strstr(rkv_errstr(c), "already"));
    rkv_close(c);
    /* It hands everything over, leaves and stops by itself, cleanly. */
    assert_int_equal(nodeproc_wait_exit(&cl->n[1], WAIT_MS), 0);
    int live[] = {0, 2, 3};
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    for (;;) {
        int ok = 0;
        for (int k = 0; k < 3; k++)
            ok += raw_stat(cl->n[live[k]].port, "ring_members") == 3;
        if (ok == 3)
            break;
        if (nodeproc_now_ms() > deadline)
            fail_msg("the ring did not shrink to 3 after the decommission");
        nodeproc_sleep_ms(50);
    }
    for (int k = 0; k < 3; k++) {
        read_all(cl, live[k], "k", NKEYS);
        read_all(cl, live[k], "j", NJOIN);
    }
    /* Three nodes, N = 3: each holds every key. */
    wait_copies(cl, 4, 3LL * TOTAL, "after the decommission");
    for (int k = 0; k < 3; k++)
        assert_int_equal(raw_stat(cl->n[live[k]].port, "keys"), TOTAL);
}

/* b5 joins, and b4 (one of its sources) dies in the middle: b5 finishes
 * from the other replicas. Then b4 is removed: b1, b3 and b5 must end with
 * every key. */
static void remove_dead(void **state)
{
    cluster *cl = *state;
    start_node(cl, 4);
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    uint64_t got = 0;
    while (!is_role(&cl->n[4], "joining") || nodeproc_stat(&cl->n[4], "stream_records_in", &got) ||
           got == 0) {
        if (nodeproc_now_ms() > deadline || is_role(&cl->n[4], "member"))
            fail_msg("b5 was never seen streaming in");
        nodeproc_sleep_ms(20);
    }
    nodeproc_kill(&cl->n[3], SIGKILL);
    assert_false(nodeproc_alive(&cl->n[3]));
    while (!is_role(&cl->n[4], "member") || raw_stat(cl->n[0].port, "ring_members") != 4) {
        if (nodeproc_now_ms() > deadline)
            fail_msg("b5 did not become a ring member with b4 dead");
        nodeproc_sleep_ms(50);
    }
    read_all(cl, 4, "k", NKEYS); /* at quorum: two of each key's three owners are up */
    rkv_client *c = rkv_connect(cl->n[0].addr, NULL, NULL, 0);
    assert_non_null(c);
    deadline = nodeproc_now_ms() + WAIT_MS;
    while (rkv_remove(c, "b4") != RKV_OK) { /* refused while b4 is not yet dead */
        if (nodeproc_now_ms() > deadline)
            fail_msg("b4 could not be removed: %s", rkv_errstr(c));
        nodeproc_sleep_ms(100);
    }
    rkv_close(c);
    int live[] = {0, 2, 4};
    wait_copies(cl, 5, 3LL * TOTAL, "after the remove");
    for (int k = 0; k < 3; k++) {
        assert_int_equal(raw_stat(cl->n[live[k]].port, "keys"), TOTAL);
        read_all(cl, live[k], "k", NKEYS);
        read_all(cl, live[k], "j", NJOIN);
    }
}

/* A member's state as node i sees it ("" when unknown). */
static void state_of(cluster *cl, int i, const char *id, char *out, size_t len)
{
    rkv_client *c = rkv_connect(cl->n[i].addr, NULL, NULL, 0);
    rkv_member *m = NULL;
    size_t n = 0;
    out[0] = 0;
    if (c && rkv_members(c, &m, &n) == RKV_OK)
        for (size_t k = 0; k < n; k++)
            if (strcmp(m[k].id, id) == 0)
                snprintf(out, len, "%s", m[k].state);
    rkv_members_free(m, n);
    rkv_close(c);
}

/* b6 dies in the middle of its join. Once it is taken for dead, writes go
 * on at quorum without it (it is not waited for); started again, it streams
 * from scratch and ends with those writes too. */
static void joiner_dies(void **state)
{
    cluster *cl = *state;
    start_node(cl, 5);
    long long deadline = nodeproc_now_ms() + WAIT_MS;
    uint64_t got = 0;
    while (!is_role(&cl->n[5], "joining") || nodeproc_stat(&cl->n[5], "stream_records_in", &got) ||
           got == 0) {
        if (nodeproc_now_ms() > deadline || is_role(&cl->n[5], "member"))
            fail_msg("b6 was never seen streaming in");
        nodeproc_sleep_ms(20);
    }
    nodeproc_kill(&cl->n[5], SIGKILL);
    char st[32];
    for (state_of(cl, 0, "b6", st, sizeof st); strcmp(st, "dead") != 0;
         state_of(cl, 0, "b6", st, sizeof st)) {
        if (nodeproc_now_ms() > deadline)
            fail_msg("b1 never saw b6 dead (it says '%s')", st);
        nodeproc_sleep_ms(50);
    }
    raw_tally t;
    assert_int_equal(
        raw_batch(cl->n[0].port, WIRE_OP_PUT, "d", 0, NDEAD, WIRE_CONSISTENCY_QUORUM, &t), 0);
    if (t.st[WIRE_OK] != NDEAD)
        fail_msg("%zu of %d writes acknowledged with the joiner dead: %s", t.st[WIRE_OK], NDEAD,
                 t.msg);
    assert_int_equal(nodeproc_restart(&cl->n[5]), 0); /* same data dir */
    while (!is_role(&cl->n[5], "member")) {
        if (nodeproc_now_ms() > deadline)
            fail_msg("b6 did not finish joining after its restart");
        nodeproc_sleep_ms(50);
    }
    wait_copies(cl, 6, 3LL * (TOTAL + NDEAD), "after b6 joined again");
    read_all(cl, 5, "d", NDEAD);
    read_all(cl, 5, "k", NKEYS);
}

/* Sends env as one peer frame and reads one answer frame back. */
static Ringkv__Envelope *peer_exchange(int port, Ringkv__Envelope *env)
{
    size_t len = ringkv__envelope__get_packed_size(env);
    uint8_t *buf = malloc(8 + len);
    assert_non_null(buf);
    memcpy(buf, "RK\x01\x00", 4);
    buf[4] = (uint8_t)(len >> 24), buf[5] = (uint8_t)(len >> 16);
    buf[6] = (uint8_t)(len >> 8), buf[7] = (uint8_t)len;
    ringkv__envelope__pack(env, buf + 8);
    int fd = raw_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, buf, 8 + len), 0);
    free(buf);
    uint8_t hdr[8], body[4096];
    size_t got = 0, want = 8;
    uint8_t *dst = hdr;
    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t n = read(fd, dst + got, want - got);
        assert_true(n > 0);
        got += (size_t)n;
        if (dst == hdr && got == 8) {
            want = (size_t)hdr[4] << 24 | (size_t)hdr[5] << 16 | (size_t)hdr[6] << 8 | hdr[7];
            assert_true(want <= sizeof body);
            dst = body;
            got = 0;
        }
    }
    close(fd);
    return ringkv__envelope__unpack(NULL, want, body);
}

/* Malformed streaming requests get an error answer; the node serves on. */
static void bad_stream_requests(void **state)
{
    cluster *cl = *state;
    int port = cl->n[0].peer_port;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamPull pull = RINGKV__STREAM_PULL__INIT;
    env.version = 1;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PULL;
    env.stream_pull = &pull;
    pull.id = 5;
    pull.after.data = (uint8_t *)"abc";
    pull.after.len = 3; /* shorter than a token */
    Ringkv__Envelope *r = peer_exchange(port, &env);
    assert_non_null(r);
    assert_int_equal(r->body_case, RINGKV__ENVELOPE__BODY_STREAM_CHUNK);
    assert_int_equal(r->stream_chunk->id, 5);
    assert_false(r->stream_chunk->ok);
    assert_non_null(strstr(r->stream_chunk->error, "malformed"));
    ringkv__envelope__free_unpacked(r, NULL);

    /* A push whose record's origin is too long: refused, nothing stored. */
    Ringkv__StreamPush push = RINGKV__STREAM_PUSH__INIT;
    Ringkv__Record rec = RINGKV__RECORD__INIT, *recs[] = {&rec};
    char origin[100];
    memset(origin, 'o', sizeof origin - 1);
    origin[sizeof origin - 1] = 0;
    rec.key.data = (uint8_t *)"pushed";
    rec.key.len = 6;
    rec.value.data = (uint8_t *)"v";
    rec.value.len = 1;
    rec.hlc = 1;
    rec.origin = origin;
    push.id = 6;
    push.n_records = 1;
    push.records = recs;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PUSH;
    env.stream_push = &push;
    r = peer_exchange(port, &env);
    assert_non_null(r);
    assert_int_equal(r->body_case, RINGKV__ENVELOPE__BODY_STREAM_PUSH_ACK);
    assert_false(r->stream_push_ack->ok);
    ringkv__envelope__free_unpacked(r, NULL);
    /* A tiny chunk asked for is raised to the 4 KiB minimum: a valid pull
     * of the whole ring answers with records. */
    pull.after.len = 0;
    pull.max_bytes = 1;
    pull.lo = pull.hi = 0;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PULL;
    env.stream_pull = &pull;
    r = peer_exchange(port, &env);
    assert_non_null(r);
    assert_true(r->stream_chunk->ok);
    assert_true(r->stream_chunk->n_records > 10);
    assert_false(r->stream_chunk->done);
    ringkv__envelope__free_unpacked(r, NULL);
    assert_int_equal(raw_ping(cl->n[0].port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(join_fourth),         cmocka_unit_test(decommission_one),
        cmocka_unit_test(remove_dead),         cmocka_unit_test(joiner_dies),
        cmocka_unit_test(bad_stream_requests),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
