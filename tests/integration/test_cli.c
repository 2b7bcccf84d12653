/* test_cli: the `ringkv` program against a real ringkvd on loopback.
 *
 * Every test runs the CLI as a child process through nodeproc_cli, which
 * passes "-h <node>" first; a test's own -h comes later and wins.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nodeproc.h"

typedef struct cli_result {
    int rc;
    char *out;
    size_t len;
    char *err;
} cli_result;

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

/* Runs the CLI with the NULL-terminated args after inlen, feeding in. */
static cli_result run_in(void **state, const void *in, size_t inlen, ...)
{
    const char *argv[32];
    int n = 0;
    va_list ap;
    va_start(ap, inlen);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;

    cli_result r = {0};
    r.rc = nodeproc_cli(*state, argv, in, inlen, &r.out, &r.len, &r.err);
    if (r.rc < 0)
        fail_msg("could not run the CLI");
    return r;
}

#define run(state, ...) run_in(state, NULL, 0, __VA_ARGS__, (const char *)NULL)

static void result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
}

/* Checks exit status and, when given, that stdout is exactly want. */
static void check(cli_result r, int rc, const char *want)
{
    if (r.rc != rc)
        fail_msg("exit %d, wanted %d; stdout: %s; stderr: %s", r.rc, rc, r.out, r.err);
    if (want && (r.len != strlen(want) || memcmp(r.out, want, r.len) != 0))
        fail_msg("stdout is \"%s\", wanted \"%s\"", r.out, want);
    result_free(&r);
}

static void check_out(cli_result r, int rc, const char *part)
{
    if (r.rc != rc || !strstr(r.out, part))
        fail_msg("exit %d (wanted %d), stdout lacks \"%s\"; stdout: %s; stderr: %s", r.rc, rc, part,
                 r.out, r.err);
    result_free(&r);
}

static void check_err(cli_result r, int rc, const char *part)
{
    if (r.rc != rc || !strstr(r.err, part))
        fail_msg("exit %d (wanted %d), stderr lacks \"%s\"; stdout: %s; stderr: %s", r.rc, rc, part,
                 r.out, r.err);
    result_free(&r);
}

static void test_put_get(void **state)
{
    check(run(state, "put", "k1", "hello world"), 0, "OK\n");
    /* stdout is a pipe: the value exactly, no newline added */
    check(run(state, "get", "k1"), 0, "hello world");
    /* A value that looks like an option stays a value. */
    check(run(state, "put", "neg", "-5"), 0, "OK\n");
    check(run(state, "get", "neg"), 0, "-5");
}

static void test_get_missing(void **state)
{
    cli_result r = run(state, "get", "no-such-key");
    assert_int_equal(r.len, 0);
    check_err(r, 1, "not found");
}

static void test_put_binary_stdin(void **state)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    check(run_in(state, all, sizeof all, "put", "bin", "-", (const char *)NULL), 0, "OK\n");
    cli_result r = run(state, "get", "bin");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.len, sizeof all);
    assert_memory_equal(r.out, all, sizeof all);
    result_free(&r);
}

static void test_empty_value(void **state)
{
    check(run(state, "put", "empty", ""), 0, "OK\n");
    check(run(state, "get", "empty"), 0, "");
    /* '-' with nothing on stdin is an empty value too */
    check(run(state, "put", "empty2", "-"), 0, "OK\n");
    check(run(state, "get", "empty2"), 0, "");
}

static void test_del(void **state)
{
    check(run(state, "put", "gone", "x"), 0, "OK\n");
    check(run(state, "del", "gone"), 0, "OK\n");
    check_err(run(state, "get", "gone"), 1, "not found");
    check(run(state, "del", "gone"), 0, "OK\n");
}

static void test_ping(void **state)
{
    check_out(run(state, "ping"), 0, "PONG");
}

static void test_stats(void **state)
{
    cli_result r = run(state, "stats");
    assert_non_null(strstr(r.out, "ops_put"));
    check_out(r, 0, "keys ");

    r = run(state, "--json", "stats");
    assert_true(r.len > 0 && r.out[0] == '{');
    assert_non_null(strstr(r.out, "\"ops_put\":"));
    check_out(r, 0, "\"keys\":");

    r = run(state, "stats", "--json");
    assert_true(r.len > 0 && r.out[0] == '{');
    check_out(r, 0, "\"keys\":");
}

/* This node runs without a peer address, so membership commands say so
 * (test_membership drives them against a real cluster). */
static void test_members_without_membership(void **state)
{
    check_err(run(state, "members"), 2, "membership is off (no [node] peer)");
    check_err(run(state, "members", "--json"), 2, "membership is off");
    check_err(run(state, "remove", "node2"), 2, "membership is off");
    check_err(run(state, "members", "extra"), 2, "usage: members [--json]");
    check_err(run(state, "remove"), 2, "usage: remove ID");
    cli_result r = run(state, "--json", "stats");
    check_out(r, 0, "\"membership\":\"off\"");
    /* decommission needs membership; status shows the node alone */
    check_err(run(state, "decommission"), 2, "membership is off (no [node] peer)");
    check_err(run(state, "decommission", "x", "y"), 2, "usage: decommission [ID]");
    r = run(state, "status");
    check_out(r, 0, "ACTIVITY\nnode-");
    r = run(state, "status");
    check_out(r, 0, " member        1  100.0%");
}

/* A node without membership: a ring of one that owns every key. */
static void test_ring_and_locate_single(void **state)
{
    nodeproc *np = *state;
    cli_result r = run(state, "ring");
    check_out(r, 0, "100.00%");
    r = run(state, "ring");
    check_out(r, 0, np->addr);
    r = run(state, "ring");
    check_out(r, 0, "replicas per key (N) 1");
    /* The known answer of tests/vectors/ring.txt. */
    r = run(state, "locate", "key0");
    check_out(r, 0, "token 74d935ed02021ec6\n1  node-");
    r = run(state, "locate", "key0");
    check_out(r, 0, np->addr);
    r = run(state, "locate");
    check_err(r, 2, "usage: locate KEY");
}

static void test_consistency_option(void **state)
{
    static const char *const levels[] = {"one", "quorum", "all"};
    for (int i = 0; i < 3; i++) {
        check(run(state, "-c", levels[i], "put", "ck", levels[i]), 0, "OK\n");
        check(run(state, "--consistency", levels[i], "get", "ck"), 0, levels[i]);
        check(run(state, "-c", levels[i], "del", "ck"), 0, "OK\n");
    }
    check_err(run(state, "-c", "most", "get", "ck"), 2, "--consistency wants one, quorum or all");
    /* --verbose names the coordinator (and the replicas, when the node says). */
    nodeproc *np = *state;
    cli_result r = run(state, "-v", "put", "ck", "x");
    check_err(r, 0, "coordinator: ");
    r = run(state, "--verbose", "-c", "all", "get", "ck");
    check_err(r, 0, np->addr);
    r = run(state, "--help");
    check_out(r, 0, "--consistency");
}

static void test_ttl(void **state)
{
    check(run(state, "put", "ttl", "v", "--ttl", "200"), 0, "OK\n");
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cli_result r = run(state, "get", "ttl");
        int rc = r.rc;
        result_free(&r);
        if (rc == 1)
            break;
        assert_int_equal(rc, 0);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 5)
            fail_msg("key with --ttl 200 still there after 5 s");
        usleep(20000);
    }
    check_err(run(state, "put", "ttl", "v", "--ttl", "soon"), 2, "--ttl");
}

static void test_help_and_version(void **state)
{
    cli_result r = run(state, "--help");
    static const char *const parts[] = {"Usage", "get KEY",   "put KEY VALUE",   "del KEY",
                                        "ping",  "stats",     "members [--json]", "remove ID",
                                        "--host", "--timeout", "--json"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (!strstr(r.out, parts[i]))
            fail_msg("--help lacks \"%s\": %s", parts[i], r.out);
    check(r, 0, NULL);
    r = run(state, "--version");
    assert_true(strncmp(r.out, "ringkv ", 7) == 0);
    check(r, 0, NULL);
}

static void test_usage_errors(void **state)
{
    cli_result r = run(state, "frobnicate");
    assert_non_null(strstr(r.err, "--help"));
    check_err(r, 2, "unknown command");
    check_err(run(state, "get"), 2, "usage");
    check_err(run(state, "get", "a", "b"), 2, "usage");
    check_err(run(state, "put", "a"), 2, "usage");
    check_err(run(state, "--bogus", "ping"), 2, "--bogus");
}

static void test_bad_host(void **state)
{
    check_err(run(state, "-h", "nonsense", "ping"), 2, "ringkv: ");

    /* A port nobody listens on: bound, never listening. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", ntohs(a.sin_port));
    check_err(run(state, "--host", dead, "get", "k"), 2, dead);
    close(fd);
}

static void test_interactive_piped(void **state)
{
    static const char in[] = "put a 1\nget a\nhelp\nquit\n";
    cli_result r = run_in(state, in, sizeof in - 1, (const char *)NULL);
    assert_non_null(strstr(r.out, "OK\n1\n"));
    check_out(r, 0, "get KEY");
}

static void test_interactive_quoting_and_errors(void **state)
{
    static const char in[] = "put \"sp ace\" \"a b\\x41\\t\"'c d'\n"
                             "get 'sp ace'\n"
                             "bogus\n"
                             "get never-there\n"
                             "put 'unbalanced\n"
                             "\n"
                             "ping\n";
    cli_result r = run_in(state, in, sizeof in - 1, (const char *)NULL);
    assert_non_null(strstr(r.out, "a bA\tc d\n"));
    assert_non_null(strstr(r.err, "unknown command 'bogus'"));
    assert_non_null(strstr(r.err, "not found"));
    assert_non_null(strstr(r.err, "unbalanced"));
    /* Errors do not end the session: the last line still ran. */
    check_out(r, 0, "PONG");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_get_missing),
        cmocka_unit_test(test_put_binary_stdin),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_del),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_ring_and_locate_single),
        cmocka_unit_test(test_consistency_option),
        cmocka_unit_test(test_members_without_membership),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_host),
        cmocka_unit_test(test_interactive_piped),
        cmocka_unit_test(test_interactive_quoting_and_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
