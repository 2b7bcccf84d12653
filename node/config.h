/* config: ringkvd's settings, from defaults, an INI file (inih) and flags.
 *
 * Every setting has one validator, config_set(), used for file keys and
 * command-line flags alike, so a bad value gets the same message either way.
 * Sizes accept suffixes (64KiB, 16MiB, 1GiB or k/m/g); durations accept ms, s,
 * m, h (a plain number is seconds).
 */
#ifndef RINGKV_CONFIG_H
#define RINGKV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "store.h"

#define CONFIG_ID_MAX 64
#define CONFIG_ADDR_MAX 256
#define CONFIG_PATH_MAX 4096

typedef struct config {
    /* [node] */
    char id[CONFIG_ID_MAX + 1];        /* empty: use the one in data_dir, else generate */
    char listen[CONFIG_ADDR_MAX];      /* client protocol, HOST:PORT */
    char peer[CONFIG_ADDR_MAX];        /* peer TCP and gossip UDP; empty: no membership */
    char resp[CONFIG_ADDR_MAX];        /* RESP port (RESP issue) */
    char http[CONFIG_ADDR_MAX];        /* HTTP metrics port (operations issue) */
    char seeds[1024];                  /* comma-separated peer addresses to join through */
    char data_dir[CONFIG_PATH_MAX];
    store_fsync fsync;
    log_level log_level;
    uint64_t vnodes;                   /* ring tokens this node owns (ring issue) */
    /* [limits] */
    uint64_t max_key_bytes;
    uint64_t max_value_bytes;
    uint64_t max_clients;
    uint64_t idle_timeout_ms;          /* 0 = never */
    uint64_t max_output_buffer;        /* bytes queued to one client before it is dropped */
    /* [storage] */
    uint64_t map_size;
    uint64_t cache_size;               /* row cache in front of LMDB; 0 = off */
    uint64_t log_size;                 /* write-behind log size to keep near */
    uint64_t checkpoints;              /* 1: LMDB checkpoints under fsync everysec */
    uint64_t tombstone_ttl_ms;
    uint64_t sweep_interval_ms;
    /* [replication] (replication issue) */
    uint64_t n, r, w;
    uint64_t request_timeout_ms;       /* coordinator: replicas' answers wait this long */
    uint64_t read_retry_ms;            /* an undecided read asks one more replica; 0 = all */
    uint64_t linger_ms;                /* background replication frames wait this long; 0 = not */
    /* [rebalance]: streaming ranges (node/stream.c), anti-entropy (node/antientropy.c) */
    uint64_t bootstrap;                /* 1: a new node streams its ranges before serving them */
    uint64_t stream_rate;              /* bytes/s a node pulls or pushes; 0 = unlimited */
    uint64_t stream_chunk;             /* bytes per chunk */
    uint64_t purge_grace_ms;           /* keep ranges given away this long before dropping */
    uint64_t anti_entropy_interval_ms; /* between exchanges of a range; 0 = off */
    uint64_t anti_entropy_rate;        /* bytes/s of anti-entropy traffic; 0 = unlimited */
    /* [gossip]: gossip_config's fields (node/gossip.h says what each does) */
    struct {
        uint64_t probe_interval_ms, probe_timeout_ms, indirect_checks;
        uint64_t suspicion_mult, suspicion_max_mult, retransmit_mult;
        uint64_t interval_ms, nodes, pushpull_interval_ms;
        uint64_t awareness_max, max_packet;
    } gossip;
} config;

/* cache_size = auto (the default): an eighth of the machine's memory, or of
 * its cgroup's limit when lower, rounded down to MiB and at least
 * CONFIG_AUTO_CACHE_MIN. */
#define CONFIG_AUTO_CACHE_MIN (UINT64_C(256) << 20)
uint64_t config_auto_cache_size(void);

/* Fills in every default (the table in config.c; configs/REFERENCE.md lists
 * them). */
void config_defaults(config *c);

/* Sets section.key to value after validating it. Section and key names are
 * lowercase, as in the file. Returns 0, or -1 with c unchanged and a message
 * naming the key, the value and what is allowed (for an unknown key, the
 * valid keys of the section). */
int config_set(config *c, const char *section, const char *key,
               const char *value, char *err, size_t errlen);

/* Loads an INI file over the current values; keys the file does not name keep
 * theirs, and a key given twice takes its last value. All or nothing: on
 * error c is unchanged. Comments start a line with ';' or '#', or follow a
 * value after " ;". Lines are at most 199 characters (inih's buffer); only
 * seeds may continue onto indented lines. Returns 0, or -1 with
 * "FILE:LINE: message" for the first bad line, or "cannot open FILE: why". */
int config_load_file(config *c, const char *path, char *err, size_t errlen);

/* Checks every field as config_set would (for callers that fill the struct
 * directly), then settings against each other: r, w <= n; listen and data_dir
 * set; max_output_buffer >= max_key_bytes + max_value_bytes + 1KiB; no two
 * listeners on one HOST:PORT; gossip probe_timeout < probe_interval. Returns
 * 0, or -1 with a message. */
int config_validate(const config *c, char *err, size_t errlen);

/* Splits "HOST:PORT" (or "[v6]:PORT") into host (without brackets, ready for
 * getaddrinfo) and port 0..65535. host and port may be NULL to only check
 * addr. Returns 0, or -1 if addr is malformed or the host does not fit. */
int config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

/* "always", "everysec" or "no" (static strings); "?" for anything else. */
const char *config_fsync_name(store_fsync f);

/* Parsers shared with flags and tests; each returns 0, or -1 for an empty,
 * negative, malformed or overflowing value. A size is bytes with an optional
 * binary suffix (k/KB/KiB, m/MB/MiB, g/GB/GiB, t/TB/TiB, any case). A
 * duration is seconds, or a number with ms, s, m, h or d; the result is ms. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t *out);

#endif
