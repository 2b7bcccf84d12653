/* resp_coord: RESP's GET, SET, MGET, MSET, DEL and EXISTS through the
 * coordinator, answered in order through a reply slot (see resp_coord.c).
 * Event-loop thread only.
 */
#ifndef RINGKV_RESP_COORD_H
#define RINGKV_RESP_COORD_H

#include <stdbool.h>
#include <stdint.h>

#include "resp.h"

typedef enum resp_coord_kind {
    RESP_COORD_GET,    /* GET key */
    RESP_COORD_MGET,   /* MGET key... */
    RESP_COORD_SET,    /* SET key value [options parsed by resp.c] */
    RESP_COORD_MSET,   /* MSET key value... */
    RESP_COORD_DEL,    /* DEL key...: a coordinated read, then the delete */
    RESP_COORD_EXISTS, /* EXISTS key... */
} resp_coord_kind;

/* SET's parsed options. */
typedef struct resp_coord_set {
    uint64_t ttl_ms;  /* 0 = none */
    bool nx, xx, keepttl;
    bool del_instead; /* an absolute expiry already passed: delete the key */
} resp_coord_set;

/* Runs the command in x (arguments already checked; set only for SET). */
void resp_coord_run(resp_ctx *x, resp_coord_kind kind, const resp_coord_set *set);

#endif
