/* replica_answer: the answers that come back on a link (see replica.h):
 * each frame read off the link's connection, its answers matched to their
 * requests by id and handed to their callbacks, batches of them (a
 * commit's acknowledgements, a pass's read answers) fetched a few answers
 * ahead. The links themselves, and the requests, are replica.c's.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "replica_int.h"

/* The request id of an answer to replica_call (streaming, anti-entropy). */
static bool call_reply_id(const Ringkv__Envelope *env, uint64_t *id)
{
    switch (env->body_case) {
    case RINGKV__ENVELOPE__BODY_STREAM_CHUNK:
        return env->stream_chunk && (*id = env->stream_chunk->id, true);
    case RINGKV__ENVELOPE__BODY_STREAM_PUSH_ACK:
        return env->stream_push_ack && (*id = env->stream_push_ack->id, true);
    case RINGKV__ENVELOPE__BODY_MERKLE_REPLY:
        return env->merkle_reply && (*id = env->merkle_reply->id, true);
    case RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REPLY:
        return env->merkle_leaves_reply && (*id = env->merkle_leaves_reply->id, true);
    default:
        return false;
    }
}

static void link_answer(link *ln, uint64_t id, const Ringkv__Envelope *env,
                        const Ringkv__ReplicaReadReply *rr);
static void answer_more(link *ln, const Ringkv__Envelope *env);

void replica_link_handle(link *ln, const Ringkv__Envelope *env)
{
    uint64_t id;
    /* Once a frame, not once an answer: a batch holds thousands. */
    ln->last_active_ms = ln->progress_ms = replica_mono_ms();
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE_ACK && env->write_ack)
        id = env->write_ack->id;
    else if (env->body_case == RINGKV__ENVELOPE__BODY_READ_REPLY && env->read_reply)
        id = env->read_reply->id;
    else if (env->body_case == RINGKV__ENVELOPE__BODY_READ_REPLIES && env->read_replies) {
        answer_more(ln, env);
        return;
    } else if (call_reply_id(env, &id))
        ;
    else if (env->body_case == RINGKV__ENVELOPE__BODY_ERROR && env->error) {
        replica_link_fail(ln, "refused: %s", env->error->message);
        return;
    } else {
        replica_link_fail(ln, "unexpected answer (body %d)", (int)env->body_case);
        return;
    }
    link_answer(ln, id, env,
                env->body_case == RINGKV__ENVELOPE__BODY_READ_REPLY ? env->read_reply : NULL);
    /* A replica acknowledges a commit's writes in one message. */
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE_ACK && env->write_ack->ok)
        answer_more(ln, env);
}

/* How many answers ahead each step of answer_more runs. */
#define ANSWER_AHEAD 4

/* The j-th answer of a batch: an acknowledgement's further ids, or the
 * replies of a ReadReplies. */
static uint64_t batch_id(const Ringkv__Envelope *env, size_t j)
{
    return env->body_case == RINGKV__ENVELOPE__BODY_WRITE_ACK ? env->write_ack->more_ids[j]
                                                              : env->read_replies->replies[j]->id;
}

/* The answers of a batch, in order: an acknowledgement's further ids, or
 * the replies of a ReadReplies. A request and its callback's state have
 * gone cold in the CPU's cache while the batch queued, and a miss after a
 * miss per answer was 8-14% of a node under pipelined SETs; so each is
 * fetched some answers ahead, in steps that each read only what the step
 * before fetched: the request (its table bucket is warm: ids are
 * consecutive), its argument, then what the callback reads (r->prefetch).
 * Prefetches never fault, and every step looks its request up again, so an
 * answer that ends another request (or the link) on the way is harmless. */
static void answer_more(link *ln, const Ringkv__Envelope *env)
{
    replica *r = ln->r;
    bool reads = env->body_case == RINGKV__ENVELOPE__BODY_READ_REPLIES;
    size_t n = reads ? env->read_replies->n_replies : env->write_ack->n_more_ids;
    for (size_t j = 0; j < n + 3 * ANSWER_AHEAD && ln->bev; j++) {
        req *q;
        if (j < n && r->nbuckets)
            __builtin_prefetch(r->table[batch_id(env, j) & (r->nbuckets - 1)]);
        if (j >= ANSWER_AHEAD && j - ANSWER_AHEAD < n &&
            (q = replica_table_find(r, batch_id(env, j - ANSWER_AHEAD))))
            __builtin_prefetch(q->arg);
        if (r->prefetch && j >= 2 * ANSWER_AHEAD && j - 2 * ANSWER_AHEAD < n &&
            (q = replica_table_find(r, batch_id(env, j - 2 * ANSWER_AHEAD))) && q->cb)
            r->prefetch(q->cb, q->arg);
        if (j >= 3 * ANSWER_AHEAD) {
            size_t k = j - 3 * ANSWER_AHEAD;
            link_answer(ln, batch_id(env, k), env, reads ? env->read_replies->replies[k] : NULL);
        }
    }
}

/* Request id's answer is env (rr: the read answer in it, if any). */
static void link_answer(link *ln, uint64_t id, const Ringkv__Envelope *env,
                        const Ringkv__ReplicaReadReply *rr)
{
    replica *r = ln->r;
    req *q = replica_table_find(r, id);
    if (!q || q->ln != ln)
        return; /* answered after its timeout: already reported */
    replica_link_unlink(ln, q);
    if (r->pressed && ln->ninflight <= REPLICA_PRESSURE_LOW)
        replica_pressure_update(r);
    /* The timer stays set for the deadline of the request answered, or an
     * earlier one: when it fires, on_link_timer sets it for what is left.
     * (Setting it at every answer was 3% of a node under pipelined SETs.) */
    if (!ln->timer_set)
        replica_link_arm(ln);
    if (q->env_cb) {
        q->env_cb(q->arg, ln->id, env, NULL);
        replica_req_put(r, q);
        return;
    }
    replica_reply rep = {.ok = false};
    if (env->body_case == RINGKV__ENVELOPE__BODY_WRITE_ACK) {
        rep.ok = env->write_ack->ok;
        rep.error = rep.ok ? NULL : env->write_ack->error;
    } else if (!rr) {
        rep.error = "an answer of another kind than the request's";
    } else {
        rep.ok = rr->ok;
        rep.error = rep.ok ? NULL : rr->error;
        if (rr->ok && rr->found && rr->record) {
            const Ringkv__Record *rec = rr->record;
            rep.found = true;
            rep.rec = (replica_record){.key = rec->key.data,
                                       .klen = rec->key.len,
                                       .value = rec->value.data,
                                       .vlen = rec->value.len,
                                       .tombstone = rec->tombstone,
                                       .expires_ms = rec->expires_ms};
            if (!rep.rec.value)
                rep.rec.value = (const uint8_t *)""; /* protobuf-c: NULL for empty bytes */
            rep.rec.version.hlc = rec->hlc;
            replica_copy_id(rep.rec.version.origin, sizeof rep.rec.version.origin, rec->origin);
            rep.version_only = rr->version_only;
        }
        if (rep.version_only && !q->have) {
            rep.ok = false; /* there is no value to fall back on */
            rep.error = "a version-only answer to a read that named no version";
        }
    }
    if (!rep.ok) {
        r->n.failures++;
        if (!rep.error || !rep.error[0])
            rep.error = "the replica refused without saying why";
    }
    q->cb(q->arg, ln->id, &rep);
    replica_req_put(r, q);
}

void replica_on_link_read(struct bufferevent *bev, void *arg)
{
    link *ln = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char err[256];
    /* ln->bev changes if a callback fails the link: stop then. */
    while (ln->bev == bev) {
        const uint8_t *body;
        uint32_t blen;
        int got = peer_frame_peek(in, &body, &blen, err, sizeof err);
        if (got <= 0) {
            if (got < 0)
                replica_link_fail(ln, "%s", err);
            return;
        }
        /* The envelope's bytes point into the frame: drained once done
         * with, unless a callback failed the link (the loop stops then). */
        Ringkv__Envelope *env = peer_envelope_decode_in(&ln->r->arena, body, blen, err, sizeof err);
        if (!env) {
            evbuffer_drain(in, PEER_HEADER_BYTES + blen);
            replica_link_fail(ln, "%s", err);
            return;
        }
        replica_link_handle(ln, env);
        peer_envelope_free_in(&ln->r->arena, env);
        if (ln->bev == bev)
            evbuffer_drain(in, PEER_HEADER_BYTES + blen);
    }
}
