/* libFuzzer target for the gossip decoders (node/gossip_codec.c) and the
 * state machine behind them: arbitrary bytes go to the datagram decoder, the
 * push-pull decoder, and a live instance as a datagram and as a state. What
 * the datagram decoder accepts must be canonical (re-packs to its own
 * length), and every datagram the instance sends in reply must fit
 * max_packet and decode again. Any mismatch abort()s.
 */
#include <stdint.h>
#include <stdlib.h>

#include "gossip.h"
#include "gossip_codec.h"

static void on_send(void *ctx, const char *addr, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)addr;
    if (len > 1400)
        abort();
    Ringkv__GossipPacket *p = gossip_codec_decode_packet(buf, len, 1400);
    if (!p)
        abort(); /* we sent something we would refuse */
    ringkv__gossip_packet__free_unpacked(p, NULL);
}

static void check_packet(const uint8_t *data, size_t size)
{
    Ringkv__GossipPacket *p = gossip_codec_decode_packet(data, size, 65507);
    if (!p)
        return;
    if (ringkv__gossip_packet__get_packed_size(p) != size - 1 || data[0] != GOSSIP_VERSION)
        abort();
    for (size_t i = 0; i < p->n_updates; i++)
        if (!gossip_codec_valid_member(p->updates[i]))
            abort();
    ringkv__gossip_packet__free_unpacked(p, NULL);
}

static void check_state(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    Ringkv__GossipPushPull *s = gossip_codec_decode_state(data, size, err, sizeof err);
    if (!s) {
        if (err[0] == '\0')
            abort(); /* every refusal says why */
        return;
    }
    if (s->n_members > GOSSIP_STATE_MAX_MEMBERS)
        abort();
    ringkv__gossip_push_pull__free_unpacked(s, NULL);
}

/* A live instance that knows a few members, so records hit every rule. */
static gossip *instance(void)
{
    gossip_config cfg;
    gossip_member self = {
        .id = "n0", .peer_addr = "10.0.0.1:7000", .state = GOSSIP_ALIVE, .incarnation = 5};
    gossip_io io = {.send = on_send};
    gossip_config_defaults(&cfg);
    gossip *g = gossip_new(&cfg, &self, &io, 42, 1000);
    if (!g)
        abort();
    static const char *const seeds[] = {"10.0.0.2:7000"};
    gossip_join(g, 1000, seeds, 1);
    return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    check_packet(data, size);
    check_state(data, size);
    gossip *g = instance();
    gossip_receive(g, 2000, "10.0.0.9:7000", data, size);
    gossip_merge_state(g, 2100, data, size, err, sizeof err);
    /* time passes over whatever the input left: probes, suspicions, deaths */
    for (uint64_t t = 2200; t < 45000; t += 500)
        gossip_tick(g, t);
    gossip_free(g);
    return 0;
}
