/* store_cache: the store's row cache (see store_cache.h). */
#include "store_cache.h"

#include <stdlib.h>
#include <string.h>

#define ENTRY_LIVE 0x01    /* in the table (else on the dropped list) */
#define ENTRY_ABSENT 0x02  /* LMDB has no record under the key */
#define ENTRY_STALE 0x04   /* outgrown by a write: a miss, refilled by the next read */
#define FIRST_SLOTS 1024
/* One record may take at most this share of the budget: a few huge values
 * must not push out thousands of small ones. */
#define ENTRY_SHARE 64

struct cache_entry {
    cache_entry *next;  /* on the dropped list */
    uint32_t klen, rlen, cap; /* cap: room for the record, >= rlen */
    uint8_t flags;
    uint8_t ref;        /* CLOCK: used since the hand last passed */
    uint8_t data[];     /* the LMDB key, then the record */
};

void store_cache_init(store_cache *c, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    c->max_bytes = max_bytes;
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
    store_cache_clear(c);
    free_dropped(c);
    free(c->slots);
    free(c->batch);
    memset(c, 0, sizeof *c);
}

static uint64_t token_of(const uint8_t *k, size_t klen)
{
    uint64_t t = 0;
    memcpy(&t, k, klen < 8 ? klen : 8); /* XXH3 bytes: any byte order hashes well */
    return t;
}

/* The slot holding k, or the empty slot where it would go. */
static size_t probe(const store_cache *c, uint64_t token, const uint8_t *k, size_t klen)
{
    size_t i = token & c->mask;
    for (const cache_slot *sl; (sl = &c->slots[i])->e != NULL; i = (i + 1) & c->mask)
        if (sl->token == token && sl->e->klen == klen && memcmp(sl->e->data, k, klen) == 0)
            break;
    return i;
}

/* Takes the entry at slot i out of the table; it stays allocated until the
 * batch ends. Backward-shift deletion keeps every probe chain unbroken. */
static void remove_at(store_cache *c, size_t i)
{
    cache_entry *e = c->slots[i].e;
    c->slots[i].e = NULL;
    c->n--;
    c->bytes -= entry_bytes(e);
    e->flags &= (uint8_t)~ENTRY_LIVE;
    e->next = c->dropped;
    c->dropped = e;
    for (size_t j = (i + 1) & c->mask; c->slots[j].e; j = (j + 1) & c->mask) {
        size_t home = c->slots[j].token & c->mask;
        /* The entry at j may fill the hole at i if i lies on its probe
         * path, from home to j. */
        if (((j - home) & c->mask) >= ((j - i) & c->mask)) {
            c->slots[i] = c->slots[j];
            c->slots[j].e = NULL;
            i = j;
        }
    }
}

/* Room for one more entry at a load of at most one half. */
static bool reserve_slot(store_cache *c)
{
    size_t nslots = c->mask ? c->mask + 1 : 0;
    if ((c->n + 1) * 2 <= nslots)
        return true;
    size_t grown = nslots ? nslots * 2 : FIRST_SLOTS;
    cache_slot *old = c->slots, *slots = calloc(grown, sizeof *slots);
    if (!slots)
        return false;
    c->slots = slots;
    c->mask = grown - 1;
    for (size_t i = 0; i < nslots; i++)
        if (old[i].e) {
            size_t at = old[i].token & c->mask;
            while (c->slots[at].e)
                at = (at + 1) & c->mask;
            c->slots[at] = old[i];
        }
    free(old);
    c->hand = 0;
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

static void fill(cache_entry *e, const uint8_t *rec, size_t rlen)
{
    e->rlen = (uint32_t)rlen;
    e->flags = (uint8_t)(ENTRY_LIVE | (rec ? 0 : ENTRY_ABSENT));
    if (rlen)
        memcpy(e->data + e->klen, rec, rlen);
}

void store_cache_add_read(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                          size_t rlen)
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
    c->slots[probe(c, token, k, klen)] = (cache_slot){.token = token, .e = e};
    c->n++;
    c->bytes += entry_bytes(e);
}

void store_cache_write(store_cache *c, const uint8_t *k, size_t klen, const uint8_t *rec,
                       size_t rlen)
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
}

void store_cache_prefetch_slot(const store_cache *c, const uint8_t *k, size_t klen)
{
    if (c->n)
        __builtin_prefetch(&c->slots[token_of(k, klen) & c->mask]);
}

void store_cache_prefetch_entry(const store_cache *c, const uint8_t *k, size_t klen)
{
    if (!c->n)
        return;
    uint64_t token = token_of(k, klen);
    const cache_slot *sl = &c->slots[token & c->mask];
    if (sl->e && sl->token == token)
        __builtin_prefetch(sl->e);
}

void store_cache_forget(store_cache *c, const uint8_t *k, size_t klen)
{
    size_t i;
    if (c->n && c->slots[i = probe(c, token_of(k, klen), k, klen)].e)
        remove_at(c, i);
}

void store_cache_clear(store_cache *c)
{
    for (size_t i = 0; c->n && i <= c->mask; i++)
        if (c->slots[i].e) {
            cache_entry *e = c->slots[i].e;
            c->slots[i].e = NULL;
            e->flags &= (uint8_t)~ENTRY_LIVE;
            e->next = c->dropped;
            c->dropped = e;
            c->n--;
        }
    c->bytes = 0;
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
    while (c->bytes > c->max_bytes && c->n) {
        size_t i = c->hand & c->mask;
        cache_entry *e = c->slots[i].e;
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
