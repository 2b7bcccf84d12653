/* Unit tests for node/config.c's loading of INI files: line numbers in
 * errors, comments, duplicates, inih's quirks (NUL bytes, line endings,
 * BOM, long lines, multi-line seeds), and the shipped configs/ files.
 */
#include "config_test.h"

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
        cmocka_unit_test(test_load_good_file),
        cmocka_unit_test(test_load_partial_and_duplicates),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_nul_byte),
        cmocka_unit_test(test_load_missing_and_unreadable),
        cmocka_unit_test(test_load_comments),
        cmocka_unit_test(test_load_line_endings_and_bom),
        cmocka_unit_test(test_load_long_lines),
        cmocka_unit_test(test_load_seeds_multiline),
        cmocka_unit_test(test_repo_node_configs),
        cmocka_unit_test(test_repo_example_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
