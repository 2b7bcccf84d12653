/* replica: node-to-node replication traffic over persistent peer links.
 *
 * One outbound TCP connection per peer on its peer port (node/peer.c frames:
 * "RK" header + protobuf Envelope), reconnected with backoff, with a bounded
 * queue; requests to a peer that gossip reports down fail at once instead
 * of waiting. The receiving side applies writes to its store and answers
 * only after the commit that holds them (server_after_commit), answers
 * reads, and keeps hints for owners that are down (durable, in LMDB) until
 * the owner acknowledges them. Event-loop thread only.
 */
#ifndef RINGKV_REPLICA_H
#define RINGKV_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringkv.pb-c.h"
#include "store.h"

struct server;
struct cluster;

typedef struct replica replica;

/* A versioned record as it travels between nodes. Pointers are borrowed. */
typedef struct replica_record {
    const uint8_t *key;
    size_t klen;
    const uint8_t *value; /* NULL/0 for a tombstone */
    size_t vlen;
    bool tombstone;
    uint64_t expires_ms; /* 0 = never */
    store_version version;
} replica_record;

/* What a remote replica answered. */
typedef struct replica_reply {
    bool ok;             /* write applied (or already newer) / read answered */
    const char *error;   /* when !ok: why (link down, timeout, storage full...) */
    bool found;          /* read: the replica holds a record (maybe a tombstone) */
    replica_record rec;  /* read, when found; valid only during the callback */
    bool version_only;   /* read with `have`: rec holds no key or value, its
                          * version is not newer than have */
} replica_reply;

/* Called once per request with the replica's answer, a link failure, or a
 * timeout (ok = false). */
typedef void (*replica_cb)(void *arg, const char *from_id, const replica_reply *r);

/* Optional (replica_set_prefetch): called with an answer's callback and
 * argument some answers before the callback runs, when one message answers
 * many requests (a replica acknowledges a commit's writes at once); it may
 * fetch what the callback will read into the CPU's cache. */
typedef void (*replica_prefetch_fn)(replica_cb cb, void *arg);

/* Creates the replication layer of a node: inbound handling on the peer
 * port (through node/peer.c) and outbound links. timeout_ms bounds every
 * request. Returns NULL with a message. */
replica *replica_new(struct server *srv, struct cluster *cl, uint64_t timeout_ms, char *err,
                     size_t errlen);
/* Sets r's replica_prefetch_fn (NULL: none). */
void replica_set_prefetch(replica *r, replica_prefetch_fn fn);

/* Frees r. Requests in flight are dropped without their callbacks (as
 * peer_free does); free r before the peer port and the cluster view, and
 * not from inside one of its callbacks. NULL is a no-op. */
void replica_free(replica *r);

/* Sends a write of rec to node `to` (hint_for: the owner when `to` stands in
 * for it, else NULL); `to` may be this node (then as replica_apply_local).
 * cb runs exactly once, also on failure, always from the event loop and
 * never from inside this call: a down node ("node X is down"), a full queue
 * ("queue full"), a lost link and a timeout all arrive through cb. Returns
 * 0, or -1 only when out of memory (cb does not run). */
int replica_write(replica *r, const char *to, const replica_record *rec, const char *hint_for,
                  replica_cb cb, void *arg);

/* replica_write, for a write whose answer nobody waits for (the
 * coordinator answered its client on its own copy, or a read repair): the
 * request may linger on its link for up to the linger, and the replica's
 * acknowledgement on its own (ReplicaWrite.background), to leave with
 * other frames in one send. */
int replica_write_background(replica *r, const char *to, const replica_record *rec,
                             const char *hint_for, replica_cb cb, void *arg);

/* How long background frames may linger on a link (microseconds; 0, the
 * default: every frame leaves at the end of its event-loop pass).
 * [replication] linger. */
void replica_set_linger(replica *r, uint64_t linger_us);

/* Bytes queued on r's links and not yet taken by their sockets: a
 * graceful stop waits for them (server.c's drain). */
size_t replica_unsent(const replica *r);

/* Asks node `to` for its record of key. cb runs exactly once. have (NULL:
 * none) is a version the caller holds already: a replica whose version is
 * not newer answers with the version alone (reply's version_only). */
int replica_read(replica *r, const char *to, const uint8_t *key, size_t klen,
                 const store_version *have, replica_cb cb, void *arg);

/* Applies rec to the local store as a replica would (last-write-wins; with
 * hint_for naming another node, a durable hint for that owner instead of
 * the record, replayed to it when it is up) and calls cb after the commit
 * (never from inside this call). Used by the coordinator for its own
 * replica so the local and remote paths are one. */
int replica_apply_local(replica *r, const replica_record *rec, const char *hint_for,
                        replica_cb cb, void *arg);

/* replica_call's outcome: the answer (freed after the call), or NULL with
 * err (down, queue full, link lost, timeout). */
typedef void (*replica_env_fn)(void *arg, const char *from_id, const Ringkv__Envelope *reply,
                               const char *err);

/* Sends env, a request of streaming or anti-entropy, to node `to` over its
 * link, with a fresh request id written to *idfield (a field of env) first.
 * fn runs exactly once, as replica_write's cb does, with the answer whose
 * id matches. Returns 0, or -1 when out of memory (fn does not run). */
int replica_call(replica *r, const char *to, Ringkv__Envelope *env, uint64_t *idfield,
                 replica_env_fn fn, void *arg);

/* Applies rec to this pass's batch as a replica does (last-write-wins; an
 * older record counts as success; a hint when hint_for names another node),
 * without waiting for the commit. On an error the batch is lost and every
 * reply that depended on it fails. */
store_result replica_store(replica *r, const replica_record *rec, const char *hint_for,
                           char *err, size_t errlen);

/* Records between the wire and the store: to_pb borrows rec's memory;
 * from_pb checks the origin's length and borrows pb's. */
void replica_record_to_pb(const replica_record *rec, Ringkv__Record *pb);
int replica_record_from_pb(const Ringkv__Record *pb, replica_record *out);

/* Backpressure: while a peer that answers has this many requests in
 * flight, the node stops reading client requests, until it is down to the
 * low mark. At `one` a write is acknowledged before its peers apply it, and
 * pipelined writes outran them: a quarter to a third of the replica writes
 * were dropped at REPLICA_MAX_INFLIGHT ("queue full"), left to read repair
 * and anti-entropy. A peer with nothing answered for REPLICA_STALL_MS
 * (stopped, cut off) does not pause anyone: gossip will mark it down, and
 * until then its queue fills and drops as before, so that a hung peer does
 * not stall writes at `one`. */
#define REPLICA_PRESSURE_HIGH   16384
#define REPLICA_PRESSURE_LOW    8192
#define REPLICA_STALL_MS        500

typedef struct replica_stats {
    uint64_t writes_sent, reads_sent, failures, timeouts;
    uint64_t writes_applied, reads_served;
    uint64_t hints_stored, hints_delivered, hints_pending;
    uint64_t links_up, reconnects, queue_drops;
    uint64_t answers_on_link; /* answer frames sent on this node's own link */
    uint64_t link_writes;     /* sends of a link's staged frames (lingering makes fewer) */
    uint64_t pressure_pauses; /* times clients were paused for a peer behind */
    bool pressed;             /* paused now */
} replica_stats;
void replica_get_stats(const replica *r, replica_stats *out);

#endif
