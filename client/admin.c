/* admin: libringkv's calls about the cluster rather than about keys —
 * STATS, MEMBERS, REMOVE and TOPOLOGY (with key location) — on top of the
 * request path in client.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "ring.h"

void rkv_topology_free(struct rkv_topology *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nmembers; i++) {
        free(t->members[i].id);
        free(t->members[i].client_addr);
        free(t->members[i].resp_addr);
        free(t->members[i].state);
    }
    free(t->members);
    ring_free(t->internal);
    free(t);
}

static char *dup_bytes(wire_bytes b)
{
    return client_dup_range((const char *)b.ptr, b.len);
}

/* A topology from a decoded reply, members in ring order (sorted by id), so
 * that ring indexes are member indexes. NULL with a message. */
struct rkv_topology *client_topo_build(const wire_topology_view *v, char *err, size_t errlen)
{
    struct rkv_topology *t = calloc(1, sizeof *t);
    ring_member *rm = calloc(v->nmembers ? v->nmembers : 1, sizeof *rm);
    char **ids = calloc(v->nmembers ? v->nmembers : 1, sizeof *ids);
    if (!t || !rm || !ids)
        goto oom;
    t->epoch = v->epoch;
    t->n = v->n;
    t->vnodes_default = v->vnodes_default;
    for (size_t i = 0; i < v->nmembers; i++) {
        if (v->members[i].vnodes == 0 || v->members[i].vnodes > RING_MAX_VNODES) {
            snprintf(err, errlen, "member %zu has %llu vnodes", i,
                     (unsigned long long)v->members[i].vnodes);
            goto fail;
        }
        if (!(ids[i] = dup_bytes(v->members[i].id)))
            goto oom;
        rm[i] = (ring_member){ids[i], (uint32_t)v->members[i].vnodes};
    }
    ring *r = ring_new(rm, v->nmembers, err, errlen);
    if (!r)
        goto fail;
    t->internal = r;
    t->members = calloc(v->nmembers ? v->nmembers : 1, sizeof *t->members);
    if (!t->members)
        goto oom;
    for (size_t i = 0; i < ring_members(r); i++) {
        const char *id = ring_member_id(r, i);
        size_t j = 0;
        while (strcmp(ids[j], id) != 0)
            j++;
        const wire_topology_member_view *m = &v->members[j];
        rkv_topology_member *o = &t->members[i];
        o->id = client_dup_range(id, strlen(id));
        o->client_addr = dup_bytes(m->client_addr);
        o->resp_addr = dup_bytes(m->resp_addr);
        o->state = dup_bytes(m->state);
        o->vnodes = m->vnodes;
        o->share = ring_share(r, i);
        t->nmembers++;
        if (!o->id || !o->client_addr || !o->resp_addr || !o->state)
            goto oom;
    }
    for (size_t i = 0; i < v->nmembers; i++)
        free(ids[i]);
    free(ids);
    free(rm);
    return t;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    for (size_t i = 0; ids && i < v->nmembers; i++)
        free(ids[i]);
    free(ids);
    free(rm);
    rkv_topology_free(t);
    return NULL;
}

rkv_status rkv_stats(rkv_client *c, rkv_stat **stats, size_t *n)
{
    if (!c)
        return RKV_ERR_ARG;
    client_clear_err(c);
    if (!stats || !n)
        return client_fail(c, RKV_ERR_ARG, "rkv_stats needs somewhere to put the stats");
    *stats = NULL;
    *n = 0;

    wire_request req = {.op = WIRE_OP_STATS};
    wire_response resp;
    rkv_status st = client_roundtrip(c, &req, &resp);
    if (st == RKV_OK) {
        rkv_stat *out = calloc(resp.nstats ? resp.nstats : 1, sizeof *out);
        size_t i = 0;
        for (; out && i < resp.nstats; i++) {
            const wire_stat_view *v = &resp.stats[i];
            out[i].name = client_dup_range((const char *)v->name.ptr, v->name.len);
            out[i].is_num = v->is_num;
            out[i].num = v->num;
            if (!v->is_num)
                out[i].str = client_dup_range((const char *)v->str.ptr, v->str.len);
            if (!out[i].name || (!v->is_num && !out[i].str))
                break;
        }
        if (!out || i < resp.nstats) {
            rkv_stats_free(out, out ? i + 1 : 0);
            st = client_fail(c, RKV_ERR_INTERNAL, "out of memory copying %zu stats", resp.nstats);
        } else {
            *stats = out;
            *n = resp.nstats;
        }
    }
    client_trim_buffers(c);
    return st;
}

void rkv_stats_free(rkv_stat *stats, size_t n)
{
    if (!stats)
        return;
    for (size_t i = 0; i < n; i++) {
        free(stats[i].name);
        free(stats[i].str);
    }
    free(stats);
}

/* Copies one decoded member out of the reply buffer; -1 out of memory. */
static int copy_member(rkv_member *out, const wire_member_view *v)
{
    const wire_bytes *src[] = {&v->id,        &v->peer_addr, &v->client_addr,
                               &v->resp_addr, &v->state,     &v->role};
    char **dst[] = {&out->id,        &out->peer_addr, &out->client_addr,
                    &out->resp_addr, &out->state,     &out->role};
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        if (!(*dst[i] = client_dup_range((const char *)src[i]->ptr, src[i]->len)))
            return -1;
    out->incarnation = v->incarnation;
    out->age_ms = v->age_ms;
    out->vnodes = v->vnodes;
    return 0;
}

rkv_status rkv_members(rkv_client *c, rkv_member **members, size_t *n)
{
    if (!c)
        return RKV_ERR_ARG;
    client_clear_err(c);
    if (!members || !n)
        return client_fail(c, RKV_ERR_ARG, "rkv_members needs somewhere to put the members");
    *members = NULL;
    *n = 0;

    wire_request req = {.op = WIRE_OP_MEMBERS};
    wire_response resp;
    rkv_status st = client_roundtrip(c, &req, &resp);
    if (st == RKV_OK && (resp.has_value || resp.stats)) {
        st = client_fail(c, RKV_ERR_PROTOCOL, "node %s answered MEMBERS without a member list",
                  client_cur_name(c));
    } else if (st == RKV_OK) {
        rkv_member *out = calloc(resp.nmembers ? resp.nmembers : 1, sizeof *out);
        size_t i = 0;
        while (out && i < resp.nmembers && copy_member(&out[i], &resp.members[i]) == 0)
            i++;
        if (!out || i < resp.nmembers) {
            rkv_members_free(out, out ? i + 1 : 0);
            st = client_fail(c, RKV_ERR_INTERNAL, "out of memory copying %zu members", resp.nmembers);
        } else {
            *members = out;
            *n = resp.nmembers;
        }
    }
    client_trim_buffers(c);
    return st;
}

void rkv_members_free(rkv_member *members, size_t n)
{
    if (!members)
        return;
    for (size_t i = 0; i < n; i++) {
        free(members[i].id);
        free(members[i].peer_addr);
        free(members[i].client_addr);
        free(members[i].resp_addr);
        free(members[i].state);
        free(members[i].role);
    }
    free(members);
}

rkv_status rkv_remove(rkv_client *c, const char *node_id)
{
    if (!c)
        return RKV_ERR_ARG;
    client_clear_err(c);
    if (!node_id || !*node_id)
        return client_fail(c, RKV_ERR_ARG, "rkv_remove needs a node id");
    wire_request req = {.op = WIRE_OP_REMOVE, .key = {(const uint8_t *)node_id, strlen(node_id)}};
    wire_response resp;
    rkv_status st = client_roundtrip(c, &req, &resp);
    client_trim_buffers(c);
    return st;
}

rkv_status rkv_decommission(rkv_client *c)
{
    if (!c)
        return RKV_ERR_ARG;
    client_clear_err(c);
    wire_request req = {.op = WIRE_OP_DECOMMISSION, .consistency = -1};
    wire_response resp;
    rkv_status st = client_roundtrip(c, &req, &resp);
    client_trim_buffers(c);
    return st;
}

rkv_status rkv_topology(rkv_client *c, struct rkv_topology **out)
{
    if (!c)
        return RKV_ERR_ARG;
    client_clear_err(c);
    if (!out)
        return client_fail(c, RKV_ERR_ARG, "rkv_topology needs somewhere to put the topology");
    *out = NULL;
    rkv_status st = client_topo_fetch(c, out);
    client_trim_buffers(c);
    return st;
}

size_t rkv_topology_locate(const struct rkv_topology *t, const void *key, size_t klen,
                           uint64_t *token, size_t *idx, size_t max)
{
    uint64_t tok = ring_token(key, klen);
    if (token)
        *token = tok;
    if (!t || !t->internal || !idx)
        return 0;
    return ring_preference(t->internal, tok, max, idx);
}
