/* Unit tests for node/peer_hand.c: replication's hand-packed bodies
 * against protobuf-c. Thousands of random envelopes of every kind the hand
 * packer takes are packed byte for byte as protobuf-c packs them (and
 * by the one-pass request packer as well, for writes and reads), decoded again by hand as
 * protobuf-c decodes them; forms a packer does not write are left to
 * protobuf-c. (test_peer has the frame codec and live connections.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pbwire.h"
#include "peer.h"
#include "peer_hand.h"

/* ---- the hand-packed bodies against protobuf-c ---- */

static uint64_t hp_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t hp_next(void)
{
    hp_rng ^= hp_rng << 13;
    hp_rng ^= hp_rng >> 7;
    hp_rng ^= hp_rng << 17;
    return hp_rng;
}

/* 0, small, or anything up to 2^64-1: every varint length. */
static uint64_t hp_u64(void)
{
    switch (hp_next() % 4) {
    case 0:
        return 0;
    case 1:
        return hp_next() % 300;
    default:
        return hp_next() >> (hp_next() % 64);
    }
}

static uint8_t hp_blob[40000];
static const char *const hp_strs[] = {NULL, "", "n", "node2", "queue full: 4096 requests waiting"};

/* Empty (with or without a data pointer), short, or long (a two- and a
 * three-byte length). */
static ProtobufCBinaryData hp_bytes(void)
{
    static const size_t lens[] = {0, 0, 1, 7, 200, 20000};
    size_t i = hp_next() % 6;
    return (ProtobufCBinaryData){.len = lens[i], .data = i == 0 ? NULL : hp_blob};
}

static void hp_record(Ringkv__Record *r)
{
    ringkv__record__init(r);
    r->key = hp_bytes();
    r->value = hp_bytes();
    r->tombstone = hp_next() % 2;
    r->expires_ms = hp_u64();
    r->hlc = hp_u64();
    r->origin = (char *)hp_strs[hp_next() % 5];
}

/* The one-pass packer says where the request's id is in its frame (buf,
 * len bytes), and the frame with another id of the same varint length
 * written there is the other request's frame (replica.c copies a write's
 * frame so). */
static void hp_check_id_at(const Ringkv__Envelope *env, const uint8_t *buf, size_t len,
                           size_t bound)
{
    bool write = env->body_case == RINGKV__ENVELOPE__BODY_WRITE;
    uint64_t id = write ? env->write->id : env->read->id;
    uint8_t *packed = malloc(bound);
    assert_non_null(packed);
    size_t at = 12345;
    size_t n = peer_frame_pack_request(packed, env, bound, &at);
    if (!n) { /* unknown fields: protobuf-c's to pack */
        assert_int_equal(peer_frame_request_bound(env), 0);
        free(packed);
        return;
    }
    assert_int_equal(n, len);
    assert_memory_equal(packed, buf, len);
    free(packed);
    if (id == 0) { /* left out */
        assert_int_equal(at, 0);
        return;
    }
    assert_true(at > PEER_HEADER_BYTES && at < len);
    const uint8_t *p = buf + at;
    uint64_t v;
    assert_true(pbw_get_varint(&p, buf + len, &v));
    assert_true(v == id);
    if (id < 2)
        return;
    Ringkv__Envelope e2 = *env;
    Ringkv__ReplicaWrite w2;
    Ringkv__ReplicaRead r2;
    uint64_t id2 = id ^ 1; /* the same varint length */
    if (write) {
        w2 = *env->write;
        w2.id = id2;
        e2.write = &w2;
    } else {
        r2 = *env->read;
        r2.id = id2;
        e2.read = &r2;
    }
    uint8_t *want, *copy = malloc(len);
    size_t wlen;
    assert_non_null(copy);
    assert_int_equal(peer_frame_encode(&e2, &want, &wlen), 0);
    assert_int_equal(wlen, len);
    memcpy(copy, buf, len);
    pbw_put_varint(copy + at, id2);
    assert_memory_equal(copy, want, len);
    free(want);
    free(copy);
}

/* env packed by peer_frame_encode (by hand for replication's bodies) is
 * protobuf-c's packing byte for byte, after the header; and decoded again
 * (by hand too) it is what protobuf-c decodes. */
static void hp_check(const Ringkv__Envelope *env)
{
    size_t want = ringkv__envelope__get_packed_size(env);
    uint8_t *ref = malloc(want ? want : 1);
    assert_non_null(ref);
    assert_int_equal(ringkv__envelope__pack(env, ref), want);
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_size(env), PEER_HEADER_BYTES + want);
    assert_int_equal(peer_frame_encode(env, &buf, &len), 0);
    assert_int_equal(len, PEER_HEADER_BYTES + want);
    assert_memory_equal(buf + PEER_HEADER_BYTES, ref, want);
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE ||
        env->body_case == RINGKV__ENVELOPE__BODY_READ) {
        /* The one-pass request packer: the same frame, within its bound;
         * a request with unknown fields (the body's own, here) has none
         * and goes the general way. */
        size_t bound = peer_frame_request_bound(env);
        if (((const ProtobufCMessage *)env->read)->n_unknown_fields) {
            assert_int_equal(bound, 0);
            bound = len;
        } else {
            assert_true(bound >= len);
        }
        struct evbuffer *eb = evbuffer_new();
        assert_int_equal(peer_frame_append_request(eb, env, bound), 0);
        assert_int_equal(evbuffer_get_length(eb), len);
        assert_memory_equal(evbuffer_pullup(eb, -1), buf, len);
        evbuffer_free(eb);
        hp_check_id_at(env, buf, len, bound);
    }

    /* Decoded in an arena (by hand, for these bodies) it is what
     * protobuf-c decodes: the same bytes packed again, the same refusal. */
    static peer_arena arena;
    char err1[256] = "", err2[256] = "";
    Ringkv__Envelope *pc = peer_envelope_decode(ref, want, err1, sizeof err1);
    Ringkv__Envelope *got = peer_envelope_decode_in(&arena, ref, want, err2, sizeof err2);
    assert_true(!pc == !got);
    assert_string_equal(err1, err2);
    if (got) {
        assert_int_equal(got->body_case, env->body_case);
        assert_int_equal(ringkv__envelope__get_packed_size(got), want);
        uint8_t *again = malloc(want ? want : 1);
        assert_non_null(again);
        ringkv__envelope__pack(got, again);
        assert_memory_equal(again, ref, want);
        free(again);
    }
    peer_envelope_free(pc);
    peer_envelope_free_in(&arena, got);
    peer_arena_release(&arena);
    free(buf);
    free(ref);
}

static void test_hand_packing_is_protobuf_c(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hp_blob; i++)
        hp_blob[i] = (uint8_t)(i * 7);
    static Ringkv__ReplicaReadReply replies[300];
    static Ringkv__Record records[300];
    static Ringkv__ReplicaReadReply *rp[300];
    static uint64_t ids[5000];
    for (int round = 0; round < 3000; round++) {
        Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
        Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
        Ringkv__ReplicaWrite wr = RINGKV__REPLICA_WRITE__INIT;
        Ringkv__ReplicaWriteAck ack = RINGKV__REPLICA_WRITE_ACK__INIT;
        Ringkv__ReadReplies rr = RINGKV__READ_REPLIES__INIT;
        Ringkv__Record rec;
        env.version = hp_next() % 8 ? PEER_VERSION : (uint32_t)hp_u64();
        switch (round % 5) {
        case 0:
            env.body_case = RINGKV__ENVELOPE__BODY_READ;
            env.read = &rd;
            rd.id = hp_u64();
            rd.key = hp_bytes();
            rd.have_hlc = hp_u64();
            rd.have_origin = (char *)hp_strs[hp_next() % 5];
            break;
        case 1:
            env.body_case = RINGKV__ENVELOPE__BODY_WRITE;
            env.write = &wr;
            wr.id = hp_u64();
            hp_record(&rec);
            wr.record = hp_next() % 5 ? &rec : NULL;
            wr.hint_for = (char *)hp_strs[hp_next() % 5];
            wr.background = hp_next() % 2;
            break;
        case 2:
            env.body_case = RINGKV__ENVELOPE__BODY_WRITE_ACK;
            env.write_ack = &ack;
            ack.id = hp_u64();
            ack.ok = hp_next() % 2;
            ack.error = (char *)hp_strs[hp_next() % 5];
            ack.n_more_ids = hp_next() % 3 ? hp_next() % 40 : hp_next() % 5000;
            for (size_t k = 0; k < ack.n_more_ids; k++)
                ids[k] = hp_u64();
            ack.more_ids = ids;
            break;
        default: {
            size_t n = round % 5 == 3 ? 1 : hp_next() % 300;
            for (size_t k = 0; k < n; k++) {
                Ringkv__ReplicaReadReply *m = &replies[k];
                ringkv__replica_read_reply__init(m);
                m->id = hp_u64();
                m->ok = hp_next() % 2;
                m->error = (char *)hp_strs[hp_next() % 5];
                m->found = hp_next() % 2;
                hp_record(&records[k]);
                m->record = hp_next() % 2 ? &records[k] : NULL;
                m->version_only = hp_next() % 2;
                rp[k] = m;
            }
            if (round % 5 == 3) {
                env.body_case = RINGKV__ENVELOPE__BODY_READ_REPLY;
                env.read_reply = &replies[0];
            } else {
                env.body_case = RINGKV__ENVELOPE__BODY_READ_REPLIES;
                env.read_replies = &rr;
                rr.n_replies = n;
                rr.replies = rp;
            }
        }
        }
        hp_check(&env);
    }

    /* A message with an unknown field (one decoded from a newer node)
     * goes to protobuf-c, which packs that field too; decoded, the field
     * sends it to protobuf-c again, which keeps it. */
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    ProtobufCMessageUnknownField unk = {.tag = 9, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
                                        .len = 1, .data = (uint8_t *)"\x05"};
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    rd.id = 3;
    rd.base.n_unknown_fields = 1;
    rd.base.unknown_fields = &unk;
    hp_check(&env);
}

/* Bodies in forms a packer does not write are read as protobuf-c reads
 * them: fields out of order, a field twice (the last wins), a bool of 2,
 * a value padded to ten bytes, an unknown field; and refused as it
 * refuses them. */
static void test_hand_decode_leaves_odd_forms_to_protobuf_c(void **state)
{
    (void)state;
    static peer_arena arena;
    static const struct {
        const char *bytes;
        size_t len;
        uint64_t id, have_hlc;
    } cases[] = {
        /* version 1; read {have_hlc 5, id 7}: out of order */
        {"\x08\x01\x72\x04\x18\x05\x08\x07", 8, 7, 5},
        /* read {id 7, id 9}: twice */
        {"\x08\x01\x72\x04\x08\x07\x08\x09", 8, 9, 0},
        /* read {id 300 in ten bytes} */
        {"\x08\x01\x72\x0b\x08\xac\x82\x80\x80\x80\x80\x80\x80\x80\x00", 15, 300, 0},
        /* read {id 7, field 9 = 1}: unknown */
        {"\x08\x01\x72\x04\x08\x07\x48\x01", 8, 7, 0},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Ringkv__Envelope *env = peer_envelope_decode_in(
            &arena, (const uint8_t *)cases[i].bytes, cases[i].len, err, sizeof err);
        assert_non_null(env);
        assert_int_equal(env->body_case, RINGKV__ENVELOPE__BODY_READ);
        assert_int_equal(env->read->id, cases[i].id);
        assert_int_equal(env->read->have_hlc, cases[i].have_hlc);
        peer_envelope_free_in(&arena, env);
    }
    /* read_reply {ok 2}: a bool as protobuf-c reads it, true */
    Ringkv__Envelope *env =
        peer_envelope_decode_in(&arena, (const uint8_t *)"\x08\x01\x7a\x02\x10\x02", 6, err, sizeof err);
    assert_non_null(env);
    assert_int_equal(env->body_case, RINGKV__ENVELOPE__BODY_READ_REPLY);
    assert_true(env->read_reply->ok);
    peer_envelope_free_in(&arena, env);
    /* A record cut short is refused, with protobuf-c's words. */
    assert_null(peer_envelope_decode_in(&arena, (const uint8_t *)"\x08\x01\x62\x04\x12\x05\x0a\x01",
                                        8, err, sizeof err));
    assert_non_null(strstr(err, "is not a valid Envelope"));
    /* A key padded to eight bytes: protobuf-c refuses it, and so does the
     * node (fuzz_peer found the hand decoder taking it). */
    assert_null(peer_envelope_decode_in(
        &arena, (const uint8_t *)"\x88\x80\x80\x80\x80\x80\x80\x00\x80\x00", 10, err,
        sizeof err));
    assert_non_null(strstr(err, "is not a valid Envelope"));
    /* The version is checked on either path. */
    assert_null(peer_envelope_decode_in(&arena, (const uint8_t *)"\x08\x02\x72\x02\x08\x07", 6, err,
                                        sizeof err));
    assert_string_equal(err, "Envelope version 2; this node speaks 1");
    peer_arena_release(&arena);
}

/* Decoding in an arena: a small write fits in it, a large one spills to
 * malloc (freed by peer_envelope_free_in: the leak checker of the
 * sanitizer build fails the test otherwise), and the arena serves the next
 * envelope after either. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_packing_is_protobuf_c),
        cmocka_unit_test(test_hand_decode_leaves_odd_forms_to_protobuf_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
