/* dispatch: the coordinator bound to the node; see dispatch.h.
 *
 * The local replica's reads go straight to the store through server_get,
 * so they see this pass's uncommitted writes as the local path always did;
 * a reply completed while that batch is uncommitted is marked like any
 * other and rewritten if the commit fails. Local writes go through
 * replica_apply_local and so are acknowledged only after their commit.
 */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "conn.h"
#include "log.h"
#include "antientropy.h"
#include "replica.h"

#define SLOT_META 1u /* the request named a consistency: reply with meta */
#define SLOT_GET 2u

/* --- the coordinator's view of the node --- */

static uint64_t node_now(void *ctx) { return server_now_ms(ctx); }

static size_t node_n(void *ctx)
{
    server *s = ctx;
    return s->cluster ? cluster_n(s->cluster) : 1;
}

static uint64_t node_epoch(void *ctx)
{
    server *s = ctx;
    return s->cluster ? cluster_epoch(s->cluster) : 0;
}

static size_t node_targets(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    server *s = ctx;
    if (s->cluster)
        return cluster_targets(s->cluster, token, out, max);
    if (max == 0)
        return 0;
    out[0] = (cluster_target){.id = s->node_id, .local = true, .hint_for = NULL};
    return 1;
}

static size_t node_owners(void *ctx, uint64_t token, cluster_target *out, size_t max)
{
    server *s = ctx;
    return s->cluster ? cluster_owners(s->cluster, token, out, max) : 0;
}

static size_t node_write_extra(void *ctx, uint64_t token, const cluster_target *cur, size_t ncur,
                               cluster_target *out, size_t max, cluster_future *fut)
{
    server *s = ctx;
    if (!s->cluster) {
        memset(fut, 0, sizeof *fut);
        return 0;
    }
    return cluster_write_extra(s->cluster, token, cur, ncur, out, max, fut);
}

static int node_write(void *ctx, const char *to, const replica_record *rec, const char *hint,
                      bool background, replica_cb cb, void *arg)
{
    server *s = ctx;
    if (!s->replica)
        return -1;
    return background ? replica_write_background(s->replica, to, rec, hint, cb, arg)
                      : replica_write(s->replica, to, rec, hint, cb, arg);
}

static int node_read(void *ctx, const char *to, const uint8_t *key, size_t klen,
                     const store_version *have, replica_cb cb, void *arg)
{
    server *s = ctx;
    return s->replica ? replica_read(s->replica, to, key, klen, have, cb, arg) : -1;
}

/* Without a replica layer (tests that run a bare server): this node's
 * store, acknowledged after the commit. */
typedef struct local_ack {
    replica_cb cb;
    void *arg;
    char id[STORE_ORIGIN_MAX + 1];
} local_ack;

static void on_local_commit(void *arg, bool ok, const char *err)
{
    local_ack *a = arg;
    replica_reply r = {.ok = ok, .error = err};
    a->cb(a->arg, a->id, &r);
    free(a);
}

static int node_apply_local(void *ctx, const replica_record *rec, const char *hint,
                            replica_cb cb, void *arg)
{
    server *s = ctx;
    if (s->replica)
        return replica_apply_local(s->replica, rec, hint, cb, arg);
    local_ack *a = malloc(sizeof *a);
    if (!a)
        return -1;
    *a = (local_ack){.cb = cb, .arg = arg};
    snprintf(a->id, sizeof a->id, "%s", s->node_id);
    char err[256];
    store_result r = rec->tombstone
                         ? store_del(s->st, rec->key, rec->klen, &rec->version, err, sizeof err)
                         : store_put(s->st, rec->key, rec->klen, rec->value, rec->vlen,
                                     rec->expires_ms, &rec->version, err, sizeof err);
    if (r != STORE_OK && r != STORE_STALE) {
        if (store_write_errors_discard(s->st))
            server_batch_failed(s, r, err);
        replica_reply rr = {.ok = false, .error = err};
        cb(arg, a->id, &rr);
        free(a);
        return 0;
    }
    if (server_after_commit(s, on_local_commit, a) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

static void node_get_local(void *ctx, const uint8_t *key, size_t klen, replica_reply *out,
                           char *err, size_t errlen)
{
    server *s = ctx;
    store_record rec;
    store_result r = server_get(s, key, klen, &rec, err, errlen);
    *out = (replica_reply){.ok = r == STORE_OK || r == STORE_NOT_FOUND};
    if (!out->ok) {
        out->error = err;
    } else if (r == STORE_OK || rec.version.hlc != 0) {
        /* a live record, a tombstone or an expired one: all carry a version */
        out->found = true;
        out->rec = (replica_record){.key = key, .klen = klen, .tombstone = rec.tombstone,
                                    .expires_ms = rec.expires_ms, .version = rec.version};
        if (r == STORE_OK) {
            out->rec.value = rec.value;
            out->rec.vlen = rec.value_len;
        }
    }
}

static int node_read_local(void *ctx, const uint8_t *key, size_t klen, replica_cb cb, void *arg)
{
    server *s = ctx;
    char err[256];
    replica_reply rr;
    node_get_local(ctx, key, klen, &rr, err, sizeof err);
    cb(arg, s->node_id, &rr);
    return 0;
}

coord *dispatch_coord(server *s)
{
    if (s->coord)
        return s->coord;
    coord_ops ops = {.ctx = s, .now_ms = node_now, .n = node_n, .epoch = node_epoch,
                     .targets = node_targets, .owners = node_owners,
                     .write_extra = node_write_extra, .write = node_write, .read = node_read,
                     .apply_local = node_apply_local, .read_local = node_read_local,
                     .get_local = node_get_local};
    coord_config cfg = {.self_id = s->node_id, .r = s->cfg->r, .w = s->cfg->w,
                        .timeout_ms = s->cfg->request_timeout_ms,
                        .read_retry_ms = s->cfg->read_retry_ms};
    char err[256];
    s->coord = coord_new(s->base, &s->clock, &ops, &cfg, err, sizeof err);
    if (!s->coord)
        log_error("cannot start the coordinator: %s", err);
    else if (s->replica)
        replica_set_prefetch(s->replica, coord_prefetch_answer);
    return s->coord;
}

/* --- native requests --- */

/* The reply to request id (flags: SLOT_*) with the coordinator's answer. */
static void native_reply(conn *c, uint64_t id, unsigned flags, const coord_result *res)
{
    server *s = c->srv;
    wire_meta meta = {.epoch = res->epoch, .replicas = res->replicas,
                      .nreplicas = res->nreplicas};
    bool value = res->status == WIRE_OK && (flags & SLOT_GET);
    if (!(flags & SLOT_META)) {
        if (value)
            conn_reply_value(c, id, res->value, res->vlen);
        else
            conn_reply_status(c, id, res->status, res->msg);
        return;
    }
    if (res->status != WIRE_OK && res->status != WIRE_NOT_FOUND)
        s->n.errors++;
    size_t begin = conn_reply_begin(c);
    msgpack_sbuffer_clear(&s->sb);
    if (value) {
        wire_encode_value_head_meta(&s->sb, id, res->vlen, &meta);
        conn_reply_add(c, s->sb.data, s->sb.size);
        conn_reply_add(c, res->value, res->vlen);
        msgpack_sbuffer_clear(&s->sb);
        wire_encode_meta_tail(&s->sb, &meta);
    } else {
        wire_encode_status_meta(&s->sb, id, res->status, res->msg, &meta);
    }
    conn_reply_add(c, s->sb.data, s->sb.size);
    conn_reply_end(c, id, begin);
}

static void native_done(void *arg, const coord_result *res)
{
    conn_slot *sl = arg;
    unsigned flags = sl->user;
    uint64_t id = sl->id;
    conn *c = conn_slot_resume(sl);
    if (c) /* else the client has gone */
        native_reply(c, id, flags, res);
}

void dispatch_native(server *s, conn *c, const wire_request *req)
{
    coord *co = dispatch_coord(s);
    /* Meta (ring epoch, replicas) on every reply of a cluster member, so a
     * client learns its ring is stale; a lone node adds it only when asked
     * for a consistency (older clients see the replies they always did). */
    bool meta = req->consistency >= 0 || s->members;
    unsigned flags = (meta ? SLOT_META : 0) | (req->op == WIRE_OP_GET ? SLOT_GET : 0);
    coord_result now;
    if (co && req->op == WIRE_OP_GET &&
        coord_get_now(co, req->key.ptr, req->key.len, req->consistency, &now)) {
        /* this node's own copy answered: reply in place, no slot */
        native_reply(c, req->id, flags, &now);
        return;
    }
    conn_slot *sl = co ? conn_slot_reserve(c, req->id) : NULL;
    if (!sl) {
        conn_reply_status(c, req->id, WIRE_ERR_INTERNAL, "out of memory");
        return;
    }
    sl->user = flags;
    int rc;
    if (req->op == WIRE_OP_GET)
        rc = coord_get(co, req->key.ptr, req->key.len, req->consistency, native_done, sl);
    else
        rc = coord_write(co, req->op == WIRE_OP_DEL, req->key.ptr, req->key.len, req->value.ptr,
                         req->value.len, req->ttl_ms, req->consistency, native_done, sl);
    if (rc != 0)
        conn_slot_cancel(sl, "out of memory");
}

size_t dispatch_stats(server *s, wire_stat *out)
{
    coord_stats cs = {0};
    if (s->coord)
        coord_get_stats(s->coord, &cs);
    replica_stats rs = {0};
    if (s->replica)
        replica_get_stats(s->replica, &rs);
#define NUM(name, v) {name, 1, (uint64_t)(v), NULL}
    const wire_stat v[] = {
        NUM("coord_reads_one", cs.reads[0]),
        NUM("coord_reads_quorum", cs.reads[1]),
        NUM("coord_reads_all", cs.reads[2]),
        NUM("coord_reads_default", cs.reads[COORD_LEVEL_DEFAULT]),
        NUM("coord_writes_one", cs.writes[0]),
        NUM("coord_writes_quorum", cs.writes[1]),
        NUM("coord_writes_all", cs.writes[2]),
        NUM("coord_writes_default", cs.writes[COORD_LEVEL_DEFAULT]),
        NUM("coord_unavailable", cs.unavailable),
        NUM("coord_timeouts", cs.timeouts),
        NUM("coord_in_flight", cs.in_flight),
        NUM("read_repairs", cs.read_repairs),
        NUM("read_retries", cs.read_retries),
        NUM("read_speculations", cs.read_speculations),
        NUM("read_retry_ms", cs.read_retry_ms),
        NUM("hints_stored", rs.hints_stored),
        NUM("hints_delivered", rs.hints_delivered),
        NUM("hints_pending", rs.hints_pending),
        NUM("replica_writes_sent", rs.writes_sent),
        NUM("replica_reads_sent", rs.reads_sent),
        NUM("replica_failures", rs.failures),
        NUM("replica_timeouts", rs.timeouts),
        NUM("replica_queue_drops", rs.queue_drops),
        NUM("replica_pressure_pauses", rs.pressure_pauses),
        NUM("replica_answers_on_link", rs.answers_on_link),
        NUM("replica_link_writes", rs.link_writes),
        NUM("replica_pressed", rs.pressed ? 1 : 0),
        NUM("replica_writes_applied", rs.writes_applied),
        NUM("replica_reads_served", rs.reads_served),
    };
#undef NUM
    _Static_assert(sizeof v / sizeof v[0] + ANTIENTROPY_STATS <= DISPATCH_STATS,
                   "DISPATCH_STATS counts every entry");
    size_t n = sizeof v / sizeof v[0];
    memcpy(out, v, sizeof v);
    n += antientropy_wire_stats(s->antientropy, out + n);
    return n;
}

void dispatch_free(server *s)
{
    coord_free(s->coord);
    s->coord = NULL;
}
