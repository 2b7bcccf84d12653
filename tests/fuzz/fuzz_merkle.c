/* libFuzzer target for what node/merkle.c does with a peer's numbers: an
 * Envelope body holding a MerkleReq or MerkleLeavesReq goes through the
 * same checks the responder applies (merkle_check_nodes/leaves); what
 * passes is then used as the responder would, and the slice arithmetic
 * checked: every child index stays inside its level, and a leaf's token
 * range maps back to that leaf for any lo, hi and depth. A mismatch
 * abort()s, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>

#include "merkle.h"
#include "ringkv.pb-c.h"

static void nodes(const Ringkv__MerkleReq *q)
{
    char err[256];
    if (merkle_check_nodes(q->depth, q->level, q->nodes, q->n_nodes, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return;
    }
    uint64_t size = merkle_level_size(q->level + 1);
    for (size_t i = 0; i < q->n_nodes; i++)
        if ((uint64_t)q->nodes[i] * MERKLE_FANOUT + MERKLE_FANOUT - 1 >= size)
            abort();
}

static void leaves(const Ringkv__MerkleLeavesReq *q)
{
    char err[256];
    if (merkle_check_leaves(q->depth, q->leaves, q->n_leaves, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return;
    }
    for (size_t i = 0; i < q->n_leaves; i++) {
        uint64_t llo, lhi;
        if (!merkle_leaf_range(q->lo, q->hi, q->depth, q->leaves[i], &llo, &lhi))
            continue;
        if (llo == lhi || merkle_leaf_of(q->lo, q->hi, q->depth, llo + 1) != q->leaves[i] ||
            merkle_leaf_of(q->lo, q->hi, q->depth, lhi) != q->leaves[i])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ringkv__Envelope *env = ringkv__envelope__unpack(NULL, size, data);
    if (!env)
        return 0;
    if (env->body_case == RINGKV__ENVELOPE__BODY_MERKLE_REQ && env->merkle_req)
        nodes(env->merkle_req);
    else if (env->body_case == RINGKV__ENVELOPE__BODY_MERKLE_LEAVES_REQ && env->merkle_leaves_req)
        leaves(env->merkle_leaves_req);
    ringkv__envelope__free_unpacked(env, NULL);
    return 0;
}
