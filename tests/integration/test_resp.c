/* test_resp: the RESP port of a real ringkvd, driven by Debian's redis-cli
 * and redis-benchmark (redis-tools) and by raw sockets for what no
 * well-behaved client sends: pipelines, inline commands, protocol errors.
 *
 * One node for the whole group, with small limits so that "too large" is
 * cheap to reach: max_key_bytes 1 KiB and max_value_bytes 64 KiB, so a bulk
 * string may hold up to 65 KiB (a key plus a value) and a value between
 * 64 KiB and 65 KiB is refused with the connection kept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nodeproc.h"
#include "rawconn.h"
#include "ringkv.h"

#define MAX_KEY 1024
#define MAX_VALUE 65536

typedef struct fixture {
    nodeproc np;
    int port;
    char portstr[16];
} fixture;

typedef struct run_result {
    int rc;
    char *out;
    size_t len;
} run_result;

static int group_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char path[] = "/tmp/ringkv-test-conf-XXXXXX";
    int fd = mkstemp(path);
    if (!f || fd < 0)
        return -1;
    dprintf(fd, "[limits]\nmax_key_bytes = %d\nmax_value_bytes = %d\n", MAX_KEY, MAX_VALUE);
    dprintf(fd, "[storage]\nsweep_interval = 200ms\n"); /* test_sweep_purges_unread */
    close(fd);
    const char *args[] = {"--config", path, "--resp", "127.0.0.1:0", NULL};
    int rc = nodeproc_start(&f->np, args);
    unlink(path);
    f->port = nodeproc_resp_port(&f->np);
    snprintf(f->portstr, sizeof f->portstr, "%d", f->port);
    *state = f;
    return rc == 0 && f->port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    int rc = nodeproc_stop(&f->np); /* a clean exit proves the node survived */
    nodeproc_cleanup(&f->np);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Skips the test when redis-tools is missing (cluster/deps.sh installs it). */
static void need_redis_tools(void)
{
    if (system("command -v redis-cli >/dev/null 2>&1 && "
               "command -v redis-benchmark >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-cli or redis-benchmark not found; skipping\n");
        skip();
    }
}

/* Runs prog -p PORT args... (NULL-terminated), feeding in on stdin. */
static run_result run_tool(fixture *f, const char *prog, const void *in, size_t inlen, ...)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = prog;
    argv[n++] = "-p";
    argv[n++] = f->portstr;
    va_list ap;
    va_start(ap, inlen);
    for (const char *a; n < 39 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    run_result r = {0};
    r.rc = nodeproc_exec(argv, in, inlen, &r.out, &r.len, NULL);
    return r;
}

/* redis-cli --no-raw ARGS...: replies as a person sees them ("(nil)",
 * "(integer) 2", "(error) ERR ..."), each followed by a newline. */
#define CLI(f, ...) run_tool(f, "redis-cli", NULL, 0, "--no-raw", __VA_ARGS__, NULL)

/* Runs a command and checks its whole output. */
#define EXPECT(f, want, ...)                                                                       \
    do {                                                                                           \
        run_result r_ = CLI(f, __VA_ARGS__);                                                       \
        assert_int_equal(r_.rc, 0);                                                                \
        assert_string_equal(r_.out, want);                                                         \
        free(r_.out);                                                                              \
    } while (0)

static void test_set_get_del_exists(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "OK\n", "SET", "greeting", "hello world");
    EXPECT(f, "\"hello world\"\n", "GET", "greeting");
    EXPECT(f, "\"hello world\"\n", "get", "greeting"); /* commands are case-insensitive */
    EXPECT(f, "(nil)\n", "GET", "absent");
    EXPECT(f, "OK\n", "SET", "empty", "");
    EXPECT(f, "\"\"\n", "GET", "empty");
    EXPECT(f, "(integer) 3\n", "EXISTS", "greeting", "empty", "absent", "greeting");
    EXPECT(f, "(integer) 2\n", "DEL", "greeting", "empty", "absent");
    EXPECT(f, "(integer) 0\n", "EXISTS", "greeting", "empty");
    EXPECT(f, "(integer) 0\n", "DEL", "greeting");
    EXPECT(f, "(nil)\n", "GET", "greeting");
}

static void test_mset_mget(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "OK\n", "MSET", "m1", "one", "m2", "two", "m3", "three");
    EXPECT(f, "1) \"one\"\n2) (nil)\n3) \"three\"\n4) \"two\"\n", "MGET", "m1", "mx", "m3", "m2");
    EXPECT(f, "(error) ERR wrong number of arguments for 'mset' command\n", "MSET", "m1", "a",
           "m2");
    EXPECT(f, "\"one\"\n", "GET", "m1"); /* the refused MSET wrote nothing */
}

static void test_nx_xx_keepttl(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "OK\n", "SET", "nx", "first", "NX");
    EXPECT(f, "(nil)\n", "SET", "nx", "second", "NX");
    EXPECT(f, "\"first\"\n", "GET", "nx");
    EXPECT(f, "(nil)\n", "SET", "xx", "v", "XX");
    EXPECT(f, "(nil)\n", "GET", "xx");
    EXPECT(f, "OK\n", "SET", "nx", "third", "XX");
    EXPECT(f, "\"third\"\n", "GET", "nx");
    EXPECT(f, "(error) ERR syntax error\n", "SET", "nx", "v", "NX", "XX");
    EXPECT(f, "(error) ERR syntax error\n", "SET", "nx", "v", "EX", "10", "KEEPTTL");
    EXPECT(f, "(error) ERR syntax error\n", "SET", "nx", "v", "EX");
    EXPECT(f, "(error) ERR value is not an integer or out of range\n", "SET", "nx", "v", "EX",
           "ten");
    EXPECT(f, "(error) ERR invalid expire time in 'set' command\n", "SET", "nx", "v", "PX", "0");
    EXPECT(f, "OK\n", "SET", "kt", "v", "EX", "100");
    EXPECT(f, "OK\n", "SET", "kt", "v2", "KEEPTTL");
    run_result r = CLI(f, "TTL", "kt");
    int ttl = -9;
    assert_int_equal(sscanf(r.out, "(integer) %d", &ttl), 1);
    assert_true(ttl > 90 && ttl <= 100);
    free(r.out);
    EXPECT(f, "OK\n", "SET", "kt", "v3"); /* a plain SET clears the TTL */
    EXPECT(f, "(integer) -1\n", "TTL", "kt");
    EXPECT(f, "(integer) -2\n", "PTTL", "nokey");
}

/* GET key until it reads as absent, for at most timeout_ms. */
static bool gone_within(fixture *f, const char *key, int timeout_ms)
{
    long long deadline = nodeproc_now_ms() + timeout_ms;
    while (nodeproc_now_ms() < deadline) {
        run_result r = CLI(f, "GET", key);
        bool gone = r.rc == 0 && strcmp(r.out, "(nil)\n") == 0;
        free(r.out);
        if (gone)
            return true;
        nodeproc_sleep_ms(50);
    }
    return false;
}

static void test_expiry(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "OK\n", "SET", "px", "soon", "PX", "400");
    EXPECT(f, "OK\n", "SET", "ex", "later", "EX", "1");
    EXPECT(f, "\"later\"\n", "GET", "ex");
    assert_true(gone_within(f, "px", 5000));
    assert_true(gone_within(f, "ex", 5000));
    EXPECT(f, "OK\n", "SET", "past", "v", "PXAT", "1000"); /* already expired: deleted */
    EXPECT(f, "(nil)\n", "GET", "past");
    EXPECT(f, "OK\n", "SET", "future", "v", "EXAT", "99999999999");
    EXPECT(f, "\"v\"\n", "GET", "future");
}

/* Random bytes with every byte value, NUL, CR and LF among them. */
static uint8_t *binary_value(size_t len, unsigned seed)
{
    uint8_t *v = malloc(len);
    srand(seed);
    for (size_t i = 0; i < len; i++)
        v[i] = i < 256 ? (uint8_t)i : (uint8_t)rand();
    return v;
}

/* A value written over RESP (redis-cli -x, from stdin) reads back the same
 * over RESP and over the native protocol, and a native write reads back the
 * same over RESP. */
static void test_binary_and_native(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    size_t len = 20000;
    uint8_t *v = binary_value(len, 7);

    run_result r = run_tool(f, "redis-cli", v, len, "-x", "SET", "bin", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "OK\n");
    free(r.out);
    r = run_tool(f, "redis-cli", NULL, 0, "--raw", "GET", "bin", NULL);
    assert_int_equal(r.len, len + 1); /* --raw adds a newline */
    assert_memory_equal(r.out, v, len);
    free(r.out);

    rkv_options o = {.connect_timeout_ms = 2000, .request_timeout_ms = 5000};
    rkv_client *c = rkv_connect(f->np.addr, &o, NULL, 0);
    assert_non_null(c);
    void *got;
    size_t glen;
    assert_int_equal(rkv_get(c, "bin", 3, &got, &glen), RKV_OK);
    assert_int_equal(glen, len);
    assert_memory_equal(got, v, len);
    rkv_free(got);

    uint8_t *w = binary_value(len, 8);
    assert_int_equal(rkv_put(c, "native", 6, w, len, 0), RKV_OK);
    r = run_tool(f, "redis-cli", NULL, 0, "--raw", "GET", "native", NULL);
    assert_int_equal(r.len, len + 1);
    assert_memory_equal(r.out, w, len);
    free(r.out);
    assert_int_equal(rkv_put(c, "ttl", 3, "x", 1, 60000), RKV_OK);
    r = CLI(f, "TTL", "ttl");
    assert_true(strcmp(r.out, "(integer) 60\n") == 0 || strcmp(r.out, "(integer) 59\n") == 0);
    free(r.out);
    rkv_close(c);
    free(v);
    free(w);
}

static void test_connection_commands(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "PONG\n", "PING");
    EXPECT(f, "\"hi there\"\n", "PING", "hi there");
    EXPECT(f, "\"echo\"\n", "ECHO", "echo");
    EXPECT(f, "OK\n", "SELECT", "0");
    EXPECT(f, "(error) ERR DB index is out of range\n", "SELECT", "1");
    EXPECT(f, "(error) ERR value is not an integer or out of range\n", "SELECT", "x");
    EXPECT(f, "(error) ERR AUTH <password> called without any password configured for the "
              "default user. Are you sure your configuration is correct?\n",
           "AUTH", "secret");
    EXPECT(f, "OK\n", "AUTH", "default", "anything");
    EXPECT(f, "(error) WRONGPASS invalid username-password pair or user is disabled.\n", "AUTH",
           "bob", "pw");
    EXPECT(f, "OK\n", "CLIENT", "SETNAME", "tester");
    EXPECT(f, "OK\n", "CLIENT", "SETINFO", "lib-name", "redis-py");
    EXPECT(f, "1) \"save\"\n2) \"\"\n3) \"appendonly\"\n4) \"yes\"\n", "CONFIG", "GET", "save",
           "appendonly");
    EXPECT(f, "(nil)\n", "-3", "GET", "absent"); /* RESP3 after HELLO 3 */
    EXPECT(f, "(error) NOPROTO unsupported protocol version\n", "HELLO", "4");
}

static void test_errors(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    EXPECT(f, "(error) ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \n", "FOO",
           "bar", "baz");
    EXPECT(f, "(error) ERR unknown command 'nosuch', with args beginning with: \n", "nosuch");
    EXPECT(f, "(error) ERR wrong number of arguments for 'get' command\n", "GET");
    EXPECT(f, "(error) ERR wrong number of arguments for 'get' command\n", "GET", "a", "b");
    EXPECT(f, "(error) ERR wrong number of arguments for 'set' command\n", "SET", "a");
    EXPECT(f, "(error) ERR unknown subcommand 'nope'. Try CONFIG HELP.\n", "CONFIG", "nope");
    /* No membership (no peer port): no slot map, as a Redis without cluster. */
    EXPECT(f, "ERR This instance has cluster support disabled\n", "CLUSTER", "NODES"); /* raw */
    EXPECT(f, "(error) ERR empty keys are not supported (ringkv keys are 1 to 1024 bytes)\n",
           "SET", "", "v");

    char *key = malloc(MAX_KEY + 2);
    memset(key, 'k', MAX_KEY + 1);
    key[MAX_KEY + 1] = '\0';
    EXPECT(f, "(error) ERR key is too large (max_key_bytes is 1024)\n", "SET", key, "v");
    EXPECT(f, "(error) ERR key is too large (max_key_bytes is 1024)\n", "GET", key);
    free(key);
    EXPECT(f, "PONG\n", "PING");
}

/* INFO keyspace's figures: all 0 while it leaves db0 out (empty). */
static void info_keyspace(fixture *f, long *keys, long *expires, long long *avg_ttl)
{
    run_result r = run_tool(f, "redis-cli", NULL, 0, "INFO", "keyspace", NULL);
    const char *db = strstr(r.out, "db0:");
    *keys = *expires = 0, *avg_ttl = 0;
    if (db && sscanf(db, "db0:keys=%ld,expires=%ld,avg_ttl=%lld", keys, expires, avg_ttl) != 3)
        fail_msg("INFO keyspace: %s", r.out);
    free(r.out);
}

/* INFO has its sections, and the keyspace counts are the live keys and
 * those with a time to live. */
static void test_info(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    run_result r = run_tool(f, "redis-cli", NULL, 0, "INFO", NULL);
    const char *sections[] = {"# Server\r\n", "# Clients\r\n", "# Stats\r\n", "# Keyspace\r\n",
                              "# Cluster\r\n", "redis_version:", "connected_clients:",
                              "total_commands_processed:", "ringkv_node_id:"};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        assert_non_null(strstr(r.out, sections[i]));
    /* The allocator the node was built with is the one it runs on. */
#ifdef RINGKV_JEMALLOC
    assert_non_null(strstr(r.out, "\r\nmem_allocator:jemalloc-"));
#else
    assert_non_null(strstr(r.out, "\r\nmem_allocator:libc\r\n"));
#endif
    free(r.out);

    /* Keys count as of the last commit, and expired keys of earlier tests
     * until the sweep purges them: try again until the counts are steady.
     * expires counts the keys with a time to live, as Redis does: a SET
     * with EX or PX gives one, a SET without takes it away. */
    bool ok = false;
    for (int attempt = 0; attempt < 5 && !ok; attempt++) {
        long keys, expires;
        long long avg_ttl;
        info_keyspace(f, &keys, &expires, &avg_ttl);
        char k[4][32];
        for (int i = 0; i < 4; i++)
            snprintf(k[i], sizeof k[i], "info:%d:%d", attempt, i + 1);
        EXPECT(f, "OK\n", "MSET", k[0], "a", k[1], "b", k[2], "c");
        EXPECT(f, "(integer) 1\n", "DEL", k[2]);
        EXPECT(f, "OK\n", "SET", k[3], "d", "EX", "1000");
        EXPECT(f, "OK\n", "SET", k[0], "a", "PX", "1000000");
        EXPECT(f, "OK\n", "SET", k[1], "b", "EX", "1000");
        EXPECT(f, "OK\n", "SET", k[1], "b");
        /* avg_ttl: ms from now to the keys' mean expiry, the two new keys'
         * 1,000 s away (give or take the seconds this takes). */
        long keys2, expires2;
        long long avg_ttl2, want = (avg_ttl * expires + 2 * 1000000LL) / (expires + 2);
        info_keyspace(f, &keys2, &expires2, &avg_ttl2);
        ok = keys2 == keys + 3 && expires2 == expires + 2 &&
             (expires && !avg_ttl ? avg_ttl2 > 0 /* their mean had passed */
                                  : llabs(avg_ttl2 - want) <= 10000);
        if (!ok)
            fprintf(stderr, "INFO keyspace: keys=%ld expires=%ld avg_ttl=%lld, from %ld %ld %lld\n",
                    keys2, expires2, avg_ttl2, keys, expires, avg_ttl);
        if (!ok)
            nodeproc_sleep_ms(1500);
    }
    assert_true(ok);
    r = run_tool(f, "redis-cli", NULL, 0, "INFO", "cluster", NULL);
    assert_non_null(strstr(r.out, "ringkv_membership:off"));
    free(r.out);

    /* The first read of a key fills the record cache; the next two are
     * answered from it. */
    long hits[2];
    for (int i = 0; i < 2; i++) {
        r = run_tool(f, "redis-cli", NULL, 0, "INFO", "stats", NULL);
        const char *h = strstr(r.out, "ringkv_cache_hits:");
        assert_non_null(h);
        hits[i] = atol(h + strlen("ringkv_cache_hits:"));
        assert_non_null(strstr(r.out, "ringkv_cache_bytes:"));
        free(r.out);
        if (i == 0) {
            EXPECT(f, "OK\n", "SET", "info:cached", "v");
            for (int n = 0; n < 3; n++)
                EXPECT(f, "\"v\"\n", "GET", "info:cached");
        }
    }
    assert_true(hits[1] >= hits[0] + 2);
}

/* What redis-cli asks in interactive mode (COMMAND DOCS for its help) and
 * what other clients ask (COMMAND, COMMAND COUNT), fed on stdin as a person
 * would type them. */
static void test_command_introspection(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    const char *typed = "help get\nCOMMAND COUNT\nset typed yes\nget typed\n";
    run_result r = run_tool(f, "redis-cli", typed, strlen(typed), NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "Returns the string value of a key."));
    assert_non_null(strstr(r.out, "OK\nyes\n"));
    free(r.out);
    r = CLI(f, "COMMAND", "INFO", "get", "nosuch");
    assert_non_null(strstr(r.out, "1) \"get\"\n    2) (integer) 2\n    3) 1) readonly\n"));
    assert_non_null(strstr(r.out, "2) (nil)\n"));
    free(r.out);
    r = CLI(f, "COMMAND");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "\"mset\""));
    free(r.out);
}

/* --- raw sockets --- */

/* Reads exactly len bytes within timeout_ms; returns how many arrived. */
static size_t read_exact(int fd, char *buf, size_t len, int timeout_ms)
{
    long long deadline = nodeproc_now_ms() + timeout_ms;
    size_t got = 0;
    while (got < len && nodeproc_now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
        if (n > 0)
            got += (size_t)n;
    }
    return got;
}

/* Reads until the node closes the connection; returns a malloc'd string of
 * what came, or NULL if it stayed open past timeout_ms. */
static char *read_to_eof(int fd, int timeout_ms)
{
    long long deadline = nodeproc_now_ms() + timeout_ms;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    while (nodeproc_now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            buf[len] = '\0';
            return buf;
        }
        if (n > 0)
            len += (size_t)n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    free(buf);
    return NULL;
}

/* Sends in on a new connection; expects exactly want, then the same
 * connection still answers PING (keep) or is closed by the node. */
static void raw_exchange(fixture *f, const char *in, size_t inlen, const char *want, bool keep)
{
    int fd = raw_connect(f->port);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, in, inlen), 0);
    if (keep) {
        size_t wlen = strlen(want);
        char *got = calloc(1, wlen + 8);
        assert_int_equal(raw_send(fd, "PING\r\n", 6), 0);
        assert_int_equal(read_exact(fd, got, wlen + 7, 5000), wlen + 7);
        assert_memory_equal(got, want, wlen);
        assert_memory_equal(got + wlen, "+PONG\r\n", 7);
        free(got);
    } else {
        char *got = read_to_eof(fd, 5000);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
    }
    close(fd);
}

/* 1000 commands in one write; the replies come back in order. */
static void test_pipeline(void **state)
{
    fixture *f = *state;
    size_t cap = 1 << 20, in = 0, out = 0;
    char *req = malloc(cap), *want = malloc(cap);
    for (int i = 0; i < 500; i++) {
        char key[32], val[32];
        int kl = snprintf(key, sizeof key, "pipe:%d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i * 7);
        in += (size_t)sprintf(req + in, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", kl, key,
                              vl, val);
        in += (size_t)sprintf(req + in, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
        out += (size_t)sprintf(want + out, "+OK\r\n$%d\r\n%s\r\n", vl, val);
    }
    int fd = raw_connect(f->port);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, req, in), 0);
    char *got = malloc(out + 1);
    assert_int_equal(read_exact(fd, got, out, 10000), out);
    assert_memory_equal(got, want, out);
    close(fd);
    free(req);
    free(want);
    free(got);
}

/* Keys that expire and are never read again go from the store by the
 * background sweep alone, more of them than one slice of it examines; the
 * sweep's table (STATS sweep_tracked) holds them until then. */
static void test_sweep_purges_unread(void **state)
{
    fixture *f = *state;
    enum { N = 3000 };
    size_t cap = (size_t)N * 64, in = 0, out = 0;
    char *req = malloc(cap);
    long long purged = raw_stat(f->np.port, "purged");
    long long tracked = raw_stat(f->np.port, "sweep_tracked");
    assert_true(purged >= 0 && tracked >= 0);
    for (int i = 0; i < N; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "sweep:%d", i);
        in += (size_t)sprintf(req + in, "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n$2\r\nPX\r\n$2\r\n50\r\n",
                              kl, key);
        out += 5; /* +OK\r\n */
    }
    int fd = raw_connect(f->port);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, req, in), 0);
    char *got = malloc(out);
    assert_int_equal(read_exact(fd, got, out, 10000), out);
    close(fd);
    long long last = -1;
    /* Acknowledged writes are committed, and a commit merges their notes;
     * some may have been purged already (entries go with their purge). */
    long long now = raw_stat(f->np.port, "sweep_tracked"), gone = raw_stat(f->np.port, "purged");
    assert_true(now + (gone - purged) >= N);
    assert_int_equal(raw_wait_stat(f->np.port, "purged", purged + N, 20000, &last), 0);
    assert_true(last >= purged + N);
    /* Purged, their entries go with the sweep's commit. */
    for (int i = 0; i < 200 && (now = raw_stat(f->np.port, "sweep_tracked")) > tracked; i++)
        usleep(50000);
    assert_true(now >= 0 && now <= tracked);
    free(req);
    free(got);
}

/* Appends a RESP array of the argc strings that follow. */
static size_t add_cmd(char *out, int argc, ...)
{
    size_t n = (size_t)sprintf(out, "*%d\r\n", argc);
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        const char *a = va_arg(ap, const char *);
        n += (size_t)sprintf(out + n, "$%zu\r\n%s\r\n", strlen(a), a);
    }
    va_end(ap);
    return n;
}

/* One write mixing commands answered at once (GET of this node's copy, an
 * unknown command, a wrong arity) with ones answered after the commit or a
 * chained read (SET, SET NX/XX, DEL, MGET): every reply in request order. */
static void test_pipeline_mixed(void **state)
{
    fixture *f = *state;
    size_t cap = 1 << 20, in = 0, out = 0;
    char *req = malloc(cap), *want = malloc(cap);
    for (int i = 0; i < 100; i++) {
        char a[32], b[32], c[32], none[32], v[16];
        snprintf(a, sizeof a, "mix:%d:a", i);
        snprintf(b, sizeof b, "mix:%d:b", i);
        snprintf(c, sizeof c, "mix:%d:c", i);
        snprintf(none, sizeof none, "mix:%d:none", i);
        snprintf(v, sizeof v, "v%03d", i);
        in += add_cmd(req + in, 3, "SET", a, v);
        in += add_cmd(req + in, 2, "GET", a);
        in += add_cmd(req + in, 2, "FOO", "bar");
        in += add_cmd(req + in, 2, "GET", none);
        in += add_cmd(req + in, 4, "SET", a, "other", "NX");
        in += add_cmd(req + in, 2, "GET", "");
        in += add_cmd(req + in, 4, "SET", b, "other", "XX");
        in += add_cmd(req + in, 2, "GET", a);
        in += add_cmd(req + in, 2, "DEL", a);
        in += add_cmd(req + in, 2, "GET", a);
        in += add_cmd(req + in, 3, "MGET", a, none);
        in += add_cmd(req + in, 3, "GET", a, "x");
        in += add_cmd(req + in, 3, "SET", c, v);
        in += add_cmd(req + in, 2, "GET", c);
        out += (size_t)sprintf(want + out,
                               "+OK\r\n$4\r\n%s\r\n"
                               "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
                               "$-1\r\n$-1\r\n$-1\r\n$-1\r\n$4\r\n%s\r\n:1\r\n$-1\r\n"
                               "*2\r\n$-1\r\n$-1\r\n"
                               "-ERR wrong number of arguments for 'get' command\r\n"
                               "+OK\r\n$4\r\n%s\r\n",
                               v, v, v);
    }
    req[in] = '\0';
    want[out] = '\0';
    raw_exchange(f, req, in, want, true);
    free(req);
    free(want);
}

/* Inline commands, as telnet sends them, with Redis' quoting rules. */
static void test_inline(void **state)
{
    fixture *f = *state;
    const char in[] = "PING\r\nSET inl \"two words\\n\"\r\nGET inl\n\r\n"
                      "ECHO 'it\\'s'\r\nSET hex \"\\x41\\x42\"\r\nGET hex\r\nEXISTS inl hex\r\n";
    raw_exchange(f, in, sizeof in - 1,
                 "+PONG\r\n+OK\r\n$10\r\ntwo words\n\r\n$4\r\nit's\r\n+OK\r\n$2\r\nAB\r\n:2\r\n",
                 true);
}

/* A value over max_value_bytes (but within one bulk) is refused, and the
 * connection goes on. */
static void test_value_too_large(void **state)
{
    fixture *f = *state;
    size_t vlen = MAX_VALUE + 100;
    char *req = malloc(vlen + 64);
    int n = sprintf(req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", vlen);
    memset(req + n, 'v', vlen);
    memcpy(req + n + vlen, "\r\n", 2);
    raw_exchange(f, req, (size_t)n + vlen + 2,
                 "-ERR value is too large (max_value_bytes is 65536)\r\n", true);
    n = sprintf(req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", MAX_VALUE);
    memset(req + n, 'v', MAX_VALUE);
    memcpy(req + n + MAX_VALUE, "\r\n", 2);
    raw_exchange(f, req, (size_t)n + MAX_VALUE + 2, "+OK\r\n", true); /* the limit itself fits */
    free(req);
}

/* Broken framing gets Redis' protocol error, then the node closes the
 * connection (without answering what was pipelined behind it) and goes on
 * serving everyone else. */
static void test_protocol_errors(void **state)
{
    fixture *f = *state;
    static const struct { const char *in, *err; } cases[] = {
        {"*1\r\n$x\r\n", "invalid bulk length"},
        {"*x\r\n", "invalid multibulk length"},
        {"*2000000\r\n", "invalid multibulk length"},
        {"*2\r\n+GET\r\n", "expected '$', got '+'"},
        {"*2\r\n$3\r\nSET\r\n$99999999\r\n", "invalid bulk length"},
        {"*1\r\n$4\r\nPINGxx", "bulk string not followed by CRLF"},
        {"*1\r\n$-1\r\n", "invalid bulk length"},
        {"SET a \"b\r\n", "unbalanced quotes in request"},
        {"SET a \"b\"c\r\n", "unbalanced quotes in request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "-ERR Protocol error: %s\r\n", cases[i].err);
        raw_exchange(f, cases[i].in, strlen(cases[i].in), want, false);
    }
    raw_exchange(f, "PING\r\n*x\r\nPING\r\n", 16,
                 "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n", false);

    size_t big = 70000; /* an inline line with no end in sight */
    char *line = malloc(big);
    memset(line, 'a', big);
    raw_exchange(f, line, big, "-ERR Protocol error: too big inline request\r\n", false);
    free(line);

    /* Empty commands are skipped, as Redis skips them. */
    raw_exchange(f, "*0\r\n\r\n\r\n", 8, "", true);
    need_redis_tools();
    EXPECT(f, "PONG\n", "PING");
}

/* A command cut into 1-byte writes is parsed the same. */
static void test_split_writes(void **state)
{
    fixture *f = *state;
    const char req[] = "*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$5\r\nbytes\r\nGET split\r\n";
    int fd = raw_connect(f->port);
    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof req - 1; i++) {
        assert_int_equal(raw_send(fd, req + i, 1), 0);
        if (i % 7 == 0)
            nodeproc_sleep_ms(2);
    }
    const char want[] = "+OK\r\n$5\r\nbytes\r\n";
    char got[sizeof want];
    assert_int_equal(read_exact(fd, got, sizeof want - 1, 5000), sizeof want - 1);
    assert_memory_equal(got, want, sizeof want - 1);
    close(fd);
}

/* QUIT answers OK, then the node closes the connection. */
static void test_quit(void **state)
{
    fixture *f = *state;
    raw_exchange(f, "QUIT\r\nPING\r\n", 12, "+OK\r\n", false);
}

/* Finds "NAME: <number> requests per second" in redis-benchmark's output. */
static double benchmark_rate(const char *out, const char *name)
{
    char tag[32];
    snprintf(tag, sizeof tag, "%s: ", name);
    double rate = 0;
    for (const char *p = strstr(out, tag); p; p = strstr(p + 1, tag)) {
        const char *num = p + strlen(tag);
        if (*num >= '0' && *num <= '9' && strstr(num, "requests per second"))
            rate = strtod(num, NULL);
    }
    return rate;
}

static void test_redis_benchmark(void **state)
{
    fixture *f = *state;
    need_redis_tools();
    run_result r = run_tool(f, "redis-benchmark", NULL, 0, "-t", "set,get", "-n", "2000", "-c",
                            "10", "-q", NULL);
    assert_int_equal(r.rc, 0);
    double set = benchmark_rate(r.out, "SET"), get = benchmark_rate(r.out, "GET");
    fprintf(stderr, "redis-benchmark (functional, not a measurement): SET %.0f/s GET %.0f/s\n",
            set, get);
    assert_true(set > 0);
    assert_true(get > 0);
    free(r.out);
    r = run_tool(f, "redis-benchmark", NULL, 0, "-t", "set,get", "-n", "2000", "-c", "4", "-P",
                 "16", "-q", NULL);
    assert_int_equal(r.rc, 0);
    assert_true(benchmark_rate(r.out, "SET") > 0 && benchmark_rate(r.out, "GET") > 0);
    free(r.out);
    EXPECT(f, "PONG\n", "PING");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del_exists),
        cmocka_unit_test(test_mset_mget),
        cmocka_unit_test(test_nx_xx_keepttl),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_binary_and_native),
        cmocka_unit_test(test_connection_commands),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_command_introspection),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_sweep_purges_unread),
        cmocka_unit_test(test_pipeline_mixed),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_value_too_large),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_split_writes),
        cmocka_unit_test(test_quit),
        cmocka_unit_test(test_redis_benchmark),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
