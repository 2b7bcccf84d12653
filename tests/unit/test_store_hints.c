/* Unit tests for node/store_hints.c: hints stored for an owner that is
 * down, scanned in order and resumed, deleted once delivered, counted per
 * owner, with long keys.
 */
#include "store_fx.h"

typedef struct seen_hints {
    int n;
    char keys[16][32];
    uint64_t hlc[16];
    bool tomb[16];
    char val[16][32];
    uint8_t pos[STORE_HINT_POS_MAX];
    size_t poslen;
} seen_hints;

static int collect_hint(void *arg, const store_hint *h)
{
    seen_hints *sh = arg;
    assert_true(sh->n < 16);
    snprintf(sh->keys[sh->n], 32, "%.*s", (int)h->klen, (const char *)h->key);
    snprintf(sh->val[sh->n], 32, "%.*s", (int)h->vlen, (const char *)h->value);
    sh->hlc[sh->n] = h->version.hlc;
    sh->tomb[sh->n] = h->tombstone;
    memcpy(sh->pos, h->pos, h->poslen);
    sh->poslen = h->poslen;
    sh->n++;
    return 0;
}

static void hint(fx *f, const char *owner, const char *k, const char *v, bool tomb, uint64_t hlc,
                 store_result want)
{
    store_version ve = ver(hlc, "n1");
    EXPECT(f, store_hint_put(f->s, owner, k, strlen(k), v, v ? strlen(v) : 0, tomb, 0, &ve,
                             f->err, sizeof f->err),
           want);
}

static seen_hints scan(fx *f, const char *owner, const uint8_t *after, size_t afterlen,
                       size_t budget)
{
    seen_hints sh = {0};
    long n = store_hint_scan(f->s, owner, after, afterlen, budget, collect_hint, &sh, f->err,
                             sizeof f->err);
    if (n < 0)
        fail_msg("store_hint_scan: %s", f->err);
    assert_int_equal(n, sh.n);
    return sh;
}

/* Hints are per owner, kept apart from the data, newest version per key,
 * counted at commit, and durable across a reopen. */
static void test_hints_put_scan_count(void **state)
{
    fx *f = *state;
    reopen(f);
    hint(f, "n2", "a", "1", false, 10, STORE_OK);
    hint(f, "n2", "b", "2", false, 10, STORE_OK);
    hint(f, "n2", "c", NULL, true, 10, STORE_OK);
    hint(f, "n3", "a", "3", false, 10, STORE_OK);
    hint(f, "n2", "a", "old", false, 5, STORE_STALE);
    hint(f, "n2", "a", "new", false, 20, STORE_OK);
    assert_int_equal(store_hint_count(f->s), 0); /* as of the last commit */
    seen_hints sh = scan(f, "n2", NULL, 0, 100); /* sees the batch */
    assert_int_equal(sh.n, 3);
    commit(f);
    assert_int_equal(store_hint_count(f->s), 4);
    check_absent(f, "a", 1); /* a hint is not the node's own data */
    reopen(f);
    assert_int_equal(store_hint_count(f->s), 4);
    sh = scan(f, "n2", NULL, 0, 100);
    assert_int_equal(sh.n, 3);
    int seen_a = 0, seen_c = 0;
    for (int i = 0; i < sh.n; i++) {
        if (strcmp(sh.keys[i], "a") == 0) {
            seen_a++;
            assert_string_equal(sh.val[i], "new");
            assert_int_equal(sh.hlc[i], 20);
        }
        if (strcmp(sh.keys[i], "c") == 0) {
            seen_c++;
            assert_true(sh.tomb[i]);
        }
    }
    assert_int_equal(seen_a, 1);
    assert_int_equal(seen_c, 1);
    sh = scan(f, "n3", NULL, 0, 100);
    assert_int_equal(sh.n, 1);
    assert_string_equal(sh.val[0], "3");
    sh = scan(f, "n4", NULL, 0, 100);
    assert_int_equal(sh.n, 0);
    /* An owner whose id is a prefix of another's sees only its own. */
    hint(f, "n", "z", "9", false, 1, STORE_OK);
    commit(f);
    assert_int_equal(scan(f, "n", NULL, 0, 100).n, 1);
    assert_int_equal(scan(f, "n2", NULL, 0, 100).n, 3);
}

/* A scan with a budget resumes after the position it stopped at and
 * visits every hint exactly once. */
static void test_hints_resume(void **state)
{
    fx *f = *state;
    reopen(f);
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "key%d", i);
        hint(f, "owner", k, "v", false, 1, STORE_OK);
    }
    commit(f);
    int total = 0, rounds = 0;
    uint8_t pos[STORE_HINT_POS_MAX];
    size_t poslen = 0;
    char all[10][32];
    for (;;) {
        seen_hints sh = scan(f, "owner", pos, poslen, 3);
        if (sh.n == 0)
            break;
        assert_true(sh.n <= 3);
        for (int i = 0; i < sh.n; i++) {
            for (int j = 0; j < total; j++)
                assert_string_not_equal(all[j], sh.keys[i]);
            snprintf(all[total++], 32, "%s", sh.keys[i]);
        }
        memcpy(pos, sh.pos, sh.poslen);
        poslen = sh.poslen;
        rounds++;
    }
    assert_int_equal(total, 10);
    assert_int_equal(rounds, 4);
}

/* A hint is deleted only at the version that was delivered; a newer one
 * written meanwhile stays. Owners are listed in order. */
static void test_hints_del_and_owners(void **state)
{
    fx *f = *state;
    reopen(f);
    hint(f, "n2", "a", "1", false, 10, STORE_OK);
    hint(f, "n3", "b", "1", false, 10, STORE_OK);
    hint(f, "n10", "c", "1", false, 10, STORE_OK);
    commit(f);
    store_version v10 = ver(10, "n1"), v9 = ver(9, "n1");
    EXPECT(f, store_hint_del(f->s, "n2", "a", 1, &v9, f->err, sizeof f->err), STORE_NOT_FOUND);
    hint(f, "n2", "a", "2", false, 11, STORE_OK); /* arrives while 10 is delivered */
    EXPECT(f, store_hint_del(f->s, "n2", "a", 1, &v10, f->err, sizeof f->err), STORE_NOT_FOUND);
    store_version v11 = ver(11, "n1");
    EXPECT(f, store_hint_del(f->s, "n2", "a", 1, &v11, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_hint_del(f->s, "n2", "zz", 2, &v11, f->err, sizeof f->err), STORE_NOT_FOUND);
    commit(f);
    assert_int_equal(store_hint_count(f->s), 2);
    assert_int_equal(scan(f, "n2", NULL, 0, 100).n, 0);

    char owner[STORE_ORIGIN_MAX + 1] = "", next[STORE_ORIGIN_MAX + 1];
    char got[4][STORE_ORIGIN_MAX + 1];
    int n = 0, rc;
    while ((rc = store_hint_next_owner(f->s, owner, next, f->err, sizeof f->err)) == 1) {
        assert_true(n < 4);
        snprintf(got[n++], sizeof got[0], "%s", next);
        snprintf(owner, sizeof owner, "%s", next);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0], "n3"); /* shorter ids first */
    assert_string_equal(got[1], "n10");
    /* Bad owners are refused without touching the batch. */
    store_version ve = ver(1, "n1");
    assert_int_not_equal(store_hint_put(f->s, "", "k", 1, "v", 1, false, 0, &ve, f->err,
                                        sizeof f->err),
                         STORE_OK);
}

/* A key too long to follow the owner in an LMDB key is kept under its hash,
 * and comes back whole. */
static void test_hints_long_key(void **state)
{
    fx *f = *state;
    reopen(f);
    static char big[2000];
    memset(big, 'k', sizeof big - 1);
    store_version ve = ver(1, "n1");
    EXPECT(f, store_hint_put(f->s, "n2", big, sizeof big - 1, "v", 1, false, 0, &ve, f->err,
                             sizeof f->err),
           STORE_OK);
    commit(f);
    seen_hints sh = {0};
    assert_int_equal(store_hint_scan(f->s, "n2", NULL, 0, 10, collect_hint, &sh, f->err,
                                     sizeof f->err),
                     1);
    EXPECT(f, store_hint_del(f->s, "n2", big, sizeof big - 1, &ve, f->err, sizeof f->err),
           STORE_OK);
    commit(f);
    assert_int_equal(store_hint_count(f->s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hints_put_scan_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_del_and_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_long_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
