/* quorum: bookkeeping of one coordinated read or write; see quorum.h. */
#include "quorum.h"

#include <stdio.h>
#include <string.h>

static const char *const level_names[] = {"one", "quorum", "all"};

int quorum_level_parse(const char *s, quorum_level *out)
{
    for (int i = QUORUM_ONE; i <= QUORUM_ALL; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (quorum_level)i;
            return 0;
        }
    return -1;
}

const char *quorum_level_name(quorum_level l)
{
    return l >= QUORUM_ONE && l <= QUORUM_ALL ? level_names[l] : "?";
}

size_t quorum_needed(quorum_level l, size_t n)
{
    if (n == 0)
        return 0;
    switch (l) {
    case QUORUM_ONE: return 1;
    case QUORUM_QUORUM: return n / 2 + 1;
    case QUORUM_ALL: return n;
    }
    return n;
}

int quorum_version_cmp(const store_version *a, const store_version *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    return strcmp(a->origin, b->origin);
}

int quorum_init(quorum *q, quorum_slot *slots, bool is_read, const char *const *replicas,
                size_t n, size_t needed, uint64_t deadline_ms)
{
    if (n == 0 || n > QUORUM_MAX_REPLICAS || needed == 0 || needed > n)
        return -1;
    q->slot = slots;
    q->is_read = is_read;
    q->n = n;
    q->needed = needed;
    q->asked = n;
    q->oks = q->fails = 0;
    q->deadline_ms = deadline_ms;
    q->outcome = QUORUM_PENDING;
    q->newest = -1;
    q->ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(replicas[i]);
        if (len > STORE_ORIGIN_MAX)
            return -1;
        memcpy(slots[i].replica, replicas[i], len + 1);
        slots[i].state = QUORUM_WAITING; /* its reply is read only once answered */
    }
    return 0;
}

int quorum_hold(quorum *q, size_t ask)
{
    if (ask == 0 || ask > q->n)
        return -1;
    q->asked = ask;
    return 0;
}

size_t quorum_short(const quorum *q)
{
    if (q->outcome != QUORUM_PENDING || q->asked >= q->n)
        return 0;
    /* Pending means oks < needed; replies come only from asked replicas. */
    size_t could = q->asked - q->fails; /* oks plus those still out */
    size_t lack = could < q->needed ? q->needed - could : 0;
    size_t left = q->n - q->asked;
    return lack < left ? lack : left;
}

int quorum_ask_next(quorum *q)
{
    if (q->asked >= q->n)
        return -1;
    return (int)q->asked++;
}

size_t quorum_reserves(const quorum *q) { return q->n - q->asked; }

/* The slot of an asked replica, or -1. */
static int slot_of(const quorum *q, const char *replica)
{
    for (size_t i = 0; i < q->asked; i++)
        if (strcmp(q->slot[i].replica, replica) == 0)
            return (int)i;
    return -1;
}

int quorum_set_joint(quorum *q, uint32_t mask_a, size_t needed_a, uint32_t mask_b,
                     size_t needed_b)
{
    uint32_t mask[2] = {mask_a, mask_b};
    size_t needed[2] = {needed_a, needed_b};
    uint32_t all = q->n >= 32 ? UINT32_MAX : ((uint32_t)1 << q->n) - 1;
    for (size_t g = 0; g < 2; g++) {
        size_t size = (size_t)__builtin_popcount(mask[g] & all);
        if (needed[g] == 0 || needed[g] > size)
            return -1;
        q->group[g].mask = mask[g] & all;
        q->group[g].size = size;
        q->group[g].needed = needed[g];
        q->group[g].oks = q->group[g].fails = 0;
    }
    q->ngroups = 2;
    q->needed = needed_a > needed_b ? needed_a : needed_b; /* for messages */
    return 0;
}

static void decide(quorum *q)
{
    if (q->outcome != QUORUM_PENDING)
        return;
    if (q->ngroups) {
        bool ok = true;
        for (size_t g = 0; g < q->ngroups; g++) {
            if (q->group[g].size - q->group[g].fails < q->group[g].needed) {
                q->outcome = QUORUM_FAILED;
                return;
            }
            ok = ok && q->group[g].oks >= q->group[g].needed;
        }
        if (ok)
            q->outcome = QUORUM_SUCCESS;
        return;
    }
    if (q->oks >= q->needed)
        q->outcome = QUORUM_SUCCESS;
    else if (q->n - q->fails < q->needed)
        q->outcome = QUORUM_FAILED; /* even if every other replica answers */
}

quorum_outcome quorum_on_reply(quorum *q, const char *replica, const quorum_reply *r)
{
    int i = slot_of(q, replica);
    return i < 0 ? q->outcome /* a stranger */ : quorum_on_reply_at(q, (size_t)i, r);
}

quorum_outcome quorum_on_reply_at(quorum *q, size_t i, const quorum_reply *r)
{
    if (i >= q->n || q->slot[i].state != QUORUM_WAITING)
        return q->outcome; /* out of range, or a duplicate */
    q->slot[i].reply = *r;
    for (size_t g = 0; g < q->ngroups; g++) {
        if (q->group[g].mask & ((uint32_t)1 << i)) {
            if (r->ok)
                q->group[g].oks++;
            else
                q->group[g].fails++;
        }
    }
    if (!r->ok) {
        q->slot[i].state = QUORUM_ANSWERED_FAIL;
        q->fails++;
    } else {
        q->slot[i].state = QUORUM_ANSWERED_OK;
        q->oks++;
        if (q->is_read && r->found &&
            (q->newest < 0 || quorum_version_cmp(&r->version, &q->slot[q->newest].reply.version) > 0))
            q->newest = i;
    }
    decide(q);
    return q->outcome;
}

quorum_outcome quorum_on_failure(quorum *q, const char *replica)
{
    quorum_reply r = {.ok = false};
    return quorum_on_reply(q, replica, &r);
}

quorum_outcome quorum_check_deadline(quorum *q, uint64_t now_ms)
{
    if (q->outcome == QUORUM_PENDING && now_ms >= q->deadline_ms)
        q->outcome = QUORUM_TIMEOUT;
    return q->outcome;
}

const quorum_reply *quorum_newest(const quorum *q)
{
    return q->newest < 0 ? NULL : &q->slot[q->newest].reply;
}

size_t quorum_stale(const quorum *q, size_t *out)
{
    size_t k = 0;
    const quorum_reply *best = quorum_newest(q);
    if (!q->is_read || !best)
        return 0;
    for (size_t i = 0; i < q->n; i++) {
        if (q->slot[i].state != QUORUM_ANSWERED_OK || (int)i == q->newest)
            continue;
        const quorum_reply *r = &q->slot[i].reply;
        if (!r->found || quorum_version_cmp(&r->version, &best->version) < 0)
            out[k++] = i;
    }
    return k;
}
