/* libFuzzer target for proto/wire.c: feeds arbitrary frame bodies to
 * wire_check and both decoders, and checks what they accept: msgpack-c must
 * unpack whatever wire_check passes, decoded bytes must point into the input,
 * and a decoded request or response (MEMBERS replies included) must survive
 * encode -> decode unchanged.
 * Any mismatch abort()s, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static int bytes_equal(wire_bytes a, wire_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void require_within(wire_bytes b, const uint8_t *buf, size_t len)
{
    if (b.len > 0 && (b.ptr < buf || b.ptr + b.len > buf + len))
        abort();
}

/* The frame in sb has a correct header; returns its body. */
static const uint8_t *frame_body(const msgpack_sbuffer *sb, size_t *len)
{
    if (sb->size < WIRE_HEADER_BYTES)
        abort();
    *len = sb->size - WIRE_HEADER_BYTES;
    if (wire_frame_len((const uint8_t *)sb->data) != *len)
        abort();
    return (const uint8_t *)sb->data + WIRE_HEADER_BYTES;
}

/* What wire_check accepts, msgpack-c must unpack as exactly one object. */
static void check_agrees_with_msgpack(const uint8_t *data, size_t size,
                                      msgpack_zone *zone)
{
    char err[256];
    if (wire_check(data, size, WIRE_MAX_DEPTH, err, sizeof err) != 0)
        return;
    size_t off = 0;
    msgpack_object obj;
    if (msgpack_unpack((const char *)data, size, &off, zone, &obj) !=
        MSGPACK_UNPACK_SUCCESS || off != size)
        abort();
    msgpack_zone_clear(zone);
}

static void round_trip_request(const wire_request *req, msgpack_zone *zone)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_request(&sb, req);
    size_t len;
    const uint8_t *body = frame_body(&sb, &len);
    wire_request again;
    uint64_t id;
    char err[256];
    if (wire_decode_request(body, len, zone, &again, &id, err, sizeof err) != 0)
        abort();
    if (again.id != req->id || id != req->id || again.op != req->op ||
        !bytes_equal(again.key, req->key) ||
        !bytes_equal(again.value, req->value) || again.ttl_ms != req->ttl_ms ||
        again.consistency != req->consistency)
        abort();
    msgpack_zone_clear(zone);
    msgpack_sbuffer_destroy(&sb);
}

static void fuzz_request(const uint8_t *data, size_t size, msgpack_zone *zone)
{
    wire_request req;
    uint64_t id;
    char err[256];
    int rc = wire_decode_request(data, size, zone, &req, &id, err, sizeof err);
    if (rc == 0) {
        require_within(req.key, data, size);
        require_within(req.value, data, size);
        round_trip_request(&req, zone);
    } else if (err[0] == '\0') {
        abort(); /* every rejection must say why */
    }
    msgpack_zone_clear(zone);
}

/* Re-encodes a decoded non-STATS response the way a node would; meta is
 * NULL, or the decoded meta with C-string replicas. */
static void encode_response(msgpack_sbuffer *sb, const wire_response *r,
                            char *msg, const wire_meta *meta)
{
    if (r->has_value) {
        wire_encode_value_head_meta(sb, r->id, r->value.len, meta);
        if (r->value.len > 0)
            msgpack_sbuffer_write(sb, (const char *)r->value.ptr, r->value.len);
        if (meta)
            wire_encode_meta_tail(sb, meta);
        return;
    }
    if (r->message.len > 0) {
        memcpy(msg, r->message.ptr, r->message.len);
        msg[r->message.len] = '\0';
    }
    wire_encode_status_meta(sb, r->id, r->status, r->message.len ? msg : NULL, meta);
}

/* The decoded meta as a wire_meta (replicas copied into C strings), or
 * NULL when there is none or a replica holds a NUL. */
static const wire_meta *meta_of(const wire_response *r, wire_meta *m, char ***strs)
{
    *strs = NULL;
    if (!r->has_meta)
        return NULL;
    for (size_t i = 0; i < r->nreplicas; i++)
        if (r->replicas[i].len && memchr(r->replicas[i].ptr, 0, r->replicas[i].len))
            return NULL;
    *strs = calloc(r->nreplicas + 1, sizeof **strs);
    if (!*strs)
        abort();
    for (size_t i = 0; i < r->nreplicas; i++) {
        (*strs)[i] = calloc(1, r->replicas[i].len + 1);
        if (!(*strs)[i])
            abort();
        if (r->replicas[i].len)
            memcpy((*strs)[i], r->replicas[i].ptr, r->replicas[i].len);
    }
    *m = (wire_meta){.epoch = r->epoch, .replicas = (const char *const *)*strs,
                     .nreplicas = r->nreplicas};
    return m;
}

static void round_trip_response(const wire_response *r, msgpack_zone *zone)
{
    /* encode_status takes a C string, so a message with a NUL cannot be
     * re-encoded; STATS names are C strings too. */
    if (r->nstats > 0 || r->stats ||
        (r->message.len && memchr(r->message.ptr, 0, r->message.len)))
        return;
    char *msg = malloc(r->message.len + 1);
    if (!msg)
        abort();
    wire_meta mbuf;
    char **strs;
    const wire_meta *meta = meta_of(r, &mbuf, &strs);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    encode_response(&sb, r, msg, meta);
    size_t len;
    const uint8_t *body = frame_body(&sb, &len);
    wire_response again;
    char err[256];
    if (wire_decode_response(body, len, zone, &again, err, sizeof err) != 0)
        abort();
    if (again.id != r->id || again.status != r->status ||
        again.has_value != r->has_value || !bytes_equal(again.value, r->value) ||
        !bytes_equal(again.message, r->message))
        abort();
    if (meta) {
        if (!again.has_meta || again.epoch != r->epoch || again.nreplicas != r->nreplicas)
            abort();
        for (size_t i = 0; i < r->nreplicas; i++)
            if (!bytes_equal(again.replicas[i], r->replicas[i]))
                abort();
        for (size_t i = 0; i < r->nreplicas; i++)
            free(strs[i]);
        free(strs);
    }
    msgpack_sbuffer_destroy(&sb);
    free(msg);
}

/* A member's fields as C strings, for wire_encode_members; NULL when one
 * holds a NUL (a C string cannot carry it, so there is nothing to compare). */
static char *member_cstr(wire_bytes b)
{
    if (b.len && memchr(b.ptr, 0, b.len))
        return NULL;
    char *s = malloc(b.len + 1);
    if (!s)
        abort();
    if (b.len)
        memcpy(s, b.ptr, b.len);
    s[b.len] = '\0';
    return s;
}

static void round_trip_members(const wire_response *r, msgpack_zone *zone)
{
    size_t n = r->nmembers;
    wire_member *m = calloc(n, sizeof *m);
    char **strs = calloc(6 * n, sizeof *strs);
    if (!m || !strs)
        abort();
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const wire_member_view *v = &r->members[i];
        const wire_bytes f[6] = {v->id, v->peer_addr, v->client_addr,
                                 v->resp_addr, v->state, v->role};
        for (int k = 0; k < 6; k++)
            ok &= (strs[6 * i + k] = member_cstr(f[k])) != NULL;
        m[i] = (wire_member){strs[6 * i], strs[6 * i + 1], strs[6 * i + 2],
                             strs[6 * i + 3], strs[6 * i + 4], strs[6 * i + 5],
                             v->incarnation, v->age_ms, v->vnodes};
    }
    if (ok) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        wire_encode_members(&sb, r->id, m, n);
        size_t len;
        const uint8_t *body = frame_body(&sb, &len);
        wire_response again;
        char err[256];
        if (wire_decode_response(body, len, zone, &again, err, sizeof err) != 0 ||
            again.id != r->id || again.status != WIRE_OK || again.nmembers != n)
            abort();
        for (size_t i = 0; i < n; i++) {
            const wire_member_view *a = &again.members[i], *b = &r->members[i];
            if (!bytes_equal(a->id, b->id) || !bytes_equal(a->peer_addr, b->peer_addr) ||
                !bytes_equal(a->client_addr, b->client_addr) ||
                !bytes_equal(a->resp_addr, b->resp_addr) ||
                !bytes_equal(a->state, b->state) || !bytes_equal(a->role, b->role) ||
                a->incarnation != b->incarnation || a->age_ms != b->age_ms ||
                a->vnodes != b->vnodes)
                abort();
        }
        msgpack_sbuffer_destroy(&sb);
    }
    for (size_t i = 0; i < 6 * n; i++)
        free(strs[i]);
    free(strs);
    free(m);
}

static void fuzz_response(const uint8_t *data, size_t size, msgpack_zone *zone)
{
    wire_response r;
    char err[256];
    if (wire_decode_response(data, size, zone, &r, err, sizeof err) != 0) {
        msgpack_zone_clear(zone);
        return;
    }
    require_within(r.value, data, size);
    require_within(r.message, data, size);
    for (size_t i = 0; i < r.nstats; i++) {
        require_within(r.stats[i].name, data, size);
        require_within(r.stats[i].str, data, size);
    }
    for (size_t i = 0; i < r.nmembers; i++) {
        const wire_member_view *v = &r.members[i];
        require_within(v->id, data, size);
        require_within(v->peer_addr, data, size);
        require_within(v->client_addr, data, size);
        require_within(v->resp_addr, data, size);
        require_within(v->state, data, size);
        require_within(v->role, data, size);
        if (v->id.len == 0 || v->state.len == 0)
            abort(); /* the decoder promises both */
    }
    for (size_t i = 0; i < r.nreplicas; i++)
        require_within(r.replicas[i], data, size);
    for (size_t i = 0; i < r.topology.nmembers; i++) {
        const wire_topology_member_view *v = &r.topology.members[i];
        require_within(v->id, data, size);
        require_within(v->client_addr, data, size);
        require_within(v->resp_addr, data, size);
        require_within(v->state, data, size);
        if (v->id.len == 0 || v->client_addr.len == 0)
            abort(); /* the decoder promises both */
    }
    if (r.nmembers > 0)
        round_trip_members(&r, zone);
    else
        round_trip_response(&r, zone);
    msgpack_zone_clear(zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
        abort();
    check_agrees_with_msgpack(data, size, &zone);
    fuzz_request(data, size, &zone);
    fuzz_response(data, size, &zone);
    msgpack_zone_destroy(&zone);
    return 0;
}
