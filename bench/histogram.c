/* histogram: HDR-style log-linear histogram; see histogram.h.
 *
 * Bucket layout: values below 128 have a bucket each. Above, each power of
 * two [2^k, 2^(k+1)) is cut into 128 equal buckets, indexed by the 7 bits
 * after the leading one. So bucket index = (k - 6) * 128 + those 7 bits, and
 * the relative width of every bucket is at most 1/128.
 */
#include "histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static uint64_t bucket_low(unsigned b)
{
    if (b < HIST_SUB)
        return b;
    unsigned shift = b / HIST_SUB - 1;
    return (uint64_t)(HIST_SUB + b % HIST_SUB) << shift;
}

static uint64_t bucket_high(unsigned b)
{
    if (b < HIST_SUB)
        return b;
    unsigned shift = b / HIST_SUB - 1;
    return bucket_low(b) + ((uint64_t)1 << shift) - 1;
}

uint64_t hist_lowest_equivalent(uint64_t v)
{
    return bucket_low(bucket_of(v));
}

uint64_t hist_highest_equivalent(uint64_t v)
{
    return bucket_high(bucket_of(v));
}

void hist_reset(hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void hist_record_n(hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->counts[bucket_of(v)] += n;
    h->total += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_record(hist *h, uint64_t v)
{
    hist_record_n(h, v, 1);
}

void hist_merge(hist *dst, const hist *src)
{
    if (src->total == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_count(const hist *h)
{
    return h->total;
}

uint64_t hist_min(const hist *h)
{
    return h->total ? h->min : 0;
}

uint64_t hist_max(const hist *h)
{
    return h->max;
}

double hist_mean(const hist *h)
{
    return h->total ? h->sum / (double)h->total : 0;
}

uint64_t hist_percentile(const hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* The rank of the value wanted, 1-based; the small epsilon keeps 99% of
     * 100 at 99 despite floating point. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 1 - 1e-9);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}
