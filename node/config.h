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
    char peer[CONFIG_ADDR_MAX];        /* peer TCP and gossip UDP (cluster issues) */
    char resp[CONFIG_ADDR_MAX];        /* RESP port (RESP issue) */
    char http[CONFIG_ADDR_MAX];        /* HTTP metrics port (operations issue) */
    char seeds[1024];                  /* comma-separated HOST:PORT list (membership issue) */
    char data_dir[CONFIG_PATH_MAX];
    store_fsync fsync;
    log_level log_level;
    /* [limits] */
    uint64_t max_key_bytes;
    uint64_t max_value_bytes;
    uint64_t max_clients;
    uint64_t idle_timeout_ms;          /* 0 = never */
    uint64_t max_output_buffer;        /* bytes queued to one client before it is dropped */
    /* [storage] */
    uint64_t map_size;
    uint64_t tombstone_ttl_ms;
    uint64_t sweep_interval_ms;
    /* [replication] (replication issue) */
    uint64_t n, r, w;
} config;

/* Fills in every default. */
void config_defaults(config *c);

/* Sets section.key to value after validating it. Returns 0, or -1 with a
 * message naming the key and what is allowed. */
int config_set(config *c, const char *section, const char *key,
               const char *value, char *err, size_t errlen);

/* Loads an INI file over the current values. Returns 0, or -1 with a message
 * naming the file and line of the first bad or unknown key. */
int config_load_file(config *c, const char *path, char *err, size_t errlen);

/* Checks settings against each other (e.g. r, w <= n). Returns 0 or -1. */
int config_validate(const config *c, char *err, size_t errlen);

/* Splits "HOST:PORT" (or "[v6]:PORT"). Returns 0 or -1. */
int config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

const char *config_fsync_name(store_fsync f);

/* Parsers shared with flags and tests; each returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t *out);

#endif
