/* Whole-buffer reads and writes (see fd-io.h). */
#include "fd-io.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t transfer_full(int fd, const void *buf, size_t len, bool use_send, int flags)
{
    const uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        ssize_t n = use_send ? send(fd, p + done, len - done, flags)
                             : write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            break;
        }
        done += (size_t)n;
    }
    return done;
}

size_t fd_write_full(int fd, const void *buf, size_t len)
{
    return transfer_full(fd, buf, len, false, 0);
}

size_t fd_send_full(int fd, const void *buf, size_t len, int flags)
{
    return transfer_full(fd, buf, len, true, flags);
}

ssize_t fd_read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}
