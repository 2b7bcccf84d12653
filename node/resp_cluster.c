/* resp_cluster: the RESP port's CLUSTER command (INFO, MYID, NODES, SLOTS),
 * so that Redis Cluster clients (redis-benchmark --cluster, cluster-aware
 * client libraries) spread their connections over a ringkv cluster.
 *
 * ringkv places keys on its own ring, not in Redis' 16384 hash slots, and
 * any node coordinates any key. The slot map reported here only spreads a
 * cluster client's connections: the ring members that are up and have a
 * RESP port, in id order, each take an equal run of slots. Every node
 * computes the same map from its view of the membership, and a request sent
 * by any map reaches a node that coordinates it, so no MOVED or ASK is ever
 * answered. A node without membership (no peer port) answers as a Redis
 * with cluster support disabled.
 */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cluster.h"
#include "config.h"

#define RESP_CLUSTER_SLOTS 16384
#define RESP_CLUSTER_NAME_LEN 40 /* Redis' node ids: 40 hex digits */

/* One node of the slot map. */
typedef struct slot_node {
    const char *id;
    char name[RESP_CLUSTER_NAME_LEN + 1];
    char host[256];
    int port, cport;
    unsigned first, last; /* its slots */
    bool myself;
} slot_node;

/* "HOST:PORT" or "[V6]:PORT" into host and port; false when malformed. */
static bool split_addr(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || colon == addr || !colon[1])
        return false;
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535 || hlen == 0 || hlen >= cap)
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return true;
}

/* A Redis-style node id (40 hex digits) from a ringkv node id: the same on
 * every node, so clients can match the maps of several. */
static void name_of(const char *id, char out[RESP_CLUSTER_NAME_LEN + 1])
{
    size_t len = strlen(id);
    XXH128_hash_t h = XXH3_128bits(id, len);
    snprintf(out, RESP_CLUSTER_NAME_LEN + 1, "%016llx%016llx%08llx",
             (unsigned long long)h.high64, (unsigned long long)h.low64,
             (unsigned long long)(XXH3_64bits_withSeed(id, len, 1) >> 32));
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const slot_node *)a)->id, ((const slot_node *)b)->id);
}

/* The slot map: *out (malloc'd, the caller frees it) and its length, or 0
 * when no member can be listed (then *out is NULL). */
static size_t slot_map(server *s, slot_node **out)
{
    const ring *r = cluster_ring(s->cluster);
    size_t nm = ring_members(r), n = 0;
    *out = NULL;
    slot_node *v = nm ? calloc(nm, sizeof *v) : NULL;
    if (!v)
        return 0;
    for (size_t i = 0; i < nm; i++) {
        cluster_member m;
        const char *id = ring_member_id(r, i);
        if (!cluster_is_up(s->cluster, id) || !cluster_member_get(s->cluster, id, &m) ||
            !split_addr(m.resp_addr, v[n].host, sizeof v[n].host, &v[n].port))
            continue;
        char phost[256];
        if (!split_addr(m.peer_addr, phost, sizeof phost, &v[n].cport))
            v[n].cport = 0;
        v[n].id = id;
        v[n].myself = strcmp(id, s->node_id) == 0;
        name_of(id, v[n].name);
        n++;
    }
    if (n == 0) {
        free(v);
        return 0;
    }
    qsort(v, n, sizeof *v, by_id);
    for (size_t i = 0; i < n; i++) {
        v[i].first = (unsigned)(i * RESP_CLUSTER_SLOTS / n);
        v[i].last = (unsigned)((i + 1) * RESP_CLUSTER_SLOTS / n - 1);
    }
    *out = v;
    return n;
}

static void cluster_nodes(resp_ctx *x, const slot_node *v, size_t n)
{
    unsigned long long epoch = (unsigned long long)(cluster_epoch(x->s->cluster) & INT64_MAX);
    size_t cap = n * 400 + 1, len = 0;
    char *text = malloc(cap);
    if (!text) {
        resp_reply_error(x, "ERR out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(text + len, cap - len, "%s %s:%d@%d %s - 0 0 %llu connected %u-%u\n",
                         v[i].name, v[i].host, v[i].port, v[i].cport,
                         v[i].myself ? "myself,master" : "master", epoch, v[i].first, v[i].last);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
    }
    resp_reply_bulk(x, text, len);
    free(text);
}

static void cluster_slots(resp_ctx *x, const slot_node *v, size_t n)
{
    size_t begin = conn_reply_begin(x->c);
    resp_add_array(x, n);
    for (size_t i = 0; i < n; i++) {
        resp_add_array(x, 3);
        resp_add_int(x, v[i].first);
        resp_add_int(x, v[i].last);
        resp_add_array(x, 3);
        resp_add_str(x, v[i].host);
        resp_add_int(x, v[i].port);
        resp_add_str(x, v[i].name);
    }
    conn_reply_end(x->c, 0, begin);
}

static void cluster_info(resp_ctx *x, size_t n)
{
    char text[512];
    unsigned long long epoch = (unsigned long long)(cluster_epoch(x->s->cluster) & INT64_MAX);
    int len = snprintf(text, sizeof text,
                       "cluster_enabled:1\r\ncluster_state:%s\r\ncluster_slots_assigned:%d\r\n"
                       "cluster_slots_ok:%d\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n"
                       "cluster_known_nodes:%zu\r\ncluster_size:%zu\r\n"
                       "cluster_current_epoch:%llu\r\ncluster_my_epoch:%llu\r\n",
                       n ? "ok" : "fail", n ? RESP_CLUSTER_SLOTS : 0, n ? RESP_CLUSTER_SLOTS : 0,
                       ring_members(cluster_ring(x->s->cluster)), n, epoch, epoch);
    resp_reply_bulk(x, text, (size_t)len);
}

void resp_cmd_cluster(resp_ctx *x)
{
    static const char *const help[] = {
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "INFO",
        "    Cluster state; the slot map covers every slot while a member is up.",
        "MYID",
        "    This node's id in the slot map (40 hex digits made from its ringkv id).",
        "NODES",
        "    The slot map in CLUSTER NODES' format: every member that is up, a master.",
        "SLOTS",
        "    The slot map as ranges. ringkv places keys on its own ring, and any node",
        "    coordinates any key: the map only spreads a cluster client's connections.",
        "HELP",
        "    Print this help.",
        NULL};
    if (!x->s->cluster || !x->s->cfg->peer[0]) {
        resp_reply_error(x, "ERR This instance has cluster support disabled");
        return;
    }
    if (resp_arg_is(x, 1, "help")) {
        resp_reply_help(x, help);
        return;
    }
    bool info = resp_arg_is(x, 1, "info"), myid = resp_arg_is(x, 1, "myid"),
         nodes = resp_arg_is(x, 1, "nodes"), slots = resp_arg_is(x, 1, "slots");
    if (!info && !myid && !nodes && !slots) {
        resp_reply_unknown_sub(x, "CLUSTER");
        return;
    }
    if (x->argc != 2) {
        resp_reply_error(x, "ERR wrong number of arguments for 'cluster|%s' command",
                         info ? "info" : myid ? "myid" : nodes ? "nodes" : "slots");
        return;
    }
    if (myid) {
        char name[RESP_CLUSTER_NAME_LEN + 1];
        name_of(x->s->node_id, name);
        resp_reply_bulk(x, name, RESP_CLUSTER_NAME_LEN);
        return;
    }
    slot_node *v;
    size_t n = slot_map(x->s, &v);
    if (info)
        cluster_info(x, n);
    else if (nodes)
        cluster_nodes(x, v, n);
    else
        cluster_slots(x, v, n);
    free(v);
}
