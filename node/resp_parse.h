/* resp_parse: the RESP (Redis protocol) request parser, pure and resumable.
 *
 * It reads one command at a time from the front of a byte buffer: a
 * multibulk array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), or an
 * inline line (`GET k\r\n`, as telnet and redis-benchmark -I send) split
 * the way Redis splits it, quotes and escapes included. Arguments are
 * offsets into the buffer, never copies. The parser never touches a socket:
 * resp.c feeds it the front of a connection's input buffer, and the fuzz
 * target and unit test feed it plain bytes.
 *
 * Resumable: when the buffer ends mid-command, resp_parse returns
 * RESP_PARSE_INCOMPLETE and how many bytes it needs; called again on the same
 * command with more bytes (the earlier ones unchanged, the buffer possibly
 * moved), it goes on where it stopped instead of starting over, so a command
 * that arrives in many pieces costs linear time.
 *
 * Every quantity a client controls is bounded by the limits given to
 * resp_parser_init: element count, bulk length, inline line length, and the
 * bytes of one command.
 */
#ifndef RINGKV_RESP_PARSE_H
#define RINGKV_RESP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_ARGS (1024 * 1024)  /* elements in one multibulk, as Redis */
#define RESP_MAX_INLINE (64 * 1024)  /* bytes in one inline line, as Redis */
#define RESP_SMALL_ARGS 8            /* arguments held without allocating */

typedef enum resp_parse_result {
    RESP_PARSE_OK = 0,     /* a whole command (argc may be 0: an empty one, skip it) */
    RESP_PARSE_INCOMPLETE, /* need more bytes; see *need */
    RESP_PARSE_ERROR,      /* a protocol error; p->err says which, as Redis words it */
    RESP_PARSE_NOMEM,      /* the argument array could not grow */
} resp_parse_result;

/* One argument: bytes [off, off + len) of the command's buffer. */
typedef struct resp_span {
    size_t off, len;
} resp_span;

typedef struct resp_parser {
    /* limits */
    size_t max_bulk;   /* longest bulk string */
    size_t max_args;   /* most elements in one multibulk */
    size_t max_inline; /* longest inline line, its line end excluded */
    size_t max_query;  /* most bytes in one command */

    /* the command being parsed; offsets count from its first byte */
    int mode;          /* 0: not started, '*': multibulk, 'i': inline */
    size_t pos;        /* bytes parsed so far */
    size_t scan;       /* inline: bytes searched for the line end so far */
    int64_t want;      /* multibulk: elements declared */
    int64_t bulk;      /* length of the bulk being read, -1 before its header */
    size_t consumed;   /* after RESP_PARSE_OK: bytes the command took */
    const char *err;   /* after RESP_PARSE_ERROR: "Protocol error: ..." */
    char errbuf[80];   /* err, when it names a byte or a number */

    size_t argc;
    resp_span *argv;   /* small, or heap memory once a command needs more */
    size_t cap;
    resp_span small[RESP_SMALL_ARGS];
} resp_parser;

/* Sets limits and an empty state. The parser must not be copied (argv may
 * point into it). */
void resp_parser_init(resp_parser *p, size_t max_bulk, size_t max_args, size_t max_inline,
                      size_t max_query);

/* Forgets the current command, to parse the next one; releases a large
 * argument array so an idle connection does not keep it. */
void resp_parser_reset(resp_parser *p);

/* Frees what the parser allocated. */
void resp_parser_free(resp_parser *p);

/* Parses the command at buf[0..len). On RESP_PARSE_OK, p->argv[0..argc)
 * hold the arguments and p->consumed the command's length; call
 * resp_parser_reset before the next command. On INCOMPLETE, *need is the
 * buffer length worth calling again with (more than len). Inline commands
 * are unescaped in place, which is why buf is writable; multibulk commands
 * are left as they are. */
resp_parse_result resp_parse(resp_parser *p, uint8_t *buf, size_t len, size_t *need);

/* Parses a whole signed decimal the way Redis' string2ll does: no blanks,
 * no '+', no leading zeros, no "-0", within int64. Returns true on success. */
bool resp_strtoll(const uint8_t *s, size_t len, int64_t *out);

/* A whole multibulk command of 1 to RESP_SMALL_ARGS elements, read in one
 * go: its arguments (offsets from its first byte) and its length. */
typedef struct resp_cmd {
    size_t argc, len;
    resp_span argv[RESP_SMALL_ARGS];
} resp_cmd;

/* The common command in one pass, without resp_parse's resumable state:
 * true, with *cmd, when buf[0..len) starts with a whole multibulk command
 * of 1 to RESP_SMALL_ARGS elements whose headers are decimals of at most 9
 * digits without leading zeros, each bulk followed by CRLF, within p's
 * limits: exactly what resp_parse would return for it (test_resp_parse and
 * fuzz_resp compare the two). False otherwise: resp_parse is to read it
 * (an incomplete command, a longer one, an inline one, an error). Reads
 * only within buf[0..len). */
bool resp_scan(const resp_parser *p, const uint8_t *buf, size_t len, resp_cmd *cmd);

/* Makes cmd the parser's command, as if resp_parse had returned
 * RESP_PARSE_OK for it; the parser must be between commands. */
void resp_parser_take(resp_parser *p, const resp_cmd *cmd);

#endif
