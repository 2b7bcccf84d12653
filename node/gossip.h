/* gossip: cluster membership by SWIM with the Lifeguard refinements (as in
 * HashiCorp memberlist), as pure logic.
 *
 * Inputs are time, received datagrams, push-pull states and local commands;
 * outputs go through a gossip_io table (datagrams to send, push-pull
 * exchanges to run, membership events). Nothing here touches a socket or a
 * clock, so tests and the simulator drive many instances in one process with
 * a fake clock and an in-memory network; node/membership.c is the libevent
 * adapter. Not thread-safe: one instance is driven by one thread.
 */
#ifndef RINGKV_GOSSIP_H
#define RINGKV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOSSIP_ID_MAX 64    /* bytes in a node id */
#define GOSSIP_ADDR_MAX 128 /* bytes in a HOST:PORT address, NUL included */
#define GOSSIP_VERSION 1    /* first byte of every datagram and push-pull state */

typedef enum gossip_state {
    GOSSIP_ALIVE = 0,
    GOSSIP_SUSPECT = 1,
    GOSSIP_DEAD = 2,
    GOSSIP_LEFT = 3,    /* left gracefully (SIGTERM) */
    GOSSIP_REMOVED = 4, /* removed for good by an operator (`ringkv remove`) */
} gossip_state;

/* Ring role, carried for the placement and rebalancing work. */
typedef enum gossip_role {
    GOSSIP_ROLE_MEMBER = 0,
    GOSSIP_ROLE_JOINING = 1,
    GOSSIP_ROLE_LEAVING = 2,
} gossip_role;

typedef struct gossip_member {
    char id[GOSSIP_ID_MAX + 1];
    char peer_addr[GOSSIP_ADDR_MAX];   /* gossip UDP and peer TCP, same port */
    char client_addr[GOSSIP_ADDR_MAX]; /* client protocol */
    char resp_addr[GOSSIP_ADDR_MAX];   /* RESP port; empty when off */
    gossip_state state;
    uint64_t incarnation;
    gossip_role role;
    uint32_t vnodes;
    uint64_t state_since_ms; /* local clock when this node last saw the state change */
} gossip_member;

typedef struct gossip_config {
    uint32_t probe_interval_ms;    /* one probe per interval (scaled by awareness) */
    uint32_t probe_timeout_ms;     /* direct ack wait before indirect probes */
    uint32_t indirect_checks;      /* k members asked to probe on our behalf */
    uint32_t suspicion_mult;       /* min suspicion = mult * log10(max(n,10)) * probe_interval */
    uint32_t suspicion_max_mult;   /* max suspicion = this * min; shrinks with confirmations */
    uint32_t retransmit_mult;      /* each update piggybacks mult * ceil(log10(n+1)) times */
    uint32_t gossip_interval_ms;   /* piggyback-only gossip to gossip_nodes random members */
    uint32_t gossip_nodes;
    uint32_t pushpull_interval_ms; /* full-state exchange with one random member; 0 = off */
    uint32_t awareness_max;        /* Lifeguard local health multiplier cap */
    uint32_t max_packet;           /* datagram size limit, bytes (<= 1400) */
} gossip_config;

/* Membership events. member points into the gossip instance and is valid
 * only during the callback. */
typedef enum gossip_event_type {
    GOSSIP_EV_JOIN = 0,   /* a member appeared for the first time */
    GOSSIP_EV_STATE = 1,  /* its state changed (old_state says from what) */
    GOSSIP_EV_UPDATE = 2, /* addresses, role or vnodes changed, state did not */
} gossip_event_type;

typedef struct gossip_event {
    gossip_event_type type;
    const gossip_member *member;
    gossip_state old_state;
} gossip_event;

/* The outside world (memberlist's Transport). All callbacks may be called
 * from any gossip_* function; they must not call back into gossip. */
typedef struct gossip_io {
    void *ctx;
    /* Sends one datagram of len <= max_packet bytes to a peer address. */
    void (*send)(void *ctx, const char *peer_addr, const uint8_t *buf, size_t len);
    /* Asks the adapter to run a push-pull exchange with peer_addr over TCP:
     * send gossip_encode_state(join), pass the answer to gossip_merge_state,
     * and report the outcome with gossip_pushpull_done. */
    void (*pushpull)(void *ctx, const char *peer_addr, bool join);
    /* Membership changed. */
    void (*event)(void *ctx, const gossip_event *ev);
} gossip_io;

typedef struct gossip_stats {
    uint64_t packets_sent, packets_received, bytes_sent, bytes_received;
    uint64_t packets_dropped;   /* malformed, oversized, wrong version */
    uint64_t probes, probe_failures, indirect_probes;
    uint64_t suspicions, refutations; /* refutations: suspicions of us we refuted */
    uint64_t pushpulls;
    uint32_t awareness;         /* current Lifeguard health score, 0 = healthy */
} gossip_stats;

typedef struct gossip gossip;

/* memberlist-like LAN defaults, tuned to report a crash within a few seconds
 * on a LAN: probe 500 ms / timeout 200 ms, k=3, suspicion mult 4, max mult 6,
 * retransmit mult 4, gossip 200 ms to 3 nodes, push-pull 30 s, awareness 8,
 * packets 1400 bytes. */
void gossip_config_defaults(gossip_config *cfg);

/* Creates an instance whose own record is *self (state must be ALIVE;
 * self->incarnation should be larger than any the cluster saw for this id,
 * e.g. persisted and bumped at each start). seed makes its random choices
 * replayable. io is copied. Returns NULL on bad arguments or no memory. */
gossip *gossip_new(const gossip_config *cfg, const gossip_member *self, const gossip_io *io,
                   uint64_t seed, uint64_t now_ms);
void gossip_free(gossip *g);

/* Runs every timer due at now_ms (probes, timeouts, suspicion expiry,
 * gossip, push-pull). Returns the time of the next deadline; call again then
 * (or sooner). */
uint64_t gossip_tick(gossip *g, uint64_t now_ms);

/* A datagram arrived from from_addr. Malformed, oversized or wrong-version
 * input is dropped and counted, never trusted. */
void gossip_receive(gossip *g, uint64_t now_ms, const char *from_addr, const uint8_t *buf,
                    size_t len);

/* Push-pull: the full state (every member record) as bytes, malloc'd into
 * *buf (the caller frees it). join marks the state of a joining node.
 * Returns 0 or -1 (no memory). */
int gossip_encode_state(gossip *g, bool join, uint8_t **buf, size_t *len);

typedef enum gossip_merge_result {
    GOSSIP_MERGE_OK = 0,
    GOSSIP_MERGE_MALFORMED = -1, /* bytes are not a valid state; err says why */
    GOSSIP_MERGE_CONFLICT = -2,  /* a joining state claims an id that a live member
                                    at another peer address holds; err says which */
} gossip_merge_result;

/* Merges a remote full state. When the state is a join and it conflicts,
 * nothing is merged and the caller must refuse the joiner with err. */
gossip_merge_result gossip_merge_state(gossip *g, uint64_t now_ms, const uint8_t *buf, size_t len,
                                       char *err, size_t errlen);

/* Outcome of an io->pushpull request, so joins can be retried with backoff:
 * ok = the exchange completed and the answer merged. */
void gossip_pushpull_done(gossip *g, uint64_t now_ms, const char *peer_addr, bool ok);

/* Starts joining through seed peer addresses (a copy is kept): push-pull
 * with each, retried with exponential backoff (1 s doubling to 30 s) until
 * one succeeds. With no seeds the node is a cluster of one at once. */
void gossip_join(gossip *g, uint64_t now_ms, const char *const *seeds, size_t nseeds);

/* True once a join push-pull has succeeded (or there were no seeds). */
bool gossip_joined(const gossip *g);

/* Graceful leave: marks self LEFT with a higher incarnation and broadcasts
 * it; keep ticking for a moment so it spreads. */
void gossip_leave(gossip *g, uint64_t now_ms);

/* Marks a DEAD (or LEFT) member REMOVED for good and broadcasts it. Returns
 * 0, or -1 with err when the id is unknown, self, or not dead/left. */
int gossip_remove(gossip *g, uint64_t now_ms, const char *id, char *err, size_t errlen);

/* Sets self's ring role and vnodes and broadcasts the update. */
void gossip_set_role(gossip *g, uint64_t now_ms, gossip_role role, uint32_t vnodes);

/* Every known member, self included, in a stable order (by id). The array
 * belongs to g and is valid until the next call into g. */
const gossip_member *gossip_members(const gossip *g, size_t *n);
const gossip_member *gossip_self(const gossip *g);
const gossip_member *gossip_find(const gossip *g, const char *id);
void gossip_get_stats(const gossip *g, gossip_stats *out);

const char *gossip_state_name(gossip_state s); /* "alive", "suspect", ... */
const char *gossip_role_name(gossip_role r);   /* "member", "joining", "leaving" */

#endif
