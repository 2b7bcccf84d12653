/* gossip_queue: broadcast queue with a retransmit limit (see gossip_queue.h).
 * Items sit in one list per transmit count, so "least transmitted first" is a
 * walk from bucket 0 up, with no sorting on the hot path.
 */
#include "gossip_queue.h"

#include <stdlib.h>
#include <string.h>

/* A nearly full datagram stops the walk after this many records in a row
 * that did not fit: with a thousand pending, scanning them all for the one
 * that might fit costs more than it saves. */
#define QUEUE_MAX_MISSES 16

struct gossip_qitem {
    gossip_qitem *prev, *next;
    gossip_qitem **slot; /* the owner's handle, cleared when the item retires */
    uint32_t tx;         /* transmissions so far = index of its bucket */
    size_t len;
    uint8_t data[];
};

typedef struct bucket {
    gossip_qitem *head, *tail;
} bucket;

struct gossip_queue {
    bucket b[GOSSIP_QUEUE_MAX_LIMIT];
    size_t n;
    size_t min_len;        /* no record ever queued was shorter */
    gossip_qitem **chosen; /* scratch for gossip_queue_fill */
    size_t chosen_cap;
};

gossip_queue *gossip_queue_new(void)
{
    return calloc(1, sizeof(gossip_queue));
}

static void unlink_item(gossip_queue *q, gossip_qitem *it)
{
    bucket *b = &q->b[it->tx];
    if (it->prev)
        it->prev->next = it->next;
    else
        b->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        b->tail = it->prev;
    it->prev = it->next = NULL;
    q->n--;
}

static void push_front(gossip_queue *q, gossip_qitem *it)
{
    bucket *b = &q->b[it->tx];
    it->prev = NULL;
    it->next = b->head;
    if (b->head)
        b->head->prev = it;
    else
        b->tail = it;
    b->head = it;
    q->n++;
}

static void retire(gossip_queue *q, gossip_qitem *it)
{
    unlink_item(q, it);
    if (it->slot)
        *it->slot = NULL;
    free(it);
}

void gossip_queue_free(gossip_queue *q)
{
    if (!q)
        return;
    for (size_t t = 0; t < GOSSIP_QUEUE_MAX_LIMIT; t++)
        while (q->b[t].head)
            retire(q, q->b[t].head);
    free(q->chosen);
    free(q);
}

int gossip_queue_put(gossip_queue *q, gossip_qitem **slot, const uint8_t *rec, size_t len)
{
    gossip_qitem *it = malloc(sizeof(*it) + len);
    if (!it)
        return -1;
    if (q->min_len == 0 || len < q->min_len)
        q->min_len = len;
    gossip_queue_cancel(q, slot);
    it->slot = slot;
    it->tx = 0;
    it->len = len;
    memcpy(it->data, rec, len);
    push_front(q, it);
    *slot = it;
    return 0;
}

void gossip_queue_cancel(gossip_queue *q, gossip_qitem **slot)
{
    if (*slot)
        retire(q, *slot);
}

size_t gossip_queue_len(const gossip_queue *q)
{
    return q->n;
}

/* A limit that shrank (the cluster got smaller) retires what is past it. */
static void retire_past(gossip_queue *q, uint32_t limit)
{
    for (uint32_t t = limit; t < GOSSIP_QUEUE_MAX_LIMIT; t++)
        while (q->b[t].head)
            retire(q, q->b[t].head);
}

static int reserve_chosen(gossip_queue *q, size_t need)
{
    if (need <= q->chosen_cap)
        return 0;
    size_t cap = q->chosen_cap ? q->chosen_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    gossip_qitem **c = realloc(q->chosen, cap * sizeof(*c));
    if (!c)
        return -1;
    q->chosen = c;
    q->chosen_cap = cap;
    return 0;
}

/* Moves each chosen item one bucket up (or retires it), in reverse so that
 * items keep their relative order at the head of their new bucket. */
static void promote(gossip_queue *q, size_t nchosen, uint32_t limit)
{
    for (size_t i = nchosen; i-- > 0;) {
        gossip_qitem *it = q->chosen[i];
        unlink_item(q, it);
        if (++it->tx >= limit) {
            if (it->slot)
                *it->slot = NULL;
            free(it);
        } else {
            push_front(q, it);
        }
    }
}

size_t gossip_queue_fill(gossip_queue *q, uint8_t *buf, size_t cap, uint32_t limit)
{
    size_t used = 0, nchosen = 0, misses = 0;
    if (limit < 1)
        limit = 1;
    if (limit > GOSSIP_QUEUE_MAX_LIMIT)
        limit = GOSSIP_QUEUE_MAX_LIMIT;
    retire_past(q, limit);
    if (reserve_chosen(q, q->n) != 0)
        return 0;
    for (uint32_t t = 0; t < limit; t++) {
        for (gossip_qitem *it = q->b[t].head; it; it = it->next) {
            if (cap - used < q->min_len || misses >= QUEUE_MAX_MISSES)
                goto done;
            if (it->len > cap - used) {
                misses++;
                continue;
            }
            memcpy(buf + used, it->data, it->len);
            used += it->len;
            q->chosen[nchosen++] = it;
        }
    }
done:
    promote(q, nchosen, limit);
    return used;
}
