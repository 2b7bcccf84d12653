/* gossip: SWIM membership with the Lifeguard refinements as a pure state
 * machine (see gossip.h). Probing, suspicion, refutation, dissemination and
 * push-pull follow HashiCorp memberlist (state.go, suspicion.go,
 * awareness.go); the byte formats live in gossip_codec.c and the broadcast
 * queue in gossip_queue.c.
 */
#include "gossip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_codec.h"
#include "gossip_queue.h"
#include "gossip_records.h"

#define GOSSIP_TO_DEAD_MS        30000 /* keep gossiping to the dead so they learn and refute */
#define PICK_MAX                 16    /* cap on indirect_checks and gossip_nodes */
#define JOIN_BACKOFF_MIN_MS      1000
#define JOIN_BACKOFF_MAX_MS      30000
#define PUSHPULL_SCALE_THRESHOLD 32 /* memberlist: scale push-pull past 32 nodes */
#define MIN_PACKET               512 /* as config.c allows; a record too big for it travels by push-pull */
#define MAX_PACKET               65507 /* the largest UDP payload */

void gossip_config_defaults(gossip_config *cfg)
{
    *cfg = (gossip_config){
        .probe_interval_ms = 500,
        .probe_timeout_ms = 200,
        .indirect_checks = 3,
        .suspicion_mult = 4,
        .suspicion_max_mult = 6,
        .retransmit_mult = 4,
        .gossip_interval_ms = 200,
        .gossip_nodes = 3,
        .pushpull_interval_ms = 30000,
        .awareness_max = 8,
        .max_packet = 1400,
    };
}

const char *gossip_state_name(gossip_state s)
{
    static const char *names[] = {"alive", "suspect", "dead", "left", "removed"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

const char *gossip_role_name(gossip_role r)
{
    static const char *names[] = {"member", "joining", "leaving"};
    return (unsigned)r < 3 ? names[r] : "unknown";
}

/* ---- sending ---- */

/* Sends p with as many pending updates as fit (first, if given, ahead of
 * them). A body-less packet with nothing to carry is not sent. */
static void send_packet(gossip *g, const char *addr, Ringkv__GossipPacket *p, const uint8_t *first,
                        size_t first_len)
{
    size_t cap = g->cfg.max_packet;
    p->sender_id = g->self->m.id;
    p->sender_incarnation = g->self->m.incarnation;
    p->seq = ++g->pkt_seq;
    size_t n = gossip_codec_pack_head(p, g->buf, cap), head = n;
    if (n == 0)
        return;
    if (first && first_len <= cap - n) {
        memcpy(g->buf + n, first, first_len);
        n += first_len;
    }
    n += gossip_queue_fill(g->queue, g->buf + n, cap - n, gossip_retransmit_limit(g));
    if (p->body_case == RINGKV__GOSSIP_PACKET__BODY__NOT_SET && n == head)
        return;
    g->io.send(g->io.ctx, addr, g->buf, n);
    g->stats.packets_sent++;
    g->stats.bytes_sent += n;
}

static void send_ping(gossip *g, const char *addr, uint32_t seq, const char *target,
                      const uint8_t *first, size_t first_len)
{
    Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
    Ringkv__GossipPing ping = RINGKV__GOSSIP_PING__INIT;
    ping.seq = seq;
    ping.target_id = (char *)target;
    p.body_case = RINGKV__GOSSIP_PACKET__BODY_PING;
    p.ping = &ping;
    send_packet(g, addr, &p, first, first_len);
}

static void send_ack(gossip *g, const char *addr, uint32_t seq, const uint8_t *first,
                     size_t first_len)
{
    Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
    Ringkv__GossipAck ack = RINGKV__GOSSIP_ACK__INIT;
    ack.seq = seq;
    p.body_case = RINGKV__GOSSIP_PACKET__BODY_ACK;
    p.ack = &ack;
    send_packet(g, addr, &p, first, first_len);
}

static void send_nack(gossip *g, const char *addr, uint32_t seq)
{
    Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
    Ringkv__GossipNack nack = RINGKV__GOSSIP_NACK__INIT;
    nack.seq = seq;
    p.body_case = RINGKV__GOSSIP_PACKET__BODY_NACK;
    p.nack = &nack;
    send_packet(g, addr, &p, NULL, 0);
}

static void send_ping_req(gossip *g, const char *addr, const gmember *target, uint32_t seq)
{
    Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
    Ringkv__GossipPingReq req = RINGKV__GOSSIP_PING_REQ__INIT;
    req.target_id = (char *)target->m.id;
    req.target_addr = (char *)target->m.peer_addr;
    req.seq = seq;
    req.nack = true;
    p.body_case = RINGKV__GOSSIP_PACKET__BODY_PING_REQ;
    p.ping_req = &req;
    send_packet(g, addr, &p, NULL, 0);
}

/* ---- probing ---- */

typedef bool (*pick_fn)(const gossip *g, const gmember *gm, const void *arg);

/* Up to k distinct random members other than us that pass ok: random
 * tries first (cheap when many qualify, as memberlist's kRandomNodes), then,
 * when few qualify and tries can miss them, a scan that samples uniformly. */
static size_t pick_random(gossip *g, size_t k, pick_fn ok, const void *arg, gmember **out)
{
    size_t n = 0, seen = 0;
    if (k > PICK_MAX)
        k = PICK_MAX;
    for (size_t tries = 0; tries < 4 * k + 4 && n < k; tries++) {
        gmember *gm = g->all[gossip_rnd_below(g, g->n_all)];
        bool dup = gm == g->self || !ok(g, gm, arg);
        for (size_t i = 0; i < n && !dup; i++)
            dup = out[i] == gm;
        if (!dup)
            out[n++] = gm;
    }
    if (n == k)
        return n;
    n = 0;
    for (size_t i = 0; i < g->n_all; i++) { /* reservoir sampling */
        gmember *gm = g->all[i];
        if (gm == g->self || !ok(g, gm, arg))
            continue;
        size_t j = seen++ < k ? n++ : gossip_rnd_below(g, seen);
        if (j < k)
            out[j] = gm;
    }
    return n;
}

static bool pick_alive_not(const gossip *g, const gmember *gm, const void *arg)
{
    (void)g;
    return gm->m.state == GOSSIP_ALIVE && gm != arg;
}

static bool pick_gossip_target(const gossip *g, const gmember *gm, const void *arg)
{
    uint64_t now = *(const uint64_t *)arg;
    (void)g;
    return gossip_is_live(gm->m.state) ||
           (gm->m.state == GOSSIP_DEAD && now - gm->m.state_since_ms < GOSSIP_TO_DEAD_MS);
}

static void rebuild_probe_list(gossip *g)
{
    g->probe_n = 0;
    for (size_t i = 0; i < g->n_all; i++)
        if (g->all[i] != g->self && gossip_is_live(g->all[i]->m.state))
            g->probe_list[g->probe_n++] = g->all[i];
    for (size_t i = g->probe_n; i > 1; i--) {
        size_t j = gossip_rnd_below(g, i);
        gmember *t = g->probe_list[i - 1];
        g->probe_list[i - 1] = g->probe_list[j];
        g->probe_list[j] = t;
    }
    g->probe_idx = 0;
}

/* Round-robin over a shuffled list, reshuffled at each wrap (memberlist). */
static gmember *next_target(gossip *g)
{
    for (size_t tries = 0; tries < 2 * g->n_all + 2; tries++) {
        if (g->probe_idx >= g->probe_n) {
            rebuild_probe_list(g);
            if (g->probe_n == 0)
                return NULL;
        }
        gmember *gm = g->probe_list[g->probe_idx++];
        if (gm != g->self && gossip_is_live(gm->m.state))
            return gm;
    }
    return NULL;
}

static void start_probe(gossip *g, uint64_t now)
{
    uint64_t scale = g->awareness + 1;
    g->next_probe = now + g->cfg.probe_interval_ms * scale;
    gmember *t = g->left ? NULL : next_target(g);
    if (!t)
        return;
    gossip_probe *p = &g->pr;
    memset(p, 0, sizeof(*p));
    p->active = true;
    gossip_copy_str(p->target, sizeof p->target, t->m.id);
    p->seq = ++g->seq;
    p->timeout_at = now + g->cfg.probe_timeout_ms * scale;
    p->end_at = g->next_probe;
    g->stats.probes++;
    /* Lifeguard's buddy system: a suspect learns of it from our ping */
    uint8_t rec[GOSSIP_RECORD_MAX];
    size_t n = t->m.state == GOSSIP_SUSPECT ? gossip_codec_frame_member(&t->m, t->accuser, rec) : 0;
    send_ping(g, t->m.peer_addr, p->seq, t->m.id, n ? rec : NULL, n);
}

static void send_indirect(gossip *g)
{
    gossip_probe *p = &g->pr;
    gmember *t = gossip_lookup(g, p->target), *via[PICK_MAX];
    p->indirect_sent = true;
    if (!t)
        return;
    size_t k = pick_random(g, g->cfg.indirect_checks, pick_alive_not, t, via);
    for (size_t i = 0; i < k; i++)
        send_ping_req(g, via[i]->m.peer_addr, t, p->seq);
    p->expected_nacks = (uint32_t)k;
    if (k > 0)
        g->stats.indirect_probes++;
}

static void probe_failed(gossip *g, uint64_t now)
{
    gossip_probe *p = &g->pr;
    p->active = false;
    /* Far past the end means we were not running (SIGSTOP, a stalled
     * loop): the silence says nothing about the target. */
    if (now > p->end_at + g->cfg.probe_interval_ms)
        return;
    g->stats.probe_failures++;
    /* Lifeguard: nacks show our own links work; without any, the fault may
     * be ours, so slow down. */
    if (p->nacks == 0)
        gossip_awareness_add(g, 1);
    gmember *t = gossip_lookup(g, p->target);
    if (!t || !gossip_is_live(t->m.state))
        return;
    g->stats.suspicions++;
    gossip_declare(g, now, t, GOSSIP_SUSPECT);
}

static void probe_timers(gossip *g, uint64_t now)
{
    gossip_probe *p = &g->pr;
    if (!p->active)
        return;
    if (!p->indirect_sent && now >= p->timeout_at && now < p->end_at)
        send_indirect(g);
    if (now >= p->end_at)
        probe_failed(g, now);
}

static void run_relays(gossip *g, uint64_t now)
{
    for (size_t i = 0; i < GOSSIP_RELAY_MAX && g->n_relays > 0; i++) {
        gossip_relay *r = &g->relays[i];
        if (!r->used || now < r->deadline)
            continue;
        if (r->nack)
            send_nack(g, r->origin, r->origin_seq);
        r->used = false;
        g->n_relays--;
    }
}

static void run_suspicions(gossip *g, uint64_t now)
{
    for (size_t i = 0; i < g->n_susp;) {
        gmember *gm = g->suspects[i];
        if (now >= gm->susp_deadline)
            gossip_declare(g, now, gm, GOSSIP_DEAD); /* swaps the last suspect into i */
        else
            i++;
    }
}

/* ---- receiving ---- */

/* Frames gm's record into out; a suspect's carries its accuser. */
static size_t frame(const gmember *gm, uint8_t *out)
{
    return gossip_codec_frame_member(&gm->m, gm->m.state == GOSSIP_SUSPECT ? gm->accuser : NULL,
                                     out);
}

/* accused: the packet said we are suspect or dead. The answer goes straight
 * back to whoever holds that view, ahead of everything else, so a lost
 * refutation cannot leave one node suspecting us until its timer fires. */
static void on_ping(gossip *g, const char *from, const Ringkv__GossipPacket *p, bool accused)
{
    uint8_t rec[2 * GOSSIP_RECORD_MAX];
    size_t n = 0;
    if (strcmp(p->ping->target_id, g->self->m.id) != 0)
        return; /* meant for an earlier holder of this address */
    if (accused)
        n = frame(g->self, rec);
    /* A sender we hold dead (or suspect, or removed) hears so in the ack
     * and refutes at once: a resumed node need not wait for gossip. If it
     * has refuted already (a higher incarnation) and we missed it, our stale
     * record makes it answer us directly. */
    gmember *s = gossip_lookup(g, p->sender_id);
    if (s && s != g->self && s->m.state != GOSSIP_ALIVE && s->m.state != GOSSIP_LEFT)
        n += frame(s, rec + n);
    send_ack(g, from, p->ping->seq, n ? rec : NULL, n);
}

static void on_ping_req(gossip *g, uint64_t now, const char *from, const Ringkv__GossipPingReq *q)
{
    if (strcmp(q->target_id, g->self->m.id) == 0 || g->n_relays >= GOSSIP_RELAY_MAX)
        return;
    gossip_relay *r = g->relays;
    while (r->used)
        r++;
    *r = (gossip_relay){.used = true,
                        .nack = q->nack,
                        .seq = ++g->seq,
                        .origin_seq = q->seq,
                        .deadline = now + g->cfg.probe_timeout_ms};
    gossip_copy_str(r->origin, sizeof r->origin, from);
    gossip_copy_str(r->target, sizeof r->target, q->target_id);
    g->n_relays++;
    /* the buddy system through a relay, too */
    gmember *t = gossip_lookup(g, q->target_id);
    uint8_t rec[GOSSIP_RECORD_MAX];
    size_t n = t && t->m.state == GOSSIP_SUSPECT ? frame(t, rec) : 0;
    send_ping(g, q->target_addr, r->seq, q->target_id, n ? rec : NULL, n);
}

static void on_ack(gossip *g, uint32_t seq)
{
    if (g->pr.active && seq == g->pr.seq) {
        g->pr.active = false;
        gossip_awareness_add(g, -1);
        return;
    }
    for (size_t i = 0; i < GOSSIP_RELAY_MAX && g->n_relays > 0; i++) {
        gossip_relay *r = &g->relays[i];
        if (r->used && r->seq == seq) {
            r->used = false;
            g->n_relays--;
            /* The requester could not reach the target itself, so it may
             * also have missed the target's refutation: pass on our view. */
            gmember *t = gossip_lookup(g, r->target);
            uint8_t rec[GOSSIP_RECORD_MAX];
            size_t n = t ? frame(t, rec) : 0;
            send_ack(g, r->origin, r->origin_seq, n ? rec : NULL, n);
            return;
        }
    }
}

static void answer_accuser(gossip *g, const char *addr)
{
    uint8_t rec[GOSSIP_RECORD_MAX];
    Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
    send_packet(g, addr, &p, rec, frame(g->self, rec));
}

void gossip_receive(gossip *g, uint64_t now_ms, const char *from_addr, const uint8_t *buf,
                    size_t len)
{
    g->stats.packets_received++;
    g->stats.bytes_received += len;
    Ringkv__GossipPacket *p = NULL;
    if (from_addr && gossip_codec_valid_addr(from_addr, false))
        p = gossip_codec_decode_packet(buf, len, g->cfg.max_packet);
    if (!p) {
        g->stats.packets_dropped++;
        return;
    }
    /* updates first: a refutation riding on a ping is news for its answer */
    bool accused = false;
    for (size_t i = 0; i < p->n_updates; i++)
        accused |= gossip_apply(g, now_ms, p->updates[i], p->sender_id);
    if (accused && p->body_case != RINGKV__GOSSIP_PACKET__BODY_PING)
        answer_accuser(g, from_addr);
    switch (p->body_case) {
    case RINGKV__GOSSIP_PACKET__BODY_PING:
        on_ping(g, from_addr, p, accused);
        break;
    case RINGKV__GOSSIP_PACKET__BODY_PING_REQ:
        on_ping_req(g, now_ms, from_addr, p->ping_req);
        break;
    case RINGKV__GOSSIP_PACKET__BODY_ACK:
        on_ack(g, p->ack->seq);
        break;
    case RINGKV__GOSSIP_PACKET__BODY_NACK:
        if (g->pr.active && p->nack->seq == g->pr.seq)
            g->pr.nacks++;
        break;
    default:
        break;
    }
    ringkv__gossip_packet__free_unpacked(p, NULL);
}

/* ---- periodic work ---- */

static void gossip_round(gossip *g, uint64_t now)
{
    gmember *to[PICK_MAX];
    if (gossip_queue_len(g->queue) == 0)
        return;
    size_t k = pick_random(g, g->cfg.gossip_nodes, pick_gossip_target, &now, to);
    for (size_t i = 0; i < k && gossip_queue_len(g->queue) > 0; i++) {
        Ringkv__GossipPacket p = RINGKV__GOSSIP_PACKET__INIT;
        send_packet(g, to[i]->m.peer_addr, &p, NULL, 0);
    }
}

/* memberlist pushPullScale: past 32 members, one more interval per doubling,
 * so full-state traffic per node stays flat as the cluster grows. */
static uint64_t pushpull_interval(const gossip *g)
{
    uint64_t iv = g->cfg.pushpull_interval_ms;
    if (g->n_live <= PUSHPULL_SCALE_THRESHOLD)
        return iv;
    double mult = ceil(log2((double)g->n_live) - log2(PUSHPULL_SCALE_THRESHOLD)) + 1.0;
    return (uint64_t)mult * iv;
}

static bool pick_dead(const gossip *g, const gmember *gm, const void *arg)
{
    (void)g;
    (void)arg;
    return gm->m.state == GOSSIP_DEAD;
}

/* One random live member, and, as Serf's reconnect does, one random dead
 * one: after a partition that outlasted the suspicion timeout each side takes
 * the other for dead, and since nobody probes or gossips to the long dead,
 * only such an attempt lets them hear of it and refute. A member that really
 * is down costs one failed connection per interval. */
static void pushpull_round(gossip *g)
{
    gmember *peer = NULL; /* set by pick_random when it returns 1; -O3 cannot tell */
    if (!g->io.pushpull)
        return;
    if (pick_random(g, 1, pick_alive_not, NULL, &peer) == 1)
        g->io.pushpull(g->io.ctx, peer->m.peer_addr, false);
    if (pick_random(g, 1, pick_dead, NULL, &peer) == 1)
        g->io.pushpull(g->io.ctx, peer->m.peer_addr, false);
}

static uint64_t advance(uint64_t at, uint64_t interval, uint64_t now)
{
    at += interval;
    return at > now ? at : now + interval;
}

static void join_attempt(gossip *g)
{
    g->seed_failures = 0;
    g->join_retry_at = 0;
    for (size_t i = 0; i < g->nseeds && g->io.pushpull; i++)
        g->io.pushpull(g->io.ctx, g->seeds[i], true);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return b && b < a ? b : a;
}

static uint64_t next_deadline(const gossip *g)
{
    uint64_t t = earliest(g->next_probe, g->next_gossip);
    if (g->cfg.pushpull_interval_ms)
        t = earliest(t, g->next_pushpull);
    if (g->pr.active)
        t = earliest(t, g->pr.indirect_sent ? g->pr.end_at : g->pr.timeout_at);
    for (size_t i = 0; i < GOSSIP_RELAY_MAX && g->n_relays > 0; i++)
        if (g->relays[i].used)
            t = earliest(t, g->relays[i].deadline);
    for (size_t i = 0; i < g->n_susp; i++)
        t = earliest(t, g->suspects[i]->susp_deadline);
    if (g->joining)
        t = earliest(t, g->join_retry_at);
    return t;
}

uint64_t gossip_tick(gossip *g, uint64_t now_ms)
{
    probe_timers(g, now_ms);
    if (now_ms >= g->next_probe)
        start_probe(g, now_ms);
    run_relays(g, now_ms);
    run_suspicions(g, now_ms);
    if (now_ms >= g->next_gossip) {
        gossip_round(g, now_ms);
        g->next_gossip = advance(g->next_gossip, g->cfg.gossip_interval_ms, now_ms);
    }
    if (g->cfg.pushpull_interval_ms && now_ms >= g->next_pushpull) {
        pushpull_round(g);
        g->next_pushpull = now_ms + pushpull_interval(g);
    }
    if (g->joining && g->join_retry_at && now_ms >= g->join_retry_at)
        join_attempt(g);
    return next_deadline(g);
}

/* ---- push-pull, join, leave, remove ---- */

int gossip_encode_state(gossip *g, bool join, uint8_t **buf, size_t *len)
{
    Ringkv__GossipMember *recs = malloc(g->n_all * sizeof(*recs));
    Ringkv__GossipMember **ptrs = malloc(g->n_all * sizeof(*ptrs));
    int rc = -1;
    if (recs && ptrs) {
        for (size_t i = 0; i < g->n_all; i++) {
            const gmember *gm = g->all[i];
            gossip_codec_member_pb(&gm->m, gm->m.state == GOSSIP_SUSPECT ? gm->accuser : NULL,
                                   &recs[i]);
            ptrs[i] = &recs[i];
        }
        Ringkv__GossipPushPull s = RINGKV__GOSSIP_PUSH_PULL__INIT;
        s.join = join;
        s.sender_id = g->self->m.id;
        s.n_members = g->n_all;
        s.members = ptrs;
        rc = gossip_codec_encode_state(&s, buf, len);
    }
    free(recs);
    free(ptrs);
    return rc;
}

/* A joiner may not take an id that a live member holds at another address. */
static gossip_merge_result check_join(const gossip *g, const Ringkv__GossipPushPull *s, char *err,
                                      size_t errlen)
{
    const Ringkv__GossipMember *own = NULL;
    for (size_t i = 0; i < s->n_members && !own; i++)
        if (strcmp(s->members[i]->id, s->sender_id) == 0)
            own = s->members[i];
    if (!own) {
        snprintf(err, errlen, "join state of '%s' lacks its own record", s->sender_id);
        return GOSSIP_MERGE_MALFORMED;
    }
    const gmember *gm = gossip_lookup(g, own->id);
    if (gm && gossip_is_live(gm->m.state) && strcmp(gm->m.peer_addr, own->peer_addr) != 0) {
        snprintf(err, errlen, "node id '%s' is already used by a live node at %s", gm->m.id,
                 gm->m.peer_addr);
        return GOSSIP_MERGE_CONFLICT;
    }
    return GOSSIP_MERGE_OK;
}

gossip_merge_result gossip_merge_state(gossip *g, uint64_t now_ms, const uint8_t *buf, size_t len,
                                       char *err, size_t errlen)
{
    Ringkv__GossipPushPull *s = gossip_codec_decode_state(buf, len, err, errlen);
    if (!s)
        return GOSSIP_MERGE_MALFORMED;
    gossip_merge_result rc = s->join ? check_join(g, s, err, errlen) : GOSSIP_MERGE_OK;
    if (rc == GOSSIP_MERGE_OK) {
        for (size_t i = 0; i < s->n_members; i++)
            gossip_apply(g, now_ms, s->members[i], s->sender_id);
        g->stats.pushpulls++;
    }
    ringkv__gossip_push_pull__free_unpacked(s, NULL);
    return rc;
}

void gossip_pushpull_done(gossip *g, uint64_t now_ms, const char *peer_addr, bool ok)
{
    bool seed = false;
    for (size_t i = 0; i < g->nseeds && peer_addr && !seed; i++)
        seed = strcmp(g->seeds[i], peer_addr) == 0;
    if (!g->joining || !seed)
        return;
    if (ok) {
        g->joined = true;
        g->joining = false;
        return;
    }
    /* every seed of this round failed: wait, doubling up to 30 s */
    if (++g->seed_failures >= g->nseeds && !g->join_retry_at) {
        g->join_retry_at = now_ms + g->join_backoff;
        g->join_backoff =
            g->join_backoff * 2 > JOIN_BACKOFF_MAX_MS ? JOIN_BACKOFF_MAX_MS : g->join_backoff * 2;
    }
}

void gossip_join(gossip *g, uint64_t now_ms, const char *const *seeds, size_t nseeds)
{
    (void)now_ms;
    free(g->seeds);
    g->nseeds = 0;
    g->seeds = nseeds ? calloc(nseeds, sizeof(*g->seeds)) : NULL;
    for (size_t i = 0; i < nseeds && g->seeds; i++)
        if (seeds[i] && gossip_codec_valid_addr(seeds[i], false) &&
            strcmp(seeds[i], g->self->m.peer_addr) != 0)
            gossip_copy_str(g->seeds[g->nseeds++], GOSSIP_ADDR_MAX, seeds[i]);
    if (g->nseeds == 0) {
        g->joined = true; /* a cluster of one */
        g->joining = false;
        return;
    }
    g->joining = true;
    g->join_backoff = JOIN_BACKOFF_MIN_MS;
    join_attempt(g);
}

bool gossip_joined(const gossip *g)
{
    return g->joined;
}

void gossip_leave(gossip *g, uint64_t now_ms)
{
    if (g->left)
        return;
    g->left = true;
    g->pr.active = false;
    g->self->m.incarnation++;
    gossip_set_state(g, now_ms, g->self, GOSSIP_LEFT);
    gossip_broadcast(g, g->self, NULL); /* a fresh item: front of the queue */
    gossip_emit(g, GOSSIP_EV_STATE, g->self, GOSSIP_ALIVE);
}

int gossip_remove(gossip *g, uint64_t now_ms, const char *id, char *err, size_t errlen)
{
    gmember *gm = id ? gossip_lookup(g, id) : NULL;
    if (!gm) {
        snprintf(err, errlen, "no member with id '%s'", id ? id : "");
        return -1;
    }
    if (gm == g->self) {
        snprintf(err, errlen, "'%s' is this node; stop it and remove it from another", id);
        return -1;
    }
    if (gm->m.state != GOSSIP_DEAD && gm->m.state != GOSSIP_LEFT) {
        snprintf(err, errlen, "member '%s' is %s; only a dead or left member can be removed", id,
                 gossip_state_name(gm->m.state));
        return -1;
    }
    gossip_state old = gm->m.state;
    gossip_set_state(g, now_ms, gm, GOSSIP_REMOVED);
    gossip_broadcast(g, gm, NULL);
    gossip_emit(g, GOSSIP_EV_STATE, gm, old);
    return 0;
}

void gossip_set_role(gossip *g, uint64_t now_ms, gossip_role role, uint32_t vnodes)
{
    gossip_member *m = &g->self->m;
    (void)now_ms;
    if ((unsigned)role > GOSSIP_ROLE_LEAVING || (m->role == role && m->vnodes == vnodes))
        return;
    m->role = role;
    m->vnodes = vnodes;
    m->incarnation++;
    gossip_broadcast(g, g->self, NULL);
    gossip_emit(g, GOSSIP_EV_UPDATE, g->self, m->state);
}

/* ---- lifetime and queries ---- */

static bool valid_self(const gossip_member *m)
{
    return memchr(m->id, 0, sizeof m->id) && memchr(m->peer_addr, 0, sizeof m->peer_addr) &&
           memchr(m->client_addr, 0, sizeof m->client_addr) &&
           memchr(m->resp_addr, 0, sizeof m->resp_addr) && gossip_codec_valid_id(m->id) &&
           gossip_codec_valid_addr(m->peer_addr, false) &&
           gossip_codec_valid_addr(m->client_addr, true) &&
           gossip_codec_valid_addr(m->resp_addr, true) && m->state == GOSSIP_ALIVE &&
           (unsigned)m->role <= GOSSIP_ROLE_LEAVING;
}

static bool valid_config(const gossip_config *c)
{
    return c->probe_interval_ms > 0 && c->probe_timeout_ms > 0 && c->gossip_interval_ms > 0 &&
           c->suspicion_mult > 0 && c->suspicion_max_mult > 0 && c->retransmit_mult > 0 &&
           c->max_packet >= MIN_PACKET && c->max_packet <= MAX_PACKET;
}

gossip *gossip_new(const gossip_config *cfg, const gossip_member *self, const gossip_io *io,
                   uint64_t seed, uint64_t now_ms)
{
    if (!cfg || !self || !io || !io->send || !valid_config(cfg) || !valid_self(self))
        return NULL;
    gossip *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->cfg = *cfg;
    if (g->cfg.indirect_checks > PICK_MAX)
        g->cfg.indirect_checks = PICK_MAX;
    g->io = *io;
    g->rng = seed;
    g->queue = gossip_queue_new();
    g->buf = malloc(cfg->max_packet);
    g->self = calloc(1, sizeof(*g->self));
    if (!g->queue || !g->buf || !g->self || gossip_rehash(g, 16) != 0)
        goto fail;
    g->self->m = *self;
    g->self->m.state_since_ms = now_ms;
    if (gossip_insert(g, g->self) != 0)
        goto fail;
    g->n_live = 1;
    g->seq = (uint32_t)gossip_rnd(g);
    /* random phases, so instances started together do not act in lockstep */
    g->next_probe = now_ms + gossip_rnd_below(g, cfg->probe_interval_ms);
    g->next_gossip = now_ms + gossip_rnd_below(g, cfg->gossip_interval_ms);
    g->next_pushpull = now_ms + cfg->pushpull_interval_ms / 2 +
                       gossip_rnd_below(g, cfg->pushpull_interval_ms / 2 + 1);
    gossip_broadcast(g, g->self, NULL);
    return g;
fail:
    if (g->n_all == 0)
        free(g->self);
    gossip_free(g);
    return NULL;
}

void gossip_free(gossip *g)
{
    if (!g)
        return;
    gossip_queue_free(g->queue); /* clears the members' slots first */
    for (size_t i = 0; i < g->n_all; i++) {
        free(g->all[i]->confirmed);
        free(g->all[i]);
    }
    free(g->all);
    free(g->probe_list);
    free(g->suspects);
    free(g->table);
    free(g->view);
    free(g->seeds);
    free(g->buf);
    free(g);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const gossip_member *)a)->id, ((const gossip_member *)b)->id);
}

const gossip_member *gossip_members(const gossip *cg, size_t *n)
{
    /* The sorted view is a cache, rebuilt after a change: logically const. */
    gossip *g = (gossip *)cg;
    if (g->view_dirty || !g->view || g->view_cap < g->n_all) {
        if (g->view_cap < g->n_all) {
            gossip_member *v = realloc(g->view, g->cap_all * sizeof(*v));
            if (!v) {
                *n = 0;
                return NULL;
            }
            g->view = v;
            g->view_cap = g->cap_all;
        }
        for (size_t i = 0; i < g->n_all; i++)
            g->view[i] = g->all[i]->m;
        qsort(g->view, g->n_all, sizeof(*g->view), by_id);
        g->view_dirty = false;
    }
    *n = g->n_all;
    return g->view;
}

const gossip_member *gossip_self(const gossip *g)
{
    return &g->self->m;
}

const gossip_member *gossip_find(const gossip *g, const char *id)
{
    const gmember *gm = id ? gossip_lookup(g, id) : NULL;
    return gm ? &gm->m : NULL;
}

void gossip_get_stats(const gossip *g, gossip_stats *out)
{
    *out = g->stats;
    out->awareness = g->awareness;
}
