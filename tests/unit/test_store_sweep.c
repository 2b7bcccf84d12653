/* Unit tests for node/store.c's expiry and purges: reads past a record's
 * expiry, purging expired records, and the sweep (store_sweep) of expired
 * records and old tombstones, its budget and its wrap around the key
 * space. Each test runs in a fresh mkdtemp directory (store_fx.h).
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

/* Exactly budget records looked at per call, resuming and wrapping. */
static void test_sweep_budget_and_wrap(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    char k[16];
    reopen(f);
    assert_int_equal(sweep(f, 100, 0, 3), 0); /* empty store */
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep(f, 100, 0, 3), 3);
    assert_int_equal(sweep(f, 100, 0, 3), 3); /* same batch: resumes */
    commit(f);
    assert_int_equal(sweep(f, 100, 0, 3), 3);
    assert_int_equal(sweep(f, 100, 0, 3), 1); /* reaches the end */
    commit(f);
    assert_int_equal(stats(f).records, 0);
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof k, "again%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep(f, 100, 0, 10), 4); /* starts over */
    assert_int_equal(sweep(f, 100, 0, 10), 0);
    assert_int_equal(sweep(f, 100, 0, 0), 0);
    commit(f);
    assert_int_equal(stats(f).purged, 14);

    /* A call that starts at the end wraps: leave the position on the last
     * key, then add keys that sort before it. */
    {
        uint64_t top = 0;
        int added = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(k, sizeof k, "live%d", i);
            put(f, k, strlen(k), "v", 1, 1);
            if (store_token(k, strlen(k)) > top)
                top = store_token(k, strlen(k));
        }
        commit(f);
        assert_int_equal(sweep(f, 100, 0, 3), 0); /* stops on budget, at top */
        for (int i = 0; added < 2; i++) {
            snprintf(k, sizeof k, "low%d", i);
            if (store_token(k, strlen(k)) >= top)
                continue;
            EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
            added++;
        }
        commit(f);
        assert_int_equal(sweep(f, 100, 0, 10), 2);
        commit(f);
        assert_int_equal(stats(f).records, 3);
    }

    /* A sweep in a discarded batch purges nothing. */
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    }
    commit(f);
    assert_int_equal(sweep(f, 100, 0, 10), 2);
    assert_true(store_batch_dirty(f->s));
    EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
    commit(f);
    assert_int_equal(stats(f).purged, 16);
    assert_int_equal(stats(f).records, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_budget_and_wrap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
