/* Unit tests for proto/wire.c, the client protocol codec: round trips of
 * every request and response shape, the README's worked example byte for
 * byte, responses that are rejected, MEMBERS, TOPOLOGY and meta. Hostile
 * framing and mistyped requests are in test_wire_check.c.
 */
#include "wire_test.h"

/* ---- small functions ---- */

static void test_frame_len(void **state)
{
    (void)state;
    const uint8_t a[4] = {0, 0, 0, 0x11}, b[4] = {0xff, 0xfe, 0x01, 0x00};
    assert_int_equal(wire_frame_len(a), 17);
    assert_int_equal(wire_frame_len(b), 0xfffe0100u);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(wire_op_name(WIRE_OP_GET), "GET");
    assert_string_equal(wire_op_name(WIRE_OP_PUT), "PUT");
    assert_string_equal(wire_op_name(WIRE_OP_DEL), "DEL");
    assert_string_equal(wire_op_name(WIRE_OP_PING), "PING");
    assert_string_equal(wire_op_name(WIRE_OP_STATS), "STATS");
    assert_string_equal(wire_op_name(WIRE_OP_MEMBERS), "MEMBERS");
    assert_string_equal(wire_op_name(WIRE_OP_REMOVE), "REMOVE");
    assert_string_equal(wire_op_name((wire_op)99), "UNKNOWN");
    assert_string_equal(wire_status_name(WIRE_OK), "OK");
    assert_string_equal(wire_status_name(WIRE_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(wire_status_name(WIRE_ERR_BAD_REQUEST), "BAD_REQUEST");
    assert_string_equal(wire_status_name(WIRE_ERR_TOO_LARGE), "TOO_LARGE");
    assert_string_equal(wire_status_name(WIRE_ERR_UNAVAILABLE), "UNAVAILABLE");
    assert_string_equal(wire_status_name(WIRE_ERR_TIMEOUT), "TIMEOUT");
    assert_string_equal(wire_status_name(WIRE_ERR_INTERNAL), "INTERNAL");
    assert_string_equal(wire_status_name((wire_status)7), "UNKNOWN");
}

/* ---- request round trips ---- */

static void test_request_round_trips(void **state)
{
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const wire_request reqs[] = {
        {.id = 1, .op = WIRE_OP_GET, .key = bytes_of("hello")},
        {.id = 2, .op = WIRE_OP_GET, .key = bytes_of(long_key)}, /* bin 16 */
        {.id = 3, .op = WIRE_OP_PUT, .key = bytes_of("k"),
         .value = bytes_of("v")},
        {.id = 4, .op = WIRE_OP_PUT, .key = bytes_of("k"),
         .value = bytes_of("v"), .ttl_ms = 60000},
        {.id = 5, .op = WIRE_OP_PUT, .key = bytes_of("k"),
         .value = bytes_of("v"), .ttl_ms = UINT64_MAX},
        {.id = 6, .op = WIRE_OP_DEL, .key = bytes_of("gone")},
        {.id = 7, .op = WIRE_OP_PING},
        {.id = 8, .op = WIRE_OP_STATS},
        {.id = 0, .op = WIRE_OP_PING},
        {.id = 11, .op = WIRE_OP_MEMBERS},
        {.id = 12, .op = WIRE_OP_REMOVE, .key = bytes_of("node2")},
        {.id = 13, .op = WIRE_OP_GET, .key = bytes_of("k"), .consistency = -1},
        {.id = 14, .op = WIRE_OP_GET, .key = bytes_of("k"), .consistency = 2},
        {.id = 15, .op = WIRE_OP_PUT, .key = bytes_of("k"), .value = bytes_of("v"),
         .consistency = 1},
        {.id = 16, .op = WIRE_OP_PUT, .key = bytes_of("k"), .value = bytes_of("v"),
         .ttl_ms = 5, .consistency = 0},
        {.id = 17, .op = WIRE_OP_PUT, .key = bytes_of("k"), .value = bytes_of("v"),
         .ttl_ms = 5, .consistency = -1},
        {.id = 18, .op = WIRE_OP_DEL, .key = bytes_of("k"), .consistency = 1},
        {.id = 19, .op = WIRE_OP_DEL, .key = bytes_of("k"), .consistency = -1},
        {.id = 20, .op = WIRE_OP_TOPOLOGY},
        {.id = UINT64_MAX, .op = WIRE_OP_REMOVE, .key = bytes_of(long_key)},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        round_trip_request(*state, &reqs[i]);
}

static void test_put_empty_value(void **state)
{
    wire_request req = {.id = 9, .op = WIRE_OP_PUT, .consistency = -1, .key = bytes_of("k"),
                        .value = {NULL, 0}};
    round_trip_request(*state, &req);
    req.value = bytes_of("");
    round_trip_request(*state, &req);
}

static void test_put_1mib_binary_value(void **state)
{
    size_t n = 1 << 20;
    uint8_t *v = malloc(n);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)(i * 7); /* every 256th byte is NUL */
    wire_request req = {.id = 10, .op = WIRE_OP_PUT, .consistency = -1, .key = {v, 3},
                        .value = {v, n}, .ttl_ms = 5};
    round_trip_request(*state, &req);
    free(v);
}

static void test_max_uint64_id(void **state)
{
    wire_request req = {.id = UINT64_MAX, .op = WIRE_OP_GET, .consistency = -1,
                        .key = bytes_of("k")};
    round_trip_request(*state, &req);
    req = (wire_request){.id = UINT64_MAX, .op = WIRE_OP_PING};
    round_trip_request(*state, &req);
}

/* Encoders emit bin for keys and values; a hand-written client may use str,
 * and msgpack-c reads non-negative int formats as unsigned. */
static void test_request_encoding_and_lenient_forms(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_request req = {.id = 1, .op = WIRE_OP_PUT, .consistency = -1, .key = bytes_of("k"),
                        .value = bytes_of("v")};
    wire_encode_request(&sb, &req);
    char hex[128];
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex, "00 00 00 09 94 01 02 c4 01 6b c4 01 76");
    msgpack_sbuffer_destroy(&sb);

    uint8_t body[] = {0x94, 0xd0, 0x05, 0x02, 0xa1, 'k', 0xa3, 'a', 'b', 'c'};
    wire_request got;
    uint64_t id;
    char err[128];
    assert_int_equal(wire_decode_request(body, sizeof body, *state, &got, &id,
                                         err, sizeof err), 0);
    assert_true(id == 5 && got.id == 5 && got.op == WIRE_OP_PUT);
    assert_bytes_equal(got.key, bytes_of("k"));
    assert_bytes_equal(got.value, bytes_of("abc"));
    assert_ptr_equal(got.key.ptr, body + 5);
    assert_ptr_equal(got.value.ptr, body + 7);
}

/* Frames appended one after another (pipelining) each carry their own
 * length, so a reader can split the stream by headers alone. */
static void test_pipelined_frames(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_request get = {.id = 1, .op = WIRE_OP_GET, .consistency = -1, .key = bytes_of("a")};
    wire_request put = {.id = 2, .op = WIRE_OP_PUT, .consistency = -1, .key = bytes_of("bb"),
                        .value = bytes_of("ccc")};
    wire_encode_request(&sb, &get);
    wire_encode_request(&sb, &put);
    wire_encode_request(&sb, &get);
    size_t off = 0, frames = 0;
    while (off < sb.size) {
        const uint8_t *p = (const uint8_t *)sb.data + off;
        uint32_t n = wire_frame_len(p);
        wire_request got;
        char err[128];
        assert_true(off + WIRE_HEADER_BYTES + n <= sb.size);
        assert_int_equal(wire_decode_request(p + WIRE_HEADER_BYTES, n, *state,
                                             &got, NULL, err, sizeof err), 0);
        assert_true(got.id == (frames == 1 ? 2 : 1));
        off += WIRE_HEADER_BYTES + n;
        frames++;
    }
    assert_int_equal(frames, 3);
    assert_int_equal(off, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- response round trips ---- */

static void decode_only_response(msgpack_zone *zone, const msgpack_sbuffer *sb,
                                 wire_response *r)
{
    size_t len;
    const uint8_t *body = only_body(sb, &len);
    char err[256] = "";
    assert_int_equal(wire_decode_response(body, len, zone, r, err, sizeof err),
                     0);
    assert_string_equal(err, "");
}

static void test_status_responses(void **state)
{
    const wire_status all[] = {WIRE_OK, WIRE_NOT_FOUND, WIRE_ERR_BAD_REQUEST,
                               WIRE_ERR_TOO_LARGE, WIRE_ERR_UNAVAILABLE,
                               WIRE_ERR_TIMEOUT, WIRE_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        for (int with_msg = 0; with_msg < 2; with_msg++) {
            if (all[i] == WIRE_OK && with_msg)
                continue; /* an OK str payload is a value, tested below */
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            const char *msg = with_msg ? "timed out: 1 of 2 acks" : NULL;
            wire_encode_status(&sb, UINT64_MAX - i, all[i], msg);
            wire_response r;
            decode_only_response(*state, &sb, &r);
            assert_true(r.id == UINT64_MAX - i);
            assert_int_equal(r.status, all[i]);
            assert_false(r.has_value);
            assert_null(r.stats);
            assert_bytes_equal(r.message, bytes_of(msg ? msg : ""));
            msgpack_sbuffer_destroy(&sb);
        }
    }
}

static void check_value_response(msgpack_zone *zone, uint64_t id,
                                 const uint8_t *v, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_value_head(&sb, id, n);
    if (n > 0)
        msgpack_sbuffer_write(&sb, (const char *)v, n);
    wire_response r;
    decode_only_response(zone, &sb, &r);
    assert_true(r.id == id);
    assert_int_equal(r.status, WIRE_OK);
    assert_true(r.has_value);
    assert_bytes_equal(r.value, (wire_bytes){v, n});
    if (n > 0)
        assert_within(r.value, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void test_value_responses(void **state)
{
    check_value_response(*state, 1, (const uint8_t *)"world", 5);
    check_value_response(*state, UINT64_MAX, NULL, 0);
    size_t n = 1 << 20;
    uint8_t *v = calloc(1, n); /* all NUL but a few */
    assert_non_null(v);
    v[1] = 1;
    v[n - 1] = 0xff;
    check_value_response(*state, 3, v, n);
    free(v);
}

static void test_stats_response(void **state)
{
    const wire_stat st[] = {
        {.name = "keys", .is_num = 1, .num = 42},
        {.name = "node_id", .str = "node1"},
        {.name = "bytes", .is_num = 1, .num = UINT64_MAX},
        {.name = "version", .str = ""},
        {.name = "zero", .is_num = 1, .num = 0},
    };
    size_t n = sizeof st / sizeof st[0];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_stats(&sb, 77, st, n);
    wire_response r;
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 77 && r.status == WIRE_OK && !r.has_value);
    assert_int_equal(r.nstats, n);
    for (size_t i = 0; i < n; i++) {
        assert_bytes_equal(r.stats[i].name, bytes_of(st[i].name));
        assert_int_equal(r.stats[i].is_num, st[i].is_num);
        if (st[i].is_num)
            assert_true(r.stats[i].num == st[i].num);
        else
            assert_bytes_equal(r.stats[i].str, bytes_of(st[i].str));
    }
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    wire_encode_stats(&sb, 78, NULL, 0);
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 78 && r.nstats == 0 && r.stats == NULL);
    msgpack_sbuffer_destroy(&sb);
}

static void test_lenient_responses(void **state)
{
    wire_response r;
    char err[128];
    uint8_t buf[256];
    assert_int_equal(resp_hex(*state, "93 01 00 a3 61 62 63", buf, &r, err,
                              sizeof err), 0);
    assert_true(r.has_value);
    assert_bytes_equal(r.value, bytes_of("abc"));
    assert_int_equal(resp_hex(*state, "93 02 01 a2 6e 6f", buf, &r, err,
                              sizeof err), 0);
    assert_true(r.status == WIRE_NOT_FOUND && !r.has_value);
    assert_bytes_equal(r.message, bytes_of("no"));
    assert_int_equal(resp_hex(*state, "93 03 00 80", buf, &r, err,
                              sizeof err), 0);
    assert_true(r.nstats == 0 && !r.has_value);
}

/* ---- the README's worked example ---- */

/* Pasted from proto/README.md, "Worked example"; the two must match. */
#define README_PUT \
    "00 00 00 11 94 01 02 c4 05 68 65 6c 6c 6f c4 05 77 6f 72 6c 64"
#define README_PUT_OK "00 00 00 03 92 01 00"
#define README_GET "00 00 00 0a 93 02 01 c4 05 68 65 6c 6c 6f"
#define README_GET_OK "00 00 00 0a 93 02 00 c4 05 77 6f 72 6c 64"

static void assert_sb_hex(msgpack_sbuffer *sb, const char *want)
{
    char hex[256];
    tohex(sb->data, sb->size, hex, sizeof hex);
    assert_string_equal(hex, want);
    sb->size = 0;
}

static void test_readme_example(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_request put = {.id = 1, .op = WIRE_OP_PUT, .consistency = -1, .key = bytes_of("hello"),
                        .value = bytes_of("world")};
    wire_encode_request(&sb, &put);
    assert_sb_hex(&sb, README_PUT);
    wire_encode_status(&sb, 1, WIRE_OK, NULL);
    assert_sb_hex(&sb, README_PUT_OK);
    wire_request get = {.id = 2, .op = WIRE_OP_GET, .consistency = -1, .key = bytes_of("hello")};
    wire_encode_request(&sb, &get);
    assert_sb_hex(&sb, README_GET);
    wire_encode_value_head(&sb, 2, 5);
    msgpack_sbuffer_write(&sb, "world", 5);
    assert_sb_hex(&sb, README_GET_OK);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- response semantics ---- */

static void test_response_rejections(void **state)
{
    reject_resp(*state, "80", "response must be a msgpack array");
    reject_resp(*state, "91 01", "response must be [id, status], [id, "
                "status, payload] or [id, status, payload, meta]; got 1 element");
    reject_resp(*state, "95 01 00 c0 80 c0", "got 5 elements");
    reject_resp(*state, "92 a1 31 00", "response id must be an unsigned "
                "integer, got str");
    reject_resp(*state, "92 ff 00", "got negative int");
    reject_resp(*state, "92 01 a1 30", "status must be an unsigned integer, "
                "got str");
    reject_resp(*state, "92 01 07", "unknown status 7");
    reject_resp(*state, "93 01 00 c0", "OK payload must be bin, str, map or "
                "array, got nil");
    reject_resp(*state, "93 01 00 c3", "got bool");
    reject_resp(*state, "93 01 02 c4 01 78", "BAD_REQUEST payload must be a "
                "str message, got bin");
    reject_resp(*state, "93 01 01 05", "NOT_FOUND payload must be a str");
    reject_resp(*state, "93 01 00 81 01 01", "stats name must be str, got "
                "uint");
    reject_resp(*state, "93 01 00 81 a1 78 ca 00 00 00 00",
                "stats value for \"x\" must be uint or str, got float32");
    reject_resp(*state, "93 01 00 81 a1 78 ff", "got negative int");
    reject_resp(*state, "93 01 00 81 a1 78 c4 00", "got bin");
}

/* ---- MEMBERS replies ---- */

static const wire_member sample_members[] = {
    {.id = "node1", .peer_addr = "127.0.0.1:7101", .client_addr = "127.0.0.1:7001",
     .resp_addr = "", .state = "alive", .role = "member", .incarnation = 3,
     .age_ms = 12345, .vnodes = 128},
    {.id = "node2", .peer_addr = "[::1]:7102", .client_addr = "[::1]:7002",
     .resp_addr = "[::1]:6379", .state = "dead", .role = "leaving",
     .incarnation = UINT64_MAX, .age_ms = 0, .vnodes = 0},
    {.id = "n3", .peer_addr = "h:1", .client_addr = "h:2", .resp_addr = "h:3",
     .state = "removed", .role = "joining", .incarnation = 0,
     .age_ms = UINT64_MAX, .vnodes = 4096},
};
#define N_SAMPLE (sizeof sample_members / sizeof sample_members[0])

static void assert_member_equal(const wire_member_view *v, const wire_member *m)
{
    assert_bytes_equal(v->id, bytes_of(m->id));
    assert_bytes_equal(v->peer_addr, bytes_of(m->peer_addr));
    assert_bytes_equal(v->client_addr, bytes_of(m->client_addr));
    assert_bytes_equal(v->resp_addr, bytes_of(m->resp_addr));
    assert_bytes_equal(v->state, bytes_of(m->state));
    assert_bytes_equal(v->role, bytes_of(m->role));
    assert_true(v->incarnation == m->incarnation);
    assert_true(v->age_ms == m->age_ms);
    assert_true(v->vnodes == m->vnodes);
}

static void test_members_response(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_members(&sb, 42, sample_members, N_SAMPLE);
    wire_response r;
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 42 && r.status == WIRE_OK && !r.has_value);
    assert_null(r.stats);
    assert_int_equal(r.nmembers, N_SAMPLE);
    for (size_t i = 0; i < N_SAMPLE; i++) {
        assert_member_equal(&r.members[i], &sample_members[i]);
        assert_within(r.members[i].id, (const uint8_t *)sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);

    /* No members (membership off would be an error; an empty list is legal). */
    msgpack_sbuffer_init(&sb);
    wire_encode_members(&sb, 43, NULL, 0);
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 43 && r.nmembers == 0 && r.members == NULL);
    char hex[64];
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex, "00 00 00 04 93 2b 00 90");
    msgpack_sbuffer_destroy(&sb);

    /* Every strict prefix is refused. */
    msgpack_sbuffer_init(&sb);
    wire_encode_members(&sb, 1, sample_members, 1);
    size_t len;
    const uint8_t *body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    msgpack_sbuffer_destroy(&sb);
}

/* The encoder's exact bytes for one member, as proto/README.md shows them. */
static void test_members_encoding(void **state)
{
    (void)state;
    const wire_member m = {.id = "n1", .peer_addr = "h:1", .client_addr = "h:2",
                           .resp_addr = "", .state = "alive", .role = "member",
                           .incarnation = 2, .age_ms = 1500, .vnodes = 128};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_members(&sb, 5, &m, 1);
    char hex[512];
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex,
        "00 00 00 5d 93 05 00 91 89 "
        "a2 69 64 a2 6e 31 "
        "a4 70 65 65 72 a3 68 3a 31 "
        "a6 63 6c 69 65 6e 74 a3 68 3a 32 "
        "a4 72 65 73 70 a0 "
        "a5 73 74 61 74 65 a5 61 6c 69 76 65 "
        "a4 72 6f 6c 65 a6 6d 65 6d 62 65 72 "
        "ab 69 6e 63 61 72 6e 61 74 69 6f 6e 02 "
        "a6 61 67 65 5f 6d 73 cd 05 dc "
        "a6 76 6e 6f 64 65 73 cc 80");
    msgpack_sbuffer_destroy(&sb);
}

/* A member map may hold fields this decoder does not know (a newer node),
 * in any order; the ones it knows must have their types. */
static void test_members_lenient_and_malformed(void **state)
{
    wire_response r;
    char err[256];
    uint8_t buf[256];
    /* [1, 0, [{"x": nil, "state": "alive", "id": "a"}]] */
    assert_int_equal(resp_hex(*state, "93 01 00 91 83 a1 78 c0 a5 73 74 61 74 65 "
                                      "a5 61 6c 69 76 65 a2 69 64 a1 61",
                              buf, &r, err, sizeof err), 0);
    assert_int_equal(r.nmembers, 1);
    assert_bytes_equal(r.members[0].id, bytes_of("a"));
    assert_bytes_equal(r.members[0].state, bytes_of("alive"));
    assert_int_equal(r.members[0].peer_addr.len, 0);
    assert_true(r.members[0].incarnation == 0);
    msgpack_zone_clear(*state);

    reject_resp(*state, "93 01 00 91 05", "member 0 must be a map, got uint");
    reject_resp(*state, "93 01 00 92 81 a2 69 64 a1 61 c0",
                "member 0 lacks \"state\"");
    reject_resp(*state, "93 01 00 91 81 a5 73 74 61 74 65 a1 61",
                "member 0 lacks \"id\"");
    reject_resp(*state, "93 01 00 91 81 01 02",
                "member 0: field name must be str, got uint");
    reject_resp(*state, "93 01 00 91 81 a2 69 64 05",
                "member 0: \"id\" must be str, got uint");
    reject_resp(*state, "93 01 00 91 81 a2 69 64 c4 01 61",
                "member 0: \"id\" must be str, got bin");
    reject_resp(*state, "93 01 00 91 81 a6 76 6e 6f 64 65 73 a1 31",
                "member 0: \"vnodes\" must be uint, got str");
    reject_resp(*state, "93 01 00 91 81 ab 69 6e 63 61 72 6e 61 74 69 6f 6e ff",
                "\"incarnation\" must be uint, got negative int");
    reject_resp(*state, "93 01 00 91 81 a6 61 67 65 5f 6d 73 cb 3f f0 00 00 00 00 00 00",
                "\"age_ms\" must be uint, got float64");
    reject_resp(*state, "93 01 00 91 91 90", "member 0 must be a map, got array");
    reject_resp(*state, "93 01 00 dd ff ff ff ff", "claims");
}

/* ---- consistency, TOPOLOGY and meta (replication issue) ---- */

/* The bytes proto/README.md shows for a PUT at quorum and its reply. */
#define README_PUT_QUORUM "00 00 00 13 96 07 02 c4 05 68 65 6c 6c 6f c4 05 77 6f 72 6c 64 00 01"
#define README_PUT_META                                                                        \
    "00 00 00 1e 94 07 00 c0 82 a5 65 70 6f 63 68 cd 30 39 a8 72 65 70 6c 69 63 61 73 92 "     \
    "a2 6e 31 a2 6e 32"

static void assert_sb_is(msgpack_sbuffer *sb, const char *want)
{
    char hex[1024];
    tohex(sb->data, sb->size, hex, sizeof hex);
    assert_string_equal(hex, want);
    msgpack_sbuffer_clear(sb);
}

static void test_consistency_requests(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* A PUT with consistency but no TTL sends ttl 0, since fields are positional. */
    wire_request put = {.id = 7, .op = WIRE_OP_PUT, .key = bytes_of("hello"),
                        .value = bytes_of("world"), .consistency = WIRE_CONSISTENCY_QUORUM};
    wire_encode_request(&sb, &put);
    assert_sb_is(&sb, README_PUT_QUORUM);
    wire_request get = {.id = 1, .op = WIRE_OP_GET, .key = bytes_of("k"),
                        .consistency = WIRE_CONSISTENCY_ALL};
    wire_encode_request(&sb, &get);
    assert_sb_is(&sb, "00 00 00 07 94 01 01 c4 01 6b 02");
    wire_request del = {.id = 1, .op = WIRE_OP_DEL, .key = bytes_of("k"),
                        .consistency = WIRE_CONSISTENCY_ONE};
    wire_encode_request(&sb, &del);
    assert_sb_is(&sb, "00 00 00 07 94 01 03 c4 01 6b 00");
    /* Absent: the old forms, byte for byte. */
    get.consistency = WIRE_CONSISTENCY_DEFAULT;
    wire_encode_request(&sb, &get);
    assert_sb_is(&sb, "00 00 00 06 93 01 01 c4 01 6b");
    /* Not a data op: never sent. */
    wire_request ping = {.id = 1, .op = WIRE_OP_PING, .consistency = 2};
    wire_encode_request(&sb, &ping);
    assert_sb_is(&sb, "00 00 00 03 92 01 04");
    msgpack_sbuffer_destroy(&sb);

    /* Decoding: old forms say -1, new ones the level. */
    uint8_t buf[64];
    wire_request r;
    char err[256];
    size_t n = unhex("93 01 01 c4 01 6b", buf, sizeof buf);
    assert_int_equal(wire_decode_request(buf, n, *state, &r, NULL, err, sizeof err), 0);
    assert_int_equal(r.consistency, WIRE_CONSISTENCY_DEFAULT);
    n = unhex("95 01 02 c4 01 6b c4 00 05", buf, sizeof buf);
    assert_int_equal(wire_decode_request(buf, n, *state, &r, NULL, err, sizeof err), 0);
    assert_int_equal(r.consistency, WIRE_CONSISTENCY_DEFAULT);
    assert_true(r.ttl_ms == 5);
    n = unhex("94 01 03 c4 01 6b 01", buf, sizeof buf);
    assert_int_equal(wire_decode_request(buf, n, *state, &r, NULL, err, sizeof err), 0);
    assert_int_equal(r.consistency, WIRE_CONSISTENCY_QUORUM);
    msgpack_zone_clear(*state);

    reject_req(*state, "94 07 01 c4 01 6b 03", 7,
               "consistency must be 0 (one), 1 (quorum) or 2 (all), got a larger uint");
    reject_req(*state, "94 07 01 c4 01 6b a3 61 6c 6c", 7, "got str");
    reject_req(*state, "96 07 02 c4 01 6b c4 00 00 ff", 7, "got negative int");
    reject_req(*state, "94 07 03 c4 01 6b c0", 7, "consistency must be");
}

static void test_topology_response(void **state)
{
    const wire_topology_member tm[] = {
        {.id = "n1", .client_addr = "127.0.0.1:7001", .resp_addr = "", .state = "alive",
         .vnodes = 128},
        {.id = "n2", .client_addr = "127.0.0.1:7002", .resp_addr = "127.0.0.1:6380",
         .state = "dead", .vnodes = 64},
    };
    wire_topology t = {.epoch = UINT64_MAX - 1, .n = 3, .vnodes_default = 128,
                       .members = tm, .nmembers = 2};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_topology(&sb, 9, &t);
    wire_response r;
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 9 && r.status == WIRE_OK && r.has_topology && !r.has_meta);
    assert_null(r.stats);
    assert_true(r.topology.epoch == UINT64_MAX - 1 && r.topology.n == 3 &&
                r.topology.vnodes_default == 128);
    assert_int_equal(r.topology.nmembers, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_bytes_equal(r.topology.members[i].id, bytes_of(tm[i].id));
        assert_bytes_equal(r.topology.members[i].client_addr, bytes_of(tm[i].client_addr));
        assert_bytes_equal(r.topology.members[i].resp_addr, bytes_of(tm[i].resp_addr));
        assert_bytes_equal(r.topology.members[i].state, bytes_of(tm[i].state));
        assert_true(r.topology.members[i].vnodes == tm[i].vnodes);
    }
    size_t len;
    const uint8_t *body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    msgpack_sbuffer_destroy(&sb);

    /* An empty ring decodes; a topology map missing a field or with a bad
     * member is refused. */
    wire_response e;
    char err[256];
    uint8_t buf[256];
    /* [1, 0, {"epoch": 1, "n": 1, "vnodes_default": 1, "members": []}] */
    assert_int_equal(resp_hex(*state, "93 01 00 84 a5 65 70 6f 63 68 01 a1 6e 01 ae 76 6e 6f 64 "
                                      "65 73 5f 64 65 66 61 75 6c 74 01 a7 6d 65 6d 62 65 72 73 90",
                              buf, &e, err, sizeof err), 0);
    assert_true(e.has_topology && e.topology.nmembers == 0);
    msgpack_zone_clear(*state);
    reject_resp(*state, "93 01 00 81 a7 6d 65 6d 62 65 72 73 90",
                "topology \"epoch\" must be uint, got nothing");
    reject_resp(*state, "93 01 00 84 a5 65 70 6f 63 68 01 a1 6e 01 ae 76 6e 6f 64 65 73 5f 64 "
                        "65 66 61 75 6c 74 01 a7 6d 65 6d 62 65 72 73 91 80",
                "topology member 0 lacks \"id\"");
    reject_resp(*state, "93 01 00 84 a5 65 70 6f 63 68 01 a1 6e 01 ae 76 6e 6f 64 65 73 5f 64 "
                        "65 66 61 75 6c 74 01 a7 6d 65 6d 62 65 72 73 91 05",
                "topology member 0 must be a map, got uint");
}

static void test_meta_responses(void **state)
{
    const char *reps[] = {"n1", "n2"};
    wire_meta meta = {.epoch = 12345, .replicas = reps, .nreplicas = 2};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    /* Status with meta and no message: nil payload. */
    wire_encode_status_meta(&sb, 7, WIRE_OK, NULL, &meta);
    char hex[512];
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex, README_PUT_META);
    wire_response r;
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 7 && r.status == WIRE_OK && r.has_meta && !r.has_value);
    assert_true(r.epoch == 12345 && r.nreplicas == 2);
    assert_bytes_equal(r.replicas[0], bytes_of("n1"));
    assert_bytes_equal(r.replicas[1], bytes_of("n2"));
    msgpack_sbuffer_clear(&sb);
    msgpack_zone_clear(*state);

    /* An error with meta keeps its message. */
    wire_encode_status_meta(&sb, 8, WIRE_ERR_TIMEOUT, "1 of 2 acks", &meta);
    decode_only_response(*state, &sb, &r);
    assert_true(r.status == WIRE_ERR_TIMEOUT && r.has_meta);
    assert_bytes_equal(r.message, bytes_of("1 of 2 acks"));
    msgpack_sbuffer_clear(&sb);
    msgpack_zone_clear(*state);

    /* A value with meta: head, value bytes, then the tail. */
    size_t tail = wire_meta_len(&meta);
    wire_encode_value_head_meta(&sb, 9, 5, &meta);
    msgpack_sbuffer_write(&sb, "world", 5);
    size_t before = sb.size;
    assert_int_equal(wire_encode_meta_tail(&sb, &meta), tail);
    assert_int_equal(sb.size - before, tail);
    decode_only_response(*state, &sb, &r);
    assert_true(r.id == 9 && r.has_value && r.has_meta && r.epoch == 12345);
    assert_bytes_equal(r.value, bytes_of("world"));
    assert_int_equal(r.nreplicas, 2);
    size_t len;
    const uint8_t *body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    msgpack_sbuffer_clear(&sb);
    msgpack_zone_clear(*state);

    /* No replicas, and NULL meta falls back to the old forms. */
    wire_meta none = {.epoch = 1};
    wire_encode_status_meta(&sb, 1, WIRE_NOT_FOUND, NULL, &none);
    decode_only_response(*state, &sb, &r);
    assert_true(r.has_meta && r.nreplicas == 0 && r.status == WIRE_NOT_FOUND);
    msgpack_sbuffer_clear(&sb);
    wire_encode_status_meta(&sb, 1, WIRE_OK, NULL, NULL);
    assert_sb_is(&sb, "00 00 00 03 92 01 00");
    wire_encode_value_head_meta(&sb, 1, 0, NULL);
    assert_sb_is(&sb, "00 00 00 05 93 01 00 c4 00");
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_clear(*state);

    reject_resp(*state, "94 01 00 c0 05", "meta (element 4) must be a map, got uint");
    reject_resp(*state, "94 01 00 c0 81 a5 65 70 6f 63 68 a1 31",
                "meta \"epoch\" must be uint, got str");
    reject_resp(*state, "94 01 00 c0 81 a8 72 65 70 6c 69 63 61 73 05",
                "meta \"replicas\" must be an array, got uint");
    reject_resp(*state, "94 01 00 c0 81 a8 72 65 70 6c 69 63 61 73 91 05",
                "meta replica 0 must be str, got uint");
    reject_resp(*state, "94 01 01 05 80", "NOT_FOUND payload must be a str message");
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        ZT(test_frame_len),
        ZT(test_names),
        ZT(test_request_round_trips),
        ZT(test_put_empty_value),
        ZT(test_put_1mib_binary_value),
        ZT(test_max_uint64_id),
        ZT(test_request_encoding_and_lenient_forms),
        ZT(test_pipelined_frames),
        ZT(test_status_responses),
        ZT(test_value_responses),
        ZT(test_stats_response),
        ZT(test_lenient_responses),
        ZT(test_readme_example),
        ZT(test_response_rejections),
        ZT(test_members_response),
        ZT(test_members_encoding),
        ZT(test_members_lenient_and_malformed),
        ZT(test_consistency_requests),
        ZT(test_topology_response),
        ZT(test_meta_responses),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
