/* Unit tests for write-behind (store_wb.c, store_wal.c): the log's record
 * format, a kill -9 in the middle of a write load losing nothing that was
 * committed, a torn log tail, a clean close leaving no log behind (also
 * when writing back needs the map to grow), the log kept near log_size,
 * keys written over and over left to the next pass, an idle store writing
 * back soon, the walk's pace between writes, and
 * its steps gathering slots into fewer LMDB commits. The op-for-op
 * comparison with crashes is in test_store_cache.c.
 */
#include "store_fx.h" /* first: it defines _GNU_SOURCE */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "store_wal.h"

/* A write-behind store with 64 MiB of cache; log_size 0 is the default. */
static store *open_wb_log(fx *f, size_t log_size)
{
    store_options o = {.dir = f->dir, .map_size = 256 * MB, .fsync = STORE_FSYNC_EVERYSEC,
                       .cache_size = 64 * MB, .log_size = log_size};
    store *s = store_open(&o, f->err, sizeof f->err);
    if (!s)
        fail_msg("store_open: %s", f->err);
    return s;
}

static store *open_wb(fx *f) { return open_wb_log(f, 0); }

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "wal-", 4) == 0;
    closedir(d);
    return n;
}

/* The value written under key i: its length and bytes depend on i. */
static size_t value_of(unsigned i, char *buf)
{
    size_t n = 1 + (i * 7919u) % 300;
    for (size_t j = 0; j < n; j++)
        buf[j] = (char)('a' + (i + j) % 26);
    return n;
}

static void test_record_format(void **state)
{
    (void)state;
    store_wal w = {.fd = -1};
    uint8_t key[20] = "0123456789abcdefghi", rec[100];
    wal_rec r;
    for (size_t i = 0; i < sizeof rec; i++)
        rec[i] = (uint8_t)i;
    assert_int_equal(wal_add(&w, key, sizeof key, rec, sizeof rec), 0);
    assert_int_equal(wal_add(&w, key, 9, rec, 0), 0);
    size_t first = WAL_REC_HDR + sizeof key + sizeof rec;
    assert_int_equal(w.len, first + WAL_REC_HDR + 9);

    assert_int_equal(wal_parse(w.buf, w.len, &r), (long)first);
    assert_int_equal(r.klen, sizeof key);
    assert_memory_equal(r.key, key, sizeof key);
    assert_int_equal(r.rlen, sizeof rec);
    assert_memory_equal(r.rec, rec, sizeof rec);
    assert_int_equal(wal_parse(w.buf + first, w.len - first, &r), WAL_REC_HDR + 9);
    assert_int_equal(r.rlen, 0);

    /* Cut anywhere inside: more is needed, never a record. */
    for (size_t n = 0; n < first; n++)
        assert_int_equal(wal_parse(w.buf, n, &r), 0);
    /* A flipped bit anywhere after the length fails the checksum. */
    for (size_t at = 4; at < first; at++) {
        w.buf[at] ^= 0x10;
        assert_int_equal(wal_parse(w.buf, w.len, &r), -1);
        w.buf[at] ^= 0x10;
    }
    /* Lengths that cannot be: no key, or a key longer than LMDB's. */
    store_wal z = {.fd = -1};
    assert_int_equal(wal_add(&z, key, 0, rec, 1), -1);
    uint8_t big[WAL_KEY_MAX + 1] = {0};
    assert_int_equal(wal_add(&z, big, sizeof big, rec, 1), -1);
    free(w.buf);
    free(z.buf);
}

/* A child writes and commits in a loop, reporting every commit through a
 * pipe, and is killed at a random point; everything it reported must be
 * there when the store opens again. */
static void test_kill_loses_nothing_committed(void **state)
{
    fx *f = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        store *s = open_wb(f);
        char key[32], val[300], err[256];
        for (unsigned i = 0;; i++) {
            store_version v = ver(at_ms(1000) + i, "n1");
            snprintf(key, sizeof key, "key%u", i % 20000);
            size_t n = value_of(i, val);
            if (store_put(s, key, strlen(key), val, n, 0, &v, err, sizeof err) != STORE_OK)
                _exit(2);
            if (i % 16 == 15) {
                if (store_commit(s, err, sizeof err) != STORE_OK)
                    _exit(3);
                unsigned done = i + 1;
                if (write(fds[1], &done, sizeof done) != sizeof done)
                    _exit(4);
            }
        }
    }
    close(fds[1]);
    unsigned done = 0, got;
    srand((unsigned)getpid());
    unsigned target = 30000 + (unsigned)rand() % 30000;
    while (done < target && read(fds[0], &got, sizeof got) == sizeof got)
        done = got;
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st)); /* it was still writing */
    while (read(fds[0], &got, sizeof got) == sizeof got)
        done = got;
    close(fds[0]);
    assert_true(done >= target);
    assert_true(count_segments(f->dir) > 0);

    f->s = open_wb(f);
    /* Each key holds the last write to it that was reported committed, or
     * one of the next batch's, committed but killed before it was reported
     * (the version says which write it is). */
    char key[32], val[300];
    for (unsigned k = 0; k < 20000; k++) {
        unsigned last = k + ((done - 1 - k) / 20000) * 20000;
        snprintf(key, sizeof key, "key%u", k);
        store_record r;
        EXPECT(f, store_get(f->s, key, strlen(key), 1, &r, f->err, sizeof f->err), STORE_OK);
        uint64_t i = r.version.hlc - at_ms(1000);
        if (r.version.hlc < at_ms(1000) + last || i >= done + 16 || i % 20000 != k)
            fail_msg("%s: version %llu, but %u writes were committed (want %llu)", key,
                     (unsigned long long)r.version.hlc, done,
                     (unsigned long long)(at_ms(1000) + last));
        size_t n = value_of((unsigned)i, val);
        assert_int_equal(r.value_len, n);
        assert_memory_equal(r.value, val, n);
    }
    /* The replay was written into LMDB and its segments deleted. */
    assert_int_equal(count_segments(f->dir), 1); /* the new run's own */
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(count_segments(f->dir), 0);
}

/* A crash in the middle of a log write leaves part of a record at the end of
 * the last segment: the replay stops there, and keeps what came before. */
static void test_torn_tail(void **state)
{
    fx *f = *state;
    f->s = open_wb(f);
    put(f, "a", 1, "one", 3, at_ms(10));
    commit(f);
    put(f, "b", 1, "two", 3, at_ms(11));
    commit(f);
    store_abandon(f->s);
    f->s = NULL;

    DIR *d = opendir(f->dir);
    struct dirent *de;
    char path[512] = "";
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "wal-", 4) == 0)
            snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
    closedir(d);
    assert_true(path[0]);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    const uint8_t torn[] = {200, 0, 0, 0, 1, 2, 3, 4, 5, 0, 'c'}; /* says 200 bytes follow */
    assert_int_equal(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);

    f->s = open_wb(f);
    check_value(f, "a", 1, "one", 3);
    check_value(f, "b", 1, "two", 3);
    check_absent(f, "c", 1);
    put(f, "c", 1, "three", 5, at_ms(12));
    commit(f);
    store_close(f->s);
    f->s = open_wb(f);
    check_value(f, "c", 1, "three", 5);
}

/* Closes cleanly, checks that no log is left, opens again: the stats then,
 * with nothing waiting to be written back. */
static store_stats close_and_reopen(fx *f)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(count_segments(f->dir), 0);
    f->s = open_wb(f);
    store_stats st = stats(f);
    assert_int_equal(st.dirty, 0);
    return st;
}

/* A clean close writes everything back and deletes the log; what the
 * records counted before it, it counts after. */
static void test_close_leaves_no_log(void **state)
{
    fx *f = *state;
    char key[16], val[300];
    f->s = open_wb(f);
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%u", i);
        put(f, key, strlen(key), val, value_of(i, val), at_ms(100) + i);
        if (i % 100 == 99)
            commit(f);
    }
    del(f, "k7", 2, at_ms(100000));
    commit(f);
    store_stats st = stats(f);
    assert_int_equal(st.records, 5000);
    assert_int_equal(st.tombstones, 1);
    assert_true(st.dirty > 0); /* still only in memory and the log */
    assert_true(count_segments(f->dir) > 0);
    st = close_and_reopen(f);
    assert_int_equal(st.records, 5000);
    assert_int_equal(st.tombstones, 1);
    check_absent(f, "k7", 2);
    check_value(f, "k4999", 5, val, value_of(4999, val));
}

/* The write-back's three ways into LMDB: a new key, a record replaced in
 * place, and one that shrank to under a quarter of what it replaces
 * (deleted and put again, so that its leaf pages are merged rather than
 * left nearly empty). Every value reads back after a reopen, and 1,200
 * records shrunk from 1 KiB to 3 bytes, with 1,200 new small ones and 100
 * of 1 KiB, take under 300 leaf pages: left in place, the shrunk ones
 * alone kept about 600. */
static void write_back_all(fx *f)
{
    EXPECT(f, store_write_back(f->s, f->err, sizeof f->err), 0);
    commit(f);
}

static void test_write_back_puts(void **state)
{
    fx *f = *state;
    enum { N = 1200, NR = 100 };
    char key[32], big[1024], big2[1024];
    memset(big, 'b', sizeof big);
    memset(big2, 'c', sizeof big2);
    f->s = open_wb(f);
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "s%05u", i);
        put(f, key, strlen(key), big, sizeof big, at_ms(100) + i);
        snprintf(key, sizeof key, "r%05u", i % NR);
        put(f, key, strlen(key), big, sizeof big, at_ms(100) + i);
    }
    commit(f);
    write_back_all(f);
    for (unsigned i = 0; i < N; i++) {
        snprintf(key, sizeof key, "s%05u", i); /* shrinks */
        put(f, key, strlen(key), "abc", 3, at_ms(200) + i);
        snprintf(key, sizeof key, "r%05u", i % NR); /* replaced in place */
        put(f, key, strlen(key), big2, sizeof big2, at_ms(200) + i);
        snprintf(key, sizeof key, "n%05u", i); /* new */
        put(f, key, strlen(key), "new", 3, at_ms(200) + i);
    }
    commit(f);
    write_back_all(f);
    store_close(f->s);
    f->s = NULL;

    MDB_env *e;
    MDB_txn *t;
    MDB_dbi d;
    MDB_stat ms;
    assert_int_equal(mdb_env_create(&e), 0);
    assert_int_equal(mdb_env_set_maxdbs(e, 4), 0);
    assert_int_equal(mdb_env_open(e, f->dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "data", 0, &d), 0);
    assert_int_equal(mdb_stat(t, d, &ms), 0);
    mdb_txn_abort(t);
    mdb_env_close(e);
    assert_int_equal(ms.ms_entries, 2 * N + NR);
    assert_true(ms.ms_leaf_pages < 300);

    f->s = open_wb(f);
    for (unsigned i = 0; i < N; i += 7) {
        snprintf(key, sizeof key, "s%05u", i);
        check_value(f, key, strlen(key), "abc", 3);
        snprintf(key, sizeof key, "r%05u", i % NR);
        check_value(f, key, strlen(key), big2, sizeof big2);
        snprintf(key, sizeof key, "n%05u", i);
        check_value(f, key, strlen(key), "new", 3);
    }
}

/* The value write_burst writes under key index k: "k:" then filler. */
static void burst_value(unsigned k, char *val, size_t vlen)
{
    memset(val, 'v', vlen);
    snprintf(val, vlen < 16 ? vlen : 16, "%u:", k);
}

/* n puts of vlen-byte values (vlen <= 2048) under prefix<k>, k cycling over
 * nkeys, with a commit every `every` puts and at the end. */
static void write_burst(fx *f, const char *prefix, unsigned n, unsigned nkeys, size_t vlen,
                        unsigned every)
{
    char key[32], val[2048];
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%u", prefix, i % nkeys);
        burst_value(i % nkeys, val, vlen);
        put(f, key, strlen(key), val, vlen, at_ms(100) + i);
        if (i % every == every - 1)
            commit(f);
    }
    commit(f);
}

/* The write-back at close can need more room than the map has reserved
 * (here ~24 MiB of records, nearly all still dirty, against a map that
 * started at 1 MiB): the map grows and the log still goes. */
static void test_close_grows_the_map(void **state)
{
    fx *f = *state;
    char val[2048];
    f->s = open_wb(f);
    write_burst(f, "big", 12000, 12000, sizeof val, 100);
    store_stats st = stats(f);
    assert_true(st.dirty_bytes > 16 * MB);
    st = close_and_reopen(f);
    assert_int_equal(st.records, 12000);
    burst_value(11999, val, sizeof val);
    check_value(f, "big11999", 8, val, sizeof val);
}

static size_t log_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat st;
    char path[PATH_MAX];
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "wal-", 4) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (stat(path, &st) == 0)
                n += (size_t)st.st_size;
        }
    closedir(d);
    return n;
}

/* Writes fill the log faster than the time-paced walk goes round: the
 * walk keeps up with the log instead, so that it stays near log_size
 * (16 MiB written against a 1 MiB log_size; the segments go once the
 * syncer has synced LMDB, within a second or two). */
/* STATS' log_bytes is what the segment files hold on disk. */
static void assert_log_bytes_match(fx *f)
{
    /* The syncer deletes a file, then takes it off the count: a reading
     * between the two differs for a moment, and is read again. */
    uint64_t counted = 0;
    size_t disk = 0;
    for (int t = 0; t < 100; t++) {
        counted = stats(f).log_bytes;
        disk = log_bytes(f->dir);
        if (counted == disk && stats(f).log_bytes == counted)
            return;
        usleep(10 * 1000);
    }
    fail_msg("log_bytes %llu, the log's files %zu bytes, for a second",
             (unsigned long long)counted, disk);
}

static void test_log_stays_near_log_size(void **state)
{
    fx *f = *state;
    f->s = open_wb_log(f, MB);
    write_burst(f, "w", 16384, 4000, 1024, 50);
    assert_log_bytes_match(f);
    assert_true(stats(f).log_bytes > 0);
    size_t n = log_bytes(f->dir);
    for (int t = 0; t < 50 && n > 2 * MB; t++) {
        usleep(100 * 1000);
        commit(f); /* hands the syncer what it may delete */
        n = log_bytes(f->dir);
    }
    assert_true(n <= 2 * MB);
    assert_log_bytes_match(f); /* the syncer's deletions were taken off */
    store_stats st = stats(f);
    assert_int_equal(st.records, 4000);
}

/* A pass of the walk writes back only what was written before it began:
 * keys written again and again stay in memory and in the log, and only
 * their last record goes to LMDB, once they rest. Here 64 keys written
 * 40,000 times over 5 MiB of log (log_size 1 MiB: a pass for every half)
 * were written back 384 times before 2026-11-29; now none is until the
 * writes stop. No old segment stays pinned (each write moves its key's
 * pin to the newest), and idle commits write every key back. */
static void test_hot_keys_wait_for_the_next_pass(void **state)
{
    fx *f = *state;
    f->s = open_wb_log(f, MB);
    write_burst(f, "hot", 40000, 64, 100, 200);
    store_stats st = stats(f);
    if (st.written_back > 64)
        fail_msg("%llu hot records written back: the walk took records written since its "
                 "pass began", (unsigned long long)st.written_back);
    /* Segments still pinned (the syncer deletes the others within a
     * second): at most a pass behind, in eighths of log_size. */
    if (st.wal_segments > 10)
        fail_msg("%llu log segments kept for log_size 1 MiB",
                 (unsigned long long)st.wal_segments);
    uint64_t dirty = st.dirty;
    assert_int_equal(dirty, 64);
    for (int t = 0; t < 300 && dirty > 0; t++) {
        usleep(10 * 1000);
        commit(f);
        dirty = stats(f).dirty;
    }
    assert_int_equal(dirty, 0);
    assert_true(stats(f).written_back >= 64);
    close_and_reopen(f);
    char val[100];
    for (unsigned k = 0; k < 64; k++) {
        char key[16];
        snprintf(key, sizeof key, "hot%u", k);
        burst_value(k, val, sizeof val);
        check_value(f, key, strlen(key), val, sizeof val);
    }
}

/* With nothing read or written, the write-back goes round in about a
 * second instead of ten: what a burst of writes left dirty is in LMDB
 * within two seconds of idle commits (the server commits every 10 ms
 * while anything waits). */
static void test_idle_writes_back_soon(void **state)
{
    fx *f = *state;
    f->s = open_wb(f);
    write_burst(f, "idle", 4000, 4000, 100, 100);
    assert_true(stats(f).dirty > 3000);
    uint64_t dirty = 1;
    for (int t = 0; t < 200 && dirty > 0; t++) {
        usleep(10 * 1000);
        commit(f);
        dirty = stats(f).dirty;
    }
    assert_int_equal(dirty, 0);
}

/* Commits with nothing in them between writes (a node's passes that only
 * took peers' acknowledgements) are not idleness: the walk keeps the busy
 * pace (once every 30 s), not the idle one (once a second). Until
 * 2026-11-27 a step that saw no write since the step before counted as
 * idle, and a write every 2 ms with an empty commit between wrote back
 * about half of a burst in a second. */
static void test_empty_commits_between_writes_are_not_idle(void **state)
{
    fx *f = *state;
    f->s = open_wb(f);
    write_burst(f, "b", 4000, 4000, 100, 100);
    uint64_t dirty = stats(f).dirty;
    assert_true(dirty > 3000);
    char val[100];
    burst_value(0, val, sizeof val);
    for (int t = 0; t < 400; t++) { /* about a second */
        put(f, "w", 1, val, sizeof val, at_ms(200) + (uint64_t)t);
        commit(f);
        usleep(1200);
        commit(f); /* nothing in it */
        usleep(1200);
    }
    /* At the busy pace about a thirtieth of the table goes per second, at
     * the idle pace about half of it in that second. */
    uint64_t left = stats(f).dirty;
    if (left < dirty * 3 / 4)
        fail_msg("%llu of %llu dirty records left after a second of writes: the walk "
                 "went at the idle pace", (unsigned long long)left, (unsigned long long)dirty);
}

/* Every step is an LMDB commit, so a step waits until the walk owes it
 * 1,024 slots or 50 ms have passed. Here a write and its commit every
 * 1.2 ms owe the walk most of a slot (log_size 4 MiB, 8,192 slots, a
 * third of them dirty): until 2026-11-29 a step went with nearly every
 * commit, and nearly half of them found a record to write back and made
 * an LMDB commit for it alone (175 commits for 175 records); since, 10
 * commits write back 260. */
static void test_steps_gather_slots(void **state)
{
    fx *f = *state;
    f->s = open_wb_log(f, 4 * MB);
    write_burst(f, "g", 4000, 4000, 100, 4000);
    /* 2.6 MiB of log on 16 keys: the walk goes round once (a pass for
     * every 2 MiB) and writes none of the burst back, since a pass leaves
     * the records written after it began to the next one; the next pass
     * writes them back. */
    write_burst(f, "x", 20000, 16, 100, 500);
    char val[100];
    burst_value(0, val, sizeof val);
    for (int t = 0; t < 100; t++) {
        usleep(1200);
        commit(f);
    }
    store_stats st = stats(f);
    assert_true(st.dirty > 1000);
    for (int t = 0; t < 400; t++) {
        put(f, "w", 1, val, sizeof val, at_ms(200) + (uint64_t)t);
        commit(f);
        usleep(1200);
    }
    store_stats end = stats(f);
    uint64_t commits = end.commits - st.commits;
    if (commits > 60)
        fail_msg("%llu LMDB commits for 400 writes a millisecond apart: the write-back "
                 "steps did not gather their slots", (unsigned long long)commits);
    assert_true(end.written_back > st.written_back + 50); /* the walk went on */
}

/* Reads with no writes hold the walk off while dirty records fill less
 * than half the cache: a burst stays dirty through two seconds of reads
 * (two idle seconds write it back, test_idle_writes_back_soon), then the
 * reads stop and it is written back. Past half the cache, the walk goes
 * on under reads. */
static void read_for(fx *f, const char *key, int ms)
{
    store_record r;
    for (int t = 0; t < ms / 10; t++) {
        EXPECT(f, store_get(f->s, key, strlen(key), 1, &r, f->err, sizeof f->err), STORE_OK);
        commit(f);
        usleep(10 * 1000);
    }
}

static void test_reads_hold_the_walk_off(void **state)
{
    fx *f = *state;
    f->s = open_wb(f); /* 64 MiB of cache */
    write_burst(f, "r", 4000, 4000, 100, 100);
    /* The walk goes on at the busy pace until the node has read without
     * writing for 100 ms (QUIET_US). */
    read_for(f, "r1", 200);
    uint64_t dirty = stats(f).dirty;
    assert_true(dirty > 3000);
    read_for(f, "r1", 2000);
    assert_int_equal(stats(f).dirty, dirty);
    for (int t = 0; t < 200 && dirty > 0; t++) {
        usleep(10 * 1000);
        commit(f);
        dirty = stats(f).dirty;
    }
    assert_int_equal(dirty, 0);

    /* 40 MiB dirty of 64: written back under the same reads. */
    write_burst(f, "big", 20000, 20000, 2000, 500);
    uint64_t big = stats(f).dirty_bytes;
    assert_true(big > 32 * MB);
    read_for(f, "r1", 2000);
    assert_true(stats(f).dirty_bytes < big);
}

/* The walk also waits under reads while the log is past half of log_size
 * (it does not grow while nothing writes), up to log_size itself. */
static void test_reads_hold_the_walk_off_past_half_the_log(void **state)
{
    fx *f = *state;
    f->s = open_wb_log(f, 8 * MB);
    /* One commit: the walk owes a cycle for the log, in steps of at most
     * 512 records (FLUSH_STEP_MAX), one per read below, so in the 100 ms
     * before the reads hold it off it writes back a few thousand. */
    write_burst(f, "h", 20000, 20000, 250, 20000);
    read_for(f, "h1", 200); /* past the 100 ms of reads that hold it off */
    store_stats st = stats(f);
    assert_true(st.log_bytes > 4 * MB && st.log_bytes < 8 * MB);
    assert_true(st.dirty > 9000);
    read_for(f, "h1", 1000);
    assert_int_equal(stats(f).dirty, st.dirty);
    /* Idle, it goes round within a second or two. */
    uint64_t dirty = st.dirty;
    for (int t = 0; t < 300 && dirty > 0; t++) {
        usleep(10 * 1000);
        commit(f);
        dirty = stats(f).dirty;
    }
    assert_int_equal(dirty, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_format),
        cmocka_unit_test_setup_teardown(test_kill_loses_nothing_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_leaves_no_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_back_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_grows_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_stays_near_log_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_keys_wait_for_the_next_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_writes_back_soon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_commits_between_writes_are_not_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_steps_gather_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_hold_the_walk_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_hold_the_walk_off_past_half_the_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
