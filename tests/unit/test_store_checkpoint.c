/* Unit tests for LMDB checkpoints (store_checkpoint.c): after a machine
 * crash that left LMDB's newest meta page on disk without the pages it
 * points at, the store goes back to its last checkpoint and the log replays
 * the rest, losing nothing committed; a clean close leaves no checkpoint.
 *
 * The crash is made by hand: the store is abandoned (as a kill -9 leaves
 * it), and every page LMDB allocated after the checkpoint is zeroed, as if
 * the kernel had written the meta page and not them. The open that follows
 * names another boot, as the first after a reboot does.
 */
#include "store_fx.h" /* first: it defines _GNU_SOURCE */

#include <fcntl.h>

static store *open_boot(fx *f, const char *boot)
{
    store_options o = {.dir = f->dir, .map_size = 256 * MB, .fsync = STORE_FSYNC_EVERYSEC,
                       .cache_size = 64 * MB, .boot_id = boot,
                       /* every commit writes every dirty record back */
                       .writeback_slots = (size_t)1 << 22};
    store *s = store_open(&o, f->err, sizeof f->err);
    if (!s)
        fail_msg("store_open: %s", f->err);
    return s;
}

static void path_in(const fx *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->dir, name);
}

/* Whether the data dir holds a checkpoint file. */
static bool has_checkpoint(const fx *f)
{
    char path[128];
    struct stat st;
    path_in(f, "checkpoint", path, sizeof path);
    return stat(path, &st) == 0;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The checkpoint file's newest slot: its txn id and the last page its tree
 * uses (slots: 72-byte header, the meta page, 8 bytes of hash). */
static void read_checkpoint(const fx *f, uint64_t *txn, uint64_t *last_pg, size_t *psize)
{
    char path[128];
    static uint8_t b[2 * (72 + 4096 + 8)];
    path_in(f, "checkpoint", path, sizeof path);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    *psize = (size_t)le(b + 8, 4);
    assert_int_equal(*psize, 4096);
    assert_int_equal((size_t)n, sizeof b);
    *txn = 0;
    for (int slot = 0; slot < 2; slot++) {
        const uint8_t *p = b + slot * (72 + 4096 + 8);
        if (memcmp(p, "RKVCKPT1", 8) != 0 || le(p + 16, 8) <= *txn)
            continue;
        *txn = le(p + 16, 8);
        *last_pg = le(p + 72 + 136, 8);
        assert_int_equal(le(p + 72 + 144, 8), *txn);
    }
    assert_true(*txn > 0);
}

/* LMDB's newest meta page in data.mdb: its txn id and last page. */
static void newest_meta(const fx *f, size_t psize, uint64_t *txn, uint64_t *last_pg)
{
    char path[128];
    uint8_t m[152];
    path_in(f, "data.mdb", path, sizeof path);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    *txn = 0;
    for (int slot = 0; slot < 2; slot++) {
        assert_int_equal(pread(fd, m, sizeof m, (off_t)slot * (off_t)psize), (ssize_t)sizeof m);
        assert_int_equal(le(m + 16, 4), 0xBEEFC0DE);
        if (le(m + 144, 8) > *txn)
            *txn = le(m + 144, 8), *last_pg = le(m + 136, 8);
    }
    close(fd);
}

static void value_for(const char *tag, unsigned i, char *val, size_t len)
{
    memset(val, 'a' + (char)(i % 26), len);
    snprintf(val, len, "%s-%u-", tag, i);
}

static void write_keys(fx *f, const char *tag, unsigned from, unsigned to, size_t vlen,
                       uint64_t hlc)
{
    char key[32], val[1200];
    for (unsigned i = from; i < to; i++) {
        snprintf(key, sizeof key, "key%u", i);
        value_for(tag, i, val, vlen);
        put(f, key, strlen(key), val, vlen, hlc + i);
        if (i % 100 == 99)
            commit(f);
    }
    commit(f);
}

static void check_keys(fx *f, const char *tag, unsigned from, unsigned to, size_t vlen)
{
    char key[32], val[1200];
    for (unsigned i = from; i < to; i++) {
        snprintf(key, sizeof key, "key%u", i);
        value_for(tag, i, val, vlen);
        check_value(f, key, strlen(key), val, vlen);
    }
}

/* Waits until n more checkpoints than `since` were written (at most 10 s). */
static void wait_checkpoints(fx *f, uint64_t since, uint64_t n)
{
    for (int i = 0; i < 1000 && stats(f).checkpoints < since + n; i++)
        usleep(10000);
    assert_true(stats(f).checkpoints >= since + n);
}

static void test_restore_after_machine_crash(void **state)
{
    fx *f = *state;
    char path[128];
    f->s = open_boot(f, "boot-1");
    assert_true(stats(f).checkpoints >= 1); /* the open's own */

    /* A: in LMDB, and in a checkpoint: one begun after A's last commit
     * (the next one after `since` may have begun before it; then another
     * follows within a round, while an idle store writes none). */
    write_keys(f, "A", 0, 2000, 200, at_ms(1000));
    assert_int_equal(stats(f).dirty, 0);
    wait_checkpoints(f, stats(f).checkpoints, 1);
    usleep(500 * 1000);
    uint64_t idle = stats(f).checkpoints;
    usleep(500 * 1000);
    assert_int_equal(stats(f).checkpoints, idle); /* nothing new: none written */

    /* No checkpoint after this one (as when writing them fails). B and new
     * values for half of A go into LMDB after it, and the log segments that
     * hold them must stay. */
    store_hold_checkpoints(f->s, true);
    uint64_t frozen = stats(f).checkpoint_txn;
    write_keys(f, "B", 2000, 2600, 1000, at_ms(2000));
    write_keys(f, "A2", 0, 1000, 300, at_ms(3000));
    assert_int_equal(stats(f).dirty, 0);
    usleep(1500 * 1000); /* syncer rounds, LMDB synced, no checkpoint */
    assert_int_equal(stats(f).checkpoint_txn, frozen);
    store_abandon(f->s);
    f->s = NULL;

    /* The crash: LMDB's newest meta page reached the disk, the pages
     * allocated after the checkpoint did not. */
    uint64_t ck_txn, ck_last = 0, cur_txn, cur_last = 0;
    size_t psize;
    read_checkpoint(f, &ck_txn, &ck_last, &psize);
    assert_int_equal(ck_txn, frozen);
    newest_meta(f, psize, &cur_txn, &cur_last);
    assert_true(cur_txn > ck_txn);
    assert_true(cur_last > ck_last + 100); /* B alone needs ~150 new pages */
    path_in(f, "data.mdb", path, sizeof path);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t *zero = calloc(1, psize);
    for (uint64_t pg = ck_last + 1; pg <= cur_last; pg++)
        assert_int_equal(pwrite(fd, zero, psize, (off_t)(pg * psize)), (ssize_t)psize);
    free(zero);
    assert_int_equal(fsync(fd), 0);
    close(fd);

    /* The first open after the reboot: back to the checkpoint, then the
     * log; every committed write is there, in its newest version. */
    f->s = open_boot(f, "boot-2");
    assert_int_equal(stats(f).checkpoint_restored, ck_txn);
    assert_true(store_crash_suspect(f->s));
    check_keys(f, "A2", 0, 1000, 300);
    check_keys(f, "A", 1000, 2000, 200);
    check_keys(f, "B", 2000, 2600, 1000);
    assert_int_equal(stats(f).records, 2600);

    /* Closed cleanly and opened on the same boot: as it was, no restore. */
    store_close(f->s);
    f->s = open_boot(f, "boot-2");
    assert_int_equal(stats(f).checkpoint_restored, 0);
    assert_false(store_crash_suspect(f->s));
    check_keys(f, "A2", 0, 1000, 300);
    check_keys(f, "B", 2000, 2600, 1000);
}

/* A clean close removes the checkpoint: the next open, even on another
 * boot, has nothing to go back to and keeps LMDB's newest state. */
static void test_clean_close_removes_it(void **state)
{
    fx *f = *state;
    f->s = open_boot(f, "boot-1");
    assert_true(has_checkpoint(f));
    write_keys(f, "C", 0, 500, 100, at_ms(1000));
    store_close(f->s);
    f->s = NULL;
    assert_false(has_checkpoint(f));
    f->s = open_boot(f, "boot-2");
    assert_int_equal(stats(f).checkpoint_restored, 0);
    assert_false(store_crash_suspect(f->s));
    check_keys(f, "C", 0, 500, 100);
}

/* Only fsync everysec runs checkpoints: `always` syncs every commit, and
 * `no` promises nothing on a machine crash. A run under either removes the
 * file an everysec run left (it names pages no one holds any more). */
static void test_only_everysec(void **state)
{
    fx *f = *state;
    f->s = open_boot(f, "boot-1");
    store_abandon(f->s);
    f->s = NULL;
    assert_true(has_checkpoint(f));
    reopen_fsync(f, 64 * MB, STORE_FSYNC_ALWAYS);
    assert_false(has_checkpoint(f));
    put(f, "k", 1, "v", 1, at_ms(1));
    commit(f);
    assert_int_equal(stats(f).checkpoints, 0);
    assert_false(has_checkpoint(f));
    reopen_fsync(f, 64 * MB, STORE_FSYNC_NO);
    assert_int_equal(stats(f).checkpoints, 0);
    assert_false(has_checkpoint(f));

    /* everysec with checkpoints turned off ([storage] checkpoints = no). */
    store_close(f->s);
    f->s = open_boot(f, "boot-1");
    store_abandon(f->s);
    assert_true(has_checkpoint(f));
    store_options o = {.dir = f->dir, .map_size = 256 * MB, .fsync = STORE_FSYNC_EVERYSEC,
                       .cache_size = 64 * MB, .boot_id = "boot-1", .no_checkpoints = true};
    f->s = store_open(&o, f->err, sizeof f->err);
    assert_non_null(f->s);
    assert_false(has_checkpoint(f));
    put(f, "k", 1, "v", 1, at_ms(2));
    commit(f);
    usleep(1200 * 1000);
    assert_int_equal(stats(f).checkpoints, 0);
    assert_false(has_checkpoint(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_after_machine_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_close_removes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_everysec, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
