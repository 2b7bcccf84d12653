/* store_ckpt_file: the checkpoint file's format (store_checkpoint.c), apart
 * from the store so that it can be fuzzed on its own.
 *
 * Two slots, each CKPT_SLOT(psize) bytes: "RKVCKPT1", the page size (4
 * bytes, little-endian), 4 zero bytes, the txn id and the store's commit
 * number (8 bytes each), the boot id (40 bytes, NUL-padded), an LMDB meta
 * page of psize bytes, and XXH3-64 of all that before it (8 bytes).
 */
#ifndef RINGKV_STORE_CKPT_FILE_H
#define RINGKV_STORE_CKPT_FILE_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_HDR (8 + 4 + 4 + 8 + 8 + 40)
#define CKPT_SLOT(psize) (CKPT_HDR + (size_t)(psize) + 8)
#define CKPT_PSIZE_MIN 512
#define CKPT_PSIZE_MAX 65536
#define CKPT_BOOT_MAX 39
/* LMDB 0.9's meta page: the offsets of the fields read here. */
#define CKPT_META_LAST_PG_AT 136
#define CKPT_META_TXNID_AT 144

uint64_t ckpt_get_le(const uint8_t *p, int n);
void ckpt_put_le(uint8_t *p, uint64_t v, int n);

/* The txn id of page when it is an LMDB 0.9 meta page of psize bytes
 * (flag, magic, version), else 0. */
uint64_t ckpt_meta_txnid(const uint8_t *page, size_t psize);

/* Writes a slot for meta page `page` (a meta page: its txn id is the
 * slot's) into out, CKPT_SLOT(psize) bytes. boot: at most CKPT_BOOT_MAX
 * bytes are kept. */
void ckpt_encode_slot(uint8_t *out, const uint8_t *page, size_t psize, uint64_t commit,
                      const char *boot);

/* The newest whole slot in a file's bytes: its txn id (0: none), with
 * *page pointing at its meta page inside buf, *psize its size and boot its
 * boot id (NUL-terminated). Slots that are empty, torn or not meta pages
 * are skipped. */
uint64_t ckpt_parse(const uint8_t *buf, size_t len, const uint8_t **page, size_t *psize,
                    char boot[CKPT_BOOT_MAX + 1]);

#endif
