/* Unit tests for node/config.c: defaults, every key through config_set, the
 * size/duration/address parsers and config_validate. Loading INI files and
 * the shipped configs/ files are in test_config_load.c.
 */
#include "config_test.h"

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
    assert_int_equal(c.cache_size, config_auto_cache_size());
    assert_int_equal(c.log_size, GiB);
    assert_int_equal(c.checkpoints, 1);
    assert_int_equal(c.tombstone_ttl_ms, 86400000);
    assert_int_equal(c.sweep_interval_ms, 1000);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.r, 2);
    assert_int_equal(c.w, 2);
    assert_int_equal(c.request_timeout_ms, 2000);
    assert_int_equal(c.read_retry_ms, 2);
    assert_int_equal(c.linger_ms, 1);
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

/* cache_size = auto: an eighth of the memory, whole MiB, at least 256MiB,
 * and never more than the machine has over 8 (unless that is below the
 * floor); a size written out still wins. */
static void test_cache_size_auto(void **state)
{
    (void)state;
    uint64_t a = config_auto_cache_size();
    uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    assert_true(a >= CONFIG_AUTO_CACHE_MIN);
    assert_int_equal(a % MiB, 0);
    assert_true(a == CONFIG_AUTO_CACHE_MIN || a <= mem / 8);

    config c;
    char err[256];
    config_defaults(&c);
    expect_set_ok(&c, "storage", "cache_size", "0");
    assert_int_equal(c.cache_size, 0);
    expect_set_ok(&c, "storage", "cache_size", "auto");
    assert_int_equal(c.cache_size, a);
    expect_set_ok(&c, "storage", "cache_size", "64MiB");
    assert_int_equal(c.cache_size, 64 * MiB);
    assert_int_equal(config_set(&c, "storage", "cache_size", "automatic", err, sizeof err), -1);
    assert_string_equal(err, "[storage] cache_size: 'automatic' is not a size (use e.g. 65536, "
                             "64KiB, 16MiB) or auto");
    assert_int_equal(config_set(&c, "storage", "log_size", "auto", err, sizeof err), -1);
    assert_int_equal(c.cache_size, 64 * MiB);
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
        {"storage", "log_size", "1MiB", offsetof(config, log_size), MiB},
        {"storage", "log_size", "4GiB", offsetof(config, log_size), 4 * GiB},
        {"storage", "checkpoints", "no", offsetof(config, checkpoints), 0},
        {"storage", "checkpoints", "maybe", 0, UINT64_MAX},
        {"storage", "log_size", "1048575", 0, UINT64_MAX},
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
        {"replication", "linger", "0", offsetof(config, linger_ms), 0},
        {"replication", "linger", "5ms", offsetof(config, linger_ms), 5},
        {"replication", "linger", "100ms", offsetof(config, linger_ms), 100},
        {"replication", "linger", "101ms", 0, UINT64_MAX},
        {"replication", "linger", "1s", 0, UINT64_MAX},
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
                             "(valid keys: n, r, w, request_timeout, read_retry, linger)");
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

    /* A background write and its acknowledgement may each linger. */
    config_defaults(&c);
    assert_int_equal(config_set(&c, "replication", "request_timeout", "40ms", err, sizeof err), 0);
    assert_int_equal(config_set(&c, "replication", "linger", "10ms", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    assert_int_equal(config_set(&c, "replication", "linger", "11ms", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_string_equal(err, "[replication] linger = 11ms is over a quarter of request_timeout = "
                             "40ms: a write and its acknowledgement may each linger that long");

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_gossip_defaults_match_gossip),
        cmocka_unit_test(test_cache_size_auto),
        cmocka_unit_test(test_set_node_strings),
        cmocka_unit_test(test_set_node_enums),
        cmocka_unit_test(test_set_numbers),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_fsync_name),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
