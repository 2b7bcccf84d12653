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
    ring *r;
    cmember *members;
    size_t nmembers, capmembers;
    struct {
        cluster_up_fn fn;
        void *arg;
    } up[CLUSTER_MAX_UP_FNS];
    size_t nup;
};

static bool on_ring(const cmember *cm)
{
    return cm->role == GOSSIP_ROLE_MEMBER &&
           (cm->state == GOSSIP_ALIVE || cm->state == GOSSIP_SUSPECT || cm->state == GOSSIP_DEAD);
}

static cmember *find(const cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (strcmp(c->members[i].id, id) == 0)
            return &c->members[i];
    return NULL;
}

/* Builds a ring of the members on it; on failure the old ring stays. */
static int rebuild(cluster *c, char *err, size_t errlen)
{
    ring_member *rm = calloc(c->nmembers ? c->nmembers : 1, sizeof *rm);
    if (!rm) {
        snprintf(err, errlen, "out of memory building the ring");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->nmembers; i++)
        if (on_ring(&c->members[i]))
            rm[n++] = (ring_member){c->members[i].id, c->members[i].vnodes};
    ring *r = ring_new(rm, n, err, errlen);
    free(rm);
    if (!r)
        return -1;
    ring_free(c->r);
    c->r = r;
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
    cmember *cm = find(c, gm->id);
    bool is_new = cm == NULL;
    if (is_new && !(cm = add(c, gm->id))) {
        log_error("cluster: out of memory adding member %s", gm->id);
        return;
    }
    bool was_on = !is_new && on_ring(cm);
    uint32_t old_vnodes = cm->vnodes;
    gossip_state old = cm->state;
    snprintf(cm->peer_addr, sizeof cm->peer_addr, "%s", gm->peer_addr);
    snprintf(cm->client_addr, sizeof cm->client_addr, "%s", gm->client_addr);
    snprintf(cm->resp_addr, sizeof cm->resp_addr, "%s", gm->resp_addr);
    cm->state = gm->state;
    cm->role = gm->role;
    cm->vnodes = gm->vnodes ? gm->vnodes : c->vnodes_default;
    bool now_on = on_ring(cm);
    if (was_on != now_on || (now_on && old_vnodes != cm->vnodes)) {
        char err[256];
        uint64_t before = ring_epoch(c->r);
        if (rebuild(c, err, sizeof err) != 0)
            log_error("cluster: ring not rebuilt for %s: %s", gm->id, err);
        else
            log_info("cluster: ring now has %zu member%s (epoch %016llx, was %016llx)",
                     ring_members(c->r), ring_members(c->r) == 1 ? "" : "s",
                     (unsigned long long)ring_epoch(c->r), (unsigned long long)before);
    }
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
    c->vnodes_default = cfg->vnodes ? (uint32_t)cfg->vnodes : RING_DEFAULT_VNODES;
    c->nrep = cfg->n < CLUSTER_MAX_N ? (size_t)cfg->n : CLUSTER_MAX_N;
    if (c->nrep == 0)
        c->nrep = 1;
    cmember *self = add(c, self_id);
    if (!self)
        goto oom;
    self->state = GOSSIP_ALIVE;
    self->role = GOSSIP_ROLE_MEMBER;
    self->vnodes = c->vnodes_default;
    if (rebuild(c, err, errlen) != 0)
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
    return cm && (cm->state == GOSSIP_ALIVE || cm->state == GOSSIP_SUSPECT);
}

static cluster_target target_of(const cluster *c, size_t idx)
{
    const char *id = ring_member_id(c->r, idx);
    return (cluster_target){.id = id, .local = strcmp(id, c->self) == 0, .hint_for = NULL};
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
    size_t *pref = total <= 64 ? stack : malloc(total * sizeof *pref);
    if (!pref)
        return 0;
    size_t np = ring_preference(c->r, token, total, pref);
    size_t nown = cluster_n(c) < np ? cluster_n(c) : np;
    size_t next = nown; /* the next stand-in candidate past the owners */
    size_t n = 0;
    for (size_t i = 0; i < nown && n < max; i++) {
        cluster_target t = target_of(c, pref[i]);
        if (cluster_is_up(c, t.id)) {
            out[n++] = t;
            continue;
        }
        while (next < np && !cluster_is_up(c, ring_member_id(c->r, pref[next])))
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

const char *cluster_peer_addr(const cluster *c, const char *id)
{
    if (strcmp(id, c->self) == 0 && c->m)
        return membership_peer_addr(c->m);
    const cmember *cm = find(c, id);
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
                            .vnodes = cm->vnodes,
                            .on_ring = on_ring(cm)};
    return true;
}
