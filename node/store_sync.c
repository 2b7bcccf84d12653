/* store_sync: the `everysec` syncer thread of the store (see store.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_int.h"

int store_sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

/* Deletes the retired log segments whose last record LMDB committed by
 * commit number `synced`, which an LMDB sync and checkpoint have made
 * durable. */
static void delete_retired(store *s, uint64_t synced)
{
    char path[PATH_MAX + 32];
    uint64_t gone[64];
    size_t n = 0;

    pthread_mutex_lock(&s->mu);
    size_t keep = 0;
    for (size_t i = 0; i < s->nretired; i++) {
        if (s->retired[i].commit <= synced && n < sizeof gone / sizeof gone[0])
            gone[n++] = s->retired[i].seq;
        else
            s->retired[keep++] = s->retired[i];
    }
    s->nretired = keep;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        wal_path(path, sizeof path, s->dir, gone[i]);
        bool sized = stat(path, &st) == 0;
        if (unlink(path) != 0 && errno != ENOENT)
            log_warn("store: deleting the log segment %s: %s", path, strerror(errno));
        else if (sized)
            atomic_fetch_sub(&s->log_bytes, (uint64_t)st.st_size);
    }
}

/* LMDB's sync. With a writable map it is an msync of the map, which must
 * not move meanwhile: under map_mu. Without one, mdb_env_sync is an
 * fdatasync of the data file, and that runs on a dup of its descriptor,
 * outside map_mu: the event loop takes map_mu to grow the map, and waited
 * out the whole fdatasync (80-300 ms under SET -P16 of 1 KiB on three
 * nodes), every client and the gossip probes with it. */
static int sync_lmdb(store *s)
{
    int rc = 0, fd = -1;
    pthread_mutex_lock(&s->map_mu);
    if (!s->env) {
        /* closed by a failed reopen: nothing to sync */
    } else if (s->env_flags & MDB_WRITEMAP) {
        rc = mdb_env_sync(s->env, 1);
    } else {
        mdb_filehandle_t h;
        if ((rc = mdb_env_get_fd(s->env, &h)) == 0 && (fd = fcntl(h, F_DUPFD_CLOEXEC, 0)) < 0)
            rc = errno;
    }
    pthread_mutex_unlock(&s->map_mu);
    if (fd >= 0) {
        if (fdatasync(fd) != 0)
            rc = errno;
        close(fd);
    }
    return rc;
}

/* The `everysec` syncer: the only code off the event-loop thread. It touches
 * nothing but the env (mdb_env_sync is safe beside a writer), the log's
 * segment files, and what store_int.h marks as shared under mu; the
 * condvar lets store_close stop it without waiting. */
static void *syncer_main(void *arg)
{
    store *s = arg;
    uint64_t dir_synced = 0; /* the segment whose directory entry was synced */
    struct timespec deadline;
    int rc;

    pthread_mutex_lock(&s->mu);
    while (!s->syncer_stop) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 1;
        rc = 0;
        while (!s->syncer_stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
        if (s->syncer_stop)
            break;
        /* Write-behind: the log first (it is what the acknowledged writes
         * rely on), then LMDB, after which segments whose records it holds
         * can go. Only this thread closes rotated-out segments. */
        int *fds = s->old_fds, cur = s->wb ? s->wal.fd : -1;
        uint64_t seq = s->wal.seq;
        size_t nfds = s->nold_fds;
        uint64_t synced = atomic_load(&s->commits_a);
        bool ckpt = s->wb && s->ckpt_on;
        s->old_fds = NULL;
        s->nold_fds = s->old_fds_cap = 0;
        pthread_mutex_unlock(&s->mu);
        rc = 0;
        for (size_t i = 0; i < nfds; i++) {
            if (fdatasync(fds[i]) != 0 && rc == 0)
                rc = errno;
            close(fds[i]);
        }
        free(fds);
        if (cur >= 0 && fdatasync(cur) != 0 && rc == 0)
            rc = errno;
        /* A new segment's name must survive a power loss as its bytes do. */
        if (cur >= 0 && seq != dir_synced && rc == 0) {
            if (store_sync_dir(s->dir) != 0)
                rc = errno;
            else
                dir_synced = seq;
        }
        /* The snapshot of the next LMDB checkpoint, just before the sync
         * that makes it whole on disk (store_checkpoint.c): the read that
         * holds its pages starts no sooner than it must. Once a second, as
         * the syncs: at 200 ms the data file grew less under a heavy
         * write-back (+25% against +50%), but SET p99 rose by a tenth,
         * from the extra journal commits. */
        ckpt = ckpt && rc == 0 && store_ckpt_take(s, synced);
        if (rc == 0)
            rc = sync_lmdb(s);
        if (ckpt)
            store_ckpt_save(s, rc == 0);
        if (rc == 0 && s->wb)
            delete_retired(s, store_ckpt_covered(s, synced));
        if (rc != 0 && atomic_load(&s->sync_error) == 0)
            log_error("store: background fsync failed: %s; refusing writes until a "
                      "sync succeeds", mdb_strerror(rc));
        else if (rc == 0 && atomic_load(&s->sync_error) != 0)
            log_info("store: background fsync works again; accepting writes");
        atomic_store(&s->sync_error, rc);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int store_syncer_start(store *s, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = pthread_create(&s->syncer, NULL, syncer_main, s)) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        store_set_err(err, errlen, "cannot start the fsync thread: %s", strerror(rc));
        return -1;
    }
    s->syncer_on = true;
    return 0;
}

void store_syncer_stop(store *s)
{
    if (!s->syncer_on)
        return;
    pthread_mutex_lock(&s->mu);
    s->syncer_stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->syncer, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    s->syncer_on = false;
}
