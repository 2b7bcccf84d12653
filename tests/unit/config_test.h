/* config_test: what test_config.c and test_config_load.c share: temp
 * files, loading a config from text, and comparing configs.
 */
#ifndef RINGKV_CONFIG_TEST_H
#define RINGKV_CONFIG_TEST_H

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
static inline void write_temp(char *path, size_t len, const char *text)
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
static inline int load_text(config *c, const char *text, char *err, size_t errlen)
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
static inline void assert_config_equal(const config *a, const config *b)
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

static inline void expect_set_ok(config *c, const char *section, const char *key, const char *value)
{
    char err[512] = "";
    int rc = config_set(c, section, key, value, err, sizeof err);
    if (rc != 0)
        fail_msg("[%s] %s = '%s' was refused: %s", section, key, value, err);
}

/* A refused value leaves the config as it was and names section.key. */
static inline void expect_set_bad(config *c, const char *section, const char *key, const char *value)
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

#endif
