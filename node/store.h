/* store: a node's durable storage, over LMDB.
 *
 * Records are keyed by the 8-byte big-endian ring token (XXH3-64 of the key)
 * followed by the key, so a ring range is a contiguous LMDB key range; a key
 * too long for LMDB's 511-byte limit is stored under token + 128-bit hash of
 * the key, with the full key in the record. Every record carries its version
 * (HLC timestamp, origin node id), a tombstone flag and an expiry.
 *
 * Batching: all reads and writes between two store_commit() calls share one
 * LMDB transaction (the server calls store_commit once per event-loop pass),
 * so `fsync always` is a group commit. Event-loop thread only, except for the
 * `everysec` syncer thread that the store runs itself.
 *
 * Write-behind (`fsync everysec` with a cache, store_wb.c): puts and deletes
 * go to the record cache and a write-ahead log instead of LMDB; the commit
 * writes the log, and LMDB gets the records later, a slice of the cache per
 * commit, in key order. Reads, scans and the rest see the same store.
 */
#ifndef RINGKV_STORE_H
#define RINGKV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ORIGIN_MAX 64 /* longest origin node id, bytes */

typedef struct store store;

typedef enum store_fsync {
    STORE_FSYNC_ALWAYS = 0, /* every commit is synced before it returns */
    STORE_FSYNC_EVERYSEC,   /* a helper thread syncs once a second */
    STORE_FSYNC_NO,         /* the OS decides; synced at close */
} store_fsync;

typedef enum store_result {
    STORE_OK = 0,
    STORE_NOT_FOUND,  /* absent, deleted (tombstone) or expired */
    STORE_STALE,      /* put/del not applied: the stored version is newer */
    STORE_ERR_FULL,   /* map_size reached, or disk full (no space to grow) */
    STORE_ERR_IO,     /* any other LMDB or system error */
} store_result;

#define STORE_LOG_SIZE_DEFAULT ((size_t)1 << 30)

typedef struct store_options {
    const char *dir;     /* created if missing (mkdir -p; the leaf 0700) */
    size_t map_size;     /* the most the store can hold, bytes: the LMDB map
                          * grows in steps up to it, each step reserved on
                          * disk first (store_space.c). 0 keeps the existing
                          * file's size (1 MiB if new). Opening needs at
                          * least 20 KiB (5 LMDB pages). */
    store_fsync fsync;
    size_t cache_size;   /* bytes of records kept in memory in front of
                          * LMDB (store_cache.h); 0: no cache */
    const char *boot_id; /* NULL: the kernel's (/proc/sys/kernel/random/
                          * boot_id); tests pass their own */
    size_t log_size;     /* write-behind: the log's size to keep near (the
                          * write-back goes round faster when writes fill
                          * it); 0: STORE_LOG_SIZE_DEFAULT */
    size_t writeback_slots; /* tests: the write-behind flush looks at this
                             * many cache slots in every commit; 0: paced
                             * by time (store_wb.c) */
    bool no_checkpoints; /* everysec without LMDB checkpoints: a machine
                          * crash may leave LMDB inconsistent
                          * (store_checkpoint.c) */
} store_options;

/* A record's version: newest (hlc, origin) wins; ties on hlc break by origin. */
typedef struct store_version {
    uint64_t hlc;
    char origin[STORE_ORIGIN_MAX + 1]; /* NUL-terminated node id */
} store_version;

/* What store_get returns. value points into LMDB's memory and stays valid
 * only until the next store_commit() or the next write (put, del, sweep,
 * set_node_id) through this store. */
typedef struct store_record {
    store_version version;
    bool tombstone;
    uint64_t expires_ms; /* wall-clock ms; 0 = never */
    const uint8_t *value;
    size_t value_len;
} store_record;

/* Counts as of the last commit. */
typedef struct store_stats {
    uint64_t records;    /* stored records, tombstones included */
    uint64_t tombstones; /* tombstones awaiting purge */
    uint64_t expiring;   /* values with an expiry, expired ones awaiting purge included */
    uint64_t expiry_avg_ms; /* their mean expiry time, wall-clock ms (0: none) */
    uint64_t commits;    /* transactions committed */
    uint64_t purged;     /* expired records and tombstones removed */
    uint64_t sweep_tracked; /* tokens the sweep comes back to (store_due.h) */
    uint64_t cache_hits, cache_misses, cache_evictions;
    uint64_t cache_version_hits;         /* of cache_hits: store_get_version's answers */
    uint64_t cache_entries, cache_bytes; /* now */
    /* Write-behind (fsync everysec): records written but not yet in LMDB,
     * and their bytes; records written back since open; log segments kept. */
    uint64_t dirty, dirty_bytes, written_back, wal_segments;
    uint64_t log_bytes; /* the log's segment files on disk, those waiting to
                         * be deleted included: near [storage] log_size */
    /* LMDB checkpoints (everysec): written since open, the last one's txn,
     * and the txn this open went back to after a machine crash (0: none). */
    uint64_t checkpoints, checkpoint_txn, checkpoint_restored;
} store_stats;

/* Opens (creating if needed) the store in opts->dir. Returns NULL and a
 * message in err on failure. */
store *store_open(const store_options *opts, char *err, size_t errlen);

/* Commits what is pending, syncs, stops the syncer thread and closes. NULL is
 * a no-op. */
void store_close(store *s);

/* For tests: frees the store as a killed process would leave it. Nothing
 * pending is committed or logged, nothing is written back or synced; the
 * files keep what a kill -9 would leave. */
void store_abandon(store *s);

/* For tests: while hold, no checkpoint is taken (as when writing them
 * fails): the last one and the log segments after it stay. */
void store_hold_checkpoints(store *s, bool hold);

/* Reads key. now_ms decides expiry. Returns STORE_OK with *out filled,
 * STORE_NOT_FOUND, or an error with a message in err (STORE_ERR_IO for a
 * corrupt record). Sees this batch's uncommitted writes. On STORE_NOT_FOUND
 * for a tombstone or an expired record, *out still holds its version (for
 * read repair); for an absent key *out is zeroed (hlc 0). */
store_result store_get(store *s, const void *key, size_t klen, uint64_t now_ms,
                       store_record *out, char *err, size_t errlen);

/* The version of key's record as store_get would find it, when the record
 * cache can tell without reading the record (its slot keeps the version):
 * true with *found (false: no record; true: a record, maybe a tombstone or
 * expired) and, when found, *ver. false: read it with store_get. For a
 * replica's answer to a quorum read, which is the version alone when it is
 * not newer than the coordinator's. */
bool store_get_version(store *s, const void *key, size_t klen, bool *found, store_version *ver);

/* Writes value under key with version *ver, unless the stored version is
 * newer or equal (STORE_STALE). expires_ms 0 = never. Pending until
 * store_commit(). Any error (STORE_ERR_FULL, STORE_ERR_IO: also an empty key,
 * a corrupt stored record, or a different key with the same hashes) discards
 * the whole current batch: every write since the last commit is lost and must
 * be reported as failed. Except under write-behind (store_write_errors_discard
 * false): there an error changes nothing, and the batch stands. */
store_result store_put(store *s, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t expires_ms,
                       const store_version *ver, char *err, size_t errlen);

/* Writes a tombstone for key with version *ver (same rules as store_put). A
 * delete of an absent key still writes the tombstone, so it wins against an
 * older write that arrives later. */
store_result store_del(store *s, const void *key, size_t klen,
                       const store_version *ver, char *err, size_t errlen);

/* Asks the CPU to start fetching what a read or write of key will touch in
 * the record cache: its slot, or (entry true, some time after a call for
 * the slot) its entry. Only a hint, for requests whose keys are known
 * before their turn (pipelined ones): two dependent cache misses were a
 * quarter of a node's time under pipelined writes. */
void store_prefetch(const store *s, const void *key, size_t klen, bool entry);
/* The same for a key whose store_token is token. */
void store_prefetch_token(const store *s, uint64_t token, bool entry);

/* Whether a failed store_put or store_del discards the batch: true, except
 * under write-behind (`fsync everysec` with a cache), where the write goes
 * to the cache and the log only after every check passed. */
bool store_write_errors_discard(const store *s);

/* True while this batch has uncommitted writes. */
bool store_batch_dirty(const store *s);

/* Under write-behind, writes every write waiting in the cache into LMDB's
 * batch now (the next store_commit commits it), instead of a slice per
 * commit; a no-op otherwise. 0, or -1 with a message (batch discarded; the
 * writes keep waiting). */
int store_write_back(store *s, char *err, size_t errlen);

/* Under write-behind: true while writes wait in memory to be written into
 * LMDB, or the log has a segment to retire; commits (store_commit, even of
 * an empty batch) do that work a slice at a time. */
bool store_writeback_pending(const store *s);

/* Ends the batch: commits pending writes (synced first under `always`;
 * under write-behind, written to the log) and releases the read snapshot.
 * On failure the batch's writes are lost, or at least not made durable, and
 * the result says why (err has the message). */
store_result store_commit(store *s, char *err, size_t errlen);

/* Within the current batch, purges records expired by now_ms and
 * tombstones whose HLC time is older than now_ms - tombstone_ttl_ms. Only
 * the keys written with an expiry or deleted are looked at (store_due.h),
 * in rounds: a call resumes where the last stopped, and stops after reading
 * about budget records (8 keys not yet due cost as much as one read), or
 * at the end of the round (*round_end, optional: the next call starts the
 * next round). *seen (optional) gets the work done, in records read.
 * Returns how many were purged, or -1 with a message (the batch is then
 * discarded). */
long store_sweep(store *s, uint64_t now_ms, uint64_t tombstone_ttl_ms, size_t budget,
                 size_t *seen, bool *round_end, char *err, size_t errlen);

/* Lazy expiry: deletes key within the current batch if it is a live record
 * that has expired by now_ms. Returns STORE_OK when it purged, STORE_NOT_FOUND
 * when there was nothing to purge, or an error that discards the batch (as
 * for store_put). */
store_result store_purge_expired(store *s, const void *key, size_t klen, uint64_t now_ms,
                                 char *err, size_t errlen);

/* The node metadata record: the node id (empty until set) and the largest
 * HLC ever committed, so a restarted node's clock never goes back.
 * store_set_node_id takes 1..STORE_ORIGIN_MAX bytes and commits at once,
 * together with any pending batch; returns 0, or -1 with a message.
 * store_max_hlc includes this batch's uncommitted writes. */
const char *store_node_id(const store *s);
int store_set_node_id(store *s, const char *id, char *err, size_t errlen);
uint64_t store_max_hlc(const store *s);
/* Whether this node has entered the ring (founded it or finished joining);
 * cleared when it is decommissioned. Set commits at once, as the id does. */
bool store_ring_member(const store *s);
int store_set_ring_member(store *s, bool member, char *err, size_t errlen);
/* This start's incarnation: persisted and bumped (and synced) by every
 * store_open, so it is higher than any earlier run's. Gossip starts there. */
uint64_t store_incarnation(const store *s);
/* True when the last run had the store open with unsynced commits (fsync
 * everysec or no), did not close it, and the machine has booted since: a
 * machine crash, after which LMDB's file may be inconsistent (MDB_NOSYNC |
 * MDB_WRITEMAP give no write order). store_open logs it as an error; the
 * README says what to do. A process crash alone does not set it. */
bool store_crash_suspect(const store *s);

void store_get_stats(const store *s, store_stats *out);

/* Bytes of the data file in use (LMDB pages up to the last one written). */
uint64_t store_used_bytes(const store *s);

/* ---- hints: writes held for an owner that is down (hinted handoff) ---- */

#define STORE_HINT_POS_MAX 512 /* longest hint position (store_hint.pos) */

/* One hint as store_hint_scan shows it; pointers into LMDB memory, valid
 * only during the scan's callback. pos/poslen is the hint's place in the
 * owner's key order, to resume a scan after it. */
typedef struct store_hint {
    const uint8_t *key;
    size_t klen;
    const uint8_t *value;
    size_t vlen;
    bool tombstone;
    uint64_t expires_ms;
    store_version version;
    const uint8_t *pos;
    size_t poslen;
} store_hint;

/* Keeps a record for owner (1..STORE_ORIGIN_MAX bytes) in the batch, durable
 * with its commit. One hint per (owner, key): STORE_STALE when the kept one
 * is as new or newer. Errors discard the batch, as for store_put. */
store_result store_hint_put(store *s, const char *owner, const void *key, size_t klen,
                            const void *value, size_t vlen, bool tombstone, uint64_t expires_ms,
                            const store_version *ver, char *err, size_t errlen);

/* Calls fn for owner's hints in key order, starting after position `after`
 * (afterlen 0: from the first), for at most budget hints; fn returns
 * non-zero to stop early and must not write to the store. Sees the batch's
 * uncommitted hints. Returns how many fn saw (0: none left), or -1 with a
 * message. */
typedef int (*store_hint_fn)(void *arg, const store_hint *h);
long store_hint_scan(store *s, const char *owner, const uint8_t *after, size_t afterlen,
                     size_t budget, store_hint_fn fn, void *arg, char *err, size_t errlen);

/* Deletes owner's hint of key if it still has version *ver (a newer one
 * that arrived meanwhile stays). STORE_OK, STORE_NOT_FOUND, or an error that
 * discards the batch. */
store_result store_hint_del(store *s, const char *owner, const void *key, size_t klen,
                            const store_version *ver, char *err, size_t errlen);

/* The first owner with hints whose id sorts after `after` (NULL or "": the
 * first of all; owners sort by length, then bytes), into out. Returns 1,
 * 0 when there is none, or -1 with a message. */
int store_hint_next_owner(store *s, const char *after, char out[STORE_ORIGIN_MAX + 1], char *err,
                          size_t errlen);

/* Hints stored for every owner, as of the last commit. */
uint64_t store_hint_count(const store *s);

/* ---- ring ranges: scans for streaming and anti-entropy (store_scan.c) ---- */

/* One record as store_scan shows it; pointers into LMDB memory, valid only
 * during the scan's callback. pos/poslen is its place in ring order (the
 * LMDB key), to resume a scan after it. Tombstones and expired records are
 * shown too: the caller decides. */
typedef struct store_item {
    uint64_t token;
    const uint8_t *key; /* the user key */
    size_t klen;
    const uint8_t *value;
    size_t vlen;
    bool tombstone;
    uint64_t expires_ms;
    store_version version;
    const uint8_t *pos;
    size_t poslen;
} store_item;

/* Is token in the ring range (lo, hi]? The range runs clockwise from lo and
 * wraps past 2^64-1 to 0 when hi <= lo; lo == hi is the whole ring. */
bool store_in_range(uint64_t lo, uint64_t hi, uint64_t token);

/* Calls fn for the records whose token lies in (lo, hi], in ring order from
 * lo, starting after position `after` (afterlen 0: from the start), for at
 * most budget records; fn returns non-zero to stop after that record and
 * must not write to the store. Reads this batch's uncommitted writes when
 * there are any, else the committed snapshot. Sets *done when the scan
 * reached the end of the range. Returns how many fn saw, or -1 with a
 * message (a corrupt record is skipped with a warning, not an error). */
typedef int (*store_item_fn)(void *arg, const store_item *it);
long store_scan(store *s, uint64_t lo, uint64_t hi, const uint8_t *after, size_t afterlen,
                size_t budget, store_item_fn fn, void *arg, bool *done, char *err,
                size_t errlen);

/* Deletes, within the batch and for good (no tombstones), up to budget
 * records whose token lies in (lo, hi]: a range this node no longer
 * replicates. Returns how many it deleted (fewer than budget: the range is
 * now empty), or -1 with a message (the batch is then discarded). */
long store_drop_range(store *s, uint64_t lo, uint64_t hi, size_t budget, char *err,
                      size_t errlen);

/* The 8-byte ring token of a key: XXH3-64. */
uint64_t store_token(const void *key, size_t klen);

#endif
