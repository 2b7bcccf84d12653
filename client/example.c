/* example.c: the smallest complete libringkv program; the README shows it and
 * the test suite builds it against the installed library with pkg-config.
 *   cc example.c $(pkg-config --cflags --libs ringkv) -o example
 *   ./example 127.0.0.1:7001
 */
#include <stdio.h>
#include <string.h>

#include <ringkv.h>

int main(int argc, char **argv)
{
    const char *addrs = argc > 1 ? argv[1] : "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
    char err[256];
    rkv_client *c = rkv_connect(addrs, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "bad address list: %s\n", err);
        return 2;
    }

    const char *key = "greeting", *value = "hello, ringkv";
    if (rkv_put(c, key, strlen(key), value, strlen(value), 0) != RKV_OK) {
        fprintf(stderr, "put failed: %s\n", rkv_errstr(c));
        rkv_close(c);
        return 1;
    }

    void *got;
    size_t len;
    rkv_status st = rkv_get(c, key, strlen(key), &got, &len);
    if (st == RKV_OK) {
        printf("%s = %.*s\n", key, (int)len, (const char *)got);
        rkv_free(got); /* values belong to the caller */
    } else if (st == RKV_NOT_FOUND) {
        printf("%s is not set\n", key);
    } else {
        fprintf(stderr, "get failed: %s\n", rkv_errstr(c));
    }
    rkv_close(c);
    return st == RKV_OK ? 0 : 1;
}
