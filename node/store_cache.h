/* store_cache: committed records kept in memory in front of LMDB's B-tree,
 * a row cache as Cassandra's. A hit costs one hash probe where LMDB descends
 * three or four pages with a binary search in each, most of them cache
 * misses in the CPU. Internal to the store (store.c); event-loop thread only.
 *
 * Entries are keyed by the record's LMDB key (token + key, or token + hash
 * for a long key) and hold the record's bytes as LMDB stores them, or say
 * that LMDB has no record under that key. The invariant the store keeps:
 * an entry equals what LMDB holds (as of the last commit plus this batch's
 * writes), or is marked stale. So every write to the data database goes
 * through here: a put or delete updates the entry in place (dropped again
 * if the batch is discarded) or marks it stale, and a purge forgets it.
 * Only reads of the committed snapshot add entries or refill stale ones.
 *
 * Lifetimes: a record returned by store_cache_find stays valid until the
 * next write to its key or store_cache_settle, which the store calls only at
 * the end of a batch. Entries dropped before that wait in a list, and
 * eviction down to the byte budget happens only there too, so reading other
 * keys never ends a record's life.
 */
#ifndef RINGKV_STORE_CACHE_H
#define RINGKV_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cache_entry cache_entry;

/* A slot keeps its entry's hash beside the pointer, so a probe reads the
 * entry only when the hash matches: one CPU cache miss per probe instead of
 * two. */
typedef struct cache_slot {
    uint64_t token;
    cache_entry *e; /* NULL: empty */
} cache_slot;

typedef struct store_cache {
    cache_slot *slots;   /* open addressing, linear probing */
    size_t mask;         /* slots - 1 (a power of two), or 0 before the first add */
    size_t n;            /* entries in slots */
    size_t bytes, max_bytes;
    size_t hand;         /* the CLOCK hand: the next slot eviction looks at */
    cache_entry *dropped; /* out of the table, freed at settle */
    cache_entry **batch; /* entries written in this batch */
    size_t nbatch, batch_cap;
    uint64_t hits, misses, evictions;
} store_cache;

/* max_bytes 0 turns the cache off: finds miss and adds are ignored. */
void store_cache_init(store_cache *c, size_t max_bytes);
void store_cache_free(store_cache *c);

/* What a find returned: absent (LMDB has no record), or the record's bytes. */
typedef struct cache_hit {
    bool absent;
    const uint8_t *rec;
    size_t rlen;
} cache_hit;

/* Looks up the LMDB key k (its first 8 bytes are the token, the hash used).
 * Returns true on a hit, counted as one with *out filled. */
bool store_cache_find(store_cache *c, const uint8_t *k, size_t klen, cache_hit *out);

/* Adds what a read of the committed snapshot found under k (rec NULL:
 * nothing). An entry already there is kept. */
void store_cache_add_read(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                          size_t rlen);

/* A write of k in this batch (rec NULL: LMDB has no record now). An entry
 * with room for the record is overwritten in place, and dropped again if
 * the batch is discarded; one too small is marked stale, a miss until the
 * next read refills it. A key without an entry gets none: the write path
 * allocates nothing, reads fill the cache. What an earlier find returned
 * for k changes: as store.h says, a write ends the life of what reads
 * returned. */
void store_cache_write(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                       size_t rlen);

/* Hints for a write of k that will follow some LMDB work: the first asks
 * the CPU to fetch k's slot, the second (later) its entry, so that the
 * cache misses overlap LMDB's own instead of adding to them. */
void store_cache_prefetch_slot(const store_cache *c, const uint8_t *k, size_t klen);
void store_cache_prefetch_entry(const store_cache *c, const uint8_t *k, size_t klen);

/* Forgets k, whatever it held (a purge or a delete the caller does not
 * describe). */
void store_cache_forget(store_cache *c, const uint8_t *k, size_t klen);

/* Forgets everything (a range dropped, the environment reopened). */
void store_cache_clear(store_cache *c);

/* The batch committed: its entries become ordinary ones. */
void store_cache_commit(store_cache *c);
/* The batch was discarded: its entries are forgotten, since LMDB kept the
 * records as they were before it. */
void store_cache_abort(store_cache *c);

/* End of a batch: frees what was dropped and evicts down to max_bytes. */
void store_cache_settle(store_cache *c);

#endif
