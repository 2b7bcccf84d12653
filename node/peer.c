/* peer: the peer TCP port; see peer.h.
 *
 * Inbound and outbound connections share one struct and one frame path
 * (on_read); an inbound connection reads its socket itself (on_sock_read),
 * an outbound one is a single request waiting for its one answer, after
 * which it closes. protobuf-c sees a body only after the header check, so a
 * hostile length cannot make it (or the input buffer) grow past
 * PEER_MAX_FRAME.
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "config.h"
#include "log.h"

#define RESOLVE_CACHE  32
#define RESOLVE_TTL_MS 60000
/* Bytes an inbound connection's read asks for: as libevent's own read at
 * first, then following what the peer sends (peer_read_size_next): a
 * replica takes a pass's batch of writes in one read. */
#define READ_MIN (4 * 1024)
#define READ_MAX (256 * 1024)

struct peer_conn {
    peer *p;
    struct bufferevent *bev;
    struct event *read_ev; /* inbound: reads the socket (peer_read_direct) */
    size_t read_size;      /* inbound: bytes the next read asks for */
    char remote[PEER_ADDR_MAX];
    char node[PEER_NODE_ID_MAX + 1]; /* peer_conn_set_node; "" until then */
    peer_conn *prev, *next;  /* p->conns */
    peer_conn *closing_next; /* p->closing */
    bool closing, outbound, read_paused;
    bool flush_queued;      /* inbound: in p->flush, output to write */
    peer_conn *flush_next;
    unsigned holds; /* peer_conn_hold: freed only once this is back to 0 */
    bool reaped;    /* closed and reaped while held: the last drop frees it */
    /* outbound only */
    peer_reply_fn fn;
    void *ctx;
    bool done; /* fn has been called */
    uint32_t timeout_ms;
    struct event *deadline_ev;
};

typedef struct resolved {
    char addr[PEER_ADDR_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    uint64_t expires_ms;
} resolved;

struct peer {
    struct event_base *base;
    struct evconnlistener *listener;
    char addr[PEER_ADDR_MAX];
    int port;
    peer_message_fn on_message;
    void *ctx;
    struct {
        int body; /* Ringkv__Envelope__BodyCase */
        peer_message_fn fn;
        void *ctx;
    } routes[PEER_MAX_ROUTES];
    peer_conn *conns;
    size_t ninbound;
    peer_conn *closing;
    struct event *reap_ev;     /* frees closing connections, outside their callbacks */
    struct event *relisten_ev; /* re-enables accept after EMFILE */
    struct event *flush_ev;    /* writes the pass's answers (on_flush) */
    peer_conn *flush;          /* inbound connections with answers to write */
    resolved cache[RESOLVE_CACHE];
    size_t cache_next;
    peer_stats n;
    peer_arena arena; /* the envelope being handled (one at a time) */
    peer_prefetch_fn prefetch;
    void *prefetch_ctx;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- addresses ---- */

void peer_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%d", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, outlen, "?");
    }
}

int peer_resolve(peer *p, const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                 char *err, size_t errlen)
{
    char host[CONFIG_ADDR_MAX];
    int port;
    if (config_split_addr(addr, host, sizeof host, &port) != 0 || port == 0)
        return peer_set_err(err, errlen, "'%s' is not a HOST:PORT address", addr);
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *sslen = sizeof *in;
        return 0;
    }
    if (!strchr(host, '%') && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *in6;
        return 0;
    }
    /* A name (or a scoped IPv6 address): getaddrinfo, once a minute. */
    uint64_t now = mono_ms();
    for (size_t i = 0; i < RESOLVE_CACHE; i++) {
        resolved *r = &p->cache[i];
        if (r->len && now < r->expires_ms && strcmp(r->addr, addr) == 0) {
            memcpy(ss, &r->ss, r->len);
            *sslen = r->len;
            return 0;
        }
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0)
        return peer_set_err(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
    if (ai->ai_addrlen > sizeof *ss) {
        freeaddrinfo(ai);
        return peer_set_err(err, errlen, "cannot resolve '%s': address too long", host);
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    resolved *r = &p->cache[p->cache_next++ % RESOLVE_CACHE];
    if (strlen(addr) < sizeof r->addr) {
        snprintf(r->addr, sizeof r->addr, "%s", addr);
        memcpy(&r->ss, ss, *sslen);
        r->len = *sslen;
        r->expires_ms = now + RESOLVE_TTL_MS;
    }
    return 0;
}

/* ---- connections ---- */

bool peer_conn_set_node(peer_conn *pc, const char *id)
{
    size_t n = strnlen(id, PEER_NODE_ID_MAX + 1);
    if (n > PEER_NODE_ID_MAX)
        return false;
    memcpy(pc->node, id, n);
    pc->node[n] = '\0';
    return true;
}

const char *peer_conn_node(const peer_conn *pc) { return pc->node; }

const char *peer_conn_remote(const peer_conn *pc)
{
    return pc->remote;
}

/* Reports an outbound request's outcome, once. */
static void finish(peer_conn *pc, const Ringkv__Envelope *reply, const char *err)
{
    if (!pc->outbound || pc->done)
        return;
    pc->done = true;
    if (!reply)
        pc->p->n.request_failures++;
    pc->fn(pc->ctx, reply, err);
}

void peer_conn_close(peer_conn *pc, const char *why)
{
    if (pc->closing)
        return;
    if (why)
        log_debug("peer %s: closing: %s", pc->remote, why);
    finish(pc, NULL, why ? why : "connection closed");
    pc->closing = true;
    bufferevent_disable(pc->bev, EV_READ | EV_WRITE);
    if (pc->read_ev)
        event_del(pc->read_ev);
    if (pc->deadline_ev)
        event_del(pc->deadline_ev);
    pc->closing_next = pc->p->closing;
    pc->p->closing = pc;
    event_active(pc->p->reap_ev, EV_TIMEOUT, 1);
}

/* A peer broke the protocol or a limit: counted and logged where an
 * operator sees it, since it is either a bug or someone else's traffic. */
__attribute__((format(printf, 2, 3))) static void drop(peer_conn *pc, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pc->p->n.dropped++;
    log_warn("peer %s dropped: %s", pc->remote, why);
    peer_conn_close(pc, why);
}

static void conn_free(peer_conn *pc)
{
    peer *p = pc->p;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    if (!pc->outbound)
        p->ninbound--;
    if (pc->flush_queued) {
        peer_conn **pp = &p->flush;
        while (*pp != pc)
            pp = &(*pp)->flush_next;
        *pp = pc->flush_next;
    }
    if (pc->deadline_ev)
        event_free(pc->deadline_ev);
    if (pc->read_ev)
        event_free(pc->read_ev);
    bufferevent_free(pc->bev);
    free(pc);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer *p = arg;
    while (p->closing) {
        peer_conn *pc = p->closing;
        p->closing = pc->closing_next;
        if (pc->holds)
            pc->reaped = true; /* the last peer_conn_drop frees it */
        else
            conn_free(pc);
    }
}

void peer_conn_hold(peer_conn *pc)
{
    pc->holds++;
}

void peer_conn_drop(peer_conn *pc)
{
    if (--pc->holds == 0 && pc->reaped) {
        /* Through the reaper, not here: the caller may be one of pc's
         * own callbacks. */
        pc->reaped = false;
        pc->closing_next = pc->p->closing;
        pc->p->closing = pc;
        event_active(pc->p->reap_ev, EV_TIMEOUT, 1);
    }
}

bool peer_conn_is_open(const peer_conn *pc)
{
    return !pc->closing;
}

int peer_route(peer *p, int body, peer_message_fn fn, void *ctx)
{
    for (int i = 0; i < PEER_MAX_ROUTES; i++)
        if (p->routes[i].fn && p->routes[i].body == body) {
            p->routes[i].fn = fn;
            p->routes[i].ctx = ctx;
            return 0;
        }
    if (!fn)
        return 0;
    for (int i = 0; i < PEER_MAX_ROUTES; i++)
        if (!p->routes[i].fn) {
            p->routes[i].body = body;
            p->routes[i].fn = fn;
            p->routes[i].ctx = ctx;
            return 0;
        }
    return -1;
}

/* The handler of an inbound Envelope: its body's route, else on_message. */
static void dispatch(peer *p, peer_conn *pc, const Ringkv__Envelope *env)
{
    for (int i = 0; i < PEER_MAX_ROUTES; i++)
        if (p->routes[i].fn && p->routes[i].body == (int)env->body_case) {
            p->routes[i].fn(p->routes[i].ctx, pc, env);
            return;
        }
    p->on_message(p->ctx, pc, env);
}

static size_t output_len(const peer_conn *pc)
{
    return evbuffer_get_length(bufferevent_get_output(pc->bev));
}

int peer_reply(peer_conn *pc, const Ringkv__Envelope *env)
{
    if (pc->closing)
        return -1;
    size_t len = peer_frame_size(env);
    if (!len) {
        drop(pc, "cannot encode a reply (over %u bytes)", PEER_MAX_FRAME);
        return -1;
    }
    if (output_len(pc) + len > PEER_MAX_OUTPUT) {
        drop(pc, "not reading: %zu bytes already queued (limit %zu)", output_len(pc),
             PEER_MAX_OUTPUT);
        return -1;
    }
    if (peer_frame_append(bufferevent_get_output(pc->bev), env, len) != 0) {
        drop(pc, "out of memory queueing a reply");
        return -1;
    }
    pc->p->n.frames_out++;
    if (!pc->outbound && !pc->flush_queued) {
        peer *p = pc->p;
        if (!p->flush)
            event_active(p->flush_ev, EV_TIMEOUT, 1);
        pc->flush_queued = true;
        pc->flush_next = p->flush;
        p->flush = pc;
    }
    return 0;
}

/* Chains one sendmsg takes: libevent's evbuffer_write takes up to 128;
 * past 16 a write is large enough that another system call costs little.
 * Asked for the whole buffer (-1), evbuffer_peek stops once v is full, so a
 * link backed up with megabytes of frames is not walked for each send. */
#define SEND_IOV_MAX 16

ssize_t peer_send_buffer(struct evbuffer *buf, int fd)
{
    struct evbuffer_iovec v[SEND_IOV_MAX];
    int nv = evbuffer_peek(buf, -1, NULL, v, SEND_IOV_MAX);
    if (nv <= 0)
        return 0;
    if (nv > SEND_IOV_MAX)
        nv = SEND_IOV_MAX;
    ssize_t n;
    if (nv == 1) {
        do
            n = send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
    } else {
        struct iovec iov[SEND_IOV_MAX];
        for (int i = 0; i < nv; i++)
            iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)nv};
        do
            n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
    }
    if (n > 0) {
        int e = errno;
        evbuffer_drain(buf, (size_t)n);
        errno = e;
    }
    return n;
}

bool peer_write_direct(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (bufferevent_get_enabled(bev) & EV_WRITE)
        return evbuffer_get_length(out) == 0; /* the bufferevent is on it */
    /* The bufferevent keeps its output's front frozen except while it
     * writes itself; so do we. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && peer_send_buffer(out, bufferevent_getfd(bev)) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0)
        return true;
    /* A full socket, or an error, which the bufferevent's own write then
     * meets and reports to the event callback. */
    bufferevent_enable(bev, EV_WRITE);
    return false;
}

ssize_t peer_read_direct(struct evbuffer *in, int fd, size_t want)
{
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    /* The bufferevent keeps its input's end frozen except while it reads
     * itself; so do we. */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    if (nv <= 0) {
        evbuffer_freeze(in, 0);
        errno = ENOMEM;
        return -1;
    }
    /* libevent may reserve more than asked: ask the socket for want. */
    size_t ask = want;
    for (int i = 0; i < nv; i++) {
        size_t len = v[i].iov_len < ask ? v[i].iov_len : ask;
        iov[i] = (struct iovec){v[i].iov_base, len};
        ask -= len;
    }
    ssize_t n;
    do
        n = nv == 1 ? recv(fd, iov[0].iov_base, iov[0].iov_len, 0) : readv(fd, iov, nv);
    while (n < 0 && errno == EINTR);
    int e = errno;
    if (n > 0) {
        size_t left = (size_t)n;
        int used = 0;
        for (; used < nv && left > 0; used++) {
            if (v[used].iov_len > left)
                v[used].iov_len = left;
            left -= v[used].iov_len;
        }
        evbuffer_commit_space(in, v, used);
    }
    evbuffer_freeze(in, 0);
    errno = e;
    return n;
}

/* Handles whole frames in the input; stops at a partial one. */
void peer_set_prefetch(peer *p, peer_prefetch_fn fn, void *ctx)
{
    p->prefetch = fn;
    p->prefetch_ctx = ctx;
}

/* The frames after the first skip bytes of in (the frame in hand) that
 * sit whole in its first chain: the keys of the first two, if writes, to
 * p->prefetch. */
static void prefetch_next(peer *p, struct evbuffer *in, size_t skip)
{
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len < skip)
        return;
    const uint8_t *base = v.iov_base, *at = base + skip, *end = base + v.iov_len;
    for (int i = 0; i < 2; i++) {
        uint32_t blen;
        const uint8_t *key;
        size_t klen;
        char err[128];
        if ((size_t)(end - at) < PEER_HEADER_BYTES ||
            peer_header_check(at, PEER_MAX_FRAME, &blen, err, sizeof err) != 0 ||
            (size_t)(end - at) - PEER_HEADER_BYTES < blen)
            return;
        if (peer_sniff_write_key(at + PEER_HEADER_BYTES, blen, &key, &klen))
            p->prefetch(p->prefetch_ctx, key, klen, i == 0);
        at += PEER_HEADER_BYTES + blen;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    peer_conn *pc = arg;
    peer *p = pc->p;
    struct evbuffer *in = bufferevent_get_input(bev);
    char err[256];

    while (!pc->closing && !pc->read_paused) {
        const uint8_t *body;
        uint32_t blen;
        int got = peer_frame_peek(in, &body, &blen, err, sizeof err);
        if (got <= 0) {
            if (got < 0)
                drop(pc, "%s", err);
            return;
        }
        /* The envelope's bytes point into the frame: drained once done
         * with (a connection closed meanwhile keeps its buffers until it
         * is reaped). */
        Ringkv__Envelope *env = peer_envelope_decode_in(&p->arena, body, blen, err, sizeof err);
        if (!env) {
            evbuffer_drain(in, PEER_HEADER_BYTES + blen);
            drop(pc, "%s", err);
            return;
        }
        p->n.frames_in++;
        if (p->prefetch && !pc->outbound)
            prefetch_next(p, in, PEER_HEADER_BYTES + blen);
        if (pc->outbound) {
            finish(pc, env, NULL);
            peer_envelope_free_in(&p->arena, env);
            evbuffer_drain(in, PEER_HEADER_BYTES + blen);
            peer_conn_close(pc, NULL);
            return;
        }
        dispatch(p, pc, env);
        peer_envelope_free_in(&p->arena, env);
        evbuffer_drain(in, PEER_HEADER_BYTES + blen);
        /* Backpressure: a peer that sends requests but does not read the
         * answers waits until they drain (on_write resumes it). */
        if (!pc->closing && output_len(pc) > PEER_MAX_OUTPUT / 2) {
            pc->read_paused = true;
            event_del(pc->read_ev); /* inbound only: outbound ones return above */
        }
    }
}

static void read_enable(peer_conn *pc)
{
    /* EV_PERSIST: each read restarts the timer */
    struct timeval tv = {PEER_IDLE_TIMEOUT_MS / 1000, (PEER_IDLE_TIMEOUT_MS % 1000) * 1000};
    event_add(pc->read_ev, &tv);
}

/* An inbound connection's socket is readable (or idle too long). */
static void on_sock_read(evutil_socket_t fd, short what, void *arg)
{
    peer_conn *pc = arg;
    char why[200];
    if (what & EV_TIMEOUT) {
        pc->p->n.dropped++;
        snprintf(why, sizeof why, "no progress for %d s", PEER_IDLE_TIMEOUT_MS / 1000);
        peer_conn_close(pc, why);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(pc->bev);
    /* The input holds at most one whole frame (the header check refuses
     * anything longer), and on_read leaves only a partial one. */
    size_t room = PEER_HEADER_BYTES + PEER_MAX_FRAME - evbuffer_get_length(in);
    size_t want = pc->read_size < room ? pc->read_size : room;
    ssize_t n = peer_read_direct(in, fd, want);
    if (n == 0) {
        peer_conn_close(pc, NULL);
        return;
    }
    if (n < 0) {
        if (errno == ENOMEM)
            drop(pc, "out of memory reading a frame");
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            peer_conn_close(pc, evutil_socket_error_to_string(errno));
        return;
    }
    /* A read the input's room capped, and filled, says nothing of the size. */
    if ((size_t)n < want || want == pc->read_size)
        pc->read_size = peer_read_size_next(pc->read_size, (size_t)n, READ_MIN, READ_MAX);
    on_read(pc->bev, pc);
}

/* Reading resumes once the output is down to a quarter of its limit. */
static void resume_reading(peer_conn *pc)
{
    if (pc->closing || !pc->read_paused || output_len(pc) > PEER_MAX_OUTPUT / 4)
        return;
    pc->read_paused = false;
    read_enable(pc);
    on_read(pc->bev, pc); /* frames may already be waiting */
}

/* The bufferevent wrote (EV_WRITE is on only while the socket is full, or
 * for an outbound request): an inbound connection whose output is all out
 * goes back to on_flush. */
static void on_write(struct bufferevent *bev, void *arg)
{
    peer_conn *pc = arg;
    if (!pc->outbound && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    resume_reading(pc);
}

/* The end of a pass: each inbound connection's answers go to its socket in
 * one write, as conn.c writes the clients' replies. Left to the bufferevent,
 * each pass cost two epoll_ctl calls (arm and disarm EPOLLOUT) and one more
 * epoll_wait per connection: a quarter of a node's system calls under
 * quorum GETs without pipelining. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer *p = arg;
    while (p->flush) {
        peer_conn *pc = p->flush;
        p->flush = pc->flush_next;
        pc->flush_queued = false;
        if (pc->closing)
            continue;
        peer_write_direct(pc->bev);
        resume_reading(pc); /* may queue pc again, and so run this again */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    peer_conn *pc = arg;
    char why[200];
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & BEV_EVENT_EOF) {
        peer_conn_close(pc, pc->outbound ? "closed by the peer before it answered" : NULL);
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "%s", e ? evutil_socket_error_to_string(e) : "socket error");
        peer_conn_close(pc, why);
    } else if (what & BEV_EVENT_TIMEOUT) {
        pc->p->n.dropped++;
        snprintf(why, sizeof why, "no progress for %d s", PEER_IDLE_TIMEOUT_MS / 1000);
        peer_conn_close(pc, why);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer_conn *pc = arg;
    char why[64];
    snprintf(why, sizeof why, "no answer within %u ms", pc->timeout_ms);
    peer_conn_close(pc, why);
}

static peer_conn *conn_new(peer *p, evutil_socket_t fd, const char *remote, bool outbound)
{
    peer_conn *pc = calloc(1, sizeof *pc);
    if (!pc) {
        if (fd >= 0)
            evutil_closesocket(fd);
        return NULL;
    }
    pc->p = p;
    pc->outbound = outbound;
    snprintf(pc->remote, sizeof pc->remote, "%s", remote);
    pc->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!pc->bev) {
        if (fd >= 0)
            evutil_closesocket(fd);
        free(pc);
        return NULL;
    }
    /* An inbound connection reads its socket itself (on_sock_read); an
     * outbound one, a single answer, leaves it to the bufferevent. */
    if (!outbound &&
        !(pc->read_ev = event_new(p->base, fd, EV_READ | EV_PERSIST, on_sock_read, pc))) {
        bufferevent_free(pc->bev);
        free(pc);
        return NULL;
    }
    pc->read_size = READ_MIN;
    bufferevent_setcb(pc->bev, outbound ? on_read : NULL, on_write, on_event, pc);
    /* The input holds at most one whole frame before reading stops; the
     * header check refuses anything that could not fit. */
    bufferevent_setwatermark(pc->bev, EV_READ, 0, PEER_HEADER_BYTES + PEER_MAX_FRAME);
    bufferevent_setwatermark(pc->bev, EV_WRITE, PEER_MAX_OUTPUT / 4, 0);
    pc->next = p->conns;
    if (p->conns)
        p->conns->prev = pc;
    p->conns = pc;
    if (!outbound)
        p->ninbound++;
    return pc;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    peer *p = arg;
    char remote[PEER_ADDR_MAX];
    peer_format_addr(sa, remote, sizeof remote);
    if (p->ninbound >= PEER_MAX_CONNS) {
        if (p->n.refused++ % 100 == 0)
            log_warn("refused peer connection from %s: %d peer connections open", remote,
                     PEER_MAX_CONNS);
        evutil_closesocket(fd);
        return;
    }
    peer_conn *pc = conn_new(p, fd, remote, false);
    if (!pc) {
        log_warn("could not set up a peer connection for %s: out of memory", remote);
        return;
    }
    p->n.accepted++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {PEER_IDLE_TIMEOUT_MS / 1000, (PEER_IDLE_TIMEOUT_MS % 1000) * 1000};
    bufferevent_set_timeouts(pc->bev, NULL, &tv); /* reads: read_enable's timer */
    read_enable(pc); /* EV_WRITE: see on_flush */
    log_debug("peer %s connected", remote);
}

/* Out of descriptors, most likely: pause accepting for a second rather than
 * spin on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    peer *p = arg;
    log_warn("peer accept failed: %s; pausing peer connections for 1 s",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    evconnlistener_disable(l);
    struct timeval tv = {1, 0};
    evtimer_add(p->relisten_ev, &tv);
}

static void on_relisten(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer *p = arg;
    evconnlistener_enable(p->listener);
}

int peer_request(peer *p, const char *addr, const Ringkv__Envelope *env, uint32_t timeout_ms,
                 peer_reply_fn fn, void *ctx, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (peer_resolve(p, addr, &ss, &sslen, err, errlen) != 0)
        return -1;
    peer_conn *pc = conn_new(p, -1, addr, true);
    if (!pc)
        return peer_set_err(err, errlen, "out of memory");
    pc->fn = fn;
    pc->ctx = ctx;
    pc->timeout_ms = timeout_ms;
    pc->deadline_ev = evtimer_new(p->base, on_deadline, pc);
    /* From here a failure goes through peer_conn_close; finish() must not
     * report it, since the caller hears of it from our return value. */
    pc->done = true;
    if (!pc->deadline_ev) {
        peer_conn_close(pc, NULL);
        return peer_set_err(err, errlen, "out of memory");
    }
    if (peer_reply(pc, env) != 0) {
        peer_conn_close(pc, NULL);
        return peer_set_err(err, errlen, "cannot encode the request");
    }
    if (bufferevent_socket_connect(pc->bev, (struct sockaddr *)&ss, (int)sslen) != 0) {
        int e = EVUTIL_SOCKET_ERROR();
        peer_set_err(err, errlen, "cannot connect to %s: %s", addr,
                e ? evutil_socket_error_to_string(e) : "socket error");
        peer_conn_close(pc, NULL);
        return -1;
    }
    int one = 1;
    setsockopt(bufferevent_getfd(pc->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pc->done = false;
    struct timeval tv = {timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000};
    evtimer_add(pc->deadline_ev, &tv);
    bufferevent_enable(pc->bev, EV_READ | EV_WRITE);
    p->n.requests++;
    return 0;
}

/* ---- the listener ---- */

peer *peer_new(struct event_base *base, const char *addr, peer_message_fn on_message, void *ctx,
               char *err, size_t errlen)
{
    char host[CONFIG_ADDR_MAX];
    int port;
    if (config_split_addr(addr, host, sizeof host, &port) != 0) {
        peer_set_err(err, errlen, "peer address '%s' is not HOST:PORT", addr);
        return NULL;
    }
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        peer_set_err(err, errlen, "out of memory");
        return NULL;
    }
    p->base = base;
    p->on_message = on_message;
    p->ctx = ctx;
    p->reap_ev = event_new(base, -1, 0, on_reap, p);
    p->relisten_ev = evtimer_new(base, on_relisten, p);
    p->flush_ev = event_new(base, -1, 0, on_flush, p);
    if (!p->reap_ev || !p->relisten_ev || !p->flush_ev) {
        peer_set_err(err, errlen, "out of memory");
        goto fail;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        peer_set_err(err, errlen, "cannot resolve peer host '%s': %s", host, gai_strerror(rc));
        goto fail;
    }
    p->listener = evconnlistener_new_bind(
        base, on_accept, p, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
        ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (!p->listener) {
        peer_set_err(err, errlen, "cannot listen on peer address %s (tcp): %s", addr,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        goto fail;
    }
    evconnlistener_set_error_cb(p->listener, on_accept_error);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(p->listener), (struct sockaddr *)&ss, &len) != 0) {
        peer_set_err(err, errlen, "getsockname on the peer listener: %s", strerror(errno));
        goto fail;
    }
    peer_format_addr((struct sockaddr *)&ss, p->addr, sizeof p->addr);
    p->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return p;
fail:
    peer_free(p);
    return NULL;
}

void peer_free(peer *p)
{
    if (!p)
        return;
    /* No callbacks: their owner is going away. conn_free leaves the
     * closing list alone, and every closing connection is in conns. */
    while (p->conns)
        conn_free(p->conns);
    p->closing = NULL;
    if (p->listener)
        evconnlistener_free(p->listener);
    if (p->reap_ev)
        event_free(p->reap_ev);
    if (p->relisten_ev)
        event_free(p->relisten_ev);
    if (p->flush_ev)
        event_free(p->flush_ev);
    peer_arena_release(&p->arena);
    free(p);
}

const char *peer_bound_addr(const peer *p)
{
    return p->addr;
}

int peer_bound_port(const peer *p)
{
    return p->port;
}

void peer_get_stats(const peer *p, peer_stats *out)
{
    *out = p->n;
}
