/* conn: one client connection of ringkvd; see conn.h.
 *
 * Limits a client cannot grow past: a frame over server->max_frame is refused
 * and the connection closed after the error reply; reading pauses while more
 * than half of max_output_buffer waits for the client and resumes when a
 * quarter is left (backpressure, as in libevent's le-proxy sample); past the
 * whole limit, or with no progress for idle_timeout, the client is dropped.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "peer.h"
#include "server.h"

/* Bytes asked of one read() of a client socket: small to start with, so the
 * input chain libevent allocates for it (this plus its ~64-byte header,
 * rounded up to 1 KiB) stays small for small requests; it follows what the
 * connection sends (peer_read_size_next), up to READ_MAX, for pipelines and
 * large values. */
#define READ_MIN 896
#define READ_MAX (64 * 1024)

/* Replies ready while an earlier one of the same connection still waits
 * (a quorum read's peer) are held, so that a pipeline's replies leave in
 * one write rather than in one per pass that completes some of them: under
 * quorum GETs -P16 a connection took 1.8 writes per pipeline, and its
 * client as many reads. Held for at most HOLD_US, and while they are fewer
 * than HOLD_MAX_BYTES. */
#define HOLD_US 1000
#define HOLD_MAX_BYTES (64 * 1024)

/* Room a released reply slot keeps for its next reply. */
#define SLOT_KEEP_BYTES (16 * 1024)

/* Reading is done here rather than by the bufferevent: libevent's socket
 * read asks the kernel how much is readable (ioctl FIONREAD) before every
 * read, one more syscall per request; a read event that reads straight
 * into the bufferevent's input buffer (peer_read_direct, which the peer
 * port's inbound connections use too) saves it. Writing, and write errors
 * and timeouts, stay with the bufferevent. */
static void read_enable(struct conn *c)
{
    uint64_t ms = c->srv->cfg->idle_timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(c->read_ev, ms ? &tv : NULL); /* EV_PERSIST: each read restarts the timer */
}

static void read_disable(struct conn *c) { event_del(c->read_ev); }

/* Nothing holds c's reading: its output is not over the limit, its slots
 * not too many, it is not closing, and neither the node (stopping) nor the
 * replication layer (conn_pause_all) holds every connection. */
static bool may_read(const struct conn *c)
{
    return !c->read_paused && !c->slots_paused && !c->closing && !c->close_when_flushed &&
           !c->srv->stopping && !c->srv->clients_paused;
}

static void detached_free(struct conn *c);

void conn_drop(struct conn *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    c->srv->n.connections_dropped++;
    conn_close(c, why);
}

size_t conn_output_len(const struct conn *c)
{
    return evbuffer_get_length(c->pending) +
           evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void handle_frame(struct conn *c, const uint8_t *body, size_t len)
{
    server *s = c->srv;
    wire_request req;
    uint64_t id = 0;
    char err[256];

    msgpack_zone_clear(&s->zone);
    if (wire_decode_request(body, len, &s->zone, &req, &id, err, sizeof err) != 0) {
        log_debug("client %s: bad request: %s", c->peer, err);
        conn_reply_status(c, id, WIRE_ERR_BAD_REQUEST, err);
        return;
    }
    server_handle_request(s, c, &req);
}

bool conn_output_check(struct conn *c)
{
    size_t out = conn_output_len(c);
    uint64_t limit = c->srv->cfg->max_output_buffer;
    if (out > limit) {
        conn_drop(c, "output buffer of %zu bytes is over max_output_buffer (%llu)", out,
             (unsigned long long)limit);
        return true;
    }
    if (out > limit / 2) {
        c->read_paused = true;
        read_disable(c);
        return true;
    }
    return c->slots_paused;
}

void conn_close_after_reply(struct conn *c)
{
    c->close_when_flushed = true;
    read_disable(c);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* The native protocol: 4-byte length + msgpack frames (proto/README.md). */
static void native_on_input(struct conn *c)
{
    server *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    while (!c->closing && !c->close_when_flushed && !s->stopping) {
        size_t avail = evbuffer_get_length(in);
        if (avail < WIRE_HEADER_BYTES)
            break;
        uint8_t hdr[WIRE_HEADER_BYTES];
        evbuffer_copyout(in, hdr, sizeof hdr);
        uint64_t flen = wire_frame_len(hdr);
        if (flen > s->max_frame) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "frame of %llu bytes is over the limit of %llu bytes; closing",
                     (unsigned long long)flen, (unsigned long long)s->max_frame);
            log_warn("client %s: %s", c->peer, msg);
            conn_reply_status(c, 0, WIRE_ERR_TOO_LARGE, msg);
            s->n.connections_dropped++;
            conn_close_after_reply(c);
            break;
        }
        if (avail < WIRE_HEADER_BYTES + flen)
            break; /* the rest of the frame has not arrived yet */
        uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)(WIRE_HEADER_BYTES + flen));
        if (!frame) {
            conn_drop(c, "out of memory reading a %llu-byte frame", (unsigned long long)flen);
            break;
        }
        s->n.bytes_in += WIRE_HEADER_BYTES + flen;
        handle_frame(c, frame + WIRE_HEADER_BYTES, flen);
        evbuffer_drain(in, WIRE_HEADER_BYTES + flen);
        if (conn_output_check(c))
            break;
    }
}

static void native_encode_error(server *s, struct evbuffer *out, uint64_t id, wire_status st,
                                const char *msg)
{
    msgpack_sbuffer_clear(&s->sb);
    wire_encode_status(&s->sb, id, st, msg);
    evbuffer_add(out, s->sb.data, s->sb.size);
}

const conn_proto conn_native_proto = {
    .name = "client",
    .on_input = native_on_input,
    .encode_error = native_encode_error,
};

/* Without pipelining, each connection of a pass brings one command, and
 * its lookup in the record cache waited on two misses in the CPU's cache
 * (the slot, then the entry): 13% of a node serving GETs of 1 KiB values
 * to 50 clients. A connection read is queued instead, its first key's slot
 * asked for, and the queue runs once the pass's socket events are all
 * handled, asking for the next connection's entry before each one runs: a
 * software pipeline across connections, as the RESP loop has within one. */
static void ready_add(struct conn *c, const char *key, size_t klen)
{
    server *s = c->srv;
    c->ready_token = store_token(key, klen);
    store_prefetch_token(s->st, c->ready_token, false);
    if (c->in_ready)
        return;
    c->in_ready = true;
    c->ready_next = NULL;
    if (s->ready_tail)
        s->ready_tail->ready_next = c;
    else
        s->ready_head = c;
    s->ready_tail = c;
    event_active(s->ready_ev, 0, 0);
}

static void ready_remove(struct conn *c)
{
    server *s = c->srv;
    struct conn **pp = &s->ready_head, *prev = NULL;
    while (*pp && *pp != c)
        prev = *pp, pp = &(*pp)->ready_next;
    if (*pp) {
        *pp = c->ready_next;
        if (s->ready_tail == c)
            s->ready_tail = prev;
    }
    c->in_ready = false;
}

void conn_run_ready(server *s)
{
    struct conn *c;
    while ((c = s->ready_head) != NULL) {
        s->ready_head = c->ready_next;
        if (!s->ready_head)
            s->ready_tail = NULL;
        c->in_ready = false;
        if (s->ready_head)
            store_prefetch_token(s->st, s->ready_head->ready_token, true);
        if (!c->closing)
            c->proto->on_input(c);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_drop(c, "idle for %llu s (idle_timeout)",
                  (unsigned long long)(c->srv->cfg->idle_timeout_ms / 1000));
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    ssize_t n = peer_read_direct(in, fd, c->read_size);
    if (n <= 0) {
        if (n == 0)
            conn_close(c, NULL);
        else if (errno == ENOMEM)
            conn_drop(c, "out of memory reading a request");
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c, strerror(errno));
        else if (evbuffer_get_length(in) > 0)
            c->proto->on_input(c); /* woken by slots_pump: requests wait */
        return;
    }
    c->read_size = peer_read_size_next(c->read_size, (size_t)n, READ_MIN, READ_MAX);
    const char *key;
    size_t klen;
    if (c->proto->first_key && c->proto->first_key(c, &key, &klen)) {
        ready_add(c, key, klen);
        return;
    }
    c->proto->on_input(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->closing)
        return;
    if (c->close_when_flushed) {
        /* Replies still held for the pass end count too: libevent also calls
         * this once on a new socket's first writable event, output empty. */
        if (!c->dirty && !c->slot_head && conn_output_len(c) == 0)
            conn_close(c, NULL);
        return;
    }
    if (c->read_paused && !c->srv->stopping) {
        c->read_paused = false;
        if (may_read(c))
            read_enable(c);
        c->proto->on_input(c); /* requests may already be waiting in the input */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    unsigned long long idle_s = (unsigned long long)(c->srv->cfg->idle_timeout_ms / 1000);
    if (what & BEV_EVENT_EOF)
        conn_close(c, NULL);
    else if (what & BEV_EVENT_ERROR)
        conn_close(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else if (what & BEV_EVENT_TIMEOUT) /* the write timeout; on_read has the idle one */
        conn_drop(c, "not reading its replies for %llu s (idle_timeout)", idle_s);
}

/* The hold's bound: the replies held go now, or at the pass end when one
 * is coming (the connection has replies of this pass, maybe not yet
 * committed). */
static void on_hold(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    c->holding = false;
    c->hold_over = true;
    if (!c->dirty && !c->closing)
        conn_release(c);
}

struct conn *conn_new(server *s, evutil_socket_t fd, const char *peer, const conn_proto *proto)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->srv = s;
    c->proto = proto;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->pending = evbuffer_new();
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->pending || !c->bev)
        goto fail;
    fd = -1; /* owned by the bufferevent now */
    c->read_ev = event_new(s->base, bufferevent_getfd(c->bev), EV_READ | EV_PERSIST, on_read, c);
    c->hold_ev = evtimer_new(s->base, on_hold, c);
    if (!c->read_ev || !c->hold_ev)
        goto fail;

    int one = 1;
    setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->write_direct = true;
    c->read_size = READ_MIN;
    bufferevent_setcb(c->bev, NULL, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, s->cfg->max_output_buffer / 4, 0);
    if (s->cfg->idle_timeout_ms) {
        struct timeval tv = {.tv_sec = (time_t)(s->cfg->idle_timeout_ms / 1000),
                             .tv_usec = (suseconds_t)(s->cfg->idle_timeout_ms % 1000) * 1000};
        bufferevent_set_timeouts(c->bev, NULL, &tv);
    }
    if (proto->on_open && proto->on_open(c) != 0)
        goto fail;
    bufferevent_enable(c->bev, EV_WRITE);
    if (may_read(c))
        read_enable(c);

    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;

fail:
    if (c) {
        if (c->read_ev)
            event_free(c->read_ev);
        if (c->hold_ev)
            event_free(c->hold_ev);
        if (c->bev)
            bufferevent_free(c->bev);
        if (c->pending)
            evbuffer_free(c->pending);
        free(c);
    }
    if (fd >= 0)
        evutil_closesocket(fd);
    return NULL;
}

void conn_close(struct conn *c, const char *why)
{
    if (c->closing)
        return;
    server *s = c->srv;
    c->closing = true;
    if (why)
        log_warn("client %s dropped: %s", c->peer, why);
    else
        log_debug("client %s closed", c->peer);
    read_disable(c);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->closing_next = s->closing;
    s->closing = c;
    server_schedule_pass_end(s);
}

void conn_free(struct conn *c)
{
    server *s = c->srv;
    if (c->in_ready)
        ready_remove(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->proto->on_free)
        c->proto->on_free(c);
    event_free(c->read_ev);
    event_free(c->hold_ev);
    bufferevent_free(c->bev);
    evbuffer_free(c->pending);
    free(c->marks);
    if (c->nreserved > 0) {
        /* Requests still in flight hold slots: keep the struct (socket and
         * buffers are gone) until the last completes or is cancelled. */
        c->detached = true;
        return;
    }
    detached_free(c);
}

void conn_reply_raw(struct conn *c, uint64_t id, const void *head, size_t headlen,
                    const void *tail, size_t taillen)
{
    size_t off = conn_reply_begin(c);
    conn_reply_add(c, head, headlen);
    conn_reply_add(c, tail, taillen);
    conn_reply_end(c, id, off);
}

/* Records that pending's bytes [off, off + len) depend on the uncommitted
 * batch. Returns false (and drops c) when out of memory. */
static bool add_mark(struct conn *c, size_t off, size_t len, uint64_t id)
{
    if (c->nmarks == c->capmarks) {
        size_t cap = c->capmarks ? c->capmarks * 2 : 16;
        conn_mark *m = realloc(c->marks, cap * sizeof *m);
        if (!m) {
            /* Without the mark a failed commit could not be reported: drop
             * the connection rather than risk acknowledging a lost write. */
            conn_drop(c, "out of memory");
            return false;
        }
        c->marks = m;
        c->capmarks = cap;
    }
    c->marks[c->nmarks++] = (conn_mark){.off = off, .len = len, .id = id};
    return true;
}

static void set_dirty(struct conn *c)
{
    server *s = c->srv;
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
    server_schedule_pass_end(s);
}

/* --- the reply FIFO --- */

/* Appends n bytes to sl's reply; false when out of memory. A slot's
 * bytes are its own buffer, kept for its next reply: an evbuffer there
 * took a new chain (a malloc and a free) for every reply held. */
static bool slot_add(conn_slot *sl, const void *p, size_t n)
{
    if (n > sl->cap - sl->len) {
        size_t cap = sl->cap ? sl->cap : 256;
        while (cap - sl->len < n)
            cap *= 2;
        uint8_t *d = realloc(sl->data, cap);
        if (!d)
            return false;
        sl->data = d;
        sl->cap = cap;
    }
    memcpy(sl->data + sl->len, p, n);
    sl->len += n;
    return true;
}

/* sl's reply becomes an error for its request, in c's protocol. */
static bool slot_encode_error(struct conn *c, conn_slot *sl, wire_status st, const char *msg)
{
    struct evbuffer *t = evbuffer_new();
    if (!t)
        return false;
    c->proto->encode_error(c->srv, t, sl->id, st, msg);
    size_t n = evbuffer_get_length(t);
    bool ok = slot_add(sl, evbuffer_pullup(t, -1), n);
    evbuffer_free(t);
    return ok;
}

static conn_slot *slot_get(struct conn *c)
{
    conn_slot *sl = c->slot_spare;
    if (sl) {
        c->slot_spare = sl->next;
        if (c->slot_spare) /* its link, read by the next pop */
            __builtin_prefetch(&c->slot_spare->next);
    } else {
        sl = calloc(1, sizeof *sl);
        if (!sl)
            return NULL;
    }
    sl->c = c;
    sl->next = NULL;
    sl->id = 0;
    sl->user = 0;
    sl->reserved = sl->done = sl->marked = false;
    return sl;
}

static void slot_put(struct conn *c, conn_slot *sl)
{
    sl->len = 0;
    if (sl->cap > SLOT_KEEP_BYTES) { /* a large reply's room goes with it */
        free(sl->data);
        sl->data = NULL;
        sl->cap = 0;
    }
    sl->next = c->slot_spare;
    c->slot_spare = sl;
}

static void slot_free_list(conn_slot *sl)
{
    while (sl) {
        conn_slot *next = sl->next;
        free(sl->data);
        free(sl);
        sl = next;
    }
}

/* Appends a new slot to c's FIFO; NULL when out of memory. */
static conn_slot *slot_push(struct conn *c)
{
    conn_slot *sl = slot_get(c);
    if (!sl)
        return NULL;
    if (c->slot_tail)
        c->slot_tail->next = sl;
    else
        c->slot_head = sl;
    c->slot_tail = sl;
    if (++c->nslots >= CONN_MAX_SLOTS && !c->slots_paused) {
        c->slots_paused = true;
        read_disable(c);
    }
    return sl;
}

/* Moves the done replies at the head of the FIFO to pending, in order. */
static void slots_pump(struct conn *c)
{
    conn_slot *sl;
    while ((sl = c->slot_head) && sl->done) {
        c->slot_head = sl->next;
        if (!c->slot_head)
            c->slot_tail = NULL;
        c->nslots--;
        size_t off = evbuffer_get_length(c->pending);
        size_t len = sl->len;
        if (len)
            evbuffer_add(c->pending, sl->data, len);
        if (sl->marked)
            add_mark(c, off, len, sl->id);
        slot_put(c, sl);
    }
    if (c->slots_paused && c->nslots < CONN_MAX_SLOTS / 2 && !c->closing) {
        c->slots_paused = false;
        if (may_read(c)) {
            read_enable(c);
            /* Requests may wait in the input already: on_read handles them
             * even when the socket has nothing new. */
            event_active(c->read_ev, EV_READ, 1);
        }
    }
}

/* The struct of a detached connection goes once no slot refers to it. */
static void detached_free(struct conn *c)
{
    slot_free_list(c->slot_head);
    slot_free_list(c->slot_spare);
    free(c);
}

conn_slot *conn_slot_reserve(struct conn *c, uint64_t id)
{
    conn_slot *sl = slot_push(c);
    if (!sl)
        return NULL;
    sl->reserved = true;
    sl->id = id;
    c->nreserved++;
    return sl;
}

/* A reserved slot that will get no reply: out of the FIFO. */
static void slot_unlink(struct conn *c, conn_slot *sl)
{
    conn_slot **pp = &c->slot_head, *prev = NULL;
    while (*pp && *pp != sl) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = sl->next;
    if (c->slot_tail == sl)
        c->slot_tail = prev;
    c->nslots--;
    c->nreserved--;
    slot_put(c, sl);
}

struct conn *conn_slot_resume(conn_slot *sl)
{
    struct conn *c = sl->c;
    if (c->detached || c->closing) {
        slot_unlink(c, sl);
        if (c->detached && c->nreserved == 0)
            detached_free(c);
        return NULL;
    }
    c->fill = sl;
    /* Nothing is waiting ahead of the head slot's reply: it can go to
     * pending at once (one evbuffer chain less per reply). */
    c->fill_direct = sl == c->slot_head;
    return c;
}

void conn_slot_cancel(conn_slot *sl, const char *why)
{
    struct conn *c = conn_slot_resume(sl);
    if (!c)
        return;
    size_t begin = conn_reply_begin(c);
    if (c->fill_direct)
        c->proto->encode_error(c->srv, c->pending, sl->id, WIRE_ERR_INTERNAL, why);
    else if (!slot_encode_error(c, sl, WIRE_ERR_INTERNAL, why))
        conn_drop(c, "out of memory"); /* the slot still completes, empty */
    c->srv->n.errors++;
    conn_reply_end(c, sl->id, begin);
}

/* The slot the reply being built goes to, or NULL: pending. */
static conn_slot *out_slot(const struct conn *c)
{
    return c->fill && !c->fill_direct ? c->fill : NULL;
}

static size_t out_len(const struct conn *c)
{
    const conn_slot *sl = out_slot(c);
    return sl ? sl->len : evbuffer_get_length(c->pending);
}

size_t conn_reply_begin(struct conn *c)
{
    if (!c->fill && c->slot_head) {
        /* An earlier reply is not done: hold this one back behind it. */
        c->fill = slot_push(c);
        c->fill_direct = false;
        if (!c->fill)
            conn_drop(c, "out of memory");
    }
    return out_len(c);
}

void conn_reply_add(struct conn *c, const void *p, size_t len)
{
    if (!len)
        return;
    conn_slot *sl = out_slot(c);
    if (sl ? !slot_add(sl, p, len) : evbuffer_add(c->pending, p, len) != 0)
        conn_drop(c, "out of memory");
}

/* Bytes [begin, end) of the reply buffer were just added: the reply is only
 * in RAM until the pass end releases it, and must be marked if it depends
 * on the uncommitted batch. */
void conn_reply_end(struct conn *c, uint64_t id, size_t begin)
{
    server *s = c->srv;
    size_t len = out_len(c) - begin;
    s->n.bytes_out += len;

    if (c->fill) {
        conn_slot *sl = c->fill;
        bool direct = c->fill_direct;
        c->fill = NULL;
        c->fill_direct = false;
        if (sl->reserved)
            c->nreserved--;
        else
            sl->id = id;
        sl->done = true;
        /* A direct reply is in pending already and marked there; its slot
         * leaves the FIFO empty. */
        sl->marked = !direct && store_batch_dirty(s->st);
        if (direct && store_batch_dirty(s->st) && !add_mark(c, begin, len, id))
            return;
        slots_pump(c);
    } else if (store_batch_dirty(s->st) && !add_mark(c, begin, len, id)) {
        return;
    }
    set_dirty(c);
}

/* The reply is at the end of its buffer: keep what came before it. */
void conn_reply_abort(struct conn *c, size_t begin)
{
    if (out_slot(c)) {
        c->fill->len = 0; /* a slot holds one reply */
        (void)begin;
        return;
    }
    struct evbuffer *nb = evbuffer_new();
    if (!nb) {
        conn_drop(c, "out of memory");
        return;
    }
    evbuffer_remove_buffer(c->pending, nb, begin);
    evbuffer_free(c->pending);
    c->pending = nb;
}

/* Appends s->sb (and an optional tail) as one reply. */
static void append_reply(struct conn *c, uint64_t id, const void *tail, size_t taillen)
{
    conn_reply_raw(c, id, c->srv->sb.data, c->srv->sb.size, tail, taillen);
}

void conn_reply_status(struct conn *c, uint64_t id, wire_status st, const char *msg)
{
    msgpack_sbuffer_clear(&c->srv->sb);
    wire_encode_status(&c->srv->sb, id, st, msg);
    if (st != WIRE_OK && st != WIRE_NOT_FOUND)
        c->srv->n.errors++;
    append_reply(c, id, NULL, 0);
}

void conn_reply_value(struct conn *c, uint64_t id, const void *value, size_t len)
{
    msgpack_sbuffer_clear(&c->srv->sb);
    wire_encode_value_head(&c->srv->sb, id, len);
    append_reply(c, id, value, len);
}

void conn_reply_stats(struct conn *c, uint64_t id, const wire_stat *stats, size_t n)
{
    msgpack_sbuffer_clear(&c->srv->sb);
    wire_encode_stats(&c->srv->sb, id, stats, n);
    append_reply(c, id, NULL, 0);
}

/* Held replies (behind a slot not yet done) that depended on the batch. */
static void fail_marked_slots(struct conn *c, wire_status st, const char *msg)
{
    for (conn_slot *sl = c->slot_head; sl; sl = sl->next) {
        if (!sl->done || !sl->marked)
            continue;
        sl->len = 0;
        if (!slot_encode_error(c, sl, st, msg))
            conn_drop(c, "out of memory"); /* nothing of it will be sent */
        c->srv->n.errors++;
        sl->marked = false;
    }
}

void conn_fail_marked(struct conn *c, wire_status st, const char *msg)
{
    fail_marked_slots(c, st, msg);
    if (c->nmarks == 0)
        return;
    server *s = c->srv;
    struct evbuffer *nb = evbuffer_new();
    if (!nb) {
        conn_drop(c, "out of memory");
        return;
    }
    size_t pos = 0;
    for (size_t i = 0; i < c->nmarks; i++) {
        const conn_mark *m = &c->marks[i];
        evbuffer_remove_buffer(c->pending, nb, m->off - pos);
        evbuffer_drain(c->pending, m->len);
        pos = m->off + m->len;
        c->proto->encode_error(s, nb, m->id, st, msg);
        s->n.errors++;
    }
    evbuffer_add_buffer(nb, c->pending);
    evbuffer_free(c->pending);
    c->pending = nb;
    c->nmarks = 0;
}

void conn_release(struct conn *c)
{
    c->nmarks = 0;
    c->dirty = false;
    for (conn_slot *sl = c->slot_head; sl; sl = sl->next)
        sl->marked = false; /* the batch they depended on is committed */
    if (c->closing) {
        evbuffer_drain(c->pending, evbuffer_get_length(c->pending));
        return;
    }
    size_t held = evbuffer_get_length(c->pending);
    if (c->slot_head && !c->hold_over && !c->close_when_flushed && held > 0 &&
        held < HOLD_MAX_BYTES) {
        /* An earlier reply still waits: hold these for it (see HOLD_US). */
        if (!c->holding) {
            struct timeval tv = {.tv_sec = 0, .tv_usec = HOLD_US};
            c->holding = true;
            evtimer_add(c->hold_ev, &tv);
        }
        return;
    }
    if (c->holding) {
        evtimer_del(c->hold_ev);
        c->holding = false;
    }
    c->hold_over = false;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* With nothing queued ahead, write to the socket here, as Redis does
     * before it sleeps: handing every reply to the bufferevent costs two
     * epoll_ctl calls (arm and disarm EPOLLOUT) and a loop iteration per
     * request. What the socket does not take, and any error, is left to the
     * bufferevent. Not while reading is paused: on_write resumes it. */
    if (c->write_direct && !c->read_paused && evbuffer_get_length(out) == 0 &&
        evbuffer_get_length(c->pending) > 0)
        (void)peer_send_buffer(c->pending, bufferevent_getfd(c->bev));
    evbuffer_add_buffer(out, c->pending);
    if (c->close_when_flushed && evbuffer_get_length(out) == 0 && !c->slot_head)
        conn_close(c, NULL);
    else if (evbuffer_get_length(out) > c->srv->cfg->max_output_buffer)
        conn_drop(c, "output buffer of %zu bytes is over max_output_buffer (%llu)",
             evbuffer_get_length(out), (unsigned long long)c->srv->cfg->max_output_buffer);
}

void conn_stop_reading(struct conn *c) { read_disable(c); }

void conn_pause_all(struct server *s, bool paused)
{
    if (s->clients_paused == paused)
        return;
    s->clients_paused = paused;
    for (struct conn *c = s->conns; c; c = c->next) {
        if (paused) {
            read_disable(c);
        } else if (may_read(c)) {
            read_enable(c);
            event_active(c->read_ev, EV_READ, 1); /* requests may wait in the input */
        }
    }
}
