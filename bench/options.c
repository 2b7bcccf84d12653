/* options: ringkv-bench's command line: defaults, YCSB workload presets,
 * and a message naming the option and what it accepts for anything wrong.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringkv-bench [options]\n"
            "Load generator for ringkv nodes (native protocol, libringkv async API).\n\n"
            "  -h, --hosts HOST:PORT[,...]  nodes; connections are spread over them\n"
            "                              (default 127.0.0.1:7001)\n"
            "  --workload a|b|c|custom     YCSB A: 50%% reads/50%% updates, B: 95/5, C: 100/0;\n"
            "                              custom takes --read-ratio (default a)\n"
            "  --read-ratio R              fraction of GETs, 0..1 (implies custom)\n"
            "  --keys N                    key space size (default 100000)\n"
            "  --dist uniform|zipfian      key choice; zipfian is YCSB's scrambled zipfian,\n"
            "                              constant 0.99 (default uniform)\n"
            "  --value-size BYTES          PUT value size (default 100)\n"
            "  -c, --connections C         connections (default 50)\n"
            "  -P, --pipeline P            requests in flight per connection (default 1)\n"
            "  --duration S                run for S seconds (default 10 unless --ops)\n"
            "  -n, --ops N                 run N requests (with --duration: whichever ends first)\n"
            "  --rate OPS                  open loop: send at this fixed total rate; latency\n"
            "                              counts from each request's intended send time\n"
            "                              (default: closed loop)\n"
            "  --consistency one|quorum|all|default\n"
            "                              replicas each read and write waits for (default:\n"
            "                              the node's [replication] r and w)\n"
            "  --preload                   PUT every key once before the run\n"
            "  --timeout MS                per-request timeout (default 10000)\n"
            "  --seed N                    random seed (default 1)\n"
            "  --json                      machine-readable result on stdout\n"
            "  --plot FILE.png             throughput and p99 over time and the latency\n"
            "                              distribution, drawn with gnuplot\n"
            "  -q, --quiet                 no progress lines on stderr\n"
            "  --help, --version\n\n"
            "Exit status: 0 after a run with answered requests; 1 when none was answered,\n"
            "a node could not be reached, or every connection was lost; 2 on a bad option.\n");
}

static int bad(const char *opt, const char *val, const char *want)
{
    fprintf(stderr, "ringkv-bench: %s '%s': expected %s\n", opt, val, want);
    return -1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !*s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int options_parse(bench_opts *o, int argc, char **argv)
{
    enum {
        O_WORKLOAD = 256,
        O_RATIO,
        O_KEYS,
        O_DIST,
        O_VSIZE,
        O_DURATION,
        O_RATE,
        O_CONS,
        O_PRELOAD,
        O_TIMEOUT,
        O_SEED,
        O_JSON,
        O_PLOT,
        O_HELP,
        O_VERSION
    };
    static const struct option longopts[] = {{"hosts", required_argument, 0, 'h'},
                                             {"workload", required_argument, 0, O_WORKLOAD},
                                             {"read-ratio", required_argument, 0, O_RATIO},
                                             {"keys", required_argument, 0, O_KEYS},
                                             {"dist", required_argument, 0, O_DIST},
                                             {"value-size", required_argument, 0, O_VSIZE},
                                             {"connections", required_argument, 0, 'c'},
                                             {"pipeline", required_argument, 0, 'P'},
                                             {"duration", required_argument, 0, O_DURATION},
                                             {"ops", required_argument, 0, 'n'},
                                             {"rate", required_argument, 0, O_RATE},
                                             {"consistency", required_argument, 0, O_CONS},
                                             {"preload", no_argument, 0, O_PRELOAD},
                                             {"timeout", required_argument, 0, O_TIMEOUT},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"json", no_argument, 0, O_JSON},
                                             {"plot", required_argument, 0, O_PLOT},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, O_HELP},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    *o = (bench_opts){.workload = "a",
                      .read_ratio = 0.5,
                      .keys = 100000,
                      .value_size = 100,
                      .connections = 50,
                      .pipeline = 1,
                      .consistency = "default",
                      .timeout_ms = 10000,
                      .seed = 1};
    const char *hosts = "127.0.0.1:7001";
    int ratio_given = 0;
    uint64_t u;
    double d;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h:c:P:n:q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            hosts = optarg;
            break;
        case O_WORKLOAD:
            if (strcmp(optarg, "a") && strcmp(optarg, "b") && strcmp(optarg, "c") &&
                strcmp(optarg, "custom"))
                return bad("--workload", optarg, "a, b, c or custom");
            o->workload = optarg;
            break;
        case O_RATIO:
            if (parse_double(optarg, &d) < 0 || d < 0 || d > 1)
                return bad("--read-ratio", optarg, "a number from 0 to 1");
            o->read_ratio = d;
            ratio_given = 1;
            break;
        case O_KEYS:
            if (parse_u64(optarg, &u) < 0 || u == 0 || u > INT64_MAX)
                return bad("--keys", optarg, "a positive whole number");
            o->keys = u;
            break;
        case O_DIST:
            if (strcmp(optarg, "uniform") && strcmp(optarg, "zipfian"))
                return bad("--dist", optarg, "uniform or zipfian");
            o->zipfian = !strcmp(optarg, "zipfian");
            break;
        case O_VSIZE:
            if (parse_u64(optarg, &u) < 0 || u > ((uint64_t)512 << 20))
                return bad("--value-size", optarg, "bytes, 0 to 536870912");
            o->value_size = (size_t)u;
            break;
        case 'c':
            if (parse_u64(optarg, &u) < 0 || u < 1 || u > 100000)
                return bad("--connections", optarg, "1 to 100000");
            o->connections = (int)u;
            break;
        case 'P':
            if (parse_u64(optarg, &u) < 0 || u < 1 || u > 100000)
                return bad("--pipeline", optarg, "1 to 100000");
            o->pipeline = (int)u;
            break;
        case O_DURATION:
            if (parse_double(optarg, &d) < 0 || d <= 0 || d > 1e7)
                return bad("--duration", optarg, "seconds, more than 0");
            o->duration_s = d;
            break;
        case 'n':
            if (parse_u64(optarg, &u) < 0 || u == 0)
                return bad("--ops", optarg, "a positive whole number");
            o->ops = u;
            break;
        case O_RATE:
            if (parse_double(optarg, &d) < 0 || d <= 0)
                return bad("--rate", optarg, "ops per second, more than 0");
            o->rate = d;
            break;
        case O_CONS:
            if (strcmp(optarg, "one") && strcmp(optarg, "quorum") && strcmp(optarg, "all") &&
                strcmp(optarg, "default"))
                return bad("--consistency", optarg, "one, quorum, all or default");
            o->consistency = optarg;
            break;
        case O_PRELOAD:
            o->preload = 1;
            break;
        case O_TIMEOUT:
            if (parse_u64(optarg, &u) < 0 || u < 1 || u > 3600000)
                return bad("--timeout", optarg, "milliseconds, 1 to 3600000");
            o->timeout_ms = (int)u;
            break;
        case O_SEED:
            if (parse_u64(optarg, &u) < 0)
                return bad("--seed", optarg, "a whole number");
            o->seed = u;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_PLOT:
            o->plot = optarg;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        case O_VERSION:
            printf("ringkv-bench %s\n", RINGKV_VERSION);
            exit(0);
        case ':':
            fprintf(stderr, "ringkv-bench: %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "ringkv-bench: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringkv-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (ratio_given && strcmp(o->workload, "custom") && strcmp(o->workload, "a")) {
        fprintf(stderr, "ringkv-bench: --read-ratio goes with --workload custom, not %s\n",
                o->workload);
        return -1;
    }
    if (ratio_given)
        o->workload = "custom";
    else if (!strcmp(o->workload, "b"))
        o->read_ratio = 0.95;
    else if (!strcmp(o->workload, "c"))
        o->read_ratio = 1.0;
    if (!o->duration_s && !o->ops)
        o->duration_s = 10;

    o->hosts = strdup(hosts);
    char *copy = o->addrbuf = strdup(hosts);
    if (!o->hosts || !copy)
        return bad("--hosts", hosts, "memory to hold it");
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (!*t)
            continue;
        if (o->naddrs == (int)(sizeof o->addrs / sizeof o->addrs[0]))
            return bad("--hosts", hosts, "at most 256 addresses");
        o->addrs[o->naddrs++] = t;
    }
    if (o->naddrs == 0)
        return bad("--hosts", hosts, "HOST:PORT[,HOST:PORT...]");
    if (o->plot && !report_can_plot()) {
        fprintf(stderr, "ringkv-bench: --plot needs gnuplot, which is not installed "
                        "(Debian: apt-get install gnuplot-nox)\n");
        return -1;
    }
    return 0;
}
