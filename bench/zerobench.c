/*
 * Zero-page check micro-benchmark: every implementation in
 * util/buffer-zero.c on this CPU, GB/s (10^9 bytes/s) over
 *   zero-cold   a 256 MiB buffer of zero pages, each page once (memory-bound:
 *               what RAM migration's first pass over an idle guest does)
 *   zero-hot    one zero 4 KiB page again and again (from L1: the loop itself)
 *   mid-byte    a page whose byte 2048 is set (half a scan, then "no")
 * and ns per page for
 *   first-byte  a page whose first byte is set (the usual non-zero page)
 * Best of 5 runs each. Usage: zerobench [MiB]. `make bench` runs it.
 */
#include "buffer-zero.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile unsigned sink;

/* Seconds for `reps` checks of the pages of buf (npages of them, cycled). */
static double run(BufferZeroFn *fn, const uint8_t *buf, size_t npages, size_t reps)
{
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        unsigned zeros = 0;
        double t0 = now_s();
        for (size_t i = 0; i < reps; i++) {
            zeros += fn(buf + (i % npages) * PAGE, PAGE);
        }
        double t = now_s() - t0;
        sink += zeros;
        if (t < best) {
            best = t;
        }
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;
    size_t npages = mib * 1024 * 1024 / PAGE;
    uint8_t *big = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *one = aligned_alloc(PAGE, 3 * PAGE);
    if (big == MAP_FAILED || !one) {
        perror("zerobench: allocation");
        return 1;
    }
    memset(big, 0, npages * PAGE);          /* populated: real zero pages, not the shared zero page */
    memset(one, 0, 3 * PAGE);
    one[2 * PAGE] = 1;                      /* page 2: first byte set */
    one[PAGE + PAGE / 2] = 1;               /* page 1: its middle byte set */

    size_t n;
    const BufferZeroImpl *impls = buffer_zero_impls(&n);
    printf("zero-page check, %zu MiB cold buffer; buffer_is_zero uses: %s\n", mib, buffer_zero_impl_name());
    printf("%-6s %12s %12s %12s %16s\n", "impl", "zero-cold", "zero-hot", "mid-byte", "first-byte");
    printf("%-6s %12s %12s %12s %16s\n", "", "GB/s", "GB/s", "GB/s", "ns/page");
    for (size_t i = 0; i < n; i++) {
        if (!impls[i].usable) {
            printf("%-6s (this CPU lacks it)\n", impls[i].name);
            continue;
        }
        size_t hot = 1000000;
        double cold = run(impls[i].fn, big, npages, npages);
        double zh = run(impls[i].fn, one, 1, hot);
        double lb = run(impls[i].fn, one + PAGE, 1, hot);
        double fb = run(impls[i].fn, one + 2 * PAGE, 1, hot);
        printf("%-6s %12.1f %12.1f %12.1f %16.2f\n", impls[i].name,
               npages * (double)PAGE / cold / 1e9, hot * (double)PAGE / zh / 1e9,
               hot * (double)PAGE / lb / 1e9, fb / hot * 1e9);
    }
    munmap(big, npages * PAGE);
    free(one);
    return 0;
}
