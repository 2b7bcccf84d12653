/* server: ringkvd's client-protocol front end on one libevent loop.
 *
 * It accepts connections (conn.c frames their bytes), executes GET, PUT, DEL,
 * PING and STATS against the store, and ends every event-loop pass with one
 * store commit, after which the pass's replies are released to the sockets:
 * nothing is acknowledged before it is committed (and, under `fsync always`,
 * synced). Event-loop thread only.
 *
 * The struct is visible to the node's own modules (conn.c); main.c and tests
 * use only the functions.
 */
#ifndef RINGKV_SERVER_H
#define RINGKV_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <msgpack.h>

#include "config.h"
#include "hlc.h"
#include "store.h"
#include "wire.h"

typedef struct conn conn;
struct conn_proto;
struct server;

/* A listening socket and the protocol its clients speak. */
typedef struct server_listener {
    struct server *srv;
    struct evconnlistener *l;
    const struct conn_proto *proto;
    char addr[CONFIG_ADDR_MAX]; /* the bound address, with the real port */
} server_listener;

#define SERVER_MAX_LISTENERS 4

typedef struct server_counters {
    uint64_t ops[WIRE_OP_MAX + 1];   /* by wire_op */
    uint64_t errors;                 /* error replies sent */
    uint64_t bytes_in, bytes_out;
    uint64_t connections_total;
    uint64_t connections_rejected;   /* refused past max_clients */
    uint64_t connections_dropped;    /* output limit, idle timeout, bad framing */
    uint64_t commit_failures;
} server_counters;

/* Runs after the commit of the pass in which it was registered: ok says
 * whether the writes made before registering are durable (committed, and
 * under `fsync always` synced); err says why not. */
typedef void (*server_commit_fn)(void *arg, bool ok, const char *err);

typedef struct server_commit_cb {
    server_commit_fn fn;
    void *arg;
    bool failed; /* the batch it waited for was lost mid-pass */
} server_commit_cb;

typedef struct server {
    struct event_base *base;
    const config *cfg;
    store *st;
    hlc clock;
    char node_id[STORE_ORIGIN_MAX + 1];
    uint64_t max_frame;              /* largest request body accepted */

    server_listener listeners[SERVER_MAX_LISTENERS]; /* [0]: the client protocol */
    size_t nlisteners;
    struct event *pass_end_ev;       /* activated once per pass that did work */
    struct event *ready_ev;          /* runs the connections read this pass */
    struct conn *ready_head, *ready_tail;
    bool pass_end_scheduled;
    char batch_err[256]; /* why this pass's batch failed (fail_batch) */
    server_commit_cb *commit_cbs;    /* after-commit callbacks of this pass */
    size_t ncommit_cbs, capcommit_cbs;
    struct event *sweep_ev;
    struct event *writeback_ev; /* commits now and then while the store writes back */
    struct event *sweep_more_ev; /* the next slice of this tick's sweep */
    size_t sweep_left;           /* records this tick may still examine */
    struct event *relisten_ev;       /* re-enables accept after EMFILE */
    struct event *drain_ev;          /* shutdown: waits for replies to drain */
    uint64_t drain_deadline_ms;
    bool stopping;
    bool clients_paused;             /* conn_pause_all: replication is behind */

    conn *conns;                     /* every open connection */
    uint64_t nconns;
    conn *dirty;                     /* connections with replies this pass */
    conn *closing;                   /* connections to free at pass end */

    struct membership *members;      /* NULL: membership off (no [node] peer); set by main */
    struct cluster *cluster;         /* the ring view (never NULL once main set it) */
    struct peer *peer;               /* the peer port (membership's), or NULL; set by main */
    struct replica *replica;         /* replication layer, or NULL; set by main */
    struct antientropy *antientropy; /* Merkle-tree repair, or NULL; set by main */
    struct coord *coord;             /* the coordinator (dispatch.c), made on first use */
    struct stream *stream;           /* ranges on ring changes (stream.c), or NULL; set by main */

    msgpack_sbuffer sb;              /* reply scratch, reused */
    msgpack_zone zone;               /* decoder scratch, cleared per frame */
    uint64_t started_ms;
    server_counters n;
} server;

/* Creates the server and binds its listener to cfg->listen. The store and
 * config are borrowed and must outlive it. Returns NULL with a message. */
server *server_new(struct event_base *base, const config *cfg, store *st,
                   char *err, size_t errlen);

/* Listens on addr for clients speaking proto (the client protocol's
 * listener is made by server_new). Returns the listener's index, or -1 with
 * a message. */
int server_listen(server *s, const char *addr, const struct conn_proto *proto, char *err,
                  size_t errlen);

/* Starts a graceful stop: no new connections or requests; what is in flight
 * is committed and its replies written (for at most 2 s), then the loop
 * exits. */
void server_shutdown(server *s);

/* Closes every connection, commits what is pending, and frees. NULL is a
 * no-op. The store stays open. */
void server_free(server *s);

/* Wall-clock milliseconds, cached per loop pass. */
uint64_t server_now_ms(server *s);

/* Request execution shared by every protocol. */
/* Reads key as of this pass (sees the pass's uncommitted writes). */
store_result server_get(server *s, const void *key, size_t klen, store_record *rec, char *err,
                        size_t errlen);
/* PUT (value, ttl_ms: 0 = none) or DEL of key, stamped with the node's HLC.
 * Returns STORE_OK, or an error after which every reply that depended on the
 * lost batch has been rewritten as an error; the caller answers with
 * server_status_for(result) and err. Limits are the caller's to check. */
store_result server_write(server *s, wire_op op, const void *key, size_t klen, const void *value,
                          size_t vlen, uint64_t ttl_ms, char *err, size_t errlen);
wire_status server_status_for(store_result r);

/* Executes one decoded request from c; the reply goes to c's pending
 * buffer. Called by conn.c. */
void server_handle_request(server *s, conn *c, const wire_request *req);

/* Registers fn(arg, ok, err) to run at this pass's end, after the commit
 * (replicas acknowledge writes this way: only once they are durable).
 * Returns 0, or -1 when out of memory (fn will not run). */
int server_after_commit(server *s, server_commit_fn fn, void *arg);

/* Removes registrations of fn with arg that have not run yet (a module
 * going away before the pass end). */
void server_after_commit_cancel(server *s, server_commit_fn fn, void *arg);

/* A store write outside server_write failed and discarded the batch: every
 * reply and after-commit callback that depended on it fails with err. */
void server_batch_failed(server *s, store_result r, const char *err);

/* Makes sure the pass-end event (commit, then release replies) will run. */
void server_schedule_pass_end(server *s);

#endif
