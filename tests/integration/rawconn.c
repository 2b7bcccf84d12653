/* rawconn: bare TCP connections for bad-input tests; see rawconn.h. */
#include "rawconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int raw_send_request(int fd, const wire_request *req)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_encode_request(&sb, req);
    int rc = raw_send(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Reads exactly len bytes before deadline: 0, 1 on EOF, -1 on timeout/error. */
static int read_full(int fd, uint8_t *buf, size_t len, long long deadline)
{
    size_t got = 0;
    while (got < len) {
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, buf + got, len - got, 0);
        if (r == 0)
            return 1;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? 1 : -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int raw_read_response(int fd, int timeout_ms, msgpack_zone *zone, wire_response *out,
                      uint8_t **frame)
{
    long long deadline = now_ms() + timeout_ms;
    uint8_t hdr[WIRE_HEADER_BYTES];
    *frame = NULL;
    int rc = read_full(fd, hdr, sizeof hdr, deadline);
    if (rc != 0)
        return rc;
    uint32_t len = wire_frame_len(hdr);
    if (len > (64u << 20))
        return -1;
    *frame = malloc(len ? len : 1);
    if (!*frame)
        return -1;
    rc = read_full(fd, *frame, len, deadline);
    if (rc != 0)
        return rc;
    char err[256];
    msgpack_zone_clear(zone);
    return wire_decode_response(*frame, len, zone, out, err, sizeof err) == 0 ? 0 : -1;
}

int raw_wait_closed(int fd, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char buf[65536];
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 0;
    }
}

int raw_ping(int port)
{
    int fd = raw_connect(port);
    if (fd < 0)
        return -1;
    wire_request req = {.id = 77, .op = WIRE_OP_PING};
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    wire_response resp;
    uint8_t *frame = NULL;
    int rc = -1;
    if (raw_send_request(fd, &req) == 0 && raw_read_response(fd, 5000, &zone, &resp, &frame) == 0 &&
        resp.id == 77 && resp.status == WIRE_OK)
        rc = 0;
    free(frame);
    msgpack_zone_destroy(&zone);
    close(fd);
    return rc;
}

long long raw_stat(int port, const char *name)
{
    int fd = raw_connect(port);
    if (fd < 0)
        return -1;
    wire_request q = {.id = 1, .op = WIRE_OP_STATS, .consistency = -1};
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    wire_response r;
    uint8_t *frame = NULL;
    long long v = -1;
    if (raw_send_request(fd, &q) == 0 && raw_read_response(fd, 5000, &z, &r, &frame) == 0)
        for (size_t i = 0; i < r.nstats; i++)
            if (r.stats[i].is_num && r.stats[i].name.len == strlen(name) &&
                memcmp(r.stats[i].name.ptr, name, r.stats[i].name.len) == 0)
                v = (long long)r.stats[i].num;
    free(frame);
    msgpack_zone_destroy(&z);
    close(fd);
    return v;
}

int raw_wait_stat(int port, const char *name, long long want, int timeout_ms, long long *last)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        if ((*last = raw_stat(port, name)) >= want)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 > deadline)
            return -1;
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
    }
}

void raw_key(const char *prefix, int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d", prefix, i);
}

int raw_batch(int port, wire_op op, const char *prefix, int from, int to, int consistency,
              raw_tally *t)
{
    memset(t, 0, sizeof *t);
    int fd = raw_connect(port);
    if (fd < 0) {
        snprintf(t->msg, sizeof t->msg, "cannot connect to port %d", port);
        return -1;
    }
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    int sent = from, got = from, rc = 0;
    while (got < to && rc == 0) {
        while (sent < to && sent - got < RAW_WINDOW) {
            char k[64], v[64];
            raw_key(prefix, sent, k, sizeof k);
            snprintf(v, sizeof v, "val-%d", sent);
            wire_request q = {.id = (uint64_t)sent, .op = op, .consistency = consistency,
                              .key = {(const uint8_t *)k, strlen(k)},
                              .value = {(const uint8_t *)v, strlen(v)}};
            if (raw_send_request(fd, &q) != 0) {
                snprintf(t->msg, sizeof t->msg, "sending %s:%d to port %d failed", prefix, sent,
                         port);
                rc = -1;
                break;
            }
            sent++;
        }
        if (rc)
            break;
        wire_response r;
        uint8_t *frame = NULL;
        msgpack_zone_clear(&z);
        if (raw_read_response(fd, 10000, &z, &r, &frame) != 0 || r.id != (uint64_t)got) {
            snprintf(t->msg, sizeof t->msg, "no reply (or one out of order) for %s:%d from port %d",
                     prefix, got, port);
            free(frame);
            rc = -1;
            break;
        }
        t->st[r.status < 8 ? r.status : 7]++;
        if (r.status >= 2)
            snprintf(t->msg, sizeof t->msg, "%.*s", (int)r.message.len,
                     (const char *)r.message.ptr);
        if (op == WIRE_OP_GET && r.status == WIRE_OK) {
            char v[64];
            snprintf(v, sizeof v, "val-%d", got);
            if (r.value.len != strlen(v) || memcmp(r.value.ptr, v, r.value.len) != 0)
                t->bad_value++;
        }
        free(frame);
        got++;
    }
    msgpack_zone_destroy(&z);
    close(fd);
    return rc;
}
