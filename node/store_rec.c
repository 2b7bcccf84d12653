/* store_rec: the store's data keys and records, their format and the checks
 * a write makes against the record it replaces (store_int.h declares them).
 *
 * Data key: token (XXH3-64, u64 big-endian) followed by the user key when
 * 8 + klen <= mdb_env_get_maxkeysize() (511 in Debian's build); otherwise the
 * token followed by the key's XXH3-128 in canonical (big-endian) form, 24
 * bytes in all, with the full key kept in the record and compared on read.
 *
 * Record value, format 1 (integers big-endian):
 *   [0]        u8   format, 1
 *   [1]        u8   flags: bit0 tombstone, bit1 long key stored inline; rest 0
 *   [2..9]     u64  hlc
 *   [10..17]   u64  expires_ms, wall-clock ms, 0 = never
 *   [18]       u8   origin length n, at most STORE_ORIGIN_MAX, no NUL bytes
 *   [19..]     n    origin node id
 *   if bit1:   u32  key length m, then m key bytes
 *   the rest        value bytes (none in a tombstone)
 */
#include <string.h>
#include <xxhash.h>

#include "store_int.h"

size_t store_data_key(store *s, const void *key, size_t klen, bool *longk)
{
    XXH128_canonical_t h;
    store_put_be(s->kbuf, store_token(key, klen), 8);
    *longk = TOKEN_LEN + klen > s->maxkey;
    if (!*longk) {
        memcpy(s->kbuf + TOKEN_LEN, key, klen);
        return TOKEN_LEN + klen;
    }
    XXH128_canonicalFromHash(&h, XXH3_128bits(key, klen));
    memcpy(s->kbuf + TOKEN_LEN, h.digest, HASH_LEN);
    return TOKEN_LEN + HASH_LEN;
}

/* Returns NULL, or what is wrong with the record. */
const char *store_rec_parse(const MDB_val *v, rec *r)
{
    const uint8_t *p = v->mv_data;
    size_t n = v->mv_size, off;
    if (n < REC_HDR)
        return "shorter than a record header";
    if (p[0] != REC_FORMAT)
        return "unknown record format";
    r->flags = p[1];
    if (r->flags & ~(REC_TOMBSTONE | REC_LONGKEY))
        return "unknown flags";
    r->hlc = store_get_be(p + 2, 8), r->expires_ms = store_get_be(p + 10, 8);
    r->origin = (const char *)p + REC_HDR, r->olen = p[18];
    if (r->olen > STORE_ORIGIN_MAX || n - REC_HDR < r->olen)
        return "bad origin length";
    if (memchr(r->origin, 0, r->olen))
        return "NUL byte in origin";
    off = REC_HDR + r->olen;
    r->key = NULL, r->klen = 0;
    if (r->flags & REC_LONGKEY) {
        if (n - off < 4 || n - off - 4 < (r->klen = (size_t)store_get_be(p + off, 4)))
            return "truncated key";
        r->key = p + off + 4;
        off += 4 + r->klen;
    }
    r->val = p + off, r->vlen = n - off;
    if ((r->flags & REC_TOMBSTONE) && r->vlen)
        return "tombstone with a value";
    return NULL;
}

/* Short keys are the LMDB key itself; long ones share it with any key of
 * equal hashes. */
bool store_rec_is_key(const rec *r, bool longk, const void *key, size_t klen)
{
    if (!longk)
        return !(r->flags & REC_LONGKEY);
    return (r->flags & REC_LONGKEY) && r->klen == klen &&
           memcmp(r->key, key, klen) == 0;
}

/* Origins hold no NUL, so this orders them as strcmp does. */
int store_rec_version_cmp(const rec *r, const store_version *v)
{
    size_t vlen = strlen(v->origin);
    int c;
    if (r->hlc != v->hlc)
        return r->hlc < v->hlc ? -1 : 1;
    c = memcmp(r->origin, v->origin, r->olen < vlen ? r->olen : vlen);
    if (c)
        return c;
    return r->olen < vlen ? -1 : r->olen > vlen;
}

store_result store_corrupt(const store *s, const char *why, char *err,
                            size_t errlen)
{
    store_set_err(err, errlen, "corrupt record (token %016llx): %s",
            (unsigned long long)store_get_be(s->kbuf, 8), why);
    return STORE_ERR_IO;
}

size_t store_rec_len(size_t olen, bool longk, size_t klen, size_t vlen)
{
    return REC_HDR + olen + (longk ? 4 + klen : 0) + vlen;
}

void store_rec_encode(uint8_t *p, bool tomb, bool longk, const store_version *ver, size_t olen,
                      uint64_t expires_ms, const void *key, size_t klen, const void *value,
                      size_t vlen)
{
    p[0] = REC_FORMAT;
    p[1] = (tomb ? REC_TOMBSTONE : 0) | (longk ? REC_LONGKEY : 0);
    store_put_be(p + 2, ver->hlc, 8);
    store_put_be(p + 10, expires_ms, 8);
    p[18] = (uint8_t)olen;
    memcpy(p + REC_HDR, ver->origin, olen);
    p += REC_HDR + olen;
    if (longk) {
        store_put_be(p, klen, 4);
        memcpy(p + 4, key, klen);
        p += 4 + klen;
    }
    if (vlen)
        memcpy(p, value, vlen);
}

store_result store_rec_check(store *s, const MDB_val *v, bool longk, const void *key,
                             size_t klen, const store_version *ver, rec *old, char *err,
                             size_t errlen)
{
    const char *why;
    rec r;
    if ((why = store_rec_parse(v, &r)) != NULL)
        return store_corrupt(s, why, err, errlen);
    if (!store_rec_is_key(&r, longk, key, klen)) {
        /* Overwriting would silently lose the other key. */
        store_set_err(err, errlen, "key hash collision (token %016llx) with a different stored "
                      "key; not written", (unsigned long long)store_get_be(s->kbuf, 8));
        return STORE_ERR_IO;
    }
    if (store_rec_version_cmp(&r, ver) >= 0)
        return STORE_STALE;
    *old = r;
    return STORE_OK;
}
