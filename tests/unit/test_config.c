/* Unit tests for node/config.c: defaults, every key through config_set, the
 * size/duration/address parsers, loading INI files (line numbers, comments,
 * inih's quirks), config_validate, and the shipped configs/ files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "gossip.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Writes text to a fresh temp file; the caller unlinks path. */
static void write_temp(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/ringkv-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Loads text over defaults into *c; returns config_load_file's result and
 * leaves its message in err with the temp path replaced by "FILE". */
static int load_text(config *c, const char *text, char *err, size_t errlen)
{
    char path[64];
    write_temp(path, sizeof path, text);
    err[0] = '\0';
    int rc = config_load_file(c, path, err, errlen);
    unlink(path);
    size_t pl = strlen(path);
    if (strncmp(err, path, pl) == 0) {
        memmove(err + 4, err + pl, strlen(err + pl) + 1);
        memcpy(err, "FILE", 4);
    }
    return rc;
}

/* Field by field: bytes after a string's NUL are not part of the config. */
static void assert_config_equal(const config *a, const config *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->listen, b->listen);
    assert_string_equal(a->peer, b->peer);
    assert_string_equal(a->resp, b->resp);
    assert_string_equal(a->http, b->http);
    assert_string_equal(a->seeds, b->seeds);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_int_equal(a->fsync, b->fsync);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->max_key_bytes, b->max_key_bytes);
    assert_int_equal(a->max_value_bytes, b->max_value_bytes);
    assert_int_equal(a->max_clients, b->max_clients);
    assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
    assert_int_equal(a->max_output_buffer, b->max_output_buffer);
    assert_int_equal(a->map_size, b->map_size);
    assert_int_equal(a->tombstone_ttl_ms, b->tombstone_ttl_ms);
    assert_int_equal(a->sweep_interval_ms, b->sweep_interval_ms);
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->r, b->r);
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->request_timeout_ms, b->request_timeout_ms);
    assert_int_equal(a->read_retry_ms, b->read_retry_ms);
    assert_int_equal(a->vnodes, b->vnodes);
    assert_memory_equal(&a->gossip, &b->gossip, sizeof a->gossip);
}

static void expect_set_ok(config *c, const char *section, const char *key, const char *value)
{
    char err[512] = "";
    int rc = config_set(c, section, key, value, err, sizeof err);
    if (rc != 0)
        fail_msg("[%s] %s = '%s' was refused: %s", section, key, value, err);
}

/* A refused value leaves the config as it was and names section.key. */
static void expect_set_bad(config *c, const char *section, const char *key, const char *value)
{
    char err[512] = "", want[128];
    config before = *c;
    int rc = config_set(c, section, key, value, err, sizeof err);
    if (rc == 0)
        fail_msg("[%s] %s = '%s' was accepted", section, key, value);
    snprintf(want, sizeof want, "[%s] %s: ", section, key);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("message for [%s] %s = '%s' does not name the key: %s", section, key, value,
                 err);
    assert_memory_equal(&before, c, sizeof before);
}

static void test_defaults(void **state)
{
    (void)state;
    config c;
    config_defaults(&c);
    assert_string_equal(c.id, "");
    assert_string_equal(c.listen, "127.0.0.1:7001");
    assert_string_equal(c.peer, "");
    assert_string_equal(c.resp, "");
    assert_string_equal(c.http, "");
    assert_string_equal(c.seeds, "");
    assert_string_equal(c.data_dir, "./data");
    assert_int_equal(c.fsync, STORE_FSYNC_EVERYSEC);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.max_key_bytes, 65536);
    assert_int_equal(c.max_value_bytes, 16777216);
    assert_int_equal(c.max_clients, 10000);
    assert_int_equal(c.idle_timeout_ms, 300000);
    assert_int_equal(c.max_output_buffer, 64 * MiB);
    assert_int_equal(c.map_size, 64 * GiB);
    assert_int_equal(c.tombstone_ttl_ms, 86400000);
    assert_int_equal(c.sweep_interval_ms, 1000);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.r, 2);
    assert_int_equal(c.w, 2);
    assert_int_equal(c.request_timeout_ms, 2000);
    assert_int_equal(c.read_retry_ms, 2);
    assert_int_equal(c.vnodes, 128);
    assert_int_equal(c.gossip.probe_interval_ms, 500);
    assert_int_equal(c.gossip.probe_timeout_ms, 200);
    assert_int_equal(c.gossip.max_packet, 1400);
    char err[256] = "";
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
}

/* [gossip] defaults to exactly what the gossip module calls its defaults,
 * so a node without a [gossip] section runs gossip as designed. */
static void test_gossip_defaults_match_gossip(void **state)
{
    (void)state;
    config c;
    gossip_config g;
    config_defaults(&c);
    gossip_config_defaults(&g);
    assert_int_equal(c.gossip.probe_interval_ms, g.probe_interval_ms);
    assert_int_equal(c.gossip.probe_timeout_ms, g.probe_timeout_ms);
    assert_int_equal(c.gossip.indirect_checks, g.indirect_checks);
    assert_int_equal(c.gossip.suspicion_mult, g.suspicion_mult);
    assert_int_equal(c.gossip.suspicion_max_mult, g.suspicion_max_mult);
    assert_int_equal(c.gossip.retransmit_mult, g.retransmit_mult);
    assert_int_equal(c.gossip.interval_ms, g.gossip_interval_ms);
    assert_int_equal(c.gossip.nodes, g.gossip_nodes);
    assert_int_equal(c.gossip.pushpull_interval_ms, g.pushpull_interval_ms);
    assert_int_equal(c.gossip.awareness_max, g.awareness_max);
    assert_int_equal(c.gossip.max_packet, g.max_packet);
}

static void test_set_node_strings(void **state)
{
    (void)state;
    config c;
    config_defaults(&c);
    char id64[66];
    memset(id64, 'a', 64);
    id64[64] = '\0';

    expect_set_ok(&c, "node", "id", "node-1.eu_west");
    assert_string_equal(c.id, "node-1.eu_west");
    expect_set_ok(&c, "node", "id", id64);
    expect_set_ok(&c, "node", "id", "");
    assert_string_equal(c.id, "");
    expect_set_bad(&c, "node", "id", "node 1");
    expect_set_bad(&c, "node", "id", "node/1");
    expect_set_bad(&c, "node", "id", "n\xc3\xb6" "de");
    strcat(id64, "b"); /* 65 characters */
    expect_set_bad(&c, "node", "id", id64);

    static const char *const good_addrs[] = {
        "127.0.0.1:7001", "localhost:0", "0.0.0.0:65535", "[::1]:7001",
        "[fe80::1%eth0]:80", "db-1.example.com:7001",
    };
    static const char *const bad_addrs[] = {
        "127.0.0.1", ":7001", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:7001x", "::1:7001", "[::1]7001", "[::1]", "[]:7001", "[1.2.3.4]:80",
        "host name:1", "a:1,b:2", "127.0.0.1:123456",
    };
    static const char *const addr_keys[] = {"listen", "peer", "resp", "http"};
    for (size_t k = 0; k < N_OF(addr_keys); k++) {
        for (size_t i = 0; i < N_OF(good_addrs); i++) {
            expect_set_ok(&c, "node", addr_keys[k], good_addrs[i]);
            assert_string_equal(
                (const char *)&c + (k == 0 ? offsetof(config, listen)
                                    : k == 1 ? offsetof(config, peer)
                                    : k == 2 ? offsetof(config, resp)
                                             : offsetof(config, http)),
                good_addrs[i]);
        }
        for (size_t i = 0; i < N_OF(bad_addrs); i++)
            expect_set_bad(&c, "node", addr_keys[k], bad_addrs[i]);
    }
    /* peer, resp and http may be turned off; the client listener may not. */
    expect_set_ok(&c, "node", "peer", "");
    expect_set_ok(&c, "node", "resp", "");
    expect_set_ok(&c, "node", "http", "");
    expect_set_bad(&c, "node", "listen", "");

    expect_set_ok(&c, "node", "seeds", "10.0.0.1:7001,10.0.0.2:7001");
    assert_string_equal(c.seeds, "10.0.0.1:7001,10.0.0.2:7001");
    expect_set_ok(&c, "node", "seeds", " a:1 ,\t[::1]:2, ");
    assert_string_equal(c.seeds, "a:1,[::1]:2");
    expect_set_ok(&c, "node", "seeds", "");
    assert_string_equal(c.seeds, "");
    expect_set_bad(&c, "node", "seeds", "a:1,b");
    expect_set_bad(&c, "node", "seeds", "a:1;b:2");
    char many[1400] = "";
    for (int i = 0; i < 80; i++)
        strcat(many, "10.0.0.100:7001,"); /* 80 * 16 characters: over 1023 */
    expect_set_bad(&c, "node", "seeds", many);

    expect_set_ok(&c, "node", "data_dir", "/var/lib/ringkv with space");
    assert_string_equal(c.data_dir, "/var/lib/ringkv with space");
    expect_set_bad(&c, "node", "data_dir", "");
    expect_set_bad(&c, "node", "data_dir", "\"/var/lib/ringkv\"");
    char longpath[CONFIG_PATH_MAX + 1];
    memset(longpath, 'p', CONFIG_PATH_MAX);
    longpath[CONFIG_PATH_MAX] = '\0';
    expect_set_bad(&c, "node", "data_dir", longpath);
    longpath[CONFIG_PATH_MAX - 1] = '\0';
    expect_set_ok(&c, "node", "data_dir", longpath);
}

static void test_set_node_enums(void **state)
{
    (void)state;
    config c;
    config_defaults(&c);
    expect_set_ok(&c, "node", "fsync", "always");
    assert_int_equal(c.fsync, STORE_FSYNC_ALWAYS);
    expect_set_ok(&c, "node", "fsync", "no");
    assert_int_equal(c.fsync, STORE_FSYNC_NO);
    expect_set_ok(&c, "node", "fsync", "everysec");
    assert_int_equal(c.fsync, STORE_FSYNC_EVERYSEC);
    expect_set_bad(&c, "node", "fsync", "sometimes");
    expect_set_bad(&c, "node", "fsync", "");
    expect_set_bad(&c, "node", "fsync", "yes");

    static const struct {
        const char *s;
        log_level l;
    } levels[] = {{"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warn", LOG_WARN},
                  {"error", LOG_ERROR}};
    for (size_t i = 0; i < N_OF(levels); i++) {
        expect_set_ok(&c, "node", "log_level", levels[i].s);
        assert_int_equal(c.log_level, levels[i].l);
    }
    expect_set_bad(&c, "node", "log_level", "verbose");
    expect_set_bad(&c, "node", "log_level", "warning");
}

static void test_set_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *section, *key, *value;
        size_t offset;
        uint64_t want; /* UINT64_MAX: must be refused */
    } cases[] = {
        {"limits", "max_key_bytes", "1", offsetof(config, max_key_bytes), 1},
        {"limits", "max_key_bytes", "16MiB", offsetof(config, max_key_bytes), 16 * MiB},
        {"limits", "max_key_bytes", "0", 0, UINT64_MAX},
        {"limits", "max_key_bytes", "16777217", 0, UINT64_MAX},
        {"limits", "max_key_bytes", "12x", 0, UINT64_MAX},
        {"limits", "max_value_bytes", "0", offsetof(config, max_value_bytes), 0},
        {"limits", "max_value_bytes", "512MiB", offsetof(config, max_value_bytes), 512 * MiB},
        {"limits", "max_value_bytes", "513MiB", 0, UINT64_MAX},
        {"limits", "max_value_bytes", "-1", 0, UINT64_MAX},
        {"limits", "max_clients", "1", offsetof(config, max_clients), 1},
        {"limits", "max_clients", "1000000", offsetof(config, max_clients), 1000000},
        {"limits", "max_clients", "0", 0, UINT64_MAX},
        {"limits", "max_clients", "1000001", 0, UINT64_MAX},
        {"limits", "max_clients", "10k", 0, UINT64_MAX},
        {"limits", "idle_timeout", "0", offsetof(config, idle_timeout_ms), 0},
        {"limits", "idle_timeout", "90", offsetof(config, idle_timeout_ms), 90000},
        {"limits", "idle_timeout", "1500ms", offsetof(config, idle_timeout_ms), 1500},
        {"limits", "idle_timeout", "soon", 0, UINT64_MAX},
        {"limits", "max_output_buffer", "64KiB", offsetof(config, max_output_buffer), 64 * KiB},
        {"limits", "max_output_buffer", "1GiB", offsetof(config, max_output_buffer), GiB},
        {"limits", "max_output_buffer", "65535", 0, UINT64_MAX},
        {"storage", "map_size", "1MiB", offsetof(config, map_size), MiB},
        {"storage", "map_size", "1TiB", offsetof(config, map_size), 1024 * GiB},
        {"storage", "map_size", "1048575", 0, UINT64_MAX},
        {"storage", "map_size", "17179869184GiB", 0, UINT64_MAX},
        {"storage", "tombstone_ttl", "10d", offsetof(config, tombstone_ttl_ms), 864000000},
        {"storage", "tombstone_ttl", "0", offsetof(config, tombstone_ttl_ms), 0},
        {"storage", "tombstone_ttl", "1y", 0, UINT64_MAX},
        {"storage", "sweep_interval", "250ms", offsetof(config, sweep_interval_ms), 250},
        {"storage", "sweep_interval", "0", 0, UINT64_MAX},
        {"storage", "sweep_interval", "0ms", 0, UINT64_MAX},
        {"replication", "n", "1", offsetof(config, n), 1},
        {"replication", "n", "64", offsetof(config, n), 64},
        {"replication", "n", "0", 0, UINT64_MAX},
        {"replication", "n", "65", 0, UINT64_MAX},
        {"replication", "r", "16", offsetof(config, r), 16},
        {"replication", "r", "17", 0, UINT64_MAX},
        {"replication", "r", "0", 0, UINT64_MAX},
        {"replication", "w", "1", offsetof(config, w), 1},
        {"replication", "w", "17", 0, UINT64_MAX},
        {"replication", "w", "two", 0, UINT64_MAX},
        {"replication", "w", "", 0, UINT64_MAX},
        {"replication", "read_retry", "0", offsetof(config, read_retry_ms), 0},
        {"replication", "read_retry", "5ms", offsetof(config, read_retry_ms), 5},
        {"replication", "read_retry", "1h", offsetof(config, read_retry_ms), 3600000},
        {"replication", "read_retry", "3601s", 0, UINT64_MAX},
        {"replication", "read_retry", "1.5ms", 0, UINT64_MAX},
        {"node", "vnodes", "1", offsetof(config, vnodes), 1},
        {"node", "vnodes", "4096", offsetof(config, vnodes), 4096},
        {"node", "vnodes", "0", 0, UINT64_MAX},
        {"node", "vnodes", "4097", 0, UINT64_MAX},
        {"gossip", "probe_interval", "1s", offsetof(config, gossip.probe_interval_ms), 1000},
        {"gossip", "probe_interval", "10ms", offsetof(config, gossip.probe_interval_ms), 10},
        {"gossip", "probe_interval", "9ms", 0, UINT64_MAX},
        {"gossip", "probe_interval", "2m", 0, UINT64_MAX},
        {"gossip", "probe_timeout", "100ms", offsetof(config, gossip.probe_timeout_ms), 100},
        {"gossip", "probe_timeout", "0", 0, UINT64_MAX},
        {"gossip", "indirect_checks", "0", offsetof(config, gossip.indirect_checks), 0},
        {"gossip", "indirect_checks", "17", 0, UINT64_MAX},
        {"gossip", "suspicion_mult", "5", offsetof(config, gossip.suspicion_mult), 5},
        {"gossip", "suspicion_mult", "0", 0, UINT64_MAX},
        {"gossip", "suspicion_max_mult", "100", offsetof(config, gossip.suspicion_max_mult),
         100},
        {"gossip", "retransmit_mult", "101", 0, UINT64_MAX},
        {"gossip", "gossip_interval", "50ms", offsetof(config, gossip.interval_ms), 50},
        {"gossip", "gossip_nodes", "64", offsetof(config, gossip.nodes), 64},
        {"gossip", "gossip_nodes", "0", 0, UINT64_MAX},
        {"gossip", "pushpull_interval", "0", offsetof(config, gossip.pushpull_interval_ms), 0},
        {"gossip", "pushpull_interval", "1h", offsetof(config, gossip.pushpull_interval_ms),
         3600000},
        {"gossip", "pushpull_interval", "2h", 0, UINT64_MAX},
        {"gossip", "awareness_max", "1", offsetof(config, gossip.awareness_max), 1},
        {"gossip", "awareness_max", "0", 0, UINT64_MAX},
        {"gossip", "max_packet", "1KiB", offsetof(config, gossip.max_packet), 1024},
        {"gossip", "max_packet", "1401", 0, UINT64_MAX},
        {"gossip", "max_packet", "511", 0, UINT64_MAX},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        config c;
        config_defaults(&c);
        if (cases[i].want == UINT64_MAX) {
            expect_set_bad(&c, cases[i].section, cases[i].key, cases[i].value);
            continue;
        }
        expect_set_ok(&c, cases[i].section, cases[i].key, cases[i].value);
        uint64_t got;
        memcpy(&got, (const char *)&c + cases[i].offset, sizeof got);
        if (got != cases[i].want)
            fail_msg("[%s] %s = '%s' gave %llu, want %llu", cases[i].section, cases[i].key,
                     cases[i].value, (unsigned long long)got,
                     (unsigned long long)cases[i].want);
    }
}

static void test_messages(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);

    assert_int_equal(config_set(&c, "limits", "max_key_bytes", "12x", err, sizeof err), -1);
    assert_string_equal(err,
                        "[limits] max_key_bytes: '12x' is not a size (use e.g. 65536, 64KiB, 16MiB)");
    assert_int_equal(config_set(&c, "limits", "max_key_bytes", "32MiB", err, sizeof err), -1);
    assert_string_equal(err, "[limits] max_key_bytes: '32MiB' is out of range (1 to 16MiB)");
    assert_int_equal(config_set(&c, "storage", "map_size", "1KiB", err, sizeof err), -1);
    assert_string_equal(err, "[storage] map_size: '1KiB' is too small (at least 1MiB)");
    assert_int_equal(
        config_set(&c, "storage", "map_size", "99999999999999999999", err, sizeof err), -1);
    assert_string_equal(err, "[storage] map_size: '99999999999999999999' is too large");
    assert_int_equal(config_set(&c, "node", "fsync", "sometimes", err, sizeof err), -1);
    assert_string_equal(
        err, "[node] fsync: 'sometimes' is not an fsync policy (use always, everysec or no)");
    assert_int_equal(config_set(&c, "node", "seeds", "a:1,b", err, sizeof err), -1);
    assert_non_null(strstr(err, "[node] seeds: 'a:1,b' has 'b', which is not an address"));

    assert_int_equal(config_set(&c, "node", "foo", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'foo' in section [node] (valid keys: id, listen, "
                             "peer, resp, http, seeds, data_dir, fsync, log_level, vnodes)");
    assert_int_equal(config_set(&c, "replication", "quorum", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'quorum' in section [replication] "
                             "(valid keys: n, r, w, request_timeout, read_retry)");
    /* A key of one section in another is still unknown there. */
    assert_int_equal(config_set(&c, "node", "n", "3", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key 'n' in section [node]"));
    /* Names are lowercase, as in the file. */
    assert_int_equal(config_set(&c, "node", "Fsync", "always", err, sizeof err), -1);
    assert_int_equal(config_set(&c, "Node", "fsync", "always", err, sizeof err), -1);

    assert_int_equal(config_set(&c, "nodes", "id", "x", err, sizeof err), -1);
    assert_string_equal(err, "unknown section [nodes] (valid sections: [node], [limits], "
                             "[storage], [replication], [rebalance], [gossip])");

    /* A very long bad value is cut short in the message. */
    char longv[300];
    memset(longv, 'z', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(config_set(&c, "node", "fsync", longv, err, sizeof err), -1);
    assert_non_null(strstr(err, "zzz...' is not an fsync policy"));

    /* A tiny or absent error buffer is fine. */
    char tiny[8];
    assert_int_equal(config_set(&c, "node", "fsync", "x", tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "[node] ");
    assert_int_equal(config_set(&c, "node", "fsync", "x", NULL, 0), -1);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"65536", 0, 65536},
        {"007", 0, 7},
        {"1k", 0, KiB},
        {"1K", 0, KiB},
        {"1KB", 0, KiB},
        {"1kb", 0, KiB},
        {"64KiB", 0, 64 * KiB},
        {"64 KiB", 0, 64 * KiB},
        {"16m", 0, 16 * MiB},
        {"16M", 0, 16 * MiB},
        {"16MB", 0, 16 * MiB},
        {"16MiB", 0, 16 * MiB},
        {"2g", 0, 2 * GiB},
        {"2G", 0, 2 * GiB},
        {"2GB", 0, 2 * GiB},
        {"2GiB", 0, 2 * GiB},
        {"1TiB", 0, 1024 * GiB},
        {"18446744073709551615", 0, UINT64_MAX},
        {"17179869183GiB", 0, UINT64_C(17179869183) << 30},
        {"18446744073709551616", -1, 0},
        {"99999999999999999999", -1, 0},
        {"17179869184GiB", -1, 0},
        {"16777216TiB", -1, 0},
        {"", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {" 1", -1, 0},
        {"1 ", -1, 0},
        {"KiB", -1, 0},
        {"1.5GiB", -1, 0},
        {"1KiBs", -1, 0},
        {"1Ki", -1, 0},
        {"1b", -1, 0},
        {"0x10", -1, 0},
        {"1e6", -1, 0},
        {"12x", -1, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        uint64_t got = 12345;
        int rc = config_parse_size(cases[i].s, &got);
        if (rc != cases[i].rc)
            fail_msg("config_parse_size('%s') returned %d, want %d", cases[i].s, rc,
                     cases[i].rc);
        if (rc == 0 && got != cases[i].want)
            fail_msg("config_parse_size('%s') = %llu, want %llu", cases[i].s,
                     (unsigned long long)got, (unsigned long long)cases[i].want);
        if (rc != 0 && got != 12345)
            fail_msg("config_parse_size('%s') failed but wrote its output", cases[i].s);
    }
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"300", 0, 300000},
        {"1500ms", 0, 1500},
        {"0ms", 0, 0},
        {"30s", 0, 30000},
        {"5m", 0, 300000},
        {"2h", 0, 7200000},
        {"1d", 0, 86400000},
        {"5 m", 0, 300000},
        {"18446744073709551615ms", 0, UINT64_MAX},
        {"18446744073709551s", 0, UINT64_C(18446744073709551000)},
        {"18446744073709552", -1, 0},
        {"18446744073709552s", -1, 0},
        {"99999999999999999999", -1, 0},
        {"99999999999999999999ms", -1, 0},
        {"5124095576030h", 0, UINT64_C(5124095576030) * 3600000},
        {"5124095576031h", -1, 0},
        {"", -1, 0},
        {"-5", -1, 0},
        {"s", -1, 0},
        {"5S", -1, 0},
        {"5M", -1, 0},
        {"5min", -1, 0},
        {"5sec", -1, 0},
        {"1.5s", -1, 0},
        {"5 ", -1, 0},
        {"1w", -1, 0},
        {"5us", -1, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        uint64_t got = 12345;
        int rc = config_parse_duration_ms(cases[i].s, &got);
        if (rc != cases[i].rc)
            fail_msg("config_parse_duration_ms('%s') returned %d, want %d", cases[i].s, rc,
                     cases[i].rc);
        if (rc == 0 && got != cases[i].want)
            fail_msg("config_parse_duration_ms('%s') = %llu, want %llu", cases[i].s,
                     (unsigned long long)got, (unsigned long long)cases[i].want);
        if (rc != 0 && got != 12345)
            fail_msg("config_parse_duration_ms('%s') failed but wrote its output", cases[i].s);
    }
}

static void test_split_addr(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        int rc;
        const char *host;
        int port;
    } cases[] = {
        {"127.0.0.1:7001", 0, "127.0.0.1", 7001},
        {"localhost:0", 0, "localhost", 0},
        {"example.com:65535", 0, "example.com", 65535},
        {"[::1]:7001", 0, "::1", 7001},
        {"[::]:80", 0, "::", 80},
        {"[fe80::1%eth0]:7001", 0, "fe80::1%eth0", 7001},
        {"[2001:db8::10.0.0.1]:1", 0, "2001:db8::10.0.0.1", 1},
        {"127.0.0.1", -1, NULL, 0},
        {"127.0.0.1:", -1, NULL, 0},
        {":7001", -1, NULL, 0},
        {"127.0.0.1:65536", -1, NULL, 0},
        {"127.0.0.1:99999", -1, NULL, 0},
        {"127.0.0.1:-1", -1, NULL, 0},
        {"127.0.0.1:+1", -1, NULL, 0},
        {"127.0.0.1: 1", -1, NULL, 0},
        {"::1:7001", -1, NULL, 0},
        {"[::1]", -1, NULL, 0},
        {"[::1]:", -1, NULL, 0},
        {"[::1:7001", -1, NULL, 0},
        {"[]:7001", -1, NULL, 0},
        {"[fe80::1%]:1", -1, NULL, 0},
        {"[host]:1", -1, NULL, 0},
        {"", -1, NULL, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char host[64] = "unchanged";
        int port = -7;
        int rc = config_split_addr(cases[i].addr, host, sizeof host, &port);
        if (rc != cases[i].rc)
            fail_msg("config_split_addr('%s') returned %d, want %d", cases[i].addr, rc,
                     cases[i].rc);
        if (rc == 0) {
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
        }
    }
    /* The host must fit the caller's buffer. */
    char small[4];
    int port;
    assert_int_equal(config_split_addr("abc:1", small, sizeof small, &port), 0);
    assert_string_equal(small, "abc");
    assert_int_equal(config_split_addr("abcd:1", small, sizeof small, &port), -1);
    /* Only checking. */
    assert_int_equal(config_split_addr("abcd:1", NULL, 0, NULL), 0);
}

static void test_fsync_name(void **state)
{
    (void)state;
    assert_string_equal(config_fsync_name(STORE_FSYNC_ALWAYS), "always");
    assert_string_equal(config_fsync_name(STORE_FSYNC_EVERYSEC), "everysec");
    assert_string_equal(config_fsync_name(STORE_FSYNC_NO), "no");
    assert_string_equal(config_fsync_name((store_fsync)42), "?");
}

static void test_load_good_file(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);
    int rc = load_text(&c,
                       "; a node\n"
                       "[node]\n"
                       "id = n1\n"
                       "listen = 0.0.0.0:7101\n"
                       "peer = 10.0.0.1:7201\n"
                       "resp = [::1]:6379\n"
                       "http = 127.0.0.1:9101\n"
                       "seeds = 10.0.0.2:7201, 10.0.0.3:7201\n"
                       "data_dir = /var/lib/ringkv\n"
                       "fsync = always\n"
                       "log_level = debug\n"
                       "\n"
                       "[limits]\n"
                       "max_key_bytes = 1KiB\n"
                       "max_value_bytes = 1MiB\n"
                       "max_clients = 500\n"
                       "idle_timeout = 1m\n"
                       "max_output_buffer = 8MiB\n"
                       "[storage]\n"
                       "map_size = 1GiB\n"
                       "tombstone_ttl = 2h\n"
                       "sweep_interval = 100ms\n"
                       "[replication]\n"
                       "n = 5\n"
                       "r = 3\n"
                       "w = 4\n",
                       err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.id, "n1");
    assert_string_equal(c.listen, "0.0.0.0:7101");
    assert_string_equal(c.peer, "10.0.0.1:7201");
    assert_string_equal(c.resp, "[::1]:6379");
    assert_string_equal(c.http, "127.0.0.1:9101");
    assert_string_equal(c.seeds, "10.0.0.2:7201,10.0.0.3:7201");
    assert_string_equal(c.data_dir, "/var/lib/ringkv");
    assert_int_equal(c.fsync, STORE_FSYNC_ALWAYS);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.max_key_bytes, KiB);
    assert_int_equal(c.max_value_bytes, MiB);
    assert_int_equal(c.max_clients, 500);
    assert_int_equal(c.idle_timeout_ms, 60000);
    assert_int_equal(c.max_output_buffer, 8 * MiB);
    assert_int_equal(c.map_size, GiB);
    assert_int_equal(c.tombstone_ttl_ms, 7200000);
    assert_int_equal(c.sweep_interval_ms, 100);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.r, 3);
    assert_int_equal(c.w, 4);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
}

/* Keys a file leaves out keep their current values (defaults, or earlier
 * settings); a key given twice takes the last value. */
static void test_load_partial_and_duplicates(void **state)
{
    (void)state;
    config c, want;
    char err[512];
    config_defaults(&c);
    config_set(&c, "node", "id", "from-before", err, sizeof err);
    want = c;
    int rc = load_text(&c, "[node]\nfsync = no\nfsync = always\n[limits]\nmax_clients = 7\n"
                           "[node]\nlog_level = warn\n", err, sizeof err);
    assert_int_equal(rc, 0);
    want.fsync = STORE_FSYNC_ALWAYS;
    want.log_level = LOG_WARN;
    want.max_clients = 7;
    assert_memory_equal(&c, &want, sizeof c);
    /* An empty file changes nothing. */
    assert_int_equal(load_text(&c, "", err, sizeof err), 0);
    assert_memory_equal(&c, &want, sizeof c);
}

static void test_load_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *err; /* exact, or a prefix when it ends in '*' */
    } cases[] = {
        {"[node]\nid = a\nfoo = 1\n",
         "FILE:3: unknown key 'foo' in section [node] (valid keys: id, listen, peer, resp, "
         "http, seeds, data_dir, fsync, log_level, vnodes)"},
        {"[node]\nid = a\n\n[replicaton]\nn = 5\n",
         "FILE:5: unknown section [replicaton] (valid sections: [node], [limits], [storage], "
         "[replication], [rebalance], [gossip])"},
        {"# top\nfsync = always\n[node]\n",
         "FILE:2: key 'fsync' is outside any section (put it under one of [node], [limits], "
         "[storage], [replication], [rebalance], [gossip])"},
        {"[limits]\n\n\nmax_key_bytes = 12x\n",
         "FILE:4: [limits] max_key_bytes: '12x' is not a size (use e.g. 65536, 64KiB, 16MiB)"},
        {"[node]\nlisten =\n", "FILE:2: [node] listen: '' must not be empty"},
        {"[node]\nid = a\nthis is not a key\n",
         "FILE:3: syntax error (expected [section] or key = value)"},
        {"[node\nid = a\n", "FILE:1: syntax error (expected [section] or key = value)"},
        /* The first error is reported, whether inih or the handler found it. */
        {"[node]\nfsync = x\nnot a key\n", "FILE:2: [node] fsync: 'x' is not an fsync*"},
        {"[node]\nnot a key\nfsync = x\n", "FILE:2: syntax error*"},
        /* inih reads an indented line as more of the previous value. */
        {"[node]\nid = a\n  listen = 127.0.0.1:1\n", "FILE:3: unexpected indented line*"},
        {"[node]\n  id = a\n", "FILE:2: unexpected indented line*"},
        {"[node]\nid = a\n  [limits]\n", "FILE:3: unexpected indented line*"},
        {"[node]\nseeds = a:1\n  b\n", "FILE:3: [node] seeds: 'a:1,b' has 'b'*"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        config c, before;
        char err[512];
        config_defaults(&c);
        before = c;
        int rc = load_text(&c, cases[i].text, err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu loaded", i);
        size_t wl = strlen(cases[i].err);
        bool prefix = cases[i].err[wl - 1] == '*';
        if (prefix ? strncmp(err, cases[i].err, wl - 1) != 0 : strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: got \"%s\"\nwant \"%s\"", i, err, cases[i].err);
        /* All or nothing: a bad file leaves the config as it was. */
        assert_memory_equal(&c, &before, sizeof c);
    }
}

/* write_temp stops at a NUL, so this file is written raw. */
static void test_load_nul_byte(void **state)
{
    (void)state;
    char path[64] = "/tmp/ringkv-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "[node]\nid = a\0b\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    config c;
    char err[512], want[128];
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: line contains a NUL byte (is this a text file?)", path);
    assert_string_equal(err, want);
    unlink(path);
}

static void test_load_missing_and_unreadable(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, "/nonexistent/ringkv.conf", err, sizeof err), -1);
    assert_string_equal(err, "cannot open /nonexistent/ringkv.conf: No such file or directory");
    assert_int_equal(config_load_file(&c, "/tmp", err, sizeof err), -1);
    assert_string_equal(err, "cannot open /tmp: Is a directory");
    if (geteuid() != 0) { /* root reads anything */
        char path[64];
        write_temp(path, sizeof path, "[node]\n");
        chmod(path, 0);
        char want[128];
        snprintf(want, sizeof want, "cannot open %s: Permission denied", path);
        assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
        assert_string_equal(err, want);
        unlink(path);
    }
}

static void test_load_comments(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);
    int rc = load_text(&c,
                       "# hash comment\n"
                       "; semicolon comment\n"
                       "   # indented comment\n"
                       "[node] ; comment after a section\n"
                       "fsync = always ; inline comment\n"
                       "log_level = warn;no space: part of the value?\n",
                       err, sizeof err);
    /* inih starts an inline comment only at " ;", so the last line is bad. */
    assert_int_equal(rc, -1);
    assert_string_equal(err, "FILE:6: [node] log_level: 'warn;no space: part of the value?' is "
                             "not a log level (use debug, info, warn or error)");

    config_defaults(&c);
    rc = load_text(&c,
                   "# hash comment\n"
                   "; semicolon comment\n"
                   "   # indented comment\n"
                   "[node] ; comment after a section\n"
                   "fsync = always ; inline comment\n"
                   "log_level=warn\t; tab before the comment\n"
                   "id: colon-separated\n"
                   "[limits]\n"
                   "max_key_bytes = 1KiB ; a size, then a comment\n",
                   err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.fsync, STORE_FSYNC_ALWAYS);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_string_equal(c.id, "colon-separated");
    assert_int_equal(c.max_key_bytes, KiB);

    /* '#' after a value is not a comment: a clear error, not a silent oddity. */
    rc = load_text(&c, "[node]\nfsync = no # off\n", err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "FILE:2: [node] fsync: 'no # off' is not an fsync policy (use "
                             "always, everysec or no)");
}

static void test_load_line_endings_and_bom(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);
    assert_int_equal(load_text(&c, "\xef\xbb\xbf[node]\r\nid = bom\r\nfsync = no", err,
                               sizeof err), 0);
    assert_string_equal(c.id, "bom");
    assert_int_equal(c.fsync, STORE_FSYNC_NO); /* last line without '\n' */
    assert_int_equal(load_text(&c, "[node]\r\n\r\nbogus = 1\r\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "FILE:3: unknown key 'bogus'"));
}

/* inih's buffer holds 199 characters; it would split a longer line in two. */
static void test_load_long_lines(void **state)
{
    (void)state;
    config c;
    char err[512], text[1024];
    char dir[200];
    memset(dir, 'd', sizeof dir);
    /* "data_dir = " is 11 characters: a path of 188 makes the line 199. */
    dir[0] = '/';
    dir[188] = '\0';
    snprintf(text, sizeof text, "[node]\ndata_dir = %s\nid = after\n", dir);
    config_defaults(&c);
    assert_int_equal(load_text(&c, text, err, sizeof err), 0);
    assert_string_equal(c.data_dir, dir);
    assert_string_equal(c.id, "after");

    dir[188] = 'd';
    dir[189] = '\0';
    snprintf(text, sizeof text, "[node]\ndata_dir = %s\nid = after\n", dir);
    config_defaults(&c);
    assert_int_equal(load_text(&c, text, err, sizeof err), -1);
    assert_string_equal(err, "FILE:2: line is longer than 199 characters (the most inih reads)");
    assert_string_equal(c.data_dir, "./data");

    /* A long comment is harmless, even one with '=' past inih's buffer. */
    char comment[400];
    memset(comment, 'c', sizeof comment);
    memcpy(comment + 300, " id = wrong", 11);
    comment[0] = '#';
    comment[sizeof comment - 1] = '\0';
    snprintf(text, sizeof text, "[node]\n%s\nid = right\n", comment);
    config_defaults(&c);
    assert_int_equal(load_text(&c, text, err, sizeof err), 0);
    assert_string_equal(c.id, "right");
}

/* A seed list may go on over indented lines; a plain repeat replaces it. */
static void test_load_seeds_multiline(void **state)
{
    (void)state;
    config c;
    char err[512];
    config_defaults(&c);
    int rc = load_text(&c,
                       "[node]\n"
                       "seeds = 10.0.0.1:7001,\n"
                       "        10.0.0.2:7001\n"
                       "\t10.0.0.3:7001, 10.0.0.4:7001\n"
                       "fsync = no\n",
                       err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.seeds, "10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001,10.0.0.4:7001");
    assert_int_equal(c.fsync, STORE_FSYNC_NO);

    rc = load_text(&c, "[node]\nseeds = a:1\nseeds = b:2\n", err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.seeds, "b:2");

    rc = load_text(&c, "[node]\nseeds =\n  a:1\n  b:2\n", err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.seeds, "a:1,b:2");
}

static void test_validate(void **state)
{
    (void)state;
    config c;
    char err[512];

    config_defaults(&c);
    c.r = 4;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[replication] r = 4 is larger than n = 3: a read cannot wait for "
                             "more replicas than a key has");

    config_defaults(&c);
    assert_int_equal(config_set(&c, "replication", "n", "1", err, sizeof err), 0);
    assert_int_equal(config_set(&c, "replication", "r", "1", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "[replication] w = 2 is larger than n = 1"));
    c.w = 1;
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    /* r <= n is checked across the whole config, so a file may set r first. */
    config_defaults(&c);
    assert_int_equal(load_text(&c, "[replication]\nr = 5\nw = 5\nn = 5\n", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    config_defaults(&c);
    c.listen[0] = '\0';
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[node] listen: '' must not be empty");

    config_defaults(&c);
    c.data_dir[0] = '\0';
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[node] data_dir: '' must not be empty");

    /* Fields filled in directly get the same checks as config_set. */
    config_defaults(&c);
    c.max_clients = 0;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[limits] max_clients: '0' is out of range (1 to 1000000)");
    config_defaults(&c);
    snprintf(c.resp, sizeof c.resp, "nonsense");
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "[node] resp: 'nonsense' is not an address"));
    config_defaults(&c);
    c.fsync = (store_fsync)9;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "[node] fsync: '?'"));
    config_defaults(&c);
    c.sweep_interval_ms = 0;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "[storage] sweep_interval: '0' is too small (at least 1ms)"));
    config_defaults(&c);
    c.idle_timeout_ms = 1234;
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    /* One reply with the largest key and value must fit a client's buffer. */
    config_defaults(&c);
    assert_int_equal(config_set(&c, "limits", "max_value_bytes", "64MiB", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[limits] max_output_buffer (64MiB) must be at least max_key_bytes "
                             "(64KiB) + max_value_bytes (64MiB) + 1KiB, or a client reading "
                             "the largest value would be dropped");
    c.max_output_buffer = 64 * MiB + 65 * KiB;
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    /* Two listeners cannot share a port; port 0 (any free port) can repeat. */
    config_defaults(&c);
    assert_int_equal(config_set(&c, "node", "resp", "127.0.0.1:7001", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[node] listen and resp both use 127.0.0.1:7001; give each its own "
                             "port");
    assert_int_equal(config_set(&c, "node", "resp", "127.0.0.1:6379", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    assert_int_equal(config_set(&c, "node", "listen", "127.0.0.1:0", err, sizeof err), 0);
    assert_int_equal(config_set(&c, "node", "http", "127.0.0.1:0", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);

    /* A probe must be able to time out before the next one starts. */
    config_defaults(&c);
    assert_int_equal(config_set(&c, "gossip", "probe_timeout", "500ms", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[gossip] probe_timeout (500ms) must be shorter than "
                             "probe_interval (500ms)");
    assert_int_equal(config_set(&c, "gossip", "probe_interval", "1s", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    c.gossip.max_packet = 9000;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[gossip] max_packet: '9000' is out of range (512 to 1400)");
}

static void load_repo_config(const char *name, config *c)
{
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/configs/%s", RINGKV_SOURCE_DIR, name);
    if (config_load_file(c, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (config_validate(c, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

static void test_repo_node_configs(void **state)
{
    (void)state;
    for (int i = 1; i <= 3; i++) {
        config c, want;
        char name[32], id[16], listen[32], peer[32], resp[32], dir[32];
        const char *seeds = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";
        config_defaults(&c);
        snprintf(name, sizeof name, "node%d.conf", i);
        load_repo_config(name, &c);
        snprintf(id, sizeof id, "node%d", i);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", 7000 + i);
        snprintf(peer, sizeof peer, "127.0.0.1:%d", 7100 + i);
        snprintf(resp, sizeof resp, "127.0.0.1:%d", 6400 + i);
        snprintf(dir, sizeof dir, "var/node%d", i);
        assert_string_equal(c.id, id);
        assert_string_equal(c.listen, listen);
        assert_string_equal(c.peer, peer);
        assert_string_equal(c.resp, resp);
        /* All three seed each other, so any one can start first. */
        assert_string_equal(c.seeds, seeds);
        assert_string_equal(c.data_dir, dir);
        /* Everything else stays at its default. */
        config_defaults(&want);
        snprintf(want.id, sizeof want.id, "%s", id);
        snprintf(want.listen, sizeof want.listen, "%s", listen);
        snprintf(want.peer, sizeof want.peer, "%s", peer);
        snprintf(want.resp, sizeof want.resp, "%s", resp);
        snprintf(want.seeds, sizeof want.seeds, "%s", seeds);
        snprintf(want.data_dir, sizeof want.data_dir, "%s", dir);
        assert_config_equal(&c, &want);
    }
}

/* example.conf sets every key to its default: loaded over a config full of
 * garbage, it must give exactly the defaults. */
static void test_repo_example_config(void **state)
{
    (void)state;
    config c, want;
    memset(&c, 0x5a, sizeof c);
    static const size_t strings[] = {
        offsetof(config, id),   offsetof(config, listen), offsetof(config, peer),
        offsetof(config, resp), offsetof(config, http),   offsetof(config, seeds),
        offsetof(config, data_dir),
    };
    for (size_t i = 0; i < N_OF(strings); i++)
        strcpy((char *)&c + strings[i], "garbage");
    load_repo_config("example.conf", &c);
    config_defaults(&want);
    assert_config_equal(&c, &want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_gossip_defaults_match_gossip),
        cmocka_unit_test(test_set_node_strings),
        cmocka_unit_test(test_set_node_enums),
        cmocka_unit_test(test_set_numbers),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_fsync_name),
        cmocka_unit_test(test_load_good_file),
        cmocka_unit_test(test_load_partial_and_duplicates),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_nul_byte),
        cmocka_unit_test(test_load_missing_and_unreadable),
        cmocka_unit_test(test_load_comments),
        cmocka_unit_test(test_load_line_endings_and_bom),
        cmocka_unit_test(test_load_long_lines),
        cmocka_unit_test(test_load_seeds_multiline),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_repo_node_configs),
        cmocka_unit_test(test_repo_example_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
