/* ring_bench: how long routing one key takes in libringkv's ring — hashing the
 * key (XXH3-64) and finding its preference list — for rings of 3, 10 and 100
 * members with 128 vnodes each. Prints nanoseconds per key, the median of
 * five runs of 2 million keys.
 *   build/bench/ring-bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        printf("usage: ring-bench\nTimes key routing (hash + preference list of 3).\n");
        return 0;
    }
    size_t sizes[] = {3, 10, 100};
    enum { KEYS = 2000000, RUNS = 5, KEYSPACE = 65536 };
    static char keys[KEYSPACE][24];
    static size_t lens[KEYSPACE];
    for (int i = 0; i < KEYSPACE; i++)
        lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "user:%08d", i * 7919);

    printf("%-8s %-7s %-14s %-14s\n", "members", "vnodes", "ns/key (N=1)", "ns/key (N=3)");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        ring_member *m = calloc(sizes[s], sizeof *m);
        char (*ids)[32] = calloc(sizes[s], sizeof *ids);
        for (size_t i = 0; i < sizes[s]; i++) {
            snprintf(ids[i], sizeof ids[i], "node%zu", i + 1);
            m[i] = (ring_member){ids[i], RING_DEFAULT_VNODES};
        }
        char err[128];
        ring *r = ring_new(m, sizes[s], err, sizeof err);
        if (!r) {
            fprintf(stderr, "ring-bench: %s\n", err);
            return 1;
        }
        double t1[RUNS], t3[RUNS];
        volatile size_t sink = 0; /* keeps the lookups from being optimized away */
        size_t out[3];
        for (int run = 0; run < RUNS; run++) {
            double t0 = now_ns();
            for (int i = 0; i < KEYS; i++) {
                int k = i & (KEYSPACE - 1);
                sink += (size_t)ring_primary(r, ring_token(keys[k], lens[k]));
            }
            t1[run] = (now_ns() - t0) / KEYS;
            t0 = now_ns();
            for (int i = 0; i < KEYS; i++) {
                int k = i & (KEYSPACE - 1);
                sink += ring_preference(r, ring_token(keys[k], lens[k]), 3, out) + out[0];
            }
            t3[run] = (now_ns() - t0) / KEYS;
        }
        qsort(t1, RUNS, sizeof t1[0], cmp_double);
        qsort(t3, RUNS, sizeof t3[0], cmp_double);
        printf("%-8zu %-7d %-14.1f %-14.1f\n", sizes[s], RING_DEFAULT_VNODES, t1[RUNS / 2],
               t3[RUNS / 2]);
        (void)sink;
        ring_free(r);
        free(ids);
        free(m);
    }
    return 0;
}
