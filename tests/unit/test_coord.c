/* Unit tests for node/coord.c against the fake replica layer
 * (coord_fake.h): writes (acks, failures, timeouts, late replies,
 * unavailable, TTL and deletes, writes while the ring changes, which
 * requests go as background),
 * sloppy-quorum hints, shutdown with requests in flight. Reads are in
 * test_coord_reads.c.
 */
#include "coord_fake.h"

static void write_acks_at_w(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, -1, on_done, &r),
                     0);
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[0].local);
    /* one HLC stamp for every replica */
    assert_true(e->f.req[0].rec.version.hlc > 0);
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(e->f.req[i].rec.version.hlc, e->f.req[0].rec.version.hlc);
        assert_string_equal(e->f.req[i].rec.version.origin, "a");
        assert_string_equal(e->f.req[i].value, "v1");
    }
    reply(&e->f, 2, true, -1, NULL, false, 0); /* out of order: c first */
    assert_int_equal(r.calls, 0);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(r.nreplicas, 2);
    assert_int_equal(r.epoch, 77);
    reply(&e->f, 1, true, -1, NULL, false, 0); /* late */
    assert_int_equal(r.calls, 1);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.writes[COORD_LEVEL_DEFAULT], 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* While a node joins, a write also goes to the key's future owner and needs
 * a quorum of the current owners and one of the future owners; reads
 * ignore the future owner. Targets a, b, c; d joins and takes c's place. */
static void write_during_ring_change(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.extra[0] = (cluster_target){.id = "d"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.cur_new[0] = e->f.cur_new[1] = true; /* a and b stay owners */
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, -1, on_done, &r),
                     0);
    assert_int_equal(e->f.nreq, 4);
    assert_string_equal(e->f.req[3].to, "d");
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0); /* a and c: a quorum of the old owners only */
    reply(&e->f, 3, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1); /* d: and of the new ones */
    assert_int_equal(r.st, WIRE_OK);
    assert_int_equal(r.nreplicas, 3);
    reply(&e->f, 1, true, -1, NULL, false, 0);

    /* a and b are owners in both rings: their two acks are enough. */
    result r2 = {0};
    size_t base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v2", 2, 0, -1, on_done, &r2),
                     0);
    assert_int_equal(e->f.nreq, base + 4);
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, WIRE_OK);
    assert_int_equal(r2.nreplicas, 2);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    reply(&e->f, base + 3, true, -1, NULL, false, 0);

    /* b and d fail: the new ring's quorum is out of reach, so the write
     * fails without waiting, although a and c would make the old one. */
    result r3 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v3", 2, 0, -1, on_done, &r3),
                     0);
    reply(&e->f, base + 1, false, -1, NULL, false, 0);
    reply(&e->f, base + 3, false, -1, NULL, false, 0);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r3.msg, "future owners"));
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);

    /* A future owner counted but not sent to (already a target, e.g. as a
     * stand-in for c): its own ack is what the new ring's quorum needs. */
    e->f.nextra = 0;
    e->f.cur_new[2] = true;
    e->f.cur_new[1] = false; /* b drops out instead */
    result r4 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v4", 2, 0, -1, on_done, &r4),
                     0);
    assert_int_equal(e->f.nreq, base + 3);
    reply(&e->f, base, true, -1, NULL, false, 0);
    reply(&e->f, base + 1, true, -1, NULL, false, 0);
    assert_int_equal(r4.calls, 0);
    reply(&e->f, base + 2, true, -1, NULL, false, 0);
    assert_int_equal(r4.calls, 1);
    assert_int_equal(r4.st, WIRE_OK);

    /* `all` needs every current and every future owner. */
    e->f.nextra = 1;
    e->f.cur_new[1] = true;
    e->f.cur_new[2] = false;
    result r5 = {0};
    base = e->f.nreq;
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v5", 2, 0, QUORUM_ALL, on_done, &r5), 0);
    assert_int_equal(e->f.nreq, base + 4);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, base + i, true, -1, NULL, false, 0);
    assert_int_equal(r5.calls, 0);
    reply(&e->f, base + 3, true, -1, NULL, false, 0);
    assert_int_equal(r5.calls, 1);
    assert_int_equal(r5.st, WIRE_OK);

    /* Reads go to the current owners only. */
    result r6 = {0};
    base = e->f.nreq;
    assert_int_equal(coord_get(e->co, K, 3, -1, on_done, &r6), 0);
    assert_int_equal(e->f.nreq, base + 3);
    for (size_t i = 0; i < e->f.nreq; i++) /* the replica layer answers every request */
        if (!e->f.req[i].done)
            reply(&e->f, i, true, -1, NULL, false, 0);
    env_free(e);
}

/* The ring grows past its size: from a and b (N = 2 of them) to a, b and c
 * (N = 3). Each ring's level counts its own N: `all` needs c too, and a
 * quorum of the three (2) is met by a and b. */
static void write_while_the_ring_grows(void **state)
{
    (void)state;
    env *e = env_new(2, 2, 2, 2000);
    e->f.n = 2;
    e->f.extra[0] = (cluster_target){.id = "c"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.nfuture = 3;
    e->f.cur_new[0] = e->f.cur_new[1] = true;
    result r = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, QUORUM_ALL, on_done, &r), 0);
    assert_int_equal(e->f.nreq, 3);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0); /* all of the old ring, not of the new one */
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_OK);

    result r2 = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v2", 2, 0, QUORUM_QUORUM, on_done, &r2),
        0);
    reply(&e->f, 3, true, -1, NULL, false, 0);
    reply(&e->f, 4, true, -1, NULL, false, 0);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, WIRE_OK);
    reply(&e->f, 5, true, -1, NULL, false, 0);

    /* c is down (not counted, not sent to): `all` of the new ring is the
     * two that are up */
    e->f.nextra = 0;
    e->f.extra_count = 0;
    result r3 = {0};
    assert_int_equal(
        coord_write(e->co, false, K, 3, (const uint8_t *)"v3", 2, 0, QUORUM_ALL, on_done, &r3), 0);
    assert_int_equal(e->f.nreq, 8);
    reply(&e->f, 6, true, -1, NULL, false, 0);
    reply(&e->f, 7, true, -1, NULL, false, 0);
    assert_int_equal(r3.st, WIRE_OK);
    env_free(e);
}

/* An operation has room for as many replicas as operations have needed on
 * this node so far. A write with one more (a future owner) arrives while
 * writes sized for three are in flight: every one is answered with its own
 * replicas, and the smaller ones, which go instead of back to the pool,
 * still take their late replies (the sanitizer build checks the bounds). */
static void operations_grow_with_the_targets(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r[4] = {{0}};
    for (size_t k = 0; k < 2; k++)
        assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v1", 2, 0, -1, on_done,
                                     &r[k]),
                         0);
    assert_int_equal(e->f.nreq, 6);
    e->f.extra[0] = (cluster_target){.id = "d"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.cur_new[0] = e->f.cur_new[1] = true;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v2", 2, 0, QUORUM_ALL,
                                 on_done, &r[2]),
                     0);
    assert_int_equal(e->f.nreq, 10);
    assert_string_equal(e->f.req[9].to, "d");
    for (size_t i = 0; i < 6; i++) /* the two small writes end */
        reply(&e->f, i, true, -1, NULL, false, 0);
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(r[k].st, WIRE_OK);
        assert_int_equal(r[k].nreplicas, 2);
    }
    for (size_t i = 6; i < 10; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r[2].calls, 1);
    assert_int_equal(r[2].st, WIRE_OK);
    assert_int_equal(r[2].nreplicas, 4);
    /* Back to three targets: an operation from the pool, with room for
     * four, serves it. */
    e->f.nextra = e->f.extra_count = 0;
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v3", 2, 0, QUORUM_ALL,
                                 on_done, &r[3]),
                     0);
    for (size_t i = 10; i < 13; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r[3].st, WIRE_OK);
    assert_int_equal(r[3].nreplicas, 3);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

/* Requests go as background (they may linger on their links) only when
 * the write is answered without them: at one, with a copy on this node.
 * Not at quorum, not at one without a local copy, not while the ring
 * changes (the future owners' count is waited for). */
static void background_only_when_answered_alone(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[0].local);
    assert_true(e->f.req[1].background);
    assert_true(e->f.req[2].background);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1); /* the local copy's commit answers */
    assert_int_equal(r.st, WIRE_OK);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 2, true, -1, NULL, false, 0);

    size_t at = e->f.nreq; /* quorum, and the default level (w = 2) */
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_QUORUM, on_done, &r);
    coord_write(e->co, true, K, 3, NULL, 0, 0, -1, on_done, &r);
    assert_int_equal(e->f.nreq, at + 6);
    for (size_t i = at; i < at + 6; i++)
        assert_false(e->f.req[i].background);
    for (size_t i = at; i < at + 6; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);

    e->f.t[0].local = false; /* at one, with no copy here: the first ack answers */
    at = e->f.nreq;
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, at + 3);
    for (size_t i = at; i < at + 3; i++) {
        assert_false(e->f.req[i].local);
        assert_false(e->f.req[i].background);
        reply(&e->f, i, true, -1, NULL, false, 0);
    }

    e->f.t[0].local = true; /* at one while d joins */
    e->f.extra[0] = (cluster_target){.id = "d"};
    e->f.nextra = 1;
    e->f.extra_count = 1;
    e->f.cur_new[0] = e->f.cur_new[1] = true;
    at = e->f.nreq;
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_ONE, on_done, &r);
    assert_int_equal(e->f.nreq, at + 4);
    for (size_t i = at + 1; i < at + 4; i++)
        assert_false(e->f.req[i].background);
    for (size_t i = at; i < at + 4; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 5);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void write_ttl_and_delete(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    e->f.n = 1;
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 5000, -1, on_done, &r);
    assert_int_equal(e->f.req[0].rec.expires_ms, e->f.now + 5000);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    coord_write(e->co, true, K, 3, NULL, 0, 0, QUORUM_ALL, on_done, &r);
    assert_true(e->f.req[1].rec.tombstone);
    assert_true(e->f.req[1].rec.version.hlc > e->f.req[0].rec.version.hlc);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 2);
    env_free(e);
}

static void unavailable_at_once(void **state)
{
    (void)state;
    env *e = env_new(1, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_QUORUM, on_done, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    assert_string_equal(r.msg, "need 2 replicas, 1 up");
    assert_int_equal(e->f.nreq, 0);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.unavailable, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void all_needs_every_replica(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, QUORUM_ALL, on_done, &r);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    assert_non_null(strstr(r.msg, "2 of 3 replicas acknowledged, 3 needed"));
    assert_non_null(strstr(r.msg, "link down"));
    env_free(e);
}

static void fails_early(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    reply(&e->f, 1, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1); /* 2 needed, only 1 can still answer */
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    env_free(e);
}

static void send_refused_counts_as_failure(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.refuse = true;
    result r = {0};
    assert_int_equal(coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r),
                     0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_UNAVAILABLE);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void times_out(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 30);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    e->f.now += 31;
    event_base_loop(e->base, EVLOOP_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_TIMEOUT);
    assert_string_equal(r.msg, "1 of 3 acknowledged, 2 needed, after 30 ms");
    reply(&e->f, 1, true, -1, NULL, false, 0); /* late: ignored */
    reply(&e->f, 2, false, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    coord_stats st;
    coord_get_stats(e->co, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.in_flight, 0);
    env_free(e);
}

static void hints_reach_stand_ins(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    e->f.t[2] = (cluster_target){.id = "d", .local = false, .hint_for = "c"};
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    assert_string_equal(e->f.req[2].to, "d");
    assert_string_equal(e->f.req[2].hint, "c");
    assert_string_equal(e->f.req[1].hint, "");
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    env_free(e);
}

static void coordinator_hints_owner_without_stand_in(void **state)
{
    (void)state;
    env *e = env_new(2, 2, 2, 2000); /* c is down and nobody can stand in */
    e->f.own[0] = (cluster_target){.id = "a", .local = true};
    e->f.own[1] = (cluster_target){.id = "b"};
    e->f.own[2] = (cluster_target){.id = "c"};
    e->f.nown = 3;
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    assert_int_equal(e->f.nreq, 3);
    assert_true(e->f.req[2].local);
    assert_string_equal(e->f.req[2].hint, "c");
    reply(&e->f, 2, true, -1, NULL, false, 0); /* the hint does not count toward W */
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 1, true, -1, NULL, false, 0);
    assert_int_equal(r.st, WIRE_OK);
    env_free(e);
}

static void stranger_reply_ignored(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_write(e->co, false, K, 3, (const uint8_t *)"v", 1, 0, -1, on_done, &r);
    snprintf(e->f.req[1].to, sizeof e->f.req[1].to, "zz"); /* answers under another id */
    reply(&e->f, 1, true, -1, NULL, false, 0);
    reply(&e->f, 0, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 0);
    reply(&e->f, 2, true, -1, NULL, false, 0);
    assert_int_equal(r.calls, 1);
    env_free(e);
}

static void free_with_requests_in_flight(void **state)
{
    (void)state;
    env *e = env_new(3, 2, 2, 2000);
    result r = {0};
    coord_get(e->co, K, 3, -1, on_done, &r);
    coord_free(e->co); /* answers at once; lives until the replies come */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, WIRE_ERR_INTERNAL);
    for (size_t i = 0; i < 3; i++)
        reply(&e->f, i, true, (int)i, "v", false, 0);
    assert_int_equal(r.calls, 1);
    e->co = NULL;
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_acks_at_w),
        cmocka_unit_test(write_during_ring_change),
        cmocka_unit_test(write_while_the_ring_grows),
        cmocka_unit_test(operations_grow_with_the_targets),
        cmocka_unit_test(background_only_when_answered_alone),
        cmocka_unit_test(write_ttl_and_delete),
        cmocka_unit_test(unavailable_at_once),
        cmocka_unit_test(all_needs_every_replica),
        cmocka_unit_test(fails_early),
        cmocka_unit_test(send_refused_counts_as_failure),
        cmocka_unit_test(times_out),
        cmocka_unit_test(hints_reach_stand_ins),
        cmocka_unit_test(coordinator_hints_owner_without_stand_in),
        cmocka_unit_test(stranger_reply_ignored),
        cmocka_unit_test(free_with_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
