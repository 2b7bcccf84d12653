/* replica_int: the replication layer's internals, shared by replica.c (the
 * outbound links and the API), replica_stage.c (the frames a link holds
 * until they leave), replica_answer.c (the answers the links read),
 * replica_req.c (requests and their table) and replica_serve.c (the
 * replica side: applying writes, answering reads, acknowledging after the
 * commit). Nothing else includes it.
 */
#ifndef RINGKV_REPLICA_INT_H
#define RINGKV_REPLICA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "cluster.h"
#include "handoff.h"
#include "peer.h"
#include "replica.h"
#include "server.h"

typedef struct link link;

#define REPLICA_MAX_QUEUE_BYTES ((size_t)64 << 20) /* output queued to one peer */

/* Why a request failed, and the node it was for: memory taken only then. */
typedef struct req_failure {
    char to[STORE_ORIGIN_MAX + 1];
    char why[200];
} req_failure;

/* One request, in flight on a link or failed and waiting to be reported.
 * Two cache lines: under pipelined writes tens of thousands are in flight
 * and kept for reuse (REPLICA_SPARE_REQS). */
typedef struct req {
    uint64_t id;
    link *ln; /* NULL once failed */
    replica_cb cb;
    replica_env_fn env_cb; /* replica_call: the raw answer instead of cb */
    void *arg;
    uint64_t deadline_ms;
    bool have; /* a read that named a version it has: may get it alone back */
    struct req *prev, *next; /* the link's send order, or the done list */
    struct req *hnext;       /* id table chain */
    req_failure *fail;       /* set by req_fail; NULL while all is well */
} req;

typedef enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_UP } link_state;

struct link {
    replica *r;
    char id[STORE_ORIGIN_MAX + 1];
    char addr[PEER_ADDR_MAX];
    struct bufferevent *bev;
    link_state state;
    bool failed_before; /* a reconnect, for the stats */
    uint64_t connect_deadline_ms, retry_at_ms, backoff_ms;
    uint64_t last_active_ms; /* last request sent or answer received */
    uint64_t progress_ms;    /* last answer received, or when the link came up */
    char last_err[160];
    req *head, *tail;
    size_t ninflight;
    struct event *timer_ev;
    bool timer_set; /* timer_ev is pending: asking libevent was 79 instructions an answer */
    link *next;
    /* The cluster_generation at which the node was last found up at addr:
     * until it changes, send_req asks the cluster nothing (0: never). */
    uint64_t up_gen;
    bool flush_queued; /* in r->flush: requests to write at the pass's end */
    link *flush_next;
    /* While the link is up, the frames of this pass (replica.c's
     * link_put), after whatever the bufferevent's output still holds. */
    uint8_t *stage;
    size_t staged, stage_cap;
    /* The stage holds a frame someone waits for (it leaves at the pass's
     * end), or only background frames, the first staged at linger_since_us
     * (they may linger: replica_flush_links). */
    bool urgent;
    uint64_t linger_since_us;
};

/* Work that waits for this pass's commit. */
typedef enum pending_kind { PENDING_ACK, PENDING_READ, PENDING_LOCAL } pending_kind;

#define PENDING_KEY_INLINE 64

typedef struct pending {
    replica *r;
    pending_kind kind;
    peer_conn *pc; /* held; ACK and READ */
    uint64_t id;
    bool background; /* ACK: the write's coordinator does not wait for it */
    replica_cb cb; /* LOCAL */
    void *arg;
    uint8_t *key; /* READ: kinline, or malloc'd when longer */
    size_t klen;
    store_version have; /* READ: the asker's version (hlc 0: none) */
    struct pending *prev, *next;
    /* Most keys: a malloc per read went to malloc's slow path under
     * pipelined quorum GETs (a pass queues more than its per-size cache). */
    uint8_t kinline[PENDING_KEY_INLINE];
} pending;

/* A read answered without a value: not found, or the version alone. */
typedef struct read_answer {
    uint64_t id;
    bool found;
    store_version version;
} read_answer;

typedef struct dead_bev {
    struct bufferevent *bev;
    struct dead_bev *next;
} dead_bev;

struct replica {
    server *srv;
    cluster *cl;
    peer *pr;
    struct event_base *base;
    uint64_t timeout_ms;
    uint64_t next_id;
    link *links;
    req **table; /* in-flight requests by id */
    size_t nbuckets, nreqs;
    req *done_head, *done_tail;
    dead_bev *dead;
    struct event *done_ev; /* reports failures and frees dead connections */
    pending *pending;
    size_t npending_answers; /* of them, answers to peers (with a pc) */
    pending *spare; /* freed pendings kept for reuse: one per write otherwise */
    size_t nspare;
    req *req_spare; /* finished requests kept for reuse (REPLICA_SPARE_REQS) */
    bool pressed;            /* clients paused: a peer is too far behind */
    struct event *pressure_ev; /* re-checks that while pressed */
    size_t nreq_spare;
    /* Answers after this pass's commit, per inbound peer connection
     * (held), sent by replica_flush_answers: writes acknowledged ok, and reads
     * answered without a value. [0, nacks) in use, the rest keep their
     * buffers for the next pass. */
    struct answer_batch {
        peer_conn *pc;
        uint64_t *ids;
        size_t n, cap;
        struct read_answer *reads;
        size_t nreads, capreads;
        bool urgent; /* an answer someone waits for: not all background */
    } *acks;
    size_t nacks, capacks;
    /* Room to pack a frame of read answers (READ_BATCH_MAX). */
    Ringkv__ReplicaReadReply *rr_buf, **rr_ptrs;
    Ringkv__Record *rec_buf;
    struct event *ack_ev; /* runs replica_flush_answers after the pass end */
    struct event *flush_ev; /* writes the links' requests (replica_on_flush) */
    link *flush;
    bool flush_armed; /* flush_ev is active */
    uint64_t linger_us;      /* replica_set_linger; 0: frames leave at their pass's end */
    struct event *linger_ev; /* writes the links that linger when they are due */
    bool ack_armed;
    bool flush_waited; /* on_flush let the pass's commit go first once */
    handoff *ho;
    /* The frame of the last replica write packed on a link (link_put), for
     * the same record's other replicas: copied with their own ids. */
    struct write_memo {
        replica_record rec; /* the record it holds: its pointers and version */
        bool background;    /* and the flag its ReplicaWrite carries */
        uint8_t *frame;
        size_t len, cap, id_at, id_len; /* len 0: none */
    } memo;
    replica_prefetch_fn prefetch; /* replica_set_prefetch */
    replica_stats n;
    peer_arena arena; /* the answer being handled (one at a time) */
};

uint64_t replica_mono_ms(void);
uint64_t replica_mono_us(void);
/* snprintf for messages: truncating a long one is fine. */
void replica_say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void replica_copy_id(char *dst, size_t cap, const char *id);
const char *replica_self_id(const replica *r);

/* Work that waits for this pass's commit (replica_serve.c). */
pending *replica_pending_get(replica *r);
int replica_pending_add(replica *r, pending *p);
void replica_pending_free(pending *p);
void replica_on_committed(void *arg, bool ok, const char *err);
/* Sends the answers batched in this pass (ack_ev): acknowledgements and
 * read answers without a value; with send false (shutting down) only lets
 * the connections go. */
void replica_flush_answers(replica *r, bool send);

/* A link's frames (replica_stage.c). replica_link_put queues env's frame
 * on ln: len is its bound when one_pass (peer_frame_request_bound), else
 * its size; rec, when not NULL, is the record env writes (packed once for
 * its replicas); background, that nobody waits for its answer (it may
 * linger). Returns 0, or -1 when out of memory. replica_link_queue_flush:
 * ln has frames for the end of this pass. replica_link_queued: bytes
 * queued on ln and not yet written. */
int replica_link_put(link *ln, const Ringkv__Envelope *env, size_t len, bool one_pass,
                     const replica_record *rec, bool background);
void replica_link_queue_flush(link *ln);
size_t replica_link_queued(const link *ln);
/* Writes the links queued for this pass's end (replica_on_flush), but
 * for those with only background frames, younger than the linger. */
void replica_flush_links(replica *r);
/* flush_ev's and linger_ev's callback. */
void replica_on_flush(evutil_socket_t fd, short what, void *arg);

/* This node's link to the node that opened inbound pc (its LinkHello),
 * when that link is up; else NULL. */
link *replica_answer_link(replica *r, peer_conn *pc);

/* Queues env, an answer, on ln for the end of the pass (background: only
 * acknowledgements of background writes, which may linger). Returns 0, or
 * -1 (over the link's queue bound, out of memory): send it on the inbound
 * connection instead. */
int replica_link_send(link *ln, const Ringkv__Envelope *env, bool background);
/* Links (replica.c): the connection is gone, and every request on it
 * fails exactly once (its bufferevent freed later, never inside its own
 * callback); q off ln's list of requests in flight; ln's timer set for
 * its next deadline; the pressure on the clients looked at again. */
__attribute__((format(printf, 2, 3))) void replica_link_fail(link *ln, const char *fmt, ...);
void replica_link_unlink(link *ln, req *q);
void replica_link_arm(link *ln);
void replica_pressure_update(replica *r);
/* A link's connection has bytes to read: its answers (replica_answer.c);
 * and one answer frame for ln's requests, read there or routed from the
 * inbound connection its node answers on. */
void replica_on_link_read(struct bufferevent *bev, void *arg);
void replica_link_handle(link *ln, const Ringkv__Envelope *env);
/* Requests (replica_req.c). From the spares, or malloc'd: replica_req_put
 * keeps up to REPLICA_SPARE_REQS for reuse, replica_req_free frees. */
req *replica_req_get(replica *r);
void replica_req_put(replica *r, req *q);
void replica_req_free(req *q);
/* Records why q failed and the node it was for, for its callback; without
 * memory for that, the callback hears "out of memory". */
__attribute__((format(printf, 3, 4))) void replica_req_fail(req *q, const char *to,
                                                            const char *fmt, ...);
/* The table of requests in flight by id: 0 or -1 (out of memory). */
int replica_table_grow(replica *r);
void replica_table_del(replica *r, req *q);
req *replica_table_find(replica *r, uint64_t id);
/* Queues q's failure; its callback runs from replica_on_done (done_ev),
 * never from the caller of replica_write/read, so callers need not be
 * reentrant. replica_on_done also frees the links' dead bufferevents. */
void replica_fail_later(replica *r, req *q);
void replica_on_done(evutil_socket_t fd, short what, void *arg);

/* The inbound handlers peer_route gives ReplicaWrite and ReplicaRead to. */
void replica_on_peer_write(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);
void replica_on_peer_read(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);

#endif
