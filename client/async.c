/* async: the asynchronous libringkv client (ringkv_async.h).
 *
 * One bufferevent per connection on the caller's event_base. Requests are
 * encoded into one reused msgpack sbuffer and copied to the bufferevent's
 * output. Each request in flight is a small record in a ring indexed by id:
 * ids are consecutive per connection, so a reply's slot is its id's offset
 * from the oldest one, and nothing is allocated per request once the ring has
 * grown to the pipeline depth. All requests share one timeout, so deadlines
 * grow with ids and one timer per connection, set for the oldest request,
 * covers them all.
 */
#include "ringkv_async.h"
#include "wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define ASYNC_DEFAULT_CONNECT_MS 2000
#define ASYNC_DEFAULT_REQUEST_MS 5000
#define ASYNC_DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
/* As in client.c: the largest reply a node can send, and the largest request
 * a 4-byte frame length can describe. */
#define ASYNC_MAX_REPLY   ((size_t)513 << 20)
#define ASYNC_MAX_REQUEST ((size_t)UINT32_MAX - 64)
/* Room for the msgpack around a key and value: array, id, op, two bin
 * headers, ttl. */
#define ASYNC_FRAME_OVERHEAD 48
#define ASYNC_RING_MIN       64
/* The sbuffer is released after a request bigger than this, so one large
 * value does not pin its memory for the life of the connection. */
#define ASYNC_KEEP_BYTES ((size_t)4 << 20)

typedef struct async_slot {
    rkv_async_cb cb;
    void *arg;
    int64_t deadline_ms;
    uint8_t op;
    uint8_t done; /* its callback has run; a late reply is dropped */
} async_slot;

enum async_state { ASYNC_CONNECTING, ASYNC_OPEN, ASYNC_CLOSED };

struct rkv_async {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer;
    char *name; /* the address as the caller wrote it, for messages */
    enum async_state state;
    int connect_ms;
    int request_ms;
    size_t max_output;
    int consistency; /* rkv_consistency sent with GET/PUT/DEL; -1 = node default */
    int64_t connect_deadline;
    int timer_armed;
    int64_t timer_at;

    /* Requests with ids [head_id, next_id) live in ring[head..] (mod cap,
     * a power of two). The oldest one is never done: done slots at the head
     * are popped at once. */
    async_slot *ring;
    size_t cap, head;
    uint64_t head_id, next_id;
    size_t npending; /* slots whose callback has not run */

    int in_cb;          /* user callbacks running for this connection */
    int free_requested; /* rkv_async_free was called from one of them */
    int freeing;

    rkv_async_close_cb close_cb;
    void *close_arg;

    msgpack_sbuffer sb; /* the request being encoded */
    msgpack_zone zone;  /* scratch for decoding a reply */
    char errstr[512];
    char closed_why[400]; /* why the connection ended */
    char reply_err[512];  /* a reply's message, for the callback */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rkv_status refuse(rkv_async *ac, rkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static rkv_status refuse(rkv_async *ac, rkv_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ac->errstr, sizeof ac->errstr, fmt, ap);
    va_end(ap);
    return st;
}

static size_t ring_count(const rkv_async *ac)
{
    return (size_t)(ac->next_id - ac->head_id);
}

static async_slot *ring_slot(rkv_async *ac, uint64_t id)
{
    return &ac->ring[(ac->head + (size_t)(id - ac->head_id)) & (ac->cap - 1)];
}

/* Makes room for one more slot. The ring only grows: a connection keeps the
 * capacity of its deepest pipeline. */
static int ring_reserve(rkv_async *ac)
{
    size_t n = ring_count(ac);
    if (n < ac->cap)
        return 0;
    size_t cap = ac->cap ? ac->cap * 2 : ASYNC_RING_MIN;
    async_slot *r = malloc(cap * sizeof *r);
    if (!r)
        return -1;
    for (size_t i = 0; i < n; i++)
        r[i] = ac->ring[(ac->head + i) & (ac->cap - 1)];
    free(ac->ring);
    ac->ring = r;
    ac->cap = cap;
    ac->head = 0;
    return 0;
}

static void ring_pop(rkv_async *ac)
{
    ac->head = (ac->head + 1) & (ac->cap - 1);
    ac->head_id++;
}

static void pop_done(rkv_async *ac)
{
    while (ring_count(ac) && ac->ring[ac->head].done)
        ring_pop(ac);
}

static void run_cb(rkv_async *ac, rkv_async_cb cb, void *arg, const rkv_async_reply *r)
{
    if (!cb)
        return;
    ac->in_cb++;
    cb(ac, r, arg);
    ac->in_cb--;
}

/* Completes the oldest request with an error, whatever its state. */
static void fail_head(rkv_async *ac, rkv_status st, const char *msg)
{
    async_slot s = ac->ring[ac->head];
    uint64_t id = ac->head_id;
    ring_pop(ac); /* first: the callback may make requests */
    if (s.done)
        return;
    ac->npending--;
    rkv_async_reply r = {.status = st, .id = id, .errstr = msg};
    run_cb(ac, s.cb, s.arg, &r);
}

static void fail_all(rkv_async *ac, rkv_status st, const char *msg)
{
    while (ring_count(ac))
        fail_head(ac, st, msg);
}

static void arm_timer(rkv_async *ac, int64_t at)
{
    if (ac->timer_armed && ac->timer_at <= at)
        return;
    int64_t left = at - now_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                         .tv_usec = (suseconds_t)(left % 1000) * 1000};
    if (event_add(ac->timer, &tv) == 0) {
        ac->timer_armed = 1;
        ac->timer_at = at;
    }
}

/* The connection has ended on its own: fail what is pending, then tell the
 * owner. The bufferevent stays until rkv_async_free. */
static void conn_fail(rkv_async *ac, rkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_fail(rkv_async *ac, rkv_status st, const char *fmt, ...)
{
    if (ac->state == ASYNC_CLOSED)
        return;
    ac->state = ASYNC_CLOSED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ac->closed_why, sizeof ac->closed_why, fmt, ap);
    va_end(ap);
    bufferevent_disable(ac->bev, EV_READ | EV_WRITE);
    fail_all(ac, st, ac->closed_why);
    if (ac->close_cb && !ac->free_requested) {
        ac->in_cb++;
        ac->close_cb(ac, st, ac->closed_why, ac->close_arg);
        ac->in_cb--;
    }
    snprintf(ac->errstr, sizeof ac->errstr, "%s", ac->closed_why);
}

static void do_free(rkv_async *ac)
{
    ac->freeing = 1;
    ac->state = ASYNC_CLOSED;
    if (ac->bev)
        bufferevent_disable(ac->bev, EV_READ | EV_WRITE);
    char why[300];
    snprintf(why, sizeof why, "the connection to %s was freed before the reply came",
             ac->name ? ac->name : "the node");
    if (ac->ring)
        fail_all(ac, RKV_ERR_IO, why);
    if (ac->timer)
        event_free(ac->timer);
    if (ac->bev)
        bufferevent_free(ac->bev);
    msgpack_sbuffer_destroy(&ac->sb);
    msgpack_zone_destroy(&ac->zone);
    free(ac->ring);
    free(ac->name);
    free(ac);
}

/* Ends every libevent callback: carries out a free asked for meanwhile. */
static void finish(rkv_async *ac)
{
    if (ac->free_requested && ac->in_cb == 0 && !ac->freeing)
        do_free(ac);
}

static rkv_status reply_status(wire_status st)
{
    switch (st) {
    case WIRE_OK:
        return RKV_OK;
    case WIRE_NOT_FOUND:
        return RKV_NOT_FOUND;
    case WIRE_ERR_BAD_REQUEST:
    case WIRE_ERR_TOO_LARGE:
    case WIRE_ERR_UNAVAILABLE:
    case WIRE_ERR_TIMEOUT:
    case WIRE_ERR_INTERNAL:
        return (rkv_status)st;
    }
    return RKV_ERR_PROTOCOL;
}

_Static_assert(RKV_ERR_INTERNAL == (int)WIRE_ERR_INTERNAL &&
                   RKV_ERR_BAD_REQUEST == (int)WIRE_ERR_BAD_REQUEST,
               "rkv_status and wire_status share the numbers 0..6");

static void handle_reply(rkv_async *ac, const uint8_t *body, size_t len)
{
    wire_response resp;
    char err[200];
    msgpack_zone_clear(&ac->zone);
    if (wire_decode_response(body, len, &ac->zone, &resp, err, sizeof err) < 0) {
        conn_fail(ac, RKV_ERR_PROTOCOL, "bad reply from %s: %s", ac->name, err);
        return;
    }
    rkv_status st = reply_status(resp.status);
    /* Id 0 is the node refusing the connection itself (max_clients, a frame
     * over its limit) just before it closes it; ours start at 1. */
    if (resp.id == 0 && resp.status != WIRE_OK) {
        conn_fail(ac, st, "node %s refused the connection: %.*s", ac->name, (int)resp.message.len,
                  resp.message.len ? (const char *)resp.message.ptr : "");
        return;
    }
    /* Out of the window, or done: a late reply to a request that timed out. */
    if (resp.id < ac->head_id || resp.id >= ac->next_id)
        return;
    async_slot *s = ring_slot(ac, resp.id);
    if (s->done)
        return;
    rkv_async_reply r = {.status = st, .id = resp.id, .errstr = ""};
    if (st == RKV_OK && s->op == WIRE_OP_GET) {
        if (resp.has_value) {
            r.value = resp.value.len ? resp.value.ptr : (const void *)"";
            r.value_len = resp.value.len;
        } else {
            r.status = RKV_ERR_PROTOCOL;
            r.errstr = "the node answered a GET without a value";
        }
    } else if (st == RKV_ERR_PROTOCOL) {
        snprintf(ac->reply_err, sizeof ac->reply_err, "node %s answered with unknown status %d",
                 ac->name, (int)resp.status);
        r.errstr = ac->reply_err;
    } else if (st != RKV_OK && st != RKV_NOT_FOUND) {
        if (resp.message.len)
            snprintf(ac->reply_err, sizeof ac->reply_err, "node %s: %.*s", ac->name,
                     (int)resp.message.len, (const char *)resp.message.ptr);
        else
            snprintf(ac->reply_err, sizeof ac->reply_err, "node %s answered %s", ac->name,
                     rkv_status_name(st));
        r.errstr = ac->reply_err;
    }
    rkv_async_cb cb = s->cb; /* the callback may grow the ring and move s */
    void *arg = s->arg;
    s->done = 1;
    ac->npending--;
    run_cb(ac, cb, arg, &r);
    pop_done(ac);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    rkv_async *ac = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (ac->state == ASYNC_OPEN && !ac->free_requested) {
        size_t avail = evbuffer_get_length(in);
        if (avail < WIRE_HEADER_BYTES)
            break;
        uint8_t hdr[WIRE_HEADER_BYTES];
        evbuffer_copyout(in, hdr, sizeof hdr);
        size_t flen = wire_frame_len(hdr);
        if (flen > ASYNC_MAX_REPLY) {
            conn_fail(ac, RKV_ERR_PROTOCOL,
                      "reply from %s claims %zu bytes, over the limit of %zu (is that a ringkv "
                      "client port?)",
                      ac->name, flen, ASYNC_MAX_REPLY);
            break;
        }
        if (avail < WIRE_HEADER_BYTES + flen)
            break;
        uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)(WIRE_HEADER_BYTES + flen));
        if (!frame) {
            conn_fail(ac, RKV_ERR_IO, "out of memory for a reply of %zu bytes from %s", flen,
                      ac->name);
            break;
        }
        handle_reply(ac, frame + WIRE_HEADER_BYTES, flen);
        evbuffer_drain(in, WIRE_HEADER_BYTES + flen);
    }
    finish(ac);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    rkv_async *ac = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (ac->state == ASYNC_CONNECTING)
            ac->state = ASYNC_OPEN;
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        if (ac->state == ASYNC_CONNECTING)
            conn_fail(ac, RKV_ERR_IO, "cannot connect to %s: %s", ac->name,
                      evutil_socket_error_to_string(e));
        else
            conn_fail(ac, RKV_ERR_IO, "connection to %s lost: %s", ac->name,
                      evutil_socket_error_to_string(e));
    } else if (what & BEV_EVENT_EOF) {
        conn_fail(ac, RKV_ERR_IO, "connection to %s closed by the node", ac->name);
    }
    finish(ac);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rkv_async *ac = arg;
    ac->timer_armed = 0;
    int64_t now = now_ms();
    if (ac->state == ASYNC_CONNECTING && now >= ac->connect_deadline) {
        conn_fail(ac, RKV_ERR_IO, "cannot connect to %s: timed out after %d ms", ac->name,
                  ac->connect_ms);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "no reply from %s within %d ms", ac->name, ac->request_ms);
        while (ring_count(ac) && !ac->free_requested && ac->state != ASYNC_CLOSED) {
            if (!ac->ring[ac->head].done && ac->ring[ac->head].deadline_ms > now)
                break;
            fail_head(ac, RKV_ERR_TIMEOUT, msg);
        }
        if (ac->state == ASYNC_CONNECTING)
            arm_timer(ac, ac->connect_deadline);
        if (ac->state != ASYNC_CLOSED && !ac->free_requested && ring_count(ac))
            arm_timer(ac, ac->ring[ac->head].deadline_ms);
    }
    finish(ac);
}

/* ---- public API ---- */

/* Splits "host:port" or "[v6]:port" into host and port. */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *h = addr, *colon;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(addr, ':');
        if (!colon || strchr(colon + 1, ':'))
            return -1;
        hl = (size_t)(colon - addr);
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen ||
        strspn(colon + 1, "0123456789") != pl || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

rkv_async *rkv_async_connect(struct event_base *base, const char *addr,
                             const rkv_async_options *opts, char *errbuf, size_t errlen)
{
    char err[300] = "out of memory";
    char host[256], port[8];
    struct addrinfo *res = NULL;
    rkv_async *ac = NULL;

    if (!base || !addr) {
        snprintf(err, sizeof err, "rkv_async_connect needs an event base and an address");
        goto fail;
    }
    if (split_addr(addr, host, sizeof host, port, sizeof port) < 0) {
        snprintf(err, sizeof err,
                 "bad address '%s': expected host:port or [ipv6]:port with a port from 1 to 65535",
                 addr);
        goto fail;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, sizeof err, "cannot resolve '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        goto fail;
    }

    ac = calloc(1, sizeof *ac);
    if (!ac)
        goto fail;
    msgpack_sbuffer_init(&ac->sb);
    if (!msgpack_zone_init(&ac->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        free(ac);
        ac = NULL;
        goto fail;
    }
    ac->base = base;
    ac->head_id = ac->next_id = 1;
    ac->connect_ms =
        opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : ASYNC_DEFAULT_CONNECT_MS;
    ac->request_ms =
        opts && opts->request_timeout_ms > 0 ? opts->request_timeout_ms : ASYNC_DEFAULT_REQUEST_MS;
    ac->consistency = RKV_CONSISTENCY_DEFAULT;
    ac->max_output =
        opts && opts->max_output_bytes > 0 ? opts->max_output_bytes : ASYNC_DEFAULT_MAX_OUTPUT;
    ac->name = strdup(addr);
    ac->timer = event_new(base, -1, 0, on_timer, ac);
    if (!ac->name || !ac->timer || ring_reserve(ac) < 0)
        goto fail;

    /* The first address that does not fail at once; a refusal that comes
     * later arrives as an event and fails the connection. */
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai && !ac->bev; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        /* Requests are small and latency matters more than packet count:
         * no Nagle. Keepalive finds a peer that vanished while idle. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            close(fd);
            goto fail;
        }
        bufferevent_setcb(bev, on_read, NULL, on_event, ac);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
            last_errno = errno;
            bufferevent_free(bev);
            continue;
        }
        ac->bev = bev;
    }
    if (!ac->bev) {
        snprintf(err, sizeof err, "cannot connect to %s: %s", addr,
                 last_errno ? strerror(last_errno) : "no usable address");
        goto fail;
    }
    freeaddrinfo(res);
    ac->state = ASYNC_CONNECTING;
    ac->connect_deadline = now_ms() + ac->connect_ms;
    arm_timer(ac, ac->connect_deadline);
    return ac;

fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", err);
    if (res)
        freeaddrinfo(res);
    if (ac)
        do_free(ac);
    return NULL;
}

void rkv_async_set_close_cb(rkv_async *ac, rkv_async_close_cb cb, void *arg)
{
    if (!ac)
        return;
    ac->close_cb = cb;
    ac->close_arg = arg;
}

static rkv_status issue(rkv_async *ac, wire_request *req, rkv_async_cb cb, void *arg)
{
    if (ac->freeing || ac->free_requested)
        return refuse(ac, RKV_ERR_IO, "the connection to %s is being freed", ac->name);
    if (ac->state == ASYNC_CLOSED)
        return refuse(ac, RKV_ERR_IO, "the connection has ended: %s", ac->closed_why);
    size_t klen = req->key.len, vlen = req->value.len;
    if (klen > ASYNC_MAX_REQUEST || vlen > ASYNC_MAX_REQUEST - klen)
        return refuse(ac, RKV_ERR_TOO_LARGE,
                      "key and value are %zu bytes, over the protocol's limit of %zu", klen + vlen,
                      ASYNC_MAX_REQUEST);
    struct evbuffer *out = bufferevent_get_output(ac->bev);
    size_t queued = evbuffer_get_length(out);
    /* One request bigger than the limit still goes when nothing is queued,
     * or it could never be sent. */
    if (queued && queued + klen + vlen + ASYNC_FRAME_OVERHEAD > ac->max_output)
        return refuse(ac, RKV_ERR_UNAVAILABLE,
                      "%zu request bytes already wait to be sent to %s (max_output_bytes %zu); "
                      "retry when replies have come back",
                      queued, ac->name, ac->max_output);
    if (ring_reserve(ac) < 0)
        return refuse(ac, RKV_ERR_INTERNAL, "out of memory for a request record");

    req->id = ac->next_id;
    msgpack_sbuffer_clear(&ac->sb);
    wire_encode_request(&ac->sb, req);
    if (ac->sb.size < WIRE_HEADER_BYTES + klen + vlen ||
        bufferevent_write(ac->bev, ac->sb.data, ac->sb.size) < 0)
        return refuse(ac, RKV_ERR_INTERNAL, "out of memory for a request of %zu bytes",
                      klen + vlen);
    if (ac->sb.alloc > ASYNC_KEEP_BYTES) {
        msgpack_sbuffer_destroy(&ac->sb);
        msgpack_sbuffer_init(&ac->sb);
    }

    int64_t deadline = now_ms() + ac->request_ms;
    async_slot *s = ring_slot(ac, ac->next_id);
    *s = (async_slot){.cb = cb, .arg = arg, .deadline_ms = deadline, .op = (uint8_t)req->op};
    ac->next_id++;
    ac->npending++;
    arm_timer(ac, deadline);
    return RKV_OK;
}

static rkv_status check_key(rkv_async *ac, const void *key, size_t klen)
{
    if (!key || klen == 0)
        return refuse(ac, RKV_ERR_ARG, "a key must be at least 1 byte long");
    return RKV_OK;
}

rkv_status rkv_async_get(rkv_async *ac, const void *key, size_t klen, rkv_async_cb cb, void *arg)
{
    if (!ac)
        return RKV_ERR_ARG;
    rkv_status st = check_key(ac, key, klen);
    if (st != RKV_OK)
        return st;
    wire_request req = {.op = WIRE_OP_GET, .consistency = ac->consistency, .key = {key, klen}};
    return issue(ac, &req, cb, arg);
}

rkv_status rkv_async_put(rkv_async *ac, const void *key, size_t klen, const void *value,
                         size_t vlen, uint64_t ttl_ms, rkv_async_cb cb, void *arg)
{
    if (!ac)
        return RKV_ERR_ARG;
    rkv_status st = check_key(ac, key, klen);
    if (st != RKV_OK)
        return st;
    if (!value && vlen)
        return refuse(ac, RKV_ERR_ARG, "value is NULL but its length is %zu", vlen);
    wire_request req = {.op = WIRE_OP_PUT, .consistency = ac->consistency,
                        .key = {key, klen},
                        .value = {value ? value : (const void *)"", vlen},
                        .ttl_ms = ttl_ms};
    return issue(ac, &req, cb, arg);
}

rkv_status rkv_async_del(rkv_async *ac, const void *key, size_t klen, rkv_async_cb cb, void *arg)
{
    if (!ac)
        return RKV_ERR_ARG;
    rkv_status st = check_key(ac, key, klen);
    if (st != RKV_OK)
        return st;
    wire_request req = {.op = WIRE_OP_DEL, .consistency = ac->consistency, .key = {key, klen}};
    return issue(ac, &req, cb, arg);
}

rkv_status rkv_async_set_consistency(rkv_async *ac, rkv_consistency level)
{
    if (!ac || level < RKV_CONSISTENCY_DEFAULT || level > RKV_CONSISTENCY_ALL)
        return RKV_ERR_ARG;
    ac->consistency = (int)level;
    return RKV_OK;
}

rkv_status rkv_async_ping(rkv_async *ac, rkv_async_cb cb, void *arg)
{
    if (!ac)
        return RKV_ERR_ARG;
    wire_request req = {.op = WIRE_OP_PING};
    return issue(ac, &req, cb, arg);
}

size_t rkv_async_pending(const rkv_async *ac)
{
    return ac ? ac->npending : 0;
}

size_t rkv_async_queued_bytes(const rkv_async *ac)
{
    return ac && ac->bev ? evbuffer_get_length(bufferevent_get_output(ac->bev)) : 0;
}

const char *rkv_async_errstr(const rkv_async *ac)
{
    return ac ? ac->errstr : "no connection";
}

void rkv_async_free(rkv_async *ac)
{
    if (!ac || ac->freeing)
        return;
    if (ac->in_cb) {
        ac->free_requested = 1;
        return;
    }
    do_free(ac);
}
