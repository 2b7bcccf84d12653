/* cli: the `ringkv` command-line client.
 *
 * Runs one command from the command line, or reads commands at a libedit
 * prompt (line by line from stdin when that is not a terminal). Both paths
 * share one command table and talk to the node only through libringkv.
 */
#include "ringkv.h"

#include <editline/readline.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLI_DEFAULT_HOST "127.0.0.1:7001"
/* The largest max_value_bytes a node accepts: anything larger would only be
 * refused after being read and sent. */
#define CLI_MAX_STDIN ((size_t)512 << 20)
#define CLI_MAX_ARGS  64

enum { EXIT_NOT_FOUND = 1, EXIT_ERROR = 2 };

/* One argument: binary safe, since "\x00" is legal at the prompt. */
typedef struct cli_arg {
    const char *s;
    size_t len;
} cli_arg;

typedef struct cli {
    rkv_client *c;
    const char *host;
    int json;        /* --json: stats and members as JSON */
    int verbose;     /* --verbose: say which node coordinated and which replicas answered */
    int interactive; /* at the prompt: errors do not end the program */
    int tty_out;
} cli;

typedef struct cli_cmd {
    const char *name;
    int min_args, max_args; /* after the name, options included */
    const char *synopsis;
    const char *help;
    int (*run)(cli *cl, int argc, const cli_arg *argv);
} cli_cmd;

static int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "ringkv: message" on stderr; returns the exit status for errors. */
static int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringkv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_ERROR;
}

static int client_error(const cli *cl, rkv_status st)
{
    const char *msg = rkv_errstr(cl->c);
    return cli_error("%s", *msg ? msg : rkv_status_name(st));
}

static int usage_error(const cli *cl, const cli_cmd *cmd)
{
    cli_error("usage: %s", cmd->synopsis);
    fprintf(stderr, cl->interactive ? "Type 'help' for the list of commands.\n"
                                    : "Try 'ringkv --help' for more information.\n");
    return EXIT_ERROR;
}

/* Writes bytes with anything unprintable as \xHH, for keys in messages. */
static void put_escaped(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\')
            fputs("\\\\", f);
        else if (ch >= 0x20 && ch < 0x7f)
            fputc(ch, f);
        else
            fprintf(f, "\\x%02x", ch);
    }
}

static void put_json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Parses a decimal number in [min, max]; 0 on success. */
static int parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int read_stdin(char **out, size_t *outlen)
{
    size_t len = 0, cap = 64 << 10;
    char *buf = malloc(cap);
    for (;;) {
        if (buf && len == cap) {
            if (cap > CLI_MAX_STDIN) {
                free(buf);
                return cli_error(
                    "the value on stdin is larger than %zu MiB, the most a node accepts",
                    CLI_MAX_STDIN >> 20);
            }
            /* One byte over the limit is enough to tell that it is over. */
            cap = cap * 2 > CLI_MAX_STDIN + 1 ? CLI_MAX_STDIN + 1 : cap * 2;
            char *p = realloc(buf, cap);
            if (!p)
                free(buf);
            buf = p;
        }
        if (!buf)
            return cli_error("out of memory reading the value from stdin");
        size_t n = fread(buf + len, 1, cap - len, stdin);
        if (n == 0 && ferror(stdin)) {
            free(buf);
            return cli_error("reading the value from stdin failed");
        }
        if (n == 0)
            break;
        len += n;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/* --verbose: the coordinator and the replicas that answered, on stderr. */
static void report_replicas(const cli *cl)
{
    if (!cl->verbose)
        return;
    size_t n;
    const char *const *r = rkv_last_replicas(cl->c, &n);
    fprintf(stderr, "coordinator: %s; replicas: ", rkv_last_node(cl->c));
    if (n == 0)
        fputs("(not reported by the node)", stderr);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", r[i]);
    fputc('\n', stderr);
}

/* ---- commands ---- */

static int cmd_get(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc;
    void *v;
    size_t vlen;
    rkv_status st = rkv_get(cl->c, argv[0].s, argv[0].len, &v, &vlen);
    report_replicas(cl);
    if (st == RKV_NOT_FOUND) {
        fputs("(not found) ", stderr);
        put_escaped(stderr, argv[0].s, argv[0].len);
        fputc('\n', stderr);
        return EXIT_NOT_FOUND;
    }
    if (st != RKV_OK)
        return client_error(cl, st);
    /* Raw bytes, so `ringkv get k > file` round-trips binary values; a
     * newline only where a person reads it. */
    fwrite(v, 1, vlen, stdout);
    if (cl->tty_out || cl->interactive)
        fputc('\n', stdout);
    rkv_free(v);
    return 0;
}

static int cmd_put(cli *cl, int argc, const cli_arg *argv)
{
    static const cli_cmd self = {.synopsis = "put KEY VALUE [--ttl MS]"};
    const cli_arg *pos[2];
    int npos = 0;
    uint64_t ttl = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i].s, "--ttl") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i].s, 1, UINT64_MAX, &ttl) < 0)
                return cli_error("--ttl wants a positive number of milliseconds, not '%s'",
                                 argv[i].s);
        } else if (npos < 2) {
            pos[npos++] = &argv[i];
        } else {
            return usage_error(cl, &self);
        }
    }
    if (npos != 2)
        return usage_error(cl, &self);

    const char *val = pos[1]->s;
    size_t vlen = pos[1]->len;
    char *in = NULL;
    /* At the prompt stdin holds the commands, so '-' is just a value there. */
    if (!cl->interactive && strcmp(val, "-") == 0) {
        if (read_stdin(&in, &vlen))
            return EXIT_ERROR;
        val = in;
    }
    rkv_status st = rkv_put(cl->c, pos[0]->s, pos[0]->len, val, vlen, ttl);
    report_replicas(cl);
    free(in);
    if (st != RKV_OK)
        return client_error(cl, st);
    puts("OK");
    return 0;
}

static int cmd_del(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc;
    rkv_status st = rkv_del(cl->c, argv[0].s, argv[0].len);
    report_replicas(cl);
    if (st != RKV_OK)
        return client_error(cl, st);
    puts("OK");
    return 0;
}

static int cmd_ping(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc, (void)argv;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rkv_status st = rkv_ping(cl->c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != RKV_OK)
        return client_error(cl, st);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("PONG %.3f ms\n", ms);
    return 0;
}

static void print_stats_json(const rkv_stat *s, size_t n)
{
    putchar('{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            putchar(',');
        put_json_string(stdout, s[i].name, strlen(s[i].name));
        putchar(':');
        if (s[i].is_num)
            printf("%" PRIu64, s[i].num);
        else
            put_json_string(stdout, s[i].str, strlen(s[i].str));
    }
    puts("}");
}

static int cmd_stats(cli *cl, int argc, const cli_arg *argv)
{
    static const cli_cmd self = {.synopsis = "stats [--json]"};
    int json = cl->json;
    if (argc == 1 && strcmp(argv[0].s, "--json") != 0)
        return usage_error(cl, &self);
    json |= argc == 1;

    rkv_stat *s;
    size_t n;
    rkv_status st = rkv_stats(cl->c, &s, &n);
    if (st != RKV_OK)
        return client_error(cl, st);
    if (json) {
        print_stats_json(s, n);
    } else {
        int width = 0;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(s[i].name) > width)
                width = (int)strlen(s[i].name);
        for (size_t i = 0; i < n; i++) {
            if (s[i].is_num)
                printf("%-*s  %" PRIu64 "\n", width, s[i].name, s[i].num);
            else
                printf("%-*s  %s\n", width, s[i].name, s[i].str);
        }
    }
    rkv_stats_free(s, n);
    return 0;
}

/* "850ms", "3s", "2m10s", "5h3m", "2d4h": how long a member has been in its
 * state, to the precision a person reads it at. */
static void format_age(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, len, "%" PRIu64 "ms", ms);
    else if (s < 60)
        snprintf(buf, len, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

static void print_members_json(const rkv_member *m, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        const char *names[] = {"id", "peer", "client", "resp", "state", "role"};
        const char *vals[] = {m[i].id,        m[i].peer_addr, m[i].client_addr,
                              m[i].resp_addr, m[i].state,     m[i].role};
        printf("%s{", i ? "," : "");
        for (size_t k = 0; k < 6; k++) {
            printf("\"%s\":", names[k]);
            put_json_string(stdout, vals[k], strlen(vals[k]));
            putchar(',');
        }
        printf("\"incarnation\":%" PRIu64 ",\"age_ms\":%" PRIu64 ",\"vnodes\":%" PRIu64 "}",
               m[i].incarnation, m[i].age_ms, m[i].vnodes);
    }
    puts("]");
}

static void print_members_table(const rkv_member *m, size_t n)
{
    enum { COLS = 6 };
    static const char *const head[COLS] = {"ID", "PEER", "CLIENT", "STATE", "INCARNATION", "FOR"};
    char(*cells)[COLS][32] = calloc(n ? n : 1, sizeof *cells);
    int width[COLS];
    for (int k = 0; k < COLS; k++)
        width[k] = (int)strlen(head[k]);
    for (size_t i = 0; cells && i < n; i++) {
        snprintf(cells[i][4], sizeof cells[i][4], "%" PRIu64, m[i].incarnation);
        format_age(m[i].age_ms, cells[i][5], sizeof cells[i][5]);
        const char *v[COLS] = {m[i].id,    m[i].peer_addr, m[i].client_addr,
                               m[i].state, cells[i][4],    cells[i][5]};
        for (int k = 0; k < COLS; k++)
            if ((int)strlen(v[k]) > width[k])
                width[k] = (int)strlen(v[k]);
    }
    for (int k = 0; k < COLS; k++)
        printf("%-*s%s", k < COLS - 1 ? width[k] : 0, head[k], k < COLS - 1 ? "  " : "\n");
    for (size_t i = 0; cells && i < n; i++) {
        const char *v[COLS] = {m[i].id,    m[i].peer_addr, m[i].client_addr,
                               m[i].state, cells[i][4],    cells[i][5]};
        for (int k = 0; k < COLS; k++)
            printf("%-*s%s", k < COLS - 1 ? width[k] : 0, v[k], k < COLS - 1 ? "  " : "\n");
    }
    free(cells);
}

static int cmd_members(cli *cl, int argc, const cli_arg *argv)
{
    static const cli_cmd self = {.synopsis = "members [--json]"};
    if (argc == 1 && strcmp(argv[0].s, "--json") != 0)
        return usage_error(cl, &self);
    int json = cl->json || argc == 1;
    rkv_member *m;
    size_t n;
    rkv_status st = rkv_members(cl->c, &m, &n);
    if (st != RKV_OK)
        return client_error(cl, st);
    if (json)
        print_members_json(m, n);
    else
        print_members_table(m, n);
    rkv_members_free(m, n);
    return 0;
}

static int cmd_remove(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc;
    if (memchr(argv[0].s, '\0', argv[0].len))
        return cli_error("a node id cannot contain a NUL byte");
    rkv_status st = rkv_remove(cl->c, argv[0].s);
    if (st != RKV_OK)
        return client_error(cl, st);
    puts("OK");
    return 0;
}

/* Connects to member id's client address (as the connected node knows it);
 * NULL after printing why. */
static rkv_client *connect_member(cli *cl, const char *id, char *addr, size_t addrlen)
{
    rkv_member *m;
    size_t n;
    rkv_status st = rkv_members(cl->c, &m, &n);
    if (st != RKV_OK) {
        client_error(cl, st);
        return NULL;
    }
    addr[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].id, id) == 0)
            snprintf(addr, addrlen, "%s", m[i].client_addr);
    rkv_members_free(m, n);
    if (!addr[0]) {
        cli_error("no member has the id '%s' (see `ringkv members`)", id);
        return NULL;
    }
    char err[256];
    rkv_client *c = rkv_connect(addr, NULL, err, sizeof err);
    if (!c)
        cli_error("cannot reach %s at %s: %s", id, addr, err);
    return c;
}

static int cmd_decommission(cli *cl, int argc, const cli_arg *argv)
{
    rkv_client *c = cl->c;
    char addr[256];
    const char *who = "the node";
    if (argc == 1) {
        if (memchr(argv[0].s, '\0', argv[0].len))
            return cli_error("a node id cannot contain a NUL byte");
        if (!(c = connect_member(cl, argv[0].s, addr, sizeof addr)))
            return EXIT_ERROR;
        who = argv[0].s;
    }
    rkv_status st = rkv_decommission(c);
    int rc = 0;
    if (st != RKV_OK)
        rc = cli_error("decommission refused: %s", *rkv_errstr(c) ? rkv_errstr(c) : rkv_status_name(st));
    else
        printf("decommissioning %s: it hands its ranges over, then leaves and stops "
               "(follow it with `ringkv status`)\n", who);
    if (c != cl->c)
        rkv_close(c);
    return rc;
}

static const char *stat_str(const rkv_stat *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i].is_num && strcmp(s[i].name, name) == 0)
            return s[i].str;
    return "-";
}

static uint64_t stat_num(const rkv_stat *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].is_num && strcmp(s[i].name, name) == 0)
            return s[i].num;
    return 0;
}

static void format_bytes(uint64_t b, char *buf, size_t len)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

#define STATUS_FMT "%-12s %-8s %-8s %6s %7s %10s %10s  %s\n"

/* One row of `status` from a node's own STATS. */
static void status_row(const char *id, const char *state, const rkv_stat *s, size_t ns)
{
    char ranges[24], share[16], keys[24], bytes[32], act[200];
    snprintf(ranges, sizeof ranges, "%" PRIu64, stat_num(s, ns, "ranges_owned"));
    snprintf(share, sizeof share, "%.1f%%", (double)stat_num(s, ns, "replica_share_ppm") / 1e4);
    snprintf(keys, sizeof keys, "%" PRIu64, stat_num(s, ns, "keys"));
    format_bytes(stat_num(s, ns, "store_bytes"), bytes, sizeof bytes);
    const char *a = stat_str(s, ns, "stream_activity");
    uint64_t tt = stat_num(s, ns, "stream_tasks_total"), td = stat_num(s, ns, "stream_tasks_done");
    bool out = strcmp(a, "decommissioning") == 0;
    if (out || strcmp(a, "joining") == 0 || strcmp(a, "repairing") == 0) {
        char rate[32], moved[32];
        format_bytes(stat_num(s, ns, "stream_rate_bps"), rate, sizeof rate);
        format_bytes(stat_num(s, ns, out ? "stream_bytes_out" : "stream_bytes_in"), moved,
                     sizeof moved);
        snprintf(act, sizeof act,
                 "%s: %" PRIu64 "/%" PRIu64 " ranges done, %s moved, %s/s, %" PRIu64 " left", a,
                 td, tt, moved, rate, tt - td);
    } else {
        snprintf(act, sizeof act, "%s", a);
    }
    if (stat_num(s, ns, "ae_in_progress"))
        snprintf(act + strlen(act), sizeof act - strlen(act),
                 "; anti-entropy: %" PRIu64 " range%s left this round, %" PRIu64
                 " leaves to fetch",
                 stat_num(s, ns, "ae_ranges_pending"),
                 stat_num(s, ns, "ae_ranges_pending") == 1 ? "" : "s",
                 stat_num(s, ns, "ae_leaves_pending"));
    printf(STATUS_FMT, id, state, stat_str(s, ns, "ring_role"), ranges, share, keys, bytes, act);
}

/* status: every member's ring role, ranges, keys and bytes, and what it is
 * streaming or repairing, from each member's own STATS (a node without
 * membership: just itself). */
static int cmd_status(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc, (void)argv;
    rkv_member *m;
    size_t n;
    rkv_stat *s = NULL;
    size_t ns = 0;
    rkv_status st = rkv_members(cl->c, &m, &n);
    if (st == RKV_ERR_UNAVAILABLE) { /* membership off: a ring of one */
        if ((st = rkv_stats(cl->c, &s, &ns)) != RKV_OK)
            return client_error(cl, st);
        printf(STATUS_FMT, "ID", "STATE", "ROLE", "RANGES", "SHARE", "KEYS", "BYTES", "ACTIVITY");
        status_row(stat_str(s, ns, "node_id"), "alive", s, ns);
        rkv_stats_free(s, ns);
        return 0;
    }
    if (st != RKV_OK)
        return client_error(cl, st);
    printf(STATUS_FMT, "ID", "STATE", "ROLE", "RANGES", "SHARE", "KEYS", "BYTES", "ACTIVITY");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].state, "removed") == 0)
            continue;
        bool up = strcmp(m[i].state, "alive") == 0 || strcmp(m[i].state, "suspect") == 0;
        rkv_client *c = up ? rkv_connect(m[i].client_addr, NULL, NULL, 0) : NULL;
        if (c && rkv_stats(c, &s, &ns) == RKV_OK) {
            status_row(m[i].id, m[i].state, s, ns);
            rkv_stats_free(s, ns);
        } else {
            printf(STATUS_FMT, m[i].id, m[i].state, m[i].role, "-", "-", "-", "-",
                   c ? "not answering" : "down");
        }
        rkv_close(c);
    }
    rkv_members_free(m, n);
    return 0;
}

static int cmd_ring(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc, (void)argv;
    struct rkv_topology *t;
    rkv_status st = rkv_topology(cl->c, &t);
    if (st != RKV_OK)
        return client_error(cl, st);
    printf("epoch %016" PRIx64 "  replicas per key (N) %" PRIu64 "  members %zu\n", t->epoch, t->n,
           t->nmembers);
    int w[3] = {2, 6, 5};
    for (size_t i = 0; i < t->nmembers; i++) {
        const char *v[3] = {t->members[i].id, t->members[i].client_addr, t->members[i].state};
        for (int k = 0; k < 3; k++)
            if ((int)strlen(v[k]) > w[k])
                w[k] = (int)strlen(v[k]);
    }
    printf("%-*s  %-*s  %-*s  %6s  %7s\n", w[0], "ID", w[1], "CLIENT", w[2], "STATE", "VNODES",
           "SHARE");
    for (size_t i = 0; i < t->nmembers; i++) {
        const rkv_topology_member *m = &t->members[i];
        printf("%-*s  %-*s  %-*s  %6" PRIu64 "  %6.2f%%\n", w[0], m->id, w[1], m->client_addr, w[2],
               m->state, m->vnodes, m->share * 100.0);
    }
    rkv_topology_free(t);
    return 0;
}

static int cmd_locate(cli *cl, int argc, const cli_arg *argv)
{
    (void)argc;
    struct rkv_topology *t;
    rkv_status st = rkv_topology(cl->c, &t);
    if (st != RKV_OK)
        return client_error(cl, st);
    size_t idx[64];
    uint64_t token;
    size_t want = t->n < 64 ? (size_t)t->n : 64;
    size_t n = rkv_topology_locate(t, argv[0].s, argv[0].len, &token, idx, want);
    printf("token %016" PRIx64 "\n", token);
    for (size_t i = 0; i < n; i++) {
        const rkv_topology_member *m = &t->members[idx[i]];
        printf("%zu  %s  %s  %s\n", i + 1, m->id, m->client_addr, m->state);
    }
    rkv_topology_free(t);
    return 0;
}

static int cmd_help(cli *cl, int argc, const cli_arg *argv);

static const cli_cmd commands[] = {
    {"get", 1, 1, "get KEY", "print the value of KEY (exit status 1 if absent)", cmd_get},
    {"put", 2, 4, "put KEY VALUE [--ttl MS]", "store VALUE under KEY (VALUE '-': read stdin)",
     cmd_put},
    {"del", 1, 1, "del KEY", "delete KEY (deleting an absent key is fine)", cmd_del},
    {"ping", 0, 0, "ping", "check the node answers; shows the round-trip time", cmd_ping},
    {"stats", 0, 1, "stats [--json]", "show the node's statistics", cmd_stats},
    {"members", 0, 1, "members [--json]",
     "list the cluster members: state, incarnation, how long in that state", cmd_members},
    {"remove", 1, 1, "remove ID", "remove a dead (or left) member for good", cmd_remove},
    {"decommission", 0, 1, "decommission [ID]",
     "hand a node's ranges to the others, then make it leave and stop (default: the node "
     "connected to)",
     cmd_decommission},
    {"status", 0, 0, "status",
     "per member: ring role, ranges, share, keys, bytes, streaming or repair in progress",
     cmd_status},
    {"ring", 0, 0, "ring", "show each ring member's share of the keys", cmd_ring},
    {"locate", 1, 1, "locate KEY", "show KEY's token and its replicas in preference order",
     cmd_locate},
    {"help", 0, 0, "help", "list the commands", cmd_help},
    {"quit", 0, 0, "quit, exit", "leave the prompt", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static void print_commands(FILE *f)
{
    for (const cli_cmd *k = commands; k->name; k++)
        fprintf(f, "  %-26s %s\n", k->synopsis, k->help);
}

static int cmd_help(cli *cl, int argc, const cli_arg *argv)
{
    (void)cl, (void)argc, (void)argv;
    puts("Commands:");
    print_commands(stdout);
    puts("Quoting: \"...\" takes the escapes \\\" \\\\ \\n \\r \\t \\xHH; '...' is taken as "
         "written.");
    return 0;
}

static const cli_cmd *find_command(const char *name)
{
    if (strcmp(name, "exit") == 0)
        name = "quit";
    for (const cli_cmd *k = commands; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* Looks up and checks a command: NULL after printing why on a usage error. */
static const cli_cmd *check_command(const cli *cl, int argc, const cli_arg *argv)
{
    const cli_cmd *cmd = find_command(argv[0].s);
    if (!cmd) {
        cli_error("unknown command '%s'", argv[0].s);
        fprintf(stderr, cl->interactive ? "Type 'help' for the list of commands.\n"
                                        : "Try 'ringkv --help' for more information.\n");
        return NULL;
    }
    if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
        usage_error(cl, cmd);
        return NULL;
    }
    return cmd;
}

/* ---- the prompt ---- */

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes the escape after a backslash inside double quotes; *p moves past
 * it. Returns the byte, or -1 for a malformed \x. */
static int unescape(const char **p)
{
    char ch = *(*p)++;
    switch (ch) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'x': {
        int hi = hex_digit((*p)[0]), lo = hi < 0 ? -1 : hex_digit((*p)[1]);
        if (lo < 0)
            return -1;
        *p += 2;
        return hi * 16 + lo;
    }
    default:
        return (unsigned char)ch; /* \" \\ and anything else: itself */
    }
}

/* Splits a line into args as a shell would for the quoting people use here:
 * "double quotes" with escapes, 'single quotes' taken as written (\' allowed),
 * and pieces without a space between them joined ("a"'b' is ab). The args
 * point into the returned buffer, which the caller frees; NULL and *err on
 * bad quoting. */
static char *split_line(const char *p, cli_arg *args, int max, int *nargs, const char **err)
{
    /* An arg is never longer than its source; +1 NUL per arg at most. */
    char *buf = malloc(2 * strlen(p) + 2), *o = buf;
    int n = 0;
    *err = "out of memory";
    if (!buf)
        return NULL;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (n == max) {
            *err = "too many arguments";
            goto fail;
        }
        char *start = o;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            char q = *p;
            if (q != '"' && q != '\'') {
                *o++ = *p++;
                continue;
            }
            for (p++; *p != q;) {
                if (!*p || (q == '"' && p[0] == '\\' && !p[1])) {
                    *err = q == '"' ? "unbalanced double quotes" : "unbalanced single quotes";
                    goto fail;
                }
                if (q == '"' && *p == '\\') {
                    p++;
                    int ch = unescape(&p);
                    if (ch < 0) {
                        *err = "\\x needs two hex digits";
                        goto fail;
                    }
                    *o++ = (char)ch;
                } else {
                    if (q == '\'' && p[0] == '\\' && p[1] == '\'')
                        p++;
                    *o++ = *p++;
                }
            }
            p++;
        }
        args[n].s = start;
        args[n].len = (size_t)(o - start);
        *o++ = '\0';
        n++;
    }
    *nargs = n;
    return buf;
fail:
    free(buf);
    return NULL;
}

static int run_prompt(cli *cl)
{
    int tty = isatty(STDIN_FILENO);
    char prompt[300], hist[4096] = "";
    snprintf(prompt, sizeof prompt, "ringkv %s> ", cl->host);
    const char *home = getenv("HOME");
    if (tty && home && *home) {
        snprintf(hist, sizeof hist, "%s/.ringkv_history", home);
        using_history();
        stifle_history(1000);
        read_history(hist); /* absent on first use */
    }
    cl->interactive = 1;
    char *line = NULL;
    size_t cap = 0;
    for (int quit = 0; !quit;) {
        char *rl = NULL;
        const char *text;
        if (tty)
            text = rl = readline(prompt);
        else
            text = getline(&line, &cap, stdin) < 0 ? NULL : line;
        if (!text) {
            if (tty)
                putchar('\n'); /* leave the shell's prompt on a line of its own */
            break;
        }
        if (tty && text[strspn(text, " \t")])
            add_history(text);

        cli_arg args[CLI_MAX_ARGS];
        int n;
        const char *err;
        char *buf = split_line(text, args, CLI_MAX_ARGS, &n, &err);
        free(rl);
        if (!buf) {
            cli_error("%s", err);
            continue;
        }
        const cli_cmd *cmd = n ? check_command(cl, n, args) : NULL;
        if (cmd && !cmd->run)
            quit = 1;
        else if (cmd)
            cmd->run(cl, n - 1, args + 1);
        free(buf);
        fflush(stdout);
    }
    free(line);
    if (hist[0])
        write_history(hist);
    return 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ringkv [OPTIONS] [COMMAND [ARGS...]]\n"
            "\n"
            "Talks to a ringkv node. Without a COMMAND, reads commands at a prompt\n"
            "(or one per line from stdin when it is not a terminal).\n"
            "\n"
            "Options (before the command):\n"
            "  -h, --host HOST:PORT[,...] nodes to try in turn; [v6]:PORT for IPv6\n"
            "                             (default: $RINGKV_HOST, else %s)\n"
            "      --timeout MS           connect and request timeout (default 5000)\n"
            "  -c, --consistency LEVEL    one, quorum or all replicas for get, put and del\n"
            "                             (default: the node's [replication] setting)\n"
            "  -v, --verbose              say which node coordinated a get, put or del\n"
            "                             and which replicas answered (on stderr)\n"
            "      --json                 print stats and members as JSON\n"
            "      --help                 show this help and exit\n"
            "      --version              show the version and exit\n"
            "\n"
            "Commands:\n",
            CLI_DEFAULT_HOST);
    print_commands(f);
    fprintf(f,
            "\nput --ttl MS makes the key expire after MS milliseconds; 'put KEY -'\n"
            "reads the value from stdin, binary safe, up to %zu MiB. 'get' prints\n"
            "the value as stored, with a newline only on a terminal.\n"
            "\nExit status: 0 done, 1 key not found, 2 error.\n",
            CLI_MAX_STDIN >> 20);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'}, {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},    {"consistency", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},    {NULL, 0, NULL, 0},
    };
    rkv_consistency level = RKV_CONSISTENCY_DEFAULT;
    cli cl = {.host = getenv("RINGKV_HOST"), .tty_out = isatty(STDOUT_FILENO)};
    if (!cl.host || !*cl.host)
        cl.host = CLI_DEFAULT_HOST;
    uint64_t timeout = 0;

    opterr = 0;
    /* '+': options end at the command, so a value like "-5" stays a value. */
    for (int opt; (opt = getopt_long(argc, argv, "+:h:c:v", longopts, NULL)) != -1;) {
        switch (opt) {
        case 'h':
            cl.host = optarg;
            break;
        case 'j':
            cl.json = 1;
            break;
        case 'v':
            cl.verbose = 1;
            break;
        case 'c':
            if (strcmp(optarg, "one") == 0)
                level = RKV_CONSISTENCY_ONE;
            else if (strcmp(optarg, "quorum") == 0)
                level = RKV_CONSISTENCY_QUORUM;
            else if (strcmp(optarg, "all") == 0)
                level = RKV_CONSISTENCY_ALL;
            else
                return cli_error("--consistency wants one, quorum or all, not '%s'", optarg);
            break;
        case 'H':
            usage(stdout);
            return 0;
        case 'V':
            printf("ringkv %s\n", RINGKV_VERSION);
            return 0;
        case 't':
            if (parse_num(optarg, 1, INT_MAX, &timeout) < 0)
                return cli_error("--timeout wants a positive number of milliseconds, not '%s'",
                                 optarg);
            break;
        case ':':
            cli_error("option '%s' needs a value", argv[optind - 1]);
            fprintf(stderr, "Try 'ringkv --help' for more information.\n");
            return EXIT_ERROR;
        default:
            if (optopt) /* a short one, maybe inside a group like -xj */
                cli_error("unknown option '-%c'", optopt);
            else
                cli_error("unknown option '%s'", argv[optind - 1]);
            fprintf(stderr, "Try 'ringkv --help' for more information.\n");
            return EXIT_ERROR;
        }
    }

    int nargs = argc - optind;
    cli_arg *args = calloc((size_t)nargs + 1, sizeof *args);
    if (!args)
        return cli_error("out of memory");
    for (int i = 0; i < nargs; i++)
        args[i] = (cli_arg){argv[optind + i], strlen(argv[optind + i])};
    const cli_cmd *cmd = NULL;
    if (nargs > 0 && !(cmd = check_command(&cl, nargs, args))) {
        free(args);
        return EXIT_ERROR;
    }

    char err[256];
    rkv_options opts = {.connect_timeout_ms = (int)timeout, .request_timeout_ms = (int)timeout};
    cl.c = rkv_connect(cl.host, &opts, err, sizeof err);
    int rc;
    if (!cl.c)
        rc = cli_error("%s", err);
    else if (rkv_set_consistency(cl.c, level) != RKV_OK)
        rc = cli_error("%s", rkv_errstr(cl.c));
    else if (!cmd)
        rc = run_prompt(&cl);
    else
        rc = cmd->run ? cmd->run(&cl, nargs - 1, args + 1) : 0;
    rkv_close(cl.c);
    free(args);
    if (fflush(stdout) == EOF || ferror(stdout))
        return cli_error("writing to stdout failed");
    return rc;
}
