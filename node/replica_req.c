/* replica_req: the replication layer's requests (see replica_int.h): kept
 * for reuse, found by id, and their failures reported from a deferred
 * event. replica.c sends them on its links and answers them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "replica_int.h"

/* ---- requests: kept for reuse ----
 * A request per replica write and read: calloc and free apiece went to
 * malloc's slow path (a pass sends more than its per-size cache holds) and
 * were 9% of a node under pipelined SETs at consistency one. As many are
 * kept as two links can have in flight before backpressure (4096 kept
 * still left malloc and free at 6% there): at 88 bytes a request (its
 * failure message lives apart), at most 3 MB. */
#define REPLICA_SPARE_REQS (2 * REPLICA_PRESSURE_HIGH)

req *replica_req_get(replica *r)
{
    req *q = r->req_spare;
    if (!q)
        return malloc(sizeof *q);
    r->req_spare = q->next;
    r->nreq_spare--;
    /* The next pop reads the next spare's link: deep in a list of
     * thousands it is out of the CPU's cache, and that miss was 4% of a
     * node under SET -P16 at one. */
    if (r->req_spare)
        __builtin_prefetch(r->req_spare);
    return q;
}

void replica_req_free(req *q)
{
    free(q->fail);
    free(q);
}

void replica_req_put(replica *r, req *q)
{
    if (r->nreq_spare >= REPLICA_SPARE_REQS) {
        replica_req_free(q);
        return;
    }
    free(q->fail);
    q->fail = NULL;
    q->next = r->req_spare;
    r->req_spare = q;
    r->nreq_spare++;
}

void replica_req_fail(req *q, const char *to, const char *fmt, ...)
{
    if (!q->fail && !(q->fail = malloc(sizeof *q->fail)))
        return;
    replica_copy_id(q->fail->to, sizeof q->fail->to, to);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->fail->why, sizeof q->fail->why, fmt, ap);
    va_end(ap);
}

/* ---- the id table ---- */

int replica_table_grow(replica *r)
{
    size_t n = r->nbuckets ? r->nbuckets * 2 : 1024;
    req **t = calloc(n, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < r->nbuckets; i++)
        for (req *q = r->table[i], *nx; q; q = nx) {
            nx = q->hnext;
            q->hnext = t[q->id & (n - 1)];
            t[q->id & (n - 1)] = q;
        }
    free(r->table);
    r->table = t;
    r->nbuckets = n;
    return 0;
}

void replica_table_del(replica *r, req *q)
{
    for (req **pp = &r->table[q->id & (r->nbuckets - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == q) {
            *pp = q->hnext;
            r->nreqs--;
            return;
        }
}

req *replica_table_find(replica *r, uint64_t id)
{
    if (!r->nbuckets)
        return NULL;
    for (req *q = r->table[id & (r->nbuckets - 1)]; q; q = q->hnext)
        if (q->id == id)
            return q;
    return NULL;
}

/* ---- failures, reported from a deferred event ---- */

void replica_fail_later(replica *r, req *q)
{
    q->ln = NULL;
    q->next = NULL;
    if (r->done_tail)
        r->done_tail->next = q;
    else
        r->done_head = q;
    r->done_tail = q;
    r->n.failures++;
    event_active(r->done_ev, EV_TIMEOUT, 1);
}

void replica_on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replica *r = arg;
    while (r->dead) {
        dead_bev *d = r->dead;
        r->dead = d->next;
        bufferevent_free(d->bev);
        free(d);
    }
    while (r->done_head) {
        req *q = r->done_head;
        r->done_head = q->next;
        if (!r->done_head)
            r->done_tail = NULL;
        const char *to = q->fail ? q->fail->to : "";
        const char *why = q->fail ? q->fail->why : "out of memory";
        if (q->env_cb) {
            q->env_cb(q->arg, to, NULL, why);
        } else {
            replica_reply rep = {.ok = false, .error = why};
            q->cb(q->arg, to, &rep);
        }
        replica_req_put(r, q);
    }
}
