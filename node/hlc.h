/* hlc: a hybrid logical clock (Kulkarni et al.), the version stamp of every write.
 *
 * A timestamp is 48 bits of wall-clock milliseconds and 16 bits of logical
 * counter, so it orders like a number and stays close to real time. Pure:
 * the caller passes the wall clock in, which keeps it testable.
 */
#ifndef RINGKV_HLC_H
#define RINGKV_HLC_H

#include <stdint.h>

#define HLC_LOGICAL_BITS 16

typedef struct hlc {
    uint64_t last; /* the largest timestamp issued or observed */
} hlc;

/* Starts a clock that never issues a value at or below floor (use the largest
 * timestamp persisted before a restart). */
void hlc_init(hlc *c, uint64_t floor);

/* A new timestamp, strictly greater than every one issued or observed. */
uint64_t hlc_now(hlc *c, uint64_t wall_ms);

/* Folds in a timestamp received from elsewhere. */
void hlc_observe(hlc *c, uint64_t remote);

/* The wall-clock milliseconds part of a timestamp. */
static inline uint64_t hlc_physical_ms(uint64_t ts) { return ts >> HLC_LOGICAL_BITS; }

#endif
