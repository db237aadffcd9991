/*
 * Multifd: RAM pages over extra connections, in QEMU 7.2's wire format
 * (shared docs: multifd.md). The wire format is documented at the top of
 * multifd-packet.c, the sender in multifd-send.c, the receiver in
 * multifd-recv.c.
 */
#ifndef MIGRATION_MULTIFD_H
#define MIGRATION_MULTIFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "error.h"
#include "memory.h"
#include "qapi-types.h"

#define MULTIFD_MAGIC 0x11223344u
#define MULTIFD_VERSION 1
#define MULTIFD_FLAG_SYNC 0x1u
#define MULTIFD_FLAG_COMPRESSION_MASK 0xeu
#define MULTIFD_FLAG_NOCOMP 0x0u
#define MULTIFD_FLAG_ZLIB 0x2u
#define MULTIFD_FLAG_ZSTD 0x4u

#define MULTIFD_PACKET_PAGES (512 * 1024 / MIGVM_PAGE_SIZE)          /* 128 on x86 */
#define MULTIFD_INIT_SIZE 64
#define MULTIFD_HEADER_SIZE (64 + 256 + 8 * MULTIFD_PACKET_PAGES)   /* 1344 */
/* The most compressed payload a receiver takes (QEMU 7.2's buffer size,
 * which it forgets to check). */
#define MULTIFD_MAX_COMPRESSED (1024 * 1024)
/* The most channels a destination waits for before loading the main
 * stream's first sync fails. */
#define MULTIFD_CHANNEL_WAIT_MS 5000

/* ---- wire format (multifd-packet.c) ---- */

typedef struct MultifdInit {
    uint8_t uuid[16];
    uint8_t id;
} MultifdInit;

typedef struct MultifdPacket {
    uint32_t flags;
    uint32_t pages_alloc;
    uint32_t normal_pages;
    uint32_t next_packet_size;
    uint64_t packet_num;
    char ramblock[256];                     /* NUL-terminated */
    uint64_t offset[MULTIFD_PACKET_PAGES];
} MultifdPacket;

void multifd_init_encode(const MultifdInit *init, uint8_t buf[MULTIFD_INIT_SIZE]);
/* Magic and version (QEMU 7.2's messages); the id is the caller's to check. */
bool multifd_init_parse(const uint8_t buf[MULTIFD_INIT_SIZE], MultifdInit *init, Error **errp);
void multifd_packet_encode(const MultifdPacket *p, uint8_t buf[MULTIFD_HEADER_SIZE]);
/* Decode a header: magic, version, pages_alloc, normal_pages. */
bool multifd_packet_parse(const uint8_t buf[MULTIFD_HEADER_SIZE], MultifdPacket *p, Error **errp);
/* A parsed header's pages against our RAM: the block exists and every offset
 * lies inside it (page-aligned), and the compression bits are ours. Returns
 * the block (NULL for an empty packet, which names none). */
bool multifd_packet_check(const MultifdPacket *p, unsigned id, uint32_t expected_comp, RAMBlock **block,
                          Error **errp);
/* The flags value of a compression method. */
uint32_t multifd_compression_flag(MultiFDCompression method);

/* ---- compression (multifd-compress.c): one stream per channel ---- */

typedef struct MultifdCodec MultifdCodec;
/* NULL (and no error) for none. */
MultifdCodec *multifd_codec_new_encoder(MultiFDCompression method, int level, Error **errp);
MultifdCodec *multifd_codec_new_decoder(MultiFDCompression method, Error **errp);
void multifd_codec_free(MultifdCodec *c);
/* Compress n pages (sync-flushed, stream kept open) into the codec's buffer;
 * out and len: the payload. */
bool multifd_codec_compress(MultifdCodec *c, uint8_t *const *pages, unsigned n,
                            const uint8_t **out, uint32_t *len, Error **errp);
/* Inflate exactly n pages from in[0..len) into pages[] (guest RAM). */
bool multifd_codec_decompress(MultifdCodec *c, const uint8_t *in, uint32_t len,
                              uint8_t *const *pages, unsigned n, Error **errp);

/* ---- channel I/O (multifd-conn.c, multifd-connect.c) ----
 * A channel is a connected socket. Creation goes through
 * multifd_conn_connect (source) and multifd_conn_accept (destination) only;
 * a transport that wraps the socket (TLS) wraps those two and sets `io`,
 * which every read and write then goes through. */
typedef struct MultifdConn MultifdConn;
typedef struct MultifdConnIO {
    /* Like writev/readv on a blocking socket: bytes moved, or -1 with errno. */
    ssize_t (*writev)(MultifdConn *c, const struct iovec *iov, int cnt);
    ssize_t (*readv)(MultifdConn *c, const struct iovec *iov, int cnt);
    void (*free)(MultifdConn *c);           /* before the fd is closed */
} MultifdConnIO;
struct MultifdConn {
    int fd;
    const MultifdConnIO *io;                /* NULL: plain socket */
    void *opaque;                           /* the wrapper's state */
};
struct MigAddress;
/* multifd-connect.c; multifd_send_setup takes it (or a wrapper) as connect. */
typedef bool MultifdConnectFn(const struct MigAddress *addr, int cancel_fd, MultifdConn *c, Error **errp);
MultifdConnectFn multifd_conn_connect;
bool multifd_conn_accept(int fd, MultifdConn *c, Error **errp);
/* Whole iovecs: false (errp) on an error or end of file. *eof, if given, is
 * set when the peer closed before the first byte. */
bool multifd_conn_writev_all(MultifdConn *c, struct iovec *iov, int cnt, Error **errp);
bool multifd_conn_readv_all(MultifdConn *c, struct iovec *iov, int cnt, bool *eof, Error **errp);
void multifd_conn_shutdown(MultifdConn *c);    /* any thread: unblock I/O */
/* MSG_ZEROCOPY on a plain socket: enable it (else QEMU 7.2's error), send
 * with it (counting notifications), and at a sync wait until the kernel let
 * go of every page sent; *copied: it copied them after all (loopback does). */
typedef struct MultifdZeroCopy {
    uint64_t queued, done;
    bool copied;
} MultifdZeroCopy;
bool multifd_zero_copy_enable(int fd, Error **errp);
bool multifd_conn_writev_zero_copy(MultifdConn *c, struct iovec *iov, int cnt, MultifdZeroCopy *zc,
                                   Error **errp);
bool multifd_zero_copy_flush(MultifdConn *c, MultifdZeroCopy *zc, bool *copied, Error **errp);
void multifd_conn_close(MultifdConn *c);
/* Move the iovec forward past n bytes (a partial write); returns the new count. */
int multifd_iov_advance(struct iovec **iov, int cnt, size_t n);

/* Guest pages by reference on a plain UNIX socket (multifd-splice.c): the
 * source's copy into the socket is gone. open: false (nothing to close) when
 * the channel is not one. writev: 1 all written; 0 nothing written, the
 * memory cannot be spliced (write it as usual); -1 error (errp). */
typedef struct MultifdSplice {
    int pipe[2];
} MultifdSplice;
bool multifd_splice_open(MultifdSplice *sp, const MultifdConn *c);
int multifd_splice_writev(MultifdSplice *sp, MultifdConn *c, struct iovec *iov, int cnt, Error **errp);
void multifd_splice_close(MultifdSplice *sp);

/* ---- source (multifd-send.c) ---- */

struct MigStream;
/* Multifd is usable with this address (tcp, unix); else QEMU 7.2's error. */
bool multifd_transport_check(const struct MigAddress *addr, Error **errp);
/* Start the channel threads; they connect to addr with connect. main is the migration
 * stream: multifd's bytes are accounted there (transferred, rate limit) and
 * it is shut down when a channel fails. [migration thread] */
struct MigrateMultifdParams;
bool multifd_send_setup(const struct MigAddress *addr, int cancel_fd, struct MigStream *main,
                        const struct MigrateMultifdParams *params, MultifdConnectFn *connect, Error **errp);
bool multifd_send_active(void);
/* RAM's writer of a ZERO record, for the pages a channel found zero.
 * [migration thread; set once before any migration] */
typedef void MultifdZeroPageFn(struct MigStream *f, RAMBlock *b, uint64_t offset);
void multifd_send_set_zero_page_fn(MultifdZeroPageFn *fn);
/* Queue one dirty page of b (a channel tests it for zero). Errors (a failed channel, a cancel) become
 * the main stream f's error. [migration thread] */
void multifd_queue_page(struct MigStream *f, RAMBlock *b, uint64_t offset);
/* Before every RAM EOS: send what is queued, then a SYNC packet on every
 * channel, and wait until all are written. Errors as above. [migration thread] */
void multifd_send_sync(struct MigStream *f);
/* After the last SYNC of a migration without a return path: pages that went
 * by reference (multifd-splice.c) are read from guest RAM when the
 * destination reads them, so wait until it has read every byte (or read
 * none for 10 s, or the migration is cancelled) before the source calls the
 * migration completed and may be resumed (x-force-after-migration).
 * [migration thread] */
void multifd_send_wait_read(int cancel_fd);
/* Unblock everything (cancel); any thread. */
void multifd_send_shutdown(void);
/* Join and free (after completion, failure or cancel). [migration thread] */
void multifd_send_cleanup(bool success);
uint64_t multifd_send_bytes(void);             /* query-migrate multifd-bytes */
void multifd_send_stats_reset(void);           /* a new migration starts */
uint64_t multifd_send_zero_copy_misses(void);  /* dirty-sync-missed-zero-copy */

/* ---- destination (multifd-recv.c) ---- */

struct MigChannel;
/* The incoming migration began with multifd on: expect n channels. [main loop] */
void multifd_recv_setup(unsigned n, MultiFDCompression method);
bool multifd_recv_active(void);
/* A new connection after the main channel. [main loop] */
void multifd_recv_new_channel(struct MigChannel *ch);
/* The main stream: shut down when a channel fails, to unblock the loader. */
void multifd_recv_set_main(struct MigStream *f);
/* At every RAM EOS of the main stream: wait for a SYNC on every channel,
 * then release them. [incoming thread] */
bool multifd_recv_sync(Error **errp);
/* A channel's error, if any (a copy, or NULL). */
Error *multifd_recv_error(void);
/* Stop and join the channels. [incoming thread, after the load] */
void multifd_recv_cleanup(void);
/* The channels' bytes since the setup, counted as the source's multifd-bytes
 * (header plus uncompressed pages per packet): the flight recorder's share. */
uint64_t multifd_recv_bytes(void);

/* Fuzzing and tests: one packet, header then payload, from a buffer, into
 * guest RAM (the same checks and code as a channel). */
bool multifd_recv_packet_buffer(MultifdCodec *dec, uint32_t expected_comp, const uint8_t *buf, size_t len,
                                Error **errp);

#endif
