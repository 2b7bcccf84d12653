/* Unit tests for node/store_due.c, the sweep's table of tokens with
 * expiring records or tombstones: random notes, merges, sweep changes that
 * stand or go, and trims, against a plain model of what each token's entry
 * must hold. Tokens share their low bits in groups, so that probe chains
 * are long, wrap around the table's end and are cut by removals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_due.h"

#define TOKENS 3000

typedef struct model {
    uint64_t exp, tomb; /* as the entry: 0 none; tomb is HLC ms + 1 */
} model;

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static uint64_t min_set(uint64_t a, uint64_t b) { return a == 0 || (b != 0 && b < a) ? b : a; }

/* Token i: groups of 8 share their low 12 bits; the last group's sit at
 * the table's end (all ones), so their chains wrap. */
static uint64_t token(size_t i)
{
    uint64_t low = i / 8 == TOKENS / 8 - 1 ? 0xfff : (uint64_t)(i / 8) * 7;
    return (uint64_t)(i + 1) << 20 | low;
}

static bool occupied(const due_slot *e) { return e->exp_ms || e->tomb_ms; }

/* The entry of token t, as a lookup finds it: along the chain from its
 * home to the first empty slot. */
static due_slot *find(store_due *d, uint64_t t)
{
    for (size_t i = t & d->mask; d->mask && occupied(&d->slots[i]); i = (i + 1) & d->mask)
        if (d->slots[i].token == t)
            return &d->slots[i];
    return NULL;
}

/* Every entry in the table is a token's only one and holds what the model
 * says (DUE_GONE with a tombstone time: no expiry); every token the model
 * has is in the table, and a lookup finds it (no chain broken). */
static void check(store_due *d, const model *m)
{
    static bool seen[TOKENS];
    size_t n = 0;
    assert_int_equal(store_due_merge(d), 0);
    memset(seen, 0, sizeof seen);
    for (size_t j = 0; d->mask && j <= d->mask; j++) {
        const due_slot *e = &d->slots[j];
        if (!occupied(e))
            continue;
        size_t i = (size_t)(e->token >> 20) - 1;
        assert_true(i < TOKENS && token(i) == e->token && !seen[i]);
        seen[i] = true;
        assert_int_equal(e->exp_ms == DUE_GONE ? 0 : e->exp_ms, m[i].exp);
        assert_int_equal(e->tomb_ms, m[i].tomb);
        assert_ptr_equal(find(d, e->token), e);
        n++;
    }
    for (size_t i = 0; i < TOKENS; i++)
        assert_true(seen[i] == (m[i].exp || m[i].tomb));
    assert_int_equal(d->n, n);
}

/* A write of token i with an expiry or (one in tomb_in) a tombstone, at a
 * random time: in the table and the model. */
static void note(store_due *d, model *m, size_t i, uint64_t *x, unsigned tomb_in)
{
    bool tomb = rnd(x) % tomb_in == 0;
    uint64_t t = 1 + rnd(x) % 100000;
    assert_int_equal(store_due_note(d, token(i), tomb ? 0 : t, tomb, t), 0);
    if (tomb)
        m[i].tomb = min_set(m[i].tomb, t + 1);
    else
        m[i].exp = min_set(m[i].exp, t);
}

static void test_table_against_model(void **state)
{
    (void)state;
    static model m[TOKENS];
    store_due d = {0};
    uint64_t x = 0x2545f4914f6cdd1dULL;
    memset(m, 0, sizeof m);

    for (int step = 0; step < 200000; step++) {
        size_t i = rnd(&x) % TOKENS;
        unsigned op = (unsigned)(rnd(&x) % 100);
        if (op < 60) { /* a write with an expiry, or a delete */
            note(&d, m, i, &x, 3);
        } else if (op < 64) { /* a write without either: no entry */
            assert_int_equal(store_due_note(&d, token(i), 0, false, 5), 0);
        } else if (op < 96) { /* a sweep's batch: a few changes, kept or not */
            size_t changed[8], nch = 1 + rnd(&x) % 8;
            model before[8];
            bool kept = rnd(&x) % 4 != 0;
            assert_int_equal(store_due_merge(&d), 0);
            for (size_t c = 0; c < nch; c++) {
                size_t k = rnd(&x) % TOKENS;
                due_slot *e = find(&d, token(k));
                changed[c] = k, before[c] = m[k];
                /* The sweep never visits an entry it found nothing under. */
                if (!e || (e->exp_ms == DUE_GONE && e->tomb_ms == 0))
                    continue;
                assert_int_equal(store_due_change(&d, e), 0);
                /* What the sweep found: nothing (gone), or later times. */
                if (rnd(&x) % 2)
                    m[k] = (model){0, 0};
                else if (m[k].exp)
                    m[k] = (model){m[k].exp + 1, 0};
                else
                    m[k] = (model){0, m[k].tomb + 1};
                e->exp_ms = m[k].exp || m[k].tomb ? m[k].exp : DUE_GONE, e->tomb_ms = m[k].tomb;
            }
            if (rnd(&x) % 2) /* a write between the sweep and the batch's end */
                note(&d, m, changed[0], &x, 2);
            assert_int_equal(store_due_merge(&d), 0);
            store_due_settle(&d, kept);
            if (!kept) /* the old times come back, with any written since */
                for (size_t c = nch; c-- > 0;) {
                    size_t k = changed[c];
                    m[k].exp = min_set(m[k].exp, before[c].exp);
                    m[k].tomb = min_set(m[k].tomb, before[c].tomb);
                }
        } else if (op < 99) {
            store_due_trim(&d);
        } else {
            check(&d, m);
        }
    }
    check(&d, m);

    /* Everything gone, kept: the table trims back to its first size. */
    for (size_t i = 0; i < TOKENS; i++) {
        due_slot *e = find(&d, token(i));
        if (e) {
            assert_int_equal(store_due_change(&d, e), 0);
            e->exp_ms = DUE_GONE, e->tomb_ms = 0;
        }
        m[i].exp = m[i].tomb = 0;
    }
    store_due_settle(&d, true);
    check(&d, m);
    assert_int_equal(d.n, 0);
    store_due_trim(&d);
    assert_int_equal(d.mask + 1, 1024);
    store_due_free(&d);
}

/* When an entry is due: an expiry at or before now; a tombstone whose HLC
 * time is older than now - ttl (as the sweep judges the record). */
static void test_is_due(void **state)
{
    (void)state;
    due_slot e = {.token = 1, .exp_ms = 1000};
    assert_false(store_due_is_due(&e, 999, 0));
    assert_true(store_due_is_due(&e, 1000, 0));
    e = (due_slot){.token = 1, .tomb_ms = 500 + 1};
    assert_false(store_due_is_due(&e, 600, 100)); /* 500 is not older than 500 */
    assert_true(store_due_is_due(&e, 601, 100));
    assert_false(store_due_is_due(&e, 50, 100)); /* now before the ttl */
    e = (due_slot){.token = 1, .exp_ms = DUE_GONE};
    assert_false(store_due_is_due(&e, UINT64_MAX - 1, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_against_model),
        cmocka_unit_test(test_is_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
