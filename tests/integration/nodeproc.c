/* nodeproc: real ringkvd processes for integration tests; see nodeproc.h.
 * Every wait here is bounded, so a broken node fails a test instead of
 * hanging it.
 */
#define _GNU_SOURCE
#include "nodeproc.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringkv.h"

#define START_TIMEOUT_MS 20000 /* sanitizer builds start slowly */
#define STOP_TIMEOUT_MS 20000
#define CLI_TIMEOUT_MS 60000

long long nodeproc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nodeproc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_log(const nodeproc *np)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ringkvd.log", np->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    char line[1024];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* The port the node logged last after `what` ("... listening on
 * HOST:PORT", possibly followed by more words). */
static int read_logged_port(const nodeproc *np, const char *what)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ringkvd.log", np->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[1024];
    int port = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, what);
        if (!p)
            continue;
        p += strlen(what);
        p[strcspn(p, " \n")] = '\0';
        const char *colon = strrchr(p, ':');
        if (colon)
            port = atoi(colon + 1);
    }
    fclose(f);
    return port;
}

static int read_port(const nodeproc *np)
{
    return read_logged_port(np, "client protocol listening on ");
}

static int read_peer_port(const nodeproc *np)
{
    return read_logged_port(np, "gossip and peer protocol listening on ");
}

/* Forks ringkvd; the caller waits for it (or not). */
static int fork_node(nodeproc *np, int port)
{
    char listen[64], data[300], logpath[300], peer[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(data, sizeof data, "%s/data", np->dir);
    snprintf(logpath, sizeof logpath, "%s/ringkvd.log", np->dir);

    const char *argv[40];
    int n = 0;
    argv[n++] = RINGKVD_PATH;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    for (int i = 0; np->extra[i] && n < 36; i++)
        argv[n++] = np->extra[i];
    if (np->peer_port > 0) {
        /* After the extra flags, so it wins over their "--peer ...:0". */
        snprintf(peer, sizeof peer, "127.0.0.1:%d", np->peer_port);
        argv[n++] = "--peer";
        argv[n++] = peer;
    }
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    np->pid = pid;
    return 0;
}

static int spawn(nodeproc *np, int port)
{
    if (fork_node(np, port) != 0)
        return -1;
    long long deadline = nodeproc_now_ms() + START_TIMEOUT_MS;
    while (nodeproc_now_ms() < deadline) {
        if (!nodeproc_alive(np)) {
            fprintf(stderr, "nodeproc: ringkvd exited during start\n");
            print_log(np);
            return -1;
        }
        if (np->port <= 0 || port == 0) {
            int p = read_port(np);
            if (p > 0)
                np->port = p;
        }
        if (np->port > 0) {
            snprintf(np->addr, sizeof np->addr, "127.0.0.1:%d", np->port);
            rkv_options o = {.connect_timeout_ms = 500, .request_timeout_ms = 2000};
            rkv_client *c = rkv_connect(np->addr, &o, NULL, 0);
            int ok = c && rkv_ping(c) == RKV_OK;
            rkv_close(c);
            /* A node answers only once its loop runs, after it logged its
             * peer port (if it has one). */
            if (ok && np->peer_port <= 0) {
                int p = read_peer_port(np);
                if (p > 0) {
                    np->peer_port = p;
                    snprintf(np->peer_addr, sizeof np->peer_addr, "127.0.0.1:%d", p);
                }
            }
            if (ok)
                return 0;
        }
        nodeproc_sleep_ms(20);
    }
    fprintf(stderr, "nodeproc: ringkvd did not answer within %d ms\n", START_TIMEOUT_MS);
    print_log(np);
    nodeproc_kill(np, SIGKILL);
    return -1;
}

/* A fresh temp dir and the flags to keep for restarts. Returns 0 or -1. */
static int prepare(nodeproc *np, const char *const *extra_args)
{
    memset(np, 0, sizeof *np);
    snprintf(np->dir, sizeof np->dir, "/tmp/ringkv-test-XXXXXX");
    if (!mkdtemp(np->dir)) {
        perror("nodeproc: mkdtemp");
        return -1;
    }
    for (int i = 0; extra_args && extra_args[i] && i < 15; i++)
        np->extra[i] = strdup(extra_args[i]);
    return 0;
}

int nodeproc_start(nodeproc *np, const char *const *extra_args)
{
    return prepare(np, extra_args) == 0 ? spawn(np, 0) : -1;
}

int nodeproc_launch(nodeproc *np, const char *const *extra_args)
{
    return prepare(np, extra_args) == 0 ? fork_node(np, 0) : -1;
}

int nodeproc_wait_exit(nodeproc *np, int timeout_ms)
{
    long long deadline = nodeproc_now_ms() + timeout_ms;
    while (np->pid) {
        int status;
        pid_t r = waitpid(np->pid, &status, WNOHANG);
        if (r == np->pid) {
            np->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (nodeproc_now_ms() >= deadline)
            return -1;
        nodeproc_sleep_ms(10);
    }
    return -1;
}

char *nodeproc_log(const nodeproc *np)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ringkvd.log", np->dir);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    FILE *f = fopen(path, "r");
    for (size_t n; buf && f && (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len - 1 == 0) {
            char *p = realloc(buf, cap * 2);
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
    }
    if (f)
        fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

int nodeproc_restart(nodeproc *np)
{
    if (np->pid)
        nodeproc_stop(np);
    return spawn(np, np->port);
}

int nodeproc_alive(nodeproc *np)
{
    if (!np->pid)
        return 0;
    int status;
    pid_t r = waitpid(np->pid, &status, WNOHANG);
    if (r == np->pid) {
        np->pid = 0;
        return 0;
    }
    return r == 0;
}

static int wait_for(nodeproc *np, int *status)
{
    long long deadline = nodeproc_now_ms() + STOP_TIMEOUT_MS;
    while (nodeproc_now_ms() < deadline) {
        pid_t r = waitpid(np->pid, status, WNOHANG);
        if (r == np->pid || (r < 0 && errno == ECHILD)) {
            np->pid = 0;
            return 0;
        }
        nodeproc_sleep_ms(10);
    }
    return -1;
}

int nodeproc_kill(nodeproc *np, int sig)
{
    if (!np->pid)
        return -1;
    kill(np->pid, sig);
    kill(np->pid, SIGCONT); /* a stopped process must run to die of sig */
    int status = 0;
    if (wait_for(np, &status) != 0) {
        kill(np->pid, SIGKILL);
        waitpid(np->pid, &status, 0);
        np->pid = 0;
    }
    return status;
}

int nodeproc_stop(nodeproc *np)
{
    if (!np->pid)
        return -1;
    int status = nodeproc_kill(np, SIGTERM);
    if (!WIFEXITED(status)) {
        fprintf(stderr, "nodeproc: ringkvd did not exit cleanly on SIGTERM (status %d)\n",
                status);
        print_log(np);
        return -1;
    }
    if (WEXITSTATUS(status) != 0)
        print_log(np);
    return WEXITSTATUS(status);
}

void nodeproc_cleanup(nodeproc *np)
{
    if (np->pid)
        nodeproc_kill(np, SIGKILL);
    if (np->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", np->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "nodeproc: could not remove %s\n", np->dir);
        np->dir[0] = 0;
    }
    for (int i = 0; i < 16; i++) {
        free(np->extra[i]);
        np->extra[i] = NULL;
    }
}

/* Appends what fd has to *buf; returns 0 at EOF, 1 if more may come. */
static int drain_fd(int fd, char **buf, size_t *len, size_t *cap)
{
    char tmp[65536];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r <= 0)
        return r < 0 && errno == EINTR;
    if (*len + (size_t)r + 1 > *cap) {
        *cap = (*len + (size_t)r + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, tmp, (size_t)r);
    *len += (size_t)r;
    (*buf)[*len] = 0;
    return 1;
}

int nodeproc_cli(const nodeproc *np, const char *const *argv, const void *stdin_data,
                 size_t stdin_len, char **out, size_t *out_len, char **err)
{
    const char *args[64];
    int n = 0;
    args[n++] = RINGKV_CLI_PATH;
    args[n++] = "-h";
    args[n++] = np->addr;
    for (int i = 0; argv && argv[i] && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    return nodeproc_exec(args, stdin_data, stdin_len, out, out_len, err);
}

int nodeproc_resp_port(const nodeproc *np)
{
    return read_logged_port(np, "RESP listening on ");
}

int nodeproc_exec(const char *const *args, const void *stdin_data, size_t stdin_len, char **out,
                  size_t *out_len, char **err)
{
    int in_p[2], out_p[2], err_p[2];
    if (pipe(in_p) || pipe(out_p) || pipe(err_p))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in_p[0], 0);
        dup2(out_p[1], 1);
        dup2(err_p[1], 2);
        close(in_p[1]);
        close(out_p[0]);
        close(err_p[0]);
        execvp(args[0], (char *const *)args);
        _exit(127);
    }
    close(in_p[0]);
    close(out_p[1]);
    close(err_p[1]);
    signal(SIGPIPE, SIG_IGN);

    char *ob = calloc(1, 1), *eb = calloc(1, 1);
    size_t ol = 0, oc = 1, el = 0, ec = 1, sent = 0;
    int in_fd = in_p[1], out_open = 1, err_open = 1;
    if (!stdin_data || stdin_len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    long long deadline = nodeproc_now_ms() + CLI_TIMEOUT_MS;
    while ((out_open || err_open) && nodeproc_now_ms() < deadline) {
        struct pollfd pf[3] = {{out_open ? out_p[0] : -1, POLLIN, 0},
                               {err_open ? err_p[0] : -1, POLLIN, 0},
                               {in_fd, POLLOUT, 0}};
        if (poll(pf, 3, 100) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            out_open = drain_fd(out_p[0], &ob, &ol, &oc);
        if (pf[1].revents)
            err_open = drain_fd(err_p[0], &eb, &el, &ec);
        if (in_fd >= 0 && pf[2].revents) {
            ssize_t w = write(in_fd, (const char *)stdin_data + sent, stdin_len - sent);
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 || sent == stdin_len) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    close(out_p[0]);
    close(err_p[0]);
    int status = 0;
    if (out_open || err_open)
        kill(pid, SIGKILL);
    waitpid(pid, &status, 0);

    if (out)
        *out = ob;
    else
        free(ob);
    if (out_len)
        *out_len = ol;
    if (err)
        *err = eb;
    else
        free(eb);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int nodeproc_cluster_start_node(nodeproc_cluster *cl, int i, const char *id)
{
    nodeproc_cleanup(&cl->n[i]); /* a slot used before: its process, dir and flags */
    char seeds[NODEPROC_CLUSTER_MAX * 64] = "";
    for (int k = 0; k < i; k++)
        snprintf(seeds + strlen(seeds), sizeof seeds - strlen(seeds), "%s%s", k ? "," : "",
                 cl->n[k].peer_addr);
    const char *args[] = {"--config", cl->conf, "--id", id, "--peer", "127.0.0.1:0",
                          i ? "--seeds" : NULL, seeds, NULL};
    return nodeproc_start(&cl->n[i], args);
}

int nodeproc_cluster_start(nodeproc_cluster *cl, int count, const char *const *ids,
                           const char *conf_text)
{
    memset(cl, 0, sizeof *cl);
    if (count < 1 || count > NODEPROC_CLUSTER_MAX)
        return -1;
    snprintf(cl->conf, sizeof cl->conf, "/tmp/ringkv-cluster-XXXXXX");
    int fd = mkstemp(cl->conf);
    size_t len = strlen(conf_text);
    if (fd < 0 || write(fd, conf_text, len) != (ssize_t)len) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    cl->count = count;
    for (int i = 0; i < count; i++)
        if (nodeproc_cluster_start_node(cl, i, ids[i]) != 0 || cl->n[i].peer_port <= 0) {
            fprintf(stderr, "nodeproc: could not start cluster node %s\n", ids[i]);
            return -1;
        }
    return nodeproc_cluster_wait_ring(cl, count, count, 30000);
}

int nodeproc_stat(const nodeproc *np, const char *name, uint64_t *out)
{
    rkv_client *c = rkv_connect(np->addr, NULL, NULL, 0);
    rkv_stat *s = NULL;
    size_t n = 0;
    int rc = -1;
    if (c && rkv_stats(c, &s, &n) == RKV_OK)
        for (size_t i = 0; i < n; i++)
            if (strcmp(s[i].name, name) == 0 && s[i].is_num) {
                *out = s[i].num;
                rc = 0;
            }
    rkv_stats_free(s, n);
    rkv_close(c);
    return rc;
}

int nodeproc_stat_str(const nodeproc *np, const char *name, char *out, size_t len)
{
    rkv_client *c = rkv_connect(np->addr, NULL, NULL, 0);
    rkv_stat *s = NULL;
    size_t n = 0;
    int rc = -1;
    if (c && rkv_stats(c, &s, &n) == RKV_OK)
        for (size_t i = 0; i < n; i++)
            if (!s[i].is_num && strcmp(s[i].name, name) == 0) {
                snprintf(out, len, "%s", s[i].str);
                rc = 0;
            }
    rkv_stats_free(s, n);
    rkv_close(c);
    return rc;
}

static bool is_member(const nodeproc *np)
{
    char role[32];
    return nodeproc_stat_str(np, "ring_role", role, sizeof role) == 0 &&
           strcmp(role, "member") == 0;
}

int nodeproc_cluster_wait_ring(nodeproc_cluster *cl, int upto, int members, int timeout_ms)
{
    long long deadline = nodeproc_now_ms() + timeout_ms;
    for (;;) {
        int ok = 0, bad = -1;
        uint64_t v = 0;
        for (int i = 0; i < upto; i++) {
            if (nodeproc_stat(&cl->n[i], "ring_members", &v) == 0 && v == (uint64_t)members &&
                is_member(&cl->n[i]))
                ok++;
            else if (bad < 0)
                bad = i;
        }
        if (ok == upto)
            return 0;
        if (nodeproc_now_ms() > deadline) {
            fprintf(stderr,
                    "nodeproc: node %d has a ring of %llu members (or is not a member), "
                    "waiting for %d\n",
                    bad, (unsigned long long)v, members);
            return -1;
        }
        nodeproc_sleep_ms(50);
    }
}

void nodeproc_cluster_cleanup(nodeproc_cluster *cl)
{
    if (!cl)
        return;
    for (int i = 0; i < cl->count; i++)
        nodeproc_cleanup(&cl->n[i]);
    if (cl->conf[0])
        unlink(cl->conf);
    cl->conf[0] = 0;
}
