/* store_ckpt_file: the checkpoint file's format; see store_ckpt_file.h. */
#include "store_ckpt_file.h"

#include <string.h>
#include <xxhash.h>

#define CKPT_MAGIC "RKVCKPT1"
#define META_FLAGS_AT 10
#define META_FLAG 0x08
#define META_MAGIC_AT 16
#define META_MAGIC 0xBEEFC0DEu
#define META_VERSION_AT 20

uint64_t ckpt_get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void ckpt_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t ckpt_meta_txnid(const uint8_t *page, size_t psize)
{
    if (psize < CKPT_META_TXNID_AT + 8 ||
        (ckpt_get_le(page + META_FLAGS_AT, 2) & META_FLAG) == 0 ||
        ckpt_get_le(page + META_MAGIC_AT, 4) != META_MAGIC ||
        ckpt_get_le(page + META_VERSION_AT, 4) != 1)
        return 0;
    return ckpt_get_le(page + CKPT_META_TXNID_AT, 8);
}

void ckpt_encode_slot(uint8_t *out, const uint8_t *page, size_t psize, uint64_t commit,
                      const char *boot)
{
    memset(out, 0, CKPT_HDR);
    memcpy(out, CKPT_MAGIC, 8);
    ckpt_put_le(out + 8, psize, 4);
    ckpt_put_le(out + 16, ckpt_meta_txnid(page, psize), 8);
    ckpt_put_le(out + 24, commit, 8);
    memcpy(out + 32, boot, strnlen(boot, CKPT_BOOT_MAX));
    memcpy(out + CKPT_HDR, page, psize);
    ckpt_put_le(out + CKPT_HDR + psize, XXH3_64bits(out, CKPT_HDR + psize), 8);
}

uint64_t ckpt_parse(const uint8_t *buf, size_t len, const uint8_t **page, size_t *psize,
                    char boot[CKPT_BOOT_MAX + 1])
{
    uint64_t best = 0;
    if (len < CKPT_HDR || memcmp(buf, CKPT_MAGIC, 8) != 0)
        return 0;
    size_t ps = (size_t)ckpt_get_le(buf + 8, 4), slot = CKPT_SLOT(ps);
    if (ps < CKPT_PSIZE_MIN || ps > CKPT_PSIZE_MAX)
        return 0;
    for (size_t i = 0; i < 2 && (i + 1) * slot <= len; i++) {
        const uint8_t *b = buf + i * slot;
        uint64_t x;
        if (memcmp(b, CKPT_MAGIC, 8) != 0 || ckpt_get_le(b + 8, 4) != ps || ckpt_get_le(b + 12, 4) ||
            XXH3_64bits(b, CKPT_HDR + ps) != ckpt_get_le(b + CKPT_HDR + ps, 8) ||
            !(x = ckpt_meta_txnid(b + CKPT_HDR, ps)) || x != ckpt_get_le(b + 16, 8) ||
            x <= best)
            continue; /* empty, torn, or older */
        best = x;
        memcpy(boot, b + 32, CKPT_BOOT_MAX);
        boot[CKPT_BOOT_MAX] = '\0';
        *page = b + CKPT_HDR;
        *psize = ps;
    }
    return best;
}
