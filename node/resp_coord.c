/* resp_coord: RESP's data commands through the coordinator (coord.c).
 *
 * A command reserves one reply slot and becomes a job of one coordinated
 * read or write per key; the reply is built when the last one completes,
 * so RESP keeps its in-order replies while replicas answer. Commands that
 * depend on what is stored (SET NX/XX/KEEPTTL, DEL's count) chain a
 * coordinated read before their write, key by key. Arguments are copied
 * into the job: they live in the input buffer only while the command runs.
 * A GET that needs only this node's copy (coord_get_now) skips all that and
 * replies at once.
 */
#include "resp_coord.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "dispatch.h"

typedef struct job job;

typedef struct job_key {
    job *j;
    const uint8_t *key, *vp; /* the key, SET/MSET's value: in j->blob, or in
                              * the input buffer while the command runs */
    size_t len, vlen;
    bool found;        /* read: found */
    uint8_t *val;      /* MGET: the value copied, or NULL */
    size_t val_len;
} job_key;

struct job {
    server *s;
    conn_slot *sl;
    resp_coord_kind kind;
    size_t nkeys, left;
    int64_t count;
    bool failed;
    uint64_t ttl_ms;   /* SET */
    bool nx, xx, keepttl, del_instead;
    uint8_t *blob;
    char err[300];     /* last but the keys: job_new leaves it unzeroed */
    job_key keys[];
};

/* Single-key jobs (nearly every command) are reused. A pipelined burst
 * keeps hundreds in flight, more than glibc's per-size cache holds, and
 * calloc and free of the job were ~5% of a node under pipelined SETs.
 * Event-loop thread only, as the whole node. */
#define JOB_POOL_MAX 1024
static job *job_pool[JOB_POOL_MAX];
static size_t job_pooled;

static void job_free(job *j)
{
    for (size_t i = 0; i < j->nkeys; i++)
        free(j->keys[i].val);
    free(j->blob);
    if (j->nkeys == 1 && job_pooled < JOB_POOL_MAX)
        job_pool[job_pooled++] = j;
    else
        free(j);
}

/* "UNAVAILABLE ...", "TIMEOUT ...", "ERR ..." (an error reply's text) */
static void format_error(char *out, size_t cap, const coord_result *res)
{
    const char *code = res->status == WIRE_ERR_UNAVAILABLE ? "UNAVAILABLE"
                     : res->status == WIRE_ERR_TIMEOUT     ? "TIMEOUT"
                                                           : "ERR";
    snprintf(out, cap, "%s %s", code, res->msg ? res->msg : wire_status_name(res->status));
}

static void note_error(job *j, const coord_result *res)
{
    if (j->failed)
        return;
    j->failed = true;
    format_error(j->err, sizeof j->err, res);
}

/* GET's reply from a read that found (OK), did not find, or failed. */
static void reply_get(resp_ctx *x, const coord_result *res)
{
    if (res->status == WIRE_OK) { /* value is NULL for an empty value */
        resp_reply_bulk(x, res->value ? res->value : (const uint8_t *)"", res->vlen);
    } else if (res->status == WIRE_NOT_FOUND) {
        resp_reply_nil(x);
    } else {
        char err[300];
        format_error(err, sizeof err, res);
        resp_reply_error(x, "%s", err);
    }
}

/* The reply, once every key is done; a single GET passes the value it read
 * (valid only during its callback), so it is not copied first. */
static void finish(job *j, const coord_result *get)
{
    conn *c = conn_slot_resume(j->sl);
    if (c) {
        resp_ctx x = {.s = j->s, .c = c, .rc = c->proto_data};
        if (j->failed) {
            resp_reply_error(&x, "%s", j->err);
        } else {
            switch (j->kind) {
            case RESP_COORD_GET:
                if (j->keys[0].found) /* value is NULL for an empty value */
                    resp_reply_bulk(&x, get && get->value ? get->value : (const uint8_t *)"",
                                    get ? get->vlen : 0);
                else
                    resp_reply_nil(&x);
                break;
            case RESP_COORD_MGET: {
                size_t begin = conn_reply_begin(c);
                resp_add_array(&x, j->nkeys);
                for (size_t i = 0; i < j->nkeys; i++) {
                    if (j->keys[i].found)
                        resp_add_bulk(&x, j->keys[i].val, j->keys[i].val_len);
                    else
                        resp_add_nil(&x);
                }
                conn_reply_end(c, 0, begin);
                break;
            }
            case RESP_COORD_SET:
                if (j->count < 0)
                    resp_reply_nil(&x); /* NX/XX said no */
                else
                    resp_reply_ok(&x);
                break;
            case RESP_COORD_MSET:
                resp_reply_ok(&x);
                break;
            case RESP_COORD_DEL:
            case RESP_COORD_EXISTS:
                resp_reply_int(&x, j->count);
                break;
            }
        }
    }
    job_free(j);
}

static void job_done_one(job *j)
{
    if (--j->left == 0)
        finish(j, NULL);
}

static void on_write(void *arg, const coord_result *res)
{
    job_key *k = arg;
    if (res->status != WIRE_OK)
        note_error(k->j, res);
    job_done_one(k->j);
}

static void start_write(job_key *k, bool del)
{
    job *j = k->j;
    coord *co = dispatch_coord(j->s);
    if (!co || coord_write(co, del, k->key, k->len, k->vp, k->vlen, j->ttl_ms, -1, on_write,
                           k) != 0) {
        coord_result r = {.status = WIRE_ERR_INTERNAL, .msg = "out of memory"};
        note_error(j, &r);
        job_done_one(j);
    }
}

static void on_read(void *arg, const coord_result *res)
{
    job_key *k = arg;
    job *j = k->j;
    if (res->status != WIRE_OK && res->status != WIRE_NOT_FOUND) {
        note_error(j, res);
        if (j->kind == RESP_COORD_DEL || j->kind == RESP_COORD_SET)
            j->left--; /* its write will not be sent */
        job_done_one(j);
        return;
    }
    k->found = res->status == WIRE_OK;
    if (j->kind == RESP_COORD_GET) { /* one key, no hold: this is the last step */
        j->left--;
        finish(j, res);
        return;
    }
    if (k->found && j->kind == RESP_COORD_MGET && res->vlen) {
        k->val = malloc(res->vlen);
        if (!k->val) {
            coord_result r = {.status = WIRE_ERR_INTERNAL, .msg = "out of memory"};
            note_error(j, &r);
        } else {
            memcpy(k->val, res->value, res->vlen);
            k->val_len = res->vlen;
        }
    }
    switch (j->kind) {
    case RESP_COORD_EXISTS:
        j->count += k->found;
        break;
    case RESP_COORD_DEL:
        j->count += k->found;
        start_write(k, true); /* a tombstone either way: it also beats older copies */
        break;
    case RESP_COORD_SET:
        if ((j->nx && k->found) || (j->xx && !k->found)) {
            j->count = -1;
            j->left--; /* no write */
        } else {
            if (j->keepttl && k->found && res->expires_ms) {
                uint64_t now = server_now_ms(j->s);
                j->ttl_ms = res->expires_ms > now ? res->expires_ms - now : 1;
            }
            start_write(k, j->del_instead);
        }
        break;
    default:
        break;
    }
    job_done_one(j);
}

/* A job for nkeys keys (and values, step 2) from argument first on. With
 * copy, keys and values are copied into the job; else they stay in the
 * input buffer, which is right when every coordinated call is made before
 * the command returns (the coordinator copies what it keeps). */
static job *job_new(resp_ctx *x, resp_coord_kind kind, size_t nkeys, size_t first, size_t step,
                    bool copy)
{
    size_t bytes = 0;
    for (size_t i = 0; copy && i < nkeys; i++) {
        bytes += resp_arglen(x, first + i * step);
        if (step == 2)
            bytes += resp_arglen(x, first + i * step + 1);
    }
    job *j = nkeys == 1 && job_pooled ? job_pool[--job_pooled]
                                      : malloc(sizeof *j + nkeys * sizeof j->keys[0]);
    if (!j)
        return NULL;
    memset(j, 0, offsetof(job, err));
    j->err[0] = '\0';
    memset(j->keys, 0, nkeys * sizeof j->keys[0]);
    if (copy && !(j->blob = malloc(bytes ? bytes : 1))) {
        free(j);
        return NULL;
    }
    j->s = x->s;
    j->kind = kind;
    j->nkeys = nkeys;
    size_t off = 0;
    for (size_t i = 0; i < nkeys; i++) {
        job_key *k = &j->keys[i];
        k->j = j;
        size_t a = first + i * step;
        k->len = resp_arglen(x, a);
        k->key = resp_arg(x, a);
        if (copy) {
            memcpy(j->blob + off, k->key, k->len);
            k->key = j->blob + off;
            off += k->len;
        }
        if (step == 2) {
            k->vlen = resp_arglen(x, a + 1);
            k->vp = resp_arg(x, a + 1);
            if (copy) {
                memcpy(j->blob + off, k->vp, k->vlen);
                k->vp = j->blob + off;
                off += k->vlen;
            }
        }
    }
    return j;
}

void resp_coord_run(resp_ctx *x, resp_coord_kind kind, const resp_coord_set *set)
{
    size_t nkeys, first = 1, step = 1;
    switch (kind) {
    case RESP_COORD_GET: nkeys = 1; break;
    case RESP_COORD_SET: nkeys = 1; step = 2; break;
    case RESP_COORD_MSET: nkeys = (x->argc - 1) / 2; step = 2; break;
    default: nkeys = x->argc - 1; break;
    }
    bool chained = kind == RESP_COORD_DEL || (set && (set->nx || set->xx || set->keepttl));
    coord *co = dispatch_coord(x->s);
    if (co && kind == RESP_COORD_GET) {
        /* A read of this node's own copy is answered now, in place: no job,
         * no reply slot (an immediate reply still waits behind earlier
         * ones in the connection's FIFO). */
        coord_result res;
        const uint8_t *key = resp_arg(x, 1);
        size_t klen = resp_arglen(x, 1);
        if (klen == 0) { /* an empty key cannot exist */
            resp_reply_nil(x);
            return;
        }
        if (coord_get_now(co, key, klen, -1, &res)) {
            reply_get(x, &res);
            return;
        }
    }
    job *j = co ? job_new(x, kind, nkeys, first, step, chained) : NULL;
    conn_slot *sl = j ? conn_slot_reserve(x->c, 0) : NULL;
    if (!sl) {
        if (j)
            job_free(j);
        resp_reply_error(x, "ERR out of memory");
        return;
    }
    j->sl = sl;
    if (set) {
        j->ttl_ms = set->ttl_ms;
        j->nx = set->nx;
        j->xx = set->xx;
        j->keepttl = set->keepttl;
        j->del_instead = set->del_instead;
    }
    bool reads = kind == RESP_COORD_GET || kind == RESP_COORD_MGET || kind == RESP_COORD_EXISTS;
    if (kind == RESP_COORD_GET) {
        /* One read and no hold: its callback replies, straight from the
         * value it is handed, and j is gone once coord_get returns. */
        j->left = 1;
        if (j->keys[0].len == 0) {
            finish(j, NULL);
        } else if (coord_get(co, j->keys[0].key, j->keys[0].len, -1, on_read, &j->keys[0]) != 0) {
            coord_result r = {.status = WIRE_ERR_INTERNAL, .msg = "out of memory"};
            note_error(j, &r);
            finish(j, NULL);
        }
        return;
    }
    /* one completion per key and step, plus this loop's own hold */
    j->left = nkeys * (chained ? 2 : 1) + 1;
    for (size_t i = 0; i < nkeys; i++) {
        job_key *k = &j->keys[i];
        if (k->len == 0) { /* an empty key cannot exist (and cannot be written) */
            j->left -= chained ? 2 : 1;
            continue;
        }
        if (reads || chained) {
            if (coord_get(co, k->key, k->len, -1, on_read, k) != 0) {
                coord_result r = {.status = WIRE_ERR_INTERNAL, .msg = "out of memory"};
                note_error(j, &r);
                j->left -= chained ? 2 : 1;
            }
        } else {
            start_write(k, kind == RESP_COORD_SET && j->del_instead);
        }
    }
    job_done_one(j);
}
