/* nodeproc: starts and stops real ringkvd processes for integration tests.
 *
 * Each node gets a fresh temporary data dir and a free loopback port (the
 * node binds port 0 and logs the port it got; nodeproc reads it from the
 * node's log file, <dir>/ringkvd.log). A node started with "--peer
 * 127.0.0.1:0" gets a free peer port (UDP and TCP) the same way, and keeps
 * it across restarts like the client port.
 */
#ifndef RINGKV_NODEPROC_H
#define RINGKV_NODEPROC_H

#include <stdint.h>
#include <sys/types.h>

typedef struct nodeproc {
    pid_t pid;          /* 0 when not running */
    int port;           /* client port; kept across restarts */
    char dir[256];      /* temp dir: data in dir/data, log in dir/ringkvd.log */
    char addr[64];      /* "127.0.0.1:PORT" */
    int peer_port;      /* gossip/peer port, 0 without --peer; kept across restarts */
    char peer_addr[64]; /* "127.0.0.1:PEER_PORT" */
    char *extra[16];    /* extra ringkvd flags, kept for restarts */
} nodeproc;

/* Starts ringkvd on 127.0.0.1 with a new temp dir. extra_args is a
 * NULL-terminated list of additional flags (may be NULL), e.g.
 * {"--fsync", "always", NULL}. Waits until the node answers a ping.
 * Returns 0, or -1 after printing the node's log. */
int nodeproc_start(nodeproc *np, const char *const *extra_args);

/* Starts ringkvd like nodeproc_start but returns once it is forked, without
 * waiting for it to answer (for a node expected to exit by itself). */
int nodeproc_launch(nodeproc *np, const char *const *extra_args);

/* Waits up to timeout_ms for the process to exit. Returns its exit code,
 * 128 + signal if a signal killed it, or -1 if it is still running. */
int nodeproc_wait_exit(nodeproc *np, int timeout_ms);

/* The node's log so far, malloc'd and NUL-terminated (empty if none). */
char *nodeproc_log(const nodeproc *np);

/* Starts the node again on the same port and data dir. Returns 0 or -1. */
int nodeproc_restart(nodeproc *np);

/* Sends sig (e.g. SIGKILL) and reaps the process. Returns its wait status. */
int nodeproc_kill(nodeproc *np, int sig);

/* SIGTERM, wait; returns the exit code (0 on a clean stop), or -1. */
int nodeproc_stop(nodeproc *np);

/* Stops the node if running and removes its temp dir. */
void nodeproc_cleanup(nodeproc *np);

/* Is the process still alive (not exited, not a zombie)? */
int nodeproc_alive(nodeproc *np);

/* Runs the ringkv CLI with argv (NULL-terminated, without the program name)
 * against this node, feeding stdin_data (may be NULL) on its stdin. Captures
 * stdout and stderr into malloc'd NUL-terminated buffers (out, err may be
 * NULL to discard; *out_len gets stdout's length, binary-safe). Returns the
 * CLI's exit code, or -1 if it could not be run. */
int nodeproc_cli(const nodeproc *np, const char *const *argv,
                 const void *stdin_data, size_t stdin_len,
                 char **out, size_t *out_len, char **err);

/* Runs args[0] (found in PATH unless it holds a '/') with args, otherwise as
 * nodeproc_cli: stdin_data on its stdin, stdout and stderr captured, at most
 * 60 s. Returns its exit code, or -1 (127 when it could not be started). */
int nodeproc_exec(const char *const *args, const void *stdin_data, size_t stdin_len,
                  char **out, size_t *out_len, char **err);

/* The RESP port the node logged ("RESP listening on HOST:PORT"; start it
 * with {"--resp", "127.0.0.1:0"}), or -1. */
int nodeproc_resp_port(const nodeproc *np);

/* Gossip fast enough for tests: a crash is declared dead within about a
 * second. Config text to start a cluster's shared file with. */
#define NODEPROC_FAST_GOSSIP                                                                    \
    "[gossip]\n"                                                                                \
    "probe_interval = 100ms\n"                                                                  \
    "probe_timeout = 50ms\n"                                                                    \
    "suspicion_mult = 2\n"                                                                      \
    "suspicion_max_mult = 3\n"                                                                  \
    "gossip_interval = 50ms\n"                                                                  \
    "pushpull_interval = 2s\n"

/* Gossiping nodes that share one config file (e.g. fast [gossip] timings),
 * each on a free client port and a free peer port. */
#define NODEPROC_CLUSTER_MAX 8
typedef struct nodeproc_cluster {
    nodeproc n[NODEPROC_CLUSTER_MAX];
    int count;
    char conf[64]; /* the shared config file */
} nodeproc_cluster;

/* Writes conf_text to the cluster's config file, then starts count nodes
 * named ids[0..count), node i seeded by nodes 0..i-1, and waits until all
 * are ring members (the first founds the ring, the others join it).
 * Returns 0, or -1 after saying which node failed (what started is left
 * for cleanup). */
int nodeproc_cluster_start(nodeproc_cluster *cl, int count, const char *const *ids,
                           const char *conf_text);

/* Starts node i with this id and a fresh data dir, seeded by nodes 0..i-1
 * (their peer addresses must be known); whatever ran in slot i before is
 * cleaned up first (nodeproc_restart keeps the data dir). Returns 0 or -1. */
int nodeproc_cluster_start_node(nodeproc_cluster *cl, int i, const char *id);

/* Monotonic milliseconds, and a sleep, for bounded waits in tests. */
long long nodeproc_now_ms(void);
void nodeproc_sleep_ms(int ms);

/* A text figure from np's STATS (e.g. "ring_role") into out. Returns 0, or
 * -1 (not reachable, no such figure). */
int nodeproc_stat_str(const nodeproc *np, const char *name, char *out, size_t len);

/* A number from np's STATS into *out. Returns 0, or -1 (not reachable, no
 * such figure). */
int nodeproc_stat(const nodeproc *np, const char *name, uint64_t *out);

/* Waits up to timeout_ms until nodes 0..upto-1 all report a ring of
 * `members` and themselves as ring members. Returns 0, or -1 after saying
 * what it saw. */
int nodeproc_cluster_wait_ring(nodeproc_cluster *cl, int upto, int members, int timeout_ms);

/* Stops every node, removes their dirs and the config file. */
void nodeproc_cluster_cleanup(nodeproc_cluster *cl);

#endif
