/* test_client: libringkv against a real ringkvd on loopback.
 *
 * One node serves the whole group; tests run in order and the later ones
 * restart, stop and freeze it, so each test uses keys of its own.
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
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "nodeproc.h"
#include "ringkv.h"
#include "wire.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int group_setup(void **state)
{
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

static rkv_client *client_for(const char *addrs, int request_ms)
{
    char err[256] = "";
    rkv_options o = {.connect_timeout_ms = 2000, .request_timeout_ms = request_ms};
    rkv_client *c = rkv_connect(addrs, &o, err, sizeof err);
    if (!c)
        fail_msg("rkv_connect(%s): %s", addrs, err);
    return c;
}

static rkv_client *client(void **state)
{
    return client_for(((nodeproc *)*state)->addr, 10000);
}

/* A loopback port that refuses connections: bound, never listening, and
 * held until the caller closes *fd so nobody else takes it meanwhile. */
static int dead_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void check_value(rkv_client *c, const void *key, size_t klen, const void *want, size_t wlen)
{
    void *v = NULL;
    size_t vlen = 0;
    rkv_status st = rkv_get(c, key, klen, &v, &vlen);
    if (st != RKV_OK)
        fail_msg("get: %s: %s", rkv_status_name(st), rkv_errstr(c));
    assert_non_null(v);
    assert_int_equal(vlen, wlen);
    if (wlen)
        assert_memory_equal(v, want, wlen);
    rkv_free(v);
}

static void check_absent(rkv_client *c, const void *key, size_t klen)
{
    void *v = (void *)1;
    size_t vlen = 1;
    assert_int_equal(rkv_get(c, key, klen, &v, &vlen), RKV_NOT_FOUND);
    assert_null(v);
    assert_int_equal(vlen, 0);
}

static void test_put_get_del(void **state)
{
    rkv_client *c = client(state);
    assert_int_equal(rkv_put(c, "alpha", 5, "one", 3, 0), RKV_OK);
    check_value(c, "alpha", 5, "one", 3);
    assert_int_equal(rkv_put(c, "alpha", 5, "two!", 4, 0), RKV_OK);
    check_value(c, "alpha", 5, "two!", 4);
    assert_int_equal(rkv_del(c, "alpha", 5), RKV_OK);
    check_absent(c, "alpha", 5);
    rkv_close(c);
}

static void test_binary_key_and_value(void **state)
{
    rkv_client *c = client(state);
    static const char key[] = "bin\0key\xff\n";
    unsigned char val[512];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (unsigned char)i;
    assert_int_equal(rkv_put(c, key, sizeof key, val, sizeof val, 0), RKV_OK);
    check_value(c, key, sizeof key, val, sizeof val);
    /* The key is not cut at its NUL: the prefix is a different key. */
    check_absent(c, key, 3);
    rkv_close(c);
}

static void test_empty_value(void **state)
{
    rkv_client *c = client(state);
    assert_int_equal(rkv_put(c, "empty", 5, NULL, 0, 0), RKV_OK);
    check_value(c, "empty", 5, "", 0);
    assert_int_equal(rkv_put(c, "empty2", 6, "", 0, 0), RKV_OK);
    check_value(c, "empty2", 6, "", 0);
    rkv_close(c);
}

static void test_large_value(void **state)
{
    rkv_client *c = client(state);
    size_t n = 1 << 20;
    unsigned char *val = malloc(n);
    assert_non_null(val);
    for (size_t i = 0; i < n; i++)
        val[i] = (unsigned char)(i * 31 + 7);
    assert_int_equal(rkv_put(c, "big", 3, val, n, 0), RKV_OK);
    check_value(c, "big", 3, val, n);
    /* Twice: the receive buffer is reused, and released when large. */
    check_value(c, "big", 3, val, n);
    free(val);
    rkv_close(c);
}

static void test_ttl(void **state)
{
    rkv_client *c = client(state);
    assert_int_equal(rkv_put(c, "ttl", 3, "soon gone", 9, 200), RKV_OK);
    check_value(c, "ttl", 3, "soon gone", 9);
    long long deadline = now_ms() + 5000;
    rkv_status st;
    void *v;
    size_t vlen;
    while ((st = rkv_get(c, "ttl", 3, &v, &vlen)) == RKV_OK && now_ms() < deadline) {
        rkv_free(v);
        sleep_ms(20);
    }
    if (st == RKV_OK)
        rkv_free(v);
    assert_int_equal(st, RKV_NOT_FOUND);
    rkv_close(c);
}

static void test_absent_keys(void **state)
{
    rkv_client *c = client(state);
    check_absent(c, "never-written", 13);
    assert_int_equal(rkv_del(c, "never-written", 13), RKV_OK);
    check_absent(c, "never-written", 13);
    rkv_close(c);
}

static void test_ping(void **state)
{
    rkv_client *c = client(state);
    assert_int_equal(rkv_ping(c), RKV_OK);
    assert_int_equal(rkv_ping(c), RKV_OK);
    rkv_close(c);
}

static const rkv_stat *find_stat(const rkv_stat *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return &s[i];
    return NULL;
}

static uint64_t num_stat(const rkv_stat *s, size_t n, const char *name)
{
    const rkv_stat *e = find_stat(s, n, name);
    if (!e)
        fail_msg("stats have no \"%s\"", name);
    if (!e->is_num)
        fail_msg("stat \"%s\" is not a number: \"%s\"", name, e->str);
    return e->num;
}

static void test_stats(void **state)
{
    static const char *const names[] = {
        "keys",      "tombstones",     "ops_get",     "ops_put",           "ops_del",
        "ops_ping",  "ops_stats",      "connections", "total_connections", "bytes_in",
        "bytes_out", "uptime_seconds", "fsync",       "version",           "node_id",
    };
    rkv_client *c = client(state);
    rkv_stat *s1, *s2;
    size_t n1, n2;
    assert_int_equal(rkv_stats(c, &s1, &n1), RKV_OK);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!find_stat(s1, n1, names[i]))
            fail_msg("stats have no \"%s\"", names[i]);
    assert_int_equal(rkv_put(c, "stats-key", 9, "v", 1, 0), RKV_OK);
    assert_int_equal(rkv_stats(c, &s2, &n2), RKV_OK);
    assert_true(num_stat(s2, n2, "ops_put") >= num_stat(s1, n1, "ops_put") + 1);
    assert_true(num_stat(s2, n2, "ops_stats") >= num_stat(s1, n1, "ops_stats") + 1);
    assert_true(num_stat(s2, n2, "keys") >= 1);
    assert_true(num_stat(s2, n2, "connections") >= 1);
    rkv_stats_free(s1, n1);
    rkv_stats_free(s2, n2);
    rkv_close(c);
}

/* Without a peer address the node has no membership: MEMBERS and REMOVE
 * are refused as UNAVAILABLE and the connection stays usable. */
static void test_members_without_membership(void **state)
{
    rkv_client *c = client(state);
    rkv_member *m = (rkv_member *)1;
    size_t n = 7;
    assert_int_equal(rkv_members(c, &m, &n), RKV_ERR_UNAVAILABLE);
    assert_null(m);
    assert_int_equal(n, 0);
    assert_non_null(strstr(rkv_errstr(c), "membership is off"));
    assert_int_equal(rkv_remove(c, "node2"), RKV_ERR_UNAVAILABLE);
    assert_int_equal(rkv_ping(c), RKV_OK);
    assert_int_equal(rkv_members(c, NULL, &n), RKV_ERR_ARG);
    assert_int_equal(rkv_remove(c, ""), RKV_ERR_ARG);
    assert_int_equal(rkv_remove(c, NULL), RKV_ERR_ARG);
    assert_int_equal(rkv_members(NULL, &m, &n), RKV_ERR_ARG);
    rkv_members_free(NULL, 0);
    rkv_close(c);
}

/* A node without membership is a ring of one: itself, owning everything. */
static void test_topology_single_node(void **state)
{
    nodeproc *np = *state;
    rkv_client *c = client(state);
    struct rkv_topology *t = NULL;
    rkv_status st = rkv_topology(c, &t);
    if (st != RKV_OK)
        fail_msg("topology: %s: %s", rkv_status_name(st), rkv_errstr(c));
    assert_int_equal(t->nmembers, 1);
    assert_true(t->n == 1);
    assert_true(t->vnodes_default == 128);
    assert_true(t->epoch != 0);
    assert_string_equal(t->members[0].client_addr, np->addr);
    assert_string_equal(t->members[0].state, "alive");
    assert_true(t->members[0].vnodes == 128);
    assert_true(t->members[0].share > 0.9999 && t->members[0].share < 1.0001);
    assert_non_null(strstr(t->members[0].id, "node-"));

    /* The token is the ring's: a known answer from tests/vectors/ring.txt. */
    size_t idx[4];
    uint64_t token = 0;
    assert_int_equal(rkv_topology_locate(t, "key0", 4, &token, idx, 4), 1);
    assert_true(token == 0x74d935ed02021ec6ULL);
    assert_int_equal(idx[0], 0);
    assert_int_equal(rkv_topology_locate(t, "key0", 4, NULL, idx, 0), 0);
    rkv_topology_free(t);
    rkv_topology_free(NULL);
    assert_int_equal(rkv_topology(c, NULL), RKV_ERR_ARG);
    assert_int_equal(rkv_topology(NULL, &t), RKV_ERR_ARG);

    /* Requests are routed to it, and say so. */
    assert_int_equal(rkv_put(c, "routed", 6, "v", 1, 0), RKV_OK);
    assert_string_equal(rkv_last_node(c), np->addr);
    rkv_close(c);
}

/* ---- a node from before TOPOLOGY ---- */

/* A fake node that answers TOPOLOGY as an unknown op (BAD_REQUEST), as nodes
 * did before it existed, and everything else with OK (GET: "old"). */
typedef struct old_node {
    int lfd, port;
    int topology_asks;
    pthread_t th;
} old_node;

static int read_full(int fd, uint8_t *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void *old_node_run(void *arg)
{
    old_node *o = arg;
    int fd = accept(o->lfd, NULL, NULL);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint8_t hdr[4], body[4096];
    while (fd >= 0 && read_full(fd, hdr, 4) == 0) {
        uint32_t len = wire_frame_len(hdr);
        if (len > sizeof body || read_full(fd, body, len) < 0)
            break;
        wire_request req;
        uint64_t id;
        char err[256];
        msgpack_sbuffer_clear(&sb);
        if (wire_decode_request(body, len, &zone, &req, &id, err, sizeof err) < 0) {
            o->topology_asks += strstr(err, "unknown op 8") != NULL;
            wire_encode_status(&sb, id, WIRE_ERR_BAD_REQUEST, "unknown op 8");
        } else if (req.op == WIRE_OP_TOPOLOGY) { /* this build knows it: pretend not to */
            o->topology_asks++;
            wire_encode_status(&sb, id, WIRE_ERR_BAD_REQUEST, "unknown op 8; expected 1 GET ...");
        } else if (req.op == WIRE_OP_GET) {
            wire_encode_value_head(&sb, id, 3);
            msgpack_sbuffer_write(&sb, "old", 3);
        } else {
            wire_encode_status(&sb, id, WIRE_OK, NULL);
        }
        msgpack_zone_clear(&zone);
        if (write(fd, sb.data, sb.size) != (ssize_t)sb.size)
            break;
    }
    if (fd >= 0)
        close(fd);
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
    return NULL;
}

/* The client falls back to its seed when the node knows no TOPOLOGY, and
 * asks again only after a long pause, not on every request. */
static void test_node_without_topology(void **state)
{
    (void)state;
    old_node o = {0};
    o.port = dead_port(&o.lfd);
    assert_int_equal(listen(o.lfd, 4), 0);
    assert_int_equal(pthread_create(&o.th, NULL, old_node_run, &o), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", o.port);
    rkv_client *c = client_for(addr, 5000);
    for (int i = 0; i < 5; i++) {
        rkv_status st = rkv_put(c, "k", 1, "v", 1, 0);
        if (st != RKV_OK)
            fail_msg("put: %s: %s", rkv_status_name(st), rkv_errstr(c));
        check_value(c, "k", 1, "old", 3);
        sleep_ms(30);
    }
    assert_string_equal(rkv_last_node(c), addr);
    size_t n = 9;
    rkv_last_replicas(c, &n);
    assert_int_equal(n, 0);
    struct rkv_topology *t = NULL;
    assert_int_equal(rkv_topology(c, &t), RKV_ERR_BAD_REQUEST);
    assert_null(t);
    assert_non_null(strstr(rkv_errstr(c), "unknown op 8"));
    rkv_close(c);
    pthread_join(o.th, NULL);
    close(o.lfd);
    assert_int_equal(o.topology_asks, 2); /* the first request, and rkv_topology */
}

/* A node listening on a wildcard address advertises 0.0.0.0:PORT; the
 * client reaches it through the host it asked. */
static void test_topology_wildcard_listen(void **state)
{
    (void)state;
    nodeproc np = {0};
    const char *args[] = {"--listen", "0.0.0.0:0", NULL};
    assert_int_equal(nodeproc_start(&np, args), 0);
    char seed[64];
    snprintf(seed, sizeof seed, "localhost:%d", np.port);
    rkv_client *c = client_for(seed, 5000);
    struct rkv_topology *t;
    assert_int_equal(rkv_topology(c, &t), RKV_OK);
    assert_int_equal(t->nmembers, 1);
    assert_true(strncmp(t->members[0].client_addr, "0.0.0.0:", 8) == 0);
    rkv_topology_free(t);
    rkv_status st = rkv_put(c, "wild", 4, "card", 4, 0);
    if (st != RKV_OK)
        fail_msg("put: %s: %s", rkv_status_name(st), rkv_errstr(c));
    assert_string_equal(rkv_last_node(c), seed);
    check_value(c, "wild", 4, "card", 4);
    rkv_close(c);
    nodeproc_cleanup(&np);
}

/* Every consistency level is accepted; a node without replication serves
 * each with its one replica. */
static void test_consistency_levels(void **state)
{
    rkv_client *c = client(state);
    assert_string_equal(rkv_last_node(c), "");
    size_t n = 9;
    const char *const *reps = rkv_last_replicas(c, &n);
    assert_int_equal(n, 0);
    assert_non_null(reps);
    const rkv_consistency levels[] = {RKV_CONSISTENCY_ONE, RKV_CONSISTENCY_QUORUM,
                                      RKV_CONSISTENCY_ALL, RKV_CONSISTENCY_DEFAULT};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        assert_int_equal(rkv_set_consistency(c, levels[i]), RKV_OK);
        rkv_status st = rkv_put(c, "cons", 4, "v", 1, 0);
        if (st != RKV_OK)
            fail_msg("put at level %d: %s: %s", (int)levels[i], rkv_status_name(st),
                     rkv_errstr(c));
        reps = rkv_last_replicas(c, &n);
        assert_true(n <= 1); /* one replica, when the node reports it */
        if (n == 1)
            assert_non_null(strstr(reps[0], "node-"));
        check_value(c, "cons", 4, "v", 1);
        assert_int_equal(rkv_del(c, "cons", 4), RKV_OK);
        check_absent(c, "cons", 4);
    }
    assert_int_equal(rkv_set_consistency(c, (rkv_consistency)3), RKV_ERR_ARG);
    assert_non_null(strstr(rkv_errstr(c), "consistency"));
    assert_int_equal(rkv_set_consistency(c, (rkv_consistency)-2), RKV_ERR_ARG);
    assert_int_equal(rkv_set_consistency(NULL, RKV_CONSISTENCY_ONE), RKV_ERR_ARG);
    assert_int_equal(rkv_ping(c), RKV_OK);
    rkv_close(c);
}

static void test_too_large_then_usable(void **state)
{
    rkv_client *c = client(state);
    size_t klen = 70000; /* the default max_key_bytes is 65536 */
    char *key = malloc(klen);
    assert_non_null(key);
    memset(key, 'k', klen);
    assert_int_equal(rkv_put(c, key, klen, "v", 1, 0), RKV_ERR_TOO_LARGE);
    const char *msg = rkv_errstr(c);
    print_message("too large key: %s\n", msg);
    assert_non_null(strstr(msg, ((nodeproc *)*state)->addr));
    assert_true(strlen(msg) > strlen(((nodeproc *)*state)->addr) + 8);
    void *v;
    size_t vlen;
    assert_int_equal(rkv_get(c, key, klen, &v, &vlen), RKV_ERR_TOO_LARGE);
    free(key);

    /* The connection survives: the same client keeps working. */
    assert_int_equal(rkv_put(c, "after-too-large", 15, "ok", 2, 0), RKV_OK);
    check_value(c, "after-too-large", 15, "ok", 2);
    rkv_close(c);
}

static void test_value_too_large_then_usable(void **state)
{
    rkv_client *c = client(state);
    size_t n = (16u << 20) + 1; /* the default max_value_bytes is 16 MiB */
    char *val = calloc(1, n);
    assert_non_null(val);
    assert_int_equal(rkv_put(c, "huge", 4, val, n, 0), RKV_ERR_TOO_LARGE);
    print_message("too large value: %s\n", rkv_errstr(c));
    assert_int_equal(rkv_ping(c), RKV_OK);

    /* A frame over the node's frame limit: the node answers before it
     * closes the connection, and the client reports that answer rather
     * than the broken send. The next call reconnects. */
    size_t over = 20u << 20;
    val = realloc(val, over);
    assert_non_null(val);
    memset(val, 0, over);
    assert_int_equal(rkv_put(c, "huge", 4, val, over, 0), RKV_ERR_TOO_LARGE);
    print_message("frame over the limit: %s\n", rkv_errstr(c));
    assert_non_null(strstr(rkv_errstr(c), ((nodeproc *)*state)->addr));
    free(val);
    assert_int_equal(rkv_ping(c), RKV_OK);
    rkv_close(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char err[256] = "";
    static const char *const bad[] = {"",
                                      " , ",
                                      "127.0.0.1",
                                      "127.0.0.1:",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      ":7001",
                                      "::1:7001",
                                      "[::1]7001",
                                      "127.0.0.1:7001,nonsense"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (rkv_connect(bad[i], NULL, err, sizeof err))
            fail_msg("rkv_connect accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
    assert_null(rkv_connect(NULL, NULL, NULL, 0));

    rkv_client *c = client_for("[::1]:7001, localhost:7001 ,127.0.0.1:7001", 1000);
    void *v;
    size_t vlen;
    assert_int_equal(rkv_get(c, NULL, 3, &v, &vlen), RKV_ERR_ARG);
    assert_true(rkv_errstr(c)[0] != '\0');
    assert_int_equal(rkv_get(c, "k", 0, &v, &vlen), RKV_ERR_ARG);
    assert_int_equal(rkv_put(c, NULL, 1, "v", 1, 0), RKV_ERR_ARG);
    assert_int_equal(rkv_put(c, "k", 1, NULL, 1, 0), RKV_ERR_ARG);
    assert_int_equal(rkv_del(c, "k", 0), RKV_ERR_ARG);
    assert_int_equal(rkv_ping(NULL), RKV_ERR_ARG);
    rkv_close(c);
    rkv_close(NULL);
    assert_string_equal(rkv_status_name(RKV_ERR_TIMEOUT), "TIMEOUT");
    assert_string_equal(rkv_status_name(RKV_NOT_FOUND), "NOT_FOUND");
}

static void test_reconnect_after_restart(void **state)
{
    nodeproc *np = *state;
    rkv_client *c = client(state);
    assert_int_equal(rkv_put(c, "restart", 7, "before", 6, 0), RKV_OK);
    assert_int_equal(nodeproc_stop(np), 0);
    assert_int_equal(nodeproc_restart(np), 0);

    /* The old connection is gone; at most one call may report it. */
    rkv_status st = rkv_ping(c);
    if (st == RKV_ERR_IO)
        st = rkv_ping(c);
    if (st != RKV_OK)
        fail_msg("after restart: %s: %s", rkv_status_name(st), rkv_errstr(c));
    assert_int_equal(rkv_put(c, "restart", 7, "after", 5, 0), RKV_OK);
    check_value(c, "restart", 7, "after", 5);
    rkv_close(c);
}

static void test_failover_to_next_address(void **state)
{
    nodeproc *np = *state;
    int fd;
    char addrs[200];
    snprintf(addrs, sizeof addrs, "127.0.0.1:%d,%s", dead_port(&fd), np->addr);
    rkv_client *c = client_for(addrs, 5000);
    assert_int_equal(rkv_ping(c), RKV_OK);
    assert_int_equal(rkv_put(c, "failover", 8, "x", 1, 0), RKV_OK);
    check_value(c, "failover", 8, "x", 1);
    rkv_close(c);

    /* A host name goes through getaddrinfo. */
    snprintf(addrs, sizeof addrs, "localhost:%d", np->port);
    c = client_for(addrs, 5000);
    assert_int_equal(rkv_ping(c), RKV_OK);
    rkv_close(c);
    close(fd);
}

static void test_dead_addresses_only(void **state)
{
    (void)state;
    int fd1, fd2;
    char addr1[64], addrs[200];
    snprintf(addr1, sizeof addr1, "127.0.0.1:%d", dead_port(&fd1));
    rkv_client *c = client_for(addr1, 1000);
    assert_int_equal(rkv_ping(c), RKV_ERR_IO);
    print_message("dead address: %s\n", rkv_errstr(c));
    assert_non_null(strstr(rkv_errstr(c), addr1));
    /* Still failing, still saying why, on the next call. */
    assert_int_equal(rkv_put(c, "k", 1, "v", 1, 0), RKV_ERR_IO);
    assert_non_null(strstr(rkv_errstr(c), addr1));
    rkv_close(c);

    snprintf(addrs, sizeof addrs, "%s,127.0.0.1:%d", addr1, dead_port(&fd2));
    c = client_for(addrs, 1000);
    assert_int_equal(rkv_ping(c), RKV_ERR_IO);
    print_message("dead addresses: %s\n", rkv_errstr(c));
    assert_non_null(strstr(rkv_errstr(c), addr1));
    assert_non_null(strstr(rkv_errstr(c), addrs + strlen(addr1) + 1));
    rkv_close(c);
    close(fd1);
    close(fd2);
}

static void test_request_timeout(void **state)
{
    nodeproc *np = *state;
    rkv_client *c = client_for(np->addr, 300);
    assert_int_equal(rkv_ping(c), RKV_OK);

    assert_int_equal(kill(np->pid, SIGSTOP), 0);
    void *v;
    size_t vlen;
    rkv_status st = rkv_get(c, "frozen", 6, &v, &vlen);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rkv_errstr(c));
    kill(np->pid, SIGCONT); /* before any assert, so the node is never left stopped */

    assert_int_equal(st, RKV_ERR_TIMEOUT);
    print_message("timeout: %s\n", msg);
    assert_non_null(strstr(msg, np->addr));
    assert_non_null(strstr(msg, "300 ms"));
    /* The late reply is not mistaken for the next one's: a new connection. */
    assert_int_equal(rkv_put(c, "frozen", 6, "thawed", 6, 0), RKV_OK);
    check_value(c, "frozen", 6, "thawed", 6);
    rkv_close(c);
}

/* ---- a node that drops idle clients quickly ---- */

typedef struct idle_fixture {
    nodeproc np; /* first: client() reads the state as a nodeproc */
    char conf[64];
} idle_fixture;

static int idle_setup(void **state)
{
    idle_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->conf, sizeof f->conf, "/tmp/ringkv-idle-XXXXXX");
    int fd = mkstemp(f->conf);
    static const char conf[] = "[limits]\nidle_timeout = 300ms\n";
    if (fd < 0 || write(fd, conf, sizeof conf - 1) != (ssize_t)(sizeof conf - 1)) {
        free(f);
        return -1;
    }
    close(fd);
    const char *args[] = {"--config", f->conf, NULL};
    if (nodeproc_start(&f->np, args) < 0) {
        unlink(f->conf);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int idle_teardown(void **state)
{
    idle_fixture *f = *state;
    nodeproc_cleanup(&f->np);
    unlink(f->conf);
    free(f);
    return 0;
}

/* The node closes a client idle past idle_timeout. The next call must find
 * that out before sending and reconnect, instead of failing: nothing was
 * sent, so trying again is safe. */
static void test_idle_connection_closed_by_node(void **state)
{
    rkv_client *c = client(state);
    assert_int_equal(rkv_put(c, "idle", 4, "1", 1, 0), RKV_OK);
    for (int i = 0; i < 2; i++) {
        sleep_ms(1500); /* well past the node's 300 ms idle_timeout */
        rkv_status st = rkv_put(c, "idle", 4, "2", 1, 0);
        if (st != RKV_OK)
            fail_msg("put after idle close: %s: %s", rkv_status_name(st), rkv_errstr(c));
    }
    check_value(c, "idle", 4, "2", 1);
    rkv_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_del),
        cmocka_unit_test(test_binary_key_and_value),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_large_value),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_absent_keys),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_members_without_membership),
        cmocka_unit_test(test_topology_single_node),
        cmocka_unit_test(test_consistency_levels),
        cmocka_unit_test(test_topology_wildcard_listen),
        cmocka_unit_test(test_node_without_topology),
        cmocka_unit_test(test_too_large_then_usable),
        cmocka_unit_test(test_value_too_large_then_usable),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_failover_to_next_address),
        cmocka_unit_test(test_dead_addresses_only),
        cmocka_unit_test(test_request_timeout),
    };
    const struct CMUnitTest idle_tests[] = {
        cmocka_unit_test(test_idle_connection_closed_by_node),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return failed + cmocka_run_group_tests(idle_tests, idle_setup, idle_teardown);
}
