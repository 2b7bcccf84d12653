/* handoff: the delivering side of hinted handoff.
 *
 * A node that stood in for a down owner keeps its writes as hints in the
 * store (store_hint_put, through replica.c). This module replays them to the
 * owner as ordinary replica writes when the ring view reports the owner up,
 * and every HANDOFF_TICK_MS for owners that are up with hints left (after a
 * restart, or a round cut short), at most HANDOFF_INFLIGHT per owner at a
 * time, deleting each hint only when the owner acknowledges it.
 * Event-loop thread only.
 */
#ifndef RINGKV_HANDOFF_H
#define RINGKV_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define HANDOFF_INFLIGHT 256  /* hints in flight to one owner */
#define HANDOFF_TICK_MS  2000 /* looks for owners that are up with hints left */

struct server;
struct cluster;
struct replica;

typedef struct handoff handoff;

/* Creates the deliverer; subscribes to cl's up events (cl may be NULL: no
 * owner is ever up). srv, cl and r are borrowed. Returns NULL with a
 * message. */
handoff *handoff_new(struct server *srv, struct cluster *cl, struct replica *r, char *err,
                     size_t errlen);

/* Frees ho and what its requests in flight carry. Call it after the
 * replica layer has dropped those requests (replica_free does both, in
 * that order), so their callbacks never run. NULL is a no-op. */
void handoff_free(handoff *ho);

/* Starts delivering owner's hints now (it is up). */
void handoff_owner_up(handoff *ho, const char *owner);

/* Hints delivered and deleted since start. */
uint64_t handoff_delivered(const handoff *ho);

#endif
