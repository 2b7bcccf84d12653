/* Unit tests for node/store_scan.c: ring-range scans (plain, wrapping, the
 * whole ring, resumed in small steps, stopped by the callback), long keys
 * that come back whole, and dropping a range, all checked against a brute
 * force filter of every key by its token; the same under write-behind,
 * where the newest records wait in the cache.
 */
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

#include "store.h"

#define NKEYS   3000
#define LONGKEY 700 /* past LMDB's 511-byte keys: stored under a hash */
/* Every fifth key has an expiry, far off (wall-clock ms; the reads pass 0). */
#define EXPIRY(i) ((i) % 5 == 0 ? (uint64_t)1 << 50 : 0)

typedef struct fx {
    char dir[64];
    char err[256];
    store *s;
    char keys[NKEYS][LONGKEY + 1];
    size_t klen[NKEYS];
    uint64_t token[NKEYS];
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* NKEYS keys, every 100th one long, every 7th a tombstone, each written
 * twice: by "n0", committed (and written back into LMDB under write-behind),
 * then by "n1", committed. Scans must show "n1"'s records only. */
static int open_fx(void **state, store_fsync fsync)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ringkv-scan-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_options o = {.dir = f->dir, .map_size = 64u << 20, .fsync = fsync,
                       .cache_size = fsync == STORE_FSYNC_EVERYSEC ? 16u << 20 : 0};
    f->s = store_open(&o, f->err, sizeof f->err);
    assert_non_null(f->s);
    store_version v = {.hlc = 1000};
    for (int pass = 0; pass < 2; pass++) {
        strcpy(v.origin, pass ? "n1" : "n0");
        for (int i = 0; i < NKEYS; i++) {
            if (i % 100 == 0) {
                memset(f->keys[i], 'a' + i % 26, LONGKEY);
                f->klen[i] = (size_t)snprintf(f->keys[i], 16, "long%d-", i);
                f->keys[i][f->klen[i]] = 'x';
                f->klen[i] = LONGKEY;
            } else {
                f->klen[i] = (size_t)snprintf(f->keys[i], sizeof f->keys[i], "key:%d", i);
            }
            f->token[i] = store_token(f->keys[i], f->klen[i]);
            v.hlc++;
            store_result r =
                i % 7 == 0
                    ? store_del(f->s, f->keys[i], f->klen[i], &v, f->err, sizeof f->err)
                    : store_put(f->s, f->keys[i], f->klen[i], "v", 1, EXPIRY(i), &v,
                                f->err, sizeof f->err);
            assert_int_equal(r, STORE_OK);
        }
        if (pass == 0)
            assert_int_equal(store_write_back(f->s, f->err, sizeof f->err), 0);
        assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return open_fx(state, STORE_FSYNC_NO);
}

/* Write-behind: "n1"'s records wait in the cache, LMDB holds "n0"'s (but
 * for the few the paced write-back took meanwhile: it goes on by time). */
#define WB_SLACK (NKEYS / 10)

static int setup_wb(void **state)
{
    open_fx(state, STORE_FSYNC_EVERYSEC);
    fx *f = *state;
    store_stats st;
    store_get_stats(f->s, &st);
    assert_true(st.dirty >= NKEYS - WB_SLACK);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

typedef struct seen {
    fx *f;
    int count;
    int stop_after; /* 0: never stop */
    bool hit[NKEYS];
    uint64_t last_ord; /* ring order must increase */
    uint64_t lo;
    uint8_t pos[512];
    size_t poslen;
    bool bad_order, unknown;
} seen;

static int find_key(fx *f, const uint8_t *k, size_t klen)
{
    for (int i = 0; i < NKEYS; i++)
        if (f->klen[i] == klen && memcmp(f->keys[i], k, klen) == 0)
            return i;
    return -1;
}

static int on_item(void *arg, const store_item *it)
{
    seen *sn = arg;
    int i = find_key(sn->f, it->key, it->klen);
    if (i < 0 || sn->hit[i] || it->token != sn->f->token[i] || it->tombstone != (i % 7 == 0)) {
        sn->unknown = true;
    } else {
        sn->hit[i] = true;
        if (!it->tombstone && (it->vlen != 1 || it->value[0] != 'v'))
            sn->unknown = true;
        if (strcmp(it->version.origin, "n1") != 0) /* "n0" is older */
            sn->unknown = true;
    }
    uint64_t ord = it->token - sn->lo - 1;
    if (sn->count > 0 && ord < sn->last_ord)
        sn->bad_order = true;
    sn->last_ord = ord;
    memcpy(sn->pos, it->pos, it->poslen);
    sn->poslen = it->poslen;
    sn->count++;
    return sn->stop_after && sn->count % sn->stop_after == 0;
}

/* Scans (lo, hi] in steps of `step` records and checks the result against
 * the brute-force answer. */
static void check_range(fx *f, uint64_t lo, uint64_t hi, size_t step)
{
    seen *sn = calloc(1, sizeof *sn);
    assert_non_null(sn);
    sn->f = f;
    sn->lo = lo;
    bool done = false;
    int rounds = 0;
    while (!done) {
        long n = store_scan(f->s, lo, hi, sn->pos, sn->poslen, step, on_item, sn, &done, f->err,
                            sizeof f->err);
        assert_true(n >= 0);
        assert_true(rounds++ < NKEYS + 2);
    }
    int want = 0;
    for (int i = 0; i < NKEYS; i++) {
        bool in = store_in_range(lo, hi, f->token[i]);
        want += in;
        assert_int_equal(sn->hit[i], in);
    }
    assert_int_equal(sn->count, want);
    assert_false(sn->bad_order);
    assert_false(sn->unknown);
    free(sn);
}

static void test_in_range(void **state)
{
    (void)state;
    assert_true(store_in_range(10, 20, 11));
    assert_true(store_in_range(10, 20, 20));
    assert_false(store_in_range(10, 20, 10));
    assert_false(store_in_range(10, 20, 21));
    /* wrapping */
    assert_true(store_in_range(UINT64_MAX - 5, 3, UINT64_MAX));
    assert_true(store_in_range(UINT64_MAX - 5, 3, 0));
    assert_true(store_in_range(UINT64_MAX - 5, 3, 3));
    assert_false(store_in_range(UINT64_MAX - 5, 3, 4));
    assert_false(store_in_range(UINT64_MAX - 5, 3, UINT64_MAX - 5));
    /* the whole ring */
    assert_true(store_in_range(7, 7, 7));
    assert_true(store_in_range(7, 7, 0));
    assert_true(store_in_range(UINT64_MAX, UINT64_MAX, 12));
    /* (MAX, hi]: starts at 0 */
    assert_true(store_in_range(UINT64_MAX, 5, 0));
    assert_false(store_in_range(UINT64_MAX, 5, UINT64_MAX));
}

static void test_scan_ranges(void **state)
{
    fx *f = *state;
    const uint64_t q = UINT64_MAX / 4;
    check_range(f, 0, q, 100000);                     /* a quarter, in one call */
    check_range(f, q, 3 * q, 37);                     /* a half, resumed in steps */
    check_range(f, 3 * q, q / 2, 1);                  /* wrapping, one record per call */
    check_range(f, 5, 5, 250);                        /* the whole ring */
    check_range(f, UINT64_MAX, q, 64);                /* (MAX, q]: from token 0 */
    check_range(f, f->token[5], f->token[5], 99);     /* whole ring starting at a key */
    check_range(f, f->token[1] - 1, f->token[1], 10); /* exactly one key */
    check_range(f, f->token[1], f->token[1] + 1, 10); /* likely none */
}

static void test_scan_stops(void **state)
{
    fx *f = *state;
    seen *sn = calloc(1, sizeof *sn);
    assert_non_null(sn);
    sn->f = f;
    sn->stop_after = 5;
    bool done = false;
    long n = store_scan(f->s, 0, 0, NULL, 0, 1000, on_item, sn, &done, f->err, sizeof f->err);
    assert_int_equal(n, 5);
    assert_false(done);
    /* resuming after the stop goes on where it stopped */
    while (!done)
        assert_true(store_scan(f->s, 0, 0, sn->pos, sn->poslen, 1000, on_item, sn, &done, f->err,
                               sizeof f->err) >= 0);
    assert_int_equal(sn->count, NKEYS);
    assert_false(sn->unknown);
    free(sn);
}

static void test_scan_sees_batch(void **state)
{
    fx *f = *state;
    store_version v = {.hlc = 999999};
    strcpy(v.origin, "n2");
    assert_int_equal(store_put(f->s, "fresh", 5, "new", 3, 0, &v, f->err, sizeof f->err), STORE_OK);
    uint64_t t = store_token("fresh", 5);
    seen *sn = calloc(1, sizeof *sn);
    assert_non_null(sn);
    sn->f = f;
    bool done;
    assert_int_equal(
        store_scan(f->s, t - 1, t, NULL, 0, 10, on_item, sn, &done, f->err, sizeof f->err), 1);
    assert_true(done);
    assert_true(sn->unknown); /* "fresh" is not one of the fixture's keys */
    free(sn);
    assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
}

/* Under write-behind a scan step writes back the dirty records it can
 * reach, not the whole range's: an anti-entropy tree build reads 1024
 * records a step, and writing back everything at each step undid the
 * write-behind for as long as the build ran. */
static void test_scan_step_writes_back_its_part(void **state)
{
    fx *f = *state;
    seen *sn = calloc(1, sizeof *sn);
    assert_non_null(sn);
    sn->f = f;
    bool done = false;
    store_stats st;
    int steps = 0;
    while (!done) {
        long n = store_scan(f->s, 0, 0, sn->pos, sn->poslen, 100, on_item, sn, &done, f->err,
                            sizeof f->err);
        assert_true(n >= 0 && n <= 100);
        assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
        store_get_stats(f->s, &st);
        /* What the steps so far read is written back; the rest mostly
         * waits (the paced write-back goes on by time meanwhile). */
        assert_true(st.dirty <= NKEYS - (uint64_t)sn->count);
        if (steps == 0)
            assert_true(st.dirty >= NKEYS - 100 - WB_SLACK);
        if (!done)
            assert_int_equal(n, 100);
        assert_true(steps++ < NKEYS);
    }
    assert_int_equal(sn->count, NKEYS);
    assert_int_equal(st.dirty, 0);
    assert_false(sn->unknown);
    assert_false(sn->bad_order);
    free(sn);
}

static void test_drop_range(void **state)
{
    fx *f = *state;
    const uint64_t lo = UINT64_MAX / 3 * 2, hi = UINT64_MAX / 5; /* wraps */
    int want = 0, tombs = 0, expiring = 0;
    for (int i = 0; i < NKEYS; i++)
        if (store_in_range(lo, hi, f->token[i])) {
            want++;
            tombs += i % 7 == 0;
            expiring += i % 7 != 0 && EXPIRY(i) != 0;
        }
    store_stats before;
    store_get_stats(f->s, &before);
    long total = 0, n;
    while ((n = store_drop_range(f->s, lo, hi, 100, f->err, sizeof f->err)) > 0) {
        total += n;
        assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
    }
    assert_int_equal(n, 0);
    assert_int_equal(total, want);
    store_stats after;
    store_get_stats(f->s, &after);
    assert_int_equal(after.records, before.records - (uint64_t)want);
    assert_int_equal(after.tombstones, before.tombstones - (uint64_t)tombs);
    assert_true(expiring > 0);
    assert_int_equal(after.expiring, before.expiring - (uint64_t)expiring);
    assert_int_equal(after.expiry_avg_ms, EXPIRY(0)); /* the sum went with the count */
    /* everything outside the range is still there, nothing inside is */
    for (int i = 0; i < NKEYS; i++) {
        store_record rec;
        store_result r = store_get(f->s, f->keys[i], f->klen[i], 0, &rec, f->err, sizeof f->err);
        if (store_in_range(lo, hi, f->token[i]))
            assert_true(r == STORE_NOT_FOUND && rec.version.hlc == 0);
        else
            assert_true(r == STORE_OK || (i % 7 == 0 && r == STORE_NOT_FOUND && rec.version.hlc));
    }
    check_range(f, hi, lo, 50); /* the rest scans whole */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_range),
        cmocka_unit_test_setup_teardown(test_scan_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_sees_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_ranges, setup_wb, teardown),
        cmocka_unit_test_setup_teardown(test_scan_stops, setup_wb, teardown),
        cmocka_unit_test_setup_teardown(test_scan_sees_batch, setup_wb, teardown),
        cmocka_unit_test_setup_teardown(test_scan_step_writes_back_its_part, setup_wb, teardown),
        cmocka_unit_test_setup_teardown(test_drop_range, setup_wb, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
