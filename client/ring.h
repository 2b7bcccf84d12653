/* ring: the consistent-hash ring that places keys on nodes, shared by the
 * client library and the node so both always agree.
 *
 * A key's token is XXH3-64 of the key. Each member owns `vnodes` tokens,
 * token i being XXH3-64 of "ID/i", so every party computes the same ring from
 * the member list alone. A key's preference list is the first N distinct
 * members clockwise from its token. Pure and immutable once built: safe to
 * read from several threads.
 */
#ifndef RINGKV_RING_H
#define RINGKV_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_DEFAULT_VNODES 128
#define RING_MAX_MEMBERS 4096
#define RING_MAX_VNODES 4096

typedef struct ring ring;

/* One member as the ring needs it: a node id and its number of tokens. */
typedef struct ring_member {
    const char *id;
    uint32_t vnodes;
} ring_member;

/* Builds the ring for n members (ids are copied; their order does not
 * matter). Returns NULL with a message on duplicate or empty ids, zero or too
 * many vnodes, too many members, or no memory. n may be 0 (an empty ring). */
ring *ring_new(const ring_member *members, size_t n, char *err, size_t errlen);
void ring_free(ring *r);

/* XXH3-64 of the key. */
uint64_t ring_token(const void *key, size_t klen);

/* Fills out[] with up to nrep distinct member indexes, in preference order,
 * for a key with this token; returns how many (min(nrep, members)). */
size_t ring_preference(const ring *r, uint64_t token, size_t nrep, size_t *out);

/* The first member of the preference list, or -1 on an empty ring. */
long ring_primary(const ring *r, uint64_t token);

size_t ring_members(const ring *r);
/* Member idx's id (indexes follow the order of ids sorted bytewise). */
const char *ring_member_id(const ring *r, size_t idx);
uint32_t ring_member_vnodes(const ring *r, size_t idx);
/* Index of id, or -1. */
long ring_find(const ring *r, const char *id);

/* A hash of the member set and ring parameters: two parties with the same
 * epoch place every key the same way. */
uint64_t ring_epoch(const ring *r);

/* The ring's tokens (all members' vnodes) in ascending order: point i owns
 * the keys with tokens in (token of point i-1, token of point i], point 0
 * wrapping from the last. ring_point_token(r, i) for i < ring_points(r). */
size_t ring_points(const ring *r);
uint64_t ring_point_token(const ring *r, size_t i);

/* Fraction of the token space for which member idx is the primary. */
double ring_share(const ring *r, size_t idx);

#endif
