/* libFuzzer target for node/peer.c's frame codec: arbitrary bytes as a
 * frame (header check, then the Envelope decoder) and as a bare body. What
 * is accepted must re-encode to a frame that decodes to the same Envelope,
 * whose body is protobuf-c's own packing (some bodies are packed by hand,
 * a ReplicaWrite or ReplicaRead also by the one-pass request packer),
 * the arena decoder (which decodes some by hand) must agree with
 * protobuf-c's, and in which the write-key sniffer finds the decoded write's key (or
 * nothing, for other bodies); any mismatch abort()s, which libFuzzer
 * reports as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pbwire.h"
#include "peer.h"

static void round_trip(const Ringkv__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    uint32_t blen;
    if (peer_frame_encode(env, &buf, &len) != 0)
        abort(); /* it decoded from at most PEER_MAX_FRAME bytes, so it fits */
    if (peer_header_check(buf, PEER_MAX_FRAME, &blen, err, sizeof err) != 0 ||
        blen + PEER_HEADER_BYTES != len)
        abort();
    Ringkv__Envelope *again = peer_envelope_decode(buf + PEER_HEADER_BYTES, blen, err, sizeof err);
    if (!again || again->version != env->version || again->body_case != env->body_case)
        abort();
    if (env->body_case == RINGKV__ENVELOPE__BODY_PUSH_PULL &&
        (again->push_pull.len != env->push_pull.len ||
         (env->push_pull.len &&
          memcmp(again->push_pull.data, env->push_pull.data, env->push_pull.len) != 0)))
        abort();
    if (env->body_case == RINGKV__ENVELOPE__BODY_ERROR &&
        strcmp(again->error->message, env->error->message) != 0)
        abort();
    /* The frame's body is protobuf-c's packing of env, byte for byte:
     * replication's bodies are packed by hand (peer_codec.c). */
    size_t want = ringkv__envelope__get_packed_size(env);
    uint8_t *ref = malloc(want ? want : 1);
    if (!ref || want + PEER_HEADER_BYTES != len || ringkv__envelope__pack(env, ref) != want ||
        memcmp(ref, buf + PEER_HEADER_BYTES, want) != 0)
        abort();
    free(ref);
    /* Every body, replication's included: decoding and packing again gives
     * the same bytes, so nothing a node accepts is changed by a relay. */
    /* The write-key sniffer finds, in a frame as a node packs it, the key
     * the decoder found. */
    const uint8_t *key;
    size_t klen;
    bool sniffed = peer_sniff_write_key(buf + PEER_HEADER_BYTES, blen, &key, &klen);
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE && env->write->record &&
        env->write->record->key.len > 0) {
        if (!sniffed || klen != env->write->record->key.len ||
            memcmp(key, env->write->record->key.data, klen) != 0)
            abort();
    } else if (sniffed) {
        abort();
    }
    uint8_t *buf2;
    size_t len2;
    if (peer_frame_encode(again, &buf2, &len2) != 0 || len2 != len || memcmp(buf, buf2, len) != 0)
        abort();
    free(buf2);
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE ||
        env->body_case == RINGKV__ENVELOPE__BODY_READ) {
        /* The one-pass request packer makes the same frame, within its bound. */
        size_t bound = peer_frame_request_bound(env);
        struct evbuffer *eb = evbuffer_new();
        if (!bound) /* unknown fields: not the one-pass packer's; the general way */
            bound = len;
        else if (bound < len)
            abort();
        if (!eb || peer_frame_append_request(eb, env, bound) != 0 ||
            evbuffer_get_length(eb) != len || memcmp(evbuffer_pullup(eb, -1), buf, len) != 0)
            abort();
        evbuffer_free(eb);
        /* The packer says where the id's varint is (replica.c copies a
         * write's frame with another id written there). */
        uint64_t id =
            env->body_case == RINGKV__ENVELOPE__BODY_WRITE ? env->write->id : env->read->id;
        uint8_t *one = malloc(bound);
        size_t at = 0, n = one ? peer_frame_pack_request(one, env, bound, &at) : 0;
        const uint8_t *p = one + at;
        uint64_t v;
        if (n && (n != len ||
                  (id && (at <= PEER_HEADER_BYTES || at >= len ||
                          !pbw_get_varint(&p, one + n, &v) || v != id)) ||
                  (!id && at)))
            abort();
        free(one);
    }
    peer_envelope_free(again);
    free(buf);
}

/* protobuf-c's packing of env (NULL: none), in a malloc'd buffer. */
static uint8_t *packed(const Ringkv__Envelope *env, size_t *len)
{
    *len = ringkv__envelope__get_packed_size(env);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b || ringkv__envelope__pack(env, b) != *len)
        abort();
    return b;
}

/* The arena decoder (which decodes replication's bodies by hand, and
 * leaves the rest to protobuf-c) accepts what protobuf-c alone accepts,
 * refuses with the same words, and reads the same Envelope. */
static void same_in_arena(const uint8_t *body, size_t len, const Ringkv__Envelope *env,
                          const char *err)
{
    static peer_arena arena;
    char err2[256] = "";
    Ringkv__Envelope *got = peer_envelope_decode_in(&arena, body, len, err2, sizeof err2);
    if (!got != !env || (!env && strcmp(err, err2) != 0))
        abort();
    if (got) {
        size_t n1, n2;
        uint8_t *b1 = packed(env, &n1), *b2 = packed(got, &n2);
        if (got->version != env->version || got->body_case != env->body_case || n1 != n2 ||
            memcmp(b1, b2, n1) != 0)
            abort();
        free(b1);
        free(b2);
    }
    peer_envelope_free_in(&arena, got);
}

static void decode_body(const uint8_t *body, size_t len)
{
    char err[256] = "";
    const uint8_t *key;
    size_t klen;
    /* The sniffer reads any bytes, and what it finds lies inside them. */
    if (peer_sniff_write_key(body, len, &key, &klen) &&
        (key < body || klen == 0 || klen > len || (size_t)(key - body) > len - klen))
        abort();
    Ringkv__Envelope *env = peer_envelope_decode(body, len, err, sizeof err);
    same_in_arena(body, len, env, err);
    if (!env) {
        if (!err[0])
            abort(); /* every rejection says why */
        return;
    }
    if (env->version != PEER_VERSION)
        abort();
    round_trip(env);
    peer_envelope_free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_body(data, size);
    if (size < PEER_HEADER_BYTES)
        return 0;
    uint32_t blen;
    char err[256];
    if (peer_header_check(data, PEER_MAX_FRAME, &blen, err, sizeof err) != 0)
        return 0;
    if (blen <= size - PEER_HEADER_BYTES)
        decode_body(data + PEER_HEADER_BYTES, blen);
    return 0;
}
