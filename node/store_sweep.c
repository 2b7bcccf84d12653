/* store_sweep: the background sweep of the store (see store_sweep in
 * store.h): expired records and old tombstones purged a slice at a time.
 * It walks the due table (store_due.h), not LMDB: only the tokens whose
 * time has come cost a read of their records. */
#include <errno.h>
#include <string.h>

#include "hlc.h"
#include "log.h"
#include "store_int.h"

/* The work a call's budget counts, in these units: a record read from
 * LMDB, an entry looked at and not due, an empty slot passed over. An
 * entry at a 64th of a read walked a table of a million keys with an
 * expiry in under two seconds, which cost the GETs beside it half a
 * millisecond of p99; at an 8th it takes about 14 s (README: Benchmarks). */
#define COST_READ  512
#define COST_ENTRY 64
#define COST_SLOT  8

/* One full scan at open: the counts of tombstones and of records with an
 * expiry, maintained from then on, and the sweep's table (store_due.h).
 * Records too damaged to tell are left for store_get to report. An LMDB
 * error, ENOMEM, or 0. */
int store_open_scan(store *s, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    store_counts n = {0};
    rec r;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->data, &c)) != 0)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (store_rec_parse(&v, &r) != NULL || k.mv_size < TOKEN_LEN)
            continue;
        store_counts_rec(&n, &r, 1);
        if (store_due_note(&s->due, store_get_be(k.mv_data, TOKEN_LEN), r.expires_ms,
                           r.flags & REC_TOMBSTONE, hlc_physical_ms(r.hlc)) != 0)
            break; /* out of memory, with rc 0 */
    }
    mdb_cursor_close(c);
    if (rc == 0 || (rc == MDB_NOTFOUND && store_due_merge(&s->due) != 0))
        return ENOMEM;
    if (rc != MDB_NOTFOUND)
        return rc;
    s->tombstones = s->expiring = 0, s->expiry_sum = 0;
    store_count(s, &n);
    return 0;
}

/* visit()'s failure that has its message already (not an LMDB error). */
#define VISIT_FAILED (-1)

/* 1 if the record should go (expired, or a tombstone older than ttl), 0 if
 * not, with *r parsed; -1 for a corrupt record, which stays: store_get
 * reports it and an operator decides. */
static int sweep_due(const MDB_val *k, const MDB_val *v, uint64_t now_ms, uint64_t ttl_ms, rec *r)
{
    const char *why;
    if ((why = store_rec_parse(v, r)) != NULL) {
        log_warn("store: sweep skips a corrupt record (token %016llx): %s",
                 k->mv_size >= TOKEN_LEN ? (unsigned long long)store_get_be(k->mv_data, 8) : 0ULL,
                 why);
        return -1;
    }
    if (r->flags & REC_TOMBSTONE)
        return now_ms > ttl_ms && hlc_physical_ms(r->hlc) < now_ms - ttl_ms;
    return r->expires_ms != 0 && r->expires_ms <= now_ms;
}

/* The records under the entry's token (one, but for a token shared by
 * several keys): purges those due, and sets the entry from the rest
 * (DUE_GONE if none is left to come back to).
 * *reads counts the records read. 0, an LMDB error, or VISIT_FAILED with
 * a message (out of memory for the log). */
static int visit(store *s, MDB_cursor *c, due_slot *e, uint64_t now_ms, uint64_t ttl_ms,
                 size_t *reads, long *purged, char *err, size_t errlen)
{
    uint8_t tk[TOKEN_LEN];
    uint64_t exp = 0, tomb = 0;
    MDB_val k = {.mv_size = TOKEN_LEN, .mv_data = tk}, v;
    rec r;
    int rc, due;

    if (store_due_change(&s->due, e) != 0) {
        store_set_err(err, errlen, "out of memory");
        return VISIT_FAILED;
    }
    store_put_be(tk, e->token, TOKEN_LEN);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= TOKEN_LEN && memcmp(k.mv_data, tk, TOKEN_LEN) == 0;) {
        ++*reads;
        if ((due = sweep_due(&k, &v, now_ms, ttl_ms, &r)) <= 0) {
            if (due == 0 && (r.flags & REC_TOMBSTONE)) {
                uint64_t t = hlc_physical_ms(r.hlc) + 1;
                tomb = tomb == 0 || t < tomb ? t : tomb;
            } else if (due == 0 && r.expires_ms != 0)
                exp = exp == 0 || r.expires_ms < exp ? r.expires_ms : exp;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        if (s->wb && store_wb_log_purge(s, k.mv_data, k.mv_size, &v, err, errlen) != 0)
            return VISIT_FAILED;
        store_cache_forget(&s->cache, k.mv_data, k.mv_size);
        memcpy(s->sweep_key, k.mv_data, k.mv_size);
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            return rc;
        ++*purged;
        store_counts_rec(&s->batch_counts, &r, -1);
        /* Re-seek rather than trust the cursor's state after a delete. */
        k.mv_data = s->sweep_key;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    e->exp_ms = exp || tomb ? exp : DUE_GONE, e->tomb_ms = tomb;
    return 0;
}

store_result store_due_write(store *s, uint64_t expires_ms, const store_version *ver, bool tomb,
                             char *err, size_t errlen)
{
    if (store_due_note(&s->due, store_get_be(s->kbuf, TOKEN_LEN), tomb ? 0 : expires_ms, tomb,
                       hlc_physical_ms(ver->hlc)) == 0)
        return STORE_OK;
    store_set_err(err, errlen, "out of memory");
    return STORE_ERR_IO;
}

long store_sweep(store *s, uint64_t now_ms, uint64_t tombstone_ttl_ms, size_t budget,
                 size_t *seen_out, bool *round_end, char *err, size_t errlen)
{
    store_due *d = &s->due;
    MDB_cursor *c = NULL;
    size_t work = 0, limit = budget * COST_READ, reads = 0;
    long purged = 0;
    bool ended = false;
    int rc = 0;

    store_due_merge(d); /* what does not fit waits for the next call */
    if (budget > 0 && d->n > 0) {
        if (store_batch_begin(s, err, errlen) != STORE_OK)
            return -1;
        if ((rc = mdb_cursor_open(s->wtxn, s->data, &c)) != 0)
            goto fail;
    }
    while (work + COST_ENTRY <= limit && d->n > 0) {
        if (d->at > d->mask) {
            /* The end of a round: the next call starts the next. */
            d->at = 0;
            ended = true;
            store_due_trim(d);
            break;
        }
        due_slot *e = &d->slots[d->at];
        if ((e->exp_ms == 0 && e->tomb_ms == 0) || !store_due_is_due(e, now_ms, tombstone_ttl_ms) ||
            /* A key written since (under write-behind) has a newer record
             * waiting in the cache: LMDB's is not the one to judge. */
            (s->wb && store_cache_token_dirty(&s->cache, e->token))) {
            work += e->exp_ms == 0 && e->tomb_ms == 0 ? COST_SLOT : COST_ENTRY;
            d->at++;
            continue;
        }
        if (work > 0 && work + COST_READ > limit)
            break; /* the next call begins with it */
        size_t before = reads;
        if ((rc = visit(s, c, e, now_ms, tombstone_ttl_ms, &reads, &purged, err, errlen)) != 0)
            goto fail;
        work += (reads > before ? reads - before : 1) * COST_READ; /* a seek at least */
        d->at++;
    }
    if (c)
        mdb_cursor_close(c);
    if (d->n == 0) /* nothing left to look at: every round ends at once */
        d->at = 0, ended = budget > 0;
    if (purged) {
        s->batch_purged += (uint64_t)purged;
        s->dirty = true;
    }
    if (seen_out)
        *seen_out = (work + COST_READ - 1) / COST_READ;
    if (round_end)
        *round_end = ended;
    return purged;

fail:
    if (c)
        mdb_cursor_close(c);
    if (rc != VISIT_FAILED)
        store_mdb_result(s, rc, "sweeping", err, errlen);
    store_batch_discard(s);
    return -1;
}
