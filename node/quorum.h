/* quorum: the bookkeeping of one coordinated read or write, as pure logic.
 *
 * The coordinator asks N replicas and answers the client once `needed` of
 * them succeeded (W for writes, R for reads), or as soon as that can no
 * longer happen, or at the deadline. This module counts replies (ignoring
 * duplicates, strangers and anything after the end), picks the newest
 * version among read replies (last-write-wins: HLC, then origin id), and
 * names the replicas a read repair must fix. A read may hold some replicas
 * in reserve (not asked yet) and ask them one by one when an asked one
 * fails or is slow; the module says when one is due. It sends nothing and
 * keeps no clock, so tests drive it with fake replies, timeouts and late
 * arrivals.
 */
#ifndef RINGKV_QUORUM_H
#define RINGKV_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define QUORUM_MAX_REPLICAS 16

typedef enum quorum_level {
    QUORUM_ONE = 0,
    QUORUM_QUORUM = 1, /* a majority: n/2 + 1 */
    QUORUM_ALL = 2,
} quorum_level;

/* "one", "quorum", "all" -> level; returns -1 for anything else. */
int quorum_level_parse(const char *s, quorum_level *out);
const char *quorum_level_name(quorum_level l);
/* Replies needed at level l out of n replicas (at least 1 when n >= 1). */
size_t quorum_needed(quorum_level l, size_t n);

typedef enum quorum_outcome {
    QUORUM_PENDING = 0, /* keep waiting */
    QUORUM_SUCCESS,     /* `needed` replicas succeeded: answer the client */
    QUORUM_FAILED,      /* too many failed for `needed` to be reached */
    QUORUM_TIMEOUT,     /* the deadline passed first */
} quorum_outcome;

/* What one replica answered. */
typedef struct quorum_reply {
    bool ok;               /* write applied / read answered */
    bool found;            /* read: the replica holds a record (maybe a tombstone) */
    store_version version; /* read, when found */
} quorum_reply;

typedef enum quorum_slot_state { QUORUM_WAITING = 0, QUORUM_ANSWERED_OK, QUORUM_ANSWERED_FAIL } quorum_slot_state;

/* One replica's place in a quorum. The caller owns the array (sized for the
 * replicas it asks), so an operation's state lies in one small block. */
typedef struct quorum_slot {
    quorum_slot_state state;
    char replica[STORE_ORIGIN_MAX + 1]; /* a short id shares state's cache line */
    quorum_reply reply;
} quorum_slot;

typedef struct quorum {
    bool is_read;
    size_t n, needed;
    size_t asked; /* replicas [0, asked) were asked; [asked, n) are in reserve */
    quorum_slot *slot; /* [0, n): the caller's, given to quorum_init */
    size_t oks, fails;
    uint64_t deadline_ms;
    quorum_outcome outcome; /* QUORUM_PENDING until decided; then fixed */
    int newest;             /* read: index of the newest found version, or -1 */
    /* Joint quorum (quorum_set_joint): success needs group[g].needed oks
     * among the replicas of each mask; ngroups 0 = plain count. */
    size_t ngroups;
    struct {
        uint32_t mask;
        size_t size, needed, oks, fails;
    } group[2];
} quorum;

/* Starts the bookkeeping for replicas[0..n) (n <= QUORUM_MAX_REPLICAS,
 * 1 <= needed <= n) in slots, which has room for n and stays the caller's:
 * it must live as long as q is used. Returns 0, or -1 on bad arguments. */
int quorum_init(quorum *q, quorum_slot *slots, bool is_read, const char *const *replicas,
                size_t n, size_t needed, uint64_t deadline_ms);

/* While the ring changes, a write must reach a quorum of the current
 * owners AND one of the future owners (joint consensus, as in Raft's
 * membership changes): then whatever either ring's quorum acknowledged is
 * on a quorum of the other, with no more acknowledgements than that takes.
 * Replaces the plain count: success needs needed_a oks among the replicas
 * whose bits are in mask_a and needed_b among those in mask_b (bit i =
 * replica i; a replica may be in both). Call after quorum_init, before any
 * reply. Returns 0, or -1 when a group is smaller than what it needs. */
int quorum_set_joint(quorum *q, uint32_t mask_a, size_t needed_a, uint32_t mask_b,
                     size_t needed_b);

/* Holds replicas [ask, n) in reserve: they count as possible answers (so a
 * failure alone does not decide FAILED while a reserve is left), but until
 * quorum_ask_next moves them to asked, a reply from one is ignored. Call it
 * right after quorum_init (which asks every replica). Returns 0, or -1 when
 * ask is 0 or more than n. */
int quorum_hold(quorum *q, size_t ask);

/* How many reserve replicas to ask now so that, if every asked replica that
 * has not answered yet answers ok, `needed` is reached: nonzero after asked
 * replicas failed. 0 once decided, or when no reserve is left. */
size_t quorum_short(const quorum *q);

/* Moves the first reserve replica to asked and returns its index, or -1
 * when none is left. */
int quorum_ask_next(quorum *q);

/* Replicas still in reserve. */
size_t quorum_reserves(const quorum *q);

/* Records replica's answer. A reply from an unknown replica, one not asked
 * (in reserve) or a second reply from the same one is ignored. Replies
 * after the outcome is decided still count for read repair but never
 * change the outcome. Returns the outcome (still QUORUM_PENDING, or the
 * decision). */
quorum_outcome quorum_on_reply(quorum *q, const char *replica, const quorum_reply *r);
/* The same for the replica at index i of the list quorum_init was given
 * (a caller that has looked it up already). */
quorum_outcome quorum_on_reply_at(quorum *q, size_t i, const quorum_reply *r);

/* Replica could not be reached (down, link broken): a failed answer. */
quorum_outcome quorum_on_failure(quorum *q, const char *replica);

/* Decides QUORUM_TIMEOUT if now_ms is past the deadline and nothing was
 * decided yet. Returns the outcome. */
quorum_outcome quorum_check_deadline(quorum *q, uint64_t now_ms);

/* Read: the newest reply (NULL when no replica holds the key). */
const quorum_reply *quorum_newest(const quorum *q);

/* Read repair: fills out[] with the indexes of replicas that answered ok
 * but hold an older version than the newest, or nothing; returns how many.
 * Replicas that did not answer are not listed (repair only what is known
 * to be stale). */
size_t quorum_stale(const quorum *q, size_t *out);

/* Last-write-wins order of two versions: <0, 0, >0. */
int quorum_version_cmp(const store_version *a, const store_version *b);

#endif
