/*
 * Warm the host before a run: fault in and free `MiB` of anonymous memory.
 *   warmhost MiB   → prints "warmed <MiB> MiB in <s> s (<GB/s> GB/s)"
 *
 * This machine is itself a VM whose free memory the hypervisor takes back
 * (free page reporting): the first touch of a page it took back costs a
 * fault on the host as well, and populating such memory runs at 0.25-1.3
 * GB/s here, against several GB/s for memory this VM's kernel freed a
 * moment ago. A destination started right after this reuses the memory
 * just freed, as a warmed host's destination would; the figure printed is
 * how cold the host was.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define THREADS 2

static char *base;
static size_t per_thread;

static void *populate(void *arg)
{
    long i = (long)arg;
    if (madvise(base + i * per_thread, per_thread, MADV_POPULATE_WRITE) != 0) {
        /* an older kernel: touch each page */
        for (size_t off = 0; off < per_thread; off += 4096) {
            base[i * per_thread + off] = 1;
        }
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: warmhost MiB\n");
        return 2;
    }
    size_t size = (size_t)atol(argv[1]) << 20;
    per_thread = size / THREADS & ~(size_t)4095;
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        perror("warmhost: mmap");
        return 1;
    }
    madvise(base, size, MADV_HUGEPAGE);
    double t0 = now_s();
    pthread_t t[THREADS];
    int started[THREADS] = { 0 };
    for (long i = 0; i < THREADS; i++) {
        started[i] = pthread_create(&t[i], NULL, populate, (void *)i) == 0;
        if (!started[i]) {
            populate((void *)i);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        if (started[i]) {
            pthread_join(t[i], NULL);
        }
    }
    double dt = now_s() - t0;
    munmap(base, size);
    printf("warmed %zu MiB in %.2f s (%.2f GB/s)\n", size >> 20, dt, size / dt / 1e9);
    return 0;
}
