/* ring: the consistent-hash ring; see ring.h.
 *
 * Layout: one sorted array of (token, member) points. For each point the
 * index of the next point owned by a different member is precomputed, so a
 * preference list skips runs of one member's consecutive tokens instead of
 * walking them; lookup is a binary search, O(log points).
 */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

typedef struct ring_point {
    uint64_t token;
    uint32_t member;
    uint32_t next_other; /* next point (clockwise) whose member differs */
} ring_point;

struct ring {
    size_t nmembers;
    char **ids;         /* sorted bytewise */
    uint32_t *vnodes;
    ring_point *points; /* sorted by token, then member */
    size_t npoints;
    /* bucket[b]: the first point whose token is at least b << bshift (up to
     * npoints): a lookup starts there instead of a binary search, whose
     * unpredictable branches were 4% of a node serving cluster GETs. */
    uint32_t *bucket;
    unsigned bshift;
    uint64_t epoch;
};

uint64_t ring_token(const void *key, size_t klen) { return XXH3_64bits(key, klen); }

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const ring_member *)a)->id, ((const ring_member *)b)->id);
}

static int cmp_point(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return x->member < y->member ? -1 : x->member > y->member;
}

/* The epoch hashes a canonical text of the ring: "v1;" then "id:vnodes;"
 * for each member in id order. */
static uint64_t compute_epoch(const ring *r)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return 0;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, "v1;", 3);
    for (size_t i = 0; i < r->nmembers; i++) {
        char vn[16];
        int n = snprintf(vn, sizeof vn, ":%u;", r->vnodes[i]);
        XXH3_64bits_update(st, r->ids[i], strlen(r->ids[i]));
        XXH3_64bits_update(st, vn, (size_t)n);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static void link_runs(ring *r)
{
    size_t n = r->npoints;
    if (n == 0)
        return;
    /* Walk backwards twice around the circle so every run sees its end. */
    uint32_t next = (uint32_t)n; /* n = "no other member anywhere" */
    for (size_t pass = 0; pass < 2; pass++)
        for (size_t k = n; k-- > 0;) {
            size_t after = (k + 1) % n;
            if (r->points[after].member != r->points[k].member)
                next = (uint32_t)after;
            r->points[k].next_other = next;
        }
}

void ring_free(ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nmembers; i++)
        free(r->ids[i]);
    free(r->ids);
    free(r->vnodes);
    free(r->points);
    free(r->bucket);
    free(r);
}

#define RING_BUCKET_BITS_MAX 16

/* One bucket per point or so (a power of two, 2 to 2^16). */
static int fill_buckets(ring *r)
{
    unsigned bits = 1;
    while (bits < RING_BUCKET_BITS_MAX && ((size_t)1 << bits) < r->npoints)
        bits++;
    size_t nb = (size_t)1 << bits;
    if (!(r->bucket = malloc(nb * sizeof *r->bucket)))
        return -1;
    r->bshift = 64 - bits;
    size_t p = 0;
    for (size_t b = 0; b < nb; b++) {
        uint64_t start = (uint64_t)b << r->bshift;
        while (p < r->npoints && r->points[p].token < start)
            p++;
        r->bucket[b] = (uint32_t)p;
    }
    return 0;
}

ring *ring_new(const ring_member *members, size_t n, char *err, size_t errlen)
{
    ring_member *sorted = NULL;
    ring *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    if (n > RING_MAX_MEMBERS) {
        snprintf(err, errlen, "%zu members; the ring holds at most %d", n, RING_MAX_MEMBERS);
        goto fail;
    }
    sorted = malloc((n ? n : 1) * sizeof *sorted);
    r->ids = calloc(n ? n : 1, sizeof *r->ids);
    r->vnodes = calloc(n ? n : 1, sizeof *r->vnodes);
    if (!sorted || !r->ids || !r->vnodes)
        goto nomem;
    if (n)
        memcpy(sorted, members, n * sizeof *sorted); /* members may be NULL when n is 0 */
    for (size_t i = 0; i < n; i++) {
        if (!sorted[i].id || !sorted[i].id[0]) {
            snprintf(err, errlen, "member %zu has an empty id", i);
            goto fail;
        }
        if (sorted[i].vnodes == 0 || sorted[i].vnodes > RING_MAX_VNODES) {
            snprintf(err, errlen, "member '%s' has %u vnodes; use 1 to %d", sorted[i].id,
                     sorted[i].vnodes, RING_MAX_VNODES);
            goto fail;
        }
        r->npoints += sorted[i].vnodes;
    }
    qsort(sorted, n, sizeof *sorted, cmp_member);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(sorted[i - 1].id, sorted[i].id) == 0) {
            snprintf(err, errlen, "member id '%s' appears twice", sorted[i].id);
            goto fail;
        }
        if (!(r->ids[i] = strdup(sorted[i].id)))
            goto nomem;
        r->vnodes[i] = sorted[i].vnodes;
        r->nmembers++;
    }
    r->points = malloc((r->npoints ? r->npoints : 1) * sizeof *r->points);
    if (!r->points)
        goto nomem;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        for (uint32_t v = 0; v < r->vnodes[i]; v++) {
            int len = snprintf(buf, sizeof buf, "%s/%u", r->ids[i], v);
            r->points[k++] = (ring_point){.token = XXH3_64bits(buf, (size_t)len),
                                          .member = (uint32_t)i};
        }
    }
    qsort(r->points, r->npoints, sizeof *r->points, cmp_point);
    link_runs(r);
    if (fill_buckets(r) != 0)
        goto nomem;
    r->epoch = compute_epoch(r);
    free(sorted);
    return r;

nomem:
    snprintf(err, errlen, "out of memory");
fail:
    free(sorted);
    ring_free(r);
    return NULL;
}

/* The first point at or after token, wrapping to 0. */
static size_t successor(const ring *r, uint64_t token)
{
    size_t p = r->bucket[token >> r->bshift];
    while (p < r->npoints && r->points[p].token < token)
        p++; /* about one point per bucket: tokens are hashes */
    return p == r->npoints ? 0 : p;
}

size_t ring_preference(const ring *r, uint64_t token, size_t nrep, size_t *out)
{
    if (nrep > r->nmembers)
        nrep = r->nmembers;
    if (nrep == 0)
        return 0;
    if (r->nmembers == 1 && r->npoints > 0) { /* a lone node: every point is its own */
        out[0] = r->points[0].member;
        return 1;
    }
    size_t got = 0, p = successor(r, token);
    while (got < nrep) {
        uint32_t m = r->points[p].member;
        size_t j = 0;
        while (j < got && out[j] != m)
            j++;
        if (j == got)
            out[got++] = m;
        p = r->points[p].next_other;
        if (p == r->npoints)
            break; /* one member only */
    }
    return got;
}

long ring_primary(const ring *r, uint64_t token)
{
    return r->npoints ? (long)r->points[successor(r, token)].member : -1;
}

size_t ring_members(const ring *r) { return r->nmembers; }

size_t ring_points(const ring *r) { return r->npoints; }

uint64_t ring_point_token(const ring *r, size_t i)
{
    return i < r->npoints ? r->points[i].token : 0;
}

const char *ring_member_id(const ring *r, size_t idx)
{
    return idx < r->nmembers ? r->ids[idx] : NULL;
}

uint32_t ring_member_vnodes(const ring *r, size_t idx)
{
    return idx < r->nmembers ? r->vnodes[idx] : 0;
}

long ring_find(const ring *r, const char *id)
{
    size_t lo = 0, hi = r->nmembers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->ids[mid], id);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint64_t ring_epoch(const ring *r) { return r->epoch; }

double ring_share(const ring *r, size_t idx)
{
    if (idx >= r->nmembers || r->npoints == 0)
        return 0.0;
    /* Point k owns the arc (token of k-1, token of k]; the first point also
     * owns the wrap-around arc past the last one. */
    long double owned = 0;
    for (size_t k = 0; k < r->npoints; k++) {
        if (r->points[k].member != idx)
            continue;
        uint64_t prev = r->points[k == 0 ? r->npoints - 1 : k - 1].token;
        owned += (long double)(uint64_t)(r->points[k].token - prev);
    }
    if (r->npoints == 1 || r->nmembers == 1)
        return 1.0;
    return (double)(owned / 18446744073709551616.0L);
}
