/* pbwire: protobuf's varints, for the codecs that read or write protobuf
 * bytes themselves (peer_hand.c, the sniffers of peer_codec.c, the
 * counting walk of gossip_codec.c) beside protobuf-c.
 */
#ifndef RINGKV_PBWIRE_H
#define RINGKV_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes v takes as a varint: 1 to 10. */
static inline size_t pbw_varint_len(uint64_t v)
{
    return 1 + (size_t)(63 - __builtin_clzll(v | 1)) / 7; /* 7 bits a byte */
}

/* Writes v as a varint at p; returns the byte after it. */
static inline uint8_t *pbw_put_varint(uint8_t *p, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        *p++ = (uint8_t)(v | 0x80);
    *p++ = (uint8_t)v;
    return p;
}

/* Reads a varint at *p, before end, and moves *p past it: false when it is
 * cut short or runs over ten bytes (bits past the 64th are dropped, as
 * protobuf-c drops them). */
static inline bool pbw_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && **p < 0x80) { /* one byte: most keys and lengths */
        *v = *(*p)++;
        return true;
    }
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

#endif
