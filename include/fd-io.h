/*
 * Whole-buffer reads and writes on a file descriptor: retry after EINTR and
 * short transfers, so callers see one result for the whole buffer.
 */
#ifndef MIGVM_FD_IO_H
#define MIGVM_FD_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Write len bytes of buf. Returns how many were written: len, or fewer when
 * write(2) failed (errno says why: EAGAIN for a full non-blocking fd) or
 * wrote nothing (errno is then EIO). */
size_t fd_write_full(int fd, const void *buf, size_t len);

/* The same with send(2) and its flags (MSG_NOSIGNAL, MSG_DONTWAIT, ...). */
size_t fd_send_full(int fd, const void *buf, size_t len, int flags);

/* Read until len bytes or end of file. Returns how many were read (fewer
 * than len only at end of file), or -1 with errno set on a read error. */
ssize_t fd_read_full(int fd, void *buf, size_t len);

#endif
