/* resp: the RESP port's connection adapter, reply builders, command table
 * and data commands (GET, SET, DEL, EXISTS, MGET, MSET, TTL, PTTL, PING,
 * ECHO, QUIT); see resp.h.
 *
 * Input is parsed straight from the bufferevent's input buffer: the parser
 * reads the first contiguous chunk, and only a command that spans chunks is
 * pulled up, to the bytes it needs. Arguments point into that buffer while
 * the command runs. Replies go to the connection's pending buffer through
 * conn_reply_*, so they are released after the pass's commit like native
 * replies; a value is copied once, from the store into that buffer.
 *
 * How commands map to the store: GET, SET, MGET, MSET, DEL and EXISTS go
 * through the coordinator (resp_coord.c), so they reach the key's replicas:
 * SET is a PUT (EX/PX/EXAT/PXAT become its time to live; NX, XX and KEEPTTL
 * first make a coordinated read), DEL is a coordinated read (for its count)
 * then a delete per key (a tombstone, as a native DEL). TTL and PTTL still
 * read this node's own copy.
 */
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "resp_coord.h"

/* Bulk replies up to this size are assembled on the stack and added in one
 * piece; larger ones are added as header, value, CRLF. */
#define SMALL_BULK 512

static void reply(resp_ctx *x, const void *p, size_t len)
{
    conn_reply_raw(x->c, 0, p, len, NULL, 0);
}

/* Writes v in decimal at out (at least 20 bytes); returns the length. */
static size_t fmt_i64(char *out, int64_t v)
{
    char tmp[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

/* "<type><n>\r\n" at out (at least 24 bytes); returns the length. */
static size_t fmt_header(char *out, char type, int64_t n)
{
    out[0] = type;
    size_t len = 1 + fmt_i64(out + 1, n);
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

bool resp_arg_is(const resp_ctx *x, size_t i, const char *lower)
{
    const uint8_t *a = resp_arg(x, i);
    size_t n = resp_arglen(x, i);
    for (size_t j = 0; j < n; j++) {
        uint8_t c = a[j];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + ('a' - 'A'));
        if (lower[j] == '\0' || c != (uint8_t)lower[j])
            return false;
    }
    return lower[n] == '\0';
}

/* --- replies --- */

void resp_reply_ok(resp_ctx *x) { reply(x, "+OK\r\n", 5); }

void resp_reply_status(resp_ctx *x, const char *status)
{
    size_t begin = conn_reply_begin(x->c);
    resp_add_status(x, status);
    conn_reply_end(x->c, 0, begin);
}

/* "-" msg "\r\n" into out (cap >= 4), with CR and LF turned into blanks as
 * Redis does, so a client's bytes echoed in an error cannot break framing. */
static size_t fmt_error(char *out, size_t cap, const char *fmt, va_list ap)
{
    out[0] = '-';
    int n = vsnprintf(out + 1, cap - 3, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < cap - 3 ? (size_t)n : cap - 4;
    for (size_t i = 1; i <= len; i++)
        if (out[i] == '\r' || out[i] == '\n')
            out[i] = ' ';
    out[len + 1] = '\r';
    out[len + 2] = '\n';
    return len + 3;
}

void resp_reply_error(resp_ctx *x, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t len = fmt_error(buf, sizeof buf, fmt, ap);
    va_end(ap);
    x->s->n.errors++;
    reply(x, buf, len);
}

void resp_reply_int(resp_ctx *x, int64_t v)
{
    char buf[24];
    reply(x, buf, fmt_header(buf, ':', v));
}

void resp_reply_bulk(resp_ctx *x, const void *p, size_t len)
{
    if (len <= SMALL_BULK) {
        char buf[SMALL_BULK + 32];
        size_t n = fmt_header(buf, '$', (int64_t)len);
        memcpy(buf + n, p, len);
        n += len;
        buf[n++] = '\r';
        buf[n++] = '\n';
        reply(x, buf, n);
        return;
    }
    size_t begin = conn_reply_begin(x->c);
    resp_add_bulk(x, p, len);
    conn_reply_end(x->c, 0, begin);
}

void resp_reply_nil(resp_ctx *x)
{
    if (x->rc->proto == 3)
        reply(x, "_\r\n", 3);
    else
        reply(x, "$-1\r\n", 5);
}

void resp_reply_arity(resp_ctx *x, const char *fullname)
{
    resp_reply_error(x, "ERR wrong number of arguments for '%s' command", fullname);
}

void resp_reply_syntax(resp_ctx *x) { resp_reply_error(x, "ERR syntax error"); }

void resp_reply_not_integer(resp_ctx *x)
{
    resp_reply_error(x, "ERR value is not an integer or out of range");
}

void resp_add_array(resp_ctx *x, size_t n)
{
    char buf[24];
    conn_reply_add(x->c, buf, fmt_header(buf, '*', (int64_t)n));
}

void resp_add_map(resp_ctx *x, size_t n)
{
    char buf[24];
    bool v3 = x->rc->proto == 3;
    conn_reply_add(x->c, buf, fmt_header(buf, v3 ? '%' : '*', (int64_t)(v3 ? n : 2 * n)));
}

void resp_add_set(resp_ctx *x, size_t n)
{
    char buf[24];
    conn_reply_add(x->c, buf, fmt_header(buf, x->rc->proto == 3 ? '~' : '*', (int64_t)n));
}

void resp_add_bulk(resp_ctx *x, const void *p, size_t len)
{
    char buf[24];
    conn_reply_add(x->c, buf, fmt_header(buf, '$', (int64_t)len));
    conn_reply_add(x->c, p, len);
    conn_reply_add(x->c, "\r\n", 2);
}

void resp_add_str(resp_ctx *x, const char *s) { resp_add_bulk(x, s, strlen(s)); }

void resp_add_status(resp_ctx *x, const char *s)
{
    conn_reply_add(x->c, "+", 1);
    conn_reply_add(x->c, s, strlen(s));
    conn_reply_add(x->c, "\r\n", 2);
}

void resp_add_int(resp_ctx *x, int64_t v)
{
    char buf[24];
    conn_reply_add(x->c, buf, fmt_header(buf, ':', v));
}

void resp_add_nil(resp_ctx *x)
{
    if (x->rc->proto == 3)
        conn_reply_add(x->c, "_\r\n", 3);
    else
        conn_reply_add(x->c, "$-1\r\n", 5);
}

/* --- limits --- */

/* A key to read: longer than max_key_bytes cannot exist, and is refused as
 * the native protocol refuses it. Empty keys read as absent. */
static bool check_read_key(resp_ctx *x, size_t i)
{
    uint64_t max = x->s->cfg->max_key_bytes;
    if (resp_arglen(x, i) <= max)
        return true;
    resp_reply_error(x, "ERR key is too large (max_key_bytes is %llu)", (unsigned long long)max);
    return false;
}

/* A key to write: 1..max_key_bytes (ringkv has no empty key; refusing it
 * here keeps it from failing the pass's whole batch in the store). */
static bool check_write_key(resp_ctx *x, size_t i)
{
    if (resp_arglen(x, i) == 0) {
        resp_reply_error(x, "ERR empty keys are not supported (ringkv keys are 1 to %llu bytes)",
                         (unsigned long long)x->s->cfg->max_key_bytes);
        return false;
    }
    return check_read_key(x, i);
}

static bool check_value(resp_ctx *x, size_t i)
{
    uint64_t max = x->s->cfg->max_value_bytes;
    if (resp_arglen(x, i) <= max)
        return true;
    resp_reply_error(x, "ERR value is too large (max_value_bytes is %llu)",
                     (unsigned long long)max);
    return false;
}

/* --- data commands --- */

static void cmd_get(resp_ctx *x)
{
    x->s->n.ops[WIRE_OP_GET]++;
    if (!check_read_key(x, 1))
        return;
    resp_coord_run(x, RESP_COORD_GET, NULL);
}

/* SET's options, as Redis 7 parses them. */
typedef struct set_opts {
    bool nx, xx, keepttl;
    char unit;       /* expiry given by: 0 none, 's' EX, 'm' PX, 'S' EXAT, 'M' PXAT */
    size_t when_arg; /* the expiry's argument */
} set_opts;

static bool parse_set_opts(resp_ctx *x, set_opts *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 3; i < x->argc; i++) {
        bool more = i + 1 < x->argc;
        char unit = resp_arg_is(x, i, "ex") ? 's' : resp_arg_is(x, i, "px") ? 'm'
                  : resp_arg_is(x, i, "exat") ? 'S' : resp_arg_is(x, i, "pxat") ? 'M' : 0;
        if (resp_arg_is(x, i, "nx") && !o->xx) {
            o->nx = true;
        } else if (resp_arg_is(x, i, "xx") && !o->nx) {
            o->xx = true;
        } else if (resp_arg_is(x, i, "keepttl") && !o->unit) {
            o->keepttl = true;
        } else if (unit && more && !o->unit && !o->keepttl) {
            o->unit = unit;
            o->when_arg = ++i;
        } else if (resp_arg_is(x, i, "get")) {
            resp_reply_error(x, "ERR SET with GET is not supported by ringkv");
            return false;
        } else {
            resp_reply_syntax(x);
            return false;
        }
    }
    return true;
}

/* The expiry as a time to live from now: *ttl_ms 0 = none; *gone = the
 * absolute time has already passed (Redis deletes the key then). */
static bool set_ttl(resp_ctx *x, const set_opts *o, uint64_t now, uint64_t *ttl_ms, bool *gone)
{
    int64_t when;
    *ttl_ms = 0;
    *gone = false;
    if (!o->unit)
        return true;
    if (!resp_strtoll(resp_arg(x, o->when_arg), resp_arglen(x, o->when_arg), &when)) {
        resp_reply_not_integer(x);
        return false;
    }
    bool secs = o->unit == 's' || o->unit == 'S';
    bool absolute = o->unit == 'S' || o->unit == 'M';
    if (when <= 0 || (secs && when > INT64_MAX / 1000) ||
        (!absolute && (secs ? when * 1000 : when) > INT64_MAX - (int64_t)now)) {
        resp_reply_error(x, "ERR invalid expire time in 'set' command");
        return false;
    }
    uint64_t ms = (uint64_t)(secs ? when * 1000 : when);
    if (!absolute)
        *ttl_ms = ms;
    else if (ms <= now)
        *gone = true;
    else
        *ttl_ms = ms - now;
    return true;
}

static void cmd_set(resp_ctx *x)
{
    server *s = x->s;
    set_opts o;
    uint64_t now = server_now_ms(s), ttl;
    bool gone;

    s->n.ops[WIRE_OP_PUT]++;
    if (!parse_set_opts(x, &o) || !set_ttl(x, &o, now, &ttl, &gone) || !check_write_key(x, 1) ||
        !check_value(x, 2))
        return;
    resp_coord_set set = {.ttl_ms = ttl, .nx = o.nx, .xx = o.xx, .keepttl = o.keepttl,
                          .del_instead = gone};
    resp_coord_run(x, RESP_COORD_SET, &set);
}

static void cmd_mset(resp_ctx *x)
{
    if (x->argc % 2 == 0) {
        resp_reply_arity(x, "mset");
        return;
    }
    /* Check every pair before writing any, so a refused MSET writes nothing. */
    for (size_t i = 1; i < x->argc; i += 2)
        if (!check_write_key(x, i) || !check_value(x, i + 1))
            return;
    x->s->n.ops[WIRE_OP_PUT] += (x->argc - 1) / 2;
    resp_coord_run(x, RESP_COORD_MSET, NULL);
}

static void cmd_mget(resp_ctx *x)
{
    for (size_t i = 1; i < x->argc; i++)
        if (!check_read_key(x, i))
            return;
    x->s->n.ops[WIRE_OP_GET] += x->argc - 1;
    resp_coord_run(x, RESP_COORD_MGET, NULL);
}

/* DEL counts the keys that existed; EXISTS counts them (a key named twice
 * counts twice) without deleting. */
static void del_or_exists(resp_ctx *x, bool del)
{
    for (size_t i = 1; i < x->argc; i++)
        if (!check_read_key(x, i))
            return;
    x->s->n.ops[del ? WIRE_OP_DEL : WIRE_OP_GET] += x->argc - 1;
    resp_coord_run(x, del ? RESP_COORD_DEL : RESP_COORD_EXISTS, NULL);
}

static void cmd_del(resp_ctx *x) { del_or_exists(x, true); }
static void cmd_exists(resp_ctx *x) { del_or_exists(x, false); }

/* TTL and PTTL: -2 absent, -1 no expiry, else what is left. */
static void ttl_common(resp_ctx *x, bool ms)
{
    store_record rec;
    char err[256];
    x->s->n.ops[WIRE_OP_GET]++;
    if (!check_read_key(x, 1))
        return;
    store_result r = server_get(x->s, resp_arg(x, 1), resp_arglen(x, 1), &rec, err, sizeof err);
    if (r == STORE_NOT_FOUND) {
        resp_reply_int(x, -2);
    } else if (r != STORE_OK) {
        resp_reply_error(x, "ERR %s", err);
    } else if (!rec.expires_ms) {
        resp_reply_int(x, -1);
    } else {
        uint64_t now = server_now_ms(x->s);
        uint64_t left = rec.expires_ms > now ? rec.expires_ms - now : 0;
        resp_reply_int(x, (int64_t)(ms ? left : (left + 500) / 1000));
    }
}

static void cmd_ttl(resp_ctx *x) { ttl_common(x, false); }
static void cmd_pttl(resp_ctx *x) { ttl_common(x, true); }

static void cmd_ping(resp_ctx *x)
{
    x->s->n.ops[WIRE_OP_PING]++;
    if (x->argc > 2)
        resp_reply_arity(x, "ping");
    else if (x->argc == 2)
        resp_reply_bulk(x, resp_arg(x, 1), resp_arglen(x, 1));
    else
        reply(x, "+PONG\r\n", 7);
}

static void cmd_echo(resp_ctx *x) { resp_reply_bulk(x, resp_arg(x, 1), resp_arglen(x, 1)); }

static void cmd_quit(resp_ctx *x)
{
    resp_reply_ok(x);
    conn_close_after_reply(x->c);
}

/* --- the command table --- */

#define CMD(name, arity, fn, flags, acl, first, last, step, group, since, summary, cx) \
    {name, sizeof(name) - 1, arity, fn, flags, acl, first, last, step, group, since, summary, cx}

/* GET and SET first: lookup is a scan, and they are most of the traffic. */
static const resp_command commands[] = {
    CMD("get", 2, cmd_get, "readonly fast", "@read @string @fast", 1, 1, 1, "string", "1.0.0",
        "Returns the string value of a key.", "O(1)"),
    CMD("set", -3, cmd_set, "write denyoom", "@write @string @slow", 1, 1, 1, "string", "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't "
        "exist.", "O(1)"),
    CMD("del", -2, cmd_del, "write", "@keyspace @write @slow", 1, -1, 1, "generic", "1.0.0",
        "Deletes one or more keys.", "O(N) where N is the number of keys that will be removed."),
    CMD("exists", -2, cmd_exists, "readonly fast", "@keyspace @read @fast", 1, -1, 1, "generic",
        "1.0.0", "Determines whether one or more keys exist.",
        "O(N) where N is the number of keys to check."),
    CMD("mget", -2, cmd_mget, "readonly fast", "@read @string @fast", 1, -1, 1, "string",
        "1.0.0", "Atomically returns the string values of one or more keys.",
        "O(N) where N is the number of keys to retrieve."),
    CMD("mset", -3, cmd_mset, "write denyoom", "@write @string @slow", 1, -1, 2, "string",
        "1.0.1", "Atomically creates or modifies the string values of one or more keys.",
        "O(N) where N is the number of keys to set."),
    CMD("ttl", 2, cmd_ttl, "readonly fast", "@keyspace @read @fast", 1, 1, 1, "generic", "1.0.0",
        "Returns the expiration time in seconds of a key.", "O(1)"),
    CMD("pttl", 2, cmd_pttl, "readonly fast", "@keyspace @read @fast", 1, 1, 1, "generic",
        "2.6.0", "Returns the expiration time in milliseconds of a key.", "O(1)"),
    CMD("ping", -1, cmd_ping, "fast", "@fast @connection", 0, 0, 0, "connection", "1.0.0",
        "Returns the server's liveliness response.", "O(1)"),
    CMD("echo", 2, cmd_echo, "fast", "@fast @connection", 0, 0, 0, "connection", "1.0.0",
        "Returns the given string.", "O(1)"),
    CMD("quit", -1, cmd_quit, "allow_busy noscript loading stale fast no_auth", "@fast @connection",
        0, 0, 0, "connection", "1.0.0", "Closes the connection.", "O(1)"),
    CMD("auth", -2, resp_cmd_auth, "noscript loading stale fast no_auth", "@fast @connection", 0,
        0, 0, "connection", "1.0.0", "Authenticates the connection.",
        "O(N) where N is the number of passwords defined for the user"),
    CMD("hello", -1, resp_cmd_hello, "noscript loading stale fast no_auth", "@fast @connection",
        0, 0, 0, "connection", "6.0.0", "Handshakes with the Redis server.", "O(1)"),
    CMD("select", 2, resp_cmd_select, "loading stale fast", "@fast @connection", 0, 0, 0,
        "connection", "1.0.0", "Changes the selected database (ringkv has only 0).", "O(1)"),
    CMD("client", -2, resp_cmd_client, "", "@slow", 0, 0, 0, "connection", "2.4.0",
        "A container for client connection commands.", "Depends on subcommand."),
    CMD("info", -1, resp_cmd_info, "loading stale", "@slow @dangerous", 0, 0, 0, "server",
        "1.0.0", "Returns information and statistics about the server.", "O(1)"),
    CMD("dbsize", 1, resp_cmd_dbsize, "readonly fast", "@keyspace @read @fast", 0, 0, 0,
        "server", "1.0.0", "Returns the number of keys in the database.", "O(1)"),
    CMD("command", -1, resp_cmd_command, "loading stale", "@slow @connection", 0, 0, 0, "server",
        "2.8.13", "Returns detailed information about all commands.",
        "O(N) where N is the total number of commands"),
    CMD("config", -2, resp_cmd_config, "", "@slow", 0, 0, 0, "server", "2.0.0",
        "A container for server configuration commands.", "Depends on subcommand."),
    CMD("cluster", -2, resp_cmd_cluster, "", "@slow", 0, 0, 0, "cluster", "3.0.0",
        "A container for Redis Cluster commands (a slot map that spreads clients).",
        "Depends on subcommand."),
};

const resp_command *resp_commands(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

const resp_command *resp_lookup(const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const resp_command *cmd = &commands[i];
        if (cmd->namelen != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            uint8_t c = name[j];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c + ('a' - 'A'));
            if (c != (uint8_t)cmd->name[j])
                break;
        }
        if (j == len)
            return cmd;
    }
    return NULL;
}

/* Redis' message, byte for byte: the name and the first arguments, each cut
 * at 128 bytes (and at a NUL, as Redis' C strings are). */
static void reply_unknown(resp_ctx *x)
{
    char args[300];
    size_t n = 0;
    for (size_t i = 1; i < x->argc && n < 128; i++) {
        const uint8_t *a = resp_arg(x, i);
        size_t alen = strnlen((const char *)a, resp_arglen(x, i));
        size_t take = alen < 128 - n ? alen : 128 - n;
        n += (size_t)snprintf(args + n, sizeof args - n, "'%.*s' ", (int)take, (const char *)a);
    }
    args[n] = '\0';
    const char *name = (const char *)resp_arg(x, 0);
    int nlen = (int)strnlen(name, resp_arglen(x, 0) < 128 ? resp_arglen(x, 0) : 128);
    resp_reply_error(x, "ERR unknown command '%.*s', with args beginning with: %s", nlen, name,
                     args);
}

static void execute(resp_ctx *x)
{
    const resp_command *cmd = resp_lookup(resp_arg(x, 0), resp_arglen(x, 0));
    if (!cmd) {
        reply_unknown(x);
        return;
    }
    if ((cmd->arity > 0 && x->argc != (size_t)cmd->arity) ||
        (cmd->arity < 0 && x->argc < (size_t)-cmd->arity)) {
        resp_reply_arity(x, cmd->name);
        return;
    }
    cmd->fn(x);
}

/* --- the connection adapter --- */

static void protocol_error(struct conn *c, const char *msg)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "-ERR %s\r\n", msg);
    log_warn("resp client %s: %s; closing", c->peer, msg);
    c->srv->n.errors++;
    c->srv->n.connections_dropped++;
    conn_reply_raw(c, 0, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1, NULL, 0);
    conn_close_after_reply(c);
}

/* Pipelined commands wait in the input buffer behind the one about to run:
 * the next one's cache entry and the one after's slot are asked for now,
 * so that by their turn the memory is there (a software pipeline over the
 * record cache's two dependent misses). (Three places ahead for the slot,
 * and the slot array in 2 MiB pages, measured no better.)
 *
 * The commands looked at ahead are scanned whole (resp_scan) and kept, so
 * that each is read once: at its turn the kept scan is its parse. Scanning
 * each command twice ahead and parsing it once more was a third of what a
 * one-node GET cost (callgrind). The input is not written during one call
 * of resp_on_input, and draining the front of a chain does not move the
 * rest, so a kept scan is good while its address is the front's; a pullup
 * forgets them. */
typedef struct lookahead {
    const uint8_t *at[2]; /* where the next two commands start; NULL: not scanned */
    resp_cmd cmd[2];
} lookahead;

static void prefetch_key(server *s, const uint8_t *at, const resp_cmd *cmd, bool entry)
{
    if (cmd->argc >= 2)
        store_prefetch(s->st, at + cmd->argv[1].off, cmd->argv[1].len, entry);
}

/* The command at `at` (len bytes from the front on) just became the next
 * one: the kept scan of the one after it moves up, and the one after that
 * is scanned. */
static void look_ahead(server *s, const resp_parser *p, lookahead *la, const uint8_t *at,
                       size_t len)
{
    if (la->at[1] == at) {
        la->cmd[0] = la->cmd[1];
        la->at[0] = at;
    } else {
        la->at[0] = resp_scan(p, at, len, &la->cmd[0]) ? at : NULL;
    }
    la->at[1] = NULL;
    if (!la->at[0])
        return;
    prefetch_key(s, at, &la->cmd[0], true);
    const uint8_t *next = at + la->cmd[0].len;
    if (resp_scan(p, next, len - la->cmd[0].len, &la->cmd[1])) {
        la->at[1] = next;
        prefetch_key(s, next, &la->cmd[1], false);
    }
}

static void resp_on_input(struct conn *c)
{
    server *s = c->srv;
    resp_conn *rc = c->proto_data;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    lookahead la = {.at = {NULL, NULL}};

    while (!c->closing && !c->close_when_flushed && !s->stopping) {
        size_t avail = evbuffer_get_length(in);
        struct evbuffer_iovec v;
        if (avail == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t need = 0;
        resp_parse_result r;
        const uint8_t *front = v.iov_base;
        if (rc->parser.mode == 0 &&
            (front == la.at[0] || resp_scan(&rc->parser, front, v.iov_len, &la.cmd[0]))) {
            resp_parser_take(&rc->parser, &la.cmd[0]);
            r = RESP_PARSE_OK;
        } else {
            r = resp_parse(&rc->parser, v.iov_base, v.iov_len, &need);
        }
        if (r == RESP_PARSE_INCOMPLETE) {
            if (avail < need)
                break; /* wait for the rest; the parser resumes where it stopped */
            /* The command goes on in the next chunk: make it contiguous. A
             * line end not yet found asks for one more byte, so take more
             * (half again what is there) to keep a long line linear. */
            size_t want = v.iov_len + (v.iov_len / 2 > 1024 ? v.iov_len / 2 : 1024);
            want = want < need ? need : want > avail ? avail : want;
            if (!evbuffer_pullup(in, (ev_ssize_t)want)) {
                conn_drop(c, "out of memory reading a %zu-byte command", want);
                break;
            }
            la.at[0] = la.at[1] = NULL; /* the input may have moved */
            continue;
        }
        if (r == RESP_PARSE_ERROR) {
            protocol_error(c, rc->parser.err);
            break;
        }
        if (r == RESP_PARSE_NOMEM) {
            conn_drop(c, "out of memory parsing a command");
            break;
        }
        size_t used = rc->parser.consumed;
        s->n.bytes_in += used;
        look_ahead(s, &rc->parser, &la, front + used, v.iov_len - used);
        if (rc->parser.argc > 0) {
            resp_ctx x = {.s = s, .c = c, .rc = rc, .buf = v.iov_base,
                          .argv = rc->parser.argv, .argc = rc->parser.argc};
            execute(&x);
        }
        evbuffer_drain(in, used);
        resp_parser_reset(&rc->parser);
        if (conn_output_check(c))
            break;
    }
}

/* Rewrites a reply whose batch failed to commit, and refuses a client past
 * max_clients. */
static void resp_encode_error(server *s, struct evbuffer *out, uint64_t id, wire_status st,
                              const char *msg)
{
    (void)s;
    (void)id;
    (void)st;
    char buf[320];
    size_t n = 0;
    buf[n++] = '-';
    n += (size_t)snprintf(buf + n, sizeof buf - n - 2, "ERR %s", msg);
    if (n > sizeof buf - 3)
        n = sizeof buf - 3;
    for (size_t i = 1; i < n; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    buf[n++] = '\r';
    buf[n++] = '\n';
    evbuffer_add(out, buf, n);
}

static int resp_on_open(struct conn *c)
{
    const config *cfg = c->srv->cfg;
    resp_conn *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -1;
    /* A bulk holds at most a key plus a value (so a large value fits and
     * nothing larger); a whole command at most max_output_buffer, the bound
     * on what a client may have queued the other way, which config.c keeps
     * above one key and value. */
    resp_parser_init(&rc->parser, cfg->max_key_bytes + cfg->max_value_bytes, RESP_MAX_ARGS,
                     RESP_MAX_INLINE, cfg->max_output_buffer);
    /* server.c counts the connection right after conn_new returns. */
    rc->id = c->srv->n.connections_total + 1;
    rc->proto = 2;
    c->proto_data = rc;
    return 0;
}

static void resp_on_free(struct conn *c)
{
    resp_conn *rc = c->proto_data;
    if (!rc)
        return;
    resp_parser_free(&rc->parser);
    free(rc->name);
    free(rc);
    c->proto_data = NULL;
}

/* conn_proto.first_key: the key of the first command in c's input. */
static bool resp_first_key(struct conn *c, const char **key, size_t *klen)
{
    struct evbuffer_iovec v;
    resp_cmd cmd;
    if (evbuffer_peek(bufferevent_get_input(c->bev), -1, NULL, &v, 1) != 1 ||
        !resp_scan(&((resp_conn *)c->proto_data)->parser, v.iov_base, v.iov_len, &cmd) ||
        cmd.argc < 2)
        return false;
    *key = (const char *)v.iov_base + cmd.argv[1].off;
    *klen = cmd.argv[1].len;
    return true;
}

const conn_proto resp_proto = {
    .name = "resp",
    .on_input = resp_on_input,
    .first_key = resp_first_key,
    .encode_error = resp_encode_error,
    .on_open = resp_on_open,
    .on_free = resp_on_free,
};
