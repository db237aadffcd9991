/*
 * Measure this machine's own socket bandwidth, the yardstick migration
 * throughput is compared with: one thread writes 1 MiB buffers into a
 * unix or tcp loopback socket, another reads them, for a fixed volume.
 *   sockbw unix|tcp [MiB]   → prints "<transport> socket bandwidth: <MB/s> MB/s"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static long long volume;

static void *reader(void *arg)
{
    int fd = *(int *)arg;
    char *buf = malloc(CHUNK);
    long long got = 0;
    while (got < volume) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n <= 0) {
            break;
        }
        got += n;
    }
    free(buf);
    return NULL;
}

static int make_pair(const char *kind, int fds[2])
{
    if (strcmp(kind, "unix") == 0) {
        return socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    if (lfd < 0 || bind(lfd, (void *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (void *)&sa, &len) < 0) {
        return -1;
    }
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[0], (void *)&sa, sizeof(sa)) < 0) {
        return -1;
    }
    fds[1] = accept(lfd, NULL, NULL);
    close(lfd);
    return fds[1] < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "unix") && strcmp(argv[1], "tcp"))) {
        fprintf(stderr, "usage: sockbw unix|tcp [MiB]\n");
        return 1;
    }
    volume = (argc > 2 ? atoll(argv[2]) : 4096) << 20;
    int fds[2];
    if (make_pair(argv[1], fds) < 0) {
        perror("sockbw: socket");
        return 1;
    }
    int size = 4 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    pthread_t t;
    pthread_create(&t, NULL, reader, &fds[1]);
    char *buf = malloc(CHUNK);
    memset(buf, 0x5a, CHUNK);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long long sent = 0; sent < volume;) {
        ssize_t n = write(fds[0], buf, CHUNK);
        if (n <= 0) {
            perror("sockbw: write");
            return 1;
        }
        sent += n;
    }
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%s socket bandwidth: %.1f MB/s\n", argv[1], volume / secs / 1e6);
    free(buf);
    return 0;
}
