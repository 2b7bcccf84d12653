/* Bad input against a real ringkvd: garbage, truncated, oversized and
 * malformed frames, wrong types, 1000 concurrent connections, a client that
 * never reads, idle clients, and clients past max_clients. After each, the
 * node must still answer everyone else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nodeproc.h"
#include "rawconn.h"
#include "ringkv.h"

typedef struct fixture {
    nodeproc np;
    msgpack_zone zone;
} fixture;

/* Starts a node with a config file holding `limits` under [limits]. */
static int start_with_limits(void **state, const char *limits)
{
    fixture *f = calloc(1, sizeof *f);
    char path[] = "/tmp/ringkv-test-conf-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    dprintf(fd, "[limits]\n%s\n", limits);
    close(fd);
    const char *args[] = {"--config", path, NULL};
    int rc = nodeproc_start(&f->np, args);
    unlink(path);
    msgpack_zone_init(&f->zone, 4096);
    *state = f;
    return rc;
}

static int setup_small(void **state)
{
    return start_with_limits(state, "max_key_bytes = 1KiB\n"
                                    "max_value_bytes = 64KiB\n"
                                    "max_output_buffer = 256KiB\n"
                                    "idle_timeout = 3s\n");
}

static int setup_few_clients(void **state) { return start_with_limits(state, "max_clients = 5\n"); }

static int setup_default(void **state) { return start_with_limits(state, ""); }

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = nodeproc_stop(&f->np); /* a clean exit proves it survived */
    nodeproc_cleanup(&f->np);
    msgpack_zone_destroy(&f->zone);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void assert_serving(fixture *f) { assert_int_equal(raw_ping(f->np.port), 0); }

/* Reads one reply and checks its id and status. */
static void expect_reply(fixture *f, int fd, uint64_t id, wire_status st)
{
    wire_response r;
    uint8_t *frame;
    assert_int_equal(raw_read_response(fd, 5000, &f->zone, &r, &frame), 0);
    assert_int_equal(r.status, st);
    assert_int_equal(r.id, id);
    if (st != WIRE_OK && st != WIRE_NOT_FOUND)
        assert_true(r.message.len > 0); /* errors say what was wrong */
    free(frame);
}

static void garbage_bytes(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    /* An HTTP request reads as a ~1.2 GB frame length: refused, closed. */
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(raw_send(fd, http, sizeof http - 1), 0);
    expect_reply(f, fd, 0, WIRE_ERR_TOO_LARGE);
    assert_int_equal(raw_wait_closed(fd, 5000), 0);
    close(fd);
    assert_serving(f);
}

static void truncated_frame(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    const uint8_t partial[] = {0, 0, 0, 100, 0x93, 0x01, 0x01, 0xc4};
    assert_int_equal(raw_send(fd, partial, sizeof partial), 0);
    assert_serving(f); /* a half-sent frame blocks nobody else */
    close(fd);
    assert_serving(f);
}

static void oversized_frame(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    /* 1 KiB key + 64 KiB value + 1024 is the limit; claim one byte more. */
    uint32_t len = 1024 + 65536 + 1024 + 1;
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    assert_int_equal(raw_send(fd, hdr, 4), 0);
    expect_reply(f, fd, 0, WIRE_ERR_TOO_LARGE);
    assert_int_equal(raw_wait_closed(fd, 5000), 0);
    close(fd);
    assert_serving(f);
}

static void malformed_msgpack_keeps_connection(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    const uint8_t bad[] = {0, 0, 0, 1, 0xc1}; /* 0xc1: never used in msgpack */
    assert_int_equal(raw_send(fd, bad, sizeof bad), 0);
    expect_reply(f, fd, 0, WIRE_ERR_BAD_REQUEST);
    /* A DoS-shaped header: array32 of 2^32-1 elements in a 5-byte body. */
    const uint8_t dos[] = {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(raw_send(fd, dos, sizeof dos), 0);
    expect_reply(f, fd, 0, WIRE_ERR_BAD_REQUEST);
    /* The framing is intact, so the same connection goes on working. */
    wire_request ping = {.id = 5, .op = WIRE_OP_PING};
    assert_int_equal(raw_send_request(fd, &ping), 0);
    expect_reply(f, fd, 5, WIRE_OK);
    close(fd);
    assert_serving(f);
}

static void wrong_types(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    /* [9, 1, 42]: GET with an integer key. */
    const uint8_t int_key[] = {0, 0, 0, 4, 0x93, 0x09, 0x01, 0x2a};
    assert_int_equal(raw_send(fd, int_key, sizeof int_key), 0);
    expect_reply(f, fd, 9, WIRE_ERR_BAD_REQUEST);
    /* [10, 99]: unknown op. */
    const uint8_t bad_op[] = {0, 0, 0, 3, 0x92, 0x0a, 0x63};
    assert_int_equal(raw_send(fd, bad_op, sizeof bad_op), 0);
    expect_reply(f, fd, 10, WIRE_ERR_BAD_REQUEST);
    /* {"a": 1}: a map, not an array. */
    const uint8_t map[] = {0, 0, 0, 4, 0x81, 0xa1, 'a', 0x01};
    assert_int_equal(raw_send(fd, map, sizeof map), 0);
    expect_reply(f, fd, 0, WIRE_ERR_BAD_REQUEST);
    /* [11, 2, "k"]: PUT without a value. */
    const uint8_t short_put[] = {0, 0, 0, 5, 0x93, 0x0b, 0x02, 0xa1, 'k'};
    assert_int_equal(raw_send(fd, short_put, sizeof short_put), 0);
    expect_reply(f, fd, 11, WIRE_ERR_BAD_REQUEST);
    close(fd);
    assert_serving(f);
}

static void key_and_value_over_limits(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    static uint8_t big[70000];
    memset(big, 'x', sizeof big);
    wire_request put = {.id = 21, .op = WIRE_OP_PUT, .consistency = -1, .key = {big, 1025},
                        .value = {big, 1}};
    assert_int_equal(raw_send_request(fd, &put), 0);
    expect_reply(f, fd, 21, WIRE_ERR_TOO_LARGE);
    put = (wire_request){.id = 22, .op = WIRE_OP_PUT, .consistency = -1, .key = {big, 3},
                         .value = {big, 65537}};
    assert_int_equal(raw_send_request(fd, &put), 0);
    expect_reply(f, fd, 22, WIRE_ERR_TOO_LARGE);
    /* Exactly at the limits is fine. */
    put = (wire_request){.id = 23, .op = WIRE_OP_PUT, .consistency = -1, .key = {big, 1024},
                         .value = {big, 65536}};
    assert_int_equal(raw_send_request(fd, &put), 0);
    expect_reply(f, fd, 23, WIRE_OK);
    close(fd);
    assert_serving(f);
}

/* A client that sends GETs for a 60 KiB value and never reads: the node
 * stops reading it at half of max_output_buffer and drops it when it makes
 * no progress for idle_timeout, while serving others meanwhile. */
static void client_that_never_reads(void **state)
{
    fixture *f = *state;
    rkv_client *c = rkv_connect(f->np.addr, NULL, NULL, 0);
    static uint8_t value[60000];
    memset(value, 'v', sizeof value);
    assert_int_equal(rkv_put(c, "big", 3, value, sizeof value, 0), RKV_OK);

    int fd = raw_connect(f->np.port);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 2000; i++) {
        wire_request get = {.id = (uint64_t)i, .op = WIRE_OP_GET, .consistency = -1,
                            .key = {(const uint8_t *)"big", 3}};
        wire_encode_request(&sb, &get);
    }
    assert_int_equal(raw_send(fd, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);

    for (int i = 0; i < 20; i++) /* others are served meanwhile */
        assert_int_equal(rkv_ping(c), RKV_OK);

    /* Dropped within a bounded time (idle_timeout is 3 s here). */
    uint64_t dropped = 0;
    for (int tries = 0; tries < 150 && dropped == 0; tries++) {
        rkv_stat *st;
        size_t n;
        assert_int_equal(rkv_stats(c, &st, &n), RKV_OK);
        for (size_t i = 0; i < n; i++)
            if (strcmp(st[i].name, "dropped_connections") == 0)
                dropped = st[i].num;
        rkv_stats_free(st, n);
        if (!dropped)
            usleep(100 * 1000);
    }
    assert_true(dropped >= 1);
    assert_int_equal(raw_wait_closed(fd, 10000), 0);
    close(fd);
    rkv_close(c);
    assert_serving(f);
}

static void idle_connection_times_out(void **state)
{
    fixture *f = *state;
    int fd = raw_connect(f->np.port);
    assert_true(fd >= 0);
    assert_int_equal(raw_wait_closed(fd, 15000), 0); /* idle_timeout = 3 s */
    close(fd);
    assert_serving(f);
}

static void thousand_connections(void **state)
{
    fixture *f = *state;
    enum { N = 1000 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 64 && rl.rlim_max >= N + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(f->np.port);
        assert_true(fds[i] >= 0);
        wire_request ping = {.id = (uint64_t)i, .op = WIRE_OP_PING};
        assert_int_equal(raw_send_request(fds[i], &ping), 0);
    }
    for (int i = 0; i < N; i++)
        expect_reply(f, fds[i], (uint64_t)i, WIRE_OK);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_serving(f);
}

static void max_clients_refused_politely(void **state)
{
    fixture *f = *state;
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = raw_connect(f->np.port);
        wire_request ping = {.id = 1, .op = WIRE_OP_PING};
        assert_int_equal(raw_send_request(fds[i], &ping), 0);
        expect_reply(f, fds[i], 1, WIRE_OK);
    }
    int extra = raw_connect(f->np.port);
    expect_reply(f, extra, 0, WIRE_ERR_UNAVAILABLE);
    assert_int_equal(raw_wait_closed(extra, 5000), 0);
    close(extra);
    close(fds[0]);
    /* A slot frees up once the node sees the close. */
    int ok = -1;
    for (int tries = 0; tries < 100 && ok != 0; tries++) {
        ok = raw_ping(f->np.port);
        if (ok != 0)
            usleep(50 * 1000);
    }
    assert_int_equal(ok, 0);
    for (int i = 1; i < 5; i++)
        close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest small[] = {
        cmocka_unit_test(garbage_bytes),
        cmocka_unit_test(truncated_frame),
        cmocka_unit_test(oversized_frame),
        cmocka_unit_test(malformed_msgpack_keeps_connection),
        cmocka_unit_test(wrong_types),
        cmocka_unit_test(key_and_value_over_limits),
        cmocka_unit_test(client_that_never_reads),
        cmocka_unit_test(idle_connection_times_out),
    };
    const struct CMUnitTest many[] = {
        cmocka_unit_test(thousand_connections),
    };
    const struct CMUnitTest few[] = {
        cmocka_unit_test(max_clients_refused_politely),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("limits", small, setup_small, teardown);
    failed += cmocka_run_group_tests_name("many", many, setup_default, teardown);
    failed += cmocka_run_group_tests_name("few", few, setup_few_clients, teardown);
    return failed;
}
