/* wire: the client protocol's decoder (contract in wire.h, bytes in
 * README.md; the encoder is wire_encode.c).
 *
 * Decoding first walks the msgpack headers by hand (wire_check), because
 * msgpack-c 4.0 allocates count x 24 bytes for a container header before
 * it checks that the input holds that many elements; only walked bytes
 * ever reach msgpack_unpack.
 */
#include "wire.h"
#include "wire_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Container elements a request may declare in total. A request is at most
 * [id, op, key, value, ttl_ms, consistency]; the slack lets a misplaced small container
 * still get a precise type error, while capping what a hostile 16 MiB frame
 * of nils could make msgpack-c allocate (24 bytes per element). */
#define REQ_MAX_ELEMS 16

/* msgpack-c refuses nesting deeper than its embedded stack (32 levels,
 * MSGPACK_EMBED_STACK_SIZE in its unpack_define.h), so a larger max_depth
 * buys nothing; clamping also bounds wire_check's recursion. */
#define CHECK_DEPTH_CAP 32

__attribute__((format(printf, 3, 4)))
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *wire_op_name(wire_op op)
{
    switch (op) {
    case WIRE_OP_GET: return "GET";
    case WIRE_OP_PUT: return "PUT";
    case WIRE_OP_DEL: return "DEL";
    case WIRE_OP_PING: return "PING";
    case WIRE_OP_STATS: return "STATS";
    case WIRE_OP_MEMBERS: return "MEMBERS";
    case WIRE_OP_REMOVE: return "REMOVE";
    case WIRE_OP_TOPOLOGY: return "TOPOLOGY";
    case WIRE_OP_DECOMMISSION: return "DECOMMISSION";
    }
    return "UNKNOWN";
}

const char *wire_status_name(wire_status st)
{
    switch (st) {
    case WIRE_OK: return "OK";
    case WIRE_NOT_FOUND: return "NOT_FOUND";
    case WIRE_ERR_BAD_REQUEST: return "BAD_REQUEST";
    case WIRE_ERR_TOO_LARGE: return "TOO_LARGE";
    case WIRE_ERR_UNAVAILABLE: return "UNAVAILABLE";
    case WIRE_ERR_TIMEOUT: return "TIMEOUT";
    case WIRE_ERR_INTERNAL: return "INTERNAL";
    }
    return "UNKNOWN";
}

uint32_t wire_frame_len(const uint8_t hdr[WIRE_HEADER_BYTES])
{
    return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
           (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
}

/* ---- wire_check: a header walk that trusts no count ---- */

enum { HEAD_SCALAR, HEAD_ARRAY, HEAD_MAP, HEAD_RESERVED };

/* What follows a tag byte: len_bytes of big-endian length, then `extra` more
 * (fixed payloads, the ext type byte, or a fix container's count). */
typedef struct tag_shape {
    uint8_t kind, len_bytes, extra;
} tag_shape;

/* Tags 0xc0..0xdf, from the msgpack spec's format table. */
static const tag_shape var_tags[32] = {
    {HEAD_SCALAR, 0, 0},  {HEAD_RESERVED, 0, 0}, /* c0 nil, c1 never used */
    {HEAD_SCALAR, 0, 0},  {HEAD_SCALAR, 0, 0},   /* c2 false, c3 true */
    {HEAD_SCALAR, 1, 0},  {HEAD_SCALAR, 2, 0},  {HEAD_SCALAR, 4, 0}, /* bin */
    {HEAD_SCALAR, 1, 1},  {HEAD_SCALAR, 2, 1},  {HEAD_SCALAR, 4, 1}, /* ext */
    {HEAD_SCALAR, 0, 4},  {HEAD_SCALAR, 0, 8},   /* float 32, 64 */
    {HEAD_SCALAR, 0, 1},  {HEAD_SCALAR, 0, 2},   /* uint 8, 16 */
    {HEAD_SCALAR, 0, 4},  {HEAD_SCALAR, 0, 8},   /* uint 32, 64 */
    {HEAD_SCALAR, 0, 1},  {HEAD_SCALAR, 0, 2},   /* int 8, 16 */
    {HEAD_SCALAR, 0, 4},  {HEAD_SCALAR, 0, 8},   /* int 32, 64 */
    {HEAD_SCALAR, 0, 2},  {HEAD_SCALAR, 0, 3},  {HEAD_SCALAR, 0, 5},
    {HEAD_SCALAR, 0, 9},  {HEAD_SCALAR, 0, 17},  /* fixext 1..16 + type */
    {HEAD_SCALAR, 1, 0},  {HEAD_SCALAR, 2, 0},  {HEAD_SCALAR, 4, 0}, /* str */
    {HEAD_ARRAY, 2, 0},   {HEAD_ARRAY, 4, 0},    /* array 16, 32 */
    {HEAD_MAP, 2, 0},     {HEAD_MAP, 4, 0},      /* map 16, 32 */
};

static tag_shape shape_of(uint8_t tag)
{
    if (tag <= 0x7f || tag >= 0xe0)
        return (tag_shape){HEAD_SCALAR, 0, 0};
    if (tag <= 0x8f)
        return (tag_shape){HEAD_MAP, 0, tag & 0x0f};
    if (tag <= 0x9f)
        return (tag_shape){HEAD_ARRAY, 0, tag & 0x0f};
    if (tag <= 0xbf)
        return (tag_shape){HEAD_SCALAR, 0, tag & 0x1f};
    return var_tags[tag - 0xc0];
}

static const char *tag_name(uint8_t tag)
{
    if (tag <= 0x7f || tag >= 0xe0 || (tag >= 0xcc && tag <= 0xd3))
        return "int";
    if (tag <= 0x8f || tag == 0xde || tag == 0xdf)
        return "map";
    if (tag <= 0x9f || tag == 0xdc || tag == 0xdd)
        return "array";
    if (tag <= 0xbf || (tag >= 0xd9 && tag <= 0xdb))
        return "str";
    if (tag >= 0xc4 && tag <= 0xc6)
        return "bin";
    if (tag == 0xca || tag == 0xcb)
        return "float";
    if (tag == 0xc0)
        return "nil";
    if (tag == 0xc2 || tag == 0xc3)
        return "bool";
    return tag == 0xc1 ? "reserved" : "ext";
}

typedef struct walker {
    const uint8_t *buf;
    size_t len, off;
    unsigned max_depth;
    size_t budget;  /* container elements still allowed */
    int over_budget;
    char *err;
    size_t errlen;
} walker;

/* One header: scalars say how many payload bytes follow, containers how
 * many elements (a map's count is in pairs). */
typedef struct mp_head {
    uint8_t tag, kind;
    size_t at;
    uint64_t n;
} mp_head;

static int read_head(walker *w, mp_head *h)
{
    h->at = w->off;
    if (w->off >= w->len)
        return set_err(w->err, w->errlen, "malformed msgpack: truncated, "
                       "expected an object at offset %zu", w->off);
    h->tag = w->buf[w->off++];
    tag_shape s = shape_of(h->tag);
    if (s.kind == HEAD_RESERVED)
        return set_err(w->err, w->errlen, "malformed msgpack: reserved "
                       "byte 0xc1 at offset %zu", h->at);
    if (s.len_bytes > w->len - w->off)
        return set_err(w->err, w->errlen, "malformed msgpack: truncated "
                       "%s header at offset %zu", tag_name(h->tag), h->at);
    uint64_t n = 0;
    for (unsigned i = 0; i < s.len_bytes; i++)
        n = n << 8 | w->buf[w->off++];
    h->kind = s.kind;
    h->n = n + s.extra;
    return 0;
}

static int walk_obj(walker *w, unsigned depth_left);

static int walk_container(walker *w, const mp_head *h, unsigned depth_left)
{
    uint64_t elems = h->kind == HEAD_MAP ? 2 * h->n : h->n;
    if (elems > w->len - w->off)
        return set_err(w->err, w->errlen, "malformed msgpack: %s at offset "
                       "%zu claims %" PRIu64 " elements but only %zu bytes "
                       "remain", tag_name(h->tag), h->at, elems,
                       w->len - w->off);
    if (depth_left == 0)
        return set_err(w->err, w->errlen, "malformed msgpack: nesting deeper "
                       "than %u levels at offset %zu", w->max_depth, h->at);
    if (elems > w->budget) {
        w->over_budget = 1;
        return set_err(w->err, w->errlen, "malformed msgpack: too many "
                       "elements at offset %zu", h->at);
    }
    w->budget -= elems;
    for (uint64_t i = 0; i < elems; i++)
        if (walk_obj(w, depth_left - 1) < 0)
            return -1;
    return 0;
}

static int walk_obj(walker *w, unsigned depth_left)
{
    mp_head h = {0}; /* set_err() returns -1, but gcc -O3 cannot tell: it would warn */
    if (read_head(w, &h) < 0)
        return -1;
    if (h.kind != HEAD_SCALAR)
        return walk_container(w, &h, depth_left);
    if (h.n > w->len - w->off)
        return set_err(w->err, w->errlen, "malformed msgpack: %s at offset "
                       "%zu claims %" PRIu64 " bytes but only %zu remain",
                       tag_name(h.tag), h.at, h.n, w->len - w->off);
    w->off += h.n;
    return 0;
}

/* Exactly one object spanning the whole buffer. */
static int walk_body(walker *w)
{
    if (w->len == 0)
        return set_err(w->err, w->errlen, "malformed msgpack: empty body");
    if (w->max_depth > CHECK_DEPTH_CAP)
        w->max_depth = CHECK_DEPTH_CAP;
    if (walk_obj(w, w->max_depth) < 0)
        return -1;
    if (w->off != w->len)
        return set_err(w->err, w->errlen, "malformed msgpack: %zu trailing "
                       "byte%s after the object ending at offset %zu",
                       w->len - w->off, w->len - w->off == 1 ? "" : "s",
                       w->off);
    return 0;
}

int wire_check(const uint8_t *buf, size_t len, unsigned max_depth,
               char *err, size_t errlen)
{
    walker w = {.buf = buf, .len = len, .max_depth = max_depth,
                .budget = SIZE_MAX, .err = err, .errlen = errlen};
    return walk_body(&w);
}

/* Element 0 of a top-level array, read without trusting anything after it,
 * so even a malformed request's error reply can echo its id. */
static void peek_id(const uint8_t *body, size_t len, uint64_t *id_out)
{
    walker w = {.buf = body, .len = len};
    mp_head h = {0}; /* set_err() returns -1, but gcc -O3 cannot tell: it would warn */
    if (read_head(&w, &h) < 0 || h.kind != HEAD_ARRAY || h.n == 0)
        return;
    if (read_head(&w, &h) < 0)
        return;
    if (h.tag <= 0x7f) {
        *id_out = h.tag;
        return;
    }
    /* uint 8..64, or int 8..64 holding a non-negative value, as msgpack-c
     * reads them. */
    if (h.tag < 0xcc || h.tag > 0xd3 || h.n > len - w.off ||
        (h.tag >= 0xd0 && (body[w.off] & 0x80)))
        return;
    uint64_t v = 0;
    for (uint64_t i = 0; i < h.n; i++)
        v = v << 8 | body[w.off + i];
    *id_out = v;
}

/* ---- decoding with msgpack-c, after the walk ---- */

static int unpack_body(const uint8_t *body, size_t len, msgpack_zone *zone,
                       msgpack_object *obj, char *err, size_t errlen)
{
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack((const char *)body, len, &off, zone, obj);
    /* MSGPACK_UNPACK_CONTINUE is 0: only SUCCESS means one whole object. */
    if (rc != MSGPACK_UNPACK_SUCCESS)
        return set_err(err, errlen, "msgpack-c could not unpack the body "
                       "(code %d)", (int)rc);
    return 0;
}

static const char *obj_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "uint";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

/* str and bin objects point into the unpacked buffer (msgpack-c does not
 * copy them), so the view stays valid as long as the body does. */
static int get_bytes(const msgpack_object *o, wire_bytes *out)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *out = (wire_bytes){(const uint8_t *)o->via.bin.ptr, o->via.bin.size};
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        *out = (wire_bytes){(const uint8_t *)o->via.str.ptr, o->via.str.size};
        return 0;
    }
    return -1;
}

/* Accepted element counts per op, and the shape named in errors. */
static const struct {
    uint32_t min, max;
    const char *shape;
} op_shapes[] = {
    [WIRE_OP_GET] = {3, 4, "GET expects [id, 1, key] or [id, 1, key, consistency]"},
    [WIRE_OP_PUT] = {4, 6, "PUT expects [id, 2, key, value], "
                           "[id, 2, key, value, ttl_ms] or "
                           "[id, 2, key, value, ttl_ms, consistency]"},
    [WIRE_OP_DEL] = {3, 4, "DEL expects [id, 3, key] or [id, 3, key, consistency]"},
    [WIRE_OP_PING] = {2, 2, "PING expects [id, 4]"},
    [WIRE_OP_STATS] = {2, 2, "STATS expects [id, 5]"},
    [WIRE_OP_MEMBERS] = {2, 2, "MEMBERS expects [id, 6]"},
    [WIRE_OP_REMOVE] = {3, 3, "REMOVE expects [id, 7, node_id]"},
    [WIRE_OP_TOPOLOGY] = {2, 2, "TOPOLOGY expects [id, 8]"},
    [WIRE_OP_DECOMMISSION] = {2, 2, "DECOMMISSION expects [id, 9]"},
};

/* The op list every op error repeats, so a client author sees them all. */
#define OP_LIST                                                                               \
    "1 GET, 2 PUT, 3 DEL, 4 PING, 5 STATS, 6 MEMBERS, 7 REMOVE, 8 TOPOLOGY or 9 DECOMMISSION"

/* REMOVE's node id travels in the key slot, so it gets the key's checks
 * under its own name. */
static int parse_key(const msgpack_object *o, wire_request *out, char *err,
                     size_t errlen)
{
    const char *what = out->op == WIRE_OP_REMOVE ? "node_id" : "key";
    if (get_bytes(o, &out->key) < 0)
        return set_err(err, errlen, "%s must be bin or str, got %s", what,
                       obj_type_name(o->type));
    if (out->key.len == 0)
        return set_err(err, errlen, "%s must not be empty", what);
    return 0;
}

static int parse_consistency(const msgpack_object *o, wire_request *out,
                             char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > WIRE_CONSISTENCY_ALL)
        return set_err(err, errlen, "consistency must be 0 (one), 1 (quorum) "
                       "or 2 (all), got %s", o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                       ? "a larger uint" : obj_type_name(o->type));
    out->consistency = (int)o->via.u64;
    return 0;
}

static int parse_put(const msgpack_object *el, uint32_t n, wire_request *out,
                     char *err, size_t errlen)
{
    if (get_bytes(&el[3], &out->value) < 0)
        return set_err(err, errlen, "value must be bin or str, got %s",
                       obj_type_name(el[3].type));
    if (n < 5)
        return 0;
    if (el[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "ttl_ms must be an unsigned integer "
                       "(milliseconds, 0 = no expiry), got %s",
                       obj_type_name(el[4].type));
    out->ttl_ms = el[4].via.u64;
    return n == 6 ? parse_consistency(&el[5], out, err, errlen) : 0;
}

/* Checks op and element count, then the op's arguments. */
static int parse_op(const msgpack_object *el, uint32_t n, wire_request *out,
                    char *err, size_t errlen)
{
    if (el[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "op must be an unsigned integer (" OP_LIST
                       "), got %s", obj_type_name(el[1].type));
    uint64_t op = el[1].via.u64;
    if (op < WIRE_OP_GET || op > WIRE_OP_MAX)
        return set_err(err, errlen, "unknown op %" PRIu64 "; expected " OP_LIST,
                       op);
    out->op = (wire_op)op;
    if (n < op_shapes[op].min || n > op_shapes[op].max)
        return set_err(err, errlen, "%s; got %" PRIu32 " element%s",
                       op_shapes[op].shape, n, n == 1 ? "" : "s");
    if (n == 2)
        return 0;
    if (parse_key(&el[2], out, err, errlen) < 0)
        return -1;
    if (out->op == WIRE_OP_PUT)
        return parse_put(el, n, out, err, errlen);
    return n == 4 ? parse_consistency(&el[3], out, err, errlen) : 0;
}

static int parse_request(const msgpack_object *obj, wire_request *out,
                         uint64_t *id_out, char *err, size_t errlen)
{
    if (obj->type != MSGPACK_OBJECT_ARRAY)
        return set_err(err, errlen, "request must be a msgpack array "
                       "[id, op, ...], got %s", obj_type_name(obj->type));
    const msgpack_object *el = obj->via.array.ptr;
    uint32_t n = obj->via.array.size;
    if (n == 0)
        return set_err(err, errlen, "request must be [id, op, ...]; "
                       "got an empty array");
    if (el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "id must be an unsigned integer, got %s",
                       obj_type_name(el[0].type));
    out->id = *id_out = el[0].via.u64;
    if (n == 1)
        return set_err(err, errlen, "request must be [id, op, ...]; "
                       "got 1 element");
    return parse_op(el, n, out, err, errlen);
}

int wire_decode_request(const uint8_t *body, size_t len, msgpack_zone *zone,
                        wire_request *out, uint64_t *id_out,
                        char *err, size_t errlen)
{
    uint64_t id_sink;
    if (!id_out)
        id_out = &id_sink;
    *id_out = 0;
    memset(out, 0, sizeof *out);
    out->consistency = WIRE_CONSISTENCY_DEFAULT;
    walker w = {.buf = body, .len = len, .max_depth = WIRE_MAX_DEPTH,
                .budget = REQ_MAX_ELEMS, .err = err, .errlen = errlen};
    if (walk_body(&w) < 0) {
        peek_id(body, len, id_out);
        if (w.over_budget)
            set_err(err, errlen, "request has more than %d msgpack elements; "
                    "a request is at most [id, op, key, value, ttl_ms, consistency]",
                    REQ_MAX_ELEMS);
        return -1;
    }
    msgpack_object obj;
    if (unpack_body(body, len, zone, &obj, err, errlen) < 0)
        return -1;
    return parse_request(&obj, out, id_out, err, errlen);
}

/* Names and values of a STATS map, as views into the body. */
static int parse_stats(const msgpack_object_map *m, msgpack_zone *zone,
                       wire_response *out, char *err, size_t errlen)
{
    if (m->size == 0)
        return 0;
    if ((uint64_t)m->size * sizeof(wire_stat_view) > SIZE_MAX)
        return set_err(err, errlen, "too many stats entries");
    wire_stat_view *v = msgpack_zone_malloc(zone, m->size * sizeof *v);
    if (!v)
        return set_err(err, errlen, "out of memory for %" PRIu32
                       " stats entries", m->size);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object_kv *kv = &m->ptr[i];
        memset(&v[i], 0, sizeof v[i]);
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return set_err(err, errlen, "stats name must be str, got %s",
                           obj_type_name(kv->key.type));
        get_bytes(&kv->key, &v[i].name);
        if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            v[i].is_num = 1;
            v[i].num = kv->val.via.u64;
        } else if (kv->val.type == MSGPACK_OBJECT_STR) {
            get_bytes(&kv->val, &v[i].str);
        } else {
            return set_err(err, errlen, "stats value for \"%.*s\" must be "
                           "uint or str, got %s",
                           (int)(v[i].name.len > 64 ? 64 : v[i].name.len),
                           (const char *)v[i].name.ptr,
                           obj_type_name(kv->val.type));
        }
    }
    out->stats = v;
    out->nstats = m->size;
    return 0;
}

/* See wire_int.h. */
const wire_field wire_member_fields[] = {
    {"id", 0, offsetof(wire_member_view, id)},
    {"peer", 0, offsetof(wire_member_view, peer_addr)},
    {"client", 0, offsetof(wire_member_view, client_addr)},
    {"resp", 0, offsetof(wire_member_view, resp_addr)},
    {"state", 0, offsetof(wire_member_view, state)},
    {"role", 0, offsetof(wire_member_view, role)},
    {"incarnation", 1, offsetof(wire_member_view, incarnation)},
    {"age_ms", 1, offsetof(wire_member_view, age_ms)},
    {"vnodes", 1, offsetof(wire_member_view, vnodes)},
};
const size_t wire_n_member_fields = sizeof wire_member_fields / sizeof wire_member_fields[0];

static int parse_member(const msgpack_object *o, uint32_t idx,
                        wire_member_view *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (o->type != MSGPACK_OBJECT_MAP)
        return set_err(err, errlen, "member %" PRIu32 " must be a map, got %s",
                       idx, obj_type_name(o->type));
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return set_err(err, errlen, "member %" PRIu32 ": field name must "
                           "be str, got %s", idx, obj_type_name(kv->key.type));
        const msgpack_object_str *k = &kv->key.via.str;
        for (size_t f = 0; f < wire_n_member_fields; f++) {
            if (strlen(wire_member_fields[f].name) != k->size ||
                memcmp(wire_member_fields[f].name, k->ptr, k->size) != 0)
                continue;
            char *field = (char *)v + wire_member_fields[f].off;
            if (wire_member_fields[f].is_num) {
                if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    return set_err(err, errlen, "member %" PRIu32 ": \"%s\" "
                                   "must be uint, got %s", idx,
                                   wire_member_fields[f].name,
                                   obj_type_name(kv->val.type));
                memcpy(field, &kv->val.via.u64, sizeof(uint64_t));
            } else {
                if (kv->val.type != MSGPACK_OBJECT_STR)
                    return set_err(err, errlen, "member %" PRIu32 ": \"%s\" "
                                   "must be str, got %s", idx,
                                   wire_member_fields[f].name,
                                   obj_type_name(kv->val.type));
                get_bytes(&kv->val, (wire_bytes *)(void *)field);
            }
        }
    }
    if (v->id.len == 0 || v->state.len == 0)
        return set_err(err, errlen, "member %" PRIu32 " lacks \"%s\"", idx,
                       v->id.len == 0 ? "id" : "state");
    return 0;
}

/* A MEMBERS reply's array of member maps. */
static int parse_members(const msgpack_object_array *a, msgpack_zone *zone,
                         wire_response *out, char *err, size_t errlen)
{
    out->nmembers = 0;
    out->members = NULL;
    if (a->size == 0)
        return 0;
    /* wire_check has bounded size by the body length, so this is small. */
    wire_member_view *v = msgpack_zone_malloc(zone, a->size * sizeof *v);
    if (!v)
        return set_err(err, errlen, "out of memory for %" PRIu32 " members",
                       a->size);
    for (uint32_t i = 0; i < a->size; i++)
        if (parse_member(&a->ptr[i], i, &v[i], err, errlen) < 0)
            return -1;
    out->members = v;
    out->nmembers = a->size;
    return 0;
}

/* Is this map key the C string name? */
static int key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && strlen(name) == k->via.str.size &&
           memcmp(name, k->via.str.ptr, k->via.str.size) == 0;
}

static const msgpack_object *map_get(const msgpack_object_map *m, const char *name)
{
    for (uint32_t i = 0; i < m->size; i++)
        if (key_is(&m->ptr[i].key, name))
            return &m->ptr[i].val;
    return NULL;
}

/* See wire_int.h. */
const wire_field wire_topo_fields[] = {
    {"id", 0, offsetof(wire_topology_member_view, id)},
    {"client", 0, offsetof(wire_topology_member_view, client_addr)},
    {"resp", 0, offsetof(wire_topology_member_view, resp_addr)},
    {"state", 0, offsetof(wire_topology_member_view, state)},
    {"vnodes", 1, offsetof(wire_topology_member_view, vnodes)},
};
const size_t wire_n_topo_fields = sizeof wire_topo_fields / sizeof wire_topo_fields[0];

static int parse_topo_member(const msgpack_object *o, uint32_t idx,
                             wire_topology_member_view *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (o->type != MSGPACK_OBJECT_MAP)
        return set_err(err, errlen, "topology member %" PRIu32 " must be a "
                       "map, got %s", idx, obj_type_name(o->type));
    for (size_t f = 0; f < wire_n_topo_fields; f++) {
        const msgpack_object *val = map_get(&o->via.map, wire_topo_fields[f].name);
        if (!val)
            continue;
        char *field = (char *)v + wire_topo_fields[f].off;
        if (wire_topo_fields[f].is_num) {
            if (val->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return set_err(err, errlen, "topology member %" PRIu32 ": "
                               "\"%s\" must be uint, got %s", idx,
                               wire_topo_fields[f].name, obj_type_name(val->type));
            memcpy(field, &val->via.u64, sizeof(uint64_t));
        } else if (val->type != MSGPACK_OBJECT_STR) {
            return set_err(err, errlen, "topology member %" PRIu32 ": \"%s\" "
                           "must be str, got %s", idx, wire_topo_fields[f].name,
                           obj_type_name(val->type));
        } else {
            get_bytes(val, (wire_bytes *)(void *)field);
        }
    }
    if (v->id.len == 0 || v->client_addr.len == 0)
        return set_err(err, errlen, "topology member %" PRIu32 " lacks \"%s\"",
                       idx, v->id.len == 0 ? "id" : "client");
    return 0;
}

static int topo_uint(const msgpack_object_map *m, const char *name, uint64_t *out,
                     char *err, size_t errlen)
{
    const msgpack_object *v = map_get(m, name);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "topology \"%s\" must be uint, got %s", name,
                       v ? obj_type_name(v->type) : "nothing");
    *out = v->via.u64;
    return 0;
}

/* A TOPOLOGY reply: {"epoch", "n", "vnodes_default", "members": [...]}. */
static int parse_topology(const msgpack_object_map *m, const msgpack_object *members,
                          msgpack_zone *zone, wire_response *out, char *err,
                          size_t errlen)
{
    wire_topology_view *t = &out->topology;
    if (topo_uint(m, "epoch", &t->epoch, err, errlen) < 0 ||
        topo_uint(m, "n", &t->n, err, errlen) < 0 ||
        topo_uint(m, "vnodes_default", &t->vnodes_default, err, errlen) < 0)
        return -1;
    const msgpack_object_array *a = &members->via.array;
    if (a->size > 0) {
        /* wire_check has bounded size by the body length, so this is small. */
        t->members = msgpack_zone_malloc(zone, a->size * sizeof *t->members);
        if (!t->members)
            return set_err(err, errlen, "out of memory for %" PRIu32
                           " topology members", a->size);
        for (uint32_t i = 0; i < a->size; i++)
            if (parse_topo_member(&a->ptr[i], i, &t->members[i], err, errlen) < 0)
                return -1;
    }
    t->nmembers = a->size;
    out->has_topology = 1;
    return 0;
}

static int parse_payload(const msgpack_object *p, msgpack_zone *zone,
                         wire_response *out, int may_be_nil, char *err, size_t errlen)
{
    if (may_be_nil && p->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (out->status != WIRE_OK) {
        if (p->type != MSGPACK_OBJECT_STR)
            return set_err(err, errlen, "%s payload must be a str message, "
                           "got %s", wire_status_name(out->status),
                           obj_type_name(p->type));
        return get_bytes(p, &out->message);
    }
    if (p->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *members = map_get(&p->via.map, "members");
        if (members && members->type == MSGPACK_OBJECT_ARRAY)
            return parse_topology(&p->via.map, members, zone, out, err, errlen);
        return parse_stats(&p->via.map, zone, out, err, errlen);
    }
    if (p->type == MSGPACK_OBJECT_ARRAY)
        return parse_members(&p->via.array, zone, out, err, errlen);
    if (get_bytes(p, &out->value) < 0)
        return set_err(err, errlen, "OK payload must be bin, str, map or "
                       "array, got %s", obj_type_name(p->type));
    out->has_value = 1;
    return 0;
}

/* The meta map of a data op's reply: {"epoch": uint, "replicas": [str]}.
 * Both fields are optional; unknown names are skipped. */
static int parse_meta(const msgpack_object *o, msgpack_zone *zone,
                      wire_response *out, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return set_err(err, errlen, "meta (element 4) must be a map, got %s",
                       obj_type_name(o->type));
    const msgpack_object *e = map_get(&o->via.map, "epoch");
    if (e) {
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return set_err(err, errlen, "meta \"epoch\" must be uint, got %s",
                           obj_type_name(e->type));
        out->epoch = e->via.u64;
    }
    const msgpack_object *r = map_get(&o->via.map, "replicas");
    if (r) {
        if (r->type != MSGPACK_OBJECT_ARRAY)
            return set_err(err, errlen, "meta \"replicas\" must be an array, "
                           "got %s", obj_type_name(r->type));
        const msgpack_object_array *a = &r->via.array;
        if (a->size > 0) {
            out->replicas = msgpack_zone_malloc(zone, a->size * sizeof *out->replicas);
            if (!out->replicas)
                return set_err(err, errlen, "out of memory for %" PRIu32
                               " replicas", a->size);
        }
        for (uint32_t i = 0; i < a->size; i++)
            if (a->ptr[i].type != MSGPACK_OBJECT_STR ||
                get_bytes(&a->ptr[i], &out->replicas[i]) < 0)
                return set_err(err, errlen, "meta replica %" PRIu32 " must be "
                               "str, got %s", i, obj_type_name(a->ptr[i].type));
        out->nreplicas = a->size;
    }
    out->has_meta = 1;
    return 0;
}

static int parse_response(const msgpack_object *obj, msgpack_zone *zone,
                          wire_response *out, char *err, size_t errlen)
{
    if (obj->type != MSGPACK_OBJECT_ARRAY)
        return set_err(err, errlen, "response must be a msgpack array "
                       "[id, status, ...], got %s", obj_type_name(obj->type));
    const msgpack_object *el = obj->via.array.ptr;
    uint32_t n = obj->via.array.size;
    if (n < 2 || n > 4)
        return set_err(err, errlen, "response must be [id, status], "
                       "[id, status, payload] or [id, status, payload, meta]; "
                       "got %" PRIu32 " element%s", n, n == 1 ? "" : "s");
    if (el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "response id must be an unsigned "
                       "integer, got %s", obj_type_name(el[0].type));
    out->id = el[0].via.u64;
    if (el[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return set_err(err, errlen, "status must be an unsigned integer, "
                       "got %s", obj_type_name(el[1].type));
    if (el[1].via.u64 > WIRE_ERR_INTERNAL)
        return set_err(err, errlen, "unknown status %" PRIu64 " (known: 0 "
                       "to %d)", el[1].via.u64, WIRE_ERR_INTERNAL);
    out->status = (wire_status)el[1].via.u64;
    if (n >= 3 && parse_payload(&el[2], zone, out, n == 4, err, errlen) < 0)
        return -1;
    return n == 4 ? parse_meta(&el[3], zone, out, err, errlen) : 0;
}

int wire_decode_response(const uint8_t *body, size_t len, msgpack_zone *zone,
                         wire_response *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (wire_check(body, len, WIRE_MAX_DEPTH, err, errlen) < 0)
        return -1;
    msgpack_object obj;
    if (unpack_body(body, len, zone, &obj, err, errlen) < 0)
        return -1;
    return parse_response(&obj, zone, out, err, errlen);
}
