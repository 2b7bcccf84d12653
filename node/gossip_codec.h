/* gossip_codec: the byte formats of node/gossip.c, apart from its state
 * machine: datagrams (version byte + GossipPacket), push-pull states (version
 * byte + GossipPushPull) and member records. Decoders check length and
 * version before protobuf-c sees a byte, then validate every field.
 */
#ifndef RINGKV_GOSSIP_CODEC_H
#define RINGKV_GOSSIP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip.h"
#include "ringkv.pb-c.h"

#define GOSSIP_STATE_MAX         (16u << 20) /* sanity cap on a push-pull state, bytes */
#define GOSSIP_STATE_MAX_MEMBERS 65536       /* records in one state */
#define GOSSIP_UPDATE_TAG        0x42        /* GossipPacket.updates: field 8, length-delimited */
#define GOSSIP_RECORD_MAX        600         /* a framed record (tag, length, bytes) fits here */

/* 1..GOSSIP_ID_MAX bytes of [A-Za-z0-9_.-]. */
bool gossip_codec_valid_id(const char *s);
/* Printable ASCII without spaces, shorter than GOSSIP_ADDR_MAX. */
bool gossip_codec_valid_addr(const char *s, bool may_be_empty);
/* Every field of a decoded record is in range. */
bool gossip_codec_valid_member(const Ringkv__GossipMember *r);

/* Points pb's fields at m's (no copy): pb is valid while m is. accuser may
 * be NULL. */
void gossip_codec_member_pb(const gossip_member *m, const char *accuser, Ringkv__GossipMember *pb);

/* Writes m as a framed GossipPacket.updates entry into out, which holds
 * GOSSIP_RECORD_MAX bytes. Returns its length. */
size_t gossip_codec_frame_member(const gossip_member *m, const char *accuser, uint8_t *out);

/* Writes the version byte and p (which must have no updates) into buf.
 * Returns the length, or 0 when it does not fit in cap. */
size_t gossip_codec_pack_head(const Ringkv__GossipPacket *p, uint8_t *buf, size_t cap);

/* Decodes and validates one datagram of at most max_len bytes. Returns the
 * packet (free with ringkv__gossip_packet__free_unpacked(p, NULL)) or NULL
 * when anything is off. */
Ringkv__GossipPacket *gossip_codec_decode_packet(const uint8_t *buf, size_t len, size_t max_len);

/* Packs a full state behind the version byte into a malloc'd *buf. Returns
 * 0, or -1 (no memory, or over GOSSIP_STATE_MAX). */
int gossip_codec_encode_state(const Ringkv__GossipPushPull *s, uint8_t **buf, size_t *len);

/* Decodes and validates a full state. Returns it (free with
 * ringkv__gossip_push_pull__free_unpacked(s, NULL)), or NULL with err. */
Ringkv__GossipPushPull *gossip_codec_decode_state(const uint8_t *buf, size_t len, char *err,
                                                  size_t errlen);

#endif
