/* client_int: what client.c (connections, data calls) shares with route.c
 * (topology and routing) and admin.c (stats, members, remove, topology).
 * Internal to libringkv: not installed, not exported.
 */
#ifndef RINGKV_CLIENT_INT_H
#define RINGKV_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"
#include "wire.h"

/* Topology refreshes happen at most this often (a flapping node must not
 * turn every request into two). */
#define RKV_TOPO_MIN_INTERVAL_MS 100
/* While the topology shows a member down, it is fetched again this often,
 * so a member that comes back gets its keys' requests again. */
#define RKV_TOPO_DOWN_RECHECK_MS 2000
/* Nodes too old to know TOPOLOGY are asked again only this often. */
#define RKV_TOPO_OLD_NODE_INTERVAL_MS 10000

typedef struct rkv_addr {
    char *host; /* without the brackets of an IPv6 literal */
    char port[6];
    char *name; /* as the user (or the topology) wrote it, for messages */
} rkv_addr;

/* One node the client may talk to, and its connection. */
typedef struct rkv_link {
    rkv_addr a;
    int fd;        /* -1 when not connected */
    uint8_t *rbuf; /* received bytes: rbuf[0..rlen) */
    size_t rcap;
    size_t rlen;
    size_t rused; /* bytes of rbuf taken by the frame last returned */
} rkv_link;

/* A ring member as routing needs it. */
typedef struct rkv_route {
    size_t link; /* index into links, or SIZE_MAX when its address is unusable */
    int up;      /* alive or suspect in the topology */
} rkv_route;

struct rkv_client {
    rkv_link *links; /* [0, nseeds): the seeds; then members met in topologies */
    size_t nlinks, caplinks, nseeds;
    size_t cur; /* link of the open, or last good, connection */
    int connect_ms;
    int request_ms;
    int consistency; /* rkv_consistency for GET, PUT, DEL */
    uint64_t next_id;
    msgpack_sbuffer sb; /* the request being sent */
    msgpack_zone zone;  /* scratch for decoding the reply */

    struct rkv_topology *topo; /* routing view, or NULL (not fetched, or old nodes) */
    rkv_route *routes;         /* per topo member */
    int topo_stale;            /* a reply carried another epoch */
    int64_t topo_tried_ms;     /* last fetch attempt, for the rate limit */
    int topo_tried;            /* a fetch was attempted at all */
    int topo_wait_ms;          /* between fetch attempts */

    char **replicas; /* the last data op's answering replicas (from meta) */
    size_t nreplicas;
    char errstr[512];
};

/* Monotonic milliseconds. */
int64_t client_now_ms(void);
/* Encodes req with a fresh id and sends it on the current link (pinned) or
 * any seed, then reads its reply. *nothing_sent says the request never
 * left (or was not encoded), so another node may be tried safely. */
rkv_status client_request(rkv_client *c, wire_request *req, int pinned, wire_response *resp,
                          int *nothing_sent);
/* The link for a member's client address, added when new; SIZE_MAX when
 * the address cannot be used. via_host: the host the topology came from. */
size_t client_link_for(rkv_client *c, const char *addr, const char *via_host);
/* Forgets the last data op's replicas. */
void client_clear_replicas(rkv_client *c);

/* Clears the error message at the start of a call. */
void client_clear_err(rkv_client *c);
/* Sets the error message and returns st. */
rkv_status client_fail(rkv_client *c, rkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The address of the node the client last talked to, for messages. */
const char *client_cur_name(const rkv_client *c);
/* A malloc'd NUL-terminated copy of n bytes (s may be NULL when n is 0). */
char *client_dup_range(const char *s, size_t n);
/* One request and its reply (routed by key for GET/PUT/DEL); *resp points
 * into the client's buffers until the next request. */
rkv_status client_roundtrip(rkv_client *c, wire_request *req, wire_response *resp);
/* Gives back receive and send buffers grown past what is worth keeping. */
void client_trim_buffers(rkv_client *c);
/* Fetches the topology from any known node; *copy gets a caller-owned copy
 * when not NULL. */
rkv_status client_topo_fetch(rkv_client *c, struct rkv_topology **copy);
/* A topology from a decoded reply; NULL with a message in err. */
struct rkv_topology *client_topo_build(const wire_topology_view *v, char *err, size_t errlen);

#endif
