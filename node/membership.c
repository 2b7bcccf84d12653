/* membership: the libevent adapter around gossip; see membership.h.
 *
 * gossip calls back (send, pushpull, event) from inside its own functions
 * and must not be re-entered from there. Sends and events need no call back
 * into gossip; a push-pull does (gossip_encode_state), so it is queued and
 * started from a deferred event, and its answer comes back from the peer
 * connection's callback, outside gossip, where merging is safe.
 */
#include "membership.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>

#include "log.h"
#include "peer.h"

#define MAX_PUSHPULLS       64   /* queued or in flight; gossip asks for a few at most */
#define UDP_READS_PER_EVENT 64   /* so a datagram flood cannot starve clients */
#define MAX_TICK_DELAY_MS   1000 /* re-check at least this often, whatever gossip says */
#define BIND_ATTEMPTS       32   /* port 0: tries for a number free for TCP and UDP */

/* One push-pull gossip asked for: queued until pp_ev starts it, then in
 * flight until peer.c reports the answer. */
typedef struct pushpull {
    struct membership *m;
    struct pushpull *prev, *next;
    char addr[GOSSIP_ADDR_MAX];
    bool join, started;
} pushpull;

typedef struct subscriber {
    membership_event_fn fn;
    void *ctx;
} subscriber;

struct membership {
    struct event_base *base;
    const config *cfg;
    gossip *g;
    peer *peer;
    evutil_socket_t udp;
    struct event *udp_ev;
    struct event *tick_ev;
    struct event *pp_ev;
    struct event *leave_ev;
    char addr[PEER_ADDR_MAX]; /* bound peer address */
    size_t max_packet;

    pushpull *pps, *pps_tail; /* queued, then in flight, in request order */
    size_t npps;
    bool pp_overflow_logged;

    subscriber subs[MEMBERSHIP_MAX_SUBSCRIBERS];
    size_t nsubs;
    membership_fatal_fn fatal;
    void *fatal_ctx;
    bool fatal_sent;

    /* graceful leave */
    bool leaving, leave_done;
    uint64_t leave_deadline;
    char (*leave_targets)[GOSSIP_ADDR_MAX]; /* peers still to hear from us */
    size_t nleave_targets;
    void (*leave_cb)(void *ctx);
    void *leave_ctx;

    uint64_t datagrams_dropped, send_errors;
    uint8_t rbuf[2048];
};

uint64_t membership_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs gossip's due timers and arms the timer for its next deadline. Called
 * after every input too, since an input can move the deadline closer. */
static void kick(membership *m)
{
    uint64_t now = membership_now_ms();
    uint64_t next = gossip_tick(m->g, now);
    /* At least 1 ms: a deadline that is already due must not make the loop
     * spin if gossip keeps reporting it. */
    uint64_t delay = next > now ? next - now : 1;
    if (delay > MAX_TICK_DELAY_MS)
        delay = MAX_TICK_DELAY_MS;
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    evtimer_add(m->tick_ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kick(arg);
}

/* ---- gossip_io ---- */

static void io_send(void *ctx, const char *addr, const uint8_t *buf, size_t len)
{
    membership *m = ctx;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char err[256];
    if (len > m->max_packet) {
        m->datagrams_dropped++;
        log_debug("gossip: not sending a %zu-byte datagram to %s (limit %zu)", len, addr,
                  m->max_packet);
        return;
    }
    if (peer_resolve(m->peer, addr, &ss, &sslen, err, sizeof err) != 0) {
        m->send_errors++;
        log_debug("gossip: cannot send to %s: %s", addr, err);
        return;
    }
    ssize_t n =
        sendto(m->udp, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&ss, sslen);
    if (n < 0) {
        /* UDP is lossy anyway: gossip's probes and retransmits cover it. */
        m->send_errors++;
        log_debug("gossip: sendto %s: %s", addr, strerror(errno));
        return;
    }
    for (size_t i = 0; m->leaving && i < m->nleave_targets; i++)
        if (strcmp(m->leave_targets[i], addr) == 0) {
            memcpy(m->leave_targets[i], m->leave_targets[--m->nleave_targets], GOSSIP_ADDR_MAX);
            break;
        }
}

static void io_pushpull(void *ctx, const char *addr, bool join)
{
    membership *m = ctx;
    pushpull *pp = m->npps < MAX_PUSHPULLS ? calloc(1, sizeof *pp) : NULL;
    if (!pp) {
        /* gossip retries joins with backoff and push-pulls periodically, so
         * one skipped exchange heals by itself. */
        if (!m->pp_overflow_logged)
            log_warn("gossip: skipping a push-pull with %s: %zu already pending", addr, m->npps);
        m->pp_overflow_logged = true;
        return;
    }
    pp->m = m;
    snprintf(pp->addr, sizeof pp->addr, "%s", addr);
    pp->join = join;
    pp->prev = m->pps_tail;
    if (m->pps_tail)
        m->pps_tail->next = pp;
    else
        m->pps = pp;
    m->pps_tail = pp;
    m->npps++;
    event_active(m->pp_ev, EV_TIMEOUT, 1);
}

static const char *state_name(gossip_state s)
{
    return gossip_state_name(s);
}

static void io_event(void *ctx, const gossip_event *ev)
{
    membership *m = ctx;
    const gossip_member *g = ev->member;
    switch (ev->type) {
    case GOSSIP_EV_JOIN:
        log_info("member %s %s joined (%s, incarnation %llu)", g->id, g->peer_addr,
                 state_name(g->state), (unsigned long long)g->incarnation);
        break;
    case GOSSIP_EV_STATE:
        log_info("member %s %s is now %s (was %s, incarnation %llu)", g->id, g->peer_addr,
                 state_name(g->state), state_name(ev->old_state),
                 (unsigned long long)g->incarnation);
        break;
    case GOSSIP_EV_UPDATE:
        log_info("member %s %s updated: client %s, resp %s, role %s, vnodes %u", g->id,
                 g->peer_addr, g->client_addr, g->resp_addr[0] ? g->resp_addr : "off",
                 gossip_role_name(g->role), g->vnodes);
        break;
    }
    for (size_t i = 0; i < m->nsubs; i++)
        m->subs[i].fn(m->subs[i].ctx, ev);
}

/* ---- push-pull ---- */

static void pp_unlink(membership *m, pushpull *pp)
{
    if (pp->prev)
        pp->prev->next = pp->next;
    else
        m->pps = pp->next;
    if (pp->next)
        pp->next->prev = pp->prev;
    else
        m->pps_tail = pp->prev;
    m->npps--;
    m->pp_overflow_logged = false;
}

static void pp_done(membership *m, pushpull *pp, bool ok)
{
    char addr[GOSSIP_ADDR_MAX];
    memcpy(addr, pp->addr, sizeof addr);
    pp_unlink(m, pp);
    free(pp);
    gossip_pushpull_done(m->g, membership_now_ms(), addr, ok);
    kick(m);
}

static void fail_fatal(membership *m, const char *msg)
{
    if (m->fatal_sent)
        return;
    m->fatal_sent = true;
    if (m->fatal)
        m->fatal(m->fatal_ctx, msg);
}

/* The answer to one of our push-pulls (or why there is none). */
static void on_pp_reply(void *ctx, const Ringkv__Envelope *reply, const char *err)
{
    pushpull *pp = ctx;
    membership *m = pp->m;
    char why[512];
    const char *what = pp->join ? "join through" : "push-pull with";

    if (!reply) {
        /* A seed that is not up yet is normal at cluster start: gossip
         * retries with backoff, so a failed join attempt is info, not warn. */
        if (pp->join)
            log_info("%s %s failed: %s; retrying", what, pp->addr, err);
        else
            log_debug("%s %s failed: %s", what, pp->addr, err);
        pp_done(m, pp, false);
        return;
    }
    if (reply->body_case == RINGKV__ENVELOPE__BODY_ERROR) {
        const char *msg = reply->error && reply->error->message ? reply->error->message : "";
        if (pp->join) {
            snprintf(why, sizeof why, "%s refused this node's join: %s", pp->addr, msg);
            log_error("%s", why);
            pp_done(m, pp, false);
            fail_fatal(m, why);
            return;
        }
        log_warn("%s %s refused: %s", what, pp->addr, msg);
        pp_done(m, pp, false);
        return;
    }
    if (reply->body_case != RINGKV__ENVELOPE__BODY_PUSH_PULL) {
        log_warn("%s %s: unexpected answer (body %d)", what, pp->addr, (int)reply->body_case);
        pp_done(m, pp, false);
        return;
    }
    gossip_merge_result r = gossip_merge_state(m->g, membership_now_ms(), reply->push_pull.data,
                                               reply->push_pull.len, why, sizeof why);
    if (r != GOSSIP_MERGE_OK)
        log_warn("%s %s: its state was not merged: %s", what, pp->addr, why);
    else if (pp->join)
        log_info("joined the cluster through %s", pp->addr);
    pp_done(m, pp, r == GOSSIP_MERGE_OK);
}

/* Starts the push-pulls queued when this pass began (those queued while
 * starting wait for the next pass, so a failing address cannot spin). */
static void on_pp_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    membership *m = arg;
    size_t unstarted = 0;
    for (pushpull *pp = m->pps; pp; pp = pp->next)
        unstarted += !pp->started;
    for (pushpull *pp = m->pps, *next; pp && unstarted > 0; pp = next) {
        next = pp->next;
        if (pp->started)
            continue;
        unstarted--;
        pp->started = true;
        uint8_t *state = NULL;
        size_t len = 0;
        char err[256] = "out of memory encoding our state";
        int rc = gossip_encode_state(m->g, pp->join, &state, &len);
        if (rc == 0) {
            Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
            env.version = PEER_VERSION;
            env.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
            env.push_pull.data = state;
            env.push_pull.len = len;
            rc = peer_request(m->peer, pp->addr, &env, MEMBERSHIP_PUSHPULL_TIMEOUT_MS, on_pp_reply,
                              pp, err, sizeof err);
            free(state);
        }
        if (rc != 0) {
            log_info("%s %s failed: %s", pp->join ? "join through" : "push-pull with", pp->addr,
                     err);
            pp_done(m, pp, false); /* what it queues goes to the tail, past unstarted */
        }
    }
}

/* A push-pull from another node: merge its state, answer with ours. */
static void on_peer_message(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    membership *m = ctx;
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__PeerError perr = RINGKV__PEER_ERROR__INIT;
    char err[512];
    out.version = PEER_VERSION;

    if (env->body_case != RINGKV__ENVELOPE__BODY_PUSH_PULL) {
        if (env->body_case == RINGKV__ENVELOPE__BODY_ERROR)
            return; /* nothing asked: an answer needs no answer */
        snprintf(err, sizeof err, "unsupported peer message (body %d)", (int)env->body_case);
        perr.message = err;
        out.body_case = RINGKV__ENVELOPE__BODY_ERROR;
        out.error = &perr;
        peer_reply(pc, &out);
        return;
    }
    gossip_merge_result r = gossip_merge_state(m->g, membership_now_ms(), env->push_pull.data,
                                               env->push_pull.len, err, sizeof err);
    if (r == GOSSIP_MERGE_CONFLICT) {
        log_warn("refused a node joining from %s: %s", peer_conn_remote(pc), err);
        perr.message = err;
        out.body_case = RINGKV__ENVELOPE__BODY_ERROR;
        out.error = &perr;
        peer_reply(pc, &out);
        kick(m);
        return;
    }
    if (r == GOSSIP_MERGE_MALFORMED)
        log_warn("push-pull from %s: its state was not merged: %s", peer_conn_remote(pc), err);
    uint8_t *state = NULL;
    size_t len = 0;
    if (gossip_encode_state(m->g, false, &state, &len) != 0) {
        peer_conn_close(pc, "out of memory encoding our state");
        kick(m);
        return;
    }
    out.body_case = RINGKV__ENVELOPE__BODY_PUSH_PULL;
    out.push_pull.data = state;
    out.push_pull.len = len;
    peer_reply(pc, &out);
    free(state);
    kick(m);
}

/* ---- UDP ---- */

static void on_udp_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    membership *m = arg;
    for (int i = 0; i < UDP_READS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        /* MSG_TRUNC: the real length, so an oversized datagram is seen as
         * such instead of being read as a truncated one. */
        ssize_t n = recvfrom(fd, m->rbuf, sizeof m->rbuf, MSG_TRUNC | MSG_DONTWAIT,
                             (struct sockaddr *)&ss, &sl);
        if (n < 0)
            break; /* EAGAIN: drained; anything else: nothing to do but wait */
        if ((size_t)n > MEMBERSHIP_MAX_DATAGRAM) {
            m->datagrams_dropped++;
            continue;
        }
        char from[PEER_ADDR_MAX];
        peer_format_addr((struct sockaddr *)&ss, from, sizeof from);
        gossip_receive(m->g, membership_now_ms(), from, m->rbuf, (size_t)n);
    }
    kick(m);
}

static evutil_socket_t bind_udp(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve peer host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    evutil_socket_t fd =
        socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, errlen, "cannot bind gossip UDP on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* TCP and UDP on one port number. With port 0 the TCP listener picks a free
 * number, and UDP tries to take the same; another process may hold it for
 * UDP, so that is retried with a new number. */
static int bind_peer(membership *m, char *err, size_t errlen)
{
    char host[CONFIG_ADDR_MAX];
    int port;
    if (config_split_addr(m->cfg->peer, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "peer address '%s' is not HOST:PORT", m->cfg->peer);
        return -1;
    }
    for (int attempt = 0; attempt < (port == 0 ? BIND_ATTEMPTS : 1); attempt++) {
        m->peer = peer_new(m->base, m->cfg->peer, on_peer_message, m, err, errlen);
        if (!m->peer)
            return -1;
        m->udp = bind_udp(host, peer_bound_port(m->peer), err, errlen);
        if (m->udp >= 0) {
            snprintf(m->addr, sizeof m->addr, "%s", peer_bound_addr(m->peer));
            return 0;
        }
        peer_free(m->peer);
        m->peer = NULL;
    }
    return -1;
}

/* ---- lifetime ---- */

membership *membership_new(struct event_base *base, const config *cfg, const membership_self *self,
                           membership_fatal_fn fatal, void *fatal_ctx, char *err, size_t errlen)
{
    membership *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->base = base;
    m->cfg = cfg;
    m->udp = -1;
    m->fatal = fatal;
    m->fatal_ctx = fatal_ctx;
    m->max_packet = cfg->gossip.max_packet < MEMBERSHIP_MAX_DATAGRAM ? cfg->gossip.max_packet
                                                                     : MEMBERSHIP_MAX_DATAGRAM;
    m->tick_ev = evtimer_new(base, on_tick, m);
    m->pp_ev = event_new(base, -1, 0, on_pp_start, m);
    if (!m->tick_ev || !m->pp_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (bind_peer(m, err, errlen) != 0)
        goto fail;
    m->udp_ev = event_new(base, m->udp, EV_READ | EV_PERSIST, on_udp_read, m);
    if (!m->udp_ev || event_add(m->udp_ev, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (strncmp(m->addr, "0.0.0.0:", 8) == 0 || strncmp(m->addr, "[::]:", 5) == 0)
        log_warn("peer address %s is a wildcard: other nodes cannot reach this node by it; "
                 "set [node] peer to an address they can reach",
                 m->addr);

    gossip_config gc;
    gossip_config_defaults(&gc);
    gc.probe_interval_ms = (uint32_t)cfg->gossip.probe_interval_ms;
    gc.probe_timeout_ms = (uint32_t)cfg->gossip.probe_timeout_ms;
    gc.indirect_checks = (uint32_t)cfg->gossip.indirect_checks;
    gc.suspicion_mult = (uint32_t)cfg->gossip.suspicion_mult;
    gc.suspicion_max_mult = (uint32_t)cfg->gossip.suspicion_max_mult;
    gc.retransmit_mult = (uint32_t)cfg->gossip.retransmit_mult;
    gc.gossip_interval_ms = (uint32_t)cfg->gossip.interval_ms;
    gc.gossip_nodes = (uint32_t)cfg->gossip.nodes;
    gc.pushpull_interval_ms = (uint32_t)cfg->gossip.pushpull_interval_ms;
    gc.awareness_max = (uint32_t)cfg->gossip.awareness_max;
    gc.max_packet = (uint32_t)m->max_packet;

    gossip_member me;
    memset(&me, 0, sizeof me);
    if (strlen(self->id) > GOSSIP_ID_MAX || strlen(m->addr) >= GOSSIP_ADDR_MAX ||
        strlen(self->client_addr) >= GOSSIP_ADDR_MAX ||
        strlen(self->resp_addr) >= GOSSIP_ADDR_MAX) {
        snprintf(err, errlen,
                 "node id or an address is too long for gossip (id at most %d, "
                 "addresses at most %d characters)",
                 GOSSIP_ID_MAX, GOSSIP_ADDR_MAX - 1);
        goto fail;
    }
    snprintf(me.id, sizeof me.id, "%s", self->id);
    snprintf(me.peer_addr, sizeof me.peer_addr, "%s", m->addr);
    snprintf(me.client_addr, sizeof me.client_addr, "%s", self->client_addr);
    snprintf(me.resp_addr, sizeof me.resp_addr, "%s", self->resp_addr);
    me.state = GOSSIP_ALIVE;
    me.incarnation = self->incarnation;
    me.role = self->role;
    me.vnodes = self->vnodes;

    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = membership_now_ms() ^ (uint64_t)getpid() << 32;
    gossip_io io = {.ctx = m, .send = io_send, .pushpull = io_pushpull, .event = io_event};
    m->g = gossip_new(&gc, &me, &io, seed, membership_now_ms());
    if (!m->g) {
        snprintf(err, errlen, "cannot start gossip (bad [gossip] settings, or out of memory)");
        goto fail;
    }
    return m;
fail:
    membership_free(m);
    return NULL;
}

void membership_start(membership *m)
{
    /* cfg->seeds is normalised by config.c: "a:1,b:2". */
    char list[sizeof m->cfg->seeds];
    const char *seeds[64];
    size_t n = 0;
    snprintf(list, sizeof list, "%s", m->cfg->seeds);
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s && n < 64;
         s = strtok_r(NULL, ",", &save))
        if (strcmp(s, m->addr) != 0 && strcmp(s, m->cfg->peer) != 0)
            seeds[n++] = s;
    if (n == 0)
        log_info("no other seeds: starting a cluster of one");
    else
        log_info("joining the cluster through %zu seed%s", n, n == 1 ? "" : "s");
    gossip_join(m->g, membership_now_ms(), seeds, n);
    kick(m);
}

static void on_leave_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    membership *m = arg;
    if (m->leave_done)
        return;
    if (m->nleave_targets > 0 && membership_now_ms() < m->leave_deadline) {
        struct timeval tv = {0, 10 * 1000};
        evtimer_add(m->leave_ev, &tv);
        return;
    }
    if (m->nleave_targets > 0)
        log_info("left the cluster; %zu member%s not reached in time, gossip will tell them",
                 m->nleave_targets, m->nleave_targets == 1 ? "" : "s");
    else
        log_info("left the cluster: every member was told");
    m->leave_done = true;
    if (m->leave_cb)
        m->leave_cb(m->leave_ctx);
}

void membership_leave(membership *m, uint32_t max_wait_ms, void (*done)(void *ctx), void *ctx)
{
    if (m->leaving)
        return;
    m->leave_cb = done;
    m->leave_ctx = ctx;
    m->leave_ev = evtimer_new(m->base, on_leave_check, m);
    size_t n;
    const gossip_member *all = gossip_members(m->g, &n);
    const gossip_member *self = gossip_self(m->g);
    m->leave_targets = calloc(n ? n : 1, sizeof *m->leave_targets);
    if (m->leave_targets)
        for (size_t i = 0; i < n; i++)
            if (strcmp(all[i].id, self->id) != 0 &&
                (all[i].state == GOSSIP_ALIVE || all[i].state == GOSSIP_SUSPECT))
                memcpy(m->leave_targets[m->nleave_targets++], all[i].peer_addr, GOSSIP_ADDR_MAX);
    m->leaving = true;
    m->leave_deadline = membership_now_ms() + max_wait_ms;
    log_info("leaving the cluster: telling %zu member%s", m->nleave_targets,
             m->nleave_targets == 1 ? "" : "s");
    gossip_leave(m->g, membership_now_ms());
    kick(m);
    if (!m->leave_ev) {
        m->leave_done = true; /* no timer: nothing to wait with */
        if (done)
            done(ctx);
        return;
    }
    struct timeval tv = {0, 0};
    evtimer_add(m->leave_ev, &tv);
}

void membership_free(membership *m)
{
    if (!m)
        return;
    /* peer_free drops the requests in flight without their callbacks, so
     * their pushpull records are freed here. */
    peer_free(m->peer);
    while (m->pps) {
        pushpull *pp = m->pps;
        m->pps = pp->next;
        free(pp);
    }
    if (m->g)
        gossip_free(m->g);
    if (m->udp_ev)
        event_free(m->udp_ev);
    if (m->udp >= 0)
        close(m->udp);
    if (m->tick_ev)
        event_free(m->tick_ev);
    if (m->pp_ev)
        event_free(m->pp_ev);
    if (m->leave_ev)
        event_free(m->leave_ev);
    free(m->leave_targets);
    free(m);
}

/* ---- queries and commands ---- */

int membership_subscribe(membership *m, membership_event_fn fn, void *ctx)
{
    if (m->nsubs == MEMBERSHIP_MAX_SUBSCRIBERS)
        return -1;
    m->subs[m->nsubs++] = (subscriber){fn, ctx};
    return 0;
}

void membership_unsubscribe(membership *m, membership_event_fn fn, void *ctx)
{
    for (size_t i = 0; i < m->nsubs; i++)
        if (m->subs[i].fn == fn && m->subs[i].ctx == ctx) {
            memmove(&m->subs[i], &m->subs[i + 1], (m->nsubs - i - 1) * sizeof m->subs[0]);
            m->nsubs--;
            return;
        }
}

struct peer *membership_peer(membership *m)
{
    return m->peer;
}

const char *membership_peer_addr(const membership *m)
{
    return m->addr;
}

const gossip_member *membership_members(membership *m, size_t *n)
{
    return gossip_members(m->g, n);
}

int membership_remove(membership *m, const char *id, char *err, size_t errlen)
{
    int rc = gossip_remove(m->g, membership_now_ms(), id, err, errlen);
    if (rc == 0)
        log_info("member %s removed by an operator", id);
    kick(m);
    return rc;
}

void membership_get_stats(const membership *m, membership_stats *out)
{
    memset(out, 0, sizeof *out);
    gossip_get_stats(m->g, &out->gossip);
    size_t n;
    const gossip_member *all = gossip_members(m->g, &n);
    for (size_t i = 0; i < n; i++) {
        switch (all[i].state) {
        case GOSSIP_ALIVE:
            out->alive++;
            break;
        case GOSSIP_SUSPECT:
            out->suspect++;
            break;
        case GOSSIP_DEAD:
            out->dead++;
            break;
        case GOSSIP_LEFT:
            out->left++;
            break;
        case GOSSIP_REMOVED:
            out->removed++;
            break;
        }
    }
    out->datagrams_dropped = m->datagrams_dropped;
    out->send_errors = m->send_errors;
    peer_stats ps;
    peer_get_stats(m->peer, &ps);
    out->peer_dropped = ps.dropped;
}

gossip_role membership_self_role(membership *m)
{
    return gossip_self(m->g)->role;
}

void membership_set_role(membership *m, gossip_role role)
{
    gossip_set_role(m->g, membership_now_ms(), role, gossip_self(m->g)->vnodes);
    kick(m);
}
