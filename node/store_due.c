/* store_due: the sweep's table of tokens with expiring records or
 * tombstones (store_due.h). */
#include <stdlib.h>
#include <string.h>

#include "store_due.h"

#define FIRST_SLOTS 1024
#define PEND_MAX    4096 /* notes waiting for a merge */
#define PREFETCH    8    /* inserts a merge asks the memory for ahead */

static size_t home(const store_due *d, uint64_t token)
{
    return (size_t)token & d->mask;
}

static bool empty(const due_slot *e)
{
    return e->exp_ms == 0 && e->tomb_ms == 0;
}

/* Moves every entry into a table of nslots slots (a power of two). */
static int rehash(store_due *d, size_t nslots)
{
    due_slot *old = d->slots, *slots = calloc(nslots, sizeof *slots);
    size_t oldn = d->mask ? d->mask + 1 : 0;
    if (!slots)
        return -1;
    d->slots = slots, d->mask = nslots - 1;
    for (size_t i = 0; i < oldn; i++) {
        if (empty(&old[i]))
            continue;
        size_t j = home(d, old[i].token);
        while (!empty(&slots[j]))
            j = (j + 1) & d->mask;
        slots[j] = old[i];
    }
    free(old);
    /* Entries moved: the sweep's round goes on from the same share of the
     * table, and what it misses it finds in the next round. */
    d->at = oldn ? (size_t)((double)d->at / (double)oldn * (double)nslots) : 0;
    return 0;
}

static uint64_t min_set(uint64_t a, uint64_t b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

/* Room for more entries at a load of at most three quarters. */
static int reserve(store_due *d, size_t more)
{
    size_t nslots = d->mask ? d->mask + 1 : 0, to = nslots ? nslots : FIRST_SLOTS;
    while ((d->n + more) * 4 > to * 3)
        to *= 2;
    return to == nslots ? 0 : rehash(d, to);
}

static int insert(store_due *d, const due_slot *e)
{
    size_t i;
    if (reserve(d, 1) != 0)
        return -1;
    for (i = home(d, e->token); !empty(&d->slots[i]); i = (i + 1) & d->mask)
        if (d->slots[i].token == e->token) {
            d->slots[i].exp_ms = min_set(d->slots[i].exp_ms, e->exp_ms);
            d->slots[i].tomb_ms = min_set(d->slots[i].tomb_ms, e->tomb_ms);
            return 0;
        }
    d->slots[i] = *e;
    d->n++;
    return 0;
}

int store_due_merge(store_due *d)
{
    size_t i = 0;
    if (d->npend == 0)
        return 0;
    reserve(d, d->npend); /* at once, so that the prefetches hit; or one by one */
    for (; i < d->npend; i++) {
        /* Each insert is a miss in the CPU's caches: ask for those ahead. */
        if (i + PREFETCH < d->npend && d->mask)
            __builtin_prefetch(&d->slots[home(d, d->pend[i + PREFETCH].token)], 1);
        if (insert(d, &d->pend[i]) != 0)
            break;
    }
    memmove(d->pend, d->pend + i, (d->npend - i) * sizeof *d->pend);
    d->npend -= i;
    return d->npend ? -1 : 0;
}

int store_due_note(store_due *d, uint64_t token, uint64_t exp_ms, bool tomb, uint64_t tomb_hlc_ms)
{
    if (exp_ms == 0 && !tomb)
        return 0;
    if (!d->pend && !(d->pend = malloc(PEND_MAX * sizeof *d->pend)))
        return -1;
    if (d->npend == PEND_MAX && store_due_merge(d) != 0 && d->npend == PEND_MAX)
        return -1;
    d->pend[d->npend++] =
        (due_slot){.token = token, .exp_ms = exp_ms, .tomb_ms = tomb ? tomb_hlc_ms + 1 : 0};
    return 0;
}

bool store_due_is_due(const due_slot *e, uint64_t now_ms, uint64_t tombstone_ttl_ms)
{
    if (e->exp_ms != 0 && e->exp_ms <= now_ms)
        return true;
    /* As the sweep judges a tombstone: its HLC time older than now - ttl. */
    return e->tomb_ms != 0 && now_ms > tombstone_ttl_ms &&
           e->tomb_ms - 1 < now_ms - tombstone_ttl_ms;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void remove_at(store_due *d, size_t i)
{
    d->slots[i] = (due_slot){0};
    d->n--;
    for (size_t j = (i + 1) & d->mask; !empty(&d->slots[j]); j = (j + 1) & d->mask) {
        size_t h = home(d, d->slots[j].token);
        /* The entry at j may fill the hole at i if i lies on its probe
         * path, from home to j. */
        if (((j - h) & d->mask) >= ((j - i) & d->mask)) {
            d->slots[i] = d->slots[j];
            d->slots[j] = (due_slot){0};
            i = j;
        }
    }
}

int store_due_change(store_due *d, const due_slot *e)
{
    if (d->nundo == d->undo_cap) {
        size_t cap = d->undo_cap ? d->undo_cap * 2 : 64;
        due_slot *u = realloc(d->undo, cap * sizeof *u);
        if (!u)
            return -1;
        d->undo = u, d->undo_cap = cap;
    }
    d->undo[d->nundo++] = *e;
    return 0;
}

static due_slot *find(store_due *d, uint64_t token)
{
    for (size_t i = home(d, token); !empty(&d->slots[i]); i = (i + 1) & d->mask)
        if (d->slots[i].token == token)
            return &d->slots[i];
    return NULL;
}

void store_due_settle(store_due *d, bool kept)
{
    for (size_t u = 0; u < d->nundo; u++) {
        due_slot *e = find(d, d->undo[u].token);
        if (!e) /* removed already: a token visited twice */
            continue;
        if (kept && e->exp_ms == DUE_GONE && e->tomb_ms == 0) {
            remove_at(d, (size_t)(e - d->slots));
        } else if (!kept) {
            /* A write since may have noted an earlier time: keep the earlier. */
            e->exp_ms = min_set(e->exp_ms == DUE_GONE ? 0 : e->exp_ms, d->undo[u].exp_ms);
            e->tomb_ms = min_set(e->tomb_ms, d->undo[u].tomb_ms);
        }
    }
    d->nundo = 0;
}

void store_due_trim(store_due *d)
{
    size_t nslots = d->mask ? d->mask + 1 : 0, to = FIRST_SLOTS;
    if (nslots <= FIRST_SLOTS || d->n * 8 >= nslots)
        return;
    while (d->n * 4 > to) /* to a load of a quarter at most */
        to *= 2;
    rehash(d, to); /* a failure keeps the table as it was */
}

void store_due_free(store_due *d)
{
    free(d->slots);
    free(d->undo);
    free(d->pend);
    *d = (store_due){0};
}
