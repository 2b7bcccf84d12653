/* alloc: the node's memory allocator.
 *
 * ringkvd links jemalloc, as Redis does, when it is built with it (the
 * default; not under the sanitizers, which bring their own). Its size
 * classes keep small allocations together whatever else the heap holds:
 * with glibc's malloc, records of 3 bytes written over 1 KiB ones stayed a
 * kilobyte apart, so every record cache entry, request and operation
 * touched a page of its own, and a node spent a third more CPU a quorum
 * GET than on a heap that had only ever seen small values.
 *
 * It runs with jemalloc's defaults (MALLOC_CONF sets its options). It is
 * not asked for transparent huge pages (thp:always): they took a
 * seventh off quorum GETs' CPU on a large heap, but each new 2 MiB page is
 * zeroed, and compacted when memory is fragmented, in the fault, on the
 * event loop: one node's unpipelined SETs of 1 KiB, which grow its heap,
 * had a p99 of 5-6.7 ms with them against 1.5-1.7 ms without, and Redis'
 * 2.1 ms. Redis turns them off for its own process too (disable-thp), for
 * latency. MALLOC_CONF=thp:always in the environment turns them on.
 */
#ifndef RINGKV_ALLOC_H
#define RINGKV_ALLOC_H

/* The allocator in use, as INFO's mem_allocator shows it: "jemalloc-5.3.0"
 * or "libc". */
const char *alloc_name(void);

#endif
