/* gossip_records: the member table of node/gossip.c and the rules that
 * apply a member record to it (ordering, refutation, Lifeguard suspicion),
 * shared by gossip.c's probing and push-pull code. Internal to gossip: the
 * struct layouts here are not part of the gossip.h contract.
 */
#ifndef RINGKV_GOSSIP_RECORDS_H
#define RINGKV_GOSSIP_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "gossip.h"
#include "gossip_queue.h"
#include "ringkv.pb-c.h"

#define GOSSIP_RELAY_MAX 64 /* indirect probes run for others at once */

typedef struct gmember {
    gossip_member m;
    char accuser[GOSSIP_ID_MAX + 1]; /* who started the current suspicion */
    gossip_qitem *bcast;             /* our pending broadcast about it */
    struct gmember *hnext;           /* hash chain */
    /* Lifeguard suspicion, while SUSPECT (susp_deadline 0 otherwise) */
    uint64_t susp_start, susp_deadline, susp_min, susp_max;
    uint32_t susp_k, susp_n;              /* wanted and seen confirmations */
    char (*confirmed)[GOSSIP_ID_MAX + 1]; /* accuser + confirmers: k+1 slots */
    size_t susp_idx;                      /* index in gossip.suspects */
} gmember;

typedef struct gossip_probe {
    bool active, indirect_sent;
    char target[GOSSIP_ID_MAX + 1];
    uint32_t seq, nacks, expected_nacks;
    uint64_t timeout_at, end_at;
} gossip_probe;

/* An indirect probe we run for another member (PingReq). */
typedef struct gossip_relay {
    bool used, nack;
    uint32_t seq, origin_seq;
    uint64_t deadline;
    char origin[GOSSIP_ADDR_MAX];
    char target[GOSSIP_ID_MAX + 1];
} gossip_relay;

struct gossip {
    gossip_config cfg;
    gossip_io io;
    uint64_t rng;
    gmember *self;
    gmember **all, **probe_list, **suspects; /* each holds up to cap_all */
    size_t n_all, cap_all, probe_n, probe_idx, n_susp;
    gmember **table; /* id -> member, chained */
    size_t table_size;
    gossip_member *view; /* sorted copy for gossip_members */
    size_t view_cap;
    bool view_dirty;
    gossip_queue *queue;
    gossip_probe pr;
    gossip_relay relays[GOSSIP_RELAY_MAX];
    size_t n_relays;
    uint64_t next_probe, next_gossip, next_pushpull;
    char (*seeds)[GOSSIP_ADDR_MAX];
    size_t nseeds, seed_failures;
    bool joined, joining, left;
    uint64_t join_retry_at;
    uint32_t join_backoff, awareness, seq, pkt_seq, n_live;
    gossip_stats stats;
    uint8_t *buf; /* one datagram */
};

/* splitmix64 inside the instance: seeded, so runs replay exactly. */
uint64_t gossip_rnd(gossip *g);
uint64_t gossip_rnd_below(gossip *g, uint64_t n); /* 0 when n is 0 */

gmember *gossip_lookup(const gossip *g, const char *id);
bool gossip_is_live(gossip_state s); /* ALIVE or SUSPECT */
/* Adds a new member to the table and the probe list; -1 on no memory. */
int gossip_insert(gossip *g, gmember *gm);
int gossip_rehash(gossip *g, size_t size);

void gossip_emit(gossip *g, gossip_event_type type, const gmember *gm, gossip_state old);
void gossip_set_state(gossip *g, uint64_t now, gmember *gm, gossip_state s);
void gossip_awareness_add(gossip *g, int delta);
void gossip_copy_str(char *dst, size_t cap, const char *src);

/* Each update is sent retransmit_mult * ceil(log10(n + 1)) times. */
uint32_t gossip_retransmit_limit(const gossip *g);
/* Queues our current record of gm (accuser: on a SUSPECT record). */
void gossip_broadcast(gossip *g, gmember *gm, const char *accuser);

/* Applies one record from a datagram or push-pull state; sender stands in
 * for a missing accuser. Returns true when the record accuses us (suspect,
 * dead, left or removed, fresh or already refuted). */
bool gossip_apply(gossip *g, uint64_t now, const Ringkv__GossipMember *r, const char *sender);
/* Our own verdict about gm (SUSPECT after a failed probe, DEAD on expiry). */
void gossip_declare(gossip *g, uint64_t now, gmember *gm, gossip_state s);

#endif
