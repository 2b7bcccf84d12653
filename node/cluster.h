/* cluster: the node's view of the ring — who owns which keys, who is alive —
 * built from membership events and shared by the coordinator, the peer links
 * and the TOPOLOGY operation.
 *
 * Ring membership changes only by join, decommission and remove. The
 * current ring holds the members whose role is member or leaving and that
 * are present: alive, suspect, dead, or left (stopped gracefully) with the
 * role member. A decommissioned node (left as leaving) and a removed one
 * are gone. While nodes join or leave, a pending ring (members and joining
 * members) says where ranges are going: writes go to the owners in both
 * (cluster_write_extra), reads to the current ones. Liveness is separate:
 * a dead or stopped member keeps its ranges and its writes go elsewhere
 * with a hint. Without membership (no [node] peer) the ring is this node
 * alone.
 * Event-loop thread only.
 */
#ifndef RINGKV_CLUSTER_H
#define RINGKV_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

struct membership;
struct config;

#define CLUSTER_MAX_N 16 /* the most replicas per key */

typedef struct cluster cluster;

/* One replica chosen for a key. */
typedef struct cluster_target {
    const char *id;        /* node id; valid until the next membership change */
    bool local;            /* this node */
    const char *hint_for;  /* sloppy quorum: the owner this node stands in for, or NULL */
} cluster_target;

/* Creates the view for this node (self_id) with replication factor n and
 * vnodes per member from cfg; subscribes to m's events when m is not NULL.
 * Returns NULL with a message. */
cluster *cluster_new(const struct config *cfg, const char *self_id, struct membership *m,
                     char *err, size_t errlen);
void cluster_free(cluster *c);

/* The current ring (never NULL; rebuilt on ring membership changes). */
const ring *cluster_ring(const cluster *c);
uint64_t cluster_epoch(const cluster *c);
/* Effective replication factor: min([replication] n, ring members). */
size_t cluster_n(const cluster *c);

/* Is this member up (alive or suspect, as gossip sees it; self always)? */
bool cluster_is_up(const cluster *c, const char *id);

/* The N owners of a key in preference order (live or not). Returns how many. */
size_t cluster_owners(const cluster *c, uint64_t token, cluster_target *out, size_t max);

/* The replicas a write or read of this key goes to now: each owner that is
 * up, and for each owner that is down the next up member clockwise past the
 * owners (sloppy quorum; hint_for names the owner). Returns how many (may be
 * fewer than N when too few members are up). */
size_t cluster_targets(const cluster *c, uint64_t token, cluster_target *out, size_t max);

/* Peer address of a member (for links and hint delivery), or NULL; with
 * up, also whether it is up, as cluster_is_up says (one lookup for both:
 * every replicated request asks). */
const char *cluster_peer_addr(const cluster *c, const char *id, bool *up);

/* A number that changes whenever a member's address or state, or the
 * ring, may have: what cluster_peer_addr said stays true while it does
 * not. Never 0. */
uint64_t cluster_generation(const cluster *c);

/* Calls fn when a member comes up (alive after being down or new): hinted
 * handoff delivers then. */
typedef void (*cluster_up_fn)(void *arg, const char *id);
void cluster_on_up(cluster *c, cluster_up_fn fn, void *arg);

/* A member as the cluster last saw it (TOPOLOGY, CLI). Strings are empty
 * when unknown (self without membership has no peer or client address). */
typedef struct cluster_member {
    const char *id, *peer_addr, *client_addr, *resp_addr;
    const char *state; /* gossip_state_name */
    const char *role;  /* gossip_role_name: member, joining, leaving */
    uint32_t vnodes;
    bool on_ring;
} cluster_member;

/* Fills *out for id; returns false when the id is unknown. Valid until the
 * next membership change. */
bool cluster_member_get(const cluster *c, const char *id, cluster_member *out);

/* The ring after the joins and leaves in progress, or NULL when none is. */
const ring *cluster_pending(const cluster *c);
/* Replicas per key on ring r: min([replication] n, members of r). */
size_t cluster_n_of(const cluster *c, const ring *r);

/* What a write needs to know of the key's future owners while the ring
 * changes (cluster_write_extra). */
typedef struct cluster_future {
    size_t count;                /* future owners that are not owners now and are up */
    size_t n;                    /* the key's owners on the pending ring, up or not */
    bool cur_new[CLUSTER_MAX_N]; /* cur[j] is, or holds hints for, a future owner */
} cluster_future;

/* A write's extra replicas while the ring changes: the key's owners on the
 * pending ring that are not owners now and are up (alive or suspect).
 * When fut->count is not 0 the write needs its level's quorum of the
 * current owners and one of the future owners (see quorum_set_joint), so
 * that whatever a quorum of either ring acknowledged is on a quorum of the
 * other. A future owner that is down is left out (not waited for):
 * streaming gives it the data again when it is back. Fills out[] with
 * those not among cur[0..ncur) and returns how many. */
size_t cluster_write_extra(const cluster *c, uint64_t token, const cluster_target *cur,
                           size_t ncur, cluster_target *out, size_t max, cluster_future *fut);

/* A change of the current or the pending ring, as listeners see it; the
 * rings are valid only during the call. member: whose record caused it
 * (NULL at start); decommissioned: it went off the current ring after
 * leaving, its ranges handed over (not removed or lost). */
typedef struct cluster_ring_change {
    const ring *from, *to, *pending;
    const char *member;
    bool decommissioned;
} cluster_ring_change;
typedef void (*cluster_ring_fn)(void *arg, const cluster_ring_change *ch);
void cluster_on_ring_change(cluster *c, cluster_ring_fn fn, void *arg);

/* This node's ring role as gossip shows it: "member", "joining", "leaving". */
const char *cluster_self_role(const cluster *c);

/* Default vnodes of this node ([node] vnodes). */
uint32_t cluster_vnodes_default(const cluster *c);

/* For tests (and the membership subscription): applies one member record as
 * a gossip event would, rebuilding the ring when ring membership changed. */
struct gossip_member;
void cluster_apply_member(cluster *c, const struct gossip_member *gm);

#endif
