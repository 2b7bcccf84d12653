/* Unit tests for bench/keygen.c: the PRNG's ranges and determinism, and the
 * YCSB scrambled zipfian's range, determinism and skew (a few keys take a
 * large share of the requests, spread over the key space rather than at its
 * start).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "keygen.h"

static int cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x > y ? -1 : x < y;
}

static void test_rng(void **state)
{
    (void)state;
    keygen_rng a, b;
    keygen_seed(&a, 7);
    keygen_seed(&b, 7);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(keygen_next(&a), keygen_next(&b));
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double d = keygen_double(&a);
        assert_true(d >= 0 && d < 1);
        sum += d;
        assert_true(keygen_below(&a, 10) < 10);
    }
    assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
}

static void test_fnvhash64(void **state)
{
    (void)state;
    /* FNV-1a 64 of eight zero bytes is 0xa8c7f832281a39c5, negative as a
     * long; YCSB then takes Math.abs. */
    assert_int_equal(keygen_fnvhash64(0), -(int64_t)0xa8c7f832281a39c5ull);
    for (int64_t v = 0; v < 10000; v++)
        assert_true(keygen_fnvhash64(v) >= 0);
}

static void test_zipfian_skew(void **state)
{
    (void)state;
    const uint64_t keys = 1000;
    const int n = 200000;
    keygen_zipf z;
    keygen_zipf_init(&z, keys);
    keygen_rng r, r2;
    keygen_seed(&r, 1);
    keygen_seed(&r2, 1);
    uint32_t *hits = calloc(keys, sizeof *hits);
    assert_non_null(hits);
    for (int i = 0; i < n; i++) {
        uint64_t k = keygen_zipf_next(&z, &r);
        assert_true(k < keys);
        assert_int_equal(k, keygen_zipf_next(&z, &r2));
        hits[k]++;
    }
    /* Scrambling spreads the hottest keys: the first 10 indices are not
     * the 10 hottest. */
    uint32_t first10 = 0;
    for (int i = 0; i < 10; i++)
        first10 += hits[i];
    qsort(hits, keys, sizeof *hits, cmp_desc);
    uint32_t top10 = 0;
    for (int i = 0; i < 10; i++)
        top10 += hits[i];
    /* Zipf 0.99 over 10^10 items folded into 1000 keys: the hottest item
     * alone is 1/zeta(n) ~ 3.8% of requests; uniform would give 1% to the
     * top 10 keys together. */
    assert_true(hits[0] > (uint32_t)n / 40);
    assert_true(top10 > (uint32_t)n / 10);
    assert_true(first10 < top10);
    free(hits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_fnvhash64),
        cmocka_unit_test(test_zipfian_skew),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
