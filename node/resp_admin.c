/* resp_admin: the RESP port's connection and server commands: HELLO, AUTH,
 * SELECT, CLIENT, INFO, DBSIZE, COMMAND and CONFIG; see resp.h.
 *
 * They answer what redis-cli, redis-benchmark and client libraries ask when
 * they connect, in the shapes Redis 7 uses. ringkv reports itself as Redis
 * 7.0.0 (INFO's redis_version, HELLO's version), the protocol level it
 * speaks, because libraries decide what to send by that number; INFO adds
 * ringkv's own version and figures.
 */
#include "resp.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"

#define REDIS_COMPAT_VERSION "7.0.0"
#define CLIENT_NAME_MAX 256

void resp_reply_unknown_sub(resp_ctx *x, const char *container)
{
    int n = (int)strnlen((const char *)resp_arg(x, 1),
                         resp_arglen(x, 1) < 128 ? resp_arglen(x, 1) : 128);
    resp_reply_error(x, "ERR unknown subcommand '%.*s'. Try %s HELP.", n,
                     (const char *)resp_arg(x, 1), container);
}

void resp_reply_help(resp_ctx *x, const char *const *lines)
{
    size_t n = 0;
    while (lines[n])
        n++;
    size_t begin = conn_reply_begin(x->c);
    resp_add_array(x, n);
    for (size_t i = 0; i < n; i++)
        resp_add_status(x, lines[i]);
    conn_reply_end(x->c, 0, begin);
}

/* --- connection --- */

/* No password is set (the security work adds them): answer as Redis does
 * with requirepass unset, where the default user needs none. */
static bool auth_ok(resp_ctx *x, size_t user_arg)
{
    if (resp_arg_is(x, user_arg, "default"))
        return true;
    resp_reply_error(x, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
}

void resp_cmd_auth(resp_ctx *x)
{
    if (x->argc > 3) {
        resp_reply_syntax(x);
    } else if (x->argc == 2) {
        resp_reply_error(x, "ERR AUTH <password> called without any password configured for "
                            "the default user. Are you sure your configuration is correct?");
    } else if (auth_ok(x, 1)) {
        resp_reply_ok(x);
    }
}

void resp_cmd_select(resp_ctx *x)
{
    int64_t db;
    if (!resp_strtoll(resp_arg(x, 1), resp_arglen(x, 1), &db))
        resp_reply_not_integer(x);
    else if (db != 0)
        resp_reply_error(x, "ERR DB index is out of range");
    else
        resp_reply_ok(x);
}

/* Redis allows printable ASCII without blanks. */
static bool check_client_name(resp_ctx *x, size_t i)
{
    const uint8_t *p = resp_arg(x, i);
    size_t n = resp_arglen(x, i);
    if (n > CLIENT_NAME_MAX) {
        resp_reply_error(x, "ERR client name is longer than %d bytes", CLIENT_NAME_MAX);
        return false;
    }
    for (size_t j = 0; j < n; j++) {
        if (p[j] < '!' || p[j] > '~') {
            resp_reply_error(x, "ERR Client names cannot contain spaces, newlines or special "
                                "characters.");
            return false;
        }
    }
    return true;
}

/* Call after check_client_name. An empty name clears it. */
static bool set_client_name(resp_ctx *x, size_t i)
{
    size_t n = resp_arglen(x, i);
    char *name = NULL;
    if (n > 0) {
        name = malloc(n + 1);
        if (!name) {
            resp_reply_error(x, "ERR out of memory");
            return false;
        }
        memcpy(name, resp_arg(x, i), n);
        name[n] = '\0';
    }
    free(x->rc->name);
    x->rc->name = name;
    return true;
}

void resp_cmd_hello(resp_ctx *x)
{
    int proto = x->rc->proto;
    size_t i = 1, name_arg = 0;
    if (x->argc >= 2) {
        int64_t v;
        if (!resp_strtoll(resp_arg(x, 1), resp_arglen(x, 1), &v)) {
            resp_reply_error(x, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v < 2 || v > 3) {
            resp_reply_error(x, "NOPROTO unsupported protocol version");
            return;
        }
        proto = (int)v;
        i = 2;
    }
    for (; i < x->argc; i++) {
        size_t more = x->argc - i - 1;
        if (resp_arg_is(x, i, "auth") && more >= 2) {
            if (!auth_ok(x, i + 1))
                return;
            i += 2;
        } else if (resp_arg_is(x, i, "setname") && more >= 1) {
            if (!check_client_name(x, i + 1))
                return;
            name_arg = ++i;
        } else {
            int n = (int)strnlen((const char *)resp_arg(x, i),
                                 resp_arglen(x, i) < 128 ? resp_arglen(x, i) : 128);
            resp_reply_error(x, "ERR Syntax error in HELLO option '%.*s'", n,
                             (const char *)resp_arg(x, i));
            return;
        }
    }
    if (name_arg && !set_client_name(x, name_arg))
        return;
    x->rc->proto = proto; /* the reply is already in the new protocol */

    size_t begin = conn_reply_begin(x->c);
    resp_add_map(x, 7);
    resp_add_str(x, "server");
    resp_add_str(x, "ringkv");
    resp_add_str(x, "version");
    resp_add_str(x, REDIS_COMPAT_VERSION);
    resp_add_str(x, "proto");
    resp_add_int(x, proto);
    resp_add_str(x, "id");
    resp_add_int(x, (int64_t)x->rc->id);
    resp_add_str(x, "mode");
    resp_add_str(x, "standalone");
    resp_add_str(x, "role");
    resp_add_str(x, "master");
    resp_add_str(x, "modules");
    resp_add_array(x, 0);
    conn_reply_end(x->c, 0, begin);
}

void resp_cmd_client(resp_ctx *x)
{
    static const char *const help[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ID", "    Return the ID of the current connection.",
        "GETNAME", "    Return the name of the current connection.",
        "SETNAME <connection-name>", "    Assign the name <connection-name> to the current connection.",
        "SETINFO <option> <value>", "    Set client meta attr (lib-name, lib-ver); accepted and ignored.",
        "HELP", "    Print this help.",
        NULL,
    };
    if (resp_arg_is(x, 1, "id")) {
        if (x->argc == 2)
            resp_reply_int(x, (int64_t)x->rc->id);
        else
            resp_reply_arity(x, "client|id");
    } else if (resp_arg_is(x, 1, "getname")) {
        if (x->argc != 2)
            resp_reply_arity(x, "client|getname");
        else if (x->rc->name)
            resp_reply_bulk(x, x->rc->name, strlen(x->rc->name));
        else
            resp_reply_nil(x);
    } else if (resp_arg_is(x, 1, "setname")) {
        if (x->argc != 3)
            resp_reply_arity(x, "client|setname");
        else if (check_client_name(x, 2) && set_client_name(x, 2))
            resp_reply_ok(x);
    } else if (resp_arg_is(x, 1, "setinfo")) {
        if (x->argc != 4)
            resp_reply_arity(x, "client|setinfo");
        else if (!resp_arg_is(x, 2, "lib-name") && !resp_arg_is(x, 2, "lib-ver"))
            resp_reply_error(x, "ERR Unrecognized option '%.*s'",
                             (int)(resp_arglen(x, 2) < 128 ? resp_arglen(x, 2) : 128),
                             (const char *)resp_arg(x, 2));
        else
            resp_reply_ok(x);
    } else if (resp_arg_is(x, 1, "help")) {
        resp_reply_help(x, help);
    } else {
        resp_reply_unknown_sub(x, "CLIENT");
    }
}

/* --- INFO and DBSIZE --- */

typedef struct info_buf {
    char *p;
    size_t cap, len;
} info_buf;

__attribute__((format(printf, 2, 3))) static void put(info_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len - 1;
}

/* Keys as of the last commit; expired keys count until the sweep purges
 * them. */
static uint64_t keys_of(const store_stats *ss)
{
    return ss->records > ss->tombstones ? ss->records - ss->tombstones : 0;
}

static uint64_t live_keys(server *s)
{
    store_stats ss;
    store_get_stats(s->st, &ss);
    return keys_of(&ss);
}

static const char *resp_port(server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].proto == &resp_proto) {
            const char *colon = strrchr(s->listeners[i].addr, ':');
            return colon ? colon + 1 : "0";
        }
    }
    return "0";
}

static void info_server(server *s, info_buf *b)
{
    struct utsname u;
    uint64_t up = (server_now_ms(s) - s->started_ms) / 1000;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    put(b, "# Server\r\nredis_version:%s\r\nringkv_version:%s\r\nredis_mode:%s\r\n"
           "os:%s %s %s\r\narch_bits:%d\r\nmultiplexing_api:%s\r\nprocess_id:%ld\r\n"
           "tcp_port:%s\r\nuptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n"
           "mem_allocator:%s\r\n",
        REDIS_COMPAT_VERSION, RINGKV_VERSION, s->cfg->peer[0] ? "cluster" : "standalone", u.sysname, u.release, u.machine,
        (int)(sizeof(void *) * 8), event_base_get_method(s->base), (long)getpid(), resp_port(s),
        (unsigned long long)up, (unsigned long long)(up / 86400), alloc_name());
}

static void info_clients(server *s, info_buf *b)
{
    put(b, "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%llu\r\nblocked_clients:0\r\n",
        (unsigned long long)s->nconns, (unsigned long long)s->cfg->max_clients);
}

static void info_stats(server *s, info_buf *b)
{
    store_stats ss;
    store_get_stats(s->st, &ss);
    const server_counters *n = &s->n;
    uint64_t cmds = 0;
    for (int i = 0; i <= WIRE_OP_MAX; i++)
        cmds += n->ops[i];
    put(b, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
           "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
           "rejected_connections:%llu\r\n"
           "ringkv_ops_get:%llu\r\nringkv_ops_put:%llu\r\nringkv_ops_del:%llu\r\n"
           "ringkv_ops_ping:%llu\r\nringkv_errors:%llu\r\nringkv_dropped_connections:%llu\r\n"
           "ringkv_commits:%llu\r\nringkv_commit_failures:%llu\r\nringkv_purged:%llu\r\n"
           "ringkv_tombstones:%llu\r\nringkv_fsync:%s\r\n"
           "ringkv_cache_hits:%llu\r\nringkv_cache_misses:%llu\r\n"
           "ringkv_cache_evictions:%llu\r\nringkv_cache_entries:%llu\r\n"
           "ringkv_cache_bytes:%llu\r\nringkv_writeback_dirty:%llu\r\n"
           "ringkv_written_back:%llu\r\n",
        (unsigned long long)n->connections_total, (unsigned long long)cmds,
        (unsigned long long)n->bytes_in, (unsigned long long)n->bytes_out,
        (unsigned long long)n->connections_rejected,
        (unsigned long long)n->ops[WIRE_OP_GET], (unsigned long long)n->ops[WIRE_OP_PUT],
        (unsigned long long)n->ops[WIRE_OP_DEL], (unsigned long long)n->ops[WIRE_OP_PING],
        (unsigned long long)n->errors, (unsigned long long)n->connections_dropped,
        (unsigned long long)ss.commits, (unsigned long long)n->commit_failures,
        (unsigned long long)ss.purged, (unsigned long long)ss.tombstones,
        config_fsync_name(s->cfg->fsync), (unsigned long long)ss.cache_hits,
        (unsigned long long)ss.cache_misses, (unsigned long long)ss.cache_evictions,
        (unsigned long long)ss.cache_entries, (unsigned long long)ss.cache_bytes,
        (unsigned long long)ss.dirty, (unsigned long long)ss.written_back);
}

/* Redis leaves an empty database out of the section. expires: the keys
 * with a time to live, as Redis counts them (those expired and not yet
 * purged too). avg_ttl: ms from now to their mean expiry time, exact where
 * Redis' is an estimate from samples; 0 once that time has passed. */
static void info_keyspace(server *s, info_buf *b)
{
    store_stats ss;
    store_get_stats(s->st, &ss);
    uint64_t keys = keys_of(&ss), now = server_now_ms(s);
    put(b, "# Keyspace\r\n");
    if (keys)
        put(b, "db0:keys=%llu,expires=%llu,avg_ttl=%llu\r\n", (unsigned long long)keys,
            (unsigned long long)(ss.expiring < keys ? ss.expiring : keys),
            (unsigned long long)(ss.expiry_avg_ms > now ? ss.expiry_avg_ms - now : 0));
}

size_t resp_info_cluster(server *s, char *buf, size_t cap)
{
    info_buf b = {buf, cap, 0};
    buf[0] = '\0';
    put(&b, "cluster_enabled:%d\r\nringkv_node_id:%s\r\nringkv_membership:%s\r\n",
        s->cfg->peer[0] ? 1 : 0, s->node_id, s->cfg->peer[0] ? "on" : "off");
    return b.len;
}

enum { SEC_SERVER = 1, SEC_CLIENTS = 2, SEC_STATS = 4, SEC_KEYSPACE = 8, SEC_CLUSTER = 16 };

void resp_cmd_info(resp_ctx *x)
{
    static const struct { const char *name; unsigned bits; } names[] = {
        {"server", SEC_SERVER},     {"clients", SEC_CLIENTS}, {"stats", SEC_STATS},
        {"keyspace", SEC_KEYSPACE}, {"cluster", SEC_CLUSTER}, {"default", ~0u},
        {"all", ~0u},               {"everything", ~0u},
    };
    unsigned want = x->argc == 1 ? ~0u : 0;
    for (size_t i = 1; i < x->argc; i++) /* unknown sections add nothing, as in Redis */
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
            if (resp_arg_is(x, i, names[j].name))
                want |= names[j].bits;

    char text[4096];
    info_buf b = {text, sizeof text, 0};
    text[0] = '\0';
    void (*sections[])(server *, info_buf *) = {info_server, info_clients, info_stats,
                                                 info_keyspace};
    for (size_t i = 0; i < 4; i++) {
        if (!(want & (1u << i)))
            continue;
        if (b.len)
            put(&b, "\r\n");
        sections[i](x->s, &b);
    }
    if (want & SEC_CLUSTER) {
        put(&b, b.len ? "\r\n# Cluster\r\n" : "# Cluster\r\n");
        b.len += resp_info_cluster(x->s, text + b.len, sizeof text - b.len);
    }
    resp_reply_bulk(x, text, b.len);
}

void resp_cmd_dbsize(resp_ctx *x) { resp_reply_int(x, (int64_t)live_keys(x->s)); }

/* --- COMMAND --- */

/* Words of a space-separated list, as statuses (a set under RESP3). */
static void add_words(resp_ctx *x, const char *words)
{
    size_t n = 0;
    for (const char *p = words; *p; p++)
        if (*p != ' ' && (p == words || p[-1] == ' '))
            n++;
    resp_add_set(x, n);
    for (const char *p = words; *p;) {
        size_t len = strcspn(p, " ");
        if (len) {
            conn_reply_add(x->c, "+", 1);
            conn_reply_add(x->c, p, len);
            conn_reply_add(x->c, "\r\n", 2);
        }
        p += len;
        while (*p == ' ')
            p++;
    }
}

/* COMMAND INFO's ten fields: name, arity, flags, first, last and step key,
 * ACL categories, tips, key specs, subcommands (the last three empty). */
static void add_command_info(resp_ctx *x, const resp_command *cmd)
{
    resp_add_array(x, 10);
    resp_add_str(x, cmd->name);
    resp_add_int(x, cmd->arity);
    add_words(x, cmd->flags);
    resp_add_int(x, cmd->first_key);
    resp_add_int(x, cmd->last_key);
    resp_add_int(x, cmd->key_step);
    add_words(x, cmd->acl);
    resp_add_array(x, 0);
    resp_add_array(x, 0);
    resp_add_array(x, 0);
}

/* COMMAND DOCS: summary, since, group and complexity (redis-cli's help reads
 * these; it needs no "arguments"). */
static void add_command_docs(resp_ctx *x, const resp_command *cmd)
{
    resp_add_str(x, cmd->name);
    resp_add_map(x, 4);
    resp_add_str(x, "summary");
    resp_add_str(x, cmd->summary);
    resp_add_str(x, "since");
    resp_add_str(x, cmd->since);
    resp_add_str(x, "group");
    resp_add_str(x, cmd->group);
    resp_add_str(x, "complexity");
    resp_add_str(x, cmd->complexity);
}

void resp_cmd_command(resp_ctx *x)
{
    static const char *const help[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)", "    Return details about all commands.",
        "COUNT", "    Return the total number of commands.",
        "DOCS [<command-name> ...]", "    Return documentary information about commands.",
        "INFO [<command-name> ...]", "    Return details about the given commands, or all.",
        "LIST", "    Return a list of all commands.",
        "HELP", "    Print this help.",
        NULL,
    };
    size_t n;
    const resp_command *all = resp_commands(&n);
    size_t begin;

    if (x->argc == 1 || resp_arg_is(x, 1, "info")) {
        bool named = x->argc > 2;
        begin = conn_reply_begin(x->c);
        resp_add_array(x, named ? x->argc - 2 : n);
        for (size_t i = 0; i < (named ? x->argc - 2 : n); i++) {
            const resp_command *cmd =
                named ? resp_lookup(resp_arg(x, i + 2), resp_arglen(x, i + 2)) : &all[i];
            if (cmd)
                add_command_info(x, cmd);
            else
                resp_add_nil(x);
        }
        conn_reply_end(x->c, 0, begin);
    } else if (resp_arg_is(x, 1, "count")) {
        if (x->argc == 2)
            resp_reply_int(x, (int64_t)n);
        else
            resp_reply_arity(x, "command|count");
    } else if (resp_arg_is(x, 1, "list")) {
        begin = conn_reply_begin(x->c);
        resp_add_array(x, n);
        for (size_t i = 0; i < n; i++)
            resp_add_str(x, all[i].name);
        conn_reply_end(x->c, 0, begin);
    } else if (resp_arg_is(x, 1, "docs")) {
        size_t found = 0; /* unknown names are left out, as in Redis */
        for (size_t i = 2; i < x->argc; i++)
            found += resp_lookup(resp_arg(x, i), resp_arglen(x, i)) != NULL;
        begin = conn_reply_begin(x->c);
        resp_add_map(x, x->argc == 2 ? n : found);
        for (size_t i = 0; i < n && x->argc == 2; i++)
            add_command_docs(x, &all[i]);
        for (size_t i = 2; i < x->argc; i++) {
            const resp_command *cmd = resp_lookup(resp_arg(x, i), resp_arglen(x, i));
            if (cmd)
                add_command_docs(x, cmd);
        }
        conn_reply_end(x->c, 0, begin);
    } else if (resp_arg_is(x, 1, "help")) {
        resp_reply_help(x, help);
    } else {
        resp_reply_unknown_sub(x, "COMMAND");
    }
}

/* --- CONFIG --- */

/* What CONFIG GET reports: the Redis parameters that describe ringkv, with
 * the nearest ringkv value (each write is committed to LMDB, so appendonly
 * is yes and appendfsync is the node's fsync policy; there are no
 * snapshots). */
static size_t config_value(server *s, size_t i, const char **name, char *val, size_t cap)
{
    const config *cfg = s->cfg;
    switch (i) {
    case 0: *name = "save"; snprintf(val, cap, "%s", ""); break;
    case 1: *name = "appendonly"; snprintf(val, cap, "yes"); break;
    case 2: *name = "appendfsync"; snprintf(val, cap, "%s", config_fsync_name(cfg->fsync)); break;
    case 3: *name = "databases"; snprintf(val, cap, "1"); break;
    case 4:
        *name = "maxclients";
        snprintf(val, cap, "%llu", (unsigned long long)cfg->max_clients);
        break;
    case 5:
        *name = "timeout";
        snprintf(val, cap, "%llu", (unsigned long long)(cfg->idle_timeout_ms / 1000));
        break;
    case 6:
        *name = "proto-max-bulk-len";
        snprintf(val, cap, "%llu", (unsigned long long)(cfg->max_key_bytes + cfg->max_value_bytes));
        break;
    case 7: *name = "maxmemory"; snprintf(val, cap, "0"); break;
    default: return 0;
    }
    return 1;
}

/* Does parameter name match any pattern among the arguments from 2 on? */
static bool config_matches(resp_ctx *x, const char *name)
{
    for (size_t i = 2; i < x->argc; i++) {
        char pat[256];
        size_t n = resp_arglen(x, i);
        if (n >= sizeof pat)
            continue;
        memcpy(pat, resp_arg(x, i), n);
        pat[n] = '\0';
        if (fnmatch(pat, name, FNM_CASEFOLD) == 0)
            return true;
    }
    return false;
}

static void config_get(resp_ctx *x)
{
    const char *name;
    char val[64];
    size_t matched = 0;
    for (size_t i = 0; config_value(x->s, i, &name, val, sizeof val); i++)
        matched += config_matches(x, name);
    size_t begin = conn_reply_begin(x->c);
    resp_add_map(x, matched);
    for (size_t i = 0; config_value(x->s, i, &name, val, sizeof val); i++) {
        if (config_matches(x, name)) {
            resp_add_str(x, name);
            resp_add_str(x, val);
        }
    }
    conn_reply_end(x->c, 0, begin);
}

void resp_cmd_config(resp_ctx *x)
{
    static const char *const help[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern> [<pattern> ...]",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "HELP", "    Print this help.",
        NULL,
    };
    if (resp_arg_is(x, 1, "get")) {
        if (x->argc < 3)
            resp_reply_arity(x, "config|get");
        else
            config_get(x);
    } else if (resp_arg_is(x, 1, "set")) {
        resp_reply_error(x, "ERR CONFIG SET is not supported: ringkvd reads its settings from "
                            "its config file and flags at start");
    } else if (resp_arg_is(x, 1, "help")) {
        resp_reply_help(x, help);
    } else {
        resp_reply_unknown_sub(x, "CONFIG");
    }
}
