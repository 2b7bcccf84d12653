/* stream_int: the streaming module's internals, shared by stream.c (plans,
 * tasks, the tick) and stream_serve.c (records in chunks, and the serving
 * side of StreamPull and StreamPush). Nothing else includes it.
 */
#ifndef RINGKV_STREAM_INT_H
#define RINGKV_STREAM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "cluster.h"
#include "config.h"
#include "gossip.h"
#include "membership.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "server.h"
#include "stream.h"

#define STREAM_TICK_MS         100
#define STREAM_MAX_INFLIGHT    2
#define STREAM_RETRY_MS        1000
#define STREAM_PURGE_BUDGET    1000 /* records dropped per tick: 10,000/s, in short passes */
#define STREAM_FOUNDER_WAIT_MS 5000
#define STREAM_MIN_CHUNK       4096u
#define STREAM_MAX_CHUNK       (16u << 20)
#define STREAM_MAX_RECORDS     65536 /* records per chunk */
#define STREAM_POS_MAX         512   /* LMDB keys are at most 511 bytes */
#define STREAM_RECORD_OVERHEAD 24    /* protobuf framing of a record, roughly */

typedef enum task_kind { TASK_JOIN, TASK_DECOM, TASK_REPAIR } task_kind;

typedef struct task {
    task_kind kind;
    uint64_t lo, hi;
    char peer[RANGES_MAX_N][STORE_ORIGIN_MAX + 1]; /* pull: sources, best first; push: [0] */
    size_t npeer, peeri;
    uint8_t after[STREAM_POS_MAX];
    size_t afterlen;
    bool done, busy;
    uint64_t retry_at;
} task;

typedef struct call {
    struct stream *st;
    bool used;
    uint64_t gen;
    size_t task;
    uint8_t next[STREAM_POS_MAX]; /* the cursor once this chunk is in */
    size_t nextlen;
    bool last;
} call;

/* A push waiting for the commit of the records it carried. */
typedef struct push_wait {
    struct stream *st;
    peer_conn *pc;
    uint64_t id;
    struct push_wait *prev, *next;
} push_wait;

struct stream {
    server *srv;
    cluster *cl;
    replica *rep;
    membership *m;
    const config *cfg;
    struct event *tick;
    uint64_t start_ms;
    bool decided, leaving, stopping;

    task *tasks;
    size_t ntasks, cap, next_task;
    uint64_t gen;
    bool have_plan;
    uint64_t plan_cur, plan_pend;
    uint64_t plan_refutations; /* gossip refutations when the join was planned */
    call calls[STREAM_MAX_INFLIGHT];
    push_wait *waits;

    double tokens;
    uint64_t refill_ms;

    uint64_t purge_epoch, purge_since;
    bool purge_done;
    range *pr;
    long npr, pri;

    uint64_t win_start, win_bytes;
    stream_stats n;
};

/* Records gathered from a scan for one chunk; pb fields point into LMDB
 * memory, valid until the next write to the store. */
typedef struct batch {
    Ringkv__Record *recs;
    Ringkv__Record **ptrs;
    char (*origins)[STORE_ORIGIN_MAX + 1];
    size_t n, cap;
    size_t bytes, max_bytes;
    uint64_t now_ms;
    uint8_t last[STREAM_POS_MAX];
    size_t lastlen;
} batch;

uint64_t stream_mono_ms(void);
const char *stream_self_id(const stream *st);
gossip_role stream_self_role(stream *st);

/* Frees b's arrays. */
void stream_batch_free(batch *b);
/* Fills b from (lo, hi] after `after`, up to b->max_bytes. Returns 0 with
 * *done, or -1 with err. */
int stream_batch_fill(stream *st, batch *b, uint64_t lo, uint64_t hi, const uint8_t *after,
                      size_t afterlen, bool *done, char *err, size_t errlen);
/* Applies records off the wire to this pass's batch, adding their bytes to
 * *bytes. Returns 0, or -1 with err (the batch is then lost). */
int stream_apply_records(stream *st, Ringkv__Record **recs, size_t n, uint64_t *bytes, char *err,
                         size_t errlen);

/* The serving side (peer_route handlers) and its pending acks. */
void stream_on_pull(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);
void stream_on_push(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);
void stream_on_push_committed(void *arg, bool ok, const char *err);
void stream_push_wait_free(push_wait *w);

#endif
