/* Unit tests for the store's `everysec` syncer thread (store_sync.c) beside
 * the event loop: the loop must never wait out one of its fsyncs.
 *
 * This binary defines fdatasync, so the store's calls and LMDB's (it is
 * linked against liblmdb, which calls it too) come here. A gate holds the
 * syncer inside the fdatasync of data.mdb until the test lets it go, as a
 * slow disk does; the real sync is the system call.
 */
#include "store_fx.h" /* first: it defines _GNU_SOURCE */

#include <limits.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>

#define GATE_MAX_MS 10000 /* a gate left shut opens by itself after this */

static atomic_bool gate_armed, gate_entered, gate_open, gate_timed_out;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool is_data_file(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    size_t len = (size_t)n, tail = strlen("/data.mdb");
    return len >= tail && strcmp(path + len - tail, "/data.mdb") == 0;
}

int fdatasync(int fd)
{
    if (atomic_load(&gate_armed) && is_data_file(fd)) {
        atomic_store(&gate_entered, true);
        int waited = 0;
        while (!atomic_load(&gate_open) && waited < GATE_MAX_MS) {
            sleep_ms(1);
            waited++;
        }
        if (!atomic_load(&gate_open))
            atomic_store(&gate_timed_out, true);
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* The map grows while the syncer is inside LMDB's fdatasync: growing takes
 * the lock that keeps the map still for the syncer, and held across the
 * sync, it made the event loop wait out the disk (80-300 ms under
 * pipelined SETs of 1 KiB on three nodes), every client and gossip probe
 * with it. */
static void test_map_grows_during_lmdb_sync(void **state)
{
    fx *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    store_options o = {
        .dir = f->dir, .map_size = 64 * MB, .fsync = STORE_FSYNC_EVERYSEC, .cache_size = 4 * MB};
    f->s = store_open(&o, f->err, sizeof f->err);
    if (!f->s)
        fail_msg("store_open: %s", f->err);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    off_t opened = st.st_size; /* the map's size: the file is reserved up to it */

    atomic_store(&gate_armed, true);
    for (int i = 0; i < 5000 && !atomic_load(&gate_entered); i++)
        sleep_ms(1); /* the syncer runs once a second */
    if (!atomic_load(&gate_entered))
        fail_msg("the syncer did not fdatasync data.mdb within 5 s");

    /* 12 MB of records, more than the 9 MiB reserved at open: the write-back
     * into LMDB grows the map ("storage busy" until a commit has grown it). */
    char v[1000];
    store_version vv = ver(1, "n1");
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 12000; i++) {
        char k[32];
        size_t kl = (size_t)snprintf(k, sizeof k, "k%d", i);
        EXPECT(f, store_put(f->s, k, kl, v, sizeof v, 0, &vv, f->err, sizeof f->err), STORE_OK);
        if (i % 500 == 499)
            commit(f);
    }
    commit(f);
    int tries = 0;
    while (store_write_back(f->s, f->err, sizeof f->err) != 0) {
        if (++tries == 10)
            fail_msg("store_write_back: %s", f->err);
        commit(f);
    }
    bool held = !atomic_load(&gate_timed_out) && !atomic_load(&gate_open);
    atomic_store(&gate_open, true);
    atomic_store(&gate_armed, false);
    if (!held)
        fail_msg("the map grew only after the syncer's fdatasync of data.mdb ended (held %d s)",
                 GATE_MAX_MS / 1000);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > opened);

    /* The records are whole once the syncer has gone on. */
    store_close(f->s);
    f->s = store_open(&o, f->err, sizeof f->err);
    if (!f->s)
        fail_msg("store_open: %s", f->err);
    for (int i = 0; i < 12000; i += 1111) {
        char k[32];
        size_t kl = (size_t)snprintf(k, sizeof k, "k%d", i);
        check_value(f, k, kl, v, sizeof v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_grows_during_lmdb_sync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
