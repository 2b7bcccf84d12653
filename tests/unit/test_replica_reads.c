/* Unit tests for node/replica.c's reads: present, absent and deleted keys,
 * reads that name a version (answered with the version alone, from the
 * record cache's slot once a read has filled it), the batching of answers
 * without a value, and answers that ride the peer's own link.
 */
#include "replica_fx.h"

static void read_key_having(fx *f, const char *key, const store_version *have, got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(
        replica_read(f->a.r, "nb", (const uint8_t *)key, strlen(key), have, on_reply, g), 0);
    assert_true(run_until(f, &g->calls, 1, 5000));
    assert_int_equal(g->calls, 1);
}

static void read_key(fx *f, const char *key, got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(
        replica_read(f->a.r, "nb", (const uint8_t *)key, strlen(key), NULL, on_reply, g), 0);
    assert_true(run_until(f, &g->calls, 1, 5000));
    assert_int_equal(g->calls, 1);
}

/* Present, absent and deleted keys; a tombstone is "found" with its
 * version so the coordinator can compare. */
static void test_read(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "here", "value", false, 100);
    write_ok(f, "nb", "gone", "x", false, 100);
    write_ok(f, "nb", "gone", NULL, true, 200);
    got g;
    read_key(f, "here", &g);
    assert_true(g.ok);
    assert_true(g.found);
    assert_false(g.tomb);
    assert_string_equal(g.val, "value");
    assert_int_equal(g.hlc, 100);
    read_key(f, "absent", &g);
    assert_true(g.ok);
    assert_false(g.found);
    read_key(f, "gone", &g);
    assert_true(g.ok);
    assert_true(g.found);
    assert_true(g.tomb);
    assert_int_equal(g.hlc, 200);
}

/* Node b answers a's requests on its own link to a once it has one (a
 * opened its link with a LinkHello naming itself), in the writes that carry
 * b's requests; before that, and for answers that go alone, back on a's
 * link. Every request gets its one answer either way. */
static void test_answers_ride_own_link(void **state)
{
    fx *f = *state;
    replica_stats st;
    write_ok(f, "nb", "k0", "v0", false, 100); /* b has no link to a yet */
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.answers_on_link, 0);
    assert_int_equal(st.links_up, 0);

    /* b writes to a: b's link to a comes up. */
    got g = {0};
    replica_record rec = rec_of("from-b", "x", false, 100);
    assert_int_equal(replica_write(f->b.r, "na", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);

    /* Both ways at once, in the same passes: 200 writes each way, and reads
     * from a to b that b answers without a value (absent) and with one. */
    enum { N = 200 };
    static got ga[N], gb[N], gr[2];
    static replica_record ra[N], rb[N];
    static char keys[N][16];
    memset(ga, 0, sizeof ga), memset(gb, 0, sizeof gb), memset(gr, 0, sizeof gr);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ra[i] = rec_of(keys[i], "a", false, 200);
        rb[i] = rec_of(keys[i], "b", false, 200);
        assert_int_equal(replica_write(f->a.r, "nb", &ra[i], NULL, on_reply, &ga[i]), 0);
        assert_int_equal(replica_write(f->b.r, "na", &rb[i], NULL, on_reply, &gb[i]), 0);
    }
    assert_int_equal(run_until_all(f, ga, N, 5000), N);
    assert_int_equal(run_until_all(f, gb, N, 5000), N);
    for (int i = 0; i < N; i++) {
        if (!ga[i].ok || !gb[i].ok)
            fail_msg("write %d: a->b %s, b->a %s", i, ga[i].err, gb[i].err);
        assert_int_equal(ga[i].calls, 1);
        assert_int_equal(gb[i].calls, 1);
    }
    assert_int_equal(
        replica_read(f->a.r, "nb", (const uint8_t *)"absent", 6, NULL, on_reply, &gr[0]), 0);
    assert_int_equal(replica_read(f->a.r, "nb", (const uint8_t *)"k0", 2, NULL, on_reply, &gr[1]),
                     0);
    assert_int_equal(run_until_all(f, gr, 2, 5000), 2);
    assert_true(gr[0].ok);
    assert_false(gr[0].found);
    assert_true(gr[1].ok);
    assert_true(gr[1].found);
    assert_string_equal(gr[1].val, "a");

    replica_get_stats(f->b.r, &st);
    assert_true(st.answers_on_link > 0);
    assert_int_equal(st.writes_applied, 1 + N); /* k0, then the N from a */
    replica_get_stats(f->a.r, &st);
    assert_true(st.answers_on_link > 0);
    assert_int_equal(st.links_up, 1); /* no second link: the answers came on b's */
    run_for(f, 50);
    assert_int_equal(ga[0].calls, 1); /* nothing answered twice */
}

/* A read that names a version it has gets the version alone back when the
 * replica's is not newer (the same, or older by HLC or by origin), and the
 * whole record when it is newer or when the read names none. The first
 * read of a key reads its record, and fills the cache; the next ones are
 * answered from its slot, with the same answers. */
static void test_read_with_a_version(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "here", "value", false, 100); /* origin "na" */
    store_version same = {.hlc = 100}, newer = {.hlc = 100}, older = {.hlc = 99};
    snprintf(same.origin, sizeof same.origin, "na");
    snprintf(newer.origin, sizeof newer.origin, "nz"); /* the tie goes to the origin */
    snprintf(older.origin, sizeof older.origin, "nz");
    const store_version *not_newer[] = {&same, &newer, &same, &newer};
    got g;
    store_stats st;
    for (size_t i = 0; i < 4; i++) {
        read_key_having(f, "here", not_newer[i], &g);
        assert_true(g.ok);
        assert_true(g.found);
        assert_true(g.version_only);
        assert_int_equal(g.hlc, 100);
        assert_string_equal(g.origin, "na");
        assert_false(g.tomb); /* a version-only answer holds the version alone */
        assert_string_equal(g.val, "");
    }
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.cache_version_hits, 3);
    read_key_having(f, "here", &older, &g);
    assert_true(g.ok);
    assert_false(g.version_only);
    assert_string_equal(g.val, "value");
    read_key_having(f, "absent", &same, &g);
    assert_true(g.ok);
    assert_false(g.found);
    read_key(f, "here", &g);
    assert_false(g.version_only);
    assert_string_equal(g.val, "value");
}

/* The reads of one pass answered without a value (the version alone, or
 * not found) come back in one ReadReplies frame per connection; answers
 * with a value go alone. 300 reads sent at once: each callback once, in
 * the order sent, with its own answer, and the batched ones through the
 * replica_prefetch_fn first. */
static void test_reads_batched(void **state)
{
    fx *f = *state;
    enum { NK = 100, NR = 3 * NK };
    static got g[NR];
    static char keys[NK][16], absent[NK][16];
    write_ok(f, "nb", "warm", "v", false, 1);
    for (int i = 0; i < NK; i++) {
        snprintf(keys[i], sizeof keys[i], "rk%d", i);
        snprintf(absent[i], sizeof absent[i], "ra%d", i);
        write_ok(f, "nb", keys[i], "value", i % 2 == 1, 100 + (uint64_t)i); /* odd: deleted */
    }
    memset(g, 0, sizeof g);
    replica_set_prefetch(f->a.r, count_prefetch);
    peer_stats before, after;
    peer_get_stats(f->b.pr, &before);
    for (int i = 0; i < NK; i++) {
        store_version have = {.hlc = 100 + (uint64_t)i};
        snprintf(have.origin, sizeof have.origin, "na");
        const uint8_t *k = (const uint8_t *)keys[i], *a = (const uint8_t *)absent[i];
        assert_int_equal(replica_read(f->a.r, "nb", k, strlen(keys[i]), &have, on_reply, &g[3 * i]),
                         0);
        assert_int_equal(
            replica_read(f->a.r, "nb", a, strlen(absent[i]), &have, on_reply, &g[3 * i + 1]), 0);
        assert_int_equal(
            replica_read(f->a.r, "nb", k, strlen(keys[i]), NULL, on_reply, &g[3 * i + 2]), 0);
    }
    assert_int_equal(run_until_all(f, g, NR, 5000), NR);
    for (int i = 0; i < NK; i++) {
        const got *v = &g[3 * i], *n = &g[3 * i + 1], *w = &g[3 * i + 2];
        assert_int_equal(v->calls + n->calls + w->calls, 3);
        assert_true(v->ok && v->found && v->version_only);
        assert_int_equal(v->hlc, 100 + (uint64_t)i);
        assert_false(v->tomb); /* the version alone */
        assert_true(n->ok && !n->found);
        assert_true(w->ok && w->found && !w->version_only);
        assert_int_equal(w->tomb, i % 2 == 1);
        assert_string_equal(w->val, i % 2 == 1 ? "" : "value");
        assert_true(v->order < n->order); /* the batch keeps its order */
        assert_int_equal(v->prefetched_at_reply, 1);
        assert_int_equal(n->prefetched_at_reply, 1);
    }
    peer_get_stats(f->b.pr, &after);
    /* The 100 answers with a value, and the other 200 in a few frames. */
    uint64_t frames = after.frames_out - before.frames_out;
    assert_true(frames >= NK && frames < NK + 20);
    replica_stats st;
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.reads_served, NR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_with_a_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_ride_own_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_batched, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
