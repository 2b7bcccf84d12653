/* store_checkpoint: LMDB checkpoints under `fsync everysec` (see store.h).
 *
 * Under everysec LMDB commits with MDB_NOSYNC: a commit pwrites its new
 * pages and then its meta page (the page that says which tree is current),
 * and the kernel writes them to disk in any order. A power loss or kernel
 * crash can leave a meta page on disk that points at tree pages that never
 * got there. The log has every recent write, but it cannot mend a tree
 * that LMDB can no longer read.
 *
 * A checkpoint is a tree that is whole on disk, and a copy of the meta page
 * that points at it, kept in the file `checkpoint` of the data dir:
 *
 *  1. Once a second the syncer begins a read transaction. Its snapshot, txn
 *     X, holds every commit up to the commit number it read before; the
 *     read keeps LMDB from reusing X's pages (LMDB reuses a freed page only
 *     once no reader is older than the commit that freed it).
 *  2. It copies X's meta page out of the data file (the page cache), before
 *     a later commit writes over that slot.
 *  3. It syncs the log and LMDB (mdb_env_sync): X's pages, written before
 *     X's meta page, are now on disk.
 *  4. It writes the copy into `checkpoint` and fdatasyncs it, ends the
 *     read of the checkpoint before, and only then deletes the log
 *     segments whose records X holds.
 *
 * So at any moment the disk holds a checkpoint whose tree is whole and the
 * log segments of everything written back after it. When the store opens
 * after the machine went down under it (the file names another boot, and a
 * clean close would have removed it), the checkpoint's meta page is written
 * over both of LMDB's meta pages before LMDB opens: LMDB then reads tree X,
 * whose pages nothing has overwritten, and the log replays the rest.
 *
 * The file has two slots, written in turn in place (a rename and a sync of
 * the directory would be a journal commit each time); the newest whole one
 * counts, and the other holds the checkpoint before until the new one is on
 * disk. The format is in store_ckpt_file.h.
 *
 * The meta page's layout is LMDB 0.9's on-disk format (the page header,
 * then the meta with its magic at byte 16, the last page at 136 and the txn
 * id at 144). A page that does not look like that turns checkpoints off
 * with a warning: the store then works as before them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_ckpt_file.h"
#include "store_int.h"

static void ckpt_path(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Removes the file, durably; a syncer holding it open makes it again. */
static void remove_file(store *s)
{
    char path[PATH_MAX];
    ckpt_path(path, sizeof path, s->dir, "checkpoint");
    atomic_fetch_add(&s->ckpt_gen, 1);
    if (unlink(path) == 0 ? store_sync_dir(s->dir) != 0 : errno != ENOENT)
        log_warn("store: removing %s failed: %s", path, strerror(errno));
}

static void ckpt_off(store *s, const char *why)
{
    if (s->ckpt_on)
        log_warn("store: LMDB checkpoints are off for %s (%s); a machine crash may leave the "
                 "data file inconsistent (README: Durability)", s->dir, why);
    s->ckpt_on = false;
}

/* Ends a read transaction of the checkpoints. Under map_mu, or with the
 * syncer stopped. */
static void end_read(MDB_txn **txn)
{
    if (*txn)
        mdb_txn_abort(*txn);
    *txn = NULL;
}

void store_hold_checkpoints(store *s, bool hold) { atomic_store(&s->ckpt_hold, hold); }

bool store_ckpt_take(store *s, uint64_t commit)
{
    if (atomic_load(&s->ckpt_hold))
        return false;
    uint8_t *page = s->ckpt_page;
    bool taken = false;
    pthread_mutex_lock(&s->map_mu);
    end_read(&s->ckpt_cand); /* one left by a failed sync */
    MDB_txn *txn = NULL;
    if (s->ckpt_on && s->env && !s->env_broken &&
        mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
        uint64_t x = mdb_txn_id(txn);
        if (x == atomic_load(&s->ckpt_txnid) && s->ckpt_pin) {
            /* No LMDB commit since the last checkpoint: it holds all the
             * commits up to `commit` (passes that only logged), and an
             * idle node writes no file. */
            mdb_txn_abort(txn);
            s->ckpt_commit = commit;
            pthread_mutex_unlock(&s->map_mu);
            return false;
        }
        /* The slot of X's meta page, read twice alike: a commit may be
         * writing it (then it is X + 2's, or torn, and X waits a second). */
        off_t at = (off_t)((x & 1) * s->psize);
        if (pread(s->fd, page, s->psize, at) == (ssize_t)s->psize && ckpt_meta_txnid(page, s->psize) == x &&
            pread(s->fd, page + s->psize, s->psize, at) == (ssize_t)s->psize &&
            memcmp(page, page + s->psize, s->psize) == 0) {
            s->ckpt_cand = txn, s->ckpt_cand_commit = commit;
            taken = true;
        } else {
            mdb_txn_abort(txn);
        }
    }
    pthread_mutex_unlock(&s->map_mu);
    return taken;
}

/* The file's fd, opened (and made, two empty slots, durably) on first use;
 * -1 with errno. */
static int file_fd(store *s)
{
    unsigned gen = atomic_load(&s->ckpt_gen);
    if (s->ckpt_fd >= 0 && s->ckpt_fd_gen == gen)
        return s->ckpt_fd;
    if (s->ckpt_fd >= 0)
        close(s->ckpt_fd); /* a reopen removed the file it names */
    s->ckpt_fd = -1;
    char path[PATH_MAX];
    ckpt_path(path, sizeof path, s->dir, "checkpoint");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)(2 * CKPT_SLOT(s->psize))) != 0 || fsync(fd) != 0 ||
        store_sync_dir(s->dir) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return -1;
    }
    s->ckpt_slot = 0;
    s->ckpt_fd_gen = gen;
    return s->ckpt_fd = fd;
}

/* Writes the candidate into the slot after the last one written, in place
 * (no new name, so no journal commit: a data write and its flush). The
 * other slot keeps the checkpoint before, still held, until this one is
 * whole on disk. 0, or -1 with errno. */
static int write_file(store *s)
{
    size_t len = CKPT_SLOT(s->psize);
    uint8_t *b = s->ckpt_page + 2 * s->psize; /* room for a slot, after the two reads */
    int fd = file_fd(s);
    if (fd < 0)
        return -1;
    ckpt_encode_slot(b, s->ckpt_page, s->psize, s->ckpt_cand_commit, s->boot_id);
    if (pwrite(fd, b, len, (off_t)(s->ckpt_slot * len)) != (ssize_t)len || fdatasync(fd) != 0)
        return -1;
    s->ckpt_slot ^= 1;
    return 0;
}

void store_ckpt_save(store *s, bool synced)
{
    if (!s->ckpt_cand)
        return;
    if (!synced) {
        pthread_mutex_lock(&s->map_mu);
        end_read(&s->ckpt_cand);
        pthread_mutex_unlock(&s->map_mu);
        return;
    }
    int rc = write_file(s);
    int e = errno;
    pthread_mutex_lock(&s->map_mu);
    if (rc != 0) {
        end_read(&s->ckpt_cand); /* the file still names the one before, still held */
    } else if (!s->ckpt_cand) {
        /* A reopen of the environment ended the read while the file was
         * written: its pages are no longer held, so neither is the file. */
        if (s->ckpt_fd >= 0)
            close(s->ckpt_fd);
        s->ckpt_fd = -1;
        remove_file(s);
    } else {
        end_read(&s->ckpt_pin);
        s->ckpt_pin = s->ckpt_cand, s->ckpt_cand = NULL;
        s->ckpt_commit = s->ckpt_cand_commit;
        atomic_store(&s->ckpt_txnid, ckpt_meta_txnid(s->ckpt_page, s->psize));
        atomic_fetch_add(&s->checkpoints, 1);
    }
    pthread_mutex_unlock(&s->map_mu);
    if (rc != 0) {
        uint64_t now = store_mono_ms();
        if (now - s->ckpt_warn_ms >= 60000) {
            s->ckpt_warn_ms = now;
            log_warn("store: writing the LMDB checkpoint of %s failed: %s; the last one and "
                     "the log segments after it are kept", s->dir, strerror(e));
        }
    }
}

uint64_t store_ckpt_covered(const store *s, uint64_t synced)
{
    if (!s->ckpt_on)
        return synced;
    return s->ckpt_commit < synced ? s->ckpt_commit : synced;
}

void store_ckpt_forget(store *s, bool remove)
{
    end_read(&s->ckpt_cand);
    end_read(&s->ckpt_pin);
    /* The fd is the syncer's while it runs (a reopen of the environment
     * comes from the event loop): it sees ckpt_gen move and makes the file
     * again. */
    if (!s->syncer_on && s->ckpt_fd >= 0) {
        close(s->ckpt_fd);
        s->ckpt_fd = -1;
    }
    if (remove)
        remove_file(s);
}

int store_ckpt_begin(store *s)
{
    s->ckpt_on = s->fsync == STORE_FSYNC_EVERYSEC && s->wb && !s->no_ckpt;
    if (!s->ckpt_on) {
        store_ckpt_forget(s, true); /* a file of a run before names pages nothing holds now */
        return 0;
    }
    if (!(s->ckpt_page = malloc(2 * s->psize + CKPT_SLOT(s->psize)))) {
        ckpt_off(s, "out of memory");
        return 0;
    }
    /* The first checkpoint, of the state just synced at open: the file of
     * the last run (if any) names a tree this run no longer holds. */
    if (!store_ckpt_take(s, atomic_load(&s->commits_a))) {
        ckpt_off(s, "LMDB's meta page is not in the layout this build knows");
        store_ckpt_forget(s, true);
        return 0;
    }
    store_ckpt_save(s, true);
    if (!s->ckpt_pin) {
        ckpt_off(s, "the first checkpoint could not be written");
        store_ckpt_forget(s, true);
    }
    return 0;
}

/* Reads the newest whole slot of dir's checkpoint file into *page (*psize
 * bytes, malloc'd); its txn id, or 0 when there is none. boot: the boot it
 * names. */
static uint64_t read_file(const char *dir, uint8_t **page, size_t *psize, char boot[40])
{
    char path[PATH_MAX];
    size_t cap = 2 * CKPT_SLOT(CKPT_PSIZE_MAX), len = 0;
    ckpt_path(path, sizeof path, dir, "checkpoint");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint8_t *buf = malloc(cap);
    ssize_t n = 0;
    while (buf && len < cap && (n = pread(fd, buf + len, cap - len, (off_t)len)) > 0)
        len += (size_t)n;
    close(fd);
    const uint8_t *at;
    uint64_t x = buf ? ckpt_parse(buf, len, &at, psize, boot) : 0;
    if (x && (*page = malloc(*psize)) != NULL)
        memcpy(*page, at, *psize);
    else
        x = 0;
    free(buf);
    return x;
}

int store_ckpt_restore(store *s, char *err, size_t errlen)
{
    char path[PATH_MAX], boot[40];
    uint8_t *page = NULL, cur[2][CKPT_META_TXNID_AT + 8];
    boot[0] = '\0';
    size_t psize = 0;
    uint64_t x = read_file(s->dir, &page, &psize, boot);
    if (!x || !boot[0] || !s->boot_id[0] || strcmp(boot, s->boot_id) == 0) {
        free(page); /* none, or this boot's: the kernel has every page */
        return 0;
    }
    ckpt_path(path, sizeof path, s->dir, "data.mdb");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) != 0 ||
        pread(fd, cur[0], sizeof cur[0], 0) != (ssize_t)sizeof cur[0] ||
        pread(fd, cur[1], sizeof cur[1], (off_t)psize) != (ssize_t)sizeof cur[1]) {
        store_set_err(err, errlen, "reading %s to restore its checkpoint: %s", path,
                      fd < 0 ? strerror(errno) : "too short");
        rc = -1;
        goto out;
    }
    uint64_t t0 = ckpt_meta_txnid(cur[0], sizeof cur[0]), t1 = ckpt_meta_txnid(cur[1], sizeof cur[1]);
    uint64_t newest = t0 > t1 ? t0 : t1;
    uint64_t last_pg = ckpt_get_le(page + CKPT_META_LAST_PG_AT, 8);
    if (newest <= x) {
        goto out; /* LMDB is at the checkpoint: nothing after it reached the disk */
    }
    if ((uint64_t)st.st_size < (last_pg + 1) * psize) {
        log_error("store: %s: the LMDB checkpoint (txn %llu) needs %llu pages, the data file has "
                  "%llu; not restored", s->dir, (unsigned long long)x,
                  (unsigned long long)(last_pg + 1), (unsigned long long)(st.st_size / psize));
        goto out;
    }
    /* The checkpoint's meta page in both slots (each with its own page
     * number), then synced: LMDB opens at X. */
    for (uint64_t slot = 0; slot < 2 && rc == 0; slot++) {
        ckpt_put_le(page, slot, 8);
        if (pwrite(fd, page, psize, (off_t)(slot * psize)) != (ssize_t)psize)
            rc = -1;
    }
    if (rc != 0 || fdatasync(fd) != 0) {
        store_set_err(err, errlen, "restoring the LMDB checkpoint in %s: %s", path,
                      strerror(errno));
        rc = -1;
        goto out;
    }
    s->ckpt_restored = x;
    log_warn("store: %s: the machine went down while the store was open; LMDB is back at its "
             "last checkpoint (txn %llu, where the data file had reached txn %llu), and the log "
             "replays the writes since", s->dir, (unsigned long long)x,
             (unsigned long long)newest);
out:
    if (fd >= 0)
        close(fd);
    free(page);
    return rc;
}
