/* store_fx: the fixture test_store.c and test_store_hints.c share: a
 * store in a fresh mkdtemp directory, and short ways to write, commit and
 * check records.
 */
#ifndef RINGKV_STORE_FX_H
#define RINGKV_STORE_FX_H

#define _GNU_SOURCE
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <xxhash.h>

#include "ringkv.pb-c.h"
#include "store.h"

#define MB (1024 * 1024)

typedef struct fx {
    char dir[64];
    char err[256];
    store *s;
} fx;

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ringkv-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static inline store *reopen_fsync(fx *f, size_t map_size, store_fsync mode)
{
    store_options o = {.dir = f->dir, .map_size = map_size, .fsync = mode};
    store_close(f->s);
    f->s = store_open(&o, f->err, sizeof f->err);
    if (!f->s)
        fail_msg("store_open: %s", f->err);
    return f->s;
}

static inline store *reopen(fx *f) { return reopen_fsync(f, 64 * MB, STORE_FSYNC_NO); }

static inline store_version ver(uint64_t hlc, const char *origin)
{
    store_version v = {.hlc = hlc};
    snprintf(v.origin, sizeof v.origin, "%s", origin);
    return v;
}

/* hlc with physical time ms (and logical 0). */
static inline uint64_t at_ms(uint64_t ms) { return ms << 16; }

#define EXPECT(f, expr, want)                                                  \
    do {                                                                       \
        store_result r_ = (expr);                                              \
        if (r_ != (want))                                                      \
            fail_msg("%s = %d, want %d (err: %s)", #expr, (int)r_, (int)(want), \
                     (f)->err);                                                \
    } while (0)

static inline void put(fx *f, const void *k, size_t kl, const void *v, size_t vl,
                uint64_t hlc)
{
    store_version ve = ver(hlc, "n1");
    EXPECT(f, store_put(f->s, k, kl, v, vl, 0, &ve, f->err, sizeof f->err), STORE_OK);
}

static inline void del(fx *f, const void *k, size_t kl, uint64_t hlc)
{
    store_version ve = ver(hlc, "n1");
    EXPECT(f, store_del(f->s, k, kl, &ve, f->err, sizeof f->err), STORE_OK);
}

static inline void commit(fx *f) { EXPECT(f, store_commit(f->s, f->err, sizeof f->err), STORE_OK); }

static inline void check_value(fx *f, const void *k, size_t kl, const void *v, size_t vl)
{
    store_record r;
    EXPECT(f, store_get(f->s, k, kl, 1, &r, f->err, sizeof f->err), STORE_OK);
    assert_int_equal(r.value_len, vl);
    if (vl)
        assert_memory_equal(r.value, v, vl);
}

static inline void check_absent(fx *f, const void *k, size_t kl)
{
    store_record r;
    EXPECT(f, store_get(f->s, k, kl, 1, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
}

static inline store_stats stats(fx *f)
{
    store_stats st;
    store_get_stats(f->s, &st);
    return st;
}

/* store_sweep, checked: its work is within the budget and at least what
 * it purged; a failure fails the test. *round_end (optional) as
 * store_sweep's. */
static inline long sweep_end(fx *f, uint64_t now, uint64_t ttl, size_t budget, bool *round_end)
{
    size_t seen;
    long n = store_sweep(f->s, now, ttl, budget, &seen, round_end, f->err, sizeof f->err);
    if (n >= 0)
        assert_true(seen <= budget && seen >= (size_t)n);
    if (n < 0)
        fail_msg("store_sweep: %s", f->err);
    return n;
}

static inline long sweep(fx *f, uint64_t now, uint64_t ttl, size_t budget)
{
    return sweep_end(f, now, ttl, budget, NULL);
}

#endif
