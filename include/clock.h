/* The monotonic clock in nanoseconds (CLOCK_MONOTONIC), for intervals and deadlines. */
#ifndef MIGVM_CLOCK_H
#define MIGVM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
