/* cluster: the node's ring view (contract in cluster.h).
 *
 * It keeps its own copy of every member record gossip reported (gossip's
 * array is only valid during a call) and rebuilds the ring only when the set
 * of ring members or their vnodes change, so liveness flaps never move a
 * range: a dead owner keeps it and its writes go to a stand-in with a hint.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gossip.h"
#include "log.h"
#include "membership.h"

#define CLUSTER_MAX_UP_FNS 8
#define CLUSTER_MAX_RING_FNS 4

typedef struct cmember {
    char id[GOSSIP_ID_MAX + 1];
    char peer_addr[GOSSIP_ADDR_MAX];
    char client_addr[GOSSIP_ADDR_MAX];
    char resp_addr[GOSSIP_ADDR_MAX];
    gossip_state state;
    gossip_role role;
    uint32_t vnodes;
} cmember;

struct cluster {
    membership *m;
    char self[GOSSIP_ID_MAX + 1];
    uint32_t vnodes_default;
    size_t nrep; /* [replication] n, capped at CLUSTER_MAX_N */
    ring *r;       /* current: members and leaving members */
    ring *pending; /* after the joins and leaves in progress; NULL when none */
    /* Per member index of r: MEMBER_SELF, MEMBER_UP. Every request asks
     * whether its replicas are this node and up; by id that was a dozen
     * strcmp a request. Kept with r (rebuild) and with each state change. */
    uint8_t *flags;
    cmember *members;
    size_t nmembers, capmembers;
    uint64_t gen; /* cluster_generation: from 1, one up with each change */
    struct {
        cluster_up_fn fn;
        void *arg;
    } up[CLUSTER_MAX_UP_FNS];
    size_t nup;
    struct {
        cluster_ring_fn fn;
        void *arg;
    } ringfn[CLUSTER_MAX_RING_FNS];
    size_t nringfn;
};

/* Present: alive, suspect or dead, or left (stopped gracefully) without
 * having been decommissioned: a stopped node keeps its ranges, as a dead
 * one does, and its writes go to a stand-in with a hint. */
static bool present(const cmember *cm)
{
    return cm->state == GOSSIP_ALIVE || cm->state == GOSSIP_SUSPECT ||
           cm->state == GOSSIP_DEAD ||
           (cm->state == GOSSIP_LEFT && cm->role == GOSSIP_ROLE_MEMBER);
}

/* On the current ring: members, and leaving members until they are gone. */
static bool on_ring(const cmember *cm)
{
    return present(cm) && cm->role != GOSSIP_ROLE_JOINING;
}

/* On the pending ring: members, and joining members. */
static bool on_pending(const cmember *cm)
{
    return present(cm) && cm->role != GOSSIP_ROLE_LEAVING;
}

static cmember *find(const cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (strcmp(c->members[i].id, id) == 0)
            return &c->members[i];
    return NULL;
}

#define MEMBER_SELF 1
#define MEMBER_UP 2

static bool member_up(const cmember *cm)
{
    return cm->state == GOSSIP_ALIVE || cm->state == GOSSIP_SUSPECT;
}

/* cm's flags, if it is on the current ring. */
static void set_flags(cluster *c, const cmember *cm)
{
    long idx = c->r ? ring_find(c->r, cm->id) : -1;
    if (idx >= 0 && c->flags)
        c->flags[idx] = (uint8_t)((strcmp(cm->id, c->self) == 0 ? MEMBER_SELF : 0) |
                                  (member_up(cm) ? MEMBER_UP : 0));
}

/* Builds the ring of the members that pass `keep`; NULL with a message. */
static ring *build(cluster *c, bool (*keep)(const cmember *), char *err, size_t errlen)
{
    ring_member *rm = calloc(c->nmembers ? c->nmembers : 1, sizeof *rm);
    if (!rm) {
        snprintf(err, errlen, "out of memory building the ring");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->nmembers; i++)
        if (keep(&c->members[i]))
            rm[n++] = (ring_member){c->members[i].id, c->members[i].vnodes};
    ring *r = ring_new(rm, n, err, errlen);
    free(rm);
    return r;
}

/* Rebuilds both rings; on failure the old ones stay. The listeners see the
 * change (why: the member that moved, or NULL) before the old ring goes. */
static int rebuild(cluster *c, const char *why_id, bool decommissioned, char *err, size_t errlen)
{
    ring *r = build(c, on_ring, err, errlen);
    if (!r)
        return -1;
    ring *p = build(c, on_pending, err, errlen);
    if (!p) {
        ring_free(r);
        return -1;
    }
    if (ring_epoch(p) == ring_epoch(r)) {
        ring_free(p);
        p = NULL;
    }
    uint8_t *flags = calloc(ring_members(r) ? ring_members(r) : 1, 1);
    if (!flags) {
        ring_free(r);
        ring_free(p);
        snprintf(err, errlen, "out of memory building the ring");
        return -1;
    }
    ring *old = c->r, *oldp = c->pending;
    c->r = r;
    c->pending = p;
    free(c->flags);
    c->flags = flags;
    for (size_t i = 0; i < c->nmembers; i++)
        set_flags(c, &c->members[i]);
    bool changed = !old || ring_epoch(old) != ring_epoch(r) ||
                   (oldp ? ring_epoch(oldp) : 0) != (p ? ring_epoch(p) : 0);
    if (old && changed) {
        cluster_ring_change ch = {.from = old, .to = r, .pending = p, .member = why_id,
                                  .decommissioned = decommissioned};
        for (size_t i = 0; i < c->nringfn; i++)
            c->ringfn[i].fn(c->ringfn[i].arg, &ch);
    }
    ring_free(old);
    ring_free(oldp);
    return 0;
}

static cmember *add(cluster *c, const char *id)
{
    if (c->nmembers == c->capmembers) {
        size_t cap = c->capmembers ? 2 * c->capmembers : 8;
        cmember *p = realloc(c->members, cap * sizeof *p);
        if (!p)
            return NULL;
        c->members = p;
        c->capmembers = cap;
    }
    cmember *cm = &c->members[c->nmembers++];
    memset(cm, 0, sizeof *cm);
    snprintf(cm->id, sizeof cm->id, "%s", id);
    cm->state = GOSSIP_LEFT; /* "not there" until the record says otherwise */
    return cm;
}

void cluster_apply_member(cluster *c, const gossip_member *gm)
{
    c->gen++; /* an address, a state or the ring may change */
    cmember *cm = find(c, gm->id);
    bool is_new = cm == NULL;
    if (is_new && !(cm = add(c, gm->id))) {
        log_error("cluster: out of memory adding member %s", gm->id);
        return;
    }
    bool was_on = !is_new && on_ring(cm), was_pend = !is_new && on_pending(cm);
    gossip_role old_role = cm->role;
    uint32_t old_vnodes = cm->vnodes;
    gossip_state old = cm->state;
    snprintf(cm->peer_addr, sizeof cm->peer_addr, "%s", gm->peer_addr);
    snprintf(cm->client_addr, sizeof cm->client_addr, "%s", gm->client_addr);
    snprintf(cm->resp_addr, sizeof cm->resp_addr, "%s", gm->resp_addr);
    cm->state = gm->state;
    cm->role = gm->role;
    cm->vnodes = gm->vnodes ? gm->vnodes : c->vnodes_default;
    bool now_on = on_ring(cm), now_pend = on_pending(cm);
    if (was_on != now_on || was_pend != now_pend ||
        ((now_on || now_pend) && old_vnodes != cm->vnodes)) {
        char err[256];
        uint64_t before = ring_epoch(c->r);
        /* Off the ring after leaving with its ranges handed over. */
        bool decom = was_on && !now_on && old_role == GOSSIP_ROLE_LEAVING &&
                     cm->state == GOSSIP_LEFT; /* removed mid-way: not handed over */
        if (rebuild(c, gm->id, decom, err, sizeof err) != 0)
            log_error("cluster: ring not rebuilt for %s: %s", gm->id, err);
        else if (ring_epoch(c->r) != before)
            log_info("cluster: ring now has %zu member%s (epoch %016llx, was %016llx)",
                     ring_members(c->r), ring_members(c->r) == 1 ? "" : "s",
                     (unsigned long long)ring_epoch(c->r), (unsigned long long)before);
        else if (c->pending)
            log_info("cluster: %s is %s: the ring is changing to %zu members (epoch %016llx)",
                     gm->id, gossip_role_name(cm->role), ring_members(c->pending),
                     (unsigned long long)ring_epoch(c->pending));
    }
    set_flags(c, cm);
    bool is_self = strcmp(gm->id, c->self) == 0;
    if (!is_self && gm->state == GOSSIP_ALIVE && (is_new || old != GOSSIP_ALIVE)) {
        char id[GOSSIP_ID_MAX + 1]; /* a callback may not keep cm stable */
        snprintf(id, sizeof id, "%s", gm->id);
        for (size_t i = 0; i < c->nup; i++)
            c->up[i].fn(c->up[i].arg, id);
    }
}

static void on_member_event(void *ctx, const gossip_event *ev)
{
    cluster_apply_member(ctx, ev->member);
}

cluster *cluster_new(const config *cfg, const char *self_id, membership *m, char *err,
                     size_t errlen)
{
    if (!self_id || !*self_id || strlen(self_id) > GOSSIP_ID_MAX) {
        snprintf(err, errlen, "cluster: node id must be 1 to %d bytes", GOSSIP_ID_MAX);
        return NULL;
    }
    cluster *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->self, sizeof c->self, "%s", self_id);
    c->gen = 1;
    c->vnodes_default = cfg->vnodes ? (uint32_t)cfg->vnodes : RING_DEFAULT_VNODES;
    c->nrep = cfg->n < CLUSTER_MAX_N ? (size_t)cfg->n : CLUSTER_MAX_N;
    if (c->nrep == 0)
        c->nrep = 1;
    cmember *self = add(c, self_id);
    if (!self)
        goto oom;
    self->state = GOSSIP_ALIVE;
    self->role = m ? membership_self_role(m) : GOSSIP_ROLE_MEMBER;
    self->vnodes = c->vnodes_default;
    if (rebuild(c, NULL, false, err, errlen) != 0)
        goto fail;
    if (m) {
        size_t n;
        const gossip_member *gm = membership_members(m, &n);
        for (size_t i = 0; i < n; i++)
            cluster_apply_member(c, &gm[i]);
        if (membership_subscribe(m, on_member_event, c) != 0) {
            snprintf(err, errlen, "cluster: membership has no room for another subscriber");
            goto fail;
        }
        c->m = m;
    }
    return c;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    cluster_free(c);
    return NULL;
}

void cluster_free(cluster *c)
{
    if (!c)
        return;
    if (c->m)
        membership_unsubscribe(c->m, on_member_event, c);
    ring_free(c->r);
    ring_free(c->pending);
    free(c->flags);
    free(c->members);
    free(c);
}

const ring *cluster_ring(const cluster *c)
{
    return c->r;
}

uint64_t cluster_epoch(const cluster *c)
{
    return ring_epoch(c->r);
}

size_t cluster_n(const cluster *c)
{
    size_t m = ring_members(c->r);
    return c->nrep < m ? c->nrep : m;
}

uint32_t cluster_vnodes_default(const cluster *c)
{
    return c->vnodes_default;
}

bool cluster_is_up(const cluster *c, const char *id)
{
    if (strcmp(id, c->self) == 0)
        return true;
    const cmember *cm = find(c, id);
    return cm && member_up(cm);
}

static cluster_target target_of(const cluster *c, size_t idx)
{
    return (cluster_target){.id = ring_member_id(c->r, idx),
                            .local = (c->flags[idx] & MEMBER_SELF) != 0,
                            .hint_for = NULL};
}

/* Ring member idx is this node, or up. */
static bool idx_up(const cluster *c, size_t idx)
{
    return (c->flags[idx] & (MEMBER_SELF | MEMBER_UP)) != 0;
}

size_t cluster_owners(const cluster *c, uint64_t token, cluster_target *out, size_t max)
{
    size_t idx[CLUSTER_MAX_N];
    size_t want = cluster_n(c) < max ? cluster_n(c) : max;
    size_t n = ring_preference(c->r, token, want, idx);
    for (size_t i = 0; i < n; i++)
        out[i] = target_of(c, idx[i]);
    return n;
}

size_t cluster_targets(const cluster *c, uint64_t token, cluster_target *out, size_t max)
{
    size_t total = ring_members(c->r);
    if (total == 0 || max == 0)
        return 0;
    size_t stack[64];
    size_t *pref = stack;
    size_t nown = ring_preference(c->r, token, cluster_n(c), pref), np = nown;
    bool all_up = true;
    for (size_t i = 0; i < nown; i++)
        all_up = all_up && idx_up(c, pref[i]);
    if (!all_up && total > nown) { /* stand-ins: the rest of the preference list */
        if (total > 64 && !(pref = malloc(total * sizeof *pref)))
            return 0;
        np = ring_preference(c->r, token, total, pref);
    }
    size_t next = nown; /* the next stand-in candidate past the owners */
    size_t n = 0;
    for (size_t i = 0; i < nown && n < max; i++) {
        cluster_target t = target_of(c, pref[i]);
        if (idx_up(c, pref[i])) {
            out[n++] = t;
            continue;
        }
        while (next < np && !idx_up(c, pref[next]))
            next++;
        if (next == np)
            continue; /* nobody left to stand in */
        out[n] = target_of(c, pref[next++]);
        out[n++].hint_for = t.id;
    }
    if (pref != stack)
        free(pref);
    return n;
}

const ring *cluster_pending(const cluster *c)
{
    return c->pending;
}

size_t cluster_n_of(const cluster *c, const ring *r)
{
    size_t m = ring_members(r);
    return c->nrep < m ? c->nrep : m;
}

size_t cluster_write_extra(const cluster *c, uint64_t token, const cluster_target *cur,
                           size_t ncur, cluster_target *out, size_t max, cluster_future *fut)
{
    memset(fut, 0, sizeof *fut);
    if (!c->pending)
        return 0;
    size_t old[CLUSTER_MAX_N], neu[CLUSTER_MAX_N];
    size_t no = ring_preference(c->r, token, cluster_n(c), old);
    size_t nn = ring_preference(c->pending, token, cluster_n_of(c, c->pending), neu);
    size_t n = 0;
    fut->n = nn;
    for (size_t i = 0; i < nn; i++) {
        const char *id = ring_member_id(c->pending, neu[i]);
        /* The targets that stand for a future owner: itself, or a node
         * holding a hint for it. */
        for (size_t j = 0; j < ncur && j < CLUSTER_MAX_N; j++)
            if (strcmp(cur[j].id, id) == 0 || (cur[j].hint_for && strcmp(cur[j].hint_for, id) == 0))
                fut->cur_new[j] = true;
        bool owner = false;
        for (size_t j = 0; j < no && !owner; j++)
            owner = strcmp(ring_member_id(c->r, old[j]), id) == 0;
        /* A future owner that is down is not waited for: a joining node
         * streams again from the start once it is back (it restarts, or
         * refutes being taken for dead), and a leaving node hands its
         * ranges over again to a node that comes back. */
        if (owner || !cluster_is_up(c, id))
            continue;
        fut->count++;
        bool listed = false;
        for (size_t j = 0; j < ncur && !listed; j++)
            listed = strcmp(cur[j].id, id) == 0;
        if (listed || n == max)
            continue;
        out[n++] = (cluster_target){.id = id, .local = strcmp(id, c->self) == 0};
    }
    return n;
}

void cluster_on_ring_change(cluster *c, cluster_ring_fn fn, void *arg)
{
    if (c->nringfn == CLUSTER_MAX_RING_FNS) {
        log_error("cluster: more than %d ring callbacks; ignoring one", CLUSTER_MAX_RING_FNS);
        return;
    }
    c->ringfn[c->nringfn].fn = fn;
    c->ringfn[c->nringfn++].arg = arg;
}

const char *cluster_self_role(const cluster *c)
{
    const cmember *cm = find(c, c->self);
    return cm ? gossip_role_name(cm->role) : "member";
}

uint64_t cluster_generation(const cluster *c)
{
    return c->gen;
}

const char *cluster_peer_addr(const cluster *c, const char *id, bool *up)
{
    if (strcmp(id, c->self) == 0) {
        if (up)
            *up = true;
        return c->m ? membership_peer_addr(c->m) : NULL;
    }
    const cmember *cm = find(c, id);
    if (up)
        *up = cm && member_up(cm);
    return cm && cm->peer_addr[0] ? cm->peer_addr : NULL;
}

void cluster_on_up(cluster *c, cluster_up_fn fn, void *arg)
{
    if (c->nup == CLUSTER_MAX_UP_FNS) {
        log_error("cluster: more than %d up callbacks; ignoring one", CLUSTER_MAX_UP_FNS);
        return;
    }
    c->up[c->nup].fn = fn;
    c->up[c->nup++].arg = arg;
}

bool cluster_member_get(const cluster *c, const char *id, cluster_member *out)
{
    const cmember *cm = find(c, id);
    if (!cm)
        return false;
    *out = (cluster_member){.id = cm->id,
                            .peer_addr = cm->peer_addr,
                            .client_addr = cm->client_addr,
                            .resp_addr = cm->resp_addr,
                            .state = gossip_state_name(cm->state),
                            .role = gossip_role_name(cm->role),
                            .vnodes = cm->vnodes,
                            .on_ring = on_ring(cm)};
    return true;
}
