/* wire_test: the helpers test_wire.c and test_wire_check.c share: hex
 * in and out, round trips, and rejections that must allocate nothing.
 */
#ifndef RINGKV_WIRE_TEST_H
#define RINGKV_WIRE_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"


static inline int zone_setup(void **state)
{
    *state = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    return *state ? 0 : -1;
}

static inline int zone_teardown(void **state)
{
    msgpack_zone_free(*state);
    return 0;
}

static inline wire_bytes bytes_of(const char *s)
{
    return (wire_bytes){(const uint8_t *)s, strlen(s)};
}

/* Parses "00 0a ff" into out; returns the byte count. */
static inline size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    int used;
    while (sscanf(hex, " %2x%n", &v, &used) == 1) {
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        hex += used;
    }
    return n;
}

/* Formats bytes as "00 0a ff", the way proto/README.md shows them. */
static inline void tohex(const void *buf, size_t len, char *out, size_t cap)
{
    const uint8_t *p = buf;
    assert_true(cap >= len * 3 + 1);
    out[0] = '\0';
    for (size_t i = 0; i < len; i++)
        out += sprintf(out, "%s%02x", i ? " " : "", p[i]);
}

/* The body of the one frame in sb, after checking its header. */
static const uint8_t *only_body(const msgpack_sbuffer *sb, size_t *len)
{
    assert_true(sb->size >= WIRE_HEADER_BYTES);
    *len = sb->size - WIRE_HEADER_BYTES;
    assert_int_equal(wire_frame_len((const uint8_t *)sb->data), *len);
    return (const uint8_t *)sb->data + WIRE_HEADER_BYTES;
}

static inline void assert_bytes_equal(wire_bytes got, wire_bytes want)
{
    assert_int_equal(got.len, want.len);
    if (want.len > 0)
        assert_memory_equal(got.ptr, want.ptr, want.len);
}

static inline void assert_within(wire_bytes b, const uint8_t *body, size_t len)
{
    assert_true(b.ptr >= body && b.ptr + b.len <= body + len);
}

/* Encodes req, decodes it back and checks every field survived. */
static inline void round_trip_request(msgpack_zone *zone, const wire_request *req)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_request(&sb, req);
    size_t len;
    const uint8_t *body = only_body(&sb, &len);
    wire_request got;
    uint64_t id = 12345;
    char err[256] = "";
    assert_int_equal(wire_decode_request(body, len, zone, &got, &id, err,
                                         sizeof err), 0);
    assert_string_equal(err, "");
    assert_true(id == req->id && got.id == req->id);
    assert_int_equal(got.op, req->op);
    assert_bytes_equal(got.key, req->key);
    assert_bytes_equal(got.value, req->value);
    assert_true(got.ttl_ms == req->ttl_ms);
    int data_op = req->op == WIRE_OP_GET || req->op == WIRE_OP_PUT || req->op == WIRE_OP_DEL;
    assert_int_equal(got.consistency, data_op ? req->consistency : WIRE_CONSISTENCY_DEFAULT);
    /* zero copy: msgpack-c's str/bin objects point into the body */
    if (got.key.len)
        assert_within(got.key, body, len);
    if (got.value.len)
        assert_within(got.value, body, len);
    msgpack_zone_clear(zone);
    msgpack_sbuffer_destroy(&sb);
}

/* Decodes a hex body as a request; returns wire_decode_request's result. */
static inline int req_hex(msgpack_zone *zone, const char *hex, uint64_t *id,
                   char *err, size_t errlen)
{
    uint8_t buf[256];
    size_t n = unhex(hex, buf, sizeof buf);
    wire_request req;
    err[0] = '\0';
    int rc = wire_decode_request(buf, n, zone, &req, id, err, errlen);
    msgpack_zone_clear(zone);
    return rc;
}

/* The request in hex is rejected with exactly this id and message. */
static inline void reject_req(msgpack_zone *zone, const char *hex, uint64_t want_id,
                       const char *want_err)
{
    char err[256];
    uint64_t id = 999;
    if (req_hex(zone, hex, &id, err, sizeof err) != -1)
        fail_msg("accepted %s", hex);
    if (strstr(err, want_err) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", hex, err, want_err);
    assert_true(id == want_id);
}

/* Decodes a hex body into buf (which *out then points into). */
static inline int resp_hex(msgpack_zone *zone, const char *hex, uint8_t buf[256],
                    wire_response *out, char *err, size_t errlen)
{
    size_t n = unhex(hex, buf, 256);
    err[0] = '\0';
    return wire_decode_response(buf, n, zone, out, err, errlen);
}

static inline void reject_resp(msgpack_zone *zone, const char *hex,
                        const char *want_err)
{
    wire_response r;
    char err[256];
    uint8_t buf[256];
    if (resp_hex(zone, hex, buf, &r, err, sizeof err) != -1)
        fail_msg("accepted %s", hex);
    if (strstr(err, want_err) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", hex, err, want_err);
    msgpack_zone_clear(zone);
}

/* The zone's bookkeeping, to show a rejection allocated nothing. */
typedef struct zone_mark {
    size_t free;
    void *head;
} zone_mark;

static inline zone_mark zone_mark_of(const msgpack_zone *z)
{
    return (zone_mark){z->chunk_list.free, z->chunk_list.head};
}

static inline void assert_zone_untouched(const msgpack_zone *z, zone_mark m)
{
    assert_int_equal(z->chunk_list.free, m.free);
    assert_ptr_equal(z->chunk_list.head, m.head);
}

/* Every strict prefix of a valid body fails every decoder. */
static inline void check_prefixes(msgpack_zone *zone, const uint8_t *body, size_t len)
{
    char err[256];
    assert_int_equal(wire_check(body, len, WIRE_MAX_DEPTH, err, sizeof err), 0);
    for (size_t k = 0; k < len; k++) {
        wire_request req;
        wire_response resp;
        uint64_t id;
        err[0] = '\0';
        assert_int_equal(wire_check(body, k, WIRE_MAX_DEPTH, err, sizeof err),
                         -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(wire_decode_request(body, k, zone, &req, &id, err,
                                             sizeof err), -1);
        assert_int_equal(wire_decode_response(body, k, zone, &resp, err,
                                              sizeof err), -1);
        msgpack_zone_clear(zone);
    }
}

#define ZT(f) cmocka_unit_test_setup_teardown(f, zone_setup, zone_teardown)

#endif
