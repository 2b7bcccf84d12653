/* bench: what ringkv-bench's parts share: the options (options.c), the state
 * of one run (ringkv_bench.c, the run loop) and the reports drawn from it
 * (report.c). One struct bench per run, passed explicitly; everything runs on
 * the one event-loop thread.
 */
#ifndef RINGKV_BENCH_H
#define RINGKV_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "keygen.h"
#include "ringkv.h"
#include "ringkv_async.h"

#ifndef RINGKV_VERSION
#define RINGKV_VERSION "dev"
#endif

struct event;
struct event_base;

#define BENCH_NSTATUS 16 /* room for every rkv_status */

enum { BENCH_GET, BENCH_PUT, BENCH_NOPS };
static inline const char *bench_op_name(int op)
{
    return op == BENCH_GET ? "GET" : "PUT";
}

enum bench_phase { BENCH_CONNECT, BENCH_PRELOAD, BENCH_RUN, BENCH_DRAIN, BENCH_DONE };

typedef struct bench_opts {
    char *hosts;   /* as given */
    char *addrbuf; /* a copy cut at the commas; addrs point into it */
    char *addrs[256];
    int naddrs;
    const char *workload;
    double read_ratio;
    uint64_t keys;
    int zipfian;
    size_t value_size;
    int connections;
    int pipeline;
    double duration_s; /* 0 = not given */
    uint64_t ops;      /* 0 = not given */
    const char *consistency;
    double rate; /* ops/s; 0 = closed loop */
    int preload;
    int json;
    int quiet;
    const char *plot;
    int timeout_ms;
    uint64_t seed;
} bench_opts;

struct bench;
struct bench_conn;

/* One request in flight: where its latency is counted from. Each connection
 * has exactly `pipeline` of them, so nothing is allocated per request. */
typedef struct bench_slot {
    struct bench_conn *c;
    uint64_t t0; /* intended send time, ns */
    uint8_t op;
    int next_free;
} bench_slot;

typedef struct bench_conn {
    struct bench *b;
    rkv_async *ac;
    int idx;
    const char *addr;
    int inflight;
    uint64_t sent; /* requests this connection issued in the run phase */
    int dead;
    struct event *timer; /* open loop: the next request's due time */
    bench_slot *slots;
    int free_slot;
} bench_conn;

typedef struct bench_tick {
    double t; /* seconds since the run started, at the end of the interval */
    double ops_per_sec;
    double p99_us; /* this interval's p99 */
    uint64_t errors;
} bench_tick;

typedef struct bench {
    bench_opts o;
    struct event_base *base;
    bench_conn *conns;
    struct event *stop_timer, *tick_timer;
    enum bench_phase phase;
    keygen_rng rng;
    keygen_zipf zipf;
    char *value;

    uint64_t start_ns, end_ns, last_tick_ns;
    uint64_t issued, completed; /* run phase */
    int connected, nlive;

    uint64_t preload_next, preload_done, preload_errors;
    uint64_t preload_start_ns, preload_end_ns;

    hist lat[BENCH_NOPS], all, interval;
    uint64_t ok[BENCH_NOPS], not_found, errors[BENCH_NSTATUS], interval_ops, interval_errors;
    uint64_t total_errors;
    char first_error[300];

    bench_tick *ticks;
    size_t nticks, capticks;
    int exit_code;
} bench;

/* Parses the command line into *o (defaults for what is not given). Returns
 * 0, or -1 after printing why (the caller exits 2). Exits 0 itself after
 * --help and --version. */
int options_parse(bench_opts *o, int argc, char **argv);

/* Prints the final table, or the JSON document, on stdout. */
void report_table(const bench *b);
void report_json(const bench *b);
/* Draws o.plot with gnuplot. Returns 0, or -1 after printing why. */
int report_plot(const bench *b);
/* Is gnuplot on PATH? */
int report_can_plot(void);

#endif
