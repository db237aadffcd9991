/*
 * What a multifd destination pays per GiB to place received pages, four
 * ways, with the source side held the same (one writer thread per channel
 * sending 512 KiB packets, as multifd does, over unix socketpairs):
 *   resident  read straight into memory that is already populated
 *             (no first touch: the copy out of the socket alone)
 *   fresh     read straight into fresh anonymous memory (MADV_HUGEPAGE,
 *             as guest RAM is): the kernel zero-fills each 2 MiB page at
 *             its first touch, then the payload is written over it
 *   fresh-4k  the same without MADV_HUGEPAGE: a fault and a 4 KiB zero
 *             fill per page
 *   uffd      read into a reused 512 KiB buffer per channel, then
 *             UFFDIO_COPY it into fresh memory registered with
 *             userfaultfd (missing mode): one write per page, no zero
 *             fill, but 4 KiB pages placed one at a time
 *   recvbench [MiB [channels [reps [pause-s]]]]   (defaults 1024 4 3 0)
 * pause-s > 0 waits that long before each transfer, so that this VM's
 * hypervisor takes the memory freed by the previous one back (a cold host:
 * bench/README.md); with 0 each transfer reuses memory just freed.
 * Prints, per way and rep, MB/s over the wall time and the receiving
 * threads' CPU time per GiB (the figure that matters when the cores are
 * shared), and checks that the destination equals the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PACKET (512 * 1024)
#define PAGE 4096
#define MAX_CHANNELS 16

enum Way { RESIDENT, FRESH, FRESH_4K, UFFD, NWAYS };
static const char *const way_name[NWAYS] = { "resident", "fresh", "fresh-4k", "uffd" };

typedef struct Channel {
    int fd;
    size_t off, len;
    enum Way way;
    double cpu_s;           /* the receiver's, written by its thread before the join */
} Channel;

static char *src, *dst;
static int uffd = -1;
static int pause_s;

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *writer(void *opaque)
{
    Channel *c = opaque;
    for (size_t o = c->off; o < c->off + c->len; o += PACKET) {
        for (size_t n = 0; n < PACKET;) {
            ssize_t r = write(c->fd, src + o + n, PACKET - n);
            if (r <= 0) {
                die("recvbench: write");
            }
            n += (size_t)r;
        }
    }
    return NULL;
}

/* One packet into a list of 4 KiB pages, as multifd's receive threads read it. */
static void read_pages(int fd, char *to)
{
    struct iovec iov[PACKET / PAGE], *v = iov;
    int cnt = PACKET / PAGE;
    for (int i = 0; i < cnt; i++) {
        iov[i] = (struct iovec) { to + (size_t)i * PAGE, PAGE };
    }
    while (cnt) {
        ssize_t r = readv(fd, v, cnt);
        if (r <= 0) {
            die("recvbench: readv");
        }
        while (r > 0) {
            if ((size_t)r >= v->iov_len) {
                r -= (ssize_t)v->iov_len;
                v++;
                cnt--;
            } else {
                v->iov_base = (char *)v->iov_base + r;
                v->iov_len -= (size_t)r;
                r = 0;
            }
        }
    }
}

static void *reader(void *opaque)
{
    Channel *c = opaque;
    double t0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    char *buf = c->way == UFFD ? aligned_alloc(PAGE, PACKET) : NULL;
    for (size_t o = c->off; o < c->off + c->len; o += PACKET) {
        if (c->way != UFFD) {
            read_pages(c->fd, dst + o);
            continue;
        }
        read_pages(c->fd, buf);
        struct uffdio_copy cp = { .dst = (unsigned long)(dst + o), .src = (unsigned long)buf, .len = PACKET };
        if (ioctl(uffd, UFFDIO_COPY, &cp) != 0) {
            die("recvbench: UFFDIO_COPY");
        }
    }
    free(buf);
    c->cpu_s = now_s(CLOCK_THREAD_CPUTIME_ID) - t0;
    return NULL;
}

static int open_uffd(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0) {           /* unprivileged userfaultfd off: the device node */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
            return -1;
        }
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
        close(dev);
    }
    struct uffdio_api api = { .api = UFFD_API };
    if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One transfer of `size` bytes the given way; false if the way is unavailable. */
static bool run(enum Way way, size_t size, int channels)
{
    if (pause_s) {
        sleep((unsigned)pause_s);
    }
    dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) {
        die("recvbench: mmap");
    }
    madvise(dst, size, way == FRESH_4K ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
    if (way == RESIDENT) {
        memset(dst, 0, size);
    } else if (way == UFFD) {
        uffd = open_uffd();
        struct uffdio_register reg = { .range = { (unsigned long)dst, size }, .mode = UFFDIO_REGISTER_MODE_MISSING };
        if (uffd < 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
            printf("%-9s unavailable: %s\n", way_name[way], strerror(errno));
            munmap(dst, size);
            return false;
        }
    }
    Channel rx[MAX_CHANNELS], tx[MAX_CHANNELS];
    pthread_t rt[MAX_CHANNELS], wt[MAX_CHANNELS];
    double t0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < channels; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
            die("recvbench: socketpair");
        }
        rx[i] = (Channel) { .fd = sv[1], .off = (size_t)i * (size / channels), .len = size / channels, .way = way };
        tx[i] = rx[i];
        tx[i].fd = sv[0];
        if (pthread_create(&wt[i], NULL, writer, &tx[i]) || pthread_create(&rt[i], NULL, reader, &rx[i])) {
            die("recvbench: pthread_create");
        }
    }
    double cpu = 0;
    for (int i = 0; i < channels; i++) {
        pthread_join(wt[i], NULL);
        pthread_join(rt[i], NULL);
        close(tx[i].fd);
        close(rx[i].fd);
        cpu += rx[i].cpu_s;
    }
    double wall = now_s(CLOCK_MONOTONIC) - t0;
    bool same = memcmp(src, dst, size) == 0;
    printf("%-9s %6.0f MB/s  receivers' CPU %4.0f ms/GiB%s\n", way_name[way], size / wall / 1e6,
           cpu * 1000 / ((double)size / (1 << 30)), same ? "" : "  DESTINATION DIFFERS");
    if (uffd >= 0) {
        close(uffd);
        uffd = -1;
    }
    munmap(dst, size);
    if (!same) {
        exit(1);
    }
    return true;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 1024;
    int channels = argc > 2 ? atoi(argv[2]) : 4;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    pause_s = argc > 4 ? atoi(argv[4]) : 0;
    if (mib <= 0 || channels < 1 || channels > MAX_CHANNELS || reps < 1 || pause_s < 0) {
        fprintf(stderr, "usage: recvbench [MiB [channels (1-%d) [reps [pause-s]]]]\n", MAX_CHANNELS);
        return 2;
    }
    size_t size = (size_t)mib << 20;
    size -= size % ((size_t)PACKET * channels);
    src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED) {
        die("recvbench: mmap");
    }
    madvise(src, size, MADV_HUGEPAGE);
    for (size_t i = 0; i < size; i += sizeof(uint64_t)) {
        *(uint64_t *)(src + i) = i * 2654435761u + 1;      /* every page data, no two alike */
    }
    printf("recvbench: %zu MiB, %d channels, unix socketpairs, 512 KiB packets, %s\n", size >> 20, channels,
           pause_s ? "a pause before each transfer (cold host)" : "memory just freed reused (warm host)");
    bool have_uffd = true;
    for (int r = 0; r < reps; r++) {       /* the ways interleaved: the same host state for each */
        run(RESIDENT, size, channels);
        run(FRESH, size, channels);
        run(FRESH_4K, size, channels);
        if (have_uffd) {
            have_uffd = run(UFFD, size, channels);
        }
    }
    return 0;
}
