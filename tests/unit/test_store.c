/* Unit tests for node/store.c: round trips, batching, long keys, LWW,
 * restart, fsync modes, LMDB's map, and the failure paths (map full, corrupt
 * records, hash collisions); expiry and the sweep are in
 * test_store_sweep.c, hints in test_store_hints.c. Each test
 * runs in a fresh mkdtemp directory; records are planted with a raw LMDB
 * handle while the store is closed.
 */
#include "store_fx.h"

#include <sys/wait.h>

/* Runs fn on the store's data or meta DB through a raw LMDB handle; the
 * store must be closed (LMDB forbids opening one env twice in a process). */
static void raw_txn(fx *f, const char *db, void (*fn)(MDB_txn *, MDB_dbi, void *), void *arg)
{
    MDB_env *e;
    MDB_txn *t;
    MDB_dbi d;
    assert_null(f->s);
    assert_int_equal(mdb_env_create(&e), 0);
    assert_int_equal(mdb_env_set_maxdbs(e, 4), 0);
    assert_int_equal(mdb_env_open(e, f->dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, db, 0, &d), 0);
    fn(t, d, arg);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(e);
}

typedef struct raw_rec {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
} raw_rec;

static void raw_put_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    raw_rec *r = arg;
    MDB_val k = {r->klen, (void *)r->key}, v = {r->vlen, (void *)r->val};
    assert_int_equal(mdb_put(t, d, &k, &v, 0), 0);
}

static void raw_meta_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    MDB_val k = {4, "node"}, v;
    Ringkv__NodeMeta *m;
    assert_int_equal(mdb_get(t, d, &k, &v), 0);
    m = ringkv__node_meta__unpack(NULL, v.mv_size, v.mv_data);
    assert_non_null(m);
    assert_int_equal(m->format, 1);
    *(uint64_t *)arg = m->incarnation;
    ringkv__node_meta__free_unpacked(m, NULL);
}

static uint64_t read_incarnation(fx *f)
{
    uint64_t inc = 0;
    store_close(f->s);
    f->s = NULL;
    raw_txn(f, "meta", raw_meta_fn, &inc);
    return inc;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* LMDB key of a short key, as store.c builds it. */
static size_t short_lmdb_key(const void *key, size_t klen, uint8_t *out)
{
    put_be64(out, store_token(key, klen));
    memcpy(out + 8, key, klen);
    return 8 + klen;
}

typedef struct raw_get {
    const uint8_t *key;
    size_t klen;
    uint8_t val[1024];
    size_t vlen;
} raw_get;

static void raw_get_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    raw_get *g = arg;
    MDB_val k = {g->klen, (void *)g->key}, v;
    assert_int_equal(mdb_get(t, d, &k, &v), 0);
    assert_true(v.mv_size <= sizeof g->val);
    memcpy(g->val, v.mv_data, v.mv_size);
    g->vlen = v.mv_size;
}

/* Walks the data DB with LMDB's own comparison (memcmp order): every key
 * is larger than the one before, and a lookup finds each. */
static void raw_order_fn(MDB_txn *t, MDB_dbi d, void *arg)
{
    size_t *count = arg;
    MDB_cursor *c;
    MDB_val k, v, prev = {0, NULL};
    uint8_t last[600];
    assert_int_equal(mdb_cursor_open(t, d, &c), 0);
    for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &v, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
        if (prev.mv_data) {
            size_t n = prev.mv_size < k.mv_size ? prev.mv_size : k.mv_size;
            int cmp = memcmp(prev.mv_data, k.mv_data, n);
            assert_true(cmp < 0 || (cmp == 0 && prev.mv_size < k.mv_size));
        }
        MDB_val found;
        assert_int_equal(mdb_get(t, d, &k, &found), 0);
        assert_true(k.mv_size <= sizeof last);
        memcpy(last, k.mv_data, k.mv_size);
        prev = (MDB_val){k.mv_size, last};
        (*count)++;
    }
    mdb_cursor_close(c);
}

/* The store compares data keys its own faster way (token as an integer):
 * the file must still be in the order LMDB's default comparison expects,
 * so other readers of it (mdb_dump, older builds) find every key. */
static void test_data_key_order_is_memcmp(void **state)
{
    fx *f = *state;
    store_version v = ver(7, "a");
    char k[600];
    reopen(f);
    size_t n = 0;
    for (int i = 0; i < 3000; i++) {
        /* short, medium and hashed long keys, some prefixes of others */
        size_t kl = (size_t)snprintf(k, sizeof k, "k%d", i / 3);
        if (i % 3 == 1)
            kl += (size_t)snprintf(k + kl, sizeof k - kl, "-suffix");
        else if (i % 3 == 2) {
            memset(k + kl, 'x', 540 - kl);
            kl = 540;
        }
        EXPECT(f, store_put(f->s, k, kl, "v", 1, 0, &v, f->err, sizeof f->err), STORE_OK);
        n++;
    }
    EXPECT(f, store_commit(f->s, f->err, sizeof f->err), STORE_OK);
    for (int i = 0; i < 3000; i += 97) {
        size_t kl = (size_t)snprintf(k, sizeof k, "k%d", i / 3);
        check_value(f, k, kl, "v", 1);
    }
    store_close(f->s);
    f->s = NULL;
    size_t seen = 0;
    raw_txn(f, "data", raw_order_fn, &seen);
    assert_int_equal(seen, n);
}

/* Pins the on-disk layout that store.c documents: LMDB keys and record bytes. */
static void test_disk_layout(void **state)
{
    fx *f = *state;
    uint8_t k503[503], k504[504], lk[511];
    store_version v = ver(0x0102030405060708ULL, "ab");
    XXH128_canonical_t h;
    raw_get g = {.key = lk};
    const uint8_t head[] = {1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 2, 'a', 'b'};

    memset(k503, 'k', sizeof k503);
    memset(k504, 'k', sizeof k504);
    reopen(f);
    EXPECT(f, store_put(f->s, k503, sizeof k503, "v1", 2, 0x1122, &v, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, k504, sizeof k504, "v2", 2, 0x1122, &v, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_del(f->s, "t", 1, &v, f->err, sizeof f->err), STORE_OK);
    store_close(f->s);
    f->s = NULL;

    /* 8 + 503 = 511 bytes: the key follows its token. */
    g.klen = short_lmdb_key(k503, sizeof k503, lk);
    assert_int_equal(g.klen, 511);
    raw_txn(f, "data", raw_get_fn, &g);
    assert_int_equal(g.vlen, sizeof head + 2);
    assert_memory_equal(g.val, head, sizeof head);
    assert_memory_equal(g.val + sizeof head, "v1", 2);

    /* 504: token + XXH3-128 (canonical), the key inside the record. */
    put_be64(lk, store_token(k504, sizeof k504));
    XXH128_canonicalFromHash(&h, XXH3_128bits(k504, sizeof k504));
    memcpy(lk + 8, h.digest, 16);
    g.klen = 24;
    raw_txn(f, "data", raw_get_fn, &g);
    assert_int_equal(g.vlen, sizeof head + 4 + 504 + 2);
    assert_int_equal(g.val[1], 0x02);
    assert_memory_equal(g.val + 2, head + 2, sizeof head - 2);
    assert_memory_equal(g.val + sizeof head, "\0\0\x01\xf8", 4);
    assert_memory_equal(g.val + sizeof head + 4, k504, 504);
    assert_memory_equal(g.val + sizeof head + 4 + 504, "v2", 2);

    /* A tombstone: flag bit0, no value, expiry 0. */
    g.klen = short_lmdb_key("t", 1, lk);
    raw_txn(f, "data", raw_get_fn, &g);
    assert_int_equal(g.vlen, sizeof head);
    assert_int_equal(g.val[1], 0x01);
    assert_int_equal(g.val[16] | g.val[17], 0);
}

static void test_open_dirs(void **state)
{
    fx *f = *state;
    char dir[128], file[128];
    struct stat st;
    store_options o = {.dir = dir, .map_size = 8 * MB, .fsync = STORE_FSYNC_NO};
    store *s;

    snprintf(dir, sizeof dir, "%s/a/b/data/", f->dir);
    s = store_open(&o, f->err, sizeof f->err);
    if (!s)
        fail_msg("store_open: %s", f->err);
    store_close(s);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(dir, sizeof dir, "%s/a", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    snprintf(file, sizeof file, "%s/plainfile", f->dir);
    fclose(fopen(file, "w"));
    o.dir = file;
    assert_null(store_open(&o, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "not a directory"));
    o.dir = NULL;
    assert_null(store_open(&o, f->err, sizeof f->err));
    assert_null(store_open(NULL, f->err, sizeof f->err));
}

/* The VmFlags of the mapping of path in this process's smaps, or "". */
static void map_flags(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long lo, hi;
    bool in = false;
    out[0] = '\0';
    assert_non_null(fp);
    while (fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (in) {
                size_t k = strlen(line + 8) < cap - 1 ? strlen(line + 8) : cap - 1;
                memcpy(out, line + 8, k);
                out[k] = '\0';
                break;
            }
        } else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            in = n >= strlen(path) && strcmp(line + n - strlen(path), path) == 0;
        }
    }
    fclose(fp);
}

/* LMDB's map is read at random: no readahead (MDB_NORDAHEAD, which is
 * madvise MADV_RANDOM: "rr" in the mapping's VmFlags), in every fsync mode,
 * and still after the map has grown (a new mapping). */
static void test_map_without_readahead(void **state)
{
    fx *f = *state;
    char dir[96], path[128], flags[256];
    store_fsync modes[] = {STORE_FSYNC_ALWAYS, STORE_FSYNC_EVERYSEC, STORE_FSYNC_NO};
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        snprintf(dir, sizeof dir, "%s/m%zu", f->dir, m); /* a new store: its map starts small */
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        store_options o = {
            .dir = dir, .map_size = 64 * MB, .fsync = modes[m], .cache_size = 4 * MB};
        store *s = store_open(&o, f->err, sizeof f->err);
        if (!s)
            fail_msg("store_open: %s", f->err);
        map_flags(path, flags, sizeof flags);
        if (!strstr(flags, " rr"))
            fail_msg("fsync mode %zu: data.mdb mapped without MADV_RANDOM, VmFlags:%s", m, flags);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        off_t opened = st.st_size; /* the map's size: the file is reserved up to it */
        /* 12 MB of records: more than the room reserved at open (9 MiB), so
         * the map grows, and is mapped again. */
        char v[1000];
        store_version vv = ver(1, "n1");
        memset(v, 'v', sizeof v);
        for (int i = 0; i < 12000; i++) {
            char k[32];
            size_t kl = (size_t)snprintf(k, sizeof k, "k%d-%zu", i, m);
            EXPECT(f, store_put(s, k, kl, v, sizeof v, 0, &vv, f->err, sizeof f->err), STORE_OK);
            if (i % 500 == 499)
                EXPECT(f, store_commit(s, f->err, sizeof f->err), STORE_OK);
        }
        EXPECT(f, store_commit(s, f->err, sizeof f->err), STORE_OK);
        /* Write-behind: into LMDB too ("storage busy" while the map grows:
         * the next commit grows it, then the write-back is tried again). */
        for (int tries = 0; store_write_back(s, f->err, sizeof f->err) != 0; tries++) {
            if (tries == 10)
                fail_msg("store_write_back: %s", f->err);
            EXPECT(f, store_commit(s, f->err, sizeof f->err), STORE_OK);
        }
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > opened);
        map_flags(path, flags, sizeof flags);
        if (!strstr(flags, " rr"))
            fail_msg("fsync mode %zu: data.mdb mapped without MADV_RANDOM, VmFlags:%s", m, flags);
        store_close(s);
    }
}

static void test_roundtrip(void **state)
{
    fx *f = *state;
    store_record r;
    store_version v = ver(7, "node-a");
    reopen(f);
    EXPECT(f, store_put(f->s, "k", 1, "hello", 5, 0, &v, f->err, sizeof f->err), STORE_OK);
    commit(f);
    EXPECT(f, store_get(f->s, "k", 1, 1, &r, f->err, sizeof f->err), STORE_OK);
    assert_int_equal(r.value_len, 5);
    assert_memory_equal(r.value, "hello", 5);
    assert_int_equal(r.version.hlc, 7);
    assert_string_equal(r.version.origin, "node-a");
    assert_false(r.tombstone);
    assert_int_equal(r.expires_ms, 0);
    del(f, "k", 1, 8);
    commit(f);
    check_absent(f, "k", 1);
    check_absent(f, "never", 5);
    assert_int_equal(stats(f).records, 1);
    assert_int_equal(stats(f).commits, 2);
    assert_int_equal(store_token("k", 1), XXH3_64bits("k", 1));
}

static void test_batch_sees_own_writes(void **state)
{
    fx *f = *state;
    reopen(f);
    put(f, "a", 1, "1", 1, 1);
    commit(f);
    check_value(f, "a", 1, "1", 1); /* read snapshot begun */
    assert_false(store_batch_dirty(f->s));
    put(f, "b", 1, "2", 1, 2);
    assert_true(store_batch_dirty(f->s));
    check_value(f, "b", 1, "2", 1);
    put(f, "a", 1, "3", 1, 3);
    check_value(f, "a", 1, "3", 1);
    del(f, "b", 1, 4);
    check_absent(f, "b", 1);
    commit(f);
    assert_false(store_batch_dirty(f->s));
    check_value(f, "a", 1, "3", 1);
    check_absent(f, "b", 1);
    /* A second batch after a read-only one reuses the renewed snapshot. */
    commit(f);
    check_value(f, "a", 1, "3", 1);
}

static void test_empty_and_binary(void **state)
{
    fx *f = *state;
    const uint8_t key[] = {0, 'a', 0, 0xff, 0};
    const uint8_t val[] = {0, 0, 1, 0, 0xfe, 0};
    reopen(f);
    put(f, "empty", 5, "", 0, 1);
    put(f, key, sizeof key, val, sizeof val, 1);
    put(f, key, 1, "nul", 3, 1); /* a prefix of the binary key: another key */
    commit(f);
    check_value(f, "empty", 5, "", 0);
    check_value(f, key, sizeof key, val, sizeof val);
    check_value(f, key, 1, "nul", 3);
    reopen(f);
    check_value(f, "empty", 5, "", 0);
    check_value(f, key, sizeof key, val, sizeof val);
}

static void test_big_value(void **state)
{
    fx *f = *state;
    uint8_t *v = malloc(MB);
    assert_non_null(v);
    for (size_t i = 0; i < MB; i++)
        v[i] = (uint8_t)(i * 31 + 7);
    reopen(f);
    put(f, "big", 3, v, MB, 1);
    check_value(f, "big", 3, v, MB);
    commit(f);
    reopen(f);
    check_value(f, "big", 3, v, MB);
    free(v);
}

static void test_long_keys(void **state)
{
    fx *f = *state;
    size_t lens[] = {503, 504, 600, 64 * 1024};
    uint8_t *a = malloc(64 * 1024), *b = malloc(64 * 1024);
    assert_true(a && b);
    memset(a, 'x', 64 * 1024);
    memcpy(b, a, 64 * 1024);
    reopen(f);
    /* 503 bytes is the longest key that follows its token (8 + 503 = 511);
     * each pair differs only in its last byte, past where LMDB's key ends. */
    for (size_t i = 0; i < 4; i++) {
        a[lens[i] - 1] = 'A';
        b[lens[i] - 1] = 'B';
        put(f, a, lens[i], "va", 2, 1);
        put(f, b, lens[i], "vb", 2, 1);
        check_value(f, a, lens[i], "va", 2);
        a[lens[i] - 1] = b[lens[i] - 1] = 'x';
    }
    commit(f);
    reopen(f);
    for (size_t i = 0; i < 4; i++) {
        a[lens[i] - 1] = 'A';
        b[lens[i] - 1] = 'B';
        check_value(f, a, lens[i], "va", 2);
        check_value(f, b, lens[i], "vb", 2);
        a[lens[i] - 1] = 'x';
        check_absent(f, a, lens[i]);
        b[lens[i] - 1] = 'x';
    }
    assert_int_equal(stats(f).records, 8);
    a[599] = 'A';
    del(f, a, 600, 2);
    commit(f);
    check_absent(f, a, 600);
    b[599] = 'B';
    check_value(f, b, 600, "vb", 2);
    free(a);
    free(b);
}

/* A long-key record holding key "bbb..." (600 bytes), planted in lk. */
static void plant_long_record(fx *f, const uint8_t *lk, size_t lklen)
{
    uint8_t rec[19 + 2 + 4 + 600 + 3];
    raw_rec rr = {lk, lklen, rec, sizeof rec};
    memset(rec, 0, sizeof rec);
    rec[0] = 1, rec[1] = 0x02; /* format 1, live, long key inline */
    rec[9] = 5;                /* hlc 5 */
    rec[18] = 2, memcpy(rec + 19, "n1", 2);
    rec[21 + 2] = 600 >> 8, rec[21 + 3] = 600 & 0xff;
    memset(rec + 25, 'b', 600);
    memcpy(rec + 625, "old", 3);
    raw_txn(f, "data", raw_put_fn, &rr);
}

/* Two keys under one LMDB key (a real XXH3-64 + XXH3-128 collision can't be
 * found, so it is planted): reads miss, writes refuse rather than overwrite. */
static void test_long_key_collision(void **state)
{
    fx *f = *state;
    uint8_t a[600], lk[24], sk[24];
    const char *shortk = "sixteen-byte-key";
    XXH128_canonical_t h;
    store_version v = ver(100, "n1");

    memset(a, 'a', sizeof a);
    reopen(f);
    store_close(f->s);
    f->s = NULL;
    put_be64(lk, store_token(a, sizeof a));
    XXH128_canonicalFromHash(&h, XXH3_128bits(a, sizeof a));
    memcpy(lk + 8, h.digest, 16);
    plant_long_record(f, lk, sizeof lk);
    /* A short key whose LMDB key is the same 24 bytes as a long key's. */
    plant_long_record(f, sk, short_lmdb_key(shortk, 16, sk));

    reopen(f);
    check_absent(f, a, sizeof a);
    check_absent(f, shortk, 16);
    put(f, "other", 5, "x", 1, 1);
    EXPECT(f, store_put(f->s, a, sizeof a, "new", 3, 0, &v, f->err, sizeof f->err),
           STORE_ERR_IO);
    assert_non_null(strstr(f->err, "collision"));
    assert_false(store_batch_dirty(f->s)); /* the batch went with it */
    commit(f);
    check_absent(f, "other", 5);
    EXPECT(f, store_del(f->s, a, sizeof a, &v, f->err, sizeof f->err), STORE_ERR_IO);
    EXPECT(f, store_put(f->s, shortk, 16, "new", 3, 0, &v, f->err, sizeof f->err),
           STORE_ERR_IO);
    assert_non_null(strstr(f->err, "collision"));
    commit(f);
    assert_int_equal(stats(f).records, 2);
}

static void test_tombstones(void **state)
{
    fx *f = *state;
    store_record r;
    store_version v = ver(50, "n1");
    reopen(f);
    put(f, "k", 1, "v", 1, 10);
    commit(f);
    del(f, "k", 1, 20);
    commit(f);
    EXPECT(f, store_get(f->s, "k", 1, 1, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
    assert_true(r.tombstone); /* the version stays visible, for read repair */
    assert_int_equal(r.version.hlc, 20);
    assert_int_equal(stats(f).tombstones, 1);
    assert_int_equal(stats(f).records, 1);

    del(f, "absent", 6, 5); /* still written, to beat older writes */
    commit(f);
    assert_int_equal(stats(f).tombstones, 2);
    EXPECT(f, store_put(f->s, "absent", 6, "v", 1, 0, &(store_version){4, "n1"},
                        f->err, sizeof f->err), STORE_STALE);
    del(f, "k", 1, 30); /* tombstone over tombstone: no change */
    commit(f);
    assert_int_equal(stats(f).tombstones, 2);
    put(f, "k", 1, "back", 4, 40);
    commit(f);
    assert_int_equal(stats(f).tombstones, 1);
    check_value(f, "k", 1, "back", 4);

    /* Deltas of a discarded batch are rolled back. */
    del(f, "k", 1, 45);
    put(f, "absent", 6, "v", 1, 46);
    EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
    commit(f);
    assert_int_equal(stats(f).tombstones, 1);
    check_value(f, "k", 1, "back", 4);

    reopen(f); /* counted again by the scan at open */
    assert_int_equal(stats(f).tombstones, 1);
    assert_int_equal(stats(f).records, 2);
}

static void test_lww(void **state)
{
    fx *f = *state;
    store_version old = ver(5, "n1"), same = ver(10, "n1");
    reopen(f);
    put(f, "k", 1, "new", 3, 10);
    commit(f);
    EXPECT(f, store_put(f->s, "k", 1, "old", 3, 0, &old, f->err, sizeof f->err), STORE_STALE);
    EXPECT(f, store_put(f->s, "k", 1, "dup", 3, 0, &same, f->err, sizeof f->err), STORE_STALE);
    EXPECT(f, store_del(f->s, "k", 1, &old, f->err, sizeof f->err), STORE_STALE);
    assert_false(store_batch_dirty(f->s));
    commit(f);
    check_value(f, "k", 1, "new", 3);
    del(f, "k", 1, 20);
    EXPECT(f, store_put(f->s, "k", 1, "old", 3, 0, &same, f->err, sizeof f->err), STORE_STALE);
    commit(f);
    check_absent(f, "k", 1);
}

static void test_lww_origin_tiebreak(void **state)
{
    fx *f = *state;
    store_version b = ver(10, "b"), a = ver(10, "a"), bb = ver(10, "bb"),
                  c = ver(10, "c"), empty = ver(10, "");
    store_record r;
    reopen(f);
    EXPECT(f, store_put(f->s, "k", 1, "b", 1, 0, &b, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "k", 1, "a", 1, 0, &a, f->err, sizeof f->err), STORE_STALE);
    EXPECT(f, store_put(f->s, "k", 1, "", 0, 0, &empty, f->err, sizeof f->err), STORE_STALE);
    EXPECT(f, store_put(f->s, "k", 1, "bb", 2, 0, &bb, f->err, sizeof f->err), STORE_OK);
    EXPECT(f, store_put(f->s, "k", 1, "b", 1, 0, &b, f->err, sizeof f->err), STORE_STALE);
    commit(f);
    EXPECT(f, store_del(f->s, "k", 1, &c, f->err, sizeof f->err), STORE_OK);
    commit(f);
    EXPECT(f, store_get(f->s, "k", 1, 1, &r, f->err, sizeof f->err), STORE_NOT_FOUND);
    assert_string_equal(r.version.origin, "c");
}

static void test_reopen_and_meta(void **state)
{
    fx *f = *state;
    char longid[STORE_ORIGIN_MAX + 2];
    uint64_t inc1, inc2;
    reopen(f);
    assert_string_equal(store_node_id(f->s), "");
    assert_int_equal(store_max_hlc(f->s), 0);
    assert_int_equal(store_set_node_id(f->s, "", f->err, sizeof f->err), -1);
    memset(longid, 'n', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(store_set_node_id(f->s, longid, f->err, sizeof f->err), -1);
    longid[STORE_ORIGIN_MAX] = '\0';
    assert_int_equal(store_set_node_id(f->s, longid, f->err, sizeof f->err), 0);
    assert_int_equal(store_set_node_id(f->s, "node-1", f->err, sizeof f->err), 0);

    put(f, "k", 1, "v", 1, 12345);
    assert_int_equal(store_max_hlc(f->s), 12345); /* pending counts */
    commit(f);
    put(f, "j", 1, "v", 1, 99999);
    EXPECT(f, store_put(f->s, "", 0, "v", 1, 0, &(store_version){1, "x"}, f->err,
                        sizeof f->err), STORE_ERR_IO);
    assert_int_equal(store_max_hlc(f->s), 12345); /* discarded */
    put(f, "i", 1, "v", 1, 200);                  /* lower: meta unchanged */
    commit(f);
    uint64_t live_inc = store_incarnation(f->s);
    inc1 = read_incarnation(f);
    assert_true(inc1 >= 1);
    assert_true(live_inc == inc1); /* the accessor reports what is persisted */

    reopen(f);
    assert_true(store_incarnation(f->s) == inc1 + 1);
    assert_string_equal(store_node_id(f->s), "node-1");
    assert_int_equal(store_max_hlc(f->s), 12345);
    check_value(f, "k", 1, "v", 1);
    check_value(f, "i", 1, "v", 1);
    check_absent(f, "j", 1);
    inc2 = read_incarnation(f);
    assert_int_equal(inc2, inc1 + 1);
}

static void test_fsync_modes(void **state)
{
    fx *f = *state;
    store_fsync modes[] = {STORE_FSYNC_ALWAYS, STORE_FSYNC_EVERYSEC, STORE_FSYNC_NO};
    char k[8];
    for (int m = 0; m < 3; m++) {
        snprintf(k, sizeof k, "m%d", m);
        reopen_fsync(f, 8 * MB, modes[m]);
        put(f, k, strlen(k), "v", 1, (uint64_t)m + 1);
        commit(f);
        if (modes[m] == STORE_FSYNC_EVERYSEC)
            usleep(1200 * 1000); /* let the syncer run once */
        put(f, "pending", 7, k, strlen(k), (uint64_t)m + 1); /* close commits */
        reopen_fsync(f, 8 * MB, modes[m]);
        for (int i = 0; i <= m; i++) {
            snprintf(k, sizeof k, "m%d", i);
            check_value(f, k, strlen(k), "v", 1);
        }
        check_value(f, "pending", 7, k, strlen(k));
        store_close(f->s);
        f->s = NULL;
    }
}

static void test_map_full(void **state)
{
    fx *f = *state;
    store_options tiny = {.dir = f->dir, .map_size = 4096, .fsync = STORE_FSYNC_NO};
    uint8_t *v = calloc(1, 64 * 1024);
    store_version ve;
    store_result res = STORE_OK;
    char k[16];
    int n;

    assert_non_null(v);
    /* Below what two named tables need, open fails with a message. */
    assert_null(store_open(&tiny, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "map_size"));

    reopen_fsync(f, MB, STORE_FSYNC_ALWAYS);
    put(f, "small1", 6, "v", 1, 1);
    put(f, "small2", 6, "v", 1, 1);
    commit(f);
    for (n = 0; n < 100; n++) {
        snprintf(k, sizeof k, "big%d", n);
        ve = ver(2, "n1");
        res = store_put(f->s, k, strlen(k), v, 64 * 1024, 0, &ve, f->err, sizeof f->err);
        if (res != STORE_OK)
            break;
    }
    assert_int_equal(res, STORE_ERR_FULL);
    assert_true(n > 0);
    assert_non_null(strstr(f->err, "map_size of 1048576 bytes"));
    assert_false(store_batch_dirty(f->s));
    assert_int_equal(store_max_hlc(f->s), 1);
    commit(f);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "big%d", i);
        check_absent(f, k, strlen(k));
    }
    check_value(f, "small1", 6, "v", 1);
    put(f, "small3", 6, "v", 1, 3);
    put(f, "mid", 3, v, 16 * 1024, 3);
    commit(f);
    check_value(f, "small3", 6, "v", 1);
    check_value(f, "mid", 3, v, 16 * 1024);
    assert_int_equal(stats(f).records, 4);
    free(v);
}

/* Damaged records read as STORE_ERR_IO; sweeping and reopening survive them. */
static void test_corrupt_records(void **state)
{
    fx *f = *state;
    static const struct {
        const char *name;
        size_t len;
        uint8_t bytes[32];
    } bad[] = {
        {"short", 3, {1, 0, 0}},
        {"format", 19, {9}},
        {"flags", 19, {1, 0x80}},
        {"origin", 20, {1, 0, [18] = 5, [19] = 'x'}},
        {"nulorigin", 21, {1, 0, [18] = 2, [19] = 'x', [20] = 0}},
        {"longkey", 25, {1, 0x02, [18] = 0, [19] = 0, [20] = 0, [21] = 1, [22] = 0}},
        {"tombval", 22, {1, 0x01, [18] = 0, [19] = 'v'}},
        {"emptyrec", 0, {0}},
    };
    const size_t nbad = sizeof bad / sizeof bad[0];
    uint8_t lk[600];
    store_version v = ver(1000, "n1");
    store_record r;

    reopen(f);
    put(f, "good", 4, "v", 1, 1);
    commit(f);
    store_close(f->s);
    f->s = NULL;
    for (size_t i = 0; i < nbad; i++) {
        raw_rec rr = {lk, short_lmdb_key(bad[i].name, strlen(bad[i].name), lk),
                      bad[i].bytes, bad[i].len};
        raw_txn(f, "data", raw_put_fn, &rr);
    }
    reopen(f);
    assert_int_equal(stats(f).records, nbad + 1);
    for (size_t i = 0; i < nbad; i++) {
        const char *k = bad[i].name;
        f->err[0] = '\0';
        EXPECT(f, store_get(f->s, k, strlen(k), 1, &r, f->err, sizeof f->err), STORE_ERR_IO);
        assert_non_null(strstr(f->err, "corrupt"));
        EXPECT(f, store_put(f->s, k, strlen(k), "v", 1, 0, &v, f->err, sizeof f->err), STORE_ERR_IO);
    }
    assert_int_equal(sweep(f, UINT64_MAX / 2, 0, 100), 0);
    commit(f);
    check_value(f, "good", 4, "v", 1);
}


/* A machine crash under everysec or no is told from a process crash by the
 * kernel's boot id: the store was open with unsynced commits, was never
 * closed, and the machine has booted since. */
static store *open_boot(fx *f, store_fsync mode, const char *boot)
{
    store_options o = {.dir = f->dir, .map_size = 64 * MB, .fsync = mode, .boot_id = boot};
    store *s = store_open(&o, f->err, sizeof f->err);
    if (!s)
        fail_msg("store_open: %s", f->err);
    return s;
}

/* A child opens the store, commits a write and exits without closing. */
static void crash_child(fx *f, store_fsync mode, const char *boot)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.dir = f->dir, .map_size = 64 * MB, .fsync = mode, .boot_id = boot};
        store_version v = ver(at_ms(1000), boot);
        char err[256];
        store *s = store_open(&o, err, sizeof err);
        if (!s || store_put(s, boot, strlen(boot), "v", 1, 0, &v, err, sizeof err) != STORE_OK ||
            store_commit(s, err, sizeof err) != STORE_OK)
            _exit(1);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_crash_suspect(void **state)
{
    fx *f = *state;
    store_record r;
    store *s;

    crash_child(f, STORE_FSYNC_EVERYSEC, "boot-a"); /* a process crash */
    s = open_boot(f, STORE_FSYNC_EVERYSEC, "boot-a");
    assert_false(store_crash_suspect(s));
    assert_int_equal(store_get(s, "boot-a", 6, 0, &r, f->err, sizeof f->err), STORE_OK);
    store_close(s);
    s = open_boot(f, STORE_FSYNC_EVERYSEC, "boot-b"); /* a reboot after a clean close */
    assert_false(store_crash_suspect(s));
    store_close(s);

    crash_child(f, STORE_FSYNC_EVERYSEC, "boot-c"); /* the machine goes down */
    s = open_boot(f, STORE_FSYNC_EVERYSEC, "boot-d");
    assert_true(store_crash_suspect(s));
    store_close(s);
    s = open_boot(f, STORE_FSYNC_EVERYSEC, "boot-d"); /* told once: closed cleanly since */
    assert_false(store_crash_suspect(s));
    store_close(s);

    crash_child(f, STORE_FSYNC_NO, "boot-e"); /* `no` is as unsynced */
    s = open_boot(f, STORE_FSYNC_ALWAYS, "boot-f");
    assert_true(store_crash_suspect(s));
    store_close(s);
    crash_child(f, STORE_FSYNC_ALWAYS, "boot-g"); /* `always` syncs every commit */
    s = open_boot(f, STORE_FSYNC_EVERYSEC, "boot-h");
    assert_false(store_crash_suspect(s));
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_without_readahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sees_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_key_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lww, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lww_origin_tiebreak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_key_order_is_memcmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_suspect, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
