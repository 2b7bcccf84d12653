/* route: libringkv's routing (client_int.h): the topology a client fetches
 * from any node, and each GET, PUT and DEL sent to the first up member of
 * its key's preference list on that ring (client/ring.c, the ring the nodes
 * use), failing over down the list while nothing was sent. The sockets,
 * deadlines and frames are client.c's.
 */
#include "client_int.h"
#include "ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends "; add" (or add, first) to dst, cutting what does not fit. */
static void join_err(char *dst, size_t cap, const char *add)
{
    size_t used = strlen(dst);
    if (used && used + 2 < cap) {
        memcpy(dst + used, "; ", 3);
        used += 2;
    }
    size_t n = strlen(add);
    if (n > cap - 1 - used)
        n = cap - 1 - used;
    memcpy(dst + used, add, n);
    dst[used + n] = '\0';
}

void client_clear_replicas(rkv_client *c)
{
    for (size_t i = 0; i < c->nreplicas; i++)
        free(c->replicas[i]);
    free(c->replicas);
    c->replicas = NULL;
    c->nreplicas = 0;
}

/* Keeps what a data op's reply says about its replicas and ring. */
static void note_meta(rkv_client *c, const wire_response *resp)
{
    if (!resp->has_meta)
        return;
    if (c->topo && resp->epoch != c->topo->epoch)
        c->topo_stale = 1;
    c->replicas = calloc(resp->nreplicas ? resp->nreplicas : 1, sizeof *c->replicas);
    if (!c->replicas)
        return; /* only informational */
    for (size_t i = 0; i < resp->nreplicas; i++) {
        c->replicas[i] = client_dup_range((const char *)resp->replicas[i].ptr, resp->replicas[i].len);
        if (!c->replicas[i])
            break;
        c->nreplicas++;
    }
}

static int is_up_state(const char *state)
{
    return strcmp(state, "alive") == 0 || strcmp(state, "suspect") == 0;
}

/* Makes t, fetched from link via, the routing view (taking it over). */
static void topo_install(rkv_client *c, struct rkv_topology *t, size_t via)
{
    char via_host[256];
    snprintf(via_host, sizeof via_host, "%s", c->links[via].a.host); /* links may move */
    rkv_route *routes = calloc(t->nmembers ? t->nmembers : 1, sizeof *routes);
    if (!routes || t->nmembers == 0) {
        free(routes);
        rkv_topology_free(t);
        return; /* route as if no topology */
    }
    for (size_t i = 0; i < t->nmembers; i++)
        routes[i] = (rkv_route){client_link_for(c, t->members[i].client_addr, via_host),
                                is_up_state(t->members[i].state)};
    rkv_topology_free(c->topo);
    free(c->routes);
    c->topo = t;
    c->routes = routes;
    c->topo_stale = 0;
}

/* Asks nodes for the topology until one answers: the current link, the
 * seeds, then every other node met. Installs it for routing and, when copy
 * is not NULL, gives the caller its own copy. */
rkv_status client_topo_fetch(rkv_client *c, struct rkv_topology **copy)
{
    c->topo_tried = 1;
    c->topo_tried_ms = client_now_ms();
    c->topo_wait_ms = RKV_TOPO_MIN_INTERVAL_MS;
    rkv_status st = RKV_ERR_IO;
    char errs[sizeof c->errstr] = "";
    size_t start = c->cur;
    for (size_t k = 0; k <= c->nlinks; k++) {
        size_t i = k == 0 ? start : k - 1;
        if (k > 0 && i == start)
            continue;
        if (i >= c->nlinks)
            break;
        c->cur = i;
        wire_request req = {.op = WIRE_OP_TOPOLOGY, .consistency = -1};
        wire_response resp;
        int nothing;
        st = client_request(c, &req, 1, &resp, &nothing);
        if (st == RKV_OK && !resp.has_topology)
            st = client_fail(c, RKV_ERR_PROTOCOL, "node %s answered TOPOLOGY without a topology",
                      client_cur_name(c));
        if (st == RKV_OK) {
            char err[256];
            struct rkv_topology *t = client_topo_build(&resp.topology, err, sizeof err);
            struct rkv_topology *t2 =
                t && copy ? client_topo_build(&resp.topology, err, sizeof err) : NULL;
            if (!t || (copy && !t2)) {
                rkv_topology_free(t);
                st = client_fail(c, RKV_ERR_PROTOCOL, "bad topology from %s: %s", client_cur_name(c), err);
            } else {
                if (copy)
                    *copy = t2;
                topo_install(c, t, c->cur);
                c->errstr[0] = '\0';
                return RKV_OK;
            }
        }
        if (st == RKV_ERR_BAD_REQUEST) /* an unknown op: a node from before TOPOLOGY */
            c->topo_wait_ms = RKV_TOPO_OLD_NODE_INTERVAL_MS;
        join_err(errs, sizeof errs, c->errstr);
    }
    snprintf(c->errstr, sizeof c->errstr, "%s", errs);
    return st;
}

/* Fetches the topology when there is none or it is stale, at most once per
 * RKV_TOPO_MIN_INTERVAL_MS; failures leave routing as it was. */
static int topo_has_down(const rkv_client *c)
{
    for (size_t i = 0; c->topo && i < c->topo->nmembers; i++)
        if (!c->routes[i].up)
            return 1;
    return 0;
}

static void topo_refresh(rkv_client *c)
{
    /* A member down in the view is routed around; without a new look, a
     * client would never send it a request again after it is back. */
    if (c->topo && !c->topo_stale && topo_has_down(c) &&
        client_now_ms() - c->topo_tried_ms >= RKV_TOPO_DOWN_RECHECK_MS)
        c->topo_stale = 1;
    if (c->topo && !c->topo_stale)
        return;
    if (c->topo_tried && client_now_ms() - c->topo_tried_ms < c->topo_wait_ms)
        return;
    size_t cur = c->cur;
    client_topo_fetch(c, NULL);
    if (!c->topo)
        c->cur = cur;
    c->errstr[0] = '\0';
}

/* A GET, PUT or DEL sent to the first up member of the key's preference
 * list, failing over down the list while nothing was sent. */
static rkv_status routed(rkv_client *c, wire_request *req, wire_response *resp)
{
    const struct rkv_topology *t = c->topo;
    size_t n = t->nmembers;
    size_t *pref = malloc(n * sizeof *pref);
    size_t *cand = malloc(n * sizeof *cand);
    if (!pref || !cand) {
        free(pref);
        free(cand);
        return client_fail(c, RKV_ERR_INTERNAL, "out of memory routing a request");
    }
    n = ring_preference(t->internal, ring_token(req->key.ptr, req->key.len), n, pref);
    /* Up members in preference order, then the down ones as a last resort;
     * as link indexes, which outlive a topology refresh below. */
    size_t nc = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (size_t i = 0; i < n; i++)
            if (c->routes[pref[i]].up == pass && c->routes[pref[i]].link != SIZE_MAX)
                cand[nc++] = c->routes[pref[i]].link;
    free(pref);
    char errs[sizeof c->errstr] = "";
    rkv_status st = RKV_ERR_IO;
    for (size_t k = 0; k < nc; k++) {
        c->cur = cand[k];
        int nothing;
        st = client_request(c, req, 1, resp, &nothing);
        if (!nothing) {
            if (st == RKV_OK || st == RKV_NOT_FOUND || resp->has_meta)
                note_meta(c, resp);
            free(cand);
            return st;
        }
        join_err(errs, sizeof errs, c->errstr);
        c->topo_stale = 1; /* a member is not where the topology said */
        topo_refresh(c);
    }
    free(cand);
    if (nc == 0)
        return client_fail(c, RKV_ERR_IO, "no member of the topology has a usable address");
    return client_fail(c, RKV_ERR_IO, "no replica of the key could be reached: %s", errs);
}

/* One request and its reply. On RKV_OK and RKV_NOT_FOUND, *resp points into
 * the client's buffers until the next request. */
rkv_status client_roundtrip(rkv_client *c, wire_request *req, wire_response *resp)
{
    c->errstr[0] = '\0';
    memset(resp, 0, sizeof *resp);
    int keyed = req->op == WIRE_OP_GET || req->op == WIRE_OP_PUT || req->op == WIRE_OP_DEL;
    if (keyed) {
        client_clear_replicas(c);
        req->consistency = c->consistency;
        topo_refresh(c);
        if (c->topo)
            return routed(c, req, resp);
    }
    int nothing;
    rkv_status st = client_request(c, req, 0, resp, &nothing);
    if (keyed)
        note_meta(c, resp);
    return st;
}
