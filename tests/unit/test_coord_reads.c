/* Unit tests for node/coord.c's reads against the fake replica layer
 * (coord_fake.h): newest version and read repair, tombstones and expiry,
 * the local short path, reads that hold replicas in reserve (asked after a
 * failure or after the speculative wait, which follows slow replicas).
 */
#include "coord_fake.h"

static void read_newest_and_repair(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 3); /* every replica is asked */
    reply(&e->f, 0, true, 10, "old", false, 0);
    reply(&e->f, 1, true, 20, "new", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "new");
    assert_int_equal(e->f.nreq, 3); /* repair waits for every answer */
    reply(&e->f, 2, true, -1, NULL, false, 0); /* c has nothing */
    assert_int_equal(e->f.nreq, 5);
    /* a (local, older) and c (missing) get the newest record */
    bool to_a = false, to_c = false;
    for (size_t i = 3; i < 5; i++) {
        fake_req *q = &e->f.req[i];
        assert_true(q->is_write);
        assert_int_equal(q->rec.version.hlc, 20);
        assert_string_equal(q->rec.version.origin, "b");
        assert_string_equal(q->value, "new");
        to_a |= q->local;
        to_c |= strcmp(q->to, "c") == 0;
        reply(&e->f, i, true, -1, NULL, false, 0);
    }
    assert_true(to_a && to_c);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_repairs, 2);
    assert_int_equal(st.reads[COORD_LEVEL_DEFAULT], 1);
    env_free(e);
}

static void read_tombstone_and_expired_are_not_found(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    e->f.t[0].local = false; /* a coordinator that is no replica asks all three */
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    reply(&e->f, 1, true, 30, NULL, true, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    reply(&e->f, 0, true, 10, "x", false, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0); /* c failed: not repaired */
    assert_int_equal(e->f.nreq, 4);                /* the tombstone spreads to a */
    assert_true(e->f.req[3].rec.tombstone);
    reply(&e->f, 3, true, -1, NULL, false, 0);

    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r2);
    reply(&e->f, 4, true, 40, "gone", false, e->f.now - 1);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    reply(&e->f, 5, true, 40, "gone", false, e->f.now - 1);
    reply(&e->f, 6, true, 40, "gone", false, e->f.now - 1);
    env_free(e);
}

/* At ONE a coordinator that is one of the key's replicas reads its own copy
 * and asks nobody else. */
static void read_one_asks_only_the_local_replica(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, 1);
    assert_true(e->f.req[0].local);
    reply(&e->f, 0, true, 10, "x", false, 0);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(e->f.nreq, 1); /* nothing to repair */

    result r2 = {0}; /* at quorum, all three are still asked */
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 4);
    for (size_t i = 1; i < 4; i++)
        reply(&e->f, i, true, 10, "x", false, 0);
    assert_int_equal(r2.st, WIRE_OK);
    env_free(e);
}

/* With read_retry, a quorum read of N=3 asks two replicas, its own first;
 * the third is not asked while both answer. */
static void quorum_read_asks_r_replicas(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    e->f.t[0] = (cluster_target){.id = "b"}; /* the local replica is second */
    e->f.t[1] = (cluster_target){.id = "a", .local = true};
    result r = {0};
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r), 0);
    assert_int_equal(e->f.nreq, 2);
    assert_true(e->f.req[0].local);
    assert_string_equal(e->f.req[1].to, "b");
    event_base_loop(e->base, EVLOOP_NONBLOCK); /* no time passed: nothing more */
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 0, true, 10, "x", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "x");
    assert_int_equal(r.nreplicas, 2);
    /* b, which had nothing, is repaired; c was never asked, so it is not */
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[2].is_write);
    assert_string_equal(e->f.req[2].to, "b");
    reply(&e->f, 2, true, -1, NULL, false, 0);

    result r2 = {0}; /* the default R asks two as well */
    assert_int_equal(coord_get(e->co, K, 3, -1, on_done, &r2), 0);
    assert_int_equal(e->f.nreq, 5);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    reply(&e->f, 4, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 0);
    assert_int_equal(st.read_speculations, 0);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* A quorum read sends the version of this node's copy (asked first) with
 * the peer read. A replica that holds the same version or an older one
 * answers with the version alone: the value comes from the local copy, and
 * an older replica is repaired. A version-only answer newer than what was
 * sent has no value anywhere: it counts as a failure, and the reserve is
 * asked. Without a local copy, nothing is sent along. */
static void quorum_read_sends_its_version(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    e->f.local_kind = LOCAL_FOUND; /* hlc 5, origin a, value "local" */
    result r = {0};
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r), 0);
    assert_int_equal(e->f.nreq, 1); /* the local read answers at once */
    assert_string_equal(e->f.req[0].to, "b");
    assert_int_equal(e->f.req[0].have.hlc, 5);
    assert_string_equal(e->f.req[0].have.origin, "a");
    reply_version_only(&e->f, 0, 5, "a");
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "local");
    assert_int_equal(r.nreplicas, 2);
    assert_int_equal(e->f.nreq, 1); /* the same version: nothing to repair */

    result r2 = {0};
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2), 0);
    reply_version_only(&e->f, 1, 4, "z"); /* older */
    assert_int_equal(r2.st, WIRE_OK);
    assert_string_equal(r2.value, "local");
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[2].is_write);
    assert_string_equal(e->f.req[2].to, "b");
    assert_int_equal(e->f.req[2].rec.version.hlc, 5);
    assert_string_equal(e->f.req[2].value, "local");
    reply(&e->f, 2, true, -1, NULL, false, 0);

    result r3 = {0};
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r3), 0);
    reply_version_only(&e->f, 3, 6, "b"); /* newer, without its value */
    assert_int_equal(r3.calls, 0);
    assert_int_equal(e->f.nreq, 5); /* c, from the reserve */
    assert_string_equal(e->f.req[4].to, "c");
    reply(&e->f, 4, true, 6, "newer", false, 0);
    assert_int_equal(r3.st, WIRE_OK);
    assert_string_equal(r3.value, "newer");
    assert_int_equal(r3.nreplicas, 2);
    for (size_t i = 5; i < e->f.nreq; i++) /* the repair of a */
        reply(&e->f, i, true, -1, NULL, false, 0);

    e->f.local_kind = LOCAL_ABSENT;
    result r4 = {0};
    size_t base = e->f.nreq;
    assert_int_equal(coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r4), 0);
    assert_int_equal(e->f.req[base].have.hlc, 0);
    reply(&e->f, base, true, 7, "remote", false, 0);
    assert_string_equal(r4.value, "remote");
    for (size_t i = base + 1; i < e->f.nreq; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Owners are asked before a stand-in, which holds the key only as a hint. */
static void quorum_read_asks_stand_ins_last(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    e->f.t[1] = (cluster_target){.id = "d", .hint_for = "b"};
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    assert_true(e->f.req[0].local);
    assert_string_equal(e->f.req[1].to, "c");
    reply(&e->f, 0, true, 10, "x", false, 0);
    reply(&e->f, 1, false, -1, NULL, false, 0); /* c fails: the stand-in is asked */
    assert_int_equal(e->f.nreq, 3);
    assert_string_equal(e->f.req[2].to, "d");
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(e->f.nreq, 4); /* the stand-in gets the record, as a hint for b */
    assert_string_equal(e->f.req[3].to, "d");
    assert_string_equal(e->f.req[3].hint, "b");
    reply(&e->f, 3, true, -1, NULL, false, 0);
    env_free(e);
}

/* An error reply from an asked replica makes the read ask the third at
 * once; the read still succeeds, and repairs what it saw stale. */
static void quorum_read_error_asks_the_reserve(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 0, true, 10, "old", false, 0);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(e->f.nreq, 3);
    assert_string_equal(e->f.req[2].to, "c");
    assert_false(e->f.req[2].is_write);
    reply(&e->f, 2, true, 20, "new", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "new");
    /* a (older) is repaired; b failed and is left to hints and anti-entropy */
    assert_int_equal(e->f.nreq, 4);
    assert_true(e->f.req[3].is_write && e->f.req[3].local);
    assert_string_equal(e->f.req[3].value, "new");
    reply(&e->f, 3, true, -1, NULL, false, 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 1);
    assert_int_equal(st.read_speculations, 0);
    assert_int_equal(st.read_repairs, 1);
    assert_int_equal(st.in_flight, 0);

    /* A send that cannot be queued counts as a failure too. */
    e->f.refuse_to = "b";
    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 6);
    assert_string_equal(e->f.req[5].to, "c");
    reply(&e->f, 4, true, -1, NULL, false, 0);
    reply(&e->f, 5, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);

    /* Two failures: the reserve cannot make up for both. */
    e->f.refuse_to = NULL;
    result r3 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r3);
    assert_int_equal(e->f.nreq, 8);
    reply(&e->f, 6, false, -1, NULL, false, 0);
    assert_int_equal(e->f.nreq, 9);
    reply(&e->f, 8, false, -1, NULL, false, 0);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r3.msg, "0 of 3 replicas answered, 2 needed"));
    reply(&e->f, 7, true, 20, "new", false, 0); /* late */
    assert_int_equal(e->f.nreq, 9);
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 3);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* A replica that never answers: after read_retry the third is asked too,
 * on the shared timer, reads in the order they started. */
static void quorum_read_speculates_after_read_retry(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0}, r2 = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    e->f.now += 10;
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r2);
    assert_int_equal(e->f.nreq, 4);
    reply(&e->f, 0, true, -1, NULL, false, 0); /* b (req 1) stays silent */
    reply(&e->f, 2, true, -1, NULL, false, 0); /* so does the second read's b */
    e->f.now += 10; /* the first read is due, the second not yet */
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 5);
    assert_string_equal(e->f.req[4].to, "c");
    reply(&e->f, 4, true, -1, NULL, false, 0); /* the first read's */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r2.calls, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    e->f.now += 10;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 6);
    assert_string_equal(e->f.req[5].to, "c");
    reply(&e->f, 5, true, -1, NULL, false, 0); /* the second read's */
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    /* late answers from the slow replica end both reads; no more asks */
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    e->f.now += 100;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, 6);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_speculations, 2);
    assert_int_equal(st.read_retries, 0);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Where replicas answer slowly, the wait before a speculative ask follows
 * their 95th percentile, not the shorter read_retry: a loaded cluster is
 * not sent one more request for every read. */
static void speculation_waits_for_slow_replicas(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 2);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retry_ms, 2);
    for (int k = 0; k < 512; k++) {
        result r = {0};
        size_t base = e->f.nreq;
        coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
        assert_int_equal(e->f.nreq, base + 2);
        reply(&e->f, base, true, -1, NULL, false, 0); /* a, this node */
        e->f.now += 9;
        reply(&e->f, base + 1, true, -1, NULL, false, 0); /* b, 9 ms later */
        assert_int_equal(r.calls, 1);
    }
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retry_ms, 10);
    assert_int_equal(st.read_speculations, 0);

    /* b silent: c is asked after 10 ms, not after 2 */
    result r = {0};
    size_t base = e->f.nreq;
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    reply(&e->f, base, true, -1, NULL, false, 0);
    e->f.now += 5;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, base + 2);
    e->f.now += 6;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, base + 3);
    assert_string_equal(e->f.req[base + 2].to, "c");
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_speculations, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Speculation and the deadline share the timer: a read nobody answers
 * asks the third after read_retry, and times out at request_timeout. */
static void quorum_read_speculates_then_times_out(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 30, 20);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    e->f.now += 20;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(e->f.nreq, 3);
    assert_int_equal(r.calls, 0);
    e->f.now += 10;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_TIMEOUT);
    assert_string_equal(r.msg, "0 of 3 answered, 2 needed, after 30 ms");
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, i != 1, -1, NULL, false, 0); /* late, one a failure */
    assert_int_equal(e->f.nreq, 3);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.timeouts, 1);
    env_free(e);
}

/* read_retry 0 asks all three; `all` asks all; `one` asks only its own copy. */
static void read_levels_and_read_retry_zero(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(e->f.nreq, 3);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    env_free(e);

    e = env_new_retry(3, 2, 2, 2000, 20);
    result r2 = {0};
    coord_get(e->co, K, 3, QUORUM_ALL, on_done, &r2);
    assert_int_equal(e->f.nreq, 3);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r2.st, WIRE_NOT_FOUND);
    result r3 = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r3);
    assert_int_equal(e->f.nreq, 4);
    assert_true(e->f.req[3].local);
    reply(&e->f, 3, true, 10, "x", false, 0);
    assert_int_equal(r3.st, WIRE_OK);
    e->f.now += 100;
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    assert_int_equal(e->f.nreq, 4);
    env_free(e);
}

/* A read at ONE on a node that holds no copy asks the first owner only;
 * its failure makes it ask the next at once. */
static void read_one_without_a_local_copy(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 1, 1, 2000, 20);
    e->f.t[0].local = false; /* the coordinator is none of a, b, c */
    result r = {0};
    coord_get(e->co, K, 3, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, 1);
    assert_string_equal(e->f.req[0].to, "a");
    reply(&e->f, 0, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(e->f.nreq, 2);
    assert_string_equal(e->f.req[1].to, "b");
    reply(&e->f, 1, true, 10, "x", false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "x");
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.read_retries, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Shutting down answers a read with a reserve; a late failure then asks
 * nobody. */
static void free_with_a_reserve_held(void **state)
{
    (void)state;
    env *e = env_new_retry(3, 2, 2, 2000, 20);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 2);
    coord_free(e->co);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_INTERNAL);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(e->f.nreq, 2);
    reply(&e->f, 0, true, 10, "x", false, 0);
    e->co = NULL;
    env_free(e);
}

static void read_not_found_anywhere(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_NOT_FOUND);
    assert_int_equal(e->f.nreq, 3); /* nothing to repair */
    env_free(e);
}

static void single_node_completes_synchronously(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    e->f.n = 1;
    e->f.sync_local_found = 1;
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r); /* r=2 is capped by N=1 */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_string_equal(r.value, "local");
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* A read of this node's own copy alone is answered from get_local without
 * an operation: the same status, message, value and counters as through an
 * operation (the coordinator without get_local), for every kind of local
 * answer. */
static void local_read_short_path_answers_alike(void **state)
{
    (void)state;
    for (int kind = 0; kind < LOCAL_KINDS; kind++) {
        env *slow = env_new(1, 1, 1, 2000), *fast = env_new(1, 1, 1, 2000);
        slow->f.n = fast->f.n = 1;
        slow->f.local_kind = fast->f.local_kind = kind;
        coord_free(fast->co);
        fast->ops.get_local = f_get_local;
        coord_config cfg = {.self_id = "a", .r = 1, .w = 1, .timeout_ms = 2000};
        char err[128];
        fast->co = coord_new(fast->base, &fast->clock, &fast->ops, &cfg, err, sizeof err);
        assert_non_null(fast->co);

        result a = {0}, b = {0};
        assert_int_equal(coord_get(slow->co, K, 3, -1, on_done, &a), 0);
        assert_int_equal(coord_get(fast->co, K, 3, -1, on_done, &b), 0);
        coord_result now;
        assert_int_equal(coord_get_now(fast->co, K, 3, -1, &now), 1);
        result c = {0};
        on_done(&c, &now);
        assert_int_equal(a.calls, 1);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.st, a.st);
        assert_string_equal(b.msg, a.msg);
        assert_string_equal(b.value, a.value);
        assert_int_equal(b.nreplicas, a.nreplicas);
        assert_int_equal(b.epoch, a.epoch);
        assert_int_equal(c.st, a.st);
        assert_string_equal(c.msg, a.msg);
        assert_string_equal(c.value, a.value);
        assert_int_equal(c.nreplicas, a.nreplicas);
        assert_int_equal(a.st, kind == LOCAL_FOUND   ? WIRE_OK
                               : kind == LOCAL_ERROR ? WIRE_ERR_UNAVAILABLE
                                                     : WIRE_NOT_FOUND);
        coord_stats sa, sb;
        coord_get_stats(slow->co, &sa);
        coord_get_stats(fast->co, &sb);
        assert_int_equal(sb.reads[COORD_LEVEL_DEFAULT], 2 * sa.reads[COORD_LEVEL_DEFAULT]);
        assert_int_equal(sb.unavailable, 2 * sa.unavailable);
        assert_int_equal(sb.in_flight, 0);
        assert_int_equal(fast->f.nreq, 0);
        env_free(slow);
        env_free(fast);
    }
}

/* A read that needs other replicas is not answered now, and not counted. */
static void get_now_declines_remote_reads(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    coord_free(e->co);
    e->ops.get_local = f_get_local;
    e->f.local_kind = LOCAL_FOUND;
    coord_config cfg = {.self_id = "a", .r = 2, .w = 2, .timeout_ms = 2000};
    char err[128];
    e->co = coord_new(e->base, &e->clock, &e->ops, &cfg, err, sizeof err);
    coord_result now;
    assert_int_equal(coord_get_now(e->co, K, 3, -1, &now), 0); /* R = 2 */
    e->f.t[0].local = false; /* this node is not a replica: even `one` goes out */
    assert_int_equal(coord_get_now(e->co, K, 3, QUORUM_ONE, &now), 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    for (int i = 0; i < COORD_LEVELS; i++)
        assert_int_equal(st.reads[i], 0);
    e->f.t[0].local = true;
    assert_int_equal(coord_get_now(e->co, K, 3, QUORUM_ONE, &now), 1);
    assert_int_equal(now.status, WIRE_OK);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_newest_and_repair),
        cmocka_unit_test(read_tombstone_and_expired_are_not_found),
        cmocka_unit_test(read_one_asks_only_the_local_replica),
        cmocka_unit_test(quorum_read_asks_r_replicas),
        cmocka_unit_test(quorum_read_sends_its_version),
        cmocka_unit_test(quorum_read_asks_stand_ins_last),
        cmocka_unit_test(quorum_read_error_asks_the_reserve),
        cmocka_unit_test(quorum_read_speculates_after_read_retry),
        cmocka_unit_test(speculation_waits_for_slow_replicas),
        cmocka_unit_test(quorum_read_speculates_then_times_out),
        cmocka_unit_test(read_levels_and_read_retry_zero),
        cmocka_unit_test(read_one_without_a_local_copy),
        cmocka_unit_test(free_with_a_reserve_held),
        cmocka_unit_test(read_not_found_anywhere),
        cmocka_unit_test(single_node_completes_synchronously),
        cmocka_unit_test(local_read_short_path_answers_alike),
        cmocka_unit_test(get_now_declines_remote_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
