/* peer: ringkvd's peer TCP port: the listener, framed connections to and
 * from other nodes, and one-shot request/reply exchanges (gossip push-pull).
 * Other modules take the inbound bodies they own with peer_route (replica.c:
 * writes and reads); its persistent outbound links reuse the frame codec.
 *
 * A frame is an 8-byte header, checked before anything reaches protobuf-c,
 * then one packed Envelope (proto/ringkv.proto; proto/README.md has the
 * bytes):
 *
 *   'R' 'K' | version (1) | type (0, reserved) | body length, 4 bytes BE
 *
 * Every connection has limits a peer cannot push past: one frame of at most
 * PEER_MAX_FRAME bytes buffered, reading paused while PEER_MAX_OUTPUT bytes
 * wait to be sent, and a timeout. A peer that breaks the framing is dropped
 * and counted; the node goes on serving. A connection is never freed inside
 * its own callback: peer_conn_close queues it and a deferred event frees it.
 * Event-loop thread only.
 */
#ifndef RINGKV_PEER_H
#define RINGKV_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "ringkv.pb-c.h"

#define PEER_HEADER_BYTES    8
#define PEER_VERSION         1
#define PEER_MAX_FRAME       (64u << 20)         /* body bytes in one frame */
#define PEER_MAX_OUTPUT      ((size_t)128 << 20) /* queued to one peer before it is dropped */
#define PEER_MAX_CONNS       128                 /* inbound connections at once */
#define PEER_IDLE_TIMEOUT_MS 10000               /* inbound: no progress this long closes */
#define PEER_ADDR_MAX        128                 /* "HOST:PORT", NUL included */
#define PEER_MAX_ROUTES      16                  /* peer_route entries */
#define PEER_NODE_ID_MAX     64                  /* peer_conn_set_node, NUL excluded */

typedef struct peer peer;
typedef struct peer_conn peer_conn;

/* An Envelope arrived on an inbound connection. env is freed when this
 * returns; reply with peer_reply(pc, ...) before returning, or later as long
 * as pc is open. Must not block. */
typedef void (*peer_message_fn)(void *ctx, peer_conn *pc, const Ringkv__Envelope *env);

/* The outcome of peer_request: reply is the answer (freed after the call),
 * or NULL with err saying what failed (refused, timed out, bad frame...).
 * Called exactly once, from the event loop, never from peer_request itself.
 * It may start new requests; it must not call peer_free. */
typedef void (*peer_reply_fn)(void *ctx, const Ringkv__Envelope *reply, const char *err);

typedef struct peer_stats {
    uint64_t accepted; /* inbound connections */
    uint64_t refused;  /* inbound connections past PEER_MAX_CONNS */
    uint64_t dropped;  /* bad framing, limits, timeouts */
    uint64_t frames_in, frames_out;
    uint64_t requests, request_failures;
} peer_stats;

/* Binds the peer listener to addr ("HOST:PORT"; port 0 picks a free one)
 * and serves it on base; on_message gets every inbound Envelope. Returns
 * NULL with a message in err. */
peer *peer_new(struct event_base *base, const char *addr, peer_message_fn on_message, void *ctx,
               char *err, size_t errlen);

/* Closes every connection and the listener and frees. Pending requests are
 * dropped without calling their callbacks. NULL is a no-op. */
void peer_free(peer *p);

/* The bound address, with the real port ("127.0.0.1:7101"). */
const char *peer_bound_addr(const peer *p);
int peer_bound_port(const peer *p);

void peer_get_stats(const peer *p, peer_stats *out);

/* Queues env as one frame to pc. Returns 0, or -1 when pc is closing or
 * out of memory, or its output is over PEER_MAX_OUTPUT (pc is then
 * dropped). */
int peer_reply(peer_conn *pc, const Ringkv__Envelope *env);

/* The remote end of pc, "ip:port", for logs. */
const char *peer_conn_remote(const peer_conn *pc);

/* The node that opened inbound pc, as its first frame said (replica.c's
 * LinkHello); "" until set. An id over PEER_NODE_ID_MAX bytes is refused
 * (false). */
bool peer_conn_set_node(peer_conn *pc, const char *id);
const char *peer_conn_node(const peer_conn *pc);

/* Queues pc to be closed (why is logged at debug; NULL: a normal close). */
void peer_conn_close(peer_conn *pc, const char *why);

/* Keeps pc's memory valid past its callbacks (to answer after a commit):
 * a held connection that closes is freed only at its last drop. Check
 * peer_conn_is_open before replying. Every hold must be dropped before
 * peer_free. */
void peer_conn_hold(peer_conn *pc);
void peer_conn_drop(peer_conn *pc);
bool peer_conn_is_open(const peer_conn *pc);

/* Hands inbound Envelopes whose body is `body` (a Ringkv__Envelope__BodyCase)
 * to fn instead of the on_message of peer_new, so replication adds its
 * messages without the gossip adapter knowing them. fn NULL removes the
 * route. Returns 0, or -1 when PEER_MAX_ROUTES are taken. */
int peer_route(peer *p, int body, peer_message_fn fn, void *ctx);

/* Before each inbound frame is handled, fn gets the keys of the replica
 * writes in the frames that follow it, when they have arrived whole: the
 * next one's (entry true) and the one after's (entry false), so that it can
 * ask the CPU for the memory their handling will touch (two dependent
 * misses: the slot at two frames' distance, its entry at one). fn NULL
 * turns it off. */
typedef void (*peer_prefetch_fn)(void *ctx, const uint8_t *key, size_t klen, bool entry);
void peer_set_prefetch(peer *p, peer_prefetch_fn fn, void *ctx);

/* Connects to addr (non-blocking), sends env, and waits for one Envelope in
 * answer; fn reports it, or the failure, within timeout_ms. Returns 0, or -1
 * with a message in err (then fn is never called): a bad address, out of
 * memory. */
int peer_request(peer *p, const char *addr, const Ringkv__Envelope *env, uint32_t timeout_ms,
                 peer_reply_fn fn, void *ctx, char *err, size_t errlen);

/* Resolves "HOST:PORT" for socktype (SOCK_STREAM, SOCK_DGRAM). Numeric
 * addresses never block; a host name is looked up once (that may block the
 * loop briefly) and cached for a minute. Returns 0, or -1 with a message. */
int peer_resolve(peer *p, const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                 char *err, size_t errlen);

/* "ip:port" or "[ip6]:port" of a socket address. */
void peer_format_addr(const struct sockaddr *sa, char *out, size_t outlen);

/* ---- the frame codec: pure, shared with tests and the fuzz target ---- */

/* Checks a frame header: magic, version, reserved type byte, and a body
 * length of at most max_body. Returns 0 with *body_len, or -1 with a
 * message. */
int peer_header_check(const uint8_t hdr[PEER_HEADER_BYTES], uint32_t max_body, uint32_t *body_len,
                      char *err, size_t errlen);

/* Encodes env as one whole frame (header included) into a malloc'd buffer
 * the caller frees. Returns 0, or -1 (out of memory, or over
 * PEER_MAX_FRAME). */
int peer_frame_encode(const Ringkv__Envelope *env, uint8_t **out, size_t *len);

/* The length of env's frame (header included), or 0 when it is over
 * PEER_MAX_FRAME. */
size_t peer_frame_size(const Ringkv__Envelope *env);

/* Appends env's frame of len bytes (peer_frame_size) to out, packed in place:
 * frames queued in one loop pass share chains and leave in few writes.
 * Returns 0, or -1 when out of memory (nothing appended). */
int peer_frame_append(struct evbuffer *out, const Ringkv__Envelope *env, size_t len);

/* A request frame's length at most (ReplicaWrite or ReplicaRead), found
 * without packing it (0 for an envelope the one-pass packer does not take:
 * another body, unknown fields); and the frame appended with each length
 * found once (room reserved for bound, the rest given back). Others, or a
 * request past PEER_MAX_FRAME, go the general way. Returns 0, or -1 when
 * out of memory or too large. */
size_t peer_frame_request_bound(const Ringkv__Envelope *env);
int peer_frame_append_request(struct evbuffer *out, const Ringkv__Envelope *env, size_t bound);

/* The same frame packed at buf, which holds bound bytes: its length, or 0
 * (nothing written) when the one-pass packer does not take env. *id_at
 * (id_at may be NULL): where in the frame the request id's varint starts,
 * as peer_hand_pack_request says it (0: no id written). */
size_t peer_frame_pack_request(uint8_t *buf, const Ringkv__Envelope *env, size_t bound,
                               size_t *id_at);

/* env's frame of len bytes (peer_frame_size) written at buf. */
void peer_frame_write(uint8_t *buf, const Ringkv__Envelope *env, size_t len);

/* Formats a message into err (when err is not NULL and errlen > 0) and
 * returns -1: the error paths of the peer modules. */
int peer_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct bufferevent;
/* Writes bev's output to its socket now, without arming EPOLLOUT: for a
 * connection whose bufferevent has EV_WRITE disabled while it keeps up.
 * True when all of it went out. What the socket does not take (or an
 * error) is left to the bufferevent, with EV_WRITE enabled: it writes the
 * rest, or reports the error to the event callback. With EV_WRITE already
 * on, it leaves the output to the bufferevent. */
bool peer_write_direct(struct bufferevent *bev);

/* Writes what it can of buf to the socket fd and drains that from buf: one
 * send(2) when buf is one chain, as a small reply or a link's frames are,
 * else one sendmsg of its first 16 chains (libevent's evbuffer_write makes
 * a writev of up to 128). send and sendmsg take the socket's path in the
 * kernel, where write and writev go through the file layer first, and
 * send copies in no iovec array: 3-4% of a node's CPU under unpipelined
 * GETs (perf: fdget_pos, rw_verify_area, security_file_permission,
 * __import_iovec). Never raises SIGPIPE. Returns what the system call
 * returned: bytes written, or -1 with errno (EAGAIN: the socket is full;
 * EPIPE: the peer has gone). */
ssize_t peer_send_buffer(struct evbuffer *buf, int fd);

/* Reads up to `want` bytes from fd straight into `in`, the input of a
 * bufferevent that does not read itself (its read side disabled): one
 * recv(2) (a readv when the room spans two chains), where libevent's own
 * read asks the kernel first how much is readable (ioctl FIONREAD), one
 * more system call per read. Returns what the read returned: bytes read, 0 at the end of the stream, or -1 with errno
 * (EAGAIN: nothing to read; ENOMEM: no room for the bytes). */
ssize_t peer_read_direct(struct evbuffer *in, int fd, size_t want);

/* The size of the next direct read after one that asked `asked` bytes of
 * the socket and got `got`: four times more after a read that filled it
 * (up to max), half after one that used under a quarter of it (down to
 * min), the same otherwise. A read size dropped straight back to min after
 * any short read made every request a little larger than min take two reads
 * and two loop passes (a SET of 1 KiB over RESP with min 896: the first
 * read filled, the rest came a pass later, and the size went back to 896). */
static inline size_t peer_read_size_next(size_t asked, size_t got, size_t min, size_t max)
{
    if (got >= asked)
        return asked * 4 < max ? asked * 4 : max;
    size_t next = got < asked / 4 ? asked / 2 : asked;
    return next < min ? min : next;
}

/* Decodes a frame body. Returns the Envelope (free it with
 * peer_envelope_free), or NULL with a message: not protobuf, or a version
 * other than PEER_VERSION. */
Ringkv__Envelope *peer_envelope_decode(const uint8_t *body, size_t len, char *err, size_t errlen);
void peer_envelope_free(Ringkv__Envelope *env);

/* The key of the replica write (Envelope.write.record.key) in a frame body,
 * read without decoding it: true with *key and *klen pointing into body, or
 * false when body is not a write or is cut short. A hint only (a field
 * repeated or malformed may give a key the decoder would not): it lets the
 * next frames' keys be prefetched before their turn. */
bool peer_sniff_write_key(const uint8_t *body, size_t len, const uint8_t **key, size_t *klen);

/* A bump allocator for decoding one envelope at a time: protobuf-c asks for
 * memory once per message, string and bytes field, and a replica write is
 * seven allocations. A second block, grown to what the envelopes that did
 * not fit needed (batches of read answers: about 200 bytes an answer), up
 * to PEER_ARENA_MAX_MORE, takes what buf does not; the rest goes to
 * malloc. */
#define PEER_ARENA_BYTES 8192
#define PEER_ARENA_MAX_MORE ((size_t)4 << 20)
typedef struct peer_arena {
    size_t used;
    size_t spilled;      /* allocations that went to malloc */
    size_t spilled_bytes;
    unsigned char *more; /* the second block */
    size_t more_cap, more_used;
    _Alignas(16) unsigned char buf[PEER_ARENA_BYTES];
} peer_arena;

/* size bytes (16-byte aligned) from a's blocks, or NULL when they have no
 * room left; the decoders' allocator spills to malloc past that. */
void *peer_arena_take(peer_arena *a, size_t size);

/* Frees a's second block (a itself belongs to its owner). */
void peer_arena_release(peer_arena *a);

/* The frame at the head of in, once it has all arrived: its body at
 * *body, *blen bytes, contiguous and still in `in` (drain
 * PEER_HEADER_BYTES + *blen once done with it). Returns 1 with the frame,
 * 0 while it has not all arrived, -1 with err when its header is bad or
 * there is no memory to make it contiguous. */
int peer_frame_peek(struct evbuffer *in, const uint8_t **body, uint32_t *blen, char *err,
                    size_t errlen);

/* As peer_envelope_decode, with the envelope's memory taken from a, which
 * must hold no other envelope: free it with peer_envelope_free_in before
 * decoding the next. Its bytes fields may point into body, which must
 * stay as it is until then. */
Ringkv__Envelope *peer_envelope_decode_in(peer_arena *a, const uint8_t *body, size_t len,
                                          char *err, size_t errlen);
void peer_envelope_free_in(peer_arena *a, Ringkv__Envelope *env);

#endif
