/* peer_hand: replication's bodies (ReplicaRead, ReplicaWrite and their
 * answers) packed and decoded by hand, beside protobuf-c.
 *
 * These go one or two per client request. protobuf-c walks each message's
 * descriptor field by field; on the coordinator of a quorum GET its packer
 * and unpacker ran 3,600 of 12,500 instructions (callgrind). The packer
 * here writes the bytes protobuf-c writes (proto3: a field at its default
 * is left out, the others go in number order); the decoder takes only the
 * form a packer writes and declines the rest, valid or not, so that
 * protobuf-c decides what is accepted and how it reads. test_peer and
 * fuzz_peer compare both ways against protobuf-c.
 */
#ifndef RINGKV_PEER_HAND_H
#define RINGKV_PEER_HAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"

/* env's packed size in *size, when this packer takes env; false for other
 * bodies and for messages holding unknown fields (protobuf-c packs those). */
bool peer_hand_size(const Ringkv__Envelope *env, size_t *size);

/* Packs env, of peer_hand_size's size, at out; false (nothing written)
 * when env is protobuf-c's to pack. */
bool peer_hand_pack(const Ringkv__Envelope *env, uint8_t *out, size_t size);

/* A request's envelope body (ReplicaWrite or ReplicaRead), packed at out
 * with each length found once: peer_hand_pack's bytes. Returns their
 * count, or 0 (nothing written) when env is not a request this packer
 * takes or room is short. peer_hand_request_bound is room enough for any
 * env it takes, and 0 for the others. *id_at (when id_at is not NULL) is
 * where the request id's varint starts in the bytes (0: not written, the
 * id being 0): the same request with another id of the same varint length
 * is the same bytes with that id written there. */
size_t peer_hand_request_bound(const Ringkv__Envelope *env);
size_t peer_hand_pack_request(const Ringkv__Envelope *env, uint8_t *out, size_t room,
                              size_t *id_at);

/* env decoded from body into a (emptied first by the caller), without
 * touching malloc, its bytes fields pointing into body (which must stay
 * as it is while env is used); NULL when protobuf-c is to decode body: another body,
 * another form (fields out of order or repeated, unknown fields, bools
 * other than 0 or 1, padded keys or lengths, varints over 64 bits), bad
 * bytes, or no room left in a.
 * The version is not checked here. */
Ringkv__Envelope *peer_hand_decode(peer_arena *a, const uint8_t *body, size_t len);

#endif
