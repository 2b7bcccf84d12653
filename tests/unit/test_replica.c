/* Unit tests for node/replica.c's writes and links: acks after the commit,
 * batched acks, backpressure, and the link's failure paths (a node that is
 * down, a link cut mid-flight, timeouts, the queue bound), and hinted
 * handoff from store to delivery to deletion. The reads are in
 * test_replica_reads.c; the fixture is replica_fx.h.
 */
#include "replica_fx.h"

/* The ack comes only after the commit that holds the write, and the
 * replica's clock has seen the write's version. */
static void test_write_ack_after_commit(void **state)
{
    fx *f = *state;
    got g = {.b_st = f->b.st};
    uint64_t hlc = (uint64_t)1 << 50;
    replica_record rec = rec_of("k", "v", false, hlc);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_int_equal(g.calls, 0); /* never from replica_write itself */
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
    assert_string_equal(g.from, "nb");
    assert_int_equal(g.b_records_at_ack, 1); /* committed before the ack */
    assert_true(f->b.srv->clock.last >= hlc);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->b.st, "k", 1, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.value_len, 1);
    assert_int_equal(sr.version.hlc, hlc);
    assert_string_equal(sr.version.origin, "na");

    /* An older version is STALE, which is a success under LWW. */
    write_ok(f, "nb", "k", "older", false, hlc - 1);
    assert_int_equal(store_get(f->b.st, "k", 1, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.value_len, 1);

    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.writes_sent, 2);
    assert_int_equal(st.links_up, 1);
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.writes_applied, 2);
}

/* A write's frame is packed once and copied, with its own request id, for
 * the same record's other replicas: here the same node twice, on a link
 * that is up. The record in the same memory with a new version (as a
 * coordinator's reused operation holds it) is packed again. */
static void test_write_frame_copied_for_same_record(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "up", "v", false, (uint64_t)1 << 50); /* the link is up */
    char val[] = "v1";
    uint64_t hlc = ((uint64_t)1 << 50) + 10;
    replica_record rec = rec_of("same", val, false, hlc);
    got g[3] = {{.calls = 0}};
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[0]), 0);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[1]), 0);
    val[1] = '2';
    rec.version.hlc = hlc + 1;
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[2]), 0);
    assert_int_equal(run_until_all(f, g, 3, 5000), 3);
    for (int i = 0; i < 3; i++)
        if (!g[i].ok) /* a copy with the wrong id is never answered */
            fail_msg("write %d failed: %s", i, g[i].err);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->b.st, "same", 4, 1, &sr, err, sizeof err), STORE_OK);
    assert_int_equal(sr.version.hlc, hlc + 1);
    assert_int_equal(sr.value_len, 2);
    assert_memory_equal(sr.value, "v2", 2);
    replica_stats st;
    replica_get_stats(f->b.r, &st);
    assert_int_equal(st.writes_applied, 4);
}

/* A replica acknowledges the writes of one commit in one frame per
 * connection: 500 writes sent at once come back acknowledged, each with its
 * own callback, once and in the order sent, in a few frames (one apiece
 * before). The answers after an acknowledgement's first go through the
 * replica_prefetch_fn before their callbacks. */
static void test_acks_batched(void **state)
{
    fx *f = *state;
    enum { NW = 500 };
    static got g[NW];
    char keys[NW][16];
    memset(g, 0, sizeof g);
    replica_set_prefetch(f->a.r, count_prefetch);
    peer_stats before, after;
    peer_get_stats(f->b.pr, &before);
    for (int i = 0; i < NW; i++) {
        snprintf(keys[i], sizeof keys[i], "batch%d", i);
        replica_record rec = rec_of(keys[i], "v", false, ((uint64_t)1 << 50) + (uint64_t)i);
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
    }
    assert_int_equal(run_until_all(f, g, NW, 5000), NW);
    int prefetched = 0;
    for (int i = 0; i < NW; i++) {
        assert_int_equal(g[i].calls, 1);
        if (!g[i].ok)
            fail_msg("write %d failed: %s", i, g[i].err);
        assert_string_equal(g[i].from, "nb");
        if (i > 0)
            assert_true(g[i].order > g[i - 1].order);
        assert_true(g[i].prefetched <= 1);
        prefetched += g[i].prefetched_at_reply;
    }
    peer_get_stats(f->b.pr, &after);
    uint64_t frames = after.frames_out - before.frames_out;
    assert_true(frames < NW / 10);
    /* Every answer but each frame's first was fetched ahead. */
    assert_true(prefetched >= NW - (int)frames);
    store_stats st;
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.records, NW);
    replica_stats rs;
    replica_get_stats(f->b.r, &rs);
    assert_int_equal(rs.writes_applied, NW);
}

/* Backpressure: more than REPLICA_PRESSURE_HIGH writes in flight to a peer
 * that answers pause the node's clients (server clients_paused), until the
 * peer has worked its way down to the low mark; every write is applied and
 * none dropped. */
static void test_backpressure(void **state)
{
    fx *f = *state;
    enum { NW = REPLICA_PRESSURE_HIGH + 1000 };
    static got g[NW];
    memset(g, 0, sizeof g);
    write_ok(f, "nb", "first", "v", false, 1); /* the link is up and answering */
    replica_record rec = rec_of("k", "v", false, 2);
    replica_stats st;
    for (int i = 0; i < NW; i++) {
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
        if (i == REPLICA_PRESSURE_HIGH - 2) {
            replica_get_stats(f->a.r, &st);
            assert_false(st.pressed);
            assert_false(f->a.srv->clients_paused);
        }
    }
    replica_get_stats(f->a.r, &st);
    assert_true(st.pressed);
    assert_int_equal(st.pressure_pauses, 1);
    assert_true(f->a.srv->clients_paused);
    assert_int_equal(run_until_all(f, g, NW, 20000), NW);
    for (int i = 0; i < NW; i++)
        assert_true(g[i].ok);
    replica_get_stats(f->a.r, &st);
    assert_false(st.pressed);
    assert_false(f->a.srv->clients_paused);
    assert_int_equal(st.queue_drops, 0);
}

/* Requests that outgrow the socket: a link writes what its socket takes at
 * the pass's end and leaves the rest to the bufferevent. Every write of
 * ten megabytes queued at once arrives and is acknowledged, and the link
 * then goes on as before. */
static void test_link_outgrows_socket(void **state)
{
    fx *f = *state;
    enum { NW = 160, VLEN = 64 * 1024 };
    static got g[NW];
    static uint8_t val[VLEN];
    static char keys[NW][16];
    memset(g, 0, sizeof g);
    memset(val, 'x', sizeof val);
    write_ok(f, "nb", "first", "v", false, 1); /* the link is up */
    for (int i = 0; i < NW; i++) {
        snprintf(keys[i], sizeof keys[i], "big%03d", i);
        replica_record rec = {.key = (const uint8_t *)keys[i], .klen = strlen(keys[i]),
                              .value = val, .vlen = VLEN};
        rec.version.hlc = 2 + (uint64_t)i;
        snprintf(rec.version.origin, sizeof rec.version.origin, "na");
        assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g[i]), 0);
    }
    assert_int_equal(run_until_all(f, g, NW, 20000), NW);
    for (int i = 0; i < NW; i++)
        if (!g[i].ok)
            fail_msg("write %d failed: %s", i, g[i].err);
    store_stats st;
    store_get_stats(f->b.st, &st);
    assert_int_equal(st.records, NW + 1);
    write_ok(f, "nb", "last", "v", false, NW + 2);
}

/* A peer that stops answering pauses no one: writes to it queue (and, past
 * REPLICA_MAX_INFLIGHT, drop) as before, so that a stopped node does not
 * stall the writes of a cluster at `one`. */
static void test_stalled_peer_does_not_pause(void **state)
{
    fx *f = *state;
    enum { NW = REPLICA_PRESSURE_HIGH + 10 };
    static got g[NW];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[0]), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    run_for(f, 600); /* past REPLICA_STALL_MS without an answer */
    for (int i = 1; i < NW; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_false(st.pressed);
    assert_int_equal(st.pressure_pauses, 0);
    assert_false(f->a.srv->clients_paused);
    close(f->h.fd); /* every write fails, once */
    f->h.fd = -1;
    assert_int_equal(run_until_all(f, g, NW, 5000), NW);
}

/* A node the ring view sees down fails at once, without a connection. */
static void test_down_peer_fails_at_once(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got g = {0};
    replica_record rec = rec_of("k", "v", false, 1);
    uint64_t t0 = mono_ms();
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(mono_ms() - t0 < 1000);
    assert_false(g.ok);
    assert_non_null(strstr(g.err, "nb is down"));
    run_for(f, 50);
    assert_int_equal(g.calls, 1);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.links_up, 0);
    assert_int_equal(st.failures, 1);
}

/* A link that is up keeps what the cluster said of its node only while
 * the cluster has not changed: the node taken for dead fails the next
 * request at once, and back up it gets the one after; moved to another
 * address, the link follows it there. */
static void test_link_follows_the_cluster(void **state)
{
    fx *f = *state;
    write_ok(f, "nb", "k", "v", false, 1);
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got g = {0};
    replica_record rec = rec_of("k", "w", false, 2);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_false(g.ok);
    assert_non_null(strstr(g.err, "nb is down"));
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_ALIVE);
    write_ok(f, "nb", "k", "w", false, 3);
    /* nb now at the black hole's address: the next write goes there. */
    see(&f->a, "nb", f->h.addr, GOSSIP_ALIVE);
    memset(&g, 0, sizeof g);
    assert_int_equal(replica_write(f->a.r, "nb", &rec, NULL, on_reply, &g), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    assert_int_equal(g.calls, 0); /* the hole never answers */
}

/* A link cut with requests in flight fails each of them exactly once; the
 * next request after the backoff reconnects. */
static void test_link_killed_mid_flight(void **state)
{
    fx *f = *state;
    got g[5];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    uint64_t end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    run_for(f, 50);
    for (int i = 0; i < 5; i++)
        assert_int_equal(g[i].calls, 0);
    close(f->h.fd);
    f->h.fd = -1;
    int total = 0;
    end = mono_ms() + 3000;
    while (mono_ms() < end) {
        event_base_loop(f->base, EVLOOP_ONCE);
        total = 0;
        for (int i = 0; i < 5; i++)
            total += g[i].calls;
        if (total == 5)
            break;
    }
    assert_int_equal(total, 5);
    /* Within the backoff (100 ms after the first failure) a request fails
     * at once, saying so. */
    got again = {0};
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &again), 0);
    assert_true(run_until(f, &again.calls, 1, 1000));
    assert_non_null(strstr(again.err, "retry in"));
    run_for(f, 300);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_false(g[i].ok);
        assert_non_null(strstr(g[i].err, "lost"));
    }
    assert_int_equal(again.calls, 1);
    /* After it, a new connection. */
    got later = {0};
    assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &later), 0);
    end = mono_ms() + 2000;
    while (f->h.fd < 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(f->h.fd >= 0);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_true(st.reconnects >= 1);
}

/* Requests nobody answers time out, each once, and the link stays. */
static void test_timeout(void **state)
{
    fx *f = *state;
    got g[3];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", "v", false, 1);
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 3; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    assert_true(run_until(f, &g[2].calls, 1, 3000));
    uint64_t took = mono_ms() - t0;
    assert_true(took >= 150);
    run_for(f, 300);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_non_null(strstr(g[i].err, "timeout"));
    }
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.links_up, 1);
}

/* Past the queue's byte bound, a request fails at once with "queue full". */
static void test_queue_bound(void **state)
{
    fx *f = *state;
    size_t big = (size_t)12 << 20;
    char *val = malloc(big + 1);
    assert_non_null(val);
    memset(val, 'x', big);
    val[big] = '\0';
    got g[8];
    memset(g, 0, sizeof g);
    replica_record rec = rec_of("k", val, false, 1);
    for (int i = 0; i < 8; i++)
        assert_int_equal(replica_write(f->a.r, "hole", &rec, NULL, on_reply, &g[i]), 0);
    free(val);
    run_for(f, 50);
    int full = 0;
    for (int i = 0; i < 8; i++)
        if (g[i].calls == 1 && strstr(g[i].err, "queue full"))
            full++;
    assert_int_equal(full, 3); /* 5 x 12 MiB fit in 64 MiB */
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.queue_drops, 3);
}

static int hints_pending(tnode *n)
{
    replica_stats st;
    replica_get_stats(n->r, &st);
    return (int)st.hints_pending;
}

/* A write for a down owner is kept as a durable hint (also across a restart
 * of the stand-in), delivered when the owner comes up, and deleted after
 * its ack. */
static void test_hinted_handoff(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    /* Through the network, a write with hint_for is stored as a hint. */
    got g = {0};
    replica_record rec = rec_of("remote", "r", false, 7);
    assert_int_equal(replica_write(f->b.r, "na", &rec, "nb", on_reply, &g), 0);
    assert_true(run_until(f, &g.calls, 1, 5000));
    assert_true(g.ok);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "h%d", i);
        got l = {0};
        rec = rec_of(key, "hv", false, 10 + (uint64_t)i);
        assert_int_equal(replica_apply_local(f->a.r, &rec, "nb", on_reply, &l), 0);
        assert_true(run_until(f, &l.calls, 1, 5000));
        assert_true(l.ok);
    }
    assert_int_equal(hints_pending(&f->a), 4);
    store_record sr;
    char err[256];
    assert_int_equal(store_get(f->a.st, "h0", 2, 1, &sr, err, sizeof err), STORE_NOT_FOUND);
    assert_int_equal(store_get(f->b.st, "h0", 2, 1, &sr, err, sizeof err), STORE_NOT_FOUND);

    /* The stand-in restarts: the hints are still there. */
    node_stop(&f->a);
    node_start(f, &f->a, "na", TIMEOUT_MS, false);
    see(&f->b, "na", peer_bound_addr(f->a.pr), GOSSIP_ALIVE);
    assert_int_equal(hints_pending(&f->a), 4);

    /* The owner comes up: every hint arrives and is deleted. */
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_ALIVE);
    uint64_t end = mono_ms() + 5000;
    while (hints_pending(&f->a) > 0 && mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(hints_pending(&f->a), 0);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "h%d", i);
        assert_int_equal(store_get(f->b.st, key, 2, 1, &sr, err, sizeof err), STORE_OK);
        assert_int_equal(sr.version.hlc, 10 + (uint64_t)i);
    }
    assert_int_equal(store_get(f->b.st, "remote", 6, 1, &sr, err, sizeof err), STORE_OK);
    replica_stats st;
    replica_get_stats(f->a.r, &st);
    assert_int_equal(st.hints_delivered, 4);
}

/* Hints for an owner that is down stay put; a tick later they go. */
static void test_hints_wait_for_owner(void **state)
{
    fx *f = *state;
    see(&f->a, "nb", peer_bound_addr(f->b.pr), GOSSIP_DEAD);
    got l = {0};
    replica_record rec = rec_of("w", "v", false, 5);
    assert_int_equal(replica_apply_local(f->a.r, &rec, "nb", on_reply, &l), 0);
    assert_true(run_until(f, &l.calls, 1, 5000));
    run_for(f, 2500); /* a tick passes with the owner down */
    assert_int_equal(hints_pending(&f->a), 1);
}

/* The bytes proto/README.md shows for a write_ack and a read. */
static void test_documented_frames(void **state)
{
    (void)state;
    static const uint8_t ack_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08,
                                        0x08, 0x01, 0x6a, 0x04, 0x08, 0x07, 0x10, 0x01};
    static const uint8_t read_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08,
                                         0x01, 0x72, 0x05, 0x08, 0x09, 0x12, 0x01, 0x6b};
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWriteAck ack = RINGKV__REPLICA_WRITE_ACK__INIT;
    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    uint8_t *buf;
    size_t len;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE_ACK;
    env.write_ack = &ack;
    ack.id = 7;
    ack.ok = true;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof ack_bytes);
    assert_memory_equal(buf, ack_bytes, len);
    free(buf);
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    rd.id = 9;
    rd.key.data = (uint8_t *)"k";
    rd.key.len = 1;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof read_bytes);
    assert_memory_equal(buf, read_bytes, len);
    free(buf);
    /* A link's first frame, LinkHello{node_id: "na"} (field 25). */
    static const uint8_t hello_bytes[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08,
                                          0x01, 0xca, 0x01, 0x04, 0x0a, 0x02, 0x6e, 0x61};
    Ringkv__LinkHello hello = RINGKV__LINK_HELLO__INIT;
    hello.node_id = "na";
    env.body_case = RINGKV__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof hello_bytes);
    assert_memory_equal(buf, hello_bytes, len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_frames),
        cmocka_unit_test_setup_teardown(test_write_ack_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_frame_copied_for_same_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_outgrows_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_peer_does_not_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_peer_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_follows_the_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_killed_mid_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup_short, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hinted_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_wait_for_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
