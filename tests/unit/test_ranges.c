/* Unit tests for node/ranges.c: ranges cover the ring exactly once with the
 * right replicas, and ranges_gained names exactly the tokens a node starts
 * replicating and where to fetch them, for a join, a leave and a growth
 * past N. Checked against ring_preference at many random tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ranges.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static bool in_range(uint64_t lo, uint64_t hi, uint64_t t)
{
    return lo == hi || t - lo - 1 < hi - lo;
}

static ring *make(const char *const *ids, size_t n, uint32_t vnodes)
{
    ring_member m[8];
    for (size_t i = 0; i < n; i++)
        m[i] = (ring_member){ids[i], vnodes};
    char err[128];
    ring *r = ring_new(m, n, err, sizeof err);
    assert_non_null(r);
    return r;
}

static bool owns(const ring *r, uint64_t t, size_t nrep, const char *id)
{
    size_t idx[16], n = ring_preference(r, t, nrep, idx);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ring_member_id(r, idx[i]), id) == 0)
            return true;
    return false;
}

static void check_cover(const ring *r, size_t nrep, long want_count)
{
    range *g;
    long n = ranges_build(r, nrep, &g);
    assert_true(n > 0);
    if (want_count >= 0)
        assert_int_equal(n, want_count);
    for (int k = 0; k < 20000; k++) {
        uint64_t t = k < 10 ? ring_point_token(r, (size_t)k % ring_points(r)) + (k & 1) : next();
        int hits = 0;
        for (long i = 0; i < n; i++) {
            if (!in_range(g[i].lo, g[i].hi, t))
                continue;
            hits++;
            size_t idx[16], m = ring_preference(r, t, nrep, idx);
            assert_int_equal(m, g[i].n);
            for (size_t j = 0; j < m; j++)
                assert_true(range_has(&g[i], (uint32_t)idx[j]));
        }
        assert_int_equal(hits, 1);
    }
    free(g);
}

static void test_build(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c", "d", "e"};
    ring *r3 = make(ids, 3, 128), *r5 = make(ids, 5, 64), *r1 = make(ids, 1, 8);
    check_cover(r3, 3, 1); /* every key on every node: the whole ring */
    check_cover(r3, 2, -1);
    check_cover(r5, 3, -1);
    check_cover(r1, 3, 1);
    range *g;
    assert_int_equal(ranges_build(r3, 3, &g), 1);
    assert_true(g[0].lo == g[0].hi);
    free(g);
    ring_free(r1);
    ring_free(r3);
    ring_free(r5);
}

/* Every token self owns in `to` but not in `from` is in exactly one move,
 * no other token is, and the sources are the owners dropping out. */
static void check_gained(const ring *from, const ring *to, size_t nrep, const char *self)
{
    range_move *mv;
    long n = ranges_gained(from, to, nrep, self, &mv);
    assert_true(n >= 0);
    for (int k = 0; k < 20000; k++) {
        uint64_t t = next();
        bool gains = owns(to, t, nrep, self) && !owns(from, t, nrep, self);
        int hits = 0;
        for (long i = 0; i < n; i++) {
            if (!in_range(mv[i].lo, mv[i].hi, t))
                continue;
            hits++;
            assert_true(mv[i].nsrc >= 1);
            for (size_t j = 0; j < mv[i].nsrc; j++)
                assert_true(owns(from, t, nrep, mv[i].src[j]));
            size_t idx[16], m = ring_preference(from, t, nrep, idx);
            size_t leaving = 0;
            for (size_t j = 0; j < m; j++)
                leaving += !owns(to, t, nrep, ring_member_id(from, idx[j]));
            assert_int_equal(mv[i].nsrc, leaving ? leaving : m);
        }
        assert_int_equal(hits, gains ? 1 : 0);
    }
    free(mv);
}

static void test_gained(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c", "d", "e"};
    ring *r2 = make(ids, 2, 128), *r3 = make(ids, 3, 128), *r4 = make(ids, 4, 128);
    /* join of d: only d gains */
    check_gained(r3, r4, 3, "d");
    range_move *mv;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ranges_gained(r3, r4, 3, ids[i], &mv), 0);
        assert_null(mv);
    }
    assert_true(ranges_gained(r3, r4, 3, "d", &mv) > 0);
    for (size_t i = 0; mv && i < 1; i++)
        assert_int_equal(mv[i].nsrc, 1); /* exactly one owner drops out */
    free(mv);
    /* d leaves: the others gain what d held */
    for (int i = 0; i < 3; i++)
        check_gained(r4, r3, 3, ids[i]);
    /* growing from 2 to 3 with N=3: nothing drops out, both old owners are sources */
    check_gained(r2, r3, 3, "c");
    assert_int_equal(ranges_gained(r2, r3, 3, "c", &mv), 1);
    assert_int_equal(mv[0].nsrc, 2);
    assert_true(mv[0].lo == mv[0].hi);
    free(mv);
    /* N=2 on 4 nodes, a join */
    check_gained(r3, r4, 2, "d");
    ring_free(r2);
    ring_free(r3);
    ring_free(r4);
}

/* A leaving node hands each of its tokens to the new owners, or to every
 * remaining owner when the ring shrinks below N. */
static void check_handoff(const ring *from, const ring *to, size_t nrep, const char *self)
{
    range_handoff *h;
    long n = ranges_handoff(from, to, nrep, self, &h);
    assert_true(n > 0);
    for (int k = 0; k < 20000; k++) {
        uint64_t t = next();
        int hits = 0;
        for (long i = 0; i < n; i++) {
            if (!in_range(h[i].lo, h[i].hi, t))
                continue;
            hits++;
            size_t idx[16], m = ring_preference(to, t, nrep, idx);
            size_t fresh = 0;
            for (size_t j = 0; j < m; j++)
                fresh += !owns(from, t, nrep, ring_member_id(to, idx[j]));
            assert_int_equal(h[i].ndst, fresh ? fresh : m);
            for (size_t j = 0; j < h[i].ndst; j++) {
                assert_true(owns(to, t, nrep, h[i].dst[j]));
                assert_true(fresh == 0 || !owns(from, t, nrep, h[i].dst[j]));
            }
        }
        assert_int_equal(hits, owns(from, t, nrep, self) ? 1 : 0);
    }
    free(h);
}

static void test_handoff(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c", "d"};
    const char *abc[] = {"a", "b", "c"}, *abd[] = {"a", "b", "d"};
    ring *r4 = make(ids, 4, 64), *r3 = make(abd, 3, 64), *r3c = make(abc, 3, 64);
    const char *ab[] = {"a", "b"};
    ring *r2 = make(ab, 2, 64);
    check_handoff(r4, r3, 3, "c");  /* c leaves 4 -> 3 */
    check_handoff(r3c, r2, 3, "c"); /* 3 -> 2 with N=3: to both */
    ring_free(r4);
    ring_free(r3);
    ring_free(r3c);
    ring_free(r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_gained),
        cmocka_unit_test(test_handoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
