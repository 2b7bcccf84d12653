/* store_wb: write-behind, the store's write path under `fsync everysec`
 * (with a record cache). A put or delete checks the version it replaces as
 * always, then makes its key's cache entry dirty with the new record and
 * appends the record to the batch's log buffer (store_wal.h); it writes
 * nothing into LMDB. The commit writes the buffer to the log with one
 * write() before any reply of the batch goes out, so nothing acknowledged
 * is lost to a killed process; the syncer fdatasyncs the log once a second.
 *
 * A flush step in a commit (at most every FLUSH_TICK_US, and once it owes
 * FLUSH_STEP_MIN_SLOTS or FLUSH_STEP_WAIT_US has passed) walks a slice of
 * the cache table, which is in ring order, and writes the dirty records it
 * finds into LMDB's batch. The slice is in proportion to the time and the
 * log bytes since the last tick: the walk goes round the table at least
 * once a CYCLE_MS (faster as dirty bytes grow) and once for every half of
 * log_size written to the log (once a IDLE_CYCLE_MS while nothing reads or
 * writes), in small steps, not in pauses. So LMDB sees each page's writes
 * together, in key order, once a cycle, instead of a page copy for every
 * write. A busy pass (with dirty records under half the cache) writes back
 * only the records logged before it began; those logged since wait for
 * the next pass, and a key written again by then moves its record and its
 * pin to the newest segment. So a key written over and over reaches LMDB
 * once it rests, and a segment is still free at the end of the pass after
 * its own, as before. Three nodes, SET -P16 3 B after the 1 KiB SETs of
 * bench/compare: 18,000-850,000 records written back instead of
 * 650,000-2,200,000, 2.64-3.15 us of CPU a SET instead of 3.09-3.89.
 *
 * The write-back is most of what a write costs beyond Redis' (an append
 * to its log): a walk once a second left ringkv at 0.7x
 * redis-server's SETs, where a walk ten times slower matched it, and 30 s
 * rather than 10 s wrote back a third less on three nodes (SET -P16 3 B
 * after 1 KiB SETs: 228k -> 257k op/s). The log stays near log_size,
 * which bounds the replay after a crash, and dirty bytes speed the walk up
 * as they fill the cache.
 *
 * A record stays dirty until LMDB has committed it; a log segment is
 * deleted by the syncer once no dirty record pins it and LMDB has been
 * synced after the commit that wrote its last one. At open, the segments
 * left behind by a crash are replayed into LMDB.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_int.h"

#define CYCLE_MS 30000
/* The walk's cycle while nothing reads or writes (no cache lookup and no
 * write for QUIET_US): an idle node has the CPU to spare, and
 * writing back soon bounds how long written records (and expired ones,
 * which the sweep finds in LMDB) wait in memory. */
#define IDLE_CYCLE_MS 1000
/* Idle, or reading only, means for this long: a step's own window (a
 * millisecond or so) is too short. Under pipelined SETs, a pass that only
 * took peers' acknowledgements saw no write since the step before and
 * walked that millisecond at the idle pace, 30 times the busy one. */
#define QUIET_US 100000
/* With nothing dirty, the segment is closed after this long, so that the
 * syncer can delete it. */
#define IDLE_ROTATE_MS 1000
/* Steps at most this often: a step in every pass made an LMDB commit of
 * every pass, which cost SETs a quarter of their speed; a step every 5 ms
 * was as fast as every 1 ms, with twice the p99. */
#define FLUSH_TICK_US 1000
/* Records a step writes back at most (unless dirty records fill the
 * cache); the slots it did not reach stay owed to the next step. A step
 * owes slots in proportion to the time since the one before, so without
 * a bound a long step made the next one longer: three nodes going idle
 * after 500,000 SETs of 1 KiB (each walks a cycle a second when idle)
 * wrote back in steps that grew to the whole table, and a request that
 * came then (`ringkv stats`) waited 4.4-5.1 s for its answer, against
 * 0.1-0.2 s with the bound; the GETs after them cost the nodes 41-50 us
 * of CPU apiece against 21-22. 512 records of 1 KiB are a few
 * milliseconds at most; busy, steps come every 1 to 50 ms
 * (FLUSH_STEP_MIN_SLOTS), far more often than the walk needs. */
#define FLUSH_STEP_MAX 512
/* A step walks at least this many slots, or waits (at most
 * FLUSH_STEP_WAIT_US) until it owes them: every step is an LMDB commit,
 * which writes the B-tree's path to the pages it changed, the free list
 * and the meta page whatever it carries. Under 300,000 unpipelined SETs
 * of 3 B on three nodes, steps every millisecond made about 180,000
 * pwrite, lseek and writev calls, 0.6 a SET beside the 2.3 of the SETs'
 * own reads and writes; gathered, about 12,000. */
#define FLUSH_STEP_MIN_SLOTS 1024
#define FLUSH_STEP_WAIT_US 50000
#define REPLAY_BATCH 10000

/* cache_flush_fn: one dirty record into LMDB's batch. A record that shrank
 * to under a quarter of what it replaces is deleted and put again rather
 * than replaced: LMDB merges a page only when a delete leaves it sparse, so
 * replacing 1 KiB values with 3-byte ones in place left ~33,000 leaves of a
 * few records each, and every write-back cycle copied and wrote them all.
 * A new key (most of them, under a load of new keys) is put with one
 * search of the tree: MDB_NOOVERWRITE stops at an existing record, hands
 * it back and leaves the cursor on it. */
static int flush_put(void *arg, const uint8_t *k, size_t klen, const uint8_t *rec, size_t rlen)
{
    store *s = arg;
    MDB_val kv = {.mv_size = klen, .mv_data = (void *)k};
    MDB_val vv = {.mv_size = rlen, .mv_data = (void *)rec}, old = vv;
    int rc = 0;
    if (!s->wcur && (rc = mdb_cursor_open(s->wtxn, s->data, &s->wcur)) != 0)
        s->wcur = NULL;
    if (rc == 0 && (rc = mdb_cursor_put(s->wcur, &kv, &old, MDB_NOOVERWRITE)) == MDB_KEYEXIST) {
        if (rlen >= old.mv_size / 4)
            rc = mdb_cursor_put(s->wcur, &kv, &vv, MDB_CURRENT);
        else if ((rc = mdb_cursor_del(s->wcur, 0)) == 0)
            rc = mdb_cursor_put(s->wcur, &kv, &vv, 0);
    }
    s->flush_rc = rc;
    return rc;
}

/* -1, or -2 when the disk or the map is full (store_space.c logs that
 * once per episode). */
static int flush_failed(store *s, char *err, size_t errlen)
{
    store_result r = STORE_ERR_IO;
    if (s->flush_rc)
        r = store_mdb_result(s, s->flush_rc, "writing cached records back", err, errlen);
    else
        store_set_err(err, errlen, "out of memory writing cached records back");
    store_batch_discard(s); /* the records stay dirty */
    return r == STORE_ERR_FULL ? -2 : -1;
}

/* Writes the records fn hands over (flush: key k's, a ring range's, or
 * every dirty one) into the batch. */
enum wb_what { WB_ALL, WB_KEY, WB_RANGE };

static int write_back(store *s, enum wb_what what, const uint8_t *k, size_t klen, uint64_t lo,
                      uint64_t hi, char *err, size_t errlen)
{
    if (!s->wb || !s->cache.dirty_n)
        return 0;
    if (store_batch_begin(s, err, errlen) != STORE_OK)
        return -1;
    s->flush_rc = 0;
    long n = what == WB_KEY     ? store_cache_flush_key(&s->cache, k, klen, flush_put, s)
             : what == WB_RANGE ? store_cache_flush_range(&s->cache, lo, hi, flush_put, s)
                                : store_cache_flush_all(&s->cache, flush_put, s);
    if (n < 0 && flush_failed(s, err, errlen))
        return -1;
    if (n)
        s->flush_dirty = true;
    return 0;
}

int store_wb_flush_all(store *s, char *err, size_t errlen)
{
    return write_back(s, WB_ALL, NULL, 0, 0, 0, err, errlen);
}

int store_wb_flush_key(store *s, const uint8_t *k, size_t klen, char *err, size_t errlen)
{
    return write_back(s, WB_KEY, k, klen, 0, 0, err, errlen);
}

int store_wb_flush_range(store *s, uint64_t lo, uint64_t hi, char *err, size_t errlen)
{
    return write_back(s, WB_RANGE, NULL, 0, lo, hi, err, errlen);
}

store_result store_wb_apply(store *s, const void *key, size_t klen, const void *value,
                            size_t vlen, uint64_t expires_ms, const store_version *ver, bool tomb,
                            char *err, size_t errlen)
{
    size_t olen = strnlen(ver->origin, sizeof ver->origin);
    bool longk, had = false, absent;
    rec old = {0};
    store_result res;
    MDB_val k, v;
    int rc;

    s->wb_applies++;
    /* Every error below leaves the store as it was: nothing else of the
     * batch is lost. */
    if (klen == 0 || klen > UINT32_MAX || olen > STORE_ORIGIN_MAX) {
        store_set_err(err, errlen, klen ? "key or origin too long" : "empty key");
        return STORE_ERR_IO;
    }
    if ((rc = atomic_load(&s->sync_error)) != 0) {
        store_set_err(err, errlen, "background fsync failed (%s); writes are refused until a "
                      "sync succeeds", mdb_strerror(rc));
        return STORE_ERR_IO;
    }
    /* Full: the log, or the map for what waits to be written back. Once a
     * second a write goes through to find out whether space is back. */
    if ((s->disk_full || s->wal_full) && store_mono_ms() < s->retry_ms) {
        store_set_err(err, errlen, "disk full: no space left in %s; writes are refused until "
                      "space is freed", s->dir);
        return STORE_ERR_FULL;
    }
    k.mv_size = store_data_key(s, key, klen, &longk);
    k.mv_data = s->kbuf;
    if ((expires_ms || tomb) &&
        (res = store_due_write(s, expires_ms, ver, tomb, err, errlen)) != STORE_OK)
        return res;
    if ((res = store_lookup(s, &k, &v, false, err, errlen)) != STORE_OK &&
        res != STORE_NOT_FOUND)
        return res;
    absent = res == STORE_NOT_FOUND;
    if (!absent) {
        if ((res = store_rec_check(s, &v, longk, key, klen, ver, &old, err, errlen)) !=
            STORE_OK)
            return res;
        had = true;
    }

    size_t rlen = store_rec_len(olen, longk, klen, vlen), at = s->wal.len;
    cache_ver cv = {.hlc = ver->hlc, .origin = ver->origin, .olen = olen};
    uint8_t *p;
    if (wal_add(&s->wal, s->kbuf, k.mv_size, NULL, rlen) != 0 ||
        !(p = store_cache_put_dirty(&s->cache, s->kbuf, k.mv_size, rlen, absent, s->wal.seq,
                                    longk ? NULL : &cv))) {
        s->wal.len = at;
        store_set_err(err, errlen, "out of memory");
        return STORE_ERR_IO;
    }
    store_rec_encode(p, tomb, longk, ver, olen, expires_ms, key, klen, value, vlen);
    wal_seal(&s->wal, at, p, rlen);

    /* What the write replaces goes out of the counts, what it writes in. */
    if (had)
        store_counts_rec(&s->wb_counts, &old, -1);
    store_counts_add(&s->wb_counts, tomb, expires_ms, 1);
    if (ver->hlc > s->wb_max_hlc)
        s->wb_max_hlc = ver->hlc;
    return STORE_OK;
}

/* Starts segment seq + 1; the old one goes to the syncer. 0 or -1. */
static int rotate(store *s, char *err, size_t errlen)
{
    int old = -1, rc;
    if (s->syncer_on)
        pthread_mutex_lock(&s->mu);
    rc = wal_start_segment(&s->wal, s->wal.seq + 1, &old, err, errlen);
    if (rc == 0)
        atomic_fetch_add(&s->log_bytes, WAL_MAGIC_LEN);
    if (rc == 0 && old >= 0) {
        if (s->nold_fds == s->old_fds_cap) {
            size_t cap = s->old_fds_cap ? s->old_fds_cap * 2 : 8;
            int *f = realloc(s->old_fds, cap * sizeof *f);
            if (f)
                s->old_fds = f, s->old_fds_cap = cap;
        }
        if (s->nold_fds < s->old_fds_cap)
            s->old_fds[s->nold_fds++] = old;
        else if (fdatasync(old) != 0 || close(old) != 0) /* out of memory: sync it here */
            log_warn("store: syncing a log segment failed: %s", strerror(errno));
    }
    if (s->syncer_on)
        pthread_mutex_unlock(&s->mu);
    s->rotate_ms = store_mono_ms();
    return rc;
}

/* Segments no dirty record pins any more go to the syncer, which deletes
 * them once LMDB is synced past this commit. */
static void retire(store *s)
{
    if (s->syncer_on)
        pthread_mutex_lock(&s->mu);
    while (s->wal_first < s->wal.seq && store_cache_pins(&s->cache, s->wal_first) == 0) {
        if (s->nretired == s->retired_cap) {
            size_t cap = s->retired_cap ? s->retired_cap * 2 : 8;
            struct wal_retired *r = realloc(s->retired, cap * sizeof *r);
            if (!r)
                break; /* tried again at the next commit */
            s->retired = r, s->retired_cap = cap;
        }
        s->retired[s->nretired++] = (struct wal_retired){.seq = s->wal_first,
                                                         .commit = s->commits};
        s->wal_first++;
    }
    if (s->syncer_on)
        pthread_mutex_unlock(&s->mu);
    store_cache_pins_drop(&s->cache, s->wal_first);
}

/* One flush step: the slots the cursor owes since the last one. */
static int flush_step(store *s, uint64_t now, bool *wrapped, char *err, size_t errlen)
{
    store_cache *c = &s->cache;
    uint64_t dt = now - s->flush_us;
    *wrapped = false;
    if (dt < FLUSH_TICK_US && c->dirty_bytes <= c->max_bytes && !s->wb_slots)
        return 0;
    s->flush_us = now;
    uint64_t dlog = s->log_written - s->flush_log;
    s->flush_log = s->log_written;
    /* Idle: no read or write for QUIET_US (the sweep's purges do not
     * count: they wait for the write-back themselves). */
    uint64_t activity = c->hits + c->misses + s->wb_applies;
    if (activity != s->flush_activity)
        s->active_us = now;
    if (s->wb_applies != s->flush_applies)
        s->wrote_us = now;
    s->flush_activity = activity;
    s->flush_applies = s->wb_applies;
    bool idle = now - s->active_us >= QUIET_US;
    bool reads_only = !idle && now - s->wrote_us >= QUIET_US;
    /* Reads and no writes, with room to spare: the walk waits, since its
     * LMDB writes and syncs slow the reads (GET p99 after a burst of SETs
     * 0.53-0.59 ms with it, 0.39-0.46 ms without). The records are safe in
     * the log, which does not grow while nothing writes: the walk resumes
     * with the next write, or within a second of idle, and at once when
     * dirty bytes pass half the cache or the log passes log_size (the walk
     * keeps it near half of that while writes go on). */
    if (reads_only && c->dirty_bytes <= c->max_bytes / 2 &&
        atomic_load(&s->log_bytes) <= s->log_size)
        return 0;
    if (!c->dirty_n) {
        s->flush_debt = 0;
        return 0;
    }
    size_t nslots = c->mask + 1, slots;
    bool over = c->dirty_bytes > c->max_bytes; /* dirty records alone fill the budget */
    /* Faster as dirty bytes grow: at half the budget the walk goes round
     * three times as often. */
    double speed = 1.0 + 4.0 * (double)c->dirty_bytes / (double)(c->max_bytes ? c->max_bytes : 1);
    double cycle_us = (idle ? IDLE_CYCLE_MS : CYCLE_MS) * 1000.0;
    s->flush_debt += (double)nslots * ((double)dt * speed / cycle_us +
                                       (double)dlog / ((double)s->log_size / 2));
    if (s->flush_debt > (double)nslots)
        s->flush_debt = (double)nslots;
    if (over)
        slots = nslots;
    else if (s->wb_slots)
        slots = s->wb_slots;
    else if ((slots = (size_t)s->flush_debt) == 0 ||
             (slots < FLUSH_STEP_MIN_SLOTS && slots < nslots &&
              now - s->step_us < FLUSH_STEP_WAIT_US))
        return 0;
    s->step_us = now;
    s->flush_debt = slots < s->flush_debt ? s->flush_debt - (double)slots : 0;
    if (store_batch_begin(s, err, errlen) != STORE_OK)
        return -1;
    s->flush_rc = 0;
    size_t walked = 0;
    /* Records written since the pass began wait for the next one, busy and
     * with room to spare: many are written again by then. */
    uint64_t young = idle || c->dirty_bytes > c->max_bytes / 2 ? UINT64_MAX : s->pass_seg;
    long n = store_cache_flush(c, slots, over ? 0 : FLUSH_STEP_MAX, young, flush_put, s, wrapped,
                               &walked);
    if (n < 0)
        return flush_failed(s, err, errlen);
    if (walked < slots && !s->wb_slots)
        s->flush_debt += (double)(slots - walked); /* still owed */
    if (n)
        s->flush_dirty = true;
    return 0;
}

/* A failed log write (e: its errno): a full disk starts a "disk full"
 * episode, as a full map does. */
static store_result log_failed(store *s, int e, const char *why, char *err, size_t errlen)
{
    if (e == ENOSPC || e == EDQUOT) {
        if (!s->disk_full)
            log_error("store: disk full: cannot write the log in %s: %s; writes are refused, "
                      "reads go on, retrying every second", s->dir, why);
        s->disk_full = s->wal_full = true;
        s->retry_ms = store_mono_ms() + 1000;
        store_set_err(err, errlen, "disk full: no space left in %s to log the writes; writes "
                      "are refused until space is freed", s->dir);
        return STORE_ERR_FULL;
    }
    store_set_err(err, errlen, "storage error: %s", why);
    return STORE_ERR_IO;
}

store_result store_wb_commit(store *s, char *err, size_t errlen)
{
    store_result res = STORE_OK;
    char why[256];
    uint64_t now;
    bool wrapped = false;

    if (s->wal.len) {
        int e = 0;
        size_t n = s->wal.len;
        if ((s->wal.torn && rotate(s, why, sizeof why) != 0) ||
            (e = wal_write(&s->wal, why, sizeof why)) != 0) {
            s->wal.len = 0;
            res = log_failed(s, e, why, err, errlen);
        } else {
            s->log_written += n;
            atomic_fetch_add(&s->log_bytes, n);
            if (s->wal_full)
                s->wal_full = false; /* store_space_check ends the episode */
        }
        /* The writes stand in the cache either way (and may yet reach
         * LMDB); a failed log write only means they were not made
         * durable, and the batch is answered with an error. */
        if (s->wb_max_hlc > s->max_hlc)
            s->max_hlc = s->wb_max_hlc;
        store_count(s, &s->wb_counts);
        s->wb_max_hlc = 0, s->wb_counts = (store_counts){0};
    }

    uint64_t now_us = store_mono_us();
    now = now_us / 1000;
    /* Failures are retried every step: warned about once a second (a full
     * disk or map, once per episode by store_space.c). */
    if (flush_step(s, now_us, &wrapped, why, sizeof why) == -1 &&
        now - s->flush_warn_ms >= 1000) {
        s->flush_warn_ms = now;
        log_warn("store: writing cached records back failed (they stay in memory and in the "
                 "log; retried): %s", why);
    }
    /* The persisted HLC ceiling moves with the clock even when no flush
     * did; store_commit_lmdb writes it. */
    if (s->max_hlc > s->hlc_ceiling && store_batch_begin(s, why, sizeof why) == STORE_OK)
        s->flush_dirty = true;

    bool own = s->dirty; /* the batch's own LMDB writes (hints, purges, ...) */
    store_result r = store_commit_lmdb(s, why, sizeof why);
    if (r != STORE_OK) {
        if (own && res == STORE_OK) {
            store_set_err(err, errlen, "%s", why);
            res = r;
        } else if (!own && r != STORE_ERR_FULL && now - s->flush_warn_ms >= 1000) {
            /* (a full disk or map is logged once per episode, store_space.c) */
            s->flush_warn_ms = now;
            log_warn("store: committing cached records to LMDB failed (they stay in memory and "
                     "in the log; retried): %s", why);
        }
    }

    /* A new segment when the walk wraps (the next pass writes back what
     * the one before holds), every eighth of log_size (so that segments whose
     * records were all written again can go early), and when idle. */
    if (wrapped || s->wal.size >= s->log_size / 8 ||
        (!s->cache.dirty_n && s->wal.size > WAL_MAGIC_LEN &&
         now - s->rotate_ms >= IDLE_ROTATE_MS)) {
        int rc = rotate(s, why, sizeof why);
        if (rc != 0)
            log_warn("store: starting a new log segment failed (the current one grows): %s", why);
        if (wrapped) /* without a new segment, the next pass takes every record */
            s->pass_seg = rc == 0 ? s->wal.seq : UINT64_MAX;
    }
    retire(s);
    return res;
}

int store_wb_log_purge(store *s, const uint8_t *k, size_t klen, const MDB_val *v, char *err,
                       size_t errlen)
{
    uint8_t b[10 + STORE_ORIGIN_MAX];
    rec r;
    if (store_rec_parse(v, &r) != NULL)
        return 0; /* the sweep leaves corrupt records alone */
    b[0] = WAL_OP_PURGE;
    store_put_be(b + 1, r.hlc, 8);
    b[9] = (uint8_t)r.olen;
    memcpy(b + 10, r.origin, r.olen);
    if (wal_add(&s->wal, k, klen, b, 10 + r.olen) != 0) {
        store_set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- open and close ---- */

/* A logged purge: the record goes if it still has the version purged. */
static int replay_purge(store *s, const wal_rec *w, char *err, size_t errlen)
{
    MDB_val k = {.mv_size = w->klen, .mv_data = (void *)w->key}, v;
    size_t olen = w->rlen >= 10 ? w->rec[9] : 0;
    rec r;
    int rc;

    if (w->rlen < 10 || olen > STORE_ORIGIN_MAX || w->rlen != 10 + olen)
        return 1;
    if (store_batch_begin(s, err, errlen) != STORE_OK)
        return -1;
    if ((rc = mdb_get(s->wtxn, s->data, &k, &v)) == MDB_NOTFOUND)
        return 0;
    if (rc == 0 && (store_rec_parse(&v, &r) != NULL || r.hlc != store_get_be(w->rec + 1, 8) ||
                    r.olen != olen || memcmp(r.origin, w->rec + 10, olen) != 0))
        return 0; /* rewritten since: it stays */
    if (rc == 0) {
        if ((rc = mdb_del(s->wtxn, s->data, &k, NULL)) == 0) {
            store_counts_rec(&s->batch_counts, &r, -1);
            s->batch_purged++;
            s->dirty = true;
            return 0;
        }
    }
    store_mdb_result(s, rc, "replaying a purge", err, errlen);
    store_batch_discard(s);
    return -1;
}

/* One logged record back into LMDB, through the write-through path
 * (s->wb is still off), which skips it when LMDB has it or a newer one. */
static int replay_one(store *s, const char *path, const wal_rec *w, uint64_t *applied, char *err,
                      size_t errlen)
{
    MDB_val v = {.mv_size = w->rlen, .mv_data = (void *)w->rec};
    store_version ver;
    int rc = 1;
    rec r;

    if (w->rlen && w->rec[0] == WAL_OP_PURGE)
        rc = replay_purge(s, w, err, errlen);
    else if (store_rec_parse(&v, &r) == NULL && ((r.flags & REC_LONGKEY) || w->klen > TOKEN_LEN)) {
        const void *key = (r.flags & REC_LONGKEY) ? (const void *)r.key
                                                  : (const void *)(w->key + TOKEN_LEN);
        size_t klen = (r.flags & REC_LONGKEY) ? r.klen : w->klen - TOKEN_LEN;
        ver.hlc = r.hlc;
        memcpy(ver.origin, r.origin, r.olen);
        ver.origin[r.olen] = '\0';
        store_result res = (r.flags & REC_TOMBSTONE)
                               ? store_del(s, key, klen, &ver, err, errlen)
                               : store_put(s, key, klen, r.val, r.vlen, r.expires_ms, &ver, err,
                                           errlen);
        *applied += res == STORE_OK;
        return res == STORE_OK || res == STORE_STALE ? 0 : -1;
    }
    if (rc > 0)
        log_warn("store: %s: skipping a record that does not parse", path);
    return rc < 0 ? -1 : 0;
}

static int replay_segment(store *s, uint64_t seq, uint64_t *records, uint64_t *applied,
                          char *err, size_t errlen)
{
    char path[PATH_MAX + 32], why[256];
    struct stat st;
    size_t pending = 0;
    int fd, rc = 0;

    wal_path(path, sizeof path, s->dir, seq);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
        store_set_err(err, errlen, "reading the log segment %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    const uint8_t *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (p == MAP_FAILED) {
        store_set_err(err, errlen, "reading the log segment %s: %s", path, strerror(errno));
        return -1;
    }
    if (size < WAL_MAGIC_LEN || memcmp(p, WAL_MAGIC, WAL_MAGIC_LEN) != 0) {
        /* A crash between creating a segment and its header: nothing in it. */
        if (size)
            log_warn("store: %s is not a log segment; skipped", path);
        goto out;
    }
    for (size_t off = WAL_MAGIC_LEN; off < size;) {
        wal_rec w;
        long n = wal_parse(p + off, size - off, &w);
        if (n == 0) {
            log_warn("store: %s ends in a record cut short at byte %zu (a write torn by a "
                     "crash, never acknowledged)", path, off);
            break;
        }
        if (n < 0) {
            log_error("store: %s: a corrupt record at byte %zu; the rest of the segment is "
                      "skipped", path, off);
            break;
        }
        off += (size_t)n;
        (*records)++;
        if (replay_one(s, path, &w, applied, why, sizeof why) != 0) {
            store_set_err(err, errlen, "replaying %s: %s", path, why);
            rc = -1;
            goto out;
        }
        if (++pending == REPLAY_BATCH) {
            pending = 0;
            if (store_commit(s, why, sizeof why) != STORE_OK) {
                store_set_err(err, errlen, "replaying %s: %s", path, why);
                rc = -1;
                goto out;
            }
        }
    }
out:
    if (p)
        munmap((void *)p, size);
    return rc;
}

int store_wb_open(store *s, char *err, size_t errlen)
{
    uint64_t *seqs, records = 0, applied = 0, next;
    char why[256];
    size_t n;
    int old, rc;

    if (wal_list(s->dir, &seqs, &n, err, errlen) != 0)
        return -1;
    next = n ? seqs[n - 1] + 1 : 1;
    for (size_t i = 0; i < n; i++)
        if (replay_segment(s, seqs[i], &records, &applied, err, errlen) != 0) {
            free(seqs);
            return -1;
        }
    if (n) {
        if (store_commit(s, why, sizeof why) != STORE_OK) {
            store_set_err(err, errlen, "replaying the log: %s", why);
            free(seqs);
            return -1;
        }
        if ((rc = mdb_env_sync(s->env, 1)) != 0) {
            store_set_err(err, errlen, "syncing the replayed log: %s", mdb_strerror(rc));
            free(seqs);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            wal_path(why, sizeof why, s->dir, seqs[i]);
            if (unlink(why) != 0)
                log_warn("store: deleting the replayed %s: %s", why, strerror(errno));
        }
        log_info("store: replayed %" PRIu64 " logged writes from %zu segment(s); %" PRIu64
                 " were newer than LMDB's", records, n, applied);
    }
    free(seqs);
    if (s->fsync != STORE_FSYNC_EVERYSEC || !s->cache.max_bytes)
        return 0;
    if (wal_start_segment(&s->wal, next, &old, err, errlen) != 0)
        return -1;
    atomic_store(&s->log_bytes, WAL_MAGIC_LEN); /* the replayed segments are gone */
    s->wal_first = s->pass_seg = next;
    s->cache.pins.base = next;
    s->rotate_ms = store_mono_ms();
    s->flush_us = s->step_us = store_mono_us();
    s->wb = true;
    return 0;
}

void store_wb_close(store *s, bool lmdb_synced)
{
    char path[PATH_MAX + 32];
    bool clean = s->wb && lmdb_synced && !s->cache.dirty_n && !s->wal.len;
    /* The syncer has stopped: what it had not synced yet is synced here. */
    for (size_t i = 0; i < s->nold_fds; i++) {
        if (!clean && fdatasync(s->old_fds[i]) != 0)
            log_error("store: syncing a log segment at close failed: %s", strerror(errno));
        close(s->old_fds[i]);
    }
    if (s->wb && !clean && s->wal.fd >= 0 && fdatasync(s->wal.fd) != 0)
        log_error("store: syncing the log at close failed: %s", strerror(errno));
    if (s->wb && clean) {
        for (uint64_t seq = s->nretired ? s->retired[0].seq : s->wal_first; seq <= s->wal.seq;
             seq++) {
            wal_path(path, sizeof path, s->dir, seq);
            if (unlink(path) != 0 && errno != ENOENT)
                log_warn("store: deleting %s: %s", path, strerror(errno));
        }
    } else if (s->wb) {
        log_warn("store: closing with writes not yet in LMDB; the log keeps them and the "
                 "next start replays it");
    }
    wal_close(&s->wal);
    free(s->old_fds);
    free(s->retired);
    s->old_fds = NULL, s->retired = NULL;
    s->nold_fds = s->nretired = 0;
}
