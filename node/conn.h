/* conn: one client connection of ringkvd: framing, replies, limits, closing.
 *
 * Requests are cut from the input buffer frame by frame and handed to the
 * server. Replies go to a per-connection pending buffer that the server
 * releases to the socket at the end of the event-loop pass, after the
 * store commit. Replies produced under a not yet committed store batch are
 * marked, so that if the commit fails they are rewritten as errors before
 * anyone sees them. A connection is never freed inside its own callback:
 * conn_close() queues it and the pass end frees it. Event-loop thread only.
 *
 * Replies completed later (a coordinated read or write waits for replicas)
 * reserve a slot in the connection's reply FIFO (conn_slot_reserve); every
 * reply, immediate or late, reaches the client in request order. A closed
 * connection with slots outstanding is detached (socket closed) but its
 * struct lives until the last slot is completed or cancelled, so a late
 * completion never touches freed memory.
 */
#ifndef RINGKV_CONN_H
#define RINGKV_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/util.h>

#include "wire.h"

struct server;
struct conn;

/* A client protocol: how a connection's input is parsed and executed, and
 * how an error reply is written (used to rewrite replies whose batch failed
 * to commit). The native protocol is below; RESP is in resp.c. A protocol
 * that keeps per-connection state (a parser mid-command, options the client
 * set) allocates it in on_open into c->proto_data and frees it in on_free;
 * both hooks are optional. */
typedef struct conn_proto {
    const char *name; /* for logs: "client", "resp" */
    void (*on_input)(struct conn *c);
    void (*encode_error)(struct server *s, struct evbuffer *out, uint64_t id, wire_status st,
                         const char *msg);
    int (*on_open)(struct conn *c);  /* 0, or -1 to refuse the connection */
    void (*on_free)(struct conn *c);
    /* Optional: the key of the first command waiting in c's input, without
     * parsing it for real; lets a pass prefetch what the commands of all
     * its connections will touch before it runs them (conn_run_ready). */
    bool (*first_key)(struct conn *c, const char **key, size_t *klen);
} conn_proto;

extern const conn_proto conn_native_proto;

/* One reply in the FIFO behind an outstanding slot: reserved by a request
 * that completes later, or an immediate reply held back until the replies
 * ahead of it are done. */
typedef struct conn_slot {
    struct conn *c;
    struct conn_slot *next;  /* FIFO order; free list in the pool */
    uint8_t *data;           /* the reply bytes once written: [0, len) */
    size_t len, cap;         /* kept with the slot for its next reply */
    uint64_t id;             /* request id, echoed by an error rewrite */
    bool reserved;           /* reserved by conn_slot_reserve (else held) */
    bool done;               /* its reply is complete */
    bool marked;             /* its reply depends on the uncommitted batch */
    unsigned user;           /* the reserver's own flags, kept until resume */
} conn_slot;

typedef struct conn_mark {
    size_t off, len; /* a reply's bytes within pending */
    uint64_t id;     /* its request id */
} conn_mark;

struct conn {
    struct server *srv;
    const conn_proto *proto;
    struct bufferevent *bev;      /* writes; reads go through read_ev */
    struct event *read_ev;
    size_t read_size;             /* bytes the next read asks for */
    char peer[64];                /* "host:port" of the client, for logs */
    struct conn *prev, *next;     /* server->conns */
    struct conn *dirty_next;      /* server->dirty */
    struct conn *closing_next;    /* server->closing */
    bool dirty, closing, close_when_flushed, read_paused;
    struct evbuffer *pending;     /* this pass's replies */
    conn_mark *marks;
    size_t nmarks, capmarks;
    void *proto_data;             /* the protocol's per-connection state */
    bool write_direct;            /* plain TCP: conn_release may write to the
                                   * socket itself (not under TLS) */
    conn_slot *slot_head, *slot_tail; /* replies waiting for an earlier one */
    size_t nslots;                /* in the FIFO */
    size_t nreserved;             /* reserved slots not yet completed */
    conn_slot *fill;              /* the slot the reply being built goes to */
    bool fill_direct;             /* fill is the FIFO's head: its reply goes
                                   * straight to pending, not through the
                                   * slot's own buffer */
    conn_slot *slot_spare;        /* released slots kept for reuse */
    bool detached;                /* freed by the server, waiting for slots */
    bool slots_paused;            /* reading paused: too many slots */
    bool in_ready;                /* read this pass, waiting in server->ready */
    struct conn *ready_next;
    uint64_t ready_token;         /* the store token of its first command's key */
    struct event *hold_ev;        /* the bound on holding replies (conn_release) */
    bool holding;                 /* hold_ev is armed */
    bool hold_over;               /* hold_ev fired: the next release writes */
};

/* Most replies one connection may have waiting in its FIFO; past it reading
 * pauses until half are released. */
#define CONN_MAX_SLOTS 4096

/* Wraps an accepted socket speaking proto. Returns NULL (and closes fd) on
 * failure. */
struct conn *conn_new(struct server *s, evutil_socket_t fd, const char *peer,
                      const conn_proto *proto);

/* Queues c to be closed and freed at the end of the pass, dropping replies
 * not yet released. why is logged (NULL: a normal close by the client). */
void conn_close(struct conn *c, const char *why);

/* Frees c now. Only the server calls this, never from c's callbacks. */
void conn_free(struct conn *c);

/* Runs the input of the connections read this pass (server->ready), in the
 * order they were read; the server's ready event calls it once the pass's
 * socket events have all been handled. */
void conn_run_ready(struct server *s);

/* Queues c to be closed with a logged reason, counting it as dropped. */
void conn_drop(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops reading and closes c once its replies are written (QUIT, broken
 * framing). */
void conn_close_after_reply(struct conn *c);

/* Backpressure, after each request: drops c past max_output_buffer, pauses
 * reading past half of it. Returns true when the caller must stop reading. */
bool conn_output_check(struct conn *c);

/* Appends one reply of head (+ tail) bytes to c's pending buffer; id is what
 * an error rewrite echoes (0 for protocols without ids). */
void conn_reply_raw(struct conn *c, uint64_t id, const void *head, size_t headlen,
                    const void *tail, size_t taillen);

/* One reply built from many pieces without copying them together first
 * (RESP's "$5\r\n" + value + "\r\n", an array of values): conn_reply_begin,
 * any number of conn_reply_add, then conn_reply_end, which marks the bytes
 * since begin as one reply (as conn_reply_raw does). conn_reply_abort drops
 * them instead. Nothing else may reply to c, or write to the store, in
 * between. */
size_t conn_reply_begin(struct conn *c);
void conn_reply_add(struct conn *c, const void *p, size_t len);
void conn_reply_end(struct conn *c, uint64_t id, size_t begin);
void conn_reply_abort(struct conn *c, size_t begin);
/* (While a reply goes to a slot, an abort must be followed by a reply.) */

/* Reserves c's next reply position for a request that completes later
 * (id: the request id, for error rewrites). Returns NULL when out of
 * memory. The slot must be completed (conn_slot_resume + one reply) or
 * cancelled exactly once. */
conn_slot *conn_slot_reserve(struct conn *c, uint64_t id);

/* Starts the late reply of sl: returns its connection, to which the caller
 * writes exactly one reply (conn_reply_*), which completes the slot; or
 * NULL when the connection has gone (the slot is released, reply nothing). */
struct conn *conn_slot_resume(conn_slot *sl);

/* Gives up sl without a reply (the client is gone, or shutdown). If the
 * connection is still open it gets an INTERNAL error in sl's place. */
void conn_slot_cancel(conn_slot *sl, const char *why);

/* Native reply builders: append one frame to c's pending buffer. */
void conn_reply_status(struct conn *c, uint64_t id, wire_status st, const char *msg);
void conn_reply_value(struct conn *c, uint64_t id, const void *value, size_t len);
void conn_reply_stats(struct conn *c, uint64_t id, const wire_stat *stats, size_t n);

/* Rewrites every marked reply as an error (the batch they depended on was
 * lost) and clears the marks. */
void conn_fail_marked(struct conn *c, wire_status st, const char *msg);

/* Pass end: moves pending replies to the socket and clears the marks. */
void conn_release(struct conn *c);

/* Bytes queued for c that the client has not yet taken. */
size_t conn_output_len(const struct conn *c);

/* Stops reading new requests (graceful shutdown). */
void conn_stop_reading(struct conn *c);

/* Stops (paused) or restarts reading requests on every client connection
 * of s, new ones included, on top of each connection's own pauses: the
 * replication layer's backpressure (replica.c). */
void conn_pause_all(struct server *s, bool paused);

#endif
