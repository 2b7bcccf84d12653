/* ranges: a ring cut into replica ranges, as pure logic.
 *
 * Each ring point owns the arc (previous token, its token]; an arc's
 * replicas are the preference list of its token. Adjacent arcs with the
 * same set of replicas form one range, so a three-node ring with N=3 is a
 * single range (the whole ring) and a bigger ring has about one range per
 * point. Streaming (who gains what when the ring changes) and anti-entropy
 * (which ranges two replicas share) both work range by range, and every
 * node computes the same ranges from the same ring.
 */
#ifndef RINGKV_RANGES_H
#define RINGKV_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#define RANGES_MAX_N 16 /* the most replicas per range (CLUSTER_MAX_N) */

/* Tokens in (lo, hi], clockwise; hi <= lo wraps, lo == hi is the whole
 * ring (store_in_range's convention). */
typedef struct range {
    uint64_t lo, hi;
    size_t n;                     /* replicas: min(nrep, ring members) */
    uint32_t owner[RANGES_MAX_N]; /* ring member indexes, in the preference order of hi */
} range;

/* Cuts r into ranges for nrep replicas (capped at RANGES_MAX_N), in token
 * order. Returns the count with *out malloc'd (the caller frees it; NULL
 * for an empty ring), or -1 when out of memory. */
long ranges_build(const ring *r, size_t nrep, range **out);

/* Whether member index idx of the ring is one of g's replicas. */
bool range_has(const range *g, uint32_t idx);

/* A range this node gains when the ring changes from `from` to `to`, and
 * where to get it: the owners that drop out of its preference list (they
 * hold every acknowledged write the remaining owners might lack), or every
 * old owner when none drops out. Ids point into `from`. */
typedef struct range_move {
    uint64_t lo, hi;
    size_t nsrc;
    const char *src[RANGES_MAX_N];
    size_t nold; /* every owner in `from`, in preference order: the fallbacks */
    const char *old[RANGES_MAX_N];
} range_move;

/* The ranges self replicates in `to` but not in `from`, in token order,
 * adjacent ones with the same sources merged. Returns the count with *out
 * malloc'd (NULL when none), or -1 when out of memory. */
long ranges_gained(const ring *from, const ring *to, size_t nrep, const char *self,
                   range_move **out);

/* A range self replicates in `from` and hands over as the ring changes to
 * `to` (self leaving): the owners in `to` that were not owners in `from`,
 * or, when there are none (the ring shrank below N), every owner in `to`. */
typedef struct range_handoff {
    uint64_t lo, hi;
    size_t ndst;
    const char *dst[RANGES_MAX_N]; /* ids in `to` */
} range_handoff;

/* The ranges self hands over, in token order. Returns the count with *out
 * malloc'd (NULL when none), or -1 when out of memory. */
long ranges_handoff(const ring *from, const ring *to, size_t nrep, const char *self,
                    range_handoff **out);

#endif
