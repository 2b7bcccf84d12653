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
} wire_op;

#define WIRE_OP_MAX WIRE_OP_REMOVE

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

/* Decodes one response body. value, message, stats and members point into
 * body or zone, which must outlive *out. An OK payload that is a map is a
 * STATS reply, an array a MEMBERS reply. Returns 0, or -1 with a message in
 * err. */
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
/* [id, OK, [{member}, ...]] */
void wire_encode_members(msgpack_sbuffer *sb, uint64_t id, const wire_member *members, size_t n);
/* [id, OK, {name: num|str, ...}] */
void wire_encode_stats(msgpack_sbuffer *sb, uint64_t id,
                       const wire_stat *stats, size_t n);

#endif
