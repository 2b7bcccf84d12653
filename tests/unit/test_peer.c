/* Unit tests for node/peer.c: the frame header checks and the Envelope
 * codec, then real loopback connections on one event loop: a request and
 * its answer, a refused connection, a peer that never answers, and hostile
 * input that is dropped while the listener goes on serving.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

/* ---- the codec ---- */

static void hdr_of(uint8_t h[PEER_HEADER_BYTES], const char *magic, uint8_t ver, uint8_t type,
                   uint32_t len)
{
    h[0] = (uint8_t)magic[0];
    h[1] = (uint8_t)magic[1];
    h[2] = ver;
    h[3] = type;
    h[4] = (uint8_t)(len >> 24);
    h[5] = (uint8_t)(len >> 16);
    h[6] = (uint8_t)(len >> 8);
    h[7] = (uint8_t)len;
}

static void test_header_check(void **state)
{
    (void)state;
    uint8_t h[PEER_HEADER_BYTES];
    uint32_t n = 0;
    char err[256];
    hdr_of(h, "RK", 1, 0, 1234);
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), 0);
    assert_int_equal(n, 1234);
    hdr_of(h, "RK", 1, 0, PEER_MAX_FRAME);
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), 0);

    hdr_of(h, "RK", 1, 0, PEER_MAX_FRAME + 1);
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), -1);
    assert_string_equal(err, "frame of 67108865 bytes is over the limit of 67108864");
    hdr_of(h, "GE", 1, 0, 10); /* "GET / HTTP..." sent to the peer port */
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a ringkv peer frame"));
    hdr_of(h, "RK", 2, 0, 10);
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), -1);
    assert_string_equal(err, "peer protocol version 2; this node speaks 1");
    hdr_of(h, "RK", 1, 7, 10);
    assert_int_equal(peer_header_check(h, PEER_MAX_FRAME, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown frame type 7"));
}

static void test_envelope_round_trip(void **state)
{
    (void)state;
    uint8_t blob[300];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)i;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
    env.push_pull.data = blob;
    env.push_pull.len = sizeof blob;
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    uint32_t blen;
    char err[256];
    assert_int_equal(peer_header_check(buf, PEER_MAX_FRAME, &blen, err, sizeof err), 0);
    assert_int_equal(blen + PEER_HEADER_BYTES, len);
    assert_memory_equal(buf, "RK\x01\x00", 4);
    Ringkv__Envelope *got = peer_envelope_decode(buf + PEER_HEADER_BYTES, blen, err, sizeof err);
    assert_non_null(got);
    assert_int_equal(got->body_case, RINGKV__ENVELOPE__BODY_PUSH_PULL);
    assert_int_equal(got->push_pull.len, sizeof blob);
    assert_memory_equal(got->push_pull.data, blob, sizeof blob);
    peer_envelope_free(got);
    free(buf);

    Ringkv__PeerError pe = RINGKV__PEER_ERROR__INIT;
    pe.message = "node id 'n2' is taken";
    env.body_case = RINGKV__ENVELOPE__BODY_ERROR;
    env.error = &pe;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    got = peer_envelope_decode(buf + PEER_HEADER_BYTES, len - PEER_HEADER_BYTES, err, sizeof err);
    assert_non_null(got);
    assert_int_equal(got->body_case, RINGKV__ENVELOPE__BODY_ERROR);
    assert_string_equal(got->error->message, "node id 'n2' is taken");
    peer_envelope_free(got);
    free(buf);
}

/* The write-key sniffer finds a replica write's key in its packed frame,
 * with every other field set around it, and nothing in a read, in a frame
 * cut short or in a write without a record. */
static void test_sniff_write_key(void **state)
{
    (void)state;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWrite w = RINGKV__REPLICA_WRITE__INIT;
    Ringkv__Record rec = RINGKV__RECORD__INIT;
    uint8_t value[200];
    memset(value, 'v', sizeof value);
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE;
    env.write = &w;
    w.id = 0x123456789abcULL;
    w.hint_for = "node7";
    w.record = &rec;
    rec.key.data = (uint8_t *)"user:42";
    rec.key.len = 7;
    rec.value.data = value;
    rec.value.len = sizeof value;
    rec.tombstone = true;
    rec.expires_ms = 1ULL << 40;
    rec.hlc = ~0ULL;
    rec.origin = "node3";
    uint8_t *buf;
    size_t len;
    const uint8_t *key;
    size_t klen;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    const uint8_t *body = buf + PEER_HEADER_BYTES;
    size_t blen = len - PEER_HEADER_BYTES;
    assert_true(peer_sniff_write_key(body, blen, &key, &klen));
    assert_int_equal(klen, 7);
    assert_memory_equal(key, "user:42", 7);
    assert_true(key > body && key + klen <= body + blen);
    for (size_t cut = 0; cut < blen; cut++)
        assert_false(peer_sniff_write_key(body, cut, &key, &klen));
    free(buf);

    w.record = NULL;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_false(peer_sniff_write_key(buf + PEER_HEADER_BYTES, len - PEER_HEADER_BYTES, &key, &klen));
    free(buf);

    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    rd.id = 9;
    rd.key.data = (uint8_t *)"user:42";
    rd.key.len = 7;
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_false(peer_sniff_write_key(buf + PEER_HEADER_BYTES, len - PEER_HEADER_BYTES, &key, &klen));
    free(buf);
}

/* The direct reads' size follows what arrives: one read per request once
 * it has seen one, small again once requests are small. */
static void test_read_size_follows_requests(void **state)
{
    (void)state;
    const size_t min = 896, max = 64 * 1024;
    size_t size = min, reads = 0;
    /* Requests of 1075 bytes (a RESP SET of 1 KiB), one at a time. */
    for (int req = 0; req < 20; req++) {
        size_t left = 1075;
        while (left) {
            size_t got = left < size ? left : size;
            size = peer_read_size_next(size, got, min, max);
            left -= got, reads++;
        }
        if (req >= 1) /* the first took two reads; every later one, one */
            assert_int_equal(reads, 2 + (size_t)req);
    }
    assert_true(size >= 1075 && size <= 4 * 1075);
    /* Small requests bring it back to min, one halving a read. */
    for (int i = 0; i < 10; i++)
        size = peer_read_size_next(size, 45, min, max);
    assert_int_equal(size, min);
    /* Reads that fill it grow it by four, up to max, and no further. */
    size = peer_read_size_next(min, min, min, max);
    assert_int_equal(size, 4 * min);
    for (int i = 0; i < 10; i++)
        size = peer_read_size_next(size, size, min, max);
    assert_int_equal(size, max);
    /* A read that used a quarter or more keeps the size. */
    assert_int_equal(peer_read_size_next(8192, 2048, min, max), 8192);
    assert_int_equal(peer_read_size_next(8192, 2047, min, max), 4096);
    /* Never under min, whatever it was asked. */
    assert_int_equal(peer_read_size_next(1000, 10, min, max), min);
}

/* Byte i of the stream test_send_and_read_direct sends. */
static uint8_t stream_byte(size_t i) { return (uint8_t)(i * 7 + i / 251); }

/* peer_send_buffer and peer_read_direct over a socket pair: a buffer of one
 * chain and one of many chains (more than one sendmsg takes) arrive whole
 * and in order through a socket that fills up, where a send that finds it
 * full (EAGAIN) drains nothing and every other drains what it sent; the end
 * of the stream reads 0, and writing to a peer that has gone is EPIPE, not
 * a SIGPIPE that would end this process. */
static void test_send_and_read_direct(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK), 0);
    int small = 4096;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    struct evbuffer *out = evbuffer_new(), *in = evbuffer_new();
    assert_non_null(out);
    assert_non_null(in);

    /* One chain: one send. */
    assert_int_equal(evbuffer_add(out, "+OK\r\n", 5), 0);
    assert_int_equal(peer_send_buffer(out, sv[0]), 5);
    assert_int_equal(evbuffer_get_length(out), 0);
    assert_int_equal(peer_send_buffer(out, sv[0]), 0); /* nothing to send */
    char small_got[8];
    assert_int_equal(peer_read_direct(in, sv[1], 896), 5);
    assert_int_equal(evbuffer_remove(in, small_got, sizeof small_got), 5);
    assert_memory_equal(small_got, "+OK\r\n", 5);
    errno = 0;
    assert_int_equal(peer_read_direct(in, sv[1], 896), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    /* 40 chains of 3,000 bytes. */
    enum { PIECES = 40, PIECE = 3000, TOTAL = PIECES * PIECE };
    uint8_t piece[PIECE];
    for (size_t p = 0; p < PIECES; p++) {
        struct evbuffer *one = evbuffer_new();
        for (size_t i = 0; i < PIECE; i++)
            piece[i] = stream_byte(p * PIECE + i);
        assert_int_equal(evbuffer_add(one, piece, PIECE), 0);
        assert_int_equal(evbuffer_add_buffer(out, one), 0); /* moves the chain */
        evbuffer_free(one);
    }
    assert_true(evbuffer_peek(out, -1, NULL, NULL, 0) > 16);
    uint8_t *got = malloc(TOTAL);
    assert_non_null(got);
    const size_t wants[] = {700, 1024, 3000, 4096, 64};
    size_t sent = 0, recvd = 0, full = 0;
    for (int round = 0; recvd < TOTAL; round++) {
        assert_true(round < 100000);
        size_t before = evbuffer_get_length(out);
        if (before > 0) {
            errno = 0;
            ssize_t n = peer_send_buffer(out, sv[0]);
            if (n < 0) {
                assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
                assert_int_equal(evbuffer_get_length(out), before);
                full++;
            } else {
                assert_true(n > 0);
                assert_int_equal(before - evbuffer_get_length(out), (size_t)n);
                sent += (size_t)n;
            }
        }
        ssize_t r = peer_read_direct(in, sv[1], wants[round % 5]);
        if (r > 0) {
            assert_true((size_t)r <= wants[round % 5]);
            assert_int_equal(evbuffer_remove(in, got + recvd, (size_t)r), r);
            recvd += (size_t)r;
        } else {
            assert_int_equal(r, -1);
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        }
    }
    assert_int_equal(sent, TOTAL);
    assert_int_equal(recvd, TOTAL);
    assert_true(full > 0); /* the socket did fill up */
    for (size_t i = 0; i < TOTAL; i++)
        if (got[i] != stream_byte(i))
            fail_msg("byte %zu: %u, not %u", i, got[i], stream_byte(i));
    free(got);

    /* The end of the stream, then a peer that has gone. */
    close(sv[0]);
    assert_int_equal(peer_read_direct(in, sv[1], 896), 0);
    assert_int_equal(evbuffer_add(out, "x", 1), 0);
    errno = 0;
    assert_int_equal(peer_send_buffer(out, sv[1]), -1);
    assert_int_equal(errno, EPIPE);
    struct evbuffer *two = evbuffer_new();
    assert_int_equal(evbuffer_add(two, "zz", 2), 0);
    assert_int_equal(evbuffer_add_buffer(out, two), 0); /* a second chain */
    evbuffer_free(two);
    assert_int_equal(evbuffer_peek(out, -1, NULL, NULL, 0), 2);
    errno = 0;
    assert_int_equal(peer_send_buffer(out, sv[1]), -1); /* sendmsg: no SIGPIPE either */
    assert_int_equal(errno, EPIPE);
    close(sv[1]);
    evbuffer_free(out);
    evbuffer_free(in);
}

/* peer_frame_peek: nothing until a frame is whole, then its body in one
 * piece (here split over two chains), still in the buffer; a bad header
 * refused with the reason. */
static void test_frame_peek(void **state)
{
    (void)state;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    rd.id = 7;
    rd.key.data = (uint8_t *)"some key";
    rd.key.len = 8;
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    struct evbuffer *in = evbuffer_new();
    const uint8_t *body;
    uint32_t blen;
    char err[256] = "";
    assert_int_equal(peer_frame_peek(in, &body, &blen, err, sizeof err), 0);
    evbuffer_add(in, buf, PEER_HEADER_BYTES - 1);
    assert_int_equal(peer_frame_peek(in, &body, &blen, err, sizeof err), 0);
    evbuffer_add(in, buf + PEER_HEADER_BYTES - 1, 3);
    assert_int_equal(peer_frame_peek(in, &body, &blen, err, sizeof err), 0);
    evbuffer_add(in, buf + PEER_HEADER_BYTES + 2, len - PEER_HEADER_BYTES - 2);
    assert_int_equal(peer_frame_peek(in, &body, &blen, err, sizeof err), 1);
    assert_int_equal(blen, len - PEER_HEADER_BYTES);
    assert_memory_equal(body, buf + PEER_HEADER_BYTES, blen);
    assert_int_equal(evbuffer_get_length(in), len);
    evbuffer_drain(in, len);
    buf[0] = 'X';
    evbuffer_add(in, buf, len);
    assert_int_equal(peer_frame_peek(in, &body, &blen, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad frame header: not a ringkv peer frame"));
    evbuffer_free(in);
    free(buf);
}

static void test_arena_decode(void **state)
{
    (void)state;
    static peer_arena arena;
    enum { BIG = 3 * PEER_ARENA_BYTES };
    size_t huge = PEER_ARENA_MAX_MORE + 1;
    char *big = malloc(huge + 1);
    assert_non_null(big);
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWrite w = RINGKV__REPLICA_WRITE__INIT;
    Ringkv__Record rec = RINGKV__RECORD__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE;
    env.write = &w;
    w.record = &rec;
    rec.key.data = (uint8_t *)"k";
    rec.key.len = 1;
    rec.origin = "node1";
    rec.value.data = (uint8_t *)"value";
    rec.value.len = 5;
    memset(big, 'b', huge);
    /* Strings are copied into the arena (bytes point into the frame): a
     * string larger than the arena goes to malloc once; the second block
     * then holds the next ones, up to its limit. */
    size_t sizes[] = {10, BIG, 10, BIG, BIG, 10, huge, huge, BIG};
    bool spills[] = {false, true, false, false, false, false, true, true, false};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        big[sizes[i]] = '\0';
        w.hint_for = big;
        w.id = i;
        uint8_t *buf;
        size_t len;
        char err[256];
        assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
        Ringkv__Envelope *got = peer_envelope_decode_in(&arena, buf + PEER_HEADER_BYTES,
                                                        len - PEER_HEADER_BYTES, err, sizeof err);
        assert_non_null(got);
        assert_int_equal(got->write->id, i);
        assert_int_equal(strlen(got->write->hint_for), sizes[i]);
        assert_memory_equal(got->write->hint_for, big, sizes[i]);
        big[sizes[i]] = 'b';
        /* The value read in place, in the frame, when decoded by hand;
         * protobuf-c (a spill: the arena had no room) copies it. */
        const uint8_t *v = got->write->record->value.data;
        assert_int_equal(v > buf && v + 5 <= buf + len, !spills[i]);
        assert_memory_equal(v, "value", 5);
        assert_int_equal(arena.spilled > 0, spills[i]);
        peer_envelope_free_in(&arena, got);
        assert_int_equal(arena.used, 0);
        assert_true(arena.more_cap <= PEER_ARENA_MAX_MORE);
        free(buf);
    }
    assert_int_equal(arena.more_cap, PEER_ARENA_MAX_MORE);
    peer_arena_release(&arena);
    free(big);
}

/* The error frame shown in proto/README.md, "Peer frames", byte for byte. */
static void test_readme_example(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0x08, 0x01,
                                   0x5a, 0x10, 0x0a, 0x0e, 'i',  'd',  ' ',  'n',  '2',  ' ',
                                   'i',  's',  ' ',  't',  'a',  'k',  'e',  'n'};
    Ringkv__PeerError pe = RINGKV__PEER_ERROR__INIT;
    pe.message = "id n2 is taken";
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_ERROR;
    env.error = &pe;
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    free(buf);
}

/* The stream_pull frame shown in proto/README.md, byte for byte. */
static void test_readme_stream_pull(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x52, 0x4b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x19, 0x08, 0x01, 0x82,
                                   0x01, 0x14, 0x08, 0x07, 0x11, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x19, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    Ringkv__StreamPull rq = RINGKV__STREAM_PULL__INIT;
    rq.id = 7;
    rq.lo = rq.hi = 1;
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_STREAM_PULL;
    env.stream_pull = &rq;
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    free(buf);
}

static void test_envelope_rejections(void **state)
{
    (void)state;
    char err[256];
    /* field 1 (version) = 2 */
    const uint8_t v2[] = {0x08, 0x02};
    assert_null(peer_envelope_decode(v2, sizeof v2, err, sizeof err));
    assert_string_equal(err, "Envelope version 2; this node speaks 1");
    /* no version at all reads as 0 */
    assert_null(peer_envelope_decode(v2, 0, err, sizeof err));
    /* bytes field 10 claiming more than there is */
    const uint8_t trunc[] = {0x08, 0x01, 0x52, 0x7f, 0x00};
    assert_null(peer_envelope_decode(trunc, sizeof trunc, err, sizeof err));
    assert_non_null(strstr(err, "not a valid Envelope"));
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_null(peer_envelope_decode(junk, sizeof junk, err, sizeof err));
    /* A field numbered 0 with an over-long key (0x80 0x00), which
     * protobuf-c keeps but cannot read back once packed: in the envelope,
     * in its body, and in a record of a repeated field of a body (found by
     * fuzz_peer in a MerkleLeavesReply). */
    const uint8_t zero_top[] = {0x08, 0x01, 0x80, 0x00, 0x4e};
    const uint8_t zero_body[] = {0x08, 0x01, 0xba, 0x01, 0x05, 0x08, 0x08, 0x80, 0x00, 0x4e};
    const uint8_t zero_record[] = {0x08, 0x01, 0xba, 0x01, 0x0b, 0x08, 0x08, 0x22, 0x07,
                                   0x0a, 0x02, 'k', '1', 0x80, 0x00, 0x4e};
    const uint8_t *zeros[] = {zero_top, zero_body, zero_record};
    const size_t zlens[] = {sizeof zero_top, sizeof zero_body, sizeof zero_record};
    for (int i = 0; i < 3; i++) {
        assert_null(peer_envelope_decode(zeros[i], zlens[i], err, sizeof err));
        assert_string_equal(err, "frame body holds a field numbered 0 (invalid protobuf)");
    }
    /* The same bodies with the field numbered 15 instead decode. */
    const uint8_t ok_record[] = {0x08, 0x01, 0xba, 0x01, 0x0b, 0x08, 0x08, 0x22, 0x07,
                                 0x0a, 0x02, 'k', '1', 0xf8, 0x00, 0x4e};
    Ringkv__Envelope *env = peer_envelope_decode(ok_record, sizeof ok_record, err, sizeof err);
    assert_non_null(env);
    assert_int_equal(env->merkle_leaves_reply->n_records, 1);
    peer_envelope_free(env);
    peer_envelope_free(NULL);
}

/* ---- live connections on one loop ---- */

typedef struct fx {
    struct event_base *base;
    peer *server; /* answers push_pull with its reversal, errors otherwise */
    peer *client;
    bool server_silent; /* answer nothing */
    int replies;
    char last_err[256];
    char last_body[64];
} fx;

static void on_server_message(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    fx *f = ctx;
    if (f->server_silent)
        return;
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__PeerError pe = RINGKV__PEER_ERROR__INIT;
    out.version = PEER_VERSION;
    uint8_t rev[64];
    if (env->body_case == RINGKV__ENVELOPE__BODY_PUSH_PULL && env->push_pull.len > sizeof rev) {
        /* A long body: its length and the sum of its bytes. */
        uint32_t sum = 0;
        for (size_t i = 0; i < env->push_pull.len; i++)
            sum += env->push_pull.data[i];
        int n = snprintf((char *)rev, sizeof rev, "len=%zu sum=%u", env->push_pull.len, sum);
        out.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
        out.push_pull.data = rev;
        out.push_pull.len = (size_t)n;
    } else if (env->body_case == RINGKV__ENVELOPE__BODY_PUSH_PULL) {
        for (size_t i = 0; i < env->push_pull.len; i++)
            rev[i] = env->push_pull.data[env->push_pull.len - 1 - i];
        out.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
        out.push_pull.data = rev;
        out.push_pull.len = env->push_pull.len;
    } else {
        pe.message = "refused";
        out.body_case = RINGKV__ENVELOPE__BODY_ERROR;
        out.error = &pe;
    }
    assert_int_equal(peer_reply(pc, &out), 0);
}

static void on_client_message(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    (void)ctx, (void)pc, (void)env;
}

static void on_reply(void *ctx, const Ringkv__Envelope *reply, const char *err)
{
    fx *f = ctx;
    f->replies++;
    f->last_err[0] = f->last_body[0] = '\0';
    if (!reply) {
        snprintf(f->last_err, sizeof f->last_err, "%s", err);
    } else if (reply->body_case == RINGKV__ENVELOPE__BODY_PUSH_PULL) {
        snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)reply->push_pull.len,
                 (const char *)reply->push_pull.data);
    } else {
        snprintf(f->last_body, sizeof f->last_body, "error: %s", reply->error->message);
    }
    event_base_loopbreak(f->base);
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char err[256];
    f->base = event_base_new();
    f->server = peer_new(f->base, "127.0.0.1:0", on_server_message, f, err, sizeof err);
    f->client = peer_new(f->base, "127.0.0.1:0", on_client_message, f, err, sizeof err);
    if (!f->base || !f->server || !f->client)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    peer_free(f->client);
    peer_free(f->server);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Sends body to addr and runs the loop until the answer (or 5 s). */
static void request(fx *f, const char *addr, const char *body, uint32_t timeout_ms)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
    env.push_pull.data = (uint8_t *)body;
    env.push_pull.len = strlen(body);
    char err[256];
    int before = f->replies;
    assert_int_equal(peer_request(f->client, addr, &env, timeout_ms, on_reply, f, err, sizeof err),
                     0);
    assert_int_equal(f->replies, before); /* never called from peer_request */
    struct timeval tv = {5, 0};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
    assert_int_equal(f->replies, before + 1);
}

static void test_request_reply(void **state)
{
    fx *f = *state;
    request(f, peer_bound_addr(f->server), "abc", 2000);
    assert_string_equal(f->last_body, "cba");
    request(f, peer_bound_addr(f->server), "hello", 2000);
    assert_string_equal(f->last_body, "olleh");
    peer_stats ps;
    peer_get_stats(f->server, &ps);
    assert_true(ps.accepted == 2 && ps.frames_in == 2 && ps.frames_out == 2);
    assert_true(ps.dropped == 0);
}

static void test_refused_and_bad_address(void **state)
{
    fx *f = *state;
    /* A port nobody listens on: bound, never listening. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", ntohs(a.sin_port));
    request(f, dead, "x", 2000);
    assert_true(f->last_err[0] != '\0');
    close(fd);

    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    char err[256];
    assert_int_equal(peer_request(f->client, "nonsense", &env, 100, on_reply, f, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "not a HOST:PORT"));
}

static void test_timeout(void **state)
{
    fx *f = *state;
    f->server_silent = true;
    request(f, peer_bound_addr(f->server), "anyone?", 200);
    assert_string_equal(f->last_err, "no answer within 200 ms");
    f->server_silent = false;
}

/* Raw bytes to the server's port; returns what the server sent back before
 * closing (or timing out). */
static size_t send_raw(fx *f, const void *data, size_t len, uint8_t *out, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)peer_bound_port(f->server))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(send(fd, data, len, 0), (ssize_t)len);
    shutdown(fd, SHUT_WR);
    /* Let the loop read, judge and close. */
    struct timeval tv = {0, 300 * 1000};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
    size_t got = 0;
    for (ssize_t n; got < cap && (n = recv(fd, out + got, cap - got, MSG_DONTWAIT)) > 0;)
        got += (size_t)n;
    close(fd);
    return got;
}

static void test_bad_input_dropped_server_goes_on(void **state)
{
    fx *f = *state;
    uint8_t out[256];
    peer_stats before, after;
    peer_get_stats(f->server, &before);

    assert_int_equal(send_raw(f, "GET / HTTP/1.0\r\n\r\n", 18, out, sizeof out), 0);
    uint8_t h[PEER_HEADER_BYTES];
    hdr_of(h, "RK", 1, 0, 0xffffffffu); /* a 4 GiB claim: refused before reading */
    assert_int_equal(send_raw(f, h, sizeof h, out, sizeof out), 0);
    uint8_t junk[PEER_HEADER_BYTES + 4];
    hdr_of(junk, "RK", 1, 0, 4);
    memset(junk + PEER_HEADER_BYTES, 0xff, 4); /* not protobuf */
    assert_int_equal(send_raw(f, junk, sizeof junk, out, sizeof out), 0);
    peer_get_stats(f->server, &after);
    assert_true(after.dropped == before.dropped + 3);

    /* An unknown message gets an answer, not a drop (forward compatible). */
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    uint8_t *buf;
    size_t len;
    assert_int_equal(peer_frame_encode(&env, &buf, &len), 0);
    size_t got = send_raw(f, buf, len, out, sizeof out);
    free(buf);
    uint32_t blen;
    char err[256];
    assert_true(got > PEER_HEADER_BYTES);
    assert_int_equal(peer_header_check(out, PEER_MAX_FRAME, &blen, err, sizeof err), 0);
    Ringkv__Envelope *ans = peer_envelope_decode(out + PEER_HEADER_BYTES, blen, err, sizeof err);
    assert_non_null(ans);
    assert_int_equal(ans->body_case, RINGKV__ENVELOPE__BODY_ERROR);
    peer_envelope_free(ans);

    /* And real requests still work. */
    request(f, peer_bound_addr(f->server), "still here", 2000);
    assert_string_equal(f->last_body, "ereh llits");
}

/* Answers that outgrow the socket: a peer sends requests and reads none of
 * the answers until all are sent. The connection writes what the socket
 * takes at each pass's end and leaves the rest to the bufferevent; once the
 * peer reads, every answer arrives, in order, and the connection goes on
 * answering. (Were the rest left for the next pass's write, the last
 * answers would wait for a request that never comes.) */
enum { OG_REQS = 150000, OG_BODY = 60 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void body_of(char *b, int i)
{
    memset(b, '.', OG_BODY);
    char num[16];
    int n = snprintf(num, sizeof num, "%d", i);
    memcpy(b, num, (size_t)n);
}

/* Reads whole answer frames from fd into buf/len; checks each against the
 * reversal of request *next and counts it. */
static void take_answers(int fd, uint8_t *buf, size_t *len, size_t cap, int *next)
{
    ssize_t n;
    while (*len < cap && (n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT)) > 0)
        *len += (size_t)n;
    size_t at = 0;
    char err[128], want[OG_BODY];
    uint32_t blen;
    while (*len - at >= PEER_HEADER_BYTES) {
        assert_int_equal(peer_header_check(buf + at, PEER_MAX_FRAME, &blen, err, sizeof err), 0);
        if (*len - at - PEER_HEADER_BYTES < blen)
            break;
        Ringkv__Envelope *env = peer_envelope_decode(buf + at + PEER_HEADER_BYTES, blen, err,
                                                     sizeof err);
        assert_non_null(env);
        assert_int_equal(env->body_case, RINGKV__ENVELOPE__BODY_PUSH_PULL);
        assert_int_equal(env->push_pull.len, OG_BODY);
        char body[OG_BODY];
        body_of(body, *next);
        for (int i = 0; i < OG_BODY; i++)
            want[i] = body[OG_BODY - 1 - i];
        assert_memory_equal(env->push_pull.data, want, OG_BODY);
        peer_envelope_free(env);
        (*next)++;
        at += PEER_HEADER_BYTES + blen;
    }
    memmove(buf, buf + at, *len - at);
    *len -= at;
}

static void test_answers_outgrow_the_socket(void **state)
{
    fx *f = *state;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)peer_bound_port(f->server))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);

    /* All the requests, as one stream of frames, sent as the socket takes
     * them while the loop runs; no answer is read meanwhile. */
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
    char body[OG_BODY];
    env.push_pull.data = (uint8_t *)body;
    env.push_pull.len = OG_BODY;
    size_t flen = peer_frame_size(&env);
    uint8_t *reqs = malloc(flen * OG_REQS);
    assert_non_null(reqs);
    for (int i = 0; i < OG_REQS; i++) {
        uint8_t *one;
        size_t len;
        body_of(body, i);
        assert_int_equal(peer_frame_encode(&env, &one, &len), 0);
        assert_int_equal(len, flen);
        memcpy(reqs + (size_t)i * flen, one, len);
        free(one);
    }
    size_t total = flen * OG_REQS, sent = 0;
    peer_stats ps;
    uint64_t end = now_ms() + 20000;
    do {
        ssize_t n = send(fd, reqs + sent, total - sent, MSG_DONTWAIT);
        if (n > 0)
            sent += (size_t)n;
        else
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        peer_get_stats(f->server, &ps);
    } while ((sent < total || ps.frames_in < OG_REQS) && now_ms() < end);
    assert_int_equal(sent, total);
    assert_int_equal(ps.frames_in, OG_REQS);
    free(reqs);
    /* The answers (as many bytes as the requests) are far more than the
     * kernel holds for an unread socket: most are still queued in the node. */
    int queued = 0;
    assert_int_equal(ioctl(fd, FIONREAD, &queued), 0);
    assert_true((size_t)queued < total / 2);

    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    int next = 0;
    while (next < OG_REQS && now_ms() < end) {
        take_answers(fd, buf, &len, cap, &next);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(next, OG_REQS);
    assert_int_equal(len, 0);

    /* And one more request is answered at once. */
    uint8_t *one;
    size_t olen;
    body_of(body, OG_REQS);
    assert_int_equal(peer_frame_encode(&env, &one, &olen), 0);
    assert_int_equal(send(fd, one, olen, 0), (ssize_t)olen);
    free(one);
    while (next < OG_REQS + 1 && now_ms() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        take_answers(fd, buf, &len, cap, &next);
    }
    assert_int_equal(next, OG_REQS + 1);
    free(buf);
    close(fd);
    peer_get_stats(f->server, &ps);
    assert_int_equal(ps.dropped, 0);
}

/* A frame far longer than one read, arriving in small pieces: the inbound
 * connection reads it across many reads (peer_read_direct, growing each
 * read up to READ_MAX) and handles it once whole; the frame after it, in
 * the same stream, too. */
static void test_long_frame_in_pieces(void **state)
{
    fx *f = *state;
    enum { BODY = 600 * 1024, PIECE = 1500 };
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)peer_bound_port(f->server))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);

    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
    uint8_t *body = malloc(BODY);
    assert_non_null(body);
    uint32_t sum = 0;
    for (size_t i = 0; i < BODY; i++)
        sum += body[i] = (uint8_t)(i * 7 + i / 251);
    env.push_pull.data = body;
    env.push_pull.len = BODY;
    uint8_t *big, *small;
    size_t blen, slen;
    assert_int_equal(peer_frame_encode(&env, &big, &blen), 0);
    env.push_pull.data = (uint8_t *)"xyz";
    env.push_pull.len = 3;
    assert_int_equal(peer_frame_encode(&env, &small, &slen), 0);
    uint8_t *stream = malloc(blen + slen);
    assert_non_null(stream);
    memcpy(stream, big, blen);
    memcpy(stream + blen, small, slen);
    free(big);
    free(small);

    size_t total = blen + slen, sent = 0;
    uint64_t end = now_ms() + 20000;
    while (sent < total && now_ms() < end) {
        size_t n = total - sent < PIECE ? total - sent : PIECE;
        ssize_t w = send(fd, stream + sent, n, MSG_DONTWAIT);
        if (w > 0)
            sent += (size_t)w;
        else
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(sent, total);

    /* Both answers, in order. */
    char want[64];
    snprintf(want, sizeof want, "len=%d sum=%u", BODY, sum);
    uint8_t buf[512];
    size_t len = 0;
    int answers = 0;
    while (answers < 2 && now_ms() < end) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        ssize_t n = recv(fd, buf + len, sizeof buf - len, MSG_DONTWAIT);
        if (n > 0)
            len += (size_t)n;
        uint32_t flen;
        char err[128];
        while (len >= PEER_HEADER_BYTES &&
               peer_header_check(buf, PEER_MAX_FRAME, &flen, err, sizeof err) == 0 &&
               len >= PEER_HEADER_BYTES + flen) {
            Ringkv__Envelope *r = peer_envelope_decode(buf + PEER_HEADER_BYTES, flen, err,
                                                       sizeof err);
            assert_non_null(r);
            assert_int_equal(r->body_case, RINGKV__ENVELOPE__BODY_PUSH_PULL);
            if (answers == 0)
                assert_true(r->push_pull.len == strlen(want) &&
                            memcmp(r->push_pull.data, want, strlen(want)) == 0);
            else
                assert_true(r->push_pull.len == 3 && memcmp(r->push_pull.data, "zyx", 3) == 0);
            peer_envelope_free(r);
            answers++;
            memmove(buf, buf + PEER_HEADER_BYTES + flen, len - PEER_HEADER_BYTES - flen);
            len -= PEER_HEADER_BYTES + flen;
        }
    }
    assert_int_equal(answers, 2);
    free(stream);
    free(body);
    close(fd);
    peer_stats ps;
    peer_get_stats(f->server, &ps);
    assert_int_equal(ps.dropped, 0);
}

#define FT(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_check),
        cmocka_unit_test(test_envelope_round_trip),
        cmocka_unit_test(test_sniff_write_key),
        cmocka_unit_test(test_frame_peek),
        cmocka_unit_test(test_read_size_follows_requests),
        cmocka_unit_test(test_send_and_read_direct),
        cmocka_unit_test(test_arena_decode),
        cmocka_unit_test(test_readme_example),
        cmocka_unit_test(test_readme_stream_pull),
        cmocka_unit_test(test_envelope_rejections),
        FT(test_request_reply),
        FT(test_refused_and_bad_address),
        FT(test_timeout),
        FT(test_bad_input_dropped_server_goes_on),
        FT(test_answers_outgrow_the_socket),
        FT(test_long_frame_in_pieces),
    };
    return cmocka_run_group_tests_name("peer", tests, NULL, NULL);
}
