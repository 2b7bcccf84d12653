/* store_cache: the store's row cache (see store_cache.h). */
#include "store_cache.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#include "store.h"

_Static_assert(CACHE_ORIGIN_LEN == STORE_ORIGIN_MAX, "an origin the cache can name");
_Static_assert(sizeof(cache_slot) == 32, "two slots to a CPU cache line");

#define ENTRY_LIVE 0x01    /* in the table (else on the dropped list) */
#define ENTRY_ABSENT 0x02  /* LMDB has no record under the key */
#define ENTRY_STALE 0x04   /* outgrown by a write: a miss, refilled by the next read */
#define ENTRY_DIRTY 0x08   /* newer than LMDB's record: written back by a flush */
#define ENTRY_FLUSHING 0x10 /* written into LMDB's uncommitted batch, unchanged since */
#define ENTRY_NEW 0x20     /* dirty, and LMDB has no record of the key */
#define SLOT_DIRTY 1ULL    /* in cache_slot.token: the entry is dirty */
#define FIRST_SLOTS 1024
/* One record may take at most this share of the budget: a few huge values
 * must not push out thousands of small ones. */
#define ENTRY_SHARE 64

struct cache_entry {
    cache_entry *next;  /* on the dropped list */
    uint64_t seg;       /* dirty: the log segment holding the record */
    uint32_t klen, rlen, cap; /* cap: room for the record, >= rlen */
    uint8_t flags;
    uint8_t ref;        /* CLOCK: used since the hand last passed */
    uint8_t data[];     /* the LMDB key, then the record */
};

void store_cache_init(store_cache *c, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    c->max_bytes = max_bytes;
    /* Unknown to clients, so that no one picks keys whose checks collide
     * along with their tokens. */
    if (getrandom(&c->seed, sizeof c->seed, GRND_NONBLOCK) != (ssize_t)sizeof c->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->seed = XXH3_64bits(&ts, sizeof ts) ^ (uint64_t)(uintptr_t)c;
    }
}

static size_t entry_bytes(const cache_entry *e)
{
    return sizeof *e + e->klen + e->cap;
}

static void free_dropped(store_cache *c)
{
    while (c->dropped) {
        cache_entry *e = c->dropped;
        c->dropped = e->next;
        free(e);
    }
}

void store_cache_free(store_cache *c)
{
    for (size_t i = 0; c->n && i <= c->mask; i++)
        free(c->slots[i].e); /* dirty ones too */
    free_dropped(c);
    free(c->slots);
    free(c->batch);
    free(c->flushing);
    free(c->pins.n);
    free(c->origins.name);
    free(c->origins.index);
    memset(c, 0, sizeof *c);
}

/* The ring token: the key's first 8 bytes, big-endian. */
static uint64_t token_of(const uint8_t *k, size_t klen)
{
    uint64_t t = 0;
    memcpy(&t, k, klen < 8 ? klen : 8);
    return be64toh(t);
}

static size_t home(const store_cache *c, uint64_t token)
{
    return (size_t)(token >> c->shift);
}

static uint32_t check_of(const store_cache *c, const uint8_t *k, size_t klen)
{
    return (uint32_t)XXH3_64bits_withSeed(k, klen, c->seed);
}

/* The index of origin o (olen bytes) among c's origins, added if new; -1
 * when it cannot be named (the table full, out of memory, too long). */
static int origin_index(store_cache *c, const char *o, size_t olen)
{
    cache_origins *t = &c->origins;
    const size_t mask = 2 * CACHE_ORIGINS_MAX - 1; /* never more than half full */
    if (olen > CACHE_ORIGIN_LEN)
        return -1;
    if (!t->index) {
        t->index = calloc(mask + 1, sizeof *t->index);
        t->name = malloc(CACHE_ORIGINS_MAX * sizeof *t->name);
        if (!t->index || !t->name) {
            free(t->index), free(t->name);
            t->index = NULL, t->name = NULL;
            return -1;
        }
    }
    for (size_t h = XXH3_64bits(o, olen) & mask;; h = (h + 1) & mask) {
        size_t ix = t->index[h];
        if (ix == 0) {
            if (t->n == CACHE_ORIGINS_MAX)
                return -1;
            memcpy(t->name[t->n], o, olen);
            t->name[t->n][olen] = '\0';
            t->index[h] = (uint16_t)++t->n;
            return (int)t->n - 1;
        }
        if (memcmp(t->name[ix - 1], o, olen) == 0 && t->name[ix - 1][olen] == '\0')
            return (int)ix - 1;
    }
}

/* Slot i's entry now holds rec (NULL: LMDB has none) of version ver (NULL:
 * none to keep). */
static void summarize(store_cache *c, size_t i, const uint8_t *rec, const cache_ver *ver)
{
    cache_slot *sl = &c->slots[i];
    int o;
    if (!rec) {
        sl->sum = CACHE_SUM_ABSENT;
    } else if (ver && (o = origin_index(c, ver->origin, ver->olen)) >= 0) {
        sl->sum = CACHE_SUM_FOUND;
        sl->hlc = ver->hlc;
        sl->origin = (uint16_t)o;
    } else {
        sl->sum = CACHE_SUM_NONE;
    }
}

/* A slot for a new entry e of key k. */
static cache_slot new_slot(const store_cache *c, uint64_t token, cache_entry *e, const uint8_t *k,
                           size_t klen)
{
    return (cache_slot){.token = token, .e = e, .check = check_of(c, k, klen)};
}

/* The slot holding k, or the empty slot where it would go. */
static size_t probe(const store_cache *c, uint64_t token, const uint8_t *k, size_t klen)
{
    size_t i = home(c, token);
    for (const cache_slot *sl; (sl = &c->slots[i])->e != NULL; i = (i + 1) & c->mask)
        if (((sl->token ^ token) & ~SLOT_DIRTY) == 0 && sl->e->klen == klen &&
            memcmp(sl->e->data, k, klen) == 0)
            break;
    return i;
}

static void pin(store_cache *c, uint64_t seq)
{
    cache_pins *p = &c->pins;
    if (p->len == 0 && p->base < seq)
        p->base = seq;
    size_t i = (size_t)(seq - p->base);
    if (i >= p->cap) {
        size_t cap = p->cap ? p->cap : 16;
        while (cap <= i)
            cap *= 2;
        uint64_t *n = realloc(p->n, cap * sizeof *n);
        if (!n)
            abort(); /* a few words; losing count would lose data */
        p->n = n, p->cap = cap;
    }
    while (p->len <= i)
        p->n[p->len++] = 0;
    p->n[i]++;
}

static void unpin(store_cache *c, uint64_t seq)
{
    c->pins.n[seq - c->pins.base]--;
}

/* The entry at slot i stops being dirty. */
static void undirty(store_cache *c, size_t i)
{
    cache_entry *e = c->slots[i].e;
    unpin(c, e->seg);
    c->dirty_n--;
    c->dirty_bytes -= entry_bytes(e);
    c->dirty_new -= (e->flags & ENTRY_NEW) != 0;
    e->flags &= (uint8_t)~(ENTRY_DIRTY | ENTRY_FLUSHING | ENTRY_NEW);
    c->slots[i].token &= ~SLOT_DIRTY;
}

/* Takes the entry at slot i out of the table; it stays allocated until the
 * batch ends. Backward-shift deletion keeps every probe chain unbroken. */
static void remove_at(store_cache *c, size_t i)
{
    cache_entry *e = c->slots[i].e;
    if (e->flags & ENTRY_DIRTY)
        undirty(c, i);
    c->slots[i].e = NULL;
    c->n--;
    c->bytes -= entry_bytes(e);
    e->flags &= (uint8_t)~ENTRY_LIVE;
    e->next = c->dropped;
    c->dropped = e;
    for (size_t j = (i + 1) & c->mask; c->slots[j].e; j = (j + 1) & c->mask) {
        size_t h = home(c, c->slots[j].token);
        /* The entry at j may fill the hole at i if i lies on its probe
         * path, from home to j. */
        if (((j - h) & c->mask) >= ((j - i) & c->mask)) {
            c->slots[i] = c->slots[j];
            c->slots[j].e = NULL;
            i = j;
        }
    }
}

/* The slot table, zeroed: past 2 MiB in huge pages where the kernel
 * allows them (transparent huge pages, "madvise" or "always"). */
#define HUGE_PAGE ((size_t)2 << 20)
static cache_slot *slots_new(size_t n)
{
    size_t bytes = n * sizeof(cache_slot);
    if (bytes < HUGE_PAGE)
        return calloc(n, sizeof(cache_slot));
    cache_slot *s = aligned_alloc(HUGE_PAGE, bytes);
    if (!s)
        return NULL;
    madvise(s, bytes, MADV_HUGEPAGE); /* advice: its failure changes nothing */
    memset(s, 0, bytes);
    return s;
}

/* Room for one more entry at a load of at most one half. */
static bool reserve_slot(store_cache *c)
{
    size_t nslots = c->mask ? c->mask + 1 : 0;
    if ((c->n + 1) * 2 <= nslots)
        return true;
    size_t grown = nslots ? nslots * 2 : FIRST_SLOTS;
    cache_slot *old = c->slots, *slots = slots_new(grown);
    if (!slots)
        return false;
    c->slots = slots;
    c->mask = grown - 1;
    c->shift = 64 - __builtin_ctzll((unsigned long long)grown);
    for (size_t i = 0; i < nslots; i++)
        if (old[i].e) {
            size_t at = home(c, old[i].token);
            while (c->slots[at].e)
                at = (at + 1) & c->mask;
            c->slots[at] = old[i];
        }
    free(old);
    c->hand = 0;
    c->cursor = nslots ? c->cursor * 2 : 0; /* the same place in ring order */
    return true;
}

bool store_cache_peek(store_cache *c, const uint8_t *k, size_t klen, cache_hit *out)
{
    if (!c->n)
        return false;
    cache_entry *e = c->slots[probe(c, token_of(k, klen), k, klen)].e;
    if (!e || (e->flags & ENTRY_STALE))
        return false;
    out->absent = e->flags & ENTRY_ABSENT;
    out->rec = e->data + e->klen;
    out->rlen = e->rlen;
    return true;
}

bool store_cache_find(store_cache *c, const uint8_t *k, size_t klen, cache_hit *out)
{
    if (!c->max_bytes)
        return false;
    if (!c->n) {
        c->misses++;
        return false;
    }
    cache_entry *e = c->slots[probe(c, token_of(k, klen), k, klen)].e;
    if (!e || (e->flags & ENTRY_STALE)) {
        c->misses++;
        return false;
    }
    e->ref = 1;
    c->hits++;
    out->absent = e->flags & ENTRY_ABSENT;
    out->rec = e->data + e->klen;
    out->rlen = e->rlen;
    return true;
}

int store_cache_version(store_cache *c, const uint8_t *k, size_t klen, bool *found, uint64_t *hlc,
                        const char **origin)
{
    if (!c->n)
        return 0;
    uint64_t token = token_of(k, klen);
    uint32_t check = check_of(c, k, klen);
    for (size_t i = home(c, token); c->slots[i].e; i = (i + 1) & c->mask) {
        const cache_slot *sl = &c->slots[i];
        if (((sl->token ^ token) & ~SLOT_DIRTY) != 0 || sl->check != check)
            continue;
        if (sl->sum == CACHE_SUM_NONE)
            return 0;
        *found = sl->sum == CACHE_SUM_FOUND;
        if (*found) {
            *hlc = sl->hlc;
            *origin = c->origins.name[sl->origin];
        }
        c->hits++;
        c->version_hits++;
        return 1;
    }
    return 0;
}

static void fill(cache_entry *e, const uint8_t *rec, size_t rlen)
{
    e->rlen = (uint32_t)rlen;
    e->flags = (uint8_t)(ENTRY_LIVE | (rec ? 0 : ENTRY_ABSENT));
    if (rlen)
        memcpy(e->data + e->klen, rec, rlen);
}

void store_cache_add_read(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                          size_t rlen, const cache_ver *ver)
{
    uint64_t token = token_of(k, klen);
    cache_entry *e = NULL;
    size_t i = 0;
    if (!rec)
        rlen = 0;
    if (!c->max_bytes)
        return;
    if (c->n && (e = c->slots[i = probe(c, token, k, klen)].e) != NULL) {
        if (!(e->flags & ENTRY_STALE))
            return;
        if (rlen <= e->cap) { /* refilled where it is */
            fill(e, rec, rlen);
            summarize(c, i, rec, ver);
            return;
        }
        remove_at(c, i);
    }
    if (sizeof(cache_entry) + klen + rlen > c->max_bytes / ENTRY_SHARE || klen > UINT32_MAX ||
        rlen > UINT32_MAX || !reserve_slot(c) || !(e = malloc(sizeof *e + klen + rlen)))
        return; /* not kept: always safe */
    *e = (cache_entry){.klen = (uint32_t)klen, .cap = (uint32_t)rlen};
    memcpy(e->data, k, klen);
    fill(e, rec, rlen);
    i = probe(c, token, k, klen);
    c->slots[i] = new_slot(c, token & ~SLOT_DIRTY, e, k, klen);
    summarize(c, i, rec, ver);
    c->n++;
    c->bytes += entry_bytes(e);
}

void store_cache_write(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                       size_t rlen, const cache_ver *ver)
{
    size_t i;
    cache_entry *e;
    if (!c->n || !(e = c->slots[i = probe(c, token_of(k, klen), k, klen)].e))
        return; /* no allocation on the write path: reads fill the cache */
    if (!rec)
        rlen = 0;
    if (rlen > e->cap) {
        /* Outgrown. Marked rather than freed: the next read refills it,
         * and freeing here cost pipelined writes a fifth of their speed
         * in glibc's bins. A discarded batch needs nothing: a stale entry
         * is a miss, which reads LMDB. */
        e->flags |= ENTRY_STALE;
        c->slots[i].sum = CACHE_SUM_NONE;
        return;
    }
    /* Listed for an abort, once per write: a flag in the entry would cost
     * the commit a cache miss per entry to clear it. */
    if (c->nbatch == c->batch_cap) {
        size_t cap = c->batch_cap ? c->batch_cap * 2 : 256;
        cache_entry **b = realloc(c->batch, cap * sizeof *b);
        if (!b) { /* cannot undo it on an abort: keep no entry */
            remove_at(c, i);
            return;
        }
        c->batch = b, c->batch_cap = cap;
    }
    c->batch[c->nbatch++] = e;
    fill(e, rec, rlen);
    summarize(c, i, rec, ver);
}

void store_cache_prefetch_slot(const store_cache *c, const uint8_t *k, size_t klen)
{
    if (c->n)
        __builtin_prefetch(&c->slots[home(c, token_of(k, klen))]);
}

void store_cache_prefetch_entry(const store_cache *c, const uint8_t *k, size_t klen)
{
    if (!c->n)
        return;
    uint64_t token = token_of(k, klen);
    const cache_slot *sl = &c->slots[home(c, token)];
    if (sl->e && ((sl->token ^ token) & ~SLOT_DIRTY) == 0)
        __builtin_prefetch(sl->e);
}

void store_cache_prefetch_token(const store_cache *c, uint64_t token, bool entry)
{
    if (!c->n)
        return;
    const cache_slot *sl = &c->slots[home(c, token)];
    if (!entry)
        __builtin_prefetch(sl);
    else if (sl->e && ((sl->token ^ token) & ~SLOT_DIRTY) == 0)
        __builtin_prefetch(sl->e, 1); /* a write, or a read that sets its CLOCK bit */
}

void store_cache_forget(store_cache *c, const uint8_t *k, size_t klen)
{
    size_t i;
    if (c->n && c->slots[i = probe(c, token_of(k, klen), k, klen)].e)
        remove_at(c, i);
}

void store_cache_clear(store_cache *c)
{
    if (!c->n)
        return;
    if (!c->dirty_n) {
        for (size_t i = 0; i <= c->mask; i++)
            if (c->slots[i].e) {
                cache_entry *e = c->slots[i].e;
                c->slots[i].e = NULL;
                e->flags &= (uint8_t)~ENTRY_LIVE;
                e->next = c->dropped;
                c->dropped = e;
            }
        c->n = 0;
        c->bytes = 0;
        return;
    }
    /* Dirty entries stay: they are the only copy outside the log. An entry
     * shifted back into slot i is looked at again. */
    for (size_t i = 0; i <= c->mask; i++)
        while (c->slots[i].e && !(c->slots[i].token & SLOT_DIRTY))
            remove_at(c, i);
    /* A wrapped chain can shift a clean entry from past the end back into
     * the first slots, which the walk has passed. */
    for (size_t i = 0; i <= c->mask && c->n > c->dirty_n; i++)
        while (c->slots[i].e && !(c->slots[i].token & SLOT_DIRTY))
            remove_at(c, i);
}

void store_cache_commit(store_cache *c)
{
    c->nbatch = 0;
}

void store_cache_abort(store_cache *c)
{
    for (size_t i = 0; i < c->nbatch; i++) {
        cache_entry *e = c->batch[i];
        if (e->flags & ENTRY_LIVE) /* not forgotten since (entries stay allocated until settle) */
            store_cache_forget(c, e->data, e->klen);
    }
    c->nbatch = 0;
}

void store_cache_settle(store_cache *c)
{
    /* A bounded walk: dirty entries cannot go, and they may be most of
     * what is left. */
    for (size_t steps = 0; c->bytes > c->max_bytes && c->n > c->dirty_n &&
                           steps <= 3 * (c->mask + 1); steps++) {
        size_t i = c->hand & c->mask;
        cache_entry *e = c->slots[i].e;
        if (e && (c->slots[i].token & SLOT_DIRTY)) {
            c->hand = i + 1;
            continue;
        }
        if (e && (!e->ref || (e->flags & ENTRY_STALE))) {
            remove_at(c, i); /* the hand stays: a later entry may have moved here */
            c->evictions++;
            continue;
        }
        if (e)
            e->ref = 0;
        c->hand = i + 1;
    }
    free_dropped(c);
}

/* ---- write-behind ---- */

/* A record of rlen bytes in e's room would leave most of it unused. The
 * room counts in the budget, and dirty bytes set the write-back's pace:
 * 3-byte values written over 1 KiB ones kept 1 KiB apiece, so a cache
 * holding 40 bytes a record was full, and the walk went round three times
 * as fast as for what it held (one node in three, SETs -P16 after 1 KiB
 * ones: written back 110k records/s, at 185k SETs/s for the cluster). */
static bool shrunk(const cache_entry *e, size_t rlen)
{
    return e->cap >= 256 && rlen < e->cap / 4;
}

/* Gives the entry at slot i room for rlen bytes and no more, by realloc:
 * jemalloc (node/alloc.h) moves it among the entries of its new size
 * class; glibc's shrinks it in place, and what it frees is a chunk next to
 * live ones. With glibc, a new entry and a free of the old one instead
 * left the heap's large bins full of free chunks of every size (300,000
 * freed 1 KiB entries, merged with their neighbours), and each allocation
 * of a kilobyte or more (libevent's buffer chains) walked them: malloc
 * went from nothing to 6% of a node. False when the entry must stay where
 * it is: an uncommitted flush or batch points at it. */
static bool shrink_entry(store_cache *c, size_t i, size_t rlen)
{
    cache_entry *e = c->slots[i].e;
    if ((e->flags & ENTRY_FLUSHING) || c->nbatch)
        return false;
    size_t was = entry_bytes(e);
    cache_entry *ne = realloc(e, sizeof *e + e->klen + rlen);
    if (!ne)
        return true; /* the old room still holds it */
    ne->cap = (uint32_t)rlen;
    c->slots[i].e = ne;
    c->bytes = c->bytes - was + entry_bytes(ne);
    if (ne->flags & ENTRY_DIRTY)
        c->dirty_bytes = c->dirty_bytes - was + entry_bytes(ne);
    return true;
}

uint8_t *store_cache_put_dirty(store_cache *c, const uint8_t *k, size_t klen, size_t rlen,
                               bool lmdb_absent, uint64_t seg, const cache_ver *ver)
{
    uint64_t token = token_of(k, klen);
    cache_entry *e = NULL;
    size_t i = 0;
    uint8_t keep = 0;

    if (klen > UINT32_MAX || rlen > UINT32_MAX)
        return NULL;
    if (c->n && (e = c->slots[i = probe(c, token, k, klen)].e) != NULL && rlen <= e->cap &&
        (!shrunk(e, rlen) || shrink_entry(c, i, rlen))) {
        e = c->slots[i].e;
        if (e->flags & ENTRY_DIRTY) {
            unpin(c, e->seg);
            keep = e->flags & ENTRY_NEW;
        } else {
            c->dirty_n++;
            c->dirty_bytes += entry_bytes(e);
            keep = lmdb_absent ? ENTRY_NEW : 0;
        }
    } else {
        /* Missing, outgrown, or far too big and not to be moved: a new
         * entry in its place. */
        cache_entry *ne;
        if (!reserve_slot(c) || !(ne = malloc(sizeof *ne + klen + rlen)))
            return NULL;
        if (e && (e = c->slots[i = probe(c, token, k, klen)].e) != NULL) {
            keep = (e->flags & ENTRY_DIRTY) ? (e->flags & ENTRY_NEW)
                                            : (lmdb_absent ? ENTRY_NEW : 0);
            remove_at(c, i); /* freed at settle: what reads returned stays valid */
        } else {
            keep = lmdb_absent ? ENTRY_NEW : 0;
        }
        *ne = (cache_entry){.klen = (uint32_t)klen, .cap = (uint32_t)rlen};
        memcpy(ne->data, k, klen);
        e = ne;
        i = probe(c, token, k, klen);
        c->slots[i] = new_slot(c, token, e, k, klen);
        c->n++;
        c->bytes += entry_bytes(e);
        c->dirty_n++;
        c->dirty_bytes += entry_bytes(e);
    }
    c->dirty_new += keep && !(e->flags & ENTRY_NEW);
    e->flags = (uint8_t)(ENTRY_LIVE | ENTRY_DIRTY | keep);
    e->rlen = (uint32_t)rlen;
    e->ref = 1;
    e->seg = seg;
    c->slots[i].token = token | SLOT_DIRTY;
    summarize(c, i, e->data, ver); /* a record (the caller writes it) */
    pin(c, seg);
    return e->data + e->klen;
}

bool store_cache_token_dirty(const store_cache *c, uint64_t token)
{
    if (!c->dirty_n)
        return false;
    /* Every key of the token lies on the probe chain from its home. */
    for (size_t i = home(c, token); c->slots[i].e; i = (i + 1) & c->mask)
        if ((c->slots[i].token & SLOT_DIRTY) &&
            (c->slots[i].token | SLOT_DIRTY) == (token | SLOT_DIRTY))
            return true;
    return false;
}

/* Hands the dirty entry at slot i to fn, unless it was handed already. */
static int flush_at(store_cache *c, size_t i, cache_flush_fn fn, void *arg)
{
    cache_entry *e = c->slots[i].e;
    if (e->flags & ENTRY_FLUSHING)
        return 0;
    if (c->nflushing == c->flushing_cap) {
        size_t cap = c->flushing_cap ? c->flushing_cap * 2 : 256;
        struct cache_flushing *f = realloc(c->flushing, cap * sizeof *f);
        if (!f)
            return -1;
        c->flushing = f, c->flushing_cap = cap;
    }
    if (fn(arg, e->data, e->klen, e->data + e->klen, e->rlen) != 0)
        return -1;
    e->flags |= ENTRY_FLUSHING;
    c->flushing[c->nflushing++] = (struct cache_flushing){e, i};
    return 1;
}

/* The walk reads each dirty entry it meets, a CPU cache miss apiece: ask
 * for one further on before reading this one. */
#define FLUSH_PREFETCH 16

static void prefetch_ahead(const store_cache *c, size_t i)
{
    const cache_slot *sl = &c->slots[(i + FLUSH_PREFETCH) & c->mask];
    if (sl->e && (sl->token & SLOT_DIRTY))
        __builtin_prefetch(sl->e);
}

/* One slot of a flush walk: its entry to fn if dirty in a log segment
 * before `young` (counted in *handed). */
static int flush_slot(store_cache *c, size_t i, uint64_t young, cache_flush_fn fn, void *arg,
                      long *handed)
{
    prefetch_ahead(c, i);
    if (!c->slots[i].e || !(c->slots[i].token & SLOT_DIRTY) || c->slots[i].e->seg >= young)
        return 0;
    int r = flush_at(c, i, fn, arg);
    if (r > 0)
        *handed += r;
    return r;
}

long store_cache_flush(store_cache *c, size_t slots, size_t max, uint64_t young,
                       cache_flush_fn fn, void *arg, bool *wrapped, size_t *walked)
{
    long handed = 0;
    size_t n = 0;
    *wrapped = false;
    *walked = 0;
    if (!c->dirty_n)
        return 0;
    if (slots > c->mask + 1)
        slots = c->mask + 1;
    while (n < slots && (max == 0 || (size_t)handed < max)) {
        size_t i = c->cursor & c->mask;
        if (flush_slot(c, i, young, fn, arg, &handed) < 0)
            return -1;
        c->cursor = (i + 1) & c->mask;
        n++;
        if (c->cursor == 0) {
            *wrapped = true;
            break; /* the next pass starts in the next step, with its own `young` */
        }
    }
    *walked = n;
    return handed;
}

long store_cache_flush_all(store_cache *c, cache_flush_fn fn, void *arg)
{
    long handed = 0;
    for (size_t i = 0; c->dirty_n && i <= c->mask; i++)
        if (flush_slot(c, i, UINT64_MAX, fn, arg, &handed) < 0)
            return -1;
    return handed;
}

long store_cache_flush_range(store_cache *c, uint64_t lo, uint64_t hi, cache_flush_fn fn,
                             void *arg)
{
    long handed = 0;
    if (!c->dirty_n)
        return 0;
    /* A range covering every home slot but one: the whole table. */
    if (lo == hi || ((hi - lo) >> c->shift) >= c->mask)
        return store_cache_flush_all(c, fn, arg);
    /* An entry of the range has its home in [home(lo), home(hi)] and sits
     * at or after it, before the next empty slot. */
    size_t i = home(c, lo), span = (home(c, hi) - i) & c->mask;
    for (size_t n = 0; n <= c->mask && c->dirty_n; n++, i = (i + 1) & c->mask) {
        const cache_slot *sl = &c->slots[i];
        if (!sl->e) {
            if (n > span)
                break;
            continue;
        }
        if (!(sl->token & SLOT_DIRTY))
            continue;
        uint64_t t = token_of(sl->e->data, sl->e->klen);
        if (t - lo - 1 >= hi - lo) /* not in (lo, hi] */
            continue;
        int r = flush_at(c, i, fn, arg);
        if (r < 0)
            return -1;
        handed += r;
    }
    return handed;
}

int store_cache_flush_key(store_cache *c, const uint8_t *k, size_t klen, cache_flush_fn fn,
                          void *arg)
{
    size_t i;
    if (!c->dirty_n || !c->slots[i = probe(c, token_of(k, klen), k, klen)].e ||
        !(c->slots[i].token & SLOT_DIRTY))
        return 0;
    return flush_at(c, i, fn, arg) < 0 ? -1 : 1;
}

void store_cache_flush_commit(store_cache *c)
{
    for (size_t j = 0; j < c->nflushing; j++) {
        cache_entry *e = c->flushing[j].e;
        size_t i = c->flushing[j].slot;
        if ((e->flags & (ENTRY_LIVE | ENTRY_FLUSHING)) != (ENTRY_LIVE | ENTRY_FLUSHING))
            continue; /* dropped, or written again since */
        if (i > c->mask || c->slots[i].e != e) /* moved since */
            i = probe(c, token_of(e->data, e->klen), e->data, e->klen);
        undirty(c, i);
        c->flushed++;
    }
    c->nflushing = 0;
}

void store_cache_flush_abort(store_cache *c)
{
    for (size_t j = 0; j < c->nflushing; j++)
        c->flushing[j].e->flags &= (uint8_t)~ENTRY_FLUSHING;
    c->nflushing = 0;
}

uint64_t store_cache_pins(const store_cache *c, uint64_t seq)
{
    if (seq < c->pins.base || seq - c->pins.base >= c->pins.len)
        return 0;
    return c->pins.n[seq - c->pins.base];
}

void store_cache_pins_drop(store_cache *c, uint64_t seq)
{
    cache_pins *p = &c->pins;
    if (seq <= p->base)
        return;
    size_t d = (size_t)(seq - p->base);
    if (d >= p->len) {
        p->len = 0;
    } else {
        memmove(p->n, p->n + d, (p->len - d) * sizeof *p->n);
        p->len -= d;
    }
    p->base = seq;
}
