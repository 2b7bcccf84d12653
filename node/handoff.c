/* handoff: hinted handoff's delivery; see handoff.h.
 *
 * Per owner, a round walks its hints in key order from a resume position,
 * keeping up to HANDOFF_INFLIGHT writes in flight; each ack deletes its hint
 * (in the current batch, committed at the pass end). A round ends when every
 * hint was sent and answered, or at the first failure (the owner went down
 * again, its link is backing off, its queue is full): the next round starts
 * over from the first hint left.
 */
#include "handoff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cluster.h"
#include "log.h"
#include "replica.h"
#include "server.h"
#include "store.h"

/* Delivery of one owner's hints. */
typedef struct owner_state {
    handoff *ho;
    char owner[STORE_ORIGIN_MAX + 1];
    uint8_t pos[STORE_HINT_POS_MAX]; /* resume after this hint */
    size_t poslen;
    unsigned inflight;
    bool active, at_end, stop;
    struct owner_state *next;
} owner_state;

/* One hint in flight: what its ack needs to delete it. */
typedef struct hint_req {
    owner_state *os;
    struct hint_req *prev, *next; /* ho->reqs, so handoff_free finds them */
    store_version version;
    size_t klen;
    uint8_t key[];
} hint_req;

struct handoff {
    server *srv;
    cluster *cl;
    replica *r;
    owner_state *owners;
    hint_req *reqs;
    struct event *tick_ev;
    uint64_t delivered;
};

static void pump(owner_state *os);

static owner_state *owner_get(handoff *ho, const char *owner)
{
    for (owner_state *os = ho->owners; os; os = os->next)
        if (strcmp(os->owner, owner) == 0)
            return os;
    owner_state *os = calloc(1, sizeof *os);
    if (!os)
        return NULL;
    os->ho = ho;
    snprintf(os->owner, sizeof os->owner, "%s", owner);
    os->next = ho->owners;
    ho->owners = os;
    return os;
}

static void settle(owner_state *os)
{
    if (os->inflight == 0 && (os->at_end || os->stop)) {
        os->active = false;
        os->at_end = os->stop = false;
        os->poslen = 0;
    }
}

static void req_unlink(handoff *ho, hint_req *hr)
{
    if (hr->prev)
        hr->prev->next = hr->next;
    else
        ho->reqs = hr->next;
    if (hr->next)
        hr->next->prev = hr->prev;
}

static void on_hint_ack(void *arg, const char *from, const replica_reply *rep)
{
    (void)from;
    hint_req *hr = arg;
    owner_state *os = hr->os;
    handoff *ho = os->ho;
    char err[256];
    os->inflight--;
    if (rep->ok) {
        store_result res = store_hint_del(ho->srv->st, os->owner, hr->key, hr->klen, &hr->version,
                                          err, sizeof err);
        if (res == STORE_OK) {
            ho->delivered++;
            server_schedule_pass_end(ho->srv);
        } else if (res != STORE_NOT_FOUND) {
            log_error("deleting a delivered hint failed, this pass's writes are lost: %s", err);
            server_batch_failed(ho->srv, res, err);
            os->stop = true;
        }
    } else if (!os->stop) {
        log_info("hinted handoff to %s paused: %s", os->owner, rep->error);
        os->stop = true;
    }
    req_unlink(ho, hr);
    free(hr);
    if (!os->stop)
        pump(os);
    settle(os);
}

/* store_hint_scan's callback: sends one hint (it must not write to the
 * store, and replica_write does not: its failures arrive later). */
static int on_hint(void *arg, const store_hint *sh)
{
    owner_state *os = arg;
    handoff *ho = os->ho;
    hint_req *hr = malloc(sizeof *hr + sh->klen);
    if (!hr) {
        os->stop = true;
        return 1;
    }
    hr->os = os;
    hr->version = sh->version;
    hr->klen = sh->klen;
    memcpy(hr->key, sh->key, sh->klen);
    replica_record rec = {.key = sh->key,
                          .klen = sh->klen,
                          .value = sh->value,
                          .vlen = sh->vlen,
                          .tombstone = sh->tombstone,
                          .expires_ms = sh->expires_ms,
                          .version = sh->version};
    if (replica_write(ho->r, os->owner, &rec, NULL, on_hint_ack, hr) != 0) {
        free(hr);
        os->stop = true;
        return 1;
    }
    hr->prev = NULL;
    hr->next = ho->reqs;
    if (ho->reqs)
        ho->reqs->prev = hr;
    ho->reqs = hr;
    os->inflight++;
    memcpy(os->pos, sh->pos, sh->poslen);
    os->poslen = sh->poslen;
    return 0;
}

static void pump(owner_state *os)
{
    handoff *ho = os->ho;
    char err[256];
    while (os->active && !os->stop && !os->at_end && os->inflight < HANDOFF_INFLIGHT) {
        long n = store_hint_scan(ho->srv->st, os->owner, os->pos, os->poslen,
                                 HANDOFF_INFLIGHT - os->inflight, on_hint, os, err, sizeof err);
        if (n < 0) {
            log_warn("hinted handoff to %s: %s", os->owner, err);
            os->stop = true;
        } else if (n == 0) {
            os->at_end = true;
        }
    }
}

void handoff_owner_up(handoff *ho, const char *owner)
{
    if (!owner[0] || strcmp(owner, ho->srv->node_id) == 0)
        return;
    owner_state *os = owner_get(ho, owner);
    if (!os || os->active)
        return;
    os->active = true;
    os->poslen = 0;
    pump(os);
    settle(os);
}

static void on_member_up(void *arg, const char *id)
{
    handoff_owner_up(arg, id);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    handoff *ho = arg;
    char owner[STORE_ORIGIN_MAX + 1] = "", next[STORE_ORIGIN_MAX + 1], err[256];
    int rc;
    while ((rc = store_hint_next_owner(ho->srv->st, owner, next, err, sizeof err)) == 1) {
        if (ho->cl && cluster_is_up(ho->cl, next))
            handoff_owner_up(ho, next);
        memcpy(owner, next, sizeof owner);
    }
    if (rc < 0)
        log_warn("hinted handoff: %s", err);
    if (owner[0])
        server_schedule_pass_end(ho->srv); /* releases the read snapshot */
}

handoff *handoff_new(struct server *srv, struct cluster *cl, struct replica *r, char *err,
                     size_t errlen)
{
    handoff *ho = calloc(1, sizeof *ho);
    if (!ho || !(ho->tick_ev = event_new(srv->base, -1, EV_PERSIST, on_tick, ho))) {
        free(ho);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ho->srv = srv;
    ho->cl = cl;
    ho->r = r;
    if (cl)
        cluster_on_up(cl, on_member_up, ho);
    struct timeval tv = {HANDOFF_TICK_MS / 1000, (HANDOFF_TICK_MS % 1000) * 1000};
    event_add(ho->tick_ev, &tv);
    return ho;
}

void handoff_free(handoff *ho)
{
    if (!ho)
        return;
    while (ho->reqs) {
        hint_req *hr = ho->reqs;
        ho->reqs = hr->next;
        free(hr);
    }
    while (ho->owners) {
        owner_state *os = ho->owners;
        ho->owners = os->next;
        free(os);
    }
    event_free(ho->tick_ev);
    free(ho);
}

uint64_t handoff_delivered(const handoff *ho)
{
    return ho->delivered;
}
