/* store_wal: the store's write-ahead log under `fsync everysec`.
 *
 * With everysec the store keeps writes in memory (dirty entries of the
 * record cache, store_cache.h) and writes them into LMDB later, in ring
 * order and many to a page (store.c). What makes such a write safe to
 * acknowledge is this log: the records of a batch are appended with one
 * write() before the batch's replies go out, so a killed process loses
 * nothing, and the syncer thread fdatasyncs the log once a second, so a
 * machine crash loses at most that second. The log is a sequence of
 * segment files, wal-<seq>.log in the data dir; a segment is deleted once
 * every record in it has reached LMDB and LMDB has been synced. At open the
 * store replays what segments are left.
 *
 * Segment file: the 16 bytes "ringkv-wal-1\n\0\0\0", then records:
 *   u32  n, the length of what follows the checksum (little-endian)
 *   u32  checksum: the low 32 bits of XXH3-64 of those n bytes
 *   u16  klen, the LMDB key's length, 1..511
 *   klen the LMDB key (token + key, or token + hash)
 *   ...  the record, exactly as LMDB stores it (store.c, format byte 1),
 *        or a removal for good (an expiry or tombstone purge, a record of
 *        a dropped range), so that a replay does not bring it back:
 *          WAL_OP_PURGE, u64 hlc (big-endian), u8 n, n bytes origin:
 *          delete the key's record if it has this version.
 * A record that is cut short ends the segment (a write torn by a crash);
 * one whose checksum does not match does too, with a warning.
 */
#ifndef RINGKV_STORE_WAL_H
#define RINGKV_STORE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_MAGIC "ringkv-wal-1\n\0\0\0"
#define WAL_MAGIC_LEN 16
#define WAL_REC_HDR 10  /* n, checksum, klen */
#define WAL_KEY_MAX 511 /* LMDB's largest key */
#define WAL_OP_PURGE 0xF0

typedef struct store_wal {
    const char *dir; /* the data dir (the store's; not owned) */
    int fd;          /* the segment being appended to; -1: none */
    uint64_t seq;    /* its number */
    uint64_t size;   /* its length in bytes */
    bool torn;       /* a failed write left a partial record in it */
    uint8_t *buf;    /* this batch's records, written at its commit */
    size_t len, cap;
} store_wal;

/* One record as wal_parse found it; pointers into the parsed bytes. */
typedef struct wal_rec {
    const uint8_t *key;
    size_t klen;
    const uint8_t *rec;
    size_t rlen;
} wal_rec;

/* Parses the record at p (n bytes left in the segment). Returns its length
 * in bytes, 0 when the bytes end before it does (a torn tail, or the end),
 * or -1 when it is corrupt (bad length or checksum). */
long wal_parse(const uint8_t *p, size_t n, wal_rec *out);

/* Appends one record to the batch's buffer. -1: out of memory (nothing
 * added). With rec NULL the record's rlen bytes are left to wal_seal. */
int wal_add(store_wal *w, const uint8_t *key, size_t klen, const uint8_t *rec, size_t rlen);
/* Fills in the record added at buffer offset at (its rlen as added). */
void wal_seal(store_wal *w, size_t at, const uint8_t *rec, size_t rlen);

/* Creates segment seq in w->dir and makes it the one being appended to.
 * The old one's fd is returned in *old_fd (-1: none) for the syncer to sync
 * and close. 0, or -1 with a message. */
int wal_start_segment(store_wal *w, uint64_t seq, int *old_fd, char *err, size_t errlen);

/* Writes the buffered records to the segment and empties the buffer. On a
 * failure the segment is cut back to where it was, so a later record never
 * follows a torn one; returns the errno, with a message. */
int wal_write(store_wal *w, char *err, size_t errlen);

/* The path of segment seq in dir. */
void wal_path(char *out, size_t outlen, const char *dir, uint64_t seq);

/* The segments in dir, sorted by seq, in a malloc'd array (*out, *n; NULL
 * and 0 when none). 0, or -1 with a message. */
int wal_list(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen);

/* Closes the segment and frees the buffer (nothing is written). */
void wal_close(store_wal *w);

#endif
