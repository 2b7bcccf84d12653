/* merkle: hash trees over one ring range; see merkle.h.
 *
 * The nodes live in one array, level by level (level l starts at
 * (F^l - 1) / (F - 1)), so a tree is one allocation and a node's children
 * are F consecutive entries. Leaf slices use 128-bit arithmetic: a range
 * may be the whole ring, 2^64 tokens, which no uint64_t holds.
 */
#include "merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#include "hlc.h"

typedef unsigned __int128 u128;

/* The range's width: 2^64 for the whole ring (lo == hi). */
static u128 span_of(uint64_t lo, uint64_t hi)
{
    uint64_t s = hi - lo;
    return s ? (u128)s : (u128)1 << 64;
}

uint64_t merkle_level_size(unsigned level)
{
    uint64_t n = 1;
    while (level--)
        n *= MERKLE_FANOUT;
    return n;
}

static size_t level_start(unsigned level)
{
    return (size_t)((merkle_level_size(level) - 1) / (MERKLE_FANOUT - 1));
}

#define MERKLE_MMAP_BYTES ((size_t)1 << 20)

merkle *merkle_new(uint64_t lo, uint64_t hi, unsigned depth)
{
    if (depth < 1 || depth > MERKLE_MAX_DEPTH)
        return NULL;
    merkle *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->lo = lo;
    m->hi = hi;
    m->depth = depth;
    m->nleaves = merkle_level_size(depth);
    m->nhash = level_start(depth + 1);
    /* A deep tree's hashes (9 MiB at depth 5) come straight from mmap: zero
     * pages the kernel fills as they are touched. Through calloc, once
     * glibc has raised its mmap threshold after freeing the last tree, they
     * would come from the heap and be cleared with memset first, a
     * multi-millisecond stall of the event loop per tree. */
    size_t bytes = m->nhash * sizeof *m->hash;
    if (bytes >= MERKLE_MMAP_BYTES) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        m->hash = p == MAP_FAILED ? NULL : p;
    } else {
        m->hash = calloc(m->nhash, sizeof *m->hash);
    }
    if (!m->hash) {
        free(m);
        return NULL;
    }
    return m;
}

void merkle_free(merkle *m)
{
    if (!m)
        return;
    size_t bytes = m->nhash * sizeof *m->hash;
    if (bytes >= MERKLE_MMAP_BYTES)
        munmap(m->hash, bytes);
    else
        free(m->hash);
    free(m);
}

uint64_t merkle_node(const merkle *m, unsigned level, uint64_t idx)
{
    return m->hash[level_start(level) + idx];
}

uint64_t merkle_leaf_of(uint64_t lo, uint64_t hi, unsigned depth, uint64_t token)
{
    uint64_t off = token - lo - 1; /* 0 for the first token of the range */
    return (uint64_t)((u128)off * merkle_level_size(depth) / span_of(lo, hi));
}

/* The first token offset (past lo, from 0) of leaf i: ceil(i * span / L). */
static u128 leaf_first(u128 span, uint64_t nleaves, uint64_t i)
{
    return ((u128)i * span + nleaves - 1) / nleaves;
}

bool merkle_leaf_range(uint64_t lo, uint64_t hi, unsigned depth, uint64_t leaf, uint64_t *llo,
                       uint64_t *lhi)
{
    u128 span = span_of(lo, hi);
    uint64_t n = merkle_level_size(depth);
    u128 a = leaf_first(span, n, leaf), b = leaf_first(span, n, leaf + 1);
    if (a == b)
        return false;
    /* tokens lo+1+a .. lo+b, i.e. (lo+a, lo+b] */
    *llo = lo + (uint64_t)a;
    *lhi = lo + (uint64_t)b;
    return true;
}

static void put_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t merkle_record_hash(const void *key, size_t klen, const store_version *ver, bool tombstone,
                            uint64_t expires_ms)
{
    uint8_t buf[25 + STORE_ORIGIN_MAX];
    size_t olen = strnlen(ver->origin, STORE_ORIGIN_MAX);
    put_le(buf, XXH3_64bits(key, klen));
    put_le(buf + 8, ver->hlc);
    put_le(buf + 16, tombstone ? 0 : expires_ms);
    buf[24] = tombstone ? 1 : 0;
    memcpy(buf + 25, ver->origin, olen);
    return XXH3_64bits(buf, 25 + olen);
}

bool merkle_included(bool tombstone, uint64_t hlc, uint64_t expires_ms, uint64_t now_ms,
                     uint64_t tombstone_ttl_ms)
{
    if (tombstone) /* the sweep's rule (store.c), so both agree on what is purged */
        return !(now_ms > tombstone_ttl_ms && hlc_physical_ms(hlc) < now_ms - tombstone_ttl_ms);
    return expires_ms == 0 || expires_ms > now_ms;
}

void merkle_add_leaf(merkle *m, uint64_t token, uint64_t h)
{
    m->hash[level_start(m->depth) + merkle_leaf_of(m->lo, m->hi, m->depth, token)] += h;
    m->records++;
}

/* Sums up to max parents, level by level from the leaves up, resuming at
 * (*level, *pos): *level is the parent level plus one, m->depth to start.
 * Returns true once the root is summed (*level is 0 then). */
static bool finish_some(merkle *m, unsigned *level, uint64_t *pos, uint64_t max)
{
    while (*level > 0 && max > 0) {
        unsigned l = *level - 1;
        uint64_t *parent = m->hash + level_start(l), *child = m->hash + level_start(l + 1);
        uint64_t n = merkle_level_size(l);
        for (; *pos < n && max > 0; (*pos)++, max--) {
            uint64_t s = 0;
            for (unsigned c = 0; c < MERKLE_FANOUT; c++)
                s += child[*pos * MERKLE_FANOUT + c];
            parent[*pos] = s;
        }
        if (*pos == n) {
            (*level)--;
            *pos = 0;
        }
    }
    return *level == 0;
}

void merkle_finish(merkle *m)
{
    unsigned level = m->depth;
    uint64_t pos = 0;
    finish_some(m, &level, &pos, UINT64_MAX);
}

/* Adds delta (mod 2^64) along the path from token's leaf to the root. */
static void path_add(merkle *m, uint64_t token, uint64_t delta)
{
    uint64_t idx = merkle_leaf_of(m->lo, m->hi, m->depth, token);
    for (unsigned l = m->depth + 1; l-- > 0; idx /= MERKLE_FANOUT)
        m->hash[level_start(l) + idx] += delta;
}

void merkle_add(merkle *m, uint64_t token, uint64_t h)
{
    path_add(m, token, h);
    m->records++;
}

void merkle_remove(merkle *m, uint64_t token, uint64_t h)
{
    path_add(m, token, (uint64_t)0 - h);
    m->records--;
}

unsigned merkle_depth_for(uint64_t keys)
{
    unsigned d = 1;
    while (d < MERKLE_MAX_DEPTH && merkle_level_size(d) < keys)
        d++;
    return d;
}

int merkle_check_nodes(unsigned depth, unsigned level, const uint32_t *nodes, size_t n, char *err,
                       size_t errlen)
{
    if (depth < 1 || depth > MERKLE_MAX_DEPTH) {
        snprintf(err, errlen, "tree depth %u is outside 1..%u", depth, MERKLE_MAX_DEPTH);
        return -1;
    }
    if (level >= depth) {
        snprintf(err, errlen, "level %u has no children in a tree of depth %u", level, depth);
        return -1;
    }
    if (n == 0 || n > MERKLE_MAX_NODES) {
        snprintf(err, errlen, "%zu node indexes; a request names 1..%u", n, MERKLE_MAX_NODES);
        return -1;
    }
    uint64_t size = merkle_level_size(level);
    for (size_t i = 0; i < n; i++)
        if (nodes[i] >= size) {
            snprintf(err, errlen, "node index %u is past level %u's %llu nodes", nodes[i], level,
                     (unsigned long long)size);
            return -1;
        }
    return 0;
}

int merkle_check_leaves(unsigned depth, const uint32_t *leaves, size_t n, char *err, size_t errlen)
{
    if (depth < 1 || depth > MERKLE_MAX_DEPTH) {
        snprintf(err, errlen, "tree depth %u is outside 1..%u", depth, MERKLE_MAX_DEPTH);
        return -1;
    }
    if (n == 0 || n > MERKLE_MAX_LEAVES) {
        snprintf(err, errlen, "%zu leaf indexes; a request names 1..%u", n, MERKLE_MAX_LEAVES);
        return -1;
    }
    uint64_t size = merkle_level_size(depth);
    for (size_t i = 0; i < n; i++) {
        if (leaves[i] >= size) {
            snprintf(err, errlen, "leaf index %u is past the tree's %llu leaves", leaves[i],
                     (unsigned long long)size);
            return -1;
        }
        if (i && leaves[i] <= leaves[i - 1]) {
            snprintf(err, errlen, "leaf indexes must increase (%u after %u)", leaves[i],
                     leaves[i - 1]);
            return -1;
        }
    }
    return 0;
}

/* ---- the builder ---- */

struct merkle_builder {
    store *st;
    merkle *m;
    uint64_t now_ms, ttl_ms;
    uint8_t after[512]; /* the last record seen (LMDB keys are at most 511 bytes) */
    size_t afterlen;
    bool scanned, done;
    unsigned level; /* summing the inner nodes, once scanned: see finish_some */
    uint64_t pos;
};

merkle_builder *merkle_builder_new(store *st, uint64_t lo, uint64_t hi, unsigned depth,
                                   uint64_t now_ms, uint64_t tombstone_ttl_ms)
{
    merkle_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->st = st;
    b->now_ms = now_ms;
    b->ttl_ms = tombstone_ttl_ms;
    if (!(b->m = merkle_new(lo, hi, depth))) {
        free(b);
        return NULL;
    }
    return b;
}

void merkle_builder_free(merkle_builder *b)
{
    if (!b)
        return;
    merkle_free(b->m);
    free(b);
}

static int on_build_item(void *arg, const store_item *it)
{
    merkle_builder *b = arg;
    if (it->poslen <= sizeof b->after) {
        memcpy(b->after, it->pos, it->poslen);
        b->afterlen = it->poslen;
    }
    if (merkle_included(it->tombstone, it->version.hlc, it->expires_ms, b->now_ms, b->ttl_ms))
        merkle_add_leaf(
            b->m, it->token,
            merkle_record_hash(it->key, it->klen, &it->version, it->tombstone, it->expires_ms));
    return 0;
}

int merkle_builder_step(merkle_builder *b, size_t budget, char *err, size_t errlen)
{
    if (b->done)
        return 1;
    if (!b->scanned) {
        bool done = false;
        long n = store_scan(b->st, b->m->lo, b->m->hi, b->after, b->afterlen, budget,
                            on_build_item, b, &done, err, errlen);
        if (n < 0)
            return -1;
        if (!done && n > 0)
            return 0;
        b->scanned = true;
        b->level = b->m->depth;
        b->pos = 0;
    }
    /* The inner nodes in steps too: a deep tree's bottom level alone reads
     * 8 MiB of leaf hashes. Summing a parent (MERKLE_FANOUT adjacent
     * hashes) costs about an eighth of what a record costs the scan. */
    if (!finish_some(b->m, &b->level, &b->pos, budget ? (uint64_t)budget * 8 : 1))
        return 0;
    b->done = true;
    return 1;
}

merkle *merkle_builder_take(merkle_builder *b)
{
    if (!b->done)
        return NULL;
    merkle *m = b->m;
    b->m = NULL;
    return m;
}
