/* wire_int: what the client protocol's decoder (wire.c) and encoder
 * (wire_encode.c) share: the field tables of the maps in STATS-like
 * replies, so both sides agree on names and order. Not installed.
 */
#ifndef RINGKV_WIRE_INT_H
#define RINGKV_WIRE_INT_H

#include <stddef.h>

typedef struct wire_field {
    const char *name;
    int is_num;
    size_t off; /* of a wire_bytes or uint64_t in the view struct */
} wire_field;

/* The fields of a MEMBERS member map, by name: the six strings, then the
 * three numbers (wire_encode_members relies on that order); offsets into
 * wire_member_view. Names a decoder does not know are skipped, so nodes may
 * add fields. */
extern const wire_field wire_member_fields[];
extern const size_t wire_n_member_fields;
/* The fields of a TOPOLOGY member map (offsets into
 * wire_topology_member_view); unknown names are skipped. */
extern const wire_field wire_topo_fields[];
extern const size_t wire_n_topo_fields;

#endif
