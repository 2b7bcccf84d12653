/* store: a node's durable storage over LMDB; the contract is in store.h.
 *
 * One LMDB environment with three named databases: "data" (records, keyed by
 * ring token then key), "meta" (the NodeMeta protobuf under "node") and
 * "hints" (store_hints.c). The writes of one batch share a write txn, the
 * reads a reset-and-renewed snapshot, and both go through the record cache
 * (store_cache.c); the reads are in store_read.c. Range scans are in
 * store_scan.c, the expiry sweep in store_sweep.c, write-behind and its log
 * in store_wb.c and store_wal.c;
 * store_int.h holds what the files share; the data key and record format
 * are in store_rec.c.
 */
#include "store.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hlc.h"
#include "log.h"
#include "ringkv.pb-c.h"
#include "store_int.h"

/* How far above the largest committed HLC the persisted ceiling is set: one
 * second of clock (HLC_LOGICAL_BITS of logical counter below the ms). */
#define HLC_RESERVE ((uint64_t)1000 << HLC_LOGICAL_BITS)

__attribute__((format(printf, 3, 4)))
void store_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* n-byte big-endian integers. */
void store_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t store_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Maps an LMDB or system error to a result, with a message naming the step.
 * The end of the map is "map_size reached" when the map is as large as
 * configured, and "disk full" when no more space could be reserved. */
store_result store_mdb_result(store *s, int rc, const char *what,
                               char *err, size_t errlen)
{
    if (rc == MDB_MAP_FULL) {
        s->hit_end = true;
        if (s->map_size < s->map_max && s->disk_full) {
            store_set_err(err, errlen, "disk full: no space left to grow the store in %s "
                    "past %zu bytes; writes are refused until space is freed", s->dir,
                    s->map_size);
        } else if (s->map_size < s->map_max) {
            store_set_err(err, errlen, "storage busy: this batch outgrew the %zu bytes "
                    "reserved so far; the store grows now, retry the write", s->map_size);
        } else {
            store_set_err(err, errlen, "storage full: map_size of %zu bytes reached "
                    "(raise [storage] map_size)", s->map_max);
        }
        return STORE_ERR_FULL;
    }
    if (rc == ENOSPC || rc == EDQUOT) {
        store_set_err(err, errlen, "disk full while %s: %s", what, strerror(rc));
        return STORE_ERR_FULL;
    }
    if (rc == MDB_PANIC)
        s->env_broken = true;
    store_set_err(err, errlen, "storage error while %s: %s", what, mdb_strerror(rc));
    return STORE_ERR_IO;
}

/* Drops the batch: its writes and its counter deltas. Dirty records a
 * flush wrote into it stay dirty. */
void store_batch_discard(store *s)
{
    store_cache_flush_abort(&s->cache);
    s->flush_dirty = false;
    if (s->wtxn)
        mdb_txn_abort(s->wtxn);
    s->wtxn = NULL, s->wcur = NULL, s->dirty = false;
    s->batch_max_hlc = s->batch_purged = 0, s->batch_counts = (store_counts){0};
    store_cache_abort(&s->cache); /* no-op after a commit, which took the batch's entries */
    store_due_settle(&s->due, false); /* no-op after a commit, which settled it */
}

static int env_reopen(store *s, char *err, size_t errlen);

store_result store_batch_begin(store *s, char *err, size_t errlen)
{
    int rc;
    if (s->wtxn)
        return STORE_OK;
    if (s->env_broken && env_reopen(s, err, errlen) != 0)
        return STORE_ERR_IO;
    rc = mdb_txn_begin(s->env, NULL, 0, &s->wtxn);
    return rc ? store_mdb_result(s, rc, "beginning a write", err, errlen) : STORE_OK;
}

/* The batch's read snapshot: renewed rather than re-created, which keeps
 * its reader slot and allocation across batches. */
store_result store_snapshot(store *s, char *err, size_t errlen)
{
    int rc;
    if (s->rtxn_live)
        return STORE_OK;
    if (s->env_broken && !s->wtxn && env_reopen(s, err, errlen) != 0)
        return STORE_ERR_IO;
    rc = s->rtxn ? mdb_txn_renew(s->rtxn)
                 : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
    if (rc != 0)
        return store_mdb_result(s, rc, "beginning a read", err, errlen);
    s->rtxn_live = true;
    return STORE_OK;
}

static int meta_write(store *s, MDB_txn *txn, uint64_t max_hlc)
{
    Ringkv__NodeMeta m = RINGKV__NODE_META__INIT;
    MDB_val k = {.mv_size = sizeof META_KEY - 1, .mv_data = META_KEY}, v;
    int rc;

    m.format = META_FORMAT, m.node_id = s->node_id;
    m.max_hlc = max_hlc, m.incarnation = s->incarnation;
    m.ring_member = s->ring_member;
    m.boot_id = s->boot_id, m.open_unsynced = s->open_unsynced;
    v.mv_size = ringkv__node_meta__get_packed_size(&m);
    if ((rc = mdb_put(txn, s->meta, &k, &v, MDB_RESERVE)) == 0)
        ringkv__node_meta__pack(&m, v.mv_data);
    return rc;
}

/* The kernel's id of this boot (a UUID), or "" when it cannot be read. */
static void boot_id_read(const char *given, char *out, size_t outlen)
{
    FILE *f;
    out[0] = '\0';
    if (given) {
        snprintf(out, outlen, "%s", given);
        return;
    }
    if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) != NULL) {
        if (fgets(out, (int)outlen, f))
            out[strcspn(out, "\n")] = '\0';
        else
            out[0] = '\0';
        fclose(f);
    }
}

static int meta_load(store *s, MDB_txn *txn, const char *dir, char *err,
                     size_t errlen)
{
    MDB_val k = {.mv_size = sizeof META_KEY - 1, .mv_data = META_KEY}, v;
    Ringkv__NodeMeta *m;
    int rc = mdb_get(txn, s->meta, &k, &v);

    if (rc == MDB_NOTFOUND)
        return 0; /* a fresh store */
    if (rc != 0) {
        store_mdb_result(s, rc, "reading node metadata", err, errlen);
        return -1;
    }
    m = ringkv__node_meta__unpack(NULL, v.mv_size, v.mv_data);
    rc = -1;
    if (!m || strlen(m->node_id) > STORE_ORIGIN_MAX)
        store_set_err(err, errlen, "%s: node metadata record is corrupt", dir);
    else if (m->format != META_FORMAT)
        store_set_err(err, errlen, "%s: storage format %u is not supported (this "
                "build reads format %d)", dir, m->format, META_FORMAT);
    else {
        strcpy(s->node_id, m->node_id);
        s->max_hlc = s->hlc_ceiling = m->max_hlc, s->incarnation = m->incarnation;
        s->ring_member = m->ring_member;
        /* Open and not closed, with unsynced commits, and the machine
         * booted since: it crashed (or lost power) under the store. */
        s->crash_suspect = m->open_unsynced && m->boot_id[0] && strcmp(m->boot_id, s->boot_id) != 0;
        rc = 0;
    }
    ringkv__node_meta__free_unpacked(m, NULL);
    return rc;
}

/* mkdir -p; the leaf gets 0700, since it holds every value of the node. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    struct stat st;

    if (n == 0 || n >= sizeof path) {
        store_set_err(err, errlen, "storage dir \"%s\": bad path", dir);
        return -1;
    }
    memcpy(path, dir, n + 1);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        goto fail;
    if (stat(path, &st) != 0)
        goto fail;
    if (!S_ISDIR(st.st_mode)) {
        store_set_err(err, errlen, "storage dir %s: not a directory", path);
        return -1;
    }
    return 0;
fail:
    store_set_err(err, errlen, "storage dir %s: %s", path, strerror(errno));
    return -1;
}

/* Creates s->env on s->dir, mapped at the reserved size and grown to have
 * room (store_space.c). 0, or -1 with a message; s->env may be left set. */
static int env_create(store *s, size_t map_max, char *err, size_t errlen)
{
    int rc, dead;
    if ((rc = mdb_env_create(&s->env)) != 0) {
        s->env = NULL;
        goto fail_mdb;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, store_space_initial(s->dir, map_max))) != 0 ||
        (rc = mdb_env_open(s->env, s->dir, s->env_flags, 0600)) != 0)
        goto fail_mdb;
    /* A process killed while reading leaves its reader slot behind, and a
     * stale slot pins old pages forever. */
    mdb_reader_check(s->env, &dead);
    if (store_space_open(s, map_max, err, errlen) != 0)
        return -1;
    store_space_check(s);
    return s->env_broken ? -1 : 0;

fail_mdb:
    store_mdb_result(s, rc, "opening", err, errlen);
    return -1;
}

/* The data keys in memcmp's order (LMDB's default, so the file and any
 * other reader of it are unchanged), but faster: a key starts with its
 * 8-byte big-endian token, and comparing that as one integer settles nearly
 * every comparison of a B-tree search without a call to memcmp (~5% of a
 * node's time under pipelined GETs). */
static int cmp_data_key(const MDB_val *a, const MDB_val *b)
{
    if (a->mv_size >= TOKEN_LEN && b->mv_size >= TOKEN_LEN) {
        uint64_t x, y;
        memcpy(&x, a->mv_data, sizeof x);
        memcpy(&y, b->mv_data, sizeof y);
        if (x != y) {
            x = be64toh(x);
            y = be64toh(y);
            return x < y ? -1 : 1;
        }
    }
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    if (c)
        return c;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

static int dbi_open_all(store *s, MDB_txn *txn)
{
    int rc;
    if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data)) != 0 ||
        (rc = mdb_set_compare(txn, s->data, cmp_data_key)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "hints", MDB_CREATE, &s->hints)) != 0)
        return rc;
    return 0;
}

/* LMDB marks its environment unusable after a failed meta page write
 * (MDB_PANIC from then on) and after a failed remap: close it and open the
 * file again, which reads the last good meta page. Tried at most once a
 * second; until it works, every read and write fails with the reason. */
static int env_reopen(store *s, char *err, size_t errlen)
{
    char why[256] = "";
    MDB_txn *txn = NULL;
    struct timespec ts;
    int rc = -1;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now < s->reopen_ms) {
        store_set_err(err, errlen, "storage error: the LMDB environment of %s failed and "
                "could not be reopened yet", s->dir);
        return -1;
    }
    s->reopen_ms = now + 1000;
    log_warn("store: the LMDB environment of %s failed; reopening it", s->dir);
    store_cache_clear(&s->cache);
    if (s->rtxn) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
        s->rtxn_live = false;
    }
    pthread_mutex_lock(&s->map_mu);
    /* The checkpoint's pages are held by a read of this environment: with
     * it gone they may be reused, so the file goes first (the next
     * checkpoint comes within a second). */
    store_ckpt_forget(s, true);
    mdb_env_close(s->env);
    s->env = NULL;
    s->env_broken = false;
    if (env_create(s, s->map_max, why, sizeof why) == 0) {
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) == 0 &&
            (rc = dbi_open_all(s, txn)) == 0) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
        }
        if (txn)
            mdb_txn_abort(txn);
        if (rc != 0)
            store_mdb_result(s, rc, "reopening", why, sizeof why);
    }
    if (rc != 0 || s->env_broken) {
        mdb_env_close(s->env);
        s->env = NULL;
        s->env_broken = true;
        rc = -1;
    }
    pthread_mutex_unlock(&s->map_mu);
    if (rc != 0) {
        log_error("store: reopening %s failed: %s", s->dir, why);
        store_set_err(err, errlen, "storage error: reopening %s failed: %s", s->dir, why);
        return -1;
    }
    log_info("store: %s reopened", s->dir);
    return 0;
}

store *store_open(const store_options *opts, char *err, size_t errlen)
{
    store *s = calloc(1, sizeof *s);
    MDB_txn *txn = NULL;
    MDB_stat st;
    int rc;

    if (!s) {
        store_set_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->map_mu, NULL);
    store_cache_init(&s->cache, opts ? opts->cache_size : 0);
    s->wal.fd = -1;
    s->ckpt_fd = -1;
    if (!opts || !opts->dir) {
        store_set_err(err, errlen, "storage dir not set");
        goto fail;
    }
    if (make_dirs(opts->dir, err, errlen) != 0)
        goto fail;
    if (!(s->dir = strdup(opts->dir))) {
        store_set_err(err, errlen, "out of memory");
        goto fail;
    }
    s->wal.dir = s->dir;
    s->fsync = opts->fsync;
    s->wb_slots = opts->writeback_slots;
    s->no_ckpt = opts->no_checkpoints;
    s->log_size = opts->log_size ? opts->log_size : STORE_LOG_SIZE_DEFAULT;
    /* MDB_NORDAHEAD: LMDB then madvises its map MADV_RANDOM. A B-tree's
     * pages are read at random, and readahead only filled the page cache
     * with large folios around them: a later pwrite of one 4 KiB page into
     * such a folio walks all of its blocks (ext4_block_write_begin, 3-4% of
     * the nodes under pipelined SETs of 1 KiB on three nodes). Without
     * readahead, three nodes spent 36.2 against 38.4 us of CPU per such SET
     * (medians of 5 pairs) and 45.7 against 50.0 us without pipelining (3
     * pairs). */
    s->env_flags = MDB_NOTLS | MDB_NORDAHEAD;
    /* Under `no` (and everysec without a cache), pages are written straight
     * into the shared map (MDB_WRITEMAP): a commit is memory writes, no
     * pwrite of each dirty page, and the syncer's mdb_env_sync is an msync.
     * A kill -9 loses nothing (the pages are in the page cache);
     * store_space.c keeps LMDB off unallocated file space, where a store
     * would be a SIGBUS. Under write-behind LMDB's commits are off the
     * replies' path, and the pwrite commit is better: the msync of a
     * writable map write-protects every page it cleans, and the CPU that
     * serves requests took an interrupt to flush its TLB for each of them
     * and a fault when the next write-back touched the page again (GET p99
     * after a burst of SETs 0.6 ms with pwrite, 0.9-1.1 ms with WRITEMAP).
     * `always` keeps the pwrite + fdatasync commit (with WRITEMAP each
     * commit would msync the whole map range). */
    if (s->fsync == STORE_FSYNC_EVERYSEC && opts->cache_size)
        s->env_flags |= MDB_NOSYNC;
    else if (s->fsync != STORE_FSYNC_ALWAYS)
        s->env_flags |= MDB_NOSYNC | MDB_WRITEMAP;
    boot_id_read(opts->boot_id, s->boot_id, sizeof s->boot_id);
    if (store_ckpt_restore(s, err, errlen) != 0)
        goto fail;
    {
        char why[200];
        if (env_create(s, opts->map_size, why, sizeof why) != 0) {
            store_set_err(err, errlen, "%s: %s", opts->dir, why);
            goto fail;
        }
    }
    s->maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
    if (!(s->kbuf = malloc(3 * s->maxkey))) {
        store_set_err(err, errlen, "out of memory");
        goto fail;
    }
    s->sweep_key = s->kbuf + s->maxkey;
    s->hkbuf = s->kbuf + 2 * s->maxkey;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 || (rc = dbi_open_all(s, txn)) != 0)
        goto fail_mdb;
    if (meta_load(s, txn, opts->dir, err, errlen) != 0)
        goto fail;
    if (s->crash_suspect && s->ckpt_restored)
        log_info("store: %s was open when the machine went down; LMDB went back to its last "
                 "checkpoint, and the log replays the writes after it", opts->dir);
    else if (s->crash_suspect)
        log_error("store: %s was open with fsync everysec or no when the machine went down "
                  "(it has booted since, and the store was not closed): LMDB's file may be "
                  "inconsistent. If reads report corrupt records or the node misbehaves, stop "
                  "it, move the data dir aside and start it again with the same id; it streams "
                  "its ranges back from its replicas (README: Durability)", opts->dir);
    s->incarnation++;
    s->open_unsynced = s->fsync != STORE_FSYNC_ALWAYS;
    if ((rc = meta_write(s, txn, s->max_hlc)) != 0 ||
        (rc = store_open_scan(s, txn)) != 0 ||
        (rc = mdb_stat(txn, s->data, &st)) != 0)
        goto fail_mdb;
    s->records = st.ms_entries;
    if ((rc = mdb_stat(txn, s->hints, &st)) != 0)
        goto fail_mdb;
    s->hints_pending = st.ms_entries;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    /* Gossip relies on a new incarnation surviving a crash, whatever fsync. */
    if (rc != 0 || (rc = mdb_env_sync(s->env, 1)) != 0)
        goto fail_mdb;
    if (store_wb_open(s, err, errlen) != 0)
        goto fail;
    store_ckpt_begin(s);
    if (s->fsync == STORE_FSYNC_EVERYSEC && store_syncer_start(s, err, errlen) != 0)
        goto fail;
    return s;

fail_mdb:
    {
        char why[200];
        store_mdb_result(s, rc, "opening", why, sizeof why);
        store_set_err(err, errlen, "%s: %s", opts->dir, why);
    }
fail:
    if (txn)
        mdb_txn_abort(txn);
    store_ckpt_forget(s, false);
    free(s->ckpt_page);
    if (s->env)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->map_mu);
    wal_close(&s->wal);
    store_cache_free(&s->cache);
    store_due_free(&s->due);
    free(s->kbuf);
    free(s->dir);
    free(s);
    return NULL;
}

/* The end of close and abandon: the environment and the memory. */
static void free_store(store *s)
{
    free(s->ckpt_page);
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->map_mu);
    store_cache_free(&s->cache);
    store_due_free(&s->due);
    free(s->kbuf);
    free(s->dir);
    free(s);
}

void store_close(store *s)
{
    char err[256];
    int rc;
    if (!s)
        return;
    if (store_commit(s, err, sizeof err) != STORE_OK)
        log_error("store: commit at close failed: %s", err);
    /* Write-behind: every dirty record into LMDB, so the log can go. The
     * batch can be larger than the room reserved so far: the map grows and
     * the write-back is tried again. */
    while (s->wb && s->cache.dirty_n) {
        size_t was = s->map_size;
        if (store_wb_flush_all(s, err, sizeof err) == 0 &&
            store_commit(s, err, sizeof err) == STORE_OK)
            break;
        bool grow = s->hit_end;
        store_space_check(s);
        if (!grow || s->map_size == was) {
            log_error("store: writing the cached writes back at close failed (the log keeps "
                      "them for the next start): %s", err);
            break;
        }
    }
    /* A clean close records the exact largest HLC instead of the ceiling,
     * and that the store is no longer open unsynced. */
    s->open_unsynced = false;
    if (store_batch_begin(s, err, sizeof err) == STORE_OK &&
        meta_write(s, s->wtxn, s->max_hlc) == 0) {
        s->dirty = true;
        s->hlc_ceiling = s->max_hlc;
        if (store_commit(s, err, sizeof err) != STORE_OK)
            log_error("store: writing node metadata at close failed: %s", err);
    }
    store_syncer_stop(s);
    if (s->rtxn)
        mdb_txn_abort(s->rtxn);
    rc = s->env ? mdb_env_sync(s->env, 1) : -1;
    if (s->env && rc != 0)
        log_error("store: fsync at close failed: %s", mdb_strerror(rc));
    /* LMDB is whole on disk: the checkpoint goes before the log does. */
    store_ckpt_forget(s, rc == 0);
    store_wb_close(s, rc == 0);
    free_store(s);
}

void store_abandon(store *s)
{
    if (!s)
        return;
    store_syncer_stop(s);
    if (s->wtxn)
        mdb_txn_abort(s->wtxn);
    if (s->rtxn)
        mdb_txn_abort(s->rtxn);
    store_ckpt_forget(s, false); /* the file stays, as a kill -9 leaves it */
    for (size_t i = 0; i < s->nold_fds; i++)
        close(s->old_fds[i]);
    free(s->old_fds);
    free(s->retired);
    wal_close(&s->wal);
    free_store(s);
}

/* store_put and store_del: last-write-wins against the stored version, then
 * one record written in place through MDB_RESERVE (or, under write-behind,
 * into the cache and the log: store_wb.c). */
static store_result apply(store *s, const void *key, size_t klen,
                          const void *value, size_t vlen, uint64_t expires_ms,
                          const store_version *ver, bool tomb, char *err,
                          size_t errlen)
{
    size_t olen = strnlen(ver->origin, sizeof ver->origin);
    bool longk, had = false;
    rec old = {0};
    store_result res = STORE_ERR_IO;
    MDB_val k, v;
    int rc;

    if (s->wb)
        return store_wb_apply(s, key, klen, value, vlen, expires_ms, ver, tomb, err, errlen);
    if (klen == 0 || klen > UINT32_MAX || olen > STORE_ORIGIN_MAX) {
        store_set_err(err, errlen, klen ? "key or origin too long" : "empty key");
        goto fail;
    }
    if ((res = store_batch_begin(s, err, errlen)) != STORE_OK)
        goto fail;
    /* One search: the cursor finds the stored version, and the write then
     * replaces the record where the cursor stands (MDB_CURRENT). */
    if (!s->wcur && (rc = mdb_cursor_open(s->wtxn, s->data, &s->wcur)) != 0) {
        s->wcur = NULL;
        res = store_mdb_result(s, rc, "reading", err, errlen);
        goto fail;
    }
    k.mv_size = store_data_key(s, key, klen, &longk);
    k.mv_data = s->kbuf;
    if ((expires_ms || tomb) &&
        (res = store_due_write(s, expires_ms, ver, tomb, err, errlen)) != STORE_OK)
        goto fail;
    store_cache_prefetch_slot(&s->cache, s->kbuf, k.mv_size);
    if ((rc = mdb_cursor_get(s->wcur, &k, &v, MDB_SET_KEY)) == 0) {
        if ((res = store_rec_check(s, &v, longk, key, klen, ver, &old, err, errlen)) ==
            STORE_STALE)
            return STORE_STALE;
        if (res != STORE_OK)
            goto fail;
        had = true;
    } else if (rc != MDB_NOTFOUND) {
        res = store_mdb_result(s, rc, "reading", err, errlen);
        goto fail;
    }

    v.mv_size = store_rec_len(olen, longk, klen, vlen);
    k.mv_data = s->kbuf; /* MDB_SET_KEY pointed it into the map */
    store_cache_prefetch_entry(&s->cache, s->kbuf, k.mv_size);
    if ((rc = mdb_cursor_put(s->wcur, &k, &v, MDB_RESERVE | (had ? MDB_CURRENT : 0))) != 0) {
        res = store_mdb_result(s, rc, "writing", err, errlen);
        goto fail;
    }
    store_rec_encode(v.mv_data, tomb, longk, ver, olen, expires_ms, key, klen, value, vlen);
    cache_ver cv = {.hlc = ver->hlc, .origin = ver->origin, .olen = olen};
    store_cache_write(&s->cache, s->kbuf, k.mv_size, v.mv_data, v.mv_size, longk ? NULL : &cv);

    /* What the write replaces goes out of the counts, what it writes in. */
    if (had)
        store_counts_rec(&s->batch_counts, &old, -1);
    store_counts_add(&s->batch_counts, tomb, expires_ms, 1);
    if (ver->hlc > s->batch_max_hlc)
        s->batch_max_hlc = ver->hlc;
    s->dirty = true;
    return STORE_OK;

fail:
    store_batch_discard(s);
    return res;
}

store_result store_put(store *s, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t expires_ms,
                       const store_version *ver, char *err, size_t errlen)
{
    return apply(s, key, klen, value, vlen, expires_ms, ver, false, err, errlen);
}

store_result store_del(store *s, const void *key, size_t klen,
                       const store_version *ver, char *err, size_t errlen)
{
    return apply(s, key, klen, NULL, 0, 0, ver, true, err, errlen);
}

bool store_batch_dirty(const store *s) { return s->dirty || s->wal.len > 0; }

bool store_write_errors_discard(const store *s) { return !s->wb; }

int store_write_back(store *s, char *err, size_t errlen)
{
    return store_wb_flush_all(s, err, errlen);
}

bool store_writeback_pending(const store *s)
{
    return s->wb && (s->cache.dirty_n || s->wal.size > WAL_MAGIC_LEN ||
                     s->wal_first < s->wal.seq);
}

uint64_t store_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t store_mono_ms(void) { return store_mono_us() / 1000; }

static void count(uint64_t *n, int64_t delta)
{
    if (delta < 0 && (uint64_t)-delta > *n)
        *n = 0;
    else
        *n += (uint64_t)delta;
}

void store_count(store *s, const store_counts *d)
{
    count(&s->tombstones, d->tombstones);
    count(&s->expiring, d->expiring);
    if (d->expiry_sum < 0 && (unsigned __int128)-d->expiry_sum > s->expiry_sum)
        s->expiry_sum = 0;
    else
        s->expiry_sum += (unsigned __int128)d->expiry_sum;
    if (!s->expiring)
        s->expiry_sum = 0;
}

store_result store_commit_lmdb(store *s, char *err, size_t errlen)
{
    uint64_t max = store_max_hlc(s);
    store_result res;
    MDB_stat st;
    int rc;

    if (s->rtxn_live) {
        mdb_txn_reset(s->rtxn);
        s->rtxn_live = false;
    }
    if (!s->dirty && !s->flush_dirty) {
        /* A sweep that purged nothing: no commit, and what it learnt holds. */
        store_due_settle(&s->due, true);
        store_batch_discard(s);
        store_space_check(s);
        return STORE_OK;
    }
    /* As Redis does after a failed background fsync: acknowledging more
     * writes would promise a durability the disk is not giving. */
    if ((rc = atomic_load(&s->sync_error)) != 0) {
        store_set_err(err, errlen, "background fsync failed (%s); writes are refused until a "
                "sync succeeds", mdb_strerror(rc));
        store_batch_discard(s);
        store_space_check(s);
        return STORE_ERR_IO;
    }
    MDB_stat hst;
    /* The metadata record holds a ceiling a little above the largest HLC
     * rather than the HLC itself, so it is rewritten about once per
     * HLC_RESERVE of clock instead of in every commit (one page write less
     * per commit); after a crash the clock restarts above the ceiling. */
    uint64_t ceiling = s->hlc_ceiling;
    if (max > ceiling)
        ceiling = max + HLC_RESERVE;
    if ((ceiling != s->hlc_ceiling && (rc = meta_write(s, s->wtxn, ceiling)) != 0) ||
        (rc = mdb_stat(s->wtxn, s->data, &st)) != 0 ||
        (rc = mdb_stat(s->wtxn, s->hints, &hst)) != 0)
        goto fail;
    rc = mdb_txn_commit(s->wtxn);
    s->wtxn = NULL, s->wcur = NULL; /* freed by LMDB, even when the commit failed */
    if (rc != 0)
        goto fail;
    s->max_hlc = max;
    s->hlc_ceiling = ceiling;
    s->records = st.ms_entries;
    s->hints_pending = hst.ms_entries;
    store_count(s, &s->batch_counts);
    s->purged += s->batch_purged;
    s->commits++;
    atomic_store(&s->commits_a, s->commits);
    store_cache_commit(&s->cache);
    store_cache_flush_commit(&s->cache);
    store_due_settle(&s->due, true);
    store_batch_discard(s);
    store_space_check(s);
    return STORE_OK;

fail:
    res = store_mdb_result(s, rc, "committing", err, errlen);
    store_batch_discard(s);
    store_space_check(s);
    return res;
}

store_result store_commit(store *s, char *err, size_t errlen)
{
    store_result res = s->wb ? store_wb_commit(s, err, errlen) : store_commit_lmdb(s, err, errlen);
    /* The snapshot is released: nothing handed out points into the cache. */
    store_cache_settle(&s->cache);
    store_due_merge(&s->due); /* a failure leaves notes waiting for the next */
    return res;
}

store_result store_purge_expired(store *s, const void *key, size_t klen, uint64_t now_ms,
                                 char *err, size_t errlen)
{
    store_result res;
    MDB_val k, v;
    bool longk;
    rec r;
    int rc;

    if (klen == 0)
        return STORE_NOT_FOUND;
    if ((res = store_batch_begin(s, err, errlen)) != STORE_OK)
        return res;
    k.mv_size = store_data_key(s, key, klen, &longk);
    k.mv_data = s->kbuf;
    /* Under write-behind the newest record may be in the cache only. */
    if (s->wb && store_wb_flush_key(s, s->kbuf, k.mv_size, err, errlen) != 0)
        return STORE_ERR_IO;
    if ((rc = mdb_get(s->wtxn, s->data, &k, &v)) == MDB_NOTFOUND)
        return STORE_NOT_FOUND;
    if (rc != 0)
        goto fail;
    /* Only a live record whose time has come: a tombstone waits for its
     * tombstone_ttl, and a record rewritten meanwhile stays. */
    if (store_rec_parse(&v, &r) != NULL || !store_rec_is_key(&r, longk, key, klen) ||
        (r.flags & REC_TOMBSTONE) || r.expires_ms == 0 || r.expires_ms > now_ms)
        return STORE_NOT_FOUND;
    if (s->wb && store_wb_log_purge(s, s->kbuf, k.mv_size, &v, err, errlen) != 0) {
        store_batch_discard(s);
        return STORE_ERR_IO;
    }
    store_cache_forget(&s->cache, s->kbuf, k.mv_size);
    if ((rc = mdb_del(s->wtxn, s->data, &k, NULL)) != 0)
        goto fail;
    s->batch_purged++;
    store_counts_rec(&s->batch_counts, &r, -1);
    s->dirty = true;
    return STORE_OK;

fail:
    res = store_mdb_result(s, rc, "purging", err, errlen);
    store_batch_discard(s);
    return res;
}

const char *store_node_id(const store *s) { return s->node_id; }

/* Writes the metadata record in this batch's txn (LMDB has one writer) and
 * commits it now, together with whatever the batch holds. */
static int meta_commit(store *s, char *err, size_t errlen)
{
    int rc;
    if (store_batch_begin(s, err, errlen) != STORE_OK)
        return -1;
    if ((rc = meta_write(s, s->wtxn, s->hlc_ceiling > store_max_hlc(s) ? s->hlc_ceiling
                                                                    : store_max_hlc(s))) != 0) {
        store_mdb_result(s, rc, "writing node metadata", err, errlen);
        store_batch_discard(s);
        return -1;
    }
    s->dirty = true;
    return store_commit(s, err, errlen) == STORE_OK ? 0 : -1;
}

int store_set_node_id(store *s, const char *id, char *err, size_t errlen)
{
    char old[sizeof s->node_id];
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > STORE_ORIGIN_MAX) {
        store_set_err(err, errlen, "node id must be 1 to %d bytes", STORE_ORIGIN_MAX);
        return -1;
    }
    memcpy(old, s->node_id, sizeof old);
    memcpy(s->node_id, id, n + 1);
    if (meta_commit(s, err, errlen) != 0) {
        memcpy(s->node_id, old, sizeof old);
        return -1;
    }
    return 0;
}

bool store_ring_member(const store *s) { return s->ring_member; }

int store_set_ring_member(store *s, bool member, char *err, size_t errlen)
{
    bool old = s->ring_member;
    if (old == member)
        return 0;
    s->ring_member = member;
    if (meta_commit(s, err, errlen) != 0) {
        s->ring_member = old;
        return -1;
    }
    return 0;
}

uint64_t store_max_hlc(const store *s)
{
    uint64_t m = s->batch_max_hlc > s->max_hlc ? s->batch_max_hlc : s->max_hlc;
    return s->wb_max_hlc > m ? s->wb_max_hlc : m;
}

uint64_t store_incarnation(const store *s) { return s->incarnation; }

bool store_crash_suspect(const store *s) { return s->crash_suspect; }

uint64_t store_used_bytes(const store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

void store_get_stats(const store *s, store_stats *out)
{
    *out = (store_stats){.records = s->records + s->cache.dirty_new, .tombstones = s->tombstones,
                         .expiring = s->expiring,
                         .expiry_avg_ms = s->expiring ? (uint64_t)(s->expiry_sum / s->expiring) : 0,
                         .commits = s->commits, .purged = s->purged,
                         .sweep_tracked = s->due.n,
                         .cache_hits = s->cache.hits, .cache_misses = s->cache.misses,
                         .cache_evictions = s->cache.evictions,
                         .cache_version_hits = s->cache.version_hits,
                         .cache_entries = s->cache.n, .cache_bytes = s->cache.bytes,
                         .dirty = s->cache.dirty_n, .dirty_bytes = s->cache.dirty_bytes,
                         .written_back = s->cache.flushed,
                         .wal_segments = s->wb ? s->wal.seq - s->wal_first + 1 : 0,
                         .log_bytes = s->wb ? atomic_load(&s->log_bytes) : 0,
                         .checkpoints = atomic_load(&s->checkpoints),
                         .checkpoint_txn = atomic_load(&s->ckpt_txnid),
                         .checkpoint_restored = s->ckpt_restored};
}

uint64_t store_token(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}
