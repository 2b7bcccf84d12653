/* peer_hand: replication's bodies packed and decoded by hand (see
 * peer_hand.h); peer_codec.c calls it for every frame and goes to
 * protobuf-c for what it declines.
 */
#include "peer_hand.h"
#include "pbwire.h"

#include <assert.h>
#include <string.h>

/* ---- packing ----
 *
 * Field by field in number order, a field at its default (0, false, empty)
 * left out, as protobuf-c packs proto3. Sub-records go whenever their
 * pointer is set. Each length is worked out twice (size, then bytes), as
 * protobuf-c does. */

/* The size of one field numbered 1 to 15 (a one-byte key). */
static size_t f_len(size_t n) { return 1 + pbw_varint_len(n) + n; }
static size_t f_u64(uint64_t v) { return v ? 1 + pbw_varint_len(v) : 0; }
static size_t f_bool(protobuf_c_boolean b) { return b ? 2 : 0; }
static size_t f_bytes(ProtobufCBinaryData b) { return b.len ? f_len(b.len) : 0; }
static size_t f_str(const char *s) { return s && s[0] ? f_len(strlen(s)) : 0; }

static uint8_t *w_head(uint8_t *p, unsigned field, size_t n)
{
    p = pbw_put_varint(p, (uint64_t)field << 3 | 2);
    return pbw_put_varint(p, n);
}

static uint8_t *w_u64(uint8_t *p, unsigned field, uint64_t v)
{
    if (!v)
        return p;
    *p++ = (uint8_t)(field << 3);
    return pbw_put_varint(p, v);
}

static uint8_t *w_bool(uint8_t *p, unsigned field, protobuf_c_boolean b)
{
    if (b) {
        *p++ = (uint8_t)(field << 3);
        *p++ = 1;
    }
    return p;
}

static uint8_t *w_raw(uint8_t *p, unsigned field, const void *data, size_t n)
{
    p = w_head(p, field, n);
    memcpy(p, data, n);
    return p + n;
}

static uint8_t *w_bytes(uint8_t *p, unsigned field, ProtobufCBinaryData b)
{
    return b.len ? w_raw(p, field, b.data, b.len) : p;
}

static uint8_t *w_str(uint8_t *p, unsigned field, const char *s)
{
    return s && s[0] ? w_raw(p, field, s, strlen(s)) : p;
}

static size_t record_size(const Ringkv__Record *r)
{
    return f_bytes(r->key) + f_bytes(r->value) + f_bool(r->tombstone) + f_u64(r->expires_ms) +
           f_u64(r->hlc) + f_str(r->origin);
}

/* A sub-record is there whenever its pointer is set, empty or not; rsz:
 * its record_size. */
static size_t f_record(const Ringkv__Record *r, size_t rsz) { return r ? f_len(rsz) : 0; }

static uint8_t *w_record(uint8_t *p, unsigned field, const Ringkv__Record *r, size_t rsz)
{
    if (!r)
        return p;
    p = w_head(p, field, rsz);
    p = w_bytes(p, 1, r->key);
    p = w_bytes(p, 2, r->value);
    p = w_bool(p, 3, r->tombstone);
    p = w_u64(p, 4, r->expires_ms);
    p = w_u64(p, 5, r->hlc);
    return w_str(p, 6, r->origin);
}

/* m's size, and its record's in *rsz. */
static size_t read_reply_size(const Ringkv__ReplicaReadReply *m, size_t *rsz)
{
    *rsz = m->record ? record_size(m->record) : 0;
    return f_u64(m->id) + f_bool(m->ok) + f_str(m->error) + f_bool(m->found) +
           f_record(m->record, *rsz) + f_bool(m->version_only);
}

static uint8_t *read_reply_put(uint8_t *p, const Ringkv__ReplicaReadReply *m, size_t rsz)
{
    p = w_u64(p, 1, m->id);
    p = w_bool(p, 2, m->ok);
    p = w_str(p, 3, m->error);
    p = w_bool(p, 4, m->found);
    p = w_record(p, 5, m->record, rsz);
    return w_bool(p, 6, m->version_only);
}

static size_t ids_size(const Ringkv__ReplicaWriteAck *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_more_ids; i++)
        n += pbw_varint_len(m->more_ids[i]);
    return n;
}

/* No unknown fields, which protobuf-c packs at the end of a message. */
static bool plain(const void *m)
{
    return ((const ProtobufCMessage *)m)->n_unknown_fields == 0;
}

static bool plain_reply(const Ringkv__ReplicaReadReply *m)
{
    return m && plain(m) && (!m->record || plain(m->record));
}

/* This packer's body, with no unknown fields anywhere. */
static bool takes(const Ringkv__Envelope *env)
{
    if (!plain(env))
        return false;
    switch (env->body_case) {
    case RINGKV__ENVELOPE__BODY_READ:
        return env->read && plain(env->read);
    case RINGKV__ENVELOPE__BODY_WRITE:
        return env->write && plain(env->write) && (!env->write->record || plain(env->write->record));
    case RINGKV__ENVELOPE__BODY_WRITE_ACK:
        return env->write_ack && plain(env->write_ack);
    case RINGKV__ENVELOPE__BODY_READ_REPLY:
        return plain_reply(env->read_reply);
    case RINGKV__ENVELOPE__BODY_READ_REPLIES:
        if (!env->read_replies || !plain(env->read_replies))
            return false;
        for (size_t i = 0; i < env->read_replies->n_replies; i++)
            if (!plain_reply(env->read_replies->replies[i]))
                return false;
        return true;
    default:
        return false;
    }
}

/* The size of env's body message, or false when protobuf-c is to pack env. */
static bool body_size(const Ringkv__Envelope *env, size_t *n)
{
    size_t rsz;
    if (!takes(env))
        return false;
    switch (env->body_case) {
    case RINGKV__ENVELOPE__BODY_READ: {
        const Ringkv__ReplicaRead *m = env->read;
        *n = f_u64(m->id) + f_bytes(m->key) + f_u64(m->have_hlc) + f_str(m->have_origin);
        break;
    }
    case RINGKV__ENVELOPE__BODY_WRITE: {
        const Ringkv__ReplicaWrite *m = env->write;
        *n = f_u64(m->id) + f_record(m->record, m->record ? record_size(m->record) : 0) +
             f_str(m->hint_for) + f_bool(m->background);
        break;
    }
    case RINGKV__ENVELOPE__BODY_WRITE_ACK: {
        const Ringkv__ReplicaWriteAck *m = env->write_ack;
        *n = f_u64(m->id) + f_bool(m->ok) + f_str(m->error) +
             (m->n_more_ids ? f_len(ids_size(m)) : 0);
        break;
    }
    case RINGKV__ENVELOPE__BODY_READ_REPLY:
        *n = read_reply_size(env->read_reply, &rsz);
        break;
    default: /* RINGKV__ENVELOPE__BODY_READ_REPLIES */
        *n = 0;
        for (size_t i = 0; i < env->read_replies->n_replies; i++)
            *n += f_len(read_reply_size(env->read_replies->replies[i], &rsz));
        break;
    }
    return true;
}

bool peer_hand_size(const Ringkv__Envelope *env, size_t *size)
{
    size_t n;
    if (!body_size(env, &n))
        return false;
    /* The body's field number is its case; 24 takes a two-byte key. */
    *size = f_u64(env->version) + pbw_varint_len((uint64_t)env->body_case << 3) +
            pbw_varint_len(n) + n;
    return true;
}

bool peer_hand_pack(const Ringkv__Envelope *env, uint8_t *out, size_t size)
{
    if (!takes(env))
        return false;
    /* The body's size from the envelope's: size = version + key + n's
     * varint + n, and n + varint_len(n) grows with n, so one n fits. */
    size_t rest = size - f_u64(env->version) - pbw_varint_len((uint64_t)env->body_case << 3), n = 0;
    for (size_t vl = 1; vl <= 10 && vl <= rest; vl++)
        if (pbw_varint_len(rest - vl) == vl) {
            n = rest - vl;
            break;
        }
    size_t rsz;
    uint8_t *p = w_u64(out, 1, env->version);
    p = w_head(p, (unsigned)env->body_case, n);
    switch (env->body_case) {
    case RINGKV__ENVELOPE__BODY_READ: {
        const Ringkv__ReplicaRead *m = env->read;
        p = w_u64(p, 1, m->id);
        p = w_bytes(p, 2, m->key);
        p = w_u64(p, 3, m->have_hlc);
        p = w_str(p, 4, m->have_origin);
        break;
    }
    case RINGKV__ENVELOPE__BODY_WRITE: {
        const Ringkv__ReplicaWrite *m = env->write;
        p = w_u64(p, 1, m->id);
        p = w_record(p, 2, m->record, m->record ? record_size(m->record) : 0);
        p = w_str(p, 3, m->hint_for);
        p = w_bool(p, 4, m->background);
        break;
    }
    case RINGKV__ENVELOPE__BODY_WRITE_ACK: {
        const Ringkv__ReplicaWriteAck *m = env->write_ack;
        p = w_u64(p, 1, m->id);
        p = w_bool(p, 2, m->ok);
        p = w_str(p, 3, m->error);
        if (m->n_more_ids) {
            p = w_head(p, 4, ids_size(m));
            for (size_t i = 0; i < m->n_more_ids; i++)
                p = pbw_put_varint(p, m->more_ids[i]);
        }
        break;
    }
    case RINGKV__ENVELOPE__BODY_READ_REPLY:
        (void)read_reply_size(env->read_reply, &rsz);
        p = read_reply_put(p, env->read_reply, rsz);
        break;
    case RINGKV__ENVELOPE__BODY_READ_REPLIES:
        for (size_t i = 0; i < env->read_replies->n_replies; i++) {
            const Ringkv__ReplicaReadReply *r = env->read_replies->replies[i];
            size_t rn = read_reply_size(r, &rsz);
            p = read_reply_put(w_head(p, 1, rn), r, rsz);
        }
        break;
    default:
        break;
    }
    assert((size_t)(p - out) == size);
    (void)size;
    return true;
}

/* ---- a request, sized once ----
 * Replication's most frequent frames (two writes per SET at N = 3, a read
 * or two per quorum GET) went through peer_frame_size and then
 * peer_frame_append, each asking takes() and sizing the message again,
 * strlen on its strings every time: about 1,000 instructions a write on
 * the coordinator (callgrind, SETs -P16 at one), half a SET's encoding,
 * and 790 a read (quorum GETs -P16). Here each length is found once. */

/* A ReplicaWrite or ReplicaRead with no unknown fields anywhere (protobuf-c
 * packs those). */
static bool plain_request(const Ringkv__Envelope *env)
{
    if (!plain(env))
        return false;
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE)
        return env->write && plain(env->write) &&
               (!env->write->record || plain(env->write->record));
    return env->body_case == RINGKV__ENVELOPE__BODY_READ && env->read && plain(env->read);
}

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

size_t peer_hand_request_bound(const Ringkv__Envelope *env)
{
    if (!plain_request(env))
        return 0;
    /* keys, varints and lengths: at most 11 bytes a field, 12 fields */
    if (env->body_case == RINGKV__ENVELOPE__BODY_READ)
        return env->read->key.len + slen(env->read->have_origin) + 12 * 11;
    const Ringkv__ReplicaWrite *w = env->write;
    const Ringkv__Record *r = w->record;
    return (r ? r->key.len + r->value.len + slen(r->origin) : 0) + slen(w->hint_for) + 12 * 11;
}

size_t peer_hand_pack_request(const Ringkv__Envelope *env, uint8_t *out, size_t room, size_t *id_at)
{
    if (!plain_request(env))
        return 0;
    bool read = env->body_case == RINGKV__ENVELOPE__BODY_READ;
    /* the message's one string: have_origin or hint_for */
    const char *s = read ? env->read->have_origin : env->write->hint_for;
    size_t sn = slen(s), rsz = 0, msz = sn ? f_len(sn) : 0;
    if (read) {
        const Ringkv__ReplicaRead *r = env->read;
        msz += f_u64(r->id) + f_bytes(r->key) + f_u64(r->have_hlc);
    } else {
        const Ringkv__ReplicaWrite *w = env->write;
        rsz = w->record ? record_size(w->record) : 0;
        msz += f_u64(w->id) + f_record(w->record, rsz) + f_bool(w->background);
    }
    size_t body = f_u64(env->version) + 1 + pbw_varint_len(msz) + msz;
    if (body > room)
        return 0;
    uint8_t *p = w_u64(out, 1, env->version);
    p = w_head(p, (unsigned)env->body_case, msz);
    if (id_at) /* the id is the body's first field: its key, then its varint */
        *id_at = (read ? env->read->id : env->write->id) ? (size_t)(p - out) + 1 : 0;
    if (read) {
        p = w_u64(p, 1, env->read->id);
        p = w_bytes(p, 2, env->read->key);
        p = w_u64(p, 3, env->read->have_hlc);
        if (sn)
            p = w_raw(p, 4, s, sn);
    } else {
        p = w_u64(p, 1, env->write->id);
        p = w_record(p, 2, env->write->record, rsz);
        if (sn)
            p = w_raw(p, 3, s, sn);
        p = w_bool(p, 4, env->write->background);
    }
    assert((size_t)(p - out) == body);
    return body;
}

/* ---- decoding ----
 *
 * Into the arena, as protobuf-c would lay the structs out: strings copied
 * and NUL-terminated, bytes fields pointing into the body itself (an empty
 * one NULL), the rest at its default, all of it in the arena's blocks
 * (peer_arena_take: no room means protobuf-c decodes, spilling to malloc).
 * A replica write's key and value were copied there and then again into
 * the store: about 170 instructions a write, and a value's size of arena. Only the form a
 * packer writes is taken: each field once, in number order (ReadReplies'
 * replies repeated), with its own wire type, keys and lengths in their
 * shortest varints, bools as 0 or 1, no unknown fields; anything else
 * returns NULL for protobuf-c to decide. */

typedef struct hand_in {
    const uint8_t *p, *end;
    peer_arena *a;
} hand_in;

/* A varint of at most 64 bits (a longer one is protobuf-c's to read). */
static inline bool in_varint(hand_in *in, uint64_t *v)
{
    const uint8_t *at = in->p;
    return pbw_get_varint(&in->p, in->end, v) && (in->p - at < 10 || in->p[-1] <= 1);
}

/* The next field's number, if it is over *last (fields in order, each
 * once, but field `repeat` may follow itself) and has the wire type
 * types[number] gives; 0 at the end of the message, -1 otherwise. */
static inline int in_key(hand_in *in, unsigned *last, const uint8_t *types, unsigned ntypes,
                  unsigned repeat)
{
    uint64_t key;
    const uint8_t *at = in->p;
    if (in->p == in->end)
        return 0;
    if (!in_varint(in, &key) || (size_t)(in->p - at) != pbw_varint_len(key))
        return -1; /* a padded key: protobuf-c reads at most five bytes */
    uint64_t f = key >> 3;
    if (f == 0 || f >= ntypes || types[f] == 0xff || (key & 7) != types[f] ||
        (f <= *last && !(f == repeat && f == *last)))
        return -1;
    *last = (unsigned)f;
    return (int)f;
}

static bool in_bool(hand_in *in, protobuf_c_boolean *b)
{
    if (in->p == in->end || *in->p > 1)
        return false;
    *b = *in->p++;
    return true;
}

/* A length-delimited field's bytes: [*data, *data + *len). */
static inline __attribute__((always_inline)) bool in_span(hand_in *in, const uint8_t **data,
                                                         size_t *len)
{
    uint64_t n;
    const uint8_t *at = in->p;
    if (!in_varint(in, &n) || (size_t)(in->p - at) != pbw_varint_len(n) ||
        n > (uint64_t)(in->end - in->p))
        return false; /* a padded length too: protobuf-c reads at most five bytes */
    *data = in->p;
    *len = (size_t)n;
    in->p += n;
    return true;
}

static bool in_bytes(hand_in *in, ProtobufCBinaryData *b)
{
    const uint8_t *d;
    size_t n;
    if (!in_span(in, &d, &n))
        return false;
    b->len = n;
    b->data = n ? (uint8_t *)d : NULL; /* as protobuf-c leaves an empty one */
    return true;
}

static bool in_str(hand_in *in, char **s)
{
    const uint8_t *d;
    size_t n;
    char *c;
    if (!in_span(in, &d, &n) || !(c = peer_arena_take(in->a, n + 1)))
        return false;
    memcpy(c, d, n);
    c[n] = '\0';
    *s = c;
    return true;
}

/* Wire types by field number; 0xff: no such field. */
#define VARINT 0
#define LEN 2
static const uint8_t record_types[] = {0xff, LEN, LEN, VARINT, VARINT, VARINT, LEN};
static const uint8_t read_types[] = {0xff, VARINT, LEN, VARINT, LEN};
static const uint8_t write_types[] = {0xff, VARINT, LEN, LEN, VARINT};
static const uint8_t ack_types[] = {0xff, VARINT, VARINT, LEN, LEN};
static const uint8_t reply_types[] = {0xff, VARINT, VARINT, LEN, VARINT, LEN, VARINT};
static const uint8_t replies_types[] = {0xff, LEN};
#define NT(t) (unsigned)(sizeof t / sizeof t[0])

/* The sub-message of a length-delimited field, as its own input. */
static bool in_sub(hand_in *in, hand_in *sub)
{
    const uint8_t *d;
    size_t n;
    if (!in_span(in, &d, &n))
        return false;
    *sub = (hand_in){.p = d, .end = d + n, .a = in->a};
    return true;
}

static Ringkv__Record *in_record(hand_in *outer)
{
    hand_in in;
    Ringkv__Record *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__record__init(m);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, record_types, NT(record_types), 0)) != 0;) {
        bool ok = f == 1   ? in_bytes(&in, &m->key)
                  : f == 2 ? in_bytes(&in, &m->value)
                  : f == 3 ? in_bool(&in, &m->tombstone)
                  : f == 4 ? in_varint(&in, &m->expires_ms)
                  : f == 5 ? in_varint(&in, &m->hlc)
                  : f == 6 ? in_str(&in, &m->origin)
                           : false;
        if (!ok)
            return NULL;
    }
    return m;
}

static Ringkv__ReplicaReadReply *in_reply(hand_in *outer)
{
    hand_in in;
    Ringkv__ReplicaReadReply *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__replica_read_reply__init(m);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, reply_types, NT(reply_types), 0)) != 0;) {
        bool ok = f == 1   ? in_varint(&in, &m->id)
                  : f == 2 ? in_bool(&in, &m->ok)
                  : f == 3 ? in_str(&in, &m->error)
                  : f == 4 ? in_bool(&in, &m->found)
                  : f == 5 ? (m->record = in_record(&in)) != NULL
                  : f == 6 ? in_bool(&in, &m->version_only)
                           : false;
        if (!ok)
            return NULL;
    }
    return m;
}

static void *in_read(hand_in *outer)
{
    hand_in in;
    Ringkv__ReplicaRead *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__replica_read__init(m);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, read_types, NT(read_types), 0)) != 0;) {
        bool ok = f == 1   ? in_varint(&in, &m->id)
                  : f == 2 ? in_bytes(&in, &m->key)
                  : f == 3 ? in_varint(&in, &m->have_hlc)
                  : f == 4 ? in_str(&in, &m->have_origin)
                           : false;
        if (!ok)
            return NULL;
    }
    return m;
}

static void *in_write(hand_in *outer)
{
    hand_in in;
    Ringkv__ReplicaWrite *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__replica_write__init(m);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, write_types, NT(write_types), 0)) != 0;) {
        bool ok = f == 1   ? in_varint(&in, &m->id)
                  : f == 2 ? (m->record = in_record(&in)) != NULL
                  : f == 3 ? in_str(&in, &m->hint_for)
                  : f == 4 ? in_bool(&in, &m->background)
                           : false;
        if (!ok)
            return NULL;
    }
    return m;
}

static void *in_ack(hand_in *outer)
{
    hand_in in;
    Ringkv__ReplicaWriteAck *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__replica_write_ack__init(m);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, ack_types, NT(ack_types), 0)) != 0;) {
        bool ok;
        if (f == 4) { /* packed ids: counted, then read */
            hand_in ids;
            size_t n = 0;
            uint64_t v;
            if (!in_sub(&in, &ids))
                return NULL;
            for (hand_in c = ids; c.p < c.end; n++)
                if (!in_varint(&c, &v))
                    return NULL;
            if (n == 0)
                return NULL; /* protobuf-c would allocate nothing; leave it to it */
            if (!(m->more_ids = peer_arena_take(in.a, n * sizeof *m->more_ids)))
                return NULL;
            for (size_t i = 0; i < n; i++)
                (void)in_varint(&ids, &m->more_ids[i]);
            m->n_more_ids = n;
            ok = true;
        } else {
            ok = f == 1   ? in_varint(&in, &m->id)
                 : f == 2 ? in_bool(&in, &m->ok)
                 : f == 3 ? in_str(&in, &m->error)
                          : false;
        }
        if (!ok)
            return NULL;
    }
    return m;
}

static void *in_replies(hand_in *outer)
{
    hand_in in, c;
    Ringkv__ReadReplies *m;
    if (!in_sub(outer, &in) || !(m = peer_arena_take(in.a, sizeof *m)))
        return NULL;
    ringkv__read_replies__init(m);
    /* Counted first: protobuf-c's array holds exactly the replies. */
    size_t n = 0;
    unsigned last = 0;
    int f;
    for (c = in; (f = in_key(&c, &last, replies_types, NT(replies_types), 1)) == 1; n++) {
        const uint8_t *d;
        size_t len;
        if (!in_span(&c, &d, &len))
            return NULL;
    }
    if (f != 0)
        return NULL;
    if (n && !(m->replies = peer_arena_take(in.a, n * sizeof *m->replies)))
        return NULL;
    last = 0;
    for (size_t i = 0; i < n; i++)
        if (in_key(&in, &last, replies_types, NT(replies_types), 1) != 1 ||
            !(m->replies[i] = in_reply(&in)))
            return NULL;
    m->n_replies = n;
    return m;
}

Ringkv__Envelope *peer_hand_decode(peer_arena *a, const uint8_t *body, size_t len)
{
    static const uint8_t env_types[] = {
        [0] = 0xff, [1] = VARINT, [2 ... 11] = 0xff, [12] = LEN, [13] = LEN, [14] = LEN,
        [15] = LEN, [16 ... 23] = 0xff, [24] = LEN};
    hand_in in = {.p = body, .end = body + len, .a = a};
    Ringkv__Envelope *env = peer_arena_take(a, sizeof *env);
    if (!env)
        return NULL;
    ringkv__envelope__init(env);
    unsigned last = 0;
    for (int f; (f = in_key(&in, &last, env_types, NT(env_types), 0)) != 0;) {
        uint64_t v;
        void *m = NULL;
        switch (f) {
        case 1:
            if (!in_varint(&in, &v) || v > UINT32_MAX)
                return NULL;
            env->version = (uint32_t)v;
            continue;
        case 12:
            m = in_write(&in);
            break;
        case 13:
            m = in_ack(&in);
            break;
        case 14:
            m = in_read(&in);
            break;
        case 15:
            m = in_reply(&in);
            break;
        case 24:
            m = in_replies(&in);
            break;
        default:
            return NULL;
        }
        if (!m || env->body_case != RINGKV__ENVELOPE__BODY__NOT_SET)
            return NULL; /* a second body: protobuf-c's to settle */
        env->body_case = (Ringkv__Envelope__BodyCase)f;
        env->write = m; /* the union's members are all pointers here */
    }
    return env;
}
#undef VARINT
#undef LEN
#undef NT

