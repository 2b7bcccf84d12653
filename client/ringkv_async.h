/* ringkv_async.h: the asynchronous ringkv client API (part of libringkv).
 *
 * In the spirit of hiredis' async API: an rkv_async is one connection to one
 * node, driven by the caller's libevent event_base. Requests return at once;
 * each one's callback runs later from the event loop with the reply. Many
 * requests may be in flight on one connection (pipelining): each gets the
 * next id, and replies are matched to requests by id.
 *
 * Threads: an rkv_async and its event_base belong to one thread. Call every
 * function here from the thread that runs the base (usually from inside
 * callbacks); nothing here takes a lock. Different connections on different
 * bases may live in different threads.
 *
 * Callbacks run on the event loop and must not block. A request's callback
 * runs exactly once if, and only if, the call that made the request returned
 * RKV_OK: with the reply, with RKV_ERR_TIMEOUT when no reply came in time,
 * with RKV_ERR_IO when the connection broke or was freed first. Inside any
 * callback you may make new requests on any connection, and you may call
 * rkv_async_free() on the connection it runs for: the free is deferred until
 * the callback returns (as hiredis does), then the remaining requests are
 * failed with RKV_ERR_IO and the memory is released. After calling
 * rkv_async_free() do not touch the connection again.
 *
 * Memory: keys and values passed in are copied into the output buffer before
 * the call returns. A reply's value and message point into the connection's
 * buffers and are valid only during the callback: copy what you keep.
 *
 * Backpressure: requests wait in an output buffer until the socket takes
 * them. Past max_output_bytes queued, a new request is refused at once with
 * RKV_ERR_UNAVAILABLE (no callback) so that a stalled node cannot make the
 * caller's memory grow without bound; retry when replies have come back.
 *
 * No reconnects: when the connection ends (the node closed it, a read or
 * write failed, a reply could not be decoded), pending requests fail, the
 * close callback runs once, and further requests are refused with
 * RKV_ERR_IO. Free the rkv_async and connect a new one.
 *
 * Signals: libevent writes with writev(), so writing to a connection the node
 * has closed raises SIGPIPE, as with hiredis. Programs should ignore it
 * (signal(SIGPIPE, SIG_IGN)); the failure then arrives as RKV_ERR_IO.
 *
 * Free every rkv_async before freeing its event_base.
 */
#ifndef RINGKV_ASYNC_H
#define RINGKV_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "ringkv.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct rkv_async rkv_async;

/* Settings for one connection; a field of 0 (or less) means its default. */
typedef struct rkv_async_options {
    int connect_timeout_ms;  /* to establish the TCP connection; default 2000 */
    int request_timeout_ms;  /* from the request call to its reply; default 5000 */
    size_t max_output_bytes; /* queued request bytes before refusing; default 64 MiB */
} rkv_async_options;

/* What a request's callback receives. Pointers are valid during the callback
 * only. */
typedef struct rkv_async_reply {
    rkv_status status;  /* RKV_OK, RKV_NOT_FOUND (GET of an absent key), or an error */
    uint64_t id;        /* the request's id on this connection (1, 2, 3, ...) */
    const void *value;  /* GET with RKV_OK: the value, not NUL-terminated; else NULL */
    size_t value_len;   /* its length (0 for an empty value) */
    const char *errstr; /* an error: what went wrong, NUL-terminated; else "" */
} rkv_async_reply;

/* A request's callback. ac is the connection it was made on. */
typedef void (*rkv_async_cb)(rkv_async *ac, const rkv_async_reply *reply, void *arg);

/* The close callback: the connection ended on its own (not by
 * rkv_async_free). status is RKV_ERR_IO (connect failed, closed by the node,
 * socket error), RKV_ERR_PROTOCOL (a reply could not be decoded) or the
 * status a node gave when it refused the connection itself; errstr says
 * why. Runs once, after every pending request's callback has run with the
 * same status and message. */
typedef void (*rkv_async_close_cb)(rkv_async *ac, rkv_status status, const char *errstr, void *arg);

/* Starts connecting to addr ("host:port" or "[ipv6]:port") on base, and
 * returns at once; requests made before the connection is up are queued and
 * sent when it is. A host name is resolved here, synchronously, and its first
 * address is used: pass a numeric address to never block. opts may be NULL.
 * Returns NULL, with the reason in err when given, on a bad address, a name
 * that does not resolve, a connect that fails at once, or out of memory;
 * later connect failures reach the close callback and pending requests. */
RKV_API rkv_async *rkv_async_connect(struct event_base *base, const char *addr,
                                     const rkv_async_options *opts, char *err, size_t errlen);

/* Sets (or with NULL clears) the close callback and its argument. */
RKV_API void rkv_async_set_close_cb(rkv_async *ac, rkv_async_close_cb cb, void *arg);

/* Requests. Each returns RKV_OK when the request is queued (cb will run
 * exactly once), or an error without running cb: RKV_ERR_ARG (bad argument),
 * RKV_ERR_TOO_LARGE (over the protocol's frame limit), RKV_ERR_UNAVAILABLE
 * (max_output_bytes already queued), RKV_ERR_IO (the connection has ended or
 * is being freed), RKV_ERR_INTERNAL (out of memory); rkv_async_errstr() says
 * more. cb may be NULL to ignore the reply. */
RKV_API rkv_status rkv_async_get(rkv_async *ac, const void *key, size_t klen, rkv_async_cb cb,
                                 void *arg);
/* ttl_ms 0 means no expiry. */
RKV_API rkv_status rkv_async_put(rkv_async *ac, const void *key, size_t klen, const void *value,
                                 size_t vlen, uint64_t ttl_ms, rkv_async_cb cb, void *arg);
RKV_API rkv_status rkv_async_del(rkv_async *ac, const void *key, size_t klen, rkv_async_cb cb,
                                 void *arg);
/* Consistency (ringkv.h's rkv_consistency) sent with every later GET, PUT
 * and DEL on this connection; RKV_CONSISTENCY_DEFAULT (the initial value)
 * leaves it to the node's [replication] settings. */
RKV_API rkv_status rkv_async_set_consistency(rkv_async *ac, rkv_consistency level);

RKV_API rkv_status rkv_async_ping(rkv_async *ac, rkv_async_cb cb, void *arg);

/* Requests whose callback has not run yet. */
RKV_API size_t rkv_async_pending(const rkv_async *ac);

/* Request bytes queued and not yet taken by the socket. */
RKV_API size_t rkv_async_queued_bytes(const rkv_async *ac);

/* Why the last request was refused, or why the connection ended. Owned by
 * ac; valid until the next call on it. */
RKV_API const char *rkv_async_errstr(const rkv_async *ac);

/* Closes the connection and frees ac: every pending request's callback runs
 * with RKV_ERR_IO first (the close callback does not). Called from a
 * callback running for ac, it takes effect when that callback returns. NULL
 * is a no-op. */
RKV_API void rkv_async_free(rkv_async *ac);

#ifdef __cplusplus
}
#endif

#endif
