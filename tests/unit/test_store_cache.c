/* Unit tests for the store's row cache: the table itself (store_cache.c),
 * and the store with a cache against the same store without one, op for op,
 * so any way the cache could show a record LMDB does not hold (a discarded
 * batch, a purge, a dropped range, an eviction) shows as a difference.
 */
#include "store_fx.h"
#include "store_cache.h"

/* ---- the table ---- */

static void key_of(uint8_t *k, unsigned i)
{
    /* The store's keys start with an 8-byte hash; here a spread-out one. */
    uint64_t t = XXH3_64bits(&i, sizeof i);
    memcpy(k, &t, 8);
    memcpy(k + 8, &i, sizeof i);
}

static void test_table_finds_what_it_holds(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 64 * MB);
    uint8_t k[12], rec[8];
    cache_hit h;

    for (unsigned i = 0; i < 5000; i++) {
        key_of(k, i);
        memcpy(rec, &i, sizeof i);
        if (i % 3 == 0)
            store_cache_add_read(&c, k, sizeof k, NULL, 0);
        else
            store_cache_add_read(&c, k, sizeof k, rec, sizeof i);
    }
    /* Forget every fifth: backward-shift deletion must keep the others'
     * probe chains whole. */
    for (unsigned i = 0; i < 5000; i += 5) {
        key_of(k, i);
        store_cache_forget(&c, k, sizeof k);
    }
    store_cache_settle(&c);
    assert_int_equal(c.n, 5000 - 1000);
    for (unsigned i = 0; i < 5000; i++) {
        key_of(k, i);
        bool found = store_cache_find(&c, k, sizeof k, &h);
        if (i % 5 == 0) {
            assert_false(found);
            continue;
        }
        assert_true(found);
        assert_int_equal(h.absent, i % 3 == 0);
        if (!h.absent) {
            unsigned v;
            assert_int_equal(h.rlen, sizeof v);
            memcpy(&v, h.rec, sizeof v);
            assert_int_equal(v, i);
        }
    }
    store_cache_free(&c);
}

static void test_table_evicts_to_its_budget(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 64 * 1024);
    uint8_t k[12], rec[200] = {0};
    cache_hit h;

    for (unsigned i = 0; i < 3000; i++) {
        key_of(k, i);
        store_cache_add_read(&c, k, sizeof k, rec, sizeof rec);
        if (i % 100 == 99) {
            store_cache_settle(&c);
            assert_true(c.bytes <= c.max_bytes);
        }
    }
    assert_true(c.evictions > 0);
    assert_true(c.n > 100); /* it kept what fits */
    /* A key used since the hand last passed survives the next sweep of it:
     * keep one hot while many more come in. */
    uint8_t hot[12];
    key_of(hot, 2999);
    assert_true(store_cache_find(&c, hot, sizeof hot, &h));
    for (unsigned i = 3000; i < 3050; i++) {
        key_of(k, i);
        store_cache_add_read(&c, k, sizeof k, rec, sizeof rec);
        store_cache_find(&c, hot, sizeof hot, &h);
        store_cache_settle(&c);
    }
    assert_true(store_cache_find(&c, hot, sizeof hot, &h));
    /* One record above its share of the budget is not kept. */
    static uint8_t big[4096];
    key_of(k, 9999);
    store_cache_add_read(&c, k, sizeof k, big, sizeof big);
    assert_false(store_cache_find(&c, k, sizeof k, &h));
    store_cache_free(&c);
}

static void test_table_abort_forgets_the_batch(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, MB);
    uint8_t k1[12], k2[12];
    const uint8_t old[] = "old!", new1[] = "new!", x[] = "x", longer[] = "a longer one";
    cache_hit h;

    key_of(k1, 1);
    key_of(k2, 2);
    store_cache_add_read(&c, k1, sizeof k1, old, sizeof old);
    store_cache_write(&c, k1, sizeof k1, new1, sizeof new1); /* fits: in place */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_int_equal(h.rlen, sizeof new1);
    assert_memory_equal(h.rec, new1, sizeof new1);
    store_cache_write(&c, k2, sizeof k2, new1, sizeof new1); /* no entry: none made */
    assert_false(store_cache_find(&c, k2, sizeof k2, &h));
    store_cache_abort(&c);
    assert_false(store_cache_find(&c, k1, sizeof k1, &h)); /* LMDB has "old!" again */
    assert_int_equal(c.nbatch, 0);

    store_cache_add_read(&c, k1, sizeof k1, old, sizeof old);
    store_cache_write(&c, k1, sizeof k1, x, sizeof x); /* a smaller record fits */
    store_cache_commit(&c);
    store_cache_abort(&c); /* nothing of the committed batch goes */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_int_equal(h.rlen, sizeof x);
    assert_memory_equal(h.rec, x, sizeof x);

    /* Outgrown: a miss until a read refills it. */
    store_cache_write(&c, k1, sizeof k1, longer, sizeof longer);
    store_cache_commit(&c);
    assert_false(store_cache_find(&c, k1, sizeof k1, &h));
    store_cache_add_read(&c, k1, sizeof k1, longer, sizeof longer);
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_memory_equal(h.rec, longer, sizeof longer);
    store_cache_write(&c, k1, sizeof k1, NULL, 0); /* a delete the store describes */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_true(h.absent);
    store_cache_settle(&c);
    store_cache_free(&c);
}

/* ---- the store with and without a cache ---- */

typedef struct pair {
    char dir[2][64];
    store *s[2]; /* [0] with a small cache, [1] without */
} pair;

static void pair_open(pair *p, size_t cache)
{
    char err[256];
    for (int i = 0; i < 2; i++) {
        strcpy(p->dir[i], "/tmp/ringkv-cache-XXXXXX");
        assert_non_null(mkdtemp(p->dir[i]));
        store_options o = {.dir = p->dir[i], .map_size = 64 * MB, .fsync = STORE_FSYNC_NO,
                           .cache_size = i == 0 ? cache : 0};
        p->s[i] = store_open(&o, err, sizeof err);
        if (!p->s[i])
            fail_msg("store_open: %s", err);
    }
}

static void pair_close(pair *p)
{
    for (int i = 0; i < 2; i++) {
        store_close(p->s[i]);
        nftw(p->dir[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static void same_get(pair *p, const char *key, uint64_t now, int step)
{
    store_record r[2];
    store_result res[2];
    char err[256];
    for (int i = 0; i < 2; i++)
        res[i] = store_get(p->s[i], key, strlen(key), now, &r[i], err, sizeof err);
    if (res[0] != res[1] || r[0].version.hlc != r[1].version.hlc ||
        strcmp(r[0].version.origin, r[1].version.origin) != 0 ||
        r[0].tombstone != r[1].tombstone || r[0].expires_ms != r[1].expires_ms ||
        r[0].value_len != r[1].value_len ||
        (r[0].value_len && memcmp(r[0].value, r[1].value, r[0].value_len) != 0))
        fail_msg("step %d: %s reads differently with the cache (result %d hlc %llu len %zu) "
                 "than without (result %d hlc %llu len %zu)", step, key, res[0],
                 (unsigned long long)r[0].version.hlc, r[0].value_len, res[1],
                 (unsigned long long)r[1].version.hlc, r[1].value_len);
}

static void test_cache_changes_no_answer(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 8 * 1024); /* small: evictions all along, and large records not kept */
    uint64_t x = 0x9e3779b97f4a7c15ULL, now = 1000000, hlc = 1;
    char key[32], err[256];
    static uint8_t val[700];
    uint64_t hits = 0, evictions = 0; /* over every open of the cached store */
    store_stats st[2];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)i;

    for (int step = 0; step < 60000; step++) {
        snprintf(key, sizeof key, "k%llu", (unsigned long long)(rnd(&x) % 600));
        unsigned op = (unsigned)(rnd(&x) % 100);
        store_result res[2];
        long n[2];
        if (op < 40) {
            same_get(&p, key, now, step);
        } else if (op < 60) { /* a put, sometimes older than what is stored */
            uint64_t h = rnd(&x) % 8 == 0 ? hlc / 2 : ++hlc;
            store_version v = ver(at_ms(now) + h, rnd(&x) % 2 ? "node-a" : "node-b");
            size_t len = (size_t)(rnd(&x) % 4 == 0 ? rnd(&x) % sizeof val : rnd(&x) % 16);
            uint64_t exp = rnd(&x) % 5 == 0 ? now + rnd(&x) % 200 : 0;
            for (int i = 0; i < 2; i++)
                res[i] = store_put(p.s[i], key, strlen(key), val, len, exp, &v, err, sizeof err);
            assert_int_equal(res[0], res[1]);
        } else if (op < 66) {
            store_version v = ver(at_ms(now) + ++hlc, "node-a");
            for (int i = 0; i < 2; i++)
                res[i] = store_del(p.s[i], key, strlen(key), &v, err, sizeof err);
            assert_int_equal(res[0], res[1]);
        } else if (op < 90) {
            for (int i = 0; i < 2; i++)
                assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
        } else if (op < 91) { /* an empty key fails and discards the batch */
            store_version v = ver(at_ms(now) + ++hlc, "node-a");
            for (int i = 0; i < 2; i++)
                assert_int_equal(store_put(p.s[i], "", 0, val, 1, 0, &v, err, sizeof err),
                                 STORE_ERR_IO);
        } else if (op < 94) { /* time passes; the sweep purges */
            now += rnd(&x) % 100;
            for (int i = 0; i < 2; i++)
                n[i] = store_sweep(p.s[i], now, 50, 20, NULL, err, sizeof err);
            assert_int_equal(n[0], n[1]);
        } else if (op < 98) { /* a read finds the key expired and purges it */
            for (int i = 0; i < 2; i++)
                assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
            same_get(&p, key, now, step); /* from the snapshot: cached */
            for (int i = 0; i < 2; i++)
                res[i] = store_purge_expired(p.s[i], key, strlen(key), now, err, sizeof err);
            assert_int_equal(res[0], res[1]);
            same_get(&p, key, now, step);
        } else if (op < 99) { /* a range given away */
            uint64_t lo = rnd(&x), hi = lo + (rnd(&x) >> 3);
            for (int i = 0; i < 2; i++)
                n[i] = store_drop_range(p.s[i], lo, hi, 30, err, sizeof err);
            assert_int_equal(n[0], n[1]);
        } else if (rnd(&x) % 30 == 0) {
            /* reopen: the cache starts empty, LMDB keeps what was committed */
            store_get_stats(p.s[0], &st[0]);
            hits += st[0].cache_hits, evictions += st[0].cache_evictions;
            for (int i = 0; i < 2; i++) {
                store_options o = {.dir = p.dir[i], .map_size = 64 * MB,
                                   .fsync = STORE_FSYNC_NO, .cache_size = i == 0 ? 8 * 1024 : 0};
                store_close(p.s[i]);
                p.s[i] = store_open(&o, err, sizeof err);
                assert_non_null(p.s[i]);
            }
        } else {
            same_get(&p, key, now, step);
        }
    }
    for (unsigned k = 0; k < 600; k++) {
        snprintf(key, sizeof key, "k%u", k);
        same_get(&p, key, now, -1);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
        store_get_stats(p.s[i], &st[i]);
    }
    hits += st[0].cache_hits, evictions += st[0].cache_evictions;
    /* The run used the cache (or it proved nothing), and the store without
     * one counted nothing. */
    print_message("cache: %llu hits, %llu evictions\n", (unsigned long long)hits,
                  (unsigned long long)evictions);
    assert_true(hits > 2000);
    assert_true(evictions > 1000);
    assert_true(st[0].cache_bytes <= 8 * 1024);
    assert_int_equal(st[1].cache_hits + st[1].cache_misses + st[1].cache_entries, 0);
    pair_close(&p);
}

/* The store's statistics count hits, misses and what is held. */
static void test_store_counts_hits(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, MB);
    store *s = p.s[0];
    store_version v = ver(at_ms(1000), "node-a");
    store_record r;
    store_stats st;
    char err[256];

    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_NOT_FOUND);
    assert_int_equal(store_put(s, "a", 1, "xyz", 3, 0, &v, err, sizeof err), STORE_OK);
    assert_int_equal(store_commit(s, err, sizeof err), STORE_OK);
    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_OK);
    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_OK);
    assert_memory_equal(r.value, "xyz", 3);
    store_get_stats(s, &st);
    /* The first read cached the key as absent; the write outgrew that entry,
     * so the next read missed and refilled it, and the last one hit. */
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_entries, 1);
    assert_true(st.cache_bytes > 3);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_finds_what_it_holds),
        cmocka_unit_test(test_table_evicts_to_its_budget),
        cmocka_unit_test(test_table_abort_forgets_the_batch),
        cmocka_unit_test(test_cache_changes_no_answer),
        cmocka_unit_test(test_store_counts_hits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
