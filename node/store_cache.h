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
 * Only reads of the committed snapshot add entries or refill stale ones
 * (write-behind, below, is the exception).
 *
 * Lifetimes: a record returned by store_cache_find stays valid until the
 * next write to its key or store_cache_settle, which the store calls only at
 * the end of a batch. Entries dropped before that wait in a list, and
 * eviction down to the byte budget happens only there too, so reading other
 * keys never ends a record's life.
 *
 * Write-behind (the store under `fsync everysec`): the cache is then also
 * the store's memtable. A write makes its key's entry dirty instead of
 * writing LMDB: the entry holds the new record, which is newer than LMDB's,
 * and stays (no eviction, no forgetting) until a flush has written it into
 * LMDB and that write has committed. Each dirty entry pins the log segment
 * (store_wal.h) that holds its record; a segment no entry pins may go once
 * LMDB is synced. Slots are placed by the token's high bits, so the table
 * is in ring order and a flush that walks it writes LMDB in key order, a
 * few dirty records to each page it copies.
 */
#ifndef RINGKV_STORE_CACHE_H
#define RINGKV_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cache_entry cache_entry;

/* A slot keeps its entry's hash beside the pointer, so a probe reads the
 * entry only when the hash matches: one CPU cache miss per probe instead of
 * two. The token's lowest bit is replaced by the entry's dirty flag, so a
 * flush finds dirty entries without reading the clean ones.
 *
 * It also keeps the record's version (hlc and origin), so that a replica's
 * answer to a quorum read, which is the version alone when it holds the
 * coordinator's (store_cache_version), reads the slot and not the entry: a
 * second miss in the CPU's cache and TLB per read, and on a node holding
 * hundreds of megabytes of entries the costlier one. `check`, a second hash
 * of the key (seeded at random per cache), tells the keys of one token
 * apart without the entry's key: 63 + 32 bits must match. */
typedef struct cache_slot {
    uint64_t token;
    cache_entry *e; /* NULL: empty */
    uint64_t hlc;   /* with sum CACHE_SUM_FOUND: the record's version */
    uint32_t check;
    uint16_t origin; /* the version's origin, an index into origins */
    uint8_t sum;     /* CACHE_SUM_*: what the slot says of the record */
    uint8_t unused;
} cache_slot;

/* What a slot says of its entry's record. */
enum {
    CACHE_SUM_NONE = 0, /* nothing: read the entry (a long key, a stale entry, an origin
                         * not interned) */
    CACHE_SUM_FOUND,    /* a record of version hlc, origin */
    CACHE_SUM_ABSENT,   /* LMDB has no record */
};

/* A version as a write hands it to the cache: origin is olen bytes, no NUL. */
typedef struct cache_ver {
    uint64_t hlc;
    const char *origin;
    size_t olen;
} cache_ver;

/* The origins slots name: node ids, a handful in a cluster. At most
 * CACHE_ORIGINS_MAX; versions of further origins get no summary. */
#define CACHE_ORIGINS_MAX 1024
#define CACHE_ORIGIN_LEN  64 /* STORE_ORIGIN_MAX */
typedef struct cache_origins {
    char (*name)[CACHE_ORIGIN_LEN + 1]; /* NUL-terminated */
    uint16_t *index;                    /* open addressing by hash: 1 + the name's index, 0 empty */
    size_t n;
} cache_origins;

/* Dirty entries per log segment: n[i] for segment base + i. */
typedef struct cache_pins {
    uint64_t base;
    uint64_t *n;
    size_t len, cap;
} cache_pins;

typedef struct store_cache {
    cache_slot *slots;   /* open addressing, linear probing */
    size_t mask;         /* slots - 1 (a power of two), or 0 before the first add */
    int shift;           /* a token's home slot is token >> shift */
    size_t n;            /* entries in slots */
    size_t bytes, max_bytes;
    size_t hand;         /* the CLOCK hand: the next slot eviction looks at */
    cache_entry *dropped; /* out of the table, freed at settle */
    cache_entry **batch; /* entries written in this batch */
    size_t nbatch, batch_cap;
    uint64_t hits, misses, evictions;
    uint64_t version_hits; /* store_cache_version answers (also counted in hits) */
    uint64_t seed;         /* of the slots' check */
    cache_origins origins;

    /* write-behind */
    size_t cursor;          /* the next slot the flush looks at */
    size_t dirty_n, dirty_bytes, dirty_new; /* dirty_new: of keys LMDB has no record of */
    struct cache_flushing {
        cache_entry *e;
        size_t slot;        /* where it was; checked, since entries move */
    } *flushing;            /* entries written into the uncommitted LMDB batch */
    size_t nflushing, flushing_cap;
    cache_pins pins;
    uint64_t flushed;       /* records written back, all time */
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

/* The version of k's record, from its slot alone: 1 with *found (false:
 * LMDB has no record) and, when found, *hlc and *origin (NUL-terminated,
 * valid while the cache lives); 0 when the slot cannot say (no entry, a
 * stale one, no summary), and the caller reads the record. Counted as a
 * hit when it answers. Does not mark the entry used for eviction: that
 * would read it. */
int store_cache_version(store_cache *c, const uint8_t *k, size_t klen, bool *found, uint64_t *hlc,
                        const char **origin);

/* Adds what a read of the committed snapshot found under k (rec NULL:
 * nothing; ver: the record's version, NULL for none to keep, as for a long
 * key). An entry already there is kept. */
void store_cache_add_read(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                          size_t rlen, const cache_ver *ver);

/* A write of k in this batch (rec NULL: LMDB has no record now; ver as
 * for store_cache_add_read). An entry
 * with room for the record is overwritten in place, and dropped again if
 * the batch is discarded; one too small is marked stale, a miss until the
 * next read refills it. A key without an entry gets none: the write path
 * allocates nothing, reads fill the cache. What an earlier find returned
 * for k changes: as store.h says, a write ends the life of what reads
 * returned. */
void store_cache_write(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                       size_t rlen, const cache_ver *ver);

/* Hints for a write of k that will follow some LMDB work: the first asks
 * the CPU to fetch k's slot, the second (later) its entry, so that the
 * cache misses overlap LMDB's own instead of adding to them. */
void store_cache_prefetch_slot(const store_cache *c, const uint8_t *k, size_t klen);
void store_cache_prefetch_entry(const store_cache *c, const uint8_t *k, size_t klen);

/* The same for a key known only by its token (the probe's first slot). */
void store_cache_prefetch_token(const store_cache *c, uint64_t token, bool entry);

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

/* End of a batch: frees what was dropped and evicts down to max_bytes,
 * dirty entries excepted. */
void store_cache_settle(store_cache *c);

/* ---- write-behind ---- */

/* As store_cache_find, without counting a hit or a miss (a write's read of
 * the version it replaces). */
bool store_cache_peek(store_cache *c, const uint8_t *k, size_t klen, cache_hit *out);

/* Makes k's entry dirty with a record of rlen bytes, which the caller writes
 * at the pointer returned (valid until the next call into the cache), and
 * pins log segment seg with it. lmdb_absent says LMDB has no record of k;
 * it matters only for an entry not dirty yet. NULL: out of memory, nothing
 * changed. ver: the record's version, as for store_cache_add_read.
 * Allocates when the entry is missing, too small, or would leave
 * most of its room unused (its bytes count in the budget and in
 * dirty_bytes), whatever the budget: dirty records stay until written back. */
uint8_t *store_cache_put_dirty(store_cache *c, const uint8_t *k, size_t klen, size_t rlen,
                               bool lmdb_absent, uint64_t seg, const cache_ver *ver);

/* Writes a dirty record back: fn puts it into LMDB's batch, returning 0 or
 * an error that stops the flush. */
typedef int (*cache_flush_fn)(void *arg, const uint8_t *k, size_t klen, const uint8_t *rec,
                              size_t rlen);

/* Whether an entry of a key with this token is dirty (or one of a token
 * differing only in its lowest bit: a false yes, never a false no). */
bool store_cache_token_dirty(const store_cache *c, uint64_t token);

/* Hands fn the dirty entries among the next `slots` slots from the cursor
 * on whose records are in log segments before `young` (UINT64_MAX: all),
 * stopping early once it has handed `max` of them (0: no limit), and at
 * the table's end; *walked is set to the slots the cursor went past,
 * *wrapped when it passed the table's end. Returns how many it handed, or
 * -1 when fn failed. */
long store_cache_flush(store_cache *c, size_t slots, size_t max, uint64_t young,
                       cache_flush_fn fn, void *arg, bool *wrapped, size_t *walked);
/* Hands fn every dirty entry not handed yet in this batch. */
long store_cache_flush_all(store_cache *c, cache_flush_fn fn, void *arg);
/* The same for the dirty entries whose token lies in the ring range
 * (lo, hi] (wrapping when hi <= lo; lo == hi: all of them). */
long store_cache_flush_range(store_cache *c, uint64_t lo, uint64_t hi, cache_flush_fn fn,
                             void *arg);
/* Hands fn k's entry if it is dirty: 1, 0 if not, -1 when fn failed. */
int store_cache_flush_key(store_cache *c, const uint8_t *k, size_t klen, cache_flush_fn fn,
                          void *arg);
/* LMDB committed the batch: what was handed to fn and not written again
 * since is clean now, and unpins its segment. */
void store_cache_flush_commit(store_cache *c);
/* LMDB's batch was discarded: those entries stay dirty. */
void store_cache_flush_abort(store_cache *c);

/* Dirty entries whose record is in segment seq. */
uint64_t store_cache_pins(const store_cache *c, uint64_t seq);
/* Segments below seq hold no pins any more (the caller checked): forgets
 * their counts. */
void store_cache_pins_drop(store_cache *c, uint64_t seq);

#endif
