/* stream_serve: records in chunks for streaming, and the serving side of
 * StreamPull (answer a chunk of a range from the store) and StreamPush
 * (apply records handed over, acknowledge after the commit); see stream.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stream_int.h"

uint64_t stream_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *stream_self_id(const stream *st)
{
    return st->srv->node_id;
}

gossip_role stream_self_role(stream *st)
{
    return st->m ? membership_self_role(st->m) : GOSSIP_ROLE_MEMBER;
}

/* ---- records in chunks ---- */

void stream_batch_free(batch *b)
{
    free(b->recs);
    free(b->ptrs);
    free(b->origins);
}

static int batch_grow(batch *b)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    if (cap > STREAM_MAX_RECORDS)
        cap = STREAM_MAX_RECORDS;
    Ringkv__Record *r = realloc(b->recs, cap * sizeof *r);
    if (r)
        b->recs = r;
    char(*o)[STORE_ORIGIN_MAX + 1] = realloc(b->origins, cap * sizeof *o);
    if (o)
        b->origins = o;
    Ringkv__Record **p = realloc(b->ptrs, cap * sizeof *p);
    if (p)
        b->ptrs = p;
    if (!r || !o || !p)
        return -1;
    b->cap = cap;
    return 0;
}

/* store_scan callback: adds a record, skipping live ones already expired
 * (every node reads them as absent). Stops at the byte budget. */
static int batch_add(void *arg, const store_item *it)
{
    batch *b = arg;
    if (it->poslen <= sizeof b->last) {
        memcpy(b->last, it->pos, it->poslen);
        b->lastlen = it->poslen;
    }
    if (!it->tombstone && it->expires_ms && it->expires_ms <= b->now_ms)
        return 0;
    if (b->n == b->cap && (b->cap == STREAM_MAX_RECORDS || batch_grow(b) != 0))
        return 1; /* full (or out of memory): the next chunk goes on from here */
    Ringkv__Record *pb = &b->recs[b->n];
    ringkv__record__init(pb);
    pb->key.data = (uint8_t *)it->key;
    pb->key.len = it->klen;
    if (!it->tombstone) {
        pb->value.data = (uint8_t *)it->value;
        pb->value.len = it->vlen;
    }
    pb->tombstone = it->tombstone;
    pb->expires_ms = it->expires_ms;
    pb->hlc = it->version.hlc;
    memcpy(b->origins[b->n], it->version.origin, sizeof b->origins[b->n]);
    b->n++; /* pointers to recs and origins are set once they stop moving */
    b->bytes += it->klen + it->vlen + strlen(it->version.origin) + STREAM_RECORD_OVERHEAD;
    if (b->n == STREAM_MAX_RECORDS)
        return 1;
    return b->bytes >= b->max_bytes;
}

/* Fills b from (lo, hi] after `after`. Returns 0 with *done, or -1 with err. */
int stream_batch_fill(stream *st, batch *b, uint64_t lo, uint64_t hi, const uint8_t *after,
                      size_t afterlen, bool *done, char *err, size_t errlen)
{
    b->now_ms = server_now_ms(st->srv);
    long n = store_scan(st->srv->st, lo, hi, after, afterlen, STREAM_MAX_RECORDS * 2, batch_add, b,
                        done, err, errlen);
    if (n < 0)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        b->recs[i].origin = b->origins[i];
        b->ptrs[i] = &b->recs[i];
    }
    if (b->lastlen == 0 && afterlen) { /* nothing looked at: the cursor stays */
        memcpy(b->last, after, afterlen);
        b->lastlen = afterlen;
    }
    return 0;
}

/* Applies records off the wire to this pass's batch. Returns 0, or -1 with
 * err (the batch is then lost and the server fails what depended on it). */
int stream_apply_records(stream *st, Ringkv__Record **recs, size_t n, uint64_t *bytes, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        replica_record rec;
        if (replica_record_from_pb(recs[i], &rec) != 0) {
            snprintf(err, errlen, "a streamed record has an origin over %d bytes",
                     STORE_ORIGIN_MAX);
            return -1;
        }
        if (rec.tombstone) {
            rec.value = NULL;
            rec.vlen = 0;
        } else if (!rec.value) {
            rec.value = (const uint8_t *)""; /* protobuf-c: NULL for empty bytes */
        }
        if (replica_store(st->rep, &rec, NULL, err, errlen) != STORE_OK)
            return -1;
        *bytes += rec.klen + rec.vlen + strlen(rec.version.origin) + STREAM_RECORD_OVERHEAD;
    }
    server_schedule_pass_end(st->srv);
    return 0;
}

/* ---- the serving side: StreamPull and StreamPush ---- */

void stream_on_pull(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    stream *st = ctx;
    const Ringkv__StreamPull *rq = env->stream_pull;
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamChunk ch = RINGKV__STREAM_CHUNK__INIT;
    char err[256];
    batch b = {0};
    out.version = PEER_VERSION;
    out.body_case = RINGKV__ENVELOPE__BODY_STREAM_CHUNK;
    out.stream_chunk = &ch;
    ch.id = rq ? rq->id : 0;
    if (!rq || rq->after.len > STREAM_POS_MAX - 1 || (rq->after.len && rq->after.len < 8)) {
        ch.error = "malformed stream request: a resume position of 1..7 or over 511 bytes";
        peer_reply(pc, &out);
        return;
    }
    if (st->srv->stopping) {
        ch.error = "node is shutting down";
        peer_reply(pc, &out);
        return;
    }
    uint32_t max = rq->max_bytes;
    b.max_bytes = max < STREAM_MIN_CHUNK   ? STREAM_MIN_CHUNK
                  : max > STREAM_MAX_CHUNK ? STREAM_MAX_CHUNK
                                           : max;
    bool done = false;
    if (stream_batch_fill(st, &b, rq->lo, rq->hi, rq->after.data, rq->after.len, &done, err,
                          sizeof err) != 0) {
        ch.error = err;
    } else {
        ch.ok = true;
        ch.n_records = b.n;
        ch.records = b.ptrs;
        ch.next.data = b.last;
        ch.next.len = b.lastlen;
        ch.done = done;
        st->n.records_out += b.n;
        st->n.bytes_out += b.bytes;
    }
    peer_reply(pc, &out);
    stream_batch_free(&b);
}

void stream_push_wait_free(push_wait *w)
{
    stream *st = w->st;
    if (w->prev)
        w->prev->next = w->next;
    else
        st->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    peer_conn_drop(w->pc);
    free(w);
}

static void send_push_ack(peer_conn *pc, uint64_t id, bool ok, const char *error)
{
    Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
    Ringkv__StreamPushAck ack = RINGKV__STREAM_PUSH_ACK__INIT;
    out.version = PEER_VERSION;
    out.body_case = RINGKV__ENVELOPE__BODY_STREAM_PUSH_ACK;
    out.stream_push_ack = &ack;
    ack.id = id;
    ack.ok = ok;
    ack.error = (char *)(ok || !error ? "" : error);
    if (peer_conn_is_open(pc))
        peer_reply(pc, &out);
}

void stream_on_push_committed(void *arg, bool ok, const char *err)
{
    push_wait *w = arg;
    send_push_ack(w->pc, w->id, ok, err ? err : "commit failed");
    stream_push_wait_free(w);
}

void stream_on_push(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    stream *st = ctx;
    const Ringkv__StreamPush *p = env->stream_push;
    char err[256];
    if (!p) {
        send_push_ack(pc, 0, false, "malformed stream push");
        return;
    }
    if (st->srv->stopping) {
        send_push_ack(pc, p->id, false, "node is shutting down");
        return;
    }
    uint64_t bytes = 0;
    if (stream_apply_records(st, p->records, p->n_records, &bytes, err, sizeof err) != 0) {
        send_push_ack(pc, p->id, false, err);
        return;
    }
    push_wait *w = calloc(1, sizeof *w);
    if (!w) {
        send_push_ack(pc, p->id, false, "out of memory");
        return;
    }
    *w = (push_wait){.st = st, .pc = pc, .id = p->id, .next = st->waits};
    if (st->waits)
        st->waits->prev = w;
    st->waits = w;
    peer_conn_hold(pc);
    st->n.records_in += p->n_records;
    st->n.bytes_in += bytes;
    if (server_after_commit(st->srv, stream_on_push_committed, w) != 0) {
        send_push_ack(pc, p->id, false, "out of memory");
        stream_push_wait_free(w);
    }
}
