/* antientropy: Merkle-tree exchanges between replicas; see antientropy.h.
 *
 * This file holds the rounds (every interval, each range this node
 * replicates, with one other replica that is up, in turn), the steps that
 * build trees and scan records between event-loop passes, the byte budget
 * (one token bucket for both roles) and the API. The initiator's state
 * machine is in antientropy_exchange.c, the responder in
 * antientropy_serve.c; antientropy_int.h is what they share.
 */
#include <sys/random.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <xxhash.h>

#include "antientropy_int.h"
#include "cluster.h"
#include "log.h"
#include "merkle.h"
#include "peer.h"
#include "ranges.h"
#include "replica.h"
#include "server.h"
#include "store.h"

uint64_t ae_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ae_step_arm(antientropy *ae)
{
    struct timeval tv = {0, 0};
    evtimer_add(ae->step_ev, &tv);
}

/* ---- the byte budget: one token bucket for both roles ---- */

static void bucket_refill(antientropy *ae)
{
    if (!ae->rate)
        return;
    uint64_t now = ae_mono_ms();
    double burst = ae->rate / 8.0 > 65536 ? ae->rate / 8.0 : 65536;
    ae->tokens += (double)(now - ae->refill_ms) * (double)ae->rate / 1000.0;
    if (ae->tokens > burst)
        ae->tokens = burst;
    ae->refill_ms = now;
}

static void bucket_take(antientropy *ae, uint64_t bytes)
{
    if (ae->rate)
        ae->tokens -= (double)bytes;
}

/* Milliseconds until the bucket is out of debt (0: go). */
uint64_t ae_bucket_wait_ms(antientropy *ae)
{
    if (!ae->rate)
        return 0;
    bucket_refill(ae);
    if (ae->tokens >= 0)
        return 0;
    return (uint64_t)(-ae->tokens * 1000.0 / (double)ae->rate) + 1;
}

void ae_sent(antientropy *ae, uint64_t bytes)
{
    ae->n.bytes_sent += bytes;
    bucket_take(ae, bytes);
}

void ae_received(antientropy *ae, uint64_t bytes)
{
    ae->n.bytes_received += bytes;
    bucket_take(ae, bytes);
}

uint64_t ae_frame_bytes(const Ringkv__Envelope *env)
{
    return ringkv__envelope__get_packed_size(env) + PEER_HEADER_BYTES;
}

/* ---- the ring's ranges ---- */

/* Refreshes the ranges for the current ring. Returns 0, or -1 when out of
 * memory. */
static int ranges_refresh(antientropy *ae)
{
    uint64_t epoch = cluster_epoch(ae->cl);
    if (ae->have_ranges && ae->ranges_epoch == epoch)
        return 0;
    free(ae->ranges);
    ae->ranges = NULL;
    ae->have_ranges = false;
    const ring *rg = cluster_ring(ae->cl);
    long n = ranges_build(rg, cluster_n(ae->cl), &ae->ranges);
    if (n < 0)
        return -1;
    ae->nranges = n;
    ae->ranges_epoch = epoch;
    ae->self_idx = ring_find(rg, ae->srv->node_id);
    ae->have_ranges = true;
    return 0;
}

/* The range (lo, hi] of the current ring if this node replicates it. */
const range *ae_range_find(antientropy *ae, uint64_t lo, uint64_t hi)
{
    if (ranges_refresh(ae) != 0 || ae->self_idx < 0)
        return NULL;
    for (long i = 0; i < ae->nranges; i++) {
        const range *g = &ae->ranges[i];
        if (g->lo == lo && g->hi == hi)
            return range_has(g, (uint32_t)ae->self_idx) ? g : NULL;
    }
    return NULL;
}

/* ---- steps: tree builds and scans, between loop passes ---- */

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    char err[256];
    bool more = ae_trees_step(ae);
    exchange *x = ae->x;
    if (x && x->b && !x->abort[0]) {
        int rc = merkle_builder_step(x->b, AE_BUILD_BUDGET, err, sizeof err);
        if (rc == 1) {
            x->m = merkle_builder_take(x->b);
            merkle_builder_free(x->b);
            x->b = NULL;
            ae->n.trees_built++;
            ae_x_advance(ae);
        } else if (rc < 0) {
            ae_x_abort(ae, err);
        } else {
            more = true;
        }
    }
    x = ae->x;
    if (x && x->scanning && !x->abort[0]) {
        int rc = ae_scan_step(ae, err, sizeof err);
        if (rc < 0) {
            ae_x_abort(ae, err);
        } else {
            more |= rc > 0;
            ae_x_advance(ae);
        }
    }
    server_schedule_pass_end(ae->srv); /* commits pulls, releases the read snapshot */
    if (more)
        ae_step_arm(ae);
}

/* ---- rounds ---- */

static uint64_t jittered(uint64_t ms)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        r = (uint32_t)ae_mono_ms();
    /* 75% .. 125% of ms */
    return ms - ms / 4 + (uint64_t)((double)(ms / 2) * (r / 4294967296.0));
}

static void tick_arm(antientropy *ae)
{
    uint64_t ms = jittered(ae->interval_ms);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ae->tick_ev, &tv);
}

/* Starts an exchange of range g with one of its other replicas that is up
 * (in turn). Returns 0 when started, -1 when skipped. */
static int x_start(antientropy *ae, const range *g)
{
    const ring *rg = cluster_ring(ae->cl);
    const char *cand[RANGES_MAX_N];
    size_t nc = 0;
    for (size_t i = 0; i < g->n; i++) {
        const char *id = ring_member_id(rg, g->owner[i]);
        if ((long)g->owner[i] != ae->self_idx && cluster_is_up(ae->cl, id))
            cand[nc++] = id;
    }
    if (!nc || ae_served_lately(ae, g))
        return -1;
    exchange *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->lo = g->lo;
    x->hi = g->hi;
    x->epoch = ae->ranges_epoch;
    snprintf(x->peer, sizeof x->peer, "%s", cand[ae->rotation++ % nc]);
    x->started_ms = ae_mono_ms();
    /* Up to about three records per leaf, from this node's count and the
     * range's share: one level deeper costs 16 hashes (128 bytes) per
     * differing key, which pays only while it spares more than about three
     * versions-only records per differing leaf. */
    store_stats ss;
    store_get_stats(ae->srv->st, &ss);
    uint64_t span = g->hi - g->lo;
    uint64_t keys = span ? (uint64_t)((double)ss.records * ((double)span / 18446744073709551616.0))
                         : ss.records;
    x->depth = merkle_depth_for(keys / 3);
    x->b = merkle_builder_new(ae->srv->st, x->lo, x->hi, x->depth, server_now_ms(ae->srv),
                              ae->srv->cfg->tombstone_ttl_ms);
    if (!x->b) {
        free(x);
        return -1;
    }
    ae->x = x;
    ae->n.in_progress = 1;
    ae_step_arm(ae);
    ae_x_advance(ae);
    return 0;
}

/* Starts the round's next exchange, or ends the round. */
void ae_round_next(antientropy *ae)
{
    while (!ae->x && ae->round_pos < ae->nround) {
        if (cluster_epoch(ae->cl) != ae->round_epoch || ranges_refresh(ae) != 0 ||
            ae->ranges_epoch != ae->round_epoch) {
            ae->round_pos = ae->nround; /* the ring changed: the next round starts over */
            break;
        }
        const range *g = &ae->ranges[ae->round[ae->round_pos++]];
        x_start(ae, g);
    }
    if (!ae->x && ae->round_pos >= ae->nround && ae->interval_ms &&
        !evtimer_pending(ae->tick_ev, NULL)) {
        if (ae->round_failures)
            log_info("anti-entropy: %zu of %zu ranges could not be compared this round (last %s)",
                     ae->round_failures, ae->nround, ae->round_why);
        ae->round_failures = 0;
        tick_arm(ae);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    antientropy *ae = arg;
    if (ae->x || ae->srv->stopping)
        return; /* the running round re-arms the tick when it ends */
    if (cluster_pending(ae->cl)) {
        tick_arm(ae); /* nodes are joining or leaving: ranges are moving */
        return;
    }
    if (ranges_refresh(ae) != 0) {
        tick_arm(ae);
        return;
    }
    free(ae->round);
    ae->round = NULL;
    ae->nround = ae->round_pos = 0;
    ae->round_epoch = ae->ranges_epoch;
    if (ae->self_idx >= 0 && ae->nranges > 0 &&
        (ae->round = malloc((size_t)ae->nranges * sizeof *ae->round)))
        for (long i = 0; i < ae->nranges; i++)
            if (ae->ranges[i].n >= 2 && range_has(&ae->ranges[i], (uint32_t)ae->self_idx))
                ae->round[ae->nround++] = (size_t)i;
    ae_round_next(ae);
}

/* ---- the API ---- */

antientropy *antientropy_new(struct server *srv, struct cluster *cl, struct replica *r, char *err,
                             size_t errlen)
{
    antientropy *ae = calloc(1, sizeof *ae);
    if (!ae) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ae->srv = srv;
    ae->cl = cl;
    ae->rep = r;
    ae->pr = srv->peer;
    ae->interval_ms = srv->cfg->anti_entropy_interval_ms;
    ae->rate = srv->cfg->anti_entropy_rate;
    ae->refill_ms = ae_mono_ms();
    ae->tokens = 0;
    bucket_refill(ae);
    ae->tick_ev = evtimer_new(srv->base, on_tick, ae);
    ae->step_ev = evtimer_new(srv->base, on_step, ae);
    ae->retry_ev = evtimer_new(srv->base, ae_on_retry, ae);
    if (!ae->tick_ev || !ae->step_ev || !ae->retry_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (ae->pr &&
        (peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_REQ, ae_on_merkle_req, ae) != 0 ||
         peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ, ae_on_leaves_req, ae) != 0)) {
        snprintf(err, errlen, "the peer port has no room for anti-entropy's messages");
        goto fail;
    }
    if (ae->pr && ae->interval_ms)
        tick_arm(ae);
    return ae;
fail:
    antientropy_free(ae);
    return NULL;
}

void antientropy_free(antientropy *ae)
{
    if (!ae)
        return;
    if (ae->pr) {
        peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_REQ, NULL, NULL);
        peer_route(ae->pr, RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ, NULL, NULL);
    }
    if (ae->x)
        ae_x_free(ae->x);
    for (size_t i = 0; i < AE_CACHE_MAX; i++)
        ae_tree_clear(&ae->cache[i]);
    if (ae->tick_ev)
        event_free(ae->tick_ev);
    if (ae->step_ev)
        event_free(ae->step_ev);
    if (ae->retry_ev)
        event_free(ae->retry_ev);
    free(ae->ranges);
    free(ae->round);
    free(ae);
}

void antientropy_get_stats(const antientropy *ae, antientropy_stats *out)
{
    *out = ae->n;
    const exchange *x = ae->x;
    out->leaves_pending = x && x->phase == X_LEAVES ? x->nleaves - x->leafpos : 0;
    out->ranges_pending = ae->nround - ae->round_pos;
}

size_t antientropy_wire_stats(const antientropy *ae, wire_stat *out)
{
    antientropy_stats s = {0};
    uint64_t rate = 0, interval = 0;
    if (ae) {
        antientropy_get_stats(ae, &s);
        rate = ae->rate;
        interval = ae->interval_ms;
    }
    size_t n = 0;
#define NUM(name, v) out[n++] = (wire_stat){name, 1, (uint64_t)(v), NULL}
    NUM("ae_exchanges", s.exchanges);
    NUM("ae_failures", s.failures);
    NUM("ae_ranges_compared", s.ranges_compared);
    NUM("ae_ranges_differing", s.ranges_differing);
    NUM("ae_leaves_differing", s.leaves_differing);
    NUM("ae_keys_pulled", s.keys_pulled);
    NUM("ae_keys_pushed", s.keys_pushed);
    NUM("ae_bytes_sent", s.bytes_sent);
    NUM("ae_bytes_received", s.bytes_received);
    NUM("ae_exchange_bytes", s.exchange_bytes);
    NUM("ae_in_progress", s.in_progress);
    NUM("ae_leaves_pending", s.leaves_pending);
    NUM("ae_ranges_pending", s.ranges_pending);
    NUM("ae_last_ms", s.last_ms);
    NUM("ae_trees_built", s.trees_built);
    NUM("ae_requests_served", s.requests_served);
    NUM("ae_requests_refused", s.requests_refused);
    NUM("ae_rate", rate);
    NUM("ae_interval_ms", interval);
#undef NUM
    _Static_assert(19 <= ANTIENTROPY_STATS, "room for the ae_* entries");
    return n;
}
