/* merkle: hash trees over one ring range, for anti-entropy (antientropy.c).
 *
 * A tree covers the range (lo, hi] with MERKLE_FANOUT^depth leaves, each an
 * even slice of the range by token. A record's hash is XXH3-64 over its key
 * and version (hlc, origin, tombstone, expires_ms); a leaf's hash is the sum
 * (mod 2^64) of its records' hashes and an inner node's the sum of its
 * children's, so the order records arrive in does not matter and one record
 * can be added or removed in place. Two replicas with the same records have
 * the same tree; they compare roots, then only the children of nodes that
 * differ. Pure logic except the builder, which reads the store in bounded
 * steps so a build never blocks the event loop for long. Event-loop thread
 * only (the builder uses the store).
 */
#ifndef RINGKV_MERKLE_H
#define RINGKV_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define MERKLE_FANOUT     16u
#define MERKLE_MAX_DEPTH  5u    /* 16^5 = 1,048,576 leaves, 9 MiB of hashes */
#define MERKLE_MAX_NODES  4096u /* node indexes in one MerkleReq */
#define MERKLE_MAX_LEAVES 4096u /* leaf indexes in one MerkleLeavesReq */

typedef struct merkle merkle;

/* Hashes of every node, level by level: level 0 is the root, level l has
 * MERKLE_FANOUT^l nodes, level depth holds the leaves. */
struct merkle {
    uint64_t lo, hi;
    unsigned depth;
    uint64_t nleaves;
    uint64_t records; /* records added, minus those removed */
    uint64_t *hash;   /* every level, root first */
    size_t nhash;
};

/* An empty tree (all hashes 0) over (lo, hi] (lo == hi: the whole ring)
 * with depth 1..MERKLE_MAX_DEPTH. Returns NULL when out of memory or for a
 * bad depth. Free with merkle_free (NULL is a no-op). */
merkle *merkle_new(uint64_t lo, uint64_t hi, unsigned depth);
void merkle_free(merkle *m);

/* Nodes at a level: MERKLE_FANOUT^level. */
uint64_t merkle_level_size(unsigned level);

/* Hash of node idx at level (idx < merkle_level_size(level)). */
uint64_t merkle_node(const merkle *m, unsigned level, uint64_t idx);
static inline uint64_t merkle_root(const merkle *m)
{
    return m->hash[0];
}

/* The leaf of token, which must lie in (lo, hi]. */
uint64_t merkle_leaf_of(uint64_t lo, uint64_t hi, unsigned depth, uint64_t token);

/* The token range (*llo, *lhi] of leaf `leaf` of a tree over (lo, hi] with
 * this depth. Returns false when the leaf holds no token (a range narrower
 * than the leaf count), so that (*llo, *lhi] is never mistaken for the
 * whole ring. */
bool merkle_leaf_range(uint64_t lo, uint64_t hi, unsigned depth, uint64_t leaf, uint64_t *llo,
                       uint64_t *lhi);

/* A record's hash: XXH3-64 over the key's hash, hlc, expires_ms, the
 * tombstone flag and the origin, in a fixed little-endian layout. */
uint64_t merkle_record_hash(const void *key, size_t klen, const store_version *ver, bool tombstone,
                            uint64_t expires_ms);

/* Whether a record takes part in anti-entropy at now_ms: a live record that
 * has expired does not (every replica reads it as absent), nor does a
 * tombstone old enough for the sweep to purge (tombstone_ttl_ms), since
 * replicas purge at slightly different times. */
bool merkle_included(bool tombstone, uint64_t hlc, uint64_t expires_ms, uint64_t now_ms,
                     uint64_t tombstone_ttl_ms);

/* Adds a record hash to its leaf only; call merkle_finish once all are
 * added (the builder's fast path). */
void merkle_add_leaf(merkle *m, uint64_t token, uint64_t h);
/* Recomputes every inner node from the leaves. */
void merkle_finish(merkle *m);

/* Incremental updates of a finished tree: adds or removes one record's
 * hash along its whole path, leaf to root. */
void merkle_add(merkle *m, uint64_t token, uint64_t h);
void merkle_remove(merkle *m, uint64_t token, uint64_t h);

/* The depth for a range expected to hold `keys` records: the smallest that
 * gives at most about one record per leaf, within 1..MERKLE_MAX_DEPTH. */
unsigned merkle_depth_for(uint64_t keys);

/* Checks the node list of a MerkleReq: 1 <= depth <= MERKLE_MAX_DEPTH,
 * level < depth, 1..MERKLE_MAX_NODES indexes each below the level's size.
 * Returns 0, or -1 with a message an operator can act on. */
int merkle_check_nodes(unsigned depth, unsigned level, const uint32_t *nodes, size_t n, char *err,
                       size_t errlen);
/* Checks the leaf list of a MerkleLeavesReq: 1..MERKLE_MAX_LEAVES indexes,
 * strictly increasing, each below MERKLE_FANOUT^depth. Returns 0 or -1. */
int merkle_check_leaves(unsigned depth, const uint32_t *leaves, size_t n, char *err, size_t errlen);

/* ---- the builder: a tree from the store, in steps ---- */

typedef struct merkle_builder merkle_builder;

/* Starts a build of (lo, hi] at depth over st; records are judged by
 * merkle_included at now_ms. Returns NULL when out of memory. */
merkle_builder *merkle_builder_new(store *st, uint64_t lo, uint64_t hi, unsigned depth,
                                   uint64_t now_ms, uint64_t tombstone_ttl_ms);
/* Frees b and its tree unless taken. NULL is a no-op. */
void merkle_builder_free(merkle_builder *b);

/* Reads up to budget more records; once all are read, sums up to 8 x budget
 * inner nodes. Returns 1 when the tree is complete, 0 when more steps are
 * needed, -1 with a message on a store error. */
int merkle_builder_step(merkle_builder *b, size_t budget, char *err, size_t errlen);

/* The finished tree, now the caller's (NULL before step returned 1). */
merkle *merkle_builder_take(merkle_builder *b);

#endif
