/* wire: the client protocol codec, shared by ringkvd and libringkv.
 *
 * A frame is a 4-byte big-endian body length followed by one msgpack array
 * (proto/README.md documents every byte). This module is pure: it turns
 * bytes into structs and structs into bytes, and never touches a socket.
 * Decoders never trust a length or count from the wire: wire_check() walks
 * the msgpack headers before msgpack-c sees them (msgpack-c 4.0 allocates
 * count x 24 bytes for an array header without checking the input holds it).
 */
#ifndef RINGKV_WIRE_H
#define RINGKV_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define WIRE_HEADER_BYTES 4
/* Deepest msgpack nesting a decoder accepts: requests are one array deep,
 * STATS replies two (a map inside the array). */
#define WIRE_MAX_DEPTH 4

typedef enum wire_op {
    WIRE_OP_GET = 1,
    WIRE_OP_PUT = 2,
    WIRE_OP_DEL = 3,
    WIRE_OP_PING = 4,
    WIRE_OP_STATS = 5,
    WIRE_OP_MEMBERS = 6, /* [id, 6] -> [id, 0, [member map, ...]] */
    WIRE_OP_REMOVE = 7,  /* [id, 7, node_id] -> [id, 0]; key holds the node id */
    WIRE_OP_TOPOLOGY = 8, /* [id, 8] -> [id, 0, {"epoch", "n", "vnodes_default", "members"}] */
    WIRE_OP_DECOMMISSION = 9, /* [id, 9] -> [id, 0]: the receiving node starts leaving */
} wire_op;

#define WIRE_OP_MAX WIRE_OP_DECOMMISSION

/* Per-request consistency (GET, PUT, DEL); absent = the node's default. */
typedef enum wire_consistency {
    WIRE_CONSISTENCY_DEFAULT = -1, /* not sent */
    WIRE_CONSISTENCY_ONE = 0,
    WIRE_CONSISTENCY_QUORUM = 1,
    WIRE_CONSISTENCY_ALL = 2,
} wire_consistency;

typedef enum wire_status {
    WIRE_OK = 0,
    WIRE_NOT_FOUND = 1,
    WIRE_ERR_BAD_REQUEST = 2,
    WIRE_ERR_TOO_LARGE = 3,
    WIRE_ERR_UNAVAILABLE = 4,
    WIRE_ERR_TIMEOUT = 5,
    WIRE_ERR_INTERNAL = 6,
} wire_status;

/* A byte range inside a decoded frame; not NUL-terminated. */
typedef struct wire_bytes {
    const uint8_t *ptr;
    size_t len;
} wire_bytes;

typedef struct wire_request {
    uint64_t id;
    wire_op op;
    wire_bytes key;    /* GET, PUT, DEL */
    wire_bytes value;  /* PUT */
    uint64_t ttl_ms;   /* PUT; 0 = no expiry */
    int consistency;   /* GET, PUT, DEL: a wire_consistency; -1 = absent (node default).
                          Encoders send it only when >= 0 (a PUT then carries ttl_ms too) */
} wire_request;

/* One STATS entry: a name and either an unsigned number or a string. */
typedef struct wire_stat {
    const char *name;
    int is_num;
    uint64_t num;
    const char *str;
} wire_stat;

/* A decoded STATS entry; name and str point into the frame. */
typedef struct wire_stat_view {
    wire_bytes name;
    int is_num;
    uint64_t num;
    wire_bytes str;
} wire_stat_view;

/* One member in a MEMBERS reply: a map {"id", "peer", "client", "resp",
 * "state", "role": str; "incarnation", "age_ms", "vnodes": uint}. */
typedef struct wire_member {
    const char *id, *peer_addr, *client_addr, *resp_addr, *state, *role;
    uint64_t incarnation;
    uint64_t age_ms; /* how long it has been in this state */
    uint64_t vnodes;
} wire_member;

/* A decoded member; byte ranges point into the frame. */
typedef struct wire_member_view {
    wire_bytes id, peer_addr, client_addr, resp_addr, state, role;
    uint64_t incarnation, age_ms, vnodes;
} wire_member_view;

/* One ring member in a TOPOLOGY reply: a map {"id", "client", "resp",
 * "state": str; "vnodes": uint}. */
typedef struct wire_topology_member {
    const char *id, *client_addr, *resp_addr, *state;
    uint64_t vnodes;
} wire_topology_member;

typedef struct wire_topology_member_view {
    wire_bytes id, client_addr, resp_addr, state;
    uint64_t vnodes;
} wire_topology_member_view;

/* A TOPOLOGY reply: the coordinator's ring. */
typedef struct wire_topology {
    uint64_t epoch;          /* ring_epoch of the node's ring */
    uint64_t n;              /* effective replication factor */
    uint64_t vnodes_default; /* [node] vnodes of the answering node */
    const wire_topology_member *members;
    size_t nmembers;
} wire_topology;

typedef struct wire_topology_view {
    uint64_t epoch, n, vnodes_default;
    wire_topology_member_view *members; /* allocated in the zone */
    size_t nmembers;
} wire_topology_view;

/* Optional 4th element of a data op's reply: {"epoch": uint, "replicas":
 * [str, ...]}: the coordinator's ring epoch and the replicas that answered.
 * Strings are borrowed for the encoder's call. */
typedef struct wire_meta {
    uint64_t epoch;
    const char *const *replicas;
    size_t nreplicas;
} wire_meta;

typedef struct wire_response {
    uint64_t id;
    wire_status status;
    int has_value;          /* GET OK: value is set */
    wire_bytes value;
    wire_bytes message;     /* errors: human-readable message (may be empty) */
    wire_stat_view *stats;  /* STATS OK: entries, allocated in the zone */
    size_t nstats;
    wire_member_view *members; /* MEMBERS OK: entries, allocated in the zone */
    size_t nmembers;
    int has_topology;       /* TOPOLOGY OK: topology is set */
    wire_topology_view topology;
    int has_meta;           /* the reply carried a meta map (4th element) */
    uint64_t epoch;         /* meta: the coordinator's ring epoch */
    wire_bytes *replicas;   /* meta: ids of the replicas that answered (zone) */
    size_t nreplicas;
} wire_response;

/* Name of an op or status, for logs and CLIs ("GET", "NOT_FOUND", ...). */
const char *wire_op_name(wire_op op);
const char *wire_status_name(wire_status st);

/* Reads the 4-byte big-endian length of a frame header. */
uint32_t wire_frame_len(const uint8_t hdr[WIRE_HEADER_BYTES]);

/* Checks that buf[0..len) is exactly one well-formed msgpack object: no
 * container claims more elements than bytes remain, nesting is at most
 * max_depth, nothing is truncated and nothing trails. Returns 0 or -1 with a
 * message in err. Run it before handing untrusted bytes to msgpack-c. */
int wire_check(const uint8_t *buf, size_t len, unsigned max_depth,
               char *err, size_t errlen);

/* Decodes one request body (the bytes after the 4-byte header). key and value
 * point into body, which must outlive *out. zone is scratch for msgpack-c;
 * the caller clears it between frames. Returns 0, or -1 with a message in err
 * and *id_out set to the request id when it could be read (else 0), so the
 * error reply can echo it. */
int wire_decode_request(const uint8_t *body, size_t len, msgpack_zone *zone,
                        wire_request *out, uint64_t *id_out,
                        char *err, size_t errlen);

/* Decodes one response body. value, message, stats, members, topology and
 * replicas point into body or zone, which must outlive *out. An OK payload
 * that is a map holding a "members" array is a TOPOLOGY reply, any other map
 * a STATS reply, an array a MEMBERS reply. A 4th element is the meta map
 * (the payload is then nil when there is none). Returns 0, or -1 with a
 * message in err. */
int wire_decode_response(const uint8_t *body, size_t len, msgpack_zone *zone,
                         wire_response *out, char *err, size_t errlen);

/* Encoders append one whole frame (header included) to sb. */
void wire_encode_request(msgpack_sbuffer *sb, const wire_request *req);
/* [id, status] or, when msg is not NULL, [id, status, msg]. */
void wire_encode_status(msgpack_sbuffer *sb, uint64_t id, wire_status st,
                        const char *msg);
/* A GET reply whose value_len value bytes the caller sends right after what
 * this appends (so a large value is copied once, straight from storage). */
void wire_encode_value_head(msgpack_sbuffer *sb, uint64_t id, size_t value_len);
/* [id, status, msg|nil, {meta}]: wire_encode_status with a meta map. */
void wire_encode_status_meta(msgpack_sbuffer *sb, uint64_t id, wire_status st, const char *msg,
                             const wire_meta *meta);
/* A GET reply with meta: [id, OK, bin value, {meta}]. The meta map follows
 * the value bytes, so the frame goes out in three pieces:
 *   wire_encode_value_head_meta(sb, id, value_len, meta); // header counts all
 *   append the value_len value bytes;
 *   wire_encode_meta_tail(sb, meta);                      // the map alone
 * The frame length counts value_len + wire_meta_len(meta); meta must not
 * change between the two calls. A caller that writes the value elsewhere
 * may encode the tail into its own scratch buffer instead. */
void wire_encode_value_head_meta(msgpack_sbuffer *sb, uint64_t id, size_t value_len,
                                 const wire_meta *meta);
/* Appends only the meta map (no frame header) to sb; returns its length. */
size_t wire_encode_meta_tail(msgpack_sbuffer *sb, const wire_meta *meta);
/* Bytes wire_encode_meta_tail would append (nothing is allocated). */
size_t wire_meta_len(const wire_meta *meta);
/* [id, OK, {"epoch", "n", "vnodes_default", "members": [{...}, ...]}] */
void wire_encode_topology(msgpack_sbuffer *sb, uint64_t id, const wire_topology *t);
/* [id, OK, [{member}, ...]] */
void wire_encode_members(msgpack_sbuffer *sb, uint64_t id, const wire_member *members, size_t n);
/* [id, OK, {name: num|str, ...}] */
void wire_encode_stats(msgpack_sbuffer *sb, uint64_t id,
                       const wire_stat *stats, size_t n);

#endif
