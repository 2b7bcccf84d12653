/* store_sync: the `everysec` syncer thread of the store (see store.h). */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store_int.h"

/* The `everysec` syncer: the only code off the event-loop thread. It touches
 * nothing but the env (mdb_env_sync is safe beside a writer) and the stop
 * flag under mu; the condvar lets store_close stop it without waiting. */
static void *syncer_main(void *arg)
{
    store *s = arg;
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
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&s->map_mu); /* not while the map moves */
        rc = s->env ? mdb_env_sync(s->env, 1) : 0;
        pthread_mutex_unlock(&s->map_mu);
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
