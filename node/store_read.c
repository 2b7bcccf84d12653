/* store_read: the store's reads (store.h), through the record cache
 * (store_cache.c) when it holds the key, else from LMDB: the batch's write
 * txn, or the snapshot, whose finds fill the cache. */
#include <string.h>

#include "store_int.h"

store_result store_lookup(store *s, MDB_val *k, MDB_val *v, bool read, char *err,
                          size_t errlen)
{
    MDB_txn *txn = s->wtxn;
    store_result res;
    cache_hit hit;
    int rc;

    if (read ? store_cache_find(&s->cache, k->mv_data, k->mv_size, &hit)
             : store_cache_peek(&s->cache, k->mv_data, k->mv_size, &hit)) {
        if (hit.absent)
            return STORE_NOT_FOUND;
        v->mv_data = (void *)hit.rec, v->mv_size = hit.rlen;
        return STORE_OK;
    }
    if (!txn) {
        if ((res = store_snapshot(s, err, errlen)) != STORE_OK)
            return res;
        txn = s->rtxn;
    }
    rc = mdb_get(txn, s->data, k, v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_mdb_result(s, rc, "reading", err, errlen);
    /* Only the committed snapshot fills the cache: what the batch's write
     * txn shows may still be discarded. */
    if (read && txn == s->rtxn) {
        rec r;
        cache_ver cv;
        bool have = rc == 0 && store_rec_parse(v, &r) == NULL && !(r.flags & REC_LONGKEY);
        if (have)
            cv = (cache_ver){.hlc = r.hlc, .origin = r.origin, .olen = r.olen};
        store_cache_add_read(&s->cache, k->mv_data, k->mv_size, rc ? NULL : v->mv_data,
                             rc ? 0 : v->mv_size, have ? &cv : NULL);
    }
    return rc == MDB_NOTFOUND ? STORE_NOT_FOUND : STORE_OK;
}

store_result store_get(store *s, const void *key, size_t klen, uint64_t now_ms,
                       store_record *out, char *err, size_t errlen)
{
    MDB_val k, v;
    store_result res;
    const char *why;
    bool longk;
    rec r;

    memset(out, 0, sizeof *out);
    if (klen == 0)
        return STORE_NOT_FOUND;
    k.mv_size = store_data_key(s, key, klen, &longk);
    k.mv_data = s->kbuf;
    if ((res = store_lookup(s, &k, &v, true, err, errlen)) != STORE_OK)
        return res;
    if ((why = store_rec_parse(&v, &r)) != NULL)
        return store_corrupt(s, why, err, errlen);
    if (!store_rec_is_key(&r, longk, key, klen))
        return STORE_NOT_FOUND; /* another key with the same hashes */
    *out = (store_record){.version.hlc = r.hlc, .tombstone = r.flags & REC_TOMBSTONE,
                          .expires_ms = r.expires_ms, .value = r.val, .value_len = r.vlen};
    memcpy(out->version.origin, r.origin, r.olen);
    if (out->tombstone || (r.expires_ms != 0 && r.expires_ms <= now_ms))
        return STORE_NOT_FOUND;
    return STORE_OK;
}

bool store_get_version(store *s, const void *key, size_t klen, bool *found, store_version *ver)
{
    const char *origin = NULL;
    bool longk;
    if (klen == 0)
        return false;
    size_t n = store_data_key(s, key, klen, &longk);
    /* A long key's slot keeps no version: its record holds the key, which
     * a read compares. */
    if (longk || !store_cache_version(&s->cache, s->kbuf, n, found, &ver->hlc, &origin))
        return false;
    if (*found)
        memcpy(ver->origin, origin, strlen(origin) + 1); /* at most STORE_ORIGIN_MAX + 1 */
    else
        memset(ver, 0, sizeof *ver);
    return true;
}

void store_prefetch_token(const store *s, uint64_t token, bool entry)
{
    if (s->cache.n)
        store_cache_prefetch_token(&s->cache, token, entry);
}

void store_prefetch(const store *s, const void *key, size_t klen, bool entry)
{
    if (s->cache.n && klen)
        store_prefetch_token(s, store_token(key, klen), entry);
}
