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

typedef struct server_counters {
    uint64_t ops[WIRE_OP_MAX + 1];   /* by wire_op */
    uint64_t errors;                 /* error replies sent */
    uint64_t bytes_in, bytes_out;
    uint64_t connections_total;
    uint64_t connections_rejected;   /* refused past max_clients */
    uint64_t connections_dropped;    /* output limit, idle timeout, bad framing */
    uint64_t commit_failures;
} server_counters;

typedef struct server {
    struct event_base *base;
    const config *cfg;
    store *st;
    hlc clock;
    char node_id[STORE_ORIGIN_MAX + 1];
    uint64_t max_frame;              /* largest request body accepted */

    struct evconnlistener *listener;
    char listen_addr[CONFIG_ADDR_MAX]; /* the bound address, with the real port */
    struct event *pass_end_ev;       /* activated once per pass that did work */
    bool pass_end_scheduled;
    struct event *sweep_ev;
    struct event *relisten_ev;       /* re-enables accept after EMFILE */
    struct event *drain_ev;          /* shutdown: waits for replies to drain */
    uint64_t drain_deadline_ms;
    bool stopping;

    conn *conns;                     /* every open connection */
    uint64_t nconns;
    conn *dirty;                     /* connections with replies this pass */
    conn *closing;                   /* connections to free at pass end */

    msgpack_sbuffer sb;              /* reply scratch, reused */
    msgpack_zone zone;               /* decoder scratch, cleared per frame */
    uint64_t started_ms;
    server_counters n;
} server;

/* Creates the server and binds its listener to cfg->listen. The store and
 * config are borrowed and must outlive it. Returns NULL with a message. */
server *server_new(struct event_base *base, const config *cfg, store *st,
                   char *err, size_t errlen);

/* Starts a graceful stop: no new connections or requests; what is in flight
 * is committed and its replies written (for at most 2 s), then the loop
 * exits. */
void server_shutdown(server *s);

/* Closes every connection, commits what is pending, and frees. NULL is a
 * no-op. The store stays open. */
void server_free(server *s);

/* Wall-clock milliseconds, cached per loop pass. */
uint64_t server_now_ms(server *s);

/* Executes one decoded request from c; the reply goes to c's pending
 * buffer. Called by conn.c. */
void server_handle_request(server *s, conn *c, const wire_request *req);

/* Makes sure the pass-end event (commit, then release replies) will run. */
void server_schedule_pass_end(server *s);

#endif
