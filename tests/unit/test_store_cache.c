/* Unit tests for the store's row cache: the table itself (store_cache.c),
 * and the store with a cache against the same store without one, op for op,
 * so any way the cache could show a record LMDB does not hold (a discarded
 * batch, a purge, a dropped range, an eviction) shows as a difference. The
 * same comparison runs with the cache as write-behind (fsync everysec),
 * with crashes: both stores are abandoned as a kill -9 would leave them and
 * opened again, and must agree on every key after the replay of the log.
 */
#include "store_fx.h"
#include "store_cache.h"

/* ---- the table ---- */

static void key_of(uint8_t *k, unsigned i)
{
    /* The store's keys start with an 8-byte hash; here a spread-out one. */
    uint64_t t = XXH3_64bits(&i, sizeof i);
    memcpy(k, &t, 8);
    memcpy(k + 8, &i, sizeof i);
}

/* The token of a key key_of made: its first 8 bytes, big-endian. */
static uint64_t token_of_key(const uint8_t *k)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | k[i];
    return t;
}

static void test_table_finds_what_it_holds(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 64 * MB);
    uint8_t k[12], rec[8];
    cache_hit h;

    for (unsigned i = 0; i < 5000; i++) {
        key_of(k, i);
        memcpy(rec, &i, sizeof i);
        if (i % 3 == 0)
            store_cache_add_read(&c, k, sizeof k, NULL, 0, NULL);
        else
            store_cache_add_read(&c, k, sizeof k, rec, sizeof i, NULL);
    }
    /* Forget every fifth: backward-shift deletion must keep the others'
     * probe chains whole. */
    for (unsigned i = 0; i < 5000; i += 5) {
        key_of(k, i);
        store_cache_forget(&c, k, sizeof k);
    }
    store_cache_settle(&c);
    assert_int_equal(c.n, 5000 - 1000);
    for (unsigned i = 0; i < 5000; i++) {
        key_of(k, i);
        bool found = store_cache_find(&c, k, sizeof k, &h);
        if (i % 5 == 0) {
            assert_false(found);
            continue;
        }
        assert_true(found);
        assert_int_equal(h.absent, i % 3 == 0);
        if (!h.absent) {
            unsigned v;
            assert_int_equal(h.rlen, sizeof v);
            memcpy(&v, h.rec, sizeof v);
            assert_int_equal(v, i);
        }
    }
    store_cache_free(&c);
}

/* Past 2 MiB the slot table is allocated apart, for huge pages, and
 * zeroed by hand: a table that large holds what was added and nothing
 * else. */
static void test_table_grows_past_huge_page(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 256 * MB);
    uint8_t k[12], rec[sizeof(unsigned)];
    cache_hit h;
    enum { N = 70000 };
    for (unsigned i = 0; i < N; i++) {
        key_of(k, i);
        memcpy(rec, &i, sizeof i);
        store_cache_add_read(&c, k, sizeof k, rec, sizeof rec, NULL);
    }
    store_cache_settle(&c);
    assert_int_equal(c.n, N);
    assert_true((c.mask + 1) * sizeof *c.slots > ((size_t)2 << 20));
    for (unsigned i = 0; i < N + 1000; i++) {
        key_of(k, i);
        bool found = store_cache_find(&c, k, sizeof k, &h);
        assert_int_equal(found, i < N);
        if (found) {
            unsigned v;
            memcpy(&v, h.rec, sizeof v);
            assert_int_equal(v, i);
        }
    }
    store_cache_free(&c);
}

static void test_table_evicts_to_its_budget(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 64 * 1024);
    uint8_t k[12], rec[200] = {0};
    cache_hit h;

    for (unsigned i = 0; i < 3000; i++) {
        key_of(k, i);
        store_cache_add_read(&c, k, sizeof k, rec, sizeof rec, NULL);
        if (i % 100 == 99) {
            store_cache_settle(&c);
            assert_true(c.bytes <= c.max_bytes);
        }
    }
    assert_true(c.evictions > 0);
    assert_true(c.n > 100); /* it kept what fits */
    /* A key used since the hand last passed survives the next sweep of it:
     * keep one hot while many more come in. */
    uint8_t hot[12];
    key_of(hot, 2999);
    assert_true(store_cache_find(&c, hot, sizeof hot, &h));
    for (unsigned i = 3000; i < 3050; i++) {
        key_of(k, i);
        store_cache_add_read(&c, k, sizeof k, rec, sizeof rec, NULL);
        store_cache_find(&c, hot, sizeof hot, &h);
        store_cache_settle(&c);
    }
    assert_true(store_cache_find(&c, hot, sizeof hot, &h));
    /* One record above its share of the budget is not kept. */
    static uint8_t big[4096];
    key_of(k, 9999);
    store_cache_add_read(&c, k, sizeof k, big, sizeof big, NULL);
    assert_false(store_cache_find(&c, k, sizeof k, &h));
    store_cache_free(&c);
}

static void test_table_abort_forgets_the_batch(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, MB);
    uint8_t k1[12], k2[12];
    const uint8_t old[] = "old!", new1[] = "new!", x[] = "x", longer[] = "a longer one";
    cache_hit h;

    key_of(k1, 1);
    key_of(k2, 2);
    store_cache_add_read(&c, k1, sizeof k1, old, sizeof old, NULL);
    store_cache_write(&c, k1, sizeof k1, new1, sizeof new1, NULL); /* fits: in place */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_int_equal(h.rlen, sizeof new1);
    assert_memory_equal(h.rec, new1, sizeof new1);
    store_cache_write(&c, k2, sizeof k2, new1, sizeof new1, NULL); /* no entry: none made */
    assert_false(store_cache_find(&c, k2, sizeof k2, &h));
    store_cache_abort(&c);
    assert_false(store_cache_find(&c, k1, sizeof k1, &h)); /* LMDB has "old!" again */
    assert_int_equal(c.nbatch, 0);

    store_cache_add_read(&c, k1, sizeof k1, old, sizeof old, NULL);
    store_cache_write(&c, k1, sizeof k1, x, sizeof x, NULL); /* a smaller record fits */
    store_cache_commit(&c);
    store_cache_abort(&c); /* nothing of the committed batch goes */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_int_equal(h.rlen, sizeof x);
    assert_memory_equal(h.rec, x, sizeof x);

    /* Outgrown: a miss until a read refills it. */
    store_cache_write(&c, k1, sizeof k1, longer, sizeof longer, NULL);
    store_cache_commit(&c);
    assert_false(store_cache_find(&c, k1, sizeof k1, &h));
    store_cache_add_read(&c, k1, sizeof k1, longer, sizeof longer, NULL);
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_memory_equal(h.rec, longer, sizeof longer);
    store_cache_write(&c, k1, sizeof k1, NULL, 0, NULL); /* a delete the store describes */
    assert_true(store_cache_find(&c, k1, sizeof k1, &h));
    assert_true(h.absent);
    store_cache_settle(&c);
    store_cache_free(&c);
}

/* What store_cache_version says of key k: -1 when it cannot say, 0 no
 * record, else the hlc, with the origin in *o. */
static long long slot_version(store_cache *c, const uint8_t *k, size_t klen, const char **o)
{
    bool found = true;
    uint64_t hlc = 0;
    *o = NULL;
    if (!store_cache_version(c, k, klen, &found, &hlc, o))
        return -1;
    return found ? (long long)hlc : 0;
}

/* A slot keeps its record's version, so that a version-only read need not
 * read the entry: through fills, writes in place, an outgrown record, a
 * dirty one, an abort, backward-shift deletion and the table's growth; and
 * never for another key of the same token. */
static void test_slot_keeps_the_version(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, 64 * MB);
    uint8_t k[12], k2[12];
    const uint8_t rec[] = "record", bigger[] = "a far bigger record";
    const char *o;
    cache_ver v1 = {.hlc = 7, .origin = "node-a", .olen = 6};
    cache_ver v2 = {.hlc = 9, .origin = "node-b", .olen = 6};

    key_of(k, 1);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), -1); /* not cached */
    store_cache_add_read(&c, k, sizeof k, rec, sizeof rec, &v1);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), 7);
    assert_string_equal(o, "node-a");
    assert_int_equal(c.version_hits, 1);

    /* Another key of the same token, not cached: the check tells it apart
     * without the entry's key. Then cached too: each its own version. */
    memcpy(k2, k, 8);
    memset(k2 + 8, 0xee, 4);
    assert_int_equal(slot_version(&c, k2, sizeof k2, &o), -1);
    store_cache_add_read(&c, k2, sizeof k2, NULL, 0, &v2); /* LMDB has none */
    assert_int_equal(slot_version(&c, k2, sizeof k2, &o), 0);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), 7);

    /* Written in place, the slot follows; without a version to keep, it
     * says nothing; outgrown (stale), nothing until a read refills it. */
    store_cache_write(&c, k, sizeof k, rec, sizeof rec, &v2);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), 9);
    assert_string_equal(o, "node-b");
    store_cache_write(&c, k, sizeof k, rec, sizeof rec, NULL);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), -1);
    store_cache_write(&c, k, sizeof k, bigger, sizeof bigger, &v1);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), -1);
    store_cache_commit(&c);
    store_cache_add_read(&c, k, sizeof k, bigger, sizeof bigger, &v1);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), 7);

    /* A discarded batch forgets what it wrote, the slot with it. */
    store_cache_write(&c, k, sizeof k, rec, sizeof rec, &v2);
    store_cache_abort(&c);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), -1);

    /* k2 sits after k on their token's chain: forgetting k shifts it back,
     * its version along. */
    store_cache_add_read(&c, k, sizeof k, rec, sizeof rec, &v1);
    store_cache_forget(&c, k2, sizeof k2);
    store_cache_add_read(&c, k2, sizeof k2, rec, sizeof rec, &v2);
    store_cache_forget(&c, k, sizeof k);
    assert_int_equal(slot_version(&c, k, sizeof k, &o), -1);
    assert_int_equal(slot_version(&c, k2, sizeof k2, &o), 9);
    store_cache_settle(&c);

    /* Dirty records (write-behind), over a table that grows 64 times: each
     * keeps its own version, among origins past the table's room. */
    enum { N = 70000 };
    char name[16];
    for (unsigned i = 0; i < N; i++) {
        key_of(k, 100 + i);
        snprintf(name, sizeof name, "n%u", i % (CACHE_ORIGINS_MAX + 50));
        cache_ver v = {.hlc = 1000 + i, .origin = name, .olen = strlen(name)};
        uint8_t *p = store_cache_put_dirty(&c, k, sizeof k, sizeof rec, true, 1, &v);
        assert_non_null(p);
        memcpy(p, rec, sizeof rec);
    }
    for (unsigned i = 0; i < N; i++) {
        key_of(k, 100 + i);
        snprintf(name, sizeof name, "n%u", i % (CACHE_ORIGINS_MAX + 50));
        long long got = slot_version(&c, k, sizeof k, &o);
        if (i % (CACHE_ORIGINS_MAX + 50) >= CACHE_ORIGINS_MAX - 2) { /* node-a, node-b */
            assert_int_equal(got, -1);                               /* an origin it cannot name */
            continue;
        }
        assert_int_equal(got, 1000 + i);
        assert_string_equal(o, name);
    }
    assert_int_equal(c.origins.n, CACHE_ORIGINS_MAX);
    store_cache_free(&c);
}

static int count_flushed(void *arg, const uint8_t *k, size_t klen, const uint8_t *rec,
                         size_t rlen)
{
    (void)k, (void)klen, (void)rec, (void)rlen;
    (*(int *)arg)++;
    return 0;
}

/* A dirty record written over a far bigger one gets a right-sized entry:
 * the room counts in the budget and sets the write-back's pace. One that
 * still fills a good part of the room stays where it is. */
static void test_dirty_record_shrinks_its_entry(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, MB);
    uint8_t k[12];
    static uint8_t big[1024];
    const uint8_t small[] = "abc";
    cache_hit h;
    int flushed = 0;

    key_of(k, 7);
    memset(big, 'v', sizeof big);
    uint8_t *at = store_cache_put_dirty(&c, k, sizeof k, sizeof big, true, 1, NULL);
    assert_non_null(at);
    memcpy(at, big, sizeof big);
    size_t big_bytes = c.bytes;
    assert_true(big_bytes >= sizeof big);
    assert_int_equal(c.dirty_bytes, big_bytes);

    at = store_cache_put_dirty(&c, k, sizeof k, 700, false, 2, NULL); /* most of the room: kept */
    assert_non_null(at);
    memset(at, 'w', 700);
    assert_int_equal(c.bytes, big_bytes);

    at = store_cache_put_dirty(&c, k, sizeof k, sizeof small, false, 3, NULL);
    assert_non_null(at);
    memcpy(at, small, sizeof small);
    assert_true(c.bytes < 128);
    assert_int_equal(c.dirty_bytes, c.bytes);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.dirty_n, 1);
    assert_int_equal(c.dirty_new, 1); /* still a key LMDB has no record of */
    assert_int_equal(store_cache_pins(&c, 1) + store_cache_pins(&c, 2), 0);
    assert_int_equal(store_cache_pins(&c, 3), 1);
    assert_true(store_cache_find(&c, k, sizeof k, &h));
    assert_int_equal(h.rlen, sizeof small);
    assert_memory_equal(h.rec, small, sizeof small);

    /* Shrinking while a flush holds the entry (handed to LMDB's batch, not
     * committed yet): the entry the flush points at must stay; the new
     * record is dirty after the commit. */
    key_of(k, 8);
    at = store_cache_put_dirty(&c, k, sizeof k, sizeof big, true, 4, NULL);
    assert_non_null(at);
    memcpy(at, big, sizeof big);
    assert_int_equal(store_cache_flush_all(&c, count_flushed, &flushed), 2);
    at = store_cache_put_dirty(&c, k, sizeof k, sizeof small, false, 5, NULL);
    assert_non_null(at);
    memcpy(at, small, sizeof small);
    store_cache_flush_commit(&c);
    assert_int_equal(c.dirty_n, 1); /* key 8's new record; key 7's was written back */
    assert_true(store_cache_token_dirty(&c, token_of_key(k)));
    assert_false(store_cache_token_dirty(&c, token_of_key(k) ^ 2)); /* no such entry */
    {
        uint8_t k7[sizeof k];
        key_of(k7, 7);
        assert_false(store_cache_token_dirty(&c, token_of_key(k7))); /* written back */
    }
    assert_true(c.bytes < 256);
    assert_true(store_cache_find(&c, k, sizeof k, &h));
    assert_memory_equal(h.rec, small, sizeof small);
    store_cache_settle(&c);
    store_cache_free(&c);
}

/* n dirty 3-byte records under key_of(0..n-1), key i's in log segment
 * 1 + i % nsegs. */
static void put_dirty_keys(store_cache *c, unsigned n, unsigned nsegs)
{
    uint8_t k[12];
    for (unsigned i = 0; i < n; i++) {
        key_of(k, i);
        uint8_t *at = store_cache_put_dirty(c, k, sizeof k, 3, true, 1 + i % nsegs, NULL);
        assert_non_null(at);
        memcpy(at, "abc", 3);
    }
}

/* A walk hands over only the records in log segments before `young`,
 * walks past the others (they count as walked), and stops where it passes
 * the table's end, so that the next pass starts with its own `young`. */
static void test_flush_walk_passes_young_records(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, MB);
    const unsigned n = 100;
    put_dirty_keys(&c, n, 2);
    size_t nslots = c.mask + 1, walked = 0;
    int handed = 0;
    bool wrapped = false;
    c.cursor = nslots / 2;
    long r = store_cache_flush(&c, 2 * nslots, 0, 2, count_flushed, &handed, &wrapped, &walked);
    assert_int_equal(r, handed);
    assert_true(wrapped);
    assert_int_equal(walked, nslots - nslots / 2); /* up to the end, not round again */
    assert_int_equal(c.cursor, 0);
    assert_true(handed > 0 && handed < (int)n / 2);
    /* The rest of the table: every record of segment 1 handed, none of 2. */
    int first = handed;
    assert_int_equal(store_cache_flush(&c, nslots, 0, 2, count_flushed, &handed, &wrapped,
                                       &walked),
                     (int)n / 2 - first);
    assert_int_equal(handed, n / 2);
    store_cache_flush_commit(&c);
    assert_int_equal(c.dirty_n, n / 2);
    store_cache_free(&c);
}

/* A flush walk bounded in records stops at the bound, where its cursor
 * is, and the next walk goes on from there: each dirty record is handed
 * once, and the walk round the table ends after all of them. */
static void test_flush_walk_stops_at_its_bound(void **state)
{
    (void)state;
    store_cache c;
    store_cache_init(&c, MB);
    const unsigned n = 100;
    put_dirty_keys(&c, n, 1);
    size_t nslots = c.mask + 1, total_walked = 0;
    int handed = 0, calls = 0;
    bool wrapped = false;
    while (!wrapped) {
        int before = handed;
        size_t walked = 0;
        long r = store_cache_flush(&c, nslots - total_walked, 7, UINT64_MAX, count_flushed,
                                   &handed, &wrapped, &walked);
        assert_int_equal(r, handed - before);
        assert_true(r <= 7);
        assert_true(walked <= nslots - total_walked);
        if (!wrapped) /* stopped early at the bound */
            assert_int_equal(r, 7);
        total_walked += walked;
        assert_true(++calls <= (int)n); /* it moves on each time */
    }
    assert_int_equal(handed, n);
    assert_int_equal(total_walked, nslots);
    assert_int_equal(calls, (n + 6) / 7);
    /* Unbounded, a walk owes what it was asked for: the handed records are
     * in the batch (flushing), so nothing more is handed. */
    size_t walked = 0;
    assert_int_equal(
        store_cache_flush(&c, nslots, 0, UINT64_MAX, count_flushed, &handed, &wrapped, &walked), 0);
    assert_int_equal(walked, nslots);
    store_cache_flush_commit(&c);
    assert_int_equal(c.dirty_n, 0);
    store_cache_settle(&c);
    store_cache_free(&c);
}

/* ---- the store with and without a cache ---- */

typedef struct pair {
    char dir[2][64];
    store *s[2]; /* [0] with a small cache, [1] without */
    size_t cache;
    store_fsync fsync; /* [0]'s; [1] has no cache, so no write-behind */
} pair;

static void pair_reopen(pair *p, int i)
{
    char err[256];
    store_options o = {.dir = p->dir[i], .map_size = 64 * MB,
                       .fsync = i == 0 ? p->fsync : STORE_FSYNC_NO,
                       .cache_size = i == 0 ? p->cache : 0,
                       .writeback_slots = 7}; /* the flush walk in small steps */
    p->s[i] = store_open(&o, err, sizeof err);
    if (!p->s[i])
        fail_msg("store_open: %s", err);
}

static void pair_open_fsync(pair *p, size_t cache, store_fsync fsync)
{
    p->cache = cache;
    p->fsync = fsync;
    for (int i = 0; i < 2; i++) {
        strcpy(p->dir[i], "/tmp/ringkv-cache-XXXXXX");
        assert_non_null(mkdtemp(p->dir[i]));
        pair_reopen(p, i);
    }
}

static void pair_open(pair *p, size_t cache) { pair_open_fsync(p, cache, STORE_FSYNC_NO); }

static void pair_close(pair *p)
{
    for (int i = 0; i < 2; i++) {
        store_close(p->s[i]);
        nftw(p->dir[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static uint64_t version_answers; /* store_get_version's, in same_get */

static void same_get(pair *p, const char *key, uint64_t now, int step)
{
    store_record r[2];
    store_result res[2];
    store_version v;
    bool found;
    char err[256];
    /* The version the cached store's slots tell, when they do, is the one
     * the store without a cache reads. */
    if (store_get_version(p->s[0], key, strlen(key), &found, &v)) {
        version_answers++;
        res[1] = store_get(p->s[1], key, strlen(key), now, &r[1], err, sizeof err);
        bool there = res[1] == STORE_OK || (res[1] == STORE_NOT_FOUND && r[1].version.hlc);
        if (found != there ||
            (found && (v.hlc != r[1].version.hlc || strcmp(v.origin, r[1].version.origin) != 0)))
            fail_msg("step %d: %s has version %llu/%s (found %d) in the slot, %llu/%s "
                     "(found %d) without a cache",
                     step, key, (unsigned long long)v.hlc, v.origin, found,
                     (unsigned long long)r[1].version.hlc, r[1].version.origin, there);
    }
    for (int i = 0; i < 2; i++)
        res[i] = store_get(p->s[i], key, strlen(key), now, &r[i], err, sizeof err);
    if (res[0] != res[1] || r[0].version.hlc != r[1].version.hlc ||
        strcmp(r[0].version.origin, r[1].version.origin) != 0 ||
        r[0].tombstone != r[1].tombstone || r[0].expires_ms != r[1].expires_ms ||
        r[0].value_len != r[1].value_len ||
        (r[0].value_len && memcmp(r[0].value, r[1].value, r[0].value_len) != 0))
        fail_msg("step %d: %s reads differently with the cache (result %d hlc %llu len %zu) "
                 "than without (result %d hlc %llu len %zu)", step, key, res[0],
                 (unsigned long long)r[0].version.hlc, r[0].value_len, res[1],
                 (unsigned long long)r[1].version.hlc, r[1].value_len);
}

/* A scan's records as "key:hlc:tombstone:value length" lines. */
typedef struct listing {
    char buf[64 * 1024];
    size_t len;
} listing;

static int list_item(void *arg, const store_item *it)
{
    listing *l = arg;
    int n = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%.*s:%llu:%d:%zu\n",
                     (int)it->klen, (const char *)it->key, (unsigned long long)it->version.hlc,
                     it->tombstone, it->vlen);
    if (n > 0 && (size_t)n < sizeof l->buf - l->len)
        l->len += (size_t)n;
    return 0;
}

static void same_scan(pair *p, uint64_t lo, uint64_t hi, int step)
{
    static listing l[2];
    char err[256];
    bool done;
    for (int i = 0; i < 2; i++) {
        l[i].len = 0;
        assert_true(store_scan(p->s[i], lo, hi, NULL, 0, 10000, list_item, &l[i], &done, err,
                               sizeof err) >= 0);
        assert_true(done);
    }
    if (l[0].len != l[1].len || memcmp(l[0].buf, l[1].buf, l[0].len) != 0)
        fail_msg("step %d: a scan lists with the cache\n%.*s\nand without\n%.*s", step,
                 (int)l[0].len, l[0].buf, (int)l[1].len, l[1].buf);
}

static void differential(size_t cache, store_fsync fsync, bool crash)
{
    pair p;
    pair_open_fsync(&p, cache, fsync);
    bool wb = fsync == STORE_FSYNC_EVERYSEC; /* the cached store writes behind */
    version_answers = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL, now = 1000000, hlc = 1;
    char key[32], err[256];
    static uint8_t val[700];
    uint64_t hits = 0, evictions = 0, written = 0; /* over every open of the cached store */
    int crashes = 0, crashes_dirty = 0;
    store_stats st[2];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)i;

    for (int step = 0; step < 60000; step++) {
        snprintf(key, sizeof key, "k%llu", (unsigned long long)(rnd(&x) % 600));
        unsigned op = (unsigned)(rnd(&x) % 100);
        store_result res[2];
        long n[2];
        if (op < 40) {
            same_get(&p, key, now, step);
        } else if (op < 60) { /* a put, sometimes older than what is stored */
            uint64_t h = rnd(&x) % 8 == 0 ? hlc / 2 : ++hlc;
            store_version v = ver(at_ms(now) + h, rnd(&x) % 2 ? "node-a" : "node-b");
            size_t len = (size_t)(rnd(&x) % 4 == 0 ? rnd(&x) % sizeof val : rnd(&x) % 16);
            uint64_t exp = rnd(&x) % 5 == 0 ? now + rnd(&x) % 200 : 0;
            for (int i = 0; i < 2; i++)
                res[i] = store_put(p.s[i], key, strlen(key), val, len, exp, &v, err, sizeof err);
            assert_int_equal(res[0], res[1]);
        } else if (op < 66) {
            store_version v = ver(at_ms(now) + ++hlc, "node-a");
            for (int i = 0; i < 2; i++)
                res[i] = store_del(p.s[i], key, strlen(key), &v, err, sizeof err);
            assert_int_equal(res[0], res[1]);
        } else if (op < 90) {
            for (int i = 0; i < 2; i++)
                assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
        } else if (op < 91) { /* an empty key fails and discards the batch */
            store_version v = ver(at_ms(now) + ++hlc, "node-a");
            /* Written behind, a failed write changes nothing: the batch
             * stands, so the store without a cache must keep its own. */
            for (int i = 0; i < (wb ? 1 : 2); i++)
                assert_int_equal(store_put(p.s[i], "", 0, val, 1, 0, &v, err, sizeof err),
                                 STORE_ERR_IO);
            assert_int_equal(store_write_errors_discard(p.s[0]), !wb);
        } else if (op < 94) { /* time passes; the sweep purges */
            now += rnd(&x) % 100;
            /* The sweep leaves keys written behind alone: both must hold
             * the same keys, committed, for it to purge the same ones. Its
             * table's order differs (the cached store's was rebuilt after
             * a crash), so each sweeps until a whole round is done: to the
             * end of this round, then one more. */
            if (wb) {
                assert_int_equal(store_write_back(p.s[0], err, sizeof err), 0);
                for (int i = 0; i < 2; i++)
                    assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
            }
            for (int i = 0; i < 2; i++) {
                n[i] = 0;
                for (int ends = 0, calls = 0; ends < 2; calls++) {
                    bool end = false;
                    long got = store_sweep(p.s[i], now, 50, 20, NULL, &end, err, sizeof err);
                    assert_true(got >= 0 && got <= 20 && calls < 1000);
                    n[i] += got, ends += end;
                }
            }
            assert_int_equal(n[0], n[1]);
        } else if (op < 98) { /* a read finds the key expired and purges it */
            for (int i = 0; i < 2; i++)
                assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
            same_get(&p, key, now, step); /* from the snapshot: cached */
            for (int i = 0; i < 2; i++)
                res[i] = store_purge_expired(p.s[i], key, strlen(key), now, err, sizeof err);
            assert_int_equal(res[0], res[1]);
            same_get(&p, key, now, step);
        } else if (op < 99) { /* a range given away */
            uint64_t lo = rnd(&x), hi = lo + (rnd(&x) >> 3);
            for (int i = 0; i < 2; i++)
                n[i] = store_drop_range(p.s[i], lo, hi, 30, err, sizeof err);
            assert_int_equal(n[0], n[1]);
        } else if (rnd(&x) % 30 == 0) {
            /* reopen: the cache starts empty, LMDB keeps what was committed;
             * after a crash, what was committed is what was logged */
            bool kill = crash && rnd(&x) % 2;
            store_get_stats(p.s[0], &st[0]);
            hits += st[0].cache_hits, evictions += st[0].cache_evictions;
            written += st[0].written_back;
            crashes += kill;
            crashes_dirty += kill && st[0].dirty > 0;
            for (int i = 0; i < 2; i++) {
                if (kill)
                    store_abandon(p.s[i]);
                else
                    store_close(p.s[i]);
                pair_reopen(&p, i);
            }
            for (unsigned k = 0; kill && k < 600; k++) { /* every key, after the replay */
                snprintf(key, sizeof key, "k%u", k);
                same_get(&p, key, now, step);
            }
        } else if (rnd(&x) % 3 == 0) { /* a range scanned (anti-entropy, streaming) */
            uint64_t lo = rnd(&x), hi = lo + (rnd(&x) >> 2);
            same_scan(&p, lo, hi, step);
        } else {
            same_get(&p, key, now, step);
        }
    }
    for (unsigned k = 0; k < 600; k++) {
        snprintf(key, sizeof key, "k%u", k);
        same_get(&p, key, now, -1);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_commit(p.s[i], err, sizeof err), STORE_OK);
        store_get_stats(p.s[i], &st[i]);
    }
    hits += st[0].cache_hits, evictions += st[0].cache_evictions;
    written += st[0].written_back;
    /* The run used the cache (or it proved nothing), and the store without
     * one counted nothing. */
    print_message("cache %zu bytes%s: %llu hits, %llu evictions, %llu written back, %d crashes "
                  "(%d with writes not yet in LMDB), %llu versions from slots\n",
                  cache, wb ? " (write-behind)" : "", (unsigned long long)hits,
                  (unsigned long long)evictions, (unsigned long long)written, crashes,
                  crashes_dirty, (unsigned long long)version_answers);
    assert_true(hits > 2000);
    assert_true(version_answers > 2000);
    assert_true(evictions > 1000 || cache > 8 * 1024);
    /* Dirty entries may outgrow the budget until written back. */
    assert_true(st[0].cache_bytes - st[0].dirty_bytes <= cache);
    assert_int_equal(st[1].cache_hits + st[1].cache_misses + st[1].cache_entries, 0);
    if (wb) {
        assert_true(written > 1000);
        if (crash)
            assert_true(crashes_dirty >= 5); /* the replay had work to do */
    } else {
        assert_int_equal(written, 0);
    }
    pair_close(&p);
}

static void test_cache_changes_no_answer(void **state)
{
    (void)state;
    differential(8 * 1024, STORE_FSYNC_NO, false); /* small: evictions all along */
}

/* Write-behind with a budget so small that dirty records alone exceed it
 * (every commit writes all of them back), and with one that holds them
 * (a slice per commit): both through kill -9 crashes. */
static void test_write_behind_changes_no_answer(void **state)
{
    (void)state;
    differential(8 * 1024, STORE_FSYNC_EVERYSEC, true);
    differential(64 * 1024, STORE_FSYNC_EVERYSEC, true);
}

/* The store's statistics count hits, misses and what is held. */
static void test_store_counts_hits(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, MB);
    store *s = p.s[0];
    store_version v = ver(at_ms(1000), "node-a");
    store_record r;
    store_stats st;
    char err[256];

    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_NOT_FOUND);
    assert_int_equal(store_put(s, "a", 1, "xyz", 3, 0, &v, err, sizeof err), STORE_OK);
    assert_int_equal(store_commit(s, err, sizeof err), STORE_OK);
    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_OK);
    assert_int_equal(store_get(s, "a", 1, 1000, &r, err, sizeof err), STORE_OK);
    assert_memory_equal(r.value, "xyz", 3);
    store_get_stats(s, &st);
    /* The first read cached the key as absent; the write outgrew that entry,
     * so the next read missed and refilled it, and the last one hit. */
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_entries, 1);
    assert_true(st.cache_bytes > 3);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_finds_what_it_holds),
        cmocka_unit_test(test_table_grows_past_huge_page),
        cmocka_unit_test(test_table_evicts_to_its_budget),
        cmocka_unit_test(test_table_abort_forgets_the_batch),
        cmocka_unit_test(test_slot_keeps_the_version),
        cmocka_unit_test(test_dirty_record_shrinks_its_entry),
        cmocka_unit_test(test_flush_walk_stops_at_its_bound),
        cmocka_unit_test(test_flush_walk_passes_young_records),
        cmocka_unit_test(test_cache_changes_no_answer),
        cmocka_unit_test(test_write_behind_changes_no_answer),
        cmocka_unit_test(test_store_counts_hits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
