/* Unit tests for node/store.c's expiry and purges: reads past a record's
 * expiry, purging expired records, and the sweep (store_sweep) of expired
 * records and old tombstones, its budget, and the due index it reads.
 * Each test runs in a fresh mkdtemp directory (store_fx.h).
 */
#include "store_fx.h"

static void test_expiry(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    store_record r;
    reopen(f);
    EXPECT(f, store_put(f->s, "t", 1, "v", 1, 1000, &v, f->err, sizeof f->err), STORE_OK);
    commit(f);
    EXPECT(f, store_get(f->s, "t", 1, 999, &r, f->err, sizeof f->err), STORE_OK);
    assert_int_equal(r.expires_ms, 1000);
    EXPECT(f, store_get(f->s, "t", 1, 1000, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
    assert_false(r.tombstone);
    EXPECT(f, store_get(f->s, "t", 1, 5000, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
}

/* Lazy expiry deletes only a live record whose time has come. */
static void test_purge_expired(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    reopen(f);
    EXPECT(f, store_put(f->s, "t", 1, "v", 1, 1000, &v, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "keep", 4, "v", 1, 0, &v, f->err, sizeof f->err), STORE_OK);
    del(f, "gone", 4, 1);
    commit(f);
    uint64_t before = stats(f).records;
    EXPECT(f, store_purge_expired(f->s, "t", 1, 999, f->err, sizeof f->err), STORE_NOT_FOUND);
    EXPECT(f, store_purge_expired(f->s, "keep", 4, 5000, f->err, sizeof f->err),
           STORE_NOT_FOUND);
    EXPECT(f, store_purge_expired(f->s, "gone", 4, 5000, f->err, sizeof f->err),
           STORE_NOT_FOUND); /* tombstones wait for tombstone_ttl */
    EXPECT(f, store_purge_expired(f->s, "nope", 4, 5000, f->err, sizeof f->err),
           STORE_NOT_FOUND);
    EXPECT(f, store_purge_expired(f->s, "t", 1, 1000, f->err, sizeof f->err), STORE_OK);
    commit(f);
    store_stats st = stats(f);
    assert_int_equal(st.records, before - 1);
    assert_int_equal(st.purged, 1);
    assert_int_equal(st.tombstones, 1);
    check_value(f, "keep", 4, "v", 1);
}

static void test_sweep(void **state)
{
    fx *f = *state;
    const uint64_t now = 1000000, ttl = 1000;
    store_version v = ver(at_ms(10), "n1");
    store_record r;
    char k[16];
    long total = 0;
    reopen(f);
    for (int i = 0; i < 4; i++) { /* live */
        snprintf(k, sizeof k, "live%d", i);
        put(f, k, strlen(k), "v", 1, at_ms(10));
    }
    for (int i = 0; i < 2; i++) { /* expiring later */
        snprintf(k, sizeof k, "later%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, now + 1, &v, f->err, sizeof f->err), STORE_OK);
    }
    for (int i = 0; i < 3; i++) { /* expired, one exactly now */
        snprintf(k, sizeof k, "exp%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, now - i, &v, f->err, sizeof f->err), STORE_OK);
    }
    for (int i = 0; i < 3; i++) { /* old tombstones */
        snprintf(k, sizeof k, "old%d", i);
        del(f, k, strlen(k), at_ms(now - ttl - 1));
    }
    for (int i = 0; i < 2; i++) { /* young tombstones, one exactly at the limit */
        snprintf(k, sizeof k, "young%d", i);
        del(f, k, strlen(k), at_ms(now - ttl + i));
    }
    commit(f);
    assert_int_equal(stats(f).records, 14);
    assert_int_equal(stats(f).tombstones, 5);

    /* 14 records in budgets of 5: 5, 5, then 4 and the end. */
    for (int call = 0; call < 3; call++) {
        long n = sweep(f, now, ttl, 5);
        assert_true(n >= 0 && n <= 5);
        total += n;
        commit(f);
    }
    assert_int_equal(total, 6);
    assert_int_equal(stats(f).purged, 6);
    assert_int_equal(stats(f).records, 8);
    assert_int_equal(stats(f).tombstones, 2);
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof k, "live%d", i);
        check_value(f, k, strlen(k), "v", 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "young%d", i);
        EXPECT(f, store_get(f->s, k, strlen(k), now, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
        assert_true(r.tombstone); /* still there */
    }
    /* Later, the rest goes too, once the sweep wraps to the start. */
    total = 0;
    for (int call = 0; call < 3; call++)
        total += sweep(f, now + ttl + 10, ttl, 3);
    commit(f);
    assert_int_equal(total, 4);
    assert_int_equal(stats(f).tombstones, 0);
    assert_int_equal(stats(f).records, 4);
}

/* A put of k with value v expiring at expires (0: never), at HLC hlc. */
static void put_ttl(fx *f, const char *k, const char *v, uint64_t expires, uint64_t hlc)
{
    store_version sv = ver(hlc, "n1");
    EXPECT(f, store_put(f->s, k, strlen(k), v, strlen(v), expires, &sv, f->err, sizeof f->err),
           STORE_OK);
}

/* store_sweep with what it looked at. */
static long sweep_seen(fx *f, uint64_t now, uint64_t ttl, size_t budget, size_t *seen)
{
    long n = store_sweep(f->s, now, ttl, budget, seen, f->err, sizeof f->err);
    if (n < 0)
        fail_msg("store_sweep: %s", f->err);
    return n;
}

/* Up to budget entries per call, the due ones only: records without an
 * expiry, or expiring later, are never looked at. */
static void test_sweep_looks_at_due_records_only(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    char k[16];
    size_t seen;
    reopen(f);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 0); /* empty store */
    assert_int_equal(seen, 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "live%d", i);
        put(f, k, strlen(k), "v", 1, 1);
        snprintf(k, sizeof k, "later%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 200, &v, f->err, sizeof f->err), STORE_OK);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50 + i, &v, f->err, sizeof f->err),
               STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 3);
    assert_int_equal(seen, 3);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 3); /* same batch: goes on */
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 3);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 1); /* the last due one */
    assert_int_equal(seen, 1);
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 0, 3, &seen), 0);
    assert_int_equal(seen, 0);
    assert_int_equal(stats(f).records, 2000);
    check_value(f, "later0", 6, "v", 1);

    /* Oldest first: at 150 the first to go is the one due at 55. */
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 60 - i, &v, f->err, sizeof f->err),
               STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep_seen(f, 55, 0, 100, &seen), 5);
    commit(f);
    EXPECT(f, store_get(f->s, "k4", 2, 0, &(store_record){0}, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_get(f->s, "k5", 2, 0, &(store_record){0}, f->err, sizeof f->err),
           STORE_NOT_FOUND);

    /* Later, the thousand expiring at 200 go, a budget at a time. */
    long total = 0;
    for (int call = 0; call < 5; call++) {
        total += sweep_seen(f, 1000, 0, 300, &seen);
        commit(f);
    }
    assert_int_equal(total, 1005);
    assert_int_equal(stats(f).records, 1000);
    assert_int_equal(stats(f).purged, 1020);

    /* A sweep in a discarded batch purges nothing. */
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 0, 10, &seen), 2);
    assert_true(store_batch_dirty(f->s));
    EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
    commit(f);
    assert_int_equal(stats(f).purged, 1020);
    assert_int_equal(stats(f).records, 1002);
    assert_int_equal(sweep_seen(f, 100, 0, 10, &seen), 2);
    commit(f);
    assert_int_equal(stats(f).records, 1000);
}

/* A record rewritten since its entry was made stays; the sweep looks at
 * the entry once and drops it. */
static void test_sweep_drops_stale_entries(void **state)
{
    fx *f = *state;
    size_t seen;
    reopen(f);
    put_ttl(f, "a", "v", 50, 1);
    put_ttl(f, "b", "v", 50, 1);
    del(f, "c", 1, at_ms(10));
    commit(f);
    put(f, "a", 1, "v2", 2, 2);         /* no expiry now */
    put_ttl(f, "b", "v2", 500, 2);      /* a later one */
    put(f, "c", 1, "v2", 2, at_ms(11)); /* live again */
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 5, 10, &seen), 0);
    assert_int_equal(seen, 3);
    commit(f);
    assert_int_equal(sweep_seen(f, 100, 5, 10, &seen), 0);
    assert_int_equal(seen, 0); /* gone */
    check_value(f, "a", 1, "v2", 2);
    check_value(f, "b", 1, "v2", 2);
    check_value(f, "c", 1, "v2", 2);
    assert_int_equal(sweep_seen(f, 600, 5, 10, &seen), 1); /* b's later one */
    commit(f);
    check_absent(f, "b", 1);
    assert_int_equal(stats(f).records, 2);
}

static void raw_empty_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    (void)arg;
    assert_int_equal(mdb_drop(t, d, 0), 0);
}

static void raw_del_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    MDB_val k = {strlen(arg), arg};
    assert_int_equal(mdb_del(t, d, &k, NULL), 0);
}

/* The due index marker one incarnation older than the store's. */
static void raw_older_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    MDB_val k = {9, "due_index"}, v;
    uint8_t b[8];
    uint64_t inc = 0;
    (void)arg;
    assert_int_equal(mdb_get(t, d, &k, &v), 0);
    assert_int_equal(v.mv_size, 8);
    memcpy(b, v.mv_data, 8);
    for (int i = 0; i < 8; i++)
        inc = inc << 8 | b[i];
    assert_true(inc > 0);
    inc--;
    for (int i = 7; i >= 0; i--, inc >>= 8)
        b[i] = (uint8_t)inc;
    v.mv_size = 8, v.mv_data = b;
    assert_int_equal(mdb_put(t, d, &k, &v, 0), 0);
}

/* The due index's entries in order: key and data (an LMDB key). */
typedef struct due_listing {
    int n;
    uint8_t key[4][9];
    uint8_t data[4][16];
    size_t dlen[4];
} due_listing;

static void raw_list_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    due_listing *l = arg;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(t, d, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), l->n++) {
        assert_true(l->n < 4 && k.mv_size == 9 && v.mv_size <= 16);
        memcpy(l->key[l->n], k.mv_data, 9);
        memcpy(l->data[l->n], v.mv_data, v.mv_size);
        l->dlen[l->n] = v.mv_size;
    }
    mdb_cursor_close(c);
}

/* The entries as LMDB holds them ("e" or "t", the time in ms big-endian;
 * the record's LMDB key), and a store written before the index: its open
 * lists what is due. */
static void test_due_index_on_disk(void **state)
{
    fx *f = *state;
    const uint8_t want[][9] = {{'e', 0, 0, 0, 0, 0, 0, 0x01, 0x2c}, {'t', 0, 0, 0, 0, 0, 0, 0, 10}};
    const char *keys = "xy";
    due_listing l = {0};
    reopen(f);
    put_ttl(f, "x", "v", 300, 1);
    del(f, "y", 1, at_ms(10));
    put(f, "z", 1, "v", 1, 1);
    commit(f);
    store_close(f->s);
    f->s = NULL;

    raw_txn(f, "due", raw_list_fn, &l);
    assert_int_equal(l.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_memory_equal(l.key[i], want[i], 9);
        assert_int_equal(l.dlen[i], 9);
        uint64_t token = 0;
        for (int b = 0; b < 8; b++)
            token = token << 8 | l.data[i][b];
        assert_int_equal(token, store_token(keys + i, 1));
        assert_int_equal(l.data[i][8], keys[i]);
    }

    /* Gone, and the marker that it was built: the next open builds it. */
    raw_txn(f, "due", raw_empty_fn, NULL);
    raw_txn(f, "meta", raw_del_fn, "due_index");
    memset(&l, 0, sizeof l);
    raw_txn(f, "due", raw_list_fn, &l);
    assert_int_equal(l.n, 0);
    reopen(f);
    assert_int_equal(sweep(f, 1000, 5, 10), 2);
    commit(f);
    assert_int_equal(stats(f).records, 1);
    check_value(f, "z", 1, "v", 1);

    /* The marker holds the incarnation of the open that kept the index: a
     * plain reopen trusts the index (emptied behind its back here, so
     * nothing is found), one after an open by an older build (which left
     * the marker behind) builds it again. */
    put_ttl(f, "w", "v", 300, 2);
    commit(f);
    store_close(f->s);
    f->s = NULL;
    raw_txn(f, "due", raw_empty_fn, NULL);
    reopen(f);
    assert_int_equal(sweep(f, 1000, 5, 10), 0);
    commit(f);
    store_close(f->s);
    f->s = NULL;
    raw_txn(f, "meta", raw_older_fn, NULL);
    reopen(f);
    assert_int_equal(sweep(f, 1000, 5, 10), 1);
    commit(f);
    check_absent(f, "w", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_looks_at_due_records_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_drops_stale_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_index_on_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
