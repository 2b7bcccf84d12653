/* fault_check: the workload and the lost-write checker of the fault suite
 * (tests/fault/run.sh drives it while a nemesis injects faults).
 *
 *   fault-check run   --addrs A,B,C --state FILE [options]   the workload
 *   fault-check check --addrs A,B,C --state FILE [options]   the checker
 *
 * Workload: --clients threads, each with its own libringkv client, each the
 * only writer of its --keys keys ("fc:<client>:<k>"). A writer's writes to a
 * key are sequential and numbered 1, 2, ...; the value names the key and the
 * number ("fc:<client>:<k>:<seq>:" and padding), so any value read says which
 * write it came from. Writes and reads are at quorum; reads go to any
 * client's keys. Every write's outcome is recorded (acknowledged,
 * unavailable, timeout, connection error), so the checker knows each key's
 * acknowledged writes.
 *
 * Why values and not versions: a writer's writes to one key never overlap
 * (the next is sent only after the previous one was answered or given up), so
 * a later write must win over an earlier one. A read that returns write s of
 * a key therefore shows that no write numbered above s is visible: every
 * acknowledged write above s is lost (for the final read at `all`) or was
 * missed (stale, for a read during the run). This needs no version from the
 * node, and it cannot be fooled by a write that timed out but was applied:
 * such a write has its own number and counts for nothing.
 *
 * Checker, after the cluster has settled: every key is read at quorum
 * (a stale answer now is counted too) and then at `all`; an acknowledged
 * write above the number read is lost. A value that no write of the key
 * could have produced is "corrupt". The exit status is 1 when anything was
 * lost or corrupt, or a key could not be read; 0 otherwise.
 *
 * --sabotage N (check only) is the checker's self-test: before checking it
 * rolls N acknowledged keys back at `all` (half to their previous write's
 * value, half deleted), as a lossy store would, and the checker must then
 * report those writes lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringkv.h"

#define MAX_CLIENTS 64
#define MAX_KEYS 100000
#define ERROR_PAUSE_MS 10 /* a client pauses after a failed request, as a real one would */
#define FINAL_TRIES 10       /* reads of one key at the end, 1 s apart... */
#define FINAL_RETRY_MS 30000 /* ...while the whole check has retried less than this */

/* What happened to one write, as recorded in the state file. */
enum { W_NONE = 0, W_ACK = 'A', W_UNAVAIL = 'U', W_TIMEOUT = 'T', W_IO = 'I', W_OTHER = 'E' };

typedef struct key_rec {
    char name[32];
    int owner;
    _Atomic uint64_t sent;  /* highest write number sent (or about to be) */
    _Atomic uint64_t acked; /* highest acknowledged write number */
    char *outcome;          /* outcome[s - 1] for write s; written by the owner only */
    size_t cap;
} key_rec;

/* Counters of one phase; the workload threads add to them atomically. */
typedef struct counters {
    _Atomic uint64_t writes, acked, reads, reads_ok, stale, corrupt;
    _Atomic uint64_t unavail, timeout, io, other;
} counters;

typedef struct opts {
    const char *addrs, *state, *faults, *mode;
    int clients, keys, duration_s, report_s, timeout_ms, value_bytes, read_pct, sabotage, rate;
    unsigned seed;
} opts;

typedef struct run {
    opts o;
    key_rec *keys;
    size_t nkeys;
    counters c;
    atomic_int stop;
    long long t0;
} run;

typedef struct worker {
    run *r;
    int id;
    uint64_t rng;
    pthread_t th;
} worker;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t rnd(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Which key and write number a value holds; 0 on success, -1 if it is no
 * value this workload writes. */
static int parse_value(const char *v, size_t len, const key_rec *k, uint64_t *seq)
{
    size_t kl = strlen(k->name);
    if (len < kl + 3 || memcmp(v, k->name, kl) != 0 || v[kl] != ':')
        return -1;
    uint64_t s = 0;
    size_t i = kl + 1;
    for (; i < len && v[i] >= '0' && v[i] <= '9' && i < kl + 21; i++)
        s = s * 10 + (uint64_t)(v[i] - '0');
    if (i == kl + 1 || i >= len || v[i] != ':' || s == 0)
        return -1;
    *seq = s;
    return 0;
}

static size_t make_value(char *buf, size_t cap, const key_rec *k, uint64_t seq, int bytes)
{
    int n = snprintf(buf, cap, "%s:%" PRIu64 ":", k->name, seq);
    size_t len = (size_t)n;
    for (; (int)len < bytes && len < cap; len++)
        buf[len] = (char)('a' + len % 26);
    return len;
}

/* Counts a failed request. The first few failures of each kind are also
 * printed with the client's message (20 of an unexpected kind), since the
 * table alone would not say what they were. */
static void count_error(counters *c, rkv_status st, rkv_client *cl, const char *what)
{
    uint64_t n;
    switch (st) {
    case RKV_ERR_UNAVAILABLE: n = atomic_fetch_add(&c->unavail, 1); break;
    case RKV_ERR_TIMEOUT: n = atomic_fetch_add(&c->timeout, 1); break;
    case RKV_ERR_IO: n = atomic_fetch_add(&c->io, 1); break;
    default: n = atomic_fetch_add(&c->other, 1) < 20 ? 0 : 3; break;
    }
    if (n < 3)
        fprintf(stderr, "fault-check: %s failed with %s: %s\n", what, rkv_status_name(st),
                rkv_errstr(cl));
}

static char outcome_of(rkv_status st)
{
    switch (st) {
    case RKV_OK: return W_ACK;
    case RKV_ERR_UNAVAILABLE: return W_UNAVAIL;
    case RKV_ERR_TIMEOUT: return W_TIMEOUT;
    case RKV_ERR_IO: return W_IO;
    default: return W_OTHER;
    }
}

static int record_outcome(key_rec *k, uint64_t seq, char what)
{
    if (seq > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        while (cap < seq)
            cap *= 2;
        char *p = realloc(k->outcome, cap);
        if (!p)
            return -1;
        memset(p + k->cap, W_NONE, cap - k->cap);
        k->outcome = p;
        k->cap = cap;
    }
    k->outcome[seq - 1] = what;
    return 0;
}

/* Acknowledged writes of k numbered above seq: what a read of write seq
 * does not show. */
static uint64_t acked_above(const key_rec *k, uint64_t seq)
{
    uint64_t n = 0, sent = atomic_load(&k->sent);
    for (uint64_t s = seq + 1; s <= sent && s <= k->cap; s++)
        n += k->outcome[s - 1] == W_ACK;
    return n;
}

static rkv_client *new_client(const opts *o)
{
    rkv_options ro = {.connect_timeout_ms = o->timeout_ms / 2, .request_timeout_ms = o->timeout_ms};
    char err[256];
    rkv_client *c = rkv_connect(o->addrs, &ro, err, sizeof err);
    if (!c)
        fprintf(stderr, "fault-check: %s\n", err);
    return c;
}

/* A read at the client's consistency: the write number seen (0: absent),
 * -1 on a failed request (counted), -2 on a corrupt value (counted). */
static int64_t read_key(rkv_client *c, key_rec *k, counters *cnt)
{
    void *v = NULL;
    size_t len = 0;
    rkv_status st = rkv_get(c, k->name, strlen(k->name), &v, &len);
    atomic_fetch_add(&cnt->reads, 1);
    if (st == RKV_NOT_FOUND) {
        atomic_fetch_add(&cnt->reads_ok, 1);
        return 0;
    }
    if (st != RKV_OK) {
        count_error(cnt, st, c, "a read");
        return -1;
    }
    atomic_fetch_add(&cnt->reads_ok, 1);
    uint64_t seq;
    int bad = parse_value(v, len, k, &seq) != 0 || seq > atomic_load(&k->sent);
    rkv_free(v);
    if (bad) {
        atomic_fetch_add(&cnt->corrupt, 1);
        fprintf(stderr, "fault-check: %s holds a value no write of it produced\n", k->name);
        return -2;
    }
    return (int64_t)seq;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    rkv_client *c = new_client(&r->o);
    if (!c)
        return NULL;
    rkv_set_consistency(c, RKV_CONSISTENCY_QUORUM);
    size_t vcap = (size_t)r->o.value_bytes + 64;
    char *val = malloc(vcap);
    /* --rate: each client paces itself to its share, without bursts after a
     * stall (a fault should show as a dip, not be made up for). */
    double period_ms = r->o.rate > 0 ? 1000.0 * r->o.clients / r->o.rate : 0;
    double next = (double)now_ms();
    while (val && !atomic_load(&r->stop)) {
        if (period_ms > 0) {
            double t = (double)now_ms();
            next = next + period_ms < t - 1000 ? t : next + period_ms;
            if (next > t)
                sleep_ms((int)(next - t));
        }
        if ((int)(rnd(&w->rng) % 100) < r->o.read_pct) {
            key_rec *k = &r->keys[rnd(&w->rng) % r->nkeys];
            /* Stale: older than a write acknowledged before the read began. */
            uint64_t floor = atomic_load(&k->acked);
            int64_t seen = read_key(c, k, &r->c);
            if (seen >= 0 && (uint64_t)seen < floor)
                atomic_fetch_add(&r->c.stale, 1);
            if (seen == -1)
                sleep_ms(ERROR_PAUSE_MS);
            continue;
        }
        key_rec *k = &r->keys[(size_t)w->id * (size_t)r->o.keys + rnd(&w->rng) % (uint64_t)r->o.keys];
        uint64_t seq = atomic_load(&k->sent) + 1;
        if (record_outcome(k, seq, W_NONE) != 0)
            break;
        atomic_store(&k->sent, seq); /* before sending: a read may see it at once */
        size_t len = make_value(val, vcap, k, seq, r->o.value_bytes);
        rkv_status st = rkv_put(c, k->name, strlen(k->name), val, len, 0);
        atomic_fetch_add(&r->c.writes, 1);
        k->outcome[seq - 1] = outcome_of(st);
        if (st == RKV_OK) {
            atomic_store(&k->acked, seq);
            atomic_fetch_add(&r->c.acked, 1);
        } else {
            count_error(&r->c, st, c, "a write");
            sleep_ms(ERROR_PAUSE_MS);
        }
    }
    free(val);
    rkv_close(c);
    return NULL;
}

static void print_counters(FILE *f, const char *prefix, const counters *c)
{
    fprintf(f,
            "%swrites=%" PRIu64 " acked=%" PRIu64 " reads=%" PRIu64 " reads_ok=%" PRIu64
            " stale=%" PRIu64 " corrupt=%" PRIu64 " unavailable=%" PRIu64 " timeout=%" PRIu64
            " io=%" PRIu64 " other=%" PRIu64 "\n",
            prefix, atomic_load(&c->writes), atomic_load(&c->acked), atomic_load(&c->reads),
            atomic_load(&c->reads_ok), atomic_load(&c->stale), atomic_load(&c->corrupt),
            atomic_load(&c->unavail), atomic_load(&c->timeout), atomic_load(&c->io),
            atomic_load(&c->other));
}

static int parse_counters(const char *line, counters *c)
{
    uint64_t v[10];
    if (sscanf(line,
               "writes=%" SCNu64 " acked=%" SCNu64 " reads=%" SCNu64 " reads_ok=%" SCNu64
               " stale=%" SCNu64 " corrupt=%" SCNu64 " unavailable=%" SCNu64 " timeout=%" SCNu64
               " io=%" SCNu64 " other=%" SCNu64,
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) != 10)
        return -1;
    atomic_store(&c->writes, v[0]);
    atomic_store(&c->acked, v[1]);
    atomic_store(&c->reads, v[2]);
    atomic_store(&c->reads_ok, v[3]);
    atomic_store(&c->stale, v[4]);
    atomic_store(&c->corrupt, v[5]);
    atomic_store(&c->unavail, v[6]);
    atomic_store(&c->timeout, v[7]);
    atomic_store(&c->io, v[8]);
    atomic_store(&c->other, v[9]);
    return 0;
}

/* State file: a header, the run's counters, then one line per key: name,
 * owner, highest write sent, highest acknowledged, and one letter per write
 * (A acknowledged, U unavailable, T timeout, I connection error, E other). */
static int save_state(const run *r)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->o.state);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "fault-check: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "fault-check-state 1 keys=%zu\n", r->nkeys);
    print_counters(f, "", &r->c);
    for (size_t i = 0; i < r->nkeys; i++) {
        const key_rec *k = &r->keys[i];
        uint64_t sent = atomic_load(&k->sent);
        fprintf(f, "%s %d %" PRIu64 " %" PRIu64 " ", k->name, k->owner, sent,
                atomic_load(&k->acked));
        for (uint64_t s = 1; s <= sent; s++)
            fputc(k->outcome[s - 1] ? k->outcome[s - 1] : '?', f);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, r->o.state) != 0) {
        fprintf(stderr, "fault-check: cannot write %s\n", r->o.state);
        return -1;
    }
    return 0;
}

static int load_state(run *r)
{
    FILE *f = fopen(r->o.state, "r");
    if (!f) {
        fprintf(stderr, "fault-check: cannot read %s: %s\n", r->o.state, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    size_t n = 0;
    int rc = -1;
    if (getline(&line, &cap, f) < 0 || sscanf(line, "fault-check-state 1 keys=%zu", &n) != 1 ||
        n == 0 || n > MAX_KEYS)
        goto out;
    r->keys = calloc(n, sizeof *r->keys);
    r->nkeys = n;
    if (!r->keys || getline(&line, &cap, f) < 0 || parse_counters(line, &r->c) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        key_rec *k = &r->keys[i];
        uint64_t sent, acked;
        int used = 0;
        if (getline(&line, &cap, f) < 0 ||
            sscanf(line, "%31s %d %" SCNu64 " %" SCNu64 " %n", k->name, &k->owner, &sent, &acked,
                   &used) != 4)
            goto out;
        if (sent > 0 && strlen(line + used) < sent)
            goto out;
        atomic_store(&k->sent, sent);
        atomic_store(&k->acked, acked);
        for (uint64_t s = 1; s <= sent; s++)
            if (record_outcome(k, s, line[used + s - 1]) != 0)
                goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "fault-check: %s is not a state file of this version\n", r->o.state);
    free(line);
    fclose(f);
    return rc;
}

static int init_keys(run *r)
{
    r->nkeys = (size_t)r->o.clients * (size_t)r->o.keys;
    r->keys = calloc(r->nkeys, sizeof *r->keys);
    if (!r->keys)
        return -1;
    for (int c = 0; c < r->o.clients; c++)
        for (int k = 0; k < r->o.keys; k++) {
            key_rec *kr = &r->keys[(size_t)c * (size_t)r->o.keys + (size_t)k];
            snprintf(kr->name, sizeof kr->name, "fc:%d:%d", c, k);
            kr->owner = c;
        }
    return 0;
}

static void free_keys(run *r)
{
    for (size_t i = 0; r->keys && i < r->nkeys; i++)
        free(r->keys[i].outcome);
    free(r->keys);
}

static atomic_int interrupted;
static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

/* The workload for --duration seconds; a progress line every --report-every
 * seconds ("t=10s ops/s=... " and the counters of that interval). */
static int cmd_run(run *r)
{
    if (init_keys(r) != 0)
        return 2;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    worker ws[MAX_CLIENTS];
    r->t0 = now_ms();
    for (int i = 0; i < r->o.clients; i++) {
        ws[i] = (worker){.r = r, .id = i, .rng = (uint64_t)r->o.seed * 7919 + (uint64_t)i * 104729 + 1};
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "fault-check: cannot start a client thread\n");
            atomic_store(&r->stop, 1);
            for (int k = 0; k < i; k++)
                pthread_join(ws[k].th, NULL);
            return 2;
        }
    }
    long long end = r->t0 + (long long)r->o.duration_s * 1000, next = r->t0 + r->o.report_s * 1000LL;
    uint64_t last_ops = 0, last_acked = 0, last_err = 0;
    while (now_ms() < end && !atomic_load(&interrupted)) {
        sleep_ms(100);
        if (r->o.report_s > 0 && now_ms() >= next) {
            uint64_t ops = atomic_load(&r->c.writes) + atomic_load(&r->c.reads);
            uint64_t acked = atomic_load(&r->c.acked);
            uint64_t err = atomic_load(&r->c.unavail) + atomic_load(&r->c.timeout) +
                           atomic_load(&r->c.io) + atomic_load(&r->c.other);
            printf("progress t=%llds ops/s=%.0f acked/s=%.0f failed=%" PRIu64 " stale=%" PRIu64 "\n",
                   (now_ms() - r->t0 + 500) / 1000, (double)(ops - last_ops) / r->o.report_s,
                   (double)(acked - last_acked) / r->o.report_s, err - last_err,
                   atomic_load(&r->c.stale));
            fflush(stdout);
            last_ops = ops;
            last_acked = acked;
            last_err = err;
            next += r->o.report_s * 1000LL;
        }
    }
    atomic_store(&r->stop, 1);
    for (int i = 0; i < r->o.clients; i++)
        pthread_join(ws[i].th, NULL);
    print_counters(stdout, "run ", &r->c);
    int rc = save_state(r) == 0 ? 0 : 2;
    free_keys(r);
    return rc;
}

/* The self-test: rolls n acknowledged keys back at `all`, as a store that
 * lost their last writes would look. Returns how many acknowledged writes
 * it undid, or -1. */
static long long sabotage(run *r, rkv_client *c, int n)
{
    rkv_set_consistency(c, RKV_CONSISTENCY_ALL);
    long long undone = 0;
    int done = 0;
    char val[256];
    for (size_t i = 0; i < r->nkeys && done < n; i++) {
        key_rec *k = &r->keys[i];
        uint64_t acked = atomic_load(&k->acked);
        if (acked < 2)
            continue;
        rkv_status st;
        /* Roll back to an earlier write of the key, or delete it. The new
         * stamp of this write makes it win, as an old replica winning by a
         * bad clock would. */
        uint64_t back = done % 2 == 0 ? acked - 1 : 0;
        if (back > 0) {
            size_t len = make_value(val, sizeof val, k, back, 16);
            st = rkv_put(c, k->name, strlen(k->name), val, len, 0);
        } else {
            st = rkv_del(c, k->name, strlen(k->name));
        }
        if (st != RKV_OK) {
            fprintf(stderr, "fault-check: sabotage of %s failed: %s\n", k->name, rkv_errstr(c));
            return -1;
        }
        undone += (long long)acked_above(k, back);
        done++;
    }
    printf("self-test: rolled back %d keys, undoing %lld acknowledged writes; the checker must "
           "report them lost\n",
           done, undone);
    return done == n ? undone : -1;
}

/* One key at consistency, retried while the cluster answers with errors. */
static int64_t final_read(rkv_client *c, key_rec *k, counters *cnt, long long *retried_ms)
{
    for (int t = 0;; t++) {
        int64_t s = read_key(c, k, cnt);
        if (s != -1)
            return s;
        if (t + 1 >= FINAL_TRIES || *retried_ms >= FINAL_RETRY_MS) {
            fprintf(stderr, "fault-check: cannot read %s: %s\n", k->name, rkv_errstr(c));
            return -1;
        }
        fprintf(stderr, "fault-check: reading %s: %s; retrying\n", k->name, rkv_errstr(c));
        long long t0 = now_ms();
        sleep_ms(1000);
        *retried_ms += now_ms() - t0;
    }
}

static int cmd_check(run *r)
{
    if (load_state(r) != 0)
        return 2;
    rkv_client *c = new_client(&r->o);
    if (!c)
        return 2;
    long long undone = 0;
    if (r->o.sabotage > 0 && (undone = sabotage(r, c, r->o.sabotage)) < 0) {
        rkv_close(c);
        return 2;
    }
    counters fin = {0};
    uint64_t lost = 0, lost_keys = 0, unreadable = 0, settled_stale = 0;
    uint64_t acked_total = 0, unacked_seen = 0;
    long long retried_ms = 0;
    for (size_t i = 0; i < r->nkeys; i++) {
        key_rec *k = &r->keys[i];
        acked_total += acked_above(k, 0);
        rkv_set_consistency(c, RKV_CONSISTENCY_QUORUM);
        int64_t q = final_read(c, k, &fin, &retried_ms);
        if (q >= 0 && (uint64_t)q < atomic_load(&k->acked))
            settled_stale++;
        rkv_set_consistency(c, RKV_CONSISTENCY_ALL);
        int64_t s = final_read(c, k, &fin, &retried_ms);
        if (s < 0) {
            unreadable++;
            continue;
        }
        uint64_t missing = acked_above(k, (uint64_t)s);
        if (missing > 0) {
            lost += missing;
            lost_keys++;
            fprintf(stderr,
                    "fault-check: LOST %s: reads write %" PRId64 ", but %" PRIu64
                    " acknowledged writes are newer (last acknowledged %" PRIu64 ")\n",
                    k->name, s, missing, atomic_load(&k->acked));
        }
        if (s > 0 && k->outcome[s - 1] != W_ACK)
            unacked_seen++;
    }
    rkv_close(c);

    const counters *rc = &r->c;
    uint64_t ops = atomic_load(&rc->writes) + atomic_load(&rc->reads);
    printf("\n");
    printf("| fault suite (%s) | |\n", r->o.mode ? r->o.mode : "cluster");
    printf("| --- | --- |\n");
    printf("| faults injected | %s |\n", r->o.faults && *r->o.faults ? r->o.faults : "none");
    printf("| operations | %" PRIu64 " (%" PRIu64 " writes, %" PRIu64 " reads at quorum) |\n", ops,
           atomic_load(&rc->writes), atomic_load(&rc->reads));
    printf("| acknowledged writes | %" PRIu64 " |\n", atomic_load(&rc->acked));
    printf("| lost acknowledged writes | %" PRIu64 " (in %" PRIu64 " keys) |\n", lost, lost_keys);
    printf("| stale reads at quorum | %" PRIu64 " during the run, %" PRIu64 " after settling |\n",
           atomic_load(&rc->stale), settled_stale);
    printf("| unavailable | %" PRIu64 " |\n", atomic_load(&rc->unavail));
    printf("| timeouts | %" PRIu64 " |\n", atomic_load(&rc->timeout));
    printf("| connection errors | %" PRIu64 " |\n", atomic_load(&rc->io));
    printf("| other errors | %" PRIu64 " |\n", atomic_load(&rc->other));
    printf("| corrupt values | %" PRIu64 " |\n", atomic_load(&rc->corrupt) + atomic_load(&fin.corrupt));
    printf("| keys checked at all | %zu (%" PRIu64 " unreadable; %" PRIu64
           " hold a write that was not acknowledged) |\n",
           r->nkeys, unreadable, unacked_seen);
    printf("\nRESULT ops=%" PRIu64 " acked=%" PRIu64 " lost=%" PRIu64 " stale=%" PRIu64
           " settled_stale=%" PRIu64 " unavailable=%" PRIu64 " timeout=%" PRIu64 " io=%" PRIu64
           " corrupt=%" PRIu64 " unreadable=%" PRIu64 "\n",
           ops, atomic_load(&rc->acked), lost, atomic_load(&rc->stale), settled_stale,
           atomic_load(&rc->unavail), atomic_load(&rc->timeout), atomic_load(&rc->io),
           atomic_load(&rc->corrupt) + atomic_load(&fin.corrupt), unreadable);
    if (acked_total != atomic_load(&rc->acked))
        fprintf(stderr, "fault-check: the state file records %" PRIu64 " acknowledged writes, the "
                        "counters %" PRIu64 "\n",
                acked_total, atomic_load(&rc->acked));
    int bad = lost > 0 || unreadable > 0 || atomic_load(&rc->corrupt) + atomic_load(&fin.corrupt) > 0;
    if (r->o.sabotage > 0)
        printf("self-test: %s (%lld acknowledged writes undone, %" PRIu64 " reported lost)\n",
               lost == (uint64_t)undone && bad ? "the checker caught the rollback"
                                               : "THE CHECKER MISSED THE ROLLBACK",
               undone, lost);
    free_keys(r);
    return bad ? 1 : 0;
}

static void usage(FILE *f)
{
    fputs("usage: fault-check run|check --addrs HOST:PORT,... --state FILE [options]\n"
          "  run:   --clients N (4) --keys N per client (50) --duration SECS (60)\n"
          "         --read-pct P (50) --value-bytes N (100) --timeout-ms MS (2000)\n"
          "         --report-every SECS (10, 0: never) --seed N (1)\n"
          "         --rate OPS total operations per second (0: as fast as they go)\n"
          "  check: --faults TEXT (for the table) --mode TEXT (for the table)\n"
          "         --sabotage N (self-test: roll back N keys first; exits 1 if caught)\n"
          "exit: 0 nothing lost, 1 a lost, corrupt or unreadable key, 2 usage or set-up error\n",
          f);
}

int main(int argc, char **argv)
{
    static run r;
    r.o = (opts){.clients = 4, .keys = 50, .duration_s = 60, .report_s = 10, .timeout_ms = 2000,
                 .value_bytes = 100, .read_pct = 50, .seed = 1};
    if (argc < 2 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "check") != 0)) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    static const struct option lo[] = {
        {"addrs", 1, 0, 'a'},        {"state", 1, 0, 's'},     {"clients", 1, 0, 'c'},
        {"keys", 1, 0, 'k'},         {"duration", 1, 0, 'd'},  {"read-pct", 1, 0, 'p'},
        {"value-bytes", 1, 0, 'v'},  {"timeout-ms", 1, 0, 't'}, {"report-every", 1, 0, 'r'},
        {"seed", 1, 0, 'S'},         {"faults", 1, 0, 'f'},    {"mode", 1, 0, 'm'},
        {"sabotage", 1, 0, 'X'},     {"rate", 1, 0, 'R'},      {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'a': r.o.addrs = optarg; break;
        case 's': r.o.state = optarg; break;
        case 'c': r.o.clients = atoi(optarg); break;
        case 'k': r.o.keys = atoi(optarg); break;
        case 'd': r.o.duration_s = atoi(optarg); break;
        case 'p': r.o.read_pct = atoi(optarg); break;
        case 'v': r.o.value_bytes = atoi(optarg); break;
        case 't': r.o.timeout_ms = atoi(optarg); break;
        case 'r': r.o.report_s = atoi(optarg); break;
        case 'S': r.o.seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'f': r.o.faults = optarg; break;
        case 'm': r.o.mode = optarg; break;
        case 'X': r.o.sabotage = atoi(optarg); break;
        case 'R': r.o.rate = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!r.o.addrs || !r.o.state || r.o.clients < 1 || r.o.clients > MAX_CLIENTS || r.o.keys < 1 ||
        (size_t)r.o.clients * (size_t)r.o.keys > MAX_KEYS || r.o.duration_s < 1 ||
        r.o.read_pct < 0 || r.o.read_pct > 100 || r.o.value_bytes < 0 || r.o.value_bytes > 65536 ||
        r.o.timeout_ms < 100 || r.o.report_s < 0 || r.o.sabotage < 0 || r.o.rate < 0) {
        usage(stderr);
        return 2;
    }
    return strcmp(cmd, "run") == 0 ? cmd_run(&r) : cmd_check(&r);
}
