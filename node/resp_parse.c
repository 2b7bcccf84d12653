/* resp_parse: the RESP request parser; the contract is in resp_parse.h.
 *
 * Written by hand because no Debian library parses the request side of RESP
 * (hiredis parses replies). The error texts are Redis 7's, so clients and
 * people see what they know. Two deliberate differences: a header line
 * (`*N`, `$N`) must end in CRLF within 32 bytes and a bulk string must be
 * followed by CRLF, where Redis takes any two bytes; both only turn a
 * desynchronised stream into an error sooner.
 */
#include "resp_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "$" or "*", up to 20 digits (with a sign), CRLF. */
#define HEADER_MAX 32
/* Past this many arguments a finished command gives its array back. */
#define KEEP_ARGS 1024

void resp_parser_init(resp_parser *p, size_t max_bulk, size_t max_args, size_t max_inline,
                      size_t max_query)
{
    memset(p, 0, sizeof *p);
    p->max_bulk = max_bulk;
    p->max_args = max_args;
    p->max_inline = max_inline;
    p->max_query = max_query;
    p->argv = p->small;
    p->cap = RESP_SMALL_ARGS;
    p->want = -1;
    p->bulk = -1;
}

void resp_parser_reset(resp_parser *p)
{
    if (p->argv != p->small && p->cap > KEEP_ARGS) {
        free(p->argv);
        p->argv = p->small;
        p->cap = RESP_SMALL_ARGS;
    }
    p->mode = 0;
    p->pos = 0;
    p->scan = 0;
    p->want = -1;
    p->bulk = -1;
    p->consumed = 0;
    p->err = NULL;
    p->argc = 0;
}

void resp_parser_free(resp_parser *p)
{
    if (p->argv != p->small)
        free(p->argv);
    p->argv = p->small;
    p->cap = RESP_SMALL_ARGS;
}

bool resp_strtoll(const uint8_t *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    if (s[0] == '-') {
        if (len == 1)
            return false;
        neg = true;
        i = 1;
    }
    if (s[i] == '0') { /* only "0" itself: no leading zeros, no "-0" */
        if (len != 1)
            return false;
        *out = 0;
        return true;
    }
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static resp_parse_result fail(resp_parser *p, const char *msg)
{
    p->err = msg;
    return RESP_PARSE_ERROR;
}

static bool push_arg(resp_parser *p, size_t off, size_t len)
{
    if (p->argc == p->cap) {
        size_t cap = p->cap * 2;
        resp_span *a;
        if (p->argv == p->small) {
            a = malloc(cap * sizeof *a);
            if (a)
                memcpy(a, p->small, sizeof p->small);
        } else {
            a = realloc(p->argv, cap * sizeof *a);
        }
        if (!a)
            return false;
        p->argv = a;
        p->cap = cap;
    }
    p->argv[p->argc++] = (resp_span){off, len};
    return true;
}

/* Reads the header line at p->pos (a type byte, a number, CRLF) into *v.
 * Returns 1 and moves p->pos past it, 0 if it has not all arrived, -1 on a
 * protocol error. */
static int read_header(resp_parser *p, const uint8_t *buf, size_t len, int64_t *v,
                       const char *toolong, const char *invalid)
{
    const uint8_t *start = buf + p->pos;
    size_t avail = len - p->pos;
    const uint8_t *cr = memchr(start, '\r', avail < HEADER_MAX ? avail : HEADER_MAX);
    if (!cr) {
        if (avail >= HEADER_MAX) {
            p->err = toolong;
            return -1;
        }
        return 0;
    }
    if (cr + 1 == buf + len)
        return 0; /* the '\n' is still to come */
    if (cr[1] != '\n' || !resp_strtoll(start + 1, (size_t)(cr - start) - 1, v)) {
        p->err = invalid;
        return -1;
    }
    p->pos += (size_t)(cr - start) + 2;
    return 1;
}

static resp_parse_result parse_multibulk(resp_parser *p, uint8_t *buf, size_t len, size_t *need)
{
    int64_t n;
    int r;

    if (p->want < 0) {
        r = read_header(p, buf, len, &n, "Protocol error: too big mbulk count string",
                        "Protocol error: invalid multibulk length");
        if (r < 0)
            return RESP_PARSE_ERROR;
        if (r == 0) {
            *need = len + 1;
            return RESP_PARSE_INCOMPLETE;
        }
        if (n > (int64_t)p->max_args)
            return fail(p, "Protocol error: invalid multibulk length");
        if (n <= 0) { /* Redis ignores "*0" and "*-1" */
            p->consumed = p->pos;
            return RESP_PARSE_OK;
        }
        p->want = n;
    }
    while ((int64_t)p->argc < p->want) {
        if (p->bulk < 0) {
            if (p->pos == len) {
                *need = len + 1;
                return RESP_PARSE_INCOMPLETE;
            }
            uint8_t c = buf[p->pos];
            if (c != '$') {
                if (c >= 0x20 && c < 0x7f)
                    snprintf(p->errbuf, sizeof p->errbuf,
                             "Protocol error: expected '$', got '%c'", c);
                else
                    snprintf(p->errbuf, sizeof p->errbuf,
                             "Protocol error: expected '$', got byte 0x%02x", c);
                return fail(p, p->errbuf);
            }
            r = read_header(p, buf, len, &n, "Protocol error: too big bulk count string",
                            "Protocol error: invalid bulk length");
            if (r < 0)
                return RESP_PARSE_ERROR;
            if (r == 0) {
                *need = len + 1;
                return RESP_PARSE_INCOMPLETE;
            }
            if (n < 0 || (uint64_t)n > p->max_bulk)
                return fail(p, "Protocol error: invalid bulk length");
            if (p->pos + (size_t)n + 2 > p->max_query) {
                snprintf(p->errbuf, sizeof p->errbuf,
                         "Protocol error: command is larger than %zu bytes", p->max_query);
                return fail(p, p->errbuf);
            }
            p->bulk = n;
        }
        size_t end = p->pos + (size_t)p->bulk + 2;
        if (len < end) {
            *need = end;
            return RESP_PARSE_INCOMPLETE;
        }
        if (buf[end - 2] != '\r' || buf[end - 1] != '\n')
            return fail(p, "Protocol error: bulk string not followed by CRLF");
        if (!push_arg(p, p->pos, (size_t)p->bulk))
            return RESP_PARSE_NOMEM;
        p->pos = end;
        p->bulk = -1;
    }
    p->consumed = p->pos;
    return RESP_PARSE_OK;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Splits an inline line into arguments as Redis' sdssplitargs does:
 * blanks separate, "..." takes \n \r \t \b \a \xHH and \<any> escapes,
 * '...' takes \', and a closing quote must be followed by a blank or the
 * end. Unescaping is done in place: the write position w never passes the
 * read position r. A NUL ends the line, as it ends Redis' C string. */
static resp_parse_result split_inline(resp_parser *p, uint8_t *buf, size_t n)
{
    static const char unbalanced[] = "Protocol error: unbalanced quotes in request";
    const uint8_t *nul = memchr(buf, 0, n);
    size_t r = 0;

    if (nul)
        n = (size_t)(nul - buf);
    for (;;) {
        while (r < n && is_space(buf[r]))
            r++;
        if (r == n)
            return RESP_PARSE_OK;
        size_t start = r, w = r;
        bool inq = false, insq = false;
        for (;;) {
            if (inq) {
                if (r == n)
                    return fail(p, unbalanced);
                if (buf[r] == '\\' && r + 3 < n && buf[r + 1] == 'x' && hex_val(buf[r + 2]) >= 0 &&
                    hex_val(buf[r + 3]) >= 0) {
                    buf[w++] = (uint8_t)(hex_val(buf[r + 2]) * 16 + hex_val(buf[r + 3]));
                    r += 4;
                } else if (buf[r] == '\\' && r + 1 < n) {
                    uint8_t c = buf[r + 1];
                    buf[w++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t'
                             : c == 'b' ? '\b' : c == 'a' ? '\a' : c;
                    r += 2;
                } else if (buf[r] == '"') {
                    if (r + 1 < n && !is_space(buf[r + 1]))
                        return fail(p, unbalanced);
                    r++;
                    break;
                } else {
                    buf[w++] = buf[r++];
                }
            } else if (insq) {
                if (r == n)
                    return fail(p, unbalanced);
                if (buf[r] == '\\' && r + 1 < n && buf[r + 1] == '\'') {
                    buf[w++] = '\'';
                    r += 2;
                } else if (buf[r] == '\'') {
                    if (r + 1 < n && !is_space(buf[r + 1]))
                        return fail(p, unbalanced);
                    r++;
                    break;
                } else {
                    buf[w++] = buf[r++];
                }
            } else {
                if (r == n)
                    break;
                uint8_t c = buf[r];
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                    break;
                if (c == '"')
                    inq = true;
                else if (c == '\'')
                    insq = true;
                else
                    buf[w++] = c;
                r++;
            }
        }
        if (!push_arg(p, start, w - start))
            return RESP_PARSE_NOMEM;
    }
}

static resp_parse_result parse_inline(resp_parser *p, uint8_t *buf, size_t len, size_t *need)
{
    size_t lim = len < p->max_inline + 2 ? len : p->max_inline + 2; /* the line and CRLF */
    const uint8_t *nl = p->scan < lim ? memchr(buf + p->scan, '\n', lim - p->scan) : NULL;
    if (!nl) {
        if (len >= p->max_inline + 2)
            return fail(p, "Protocol error: too big inline request");
        p->scan = len;
        *need = len + 1;
        return RESP_PARSE_INCOMPLETE;
    }
    size_t linelen = (size_t)(nl - buf);
    p->consumed = linelen + 1;
    if (linelen > 0 && buf[linelen - 1] == '\r')
        linelen--;
    if (linelen > p->max_inline)
        return fail(p, "Protocol error: too big inline request");
    return split_inline(p, buf, linelen);
}

resp_parse_result resp_parse(resp_parser *p, uint8_t *buf, size_t len, size_t *need)
{
    if (p->mode == 0) {
        if (len == 0) {
            *need = 1;
            return RESP_PARSE_INCOMPLETE;
        }
        p->mode = buf[0] == '*' ? '*' : 'i';
    }
    if (p->mode == '*')
        return parse_multibulk(p, buf, len, need);
    return parse_inline(p, buf, len, need);
}

/* "<c><digits>\r\n" at p as resp_strtoll reads a header's number (no
 * leading zero, no sign), at most 9 digits, into *v; the bytes it took, or
 * 0 when it is not that. */
static inline size_t scan_header(const uint8_t *p, size_t n, uint8_t c, size_t *v)
{
    size_t i = 1, x = 0;
    if (n < 4 || p[0] != c)
        return 0;
    if (p[1] == '0') {
        i = 2;
    } else {
        for (; i < n && i < 10 && (unsigned)(p[i] - '0') <= 9; i++)
            x = x * 10 + (size_t)(p[i] - '0');
    }
    if (i == 1 || i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n')
        return 0;
    *v = x;
    return i + 2;
}

bool resp_scan(const resp_parser *p, const uint8_t *buf, size_t len, resp_cmd *cmd)
{
    size_t argc, off, h;
    if (!(off = scan_header(buf, len, '*', &argc)) || argc == 0 || argc > RESP_SMALL_ARGS ||
        argc > p->max_args)
        return false;
    for (size_t i = 0; i < argc; i++) {
        size_t blen;
        if (!(h = scan_header(buf + off, len - off, '$', &blen)) || blen > p->max_bulk)
            return false;
        off += h;
        /* resp_parse's bound: the bulk and its CRLF within max_query */
        if (blen > len - off || len - off - blen < 2 || off + blen + 2 > p->max_query ||
            buf[off + blen] != '\r' || buf[off + blen + 1] != '\n')
            return false;
        cmd->argv[i] = (resp_span){off, blen};
        off += blen + 2;
    }
    cmd->argc = argc;
    cmd->len = off;
    return true;
}

void resp_parser_take(resp_parser *p, const resp_cmd *cmd)
{
    memcpy(p->argv, cmd->argv, cmd->argc * sizeof *cmd->argv); /* cap >= RESP_SMALL_ARGS */
    p->argc = cmd->argc;
    p->mode = '*';
    p->pos = p->consumed = cmd->len;
}
