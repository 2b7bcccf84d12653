/* histogram: an HDR-style log-linear histogram for ringkv-bench latencies.
 *
 * Values (any unit; the bench records nanoseconds) from 0 to UINT64_MAX fall
 * into buckets 1/128 of their magnitude wide, so a percentile read back is at
 * most 0.8% above the true value; values below 128 are exact. The struct is
 * fixed-size (7424 counters, 58 KiB) and recording never allocates. Written
 * here rather than linking HdrHistogram_c because Debian 12 does not package
 * it and this is all the bench needs.
 */
#ifndef RINGKV_HISTOGRAM_H
#define RINGKV_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;
} hist;

/* Empties h (also how to initialise one). */
void hist_reset(hist *h);

/* Records one value, or n of the same value. */
void hist_record(hist *h, uint64_t v);
void hist_record_n(hist *h, uint64_t v, uint64_t n);

/* Adds every value recorded in src to dst. */
void hist_merge(hist *dst, const hist *src);

uint64_t hist_count(const hist *h);
uint64_t hist_min(const hist *h); /* 0 when empty */
uint64_t hist_max(const hist *h); /* 0 when empty */
double hist_mean(const hist *h);  /* 0 when empty */

/* The value at percentile p (0..100): the highest value of the bucket that
 * holds the ceil(p% of count)-th smallest value, capped at the exact max, so
 * p50 <= p99 <= max always holds. 0 when empty. */
uint64_t hist_percentile(const hist *h, double p);

/* The smallest and largest value that share v's bucket. */
uint64_t hist_lowest_equivalent(uint64_t v);
uint64_t hist_highest_equivalent(uint64_t v);

#endif
