/* alloc: the node's memory allocator; see alloc.h. */
#include "alloc.h"

#ifdef RINGKV_JEMALLOC
#include <stddef.h>
#include <stdio.h>

#include <jemalloc/jemalloc.h>

const char *alloc_name(void)
{
    static char name[48];
    const char *v = NULL;
    size_t n = sizeof v;
    if (!name[0]) {
        int major = 0, minor = 0, fix = 0;
        if (mallctl("version", &v, &n, NULL, 0) == 0 && v &&
            sscanf(v, "%d.%d.%d", &major, &minor, &fix) == 3)
            snprintf(name, sizeof name, "jemalloc-%d.%d.%d", major, minor, fix);
        else
            snprintf(name, sizeof name, "jemalloc");
    }
    return name;
}
#else
const char *alloc_name(void)
{
    return "libc";
}
#endif
