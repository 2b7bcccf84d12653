/* Durability against a real ringkvd: every acknowledged write survives kill -9
 * under `fsync always` (including pipelined writes acknowledged by one group
 * commit) and under `everysec` (where it is in the write-ahead log, and
 * written into LMDB only later: the restart replays the log), survives a
 * graceful stop under `everysec`, and the node keeps its identity across
 * restarts.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nodeproc.h"
#include "rawconn.h"
#include "ringkv.h"

#define NKEYS 2000

static void key_of(int i, char *buf, size_t len) { snprintf(buf, len, "key:%06d", i); }
static void value_of(int i, int round, char *buf, size_t len)
{
    snprintf(buf, len, "value-%d-round-%d-%0*d", i, round, i % 50, 0);
}

static rkv_client *client_for(const nodeproc *np)
{
    rkv_client *c = rkv_connect(np->addr, NULL, NULL, 0);
    assert_non_null(c);
    return c;
}

/* Every key i < n has round's value, except every 10th, which is deleted. */
static void check_all(const nodeproc *np, int n, int round)
{
    rkv_client *c = client_for(np);
    for (int i = 0; i < n; i++) {
        char k[32], want[128];
        key_of(i, k, sizeof k);
        value_of(i, round, want, sizeof want);
        void *v = NULL;
        size_t vl = 0;
        rkv_status st = rkv_get(c, k, strlen(k), &v, &vl);
        if (i % 10 == 9) {
            if (st != RKV_NOT_FOUND)
                fail_msg("key %s was deleted (acknowledged) but reads as %s", k,
                         rkv_status_name(st));
        } else {
            if (st != RKV_OK)
                fail_msg("acknowledged key %s lost: %s %s", k, rkv_status_name(st),
                         rkv_errstr(c));
            assert_int_equal(vl, strlen(want));
            assert_memory_equal(v, want, vl);
        }
        rkv_free(v);
    }
    rkv_close(c);
}

static void write_all(const nodeproc *np, int n, int round)
{
    rkv_client *c = client_for(np);
    for (int i = 0; i < n; i++) {
        char k[32], v[128];
        key_of(i, k, sizeof k);
        value_of(i, round, v, sizeof v);
        assert_int_equal(rkv_put(c, k, strlen(k), v, strlen(v), 0), RKV_OK);
        if (i % 10 == 9)
            assert_int_equal(rkv_del(c, k, strlen(k)), RKV_OK);
    }
    rkv_close(c);
}

static void kill9_after_acks(const char *fsync)
{
    nodeproc np;
    const char *args[] = {"--fsync", fsync, NULL};
    assert_int_equal(nodeproc_start(&np, args), 0);
    write_all(&np, NKEYS, 1);
    nodeproc_kill(&np, SIGKILL);
    assert_int_equal(nodeproc_restart(&np), 0);
    check_all(&np, NKEYS, 1);
    /* Overwrites after a restart win over the recovered versions (the
     * clock does not go back), and survive a second kill. */
    write_all(&np, NKEYS, 2);
    nodeproc_kill(&np, SIGKILL);
    assert_int_equal(nodeproc_restart(&np), 0);
    check_all(&np, NKEYS, 2);
    assert_int_equal(nodeproc_stop(&np), 0);
    nodeproc_cleanup(&np);
}

static void kill9_after_acks_fsync_always(void **state)
{
    (void)state;
    kill9_after_acks("always");
}

static void kill9_after_acks_everysec(void **state)
{
    (void)state;
    kill9_after_acks("everysec");
}

/* Many PUTs in flight on one connection: each acknowledgement arrives only
 * after the group commit (or, under everysec, the log write) that holds it,
 * so kill -9 right after the last acknowledgement loses none. */
static void kill9_after_pipelined(const char *fsync)
{
    nodeproc np;
    const char *args[] = {"--fsync", fsync, NULL};
    assert_int_equal(nodeproc_start(&np, args), 0);
    int fd = raw_connect(np.port);
    assert_true(fd >= 0);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < NKEYS; i++) {
        char k[32], v[128];
        key_of(i, k, sizeof k);
        value_of(i, 7, v, sizeof v);
        wire_request req = {.id = (uint64_t)i + 1, .op = WIRE_OP_PUT, .consistency = -1,
                            .key = {(const uint8_t *)k, strlen(k)},
                            .value = {(const uint8_t *)v, strlen(v)}};
        wire_encode_request(&sb, &req);
    }
    assert_int_equal(raw_send(fd, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    for (int i = 0; i < NKEYS; i++) {
        wire_response resp;
        uint8_t *frame;
        assert_int_equal(raw_read_response(fd, 10000, &zone, &resp, &frame), 0);
        assert_int_equal(resp.status, WIRE_OK);
        assert_int_equal(resp.id, (uint64_t)i + 1); /* in order, per connection */
        free(frame);
    }
    msgpack_zone_destroy(&zone);
    nodeproc_kill(&np, SIGKILL);
    close(fd);

    assert_int_equal(nodeproc_restart(&np), 0);
    rkv_client *c = client_for(&np);
    for (int i = 0; i < NKEYS; i++) {
        char k[32], want[128];
        key_of(i, k, sizeof k);
        value_of(i, 7, want, sizeof want);
        void *v = NULL;
        size_t vl = 0;
        if (rkv_get(c, k, strlen(k), &v, &vl) != RKV_OK)
            fail_msg("pipelined acknowledged key %s lost", k);
        assert_memory_equal(v, want, vl);
        rkv_free(v);
    }
    rkv_close(c);
    nodeproc_cleanup(&np);
}

static void kill9_after_pipelined_acks(void **state)
{
    (void)state;
    kill9_after_pipelined("always");
}

static void kill9_after_pipelined_acks_everysec(void **state)
{
    (void)state;
    kill9_after_pipelined("everysec");
}

/* Under everysec, SIGTERM syncs before exit: nothing acknowledged is lost
 * by a graceful stop, and the exit code is 0. */
static void graceful_stop_everysec(void **state)
{
    (void)state;
    nodeproc np;
    const char *args[] = {"--fsync", "everysec", NULL};
    assert_int_equal(nodeproc_start(&np, args), 0);
    write_all(&np, NKEYS, 3);
    assert_int_equal(nodeproc_stop(&np), 0);
    assert_int_equal(nodeproc_restart(&np), 0);
    check_all(&np, NKEYS, 3);
    assert_int_equal(nodeproc_stop(&np), 0);
    nodeproc_cleanup(&np);
}

static char *stat_str(rkv_stat *st, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(st[i].name, name) == 0 && !st[i].is_num)
            return strdup(st[i].str);
    return NULL;
}

/* The node id is kept in the data dir; a different configured id is refused. */
static void identity_survives_restart(void **state)
{
    (void)state;
    nodeproc np;
    const char *args[] = {"--id", "alpha", NULL};
    assert_int_equal(nodeproc_start(&np, args), 0);
    rkv_client *c = client_for(&np);
    rkv_stat *st;
    size_t n;
    assert_int_equal(rkv_stats(c, &st, &n), RKV_OK);
    char *id = stat_str(st, n, "node_id");
    assert_non_null(id);
    assert_string_equal(id, "alpha");
    free(id);
    rkv_stats_free(st, n);
    rkv_close(c);
    assert_int_equal(nodeproc_stop(&np), 0);

    /* Same data dir, another id: refused at start with a clear message. */
    free(np.extra[1]);
    np.extra[1] = strdup("beta");
    assert_int_not_equal(nodeproc_restart(&np), 0);
    char path[400], line[1024];
    snprintf(path, sizeof path, "%s/ringkvd.log", np.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int found = 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, "belongs to node 'alpha'") != NULL;
    fclose(f);
    assert_true(found);
    nodeproc_cleanup(&np);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill9_after_acks_fsync_always),
        cmocka_unit_test(kill9_after_pipelined_acks),
        cmocka_unit_test(kill9_after_acks_everysec),
        cmocka_unit_test(kill9_after_pipelined_acks_everysec),
        cmocka_unit_test(graceful_stop_everysec),
        cmocka_unit_test(identity_survives_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
