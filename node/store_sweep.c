/* store_sweep: the background sweep of the store (see store_sweep in
 * store.h): expired records and old tombstones purged a slice at a time,
 * resuming where the last slice stopped. */
#include <string.h>

#include "hlc.h"
#include "log.h"
#include "store_int.h"

/* Positions c at the first key after the last one the sweep visited. */
static int sweep_seek(store *s, MDB_cursor *c, MDB_val *k, MDB_val *v)
{
    int rc;
    if (!s->sweep_at)
        return mdb_cursor_get(c, k, v, MDB_FIRST);
    k->mv_data = s->sweep_key;
    k->mv_size = s->sweep_klen;
    rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == s->sweep_klen &&
        memcmp(k->mv_data, s->sweep_key, s->sweep_klen) == 0)
        rc = mdb_cursor_get(c, k, v, MDB_NEXT);
    return rc;
}

/* 1 if the record should go (expired, or a tombstone older than ttl), 0 if
 * not. Corrupt records stay: store_get reports them and an operator decides. */
static int sweep_due(const MDB_val *k, const MDB_val *v, uint64_t now_ms,
                     uint64_t ttl_ms, bool *tomb)
{
    const char *why;
    rec r;
    if ((why = store_rec_parse(v, &r)) != NULL) {
        log_warn("store: sweep skips a corrupt record (token %016llx): %s",
                 k->mv_size >= TOKEN_LEN ? (unsigned long long)store_get_be(k->mv_data, 8) : 0ULL,
                 why);
        return 0;
    }
    *tomb = r.flags & REC_TOMBSTONE;
    if (*tomb)
        return now_ms > ttl_ms && hlc_physical_ms(r.hlc) < now_ms - ttl_ms;
    return r.expires_ms != 0 && r.expires_ms <= now_ms;
}

long store_sweep(store *s, uint64_t now_ms, uint64_t tombstone_ttl_ms, size_t budget,
                 size_t *seen_out, char *err, size_t errlen)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    size_t seen = 0;
    long purged = 0;
    bool wrapped = false, tomb = false;
    int rc;

    if (seen_out)
        *seen_out = 0;
    if (budget == 0)
        return 0;
    if (store_batch_begin(s, err, errlen) != STORE_OK)
        return -1;
    if ((rc = mdb_cursor_open(s->wtxn, s->data, &c)) != 0)
        goto fail;
    rc = sweep_seek(s, c, &k, &v);
    while (seen < budget) {
        if (rc == MDB_NOTFOUND) {
            /* The end: the next call starts over, and this one does too
             * if it has seen nothing yet (it began at the end). */
            s->sweep_at = false;
            if (seen > 0 || wrapped)
                break;
            wrapped = true;
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
            continue;
        }
        if (rc != 0)
            goto fail;
        seen++;
        memcpy(s->sweep_key, k.mv_data, k.mv_size);
        s->sweep_klen = k.mv_size;
        s->sweep_at = true;
        /* A key written since (under write-behind) has a newer record
         * waiting in the cache: LMDB's is not the one to judge. */
        if (!sweep_due(&k, &v, now_ms, tombstone_ttl_ms, &tomb) ||
            (s->wb && store_cache_dirty(&s->cache, k.mv_data, k.mv_size))) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        if (s->wb && store_wb_log_purge(s, k.mv_data, k.mv_size, &v, err, errlen) != 0) {
            mdb_cursor_close(c);
            store_batch_discard(s);
            return -1;
        }
        store_cache_forget(&s->cache, k.mv_data, k.mv_size);
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            goto fail;
        purged++;
        if (tomb)
            s->batch_tombstones--;
        /* Re-seek rather than trust the cursor's state after a delete. */
        k.mv_data = s->sweep_key;
        k.mv_size = s->sweep_klen;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(c);
    if (purged) {
        s->batch_purged += (uint64_t)purged;
        s->dirty = true;
    }
    if (seen_out)
        *seen_out = seen;
    return purged;

fail:
    if (c)
        mdb_cursor_close(c);
    store_mdb_result(s, rc, "sweeping", err, errlen);
    store_batch_discard(s);
    return -1;
}
