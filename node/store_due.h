/* store_due: what the expiry sweep has to come back to, in memory. Internal
 * to the store; event-loop thread only.
 *
 * One entry per ring token that has (or had) a record with an expiry or a
 * tombstone, with the earliest expiry and the oldest tombstone's time under
 * it. Every write of such a record notes it here (store.c, store_wb.c), and
 * the open's scan of LMDB notes those already stored, so the sweep reads
 * LMDB only for tokens whose time has come instead of walking every record
 * (which, at 10,000 records a second, doubled the p99 of reads beside it).
 *
 * An entry may say earlier than the truth, never later, and may outlive its
 * records: a key rewritten without an expiry, with a later one, or dropped
 * with its range leaves its entry as it was. The sweep reads the token's
 * records when the entry's time comes and sets it from what it finds, or
 * removes it. Keyed by token, not key, so rewriting a key never adds one.
 *
 * What the sweep learns holds only if its batch commits: it marks an entry
 * with nothing left DUE_GONE and keeps the old values aside, and the
 * batch's end removes the marked entries, or puts the old values back.
 */
#ifndef RINGKV_STORE_DUE_H
#define RINGKV_STORE_DUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct due_slot {
    uint64_t token;
    uint64_t exp_ms;  /* the earliest expiry, wall-clock ms; 0: none */
    uint64_t tomb_ms; /* the oldest tombstone's HLC time in ms, plus 1; 0: none */
} due_slot;           /* empty: both 0 */

/* exp_ms of an entry the sweep found nothing under (with tomb_ms 0): never
 * due, removed when the batch commits. */
#define DUE_GONE UINT64_MAX

typedef struct store_due {
    due_slot *slots; /* open addressing, linear probing from token & mask */
    size_t mask;     /* slots - 1 (a power of two), or 0 before the first note */
    size_t n;        /* entries */
    size_t at;       /* the sweep's place: the next slot it looks at */
    due_slot *undo;  /* entries the sweep changed in this batch, as they were */
    size_t nundo, undo_cap;
    due_slot *pend; /* notes not yet in the table (store_due_merge) */
    size_t npend;
} store_due;

/* Notes that token has a record expiring at exp_ms (0: none), or a
 * tombstone written at HLC time tomb_hlc_ms (when tomb). 0, or -1 when the
 * table could not grow (out of memory). A note waits in a buffer, and
 * store_due_merge puts the waiting ones into the table together, asking
 * the memory for several slots at once: one at a time, each write with an
 * expiry waited for a slot of a table larger than the CPU's caches. */
int store_due_note(store_due *d, uint64_t token, uint64_t exp_ms, bool tomb, uint64_t tomb_hlc_ms);
/* Before the table is read (the sweep), and at the end of a batch. 0, or
 * -1 when the table could not grow (the rest keep waiting). */
int store_due_merge(store_due *d);
/* Whether the entry is due at now_ms, tombstones after tombstone_ttl_ms. */
bool store_due_is_due(const due_slot *e, uint64_t now_ms, uint64_t tombstone_ttl_ms);
/* The sweep is about to change the entry e: keeps it as it is for
 * store_due_settle. 0, or -1 (out of memory). */
int store_due_change(store_due *d, const due_slot *e);
/* At the end of a batch, the sweep's changes stand (kept: it committed, or
 * wrote nothing) or go. */
void store_due_settle(store_due *d, bool kept);
/* At the end of a sweep's round: a table at under an eighth of its load
 * shrinks (when it can; the memory goes back after mass expiry). */
void store_due_trim(store_due *d);
void store_due_free(store_due *d);

#endif
