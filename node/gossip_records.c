/* gossip_records: member table and record rules of gossip (see
 * gossip_records.h): records order by incarnation, then state; a node
 * refutes news of its own death; suspicions shrink with independent
 * confirmations as in memberlist's suspicion.go.
 */
#include "gossip_records.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_codec.h"

uint64_t gossip_rnd(gossip *g) /* splitmix64: seeded, so runs replay */
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t gossip_rnd_below(gossip *g, uint64_t n)
{
    return n ? gossip_rnd(g) % n : 0;
}

static size_t hash_id(const char *s, size_t size)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h & (size - 1));
}

gmember *gossip_lookup(const gossip *g, const char *id)
{
    for (gmember *gm = g->table[hash_id(id, g->table_size)]; gm; gm = gm->hnext)
        if (strcmp(gm->m.id, id) == 0)
            return gm;
    return NULL;
}

bool gossip_is_live(gossip_state s)
{
    return s == GOSSIP_ALIVE || s == GOSSIP_SUSPECT;
}

void gossip_emit(gossip *g, gossip_event_type type, const gmember *gm, gossip_state old)
{
    g->view_dirty = true;
    if (g->io.event) {
        gossip_event ev = {.type = type, .member = &gm->m, .old_state = old};
        g->io.event(g->io.ctx, &ev);
    }
}

void gossip_set_state(gossip *g, uint64_t now, gmember *gm, gossip_state s)
{
    if (gm->m.state == s)
        return;
    g->n_live += (uint32_t)gossip_is_live(s) - (uint32_t)gossip_is_live(gm->m.state);
    gm->m.state = s;
    gm->m.state_since_ms = now;
    g->view_dirty = true;
}

void gossip_awareness_add(gossip *g, int delta)
{
    int64_t a = (int64_t)g->awareness + delta;
    g->awareness = a < 0 ? 0 : a > g->cfg.awareness_max ? g->cfg.awareness_max : (uint32_t)a;
}

void gossip_copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static bool meta_differs(const gossip_member *m, const Ringkv__GossipMember *r)
{
    return strcmp(m->peer_addr, r->peer_addr) || strcmp(m->client_addr, r->client_addr) ||
           strcmp(m->resp_addr, r->resp_addr) || m->role != (gossip_role)r->role ||
           m->vnodes != r->vnodes;
}

static void copy_meta(gossip_member *m, const Ringkv__GossipMember *r)
{
    gossip_copy_str(m->peer_addr, sizeof m->peer_addr, r->peer_addr);
    gossip_copy_str(m->client_addr, sizeof m->client_addr, r->client_addr);
    gossip_copy_str(m->resp_addr, sizeof m->resp_addr, r->resp_addr);
    m->role = (gossip_role)r->role;
    m->vnodes = r->vnodes;
}

/* ---- dissemination ---- */

uint32_t gossip_retransmit_limit(const gossip *g)
{
    return g->cfg.retransmit_mult * (uint32_t)ceil(log10((double)g->n_live + 1.0));
}

/* Queues what we now believe about gm; a newer record replaces an older. */
void gossip_broadcast(gossip *g, gmember *gm, const char *accuser)
{
    uint8_t rec[GOSSIP_RECORD_MAX];
    size_t n = gossip_codec_frame_member(&gm->m, accuser, rec);
    (void)gossip_queue_put(g->queue, &gm->bcast, rec, n); /* no memory: push-pull heals */
}

/* ---- membership table ---- */

static int grow(gossip *g)
{
    if (g->n_all < g->cap_all)
        return 0;
    size_t cap = g->cap_all ? g->cap_all * 2 : 16;
    gmember **a = realloc(g->all, cap * sizeof(*a));
    if (!a)
        return -1;
    g->all = a;
    if (!(a = realloc(g->probe_list, cap * sizeof(*a))))
        return -1;
    g->probe_list = a;
    if (!(a = realloc(g->suspects, cap * sizeof(*a))))
        return -1;
    g->suspects = a;
    g->cap_all = cap;
    return 0;
}

int gossip_rehash(gossip *g, size_t size)
{
    gmember **t = calloc(size, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < g->n_all; i++) {
        size_t h = hash_id(g->all[i]->m.id, size);
        g->all[i]->hnext = t[h];
        t[h] = g->all[i];
    }
    free(g->table);
    g->table = t;
    g->table_size = size;
    return 0;
}

/* Adds gm to the table, the list of all, and the probe list at a random
 * offset (memberlist: appending would make new members wait a full round). */
int gossip_insert(gossip *g, gmember *gm)
{
    if (grow(g) != 0)
        return -1;
    if (g->n_all + 1 > g->table_size && gossip_rehash(g, g->table_size * 2) != 0)
        return -1;
    size_t h = hash_id(gm->m.id, g->table_size);
    gm->hnext = g->table[h];
    g->table[h] = gm;
    g->all[g->n_all++] = gm;
    size_t at = gossip_rnd_below(g, g->probe_n + 1);
    g->probe_list[g->probe_n] = g->probe_list[at];
    g->probe_list[at] = gm;
    g->probe_n++;
    return 0;
}

/* ---- Lifeguard suspicion (memberlist suspicion.go) ---- */

static void suspicion_stop(gossip *g, gmember *gm)
{
    if (!gm->susp_deadline)
        return;
    gmember *last = g->suspects[--g->n_susp];
    g->suspects[gm->susp_idx] = last;
    last->susp_idx = gm->susp_idx;
    free(gm->confirmed);
    gm->confirmed = NULL;
    gm->susp_deadline = 0;
}

/* The timeout starts at max = max_mult * min and falls toward min =
 * mult * max(1, log10(n)) * probe_interval as the k expected independent
 * confirmations arrive; with none expected it is min from the start. */
static void suspicion_start(gossip *g, uint64_t now, gmember *gm, const char *accuser)
{
    suspicion_stop(g, gm);
    uint32_t n = g->n_live;
    double scale = fmax(1.0, log10(fmax(1.0, (double)n)));
    uint64_t min = (uint64_t)(g->cfg.suspicion_mult * scale * g->cfg.probe_interval_ms);
    uint32_t k = g->cfg.indirect_checks;
    if (n < k + 2)
        k = n > 2 ? n - 2 : 0;
    gm->confirmed = calloc(k + 1, sizeof(*gm->confirmed));
    if (!gm->confirmed)
        k = 0; /* no memory for confirmations: the shortest honest timeout */
    else
        gossip_copy_str(gm->confirmed[0], sizeof gm->confirmed[0], accuser);
    gm->susp_min = min;
    gm->susp_max = (uint64_t)g->cfg.suspicion_max_mult * min;
    gm->susp_k = k;
    gm->susp_n = 0;
    gm->susp_start = now;
    gm->susp_deadline = now + (k < 1 ? min : gm->susp_max);
    if (gm->susp_deadline == 0)
        gm->susp_deadline = 1;
    gossip_copy_str(gm->accuser, sizeof gm->accuser, accuser);
    gm->susp_idx = g->n_susp;
    g->suspects[g->n_susp++] = gm;
}

/* Counts an independent confirmation; true when it was new. */
static bool suspicion_confirm(gmember *gm, const char *accuser)
{
    if (!gm->susp_deadline || gm->susp_n >= gm->susp_k || !accuser[0])
        return false;
    for (uint32_t i = 0; i <= gm->susp_n; i++)
        if (strcmp(gm->confirmed[i], accuser) == 0)
            return false;
    gossip_copy_str(gm->confirmed[++gm->susp_n], sizeof gm->confirmed[0], accuser);
    double frac = log(gm->susp_n + 1.0) / log(gm->susp_k + 1.0);
    double raw = (double)gm->susp_max - frac * (double)(gm->susp_max - gm->susp_min);
    uint64_t timeout = raw < (double)gm->susp_min ? gm->susp_min : (uint64_t)floor(raw);
    gm->susp_deadline = gm->susp_start + timeout;
    if (gm->susp_deadline == 0)
        gm->susp_deadline = 1;
    return true;
}

/* ---- applying records ---- */

/* Does (s, u) replace what we hold, (t, l)? By incarnation, then by state
 * at equal incarnation; a removal is final until the node restarts. */
static bool supersedes(gossip_state t, uint64_t l, gossip_state s, uint64_t u)
{
    if (t == GOSSIP_REMOVED)
        return s == GOSSIP_ALIVE && u > l;
    if (u != l)
        return u > l;
    return s > t;
}

/* Someone holds a view of us that is newer than ours: outbid it. */
static void refute(gossip *g, uint64_t accused)
{
    gmember *self = g->self;
    uint64_t inc = self->m.incarnation > accused ? self->m.incarnation : accused;
    self->m.incarnation = inc + 1;
    gossip_awareness_add(g, 1);
    g->stats.refutations++;
    g->view_dirty = true;
    gossip_broadcast(g, self, NULL);
}

/* Returns true when r accuses us (so the caller can answer its sender). */
static bool apply_self(gossip *g, const Ringkv__GossipMember *r)
{
    uint64_t u = r->incarnation, l = g->self->m.incarnation;
    if (g->left)
        return false; /* LEFT stays */
    if (r->state == RINGKV__MEMBER_STATE__MEMBER_STATE_ALIVE) {
        if (u > l || (u == l && meta_differs(&g->self->m, r)))
            refute(g, u);
        return false;
    }
    if (u >= l) {
        refute(g, u);
    } else if (!g->self->bcast) {
        /* An accusation we already answered is still going round: our answer
         * may have been lost, so send it again (it rides on our next packet,
         * often the ack to the very ping that carried the accusation). */
        gossip_broadcast(g, g->self, NULL);
    }
    return true;
}

static void add_member(gossip *g, uint64_t now, const Ringkv__GossipMember *r, const char *accuser)
{
    gmember *gm = calloc(1, sizeof(*gm));
    if (!gm)
        return;
    gossip_copy_str(gm->m.id, sizeof gm->m.id, r->id);
    copy_meta(&gm->m, r);
    gm->m.state = (gossip_state)r->state;
    gm->m.incarnation = r->incarnation;
    gm->m.state_since_ms = now;
    if (gossip_insert(g, gm) != 0) {
        free(gm);
        return;
    }
    g->n_live += gossip_is_live(gm->m.state);
    if (gm->m.state == GOSSIP_SUSPECT)
        suspicion_start(g, now, gm, accuser);
    gossip_broadcast(g, gm, gm->m.state == GOSSIP_SUSPECT ? accuser : NULL);
    gossip_emit(g, GOSSIP_EV_JOIN, gm, gm->m.state);
}

/* Takes a record that supersedes what we hold about gm (not us). */
static void change(gossip *g, uint64_t now, gmember *gm, const Ringkv__GossipMember *r,
                   const char *accuser)
{
    gossip_state old = gm->m.state, s = (gossip_state)r->state;
    bool meta = false;
    if (r->incarnation > gm->m.incarnation && meta_differs(&gm->m, r)) {
        copy_meta(&gm->m, r);
        meta = true;
    }
    gm->m.incarnation = r->incarnation;
    gossip_set_state(g, now, gm, s);
    if (s == GOSSIP_SUSPECT)
        suspicion_start(g, now, gm, accuser);
    else
        suspicion_stop(g, gm);
    gossip_broadcast(g, gm, s == GOSSIP_SUSPECT ? accuser : NULL);
    g->view_dirty = true;
    if (old != s)
        gossip_emit(g, GOSSIP_EV_STATE, gm, old);
    if (meta)
        gossip_emit(g, GOSSIP_EV_UPDATE, gm, s);
}

/* One record from a datagram or a push-pull state; sender stands in for a
 * missing accuser. */
bool gossip_apply(gossip *g, uint64_t now, const Ringkv__GossipMember *r, const char *sender)
{
    const char *accuser = r->accuser[0] ? r->accuser : sender;
    gmember *gm = gossip_lookup(g, r->id);
    if (!gm) {
        add_member(g, now, r, accuser);
        return false;
    }
    if (gm == g->self)
        return apply_self(g, r);
    if (r->state == RINGKV__MEMBER_STATE__MEMBER_STATE_SUSPECT && gm->m.state == GOSSIP_SUSPECT &&
        r->incarnation == gm->m.incarnation) {
        /* re-gossip new confirmations so they reach every suspecter */
        if (suspicion_confirm(gm, accuser))
            gossip_broadcast(g, gm, accuser);
        return false;
    }
    if (supersedes(gm->m.state, gm->m.incarnation, (gossip_state)r->state, r->incarnation))
        change(g, now, gm, r, accuser);
    return false;
}

/* Our own verdict about gm, applied as if it had arrived as a record. */
void gossip_declare(gossip *g, uint64_t now, gmember *gm, gossip_state s)
{
    Ringkv__GossipMember r;
    gossip_codec_member_pb(&gm->m, NULL, &r);
    r.state = (Ringkv__MemberState)s;
    (void)gossip_apply(g, now, &r, g->self->m.id);
}
