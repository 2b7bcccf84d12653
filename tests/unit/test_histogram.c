/* Unit tests for bench/histogram.c: exact small values, percentiles within
 * 1% of the sorted truth over wide ranges, bucket bounds, extremes, merge and
 * reset, and p50 <= p99 <= max.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"

static const double pcts[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
#define NPCTS (sizeof pcts / sizeof pcts[0])

static hist *new_hist(void)
{
    hist *h = malloc(sizeof *h);
    assert_non_null(h);
    hist_reset(h);
    return h;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value at percentile p of sorted v[0..n): the ceil(p% of n)-th. */
static uint64_t exact(const uint64_t *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n - 1e-9);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

static void check_against(const uint64_t *sorted, size_t n, const hist *h)
{
    for (size_t i = 0; i < NPCTS; i++) {
        uint64_t want = exact(sorted, n, pcts[i]);
        uint64_t got = hist_percentile(h, pcts[i]);
        /* Never below the truth (highest equivalent value), and at most
         * 1/128 above it. */
        if (got < want || (double)(got - want) > (double)want / 128.0 + 1e-9)
            fail_msg("p%g: got %llu, want %llu", pcts[i], (unsigned long long)got,
                     (unsigned long long)want);
    }
}

static void test_empty(void **state)
{
    (void)state;
    hist *h = new_hist();
    assert_int_equal(hist_count(h), 0);
    assert_int_equal(hist_min(h), 0);
    assert_int_equal(hist_max(h), 0);
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_true(hist_mean(h) == 0);
    free(h);
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    hist *h = new_hist();
    uint64_t v[128];
    for (uint64_t i = 0; i < 128; i++) {
        hist_record(h, i);
        v[i] = i;
        assert_int_equal(hist_lowest_equivalent(i), i);
        assert_int_equal(hist_highest_equivalent(i), i);
    }
    for (size_t i = 0; i < NPCTS; i++)
        assert_int_equal(hist_percentile(h, pcts[i]), exact(v, 128, pcts[i]));
    assert_int_equal(hist_min(h), 0);
    assert_int_equal(hist_max(h), 127);
    assert_true(fabs(hist_mean(h) - 63.5) < 1e-9);
    free(h);
}

static void test_uniform_range(void **state)
{
    (void)state;
    const size_t n = 1000000;
    hist *h = new_hist();
    uint64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = i + 1;
        hist_record(h, i + 1);
    }
    check_against(v, n, h);
    assert_int_equal(hist_count(h), n);
    assert_int_equal(hist_min(h), 1);
    assert_int_equal(hist_max(h), n);
    free(v);
    free(h);
}

/* Latency-like data: log-uniform from 1 ns to ~17 s, plus a few outliers. */
static void test_wide_random_range(void **state)
{
    (void)state;
    const size_t n = 200000;
    hist *h = new_hist();
    uint64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        unsigned bits = (unsigned)(xorshift(&s) % 34) + 1;
        v[i] = xorshift(&s) >> (64 - bits);
        hist_record(h, v[i]);
    }
    qsort(v, n, sizeof *v, cmp_u64);
    check_against(v, n, h);
    assert_int_equal(hist_max(h), v[n - 1]);
    assert_int_equal(hist_min(h), v[0]);
    free(v);
    free(h);
}

static void test_bucket_bounds(void **state)
{
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = xorshift(&s) >> (xorshift(&s) % 64);
        uint64_t lo = hist_lowest_equivalent(v), hi = hist_highest_equivalent(v);
        assert_true(lo <= v && v <= hi);
        if (v >= 128)
            assert_true((double)(hi - lo) <= (double)lo / 128.0);
        /* Buckets tile the line: the next value starts the next bucket. */
        if (hi < UINT64_MAX)
            assert_int_equal(hist_lowest_equivalent(hi + 1), hi + 1);
    }
    assert_int_equal(hist_highest_equivalent(UINT64_MAX), UINT64_MAX);
}

static void test_extremes(void **state)
{
    (void)state;
    hist *h = new_hist();
    hist_record(h, 0);
    hist_record(h, UINT64_MAX);
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_int_equal(hist_percentile(h, 100), UINT64_MAX);
    assert_int_equal(hist_max(h), UINT64_MAX);
    /* One value: every percentile is that value exactly (capped at max). */
    hist_reset(h);
    hist_record(h, 123456789);
    for (size_t i = 0; i < NPCTS; i++)
        assert_int_equal(hist_percentile(h, pcts[i]), 123456789);
    free(h);
}

static void test_merge_and_reset(void **state)
{
    (void)state;
    hist *a = new_hist(), *b = new_hist(), *both = new_hist();
    for (uint64_t i = 1; i <= 5000; i++) {
        hist_record(i % 2 ? a : b, i * 1000);
        hist_record(both, i * 1000);
    }
    hist_record_n(b, 7, 3);
    hist_record_n(both, 7, 3);
    hist_merge(a, b);
    assert_memory_equal(a->counts, both->counts, sizeof a->counts);
    assert_int_equal(hist_count(a), hist_count(both));
    assert_int_equal(hist_min(a), 7);
    assert_int_equal(hist_max(a), 5000000);
    for (size_t i = 0; i < NPCTS; i++)
        assert_int_equal(hist_percentile(a, pcts[i]), hist_percentile(both, pcts[i]));
    hist_reset(a);
    assert_int_equal(hist_count(a), 0);
    assert_int_equal(hist_percentile(a, 99), 0);
    free(a);
    free(b);
    free(both);
}

static void test_percentiles_are_ordered(void **state)
{
    (void)state;
    hist *h = new_hist();
    uint64_t s = 42;
    for (int i = 0; i < 50000; i++)
        hist_record(h, 1000 + xorshift(&s) % 5000000);
    uint64_t prev = 0;
    for (double p = 0; p <= 100; p += 0.5) {
        uint64_t v = hist_percentile(h, p);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(hist_percentile(h, 50) <= hist_percentile(h, 99));
    assert_true(hist_percentile(h, 99) <= hist_max(h));
    assert_true(hist_percentile(h, 0) >= hist_min(h));
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),           cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_uniform_range),   cmocka_unit_test(test_wide_random_range),
        cmocka_unit_test(test_bucket_bounds),   cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_merge_and_reset), cmocka_unit_test(test_percentiles_are_ordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
