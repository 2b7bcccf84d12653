/* resp: ringkvd's RESP port, so redis-cli, redis-benchmark and Redis client
 * libraries talk to a node unmodified.
 *
 * resp_proto plugs into the server as a second client protocol (server_listen
 * with the `[node] resp` address). Commands run through server_get and
 * server_write, the path the native protocol takes, so RESP replies too are
 * held until the pass's commit: nothing is acknowledged before it is
 * committed. resp_parse.c cuts commands from the input; resp.c runs the data
 * commands and builds replies; resp_admin.c answers the connection and
 * server commands (HELLO, INFO, COMMAND, CONFIG, CLIENT, AUTH, SELECT).
 * Event-loop thread only.
 */
#ifndef RINGKV_RESP_H
#define RINGKV_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "resp_parse.h"
#include "server.h"

extern const conn_proto resp_proto;

/* The rest is shared by resp.c and resp_admin.c only. */

/* A RESP connection's state (conn->proto_data). */
typedef struct resp_conn {
    resp_parser parser;
    uint64_t id;   /* CLIENT ID; unique among the node's connections */
    int proto;     /* 2, or 3 after HELLO 3 */
    char *name;    /* CLIENT SETNAME / HELLO SETNAME; NULL when unset */
} resp_conn;

/* The command being executed: its arguments point into the input buffer and
 * are valid until the command returns. */
typedef struct resp_ctx {
    server *s;
    conn *c;
    resp_conn *rc;
    const uint8_t *buf;
    const resp_span *argv;
    size_t argc;
} resp_ctx;

static inline const uint8_t *resp_arg(const resp_ctx *x, size_t i)
{
    return x->buf + x->argv[i].off;
}

static inline size_t resp_arglen(const resp_ctx *x, size_t i) { return x->argv[i].len; }

/* Is argument i equal to lower, ignoring ASCII case? */
bool resp_arg_is(const resp_ctx *x, size_t i, const char *lower);

/* One entry of the command table (also what COMMAND and COMMAND DOCS say). */
typedef struct resp_command {
    const char *name;  /* lowercase */
    size_t namelen;
    int arity;         /* Redis' convention: n exactly, -n at least n (name included) */
    void (*fn)(resp_ctx *x);
    const char *flags; /* COMMAND's flags, space-separated */
    const char *acl;   /* COMMAND's ACL categories, space-separated */
    int first_key, last_key, key_step;
    const char *group, *since, *summary, *complexity; /* COMMAND DOCS */
} resp_command;

/* The command table, and the entry for name (any case), or NULL. */
const resp_command *resp_commands(size_t *n);
const resp_command *resp_lookup(const uint8_t *name, size_t len);

/* Whole replies. Errors are given without the leading '-' and with Redis'
 * prefix ("ERR ...", "WRONGPASS ..."); CR and LF in them become blanks. */
void resp_reply_ok(resp_ctx *x);
void resp_reply_status(resp_ctx *x, const char *status);
void resp_reply_error(resp_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_reply_int(resp_ctx *x, int64_t v);
void resp_reply_bulk(resp_ctx *x, const void *p, size_t len);
void resp_reply_nil(resp_ctx *x);
void resp_reply_arity(resp_ctx *x, const char *fullname);
void resp_reply_syntax(resp_ctx *x);
void resp_reply_not_integer(resp_ctx *x);
/* Redis' answer to an unknown subcommand of container (e.g. "CONFIG"). */
void resp_reply_unknown_sub(resp_ctx *x, const char *container);
/* An array of status lines (NULL-terminated), as HELP subcommands answer. */
void resp_reply_help(resp_ctx *x, const char *const *lines);

/* Pieces of one reply, between conn_reply_begin and conn_reply_end. A map or
 * set is a flat array under RESP2. */
void resp_add_array(resp_ctx *x, size_t n);
void resp_add_map(resp_ctx *x, size_t n);
void resp_add_set(resp_ctx *x, size_t n);
void resp_add_bulk(resp_ctx *x, const void *p, size_t len);
void resp_add_str(resp_ctx *x, const char *s); /* a bulk string */
void resp_add_status(resp_ctx *x, const char *s);
void resp_add_int(resp_ctx *x, int64_t v);
void resp_add_nil(resp_ctx *x);

/* Server and connection commands (resp_admin.c). */
void resp_cmd_auth(resp_ctx *x);
void resp_cmd_client(resp_ctx *x);
void resp_cmd_cluster(resp_ctx *x);
void resp_cmd_command(resp_ctx *x);
void resp_cmd_config(resp_ctx *x);
void resp_cmd_dbsize(resp_ctx *x);
void resp_cmd_hello(resp_ctx *x);
void resp_cmd_info(resp_ctx *x);
void resp_cmd_select(resp_ctx *x);

/* INFO's "# Cluster" section body into buf (at most cap bytes, NUL-ended);
 * returns its length. Kept apart so the membership and ring work can add
 * its members and ring figures here. */
size_t resp_info_cluster(server *s, char *buf, size_t cap);

#endif
