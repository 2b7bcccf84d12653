/* Unit tests for node/store.c's expiry and purges: reads past a record's
 * expiry, purging expired records, and the sweep (store_sweep) of expired
 * records and old tombstones: what it reads, its budget and rounds, its
 * table's stale entries, rebuild at open and batches; and the count of
 * values with an expiry (INFO's expires). Each test runs in
 * a fresh mkdtemp directory (store_fx.h).
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

    /* The 10 with an expiry or a tombstone are in the sweep's table; in
     * budgets of 5 to the end of a round. */
    for (bool end = false; !end;) {
        long n = sweep_end(f, now, ttl, 5, &end);
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
    /* Later, the rest goes too, in the next round. */
    total = 0;
    for (bool end = false; !end;)
        total += sweep_end(f, now + ttl + 10, ttl, 3, &end);
    commit(f);
    assert_int_equal(total, 4);
    assert_int_equal(stats(f).tombstones, 0);
    assert_int_equal(stats(f).records, 4);
}

/* The store under write-behind: everysec with a cache. */
static void reopen_wb(fx *f)
{
    store_options o = {.dir = f->dir, .map_size = 64 * MB, .fsync = STORE_FSYNC_EVERYSEC,
                       .cache_size = 16 * MB};
    store_close(f->s);
    if (!(f->s = store_open(&o, f->err, sizeof f->err)))
        fail_msg("store_open: %s", f->err);
}

/* Sweeps until a round ends; the sum of what was purged. Each call stays
 * within its budget (sweep_end checks) and purges at most that many. */
static long sweep_round(fx *f, uint64_t now, uint64_t ttl, size_t budget, int *calls)
{
    long total = 0;
    bool end = false;
    for (*calls = 0; !end; ++*calls) {
        long n = sweep_end(f, now, ttl, budget, &end);
        assert_true(n <= (long)budget && *calls < 10000);
        total += n;
    }
    return total;
}

/* Only keys written with an expiry or deleted are looked at, and those not
 * yet due cost an 8th of a read: a round over thousands of them fits a
 * budget well under the records, and those without an expiry are never
 * read. */
static void test_sweep_reads_only_what_is_due(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    char k[16];
    size_t seen = 99;
    bool end = false;
    int calls;
    reopen(f);
    EXPECT(f, store_sweep(f->s, 100, 0, 3, &seen, &end, f->err, sizeof f->err), 0);
    assert_true(end); /* an empty store: every round ends at once */
    assert_int_equal(seen, 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "live%d", i);
        put(f, k, strlen(k), "v", 1, 1);
    }
    for (int i = 0; i < 5000; i++) { /* past the notes a batch buffers */
        snprintf(k, sizeof k, "later%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 5000, &v, f->err, sizeof f->err),
               STORE_OK);
    }
    EXPECT(f, store_put(f->s, "gone", 4, "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    commit(f);
    assert_int_equal(stats(f).sweep_tracked, 5001);

    /* 5000 entries at 64 units and 3191 empty slots at 8: under 675 reads'
     * worth, and one read; the walk of LMDB it replaced read all 7001. */
    assert_int_equal(sweep_round(f, 100, 0, 700, &calls), 1);
    assert_int_equal(calls, 1);
    commit(f);
    assert_int_equal(stats(f).sweep_tracked, 5000);
    assert_int_equal(stats(f).records, 7000);
    check_absent(f, "gone", 4);
    check_value(f, "later7", 6, "v", 1);

    /* A budget of one read stops a round early and the next call goes on. */
    assert_int_equal(sweep_end(f, 100, 0, 1, &end), 0);
    assert_false(end);
    EXPECT(f, store_sweep(f->s, 100, 0, 1, &seen, &end, f->err, sizeof f->err), 0);
    assert_int_equal(seen, 1);

    /* Later, the 5000 go, a budget at a time. */
    assert_int_equal(sweep_round(f, 100, 0, 1, &calls), 0); /* to the end of this round */
    assert_int_equal(sweep_round(f, 6000, 0, 300, &calls), 5000);
    assert_true(calls >= 17);
    commit(f);
    assert_int_equal(stats(f).records, 2000);
    assert_int_equal(stats(f).purged, 5001);
    assert_int_equal(stats(f).sweep_tracked, 0);
}

/* An entry may say earlier than the truth: a key rewritten without an
 * expiry, or with a later one, or deleted and written again, keeps its
 * entry until its time, and the sweep then reads what is there. */
static void test_sweep_stale_entries(void **state)
{
    fx *f = *state;
    store_version v1 = ver(at_ms(10), "n1"), v2 = ver(at_ms(20), "n1");
    int calls;
    reopen(f);
    EXPECT(f, store_put(f->s, "plain", 5, "a", 1, 1000, &v1, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "later", 5, "a", 1, 1000, &v1, f->err, sizeof f->err), STORE_OK);
    del(f, "back", 4, at_ms(10));
    commit(f);
    EXPECT(f, store_put(f->s, "plain", 5, "b", 1, 0, &v2, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "later", 5, "b", 1, 5000, &v2, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "back", 4, "b", 1, 0, &v2, f->err, sizeof f->err), STORE_OK);
    commit(f);
    assert_int_equal(stats(f).sweep_tracked, 3);
    assert_int_equal(stats(f).tombstones, 0);

    assert_int_equal(sweep_round(f, 2000, 100, 10, &calls), 0);
    commit(f);
    assert_int_equal(stats(f).sweep_tracked, 1); /* "later", now due at 5000 */
    check_value(f, "plain", 5, "b", 1);
    check_value(f, "back", 4, "b", 1);
    assert_int_equal(sweep_round(f, 4999, 100, 10, &calls), 0);
    assert_int_equal(sweep_round(f, 5000, 100, 10, &calls), 1);
    commit(f);
    check_absent(f, "later", 5);
    assert_int_equal(stats(f).sweep_tracked, 0);
}

/* The table is memory only: an open rebuilds it from LMDB, and the log's
 * replay (write-behind, after a kill) adds what it writes. */
static void test_sweep_after_reopen(void **state)
{
    fx *f = *state;
    store_version v = ver(at_ms(10), "n1");
    char k[16];
    int calls;
    reopen_fsync(f, 64 * MB, STORE_FSYNC_ALWAYS);
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "exp%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 1000, &v, f->err, sizeof f->err),
               STORE_OK);
        snprintf(k, sizeof k, "live%d", i);
        put(f, k, strlen(k), "v", 1, at_ms(10));
    }
    del(f, "dead", 4, at_ms(10));
    commit(f);
    reopen_fsync(f, 64 * MB, STORE_FSYNC_ALWAYS);
    assert_int_equal(stats(f).sweep_tracked, 6);
    assert_int_equal(sweep_round(f, 999, 100, 10, &calls), 1); /* the tombstone */
    assert_int_equal(sweep_round(f, 1000, 100, 10, &calls), 5);
    commit(f);
    assert_int_equal(stats(f).records, 5);
    assert_int_equal(stats(f).sweep_tracked, 0);

    /* Written behind and never written back: the replay notes them. */
    reopen_wb(f);
    EXPECT(f, store_put(f->s, "logged", 6, "v", 1, 1000, &v, f->err, sizeof f->err), STORE_OK);
    commit(f);
    assert_int_equal(stats(f).dirty, 1);
    store_abandon(f->s);
    f->s = NULL;
    reopen(f);
    assert_int_equal(stats(f).sweep_tracked, 1);
    assert_int_equal(sweep_round(f, 1000, 100, 10, &calls), 1);
    commit(f);
    check_absent(f, "logged", 6);
}

/* Under write-behind a key with a newer record in the cache is left until
 * it is written back; and what the sweep learnt in a batch that is then
 * discarded is forgotten: the records it purged are back, and so are
 * their entries. */
static void test_sweep_batches(void **state)
{
    fx *f = *state;
    store_version v = ver(1, "n1");
    char k[16];
    int calls;
    reopen_wb(f);
    EXPECT(f, store_put(f->s, "k", 1, "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    commit(f);
    assert_int_equal(store_write_back(f->s, f->err, sizeof f->err), 0);
    commit(f);
    assert_int_equal(stats(f).dirty, 0);
    /* LMDB's record is due, but a newer one waits in the cache. */
    EXPECT(f, store_put(f->s, "k", 1, "w", 1, 5000, &(store_version){.hlc = 2}, f->err,
                        sizeof f->err), STORE_OK);
    assert_int_equal(stats(f).dirty, 1);
    assert_int_equal(sweep_round(f, 100, 0, 10, &calls), 0);
    commit(f);
    assert_int_equal(store_write_back(f->s, f->err, sizeof f->err), 0);
    commit(f);
    check_value(f, "k", 1, "w", 1);
    assert_int_equal(sweep_round(f, 100, 0, 10, &calls), 0); /* written back: due at 5000 */
    assert_int_equal(sweep_round(f, 5000, 0, 10, &calls), 1);
    commit(f);
    check_absent(f, "k", 1);
    assert_int_equal(stats(f).sweep_tracked, 0);

    reopen(f); /* write-through: a failed write discards the batch */
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 50, &v, f->err, sizeof f->err), STORE_OK);
    }
    put(f, "plain", 5, "v", 1, 1);
    commit(f);
    EXPECT(f, store_put(f->s, "plain", 5, "w", 1, 0, &(store_version){.hlc = 2}, f->err,
                        sizeof f->err), STORE_OK);
    assert_int_equal(sweep_round(f, 100, 0, 10, &calls), 3);
    EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
    commit(f);
    assert_int_equal(stats(f).purged, 0); /* since the open */
    assert_int_equal(stats(f).records, 4);
    assert_int_equal(stats(f).sweep_tracked, 3);
    assert_int_equal(sweep_round(f, 100, 0, 10, &calls), 3);
    commit(f);
    assert_int_equal(stats(f).records, 1);
    assert_int_equal(stats(f).sweep_tracked, 0);
}

static void putx(fx *f, const char *k, uint64_t hlc, uint64_t expires_ms)
{
    store_version v = ver(hlc, "n1");
    EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, expires_ms, &v, f->err, sizeof f->err),
           STORE_OK);
}

static uint64_t expiring(fx *f) { return stats(f).expiring; }

static uint64_t avg(fx *f) { return stats(f).expiry_avg_ms; }

/* INFO's expires: values with an expiry, counted through overwrites,
 * deletes, stale writes, purges (lazy and by the sweep), and again at open,
 * written through or behind; under write-behind a killed store's log
 * replay brings back the writes it had not written back. */
static void expiring_count(fx *f, bool wb)
{
    const uint64_t now = 1000000, later = 2 * now;
    store_version v = ver(1, "n1");
    int calls;
    wb ? reopen_wb(f) : reopen(f);
    putx(f, "a", 1, later);
    putx(f, "b", 1, now + 10);
    putx(f, "c", 1, 0);
    putx(f, "d", 1, later);
    putx(f, "e", 1, later);
    commit(f);
    assert_int_equal(expiring(f), 4);
    assert_int_equal(avg(f), (3 * later + now + 10) / 4);
    putx(f, "a", 2, 0);     /* the expiry goes: -1 */
    putx(f, "c", 2, later); /* one comes: +1 */
    del(f, "d", 1, 2);      /* deleted: -1 */
    putx(f, "e", 2, now);   /* another expiry: no change */
    del(f, "f", 1, 2);      /* a tombstone of nothing: no change */
    commit(f);
    assert_int_equal(expiring(f), 3); /* b c e */
    assert_int_equal(avg(f), (later + 2 * now + 10) / 3);
    putx(f, "f", 3, later); /* over a tombstone: +1 */
    EXPECT(f, store_put(f->s, "c", 1, "v", 1, 0, &v, f->err, sizeof f->err), STORE_STALE);
    commit(f);
    assert_int_equal(expiring(f), 4); /* b c e f */
    if (!wb) { /* a failed write discards the batch and its deltas */
        putx(f, "g", 4, later);
        del(f, "b", 1, 4);
        EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
        commit(f);
        assert_int_equal(expiring(f), 4);
        assert_int_equal(avg(f), (2 * later + 2 * now + 10) / 4);
    }

    EXPECT(f, store_purge_expired(f->s, "b", 1, now + 10, f->err, sizeof f->err), STORE_OK);
    commit(f);
    assert_int_equal(expiring(f), 3); /* c e f */
    if (wb) { /* the sweep leaves keys waiting to be written back */
        assert_int_equal(store_write_back(f->s, f->err, sizeof f->err), 0);
        commit(f);
    }
    assert_int_equal(sweep_round(f, now, 0, 10, &calls), 2); /* e, and the tombstone of d */
    commit(f);
    assert_int_equal(expiring(f), 2);
    assert_int_equal(avg(f), later);

    wb ? reopen_wb(f) : reopen(f);
    assert_int_equal(expiring(f), 2); /* counted by the open's scan */
    assert_int_equal(avg(f), later);
    if (!wb)
        return;
    putx(f, "h", 5, later + 3);
    putx(f, "c", 5, 0);
    commit(f);
    assert_int_equal(expiring(f), 2); /* f h */
    assert_int_equal(avg(f), later + 1);
    store_abandon(f->s);
    f->s = NULL;
    reopen_wb(f);
    assert_int_equal(expiring(f), 2);
    assert_int_equal(avg(f), later + 1);
    check_value(f, "h", 1, "v", 1);
}

static void test_expiring_count(void **state) { expiring_count(*state, false); }

static void test_expiring_count_write_behind(void **state) { expiring_count(*state, true); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_reads_only_what_is_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_stale_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiring_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiring_count_write_behind, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
