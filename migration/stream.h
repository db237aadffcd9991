/*
 * MigStream: the buffered byte stream a migration is written to and read
 * from (the QEMUFile of migvm). Big-endian integers, counted strings, raw
 * buffers, and zero-copy guest pages on the write side.
 *
 * Backends: a file descriptor (socket, pipe, file), or memory (a growable
 * buffer to write into, or a borrowed byte array to read from: unit tests
 * and fuzzing).
 *
 * Errors are sticky: the first failure (I/O error, end of input, or a
 * caller's mig_stream_set_error) is kept with its message; afterwards every
 * get returns 0 and every put is dropped. Callers check once after a batch
 * of operations (mig_stream_get_error) instead of after every call.
 *
 * Threading: a MigStream is used by one thread at a time (the migration
 * thread on the source, the incoming thread on the destination), rate
 * limit included: another thread that wants a new limit asks the owner,
 * which calls mig_stream_set_rate_limit itself (migration.c does so for
 * max-bandwidth). The byte counters may be read from any thread (relaxed
 * atomics), and mig_stream_shutdown() may be called from any thread to
 * unblock a blocked reader or writer (migrate_cancel).
 *
 * Write path: small puts are copied into a 1 MiB buffer; pages put with
 * mig_stream_put_page() are referenced in place (no copy) in an iovec
 * batch alongside the buffered bytes, and the whole batch goes out with
 * writev() when the buffer or the batch is full, or on flush. A page
 * passed to put_page must stay mapped until the next flush (guest RAM
 * does); if the guest changes it meanwhile, dirty tracking resends it.
 *
 * Rate limiting (write side): the stream counts bytes put in the current
 * slot; mig_stream_rate_limit_exceeded() says when the slot's budget
 * (bytes_per_second / 10 per 100 ms slot) is used up. Waiting is the
 * caller's job: sleep until mig_stream_rate_limit_slot_end_ns(), then call
 * mig_stream_rate_limit_new_slot().
 */
#ifndef MIGVM_MIGRATION_STREAM_H
#define MIGVM_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct MigStream MigStream;

#define MIG_STREAM_BUF_SIZE (1024 * 1024)  /* write buffer; read buffer is 64 KiB */
#define MIG_STREAM_RATE_SLOT_NS 100000000LL /* 100 ms rate-limit slot */

/* Constructors. owns_fd: close the fd when the stream is closed. */
MigStream *mig_stream_new_fd_writer(int fd, bool owns_fd);
MigStream *mig_stream_new_fd_reader(int fd, bool owns_fd);
/* In-memory writer; read the bytes with mig_stream_mem_data(). */
MigStream *mig_stream_new_mem_writer(void);
/* In-memory reader over data (borrowed: must outlive the stream). */
MigStream *mig_stream_new_mem_reader(const void *data, size_t len);

/* What a failed read or write calls the channel, in QEMU's words:
 * "socket" and "file" are found from the fd; an exec: pipe is a "command". */
void mig_stream_set_peer_name(MigStream *f, const char *name);

/* The opposite direction on the same bidirectional fd (a dup of it):
 * the return path. NULL (and errp set) for memory streams or when the fd
 * is not a socket. For a memory writer, use mig_stream_new_mem_reader on
 * the bytes the peer produced instead. */
MigStream *mig_stream_open_return_path(MigStream *f, Error **errp);

/* Flush (writers), close the fd if owned, free. Returns false with the
 * stream's error (sticky or from the final flush) in errp. NULL is a no-op. */
bool mig_stream_close(MigStream *f, Error **errp);

/* Memory writer: everything written so far (flushes pending pages). */
const uint8_t *mig_stream_mem_data(MigStream *f, size_t *len);

/* ---- errors ---- */
bool mig_stream_has_error(const MigStream *f);
/* Copy of the sticky error into errp; returns true when there is none. */
bool mig_stream_get_error(const MigStream *f, Error **errp);
/* The same with context, the one way a reader reports a failed read: true
 * when there is no error, else false with "<fmt...>: <sticky error>" in errp. */
bool mig_stream_check(const MigStream *f, Error **errp, const char *fmt, ...) MIGVM_PRINTF(3, 4);
const char *mig_stream_error_msg(const MigStream *f);  /* NULL if none */
/* Make the stream fail (first error wins; later calls are ignored). */
void mig_stream_set_error(MigStream *f, const char *fmt, ...) MIGVM_PRINTF(2, 3);
/* Unblock any reader/writer on the fd (shutdown(2)); safe from any thread. */
void mig_stream_shutdown(MigStream *f);

/* ---- write side ---- */
void mig_stream_put_u8(MigStream *f, uint8_t v);
void mig_stream_put_be16(MigStream *f, uint16_t v);
void mig_stream_put_be32(MigStream *f, uint32_t v);
void mig_stream_put_be64(MigStream *f, uint64_t v);
void mig_stream_put_buffer(MigStream *f, const void *buf, size_t len);
/* u8 length + bytes; a string longer than 255 bytes is an error on the stream. */
void mig_stream_put_counted_string(MigStream *f, const char *s);
/* Reference len bytes at p (no copy) in the next writev; see the top. */
void mig_stream_put_page(MigStream *f, const void *p, size_t len);
/* Count len bytes sent for this migration on another channel (multifd) as
 * written here: byte counter and rate-limit slot. */
void mig_stream_account(MigStream *f, uint64_t len);
/* Push everything buffered to the fd. Returns false on (sticky) error. */
bool mig_stream_flush(MigStream *f);

/* ---- read side ---- */
/* A reader has bytes (or an end or error) to give without blocking. */
bool mig_stream_readable(MigStream *f);
uint8_t mig_stream_get_u8(MigStream *f);
uint16_t mig_stream_get_be16(MigStream *f);
uint32_t mig_stream_get_be32(MigStream *f);
uint64_t mig_stream_get_be64(MigStream *f);
/* Read exactly len bytes; false (sticky error set, buf partly filled) otherwise. */
bool mig_stream_get_buffer(MigStream *f, void *buf, size_t len);
/* Read into iov[0..cnt) in order, without a copy where possible: the
 * bytes already buffered are copied out first, then an fd reader readv()s
 * from the fd straight into the rest. Stops once at least `min` bytes are
 * placed (a readv may place more, up to the whole iov). Returns the bytes
 * placed; fewer than min only with the sticky error set (end of input or
 * I/O error). cnt <= 256. */
struct iovec;
size_t mig_stream_read_iov(MigStream *f, const struct iovec *iov, int cnt, size_t min);
/* Put back bytes the last mig_stream_read_iov placed (the last ones it
 * placed, in stream order, at most 64 KiB): the next reads return them
 * first. False (and the sticky error) if they cannot be. */
bool mig_stream_unread(MigStream *f, const struct iovec *iov, int cnt);
/* fd readers: refill the buffer with at most `bytes` more than the read at
 * hand needs (default and cap: the 64 KiB buffer). A reader that takes
 * large payloads with mig_stream_read_iov keeps them out of the buffer. */
void mig_stream_set_read_ahead(MigStream *f, size_t bytes);
/* Discard len bytes without allocating. */
bool mig_stream_skip(MigStream *f, size_t len);
/* Counted string into buf[256] (NUL-terminated); returns its length, or -1
 * on error. */
int mig_stream_get_counted_string(MigStream *f, char buf[256]);
/* Look at the next byte without consuming it: 0..255, or -1 at end of
 * input or on error. End of input here does not set the sticky error. */
int mig_stream_peek_u8(MigStream *f);
/* Look at up to len (<= 512) bytes starting offset bytes ahead without
 * consuming; returns how many are available (short at end of input, which
 * does not set the sticky error). */
size_t mig_stream_peek(MigStream *f, size_t offset, void *buf, size_t len);
/* The bytes already buffered and not consumed, without reading more: *p
 * points at them until the next call on f (consume them with
 * mig_stream_skip). 0 after an error. */
size_t mig_stream_buffered(MigStream *f, const uint8_t **p);
/* Bytes known to remain (memory readers), or UINT64_MAX when unknown (fds):
 * lets a reader bound a hostile length before allocating. */
uint64_t mig_stream_remaining_hint(const MigStream *f);

/* ---- counters (any thread) ---- */
uint64_t mig_stream_bytes_written(const MigStream *f);  /* accepted by put_*, incl. buffered */
uint64_t mig_stream_bytes_read(const MigStream *f);     /* consumed by get_* / skip */

/* ---- rate limit (write side; the owning thread only) ---- */
/* 0 = unlimited. Also starts a new slot. */
void mig_stream_set_rate_limit(MigStream *f, uint64_t bytes_per_second);
uint64_t mig_stream_get_rate_limit(const MigStream *f);
/* True when this slot's budget is used up, or the stream has an error
 * (either way the writer should stop producing for now). */
bool mig_stream_rate_limit_exceeded(const MigStream *f);
/* CLOCK_MONOTONIC time (ns) at which the current slot ends. */
int64_t mig_stream_rate_limit_slot_end_ns(const MigStream *f);
/* Start a new slot now: the used budget goes back to 0. */
void mig_stream_rate_limit_new_slot(MigStream *f);
/* Bytes counted in the current slot. */
uint64_t mig_stream_rate_limit_used(const MigStream *f);

#endif
