/* membership: the node's adapter around the gossip state machine (gossip.h).
 *
 * It owns one gossip instance on the node's libevent loop: a UDP socket on
 * [node] peer for gossip datagrams (at most 1400 bytes; bigger ones are
 * dropped), a timer armed at gossip_tick's next deadline, and push-pull over
 * TCP on the same port number through peer.c. It logs every membership
 * event and hands it to subscribers, so the ring, hinted handoff and
 * rebalancing follow membership without touching gossip.
 *
 * Clock: a monotonic millisecond clock (membership_now_ms), so a wall-clock
 * step never fires or stalls a gossip timer. Event-loop thread only.
 */
#ifndef RINGKV_MEMBERSHIP_H
#define RINGKV_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "gossip.h"

#define MEMBERSHIP_MAX_DATAGRAM        1400 /* DESIGN.md: gossip datagrams stay under this */
#define MEMBERSHIP_PUSHPULL_TIMEOUT_MS 2000
#define MEMBERSHIP_MAX_SUBSCRIBERS     16

typedef struct membership membership;

/* A membership event (gossip.h): ev->member is valid only during the call.
 * Subscribers run on the event loop, must return quickly, and must not call
 * back into membership_* functions that change state (remove, leave). */
typedef void (*membership_event_fn)(void *ctx, const gossip_event *ev);

/* The node must stop: a seed refused our join (our id belongs to a live
 * member elsewhere). msg says why; the node exits with status 1. */
typedef void (*membership_fatal_fn)(void *ctx, const char *msg);

/* This node's record. Strings are copied. */
typedef struct membership_self {
    const char *id;
    const char *client_addr; /* the bound client-protocol address */
    const char *resp_addr;   /* "" when RESP is off */
    uint64_t incarnation;    /* store_incarnation(): higher than any earlier run's */
    uint32_t vnodes;
    gossip_role role;        /* ring role to announce at start (member or joining) */
} membership_self;

typedef struct membership_stats {
    gossip_stats gossip;
    uint64_t alive, suspect, dead, left, removed; /* members by state, self included */
    uint64_t datagrams_dropped; /* received over the size limit, or not sendable */
    uint64_t send_errors;       /* sendto failed (buffer full, no route) */
    uint64_t peer_dropped;      /* peer TCP connections dropped for bad input or limits */
} membership_stats;

/* Binds UDP and TCP on cfg->peer (one port number; with port 0, a free
 * number both can take) and creates the gossip instance from cfg's [gossip]
 * section. cfg is borrowed and must outlive m. fatal (may be NULL) is how m
 * asks the node to stop. Returns NULL with a message. */
membership *membership_new(struct event_base *base, const config *cfg, const membership_self *self,
                           membership_fatal_fn fatal, void *fatal_ctx, char *err, size_t errlen);

/* Joins through cfg->seeds (this node's own address is skipped); with no
 * other seed the node is a cluster of one at once. */
void membership_start(membership *m);

/* Graceful leave: marks this node left and keeps gossiping until every
 * member that was alive has been sent a datagram since, or max_wait_ms
 * passed; then calls done(ctx) once, from the event loop. */
void membership_leave(membership *m, uint32_t max_wait_ms, void (*done)(void *ctx), void *ctx);

/* Stops gossip and frees. NULL is a no-op. */
void membership_free(membership *m);

/* Adds a subscriber (called in the order added). Returns 0, or -1 when
 * MEMBERSHIP_MAX_SUBSCRIBERS are already in. */
int membership_subscribe(membership *m, membership_event_fn fn, void *ctx);
void membership_unsubscribe(membership *m, membership_event_fn fn, void *ctx);

/* The peer port (peer.c) m serves, for other modules' messages (peer_route). */
struct peer *membership_peer(membership *m);

/* The bound peer address ("127.0.0.1:7101"), as the cluster sees it. */
const char *membership_peer_addr(const membership *m);

/* Every member, self included, ordered by id; valid until the next call
 * into m (gossip_members). */
const gossip_member *membership_members(membership *m, size_t *n);

/* Marks a dead or left member removed for good. Returns 0, or -1 with
 * gossip's message (unknown id, own id, not dead or left). */
int membership_remove(membership *m, const char *id, char *err, size_t errlen);

void membership_get_stats(const membership *m, membership_stats *out);

/* This node's ring role, and a change of it (announced by gossip). */
gossip_role membership_self_role(membership *m);
void membership_set_role(membership *m, gossip_role role);

/* The clock gossip runs on: monotonic milliseconds. */
uint64_t membership_now_ms(void);

#endif
