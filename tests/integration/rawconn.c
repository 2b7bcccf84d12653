/* rawconn: bare TCP connections for bad-input tests; see rawconn.h. */
#include "rawconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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
