/* replica: replication traffic between nodes; see replica.h.
 *
 * Outbound, each peer has one link: a persistent TCP connection opened on
 * the first request (non-blocking, with a deadline), its in-flight requests
 * in send order (all share timeout_ms, so the head holds the oldest
 * deadline and one timer per link suffices) and in an id table, and a
 * backoff after a failure during which requests fail at once; streaming
 * and anti-entropy send their requests over the same links (replica_call).
 * Inbound, peer.c routes ReplicaWrite and ReplicaRead to replica_serve.c;
 * both are answered from server_after_commit, so an ack means durable and a
 * read sees only committed data. A link opens with a LinkHello naming this
 * node; the node at the other end then sends its batched answers to this
 * node's requests on its own link here when that is up (with its own
 * requests, in one write), and they arrive on the inbound connection that
 * link opened, routed back to this node's link (on_answer_inbound). The
 * answers a link reads are matched to their requests in replica_answer.c.
 * A write for a down owner is kept as a hint in the store; node/handoff.c
 * replays hints to their owner.
 */
#include "replica.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "cluster.h"
#include "handoff.h"
#include "log.h"
#include "peer.h"
#include "conn.h"
#include "server.h"

#define REPLICA_MAX_INFLIGHT    100000             /* requests in flight to one peer */
#define REPLICA_BACKOFF_MIN_MS  100
#define REPLICA_BACKOFF_MAX_MS  5000
#define REPLICA_CONNECT_MIN_MS  1000 /* a connect gets at least this long */
/* An idle link is closed by its sender before the receiver's idle timeout
 * (PEER_IDLE_TIMEOUT_MS) can cut it under a request just sent. */
#define REPLICA_IDLE_CLOSE_MS (PEER_IDLE_TIMEOUT_MS / 2)
#include "replica_int.h"

uint64_t replica_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t replica_mono_ms(void)
{
    return replica_mono_us() / 1000;
}

/* snprintf for messages: truncating a long one is fine. */
void replica_say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

const char *replica_self_id(const replica *r)
{
    return r->srv->node_id;
}

/* A node id into a buffer of cap bytes (ids are checked to fit). */
void replica_copy_id(char *dst, size_t cap, const char *id)
{
    size_t n = strnlen(id, cap - 1);
    memcpy(dst, id, n);
    dst[n] = '\0';
}

/* ---- links ---- */

static link *link_find(replica *r, const char *id);

static void link_timer_del(link *ln)
{
    event_del(ln->timer_ev);
    ln->timer_set = false;
}

void replica_link_arm(link *ln)
{
    uint64_t next = UINT64_MAX;
    if (ln->head)
        next = ln->head->deadline_ms;
    if (ln->state == LINK_CONNECTING && ln->connect_deadline_ms < next)
        next = ln->connect_deadline_ms;
    if (ln->state == LINK_UP && !ln->head)
        next = ln->last_active_ms + REPLICA_IDLE_CLOSE_MS;
    if (next == UINT64_MAX) {
        link_timer_del(ln);
        return;
    }
    uint64_t now = replica_mono_ms(), d = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    ln->timer_set = evtimer_add(ln->timer_ev, &tv) == 0;
}

void replica_link_unlink(link *ln, req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        ln->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        ln->tail = q->prev;
    q->prev = q->next = NULL;
    ln->ninflight--;
    replica_table_del(ln->r, q);
}

/* Drops ln's connection; freed from replica_on_done, never inside its own callback. */
static void link_bury(link *ln)
{
    replica *r = ln->r;
    if (ln->bev) {
        bufferevent_disable(ln->bev, EV_READ | EV_WRITE);
        bufferevent_setcb(ln->bev, NULL, NULL, NULL, NULL);
        dead_bev *d = malloc(sizeof *d);
        if (d) {
            d->bev = ln->bev;
            d->next = r->dead;
            r->dead = d;
            event_active(r->done_ev, EV_TIMEOUT, 1);
        } else {
            bufferevent_free(ln->bev); /* callbacks are cleared, so this is safe */
        }
        ln->bev = NULL;
    }
    if (ln->state == LINK_UP && r->n.links_up)
        r->n.links_up--;
    ln->state = LINK_IDLE;
    ln->staged = 0; /* the requests it held fail with the others */
    ln->urgent = false;
    ln->linger_since_us = 0;
    link_timer_del(ln);
}

/* An idle link closed cleanly (by us or the peer): no backoff, the next
 * request reconnects at once. */
static void link_close_idle(link *ln)
{
    link_bury(ln);
    ln->retry_at_ms = 0;
    ln->backoff_ms = 0;
}

/* The connection is gone (or never came up): it is freed from replica_on_done, not
 * inside its own callback, and every request on it fails exactly once. */
void replica_link_fail(link *ln, const char *fmt, ...)
{
    replica *r = ln->r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ln->last_err, sizeof ln->last_err, fmt, ap);
    va_end(ap);
    link_bury(ln);
    ln->failed_before = true;
    ln->backoff_ms = ln->backoff_ms ? ln->backoff_ms * 2 : REPLICA_BACKOFF_MIN_MS;
    if (ln->backoff_ms > REPLICA_BACKOFF_MAX_MS)
        ln->backoff_ms = REPLICA_BACKOFF_MAX_MS;
    ln->retry_at_ms = replica_mono_ms() + ln->backoff_ms;
    log_debug("replica link to %s (%s) down: %s; retry in %llu ms", ln->id, ln->addr, ln->last_err,
              (unsigned long long)ln->backoff_ms);
    while (ln->head) {
        req *q = ln->head;
        replica_link_unlink(ln, q);
        replica_req_fail(q, ln->id, "link to %s lost: %s", ln->id, ln->last_err);
        replica_fail_later(r, q);
    }
    link_timer_del(ln);
}

/* EV_WRITE is on while connecting and while the socket is full: once the
 * output is all out, the link goes back to replica_on_flush. */
static void on_link_write(struct bufferevent *bev, void *arg)
{
    link *ln = arg;
    if (ln->state == LINK_UP && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

link *replica_answer_link(replica *r, peer_conn *pc)
{
    const char *node = peer_conn_node(pc);
    link *ln = node[0] ? link_find(r, node) : NULL;
    return ln && ln->state == LINK_UP && ln->bev ? ln : NULL;
}

static void on_link_event(struct bufferevent *bev, short what, void *arg)
{
    link *ln = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* Requests queued while connecting go out through the bufferevent,
         * and then on_link_write hands the link to replica_on_flush. */
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            bufferevent_disable(bev, EV_WRITE);
        ln->state = LINK_UP;
        ln->last_active_ms = ln->progress_ms = replica_mono_ms();
        ln->backoff_ms = 0;
        ln->r->n.links_up++;
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        replica_link_arm(ln);
        log_debug("replica link to %s (%s) up", ln->id, ln->addr);
        return;
    }
    if ((what & BEV_EVENT_EOF) && ln->state == LINK_UP && !ln->head &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        link_close_idle(ln); /* the peer's idle timeout: nothing was lost */
    } else if (what & BEV_EVENT_EOF) {
        replica_link_fail(ln, "closed by the peer");
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        replica_link_fail(ln, "%s", e ? evutil_socket_error_to_string(e) : "socket error");
    }
}

static void on_link_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link *ln = arg;
    replica *r = ln->r;
    uint64_t now = replica_mono_ms();
    ln->timer_set = false; /* it fired */
    if (ln->state == LINK_CONNECTING && now >= ln->connect_deadline_ms) {
        replica_link_fail(ln, "connect to %s timed out", ln->addr);
        return;
    }
    if (ln->state == LINK_UP && !ln->head && now >= ln->last_active_ms + REPLICA_IDLE_CLOSE_MS) {
        link_close_idle(ln);
        return;
    }
    while (ln->head && ln->head->deadline_ms <= now) {
        req *q = ln->head;
        replica_link_unlink(ln, q);
        replica_req_fail(q, ln->id, "timeout: no answer from %s within %llu ms", ln->id,
                 (unsigned long long)r->timeout_ms);
        r->n.timeouts++;
        replica_fail_later(r, q);
    }
    replica_link_arm(ln);
}

/* This node's link to node id, or NULL if it never had one. */
static link *link_find(replica *r, const char *id)
{
    for (link *ln = r->links; ln; ln = ln->next)
        if (strcmp(ln->id, id) == 0)
            return ln;
    return NULL;
}

static link *link_get(replica *r, const char *id)
{
    link *ln = link_find(r, id);
    if (ln)
        return ln;
    ln = calloc(1, sizeof *ln);
    if (!ln)
        return NULL;
    ln->r = r;
    replica_say(ln->id, sizeof ln->id, "%s", id);
    ln->timer_ev = evtimer_new(r->base, on_link_timer, ln);
    if (!ln->timer_ev) {
        free(ln);
        return NULL;
    }
    ln->next = r->links;
    r->links = ln;
    return ln;
}

/* Starts a non-blocking connect; 0, or -1 with ln->last_err. */
static int link_connect(link *ln)
{
    replica *r = ln->r;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char err[200];
    if (peer_resolve(r->pr, ln->addr, &ss, &sslen, err, sizeof err) != 0) {
        replica_say(ln->last_err, sizeof ln->last_err, "%s", err);
        return -1;
    }
    ln->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!ln->bev) {
        replica_say(ln->last_err, sizeof ln->last_err, "out of memory");
        return -1;
    }
    bufferevent_setcb(ln->bev, replica_on_link_read, on_link_write, on_link_event, ln);
    bufferevent_setwatermark(ln->bev, EV_READ, 0, PEER_HEADER_BYTES + PEER_MAX_FRAME);
    /* The first frame says who opened the link (LinkHello): the other node
     * may then answer this node's requests on its own link to it. */
    Ringkv__Envelope hello_env = RINGKV__ENVELOPE__INIT;
    Ringkv__LinkHello hello = RINGKV__LINK_HELLO__INIT;
    hello_env.version = PEER_VERSION;
    hello_env.body_case = RINGKV__ENVELOPE__BODY_HELLO;
    hello_env.hello = &hello;
    hello.node_id = (char *)replica_self_id(r);
    size_t hello_len = peer_frame_size(&hello_env);
    if (!hello_len ||
        peer_frame_append(bufferevent_get_output(ln->bev), &hello_env, hello_len) != 0) {
        bufferevent_free(ln->bev);
        ln->bev = NULL;
        replica_say(ln->last_err, sizeof ln->last_err, "out of memory");
        return -1;
    }
    if (bufferevent_socket_connect(ln->bev, (struct sockaddr *)&ss, (int)sslen) != 0) {
        int e = EVUTIL_SOCKET_ERROR();
        bufferevent_free(ln->bev);
        ln->bev = NULL;
        replica_say(ln->last_err, sizeof ln->last_err, "cannot connect to %s: %s", ln->addr,
                    e ? evutil_socket_error_to_string(e) : "socket error");
        return -1;
    }
    bufferevent_enable(ln->bev, EV_READ | EV_WRITE);
    ln->state = LINK_CONNECTING;
    uint64_t t = r->timeout_ms > REPLICA_CONNECT_MIN_MS ? r->timeout_ms : REPLICA_CONNECT_MIN_MS;
    ln->connect_deadline_ms = replica_mono_ms() + t;
    if (ln->failed_before)
        r->n.reconnects++;
    replica_link_arm(ln);
    return 0;
}

/* Pauses or resumes the clients after the links' queues changed. */
void replica_pressure_update(replica *r)
{
    uint64_t now = replica_mono_ms();
    size_t mark = r->pressed ? REPLICA_PRESSURE_LOW : REPLICA_PRESSURE_HIGH;
    bool want = false;
    for (link *ln = r->links; ln && !want; ln = ln->next)
        want = ln->state == LINK_UP && ln->ninflight >= mark &&
               now < ln->progress_ms + REPLICA_STALL_MS;
    if (want != r->pressed) {
        r->pressed = want;
        if (want)
            r->n.pressure_pauses++;
        conn_pause_all(r->srv, want);
        log_debug("replication %s clients: a peer has %s requests in flight",
                  want ? "pauses" : "resumes", want ? "too many" : "few enough");
    }
    if (r->pressed && !evtimer_pending(r->pressure_ev, NULL)) {
        struct timeval tv = {0, 50 * 1000}; /* a peer that stops answering lets go */
        evtimer_add(r->pressure_ev, &tv);
    }
}

static void on_pressure(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica_pressure_update(arg);
}

/* Sends env to `to`, with a new request id written to *idfield (a field of
 * env) before it is packed. Every failure after q exists goes through
 * replica_fail_later. Returns 0, or -1 when out of memory (cb will not run). */
static int send_req(replica *r, const char *to, Ringkv__Envelope *env, uint64_t *idfield,
                    const replica_record *rec, replica_cb cb, replica_env_fn env_cb, void *arg)
{
    req *q = replica_req_get(r);
    if (!q)
        return -1;
    q->id = ++r->next_id;
    q->ln = NULL;
    q->cb = cb;
    q->env_cb = env_cb;
    q->arg = arg;
    q->deadline_ms = 0;
    q->have = env->body_case == RINGKV__ENVELOPE__BODY_READ && env->read->have_hlc;
    q->prev = q->next = q->hnext = NULL;
    q->fail = NULL;
    *idfield = q->id;

    const char *addr = NULL;
    link *ln = r->cl && r->pr ? link_find(r, to) : NULL;
    if (ln && ln->up_gen == cluster_generation(r->cl) && ln->state == LINK_UP)
        goto linked; /* up at ln->addr, as the cluster said when last asked */
    if (!r->cl || !r->pr) {
        replica_req_fail(q, to, "node %s is unreachable: this node has no peer port",
                    to);
        goto fail;
    }
    bool up;
    addr = cluster_peer_addr(r->cl, to, &up);
    if (!up) {
        replica_req_fail(q, to, "node %s is down", to);
        goto fail;
    }
    if (!addr || !addr[0]) {
        replica_req_fail(q, to, "node %s has no known peer address", to);
        goto fail;
    }
    ln = link_get(r, to);
    if (!ln) {
        replica_req_put(r, q);
        return -1;
    }
    if (strcmp(ln->addr, addr) != 0) {
        if (ln->bev)
            replica_link_fail(ln, "its peer address changed to %s", addr);
        replica_say(ln->addr, sizeof ln->addr, "%s", addr);
        ln->retry_at_ms = 0;
        ln->backoff_ms = 0;
    }
    if (ln->state == LINK_IDLE) {
        uint64_t now = replica_mono_ms();
        if (now < ln->retry_at_ms) {
            replica_req_fail(q, to, "link to %s is down (retry in %llu ms): %s", to,
                        (unsigned long long)(ln->retry_at_ms - now), ln->last_err);
            goto fail;
        }
        if (link_connect(ln) != 0) {
            char why[sizeof ln->last_err];
            replica_say(why, sizeof why, "%s", ln->last_err);
            replica_link_fail(ln, "%s", why);
            replica_req_fail(q, to, "link to %s is down: %s", to, why);
            goto fail;
        }
    }
    ln->up_gen = cluster_generation(r->cl);
linked:;
    /* A write or read is sized by its bound (packed in one pass below);
     * others, and one that may be over the frame limit, exactly. */
    size_t len = peer_frame_request_bound(env);
    bool one_pass = len && len <= PEER_HEADER_BYTES + PEER_MAX_FRAME;
    if (!one_pass)
        len = peer_frame_size(env);
    if (!len) {
        replica_req_fail(q, to, "request too large (over %u bytes)", PEER_MAX_FRAME);
        goto fail;
    }
    if (ln->ninflight >= REPLICA_MAX_INFLIGHT || replica_link_queued(ln) + len > REPLICA_MAX_QUEUE_BYTES) {
        r->n.queue_drops++;
        replica_req_fail(q, to, "queue full: %zu requests and %zu bytes waiting for %s",
                    ln->ninflight, replica_link_queued(ln), to);
        goto fail;
    }
    if (r->nreqs + 1 > r->nbuckets && replica_table_grow(r) != 0) {
        replica_req_fail(q, to, "out of memory");
        goto fail;
    }
    /* The frames of one pass leave together (replica_stage.c). */
    bool background = env->body_case == RINGKV__ENVELOPE__BODY_WRITE && env->write->background;
    if (replica_link_put(ln, env, len, one_pass, rec, background) != 0) {
        replica_req_fail(q, to, "out of memory queueing for %s", to);
        goto fail;
    }
    q->ln = ln;
    ln->last_active_ms = replica_mono_ms();
    q->deadline_ms = ln->last_active_ms + r->timeout_ms;
    q->prev = ln->tail;
    if (ln->tail)
        ln->tail->next = q;
    else
        ln->head = q;
    ln->tail = q;
    ln->ninflight++;
    replica_link_queue_flush(ln);
    q->hnext = r->table[q->id & (r->nbuckets - 1)];
    r->table[q->id & (r->nbuckets - 1)] = q;
    r->nreqs++;
    if (ln->head == q)
        replica_link_arm(ln);
    if (ln->ninflight >= REPLICA_PRESSURE_HIGH && !r->pressed)
        replica_pressure_update(r);
    return 0;
fail:
    replica_fail_later(r, q);
    return 0;
}

/* ---- the API ---- */

static const int routed[] = {RINGKV__ENVELOPE__BODY_WRITE,       RINGKV__ENVELOPE__BODY_READ,
                             RINGKV__ENVELOPE__BODY_HELLO,       RINGKV__ENVELOPE__BODY_WRITE_ACK,
                             RINGKV__ENVELOPE__BODY_READ_REPLY,  RINGKV__ENVELOPE__BODY_READ_REPLIES};

/* A link's first frame, on the inbound connection it opened. */
static void on_hello(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    replica *r = ctx;
    const char *id = env->hello && env->hello->node_id ? env->hello->node_id : "";
    if (!id[0] || strlen(id) > STORE_ORIGIN_MAX || strcmp(id, replica_self_id(r)) == 0 ||
        !peer_conn_set_node(pc, id))
        log_debug("peer %s: ignoring a link hello naming node '%.64s'", peer_conn_remote(pc), id);
}

/* Answers to this node's requests that their node sent on its own link to
 * this node (see replica_on_flush), not back on this node's link: they are this
 * node's link's answers all the same. Others (no such link up now: its
 * requests have failed already) are dropped. */
static void on_answer_inbound(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    link *ln = replica_answer_link(ctx, pc);
    if (ln)
        replica_link_handle(ln, env);
}

/* The answers batched in the pass that just ended. */
static void on_answers(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica_flush_answers(arg, true);
}

/* peer_prefetch_fn: the key of a replica write a frame or two ahead. Its
 * cache probe's two misses were 13% of a node's time under quorum SETs. */
static void prefetch_write(void *ctx, const uint8_t *key, size_t klen, bool entry)
{
    replica *r = ctx;
    store_prefetch(r->srv->st, key, klen, entry);
}

replica *replica_new(struct server *srv, struct cluster *cl, uint64_t timeout_ms, char *err,
                     size_t errlen)
{
    replica *r = calloc(1, sizeof *r);
    if (!r) {
        replica_say(err, errlen, "out of memory");
        return NULL;
    }
    r->srv = srv;
    r->cl = cl;
    r->pr = srv->peer;
    r->base = srv->base;
    r->timeout_ms = timeout_ms ? timeout_ms : 1;
    r->done_ev = event_new(r->base, -1, 0, replica_on_done, r);
    r->ack_ev = event_new(r->base, -1, 0, on_answers, r);
    r->flush_ev = event_new(r->base, -1, 0, replica_on_flush, r);
    r->linger_ev = evtimer_new(r->base, replica_on_flush, r);
    r->pressure_ev = evtimer_new(r->base, on_pressure, r);
    if (!r->done_ev || !r->ack_ev || !r->flush_ev || !r->linger_ev || !r->pressure_ev ||
        replica_table_grow(r) != 0) {
        replica_say(err, errlen, "out of memory");
        goto fail;
    }
    if (r->pr && (peer_route(r->pr, routed[0], replica_on_peer_write, r) != 0 ||
                  peer_route(r->pr, routed[1], replica_on_peer_read, r) != 0 ||
                  peer_route(r->pr, routed[2], on_hello, r) != 0 ||
                  peer_route(r->pr, routed[3], on_answer_inbound, r) != 0 ||
                  peer_route(r->pr, routed[4], on_answer_inbound, r) != 0 ||
                  peer_route(r->pr, routed[5], on_answer_inbound, r) != 0)) {
        replica_say(err, errlen, "the peer port has no room for replication's messages");
        goto fail;
    }
    if (r->pr)
        peer_set_prefetch(r->pr, prefetch_write, r);
    if (!(r->ho = handoff_new(srv, cl, r, err, errlen)))
        goto fail;
    return r;
fail:
    replica_free(r);
    return NULL;
}

void replica_set_prefetch(replica *r, replica_prefetch_fn fn)
{
    r->prefetch = fn;
}

void replica_free(replica *r)
{
    if (!r)
        return;
    if (r->pr) {
        for (size_t i = 0; i < sizeof routed / sizeof routed[0]; i++)
            peer_route(r->pr, routed[i], NULL, NULL);
        peer_set_prefetch(r->pr, NULL, NULL);
    }
    /* As peer_free does: requests in flight are dropped without their
     * callbacks (their owners are going away too); handoff_free, last,
     * frees what its own requests carried. */
    r->flush = NULL; /* links, about to be freed */
    while (r->links) {
        link *ln = r->links;
        r->links = ln->next;
        while (ln->head) {
            req *q = ln->head;
            ln->head = q->next;
            replica_req_free(q);
        }
        if (ln->bev)
            bufferevent_free(ln->bev);
        event_free(ln->timer_ev);
        free(ln->stage);
        free(ln);
    }
    while (r->done_head) {
        req *q = r->done_head;
        r->done_head = q->next;
        replica_req_free(q);
    }
    while (r->req_spare) {
        req *q = r->req_spare;
        r->req_spare = q->next;
        replica_req_free(q);
    }
    while (r->dead) {
        dead_bev *d = r->dead;
        r->dead = d->next;
        bufferevent_free(d->bev);
        free(d);
    }
    while (r->pending) {
        server_after_commit_cancel(r->srv, replica_on_committed, r->pending);
        replica_pending_free(r->pending);
    }
    while (r->spare) {
        pending *p = r->spare;
        r->spare = p->next;
        free(p);
    }
    handoff_free(r->ho);
    if (r->done_ev)
        event_free(r->done_ev);
    replica_flush_answers(r, false);
    for (size_t i = 0; i < r->capacks; i++) {
        free(r->acks[i].ids);
        free(r->acks[i].reads);
    }
    free(r->acks);
    free(r->rr_buf);
    free(r->rr_ptrs);
    free(r->rec_buf);
    free(r->memo.frame);
    peer_arena_release(&r->arena);
    if (r->ack_ev)
        event_free(r->ack_ev);
    if (r->flush_ev)
        event_free(r->flush_ev);
    if (r->linger_ev)
        event_free(r->linger_ev);
    if (r->pressure_ev)
        event_free(r->pressure_ev);
    if (r->pressed)
        conn_pause_all(r->srv, false);
    free(r->table);
    free(r);
}

static int write_to(replica *r, const char *to, const replica_record *rec, const char *hint_for,
                    bool background, replica_cb cb, void *arg)
{
    if (strcmp(to, replica_self_id(r)) == 0)
        return replica_apply_local(r, rec, hint_for, cb, arg);
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWrite w = RINGKV__REPLICA_WRITE__INIT;
    Ringkv__Record pb = RINGKV__RECORD__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE;
    env.write = &w;
    replica_record_to_pb(rec, &pb);
    w.record = &pb;
    w.hint_for = (char *)(hint_for ? hint_for : "");
    w.background = background;
    /* A hint's frame names its owner: kept for nobody else. */
    bool plain = !hint_for || !hint_for[0];
    if (send_req(r, to, &env, &w.id, plain ? rec : NULL, cb, NULL, arg) != 0)
        return -1;
    r->n.writes_sent++;
    return 0;
}

int replica_write(replica *r, const char *to, const replica_record *rec, const char *hint_for,
                  replica_cb cb, void *arg)
{
    return write_to(r, to, rec, hint_for, false, cb, arg);
}

int replica_write_background(replica *r, const char *to, const replica_record *rec,
                             const char *hint_for, replica_cb cb, void *arg)
{
    return write_to(r, to, rec, hint_for, true, cb, arg);
}

int replica_call(replica *r, const char *to, Ringkv__Envelope *env, uint64_t *idfield,
                 replica_env_fn fn, void *arg)
{
    return send_req(r, to, env, idfield, NULL, NULL, fn, arg);
}

int replica_read(replica *r, const char *to, const uint8_t *key, size_t klen,
                 const store_version *have, replica_cb cb, void *arg)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaRead rd = RINGKV__REPLICA_READ__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_READ;
    env.read = &rd;
    rd.key.data = (uint8_t *)key;
    rd.key.len = klen;
    if (have && have->hlc) {
        rd.have_hlc = have->hlc;
        rd.have_origin = (char *)have->origin;
    }
    if (send_req(r, to, &env, &rd.id, NULL, cb, NULL, arg) != 0)
        return -1;
    r->n.reads_sent++;
    return 0;
}

int replica_apply_local(replica *r, const replica_record *rec, const char *hint_for, replica_cb cb,
                        void *arg)
{
    char err[256];
    req *q;
    if (replica_store(r, rec, hint_for, err, sizeof err) != STORE_OK) {
        /* Reported from the loop, as every other failure is. */
        if (!(q = calloc(1, sizeof *q)))
            return -1;
        q->cb = cb;
        q->arg = arg;
        replica_req_fail(q, replica_self_id(r), "%s", err);
        replica_fail_later(r, q);
        return 0;
    }
    pending *p = replica_pending_get(r);
    if (!p)
        return -1;
    p->kind = PENDING_LOCAL;
    p->cb = cb;
    p->arg = arg;
    return replica_pending_add(r, p);
}

void replica_get_stats(const replica *r, replica_stats *out)
{
    *out = r->n;
    out->pressed = r->pressed;
    out->hints_delivered = r->ho ? handoff_delivered(r->ho) : 0;
    out->hints_pending = store_hint_count(r->srv->st);
}
