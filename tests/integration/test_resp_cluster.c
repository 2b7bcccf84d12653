/* test_resp_cluster: the RESP port's CLUSTER command on a real three-node
 * cluster (node/resp_cluster.c). Every node reports the same slot map: the
 * three nodes, each a master with an equal run of the 16384 slots, at its
 * own RESP address; redis-benchmark --cluster spreads its connections over
 * them with it, and every node serves its share. A node without membership
 * answers as a Redis with cluster support disabled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeproc.h"

typedef struct fixture {
    nodeproc_cluster cl;
    int port[3];
} fixture;

static char *run(int port, const char *const *args)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[16] = {"redis-cli", "-p", portstr};
    int n = 3;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *out = NULL;
    size_t len;
    assert_int_equal(nodeproc_exec(argv, NULL, 0, &out, &len, NULL), 0);
    return out;
}

static int setup(void **state)
{
    if (system("command -v redis-cli >/dev/null 2>&1 && "
               "command -v redis-benchmark >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-cli or redis-benchmark not found; skipping\n");
        *state = NULL;
        return 0;
    }
    fixture *f = calloc(1, sizeof *f);
    const char *ids[] = {"n1", "n2", "n3"};
    if (!f || nodeproc_cluster_start(&f->cl, 3, ids,
                                     NODEPROC_FAST_GOSSIP "[node]\nresp = 127.0.0.1:0\n") != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if ((f->port[i] = nodeproc_resp_port(&f->cl.n[i])) <= 0)
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f) {
        nodeproc_cluster_cleanup(&f->cl);
        free(f);
    }
    return 0;
}

/* The map as CLUSTER NODES gives it, after every node sees all three up. */
static char *nodes_of(fixture *f, int i)
{
    const char *args[] = {"cluster", "nodes", NULL};
    char *out = NULL;
    for (long long end = nodeproc_now_ms() + 10000; nodeproc_now_ms() < end;) {
        free(out);
        out = run(f->port[i], args);
        int lines = 0;
        for (const char *p = out; (p = strchr(p, '\n')); p++)
            lines++;
        if (lines == 3)
            break;
        nodeproc_sleep_ms(100);
    }
    return out;
}

static void test_slot_map(void **state)
{
    fixture *f = *state;
    if (!f)
        skip();
    char *first = NULL;
    for (int i = 0; i < 3; i++) {
        char *out = nodes_of(f, i);
        /* The same three lines everywhere, "myself" apart. */
        char *plain = strdup(out);
        char *m = strstr(plain, "myself,");
        assert_non_null(m);
        memmove(m, m + 7, strlen(m + 7) + 1);
        assert_null(strstr(plain, "myself"));
        if (!first)
            first = strdup(plain);
        else
            assert_string_equal(plain, first);
        free(plain);
        /* Node i's own line carries its RESP port. */
        char own[64];
        snprintf(own, sizeof own, "127.0.0.1:%d@", f->port[i]);
        const char *line = strstr(out, own);
        assert_non_null(line);
        const char *eol = strchr(line, '\n');
        const char *me = strstr(line, "myself,master");
        assert_true(me && me < eol);
        free(out);
    }
    /* Ids of 40 hex digits; slots 0-16383 in three runs, in order. */
    unsigned next = 0;
    for (char *line = first; *line;) {
        char *eol = strchr(line, '\n');
        assert_non_null(eol);
        *eol = '\0';
        assert_int_equal(strspn(line, "0123456789abcdef"), 40);
        assert_int_equal(line[40], ' ');
        unsigned lo, hi;
        const char *range = strrchr(line, ' ') + 1;
        assert_int_equal(sscanf(range, "%u-%u", &lo, &hi), 2);
        assert_int_equal(lo, next);
        assert_true(hi >= lo && hi - lo + 1 >= 5461 && hi - lo + 1 <= 5462);
        next = hi + 1;
        line = eol + 1;
    }
    assert_int_equal(next, 16384);
    free(first);

    const char *slots[] = {"cluster", "slots", NULL};
    char *out = run(f->port[1], slots);
    char port0[16];
    snprintf(port0, sizeof port0, "%d", f->port[0]);
    assert_non_null(strstr(out, "0\n5460\n127.0.0.1\n"));
    assert_non_null(strstr(out, port0));
    free(out);
    const char *info[] = {"cluster", "info", NULL};
    out = run(f->port[2], info);
    assert_non_null(strstr(out, "cluster_state:ok"));
    assert_non_null(strstr(out, "cluster_known_nodes:3"));
    free(out);
    const char *bad[] = {"cluster", "addslots", "1", NULL};
    out = run(f->port[0], bad);
    assert_non_null(strstr(out, "ERR unknown subcommand 'addslots'"));
    free(out);
}

/* redis-benchmark --cluster runs against the map, and each node serves a
 * share of its commands. */
static void test_benchmark_cluster_mode(void **state)
{
    fixture *f = *state;
    if (!f)
        skip();
    free(nodes_of(f, 0));
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", f->port[0]);
    const char *argv[] = {"redis-benchmark", "--cluster", "-p", portstr, "-t", "set,get", "-n",
                          "3000", "-c", "6", "-q", NULL};
    char *out = NULL, *err = NULL;
    size_t len;
    assert_int_equal(nodeproc_exec(argv, NULL, 0, &out, &len, &err), 0);
    fprintf(stderr, "redis-benchmark --cluster (functional, not a measurement): %s", out);
    assert_non_null(strstr(out, "SET: "));
    assert_non_null(strstr(out, "GET: "));
    free(out);
    free(err);
    const char *stats[] = {"info", "stats", NULL};
    for (int i = 0; i < 3; i++) {
        out = run(f->port[i], stats);
        const char *p = strstr(out, "total_commands_processed:");
        assert_non_null(p);
        long long cmds = atoll(p + strlen("total_commands_processed:"));
        assert_true(cmds >= 1000); /* about a third of 6000 each */
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_map),
        cmocka_unit_test(test_benchmark_cluster_mode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
