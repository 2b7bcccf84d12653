/* Tests for node/cluster.c: the ring view without membership, and with a
 * fake member list fed through cluster_apply_member as gossip events would:
 * sloppy targets around a down owner, N capped by the ring size, the epoch
 * moving only with ring membership, and up callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "config.h"
#include "gossip.h"

static config cfg_with(uint64_t n, uint64_t vnodes)
{
    config cfg;
    config_defaults(&cfg);
    cfg.n = n;
    cfg.vnodes = vnodes;
    return cfg;
}

static cluster *new_cluster(const config *cfg, const char *self)
{
    char err[256] = "";
    cluster *c = cluster_new(cfg, self, NULL, err, sizeof err);
    assert_non_null(c);
    return c;
}

static gossip_member rec(const char *id, gossip_state st)
{
    gossip_member m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "%s", id);
    snprintf(m.peer_addr, sizeof m.peer_addr, "127.0.0.1:1%s", id + 1);
    snprintf(m.client_addr, sizeof m.client_addr, "127.0.0.1:2%s", id + 1);
    m.state = st;
    m.role = GOSSIP_ROLE_MEMBER;
    m.vnodes = 64;
    return m;
}

static void apply(cluster *c, const char *id, gossip_state st)
{
    gossip_member m = rec(id, st);
    cluster_apply_member(c, &m);
}

static void test_alone(void **state)
{
    (void)state;
    config cfg = cfg_with(3, 16);
    cluster *c = new_cluster(&cfg, "n1");
    assert_int_equal(ring_members(cluster_ring(c)), 1);
    assert_int_equal(cluster_n(c), 1); /* N capped by the ring size */
    assert_true(cluster_is_up(c, "n1"));
    assert_false(cluster_is_up(c, "n2"));
    cluster_target t[CLUSTER_MAX_N];
    uint64_t tok = ring_token("k", 1);
    assert_int_equal(cluster_targets(c, tok, t, CLUSTER_MAX_N), 1);
    assert_string_equal(t[0].id, "n1");
    assert_true(t[0].local);
    assert_null(t[0].hint_for);
    assert_int_equal(cluster_owners(c, tok, t, CLUSTER_MAX_N), 1);
    bool up = false;
    assert_null(cluster_peer_addr(c, "n1", &up)); /* no membership, no peer port */
    assert_true(up);
    up = true;
    assert_null(cluster_peer_addr(c, "n2", &up)); /* unknown */
    assert_false(up);
    assert_int_equal(cluster_vnodes_default(c), 16);
    cluster_member cm;
    assert_true(cluster_member_get(c, "n1", &cm));
    assert_string_equal(cm.state, "alive");
    assert_true(cm.on_ring && cm.vnodes == 16);
    assert_false(cluster_member_get(c, "n9", &cm));
    cluster_free(c);
    cluster_free(NULL);
}

static void test_bad_self(void **state)
{
    (void)state;
    config cfg = cfg_with(3, 16);
    char err[256] = "";
    assert_null(cluster_new(&cfg, "", NULL, err, sizeof err));
    assert_true(strstr(err, "node id") != NULL);
}

/* A key whose preference list over all members starts with `first`. */
static uint64_t token_owned_by(const cluster *c, const char *first)
{
    const ring *r = cluster_ring(c);
    size_t idx[8];
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        uint64_t tok = ring_token(key, strlen(key));
        ring_preference(r, tok, 1, idx);
        if (strcmp(ring_member_id(r, idx[0]), first) == 0)
            return tok;
    }
    fail_msg("no key found for %s", first);
    return 0;
}

static void test_sloppy_targets(void **state)
{
    (void)state;
    config cfg = cfg_with(3, 64);
    cluster *c = new_cluster(&cfg, "n1");
    for (int i = 2; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%d", i);
        apply(c, id, GOSSIP_ALIVE);
    }
    assert_int_equal(ring_members(cluster_ring(c)), 5);
    assert_int_equal(cluster_n(c), 3);
    bool peer_up = false;
    assert_string_equal(cluster_peer_addr(c, "n2", &peer_up), "127.0.0.1:12");
    assert_true(peer_up);
    assert_string_equal(cluster_peer_addr(c, "n3", NULL), "127.0.0.1:13");

    uint64_t tok = token_owned_by(c, "n2");
    const ring *r = cluster_ring(c);
    size_t pref[5];
    assert_int_equal(ring_preference(r, tok, 5, pref), 5);
    const char *p[5];
    for (int i = 0; i < 5; i++)
        p[i] = ring_member_id(r, pref[i]);

    cluster_target t[CLUSTER_MAX_N];
    assert_int_equal(cluster_targets(c, tok, t, CLUSTER_MAX_N), 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(t[i].id, p[i]);
        assert_null(t[i].hint_for);
        assert_int_equal(t[i].local, strcmp(p[i], "n1") == 0);
    }

    /* The first owner dies: its stand-in is the 4th member, hinted for it. */
    uint64_t epoch = cluster_epoch(c);
    apply(c, p[0], GOSSIP_DEAD);
    assert_int_equal(cluster_epoch(c), epoch); /* liveness does not move ranges */
    assert_false(cluster_is_up(c, p[0]));
    if (strcmp(p[0], "n1") != 0) { /* a dead peer keeps its address */
        peer_up = true;
        assert_non_null(cluster_peer_addr(c, p[0], &peer_up));
        assert_false(peer_up);
    }
    assert_int_equal(cluster_targets(c, tok, t, CLUSTER_MAX_N), 3);
    assert_string_equal(t[0].id, p[3]);
    assert_string_equal(t[0].hint_for, p[0]);
    assert_string_equal(t[1].id, p[1]);
    assert_null(t[1].hint_for);
    assert_int_equal(cluster_owners(c, tok, t, CLUSTER_MAX_N), 3);
    assert_string_equal(t[0].id, p[0]); /* owners stay owners */

    /* The 4th is suspect (still up); the 3rd owner dead too: the 5th stands in. */
    apply(c, p[3], GOSSIP_SUSPECT);
    apply(c, p[2], GOSSIP_DEAD);
    assert_true(cluster_is_up(c, p[3]));
    assert_int_equal(cluster_targets(c, tok, t, CLUSTER_MAX_N), 3);
    assert_string_equal(t[0].id, p[3]);
    assert_string_equal(t[0].hint_for, p[0]);
    assert_string_equal(t[2].id, p[4]);
    assert_string_equal(t[2].hint_for, p[2]);

    /* With nobody left to stand in, fewer targets than N. */
    apply(c, p[4], GOSSIP_DEAD);
    apply(c, p[3], GOSSIP_DEAD);
    size_t n = cluster_targets(c, tok, t, CLUSTER_MAX_N);
    size_t up = 0;
    for (int i = 0; i < 5; i++)
        up += cluster_is_up(c, p[i]);
    assert_int_equal(n, up < 3 ? up : 3);
    for (size_t i = 0; i < n; i++)
        assert_true(cluster_is_up(c, t[i].id));
    assert_int_equal(cluster_epoch(c), epoch);

    /* max caps what is written. */
    assert_true(cluster_targets(c, tok, t, 1) <= 1);
    cluster_free(c);
}

static void test_epoch_follows_ring_membership(void **state)
{
    (void)state;
    config cfg = cfg_with(2, 32);
    cluster *c = new_cluster(&cfg, "n1");
    uint64_t e1 = cluster_epoch(c);
    apply(c, "n2", GOSSIP_ALIVE); /* join */
    uint64_t e2 = cluster_epoch(c);
    assert_true(e2 != e1);
    assert_int_equal(cluster_n(c), 2);
    apply(c, "n2", GOSSIP_SUSPECT);
    apply(c, "n2", GOSSIP_DEAD);
    apply(c, "n2", GOSSIP_ALIVE);
    assert_true(cluster_epoch(c) == e2);
    /* Stopped gracefully: keeps its ranges, as a dead member does. */
    apply(c, "n2", GOSSIP_LEFT);
    assert_true(cluster_epoch(c) == e2);
    assert_false(cluster_is_up(c, "n2"));
    cluster_member cm;
    assert_true(cluster_member_get(c, "n2", &cm));
    assert_true(cm.on_ring);
    assert_string_equal(cm.state, "left");
    apply(c, "n2", GOSSIP_ALIVE); /* back */
    assert_true(cluster_epoch(c) == e2);
    /* Decommissioned: leaving, then left: off the ring. */
    gossip_member l = rec("n2", GOSSIP_ALIVE);
    l.role = GOSSIP_ROLE_LEAVING;
    cluster_apply_member(c, &l);
    assert_true(cluster_epoch(c) == e2); /* still on the current ring */
    assert_non_null(cluster_pending(c));
    assert_true(ring_epoch(cluster_pending(c)) == e1);
    l.state = GOSSIP_LEFT;
    cluster_apply_member(c, &l);
    assert_true(cluster_epoch(c) == e1);
    assert_null(cluster_pending(c));
    assert_int_equal(cluster_n(c), 1);
    assert_true(cluster_member_get(c, "n2", &cm));
    assert_false(cm.on_ring);
    assert_string_equal(cm.role, "leaving");
    apply(c, "n2", GOSSIP_ALIVE); /* rejoins as a member */
    assert_true(cluster_epoch(c) == e2);
    apply(c, "n2", GOSSIP_REMOVED);
    assert_true(cluster_epoch(c) == e1);

    /* A joining member is not on the ring until its role is member, but
     * on the pending ring. */
    gossip_member j = rec("n3", GOSSIP_ALIVE);
    j.role = GOSSIP_ROLE_JOINING;
    cluster_apply_member(c, &j);
    assert_true(cluster_epoch(c) == e1);
    assert_non_null(cluster_pending(c));
    assert_int_equal(ring_members(cluster_pending(c)), 2);
    j.role = GOSSIP_ROLE_MEMBER;
    cluster_apply_member(c, &j);
    assert_true(cluster_epoch(c) != e1);
    /* A vnodes change moves ranges, so it is a new ring. */
    uint64_t e3 = cluster_epoch(c);
    j.vnodes = 8;
    cluster_apply_member(c, &j);
    assert_true(cluster_epoch(c) != e3);
    cluster_free(c);
}

typedef struct ups {
    char ids[8][GOSSIP_ID_MAX + 1];
    int n;
} ups;

static void on_up(void *arg, const char *id)
{
    ups *u = arg;
    assert_true(u->n < 8);
    snprintf(u->ids[u->n++], sizeof u->ids[0], "%s", id);
}

static void test_up_callbacks(void **state)
{
    (void)state;
    config cfg = cfg_with(3, 16);
    cluster *c = new_cluster(&cfg, "n1");
    ups u = {.n = 0};
    cluster_on_up(c, on_up, &u);
    apply(c, "n1", GOSSIP_ALIVE); /* self: never */
    assert_int_equal(u.n, 0);
    apply(c, "n2", GOSSIP_ALIVE); /* first appears alive */
    assert_int_equal(u.n, 1);
    assert_string_equal(u.ids[0], "n2");
    apply(c, "n2", GOSSIP_ALIVE); /* no transition */
    apply(c, "n3", GOSSIP_DEAD);  /* appears, but not alive */
    assert_int_equal(u.n, 1);
    apply(c, "n3", GOSSIP_ALIVE); /* dead -> alive */
    apply(c, "n2", GOSSIP_SUSPECT);
    apply(c, "n2", GOSSIP_ALIVE); /* suspect -> alive */
    apply(c, "n2", GOSSIP_LEFT);
    apply(c, "n2", GOSSIP_ALIVE); /* left -> alive */
    assert_int_equal(u.n, 4);
    assert_string_equal(u.ids[1], "n3");
    assert_string_equal(u.ids[2], "n2");
    assert_string_equal(u.ids[3], "n2");
    cluster_free(c);
}

typedef struct changes {
    int calls;
    bool decom;
    char member[GOSSIP_ID_MAX + 1];
    size_t from_members, to_members, pending_members;
} changes;

static void on_change(void *arg, const cluster_ring_change *ch)
{
    changes *x = arg;
    x->calls++;
    x->decom = ch->decommissioned;
    snprintf(x->member, sizeof x->member, "%s", ch->member ? ch->member : "");
    x->from_members = ring_members(ch->from);
    x->to_members = ring_members(ch->to);
    x->pending_members = ch->pending ? ring_members(ch->pending) : 0;
}

/* A joining member gets writes (one more ack needed) for exactly the keys
 * it will own, and the listeners see each step of a join and a leave. */
static void test_ring_change(void **state)
{
    (void)state;
    config cfg = cfg_with(3, 32);
    cluster *c = new_cluster(&cfg, "n1");
    changes x = {0};
    cluster_on_ring_change(c, on_change, &x);
    apply(c, "n2", GOSSIP_ALIVE);
    apply(c, "n3", GOSSIP_ALIVE);
    assert_int_equal(x.calls, 2);
    assert_null(cluster_pending(c));
    cluster_target cur[CLUSTER_MAX_N], ex[CLUSTER_MAX_N];
    cluster_future fut;
    assert_int_equal(cluster_write_extra(c, 12345, cur, 0, ex, CLUSTER_MAX_N, &fut), 0);
    assert_int_equal(fut.count, 0);

    gossip_member j = rec("n4", GOSSIP_ALIVE);
    j.role = GOSSIP_ROLE_JOINING;
    j.vnodes = 32;
    cluster_apply_member(c, &j);
    assert_int_equal(x.calls, 3);
    assert_int_equal(x.pending_members, 4);
    assert_int_equal(x.to_members, 3);
    const ring *p = cluster_pending(c);
    assert_non_null(p);
    int gains = 0;
    for (uint64_t k = 0; k < 2000; k++) {
        uint64_t t = k * 0x9E3779B97F4A7C15ull;
        size_t idx[3], n = ring_preference(p, t, 3, idx);
        bool d_owns = false;
        for (size_t i = 0; i < n; i++)
            d_owns |= strcmp(ring_member_id(p, idx[i]), "n4") == 0;
        size_t ncur = cluster_targets(c, t, cur, CLUSTER_MAX_N);
        size_t nx = cluster_write_extra(c, t, cur, ncur, ex, CLUSTER_MAX_N, &fut);
        assert_int_equal(fut.count, d_owns ? 1 : 0);
        assert_int_equal(fut.n, 3);
        /* the current owners that stay owners, and only those */
        size_t staying = 0;
        for (size_t j = 0; j < ncur; j++) {
            bool future = false;
            for (size_t i = 0; i < n; i++)
                future |= strcmp(ring_member_id(p, idx[i]), cur[j].id) == 0;
            assert_int_equal(fut.cur_new[j], future);
            staying += future;
        }
        assert_int_equal(staying, d_owns ? 2 : 3);
        assert_int_equal(nx, fut.count);
        if (nx)
            assert_string_equal(ex[0].id, "n4");
        gains += d_owns;
    }
    assert_true(gains > 2000 / 2 && gains < 2000); /* about 3/4 */
    /* down: neither waited for nor sent to; suspect: still both */
    j.state = GOSSIP_DEAD;
    cluster_apply_member(c, &j);
    assert_non_null(cluster_pending(c));
    for (uint64_t k = 0; k < 2000; k++) {
        uint64_t t = k * 0x9E3779B97F4A7C15ull;
        size_t ncur = cluster_targets(c, t, cur, CLUSTER_MAX_N);
        assert_int_equal(cluster_write_extra(c, t, cur, ncur, ex, CLUSTER_MAX_N, &fut), 0);
        assert_int_equal(fut.count, 0);
    }
    j.state = GOSSIP_SUSPECT;
    cluster_apply_member(c, &j);
    gains = 0;
    for (uint64_t k = 0; k < 2000; k++) {
        uint64_t t = k * 0x9E3779B97F4A7C15ull;
        size_t ncur = cluster_targets(c, t, cur, CLUSTER_MAX_N);
        gains += (int)cluster_write_extra(c, t, cur, ncur, ex, CLUSTER_MAX_N, &fut);
    }
    assert_true(gains > 2000 / 2);
    j.state = GOSSIP_ALIVE;
    j.role = GOSSIP_ROLE_MEMBER;
    cluster_apply_member(c, &j);
    assert_null(cluster_pending(c));
    assert_int_equal(x.to_members, 4);
    assert_string_equal(x.member, "n4");
    assert_false(x.decom);

    /* n4 leaves again: decommissioned, not lost */
    j.role = GOSSIP_ROLE_LEAVING;
    cluster_apply_member(c, &j);
    assert_int_equal(x.pending_members, 3);
    j.state = GOSSIP_LEFT;
    cluster_apply_member(c, &j);
    assert_int_equal(x.from_members, 4);
    assert_int_equal(x.to_members, 3);
    assert_true(x.decom);
    /* n4 leaving again, dies mid-way and is removed: not handed over */
    j.state = GOSSIP_ALIVE;
    cluster_apply_member(c, &j); /* back, still leaving: on the ring */
    assert_int_equal(x.to_members, 4);
    j.state = GOSSIP_DEAD;
    cluster_apply_member(c, &j);
    j.state = GOSSIP_REMOVED;
    cluster_apply_member(c, &j);
    assert_int_equal(x.to_members, 3);
    assert_false(x.decom);
    /* n3 removed: not decommissioned */
    apply(c, "n3", GOSSIP_REMOVED);
    assert_false(x.decom);
    assert_string_equal(x.member, "n3");
    assert_int_equal(x.to_members, 2);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alone),
        cmocka_unit_test(test_bad_self),
        cmocka_unit_test(test_sloppy_targets),
        cmocka_unit_test(test_epoch_follows_ring_membership),
        cmocka_unit_test(test_up_callbacks),
        cmocka_unit_test(test_ring_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
