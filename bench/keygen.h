/* keygen: random numbers and key choice for ringkv-bench.
 *
 * A small fast PRNG (splitmix64), and YCSB's scrambled zipfian generator
 * reproduced faithfully (core/.../ScrambledZipfianGenerator.java): a zipfian
 * over 10^10 items with constant 0.99 and its precomputed zeta, hashed with
 * FNV-1a 64 into the key space, so popular keys are spread over it instead
 * of bunched at its start.
 */
#ifndef RINGKV_KEYGEN_H
#define RINGKV_KEYGEN_H

#include <stdint.h>

typedef struct keygen_rng {
    uint64_t s;
} keygen_rng;

void keygen_seed(keygen_rng *r, uint64_t seed);
uint64_t keygen_next(keygen_rng *r);
/* Uniform in [0, 1) with 53 random bits, like java.util.Random#nextDouble. */
double keygen_double(keygen_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t keygen_below(keygen_rng *r, uint64_t n);

/* YCSB's ZipfianGenerator with a given zeta(n), and the scrambling of
 * ScrambledZipfianGenerator on top. */
typedef struct keygen_zipf {
    uint64_t items; /* the zipfian's item count (10^10 + 1, as YCSB has it) */
    uint64_t keys;  /* the key space the result is folded into */
    double theta, zeta2theta, alpha, zetan, eta;
} keygen_zipf;

#define KEYGEN_ZIPF_CONSTANT 0.99
#define KEYGEN_ZIPF_ITEMS    10000000000ull
#define KEYGEN_ZIPF_ZETAN    26.46902820178302 /* zeta(10^10, 0.99), from YCSB */

void keygen_zipf_init(keygen_zipf *z, uint64_t keys);
/* The next key index in [0, keys). */
uint64_t keygen_zipf_next(const keygen_zipf *z, keygen_rng *r);

/* YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of val, then Math.abs. */
int64_t keygen_fnvhash64(int64_t val);

#endif
