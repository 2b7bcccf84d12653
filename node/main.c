/* ringkvd: the ringkv node. Parses flags over the config file, opens the
 * store, serves clients on one libevent loop, joins the cluster when it has
 * a peer address, and stops gracefully on SIGTERM or SIGINT (leave the
 * cluster, finish in-flight requests, commit, sync, exit 0).
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "membership.h"
#include "peer.h"
#include "antientropy.h"
#include "replica.h"
#include "resp.h"
#include "server.h"
#include "store.h"
#include "stream.h"

/* How long SIGTERM keeps gossiping so that `left` reaches the others. */
#define LEAVE_WAIT_MS 1000
/* The replica layer's bound on one peer request (at least twice
 * [replication] request_timeout): a backstop past the coordinator's own
 * deadline, so late answers still reach it (read repair) while in-flight
 * state stays bounded. */
#define REPLICA_TIMEOUT_MS 5000

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: ringkvd [OPTIONS]\n"
        "Runs one ringkv node.\n\n"
        "Options (each overrides the same key of the config file):\n"
        "  -c, --config FILE          INI config file (see configs/example.conf)\n"
        "  -i, --id ID                node id ([node] id); default: the one stored in\n"
        "                             the data dir, else a new random one\n"
        "  -l, --listen HOST:PORT     client protocol address ([node] listen; default\n"
        "                             127.0.0.1:7001; port 0 picks a free port)\n"
        "  -d, --data-dir DIR         data directory ([node] data_dir; default ./data)\n"
        "  -f, --fsync POLICY         always | everysec | no ([node] fsync; default everysec)\n"
        "  -L, --log-level LEVEL      debug | info | warn | error (default info)\n"
        "  -p, --peer HOST:PORT       gossip UDP and peer TCP address ([node] peer;\n"
        "                             default: off, a single node; port 0 picks one)\n"
        "  -s, --seeds LIST           peer addresses to join through ([node] seeds)\n"
        "  -r, --resp HOST:PORT       Redis protocol (RESP) address ([node] resp;\n"
        "                             default: off; port 0 picks a free port)\n"
        "  -h, --help                 this help\n"
        "  -V, --version              print the version\n\n"
        "Signals: SIGTERM or SIGINT stop the node gracefully (leaving the cluster).\n");
}

static const struct option options[] = {
    {"config", required_argument, NULL, 'c'},
    {"id", required_argument, NULL, 'i'},
    {"listen", required_argument, NULL, 'l'},
    {"data-dir", required_argument, NULL, 'd'},
    {"fsync", required_argument, NULL, 'f'},
    {"log-level", required_argument, NULL, 'L'},
    {"peer", required_argument, NULL, 'p'},
    {"seeds", required_argument, NULL, 's'},
    {"resp", required_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
static const char shortopts[] = "c:i:l:d:f:L:p:s:r:hV";

/* Flags override the file, so the file is found and loaded first. Returns 0
 * to go on, 1 to exit 0 (help, version), -1 to exit 2. */
static int parse_args(int argc, char **argv, config *cfg)
{
    char err[512];
    const char *file = NULL;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == 'V') {
            printf("ringkvd %s\n", RINGKV_VERSION);
            return 1;
        }
        if (opt == 'c')
            file = optarg;
    }
    if (file && config_load_file(cfg, file, err, sizeof err) != 0) {
        fprintf(stderr, "ringkvd: %s\n", err);
        return -1;
    }

    optind = 0; /* glibc: restart scanning from scratch */
    opterr = 1;
    while ((opt = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
        const char *key = NULL, *flag = NULL;
        switch (opt) {
        case 'i': key = "id"; flag = "id"; break;
        case 'l': key = "listen"; flag = "listen"; break;
        case 'd': key = "data_dir"; flag = "data-dir"; break;
        case 'f': key = "fsync"; flag = "fsync"; break;
        case 'L': key = "log_level"; flag = "log-level"; break;
        case 'p': key = "peer"; flag = "peer"; break;
        case 's': key = "seeds"; flag = "seeds"; break;
        case 'r': key = "resp"; flag = "resp"; break;
        case 'c': break;
        default:
            fprintf(stderr, "ringkvd: see 'ringkvd --help'\n");
            return -1;
        }
        if (key && config_set(cfg, "node", key, optarg, err, sizeof err) != 0) {
            fprintf(stderr, "ringkvd: --%s: %s\n", flag, err);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringkvd: unexpected argument '%s'; see 'ringkvd --help'\n",
                argv[optind]);
        return -1;
    }
    if (config_validate(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ringkvd: %s\n", err);
        return -1;
    }
    return 0;
}

/* A node keeps its id in its data dir; a configured id must match it. */
static int resolve_node_id(const config *cfg, store *st, char *err, size_t errlen)
{
    const char *stored = store_node_id(st);
    if (cfg->id[0]) {
        if (stored[0] && strcmp(stored, cfg->id) != 0) {
            snprintf(err, errlen,
                     "data dir %.256s belongs to node '%s', but this node is configured as '%s'; "
                     "use id '%s' or another data dir",
                     cfg->data_dir, stored, cfg->id, stored);
            return -1;
        }
        return stored[0] ? 0 : store_set_node_id(st, cfg->id, err, errlen);
    }
    if (stored[0])
        return 0;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint32_t)getpid() ^ (uint32_t)time(NULL);
    char id[32];
    snprintf(id, sizeof id, "node-%08x", r);
    return store_set_node_id(st, id, err, errlen);
}

/* Each client costs a descriptor: raise the soft limit toward max_clients
 * (as Redis does), and say so when the hard limit stands in the way. */
static void raise_fd_limit(const config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_clients + 128;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        log_warn("max_clients is %llu but the descriptor limit is %llu; "
                 "raise it (ulimit -n) to serve that many clients",
                 (unsigned long long)cfg->max_clients, (unsigned long long)rl.rlim_cur);
}

/* What the signal and membership callbacks need to reach. */
typedef struct node {
    server *srv;
    membership *members; /* NULL without [node] peer */
    bool leaving;
    int exit_code;       /* 1 when a seed refused our join */
    char fatal[512];
} node;

static void on_left(void *arg)
{
    node *nd = arg;
    log_info("stopping: finishing requests in flight");
    server_shutdown(nd->srv);
}

/* Leave the cluster first (so the others see `left`, not a crash), then
 * the server's graceful stop. A second signal stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    node *nd = arg;
    server *srv = nd->srv;
    if (srv->stopping || nd->leaving) {
        log_warn("received %s again, stopping now", strsignal((int)sig));
        event_base_loopbreak(srv->base);
        return;
    }
    if (nd->members) {
        log_info("received %s, stopping: leaving the cluster", strsignal((int)sig));
        nd->leaving = true;
        membership_leave(nd->members, LEAVE_WAIT_MS, on_left, nd);
        return;
    }
    log_info("received %s, stopping: finishing requests in flight", strsignal((int)sig));
    server_shutdown(srv);
}

/* A seed refused our join: our id belongs to a live node elsewhere. */
static void on_membership_fatal(void *arg, const char *msg)
{
    node *nd = arg;
    nd->exit_code = 1;
    snprintf(nd->fatal, sizeof nd->fatal, "%s", msg);
    event_base_loopbreak(nd->srv->base);
}

/* Joins the cluster through the seeds, announcing this node with the
 * addresses its clients can reach and this start's incarnation. */
static membership *start_membership(struct event_base *base, const config *cfg, store *st,
                                    node *nd, char *err, size_t errlen)
{
    const char *resp = cfg->resp;
    for (size_t i = 1; i < nd->srv->nlisteners; i++)
        if (strcmp(nd->srv->listeners[i].proto->name, "resp") == 0)
            resp = nd->srv->listeners[i].addr; /* the bound one, with the real port */
    membership_self self = {.id = store_node_id(st),
                            .client_addr = nd->srv->listeners[0].addr,
                            .resp_addr = resp,
                            .incarnation = store_incarnation(st),
                            .vnodes = (uint32_t)cfg->vnodes,
                            /* New to the ring: joining until node/stream.c lets it in. */
                            .role = store_ring_member(st) ? GOSSIP_ROLE_MEMBER
                                                          : GOSSIP_ROLE_JOINING};
    membership *m = membership_new(base, cfg, &self, on_membership_fatal, nd, err, errlen);
    if (!m)
        return NULL;
    log_info("gossip and peer protocol listening on %s (udp+tcp), incarnation %llu",
             membership_peer_addr(m), (unsigned long long)self.incarnation);
    membership_start(m);
    return m;
}

int main(int argc, char **argv)
{
    config cfg;
    char err[512];
    int rc = 2;
    struct event_base *base = NULL;
    store *st = NULL;
    server *srv = NULL;
    cluster *cl = NULL;
    node nd = {0};
    struct event *sigterm = NULL, *sigint = NULL;

    config_defaults(&cfg);
    int pa = parse_args(argc, argv, &cfg);
    if (pa != 0)
        return pa > 0 ? 0 : 2;
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&cfg);

    store_options so = {.dir = cfg.data_dir, .map_size = cfg.map_size, .fsync = cfg.fsync,
                        .cache_size = cfg.cache_size,
                        .log_size = cfg.log_size, .no_checkpoints = !cfg.checkpoints};
    st = store_open(&so, err, sizeof err);
    if (!st)
        goto fail;
    if (resolve_node_id(&cfg, st, err, sizeof err) != 0)
        goto fail;
    base = event_base_new();
    if (!base) {
        snprintf(err, sizeof err, "cannot create the event loop");
        goto fail;
    }
    srv = server_new(base, &cfg, st, err, sizeof err);
    if (!srv)
        goto fail;
    int resp_listener = -1;
    if (cfg.resp[0] &&
        (resp_listener = server_listen(srv, cfg.resp, &resp_proto, err, sizeof err)) < 0)
        goto fail;
    nd.srv = srv;
    sigterm = evsignal_new(base, SIGTERM, on_signal, &nd);
    sigint = evsignal_new(base, SIGINT, on_signal, &nd);
    if (!sigterm || !sigint || event_add(sigterm, NULL) || event_add(sigint, NULL)) {
        snprintf(err, sizeof err, "cannot install signal handlers");
        goto fail;
    }

    char dir[PATH_MAX];
    if (!realpath(cfg.data_dir, dir))
        snprintf(dir, sizeof dir, "%s", cfg.data_dir);
    log_info("ringkvd %s starting: id=%s pid=%d data_dir=%s fsync=%s cache_size=%" PRIu64
             "MiB allocator=%s", RINGKV_VERSION, store_node_id(st), (int)getpid(), dir,
             config_fsync_name(cfg.fsync), cfg.cache_size >> 20, alloc_name());
    log_info("client protocol listening on %s", srv->listeners[0].addr);
    if (resp_listener >= 0)
        log_info("RESP listening on %s", srv->listeners[resp_listener].addr);
    if (cfg.peer[0]) {
        nd.members = start_membership(base, &cfg, st, &nd, err, sizeof err);
        if (!nd.members)
            goto fail;
        srv->members = nd.members;
    } else if (cfg.seeds[0]) {
        log_warn("[node] seeds is set but peer is empty: membership is off, this node runs "
                 "alone");
    }
    cl = cluster_new(&cfg, store_node_id(st), nd.members, err, sizeof err);
    if (!cl)
        goto fail;
    srv->cluster = cl;
    srv->peer = nd.members ? membership_peer(nd.members) : NULL;
    uint64_t replica_timeout = cfg.request_timeout_ms * 2 > REPLICA_TIMEOUT_MS
                                   ? cfg.request_timeout_ms * 2
                                   : REPLICA_TIMEOUT_MS;
    srv->replica = replica_new(srv, cl, replica_timeout, err, sizeof err);
    if (!srv->replica)
        goto fail;
    replica_set_linger(srv->replica, cfg.linger_ms * 1000);
    srv->stream = stream_new(srv, cl, srv->replica, nd.members, err, sizeof err);
    if (!srv->stream)
        goto fail;
    srv->antientropy = antientropy_new(srv, cl, srv->replica, err, sizeof err);
    if (!srv->antientropy)
        goto fail;

    event_base_dispatch(base);

    if (nd.exit_code) {
        rc = nd.exit_code;
        snprintf(err, sizeof err, "%s", nd.fatal);
    } else {
        rc = 0;
        log_info("stopping: committing and syncing");
    }
fail:
    if (rc != 0)
        fprintf(stderr, "ringkvd: %s\n", err);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (srv) {
        /* Before the peer port (membership) and the ring view it uses;
         * streaming and anti-entropy before the replica layer their
         * requests ride on. */
        antientropy_free(srv->antientropy);
        srv->antientropy = NULL;
        stream_free(srv->stream);
        srv->stream = NULL;
        replica_free(srv->replica);
        srv->replica = NULL;
        srv->peer = NULL;
        srv->members = NULL;
        srv->cluster = NULL;
    }
    cluster_free(cl);
    membership_free(nd.members);
    server_free(srv);
    store_close(st);
    if (base)
        event_base_free(base);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
