/* example_async.c: the async libringkv API on a libevent loop; the README shows
 * it and the test suite builds it against the installed library.
 * It pipelines 100 PUTs on one connection, reads one key back, and frees the
 * connection from the last callback, which ends the loop.
 *   cc example_async.c $(pkg-config --cflags --libs ringkv libevent_core) -o example_async
 *   ./example_async 127.0.0.1:7001
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <ringkv_async.h>

struct state {
    int left; /* PUTs not answered yet */
    int failed;
};

static void on_get(rkv_async *ac, const rkv_async_reply *r, void *arg)
{
    struct state *st = arg;
    if (r->status == RKV_OK) {
        /* r->value is valid only during this callback: copy what you keep. */
        printf("key:42 = %.*s\n", (int)r->value_len, (const char *)r->value);
    } else {
        fprintf(stderr, "get failed: %s\n", r->errstr);
        st->failed = 1;
    }
    rkv_async_free(ac); /* allowed in a callback: done when it returns */
}

static void on_put(rkv_async *ac, const rkv_async_reply *r, void *arg)
{
    struct state *st = arg;
    if (r->status != RKV_OK) {
        fprintf(stderr, "put %llu failed: %s\n", (unsigned long long)r->id, r->errstr);
        st->failed = 1;
    }
    if (--st->left > 0)
        return;
    /* All written: read one back, or give up if the connection is gone. */
    if (st->failed || rkv_async_get(ac, "key:42", 6, on_get, st) != RKV_OK)
        rkv_async_free(ac);
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7001";
    signal(SIGPIPE, SIG_IGN); /* a closed connection is an error, not a signal */

    struct event_base *base = event_base_new();
    char err[256];
    rkv_async *ac = base ? rkv_async_connect(base, addr, NULL, err, sizeof err) : NULL;
    if (!ac) {
        fprintf(stderr, "cannot connect: %s\n", base ? err : "no event base");
        return 2;
    }

    struct state st = {0};
    for (int i = 0; i < 100; i++) {
        char key[32], val[32];
        int klen = snprintf(key, sizeof key, "key:%d", i);
        int vlen = snprintf(val, sizeof val, "value %d", i);
        /* Keys and values are copied before the call returns. */
        if (rkv_async_put(ac, key, (size_t)klen, val, (size_t)vlen, 0, on_put, &st) != RKV_OK) {
            fprintf(stderr, "put refused: %s\n", rkv_async_errstr(ac));
            st.failed = 1;
            break;
        }
        st.left++;
    }
    if (st.left == 0)
        rkv_async_free(ac);

    /* Runs until the connection is freed and nothing is left to wait for. */
    event_base_dispatch(base);
    event_base_free(base);
    return st.failed;
}
