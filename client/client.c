/* client: the synchronous libringkv client (ringkv.h).
 *
 * One link (a lazily opened connection with its read buffer) per node the
 * client talks to: the seeds it was given, then the members of the fetched
 * topology (client/route.c routes keys with client/ring.c, the ring the
 * nodes use). Sockets are non-blocking and driven with poll() so that
 * connecting, sending and waiting for a reply each honour a deadline.
 * proto/wire.c encodes and decodes the frames; this file owns the sockets,
 * timeouts, the public calls and the error messages users read.
 */
#include "ringkv.h"
#include "client_int.h"
#include "ring.h"
#include "wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RKV_DEFAULT_CONNECT_MS 2000
#define RKV_DEFAULT_REQUEST_MS 5000
/* The largest reply: a value at the largest max_value_bytes a node accepts
 * (512 MiB) plus generous room for the msgpack around it. */
#define RKV_MAX_REPLY ((size_t)513 << 20)
/* The largest request the 4-byte frame length can describe. Nodes set their
 * own, lower limits and say so in their reply. */
#define RKV_MAX_REQUEST ((size_t)UINT32_MAX - 64)
#define RKV_RBUF_MIN    ((size_t)64 << 10)
/* Buffers grown past this for one big value are released after the call, so
 * an idle client does not hold on to hundreds of MiB. */
#define RKV_KEEP_BYTES ((size_t)4 << 20)

_Static_assert(RKV_ERR_INTERNAL == (int)WIRE_ERR_INTERNAL &&
                   RKV_ERR_BAD_REQUEST == (int)WIRE_ERR_BAD_REQUEST,
               "rkv_status and wire_status share the numbers 0..6");

/* Outcome of moving bytes over the socket. */
enum { XFER_OK, XFER_TIMEOUT, XFER_IO, XFER_TOOBIG, XFER_NOMEM };

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rkv_status client_fail(rkv_client *c, rkv_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    return st;
}

/* Appends to errstr; output past its end is silently cut. */
static void append(rkv_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(rkv_client *c, const char *fmt, ...)
{
    size_t used = strlen(c->errstr);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr + used, sizeof c->errstr - used, fmt, ap);
    va_end(ap);
}

static rkv_link *cur_link(const rkv_client *c)
{
    return &c->links[c->cur];
}

void client_clear_err(rkv_client *c)
{
    c->errstr[0] = '\0';
}

const char *client_cur_name(const rkv_client *c)
{
    return c->links[c->cur].a.name;
}

/* ---- address list ---- */

char *client_dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n) /* s may be NULL for an empty range */
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Parses one "host:port" or "[v6]:port" of n bytes into *a. */
static int parse_addr(const char *s, size_t n, rkv_addr *a, char *err, size_t errlen)
{
    const char *host = s, *colon;
    size_t hlen;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close + 1 == s + n || close[1] != ':')
            goto bad;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (const char *p = s; p < s + n; p++)
            if (*p == ':') {
                if (colon) {
                    snprintf(err, errlen,
                             "bad address '%.*s': write an IPv6 address in brackets, as [::1]:7001",
                             (int)n, s);
                    return -1;
                }
                colon = p;
            }
        if (!colon)
            goto bad;
        hlen = (size_t)(colon - s);
    }
    size_t plen = (size_t)(s + n - colon - 1);
    unsigned long port = 0;
    for (size_t i = 0; i < plen; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9')
            goto bad;
        port = port * 10 + (unsigned long)(colon[1 + i] - '0');
        if (port > 65535)
            break;
    }
    if (hlen == 0 || plen == 0 || port == 0 || port > 65535)
        goto bad;
    snprintf(a->port, sizeof a->port, "%lu", port);
    a->host = client_dup_range(host, hlen);
    a->name = client_dup_range(s, n);
    if (!a->host || !a->name) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen,
             "bad address '%.*s': expected host:port or [ipv6]:port with a port from 1 to 65535",
             (int)n, s);
    return -1;
}

/* A new link for a parsed address (taken over); its index, or -1. */
static long add_link(rkv_client *c, rkv_addr *a)
{
    if (c->nlinks == c->caplinks) {
        size_t cap = c->caplinks ? 2 * c->caplinks : 4;
        rkv_link *p = realloc(c->links, cap * sizeof *p);
        if (!p)
            return -1;
        c->links = p;
        c->caplinks = cap;
    }
    c->links[c->nlinks] = (rkv_link){.a = *a, .fd = -1};
    return (long)c->nlinks++;
}

static void free_addr(rkv_addr *a)
{
    free(a->host);
    free(a->name);
}

static int parse_addrs(rkv_client *c, const char *list, char *err, size_t errlen)
{
    for (const char *p = list;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (b < e) {
            rkv_addr a = {0};
            if (parse_addr(b, (size_t)(e - b), &a, err, errlen) < 0) {
                free_addr(&a);
                return -1;
            }
            if (add_link(c, &a) < 0) {
                free_addr(&a);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        if (!*end)
            break;
        p = end + 1;
    }
    c->nseeds = c->nlinks;
    if (c->nlinks == 0) {
        snprintf(err, errlen, "no node address given (expected host:port)");
        return -1;
    }
    return 0;
}

/* ---- socket ---- */

/* Waits for events on fd until deadline: 1 ready (or failed: the next call
 * on fd says how), 0 timed out, -1 poll failed. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - client_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static void link_close(rkv_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->rlen = 0;
    l->rused = 0;
}

static void conn_close(rkv_client *c)
{
    link_close(cur_link(c));
}

/* Connects to one resolved address before deadline. Returns the fd, or -1
 * with the reason in why. */
static int connect_ai(const struct addrinfo *ai, int64_t deadline, int timeout_ms, char *why,
                      size_t whylen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        goto fail;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            goto fail;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0) {
            snprintf(why, whylen, "timed out after %d ms", timeout_ms);
            close(fd);
            return -1;
        }
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            goto fail;
        if (soerr) {
            errno = soerr;
            goto fail;
        }
    }
    /* Requests are small and answered one at a time: Nagle would only add
     * latency. Keepalive finds a peer that vanished while we sat idle. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
fail:
    snprintf(why, whylen, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int connect_addr(const rkv_client *c, const rkv_addr *a, char *why, size_t whylen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(a->host, a->port, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", a->host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    /* One deadline per address the user gave, shared by all it resolves to. */
    int64_t deadline = client_now_ms() + c->connect_ms;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_ai(ai, deadline, c->connect_ms, why, whylen);
    freeaddrinfo(res);
    return fd;
}

/* Tries every seed once, starting from the last one that worked (a member
 * met through the topology first, when that is the current link). */
static rkv_status connect_any(rkv_client *c)
{
    char why[256];
    c->errstr[0] = '\0';
    size_t first = c->cur < c->nseeds ? c->cur : 0;
    size_t ntry = c->nseeds + (c->cur >= c->nseeds);
    for (size_t k = 0; k < ntry; k++) {
        size_t i = c->cur >= c->nseeds ? (k == 0 ? c->cur : k - 1) : (first + k) % c->nseeds;
        rkv_link *l = &c->links[i];
        if (l->fd < 0)
            l->fd = connect_addr(c, &l->a, why, sizeof why);
        if (l->fd >= 0) {
            c->cur = i;
            c->errstr[0] = '\0';
            return RKV_OK;
        }
        if (ntry == 1)
            return client_fail(c, RKV_ERR_IO, "cannot connect to %s: %s", l->a.name, why);
        append(c, "%s%s (%s)", k ? ", " : "cannot connect to any node: ", l->a.name, why);
    }
    return RKV_ERR_IO;
}

/* Has the node closed this idle connection (idle timeout, restart)? Checked
 * before sending, while sending elsewhere is still safe. */
static int conn_closed_by_peer(const rkv_client *c)
{
    char b;
    ssize_t n = recv(cur_link(c)->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    /* Bytes waiting are a stray reply, which the reply loop drops by id. */
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static int send_all(rkv_client *c, int64_t deadline, size_t *sent)
{
    const char *buf = c->sb.data;
    size_t len = c->sb.size;
    *sent = 0;
    while (*sent < len) {
        /* MSG_NOSIGNAL: a closed peer is an error return, not a SIGPIPE that
         * would kill the embedding program. */
        ssize_t n = send(cur_link(c)->fd, buf + *sent, len - *sent, MSG_NOSIGNAL);
        if (n > 0) {
            *sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(cur_link(c)->fd, POLLOUT, deadline);
            if (rc <= 0)
                return rc == 0 ? XFER_TIMEOUT : XFER_IO;
        } else if (n < 0 && errno != EINTR) {
            return XFER_IO;
        }
    }
    return XFER_OK;
}

static int grow_rbuf(rkv_link *l, size_t need)
{
    if (l->rcap >= need)
        return 0;
    size_t cap = l->rcap * 2 > need ? l->rcap * 2 : need;
    if (cap > RKV_MAX_REPLY + WIRE_HEADER_BYTES && need <= RKV_MAX_REPLY + WIRE_HEADER_BYTES)
        cap = RKV_MAX_REPLY + WIRE_HEADER_BYTES;
    uint8_t *p = realloc(l->rbuf, cap);
    if (!p)
        return -1;
    l->rbuf = p;
    l->rcap = cap;
    return 0;
}

/* Reads until one whole frame is buffered; *body and *len describe it and
 * stay valid until the next call. On XFER_TOOBIG *len is the frame's claim. */
static int read_frame(rkv_client *c, int64_t deadline, const uint8_t **body, size_t *len)
{
    rkv_link *l = cur_link(c);
    if (l->rused) {
        memmove(l->rbuf, l->rbuf + l->rused, l->rlen - l->rused);
        l->rlen -= l->rused;
        l->rused = 0;
    }
    for (;;) {
        if (l->rlen >= WIRE_HEADER_BYTES) {
            size_t flen = wire_frame_len(l->rbuf);
            if (flen > RKV_MAX_REPLY) {
                *len = flen;
                return XFER_TOOBIG;
            }
            size_t need = WIRE_HEADER_BYTES + flen;
            if (l->rlen >= need) {
                *body = l->rbuf + WIRE_HEADER_BYTES;
                *len = flen;
                l->rused = need;
                return XFER_OK;
            }
            if (grow_rbuf(l, need) < 0) {
                *len = flen;
                return XFER_NOMEM;
            }
        } else if (grow_rbuf(l, RKV_RBUF_MIN) < 0) {
            *len = RKV_RBUF_MIN;
            return XFER_NOMEM;
        }
        ssize_t n = recv(l->fd, l->rbuf + l->rlen, l->rcap - l->rlen, 0);
        if (n > 0) {
            l->rlen += (size_t)n;
        } else if (n == 0) {
            errno = 0;
            return XFER_IO;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(l->fd, POLLIN, deadline);
            if (rc <= 0)
                return rc == 0 ? XFER_TIMEOUT : XFER_IO;
        } else if (errno != EINTR) {
            return XFER_IO;
        }
    }
}

/* Releases buffers that one big request or reply blew up. */
void client_trim_buffers(rkv_client *c)
{
    rkv_link *l = cur_link(c);
    if (l->rcap > RKV_KEEP_BYTES && l->rlen == l->rused) {
        free(l->rbuf);
        l->rbuf = NULL;
        l->rcap = l->rlen = l->rused = 0;
    }
    if (c->sb.alloc > RKV_KEEP_BYTES) {
        msgpack_sbuffer_destroy(&c->sb);
        msgpack_sbuffer_init(&c->sb);
    }
}

/* Sends the encoded request, sending it again at most once on a fresh
 * connection when the first send failed before any byte left. Returns
 * RKV_OK, or an error; on an RKV_ERR_IO that broke the connection while
 * sending, *send_err is the errno and the socket is left open so that a
 * reply the node sent before closing can still be read. */
static rkv_status connect_cur(rkv_client *c)
{
    char why[256];
    rkv_link *l = cur_link(c);
    l->fd = connect_addr(c, &l->a, why, sizeof why);
    if (l->fd < 0)
        return client_fail(c, RKV_ERR_IO, "cannot connect to %s: %s", l->a.name, why);
    return RKV_OK;
}

/* pinned: use only the current link (routing picks it); otherwise any seed
 * will do. A connection failure returns RKV_ERR_IO with *send_err 0: nothing
 * was sent. */
static rkv_status send_request(rkv_client *c, int pinned, int64_t *deadline, int *send_err)
{
    *send_err = 0;
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        if (cur_link(c)->fd >= 0 && conn_closed_by_peer(c))
            conn_close(c);
        if (cur_link(c)->fd < 0) {
            rkv_status st = pinned ? connect_cur(c) : connect_any(c);
            if (st != RKV_OK)
                return st;
            fresh = 1;
        }
        *deadline = client_now_ms() + c->request_ms;
        size_t sent;
        int rc = send_all(c, *deadline, &sent);
        if (rc == XFER_OK)
            return RKV_OK;
        if (rc == XFER_TIMEOUT) {
            conn_close(c);
            return client_fail(c, RKV_ERR_TIMEOUT, "could not send the request to %s within %d ms",
                        client_cur_name(c), c->request_ms);
        }
        /* Nothing reached the node, so it cannot have acted on the request:
         * sending it again cannot apply a write twice. */
        if (sent == 0 && !fresh && attempt == 0) {
            conn_close(c);
            continue;
        }
        *send_err = errno ? errno : EPIPE;
        return RKV_ERR_IO;
    }
}

static rkv_status reply_status(rkv_client *c, const wire_response *resp)
{
    switch (resp->status) {
    case WIRE_OK:
        return RKV_OK;
    case WIRE_NOT_FOUND:
        return RKV_NOT_FOUND;
    case WIRE_ERR_BAD_REQUEST:
    case WIRE_ERR_TOO_LARGE:
    case WIRE_ERR_UNAVAILABLE:
    case WIRE_ERR_TIMEOUT:
    case WIRE_ERR_INTERNAL:
        if (resp->message.len)
            return client_fail(c, (rkv_status)resp->status, "node %s: %.*s", client_cur_name(c),
                        (int)resp->message.len, (const char *)resp->message.ptr);
        return client_fail(c, (rkv_status)resp->status, "node %s answered %s", client_cur_name(c),
                    wire_status_name(resp->status));
    }
    conn_close(c);
    return client_fail(c, RKV_ERR_PROTOCOL, "node %s answered with unknown status %d", client_cur_name(c),
                (int)resp->status);
}

/* Reads frames until the reply to request id. send_err is the errno of a
 * send that broke (0 if the request went out whole), for the message when no
 * reply can be read either. */
static rkv_status read_reply(rkv_client *c, uint64_t id, int64_t deadline, int send_err,
                             wire_response *resp)
{
    for (;;) {
        const uint8_t *body = NULL;
        size_t len = 0;
        int rc = read_frame(c, deadline, &body, &len);
        if (rc != XFER_OK) {
            int err = errno;
            conn_close(c); /* its state is unknown: a late reply may follow */
            if (send_err)
                return client_fail(c, RKV_ERR_IO, "connection to %s lost while sending the request: %s",
                            client_cur_name(c), strerror(send_err));
            switch (rc) {
            case XFER_TIMEOUT:
                return client_fail(c, RKV_ERR_TIMEOUT, "no reply from %s within %d ms", client_cur_name(c),
                            c->request_ms);
            case XFER_TOOBIG:
                return client_fail(c, RKV_ERR_PROTOCOL,
                            "reply from %s claims %zu bytes, over the limit of %zu (is that a "
                            "ringkv client port?)",
                            client_cur_name(c), len, RKV_MAX_REPLY);
            case XFER_NOMEM:
                return client_fail(c, RKV_ERR_INTERNAL, "out of memory for a reply of %zu bytes from %s",
                            len, client_cur_name(c));
            default:
                return client_fail(c, RKV_ERR_IO, "connection to %s lost while waiting for reply%s%s",
                            client_cur_name(c), err ? ": " : " (closed by the node)",
                            err ? strerror(err) : "");
            }
        }
        char err[200];
        msgpack_zone_clear(&c->zone);
        if (wire_decode_response(body, len, &c->zone, resp, err, sizeof err) < 0) {
            conn_close(c);
            return client_fail(c, RKV_ERR_PROTOCOL, "bad reply from %s: %s", client_cur_name(c), err);
        }
        if (resp->id == id)
            return reply_status(c, resp);
        /* Id 0 is the node refusing the connection itself (a frame over its
         * limit, max_clients reached) before it closes it; ours start at 1.
         * With one request in flight, it is about that request. */
        if (resp->id == 0 && resp->status != WIRE_OK) {
            rkv_status st = reply_status(c, resp);
            conn_close(c);
            return st;
        }
        /* Another id is a reply to a request we gave up on; drop it. */
    }
}

/* Encodes req with a fresh id into c->sb. */
static rkv_status encode(rkv_client *c, wire_request *req)
{
    req->id = ++c->next_id;
    msgpack_sbuffer_clear(&c->sb);
    wire_encode_request(&c->sb, req);
    if (c->sb.size < WIRE_HEADER_BYTES + req->key.len + req->value.len)
        return client_fail(c, RKV_ERR_INTERNAL, "out of memory encoding a request of %zu bytes",
                    req->key.len + req->value.len);
    return RKV_OK;
}

/* Sends c->sb on the current link (pinned) or any seed, and reads the reply
 * to id. *nothing_sent says the request never left, so another node may be
 * tried safely. */
static rkv_status exchange(rkv_client *c, uint64_t id, int pinned, wire_response *resp,
                           int *nothing_sent)
{
    int64_t deadline;
    int send_err;
    rkv_status st = send_request(c, pinned, &deadline, &send_err);
    *nothing_sent = st == RKV_ERR_IO && !send_err;
    if (st != RKV_OK && !send_err)
        return st;
    /* From here the node may have acted on the request (a write may be
     * applied), so no failure below is retried: the caller decides. Even
     * after a broken send, a reply may be waiting: a node that refuses a
     * request answers before it closes. */
    return read_reply(c, id, deadline, send_err, resp);
}

static rkv_status check_key(rkv_client *c, const void *key, size_t klen)
{
    c->errstr[0] = '\0';
    if (!key || klen == 0)
        return client_fail(c, RKV_ERR_ARG, "a key must be at least 1 byte long");
    if (klen > RKV_MAX_REQUEST)
        return client_fail(c, RKV_ERR_TOO_LARGE, "key is %zu bytes, over the protocol's limit of %zu",
                    klen, RKV_MAX_REQUEST);
    return RKV_OK;
}

rkv_status client_request(rkv_client *c, wire_request *req, int pinned, wire_response *resp,
                          int *nothing_sent)
{
    *nothing_sent = 1;
    rkv_status st = encode(c, req);
    return st == RKV_OK ? exchange(c, req->id, pinned, resp, nothing_sent) : st;
}

/* The link for a member's client address, added when new; SIZE_MAX when the
 * address cannot be used. */
size_t client_link_for(rkv_client *c, const char *addr, const char *via_host)
{
    /* A node listening on a wildcard address advertises it as is; it can
     * only be the node we asked (or a neighbour on its host), so reach it
     * through the host we asked. */
    char fixed[300];
    const char *port = NULL;
    if (strncmp(addr, "0.0.0.0:", 8) == 0)
        port = addr + 8;
    else if (strncmp(addr, "[::]:", 5) == 0)
        port = addr + 5;
    if (port) {
        int v6 = strchr(via_host, ':') != NULL;
        snprintf(fixed, sizeof fixed, "%s%s%s:%s", v6 ? "[" : "", via_host, v6 ? "]" : "", port);
        addr = fixed;
    }
    for (size_t i = 0; i < c->nlinks; i++)
        if (strcmp(c->links[i].a.name, addr) == 0)
            return i;
    rkv_addr a = {0};
    char err[200];
    if (parse_addr(addr, strlen(addr), &a, err, sizeof err) < 0) {
        free_addr(&a);
        return SIZE_MAX;
    }
    long i = add_link(c, &a);
    if (i < 0) {
        free_addr(&a);
        return SIZE_MAX;
    }
    return (size_t)i;
}

/* ---- public API ---- */

rkv_client *rkv_connect(const char *addrs, const rkv_options *opts, char *errbuf, size_t errlen)
{
    char err[256];
    rkv_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    c->consistency = RKV_CONSISTENCY_DEFAULT;
    c->connect_ms =
        opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : RKV_DEFAULT_CONNECT_MS;
    c->request_ms =
        opts && opts->request_timeout_ms > 0 ? opts->request_timeout_ms : RKV_DEFAULT_REQUEST_MS;
    msgpack_sbuffer_init(&c->sb);
    if (!msgpack_zone_init(&c->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        snprintf(err, sizeof err, "out of memory");
        free(c);
        c = NULL;
        goto fail;
    }
    if (!addrs) {
        snprintf(err, sizeof err, "no node address given (expected host:port)");
        goto fail;
    }
    if (parse_addrs(c, addrs, err, sizeof err) < 0)
        goto fail;
    return c;
fail:
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", err);
    rkv_close(c);
    return NULL;
}

void rkv_close(rkv_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nlinks; i++) {
        link_close(&c->links[i]);
        free_addr(&c->links[i].a);
        free(c->links[i].rbuf);
    }
    free(c->links);
    rkv_topology_free(c->topo);
    free(c->routes);
    client_clear_replicas(c);
    msgpack_sbuffer_destroy(&c->sb);
    msgpack_zone_destroy(&c->zone);
    free(c);
}

const char *rkv_errstr(const rkv_client *c)
{
    return c ? c->errstr : "no client";
}

const char *rkv_status_name(rkv_status st)
{
    static const char *const names[] = {
        "OK",      "NOT_FOUND", "BAD_REQUEST", "TOO_LARGE", "UNAVAILABLE",
        "TIMEOUT", "INTERNAL",  "IO",          "PROTOCOL",  "ARG",
    };
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "UNKNOWN";
}

rkv_status rkv_get(rkv_client *c, const void *key, size_t klen, void **value, size_t *value_len)
{
    if (!c)
        return RKV_ERR_ARG;
    if (value)
        *value = NULL;
    if (value_len)
        *value_len = 0;
    rkv_status st = check_key(c, key, klen);
    if (st != RKV_OK)
        return st;
    if (!value || !value_len)
        return client_fail(c, RKV_ERR_ARG, "rkv_get needs somewhere to put the value");

    wire_request req = {.op = WIRE_OP_GET, .consistency = -1, .key = {key, klen}};
    wire_response resp;
    st = client_roundtrip(c, &req, &resp);
    if (st == RKV_OK && !resp.has_value) {
        st = client_fail(c, RKV_ERR_PROTOCOL, "node %s answered a GET without a value", client_cur_name(c));
    } else if (st == RKV_OK) {
        /* Even an empty value gets a buffer, so NULL always means absent. */
        *value = malloc(resp.value.len ? resp.value.len : 1);
        if (!*value) {
            st =
                client_fail(c, RKV_ERR_INTERNAL, "out of memory for a value of %zu bytes", resp.value.len);
        } else {
            if (resp.value.len)
                memcpy(*value, resp.value.ptr, resp.value.len);
            *value_len = resp.value.len;
        }
    }
    client_trim_buffers(c);
    return st;
}

rkv_status rkv_put(rkv_client *c, const void *key, size_t klen, const void *value, size_t vlen,
                   uint64_t ttl_ms)
{
    if (!c)
        return RKV_ERR_ARG;
    rkv_status st = check_key(c, key, klen);
    if (st != RKV_OK)
        return st;
    if (!value && vlen)
        return client_fail(c, RKV_ERR_ARG, "value is NULL but its length is %zu", vlen);
    if (vlen > RKV_MAX_REQUEST - klen)
        return client_fail(c, RKV_ERR_TOO_LARGE,
                    "key and value are %zu bytes, over the protocol's limit of %zu", klen + vlen,
                    RKV_MAX_REQUEST);

    wire_request req = {.op = WIRE_OP_PUT,
                        .consistency = -1,
                        .key = {key, klen},
                        .value = {value ? value : (const void *)"", vlen},
                        .ttl_ms = ttl_ms};
    wire_response resp;
    st = client_roundtrip(c, &req, &resp);
    client_trim_buffers(c);
    return st;
}

rkv_status rkv_del(rkv_client *c, const void *key, size_t klen)
{
    if (!c)
        return RKV_ERR_ARG;
    rkv_status st = check_key(c, key, klen);
    if (st != RKV_OK)
        return st;
    wire_request req = {.op = WIRE_OP_DEL, .consistency = -1, .key = {key, klen}};
    wire_response resp;
    st = client_roundtrip(c, &req, &resp);
    client_trim_buffers(c);
    return st;
}

rkv_status rkv_ping(rkv_client *c)
{
    if (!c)
        return RKV_ERR_ARG;
    wire_request req = {.op = WIRE_OP_PING};
    wire_response resp;
    rkv_status st = client_roundtrip(c, &req, &resp);
    client_trim_buffers(c);
    return st;
}

void rkv_free(void *p)
{
    free(p);
}

rkv_status rkv_set_consistency(rkv_client *c, rkv_consistency level)
{
    if (!c)
        return RKV_ERR_ARG;
    if (level < RKV_CONSISTENCY_DEFAULT || level > RKV_CONSISTENCY_ALL)
        return client_fail(c, RKV_ERR_ARG, "unknown consistency level %d (one, quorum or all)",
                    (int)level);
    c->consistency = (int)level;
    return RKV_OK;
}

const char *const *rkv_last_replicas(const rkv_client *c, size_t *n)
{
    static const char *const none[1] = {NULL};
    if (n)
        *n = c ? c->nreplicas : 0;
    return c && c->replicas ? (const char *const *)c->replicas : none;
}

const char *rkv_last_node(const rkv_client *c)
{
    return c && c->next_id ? client_cur_name(c) : "";
}
