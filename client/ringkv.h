/* ringkv.h: the ringkv client library (libringkv).
 *
 * A client starts from a list of seed addresses. On first use it fetches the
 * cluster's topology (TOPOLOGY) from any seed that answers, hashes each key
 * onto the same consistent-hash ring as the nodes, and sends the request to
 * the first live member of the key's preference list, keeping one lazily
 * opened connection per node it talks to. When a connection cannot be made
 * (nothing was sent) it refreshes the topology and tries the next replica;
 * when a reply says the node's ring differs (a newer epoch) it refreshes the
 * topology before the next request (at most once per 100 ms); while the
 * topology shows a member down, it is fetched again every 2 s, so a member
 * that comes back gets its keys' requests again. Nodes that
 * answer no TOPOLOGY (older versions) are used as before, one connection to
 * the first seed that answers, and asked again every 10 s. Any node accepts any key, so a stale view
 * only costs a hop inside the cluster.
 *
 * Threads: an rkv_client is not thread-safe; use one per thread, or guard it
 * with your own lock. Different clients may be used from different threads.
 * A struct rkv_topology returned to the caller is an independent copy: it
 * may be read from any thread and outlives the client.
 *
 * Errors: every call returns an rkv_status; on anything but RKV_OK and
 * RKV_NOT_FOUND, rkv_errstr(client) tells what went wrong in words a user can
 * act on. The message stays valid until the next call on that client.
 *
 * Memory: values returned to the caller are malloc'd copies that the caller
 * releases with rkv_free(). Keys and values passed in are only borrowed for
 * the duration of the call.
 */
#ifndef RINGKV_H
#define RINGKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports only what this header declares. */
#define RKV_API __attribute__((visibility("default")))

typedef enum rkv_status {
    RKV_OK = 0,
    RKV_NOT_FOUND = 1,
    RKV_ERR_BAD_REQUEST = 2, /* the node refused the request as malformed */
    RKV_ERR_TOO_LARGE = 3,   /* key or value over the node's limit */
    RKV_ERR_UNAVAILABLE = 4, /* the node cannot serve it now (full, overloaded) */
    RKV_ERR_TIMEOUT = 5,     /* no answer within the request timeout */
    RKV_ERR_INTERNAL = 6,    /* the node failed (e.g. storage error) */
    RKV_ERR_IO = 7,          /* no connection could be made or it broke */
    RKV_ERR_PROTOCOL = 8,    /* the node's reply could not be understood */
    RKV_ERR_ARG = 9,         /* a bad argument to this library */
} rkv_status;

typedef struct rkv_client rkv_client;

/* Timeouts; 0 or less means the default. */
typedef struct rkv_options {
    int connect_timeout_ms; /* per address tried; default 2000 */
    int request_timeout_ms; /* from sending a request to its complete reply; default 5000 */
} rkv_options;

/* One cluster member, as the node answering rkv_members() sees it. */
typedef struct rkv_member {
    char *id;
    char *peer_addr;   /* gossip UDP and peer TCP, "host:port" */
    char *client_addr; /* client protocol */
    char *resp_addr;   /* RESP; "" when off */
    char *state;       /* "alive", "suspect", "dead", "left" or "removed" */
    char *role;        /* ring role: "member", "joining" or "leaving" */
    uint64_t incarnation;
    uint64_t age_ms;   /* how long it has been in this state */
    uint64_t vnodes;
} rkv_member;

/* Consistency of reads and writes (DESIGN.md): how many replicas must
 * answer. DEFAULT leaves it to the node's [replication] settings. */
typedef enum rkv_consistency {
    RKV_CONSISTENCY_DEFAULT = -1,
    RKV_CONSISTENCY_ONE = 0,
    RKV_CONSISTENCY_QUORUM = 1,
    RKV_CONSISTENCY_ALL = 2,
} rkv_consistency;

/* One ring member, as the node answering rkv_topology() sees it. */
typedef struct rkv_topology_member {
    char *id;
    char *client_addr; /* client protocol, "host:port" */
    char *resp_addr;   /* RESP; "" when off */
    char *state;       /* "alive", "suspect" or "dead" (gossip's view) */
    uint64_t vnodes;
    double share;      /* fraction of the token space for which it is the first replica */
} rkv_topology_member;

/* The ring: members sorted by id, with the ring parameters. A struct tag,
 * not a typedef, because rkv_topology() is the function that fetches it. */
struct rkv_topology {
    uint64_t epoch;          /* ring epoch: equal epochs place every key the same way */
    uint64_t n;              /* replicas per key (min of [replication] n and members) */
    uint64_t vnodes_default; /* [node] vnodes of the answering node */
    rkv_topology_member *members;
    size_t nmembers;
    void *internal; /* the library's ring; do not touch */
};

/* One STATS entry. */
typedef struct rkv_stat {
    char *name;
    int is_num; /* 1: num holds the value; 0: str does */
    uint64_t num;
    char *str;
} rkv_stat;

/* Creates a client for a comma-separated list of seed "host:port" addresses
 * (e.g. "127.0.0.1:7001,127.0.0.1:7002"). opts may be NULL for defaults.
 * Nothing is connected here: the first GET, PUT or DEL fetches the topology
 * and connects to the nodes it needs. Returns NULL only on a bad address
 * list or out of memory, with the reason in errbuf when given. */
RKV_API rkv_client *rkv_connect(const char *addrs, const rkv_options *opts,
                        char *errbuf, size_t errlen);

/* Closes the connection and frees the client. NULL is a no-op. */
RKV_API void rkv_close(rkv_client *c);

/* The message for the last failed call on c. Owned by c. */
RKV_API const char *rkv_errstr(const rkv_client *c);

/* A short name for a status ("OK", "NOT_FOUND", "TIMEOUT", ...). */
RKV_API const char *rkv_status_name(rkv_status st);

/* Reads key. On RKV_OK, *value is a malloc'd copy of *value_len bytes (a zero
 * length value still gets a non-NULL buffer), freed by the caller with
 * rkv_free(). On RKV_NOT_FOUND the key is absent, deleted or expired. */
RKV_API rkv_status rkv_get(rkv_client *c, const void *key, size_t klen,
                   void **value, size_t *value_len);

/* Writes value under key. ttl_ms 0 means no expiry. */
RKV_API rkv_status rkv_put(rkv_client *c, const void *key, size_t klen,
                   const void *value, size_t vlen, uint64_t ttl_ms);

/* Deletes key. Deleting an absent key is RKV_OK. */
RKV_API rkv_status rkv_del(rkv_client *c, const void *key, size_t klen);

/* Round trip to the node. */
RKV_API rkv_status rkv_ping(rkv_client *c);

/* Fetches the node's statistics: *stats is an array of *n entries, freed
 * with rkv_stats_free(). */
RKV_API rkv_status rkv_stats(rkv_client *c, rkv_stat **stats, size_t *n);
RKV_API void rkv_stats_free(rkv_stat *stats, size_t n);

/* Fetches the cluster members as the node sees them, itself included,
 * ordered by id: *members is an array of *n entries, freed with
 * rkv_members_free(). RKV_ERR_UNAVAILABLE when the node runs without
 * membership (no [node] peer). */
RKV_API rkv_status rkv_members(rkv_client *c, rkv_member **members, size_t *n);
RKV_API void rkv_members_free(rkv_member *members, size_t n);

/* Removes a dead (or left) member for good, e.g. a machine that will not
 * come back. RKV_ERR_BAD_REQUEST, with the reason in rkv_errstr(), when the
 * id is unknown, the node's own, or not dead or left. */
RKV_API rkv_status rkv_remove(rkv_client *c, const char *node_id);

/* Decommissions the node this client is connected to: it hands its ranges
 * to the members that take them over, then leaves the cluster and stops.
 * Returns at once (RKV_OK: started); STATS' stream_* figures and
 * `ringkv status` follow it. Refused (RKV_ERR_UNAVAILABLE, with the reason
 * in rkv_errstr) for a node that is not a ring member, the last member,
 * or while another node is joining or leaving. */
RKV_API rkv_status rkv_decommission(rkv_client *c);

/* Consistency for this client's later GET, PUT and DEL requests (default:
 * RKV_CONSISTENCY_DEFAULT, the node's). RKV_ERR_ARG for an unknown level. */
RKV_API rkv_status rkv_set_consistency(rkv_client *c, rkv_consistency level);

/* The ids of the replicas that answered the last GET, PUT or DEL, as its
 * coordinator reported them; *n is 0 when the node did not say (a node
 * without replication, or an older one). The array and strings are owned by
 * c and valid until the next request on c. */
RKV_API const char *const *rkv_last_replicas(const rkv_client *c, size_t *n);

/* The address of the node that answered the last request (its coordinator
 * for a GET, PUT or DEL), or "" before any. Owned by c, valid until the next
 * request. */
RKV_API const char *rkv_last_node(const rkv_client *c);

/* Fetches the topology afresh from a node (any seed or known member that
 * answers) and makes it the client's routing view. *out is freed with
 * rkv_topology_free(). RKV_ERR_BAD_REQUEST from a node too old to know the
 * TOPOLOGY operation. */
RKV_API rkv_status rkv_topology(rkv_client *c, struct rkv_topology **out);
RKV_API void rkv_topology_free(struct rkv_topology *t);

/* A key's token (XXH3-64 of the key) and its preference list in t: up to max
 * member indexes into t->members, first replica first. Returns how many
 * (min(max, t->nmembers)). Pure: no I/O, safe on a shared t from any thread. */
RKV_API size_t rkv_topology_locate(const struct rkv_topology *t, const void *key, size_t klen,
                                   uint64_t *token, size_t *idx, size_t max);

/* Frees a value returned by rkv_get. */
RKV_API void rkv_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
