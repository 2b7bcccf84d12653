/* store_wal: the write-ahead log's segments and records (see store_wal.h). */
#include "store_wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static void le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t checksum(const uint8_t *p, size_t n)
{
    return (uint32_t)XXH3_64bits(p, n);
}

long wal_parse(const uint8_t *p, size_t n, wal_rec *out)
{
    if (n < 8)
        return 0;
    size_t body = (size_t)le_get(p, 4);
    if (body < 2 + 1 || body > (size_t)1 << 30)
        return -1;
    if (n - 8 < body)
        return 0;
    if ((uint32_t)le_get(p + 4, 4) != checksum(p + 8, body))
        return -1;
    size_t klen = (size_t)le_get(p + 8, 2);
    if (klen == 0 || klen > WAL_KEY_MAX || body - 2 < klen)
        return -1;
    out->key = p + 10;
    out->klen = klen;
    out->rec = p + 10 + klen;
    out->rlen = body - 2 - klen;
    return (long)(8 + body);
}

int wal_add(store_wal *w, const uint8_t *key, size_t klen, const uint8_t *rec, size_t rlen)
{
    size_t at = w->len;
    size_t need = WAL_REC_HDR + klen + rlen;
    if (klen == 0 || klen > WAL_KEY_MAX || rlen > ((size_t)1 << 30) - 2 - klen)
        return -1;
    if (w->cap - w->len < need) {
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap - w->len < need)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b)
            return -1;
        w->buf = b, w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    le_put(p, 2 + klen + rlen, 4);
    le_put(p + 8, klen, 2);
    memcpy(p + 10, key, klen);
    w->len += need;
    if (rec)
        wal_seal(w, at, rec, rlen);
    return 0;
}

void wal_seal(store_wal *w, size_t at, const uint8_t *rec, size_t rlen)
{
    uint8_t *p = w->buf + at;
    size_t klen = (size_t)le_get(p + 8, 2);
    memcpy(p + 10 + klen, rec, rlen);
    le_put(p + 4, checksum(p + 8, 2 + klen + rlen), 4);
}

void wal_path(char *out, size_t outlen, const char *dir, uint64_t seq)
{
    snprintf(out, outlen, "%s/wal-%016" PRIx64 ".log", dir, seq);
}

/* write() all of n bytes, through short writes and EINTR. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : EIO;
        p += k, n -= (size_t)k;
    }
    return 0;
}

int wal_start_segment(store_wal *w, uint64_t seq, int *old_fd, char *err, size_t errlen)
{
    char path[4096];
    wal_path(path, sizeof path, w->dir, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600), rc;
    if (fd < 0) {
        snprintf(err, errlen, "creating the log segment %s: %s", path, strerror(errno));
        return -1;
    }
    if ((rc = write_all(fd, (const uint8_t *)WAL_MAGIC, WAL_MAGIC_LEN)) != 0) {
        snprintf(err, errlen, "writing the log segment %s: %s", path, strerror(rc));
        close(fd);
        unlink(path);
        return -1;
    }
    *old_fd = w->fd;
    w->fd = fd;
    w->torn = false;
    w->seq = seq;
    w->size = WAL_MAGIC_LEN;
    return 0;
}

int wal_write(store_wal *w, char *err, size_t errlen)
{
    int rc;
    if (!w->len)
        return 0;
    if ((rc = write_all(w->fd, w->buf, w->len)) != 0) {
        /* A torn record would hide every later one from the replay. */
        if (ftruncate(w->fd, (off_t)w->size) != 0)
            w->torn = true; /* the store starts a new segment before the next write */
        snprintf(err, errlen, "writing the log (%zu bytes): %s", w->len, strerror(rc));
        w->len = 0;
        return rc;
    }
    w->size += w->len;
    w->len = 0;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int wal_list(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;

    *out = NULL, *n = 0;
    if (!d) {
        snprintf(err, errlen, "listing %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        char tail[8];
        if (strlen(de->d_name) != 4 + 16 + 4 ||
            sscanf(de->d_name, "wal-%16" SCNx64 "%7s", &seq, tail) != 2 || strcmp(tail, ".log"))
            continue;
        if (len == cap) {
            uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            v = nv;
        }
        v[len++] = seq;
    }
    closedir(d);
    if (len)
        qsort(v, len, sizeof *v, cmp_u64);
    *out = v, *n = len;
    return 0;
}

void wal_close(store_wal *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    w->fd = -1;
    w->buf = NULL;
    w->len = w->cap = 0;
}
