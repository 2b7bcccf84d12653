/* ringkvd: the ringkv node. Parses flags over the config file, opens the
 * store, serves clients on one libevent loop, and stops gracefully on SIGTERM
 * or SIGINT (finish in-flight requests, commit, sync, exit 0).
 */
#include <getopt.h>
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

#include "config.h"
#include "log.h"
#include "server.h"
#include "store.h"

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
        "  -h, --help                 this help\n"
        "  -V, --version              print the version\n\n"
        "Signals: SIGTERM or SIGINT stop the node gracefully.\n");
}

static const struct option options[] = {
    {"config", required_argument, NULL, 'c'},
    {"id", required_argument, NULL, 'i'},
    {"listen", required_argument, NULL, 'l'},
    {"data-dir", required_argument, NULL, 'd'},
    {"fsync", required_argument, NULL, 'f'},
    {"log-level", required_argument, NULL, 'L'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
static const char shortopts[] = "c:i:l:d:f:L:hV";

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

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    server *srv = arg;
    if (srv->stopping) {
        log_warn("received %s again, stopping now", strsignal((int)sig));
        event_base_loopbreak(srv->base);
        return;
    }
    log_info("received %s, stopping: finishing requests in flight", strsignal((int)sig));
    server_shutdown(srv);
}

int main(int argc, char **argv)
{
    config cfg;
    char err[512];
    int rc = 2;
    struct event_base *base = NULL;
    store *st = NULL;
    server *srv = NULL;
    struct event *sigterm = NULL, *sigint = NULL;

    config_defaults(&cfg);
    int pa = parse_args(argc, argv, &cfg);
    if (pa != 0)
        return pa > 0 ? 0 : 2;
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&cfg);

    store_options so = {.dir = cfg.data_dir, .map_size = cfg.map_size, .fsync = cfg.fsync};
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
    sigterm = evsignal_new(base, SIGTERM, on_signal, srv);
    sigint = evsignal_new(base, SIGINT, on_signal, srv);
    if (!sigterm || !sigint || event_add(sigterm, NULL) || event_add(sigint, NULL)) {
        snprintf(err, sizeof err, "cannot install signal handlers");
        goto fail;
    }

    char dir[PATH_MAX];
    if (!realpath(cfg.data_dir, dir))
        snprintf(dir, sizeof dir, "%s", cfg.data_dir);
    log_info("ringkvd %s starting: id=%s pid=%d data_dir=%s fsync=%s", RINGKV_VERSION,
             store_node_id(st), (int)getpid(), dir, config_fsync_name(cfg.fsync));
    log_info("client protocol listening on %s", srv->listeners[0].addr);

    event_base_dispatch(base);

    rc = 0;
    log_info("stopping: committing and syncing");
fail:
    if (rc != 0)
        fprintf(stderr, "ringkvd: %s\n", err);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    server_free(srv);
    store_close(st);
    if (base)
        event_base_free(base);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
