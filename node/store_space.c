/* store_space: the data file's disk space, reserved ahead of LMDB.
 *
 * LMDB's map stays exactly as large as the part of data.mdb that has been
 * allocated with posix_fallocate, and grows in steps: the next step is
 * reserved first, and the map follows only once the reservation succeeded.
 * So LMDB never writes into a file hole. That matters with MDB_WRITEMAP,
 * where a store into an unallocated page of a full disk is a SIGBUS instead
 * of an error; without it, it turns a failed pwrite in the middle of a
 * commit into a clean MDB_MAP_FULL before anything is written. A write that
 * meets the end of the map while no space can be reserved is refused with
 * "disk full"; reads go on; the next reservation, tried at most once a
 * second, ends the episode when space is back. [storage] map_size is the
 * most the map grows to, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "store_int.h"

#define MiB ((size_t)1 << 20)
#define SPACE_STEP_MIN (256 * 1024)    /* the smallest step tried when space is short */
#define SPACE_STEP_MAX ((size_t)1 << 30)
#define SPACE_LOW_MIN (8 * MiB)        /* grow when less than this is left, */
#define SPACE_LOW_SHIFT 3              /* or less than 1/8 of the map */
#define SPACE_RETRY_MS 1000            /* after a failed reservation */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t store_space_initial(const char *dir, size_t map_max)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) == 0 && st.st_size > 0)
        return (size_t)st.st_size; /* LMDB raises it to the pages in use if need be */
    if (map_max == 0 || map_max > MiB)
        return MiB;
    return map_max;
}

int store_space_open(store *s, size_t map_max, char *err, size_t errlen)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc;

    if ((rc = mdb_env_get_fd(s->env, &s->fd)) != 0 || (rc = mdb_env_stat(s->env, &st)) != 0) {
        store_set_err(err, errlen, "%s", mdb_strerror(rc));
        return -1;
    }
    mdb_env_info(s->env, &info);
    s->psize = st.ms_psize;
    s->map_size = info.me_mapsize;
    s->map_max = map_max > s->map_size ? map_max : s->map_size;
    /* Fills any hole in what LMDB maps now (a new file is sparse). */
    if ((rc = posix_fallocate(s->fd, 0, (off_t)s->map_size)) != 0) {
        store_set_err(err, errlen, "%s while reserving %zu bytes for the store: %s",
                      rc == ENOSPC || rc == EDQUOT ? "disk full" : "storage error", s->map_size,
                      strerror(rc));
        return -1;
    }
    return 0;
}

bool store_space_full(const store *s) { return s->disk_full; }

/* Reserves [map_size, target) and moves the map there. Returns 0, or the
 * fallocate error. */
static int grow_to(store *s, size_t target)
{
    int rc = posix_fallocate(s->fd, (off_t)s->map_size, (off_t)(target - s->map_size));
    if (rc != 0)
        return rc;
    /* No transaction may be live in this process, and the syncer thread
     * must not be inside mdb_env_sync (it msyncs the old map). */
    if (s->rtxn_live) {
        mdb_txn_reset(s->rtxn);
        s->rtxn_live = false;
    }
    pthread_mutex_lock(&s->map_mu);
    rc = mdb_env_set_mapsize(s->env, target);
    pthread_mutex_unlock(&s->map_mu);
    if (rc != 0) {
        /* LMDB has unmapped the old map: this env is unusable. */
        log_error("store: cannot map %zu bytes: %s", target, mdb_strerror(rc));
        s->env_broken = true;
        return rc;
    }
    s->map_size = target;
    return 0;
}

void store_space_check(store *s)
{
    MDB_envinfo info;
    if (s->wtxn || s->env_broken)
        goto done;
    if (s->map_size >= s->map_max) {
        uint64_t now = mono_ms();
        if (s->hit_end && (s->map_full_log_ms == 0 || now >= s->map_full_log_ms + 60000)) {
            log_error("store: storage full: map_size of %zu bytes reached in %s; writes that "
                      "need more space are refused (raise [storage] map_size)", s->map_max,
                      s->dir);
            s->map_full_log_ms = now;
        }
        goto done;
    }
    mdb_env_info(s->env, &info);
    size_t used = (info.me_last_pgno + 1) * s->psize;
    size_t room = s->map_size > used ? s->map_size - used : 0;
    size_t low = s->map_size >> SPACE_LOW_SHIFT;
    if (low < SPACE_LOW_MIN)
        low = SPACE_LOW_MIN;
    if (room >= low && !s->hit_end) {
        if (s->disk_full && !s->wal_full) { /* the log was full, and is written again */
            log_info("store: disk space is back in %s; writes are accepted again", s->dir);
            s->disk_full = false;
        }
        goto done;
    }
    uint64_t now = mono_ms();
    if (s->disk_full && now < s->retry_ms)
        goto done;

    size_t step = s->map_size / 4;
    if (step < low)
        step = low;
    if (step > SPACE_STEP_MAX)
        step = SPACE_STEP_MAX;
    int rc = ENOSPC;
    for (; step >= SPACE_STEP_MIN; step /= 2) {
        size_t target = s->map_size + step;
        if (target > s->map_max || target < s->map_size)
            target = s->map_max;
        target -= target % s->psize;
        if (target <= s->map_size)
            break;
        if ((rc = grow_to(s, target)) == 0 || s->env_broken)
            break;
        if (rc != ENOSPC && rc != EDQUOT)
            break;
    }
    if (rc == 0) {
        if (s->disk_full)
            log_info("store: disk space is back: %zu MiB reserved for %s; writes are accepted "
                     "again", s->map_size / MiB, s->dir);
        s->disk_full = false;
    } else if (!s->env_broken) {
        if (!s->disk_full)
            log_error("store: disk full: cannot reserve more space for %s (%zu MiB reserved, "
                      "%zu MiB in use): %s; writes that need more space are refused, reads go "
                      "on, retrying every second",
                      s->dir, s->map_size / MiB, used / MiB, strerror(rc));
        s->disk_full = true;
        s->retry_ms = now + SPACE_RETRY_MS;
    }
done:
    s->hit_end = false;
}
