/* ranges: a ring cut into replica ranges; see ranges.h. */
#include "ranges.h"

#include <stdlib.h>
#include <string.h>

bool range_has(const range *g, uint32_t idx)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->owner[i] == idx)
            return true;
    return false;
}

static bool same_set(const range *a, const range *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!range_has(b, a->owner[i]))
            return false;
    return true;
}

long ranges_build(const ring *r, size_t nrep, range **out)
{
    size_t np = ring_points(r);
    *out = NULL;
    if (np == 0)
        return 0;
    if (nrep > RANGES_MAX_N)
        nrep = RANGES_MAX_N;
    range *g = malloc(np * sizeof *g);
    if (!g)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < np; i++) {
        range cur = {.lo = ring_point_token(r, (i + np - 1) % np), .hi = ring_point_token(r, i)};
        size_t idx[RANGES_MAX_N];
        cur.n = ring_preference(r, cur.hi, nrep, idx);
        for (size_t j = 0; j < cur.n; j++)
            cur.owner[j] = (uint32_t)idx[j];
        if (n > 0 && same_set(&g[n - 1], &cur))
            g[n - 1].hi = cur.hi; /* extends the previous range */
        else
            g[n++] = cur;
    }
    /* The last range runs into the first across the end of the token space. */
    if (n > 1 && same_set(&g[n - 1], &g[0])) {
        g[0].lo = g[n - 1].lo;
        n--;
    }
    if (n == 1)
        g[0].lo = g[0].hi; /* one range: the whole ring */
    *out = g;
    return (long)n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of t's replicas in r; returns how many. */
static size_t owners_at(const ring *r, uint64_t t, size_t nrep, const char **ids)
{
    size_t idx[RANGES_MAX_N];
    size_t n = ring_preference(r, t, nrep, idx);
    for (size_t i = 0; i < n; i++)
        ids[i] = ring_member_id(r, idx[i]);
    return n;
}

static bool has_id(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static bool same_ids(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t j = 0; j < na; j++)
        if (!has_id(b, nb, a[j]))
            return false;
    return true;
}

/* Every token of both rings, sorted, without repeats: each bounds an
 * elementary arc (previous token, token] on which both rings' owners are
 * fixed. Returns the count with *out malloc'd, or -1 when out of memory. */
static long boundaries(const ring *a, const ring *b, uint64_t **out)
{
    size_t na = ring_points(a), nb = ring_points(b);
    uint64_t *t = malloc((na + nb) * sizeof *t);
    if (!(*out = t))
        return -1;
    for (size_t i = 0; i < na; i++)
        t[i] = ring_point_token(a, i);
    for (size_t i = 0; i < nb; i++)
        t[na + i] = ring_point_token(b, i);
    qsort(t, na + nb, sizeof *t, cmp_u64);
    size_t nt = 0;
    for (size_t i = 0; i < na + nb; i++)
        if (nt == 0 || t[nt - 1] != t[i])
            t[nt++] = t[i];
    return (long)nt;
}

long ranges_gained(const ring *from, const ring *to, size_t nrep, const char *self,
                   range_move **out)
{
    size_t na = ring_points(from), nb = ring_points(to);
    *out = NULL;
    if (nb == 0 || na == 0 || ring_find(to, self) < 0)
        return 0;
    if (nrep > RANGES_MAX_N)
        nrep = RANGES_MAX_N;
    uint64_t *t;
    long lnt = boundaries(from, to, &t);
    range_move *mv = lnt > 0 ? malloc((size_t)lnt * sizeof *mv) : NULL;
    if (!mv) {
        free(t);
        return -1;
    }
    size_t nt = (size_t)lnt;
    size_t n = 0;
    for (size_t i = 0; i < nt; i++) {
        const char *old[RANGES_MAX_N], *neu[RANGES_MAX_N];
        size_t no = owners_at(from, t[i], nrep, old), nn = owners_at(to, t[i], nrep, neu);
        if (!has_id(neu, nn, self) || has_id(old, no, self))
            continue;
        range_move m = {.lo = t[(i + nt - 1) % nt], .hi = t[i], .nold = no};
        memcpy(m.old, old, no * sizeof *old);
        /* The owners that drop out hold what the new ones need (every write
         * acknowledged by a quorum of the old owners is on a quorum of the
         * new ones or on one that leaves); with none leaving (the ring grew
         * past N), every old owner is a source. */
        for (size_t j = 0; j < no; j++)
            if (!has_id(neu, nn, old[j]))
                m.src[m.nsrc++] = old[j];
        if (m.nsrc == 0)
            for (size_t j = 0; j < no; j++)
                m.src[m.nsrc++] = old[j];
        if (n > 0 && mv[n - 1].hi == m.lo &&
            same_ids(mv[n - 1].src, mv[n - 1].nsrc, m.src, m.nsrc) &&
            same_ids(mv[n - 1].old, mv[n - 1].nold, m.old, m.nold)) {
            mv[n - 1].hi = m.hi;
            continue;
        }
        mv[n++] = m;
    }
    free(t);
    if (n == 0) {
        free(mv);
        return 0;
    }
    *out = mv;
    return (long)n;
}

long ranges_handoff(const ring *from, const ring *to, size_t nrep, const char *self,
                    range_handoff **out)
{
    size_t na = ring_points(from), nb = ring_points(to);
    *out = NULL;
    if (na == 0 || nb == 0)
        return 0;
    if (nrep > RANGES_MAX_N)
        nrep = RANGES_MAX_N;
    uint64_t *t;
    long lnt = boundaries(from, to, &t);
    range_handoff *h = lnt > 0 ? malloc((size_t)lnt * sizeof *h) : NULL;
    if (!h) {
        free(t);
        return -1;
    }
    size_t nt = (size_t)lnt;
    size_t n = 0;
    for (size_t i = 0; i < nt; i++) {
        const char *old[RANGES_MAX_N], *neu[RANGES_MAX_N];
        size_t no = owners_at(from, t[i], nrep, old), nn = owners_at(to, t[i], nrep, neu);
        if (!has_id(old, no, self))
            continue;
        range_handoff x = {.lo = t[(i + nt - 1) % nt], .hi = t[i]};
        for (size_t j = 0; j < nn; j++)
            if (!has_id(old, no, neu[j]))
                x.dst[x.ndst++] = neu[j];
        if (x.ndst == 0) /* nobody new: the ring shrank below N, every owner gets it */
            for (size_t j = 0; j < nn; j++)
                if (strcmp(neu[j], self) != 0)
                    x.dst[x.ndst++] = neu[j];
        if (x.ndst == 0)
            continue;
        if (n > 0 && h[n - 1].hi == x.lo && same_ids(h[n - 1].dst, h[n - 1].ndst, x.dst, x.ndst)) {
            h[n - 1].hi = x.hi;
            continue;
        }
        h[n++] = x;
    }
    free(t);
    if (n == 0) {
        free(h);
        return 0;
    }
    *out = h;
    return (long)n;
}
