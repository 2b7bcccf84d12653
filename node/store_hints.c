/* store_hints: the hinted-handoff database of the store (see store.h's hint
 * functions): durable hints for owners that are down, kept in the same LMDB
 * environment and batches as the data, so a hint is as durable as a write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "store_int.h"

/* ---- hints (hinted handoff) ----
 *
 * The `hints` database: key = owner length (1 byte), owner, then the data
 * key (token + key, or token + hash when that would pass LMDB's key limit);
 * value = format, flags, hlc (8), expires_ms (8), origin length (1), origin,
 * key length (4), key, value. One hint per (owner, key): a newer version
 * replaces an older one, so an owner receives each key once, newest first
 * seen. Owner-first keys make one owner's hints a contiguous range. */

#define HINT_FORMAT 1
#define HINT_HDR 19 /* format, flags, hlc, expires, origin length */

/* Builds the hint key in s->hkbuf; returns its length, or 0 for a bad owner. */
static size_t hint_key(store *s, const char *owner, const void *key, size_t klen)
{
    size_t olen = strlen(owner);
    if (olen == 0 || olen > STORE_ORIGIN_MAX)
        return 0;
    uint8_t *p = s->hkbuf;
    p[0] = (uint8_t)olen;
    memcpy(p + 1, owner, olen);
    p += 1 + olen;
    store_put_be(p, store_token(key, klen), 8);
    if (1 + olen + TOKEN_LEN + klen <= s->maxkey) {
        memcpy(p + TOKEN_LEN, key, klen);
        return 1 + olen + TOKEN_LEN + klen;
    }
    XXH128_canonical_t h;
    XXH128_canonicalFromHash(&h, XXH3_128bits(key, klen));
    memcpy(p + TOKEN_LEN, h.digest, HASH_LEN);
    return 1 + olen + TOKEN_LEN + HASH_LEN;
}

/* Parses a hint value into h (pointers into v); NULL, or what is wrong. */
static const char *hint_parse(const MDB_val *v, store_hint *h)
{
    const uint8_t *p = v->mv_data;
    size_t n = v->mv_size;
    if (n < HINT_HDR || p[0] != HINT_FORMAT)
        return "hint too short or of an unknown format";
    size_t olen = p[18];
    if (olen > STORE_ORIGIN_MAX || n < HINT_HDR + olen + 4)
        return "hint origin overruns it";
    memset(h, 0, sizeof *h);
    h->tombstone = p[1] & REC_TOMBSTONE;
    h->version.hlc = store_get_be(p + 2, 8);
    h->expires_ms = store_get_be(p + 10, 8);
    memcpy(h->version.origin, p + HINT_HDR, olen);
    p += HINT_HDR + olen;
    n -= HINT_HDR + olen;
    size_t klen = store_get_be(p, 4);
    if (klen == 0 || klen > n - 4)
        return "hint key overruns it";
    h->key = p + 4;
    h->klen = klen;
    h->value = p + 4 + klen;
    h->vlen = n - 4 - klen;
    return NULL;
}

static int hint_version_cmp(const store_hint *h, const store_version *v)
{
    if (h->version.hlc != v->hlc)
        return h->version.hlc < v->hlc ? -1 : 1;
    return strncmp(h->version.origin, v->origin, STORE_ORIGIN_MAX);
}

store_result store_hint_put(store *s, const char *owner, const void *key, size_t klen,
                            const void *value, size_t vlen, bool tombstone, uint64_t expires_ms,
                            const store_version *ver, char *err, size_t errlen)
{
    size_t olen = strnlen(ver->origin, sizeof ver->origin);
    store_result res = STORE_ERR_IO;
    MDB_val k, v;
    store_hint old;
    int rc;

    if (klen == 0 || klen > UINT32_MAX || olen > STORE_ORIGIN_MAX) {
        store_set_err(err, errlen, klen ? "key or origin too long" : "empty key");
        goto fail;
    }
    if (!(k.mv_size = hint_key(s, owner, key, klen))) {
        store_set_err(err, errlen, "hint owner must be 1..%d bytes", STORE_ORIGIN_MAX);
        goto fail;
    }
    k.mv_data = s->hkbuf;
    if ((res = store_batch_begin(s, err, errlen)) != STORE_OK)
        goto fail;
    if ((rc = mdb_get(s->wtxn, s->hints, &k, &v)) == 0) {
        res = STORE_ERR_IO;
        const char *why = hint_parse(&v, &old);
        if (why) {
            store_corrupt(s, why, err, errlen);
            goto fail;
        }
        if (old.klen != klen || memcmp(old.key, key, klen) != 0) {
            store_set_err(err, errlen, "hint key hash collision with a different key; not written");
            goto fail;
        }
        if (hint_version_cmp(&old, ver) >= 0)
            return STORE_STALE;
    } else if (rc != MDB_NOTFOUND) {
        res = store_mdb_result(s, rc, "reading a hint", err, errlen);
        goto fail;
    }
    v.mv_size = HINT_HDR + olen + 4 + klen + vlen;
    if ((rc = mdb_put(s->wtxn, s->hints, &k, &v, MDB_RESERVE)) != 0) {
        res = store_mdb_result(s, rc, "writing a hint", err, errlen);
        goto fail;
    }
    uint8_t *p = v.mv_data;
    p[0] = HINT_FORMAT;
    p[1] = tombstone ? REC_TOMBSTONE : 0;
    store_put_be(p + 2, ver->hlc, 8);
    store_put_be(p + 10, expires_ms, 8);
    p[18] = (uint8_t)olen;
    memcpy(p + HINT_HDR, ver->origin, olen);
    p += HINT_HDR + olen;
    store_put_be(p, klen, 4);
    memcpy(p + 4, key, klen);
    if (vlen)
        memcpy(p + 4 + klen, value, vlen);
    s->dirty = true;
    return STORE_OK;
fail:
    store_batch_discard(s);
    return res;
}

long store_hint_scan(store *s, const char *owner, const uint8_t *after, size_t afterlen,
                     size_t budget, store_hint_fn fn, void *arg, char *err, size_t errlen)
{
    size_t olen = strlen(owner);
    MDB_txn *txn = s->wtxn;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    long seen = 0;
    int rc;

    if (olen == 0 || olen > STORE_ORIGIN_MAX || afterlen > STORE_HINT_POS_MAX) {
        store_set_err(err, errlen, "bad hint owner or position");
        return -1;
    }
    if (!txn) {
        if (store_snapshot(s, err, errlen) != STORE_OK)
            return -1;
        txn = s->rtxn;
    }
    uint8_t start[1 + STORE_ORIGIN_MAX + STORE_HINT_POS_MAX];
    start[0] = (uint8_t)olen;
    memcpy(start + 1, owner, olen);
    if (afterlen)
        memcpy(start + 1 + olen, after, afterlen);
    k.mv_data = start;
    k.mv_size = 1 + olen + afterlen;
    if ((rc = mdb_cursor_open(txn, s->hints, &c)) != 0)
        goto fail;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    /* Resuming: the position itself was seen last time. */
    if (rc == 0 && afterlen && k.mv_size == 1 + olen + afterlen &&
        memcmp(k.mv_data, start, k.mv_size) == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    while (rc == 0 && (size_t)seen < budget) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < 1 + olen || memcmp(kp, start, 1 + olen) != 0)
            break; /* past this owner's range */
        store_hint h;
        const char *why = hint_parse(&v, &h);
        if (why) {
            mdb_cursor_close(c);
            store_corrupt(s, why, err, errlen);
            return -1;
        }
        h.pos = kp + 1 + olen;
        h.poslen = k.mv_size - 1 - olen;
        seen++;
        if (fn(arg, &h) != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    return seen;
fail:
    if (c)
        mdb_cursor_close(c);
    store_mdb_result(s, rc, "reading hints", err, errlen);
    return -1;
}

store_result store_hint_del(store *s, const char *owner, const void *key, size_t klen,
                            const store_version *ver, char *err, size_t errlen)
{
    store_result res = STORE_ERR_IO;
    MDB_val k, v;
    store_hint h;
    int rc;

    if (klen == 0 || !(k.mv_size = hint_key(s, owner, key, klen)))
        return STORE_NOT_FOUND;
    k.mv_data = s->hkbuf;
    if ((res = store_batch_begin(s, err, errlen)) != STORE_OK)
        goto fail;
    if ((rc = mdb_get(s->wtxn, s->hints, &k, &v)) == MDB_NOTFOUND)
        return STORE_NOT_FOUND;
    if (rc != 0) {
        res = store_mdb_result(s, rc, "reading a hint", err, errlen);
        goto fail;
    }
    const char *why = hint_parse(&v, &h);
    if (why) {
        res = store_corrupt(s, why, err, errlen);
        goto fail;
    }
    /* A newer hint for the key arrived while this one was delivered: it
     * still has to go. */
    if (hint_version_cmp(&h, ver) != 0 || h.klen != klen || memcmp(h.key, key, klen) != 0)
        return STORE_NOT_FOUND;
    if ((rc = mdb_del(s->wtxn, s->hints, &k, NULL)) != 0) {
        res = store_mdb_result(s, rc, "deleting a hint", err, errlen);
        goto fail;
    }
    s->dirty = true;
    return STORE_OK;
fail:
    store_batch_discard(s);
    return res;
}

uint64_t store_hint_count(const store *s)
{
    return s->hints_pending;
}

int store_hint_next_owner(store *s, const char *after, char out[STORE_ORIGIN_MAX + 1], char *err,
                          size_t errlen)
{
    uint8_t seek[2 + STORE_ORIGIN_MAX];
    size_t slen = 0;
    MDB_txn *txn = s->wtxn;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc;

    if (after && after[0]) {
        /* The successor of the prefix [len][after]: past all its hints. */
        size_t olen = strnlen(after, STORE_ORIGIN_MAX);
        seek[0] = (uint8_t)olen;
        memcpy(seek + 1, after, olen);
        slen = 1 + olen;
        size_t i = slen;
        while (i > 0 && seek[i - 1] == 0xff)
            seek[--i] = 0;
        if (i == 0)
            return 0;
        seek[i - 1]++;
    }
    if (!txn) {
        if (store_snapshot(s, err, errlen) != STORE_OK)
            return -1;
        txn = s->rtxn;
    }
    if ((rc = mdb_cursor_open(txn, s->hints, &c)) != 0)
        goto fail;
    k.mv_data = seek;
    k.mv_size = slen;
    rc = slen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        goto fail;
    const uint8_t *p = k.mv_data;
    if (k.mv_size < 1 || p[0] == 0 || p[0] > STORE_ORIGIN_MAX || k.mv_size < 1 + (size_t)p[0]) {
        store_set_err(err, errlen, "corrupt hint key");
        return -1;
    }
    memcpy(out, p + 1, p[0]);
    out[p[0]] = '\0';
    return 1;
fail:
    store_mdb_result(s, rc, "reading hints", err, errlen);
    return -1;
}
