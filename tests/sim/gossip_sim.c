/* gossip-sim: runs N instances of the real gossip state machine (node/gossip.c)
 * in one process on a simulated network (per-packet latency, loss), in
 * event-driven simulated time, and measures what the README's table shows:
 * time until a join and a crash are known by every node, false suspicions
 * and deaths, and bytes sent per node per second. Seeded: a run replays.
 *   gossip-sim --nodes N --loss PCT --seed S --duration SECONDS [--json] [--check]
 * --check exits 1 when the join or the crash is not known by all in time, or
 * when a node that never crashed was declared dead.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gossip.h"

#define NSEEDS         3
#define LAT_MIN_US     200
#define LAT_MAX_US     2000
#define JOIN_LIMIT_US  (60ULL * 1000000)  /* --check bound for a join */
#define CRASH_LIMIT_US (120ULL * 1000000) /* --check bound for a crash */
#define CRASH_AFTER_US (15ULL * 1000000)  /* crash this long after the join */

typedef enum ev_type { EV_WAKE, EV_DELIVER, EV_PUSHPULL } ev_type;

typedef struct pkt {
    int from, to;
    size_t len;
    uint8_t data[];
} pkt;

typedef struct ev {
    uint64_t at, order; /* order keeps ties first-in, first-out */
    ev_type type;
    int node;
    void *p; /* EV_DELIVER: pkt; EV_PUSHPULL: pp_req */
} ev;

typedef struct pp_req {
    int from, to;
    bool join;
} pp_req;

struct sim;

typedef struct snode {
    struct sim *sim;
    int idx;
    gossip *g;
    bool up;
    uint64_t wake_us;       /* the live EV_WAKE entry; others are stale */
    uint32_t alive_known;   /* other members this node holds ALIVE */
    uint64_t suspected_inc; /* 1 + highest incarnation at which it was suspected */
    bool knows_joiner, knows_dead;
    uint64_t udp_bytes, pp_bytes;
} snode;

typedef struct sim {
    int n;       /* initial nodes; node n is the late joiner */
    double loss; /* percent */
    uint64_t rng, now_us, order;
    snode *nodes;
    ev *heap;
    size_t nheap, capheap;
    int joiner, crashed;
    uint32_t joiner_known, crash_known, up_count;
    uint64_t join_at, join_done, crash_at, crash_done;
    uint64_t false_suspicions, false_deaths;
} sim;

static uint64_t srand64(sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "gossip-sim: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- the event queue: a binary min-heap on (at, order) ---- */

static bool before(const ev *a, const ev *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void push(sim *s, uint64_t at, ev_type type, int node, void *p)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 4096;
        s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
        if (!s->heap)
            exit(2);
    }
    size_t i = s->nheap++;
    ev e = {.at = at, .order = s->order++, .type = type, .node = node, .p = p};
    while (i > 0 && before(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static ev pop(sim *s)
{
    ev top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap > 0)
        s->heap[i] = last;
    return top;
}

/* ---- addresses and ids ---- */

static void addr_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "10.%d.%d.%d:7946", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static int index_of(const char *addr)
{
    int a, b, c;
    if (sscanf(addr, "10.%d.%d.%d:7946", &a, &b, &c) != 3)
        return -1;
    return a << 16 | b << 8 | c;
}

static int id_index(const char *id)
{
    return atoi(id + 4);
} /* "node123" */

/* ---- the gossip_io of each instance ---- */

static uint64_t latency(sim *s)
{
    return LAT_MIN_US + srand64(s) % (LAT_MAX_US - LAT_MIN_US + 1);
}

static void io_send(void *ctx, const char *addr, const uint8_t *buf, size_t len)
{
    snode *nd = ctx;
    sim *s = nd->sim;
    int to = index_of(addr);
    nd->udp_bytes += len;
    if (to < 0 || to > s->n || (double)(srand64(s) % 100000) < s->loss * 1000.0)
        return;
    pkt *p = xmalloc(sizeof(*p) + len);
    p->from = nd->idx;
    p->to = to;
    p->len = len;
    memcpy(p->data, buf, len);
    push(s, s->now_us + latency(s), EV_DELIVER, to, p);
}

static void io_pushpull(void *ctx, const char *addr, bool join)
{
    snode *nd = ctx;
    sim *s = nd->sim;
    pp_req *r = xmalloc(sizeof(*r));
    r->from = nd->idx;
    r->to = index_of(addr);
    r->join = join;
    push(s, s->now_us + 2 * latency(s), EV_PUSHPULL, nd->idx, r);
}

/* Counts what every observer learns, as it learns it. */
static void io_event(void *ctx, const gossip_event *e)
{
    snode *nd = ctx;
    sim *s = nd->sim;
    int who = id_index(e->member->id);
    bool was_alive = e->type != GOSSIP_EV_JOIN && e->old_state == GOSSIP_ALIVE;
    bool is_alive = e->member->state == GOSSIP_ALIVE;
    if (e->type == GOSSIP_EV_UPDATE)
        return;
    nd->alive_known += (uint32_t)is_alive - (uint32_t)was_alive;
    /* one suspicion spreads to every node: count it once per incarnation */
    snode *m = who >= 0 && who <= s->n ? &s->nodes[who] : NULL;
    if (m && e->type == GOSSIP_EV_STATE && who != s->crashed) {
        if (e->member->state == GOSSIP_SUSPECT && e->member->incarnation + 1 > m->suspected_inc) {
            m->suspected_inc = e->member->incarnation + 1;
            s->false_suspicions++;
        }
        s->false_deaths += e->member->state == GOSSIP_DEAD;
    }
    if (who == s->joiner && is_alive && !nd->knows_joiner) {
        nd->knows_joiner = true;
        if (++s->joiner_known == s->up_count - 1)
            s->join_done = s->now_us;
    }
    if (who == s->crashed && e->member->state == GOSSIP_DEAD && !nd->knows_dead) {
        nd->knows_dead = true;
        if (++s->crash_known == s->up_count)
            s->crash_done = s->now_us;
    }
}

/* ---- driving instances ---- */

static uint64_t now_ms(const sim *s)
{
    return s->now_us / 1000;
}

/* After any input, the instance's next deadline may have moved. */
static void retick(sim *s, snode *nd)
{
    uint64_t next = gossip_tick(nd->g, now_ms(s)) * 1000;
    if (next <= s->now_us)
        next = s->now_us + 1000;
    if (next != nd->wake_us) {
        nd->wake_us = next;
        push(s, next, EV_WAKE, nd->idx, NULL);
    }
}

static void start_node(sim *s, int i)
{
    snode *nd = &s->nodes[i];
    gossip_config cfg;
    gossip_member self = {.state = GOSSIP_ALIVE, .incarnation = 1, .vnodes = 128};
    gossip_io io = {.ctx = nd, .send = io_send, .pushpull = io_pushpull, .event = io_event};
    char seeds[NSEEDS][GOSSIP_ADDR_MAX];
    const char *sp[NSEEDS];
    gossip_config_defaults(&cfg);
    snprintf(self.id, sizeof self.id, "node%d", i);
    addr_of(i, self.peer_addr, sizeof self.peer_addr);
    snprintf(self.client_addr, sizeof self.client_addr, "10.%d.%d.%d:7000", (i >> 16) & 255,
             (i >> 8) & 255, i & 255);
    nd->g = gossip_new(&cfg, &self, &io, srand64(s), now_ms(s));
    if (!nd->g)
        exit(2);
    nd->up = true;
    s->up_count++;
    for (int k = 0; k < NSEEDS; k++) {
        addr_of(k, seeds[k], sizeof seeds[k]);
        sp[k] = seeds[k];
    }
    gossip_join(nd->g, now_ms(s), sp, (size_t)(s->n < NSEEDS ? s->n : NSEEDS));
    retick(s, nd);
}

static void run_pushpull(sim *s, pp_req *r)
{
    snode *a = &s->nodes[r->from], *b = r->to >= 0 && r->to <= s->n ? &s->nodes[r->to] : NULL;
    bool ok = false;
    char err[256], addr[GOSSIP_ADDR_MAX];
    if (!a->up)
        return;
    if (b && b->up) {
        uint8_t *buf;
        size_t len;
        if (gossip_encode_state(a->g, r->join, &buf, &len) != 0)
            exit(2);
        a->pp_bytes += len;
        gossip_merge_result rc = gossip_merge_state(b->g, now_ms(s), buf, len, err, sizeof err);
        free(buf);
        if (rc == GOSSIP_MERGE_OK) {
            if (gossip_encode_state(b->g, false, &buf, &len) != 0)
                exit(2);
            b->pp_bytes += len;
            ok = gossip_merge_state(a->g, now_ms(s), buf, len, err, sizeof err) == GOSSIP_MERGE_OK;
            free(buf);
        }
        retick(s, b);
    }
    addr_of(r->to, addr, sizeof addr);
    gossip_pushpull_done(a->g, now_ms(s), addr, ok);
    retick(s, a);
}

static void dispatch(sim *s, ev e)
{
    snode *nd = &s->nodes[e.node];
    char from[GOSSIP_ADDR_MAX];
    switch (e.type) {
    case EV_WAKE:
        if (nd->up && e.at == nd->wake_us) {
            nd->wake_us = 0;
            retick(s, nd);
        }
        break;
    case EV_DELIVER: {
        pkt *p = e.p;
        if (nd->up) {
            addr_of(p->from, from, sizeof from);
            gossip_receive(nd->g, now_ms(s), from, p->data, p->len);
            retick(s, nd);
        }
        free(p);
        break;
    }
    case EV_PUSHPULL:
        run_pushpull(s, e.p);
        free(e.p);
        break;
    }
}

/* Runs events until time `until` or until done() holds. */
static void run_until(sim *s, uint64_t until, bool (*done)(const sim *))
{
    while (s->nheap > 0 && s->heap[0].at <= until && !(done && done(s))) {
        ev e = pop(s);
        s->now_us = e.at;
        dispatch(s, e);
    }
    if (!(done && done(s)) && s->now_us < until)
        s->now_us = until;
}

static bool converged(const sim *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->nodes[i].alive_known < (uint32_t)s->n - 1)
            return false;
    return true;
}

static bool join_known(const sim *s)
{
    return s->join_done != 0;
}
static bool crash_known(const sim *s)
{
    return s->crash_done != 0;
}

/* ---- the scenario ---- */

typedef struct result {
    double converge_s, join_s, crash_s, udp_bps, pp_bps, wall_s;
} result;

static double secs(uint64_t us)
{
    return (double)us / 1e6;
}

static void totals(const sim *s, uint64_t *udp, uint64_t *pp)
{
    *udp = *pp = 0;
    for (int i = 0; i <= s->n; i++) {
        *udp += s->nodes[i].udp_bytes;
        *pp += s->nodes[i].pp_bytes;
    }
}

static result scenario(sim *s, double duration_s)
{
    result r = {.join_s = -1, .crash_s = -1};
    clock_t wall = clock();
    /* N nodes start over up to 10 s, each joining through the seeds */
    uint64_t spread = (uint64_t)s->n * 10000;
    if (spread > 10000000)
        spread = 10000000;
    for (int i = 0; i < s->n; i++) {
        s->now_us = spread * (uint64_t)i / (uint64_t)s->n;
        run_until(s, s->now_us, NULL);
        start_node(s, i);
    }
    run_until(s, 600ULL * 1000000, converged);
    r.converge_s = converged(s) ? secs(s->now_us) : -1;
    run_until(s, s->now_us + 10 * 1000000, NULL); /* settle */

    uint64_t udp0, pp0, udp1, pp1, t0 = s->now_us;
    totals(s, &udp0, &pp0);
    s->joiner = s->n;
    s->join_at = s->now_us;
    start_node(s, s->joiner);
    run_until(s, t0 + CRASH_AFTER_US, join_known);
    if (s->join_done)
        r.join_s = secs(s->join_done - s->join_at);
    run_until(s, t0 + CRASH_AFTER_US, NULL);

    s->crashed = NSEEDS + (int)(srand64(s) % (uint64_t)(s->n - NSEEDS));
    s->nodes[s->crashed].up = false;
    s->up_count--;
    s->crash_at = s->now_us;
    run_until(s, s->crash_at + CRASH_LIMIT_US, crash_known);
    if (s->crash_done)
        r.crash_s = secs(s->crash_done - s->crash_at);
    uint64_t end = t0 + (uint64_t)(duration_s * 1e6);
    run_until(s, end > s->now_us ? end : s->now_us, NULL);

    totals(s, &udp1, &pp1);
    double window = secs(s->now_us - t0), nodes = (double)s->n + 1;
    r.udp_bps = (double)(udp1 - udp0) / nodes / window;
    r.pp_bps = (double)(pp1 - pp0) / nodes / window;
    r.wall_s = (double)(clock() - wall) / CLOCKS_PER_SEC;
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: gossip-sim [--nodes N] [--loss PCT] [--seed S] [--duration SECONDS]"
                    " [--json] [--check]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int nodes = 100;
    double loss = 0, duration = 60;
    uint64_t seed = 1;
    bool json = false, check = false;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (!strcmp(argv[i], "--nodes") && more)
            nodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--loss") && more)
            loss = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && more)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--duration") && more)
            duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--check"))
            check = true;
        else
            usage();
    }
    if (nodes < NSEEDS + 2 || nodes > 100000 || loss < 0 || loss > 100 || duration < 30)
        usage();

    sim s = {.n = nodes, .loss = loss, .rng = seed, .joiner = -1, .crashed = -1};
    s.nodes = calloc((size_t)nodes + 1, sizeof(*s.nodes));
    if (!s.nodes)
        return 2;
    for (int i = 0; i <= nodes; i++) {
        s.nodes[i].sim = &s;
        s.nodes[i].idx = i;
    }
    result r = scenario(&s, duration);
    if (json)
        printf("{\"nodes\": %d, \"loss_pct\": %g, \"seed\": %" PRIu64 ", \"converge_s\": %.2f, "
               "\"join_known_s\": %.2f, \"crash_known_s\": %.2f, \"false_suspicions\": %" PRIu64
               ", \"false_deaths\": %" PRIu64 ", \"udp_bytes_per_node_s\": %.0f, "
               "\"pushpull_bytes_per_node_s\": %.0f, \"wall_s\": %.1f}\n",
               nodes, loss, seed, r.converge_s, r.join_s, r.crash_s, s.false_suspicions,
               s.false_deaths, r.udp_bps, r.pp_bps, r.wall_s);
    else
        printf("| %6d | %5.1f%% | %8.2f | %7.2f | %8.2f | %6" PRIu64 " | %5" PRIu64
               " | %7.0f | %7.0f | %7.0f | %6.1f |\n",
               nodes, loss, r.converge_s, r.join_s, r.crash_s, s.false_suspicions, s.false_deaths,
               r.udp_bps, r.pp_bps, r.udp_bps + r.pp_bps, r.wall_s);
    for (int i = 0; i <= nodes; i++)
        gossip_free(s.nodes[i].g);
    while (s.nheap > 0) {
        ev e = pop(&s);
        free(e.p);
    }
    free(s.heap);
    free(s.nodes);
    if (check && (r.join_s < 0 || r.crash_s < 0 || s.false_deaths > 0 || r.converge_s < 0)) {
        fprintf(stderr,
                "gossip-sim: check failed (join %.2f s, crash %.2f s, false deaths %" PRIu64 ")\n",
                r.join_s, r.crash_s, s.false_deaths);
        return 1;
    }
    return 0;
}
