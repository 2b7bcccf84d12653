/* gossip_queue: the broadcast queue of node/gossip.c (memberlist's
 * TransmitLimitedQueue). One pending record per member, least-transmitted
 * first, each sent at most `limit` times before it retires. Records are
 * stored pre-framed (tag, length, packed bytes) so filling a datagram is a
 * copy. Pure data structure: no clock, no I/O.
 */
#ifndef RINGKV_GOSSIP_QUEUE_H
#define RINGKV_GOSSIP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define GOSSIP_QUEUE_MAX_LIMIT 64 /* transmit limits above this are clamped */

typedef struct gossip_queue gossip_queue;
typedef struct gossip_qitem gossip_qitem;

gossip_queue *gossip_queue_new(void);
/* Frees the queue and every item, clearing each owner's slot. */
void gossip_queue_free(gossip_queue *q);

/* Queues a copy of rec (len bytes) as the one pending record of the owner
 * whose handle is *slot, replacing the record *slot points to, with a fresh
 * transmit count at the front of the queue. The queue keeps *slot up to date
 * and sets it to NULL when the record retires. Returns 0 or -1 (no memory;
 * the old record stays). */
int gossip_queue_put(gossip_queue *q, gossip_qitem **slot, const uint8_t *rec, size_t len);

/* Drops the owner's pending record, if any (*slot becomes NULL). */
void gossip_queue_cancel(gossip_queue *q, gossip_qitem **slot);

/* Copies as many pending records as fit into buf[0..cap), least-transmitted
 * (then newest) first; each copied record counts one transmission and
 * retires once sent `limit` times. Returns the bytes written. */
size_t gossip_queue_fill(gossip_queue *q, uint8_t *buf, size_t cap, uint32_t limit);

/* Number of pending records. */
size_t gossip_queue_len(const gossip_queue *q);

#endif
