/* replica_serve: the replica side of replication (see replica.h): records
 * between the wire and the store, applying writes to the pass's batch and
 * acknowledging them after its commit, answering reads from committed data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "quorum.h"
#include "replica_int.h"

void replica_record_to_pb(const replica_record *rec, Ringkv__Record *pb)
{
    pb->key.data = (uint8_t *)rec->key;
    pb->key.len = rec->klen;
    pb->value.data = rec->tombstone ? NULL : (uint8_t *)rec->value;
    pb->value.len = rec->tombstone ? 0 : rec->vlen;
    pb->tombstone = rec->tombstone;
    pb->expires_ms = rec->expires_ms;
    pb->hlc = rec->version.hlc;
    pb->origin = (char *)rec->version.origin;
}

/* ---- the replica side: applying and answering ---- */

/* Applies rec to the batch (a hint when hint_for names another node);
 * STALE counts as success. On an error the batch is lost, and the server
 * fails every reply that depended on it. */
store_result replica_store(replica *r, const replica_record *rec, const char *hint_for, char *err,
                           size_t errlen)
{
    store *st = r->srv->st;
    const config *cfg = r->srv->cfg;
    if (rec->klen == 0 || rec->klen > cfg->max_key_bytes || rec->vlen > cfg->max_value_bytes ||
        strnlen(rec->version.origin, sizeof rec->version.origin) > STORE_ORIGIN_MAX) {
        replica_say(err, errlen,
                    "record refused: key of %zu bytes or value of %zu bytes is "
                    "empty or over this node's limits",
                    rec->klen, rec->vlen);
        return STORE_ERR_IO;
    }
    store_result res;
    bool hint = hint_for && hint_for[0] && strcmp(hint_for, replica_self_id(r)) != 0;
    if (hint)
        res = store_hint_put(st, hint_for, rec->key, rec->klen, rec->value, rec->vlen,
                             rec->tombstone, rec->expires_ms, &rec->version, err, errlen);
    else if (rec->tombstone)
        res = store_del(st, rec->key, rec->klen, &rec->version, err, errlen);
    else
        res = store_put(st, rec->key, rec->klen, rec->value, rec->vlen, rec->expires_ms,
                        &rec->version, err, errlen);
    hlc_observe(&r->srv->clock, rec->version.hlc);
    if (res == STORE_STALE)
        res = STORE_OK;
    if (res != STORE_OK && (hint || store_write_errors_discard(st))) {
        if (res != STORE_ERR_FULL) /* the store logs a full disk once per episode */
            log_error("replica write failed, this pass's writes are lost: %s", err);
        server_batch_failed(r->srv, res, err);
    } else if (res == STORE_OK && hint) {
        r->n.hints_stored++;
    }
    return res;
}

static void send_ack(peer_conn *pc, uint64_t id, bool ok, const char *error)
{
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaWriteAck ack = RINGKV__REPLICA_WRITE_ACK__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_WRITE_ACK;
    env.write_ack = &ack;
    ack.id = id;
    ack.ok = ok;
    ack.error = (char *)(ok || !error ? "" : error);
    if (peer_conn_is_open(pc))
        peer_reply(pc, &env);
}

/* At most this many ids in one acknowledgement frame (about 40 KB). */
#define ACK_BATCH_MAX 4096

/* The answer batch of pc for this pass, started (pc held) when there is
 * none; NULL when out of memory. */
static struct answer_batch *batch_of(replica *r, peer_conn *pc)
{
    for (size_t i = 0; i < r->nacks; i++)
        if (r->acks[i].pc == pc)
            return &r->acks[i];
    if (r->nacks == r->capacks) {
        size_t cap = r->capacks ? r->capacks * 2 : 4;
        struct answer_batch *a = realloc(r->acks, cap * sizeof *a);
        if (!a)
            return NULL;
        memset(a + r->capacks, 0, (cap - r->capacks) * sizeof *a);
        r->acks = a, r->capacks = cap;
    }
    struct answer_batch *b = &r->acks[r->nacks++];
    b->pc = pc;
    b->n = b->nreads = 0;
    b->urgent = false;
    peer_conn_hold(pc);
    if (!r->ack_armed) {
        r->ack_armed = true;
        event_active(r->ack_ev, EV_TIMEOUT, 1);
    }
    return b;
}

/* Room for one more element in *arr (of size each, *cap of them, n used). */
static bool grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 64;
    void *a = realloc(*arr, c * size);
    if (!a)
        return false;
    *arr = a, *cap = c;
    return true;
}

/* A write applied and committed: its id joins the batch of its connection,
 * sent once the pass's after-commit work is done. Acknowledging the writes
 * of a pass in one frame per connection instead of one frame apiece saves
 * a packed and an unpacked envelope per replicated write. */
static void ack_later(replica *r, peer_conn *pc, uint64_t id, bool background)
{
    struct answer_batch *b = batch_of(r, pc);
    if (!b || !grow((void **)&b->ids, &b->cap, b->n, sizeof *b->ids)) {
        send_ack(pc, id, true, NULL);
        return;
    }
    b->ids[b->n++] = id;
    b->urgent |= !background;
}

/* At most this many answers in one ReadReplies frame. */
#define READ_BATCH_MAX 4096

/* One frame of answers for b's node: on this node's own link to it when
 * that is up (see replica_stage.c's replica_on_flush), else back on b's
 * connection. */
static void send_answer(struct answer_batch *b, link *ln, const Ringkv__Envelope *env)
{
    if (!ln || replica_link_send(ln, env, !b->urgent) != 0)
        peer_reply(b->pc, env);
}

/* Packs the answers [at, at + k) of b into one ReadReplies frame. */
static void send_reads(replica *r, struct answer_batch *b, link *ln, size_t at, size_t k)
{
    if (!r->rr_buf) {
        r->rr_buf = malloc(READ_BATCH_MAX * sizeof *r->rr_buf);
        r->rr_ptrs = malloc(READ_BATCH_MAX * sizeof *r->rr_ptrs);
        r->rec_buf = malloc(READ_BATCH_MAX * sizeof *r->rec_buf);
        if (!r->rr_buf || !r->rr_ptrs || !r->rec_buf) {
            free(r->rr_buf), free(r->rr_ptrs), free(r->rec_buf);
            r->rr_buf = NULL, r->rr_ptrs = NULL, r->rec_buf = NULL;
            peer_conn_close(b->pc, "out of memory answering reads");
            return;
        }
    }
    for (size_t i = 0; i < k; i++) {
        const read_answer *a = &b->reads[at + i];
        Ringkv__ReplicaReadReply *rr = &r->rr_buf[i];
        ringkv__replica_read_reply__init(rr);
        rr->id = a->id;
        rr->ok = true;
        if (a->found) {
            Ringkv__Record *pb = &r->rec_buf[i];
            ringkv__record__init(pb);
            pb->hlc = a->version.hlc;
            pb->origin = (char *)a->version.origin;
            rr->found = true;
            rr->version_only = true;
            rr->record = pb;
        }
        r->rr_ptrs[i] = rr;
    }
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReadReplies rs = RINGKV__READ_REPLIES__INIT;
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_READ_REPLIES;
    env.read_replies = &rs;
    rs.n_replies = k;
    rs.replies = r->rr_ptrs;
    send_answer(b, ln, &env);
}

void replica_flush_answers(replica *r, bool send)
{
    for (size_t i = 0; i < r->nacks; i++) {
        struct answer_batch *b = &r->acks[i];
        link *ln = send && peer_conn_is_open(b->pc) ? replica_answer_link(r, b->pc) : NULL;
        for (size_t at = 0; send && at < b->nreads && peer_conn_is_open(b->pc);
             at += READ_BATCH_MAX)
            send_reads(r, b, ln, at,
                       b->nreads - at < READ_BATCH_MAX ? b->nreads - at : READ_BATCH_MAX);
        for (size_t at = 0; send && at < b->n && peer_conn_is_open(b->pc); at += ACK_BATCH_MAX) {
            size_t k = b->n - at < ACK_BATCH_MAX ? b->n - at : ACK_BATCH_MAX;
            Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
            Ringkv__ReplicaWriteAck ack = RINGKV__REPLICA_WRITE_ACK__INIT;
            env.version = PEER_VERSION;
            env.body_case = RINGKV__ENVELOPE__BODY_WRITE_ACK;
            env.write_ack = &ack;
            ack.id = b->ids[at];
            ack.ok = true;
            ack.n_more_ids = k - 1;
            ack.more_ids = b->ids + at + 1;
            send_answer(b, ln, &env);
        }
        peer_conn_drop(b->pc);
        b->pc = NULL;
        b->n = b->nreads = 0;
    }
    r->nacks = 0;
    r->ack_armed = false;
    /* The links' requests waited for these answers (replica_on_flush). Not when
     * dropping them: replica_free has freed the links by then. */
    if (send)
        replica_flush_links(r);
}

/* An answer without a value joins pc's batch (ReadReplies); false when
 * out of memory, and it is then sent alone. */
static bool answer_later(replica *r, peer_conn *pc, const read_answer *a)
{
    struct answer_batch *b = batch_of(r, pc);
    if (!b || !grow((void **)&b->reads, &b->capreads, b->nreads, sizeof *b->reads))
        return false;
    b->reads[b->nreads++] = *a;
    b->urgent = true;
    return true;
}

/* Answers a read from the committed store: a tombstone or an expired record
 * is still "found", with its version, so the coordinator compares it. When
 * that version is not newer than the one the asker has, the version goes
 * alone: under quorum reads most answers are that, and the value and key
 * need not be copied, sent and decoded again, nor the record read, when
 * the record cache's slot keeps its version (store_get_version). Those and
 * "not found" go in the pass's batch for pc. */
static void answer_read(replica *r, peer_conn *pc, uint64_t id, const uint8_t *key, size_t klen,
                        const store_version *have)
{
    read_answer a = {.id = id};
    if (have->hlc && store_get_version(r->srv->st, key, klen, &a.found, &a.version) &&
        (!a.found || quorum_version_cmp(&a.version, have) <= 0) &&
        (!peer_conn_is_open(pc) || answer_later(r, pc, &a))) {
        r->n.reads_served++;
        return; /* else out of memory for the batch: answered alone, below */
    }
    Ringkv__Envelope env = RINGKV__ENVELOPE__INIT;
    Ringkv__ReplicaReadReply rr = RINGKV__REPLICA_READ_REPLY__INIT;
    Ringkv__Record pb = RINGKV__RECORD__INIT;
    store_record rec;
    replica_record rr_rec; /* pb points into it: lives until the reply is packed */
    char err[256];
    env.version = PEER_VERSION;
    env.body_case = RINGKV__ENVELOPE__BODY_READ_REPLY;
    env.read_reply = &rr;
    rr.id = id;
    store_result res =
        store_get(r->srv->st, key, klen, server_now_ms(r->srv), &rec, err, sizeof err);
    if (res == STORE_OK || (res == STORE_NOT_FOUND && rec.version.hlc != 0)) {
        rr.ok = true;
        rr.found = true;
        rr_rec = (replica_record){.key = key,
                                  .klen = klen,
                                  .value = rec.value,
                                  .vlen = rec.value_len,
                                  .tombstone = rec.tombstone,
                                  .expires_ms = rec.expires_ms,
                                  .version = rec.version};
        if (have->hlc && quorum_version_cmp(&rec.version, have) <= 0) {
            rr_rec = (replica_record){.version = rec.version};
            rr.version_only = true;
        }
        replica_record_to_pb(&rr_rec, &pb);
        rr.record = &pb;
    } else if (res == STORE_NOT_FOUND) {
        rr.ok = true;
    } else {
        rr.error = err;
    }
    r->n.reads_served++;
    if (!peer_conn_is_open(pc))
        return;
    if (rr.ok && (!rr.found || rr.version_only)) {
        a.found = rr.found;
        a.version = rec.version;
        if (answer_later(r, pc, &a))
            return;
    }
    peer_reply(pc, &env);
}

#define REPLICA_SPARE_MAX 4096 /* pendings kept for reuse */

/* A zeroed pending, from the spares when there are any. */
pending *replica_pending_get(replica *r)
{
    pending *p = r->spare;
    if (!p)
        return calloc(1, sizeof *p);
    r->spare = p->next;
    r->nspare--;
    if (r->spare) /* its link, read by the next pop (see replica.c's req_get) */
        __builtin_prefetch(&r->spare->next);
    memset(p, 0, sizeof *p);
    return p;
}

void replica_pending_free(pending *p)
{
    replica *r = p->r;
    if (p->prev)
        p->prev->next = p->next;
    else
        r->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->pc) {
        r->npending_answers--;
        peer_conn_drop(p->pc);
    }
    if (p->key != p->kinline)
        free(p->key);
    if (r->nspare < REPLICA_SPARE_MAX) {
        p->next = r->spare;
        r->spare = p;
        r->nspare++;
    } else {
        free(p);
    }
}

void replica_on_committed(void *arg, bool ok, const char *err)
{
    pending *p = arg;
    replica *r = p->r;
    switch (p->kind) {
    case PENDING_ACK:
        if (ok) {
            r->n.writes_applied++;
            ack_later(r, p->pc, p->id, p->background);
        } else {
            send_ack(p->pc, p->id, false, err ? err : "commit failed");
        }
        break;
    case PENDING_READ:
        answer_read(r, p->pc, p->id, p->key, p->klen, &p->have);
        break;
    case PENDING_LOCAL: {
        if (ok)
            r->n.writes_applied++;
        replica_reply rep = {.ok = ok, .error = ok ? NULL : (err ? err : "commit failed")};
        replica_cb cb = p->cb;
        void *cbarg = p->arg;
        replica_pending_free(p);
        cb(cbarg, replica_self_id(r), &rep);
        return;
    }
    }
    replica_pending_free(p);
}

/* Queues p for after this pass's commit. Returns 0, or -1 (p is freed). */
int replica_pending_add(replica *r, pending *p)
{
    p->r = r;
    p->next = r->pending;
    if (r->pending)
        r->pending->prev = p;
    r->pending = p;
    if (p->pc) {
        r->npending_answers++;
        peer_conn_hold(p->pc);
    }
    if (server_after_commit(r->srv, replica_on_committed, p) != 0) {
        replica_pending_free(p);
        return -1;
    }
    return 0;
}

/* A record off the wire, checked; pointers into pb. */
int replica_record_from_pb(const Ringkv__Record *pb, replica_record *out)
{
    if (!pb || strlen(pb->origin) > STORE_ORIGIN_MAX)
        return -1;
    *out = (replica_record){.key = pb->key.data,
                            .klen = pb->key.len,
                            .value = pb->value.data,
                            .vlen = pb->value.len,
                            .tombstone = pb->tombstone,
                            .expires_ms = pb->expires_ms};
    out->version.hlc = pb->hlc;
    memcpy(out->version.origin, pb->origin, strlen(pb->origin) + 1);
    return 0;
}

void replica_on_peer_write(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    replica *r = ctx;
    const Ringkv__ReplicaWrite *w = env->write;
    replica_record rec;
    char err[256];
    if (!w || replica_record_from_pb(w->record, &rec) != 0 ||
        strlen(w->hint_for) > STORE_ORIGIN_MAX) {
        send_ack(pc, w ? w->id : 0, false,
                 "malformed write: no record, or a node id "
                 "over 64 bytes");
        return;
    }
    if (r->srv->stopping) {
        send_ack(pc, w->id, false, "node is shutting down");
        return;
    }
    if (replica_store(r, &rec, w->hint_for, err, sizeof err) != STORE_OK) {
        send_ack(pc, w->id, false, err);
        return;
    }
    pending *p = replica_pending_get(r);
    if (!p) {
        send_ack(pc, w->id, false, "out of memory");
        return;
    }
    p->kind = PENDING_ACK;
    p->pc = pc;
    p->id = w->id;
    p->background = w->background;
    if (replica_pending_add(r, p) != 0)
        send_ack(pc, w->id, false, "out of memory");
}

void replica_on_peer_read(void *ctx, peer_conn *pc, const Ringkv__Envelope *env)
{
    replica *r = ctx;
    const Ringkv__ReplicaRead *rd = env->read;
    if (!rd || rd->key.len == 0 || rd->key.len > r->srv->cfg->max_key_bytes) {
        Ringkv__Envelope out = RINGKV__ENVELOPE__INIT;
        Ringkv__ReplicaReadReply rr = RINGKV__REPLICA_READ_REPLY__INIT;
        out.version = PEER_VERSION;
        out.body_case = RINGKV__ENVELOPE__BODY_READ_REPLY;
        out.read_reply = &rr;
        rr.id = rd ? rd->id : 0;
        rr.error = "malformed read: empty key or over max_key_bytes";
        peer_reply(pc, &out);
        return;
    }
    /* After the commit: the batch may hold writes not yet durable, and a
     * read must not return what could still be rolled back. */
    pending *p = replica_pending_get(r);
    uint8_t *key = NULL;
    if (p)
        key = rd->key.len <= sizeof p->kinline ? p->kinline : malloc(rd->key.len);
    if (!p || !key) {
        free(p);
        peer_conn_close(pc, "out of memory");
        return;
    }
    memcpy(key, rd->key.data, rd->key.len);
    /* The answers wait for the pass's end, and each would wait on two
     * misses in the CPU's cache (the record cache's slot, then its entry):
     * 11% of a node's time under quorum GETs. Ask for this key's slot now,
     * and for the entry of the read queued before, whose slot has had a
     * frame's decoding to arrive; not when that read named a version,
     * since its slot is likely to answer alone (store_get_version). */
    store_prefetch(r->srv->st, key, rd->key.len, false);
    if (r->pending && r->pending->kind == PENDING_READ && !r->pending->have.hlc)
        store_prefetch(r->srv->st, r->pending->key, r->pending->klen, true);
    p->kind = PENDING_READ;
    p->pc = pc;
    p->id = rd->id;
    p->key = key;
    p->klen = rd->key.len;
    if (rd->have_hlc) { /* else zero, from replica_pending_get */
        p->have.hlc = rd->have_hlc;
        replica_copy_id(p->have.origin, sizeof p->have.origin, rd->have_origin);
    }
    if (replica_pending_add(r, p) != 0)
        peer_conn_close(pc, "out of memory");
}
