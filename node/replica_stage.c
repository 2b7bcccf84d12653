/* replica_stage: the frames a replication link holds until they leave
 * (see replica_int.h). While a link is up, what the event loop queues on it
 * is packed into the link's own buffer, its stage: a write's frame is packed
 * once for all of the record's replicas (the memo); the stage goes to the
 * socket in one send at the end of the pass, with the answers the pass's
 * commit releases, or, when it holds only frames nobody waits for, up to
 * the linger later. replica.c makes the links and sends requests on them;
 * replica_serve.c queues answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pbwire.h"
#include "peer.h"
#include "replica_int.h"
#include "server.h"

/* ---- a link's frames of one pass ----
 * While a link is up, the frames a pass queues on it are packed into the
 * link's own buffer (its stage) and leave in one send at the pass's end;
 * what the socket does not take then goes to the bufferevent's output.
 * Each frame packed into that output took evbuffer_reserve_space and
 * evbuffer_commit_space, and the callbacks the commit runs: about 300
 * instructions a request (callgrind, quorum GETs -P16). Whatever the
 * output holds is older than the stage: the stage goes after it. */

#define LINK_STAGE_MIN (16 * 1024)
#define LINK_STAGE_KEEP (1024 * 1024) /* a larger stage is freed once written */

/* Room for len more bytes in ln's stage. */
static int stage_room(link *ln, size_t len)
{
    if (ln->stage_cap - ln->staged >= len)
        return 0;
    size_t cap = ln->stage_cap ? ln->stage_cap : LINK_STAGE_MIN;
    while (cap - ln->staged < len)
        cap *= 2;
    uint8_t *b = realloc(ln->stage, cap);
    if (!b)
        return -1;
    ln->stage = b;
    ln->stage_cap = cap;
    return 0;
}

/* Bytes queued on ln and not yet written: the output's and the stage's. */
size_t replica_link_queued(const link *ln)
{
    return evbuffer_get_length(bufferevent_get_output(ln->bev)) + ln->staged;
}

/* ---- one record, many replicas ----
 * A coordinator sends each write to its replicas one after the other, the
 * same record each time: the frame packed for the first (about 500
 * instructions a SET at `one`, callgrind) is kept, and the others get a
 * copy with their own request id written over it. The record is the same
 * when its key and value are the same memory and its version the same
 * (a version names one write). Frames up to MEMO_MAX are kept. */

#define MEMO_MAX (64 * 1024)

static bool same_record(const replica_record *a, const replica_record *b)
{
    return a->key == b->key && a->klen == b->klen && a->value == b->value && a->vlen == b->vlen &&
           a->tombstone == b->tombstone && a->expires_ms == b->expires_ms &&
           a->version.hlc == b->version.hlc && strcmp(a->version.origin, b->version.origin) == 0;
}

/* Copies the kept frame of rec to ln's stage with request id id: true, or
 * false when it holds another record, or id's varint is of another length
 * (then the frame's lengths would differ too). */
static bool memo_put(link *ln, const replica_record *rec, bool background, uint64_t id)
{
    const struct write_memo *m = &ln->r->memo;
    if (!m->len || pbw_varint_len(id) != m->id_len || m->background != background ||
        !same_record(&m->rec, rec) || stage_room(ln, m->len) != 0)
        return false;
    uint8_t *p = ln->stage + ln->staged;
    memcpy(p, m->frame, m->len);
    pbw_put_varint(p + m->id_at, id);
    ln->staged += m->len;
    return true;
}

/* Keeps frame (n bytes, the write of rec, its request id's varint at
 * id_at, holding id) for memo_put. */
static void memo_keep(replica *r, const replica_record *rec, bool background,
                      const uint8_t *frame, size_t n, size_t id_at, uint64_t id)
{
    struct write_memo *m = &r->memo;
    m->len = 0;
    if (!id_at || n > MEMO_MAX)
        return;
    if (n > m->cap) {
        uint8_t *b = realloc(m->frame, n);
        if (!b)
            return;
        m->frame = b;
        m->cap = n;
    }
    memcpy(m->frame, frame, n);
    m->rec = *rec;
    m->background = background;
    m->len = n;
    m->id_at = id_at;
    m->id_len = pbw_varint_len(id);
}

/* Queues env's frame on ln (see replica_int.h): on its stage, or, while
 * the link connects, in the bufferevent's output. */
int replica_link_put(link *ln, const Ringkv__Envelope *env, size_t len, bool one_pass,
                     const replica_record *rec, bool background)
{
    if (ln->state != LINK_UP) { /* written by the bufferevent once connected */
        struct evbuffer *out = bufferevent_get_output(ln->bev);
        return one_pass ? peer_frame_append_request(out, env, len)
                        : peer_frame_append(out, env, len);
    }
    if (!background)
        ln->urgent = true;
    else if (!ln->linger_since_us && ln->r->linger_us)
        ln->linger_since_us = replica_mono_us();
    if (rec && one_pass && memo_put(ln, rec, background, env->write->id))
        return 0;
    if (stage_room(ln, len) != 0)
        return -1;
    uint8_t *p = ln->stage + ln->staged;
    size_t id_at = 0;
    size_t n = one_pass ? peer_frame_pack_request(p, env, len, rec ? &id_at : NULL) : 0;
    if (!n) {
        if (one_pass && (!(len = peer_frame_size(env)) || stage_room(ln, len) != 0))
            return -1;
        p = ln->stage + ln->staged;
        peer_frame_write(p, env, len);
        n = len;
    }
    if (rec)
        memo_keep(ln->r, rec, background, p, n, id_at, env->write->id);
    ln->staged += n;
    return 0;
}

/* ln's stage to its socket: straight from the stage when nothing older
 * waits in the output, and what the socket leaves to the bufferevent. */
static void link_write(link *ln)
{
    struct bufferevent *bev = ln->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    size_t done = 0;
    if (ln->staged && evbuffer_get_length(out) == 0 &&
        !(bufferevent_get_enabled(bev) & EV_WRITE)) {
        ssize_t n;
        do
            n = send(bufferevent_getfd(bev), ln->stage, ln->staged, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            replica_link_fail(ln, "%s", evutil_socket_error_to_string(errno));
            return;
        }
        if (n > 0)
            done = (size_t)n;
    }
    if (done < ln->staged && evbuffer_add(out, ln->stage + done, ln->staged - done) != 0) {
        replica_link_fail(ln, "out of memory queueing %zu bytes", ln->staged - done);
        return;
    }
    if (ln->staged)
        ln->r->n.link_writes++;
    ln->staged = 0;
    ln->urgent = false;
    ln->linger_since_us = 0;
    if (ln->stage_cap > LINK_STAGE_KEEP) {
        free(ln->stage);
        ln->stage = NULL;
        ln->stage_cap = 0;
    }
    peer_write_direct(bev);
}

/* ln has frames to write at the end of this pass. */
void replica_link_queue_flush(link *ln)
{
    replica *r = ln->r;
    if (ln->state != LINK_UP)
        return;
    if (!r->flush_armed) {
        r->flush_armed = true;
        event_active(r->flush_ev, EV_TIMEOUT, 1);
    }
    if (ln->flush_queued)
        return;
    ln->flush_queued = true;
    ln->flush_next = r->flush;
    r->flush = ln;
}

/* ---- lingering ----
 * At `one`, a coordinator with a copy of its own answers a write after its
 * own commit; its requests to the other replicas, and their
 * acknowledgements, are waited for by nobody (background). Sent at the end
 * of every pass, under unpipelined SETs they left a few records at a time:
 * each send a system call, a packet through the loopback's receive path
 * and a wakeup of the other node, about a tenth of the nodes' CPU (perf,
 * `one` SETs of 3 B on three nodes). A link whose stage holds only
 * background frames keeps them until the first is [replication] linger
 * old, or LINGER_MAX_BYTES are staged; a frame someone waits for (a
 * quorum's write or read, an answer to one) takes everything staged with
 * it at the pass's end, in order. Not while the node stops: the drain
 * waits for the links' bytes (replica_unsent). */

#define LINGER_MAX_BYTES (64 * 1024)

void replica_flush_links(replica *r)
{
    r->flush_waited = false;
    bool linger = r->linger_us && !r->srv->stopping;
    link *keep = NULL, **tail = &keep;
    uint64_t now = 0, due = UINT64_MAX;
    while (r->flush) {
        link *ln = r->flush;
        r->flush = ln->flush_next;
        if (!ln->bev || ln->state != LINK_UP) {
            ln->flush_queued = false;
            continue;
        }
        if (linger && !ln->urgent && ln->linger_since_us && ln->staged < LINGER_MAX_BYTES) {
            if (!now)
                now = replica_mono_us();
            uint64_t at = ln->linger_since_us + r->linger_us;
            if (at > now) { /* stays queued */
                if (at < due)
                    due = at;
                ln->flush_next = NULL;
                *tail = ln;
                tail = &ln->flush_next;
                continue;
            }
        }
        ln->flush_queued = false;
        link_write(ln);
    }
    r->flush = keep;
    if (keep && !evtimer_pending(r->linger_ev, NULL)) {
        uint64_t d = due - now;
        struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
        evtimer_add(r->linger_ev, &tv);
    }
}

void replica_set_linger(replica *r, uint64_t linger_us)
{
    r->linger_us = linger_us;
}

size_t replica_unsent(const replica *r)
{
    size_t n = 0;
    for (const link *ln = r->links; ln; ln = ln->next)
        if (ln->bev && ln->state == LINK_UP)
            n += replica_link_queued(ln);
    return n;
}

/* The end of a pass: each link's requests go to its socket in one write,
 * without arming EPOLLOUT (see peer_write_direct and peer.c's on_flush),
 * together with the answers this node owes the link's node, which the
 * pass's commit releases. When the pass has such answers coming, this
 * waits once behind the commit, and while they are to be sent,
 * replica_flush_answers writes the links after them. Requests and answers
 * for one node then leave in one write, where they took two, on two
 * connections, and two reads on the other side. Not under `fsync always`:
 * there the commit is an fdatasync, which the requests would wait out.
 * Also linger_ev's callback: lingering frames that come due then wait for
 * the pass's answers in the same way. */
void replica_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica *r = arg;
    r->flush_armed = false;
    if (r->ack_armed)
        return;
    if (r->npending_answers && r->srv->pass_end_scheduled && !r->flush_waited &&
        r->srv->cfg->fsync != STORE_FSYNC_ALWAYS) {
        r->flush_waited = true;
        r->flush_armed = true;
        event_active(r->flush_ev, EV_TIMEOUT, 1);
        return;
    }
    replica_flush_links(r);
}

int replica_link_send(link *ln, const Ringkv__Envelope *env, bool background)
{
    size_t len = peer_frame_size(env);
    if (!len || ln->state != LINK_UP || !ln->bev)
        return -1;
    if (replica_link_queued(ln) + len > REPLICA_MAX_QUEUE_BYTES ||
        replica_link_put(ln, env, len, false, NULL, background) != 0)
        return -1;
    ln->r->n.answers_on_link++;
    replica_link_queue_flush(ln);
    return 0;
}
