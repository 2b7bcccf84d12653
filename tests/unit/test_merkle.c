/* Unit tests for node/merkle.c: leaf slicing (plain, wrapping, whole-ring
 * and narrow ranges), trees built from a real store in small and large
 * steps against a brute-force sum over every key, one changed record
 * changing exactly one path (and the incremental update agreeing with a
 * rebuild), expired records and old tombstones left out, and the checks
 * on the node and leaf lists a peer sends.
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

#include "hlc.h"
#include "merkle.h"
#include "store.h"

#define NKEYS  2500
#define NOW_MS 1700000000000ull
#define TTL_MS 86400000ull

typedef struct fx {
    char dir[64];
    char err[256];
    store *s;
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static uint64_t hlc_at(uint64_t ms)
{
    return ms << HLC_LOGICAL_BITS;
}

static void key_of(int i, char *buf, size_t len)
{
    if (i % 250 == 0) { /* a long key, past LMDB's 511 bytes */
        memset(buf, 'a' + i % 26, 700);
        snprintf(buf, 16, "long%d-", i);
        buf[strlen(buf)] = 'x';
        buf[700] = 0;
    } else {
        snprintf(buf, len, "key:%d", i);
    }
}

/* NKEYS keys: every 7th a fresh tombstone, every 11th expired, every 13th
 * a tombstone older than TTL_MS, the rest live (some with a future TTL). */
static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ringkv-merkle-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_options o = {.dir = f->dir, .map_size = 64u << 20, .fsync = STORE_FSYNC_NO};
    f->s = store_open(&o, f->err, sizeof f->err);
    assert_non_null(f->s);
    for (int i = 0; i < NKEYS; i++) {
        char k[800];
        key_of(i, k, sizeof k);
        store_version v = {.hlc = hlc_at(NOW_MS - 1000) + (uint64_t)i};
        snprintf(v.origin, sizeof v.origin, "n%d", i % 3);
        store_result r;
        if (i % 13 == 0) {
            v.hlc = hlc_at(NOW_MS - TTL_MS - 5000);
            r = store_del(f->s, k, strlen(k), &v, f->err, sizeof f->err);
        } else if (i % 7 == 0) {
            r = store_del(f->s, k, strlen(k), &v, f->err, sizeof f->err);
        } else {
            uint64_t exp = i % 11 == 0 ? NOW_MS - 10 : (i % 5 == 0 ? NOW_MS + 60000 : 0);
            r = store_put(f->s, k, strlen(k), "value", 5, exp, &v, f->err, sizeof f->err);
        }
        assert_int_equal(r, STORE_OK);
    }
    assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int last_steps; /* steps the last build took before its last */

static merkle *build(store *s, uint64_t lo, uint64_t hi, unsigned depth, size_t budget)
{
    char err[256];
    merkle_builder *b = merkle_builder_new(s, lo, hi, depth, NOW_MS, TTL_MS);
    assert_non_null(b);
    int rc;
    while ((rc = merkle_builder_step(b, budget, err, sizeof err)) == 0)
        last_steps++;
    assert_int_equal(rc, 1);
    merkle *m = merkle_builder_take(b);
    assert_non_null(m);
    merkle_builder_free(b);
    return m;
}

/* The tree computed the slow way: every key, its token, its leaf. */
static merkle *brute(store *s, uint64_t lo, uint64_t hi, unsigned depth)
{
    merkle *m = merkle_new(lo, hi, depth);
    assert_non_null(m);
    for (int i = 0; i < NKEYS; i++) {
        char k[800], err[256];
        key_of(i, k, sizeof k);
        uint64_t t = store_token(k, strlen(k));
        if (!store_in_range(lo, hi, t))
            continue;
        store_record rec;
        store_result r =
            store_get(s, k, strlen(k), 0, &rec, err, sizeof err); /* now 0: no expiry */
        assert_true(r == STORE_OK || (r == STORE_NOT_FOUND && rec.version.hlc));
        if (!merkle_included(rec.tombstone, rec.version.hlc, rec.expires_ms, NOW_MS, TTL_MS))
            continue;
        uint64_t leaf = merkle_leaf_of(lo, hi, depth, t);
        uint64_t llo, lhi;
        assert_true(merkle_leaf_range(lo, hi, depth, leaf, &llo, &lhi));
        assert_true(store_in_range(llo, lhi, t));
        merkle_add_leaf(
            m, t, merkle_record_hash(k, strlen(k), &rec.version, rec.tombstone, rec.expires_ms));
    }
    merkle_finish(m);
    return m;
}

static void assert_same(const merkle *a, const merkle *b)
{
    assert_int_equal(a->nhash, b->nhash);
    assert_int_equal(a->records, b->records);
    assert_memory_equal(a->hash, b->hash, a->nhash * sizeof *a->hash);
}

static const uint64_t ranges[][2] = {
    {0, 0},                                         /* the whole ring */
    {0x1234567890abcdefull, 0x1234567890abcdefull}, /* the whole ring, elsewhere */
    {0x4000000000000000ull, 0xc000000000000000ull}, /* half */
    {0xf000000000000000ull, 0x1000000000000000ull}, /* wraps past 2^64-1 */
    {UINT64_MAX, 0x8000000000000000ull},            /* starts at the top */
    {5, 5000},                                      /* narrower than the leaves */
};

/* The deepest trees take their hashes from mmap rather than calloc: they
 * start zeroed all the same, and sum like any other. */
static void deepest_tree_starts_zeroed(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) { /* again after a free */
        merkle *m = merkle_new(0, 0, MERKLE_MAX_DEPTH);
        assert_non_null(m);
        for (size_t i = 0; i < m->nhash; i++)
            assert_true(m->hash[i] == 0);
        merkle_add_leaf(m, 1, 5);
        merkle_add_leaf(m, UINT64_MAX, 7);
        merkle_finish(m);
        assert_true(merkle_root(m) == 12);
        merkle_free(m);
    }
}

static void tree_matches_brute_force(void **state)
{
    fx *f = *state;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (unsigned depth = 1; depth <= 3; depth++) {
            uint64_t lo = ranges[r][0], hi = ranges[r][1];
            merkle *slow = brute(f->s, lo, hi, depth);
            merkle *small = build(f->s, lo, hi, depth, 7);
            merkle *big = build(f->s, lo, hi, depth, 100000);
            assert_same(small, slow);
            assert_same(big, slow);
            uint64_t sum = 0;
            for (uint64_t i = 0; i < merkle_level_size(1); i++)
                sum += merkle_node(big, 1, i);
            assert_true(sum == merkle_root(big));
            merkle_free(slow);
            merkle_free(small);
            merkle_free(big);
        }
}

static void whole_ring_counts_every_included_record(void **state)
{
    fx *f = *state;
    last_steps = 0;
    merkle *small = build(f->s, 0, 0, 2, 100);
    assert_true(last_steps >= NKEYS / 100); /* it really went in steps */
    merkle *m = build(f->s, 0, 0, 2, 4096);
    assert_same(small, m);
    merkle_free(small);
    uint64_t want = 0;
    for (int i = 0; i < NKEYS; i++)
        if (!(i % 13 == 0) && !(i % 7 != 0 && i % 11 == 0))
            want++;
    assert_int_equal(m->records, want);
    merkle_free(m);
}

static void leaves_partition_the_range(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        uint64_t lo = ranges[r][0], hi = ranges[r][1];
        unsigned depth = 2;
        uint64_t prev_hi = lo, nonempty = 0;
        for (uint64_t leaf = 0; leaf < merkle_level_size(depth); leaf++) {
            uint64_t llo, lhi;
            if (!merkle_leaf_range(lo, hi, depth, leaf, &llo, &lhi))
                continue;
            nonempty++;
            assert_true(llo == prev_hi); /* contiguous, no gap, no overlap */
            assert_true(llo != lhi);
            /* the first and last token of the leaf map back to it */
            assert_int_equal(merkle_leaf_of(lo, hi, depth, llo + 1), leaf);
            assert_int_equal(merkle_leaf_of(lo, hi, depth, lhi), leaf);
            prev_hi = lhi;
        }
        assert_true(prev_hi == hi);
        if (hi - lo == 4995)
            assert_int_equal(nonempty, 256);
    }
    /* a range of 3 tokens: 3 leaves hold one token each, the rest none */
    uint64_t llo, lhi, n = 0;
    for (uint64_t leaf = 0; leaf < 16; leaf++)
        n += merkle_leaf_range(10, 13, 1, leaf, &llo, &lhi);
    assert_int_equal(n, 3);
    assert_int_equal(merkle_leaf_of(10, 13, 1, 11), 0);
    assert_int_equal(merkle_leaf_of(10, 13, 1, 13), 10);
    /* the whole ring: token lo+1 in leaf 0, lo (the last) in the last leaf */
    assert_int_equal(merkle_leaf_of(77, 77, 5, 78), 0);
    assert_int_equal(merkle_leaf_of(77, 77, 5, 77), merkle_level_size(5) - 1);
}

/* A newer version of one key: the rebuilt tree differs from the old one at
 * exactly one node per level, the ancestors of the key's leaf; updating the
 * old tree in place gives the rebuilt one. */
static void one_change_changes_one_path(void **state)
{
    fx *f = *state;
    const unsigned depth = 3;
    merkle *before = build(f->s, 0, 0, depth, 4096);
    char k[800];
    key_of(43, k, sizeof k);
    store_record old;
    assert_int_equal(store_get(f->s, k, strlen(k), 0, &old, f->err, sizeof f->err), STORE_OK);
    store_version oldv = old.version;
    uint64_t oldexp = old.expires_ms;
    store_version v = {.hlc = oldv.hlc + 1};
    strcpy(v.origin, "n9");
    assert_int_equal(store_put(f->s, k, strlen(k), "new", 3, 0, &v, f->err, sizeof f->err),
                     STORE_OK);
    assert_int_equal(store_commit(f->s, f->err, sizeof f->err), STORE_OK);
    merkle *after = build(f->s, 0, 0, depth, 4096);

    uint64_t t = store_token(k, strlen(k));
    uint64_t idx = merkle_leaf_of(0, 0, depth, t);
    for (unsigned l = depth + 1; l-- > 0; idx /= MERKLE_FANOUT) {
        uint64_t ndiff = 0, where = 0;
        for (uint64_t i = 0; i < merkle_level_size(l); i++)
            if (merkle_node(before, l, i) != merkle_node(after, l, i)) {
                ndiff++;
                where = i;
            }
        assert_int_equal(ndiff, 1);
        assert_int_equal(where, idx);
    }
    merkle_remove(before, t, merkle_record_hash(k, strlen(k), &oldv, false, oldexp));
    merkle_add(before, t, merkle_record_hash(k, strlen(k), &v, false, 0));
    assert_same(before, after);
    merkle_free(before);
    merkle_free(after);
}

/* Expired records and purgeable tombstones are left out; the record hash
 * covers every part of the version. */
static void expired_and_old_tombstones_excluded(void **state)
{
    (void)state;
    assert_false(merkle_included(false, hlc_at(NOW_MS), NOW_MS - 1, NOW_MS, TTL_MS));
    assert_false(merkle_included(false, hlc_at(NOW_MS), NOW_MS, NOW_MS, TTL_MS));
    assert_true(merkle_included(false, hlc_at(NOW_MS), NOW_MS + 1, NOW_MS, TTL_MS));
    assert_true(merkle_included(false, hlc_at(1), 0, NOW_MS, TTL_MS));
    assert_true(merkle_included(true, hlc_at(NOW_MS - 10), 0, NOW_MS, TTL_MS));
    assert_false(merkle_included(true, hlc_at(NOW_MS - TTL_MS - 1), 0, NOW_MS, TTL_MS));
    assert_true(merkle_included(true, hlc_at(5), 0, 100, 1000)); /* young clock: nothing old */

    store_version v = {.hlc = 7};
    strcpy(v.origin, "a");
    uint64_t h = merkle_record_hash("k", 1, &v, false, 0);
    store_version v2 = v;
    v2.hlc = 8;
    assert_true(h != merkle_record_hash("k", 1, &v2, false, 0));
    strcpy(v2.origin, "b");
    v2.hlc = 7;
    assert_true(h != merkle_record_hash("k", 1, &v2, false, 0));
    assert_true(h != merkle_record_hash("k", 1, &v, true, 0));
    assert_true(h != merkle_record_hash("k", 1, &v, false, 5));
    assert_true(h != merkle_record_hash("j", 1, &v, false, 0));
    assert_true(h == merkle_record_hash("k", 1, &v, false, 0));
}

static void peer_lists_are_checked(void **state)
{
    (void)state;
    char err[256];
    uint32_t ok[] = {0, 3, 15};
    assert_int_equal(merkle_check_nodes(2, 1, ok, 3, err, sizeof err), 0);
    assert_int_equal(merkle_check_nodes(2, 0, ok, 1, err, sizeof err), 0);
    assert_int_equal(merkle_check_nodes(0, 0, ok, 1, err, sizeof err), -1);
    assert_int_equal(merkle_check_nodes(MERKLE_MAX_DEPTH + 1, 0, ok, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "depth"));
    assert_int_equal(merkle_check_nodes(2, 2, ok, 1, err, sizeof err),
                     -1); /* leaves: no children */
    assert_int_equal(merkle_check_nodes(2, 0, ok, 2, err, sizeof err), -1); /* index 3 at level 0 */
    assert_non_null(strstr(err, "node index 3"));
    assert_int_equal(merkle_check_nodes(2, 1, ok, 0, err, sizeof err), -1);
    assert_int_equal(merkle_check_nodes(2, 1, ok, MERKLE_MAX_NODES + 1, err, sizeof err), -1);
    uint32_t big[] = {UINT32_MAX};
    assert_int_equal(merkle_check_nodes(5, 4, big, 1, err, sizeof err), -1);

    uint32_t leaves[] = {1, 2, 255};
    assert_int_equal(merkle_check_leaves(2, leaves, 3, err, sizeof err), 0);
    assert_int_equal(merkle_check_leaves(1, leaves, 3, err, sizeof err), -1); /* 255 >= 16 */
    uint32_t dup[] = {4, 4};
    assert_int_equal(merkle_check_leaves(2, dup, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "increase"));
    assert_int_equal(merkle_check_leaves(9, leaves, 1, err, sizeof err), -1);
    assert_int_equal(merkle_check_leaves(2, leaves, 0, err, sizeof err), -1);

    assert_null(merkle_new(0, 0, 0));
    assert_null(merkle_new(0, 0, MERKLE_MAX_DEPTH + 1));
}

static void depth_follows_key_count(void **state)
{
    (void)state;
    assert_int_equal(merkle_depth_for(0), 1);
    assert_int_equal(merkle_depth_for(16), 1);
    assert_int_equal(merkle_depth_for(17), 2);
    assert_int_equal(merkle_depth_for(2000), 3);
    assert_int_equal(merkle_depth_for(1000000), 5);
    assert_int_equal(merkle_depth_for(UINT64_MAX), MERKLE_MAX_DEPTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(deepest_tree_starts_zeroed),
        cmocka_unit_test_setup_teardown(tree_matches_brute_force, setup, teardown),
        cmocka_unit_test_setup_teardown(whole_ring_counts_every_included_record, setup, teardown),
        cmocka_unit_test(leaves_partition_the_range),
        cmocka_unit_test_setup_teardown(one_change_changes_one_path, setup, teardown),
        cmocka_unit_test(expired_and_old_tombstones_excluded),
        cmocka_unit_test(peer_lists_are_checked),
        cmocka_unit_test(depth_follows_key_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
