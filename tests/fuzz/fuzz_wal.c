/* libFuzzer target for node/store_wal.c's record parser, which a store's
 * replay runs over whatever a crash left in its log segments: arbitrary
 * bytes are walked record by record, as the replay does, and every record
 * found must lie inside the input with a key of 1..511 bytes. Then each one
 * is encoded again with wal_add and must parse back to the same bytes. Any
 * mismatch abort()s, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_wal w = {.fd = -1};
    size_t off = 0;
    while (off < size) {
        wal_rec r;
        long n = wal_parse(data + off, size - off, &r);
        if (n <= 0)
            break;
        if ((size_t)n > size - off || (size_t)n < WAL_REC_HDR + r.klen + r.rlen ||
            r.klen == 0 || r.klen > WAL_KEY_MAX || r.key < data + off ||
            r.rec + r.rlen > data + off + (size_t)n)
            abort();
        w.len = 0;
        if (wal_add(&w, r.key, r.klen, r.rec, r.rlen) != 0)
            abort();
        wal_rec again;
        if (wal_parse(w.buf, w.len, &again) != (long)w.len || again.klen != r.klen ||
            again.rlen != r.rlen || memcmp(again.key, r.key, r.klen) != 0 ||
            memcmp(again.rec, r.rec, r.rlen) != 0 || memcmp(w.buf, data + off, w.len) != 0)
            abort();
        off += (size_t)n;
    }
    free(w.buf);
    return 0;
}
