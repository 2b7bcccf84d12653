/* libFuzzer target for node/resp_parse.c: parses arbitrary bytes as a
 * stream of RESP commands twice, once handed whole and once growing a few
 * bytes at a time (as a socket delivers them, which exercises the resumable
 * state), and checks that both see the same commands, arguments and final
 * outcome; that every argument lies inside its command; that INCOMPLETE
 * asks for more than it got; and that errors say why in Redis' words.
 * resp_scan, the one-pass reader of the common command, must read what it
 * takes as resp_parse does. Limits are tiny so every limit is reached. Any
 * mismatch abort()s, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp_parse.h"

#define MAX_BULK 64
#define MAX_ARGS 16
#define MAX_INLINE 128
#define MAX_QUERY 512

/* What a parse saw: each command as argc, then each argument's length and
 * bytes; then the outcome and, for an error, its message. */
typedef struct trace {
    uint8_t *p;
    size_t len, cap;
} trace;

static void put(trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->p = realloc(t->p, t->cap);
        if (!t->p)
            abort();
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
}

/* Checks a finished command and appends it to the trace. */
static void record(trace *t, const resp_parser *p, const uint8_t *cmd, size_t avail)
{
    if (p->consumed == 0 || p->consumed > avail || p->consumed > MAX_QUERY ||
        p->argc > MAX_ARGS + MAX_INLINE)
        abort();
    put(t, &p->argc, sizeof p->argc);
    for (size_t i = 0; i < p->argc; i++) {
        const resp_span *a = &p->argv[i];
        if (a->off > p->consumed || a->len > p->consumed - a->off || a->len > MAX_QUERY)
            abort();
        put(t, &a->len, sizeof a->len);
        put(t, cmd + a->off, a->len);
    }
}

static void finish(trace *t, resp_parse_result r, const resp_parser *p)
{
    put(t, &r, sizeof r);
    if (r == RESP_PARSE_ERROR) {
        if (!p->err || strncmp(p->err, "Protocol error: ", 16) != 0)
            abort();
        put(t, p->err, strlen(p->err));
    }
}

/* Parses buf as a stream. step == 0: each command sees all that is left;
 * otherwise the bytes visible grow by 1..step at a time, chosen by the
 * input itself so runs are reproducible. */
static void parse_stream(uint8_t *buf, size_t size, size_t step, trace *t)
{
    resp_parser p;
    resp_parser_init(&p, MAX_BULK, MAX_ARGS, MAX_INLINE, MAX_QUERY);
    size_t off = 0, k = 0;
    resp_parse_result r;
    for (;;) {
        size_t left = size - off;
        size_t len = step ? 0 : left;
        size_t need = 0;
        for (;;) {
            if (step) {
                size_t grow = 1 + (size ? buf[k++ % size] : 0) % step;
                len = len + grow < left ? len + grow : left;
            }
            r = resp_parse(&p, buf + off, len, &need);
            if (r != RESP_PARSE_INCOMPLETE)
                break;
            if (need <= len)
                abort(); /* INCOMPLETE must ask for more than it had */
            if (len == left)
                break;
        }
        if (r == RESP_PARSE_NOMEM)
            abort(); /* the argument array stays tiny under these limits */
        if (r != RESP_PARSE_OK)
            break;
        record(t, &p, buf + off, left);
        off += p.consumed;
        resp_parser_reset(&p);
    }
    finish(t, r, &p);
    resp_parser_free(&p);
}

/* resp_scan stands in for resp_parse on the commands it takes: whatever it
 * takes, resp_parse must take the same way (length and arguments), under
 * the same limits. */
static void check_scan(const uint8_t *data, size_t size)
{
    resp_parser p;
    resp_cmd cmd;
    resp_parser_init(&p, MAX_BULK, MAX_ARGS, MAX_INLINE, MAX_QUERY);
    if (resp_scan(&p, data, size, &cmd)) {
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
            abort();
        memcpy(copy, data, size);
        size_t need;
        if (cmd.len > size || resp_parse(&p, copy, size, &need) != RESP_PARSE_OK ||
            p.consumed != cmd.len || p.argc != cmd.argc)
            abort();
        for (size_t i = 0; i < cmd.argc; i++)
            if (p.argv[i].off != cmd.argv[i].off || p.argv[i].len != cmd.argv[i].len)
                abort();
        free(copy);
    }
    resp_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_scan(data, size);
    /* Inline commands are unescaped in place: each parse gets its own copy. */
    uint8_t *whole = malloc(size + 1), *pieces = malloc(size + 1);
    if (!whole || !pieces)
        abort();
    memcpy(whole, data, size);
    memcpy(pieces, data, size);
    trace a = {0}, b = {0};
    parse_stream(whole, size, 0, &a);
    parse_stream(pieces, size, 7, &b);
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
        abort();
    free(a.p);
    free(b.p);
    free(whole);
    free(pieces);
    return 0;
}
