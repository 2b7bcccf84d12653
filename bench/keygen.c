/* keygen: PRNG and YCSB's scrambled zipfian; see keygen.h. The zipfian
 * follows Gray et al., "Quickly Generating Billion-Record Synthetic
 * Databases" (SIGMOD 1994), exactly as YCSB's ZipfianGenerator.nextLong does,
 * so a ringkv-bench zipfian run hits the same key popularity as YCSB's.
 */
#include "keygen.h"

#include <math.h>

void keygen_seed(keygen_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t keygen_next(keygen_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double keygen_double(keygen_rng *r)
{
    return (double)(keygen_next(r) >> 11) * 0x1.0p-53;
}

uint64_t keygen_below(keygen_rng *r, uint64_t n)
{
    /* Multiply-shift: unbiased enough for key choice, and no division. */
    return (uint64_t)(((unsigned __int128)keygen_next(r) * n) >> 64);
}

int64_t keygen_fnvhash64(int64_t val)
{
    uint64_t h = 0xCBF29CE484222325ull, v = (uint64_t)val;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        v >>= 8;
        h *= 1099511628211ull;
    }
    int64_t s = (int64_t)h;
    /* Java's Math.abs leaves Long.MIN_VALUE negative; so do we. */
    return s < 0 && s != INT64_MIN ? -s : s;
}

void keygen_zipf_init(keygen_zipf *z, uint64_t keys)
{
    /* ScrambledZipfianGenerator(0, keys-1) builds
     * ZipfianGenerator(0, ITEM_COUNT, 0.99, ZETAN): items = max - min + 1. */
    z->keys = keys;
    z->items = KEYGEN_ZIPF_ITEMS + 1;
    z->theta = KEYGEN_ZIPF_CONSTANT;
    z->zeta2theta = 1.0 + pow(0.5, z->theta); /* zeta(2, theta) */
    z->alpha = 1.0 / (1.0 - z->theta);
    z->zetan = KEYGEN_ZIPF_ZETAN;
    z->eta = (1 - pow(2.0 / (double)z->items, 1 - z->theta)) / (1 - z->zeta2theta / z->zetan);
}

uint64_t keygen_zipf_next(const keygen_zipf *z, keygen_rng *r)
{
    double u = keygen_double(r);
    double uz = u * z->zetan;
    int64_t ret;
    if (uz < 1.0)
        ret = 0;
    else if (uz < 1.0 + pow(0.5, z->theta))
        ret = 1;
    else
        ret = (int64_t)((double)z->items * pow(z->eta * u - z->eta + 1, z->alpha));
    int64_t k = keygen_fnvhash64(ret) % (int64_t)z->keys;
    return (uint64_t)(k < 0 ? k + (int64_t)z->keys : k);
}
