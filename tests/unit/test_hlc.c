/* Unit tests for node/hlc.c: timestamps only ever grow, whatever the wall
 * clock does, and stay close to the wall clock when it behaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hlc.h"

static uint64_t ts(uint64_t ms, uint64_t logical) { return ms << HLC_LOGICAL_BITS | logical; }

static void test_follows_wall_clock(void **state)
{
    hlc c;
    (void)state;
    hlc_init(&c, 0);
    assert_int_equal(hlc_now(&c, 1000), ts(1000, 0));
    assert_int_equal(hlc_now(&c, 1001), ts(1001, 0));
    assert_int_equal(hlc_now(&c, 5000), ts(5000, 0)); /* jump forward */
}

static void test_clock_stands_still(void **state)
{
    hlc c;
    uint64_t prev;
    (void)state;
    hlc_init(&c, 0);
    prev = hlc_now(&c, 1000);
    for (int i = 1; i < 100; i++) {
        uint64_t t = hlc_now(&c, 1000);
        assert_true(t > prev);
        assert_int_equal(hlc_physical_ms(t), 1000);
        assert_int_equal(t, ts(1000, (uint64_t)i));
        prev = t;
    }
}

/* More stamps in one millisecond than the logical part holds: the counter
 * carries into the physical part, and order still holds. */
static void test_logical_overflow(void **state)
{
    hlc c;
    uint64_t prev, t = 0;
    (void)state;
    hlc_init(&c, 0);
    prev = hlc_now(&c, 7);
    for (int i = 0; i < (1 << HLC_LOGICAL_BITS) + 10; i++) {
        t = hlc_now(&c, 7);
        assert_true(t > prev);
        prev = t;
    }
    assert_int_equal(hlc_physical_ms(t), 8);
    assert_int_equal(hlc_now(&c, 9), ts(9, 0)); /* the wall clock catches up */
}

static void test_clock_goes_backwards(void **state)
{
    hlc c;
    uint64_t a, b, d;
    (void)state;
    hlc_init(&c, 0);
    a = hlc_now(&c, 10000);
    b = hlc_now(&c, 4000); /* NTP stepped the clock back */
    d = hlc_now(&c, 9999);
    assert_true(b > a);
    assert_true(d > b);
    assert_int_equal(hlc_physical_ms(d), 10000);
    assert_int_equal(hlc_now(&c, 10001), ts(10001, 0));
}

/* After a restart the clock starts above the largest persisted stamp, even
 * if the wall clock is now behind it. */
static void test_floor_after_restart(void **state)
{
    hlc c;
    uint64_t floor = ts(50000, 3);
    (void)state;
    hlc_init(&c, floor);
    assert_true(hlc_now(&c, 100) > floor);
    hlc_init(&c, floor);
    assert_true(hlc_now(&c, 50000) > floor); /* same ms as the floor */
    hlc_init(&c, floor);
    assert_int_equal(hlc_now(&c, 60000), ts(60000, 0));
}

static void test_observe(void **state)
{
    hlc c;
    uint64_t remote = ts(90000, 17), t;
    (void)state;
    hlc_init(&c, 0);
    hlc_now(&c, 1000);
    hlc_observe(&c, remote); /* a node whose clock runs ahead */
    t = hlc_now(&c, 1001);
    assert_true(t > remote);
    assert_int_equal(hlc_physical_ms(t), 90000);
    hlc_observe(&c, ts(5, 0)); /* one behind changes nothing */
    assert_true(hlc_now(&c, 1002) > t);
}

static void test_physical_part(void **state)
{
    (void)state;
    assert_int_equal(hlc_physical_ms(0), 0);
    assert_int_equal(hlc_physical_ms(ts(123456789, 0)), 123456789);
    assert_int_equal(hlc_physical_ms(ts(123456789, 0xffff)), 123456789);
    assert_int_equal(hlc_physical_ms(ts(1700000000000ULL, 42)), 1700000000000ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follows_wall_clock),
        cmocka_unit_test(test_clock_stands_still),
        cmocka_unit_test(test_logical_overflow),
        cmocka_unit_test(test_clock_goes_backwards),
        cmocka_unit_test(test_floor_after_restart),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_physical_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
