/* alloc: the node's memory allocator.
 *
 * ringkvd links jemalloc, as Redis does, when it is built with it (the
 * default; not under the sanitizers, which bring their own). Its size
 * classes keep small allocations together whatever else the heap holds:
 * with glibc's malloc, records of 3 bytes written over 1 KiB ones stayed a
 * kilobyte apart, so every record cache entry, request and operation
 * touched a page of its own, and a node spent a fifth more CPU a quorum
 * GET than on a heap that had only ever seen small values. It is asked for
 * transparent huge pages (thp:always), which the kernel's default
 * (madvise) grants only to those who ask: the TLB then covers the cache.
 * And it keeps the pages it frees (dirty_decay_ms:-1): given back to the
 * kernel after its default 10 s, they came back as new huge pages that the
 * kernel zeroed first, 2 MiB at a time (libevent's input buffers, freed
 * and taken again all the time): clear_page was 13% of the nodes under
 * SETs of 1 KiB. The node's memory stays at its peak, as with glibc's.
 */
#ifndef RINGKV_ALLOC_H
#define RINGKV_ALLOC_H

/* The allocator in use, as INFO's mem_allocator shows it: "jemalloc-5.3.0"
 * or "libc". */
const char *alloc_name(void);

#endif
