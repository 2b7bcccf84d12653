/* test_resp_parse: node/resp_parse.c on known inputs: multibulk and inline
 * commands, Redis' quoting rules, every protocol error with its message,
 * every limit, resuming at every split point, resp_strtoll's edges, and
 * resp_scan against resp_parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_parse.h"

static resp_parser p;

static int setup(void **state)
{
    (void)state;
    resp_parser_init(&p, 100, 8, 64, 256);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    resp_parser_free(&p);
    return 0;
}

/* Parses the first command of s (a writable copy); returns the result. */
static resp_parse_result parse(const char *s, size_t len, char *copy, size_t *need)
{
    memcpy(copy, s, len);
    resp_parser_reset(&p);
    return resp_parse(&p, (uint8_t *)copy, len, need);
}

static void expect_args(const char *buf, int argc, ...)
{
    va_list ap;
    va_start(ap, argc);
    assert_int_equal(p.argc, argc);
    for (int i = 0; i < argc; i++) {
        const char *want = va_arg(ap, const char *);
        assert_int_equal(p.argv[i].len, strlen(want));
        assert_memory_equal(buf + p.argv[i].off, want, p.argv[i].len);
    }
    va_end(ap);
}

static void test_multibulk(void **state)
{
    (void)state;
    char buf[256];
    size_t need;
    const char cmd[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nrest";
    assert_int_equal(parse(cmd, sizeof cmd - 1, buf, &need), RESP_PARSE_OK);
    expect_args(buf, 3, "SET", "k", "");
    assert_int_equal(p.consumed, sizeof cmd - 1 - 4);
    const char empty[] = "*0\r\n";
    assert_int_equal(parse(empty, 4, buf, &need), RESP_PARSE_OK);
    assert_int_equal(p.argc, 0);
    assert_int_equal(p.consumed, 4);
}

/* Every prefix of a command is INCOMPLETE asking for more, and resuming
 * with one more byte at a time gives the same command. */
static void test_every_split(void **state)
{
    (void)state;
    const char *cmds[] = {"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n", "ECHO \"a b\" 'c'\r\n"};
    for (size_t c = 0; c < 2; c++) {
        size_t len = strlen(cmds[c]);
        char buf[64];
        memcpy(buf, cmds[c], len);
        resp_parser_reset(&p);
        size_t need = 0;
        for (size_t n = 0; n < len; n++) {
            assert_int_equal(resp_parse(&p, (uint8_t *)buf, n, &need), RESP_PARSE_INCOMPLETE);
            assert_true(need > n);
        }
        assert_int_equal(resp_parse(&p, (uint8_t *)buf, len, &need), RESP_PARSE_OK);
        if (c == 0)
            expect_args(buf, 2, "ECHO", "hello");
        else
            expect_args(buf, 3, "ECHO", "a b", "c");
    }
}

static void test_inline_quoting(void **state)
{
    (void)state;
    char buf[256];
    size_t need;
    const char s1[] = "  set  \"a\\tb\\x41\\\"\" 'it\\'s' x\"y z\"\n";
    assert_int_equal(parse(s1, sizeof s1 - 1, buf, &need), RESP_PARSE_OK);
    expect_args(buf, 4, "set", "a\tbA\"", "it's", "xy z");
    const char s2[] = "\r\n";
    assert_int_equal(parse(s2, 2, buf, &need), RESP_PARSE_OK);
    assert_int_equal(p.argc, 0);
    const char s3[] = "GET a\0b c\r\n"; /* a NUL ends the line, as in Redis */
    assert_int_equal(parse(s3, sizeof s3 - 1, buf, &need), RESP_PARSE_OK);
    expect_args(buf, 2, "GET", "a");
    assert_int_equal(p.consumed, sizeof s3 - 1);
}

static void expect_error(const char *in, size_t len, const char *msg)
{
    char buf[512];
    size_t need;
    assert_int_equal(parse(in, len, buf, &need), RESP_PARSE_ERROR);
    assert_string_equal(p.err, msg);
}

static void test_errors_and_limits(void **state)
{
    (void)state;
    char big[300];
    expect_error("*x\r\n", 4, "Protocol error: invalid multibulk length");
    expect_error("*9\r\n", 4, "Protocol error: invalid multibulk length"); /* max_args 8 */
    expect_error("*1\r\n$101\r\n", 10, "Protocol error: invalid bulk length"); /* max_bulk 100 */
    expect_error("*1\r\n$-1\r\n", 9, "Protocol error: invalid bulk length");
    expect_error("*1\r\n$01\r\n", 9, "Protocol error: invalid bulk length");
    expect_error("*1\r\n:1\r\n", 8, "Protocol error: expected '$', got ':'");
    expect_error("*1\r\n\x01", 5, "Protocol error: expected '$', got byte 0x01");
    expect_error("*1\r\n$1\r\nabc", 11, "Protocol error: bulk string not followed by CRLF");
    expect_error("*1\r\n$1\rx", 8, "Protocol error: invalid bulk length");
    memset(big, '1', sizeof big);
    big[0] = '*';
    expect_error(big, 40, "Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    expect_error(big, 40, "Protocol error: too big bulk count string");
    /* three 100-byte bulks are over max_query (256) */
    char q[400];
    int n = sprintf(q, "*3\r\n$100\r\n%0100d\r\n$100\r\n%0100d\r\n$100\r\n", 0, 0);
    expect_error(q, (size_t)n, "Protocol error: command is larger than 256 bytes");
    memset(big, 'a', sizeof big);
    expect_error(big, 66, "Protocol error: too big inline request"); /* max_inline 64 */
    big[65] = '\n';
    expect_error(big, 66, "Protocol error: too big inline request");
    big[64] = '\n';
    char buf[300];
    size_t need;
    assert_int_equal(parse(big, 65, buf, &need), RESP_PARSE_OK); /* 64 bytes fit */
    expect_error("a \"b\n", 5, "Protocol error: unbalanced quotes in request");
    expect_error("a 'b'c\n", 7, "Protocol error: unbalanced quotes in request");
}

/* A command with more arguments than fit inline grows the array, and reset
 * gives back a large one. */
static void test_many_args(void **state)
{
    (void)state;
    resp_parser q;
    resp_parser_init(&q, 10, 5000, 64, 1 << 20);
    char *buf = malloc(5000 * 8 + 16);
    size_t len = (size_t)sprintf(buf, "*5000\r\n");
    for (int i = 0; i < 5000; i++)
        len += (size_t)sprintf(buf + len, "$1\r\n%d\r\n", i % 10);
    size_t need;
    assert_int_equal(resp_parse(&q, (uint8_t *)buf, len, &need), RESP_PARSE_OK);
    assert_int_equal(q.argc, 5000);
    assert_int_equal(buf[q.argv[4999].off], '9');
    resp_parser_reset(&q);
    assert_ptr_equal(q.argv, q.small);
    resp_parser_free(&q);
    free(buf);
}

static void test_strtoll(void **state)
{
    (void)state;
    int64_t v;
    const struct { const char *s; bool ok; int64_t v; } cases[] = {
        {"0", true, 0}, {"42", true, 42}, {"-7", true, -7},
        {"9223372036854775807", true, INT64_MAX}, {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0}, {"-9223372036854775809", false, 0},
        {"", false, 0}, {"-", false, 0}, {"-0", false, 0}, {"01", false, 0}, {"+1", false, 0},
        {" 1", false, 0}, {"1 ", false, 0}, {"1x", false, 0}, {"99999999999999999999", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = resp_strtoll((const uint8_t *)cases[i].s, strlen(cases[i].s), &v);
        assert_int_equal(ok, cases[i].ok);
        if (ok)
            assert_true(v == cases[i].v);
    }
}

/* resp_scan takes the common command whole, exactly as resp_parse does,
 * and declines the rest, which resp_parse then reads. */
static void expect_scan_is_parse(const char *in, size_t len)
{
    resp_cmd cmd;
    char buf[512];
    size_t need;
    assert_true(resp_scan(&p, (const uint8_t *)in, len, &cmd));
    assert_int_equal(parse(in, len, buf, &need), RESP_PARSE_OK);
    assert_int_equal(cmd.len, p.consumed);
    assert_int_equal(cmd.argc, p.argc);
    for (size_t i = 0; i < cmd.argc; i++) {
        assert_int_equal(cmd.argv[i].off, p.argv[i].off);
        assert_int_equal(cmd.argv[i].len, p.argv[i].len);
    }
    /* Taken by a fresh parser, it is that parse. */
    resp_parser q;
    resp_parser_init(&q, 100, 8, 64, 256);
    resp_parser_take(&q, &cmd);
    assert_int_equal(q.consumed, p.consumed);
    assert_int_equal(q.argc, p.argc);
    assert_memory_equal(q.argv, p.argv, p.argc * sizeof *p.argv);
    resp_parser_free(&q);
}

static void test_scan(void **state)
{
    (void)state;
    const char set[] = "*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$0\r\n\r\n*2\r\n";
    size_t whole = sizeof set - 1 - 4;
    expect_scan_is_parse(set, sizeof set - 1);
    expect_scan_is_parse("*1\r\n$4\r\nPING\r\n", 14);
    char eight[200];
    size_t n = (size_t)sprintf(eight, "*8\r\n");
    for (int i = 0; i < 8; i++)
        n += (size_t)sprintf(eight + n, "$10\r\n%010d\r\n", i);
    expect_scan_is_parse(eight, n);
    resp_cmd cmd;
    for (size_t k = 0; k < whole; k++) /* cut anywhere: resp_parse's to wait */
        assert_false(resp_scan(&p, (const uint8_t *)set, k, &cmd));
    const char *no[] = {
        "*0\r\n",                                     /* empty: resp_parse skips it */
        "*9\r\n$1\r\na\r\n",                          /* over max_args (8) */
        "*1\r\n$101\r\n",                              /* over max_bulk (100) */
        "*1\r\n$01\r\na\r\n",                         /* a leading zero: an error */
        "*01\r\n$1\r\na\r\n",
        "*1\r\n$-1\r\n",
        "*1\r\n$1\r\nabc",                             /* no CRLF after the bulk */
        "*1\r\n$1000000000\r\n",                       /* ten digits */
        "GET key\r\n",                                 /* inline */
        "*1\r\n:1\r\n",
        "*2\r\n$3\r\nGET\r\n$3\r\nkeyXY",           /* no line end after the bulk */
        "*2\r\n$3\r\nGET\r\n$99999999999\r\nk\r\n", /* a length too long to read */
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(resp_scan(&p, (const uint8_t *)no[i], strlen(no[i]), &cmd));
    /* three 100-byte bulks: over max_query (256) */
    char q[400];
    n = (size_t)sprintf(q, "*3\r\n$100\r\n%0100d\r\n$100\r\n%0100d\r\n$100\r\n%0100d\r\n", 0, 0, 0);
    assert_false(resp_scan(&p, (const uint8_t *)q, n, &cmd));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_multibulk, setup),
        cmocka_unit_test_setup(test_every_split, setup),
        cmocka_unit_test_setup(test_inline_quoting, setup),
        cmocka_unit_test_setup(test_errors_and_limits, setup),
        cmocka_unit_test(test_many_args),
        cmocka_unit_test(test_strtoll),
        cmocka_unit_test_setup(test_scan, setup),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
