/* Unit tests for the reply FIFO of node/conn.c: replies that complete out of
 * order reach the client in request order, immediate replies wait behind
 * late ones, a failed commit still rewrites held replies, and a connection
 * closed with slots outstanding is never touched by their completion; done
 * replies behind a waiting one are held, for a bounded time and size.
 * A real server and store on a temp dir; the client is one end of a
 * socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "server.h"

typedef struct env {
    char dir[64];
    config cfg;
    store *st;
    struct event_base *base;
    server *s;
    int client;
    struct conn *c;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/ringkv-slots-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    config_defaults(&e->cfg);
    snprintf(e->cfg.listen, sizeof e->cfg.listen, "127.0.0.1:0");
    snprintf(e->cfg.data_dir, sizeof e->cfg.data_dir, "%s", e->dir);
    char err[256];
    store_options so = {.dir = e->dir, .map_size = 16 << 20, .fsync = STORE_FSYNC_NO};
    e->st = store_open(&so, err, sizeof err);
    assert_non_null(e->st);
    assert_int_equal(store_set_node_id(e->st, "n1", err, sizeof err), 0);
    e->base = event_base_new();
    e->s = server_new(e->base, &e->cfg, e->st, err, sizeof err);
    assert_non_null(e->s);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    e->client = sv[1];
    e->c = conn_new(e->s, sv[0], "test", &conn_native_proto);
    assert_non_null(e->c);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    server_free(e->s);
    event_base_free(e->base);
    store_close(e->st);
    close(e->client);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    return 0;
}

static void run_pass(env *e) { event_base_loop(e->base, EVLOOP_NONBLOCK); }

/* One round of callbacks and no more: a hold's 1 ms timer, armed in it,
 * cannot fire before the test looks, however slow the machine. */
static void run_one_pass(env *e) { event_base_loop(e->base, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

/* The value of the last reply read_ids saw with one. */
static uint8_t last_value[1 << 16];
static size_t last_vlen;

/* Reads every reply frame the client has and returns their ids in order. */
static size_t read_ids(env *e, uint64_t *ids, int *status, size_t max)
{
    static uint8_t buf[1 << 16];
    ssize_t n = recv(e->client, buf, sizeof buf, MSG_DONTWAIT);
    size_t got = 0, off = 0;
    if (n <= 0)
        return 0;
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    while (off + 4 <= (size_t)n && got < max) {
        uint32_t len = wire_frame_len(buf + off);
        wire_response r;
        char err[128];
        assert_int_equal(wire_decode_response(buf + off + 4, len, &z, &r, err, sizeof err), 0);
        ids[got] = r.id;
        status[got++] = r.status;
        if (r.has_value && r.value.len <= sizeof last_value) {
            memcpy(last_value, r.value.ptr, r.value.len);
            last_vlen = r.value.len;
        }
        off += 4 + len;
    }
    msgpack_zone_destroy(&z);
    return got;
}

static void out_of_order_completion_in_order(void **state)
{
    env *e = *state;
    conn_slot *a = conn_slot_reserve(e->c, 1);
    conn_slot *b = conn_slot_reserve(e->c, 2);
    conn_reply_status(e->c, 3, WIRE_OK, NULL); /* immediate, held behind 1 and 2 */
    conn_slot *d = conn_slot_reserve(e->c, 4);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(d);

    struct conn *c = conn_slot_resume(d);
    assert_ptr_equal(c, e->c);
    conn_reply_status(c, 4, WIRE_NOT_FOUND, NULL);
    c = conn_slot_resume(b);
    conn_reply_status(c, 2, WIRE_OK, NULL);
    run_pass(e);
    uint64_t ids[8];
    int st[8];
    assert_int_equal(read_ids(e, ids, st, 8), 0); /* 1 is not done: nothing goes out */

    c = conn_slot_resume(a);
    conn_reply_value(c, 1, "x", 1);
    run_pass(e);
    assert_int_equal(read_ids(e, ids, st, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ids[i], (uint64_t)i + 1);
    assert_int_equal(st[3], WIRE_NOT_FOUND);
    assert_null(e->c->slot_head);
}

static void cancel_answers_with_error(void **state)
{
    env *e = *state;
    conn_slot *a = conn_slot_reserve(e->c, 7);
    conn_reply_status(e->c, 8, WIRE_OK, NULL);
    conn_slot_cancel(a, "shutting down");
    run_pass(e);
    uint64_t ids[4];
    int st[4];
    assert_int_equal(read_ids(e, ids, st, 4), 2);
    assert_int_equal(ids[0], 7);
    assert_int_equal(st[0], WIRE_ERR_INTERNAL);
    assert_int_equal(ids[1], 8);
}

static void failed_batch_rewrites_held_replies(void **state)
{
    env *e = *state;
    conn_slot *a = conn_slot_reserve(e->c, 1);
    char err[128];
    /* a write in this pass, then a reply that depends on it, held behind a */
    assert_int_equal(server_write(e->s, WIRE_OP_PUT, "k", 1, "v", 1, 0, err, sizeof err),
                     STORE_OK);
    conn_reply_status(e->c, 2, WIRE_OK, NULL);
    conn_fail_marked(e->c, WIRE_ERR_INTERNAL, "lost"); /* what a failed commit does */
    struct conn *c = conn_slot_resume(a);
    conn_reply_status(c, 1, WIRE_OK, NULL);
    run_pass(e);
    uint64_t ids[4];
    int st[4];
    assert_int_equal(read_ids(e, ids, st, 4), 2);
    assert_int_equal(ids[1], 2);
    assert_int_equal(st[1], WIRE_ERR_INTERNAL);
}

static void closed_connection_outlives_its_slots(void **state)
{
    env *e = *state;
    conn_slot *a = conn_slot_reserve(e->c, 1);
    conn_slot *b = conn_slot_reserve(e->c, 2);
    conn_reply_status(e->c, 3, WIRE_OK, NULL);
    conn_close(e->c, NULL);
    run_pass(e); /* the server frees it: detached, not gone */
    assert_null(e->s->conns);
    assert_null(conn_slot_resume(b)); /* nothing to reply to */
    conn_slot_cancel(a, "late");      /* the last one frees the struct (ASan checks) */
    e->c = NULL;
}

/* Bytes the client could read now, without taking them. */
static size_t readable(env *e)
{
    static uint8_t buf[1 << 17];
    ssize_t n = recv(e->client, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK);
    return n > 0 ? (size_t)n : 0;
}

/* Runs the loop for ms milliseconds (timers included). */
static void run_for(env *e, int ms)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = ms * 1000};
    event_base_loopexit(e->base, &tv);
    event_base_dispatch(e->base);
}

/* Reply 1 done at once, request 2 still waiting, one pass: 1 is held for
 * 2. Returns 2's slot. */
static conn_slot *hold_one(env *e)
{
    conn_reply_status(e->c, 1, WIRE_OK, NULL); /* done at once: pending */
    conn_slot *b = conn_slot_reserve(e->c, 2);
    assert_non_null(b);
    run_one_pass(e);
    assert_int_equal(readable(e), 0);
    assert_true(e->c->holding);
    return b;
}

/* A done reply with a later one still waiting is held, so that a
 * pipeline's replies leave together. */
static void done_reply_waits_for_the_pipeline(void **state)
{
    env *e = *state;
    conn_slot *b = hold_one(e);
    struct conn *c = conn_slot_resume(b);
    conn_reply_status(c, 2, WIRE_NOT_FOUND, NULL);
    run_pass(e);
    uint64_t ids[4];
    int st[4];
    assert_int_equal(read_ids(e, ids, st, 4), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(st[1], WIRE_NOT_FOUND);
    assert_false(e->c->holding);
}

/* The hold is bounded in time: a reply behind a slow one goes anyway. */
static void held_reply_goes_after_the_bound(void **state)
{
    env *e = *state;
    conn_slot *b = hold_one(e);
    run_for(e, 20);
    uint64_t ids[4];
    int st[4];
    assert_int_equal(read_ids(e, ids, st, 4), 1);
    assert_int_equal(ids[0], 1);
    /* The next reply behind the still waiting 2 is held afresh. */
    conn_slot *d = conn_slot_reserve(e->c, 3);
    struct conn *c = conn_slot_resume(b);
    conn_reply_status(c, 2, WIRE_OK, NULL);
    run_one_pass(e);
    assert_int_equal(read_ids(e, ids, st, 4), 0);
    c = conn_slot_resume(d);
    conn_reply_status(c, 3, WIRE_OK, NULL);
    run_pass(e);
    assert_int_equal(read_ids(e, ids, st, 4), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
}

/* Replies past the byte bound are not held. */
static void large_replies_are_not_held(void **state)
{
    env *e = *state;
    static char big[80 * 1024];
    memset(big, 'v', sizeof big);
    conn_reply_value(e->c, 1, big, sizeof big);
    conn_slot *b = conn_slot_reserve(e->c, 2);
    run_pass(e);
    assert_true(readable(e) > 0);
    assert_false(e->c->holding);
    conn_slot_cancel(b, "done");
}

/* A reply held in a slot grows its buffer as it needs; the slot's room
 * is kept or given back for its next reply, which is whole too. */
static void large_reply_in_a_slot(void **state)
{
    env *e = *state;
    static char big[40 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    for (int round = 0; round < 2; round++) {
        conn_slot *a = conn_slot_reserve(e->c, 1);
        conn_reply_value(e->c, 2, big, sizeof big - (size_t)round * 1000); /* into a slot */
        struct conn *c = conn_slot_resume(a);
        conn_reply_status(c, 1, WIRE_OK, NULL);
        run_pass(e);
        uint64_t ids[4];
        int st[4];
        assert_int_equal(read_ids(e, ids, st, 4), 2);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 2);
        assert_int_equal(last_vlen, sizeof big - (size_t)round * 1000);
        assert_memory_equal(last_value, big, last_vlen);
        assert_null(e->c->slot_head);
    }
}

/* A connection closed while holding: its bound never fires on the freed
 * connection (ASan checks). */
static void closed_while_holding(void **state)
{
    env *e = *state;
    conn_slot *b = hold_one(e);
    conn_close(e->c, NULL);
    run_pass(e);
    assert_null(e->s->conns);
    run_for(e, 20);
    assert_int_equal(readable(e), 0); /* dropped with the connection */
    conn_slot_cancel(b, "late");
    e->c = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(out_of_order_completion_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_answers_with_error, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_batch_rewrites_held_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_connection_outlives_its_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(done_reply_waits_for_the_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(held_reply_goes_after_the_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(large_replies_are_not_held, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_while_holding, setup, teardown),
        cmocka_unit_test_setup_teardown(large_reply_in_a_slot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
