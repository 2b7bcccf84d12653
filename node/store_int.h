/* store_int: the store's internals, shared by store.c (records, batches,
 * sweep, metadata) and the other store_*.c files (hints, scans, space, the
 * syncer). Nothing outside them includes it. Event-loop thread only, as store.h.
 */
#ifndef RINGKV_STORE_INT_H
#define RINGKV_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_cache.h"
#include "store_due.h"
#include "store_wal.h"

#define REC_FORMAT 1
#define REC_TOMBSTONE 0x01
#define REC_LONGKEY 0x02
#define REC_HDR 19
#define TOKEN_LEN 8
#define HASH_LEN 16
#define META_FORMAT 1
#define META_KEY "node"

/* A stored record, parsed; pointers into LMDB memory. */
typedef struct rec {
    uint8_t flags;
    uint64_t hlc, expires_ms;
    const char *origin;
    size_t olen;
    const uint8_t *key; /* only with REC_LONGKEY */
    size_t klen;
    const uint8_t *val;
    size_t vlen;
} rec;

/* Changes to the store's counts that a batch makes, applied when it
 * commits: tombstones, and values with an expiry with the sum of their
 * expiry times (INFO's expires and avg_ttl). */
typedef struct store_counts {
    int64_t tombstones, expiring;
    __int128 expiry_sum;
} store_counts;

struct store {
    MDB_env *env;
    MDB_dbi data, meta, hints;
    char *dir;       /* the data dir, for messages and reopening */
    unsigned env_flags;
    int fd;          /* LMDB's data file */
    size_t psize;    /* LMDB's page size */
    size_t map_size; /* LMDB's map now: the bytes reserved in the data file */
    size_t map_max;  /* [storage] map_size: the most the map grows to */
    bool hit_end;    /* a write of this batch met the end of the map */
    bool disk_full;  /* the last reservation (or log write) failed for lack of space */
    bool wal_full;   /* the last log write failed for lack of space */
    bool env_broken; /* LMDB lost its map or panicked: reopen before use */
    uint64_t retry_ms;       /* monotonic: no new reservation before */
    uint64_t reopen_ms;      /* monotonic: no new reopen before */
    uint64_t map_full_log_ms; /* monotonic: the last "map_size reached" log */
    pthread_mutex_t map_mu;  /* held across mdb_env_sync and remapping */
    size_t maxkey;   /* LMDB's largest key */
    store_fsync fsync;

    MDB_txn *wtxn; /* this batch's write txn, begun by its first write */
    MDB_cursor *wcur; /* a cursor on data in wtxn (LMDB frees it with wtxn) */
    MDB_txn *rtxn; /* read snapshot, reset between batches, never freed early */
    bool rtxn_live;
    bool dirty;

    /* Committed state. The batch's deltas are applied only when it commits,
     * so a discarded batch leaves the counters as they were. */
    char node_id[STORE_ORIGIN_MAX + 1];
    uint64_t incarnation, max_hlc;
    bool ring_member;
    char boot_id[40];     /* this machine boot's id, as the kernel gives it */
    bool open_unsynced;   /* written to meta: true while open under everysec/no */
    bool crash_suspect;   /* the last run may have ended in a machine crash */
    uint64_t hlc_ceiling;       /* the max_hlc persisted in meta: >= every committed HLC */
    uint64_t records, tombstones, commits, purged, hints_pending;
    uint64_t expiring;            /* values with an expiry */
    unsigned __int128 expiry_sum; /* their expiry times (ms), summed */
    uint64_t batch_max_hlc, batch_purged;
    store_counts batch_counts;

    store_cache cache; /* committed records in memory (store_cache.h) */

    /* Write-behind (fsync everysec with a cache; store_wb.c): writes go to
     * dirty cache entries and the log, and a flush writes them into LMDB. */
    bool wb;
    size_t wb_slots;     /* store_options.writeback_slots */
    store_wal wal;
    uint64_t wal_first;  /* the oldest segment not yet handed to the syncer to delete */
    uint64_t flush_us, rotate_ms; /* monotonic: the last flush tick, segment start */
    uint64_t step_us;    /* monotonic: the last step that walked (and committed) */
    double flush_debt;   /* cache slots the flush walk owes */
    uint64_t pass_seg;   /* the log segment current when the walk's pass began */
    size_t log_size;     /* store_options.log_size */
    uint64_t log_written, flush_log; /* bytes written to the log: all, at the last tick */
    uint64_t wb_applies;     /* writes applied under write-behind */
    uint64_t flush_activity; /* lookups and writes at the last step */
    uint64_t flush_applies;  /* wb_applies at the last step */
    uint64_t active_us;      /* monotonic: the last step that saw a lookup or write */
    uint64_t wrote_us;       /* monotonic: the last step that saw a write */
    uint64_t wb_max_hlc; /* this batch's writes, applied when the log has them */
    store_counts wb_counts;
    int flush_rc;        /* the LMDB error that stopped a flush */
    bool flush_dirty;    /* the LMDB batch holds records written back */
    uint64_t flush_warn_ms; /* monotonic: the last "write-back failed" warning */
    /* Shared with the syncer, under mu. */
    int *old_fds;        /* segments rotated out: synced and closed by the syncer */
    size_t nold_fds, old_fds_cap;
    struct wal_retired { uint64_t seq, commit; } *retired; /* deleted once LMDB is synced */
    size_t nretired, retired_cap;
    _Atomic uint64_t commits_a; /* commits, for the syncer */
    /* Bytes of the log's segment files on disk: added as they are written,
     * taken off by the syncer as it deletes them. */
    _Atomic uint64_t log_bytes;

    uint8_t *kbuf;      /* the data key being built, maxkey bytes */
    uint8_t *hkbuf;     /* the hint key being built, maxkey bytes */
    uint8_t *sweep_key; /* the key the sweep purges, maxkey bytes */
    store_due due;      /* the tokens the sweep comes back to (store_due.h) */

    /* LMDB checkpoints under everysec (store_checkpoint.c). The syncer's,
     * except at open and close; ckpt_cand and ckpt_pin change under map_mu
     * (a reopen of the environment ends them). */
    bool ckpt_on;             /* off: fsync is not everysec, or the layout is not known */
    bool no_ckpt;             /* store_options.no_checkpoints */
    int ckpt_fd;              /* the file, open from the first checkpoint written; -1 */
    unsigned ckpt_fd_gen;     /* ckpt_gen when ckpt_fd was made */
    _Atomic unsigned ckpt_gen; /* moves when the file is removed under the syncer */
    unsigned ckpt_slot;       /* the file's slot the next checkpoint goes to */
    _Atomic bool ckpt_hold;   /* store_hold_checkpoints */
    uint8_t *ckpt_page;       /* the candidate's meta page, and room to check and write it */
    MDB_txn *ckpt_cand;       /* a read of the next checkpoint's snapshot, until saved */
    uint64_t ckpt_cand_commit; /* the commit number its snapshot holds */
    MDB_txn *ckpt_pin;        /* the read of the checkpoint in the file: keeps its pages */
    uint64_t ckpt_commit;     /* the commit number that checkpoint holds */
    uint64_t ckpt_warn_ms;    /* monotonic: the last "checkpoint failed" warning */
    uint64_t ckpt_restored;   /* this open went back to the checkpoint of this txn (0: no) */
    _Atomic uint64_t checkpoints, ckpt_txnid; /* for the stats */

    bool syncer_on, syncer_stop;
    _Atomic int sync_error;   /* last background fsync error, 0 after a success */
    pthread_t syncer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Formats a message into err (NULL-safe). */
void store_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* n-byte big-endian integers. */
void store_put_be(uint8_t *p, uint64_t v, int n);
uint64_t store_get_be(const uint8_t *p, int n);
/* Maps an LMDB error to a result with a message saying what was being done. */
store_result store_mdb_result(store *s, int rc, const char *what, char *err,
                              size_t errlen);
/* A record that does not parse: STORE_ERR_IO with why. */
store_result store_corrupt(const store *s, const char *why, char *err, size_t errlen);
/* The batch's write txn, begun on first use; aborting it loses the batch. */
store_result store_batch_begin(store *s, char *err, size_t errlen);
void store_batch_discard(store *s);
/* The batch's read snapshot, begun on first use. */
store_result store_snapshot(store *s, char *err, size_t errlen);

/* fsync of directory dir (store_sync.c): 0, or -1 with errno. */
int store_sync_dir(const char *dir);

/* ---- LMDB checkpoints (store_checkpoint.c) ---- */

/* Before LMDB opens (s->dir, s->boot_id set): when the checkpoint file names
 * another boot, its meta page goes over LMDB's. 0, or -1 with a message. */
int store_ckpt_restore(store *s, char *err, size_t errlen);
/* At open, after the open's sync (s->fd, s->psize, s->wb set): turns
 * checkpoints on under everysec and writes the first. Never fails the open. */
int store_ckpt_begin(store *s);
/* The syncer, before its syncs: a read of the latest snapshot, which holds
 * the commits up to `commit`, and a copy of its meta page. */
bool store_ckpt_take(store *s, uint64_t commit);
/* The syncer, after its syncs (synced: all of them worked): the file, and
 * the taken read in place of the one before; or the taken read ended. */
void store_ckpt_save(store *s, bool synced);
/* The commit number up to which log segments may go: `synced`, or less
 * while checkpoints are on (the segments after the checkpoint stay). */
uint64_t store_ckpt_covered(const store *s, uint64_t synced);
/* Ends the checkpoint reads (before the environment closes), and removes
 * the file (durably) when remove. Under map_mu, or with the syncer
 * stopped. */
void store_ckpt_forget(store *s, bool remove);

/* ---- the data file's reserved space (store_space.c) ---- */

/* The map size to open LMDB with: the data file's size, or for a new one
 * 1 MiB (less if map_max is smaller). */
size_t store_space_initial(const char *dir, size_t map_max);
/* After mdb_env_open: reserves what LMDB maps (filling holes) and notes the
 * sizes. 0, or -1 with a message ("disk full ..."). */
int store_space_open(store *s, size_t map_max, char *err, size_t errlen);
/* Between batches (no write txn): grows the reservation and the map when
 * little room is left or a write met the end, at most once a second while
 * the disk is full; logs the start and end of a disk-full episode. */
void store_space_check(store *s);

/* The `everysec` syncer thread (store_sync.c): started by store_open,
 * stopped (and joined) by store_close; stop is a no-op when not running. */
int store_syncer_start(store *s, char *err, size_t errlen);
void store_syncer_stop(store *s);

/* Parses a data record; returns NULL, or what is wrong with it. */
const char *store_rec_parse(const MDB_val *v, rec *r);

/* Builds key's LMDB key in s->kbuf and returns its length; *longk: stored
 * under token + hash. */
size_t store_data_key(store *s, const void *key, size_t klen, bool *longk);
/* Whether the record under key's LMDB key is key's (long keys share it
 * with any key of equal hashes). */
bool store_rec_is_key(const rec *r, bool longk, const void *key, size_t klen);
/* <0, 0, >0 as the record's version is older, equal, newer than v. */
int store_rec_version_cmp(const rec *r, const store_version *v);
/* A write of key with version *ver against the record v stored under its
 * LMDB key: STORE_OK (it may go ahead; *old is what it replaces, parsed),
 * STORE_STALE, or STORE_ERR_IO with a message (corrupt, or another key's). */
store_result store_rec_check(store *s, const MDB_val *v, bool longk, const void *key,
                             size_t klen, const store_version *ver, rec *old, char *err,
                             size_t errlen);
/* The length of a record, and the record written at p. */
size_t store_rec_len(size_t olen, bool longk, size_t klen, size_t vlen);
void store_rec_encode(uint8_t *p, bool tomb, bool longk, const store_version *ver, size_t olen,
                      uint64_t expires_ms, const void *key, size_t klen, const void *value,
                      size_t vlen);
/* The record under LMDB key k (in s->kbuf): from the cache, else from the
 * batch's write txn or the committed snapshot. A read counts a cache hit
 * or miss and fills the cache from the snapshot; a write's lookup (read
 * false) does neither. STORE_OK with *v, STORE_NOT_FOUND, or an error. */
store_result store_lookup(store *s, MDB_val *k, MDB_val *v, bool read, char *err,
                          size_t errlen);
/* A write of a record with an expiry, or of a tombstone, notes its token
 * (in s->kbuf) for the sweep (store_sweep.c). STORE_OK, or STORE_ERR_IO
 * (out of memory). */
store_result store_due_write(store *s, uint64_t expires_ms, const store_version *ver, bool tomb,
                             char *err, size_t errlen);
/* Counts a record (sign 1) or takes it out of them (-1). */
static inline void store_counts_add(store_counts *c, bool tomb, uint64_t expires_ms, int sign)
{
    if (tomb) {
        c->tombstones += sign;
    } else if (expires_ms) {
        c->expiring += sign;
        c->expiry_sum += sign * (__int128)expires_ms;
    }
}

static inline void store_counts_rec(store_counts *c, const rec *r, int sign)
{
    store_counts_add(c, r->flags & REC_TOMBSTONE, r->expires_ms, sign);
}

/* Applies a batch's changes of the counts (none goes below zero). */
void store_count(store *s, const store_counts *d);
/* The open's full scan (store_sweep.c): the tombstone and expiring counts
 * and the sweep's table. 0, ENOMEM or an LMDB error. */
int store_open_scan(store *s, MDB_txn *txn);
/* The store's commit of the LMDB batch (store.c). */
store_result store_commit_lmdb(store *s, char *err, size_t errlen);
uint64_t store_mono_ms(void);
uint64_t store_mono_us(void);

/* ---- write-behind (store_wb.c) ---- */

/* At open, before anything else is written: replays the log segments left
 * in the data dir into LMDB, syncs it and deletes them; then, under
 * write-behind, starts a new segment. 0, or -1 with a message. */
int store_wb_open(store *s, char *err, size_t errlen);
/* store_put/store_del under write-behind. */
store_result store_wb_apply(store *s, const void *key, size_t klen, const void *value,
                            size_t vlen, uint64_t expires_ms, const store_version *ver, bool tomb,
                            char *err, size_t errlen);
/* store_commit under write-behind: the log write, a flush step, LMDB's
 * commit, and the segments that can go. */
store_result store_wb_commit(store *s, char *err, size_t errlen);
/* Writes every dirty record into the batch, or one key's, or those of the
 * ring range (lo, hi] (scans and range drops see them then). 0, or -1 with
 * a message (batch discarded). */
int store_wb_flush_all(store *s, char *err, size_t errlen);
int store_wb_flush_key(store *s, const uint8_t *k, size_t klen, char *err, size_t errlen);
int store_wb_flush_range(store *s, uint64_t lo, uint64_t hi, char *err, size_t errlen);
/* Under write-behind, logs that the record v under LMDB key k is removed
 * for good (purged, or its range dropped), so that a replay does not bring
 * it back. 0, or -1 with a message (out of memory). */
int store_wb_log_purge(store *s, const uint8_t *k, size_t klen, const MDB_val *v, char *err,
                       size_t errlen);
/* At close, after the last commit and the syncer's stop: syncs the rest
 * and deletes the segments (kept when LMDB could not be synced). */
void store_wb_close(store *s, bool lmdb_synced);

#endif
