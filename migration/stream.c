/*
 * MigStream: buffered, sticky-error, rate-accounted byte stream (see stream.h).
 *
 * Write side layout: `iov` is the batch for the next writev(). Each entry is
 * either a run of bytes inside `wbuf` (consecutive small puts extend the same
 * entry) or a caller's page referenced in place. A flush sends the batch and
 * empties both. Memory writers use the same batching and "flush" into a
 * GByteArray, so tests exercise the hot-path code.
 *
 * Read side: `rbuf[rpos..rlen)` holds unread bytes. fd readers refill it with
 * read() of at most `read_ahead` bytes beyond what the caller needs; memory
 * readers point rbuf at the caller's data and never refill.
 * mig_stream_read_iov hands the buffered bytes out first, then readv()s
 * from the fd straight into the caller's memory; mig_stream_unread puts
 * bytes it placed back in front of the buffer.
 */
#include "stream.h"
#include "tsan.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#define MIG_IOV_MAX 256
#define MIG_RBUF_SIZE (64 * 1024)
#define MIG_PEEK_MAX 512

typedef enum MigStreamKind {
    MS_FD_WRITER, MS_FD_READER, MS_MEM_WRITER, MS_MEM_READER,
} MigStreamKind;

struct MigStream {
    MigStreamKind kind;
    int fd;
    bool owns_fd;
    bool is_socket;
    const char *peer_name;         /* static text, NULL: socket or file */
    int wake_fd;                   /* eventfd: mig_stream_shutdown wakes a blocked poll */
    atomic_bool shut;
    Error *err;

    /* write side */
    uint8_t *wbuf;
    size_t wbuf_used;
    struct iovec iov[MIG_IOV_MAX];
    int iov_cnt;
    GByteArray *mem;               /* MS_MEM_WRITER destination */

    /* read side */
    uint8_t *rbuf_owned;           /* fd readers */
    const uint8_t *rbuf;
    size_t rpos, rlen;
    size_t read_ahead;             /* fill() reads at most this much more than needed */
    bool eof;

    _Atomic uint64_t bytes_written;
    _Atomic uint64_t bytes_read;

    /* rate limit */
    uint64_t rate_limit;           /* bytes per second, 0 = unlimited */
    uint64_t slot_used;
    int64_t slot_start_ns;
};

static void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    /* Only the owning thread writes: load + store is enough (no locked RMW). */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static bool fd_is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void mig_stream_set_peer_name(MigStream *f, const char *name)
{
    f->peer_name = name;
}

static const char *peer_name(const MigStream *f)
{
    return f->peer_name ? f->peer_name : f->is_socket ? "socket" : "file";
}

static MigStream *stream_alloc(MigStreamKind kind, int fd, bool owns_fd)
{
    MigStream *f = g_new0(MigStream, 1);
    f->kind = kind;
    f->fd = fd;
    f->owns_fd = owns_fd;
    f->is_socket = fd >= 0 && fd_is_socket(fd);
    f->wake_fd = -1;
    if (fd >= 0) {
        f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        /* A pipe (exec:) that stops reading must not block us beyond a
         * shutdown: make it non-blocking and wait in poll with wake_fd.
         * Sockets are woken by shutdown(2); regular files never block. */
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
    }
    f->slot_start_ns = now_ns();
    if (kind == MS_FD_WRITER || kind == MS_MEM_WRITER) {
        f->wbuf = g_malloc(MIG_STREAM_BUF_SIZE);
    }
    if (kind == MS_MEM_WRITER) {
        f->mem = g_byte_array_new();
    }
    if (kind == MS_FD_READER) {
        f->rbuf_owned = g_malloc(MIG_RBUF_SIZE);
        f->rbuf = f->rbuf_owned;
        f->read_ahead = MIG_RBUF_SIZE;
    }
    return f;
}

MigStream *mig_stream_new_fd_writer(int fd, bool owns_fd)
{
    return stream_alloc(MS_FD_WRITER, fd, owns_fd);
}

MigStream *mig_stream_new_fd_reader(int fd, bool owns_fd)
{
    return stream_alloc(MS_FD_READER, fd, owns_fd);
}

MigStream *mig_stream_new_mem_writer(void)
{
    return stream_alloc(MS_MEM_WRITER, -1, false);
}

MigStream *mig_stream_new_mem_reader(const void *data, size_t len)
{
    MigStream *f = stream_alloc(MS_MEM_READER, -1, false);
    f->rbuf = data;
    f->rlen = data ? len : 0;
    return f;
}

MigStream *mig_stream_open_return_path(MigStream *f, Error **errp)
{
    if (f->fd < 0 || !f->is_socket) {
        error_setg(errp, "The migration channel has no return path (not a bidirectional socket)");
        return NULL;
    }
    int fd = dup(f->fd);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Unable to open the return path");
        return NULL;
    }
    bool writer = f->kind == MS_FD_READER;
    return writer ? mig_stream_new_fd_writer(fd, true) : mig_stream_new_fd_reader(fd, true);
}

/* ---- errors ---- */

bool mig_stream_has_error(const MigStream *f)
{
    return f->err != NULL;
}

bool mig_stream_get_error(const MigStream *f, Error **errp)
{
    if (!f->err) {
        return true;
    }
    error_propagate(errp, error_copy(f->err));
    return false;
}

bool mig_stream_check(const MigStream *f, Error **errp, const char *fmt, ...)
{
    if (!f->err) {
        return true;
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s: %s", what, error_get_pretty(f->err));
    return false;
}

const char *mig_stream_error_msg(const MigStream *f)
{
    return f->err ? error_get_pretty(f->err) : NULL;
}

void mig_stream_set_error(MigStream *f, const char *fmt, ...)
{
    if (f->err) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    error_vset(&f->err, ERROR_CLASS_GENERIC_ERROR, fmt, ap);
    va_end(ap);
}

void mig_stream_shutdown(MigStream *f)
{
    atomic_store(&f->shut, true);
    if (f->fd >= 0 && f->is_socket) {
        shutdown(f->fd, SHUT_RDWR);
    }
    if (f->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(f->wake_fd, &one, sizeof(one));
        (void)n;
    }
}

static bool check_shut(MigStream *f)
{
    if (atomic_load(&f->shut)) {
        mig_stream_set_error(f, "Migration channel was shut down");
        return true;
    }
    return false;
}

/* Wait until fd is ready for `events` (non-blocking fds). */
static bool wait_fd(MigStream *f, short events)
{
    struct pollfd pfd[2] = {
        { .fd = f->fd, .events = events },
        { .fd = f->wake_fd, .events = POLLIN },
    };
    while (poll(pfd, f->wake_fd >= 0 ? 2 : 1, -1) < 0) {
        if (errno != EINTR) {
            return false;
        }
    }
    return !check_shut(f);
}

/* ---- write side ---- */

static bool write_batch_fd(MigStream *f)
{
    struct iovec *iov = f->iov;
    int cnt = f->iov_cnt;
    while (cnt > 0) {
        if (check_shut(f)) {
            return false;
        }
        ssize_t n;
        tsan_ignore_begin();            /* guest pages (include/tsan.h) */
        if (f->is_socket) {
            struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
            n = sendmsg(f->fd, &msg, MSG_NOSIGNAL);
        } else {
            n = writev(f->fd, iov, cnt);
        }
        tsan_ignore_end();
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(f, POLLOUT)) {
                continue;
            }
            mig_stream_set_error(f, "Unable to write to %s: %s", peer_name(f), g_strerror(errno));
            return false;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return true;
}

bool mig_stream_flush(MigStream *f)
{
    if (f->kind != MS_FD_WRITER && f->kind != MS_MEM_WRITER) {
        return !f->err;
    }
    if (!f->err && f->iov_cnt > 0) {
        if (f->kind == MS_MEM_WRITER) {
            for (int i = 0; i < f->iov_cnt; i++) {
                g_byte_array_append(f->mem, f->iov[i].iov_base, f->iov[i].iov_len);
            }
        } else {
            write_batch_fd(f);
        }
    }
    f->iov_cnt = 0;
    f->wbuf_used = 0;
    return !f->err;
}

static void account_put(MigStream *f, size_t len)
{
    counter_add(&f->bytes_written, len);
    f->slot_used += len;
}

/* Append a chunk that fits in the free part of wbuf. */
static void put_small(MigStream *f, const void *buf, size_t len)
{
    uint8_t *dst = f->wbuf + f->wbuf_used;
    struct iovec *last = f->iov_cnt ? &f->iov[f->iov_cnt - 1] : NULL;
    if (!last || (uint8_t *)last->iov_base + last->iov_len != dst) {
        if (f->iov_cnt == MIG_IOV_MAX) {
            mig_stream_flush(f);
            dst = f->wbuf;
        }
        f->iov[f->iov_cnt].iov_base = dst;
        f->iov[f->iov_cnt].iov_len = 0;
        last = &f->iov[f->iov_cnt++];
    }
    memcpy(dst, buf, len);
    last->iov_len += len;
    f->wbuf_used += len;
}

void mig_stream_put_buffer(MigStream *f, const void *buf, size_t len)
{
    if (f->err || !f->wbuf || len == 0) {
        return;
    }
    account_put(f, len);
    const uint8_t *p = buf;
    while (len > 0 && !f->err) {
        if (f->wbuf_used == MIG_STREAM_BUF_SIZE) {
            mig_stream_flush(f);
        }
        size_t chunk = MIN(len, (size_t)MIG_STREAM_BUF_SIZE - f->wbuf_used);
        put_small(f, p, chunk);
        p += chunk;
        len -= chunk;
    }
}

void mig_stream_put_page(MigStream *f, const void *p, size_t len)
{
    if (f->err || !f->wbuf || len == 0) {
        return;
    }
    if (f->iov_cnt == MIG_IOV_MAX) {
        mig_stream_flush(f);
    }
    account_put(f, len);
    f->iov[f->iov_cnt].iov_base = (void *)p;
    f->iov[f->iov_cnt].iov_len = len;
    f->iov_cnt++;
}

void mig_stream_account(MigStream *f, uint64_t len)
{
    if (!f->err) {
        account_put(f, len);
    }
}

void mig_stream_put_u8(MigStream *f, uint8_t v)
{
    mig_stream_put_buffer(f, &v, 1);
}

void mig_stream_put_be16(MigStream *f, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v };
    mig_stream_put_buffer(f, b, sizeof(b));
}

void mig_stream_put_be32(MigStream *f, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
    mig_stream_put_buffer(f, b, sizeof(b));
}

void mig_stream_put_be64(MigStream *f, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = v >> (56 - 8 * i);
    }
    mig_stream_put_buffer(f, b, sizeof(b));
}

void mig_stream_put_counted_string(MigStream *f, const char *s)
{
    size_t len = strlen(s);
    if (len > 255) {
        mig_stream_set_error(f, "String '%.32s...' is too long for the migration stream", s);
        return;
    }
    mig_stream_put_u8(f, len);
    mig_stream_put_buffer(f, s, len);
}

const uint8_t *mig_stream_mem_data(MigStream *f, size_t *len)
{
    if (f->kind != MS_MEM_WRITER) {
        *len = 0;
        return NULL;
    }
    mig_stream_flush(f);
    *len = f->mem->len;
    return f->mem->data;
}

/* ---- read side ---- */

/* readv() on the fd, retried on EINTR and (non-blocking fds) EAGAIN;
 * returns bytes read, 0 at EOF, -1 with the error set. */
static ssize_t readv_fd(MigStream *f, struct iovec *iov, int cnt)
{
    for (;;) {
        if (check_shut(f)) {
            return -1;
        }
        ssize_t n = readv(f->fd, iov, cnt);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(f, POLLIN)) {
            continue;
        }
        mig_stream_set_error(f, "Unable to read from %s: %s", peer_name(f), g_strerror(errno));
        return -1;
    }
}

/* One read into dst; returns bytes read, 0 at EOF, -1 on error (set). */
static ssize_t read_fd(MigStream *f, void *dst, size_t len)
{
    struct iovec v = { dst, len };
    return readv_fd(f, &v, 1);
}

/* Try to have at least `need` (<= MIG_RBUF_SIZE) unread bytes buffered.
 * Returns the number available (less only at EOF or on error). */
static size_t fill(MigStream *f, size_t need)
{
    size_t avail = f->rlen - f->rpos;
    if (avail >= need || f->kind != MS_FD_READER || f->eof || f->err) {
        return avail;
    }
    if (f->rpos > 0) {
        memmove(f->rbuf_owned, f->rbuf_owned + f->rpos, avail);
        f->rpos = 0;
        f->rlen = avail;
    }
    size_t room = MIN(MIG_RBUF_SIZE, f->rpos + need + f->read_ahead);
    while (f->rlen < need) {
        ssize_t n = read_fd(f, f->rbuf_owned + f->rlen, room - f->rlen);
        if (n <= 0) {
            f->eof = n == 0;
            break;
        }
        f->rlen += n;
    }
    return f->rlen - f->rpos;
}

bool mig_stream_readable(MigStream *f)
{
    if (f->rlen > f->rpos) {
        return true;
    }
    if (f->kind != MS_FD_READER || f->eof || f->err) {
        return false;
    }
    struct pollfd p = { .fd = f->fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0;
}

static void set_eof_error(MigStream *f)
{
    mig_stream_set_error(f, "Unexpected end of migration stream");
}

static void consume(MigStream *f, size_t n)
{
    f->rpos += n;
    counter_add(&f->bytes_read, n);
}

/* Read directly into dst (large reads bypass the buffer). */
static bool read_direct(MigStream *f, uint8_t *dst, size_t len)
{
    while (len > 0) {
        ssize_t n = read_fd(f, dst, len);
        if (n <= 0) {
            if (n == 0) {
                f->eof = true;
                set_eof_error(f);
            }
            return false;
        }
        counter_add(&f->bytes_read, n);
        dst += n;
        len -= n;
    }
    return true;
}

static bool read_or_skip(MigStream *f, uint8_t *dst, size_t len)
{
    if (f->err || !f->rbuf) {
        if (!f->err) {
            mig_stream_set_error(f, "Migration stream is not readable");
        }
        return false;
    }
    while (len > 0) {
        size_t avail = f->rlen - f->rpos;
        if (avail == 0 && dst && len >= MIG_RBUF_SIZE / 2 && f->kind == MS_FD_READER) {
            return read_direct(f, dst, len);
        }
        if (avail == 0) {
            avail = fill(f, 1);
            if (avail == 0) {
                if (!f->err) {
                    set_eof_error(f);
                }
                return false;
            }
        }
        size_t chunk = MIN(avail, len);
        if (dst) {
            memcpy(dst, f->rbuf + f->rpos, chunk);
            dst += chunk;
        }
        consume(f, chunk);
        len -= chunk;
    }
    return true;
}

bool mig_stream_get_buffer(MigStream *f, void *buf, size_t len)
{
    return read_or_skip(f, buf, len);
}

bool mig_stream_skip(MigStream *f, size_t len)
{
    return read_or_skip(f, NULL, len);
}

/* Fixed-size big-endian read; 0 after an error. */
static uint64_t get_be(MigStream *f, size_t n)
{
    uint8_t b[8];
    if (f->rlen - f->rpos >= n && !f->err) {      /* fast path */
        memcpy(b, f->rbuf + f->rpos, n);
        consume(f, n);
    } else if (!read_or_skip(f, b, n)) {
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | b[i];
    }
    return v;
}

uint8_t mig_stream_get_u8(MigStream *f)
{
    return get_be(f, 1);
}

uint16_t mig_stream_get_be16(MigStream *f)
{
    return get_be(f, 2);
}

uint32_t mig_stream_get_be32(MigStream *f)
{
    return get_be(f, 4);
}

uint64_t mig_stream_get_be64(MigStream *f)
{
    return get_be(f, 8);
}

int mig_stream_get_counted_string(MigStream *f, char buf[256])
{
    uint8_t len = mig_stream_get_u8(f);
    buf[0] = '\0';
    if (f->err || !mig_stream_get_buffer(f, buf, len)) {
        buf[0] = '\0';
        return -1;
    }
    buf[len] = '\0';
    return len;
}

size_t mig_stream_peek(MigStream *f, size_t offset, void *buf, size_t len)
{
    if (f->err || !f->rbuf || offset + len > MIG_PEEK_MAX) {
        return 0;
    }
    size_t avail = fill(f, offset + len);
    if (avail <= offset) {
        return 0;
    }
    size_t n = MIN(len, avail - offset);
    memcpy(buf, f->rbuf + f->rpos + offset, n);
    return n;
}

size_t mig_stream_buffered(MigStream *f, const uint8_t **p)
{
    if (f->err || !f->rbuf) {
        *p = NULL;
        return 0;
    }
    *p = f->rbuf + f->rpos;
    return f->rlen - f->rpos;
}

int mig_stream_peek_u8(MigStream *f)
{
    uint8_t b;
    return mig_stream_peek(f, 0, &b, 1) == 1 ? b : -1;
}

uint64_t mig_stream_remaining_hint(const MigStream *f)
{
    return f->kind == MS_MEM_READER ? f->rlen - f->rpos : UINT64_MAX;
}

/* ---- counters ---- */

uint64_t mig_stream_bytes_written(const MigStream *f)
{
    return atomic_load_explicit(&((MigStream *)f)->bytes_written, memory_order_relaxed);
}

uint64_t mig_stream_bytes_read(const MigStream *f)
{
    return atomic_load_explicit(&((MigStream *)f)->bytes_read, memory_order_relaxed);
}

/* ---- rate limit ---- */

void mig_stream_set_rate_limit(MigStream *f, uint64_t bytes_per_second)
{
    f->rate_limit = bytes_per_second;
    f->slot_used = 0;           /* a new limit starts with nothing owed */
    f->slot_start_ns = now_ns();
}

uint64_t mig_stream_get_rate_limit(const MigStream *f)
{
    return f->rate_limit;
}

static uint64_t slot_budget(const MigStream *f)
{
    return MAX(f->rate_limit / (1000000000LL / MIG_STREAM_RATE_SLOT_NS), 1);
}

bool mig_stream_rate_limit_exceeded(const MigStream *f)
{
    if (f->err) {
        return true;
    }
    if (!f->rate_limit) {
        return false;
    }
    return f->slot_used >= slot_budget(f);
}

int64_t mig_stream_rate_limit_slot_end_ns(const MigStream *f)
{
    return f->slot_start_ns + MIG_STREAM_RATE_SLOT_NS;
}

/*
 * What a slot sent past its budget is owed by the next slots, so the limit
 * holds on average: bytes can be counted late (multifd channels report
 * theirs when a packet is done, and the sync at each round's end flushes
 * the last ones after the budget ran out), and forgetting them at every new
 * slot let multifd run ~40 % over max-bandwidth. The debt is capped at a few
 * slots so one burst cannot stall the stream for long.
 */
void mig_stream_rate_limit_new_slot(MigStream *f)
{
    int64_t now = now_ns();
    uint64_t debt = 0;
    if (f->rate_limit && f->slot_used) {
        uint64_t budget = slot_budget(f);
        int64_t elapsed = now - f->slot_start_ns;
        uint64_t slots = elapsed > MIG_STREAM_RATE_SLOT_NS ? (uint64_t)(elapsed / MIG_STREAM_RATE_SLOT_NS) : 1;
        uint64_t paid = slots > f->slot_used / budget ? f->slot_used : slots * budget;
        debt = MIN(f->slot_used - paid, 4 * budget);
    }
    f->slot_used = debt;
    f->slot_start_ns = now;
}

uint64_t mig_stream_rate_limit_used(const MigStream *f)
{
    return f->slot_used;
}

/* ---- close ---- */

bool mig_stream_close(MigStream *f, Error **errp)
{
    if (!f) {
        return true;
    }
    mig_stream_flush(f);
    bool ok = mig_stream_get_error(f, errp);
    if (f->owns_fd && f->fd >= 0 && close(f->fd) < 0 && ok && errno != EINTR) {
        error_setg_errno(errp, errno, "Unable to close the migration channel");
        ok = false;
    }
    error_free(f->err);
    if (f->wake_fd >= 0) {
        close(f->wake_fd);
    }
    if (f->mem) {
        g_byte_array_free(f->mem, true);
    }
    g_free(f->wbuf);
    g_free(f->rbuf_owned);
    g_free(f);
    return ok;
}

/* ---- reading straight into the caller's memory ---- */

void mig_stream_set_read_ahead(MigStream *f, size_t bytes)
{
    f->read_ahead = MIN(MAX(bytes, 1), MIG_RBUF_SIZE);
}


/* Drop the first n bytes of the iovec list (in place). */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
    while (n > 0 && *cnt > 0) {
        size_t k = MIN(n, (*iov)->iov_len);
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + k;
        (*iov)->iov_len -= k;
        n -= k;
        if ((*iov)->iov_len == 0) {
            (*iov)++;
            (*cnt)--;
        }
    }
    while (*cnt > 0 && (*iov)->iov_len == 0) {
        (*iov)++;
        (*cnt)--;
    }
}

size_t mig_stream_read_iov(MigStream *f, const struct iovec *iov_in, int cnt, size_t min)
{
    if (f->err || !f->rbuf || cnt <= 0 || cnt > MIG_IOV_MAX) {
        if (!f->err) {
            mig_stream_set_error(f, "Migration stream is not readable");
        }
        return 0;
    }
    struct iovec iov_copy[MIG_IOV_MAX];
    memcpy(iov_copy, iov_in, cnt * sizeof(*iov_in));
    struct iovec *iov = iov_copy;
    size_t placed = 0;
    /* What is buffered goes first (a copy, but those bytes are read already). */
    while (cnt > 0 && f->rpos < f->rlen) {
        size_t k = MIN(f->rlen - f->rpos, iov->iov_len);
        memcpy(iov->iov_base, f->rbuf + f->rpos, k);
        consume(f, k);
        placed += k;
        iov_advance(&iov, &cnt, k);
    }
    if (placed >= min || cnt == 0) {
        return placed;
    }
    if (f->kind != MS_FD_READER || f->eof) {
        set_eof_error(f);
        return placed;
    }
    f->rpos = f->rlen = 0;      /* empty: mig_stream_unread refills it from 0 */
    while (placed < min && cnt > 0) {
        ssize_t n = readv_fd(f, iov, cnt);
        if (n <= 0) {
            if (n == 0) {
                f->eof = true;
                set_eof_error(f);
            }
            return placed;
        }
        counter_add(&f->bytes_read, n);
        placed += n;
        iov_advance(&iov, &cnt, n);
    }
    return placed;
}

bool mig_stream_unread(MigStream *f, const struct iovec *iov, int cnt)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        total += iov[i].iov_len;
    }
    if (f->err || total == 0) {
        return !f->err;
    }
    if (f->kind == MS_FD_READER && f->rpos == 0 && f->rlen == 0) {
        /* They came from the fd: copy them into the empty buffer. */
        if (total > MIG_RBUF_SIZE) {
            mig_stream_set_error(f, "Cannot put back %zu bytes into the read buffer", total);
            return false;
        }
        for (int i = 0; i < cnt; i++) {
            memcpy(f->rbuf_owned + f->rlen, iov[i].iov_base, iov[i].iov_len);
            f->rlen += iov[i].iov_len;
        }
    } else if (f->rpos >= total) {
        f->rpos -= total;       /* they came from the buffer and are still there */
    } else {
        mig_stream_set_error(f, "Cannot put back %zu bytes into the read buffer", total);
        return false;
    }
    atomic_store_explicit(&f->bytes_read, atomic_load_explicit(&f->bytes_read, memory_order_relaxed) - total,
                          memory_order_relaxed);
    return true;
}
