/* config: ringkvd's settings; see config.h.
 *
 * One table (entries[]) names every key with its section, type, field, range
 * and default; config_defaults, config_set, config_load_file and
 * config_validate all walk it, so a new key is one line here. inih parses the
 * file through our own line reader, which knows the exact line of every key
 * and refuses lines too long for inih's 200-byte buffer instead of letting
 * inih split them into two silently.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

#define VALUE_SHOWN 80       /* longest value echoed back in a message */
#define REPLY_OVERHEAD 1024  /* framing around a reply's key and value */

typedef enum value_type {
    T_ID,        /* empty, or 1..CONFIG_ID_MAX of [A-Za-z0-9_.-] */
    T_ADDR,      /* HOST:PORT or [v6]:PORT */
    T_SEEDS,     /* comma-separated T_ADDR list */
    T_PATH,
    T_FSYNC,
    T_LOG_LEVEL,
    T_SIZE,      /* bytes, with binary suffixes */
    T_MEM,       /* a T_SIZE, or "auto" (config_auto_cache_size) */
    T_DURATION,  /* stored in ms; a plain number is seconds */
    T_COUNT,     /* plain integer */
    T_BOOL,      /* yes/no, stored as a uint64_t 1/0 */
} value_type;

typedef struct entry {
    const char *section;
    const char *key;
    value_type type;
    size_t offset;
    size_t size;       /* capacity of a string field */
    bool optional;     /* a string field may be empty (feature off) */
    uint64_t min, max; /* numeric range, inclusive */
    const char *def;   /* default, written as in a file */
} entry;

#define FIELD_SIZE(f) sizeof(((config *)0)->f)
#define STR(sec, key, type, f, opt, def) \
    { sec, key, type, offsetof(config, f), FIELD_SIZE(f), opt, 0, 0, def }
#define NUM(sec, key, type, f, lo, hi, def) \
    { sec, key, type, offsetof(config, f), FIELD_SIZE(f), false, lo, hi, def }

static const entry entries[] = {
    STR("node", "id", T_ID, id, true, ""),
    STR("node", "listen", T_ADDR, listen, false, "127.0.0.1:7001"),
    STR("node", "peer", T_ADDR, peer, true, ""),
    STR("node", "resp", T_ADDR, resp, true, ""),
    STR("node", "http", T_ADDR, http, true, ""),
    STR("node", "seeds", T_SEEDS, seeds, true, ""),
    STR("node", "data_dir", T_PATH, data_dir, false, "./data"),
    NUM("node", "fsync", T_FSYNC, fsync, 0, 0, "everysec"),
    NUM("node", "log_level", T_LOG_LEVEL, log_level, 0, 0, "info"),
    NUM("node", "vnodes", T_COUNT, vnodes, 1, 4096, "128"),
    NUM("limits", "max_key_bytes", T_SIZE, max_key_bytes, 1, 16 * MiB, "64KiB"),
    NUM("limits", "max_value_bytes", T_SIZE, max_value_bytes, 0, 512 * MiB, "16MiB"),
    NUM("limits", "max_clients", T_COUNT, max_clients, 1, 1000000, "10000"),
    NUM("limits", "idle_timeout", T_DURATION, idle_timeout_ms, 0, UINT64_MAX, "300s"),
    NUM("limits", "max_output_buffer", T_SIZE, max_output_buffer, 64 * KiB, UINT64_MAX,
        "64MiB"),
    /* map_size ends up in a size_t (store_options, mdb_env_set_mapsize). */
    NUM("storage", "map_size", T_SIZE, map_size, MiB, SIZE_MAX, "64GiB"),
    NUM("storage", "cache_size", T_MEM, cache_size, 0, SIZE_MAX, "auto"),
    NUM("storage", "log_size", T_SIZE, log_size, MiB, SIZE_MAX, "1GiB"),
    NUM("storage", "checkpoints", T_BOOL, checkpoints, 0, 1, "yes"),
    NUM("storage", "tombstone_ttl", T_DURATION, tombstone_ttl_ms, 0, UINT64_MAX, "86400s"),
    NUM("storage", "sweep_interval", T_DURATION, sweep_interval_ms, 1, UINT64_MAX, "1s"),
    /* Capped so a typo cannot size preference lists and quorum sets absurdly. */
    NUM("replication", "n", T_COUNT, n, 1, 64, "3"),
    NUM("replication", "r", T_COUNT, r, 1, 16, "2"),
    NUM("replication", "w", T_COUNT, w, 1, 16, "2"),
    NUM("replication", "request_timeout", T_DURATION, request_timeout_ms, 1, 3600000, "2s"),
    NUM("replication", "read_retry", T_DURATION, read_retry_ms, 0, 3600000, "2ms"),
    NUM("replication", "linger", T_DURATION, linger_ms, 0, 100, "1ms"),
    /* Rates are bytes per second; 0 means unlimited. */
    NUM("rebalance", "bootstrap", T_BOOL, bootstrap, 0, 1, "yes"),
    NUM("rebalance", "stream_rate", T_SIZE, stream_rate, 0, UINT64_MAX, "64MiB"),
    NUM("rebalance", "stream_chunk", T_SIZE, stream_chunk, 4 * KiB, 16 * MiB, "256KiB"),
    NUM("rebalance", "purge_grace", T_DURATION, purge_grace_ms, 0, UINT64_MAX, "60s"),
    NUM("rebalance", "anti_entropy_interval", T_DURATION, anti_entropy_interval_ms, 0,
        UINT64_MAX, "60s"),
    NUM("rebalance", "anti_entropy_rate", T_SIZE, anti_entropy_rate, 0, UINT64_MAX, "16MiB"),
    /* gossip_config_defaults' values (test_config checks they agree). The
     * caps keep a typo from making a node deaf or flood the network; the
     * datagram limit is DESIGN.md's 1400 bytes. */
    NUM("gossip", "probe_interval", T_DURATION, gossip.probe_interval_ms, 10, 60000, "500ms"),
    NUM("gossip", "probe_timeout", T_DURATION, gossip.probe_timeout_ms, 1, 60000, "200ms"),
    NUM("gossip", "indirect_checks", T_COUNT, gossip.indirect_checks, 0, 16, "3"),
    NUM("gossip", "suspicion_mult", T_COUNT, gossip.suspicion_mult, 1, 100, "4"),
    NUM("gossip", "suspicion_max_mult", T_COUNT, gossip.suspicion_max_mult, 1, 100, "6"),
    NUM("gossip", "retransmit_mult", T_COUNT, gossip.retransmit_mult, 1, 100, "4"),
    NUM("gossip", "gossip_interval", T_DURATION, gossip.interval_ms, 10, 60000, "200ms"),
    NUM("gossip", "gossip_nodes", T_COUNT, gossip.nodes, 1, 64, "3"),
    NUM("gossip", "pushpull_interval", T_DURATION, gossip.pushpull_interval_ms, 0, 3600000,
        "30s"),
    NUM("gossip", "awareness_max", T_COUNT, gossip.awareness_max, 1, 100, "8"),
    NUM("gossip", "max_packet", T_SIZE, gossip.max_packet, 512, 1400, "1400"),
};
#define N_ENTRIES (sizeof entries / sizeof entries[0])

typedef struct unit {
    const char *name;
    uint64_t scale;
} unit;

/* All binary, as the brief and redis.conf's "gb" agree on 1024^n. */
static const unit size_units[] = {
    {"", 1},      {"k", KiB}, {"kb", KiB}, {"kib", KiB}, {"m", MiB}, {"mb", MiB},
    {"mib", MiB}, {"g", GiB}, {"gb", GiB}, {"gib", GiB}, {"t", TiB}, {"tb", TiB},
    {"tib", TiB}, {NULL, 0},
};

/* Case matters here: "M" would read as mega (or months) to someone. */
static const unit duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    {NULL, 0},
};

static const unit count_units[] = {{"", 1}, {NULL, 0}};

static const char *const fsync_names[] = {
    [STORE_FSYNC_ALWAYS] = "always",
    [STORE_FSYNC_EVERYSEC] = "everysec",
    [STORE_FSYNC_NO] = "no",
};

enum { NUM_OK = 0, NUM_JUNK = -1, NUM_OVERFLOW = -2 };

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Appends to a NUL-terminated buffer, truncating quietly when it is full. */
static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

static void *field_of(config *c, const entry *e) { return (char *)c + e->offset; }

static const void *cfield_of(const config *c, const entry *e)
{
    return (const char *)c + e->offset;
}

static const entry *find_entry(const char *section, const char *key)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strcmp(entries[i].section, section) == 0 && strcmp(entries[i].key, key) == 0)
            return &entries[i];
    return NULL;
}

static bool known_section(const char *section)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strcmp(entries[i].section, section) == 0)
            return true;
    return false;
}

/* "[node], [limits], [storage], [replication]", from the table. */
static void list_sections(char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_ENTRIES; i++) {
        if (i > 0 && strcmp(entries[i].section, entries[i - 1].section) == 0)
            continue;
        append(buf, len, "%s[%s]", buf[0] ? ", " : "", entries[i].section);
    }
}

static void list_keys(const char *section, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strcmp(entries[i].section, section) == 0)
            append(buf, len, "%s%s", buf[0] ? ", " : "", entries[i].key);
}

static int parse_scaled(const char *s, const unit *units, bool fold_case, uint64_t *out)
{
    const char *p = s;
    uint64_t v = 0;
    bool over = false;
    if (*p < '0' || *p > '9')
        return NUM_JUNK; /* also refuses "", "-1", "+1" and leading blanks */
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    const char *u = p;
    while (*u == ' ' || *u == '\t')
        u++;
    if (u > p && *u == '\0')
        return NUM_JUNK; /* trailing blanks without a unit */
    const unit *found = NULL;
    for (const unit *x = units; x->name && !found; x++)
        if ((fold_case ? strcasecmp(u, x->name) : strcmp(u, x->name)) == 0)
            found = x;
    if (!found)
        return NUM_JUNK;
    if (over || v > UINT64_MAX / found->scale)
        return NUM_OVERFLOW;
    *out = v * found->scale;
    return NUM_OK;
}

/* The memory limit of the cgroup mounted at /sys/fs/cgroup (a container's
 * own, under a cgroup namespace): v2's memory.max, else v1's
 * limit_in_bytes (which reads as about 2^63 when unset). 0: none found,
 * as on a host, whose root cgroup has no limit. */
static uint64_t cgroup_memory_limit(void)
{
    static const char *const files[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f)
            continue;
        unsigned long long v = 0;
        int got = fscanf(f, "%llu", &v);
        fclose(f);
        if (got == 1 && v > 0 && v < (UINT64_C(1) << 62))
            return v;
    }
    return 0;
}

uint64_t config_auto_cache_size(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t limit = cgroup_memory_limit();
    if (limit && (!mem || limit < mem))
        mem = limit;
    uint64_t size = mem / 8 / MiB * MiB;
    return size > CONFIG_AUTO_CACHE_MIN ? size : CONFIG_AUTO_CACHE_MIN;
}

static int parse_number(value_type type, const char *s, uint64_t *out)
{
    switch (type) {
    case T_MEM:
        if (strcmp(s, "auto") == 0) {
            *out = config_auto_cache_size();
            return NUM_OK;
        }
        return parse_scaled(s, size_units, true, out);
    case T_SIZE: return parse_scaled(s, size_units, true, out);
    case T_DURATION: return parse_scaled(s, duration_units, false, out);
    default: return parse_scaled(s, count_units, false, out);
    }
}

int config_parse_size(const char *s, uint64_t *out)
{
    return parse_number(T_SIZE, s, out) == NUM_OK ? 0 : -1;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_number(T_DURATION, s, out) == NUM_OK ? 0 : -1;
}

/* Writes v in the largest unit that divides it, so messages read "16MiB". */
static void format_number(value_type type, uint64_t v, char *buf, size_t len)
{
    static const unit size_fmt[] = {{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB},
                                    {"KiB", KiB}, {NULL, 0}};
    static const unit dur_fmt[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000},
                                   {"s", 1000}, {NULL, 0}};
    const unit *u = type == T_SIZE || type == T_MEM ? size_fmt
                    : type == T_DURATION              ? dur_fmt
                                                      : NULL;
    for (; v != 0 && u && u->name; u++)
        if (v % u->scale == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / u->scale, u->name);
            return;
        }
    snprintf(buf, len, "%" PRIu64 "%s", v, type == T_DURATION && v ? "ms" : "");
}

static int set_number(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    static const char *const what[] = {
        [T_SIZE] = "a size (use e.g. 65536, 64KiB, 16MiB)",
        [T_MEM] = "a size (use e.g. 65536, 64KiB, 16MiB) or auto",
        [T_DURATION] = "a duration (use e.g. 300 for seconds, or 1500ms, 30s, 5m, 1h, 1d)",
        [T_COUNT] = "a whole number",
    };
    char lo[32], hi[32];
    uint64_t x = 0;
    int rc = parse_number(e->type, v, &x);
    if (rc == NUM_JUNK) {
        snprintf(why, wl, "is not %s", what[e->type]);
        return -1;
    }
    format_number(e->type, e->min, lo, sizeof lo);
    format_number(e->type, e->max, hi, sizeof hi);
    bool bounded = e->max != UINT64_MAX && e->max != SIZE_MAX;
    if (rc == NUM_OVERFLOW || x > e->max) {
        if (bounded)
            snprintf(why, wl, "is out of range (%s to %s)", lo, hi);
        else
            snprintf(why, wl, "is too large");
        return -1;
    }
    if (x < e->min) {
        if (bounded)
            snprintf(why, wl, "is out of range (%s to %s)", lo, hi);
        else
            snprintf(why, wl, "is too small (at least %s)", lo);
        return -1;
    }
    *(uint64_t *)field_of(c, e) = x;
    return 0;
}

static bool is_id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
}

static bool valid_hostname(const char *h, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_id_char(h[i]))
            return false;
    return true;
}

/* Inside brackets: an IPv6 address, optionally with a %zone. */
static bool valid_v6(const char *h, size_t len)
{
    bool colon = false, zone = false;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        if (zone ? is_id_char(ch) : ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                                     (ch >= 'A' && ch <= 'F') || ch == '.' || ch == ':')) {
            colon |= ch == ':';
            continue;
        }
        if (ch == '%' && !zone && i + 1 < len) {
            zone = true;
            continue;
        }
        return false;
    }
    return colon;
}

int config_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *h, *hend, *p;
    bool v6 = addr[0] == '[';
    if (v6) {
        h = addr + 1;
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':')
            return -1;
        p = hend + 2;
    } else {
        h = addr;
        hend = strchr(addr, ':');
        if (!hend)
            return -1;
        p = hend + 1; /* a second ':' (bare IPv6) fails the port check */
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || (v6 ? !valid_v6(h, hl) : !valid_hostname(h, hl)))
        return -1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 5 || strspn(p, "0123456789") != pl)
        return -1;
    long pn = strtol(p, NULL, 10);
    if (pn > 65535)
        return -1;
    if (host) {
        if (hl >= hostlen)
            return -1;
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    if (port)
        *port = (int)pn;
    return 0;
}

static const char *const addr_help =
    "HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:7001 or [::1]:7001";

static int set_string(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    size_t len = strlen(v);
    if (len == 0 && !e->optional) {
        snprintf(why, wl, "must not be empty");
        return -1;
    }
    if (len >= e->size) {
        snprintf(why, wl, "is too long (at most %zu characters)", e->size - 1);
        return -1;
    }
    memcpy(field_of(c, e), v, len + 1);
    return 0;
}

static int set_id(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    size_t len = strlen(v);
    if (len > CONFIG_ID_MAX || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_.-") != len) {
        snprintf(why, wl,
                 "is not a node id (1 to %d characters of A-Z a-z 0-9 _ . -, or empty to use "
                 "the id stored in data_dir)", CONFIG_ID_MAX);
        return -1;
    }
    return set_string(c, e, v, why, wl);
}

static int set_addr(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    if (*v && (strlen(v) >= e->size || config_split_addr(v, NULL, 0, NULL) < 0)) {
        snprintf(why, wl, "is not an address (use %s%s)", addr_help,
                 e->optional ? ", or leave empty to disable" : "");
        return -1;
    }
    return set_string(c, e, v, why, wl);
}

/* Stores the list normalised ("a:1,b:2"): blanks around items and empty
 * items (a trailing comma) are dropped. */
static int set_seeds(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    char out[FIELD_SIZE(seeds)] = "";
    size_t used = 0;
    for (const char *s = v; *s;) {
        size_t n = strcspn(s, ",");
        const char *next = s[n] ? s + n + 1 : s + n;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n > 0) {
            char item[CONFIG_ADDR_MAX] = "";
            if (n < sizeof item) {
                memcpy(item, s, n);
                item[n] = '\0';
            }
            if (!*item || config_split_addr(item, NULL, 0, NULL) < 0) {
                snprintf(why, wl, "has '%.*s', which is not an address (list seeds as %s, "
                         "separated by commas)", (int)(n < VALUE_SHOWN ? n : VALUE_SHOWN), s,
                         addr_help);
                return -1;
            }
            if (used + (used > 0) + n >= sizeof out) {
                snprintf(why, wl, "is too long (at most %zu characters)", sizeof out - 1);
                return -1;
            }
            used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", used ? "," : "",
                                     item);
        }
        s = next;
    }
    return set_string(c, e, out, why, wl);
}

static int set_path(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    size_t len = strlen(v);
    /* inih keeps quotes, so "/var/lib/x" would name a directory with quotes in it. */
    if (len >= 2 && ((v[0] == '"' && v[len - 1] == '"') || (v[0] == '\'' && v[len - 1] == '\''))) {
        snprintf(why, wl, "must not be quoted (write the path as it is)");
        return -1;
    }
    return set_string(c, e, v, why, wl);
}

static int set_enum(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    if (e->type == T_LOG_LEVEL) {
        log_level level;
        if (log_level_parse(v, &level) < 0) {
            snprintf(why, wl, "is not a log level (use debug, info, warn or error)");
            return -1;
        }
        *(log_level *)field_of(c, e) = level;
        return 0;
    }
    for (size_t i = 0; i < sizeof fsync_names / sizeof fsync_names[0]; i++)
        if (strcmp(v, fsync_names[i]) == 0) {
            *(store_fsync *)field_of(c, e) = (store_fsync)i;
            return 0;
        }
    snprintf(why, wl, "is not an fsync policy (use always, everysec or no)");
    return -1;
}

static int set_bool(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
            *(uint64_t *)field_of(c, e) = strcmp(v, yes[i]) == 0;
            return 0;
        }
    snprintf(why, wl, "is not yes or no");
    return -1;
}

static int apply(config *c, const entry *e, const char *v, char *why, size_t wl)
{
    switch (e->type) {
    case T_BOOL: return set_bool(c, e, v, why, wl);
    case T_ID: return set_id(c, e, v, why, wl);
    case T_ADDR: return set_addr(c, e, v, why, wl);
    case T_SEEDS: return set_seeds(c, e, v, why, wl);
    case T_PATH: return set_path(c, e, v, why, wl);
    case T_FSYNC:
    case T_LOG_LEVEL: return set_enum(c, e, v, why, wl);
    case T_SIZE:
    case T_MEM:
    case T_DURATION:
    case T_COUNT: return set_number(c, e, v, why, wl);
    }
    return -1;
}

/* The current value of e in file syntax; string fields are returned in place. */
static const char *render(const config *c, const entry *e, char *buf, size_t len)
{
    const void *f = cfield_of(c, e);
    switch (e->type) {
    case T_BOOL: return *(const uint64_t *)f ? "yes" : "no";
    case T_FSYNC: return config_fsync_name(*(const store_fsync *)f);
    case T_LOG_LEVEL: return log_level_name(*(const log_level *)f);
    case T_SIZE:
    case T_MEM:
    case T_DURATION:
    case T_COUNT: format_number(e->type, *(const uint64_t *)f, buf, len); return buf;
    default: return f;
    }
}

static int set_entry(config *c, const entry *e, const char *value, char *err, size_t errlen)
{
    char why[512];
    if (apply(c, e, value, why, sizeof why) == 0)
        return 0;
    size_t len = strlen(value);
    seterr(err, errlen, "[%s] %s: '%.*s%s' %s", e->section, e->key,
           (int)(len > VALUE_SHOWN ? VALUE_SHOWN : len), value, len > VALUE_SHOWN ? "..." : "",
           why);
    return -1;
}

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    /* The table's defaults are constants that the unit tests parse, so this
     * cannot fail. */
    for (size_t i = 0; i < N_ENTRIES; i++)
        set_entry(c, &entries[i], entries[i].def, NULL, 0);
}

int config_set(config *c, const char *section, const char *key, const char *value,
               char *err, size_t errlen)
{
    char list[256];
    const entry *e = find_entry(section, key);
    if (e)
        return set_entry(c, e, value, err, errlen);
    if (!*section) {
        list_sections(list, sizeof list);
        seterr(err, errlen, "key '%s' is outside any section (put it under one of %s)", key,
               list);
    } else if (!known_section(section)) {
        list_sections(list, sizeof list);
        seterr(err, errlen, "unknown section [%s] (valid sections: %s)", section, list);
    } else {
        list_keys(section, list, sizeof list);
        seterr(err, errlen, "unknown key '%s' in section [%s] (valid keys: %s)", key, section,
               list);
    }
    return -1;
}

/* State shared by the line reader and the key handler during one load. */
typedef struct load_ctx {
    config work;        /* the file lands here; copied out only if all of it is good */
    const char *path;
    FILE *fp;
    char *line;         /* getline's buffer */
    size_t cap;
    int lineno;
    int read_errno;
    bool indented;      /* inih reads an indented line as more of the previous value */
    const entry *prev;  /* the key set by the previous line, for continuations */
    int err_line;       /* line of the first error, 0 if none */
    char err[1024];
} load_ctx;

static void load_error(load_ctx *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void load_error(load_ctx *l, const char *fmt, ...)
{
    if (l->err_line)
        return; /* the first error is the one worth reading */
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    l->err_line = l->lineno;
    snprintf(l->err, sizeof l->err, "%s:%d: %s", l->path, l->lineno, msg);
}

static bool is_comment(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i < len && (s[i] == ';' || s[i] == '#');
}

/* inih's ini_reader: hands inih one whole line per call (so its line count
 * is ours), and refuses what inih would mangle. num is inih's buffer size. */
static char *read_line(char *str, int num, void *stream)
{
    load_ctx *l = stream;
    ssize_t n = getline(&l->line, &l->cap, l->fp);
    if (n < 0) {
        if (ferror(l->fp))
            l->read_errno = errno ? errno : EIO;
        return NULL;
    }
    l->lineno++;
    size_t len = (size_t)n;
    while (len > 0 && (l->line[len - 1] == '\n' || l->line[len - 1] == '\r'))
        len--;
    l->indented = len > 0 && (l->line[0] == ' ' || l->line[0] == '\t');
    str[0] = '\0';
    if (memchr(l->line, '\0', len)) {
        load_error(l, "line contains a NUL byte (is this a text file?)");
        return str;
    }
    if (len >= (size_t)num) {
        if (!is_comment(l->line, len))
            load_error(l, "line is longer than %d characters (the most inih reads)", num - 1);
        return str;
    }
    memcpy(str, l->line, len);
    str[len] = '\0';
    return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    load_ctx *l = user;
    char joined[FIELD_SIZE(seeds) + 256];
    char msg[768];
    if (l->err_line)
        return 0; /* after an error nothing more is applied */
    const entry *e = find_entry(section, name);
    if (l->indented) {
        /* A multi-line seed list is worth having; anything else indented is
         * almost certainly a key someone indented, which inih would glue onto
         * the previous value. */
        if (!e || e != l->prev || e->type != T_SEEDS) {
            load_error(l, "unexpected indented line (only seeds may continue onto indented "
                          "lines; start each key at the beginning of a line)");
            return 0;
        }
        snprintf(joined, sizeof joined, "%s,%s", l->work.seeds, value);
        value = joined;
    }
    if (config_set(&l->work, section, name, value, msg, sizeof msg) < 0) {
        load_error(l, "%s", msg);
        return 0;
    }
    l->prev = e;
    return 1;
}

int config_load_file(config *c, const char *path, char *err, size_t errlen)
{
    load_ctx *l = calloc(1, sizeof *l);
    if (!l) {
        seterr(err, errlen, "cannot load %s: out of memory", path);
        return -1;
    }
    int ret = -1;
    struct stat st;
    l->work = *c;
    l->path = path;
    l->fp = fopen(path, "r");
    if (!l->fp) {
        seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fileno(l->fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        seterr(err, errlen, "cannot open %s: %s", path, strerror(EISDIR));
        goto done;
    }
    int rc = ini_parse_stream(read_line, l, on_key, l);
    if (l->read_errno) {
        seterr(err, errlen, "cannot read %s: %s", path, strerror(l->read_errno));
    } else if (rc > 0 && (!l->err_line || rc < l->err_line)) {
        /* Only inih saw it: a line that is neither [section] nor key = value. */
        seterr(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
               rc);
    } else if (l->err_line) {
        seterr(err, errlen, "%s", l->err);
    } else if (rc < 0) {
        seterr(err, errlen, "cannot load %s: out of memory", path);
    } else {
        *c = l->work;
        ret = 0;
    }
done:
    if (l->fp)
        fclose(l->fp);
    free(l->line);
    free(l);
    return ret;
}

/* Two listeners on the same HOST:PORT cannot both bind. */
static int check_addr_clash(const config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const char *a = cfield_of(c, &entries[i]);
        if (entries[i].type != T_ADDR || !*a)
            continue;
        for (size_t j = i + 1; j < N_ENTRIES; j++) {
            const char *b = cfield_of(c, &entries[j]);
            char ha[CONFIG_ADDR_MAX], hb[CONFIG_ADDR_MAX];
            int pa, pb;
            if (entries[j].type != T_ADDR || !*b ||
                config_split_addr(a, ha, sizeof ha, &pa) < 0 ||
                config_split_addr(b, hb, sizeof hb, &pb) < 0)
                continue;
            if (pa != 0 && pa == pb && strcmp(ha, hb) == 0) {
                seterr(err, errlen, "[node] %s and %s both use %s; give each its own port",
                       entries[i].key, entries[j].key, b);
                return -1;
            }
        }
    }
    return 0;
}

int config_validate(const config *c, char *err, size_t errlen)
{
    /* Re-check every field as if read from a file, for callers that filled
     * the struct directly. */
    config scratch;
    char buf[32];
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (set_entry(&scratch, &entries[i], render(c, &entries[i], buf, sizeof buf), err,
                      errlen) < 0)
            return -1;
    if (c->r > c->n || c->w > c->n) {
        bool r = c->r > c->n;
        seterr(err, errlen,
               "[replication] %s = %" PRIu64 " is larger than n = %" PRIu64 ": a %s cannot "
               "wait for more replicas than a key has",
               r ? "r" : "w", r ? c->r : c->w, c->n, r ? "read" : "write");
        return -1;
    }
    /* A background write and its acknowledgement may each linger. */
    if (c->linger_ms * 4 > c->request_timeout_ms) {
        seterr(err, errlen,
               "[replication] linger = %" PRIu64 "ms is over a quarter of request_timeout = "
               "%" PRIu64 "ms: a write and its acknowledgement may each linger that long",
               c->linger_ms, c->request_timeout_ms);
        return -1;
    }
    /* A client is dropped when its output passes max_output_buffer, so one
     * reply with the largest key and value (plus framing) must fit. */
    if (c->max_output_buffer < c->max_key_bytes + c->max_value_bytes + REPLY_OVERHEAD) {
        char ob[32], kb[32], vb[32];
        format_number(T_SIZE, c->max_output_buffer, ob, sizeof ob);
        format_number(T_SIZE, c->max_key_bytes, kb, sizeof kb);
        format_number(T_SIZE, c->max_value_bytes, vb, sizeof vb);
        seterr(err, errlen,
               "[limits] max_output_buffer (%s) must be at least max_key_bytes (%s) + "
               "max_value_bytes (%s) + 1KiB, or a client reading the largest value would "
               "be dropped", ob, kb, vb);
        return -1;
    }
    /* Without this, every probe would time out before its ack could come. */
    if (c->gossip.probe_timeout_ms >= c->gossip.probe_interval_ms) {
        char to[32], iv[32];
        format_number(T_DURATION, c->gossip.probe_timeout_ms, to, sizeof to);
        format_number(T_DURATION, c->gossip.probe_interval_ms, iv, sizeof iv);
        seterr(err, errlen,
               "[gossip] probe_timeout (%s) must be shorter than probe_interval (%s)", to, iv);
        return -1;
    }
    return check_addr_clash(c, err, errlen);
}

const char *config_fsync_name(store_fsync f)
{
    return (unsigned)f < sizeof fsync_names / sizeof fsync_names[0] ? fsync_names[f] : "?";
}
