/* hlc: hybrid logical clock; see hlc.h. */
#include "hlc.h"

void hlc_init(hlc *c, uint64_t floor) { c->last = floor; }

uint64_t hlc_now(hlc *c, uint64_t wall_ms)
{
    uint64_t phys = wall_ms << HLC_LOGICAL_BITS;
    /* Wall clock ahead: jump to it. Behind or equal (clock stepped back, or
     * more than 65536 stamps in one millisecond): count on from the last. */
    c->last = phys > c->last ? phys : c->last + 1;
    return c->last;
}

void hlc_observe(hlc *c, uint64_t remote)
{
    if (remote > c->last)
        c->last = remote;
}
