/* gossip_codec: datagram, push-pull and record formats of gossip (see
 * gossip_codec.h and proto/README.md). Nothing from the network is trusted:
 * length and version are checked first, a push-pull state's record count
 * before protobuf-c allocates for it, and every field after decoding.
 */
#include "gossip_codec.h"
#include "pbwire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gossip_codec_valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= GOSSIP_ID_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

bool gossip_codec_valid_addr(const char *s, bool may_be_empty)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= GOSSIP_ADDR_MAX - 1 || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return false;
    return n > 0 || may_be_empty;
}

bool gossip_codec_valid_member(const Ringkv__GossipMember *r)
{
    return gossip_codec_valid_id(r->id) && gossip_codec_valid_addr(r->peer_addr, false) &&
           gossip_codec_valid_addr(r->client_addr, true) &&
           gossip_codec_valid_addr(r->resp_addr, true) && (int)r->state >= GOSSIP_ALIVE &&
           (int)r->state <= GOSSIP_REMOVED && (int)r->role >= GOSSIP_ROLE_MEMBER &&
           (int)r->role <= GOSSIP_ROLE_LEAVING &&
           (r->accuser[0] == '\0' || gossip_codec_valid_id(r->accuser));
}

void gossip_codec_member_pb(const gossip_member *m, const char *accuser, Ringkv__GossipMember *pb)
{
    ringkv__gossip_member__init(pb);
    /* protobuf-c wants char *, but packing never writes through it */
    pb->id = (char *)m->id;
    pb->peer_addr = (char *)m->peer_addr;
    pb->client_addr = (char *)m->client_addr;
    pb->resp_addr = (char *)m->resp_addr;
    pb->state = (Ringkv__MemberState)m->state;
    pb->incarnation = m->incarnation;
    pb->role = (Ringkv__RingRole)m->role;
    pb->vnodes = m->vnodes;
    if (accuser && accuser[0])
        pb->accuser = (char *)accuser;
}

size_t gossip_codec_frame_member(const gossip_member *m, const char *accuser, uint8_t *out)
{
    Ringkv__GossipMember pb;
    gossip_codec_member_pb(m, accuser, &pb);
    size_t len = ringkv__gossip_member__get_packed_size(&pb);
    size_t n = 0;
    /* bounded by the struct's fixed-size strings, so it always fits */
    out[n++] = GOSSIP_UPDATE_TAG;
    n = (size_t)(pbw_put_varint(out + n, len) - out);
    ringkv__gossip_member__pack(&pb, out + n);
    return n + len;
}

size_t gossip_codec_pack_head(const Ringkv__GossipPacket *p, uint8_t *buf, size_t cap)
{
    size_t len = ringkv__gossip_packet__get_packed_size(p);
    if (p->n_updates != 0 || len + 1 > cap)
        return 0;
    buf[0] = GOSSIP_VERSION;
    ringkv__gossip_packet__pack(p, buf + 1);
    return len + 1;
}

static bool valid_body(const Ringkv__GossipPacket *p)
{
    switch (p->body_case) {
    case RINGKV__GOSSIP_PACKET__BODY__NOT_SET:
    case RINGKV__GOSSIP_PACKET__BODY_ACK:
    case RINGKV__GOSSIP_PACKET__BODY_NACK:
        return true;
    case RINGKV__GOSSIP_PACKET__BODY_PING:
        return gossip_codec_valid_id(p->ping->target_id);
    case RINGKV__GOSSIP_PACKET__BODY_PING_REQ:
        return gossip_codec_valid_id(p->ping_req->target_id) &&
               gossip_codec_valid_addr(p->ping_req->target_addr, false);
    default:
        return false;
    }
}

/* protobuf-c turns a string into a C string, silently cut at an embedded
 * NUL; it also accepts repeated scalars, non-minimal varints and duplicated
 * fields. Packing the decoded message again and comparing sizes catches all
 * of these, since each makes the re-packed form shorter: only the canonical
 * encoding our encoder produces passes. Unknown fields are kept and re-packed
 * as they came, so a newer peer's extra fields still pass. */
static bool canonical(const ProtobufCMessage *m, size_t len)
{
    return protobuf_c_message_get_packed_size(m) == len;
}

Ringkv__GossipPacket *gossip_codec_decode_packet(const uint8_t *buf, size_t len, size_t max_len)
{
    if (len < 1 || len > max_len || buf[0] != GOSSIP_VERSION)
        return NULL;
    Ringkv__GossipPacket *p = ringkv__gossip_packet__unpack(NULL, len - 1, buf + 1);
    if (!p)
        return NULL;
    bool ok = canonical(&p->base, len - 1) && gossip_codec_valid_id(p->sender_id) && valid_body(p);
    for (size_t i = 0; ok && i < p->n_updates; i++)
        ok = gossip_codec_valid_member(p->updates[i]);
    if (!ok) {
        ringkv__gossip_packet__free_unpacked(p, NULL);
        return NULL;
    }
    return p;
}

int gossip_codec_encode_state(const Ringkv__GossipPushPull *s, uint8_t **buf, size_t *len)
{
    size_t n = ringkv__gossip_push_pull__get_packed_size(s);
    if (n + 1 > GOSSIP_STATE_MAX)
        return -1;
    uint8_t *b = malloc(n + 1);
    if (!b)
        return -1;
    b[0] = GOSSIP_VERSION;
    ringkv__gossip_push_pull__pack(s, b + 1);
    *buf = b;
    *len = n + 1;
    return 0;
}

static bool get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    const uint8_t *at = p + *off;
    bool ok = pbw_get_varint(&at, p + len, v);
    *off = (size_t)(at - p);
    return ok;
}

/* Walks the top-level fields of a GossipPushPull and counts its records,
 * so a state of millions of empty records is refused before protobuf-c
 * allocates a struct for each. Returns -1 on a framing error. */
static long count_records(const uint8_t *p, size_t len)
{
    size_t off = 0;
    long count = 0;
    while (off < len) {
        uint64_t tag, v;
        if (!get_varint(p, len, &off, &tag))
            return -1;
        switch (tag & 7) {
        case 0:
            if (!get_varint(p, len, &off, &v))
                return -1;
            break;
        case 1:
        case 5:
            v = (tag & 7) == 1 ? 8 : 4;
            if (len - off < v)
                return -1;
            off += v;
            break;
        case 2:
            if (!get_varint(p, len, &off, &v) || v > len - off)
                return -1;
            off += v;
            if (tag >> 3 == 3 && ++count > GOSSIP_STATE_MAX_MEMBERS)
                return count;
            break;
        default:
            return -1;
        }
    }
    return count;
}

static Ringkv__GossipPushPull *state_fail(Ringkv__GossipPushPull *s, char *err, size_t errlen,
                                          const char *msg)
{
    if (s)
        ringkv__gossip_push_pull__free_unpacked(s, NULL);
    snprintf(err, errlen, "%s", msg);
    return NULL;
}

static const char *check_state(const Ringkv__GossipPushPull *s, size_t len)
{
    if (!canonical(&s->base, len))
        return "gossip state is not canonically encoded";
    if (!gossip_codec_valid_id(s->sender_id))
        return "gossip state has an invalid sender id";
    for (size_t i = 0; i < s->n_members; i++)
        if (!gossip_codec_valid_member(s->members[i]))
            return "gossip state has an invalid member record";
    return NULL;
}

Ringkv__GossipPushPull *gossip_codec_decode_state(const uint8_t *buf, size_t len, char *err,
                                                  size_t errlen)
{
    if (len < 1)
        return state_fail(NULL, err, errlen, "empty gossip state");
    if (len > GOSSIP_STATE_MAX)
        return state_fail(NULL, err, errlen, "gossip state over 16 MiB");
    if (buf[0] != GOSSIP_VERSION)
        return state_fail(NULL, err, errlen, "gossip state has an unknown version");
    long count = count_records(buf + 1, len - 1);
    if (count < 0)
        return state_fail(NULL, err, errlen, "gossip state is truncated or malformed");
    if (count > GOSSIP_STATE_MAX_MEMBERS)
        return state_fail(NULL, err, errlen, "gossip state has too many members");
    Ringkv__GossipPushPull *s = ringkv__gossip_push_pull__unpack(NULL, len - 1, buf + 1);
    if (!s)
        return state_fail(NULL, err, errlen, "gossip state does not decode");
    const char *why = check_state(s, len - 1);
    if (why)
        return state_fail(s, err, errlen, why);
    return s;
}
