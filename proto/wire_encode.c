/* wire_encode: the client protocol's encoder (contract in wire.h, bytes in
 * README.md): msgpack-c's packer over an sbuffer, each frame's 4-byte
 * length filled in once its body is packed.
 */
#include "wire.h"
#include "wire_int.h"

#include <stddef.h>
#include <string.h>

/* Reserves the length header; returns its offset, which stays valid when the
 * sbuffer reallocates (a pointer would not). */
static size_t frame_begin(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    static const char zero[WIRE_HEADER_BYTES];
    size_t at = sb->size;
    msgpack_sbuffer_write(sb, zero, sizeof zero);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    return at;
}

/* Patches the header at `at` to count everything appended since, plus
 * `later` bytes the caller appends itself. */
static void frame_finish(msgpack_sbuffer *sb, size_t at, size_t later)
{
    if (sb->size < at + WIRE_HEADER_BYTES)
        return; /* the sbuffer could not grow; nothing to patch */
    uint32_t n = (uint32_t)(sb->size - at - WIRE_HEADER_BYTES + later);
    uint8_t *h = (uint8_t *)sb->data + at;
    h[0] = (uint8_t)(n >> 24);
    h[1] = (uint8_t)(n >> 16);
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
}

/* Bodies are skipped when empty: an empty key or value may have a NULL ptr,
 * and memcpy(dst, NULL, 0) is undefined. */
static void pack_bin(msgpack_packer *pk, wire_bytes b)
{
    msgpack_pack_bin(pk, b.len);
    if (b.len > 0)
        msgpack_pack_bin_body(pk, b.ptr, b.len);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    msgpack_pack_str(pk, n);
    if (n > 0)
        msgpack_pack_str_body(pk, s, n);
}

void wire_encode_request(msgpack_sbuffer *sb, const wire_request *req)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    int has_key = req->op == WIRE_OP_GET || req->op == WIRE_OP_PUT ||
                  req->op == WIRE_OP_DEL || req->op == WIRE_OP_REMOVE;
    int is_put = req->op == WIRE_OP_PUT;
    int has_cons = req->consistency >= 0 && (is_put || req->op == WIRE_OP_GET ||
                                             req->op == WIRE_OP_DEL);
    /* consistency is positional: a PUT that sends it sends ttl_ms (0) too */
    int has_ttl = is_put && (req->ttl_ms != 0 || has_cons);
    msgpack_pack_array(&pk, 2 + has_key + is_put + has_ttl + has_cons);
    msgpack_pack_uint64(&pk, req->id);
    msgpack_pack_uint64(&pk, (uint64_t)req->op);
    if (has_key)
        pack_bin(&pk, req->key);
    if (is_put)
        pack_bin(&pk, req->value);
    if (has_ttl)
        msgpack_pack_uint64(&pk, req->ttl_ms);
    if (has_cons)
        msgpack_pack_uint64(&pk, (uint64_t)req->consistency);
    frame_finish(sb, at, 0);
}

void wire_encode_status(msgpack_sbuffer *sb, uint64_t id, wire_status st,
                        const char *msg)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, msg ? 3 : 2);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, (uint64_t)st);
    if (msg)
        pack_cstr(&pk, msg);
    frame_finish(sb, at, 0);
}

void wire_encode_value_head(msgpack_sbuffer *sb, uint64_t id, size_t value_len)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, WIRE_OK);
    msgpack_pack_bin(&pk, value_len);
    frame_finish(sb, at, value_len);
}

static void pack_meta(msgpack_packer *pk, const wire_meta *meta)
{
    msgpack_pack_map(pk, 2);
    pack_cstr(pk, "epoch");
    msgpack_pack_uint64(pk, meta->epoch);
    pack_cstr(pk, "replicas");
    msgpack_pack_array(pk, meta->nreplicas);
    for (size_t i = 0; i < meta->nreplicas; i++)
        pack_cstr(pk, meta->replicas[i]);
}

void wire_encode_status_meta(msgpack_sbuffer *sb, uint64_t id, wire_status st,
                             const char *msg, const wire_meta *meta)
{
    if (!meta) {
        wire_encode_status(sb, id, st, msg);
        return;
    }
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, (uint64_t)st);
    if (msg)
        pack_cstr(&pk, msg);
    else
        msgpack_pack_nil(&pk);
    pack_meta(&pk, meta);
    frame_finish(sb, at, 0);
}

/* A packer sink that only counts, so the tail's length is known without
 * encoding it twice into memory. */
static int count_write(void *data, const char *buf, size_t len)
{
    (void)buf;
    *(size_t *)data += len;
    return 0;
}

size_t wire_meta_len(const wire_meta *meta)
{
    size_t n = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &n, count_write);
    pack_meta(&pk, meta);
    return n;
}

size_t wire_encode_meta_tail(msgpack_sbuffer *sb, const wire_meta *meta)
{
    size_t before = sb->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    pack_meta(&pk, meta);
    return sb->size - before;
}

void wire_encode_value_head_meta(msgpack_sbuffer *sb, uint64_t id, size_t value_len,
                                 const wire_meta *meta)
{
    if (!meta) {
        wire_encode_value_head(sb, id, value_len);
        return;
    }
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, WIRE_OK);
    msgpack_pack_bin(&pk, value_len);
    frame_finish(sb, at, value_len + wire_meta_len(meta));
}

void wire_encode_topology(msgpack_sbuffer *sb, uint64_t id, const wire_topology *t)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, WIRE_OK);
    msgpack_pack_map(&pk, 4);
    pack_cstr(&pk, "epoch");
    msgpack_pack_uint64(&pk, t->epoch);
    pack_cstr(&pk, "n");
    msgpack_pack_uint64(&pk, t->n);
    pack_cstr(&pk, "vnodes_default");
    msgpack_pack_uint64(&pk, t->vnodes_default);
    pack_cstr(&pk, "members");
    msgpack_pack_array(&pk, t->nmembers);
    for (size_t i = 0; i < t->nmembers; i++) {
        const wire_topology_member *m = &t->members[i];
        msgpack_pack_map(&pk, wire_n_topo_fields);
        const char *strs[] = {m->id, m->client_addr, m->resp_addr, m->state};
        for (size_t f = 0; f < wire_n_topo_fields; f++) {
            pack_cstr(&pk, wire_topo_fields[f].name);
            if (wire_topo_fields[f].is_num)
                msgpack_pack_uint64(&pk, m->vnodes);
            else
                pack_cstr(&pk, strs[f]);
        }
    }
    frame_finish(sb, at, 0);
}

void wire_encode_stats(msgpack_sbuffer *sb, uint64_t id,
                       const wire_stat *stats, size_t n)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, WIRE_OK);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_cstr(&pk, stats[i].name);
        if (stats[i].is_num)
            msgpack_pack_uint64(&pk, stats[i].num);
        else
            pack_cstr(&pk, stats[i].str);
    }
    frame_finish(sb, at, 0);
}

void wire_encode_members(msgpack_sbuffer *sb, uint64_t id,
                         const wire_member *members, size_t n)
{
    msgpack_packer pk;
    size_t at = frame_begin(sb, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_uint64(&pk, WIRE_OK);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const wire_member *m = &members[i];
        msgpack_pack_map(&pk, wire_n_member_fields);
        const char *strs[] = {m->id, m->peer_addr, m->client_addr,
                              m->resp_addr, m->state, m->role};
        const uint64_t nums[] = {m->incarnation, m->age_ms, m->vnodes};
        for (size_t f = 0; f < wire_n_member_fields; f++) {
            pack_cstr(&pk, wire_member_fields[f].name);
            if (wire_member_fields[f].is_num)
                msgpack_pack_uint64(&pk, nums[f - 6]);
            else
                pack_cstr(&pk, strs[f]);
        }
    }
    frame_finish(sb, at, 0);
}
