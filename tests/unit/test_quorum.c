/* Unit tests for node/quorum.c: the coordinator's bookkeeping driven by fake
 * replies — acks, failures, timeouts, late and duplicate replies, newest
 * version selection and read-repair targets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "quorum.h"

static const char *const three[] = {"a", "b", "c"};
static quorum_slot slots[QUORUM_MAX_REPLICAS]; /* the slots every test's quorum uses */

static quorum_reply ok(void) { return (quorum_reply){.ok = true}; }

static quorum_reply found(uint64_t hlc, const char *origin)
{
    quorum_reply r = {.ok = true, .found = true, .version.hlc = hlc};
    snprintf(r.version.origin, sizeof r.version.origin, "%s", origin);
    return r;
}

static void levels(void **state)
{
    (void)state;
    assert_int_equal(quorum_needed(QUORUM_ONE, 3), 1);
    assert_int_equal(quorum_needed(QUORUM_QUORUM, 3), 2);
    assert_int_equal(quorum_needed(QUORUM_QUORUM, 4), 3);
    assert_int_equal(quorum_needed(QUORUM_QUORUM, 1), 1);
    assert_int_equal(quorum_needed(QUORUM_ALL, 5), 5);
    assert_int_equal(quorum_needed(QUORUM_ALL, 0), 0);
    quorum_level l;
    assert_int_equal(quorum_level_parse("quorum", &l), 0);
    assert_int_equal(l, QUORUM_QUORUM);
    assert_int_equal(quorum_level_parse("most", &l), -1);
    assert_string_equal(quorum_level_name(QUORUM_ALL), "all");
}

static void bad_init(void **state)
{
    (void)state;
    quorum q;
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 0, 100), -1);
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 4, 100), -1);
    assert_int_equal(quorum_init(&q, slots, false, three, 0, 1, 100), -1);
}

static void write_succeeds_at_w(void **state)
{
    (void)state;
    quorum q;
    quorum_reply r = ok();
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 2, 100), 0);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING); /* duplicate */
    assert_int_equal(q.oks, 1);
    assert_int_equal(quorum_on_reply(&q, "zz", &r), QUORUM_PENDING); /* stranger */
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_SUCCESS);
    /* A late failure cannot undo the success, and the deadline is moot. */
    assert_int_equal(quorum_on_failure(&q, "b"), QUORUM_SUCCESS);
    assert_int_equal(quorum_check_deadline(&q, 1000), QUORUM_SUCCESS);
}

static void write_fails_early_when_unreachable(void **state)
{
    (void)state;
    quorum q;
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 2, 100), 0);
    assert_int_equal(quorum_on_failure(&q, "a"), QUORUM_PENDING);
    /* Two of three down: W=2 is out of reach before any deadline. */
    assert_int_equal(quorum_on_failure(&q, "b"), QUORUM_FAILED);
    quorum_reply r = ok();
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_FAILED); /* late ack */
    assert_int_equal(q.oks, 1); /* but it is recorded */
}

/* While d joins and c drops out of the key's owners: a quorum of {a,b,c}
 * and one of {a,b,d}. */
static const char *const four[] = {"a", "b", "c", "d"};
#define NOW_ABC 0x7u
#define FUTURE_ABD 0xbu

static void joint_quorum_needs_both_rings(void **state)
{
    (void)state;
    quorum q;
    quorum_reply r = ok();
    /* a and b are owners in both rings: two acks are enough */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 2), 0);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "b", &r), QUORUM_SUCCESS);
    assert_int_equal(q.oks, 2);

    /* a and c: a quorum of the current ring only; d completes the future one */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 2), 0);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "d", &r), QUORUM_SUCCESS);

    /* a and d: the future ring's quorum only; c or b completes it */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 2), 0);
    assert_int_equal(quorum_on_reply(&q, "d", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_SUCCESS);

    /* b and d fail: the future ring can no longer reach 2, whatever a and
     * c answer */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 2), 0);
    assert_int_equal(quorum_on_failure(&q, "b"), QUORUM_PENDING);
    assert_int_equal(quorum_on_failure(&q, "d"), QUORUM_FAILED);

    /* c and a fail: the current ring cannot */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 2), 0);
    assert_int_equal(quorum_on_failure(&q, "c"), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "d", &r), QUORUM_PENDING);
    assert_int_equal(quorum_on_failure(&q, "a"), QUORUM_FAILED);

    /* a group smaller than what it needs, or empty, is refused */
    assert_int_equal(quorum_init(&q, slots, false, four, 4, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, 0x8u, 2), -1);
    assert_int_equal(quorum_set_joint(&q, 0, 1, FUTURE_ABD, 2), -1);
    /* bits past the replicas do not count */
    assert_int_equal(quorum_init(&q, slots, false, four, 3, 2, 100), 0);
    assert_int_equal(quorum_set_joint(&q, NOW_ABC, 2, FUTURE_ABD, 3), -1);
}

static void all_needs_everyone(void **state)
{
    (void)state;
    quorum q;
    quorum_reply r = ok();
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 3, 100), 0);
    quorum_on_reply(&q, "a", &r);
    quorum_on_reply(&q, "b", &r);
    assert_int_equal(q.outcome, QUORUM_PENDING);
    assert_int_equal(quorum_on_failure(&q, "c"), QUORUM_FAILED);
}

static void timeout_reports_acks(void **state)
{
    (void)state;
    quorum q;
    quorum_reply r = ok();
    assert_int_equal(quorum_init(&q, slots, false, three, 3, 2, 100), 0);
    quorum_on_reply(&q, "b", &r);
    assert_int_equal(quorum_check_deadline(&q, 99), QUORUM_PENDING);
    assert_int_equal(quorum_check_deadline(&q, 100), QUORUM_TIMEOUT);
    assert_int_equal(q.oks, 1); /* "timeout after 1 of 2 acknowledgements" */
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_TIMEOUT);
}

static void read_picks_newest_and_names_stale(void **state)
{
    (void)state;
    quorum q;
    assert_int_equal(quorum_init(&q, slots, true, three, 3, 2, 100), 0);
    quorum_reply old = found(10, "a"), newer = found(20, "b");
    assert_int_equal(quorum_on_reply(&q, "a", &old), QUORUM_PENDING);
    assert_int_equal(quorum_on_reply(&q, "b", &newer), QUORUM_SUCCESS);
    assert_int_equal(quorum_newest(&q)->version.hlc, 20);
    /* A late reply from c with nothing still counts for repair. */
    quorum_reply none = ok();
    quorum_on_reply(&q, "c", &none);
    size_t stale[3];
    assert_int_equal(quorum_stale(&q, stale), 2);
    assert_int_equal(stale[0], 0);
    assert_int_equal(stale[1], 2);
}

static void read_ties_broken_by_origin(void **state)
{
    (void)state;
    quorum q;
    assert_int_equal(quorum_init(&q, slots, true, three, 3, 3, 100), 0);
    quorum_reply x = found(50, "node1"), y = found(50, "node2"), z = found(50, "node2");
    quorum_on_reply(&q, "a", &x);
    quorum_on_reply(&q, "b", &y);
    assert_int_equal(quorum_on_reply(&q, "c", &z), QUORUM_SUCCESS);
    assert_string_equal(quorum_newest(&q)->version.origin, "node2");
    size_t stale[3];
    assert_int_equal(quorum_stale(&q, stale), 1); /* c already equals the newest */
    assert_int_equal(stale[0], 0);
}

static void read_of_absent_key(void **state)
{
    (void)state;
    quorum q;
    quorum_reply none = ok();
    assert_int_equal(quorum_init(&q, slots, true, three, 3, 2, 100), 0);
    quorum_on_reply(&q, "a", &none);
    assert_int_equal(quorum_on_reply(&q, "c", &none), QUORUM_SUCCESS);
    assert_null(quorum_newest(&q));
    size_t stale[3];
    assert_int_equal(quorum_stale(&q, stale), 0);
}

/* A read that asks two of three holds the third in reserve: it is asked
 * only when an asked replica fails, and never answers before that. */
static void reserve_asked_after_a_failure(void **state)
{
    (void)state;
    quorum q;
    quorum_reply r = found(10, "a");
    assert_int_equal(quorum_init(&q, slots, true, three, 3, 2, 100), 0);
    assert_int_equal(quorum_hold(&q, 0), -1);
    assert_int_equal(quorum_hold(&q, 4), -1);
    assert_int_equal(quorum_hold(&q, 2), 0);
    assert_int_equal(quorum_reserves(&q), 1);
    assert_int_equal(quorum_short(&q), 0); /* two out, two needed */
    /* c was not asked: its reply is ignored, as a stranger's */
    assert_int_equal(quorum_on_reply(&q, "c", &r), QUORUM_PENDING);
    assert_int_equal(q.oks, 0);
    assert_int_equal(quorum_on_reply(&q, "a", &r), QUORUM_PENDING);
    assert_int_equal(quorum_short(&q), 0);
    /* b fails: not FAILED while c is in reserve, and c is due */
    assert_int_equal(quorum_on_failure(&q, "b"), QUORUM_PENDING);
    assert_int_equal(quorum_short(&q), 1);
    assert_int_equal(quorum_ask_next(&q), 2);
    assert_int_equal(quorum_ask_next(&q), -1);
    assert_int_equal(quorum_reserves(&q), 0);
    assert_int_equal(quorum_short(&q), 0);
    quorum_reply none = ok();
    assert_int_equal(quorum_on_reply(&q, "c", &none), QUORUM_SUCCESS);
    size_t stale[3];
    assert_int_equal(quorum_stale(&q, stale), 1); /* c, asked late, is repaired */
    assert_int_equal(stale[0], 2);
}

/* Failures beyond the reserves decide FAILED; a speculative ask (before any
 * failure) leaves nothing short. */
static void reserves_run_out(void **state)
{
    (void)state;
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    quorum q;
    assert_int_equal(quorum_init(&q, slots, true, five, 5, 3, 100), 0);
    assert_int_equal(quorum_hold(&q, 3), 0);
    assert_int_equal(quorum_ask_next(&q), 3); /* speculation: four out */
    assert_int_equal(quorum_short(&q), 0);
    assert_int_equal(quorum_on_failure(&q, "a"), QUORUM_PENDING);
    assert_int_equal(quorum_short(&q), 0); /* b, c, d can still make three */
    assert_int_equal(quorum_on_failure(&q, "b"), QUORUM_PENDING);
    assert_int_equal(quorum_short(&q), 1);
    assert_int_equal(quorum_ask_next(&q), 4);
    assert_int_equal(quorum_on_failure(&q, "e"), QUORUM_FAILED); /* 2 of 5 left */
    assert_int_equal(quorum_short(&q), 0);
    /* two failures at once want two reserves */
    assert_int_equal(quorum_init(&q, slots, true, five, 5, 3, 100), 0);
    assert_int_equal(quorum_hold(&q, 3), 0);
    quorum_on_failure(&q, "a");
    quorum_on_failure(&q, "c");
    assert_int_equal(quorum_short(&q), 2);
    /* and the deadline ends the need for any */
    assert_int_equal(quorum_check_deadline(&q, 100), QUORUM_TIMEOUT);
    assert_int_equal(quorum_short(&q), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(levels),
        cmocka_unit_test(bad_init),
        cmocka_unit_test(write_succeeds_at_w),
        cmocka_unit_test(write_fails_early_when_unreachable),
        cmocka_unit_test(joint_quorum_needs_both_rings),
        cmocka_unit_test(all_needs_everyone),
        cmocka_unit_test(timeout_reports_acks),
        cmocka_unit_test(read_picks_newest_and_names_stale),
        cmocka_unit_test(read_ties_broken_by_origin),
        cmocka_unit_test(read_of_absent_key),
        cmocka_unit_test(reserve_asked_after_a_failure),
        cmocka_unit_test(reserves_run_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
