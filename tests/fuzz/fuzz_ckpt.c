/* libFuzzer target for node/store_ckpt_file.c, the checkpoint file's
 * format, which a store reads at open after a machine crash from whatever
 * the disk kept: arbitrary bytes are parsed as a file; a slot found must
 * lie inside the input, hold a meta page of the txn id returned with an
 * allowed page size and a NUL-terminated boot id, and encode again to the
 * same bytes. Any mismatch abort()s, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_ckpt_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *page = NULL;
    size_t psize = 0;
    char boot[CKPT_BOOT_MAX + 1];
    uint64_t x = ckpt_parse(data, size, &page, &psize, boot);
    if (!x)
        return 0;
    if (psize < CKPT_PSIZE_MIN || psize > CKPT_PSIZE_MAX || page < data + CKPT_HDR ||
        page + psize + 8 > data + size || ckpt_meta_txnid(page, psize) != x ||
        memchr(boot, '\0', sizeof boot) == NULL)
        abort();
    const uint8_t *slot = page - CKPT_HDR;
    uint8_t *again = malloc(CKPT_SLOT(psize));
    if (!again)
        abort();
    ckpt_encode_slot(again, page, psize, ckpt_get_le(slot + 24, 8), boot);
    /* The same bytes, unless the slot's boot field has bytes after its
     * first NUL (which the boot id ends at). */
    size_t bl = strlen(boot);
    int tail = 0;
    for (size_t i = 32 + bl; i < 32 + CKPT_BOOT_MAX + 1; i++)
        tail |= slot[i];
    if (!tail && memcmp(again, slot, CKPT_SLOT(psize)) != 0)
        abort();
    if (memcmp(again + CKPT_HDR, page, psize) != 0)
        abort();
    const uint8_t *p2 = NULL;
    size_t ps2 = 0;
    char b2[CKPT_BOOT_MAX + 1];
    if (ckpt_parse(again, CKPT_SLOT(psize), &p2, &ps2, b2) != x || ps2 != psize ||
        strcmp(b2, boot) != 0)
        abort();
    free(again);
    return 0;
}
