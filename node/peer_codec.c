/* peer_codec: the peer port's frames (see peer.h): the header checks, the
 * Envelope packed into a frame and decoded from one (replication's bodies
 * by peer_hand.c, the rest by protobuf-c, with the field-0 walk that
 * protobuf-c does not do), the write-key sniffer that lets the
 * next frames' keys be prefetched, and the bump allocator decodes use.
 * No sockets here: peer.c owns the connections.
 */
#include "peer.h"
#include "peer_hand.h"
#include "pbwire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

int peer_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- the frame codec ---- */

int peer_header_check(const uint8_t hdr[PEER_HEADER_BYTES], uint32_t max_body, uint32_t *body_len,
                      char *err, size_t errlen)
{
    if (hdr[0] != 'R' || hdr[1] != 'K')
        return peer_set_err(err, errlen,
                       "not a ringkv peer frame (magic %02x %02x, expected "
                       "52 4b \"RK\")",
                       hdr[0], hdr[1]);
    if (hdr[2] != PEER_VERSION)
        return peer_set_err(err, errlen, "peer protocol version %u; this node speaks %u", hdr[2],
                       PEER_VERSION);
    if (hdr[3] != 0)
        return peer_set_err(err, errlen, "unknown frame type %u (only 0 is defined)", hdr[3]);
    uint32_t n =
        (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | (uint32_t)hdr[7];
    if (n > max_body)
        return peer_set_err(err, errlen, "frame of %u bytes is over the limit of %u", n, max_body);
    *body_len = n;
    return 0;
}

int peer_frame_peek(struct evbuffer *in, const uint8_t **body, uint32_t *blen, char *err,
                    size_t errlen)
{
    size_t avail = evbuffer_get_length(in);
    if (avail < PEER_HEADER_BYTES)
        return 0;
    uint8_t hdr[PEER_HEADER_BYTES];
    char why[200];
    evbuffer_copyout(in, hdr, sizeof hdr);
    if (peer_header_check(hdr, PEER_MAX_FRAME, blen, why, sizeof why) != 0)
        return peer_set_err(err, errlen, "bad frame header: %s", why);
    if (avail < PEER_HEADER_BYTES + (size_t)*blen)
        return 0; /* the rest has not arrived; the read watermark bounds the wait */
    uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)(PEER_HEADER_BYTES + *blen));
    if (!frame)
        return peer_set_err(err, errlen, "out of memory reading a %u-byte frame", *blen);
    *body = frame + PEER_HEADER_BYTES;
    return 1;
}

/* A frame's header, for a body of `body` bytes. */
static void header_write(uint8_t *buf, size_t body)
{
    buf[0] = 'R';
    buf[1] = 'K';
    buf[2] = PEER_VERSION;
    buf[3] = 0;
    buf[4] = (uint8_t)(body >> 24);
    buf[5] = (uint8_t)(body >> 16);
    buf[6] = (uint8_t)(body >> 8);
    buf[7] = (uint8_t)body;
}

void peer_frame_write(uint8_t *buf, const Ringkv__Envelope *env, size_t len)
{
    size_t body = len - PEER_HEADER_BYTES;
    header_write(buf, body);
    if (!peer_hand_pack(env, buf + PEER_HEADER_BYTES, body))
        ringkv__envelope__pack(env, buf + PEER_HEADER_BYTES);
}

size_t peer_frame_size(const Ringkv__Envelope *env)
{
    size_t body;
    if (!peer_hand_size(env, &body))
        body = ringkv__envelope__get_packed_size(env);
    return body > PEER_MAX_FRAME ? 0 : PEER_HEADER_BYTES + body;
}

int peer_frame_encode(const Ringkv__Envelope *env, uint8_t **out, size_t *len)
{
    size_t n = peer_frame_size(env);
    uint8_t *buf = n ? malloc(n) : NULL;
    if (!buf)
        return -1;
    peer_frame_write(buf, env, n);
    *out = buf;
    *len = n;
    return 0;
}

int peer_frame_append(struct evbuffer *out, const Ringkv__Envelope *env, size_t len)
{
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1 || v.iov_len < len)
        return -1;
    peer_frame_write(v.iov_base, env, len);
    v.iov_len = len;
    return evbuffer_commit_space(out, &v, 1);
}

size_t peer_frame_request_bound(const Ringkv__Envelope *env)
{
    size_t b = peer_hand_request_bound(env);
    return b ? PEER_HEADER_BYTES + b : 0;
}

size_t peer_frame_pack_request(uint8_t *buf, const Ringkv__Envelope *env, size_t bound,
                               size_t *id_at)
{
    if (bound < PEER_HEADER_BYTES || bound > PEER_HEADER_BYTES + PEER_MAX_FRAME)
        return 0;
    size_t body =
        peer_hand_pack_request(env, buf + PEER_HEADER_BYTES, bound - PEER_HEADER_BYTES, id_at);
    if (!body)
        return 0;
    if (id_at && *id_at)
        *id_at += PEER_HEADER_BYTES;
    header_write(buf, body);
    return PEER_HEADER_BYTES + body;
}

int peer_frame_append_request(struct evbuffer *out, const Ringkv__Envelope *env, size_t bound)
{
    struct evbuffer_iovec v;
    size_t len = 0;
    if (bound >= PEER_HEADER_BYTES && bound <= PEER_HEADER_BYTES + PEER_MAX_FRAME &&
        evbuffer_reserve_space(out, (ev_ssize_t)bound, &v, 1) == 1 && v.iov_len >= bound)
        len = peer_frame_pack_request(v.iov_base, env, bound, NULL);
    if (!len) { /* not one this packer takes, or no room: the general path */
        len = peer_frame_size(env);
        return len ? peer_frame_append(out, env, len) : -1;
    }
    v.iov_len = len;
    return evbuffer_commit_space(out, &v, 1);
}

/* protobuf-c 1.4 keeps a field numbered 0 (invalid protobuf) as an unknown
 * field when its key is over-long, and cannot decode it once packed again;
 * such input is refused, so whatever a node accepts survives a relay. The
 * walk follows the descriptors into every message set (the oneof body that
 * is, repeated ones too): a list of the bodies known missed the records of
 * an anti-entropy answer, which fuzz_peer found. */
static bool has_field_zero(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] && has_field_zero(v[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue; /* another member of the oneof is set */
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (sub && has_field_zero(sub))
            return true;
    }
    return false;
}

/* The first length-delimited field numbered field in the message [p,
 * end), whose bytes lie inside it. The walk stops there: a node's frames
 * hold each field once, and the rest of a record (its value, version and
 * origin) was most of the walk, twice a frame (the key is sniffed for the
 * slot, then for the entry), 15% of a replica's instructions under
 * pipelined SETs (callgrind). */
static bool sniff_field(const uint8_t *p, const uint8_t *end, uint64_t field, const uint8_t **out,
                        size_t *outlen)
{
    while (p < end) {
        uint64_t tag, n;
        if (!pbw_get_varint(&p, end, &tag))
            return false;
        switch (tag & 7) {
        case 0: /* varint */
            if (!pbw_get_varint(&p, end, &n))
                return false;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2: /* length-delimited */
            if (!pbw_get_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            if (tag >> 3 == field) {
                *out = p;
                *outlen = (size_t)n;
                return true;
            }
            p += n;
            break;
        default:
            return false;
        }
    }
    return false;
}

/* The key of a write as this node's packer lays it out: 08 01 (version)
 * 62 len (write) [08 id] 12 len (record) 0a len key. True with the key;
 * false when the bytes are not that (sniff_field then walks them). */
static bool sniff_packed_write_key(const uint8_t *p, const uint8_t *end, const uint8_t **key,
                                   size_t *klen)
{
    uint64_t n;
    p += 3; /* 08 01 62, checked by the caller */
    if (!pbw_get_varint(&p, end, &n) || n != (uint64_t)(end - p))
        return false;
    if (p < end && *p == 0x08 && (++p, !pbw_get_varint(&p, end, &n)))
        return false;
    if (p == end || *p++ != 0x12 || !pbw_get_varint(&p, end, &n) || n > (uint64_t)(end - p))
        return false;
    end = p + n; /* the record */
    if (p == end || *p++ != 0x0a || !pbw_get_varint(&p, end, &n) || n > (uint64_t)(end - p) ||
        n == 0)
        return false;
    *key = p;
    *klen = (size_t)n;
    return true;
}

bool peer_sniff_write_key(const uint8_t *body, size_t len, const uint8_t **key, size_t *klen)
{
    const uint8_t *w, *rec;
    size_t wlen, rlen;
    /* A node's frame starts with the version (08 01), then its body's key:
     * a read or an answer is told at once, without the walk (3-4% of a
     * replica's instructions under quorum GETs). A write laid out as this
     * node packs one is read straight through (the walk was 450
     * instructions a write on a replica under SETs: each frame is looked
     * at twice ahead). The key only helps a prefetch. */
    if (len >= 3 && body[0] == 0x08 && body[1] == PEER_VERSION) {
        if (body[2] != 0x62)
            return false;
        if (sniff_packed_write_key(body, body + len, key, klen))
            return true;
    }
    return sniff_field(body, body + len, 12, &w, &wlen) && /* Envelope.write */
           sniff_field(w, w + wlen, 2, &rec, &rlen) &&     /* ReplicaWrite.record */
           sniff_field(rec, rec + rlen, 1, key, klen) && *klen > 0; /* Record.key */
}

/* Whether env speaks this node's Envelope version; err says why not. */
static bool version_ok(const Ringkv__Envelope *env, char *err, size_t errlen)
{
    if (env->version == PEER_VERSION)
        return true;
    peer_set_err(err, errlen, "Envelope version %u; this node speaks %u", env->version,
                 PEER_VERSION);
    return false;
}

static Ringkv__Envelope *decode_with(ProtobufCAllocator *alloc, const uint8_t *body, size_t len,
                                     char *err, size_t errlen)
{
    Ringkv__Envelope *env = ringkv__envelope__unpack(alloc, len, body);
    if (!env) {
        peer_set_err(err, errlen, "frame body of %zu bytes is not a valid Envelope", len);
        return NULL;
    }
    if (has_field_zero(&env->base)) {
        peer_set_err(err, errlen, "frame body holds a field numbered 0 (invalid protobuf)");
        ringkv__envelope__free_unpacked(env, alloc);
        return NULL;
    }
    if (!version_ok(env, err, errlen)) {
        ringkv__envelope__free_unpacked(env, alloc);
        return NULL;
    }
    return env;
}

Ringkv__Envelope *peer_envelope_decode(const uint8_t *body, size_t len, char *err, size_t errlen)
{
    return decode_with(NULL, body, len, err, errlen);
}

void peer_envelope_free(Ringkv__Envelope *env)
{
    if (env)
        ringkv__envelope__free_unpacked(env, NULL);
}

void *peer_arena_take(peer_arena *a, size_t size)
{
    size_t need = (size + 15) & ~(size_t)15;
    if (need < size) /* wrapped */
        return NULL;
    if (need <= sizeof a->buf - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    if (a->more && need <= a->more_cap - a->more_used) {
        void *p = a->more + a->more_used;
        a->more_used += need;
        return p;
    }
    return NULL;
}

static void *arena_alloc(void *data, size_t size)
{
    peer_arena *a = data;
    void *p = peer_arena_take(a, size);
    if (p)
        return p;
    size_t need = (size + 15) & ~(size_t)15;
    a->spilled++;
    a->spilled_bytes += need < size ? SIZE_MAX : need;
    return malloc(size ? size : 1); /* a wrapped size: malloc refuses it */
}

static bool in_arena(const peer_arena *a, const unsigned char *p)
{
    return (p >= a->buf && p < a->buf + sizeof a->buf) ||
           (a->more && p >= a->more && p < a->more + a->more_cap);
}

static void arena_free(void *data, void *ptr)
{
    peer_arena *a = data;
    if (ptr && !in_arena(a, ptr))
        free(ptr); /* did not fit */
}

/* Empties a; after an envelope that spilled, the second block grows to
 * hold it next time. */
static void arena_reset(peer_arena *a)
{
    if (a->spilled && a->more_cap < PEER_ARENA_MAX_MORE) {
        size_t want = a->more_used + a->spilled_bytes;
        size_t cap = a->more_cap ? a->more_cap : 16384;
        while (cap < want && cap < PEER_ARENA_MAX_MORE)
            cap *= 2;
        if (cap > PEER_ARENA_MAX_MORE)
            cap = PEER_ARENA_MAX_MORE;
        unsigned char *m = malloc(cap);
        if (m) { /* else the old block stays */
            free(a->more);
            a->more = m;
            a->more_cap = cap;
        }
    }
    a->used = a->more_used = 0;
    a->spilled = a->spilled_bytes = 0;
}

void peer_arena_release(peer_arena *a)
{
    free(a->more);
    a->more = NULL;
    a->more_cap = a->more_used = 0;
}

Ringkv__Envelope *peer_envelope_decode_in(peer_arena *a, const uint8_t *body, size_t len,
                                          char *err, size_t errlen)
{
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = a};
    a->used = a->more_used = 0;
    a->spilled = a->spilled_bytes = 0;
    Ringkv__Envelope *env = peer_hand_decode(a, body, len);
    if (env) /* all in the arena: nothing to free on a refusal */
        return version_ok(env, err, errlen) ? env : NULL;
    a->used = a->more_used = 0;
    return decode_with(&alloc, body, len, err, errlen);
}

void peer_envelope_free_in(peer_arena *a, Ringkv__Envelope *env)
{
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = a};
    /* When all of it is in the arena, walking the message to free each
     * piece would only find pieces that emptying the arena frees. */
    if (env && a->spilled)
        ringkv__envelope__free_unpacked(env, &alloc);
    arena_reset(a);
}
