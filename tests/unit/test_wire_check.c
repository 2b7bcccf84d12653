/* Unit tests for proto/wire.c's checks: truncated, oversized, nested and
 * hostile frames are rejected before msgpack-c gets a chance to allocate,
 * and mistyped requests get a precise error that echoes their id.
 */
#include "wire_test.h"

/* ---- wire_check and hostile framing ---- */

static void test_truncated_prefixes(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_request put = {.id = 300, .op = WIRE_OP_PUT, .consistency = -1, .key = bytes_of("key"),
                        .value = bytes_of("value"), .ttl_ms = 70000};
    wire_encode_request(&sb, &put);
    size_t len;
    const uint8_t *body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    sb.size = 0;
    const wire_stat st[] = {{.name = "a", .is_num = 1, .num = 1 << 20},
                            {.name = "b", .str = "xyz"}};
    wire_encode_stats(&sb, 1, st, 2);
    body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    sb.size = 0;
    wire_encode_status(&sb, 5, WIRE_ERR_TIMEOUT, "slow");
    body = only_body(&sb, &len);
    check_prefixes(*state, body, len);
    msgpack_sbuffer_destroy(&sb);
}

/* A truncated request still echoes its id, so the error reply can too. */
static void test_malformed_request_echoes_id(void **state)
{
    reject_req(*state, "94 07 02 c4 01 6b c4 05 77 6f", 7, "malformed msgpack");
    reject_req(*state, "93 cd 01 2c 01", 300, "truncated");
    reject_req(*state, "93 d1 01 2c 01", 300, "truncated");
    reject_req(*state, "93 d0 ff 01", 0, "truncated");     /* negative id */
    reject_req(*state, "93 cd 01", 0, "malformed");        /* id cut short */
    reject_req(*state, "81 07", 0, "malformed");           /* not an array */
}

static void test_trailing_bytes(void **state)
{
    char err[256];
    const uint8_t body[] = {0x92, 0x01, 0x04, 0x00};
    assert_int_equal(wire_check(body, sizeof body, WIRE_MAX_DEPTH, err,
                                sizeof err), -1);
    assert_string_equal(err, "malformed msgpack: 1 trailing byte after the "
                        "object ending at offset 3");
    reject_req(*state, "92 01 04 00", 1, "trailing");
    reject_req(*state, "92 01 04 92 02 04", 1, "trailing");
    reject_resp(*state, "92 01 00 c0", "trailing");
    assert_int_equal(wire_check(body, 0, WIRE_MAX_DEPTH, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
}

/* Container and length headers that claim more than the input holds: the
 * NOTES' 5-byte input made msgpack-c reserve 4.2 GB. */
static void test_oversized_claims_allocate_nothing(void **state)
{
    msgpack_zone *zone = *state;
    const char *hostile[] = {
        "dd 09 00 00 00", "dd ff ff ff ff", "df ff ff ff ff", "dc ff ff",
        "de 00 03 01 02 03 04 05", "93 01 01 dd 7f ff ff ff",
        "c6 ff ff ff ff", "db ff ff ff ff", "c9 ff ff ff ff 01",
        "a5 68 69", "d9 10 41 42", "c4 05 00", "da 00 04 41",
        "d8 01 00", "cf 00 00", "95 01 02 03 04",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        uint8_t buf[32];
        size_t n = unhex(hostile[i], buf, sizeof buf);
        char err[256] = "";
        zone_mark before = zone_mark_of(zone);
        assert_int_equal(wire_check(buf, n, WIRE_MAX_DEPTH, err, sizeof err),
                         -1);
        if (!strstr(err, "claims") && !strstr(err, "truncated"))
            fail_msg("%s: unexpected error \"%s\"", hostile[i], err);
        wire_request req;
        wire_response resp;
        assert_int_equal(wire_decode_request(buf, n, zone, &req, NULL, err,
                                             sizeof err), -1);
        assert_int_equal(wire_decode_response(buf, n, zone, &resp, err,
                                              sizeof err), -1);
        assert_zone_untouched(zone, before);
    }
}

static void test_dos_exact_message(void **state)
{
    (void)state;
    const uint8_t dos[] = {0xdd, 0x09, 0x00, 0x00, 0x00};
    char err[256];
    assert_int_equal(wire_check(dos, sizeof dos, WIRE_MAX_DEPTH, err,
                                sizeof err), -1);
    assert_string_equal(err, "malformed msgpack: array at offset 0 claims "
                        "150994944 elements but only 0 bytes remain");
    const uint8_t str[] = {0xa5, 'h', 'i'};
    assert_int_equal(wire_check(str, sizeof str, WIRE_MAX_DEPTH, err,
                                sizeof err), -1);
    assert_string_equal(err, "malformed msgpack: str at offset 0 claims 5 "
                        "bytes but only 2 remain");
}

/* A request array may declare only a few elements in total, so even a
 * well-formed 1 MB array of nils cannot make msgpack-c allocate 24 MB. */
static void test_request_element_budget(void **state)
{
    size_t n = 1 << 20;
    uint8_t *buf = malloc(n + 8);
    assert_non_null(buf);
    buf[0] = 0xdd; /* array 32 of n - 1 elements: id 42, then nils */
    buf[1] = (uint8_t)((n - 1) >> 24);
    buf[2] = (uint8_t)((n - 1) >> 16);
    buf[3] = (uint8_t)((n - 1) >> 8);
    buf[4] = (uint8_t)(n - 1);
    buf[5] = 42;
    memset(buf + 6, 0xc0, n - 2);
    size_t len = 5 + n - 1;
    char err[256];
    assert_int_equal(wire_check(buf, len, WIRE_MAX_DEPTH, err, sizeof err), 0);
    zone_mark before = zone_mark_of(*state);
    wire_request req;
    uint64_t id = 0;
    assert_int_equal(wire_decode_request(buf, len, *state, &req, &id, err,
                                         sizeof err), -1);
    assert_zone_untouched(*state, before);
    assert_true(id == 42);
    assert_non_null(strstr(err, "more than 16 msgpack elements"));
    free(buf);
    reject_req(*state, "93 07 01 9f 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
               " 00", 7, "more than 16");
}

static void test_reserved_byte(void **state)
{
    char err[256];
    const uint8_t body[] = {0x93, 0x01, 0x01, 0xc1};
    assert_int_equal(wire_check(body, sizeof body, WIRE_MAX_DEPTH, err,
                                sizeof err), -1);
    assert_string_equal(err, "malformed msgpack: reserved byte 0xc1 at "
                        "offset 3");
    reject_req(*state, "93 01 01 c1", 1, "0xc1");
    reject_resp(*state, "c1", "0xc1");
}

/* n arrays, each holding the next; the innermost is empty. */
static size_t nested(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        buf[i] = 0x91;
    buf[n - 1] = 0x90;
    return n;
}

static void test_nesting_limit(void **state)
{
    uint8_t buf[100];
    char err[256];
    assert_int_equal(wire_check(buf, nested(buf, 4), 4, err, sizeof err), 0);
    assert_int_equal(wire_check(buf, nested(buf, 5), 4, err, sizeof err), -1);
    assert_non_null(strstr(err, "nesting deeper than 4"));
    assert_int_equal(wire_check(buf, nested(buf, 1), 0, err, sizeof err), -1);
    const uint8_t scalar = 0x07;
    assert_int_equal(wire_check(&scalar, 1, 0, err, sizeof err), 0);
    /* msgpack-c stops at 32 levels, so wire_check does too, whatever the
     * caller asks (and its recursion stays bounded). */
    assert_int_equal(wire_check(buf, nested(buf, 32), ~0u, err, sizeof err),
                     0);
    size_t off = 0;
    msgpack_object obj;
    assert_int_equal(msgpack_unpack((const char *)buf, 32, &off, *state, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(wire_check(buf, nested(buf, 33), ~0u, err, sizeof err),
                     -1);
    assert_int_equal(wire_check(buf, nested(buf, 100), ~0u, err, sizeof err),
                     -1);
    reject_req(*state, "93 01 01 91 91 91 91 90", 1, "nesting deeper");
    reject_resp(*state, "93 01 00 81 a1 78 91 91 91 90", "nesting deeper");
}

/* A body holding every msgpack type, packed by msgpack-c itself. */
static void pack_all_types(msgpack_sbuffer *sb, size_t big)
{
    static const char blob[70000];
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 31);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_uint64(&pk, 200);
    msgpack_pack_uint64(&pk, 60000);
    msgpack_pack_uint64(&pk, 4000000000u);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_int64(&pk, -5);
    msgpack_pack_int64(&pk, -100);
    msgpack_pack_int64(&pk, -30000);
    msgpack_pack_int64(&pk, -2000000000);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, 2.5);
    const size_t lens[] = {10, 100, 300, big};
    for (size_t i = 0; i < 4; i++)
        msgpack_pack_str_with_body(&pk, blob, lens[i]);
    for (size_t i = 0; i < 4; i++)
        msgpack_pack_bin_with_body(&pk, blob, lens[i]);
    const size_t ext_lens[] = {1, 2, 4, 8, 16, 3, 300, big};
    for (size_t i = 0; i < 8; i++)
        msgpack_pack_ext_with_body(&pk, blob, ext_lens[i], 7);
    msgpack_pack_map(&pk, 20); /* map 16 */
    for (int i = 0; i < 20; i++) {
        msgpack_pack_int64(&pk, i);
        msgpack_pack_array(&pk, i);
        for (int j = 0; j < i; j++)
            msgpack_pack_nil(&pk);
    }
}

static void test_check_accepts_every_type(void **state)
{
    const size_t bigs[] = {20, 70000};
    for (size_t b = 0; b < 2; b++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_all_types(&sb, bigs[b]);
        const uint8_t *body = (const uint8_t *)sb.data;
        char err[256];
        assert_int_equal(wire_check(body, sb.size, WIRE_MAX_DEPTH, err,
                                    sizeof err), 0);
        size_t off = 0;
        msgpack_object obj;
        assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, *state, &obj),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(obj.via.array.size, 31);
        if (bigs[b] < 100)
            check_prefixes(*state, body, sb.size);
        else
            assert_int_equal(wire_check(body, sb.size - 1, WIRE_MAX_DEPTH, err,
                                        sizeof err), -1);
        msgpack_zone_clear(*state);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- request semantics ---- */

static void test_wrong_type_id(void **state)
{
    reject_req(*state, "93 a1 31 01 c4 01 6b", 0,
               "id must be an unsigned integer, got str");
    reject_req(*state, "93 cb 3f f0 00 00 00 00 00 00 01 c4 01 6b", 0,
               "id must be an unsigned integer, got float64");
    reject_req(*state, "92 ca 3f 80 00 00 04", 0, "got float32");
    reject_req(*state, "92 c0 04", 0, "got nil");
    reject_req(*state, "92 c3 04", 0, "got bool");
    reject_req(*state, "92 c4 01 01 04", 0, "got bin");
    reject_req(*state, "92 91 01 04", 0, "got array");
    reject_req(*state, "92 80 04", 0, "got map");
    reject_req(*state, "92 d4 01 00 04", 0, "got ext");
}

static void test_negative_id(void **state)
{
    reject_req(*state, "92 ff 04", 0, "id must be an unsigned integer, got "
               "negative int");
    reject_req(*state, "92 d0 80 04", 0, "got negative int");
    reject_req(*state, "92 d3 ff ff ff ff ff ff ff ff 04", 0,
               "got negative int");
}

static void test_wrong_type_op(void **state)
{
    reject_req(*state, "92 07 a3 47 45 54", 7,
               "op must be an unsigned integer (1 GET, 2 PUT, 3 DEL, 4 PING, "
               "5 STATS, 6 MEMBERS, 7 REMOVE, 8 TOPOLOGY or 9 DECOMMISSION), got str");
    reject_req(*state, "92 07 ff", 7, "got negative int");
    reject_req(*state, "92 07 c0", 7, "got nil");
    reject_req(*state, "92 07 c2", 7, "got bool");
    reject_req(*state, "92 07 cb 3f f0 00 00 00 00 00 00", 7, "got float64");
}

static void test_unknown_op(void **state)
{
    const char *want = "; expected 1 GET, 2 PUT, 3 DEL, 4 PING, 5 STATS, "
                       "6 MEMBERS, 7 REMOVE, 8 TOPOLOGY or 9 DECOMMISSION";
    char msg[128];
    reject_req(*state, "92 07 00", 7, "unknown op 0");
    reject_req(*state, "92 07 0a", 7, "unknown op 10");
    reject_req(*state, "93 07 09 c4 01 6b", 7, "DECOMMISSION expects [id, 9]");
    snprintf(msg, sizeof msg, "unknown op 1000%s", want);
    reject_req(*state, "92 07 cd 03 e8", 7, msg);
    reject_req(*state, "93 07 cf ff ff ff ff ff ff ff ff c4 01 6b", 7,
               "unknown op 18446744073709551615");
}

static void test_wrong_type_key(void **state)
{
    reject_req(*state, "93 07 01 80", 7, "key must be bin or str, got map");
    reject_req(*state, "93 07 01 05", 7, "key must be bin or str, got uint");
    reject_req(*state, "93 07 01 c0", 7, "got nil");
    reject_req(*state, "93 07 01 90", 7, "got array");
    reject_req(*state, "93 07 01 c3", 7, "got bool");
    reject_req(*state, "93 07 01 ca 00 00 00 00", 7, "got float32");
    reject_req(*state, "93 07 01 d4 01 00", 7, "got ext");
    reject_req(*state, "93 07 01 f0", 7, "got negative int");
    reject_req(*state, "93 07 03 80", 7, "key must be bin or str, got map");
    reject_req(*state, "94 07 02 05 c4 00", 7, "key must be bin or str");
}

static void test_wrong_type_value_and_ttl(void **state)
{
    reject_req(*state, "94 07 02 c4 01 6b 05", 7,
               "value must be bin or str, got uint");
    reject_req(*state, "94 07 02 c4 01 6b c0", 7, "got nil");
    reject_req(*state, "94 07 02 c4 01 6b 80", 7, "got map");
    reject_req(*state, "94 07 02 c4 01 6b 90", 7, "got array");
    reject_req(*state, "95 07 02 c4 01 6b c4 00 a1 31", 7,
               "ttl_ms must be an unsigned integer (milliseconds, 0 = no "
               "expiry), got str");
    reject_req(*state, "95 07 02 c4 01 6b c4 00 ff", 7, "got negative int");
    reject_req(*state, "95 07 02 c4 01 6b c4 00 ca 00 00 00 00", 7,
               "got float32");
    reject_req(*state, "95 07 02 c4 01 6b c4 00 c0", 7, "got nil");
}

static void test_wrong_element_counts(void **state)
{
    reject_req(*state, "93 07 02 c4 01 6b", 7,
               "PUT expects [id, 2, key, value], [id, 2, key, value, "
               "ttl_ms] or [id, 2, key, value, ttl_ms, consistency]; got 3 elements");
    reject_req(*state, "97 07 02 c4 01 6b c4 00 00 00 00", 7, "got 7 elements");
    reject_req(*state, "92 07 01", 7,
               "GET expects [id, 1, key] or [id, 1, key, consistency]; got 2 elements");
    reject_req(*state, "95 07 01 c4 01 6b 00 00", 7, "got 5 elements");
    reject_req(*state, "92 07 03", 7, "DEL expects [id, 3, key] or [id, 3, key, "
               "consistency]; got 2");
    reject_req(*state, "95 07 03 c4 01 6b 00 00", 7, "got 5 elements");
    reject_req(*state, "93 07 08 c0", 7, "TOPOLOGY expects [id, 8]; got 3 elements");
    reject_req(*state, "93 07 04 c0", 7, "PING expects [id, 4]; got 3 "
               "elements");
    reject_req(*state, "93 07 05 c0", 7, "STATS expects [id, 5]; got 3");
    reject_req(*state, "93 07 06 c0", 7, "MEMBERS expects [id, 6]; got 3 "
               "elements");
    reject_req(*state, "92 07 07", 7, "REMOVE expects [id, 7, node_id]; got 2 "
               "elements");
    reject_req(*state, "94 07 07 a1 61 a1 62", 7, "got 4 elements");
    reject_req(*state, "91 07", 7, "request must be [id, op, ...]; got 1 "
               "element");
    reject_req(*state, "90", 0, "got an empty array");
}

static void test_empty_key(void **state)
{
    reject_req(*state, "93 07 01 c4 00", 7, "key must not be empty");
    reject_req(*state, "93 07 01 a0", 7, "key must not be empty");
    reject_req(*state, "93 07 03 c4 00", 7, "key must not be empty");
    reject_req(*state, "94 07 02 c4 00 c4 00", 7, "key must not be empty");
    reject_req(*state, "93 07 07 a0", 7, "node_id must not be empty");
    reject_req(*state, "93 07 07 c4 00", 7, "node_id must not be empty");
}

/* REMOVE's node id may come as str (what hand-written clients send) or bin
 * (what the reference encoder sends); anything else is refused by name. */
static void test_remove_request(void **state)
{
    wire_request got;
    uint64_t id;
    char err[128];
    uint8_t body[] = {0x93, 0x09, 0x07, 0xa5, 'n', 'o', 'd', 'e', '2'};
    assert_int_equal(wire_decode_request(body, sizeof body, *state, &got, &id,
                                         err, sizeof err), 0);
    assert_true(id == 9 && got.op == WIRE_OP_REMOVE);
    assert_bytes_equal(got.key, bytes_of("node2"));
    reject_req(*state, "93 07 07 05", 7, "node_id must be bin or str, got uint");
    reject_req(*state, "93 07 07 c0", 7, "node_id must be bin or str, got nil");
    reject_req(*state, "93 07 07 90", 7, "got array");

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_request rm = {.id = 1, .op = WIRE_OP_REMOVE, .key = bytes_of("n2")};
    wire_encode_request(&sb, &rm);
    char hex[128];
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex, "00 00 00 07 93 01 07 c4 02 6e 32");
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_init(&sb);
    wire_request mem = {.id = 2, .op = WIRE_OP_MEMBERS};
    wire_encode_request(&sb, &mem);
    tohex(sb.data, sb.size, hex, sizeof hex);
    assert_string_equal(hex, "00 00 00 03 92 02 06");
    msgpack_sbuffer_destroy(&sb);
}

static void test_non_array_body(void **state)
{
    reject_req(*state, "80", 0, "request must be a msgpack array [id, op, "
               "...], got map");
    reject_req(*state, "81 01 04", 0, "got map");
    reject_req(*state, "07", 0, "got uint");
    reject_req(*state, "a1 78", 0, "got str");
    reject_req(*state, "c0", 0, "got nil");
    reject_req(*state, "c4 00", 0, "got bin");
    reject_req(*state, "", 0, "empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ZT(test_truncated_prefixes),
        ZT(test_malformed_request_echoes_id),
        ZT(test_trailing_bytes),
        ZT(test_oversized_claims_allocate_nothing),
        ZT(test_dos_exact_message),
        ZT(test_request_element_budget),
        ZT(test_reserved_byte),
        ZT(test_nesting_limit),
        ZT(test_check_accepts_every_type),
        ZT(test_wrong_type_id),
        ZT(test_negative_id),
        ZT(test_wrong_type_op),
        ZT(test_unknown_op),
        ZT(test_wrong_type_key),
        ZT(test_wrong_type_value_and_ttl),
        ZT(test_wrong_element_counts),
        ZT(test_empty_key),
        ZT(test_remove_request),
        ZT(test_non_array_body),
    };
    return cmocka_run_group_tests_name("wire_check", tests, NULL, NULL);
}
