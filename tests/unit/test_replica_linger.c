/* Unit tests for node/replica.c's lingering: background writes (the
 * coordinator answered on its own copy) and their acknowledgements wait on
 * their link for up to the linger; a frame someone waits for takes them
 * along at once; a stopping node's drain waits for them. The fixture is
 * replica_fx.h (two nodes, na and nb, on one event base).
 */
#include "replica_fx.h"

#define LINGER_MS 30

static uint64_t link_writes(const tnode *n)
{
    replica_stats st;
    replica_get_stats(n->r, &st);
    return st.link_writes;
}

/* Both nodes linger, and each has its own link to the other up (an answer
 * rides on the answering node's own link when it has one). */
static void link_both_ways(fx *f)
{
    replica_set_linger(f->a.r, LINGER_MS * 1000);
    replica_set_linger(f->b.r, LINGER_MS * 1000);
    write_ok(f, "nb", "a-up", "v", false, (uint64_t)1 << 50);
    got g = {0};
    replica_record rec = rec_of("b-up", "v", false, (uint64_t)1 << 50);
    assert_int_equal(replica_write(f->b.r, "na", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
}

/* Runs the loop's ready callbacks a few times without waiting: the pass
 * ends (and its frames leave, when nothing lingers), no timer is due. */
static void run_passes(fx *f)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* A background write stays on its link past its pass's end, and its
 * acknowledgement on the replica's: the answer comes after two lingers,
 * and the record was committed on the replica before it. */
static void test_background_write_lingers(void **state)
{
    fx *f = *state;
    link_both_ways(f);
    uint64_t sent = link_writes(&f->a);
    got g = {.b_st = f->b.st};
    replica_record rec = rec_of("bg", "v", false, ((uint64_t)1 << 50) + 1);
    uint64_t t0 = mono_ms();
    assert_int_equal(replica_write_background(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    run_passes(f);
    assert_int_equal(link_writes(&f->a), sent); /* still staged */
    assert_int_equal(g.calls, 0);
    assert_true(replica_unsent(f->a.r) > 0);

    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
    assert_true(mono_ms() - t0 >= 2 * LINGER_MS - 1); /* the request's linger, then the ack's */
    assert_int_equal(g.b_records_at_ack, 2);
    assert_int_equal(link_writes(&f->a), sent + 1);
    assert_int_equal(replica_unsent(f->a.r), 0);
}

/* A write someone waits for, queued after a background one on the same
 * link, takes it along in the same send at the pass's end; the replica
 * acknowledges both in one frame, which then does not linger either. */
static void test_waited_frame_takes_lingering_along(void **state)
{
    fx *f = *state;
    link_both_ways(f);
    uint64_t sent = link_writes(&f->a), answered = link_writes(&f->b);
    got bg = {0}, fg = {0};
    replica_record r1 = rec_of("bg", "v", false, ((uint64_t)1 << 50) + 1);
    replica_record r2 = rec_of("fg", "v", false, ((uint64_t)1 << 50) + 2);
    assert_int_equal(replica_write_background(f->a.r, "nb", &r1, NULL, on_reply, &bg), 0);
    assert_int_equal(replica_write(f->a.r, "nb", &r2, NULL, on_reply, &fg), 0);
    run_passes(f);
    assert_int_equal(link_writes(&f->a), sent + 1); /* both, in one send */
    assert_true(run_until(f, &fg.calls, 1, 5000));
    assert_true(fg.ok);
    assert_int_equal(bg.calls, 1); /* answered with it, in the same frame */
    assert_true(bg.ok);
    assert_int_equal(link_writes(&f->b), answered + 1);
}

/* Without a linger (replica_new's default), a background write leaves at
 * the end of its pass, as every frame does. */
static void test_no_linger_sends_at_pass_end(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "up", "v", false, (uint64_t)1 << 50);
    uint64_t sent = link_writes(&f->a);
    got g = {0};
    replica_record rec = rec_of("bg", "v", false, ((uint64_t)1 << 50) + 1);
    assert_int_equal(replica_write_background(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    run_passes(f);
    assert_int_equal(link_writes(&f->a), sent + 1);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
}

/* A graceful stop: no lingering once stopping, and the drain ends the loop
 * only after the links' bytes are out, so a write acknowledged at one
 * still reaches its other replicas. */
static void test_stop_sends_what_lingers(void **state)
{
    fx *f = *state;
    replica_set_linger(f->a.r, 100 * 1000); /* the most a config allows */
    write_ok(f, "nb", "up", "v", false, (uint64_t)1 << 50);
    got g = {.b_st = f->b.st};
    replica_record rec = rec_of("bg", "v", false, ((uint64_t)1 << 50) + 1);
    assert_int_equal(replica_write_background(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    run_passes(f);
    assert_true(replica_unsent(f->a.r) > 0);
    server_shutdown(f->a.srv);
    assert_int_equal(event_base_dispatch(f->base), 0); /* until the drain breaks it */
    assert_int_equal(replica_unsent(f->a.r), 0);
    run_for(f, 200); /* nb reads and commits it (na's loop is nb's too) */
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->b.st, "bg", 2, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.version.hlc, ((uint64_t)1 << 50) + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_background_write_lingers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waited_frame_takes_lingering_along, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_linger_sends_at_pass_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_sends_what_lingers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
