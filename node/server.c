/* server: ringkvd's client-protocol front end; see server.h.
 *
 * The pass end is an event activated by the first reply of a pass. libevent
 * runs active events of one priority in activation order, so it runs after
 * every socket event that epoll returned for this pass, like Redis'
 * beforeSleep: one commit (one fsync under `always`) covers all of them.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/util.h>

#include "cluster.h"
#include "conn.h"
#include "dispatch.h"
#include "log.h"
#include "membership.h"
#include "replica.h"
#include "stream.h"

/* The sweep's work (store_sweep) per tick, in records read; keys not yet
 * due cost an 8th of that. Slices of 500 reads doubled the GETs' p99 when
 * the sweep still walked all of LMDB (README: Benchmarks, the night of
 * 2026-11-27). */
#define SWEEP_BUDGET 10000   /* per sweep tick, */
#define SWEEP_SLICE 100      /* in slices this large, one per loop pass */
#define DRAIN_TIMEOUT_MS 2000
#define WRITEBACK_TICK_MS 10 /* how often an idle node lets the store write back */

uint64_t server_now_ms(server *s)
{
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void server_schedule_pass_end(server *s)
{
    if (!s->pass_end_scheduled) {
        s->pass_end_scheduled = true;
        event_active(s->pass_end_ev, EV_TIMEOUT, 1);
    }
}

/* The current batch is lost: every reply that depended on it becomes err. */
static void fail_batch(server *s, wire_status st, const char *msg)
{
    s->n.commit_failures++;
    snprintf(s->batch_err, sizeof s->batch_err, "%s", msg);
    for (conn *c = s->dirty; c; c = c->dirty_next)
        conn_fail_marked(c, st, msg);
    for (size_t i = 0; i < s->ncommit_cbs; i++)
        s->commit_cbs[i].failed = true;
}

int server_after_commit(server *s, server_commit_fn fn, void *arg)
{
    if (s->ncommit_cbs == s->capcommit_cbs) {
        size_t cap = s->capcommit_cbs ? s->capcommit_cbs * 2 : 64;
        server_commit_cb *n = realloc(s->commit_cbs, cap * sizeof *n);
        if (!n)
            return -1;
        s->commit_cbs = n;
        s->capcommit_cbs = cap;
    }
    s->commit_cbs[s->ncommit_cbs++] = (server_commit_cb){fn, arg, false};
    server_schedule_pass_end(s);
    return 0;
}

static void commit_cb_noop(void *arg, bool ok, const char *err)
{
    (void)arg;
    (void)ok;
    (void)err;
}

void server_after_commit_cancel(server *s, server_commit_fn fn, void *arg)
{
    for (size_t i = 0; i < s->ncommit_cbs; i++)
        if (s->commit_cbs[i].fn == fn && s->commit_cbs[i].arg == arg)
            s->commit_cbs[i].fn = commit_cb_noop;
}

void server_batch_failed(server *s, store_result r, const char *err)
{
    fail_batch(s, server_status_for(r), err);
}

/* Runs this pass's after-commit callbacks; ones they register run next pass. */
static void run_commit_cbs(server *s, bool ok, const char *err)
{
    size_t n = s->ncommit_cbs;
    if (n == 0)
        return;
    server_commit_cb *cbs = s->commit_cbs;
    size_t cap = s->capcommit_cbs;
    s->commit_cbs = NULL;
    s->ncommit_cbs = s->capcommit_cbs = 0;
    for (size_t i = 0; i < n; i++)
        cbs[i].fn(cbs[i].arg, ok && !cbs[i].failed, ok && cbs[i].failed ? s->batch_err : err);
    if (s->commit_cbs == NULL) { /* keep the array for the next pass */
        s->commit_cbs = cbs;
        s->capcommit_cbs = cap;
        cbs = NULL;
    }
    free(cbs);
}

/* The connections read this pass, once epoll's events are all handled. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run_ready(arg);
}

static void on_pass_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    char err[256];

    s->pass_end_scheduled = false;
    store_result r = store_commit(s->st, err, sizeof err);
    if (r != STORE_OK) {
        if (r != STORE_ERR_FULL) /* the store logs a full disk once per episode */
            log_error("commit failed, writes of this pass answered with an error: %s", err);
        fail_batch(s, server_status_for(r), err);
    }
    run_commit_cbs(s, r == STORE_OK, r == STORE_OK ? NULL : err);
    conn *c = s->dirty;
    s->dirty = NULL;
    while (c) {
        conn *next = c->dirty_next;
        conn_release(c);
        c = next;
    }
    while (s->closing) {
        c = s->closing;
        s->closing = c->closing_next;
        conn_free(c);
    }
}

static bool check_key(server *s, conn *c, const wire_request *req)
{
    if (req->key.len <= s->cfg->max_key_bytes)
        return true;
    char msg[128];
    snprintf(msg, sizeof msg, "key is %zu bytes; the limit is %llu (max_key_bytes)",
             req->key.len, (unsigned long long)s->cfg->max_key_bytes);
    conn_reply_status(c, req->id, WIRE_ERR_TOO_LARGE, msg);
    return false;
}

wire_status server_status_for(store_result r)
{
    return r == STORE_ERR_FULL ? WIRE_ERR_UNAVAILABLE : WIRE_ERR_INTERNAL;
}

store_result server_get(server *s, const void *key, size_t klen, store_record *rec, char *err,
                        size_t errlen)
{
    uint64_t now = server_now_ms(s);
    store_result r = store_get(s->st, key, klen, now, rec, err, errlen);
    if (r == STORE_NOT_FOUND && !rec->tombstone && rec->expires_ms != 0 &&
        rec->expires_ms <= now) {
        /* Lazy expiry, as Redis does on access; the sweep finds the rest. */
        char perr[256];
        store_result p = store_purge_expired(s->st, key, klen, now, perr, sizeof perr);
        if (p != STORE_OK && p != STORE_NOT_FOUND) {
            log_error("purging an expired key failed, this pass's writes are lost and "
                      "answered with an error: %s", perr);
            fail_batch(s, server_status_for(p), perr);
        }
    }
    return r;
}

store_result server_write(server *s, wire_op op, const void *key, size_t klen, const void *value,
                          size_t vlen, uint64_t ttl_ms, char *err, size_t errlen)
{
    uint64_t now = server_now_ms(s);
    store_version ver;
    ver.hlc = hlc_now(&s->clock, now);
    memcpy(ver.origin, s->node_id, sizeof ver.origin);

    store_result r;
    if (op == WIRE_OP_PUT) {
        uint64_t expires = 0;
        if (ttl_ms)
            expires = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
        r = store_put(s->st, key, klen, value, vlen, expires, &ver, err, errlen);
    } else {
        r = store_del(s->st, key, klen, &ver, err, errlen);
    }
    /* STALE: a newer version is already stored; under last-write-wins this
     * write is overwritten, which is a success for the client. */
    if (r == STORE_STALE)
        return STORE_OK;
    if (r != STORE_OK && store_write_errors_discard(s->st)) {
        if (r != STORE_ERR_FULL) /* the store logs a full disk once per episode */
            log_error("write failed, this pass's writes are lost and answered with an error: %s",
                      err);
        fail_batch(s, server_status_for(r), err);
    }
    return r;
}

/* GET, PUT and DEL are coordinated (dispatch.c) and answered in order
 * through reply slots when their replicas have answered. */
static void do_get(server *s, conn *c, const wire_request *req) { dispatch_native(s, c, req); }

static void do_write(server *s, conn *c, const wire_request *req)
{
    char err[256];
    if (req->op == WIRE_OP_PUT && req->value.len > s->cfg->max_value_bytes) {
        snprintf(err, sizeof err, "value is %zu bytes; the limit is %llu (max_value_bytes)",
                 req->value.len, (unsigned long long)s->cfg->max_value_bytes);
        conn_reply_status(c, req->id, WIRE_ERR_TOO_LARGE, err);
        return;
    }
    dispatch_native(s, c, req);
}

static void do_stats(server *s, conn *c, const wire_request *req)
{
    store_stats ss;
    store_get_stats(s->st, &ss);
    const server_counters *n = &s->n;
    uint64_t uptime = (server_now_ms(s) - s->started_ms) / 1000;
#define NUM(name, v) {name, 1, (uint64_t)(v), NULL}
#define STR(name, v) {name, 0, 0, v}
    const wire_stat stats[] = {
        STR("node_id", s->node_id),
        STR("version", RINGKV_VERSION),
        NUM("uptime_seconds", uptime),
        STR("fsync", config_fsync_name(s->cfg->fsync)),
        NUM("keys", ss.records - ss.tombstones),
        NUM("tombstones", ss.tombstones),
        NUM("expires", ss.expiring),
        NUM("connections", s->nconns),
        NUM("total_connections", n->connections_total),
        NUM("rejected_connections", n->connections_rejected),
        NUM("dropped_connections", n->connections_dropped),
        NUM("ops_get", n->ops[WIRE_OP_GET]),
        NUM("ops_put", n->ops[WIRE_OP_PUT]),
        NUM("ops_del", n->ops[WIRE_OP_DEL]),
        NUM("ops_ping", n->ops[WIRE_OP_PING]),
        NUM("ops_stats", n->ops[WIRE_OP_STATS]),
        NUM("ops_members", n->ops[WIRE_OP_MEMBERS]),
        NUM("ops_remove", n->ops[WIRE_OP_REMOVE]),
        NUM("ops_decommission", n->ops[WIRE_OP_DECOMMISSION]),
        NUM("errors", n->errors),
        NUM("bytes_in", n->bytes_in),
        NUM("bytes_out", n->bytes_out),
        NUM("commits", ss.commits),
        NUM("commit_failures", n->commit_failures),
        NUM("purged", ss.purged),
        NUM("sweep_tracked", ss.sweep_tracked),
        NUM("store_crash_suspect", store_crash_suspect(s->st)),
        NUM("cache_hits", ss.cache_hits),
        NUM("cache_version_hits", ss.cache_version_hits),
        NUM("cache_misses", ss.cache_misses),
        NUM("cache_evictions", ss.cache_evictions),
        NUM("cache_entries", ss.cache_entries),
        NUM("cache_bytes", ss.cache_bytes),
        NUM("writeback_dirty", ss.dirty),
        NUM("writeback_dirty_bytes", ss.dirty_bytes),
        NUM("written_back", ss.written_back),
        NUM("log_segments", ss.wal_segments),
        NUM("log_bytes", ss.log_bytes),
        NUM("store_checkpoints", ss.checkpoints),
        NUM("store_checkpoint_txn", ss.checkpoint_txn),
        NUM("store_checkpoint_restored", ss.checkpoint_restored),
        NUM("max_key_bytes", s->cfg->max_key_bytes),
        NUM("max_value_bytes", s->cfg->max_value_bytes),
    };
    /* Membership figures only where membership runs (see membership.h). */
    membership_stats ms;
    wire_stat all[sizeof stats / sizeof stats[0] + 20 + STREAM_WIRE_STATS + DISPATCH_STATS];
    size_t n_all = sizeof stats / sizeof stats[0];
    memcpy(all, stats, sizeof stats);
    if (s->members) {
        membership_get_stats(s->members, &ms);
        const wire_stat more[] = {
            STR("membership", "on"),
            STR("peer_address", membership_peer_addr(s->members)),
            NUM("members_alive", ms.alive),
            NUM("members_suspect", ms.suspect),
            NUM("members_dead", ms.dead),
            NUM("members_left", ms.left),
            NUM("members_removed", ms.removed),
            NUM("gossip_packets_sent", ms.gossip.packets_sent),
            NUM("gossip_packets_received", ms.gossip.packets_received),
            NUM("gossip_bytes_sent", ms.gossip.bytes_sent),
            NUM("gossip_bytes_received", ms.gossip.bytes_received),
            NUM("gossip_packets_dropped", ms.gossip.packets_dropped + ms.datagrams_dropped),
            NUM("gossip_send_errors", ms.send_errors),
            NUM("gossip_probes", ms.gossip.probes),
            NUM("gossip_probe_failures", ms.gossip.probe_failures),
            NUM("gossip_suspicions", ms.gossip.suspicions),
            NUM("gossip_refutations", ms.gossip.refutations),
            NUM("gossip_pushpulls", ms.gossip.pushpulls),
            NUM("gossip_awareness", ms.gossip.awareness),
            NUM("peer_dropped_connections", ms.peer_dropped),
        };
        _Static_assert(sizeof more / sizeof more[0] <= 20, "room in all[]");
        memcpy(all + n_all, more, sizeof more);
        n_all += sizeof more / sizeof more[0];
    } else {
        all[n_all++] = (wire_stat)STR("membership", "off");
    }
    if (s->cluster) {
        const ring *r = s->cluster ? cluster_ring(s->cluster) : NULL;
        const ring *p = cluster_pending(s->cluster);
        stream_stats ss2 = {0};
        if (s->stream)
            stream_get_stats(s->stream, &ss2);
        long self = ring_find(r, s->node_id);
        const wire_stat ring_stats[] = {
            STR("ring_role", s->stream ? ss2.role : "member"),
            NUM("ring_members", ring_members(r)),
            NUM("ring_pending_members", p ? ring_members(p) : 0),
            NUM("ring_share_ppm", self >= 0 ? (uint64_t)(ring_share(r, (size_t)self) * 1e6 + 0.5) : 0),
            NUM("ranges_owned", ss2.ranges_owned),
            NUM("replica_share_ppm", ss2.share_ppm),
            NUM("store_bytes", store_used_bytes(s->st)),
            STR("stream_activity", s->stream ? ss2.activity : "idle"),
            NUM("stream_tasks_total", ss2.tasks_total),
            NUM("stream_tasks_done", ss2.tasks_done),
            NUM("stream_records_in", ss2.records_in),
            NUM("stream_bytes_in", ss2.bytes_in),
            NUM("stream_records_out", ss2.records_out),
            NUM("stream_bytes_out", ss2.bytes_out),
            NUM("stream_rate_bps", ss2.rate_bps),
            NUM("stream_failures", ss2.failures),
            NUM("stream_purged", ss2.purged),
        };
        _Static_assert(sizeof ring_stats / sizeof ring_stats[0] <= STREAM_WIRE_STATS, "room");
        memcpy(all + n_all, ring_stats, sizeof ring_stats);
        n_all += sizeof ring_stats / sizeof ring_stats[0];
    }
    n_all += dispatch_stats(s, all + n_all); /* coordinator, replicas, hints */
#undef NUM
#undef STR
    conn_reply_stats(c, req->id, all, n_all);
}

/* MEMBERS: every member as this node sees it, with how long it has been in
 * its state (gossip keeps the time of the change on membership's clock). */
static void do_members(server *s, conn *c, const wire_request *req)
{
    size_t n;
    const gossip_member *gm = membership_members(s->members, &n);
    wire_member *wm = calloc(n ? n : 1, sizeof *wm);
    if (!wm) {
        conn_reply_status(c, req->id, WIRE_ERR_INTERNAL, "out of memory listing members");
        return;
    }
    uint64_t now = membership_now_ms();
    for (size_t i = 0; i < n; i++)
        wm[i] = (wire_member){.id = gm[i].id,
                              .peer_addr = gm[i].peer_addr,
                              .client_addr = gm[i].client_addr,
                              .resp_addr = gm[i].resp_addr,
                              .state = gossip_state_name(gm[i].state),
                              .role = gossip_role_name(gm[i].role),
                              .incarnation = gm[i].incarnation,
                              .age_ms = now > gm[i].state_since_ms ? now - gm[i].state_since_ms : 0,
                              .vnodes = gm[i].vnodes};
    msgpack_sbuffer_clear(&s->sb);
    wire_encode_members(&s->sb, req->id, wm, n);
    free(wm);
    conn_reply_raw(c, req->id, s->sb.data, s->sb.size, NULL, 0);
}

/* REMOVE: gossip decides (and words) whether the id may go. */
static void do_remove(server *s, conn *c, const wire_request *req)
{
    char id[GOSSIP_ID_MAX + 1], err[256];
    if (req->key.len > GOSSIP_ID_MAX || memchr(req->key.ptr, '\0', req->key.len)) {
        snprintf(err, sizeof err, "no member has that id (an id is at most %d bytes, no NUL)",
                 GOSSIP_ID_MAX);
        conn_reply_status(c, req->id, WIRE_ERR_BAD_REQUEST, err);
        return;
    }
    memcpy(id, req->key.ptr, req->key.len);
    id[req->key.len] = '\0';
    if (membership_remove(s->members, id, err, sizeof err) != 0)
        conn_reply_status(c, req->id, WIRE_ERR_BAD_REQUEST, err);
    else
        conn_reply_status(c, req->id, WIRE_OK, NULL);
}

/* TOPOLOGY: the ring members with the addresses clients reach them at. */
static void do_topology(server *s, conn *c, const wire_request *req)
{
    const ring *r = cluster_ring(s->cluster);
    size_t n = ring_members(r);
    wire_topology_member *tm = calloc(n ? n : 1, sizeof *tm);
    if (!tm) {
        conn_reply_status(c, req->id, WIRE_ERR_INTERNAL, "out of memory listing the ring");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = ring_member_id(r, i);
        cluster_member cm = {.client_addr = "", .resp_addr = "", .state = "alive"};
        cluster_member_get(s->cluster, id, &cm);
        tm[i] = (wire_topology_member){.id = id, .client_addr = cm.client_addr,
                                       .resp_addr = cm.resp_addr, .state = cm.state,
                                       .vnodes = ring_member_vnodes(r, i)};
        if (strcmp(id, s->node_id) == 0) { /* self: the bound addresses */
            tm[i].client_addr = s->listeners[0].addr;
            for (size_t l = 1; l < s->nlisteners; l++)
                if (strcmp(s->listeners[l].proto->name, "resp") == 0)
                    tm[i].resp_addr = s->listeners[l].addr;
        }
    }
    wire_topology t = {.epoch = cluster_epoch(s->cluster), .n = cluster_n(s->cluster),
                       .vnodes_default = cluster_vnodes_default(s->cluster),
                       .members = tm, .nmembers = n};
    msgpack_sbuffer_clear(&s->sb);
    wire_encode_topology(&s->sb, req->id, &t);
    free(tm);
    conn_reply_raw(c, req->id, s->sb.data, s->sb.size, NULL, 0);
}

void server_handle_request(server *s, conn *c, const wire_request *req)
{
    s->n.ops[req->op]++;
    switch (req->op) {
    case WIRE_OP_GET:
        if (check_key(s, c, req))
            do_get(s, c, req);
        break;
    case WIRE_OP_PUT:
    case WIRE_OP_DEL:
        if (check_key(s, c, req))
            do_write(s, c, req);
        break;
    case WIRE_OP_PING:
        conn_reply_status(c, req->id, WIRE_OK, NULL);
        break;
    case WIRE_OP_STATS:
        do_stats(s, c, req);
        break;
    case WIRE_OP_MEMBERS:
    case WIRE_OP_REMOVE:
        if (!s->members)
            conn_reply_status(c, req->id, WIRE_ERR_UNAVAILABLE,
                              "membership is off (no [node] peer)");
        else if (req->op == WIRE_OP_MEMBERS)
            do_members(s, c, req);
        else
            do_remove(s, c, req);
        break;
    case WIRE_OP_DECOMMISSION: {
        char err[256];
        if (!s->stream)
            conn_reply_status(c, req->id, WIRE_ERR_UNAVAILABLE,
                              "membership is off (no [node] peer)");
        else if (stream_decommission(s->stream, err, sizeof err) != 0)
            conn_reply_status(c, req->id, WIRE_ERR_UNAVAILABLE, err);
        else
            conn_reply_status(c, req->id, WIRE_OK, NULL);
        break;
    }
    case WIRE_OP_TOPOLOGY:
        if (!s->cluster)
            conn_reply_status(c, req->id, WIRE_ERR_UNAVAILABLE, "the ring is not set up yet");
        else
            do_topology(s, c, req);
        break;
    }
}

/* Past max_clients: a polite error reply straight on the socket, then close. */
static void reject(server *s, const conn_proto *proto, evutil_socket_t fd, const char *peer)
{
    char msg[96];
    snprintf(msg, sizeof msg, "max_clients (%llu) reached; try again later",
             (unsigned long long)s->cfg->max_clients);
    struct evbuffer *out = evbuffer_new();
    if (out) {
        proto->encode_error(s, out, 0, WIRE_ERR_UNAVAILABLE, msg);
        size_t len = evbuffer_get_length(out);
        ssize_t w = send(fd, evbuffer_pullup(out, -1), len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* best effort: the client may already be gone */
        evbuffer_free(out);
    }
    evutil_closesocket(fd);
    if (s->n.connections_rejected++ % 1000 == 0)
        log_warn("refused client %s: %s (%llu refused so far)", peer, msg,
                 (unsigned long long)s->n.connections_rejected);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    } else {
        snprintf(out, outlen, "?");
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    server_listener *sl = arg;
    server *s = sl->srv;
    char peer[64];
    format_addr(sa, peer, sizeof peer);
    if (s->stopping) {
        evutil_closesocket(fd);
        return;
    }
    if (s->nconns >= s->cfg->max_clients) {
        reject(s, sl->proto, fd, peer);
        return;
    }
    if (!conn_new(s, fd, peer, sl->proto)) {
        log_warn("could not set up a connection for %s: out of memory", peer);
        return;
    }
    s->n.connections_total++;
    log_debug("%s client %s connected", sl->proto->name, peer);
}

/* accept() failed, most likely out of descriptors: pause accepting for a
 * second instead of spinning on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    server *s = ((server_listener *)arg)->srv;
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("accept failed: %s; pausing new connections for 1 s",
             evutil_socket_error_to_string(e));
    evconnlistener_disable(l);
    struct timeval tv = {1, 0};
    evtimer_add(s->relisten_ev, &tv);
}

static void on_relisten(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    for (size_t i = 0; i < s->nlisteners && !s->stopping; i++)
        evconnlistener_enable(s->listeners[i].l);
}

/* One slice of the expiry sweep. A tick's budget is examined in slices with
 * a loop pass between them (a zero timeout runs after the next poll), so
 * requests wait behind at most one slice (well under a millisecond), not
 * the whole tick's walk. */
static void on_sweep_slice(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    char err[256];
    if (s->stopping)
        return;
    size_t budget = s->sweep_left < SWEEP_SLICE ? s->sweep_left : SWEEP_SLICE, seen = 0;
    bool round_end = false;
    long n = store_sweep(s->st, server_now_ms(s), s->cfg->tombstone_ttl_ms, budget, &seen,
                         &round_end, err, sizeof err);
    if (n < 0)
        log_warn("expiry sweep failed: %s", err);
    else if (n > 0)
        log_debug("expiry sweep purged %ld records", n);
    server_schedule_pass_end(s);
    /* The end of a round: wait for the next tick. */
    s->sweep_left -= round_end || seen >= s->sweep_left ? s->sweep_left : seen;
    if (n >= 0 && s->sweep_left > 0) {
        struct timeval now = {0, 0};
        evtimer_add(s->sweep_more_ev, &now);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    server *s = arg;
    if (evtimer_pending(s->sweep_more_ev, NULL))
        return; /* the last tick is still going */
    s->sweep_left = SWEEP_BUDGET;
    on_sweep_slice(fd, what, arg);
}

/* Under write-behind the store writes its cached writes back in commits;
 * when no request asks for one, this timer does. */
static void on_writeback(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    if (store_writeback_pending(s->st))
        server_schedule_pass_end(s);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    bool busy = false;
    for (conn *c = s->conns; c && !busy; c = c->next)
        busy = !c->closing && (conn_output_len(c) > 0 || c->slot_head); /* or replicas owe */
    /* Replication's frames, those that lingered too (the writes a client
     * was answered for at one go to their other replicas). */
    if (!busy && s->replica)
        busy = replica_unsent(s->replica) > 0;
    if (!busy || server_now_ms(s) >= s->drain_deadline_ms) {
        event_base_loopbreak(s->base);
        return;
    }
    struct timeval tv = {0, 20 * 1000};
    evtimer_add(s->drain_ev, &tv);
}

int server_listen(server *s, const char *addr, const conn_proto *proto, char *err, size_t errlen)
{
    if (s->nlisteners == SERVER_MAX_LISTENERS) {
        snprintf(err, errlen, "too many listeners");
        return -1;
    }
    char host[CONFIG_ADDR_MAX];
    int port;
    if (config_split_addr(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "%s address '%s' is not HOST:PORT", proto->name, addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s host '%s': %s", proto->name, host,
                 gai_strerror(rc));
        return -1;
    }
    server_listener *sl = &s->listeners[s->nlisteners];
    sl->srv = s;
    sl->proto = proto;
    sl->l = evconnlistener_new_bind(
        s->base, on_accept, sl, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        1024, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (!sl->l) {
        snprintf(err, errlen, "cannot listen on %s (%s): %s", addr, proto->name,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(sl->l), (struct sockaddr *)&ss, &len) == 0)
        format_addr((struct sockaddr *)&ss, sl->addr, sizeof sl->addr);
    evconnlistener_set_error_cb(sl->l, on_accept_error);
    return (int)s->nlisteners++;
}

server *server_new(struct event_base *base, const config *cfg, store *st, char *err,
                   size_t errlen)
{
    server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->cfg = cfg;
    s->st = st;
    s->max_frame = cfg->max_key_bytes + cfg->max_value_bytes + 1024;
    snprintf(s->node_id, sizeof s->node_id, "%s", store_node_id(st));
    hlc_init(&s->clock, store_max_hlc(st));
    msgpack_sbuffer_init(&s->sb);
    msgpack_zone_init(&s->zone, 4096);
    s->started_ms = server_now_ms(s);

    s->pass_end_ev = event_new(base, -1, 0, on_pass_end, s);
    s->ready_ev = event_new(base, -1, 0, on_ready, s);
    s->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, s);
    s->sweep_more_ev = evtimer_new(base, on_sweep_slice, s);
    s->relisten_ev = evtimer_new(base, on_relisten, s);
    s->drain_ev = evtimer_new(base, on_drain, s);
    s->writeback_ev = event_new(base, -1, EV_PERSIST, on_writeback, s);
    if (!s->pass_end_ev || !s->ready_ev || !s->sweep_ev || !s->sweep_more_ev || !s->relisten_ev || !s->drain_ev ||
        !s->writeback_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (server_listen(s, cfg->listen, &conn_native_proto, err, errlen) < 0)
        goto fail;
    struct timeval tv = {.tv_sec = (time_t)(cfg->sweep_interval_ms / 1000),
                         .tv_usec = (suseconds_t)(cfg->sweep_interval_ms % 1000) * 1000};
    event_add(s->sweep_ev, &tv);
    struct timeval wb = {0, WRITEBACK_TICK_MS * 1000};
    event_add(s->writeback_ev, &wb);
    return s;

fail:
    server_free(s);
    return NULL;
}

void server_shutdown(server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    for (size_t i = 0; i < s->nlisteners; i++)
        evconnlistener_disable(s->listeners[i].l);
    event_del(s->sweep_ev);
    event_del(s->sweep_more_ev);
    for (conn *c = s->conns; c; c = c->next)
        conn_stop_reading(c);
    s->drain_deadline_ms = server_now_ms(s) + DRAIN_TIMEOUT_MS;
    /* Let the pending pass end commit and release replies, then wait for
     * the sockets to take them. */
    server_schedule_pass_end(s);
    struct timeval tv = {0, 0};
    evtimer_add(s->drain_ev, &tv);
}

void server_free(server *s)
{
    if (!s)
        return;
    dispatch_free(s); /* answers what is in flight through the reply slots */
    if (s->pass_end_ev && (s->dirty || s->closing || store_batch_dirty(s->st)))
        on_pass_end(-1, 0, s); /* commit what is pending before closing */
    while (s->conns)
        conn_free(s->conns);
    for (size_t i = 0; i < s->nlisteners; i++)
        evconnlistener_free(s->listeners[i].l);
    if (s->pass_end_ev)
        event_free(s->pass_end_ev);
    if (s->sweep_ev)
        event_free(s->sweep_ev);
    if (s->ready_ev)
        event_free(s->ready_ev);
    if (s->writeback_ev)
        event_free(s->writeback_ev);
    if (s->sweep_more_ev)
        event_free(s->sweep_more_ev);
    if (s->relisten_ev)
        event_free(s->relisten_ev);
    if (s->drain_ev)
        event_free(s->drain_ev);
    msgpack_sbuffer_destroy(&s->sb);
    msgpack_zone_destroy(&s->zone);
    free(s->commit_cbs);
    free(s);
}
