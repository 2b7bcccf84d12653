/* report: ringkv-bench's output once a run is over: the table, the JSON
 * document (summary keys at the top level, one per line, so shell scripts can
 * read it without jq) and the gnuplot plot of throughput and p99 over time and
 * of the latency distribution (HdrHistogram's percentile-spectrum view).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>

#include "bench.h"

static double secs(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1e9 : 0;
}

static const char *dist_name(const bench *b)
{
    return b->o.zipfian ? "zipfian" : "uniform";
}

void report_table(const bench *b)
{
    const bench_opts *o = &b->o;
    double d = secs(b->start_ns, b->end_ns);
    uint64_t total = b->ok[BENCH_GET] + b->ok[BENCH_PUT];
    printf("ringkv-bench %s: workload %s (%.0f%% reads), %" PRIu64 " keys %s, %zu-byte values\n",
           RINGKV_VERSION, o->workload, o->read_ratio * 100, o->keys, dist_name(b), o->value_size);
    printf("  %d connections x pipeline %d to %s, ", o->connections, o->pipeline, o->hosts);
    if (o->rate > 0)
        printf("open loop at %.0f ops/s (latency from the intended send time)", o->rate);
    else
        printf("closed loop");
    printf(", consistency %s\n", o->consistency);
    if (o->preload)
        printf("  preload: %" PRIu64 " keys in %.2f s, %" PRIu64 " errors\n", b->preload_done,
               secs(b->preload_start_ns, b->preload_end_ns), b->preload_errors);
    printf("  %.2f s, %" PRIu64 " ops, %.1f ops/s\n\n", d, total, d > 0 ? (double)total / d : 0);
    printf("%-4s %12s %12s %9s %9s %9s %9s %9s\n", "op", "ops", "ops/s", "p50 ms", "p90 ms",
           "p99 ms", "p99.9 ms", "max ms");
    for (int i = 0; i <= BENCH_NOPS; i++) {
        const hist *h = i < BENCH_NOPS ? &b->lat[i] : &b->all;
        uint64_t n = i < BENCH_NOPS ? b->ok[i] : total;
        if (i < BENCH_NOPS && n == 0)
            continue;
        printf("%-4s %12" PRIu64 " %12.1f %9.3f %9.3f %9.3f %9.3f %9.3f\n",
               i < BENCH_NOPS ? bench_op_name(i) : "all", n, d > 0 ? (double)n / d : 0,
               (double)hist_percentile(h, 50) / 1e6, (double)hist_percentile(h, 90) / 1e6,
               (double)hist_percentile(h, 99) / 1e6, (double)hist_percentile(h, 99.9) / 1e6,
               (double)hist_max(h) / 1e6);
    }
    if (b->not_found)
        printf("GET misses (NOT_FOUND, counted as answered): %" PRIu64 "\n", b->not_found);
    printf("errors: ");
    if (!b->total_errors)
        printf("none\n");
    for (int s = 0, first = 1; s < BENCH_NSTATUS; s++)
        if (b->errors[s]) {
            printf("%s%s %" PRIu64, first ? "" : ", ", rkv_status_name((rkv_status)s),
                   b->errors[s]);
            first = 0;
        }
    if (b->total_errors)
        printf("\n  first: %s\n", b->first_error);
}

static void json_lat(const hist *h, const char *indent)
{
    printf("%s\"p50_us\": %.3f,\n%s\"p90_us\": %.3f,\n%s\"p99_us\": %.3f,\n"
           "%s\"p999_us\": %.3f,\n%s\"max_us\": %.3f,\n%s\"mean_us\": %.3f",
           indent, (double)hist_percentile(h, 50) / 1e3, indent,
           (double)hist_percentile(h, 90) / 1e3, indent, (double)hist_percentile(h, 99) / 1e3,
           indent, (double)hist_percentile(h, 99.9) / 1e3, indent, (double)hist_max(h) / 1e3,
           indent, hist_mean(h) / 1e3);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* Pretty-printed with the summary keys at the top level, one per line, so
 * a shell script can pick them out with sed as well as jq. */
void report_json(const bench *b)
{
    const bench_opts *o = &b->o;
    double d = secs(b->start_ns, b->end_ns);
    uint64_t total = b->ok[BENCH_GET] + b->ok[BENCH_PUT];
    printf("{\n  \"version\": \"%s\",\n  \"config\": {\"hosts\": ", RINGKV_VERSION);
    json_str(o->hosts);
    printf(", \"workload\": \"%s\", \"read_ratio\": %.4f, \"keys\": %" PRIu64
           ", \"dist\": \"%s\", \"value_size\": %zu, \"connections\": %d, \"pipeline\": %d, "
           "\"duration_s\": %.3f, \"ops\": %" PRIu64 ", \"rate\": %.1f, \"consistency\": \"%s\", "
           "\"preload\": %s, \"timeout_ms\": %d, \"seed\": %" PRIu64 "},\n",
           o->workload, o->read_ratio, o->keys, dist_name(b), o->value_size, o->connections,
           o->pipeline, o->duration_s, o->ops, o->rate, o->consistency,
           o->preload ? "true" : "false", o->timeout_ms, o->seed);
    printf("  \"duration_s\": %.6f,\n  \"ops\": %" PRIu64 ",\n  \"ops_per_sec\": %.1f,\n", d, total,
           d > 0 ? (double)total / d : 0);
    json_lat(&b->all, "  ");
    printf(",\n  \"errors_total\": %" PRIu64 ",\n  \"not_found\": %" PRIu64 ",\n", b->total_errors,
           b->not_found);
    printf("  \"operations\": {");
    for (int i = 0, first = 1; i < BENCH_NOPS; i++) {
        if (!b->ok[i])
            continue;
        printf("%s\n    \"%s\": {\n      \"ops\": %" PRIu64 ",\n      \"ops_per_sec\": %.1f,\n",
               first ? "" : ",", bench_op_name(i), b->ok[i], d > 0 ? (double)b->ok[i] / d : 0);
        json_lat(&b->lat[i], "      ");
        printf("\n    }");
        first = 0;
    }
    printf("\n  },\n  \"errors\": {");
    for (int s = 0, first = 1; s < BENCH_NSTATUS; s++)
        if (b->errors[s]) {
            printf("%s\"%s\": %" PRIu64, first ? "" : ", ", rkv_status_name((rkv_status)s),
                   b->errors[s]);
            first = 0;
        }
    printf("},\n");
    if (o->preload)
        printf("  \"preload\": {\"keys\": %" PRIu64 ", \"duration_s\": %.3f, \"errors\": %" PRIu64
               "},\n",
               b->preload_done, secs(b->preload_start_ns, b->preload_end_ns), b->preload_errors);
    printf("  \"timeline\": [");
    for (size_t i = 0; i < b->nticks; i++)
        printf("%s\n    {\"t\": %.3f, \"ops_per_sec\": %.1f, \"p99_us\": %.3f, \"errors\": %" PRIu64
               "}",
               i ? "," : "", b->ticks[i].t, b->ticks[i].ops_per_sec, b->ticks[i].p99_us,
               b->ticks[i].errors);
    printf("\n  ]\n}\n");
}

/* Is there an executable `name` on PATH? */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
        if (access(buf, X_OK) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Percentile spectrum as HdrHistogram plots it: x = 1/(1-p), log scale. */
static void plot_spectrum(FILE *g, const hist *h)
{
    uint64_t n = hist_count(h);
    for (double x = 1; x <= (double)n * 2 && x <= 1e7; x *= 1.12) {
        double p = 100.0 * (1 - 1 / x);
        fprintf(g, "%.6f %.6f\n", x, (double)hist_percentile(h, p) / 1e6);
    }
    fprintf(g, "EOD\n");
}

int report_plot(const bench *b)
{
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "ringkv-bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    fprintf(g, "set terminal pngcairo size 1200,1100 noenhanced font ',10'\n");
    fprintf(g, "set output '");
    for (const char *p = b->o.plot; *p; p++)
        fprintf(g, *p == '\'' ? "''" : "%c", *p);
    fprintf(g, "'\n$T << EOD\n");
    for (size_t i = 0; i < b->nticks; i++)
        fprintf(g, "%.3f %.1f %.6f\n", b->ticks[i].t, b->ticks[i].ops_per_sec,
                b->ticks[i].p99_us / 1e3);
    fprintf(g, "EOD\n");
    int have[BENCH_NOPS];
    for (int i = 0; i < BENCH_NOPS; i++) {
        have[i] = hist_count(&b->lat[i]) > 0;
        if (have[i]) {
            fprintf(g, "$%s << EOD\n", bench_op_name(i));
            plot_spectrum(g, &b->lat[i]);
        }
    }
    fprintf(g,
            "set multiplot layout 3,1 title 'ringkv-bench: workload %s, %d conns x pipeline %d, "
            "%zu-byte values, %s keys'\n",
            b->o.workload, b->o.connections, b->o.pipeline, b->o.value_size, dist_name(b));
    fprintf(g,
            "set grid\nset key top right\nset xlabel 'time (s)'\nset ylabel 'ops/s'\n"
            "set yrange [0:*]\n"
            "plot $T using 1:2 with linespoints title 'throughput'\n"
            "set ylabel 'p99 (ms)'\n"
            "plot $T using 1:3 with linespoints title 'p99 per second'\n"
            "set key top left\nset logscale x\nset xlabel 'percentile'\nset ylabel 'latency (ms)'\n"
            /* tic labels are gnuplot format strings: %%%% prints one %% */
            "set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
            "'99.99%%%%' 10000, '99.999%%%%' 100000, '99.9999%%%%' 1000000)\n"
            "plot ");
    int first = 1;
    for (int i = 0; i < BENCH_NOPS; i++)
        if (have[i]) {
            fprintf(g, "%s$%s using 1:2 with lines lw 2 title '%s'", first ? "" : ", ",
                    bench_op_name(i), bench_op_name(i));
            first = 0;
        }
    if (first)
        fprintf(g, "NaN title 'no answered requests'");
    fprintf(g, "\nunset multiplot\n");
    int rc = pclose(g);
    if (rc != 0) {
        fprintf(stderr, "ringkv-bench: gnuplot failed (exit status %d)\n", rc);
        return -1;
    }
    return 0;
}

int report_can_plot(void)
{
    return on_path("gnuplot");
}
