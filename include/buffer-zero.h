/*
 * Is a buffer all zero bytes? The zero-page check of RAM migration (the
 * source tests every page it sends; the destination tests a page before
 * clearing it). Implementation: util/buffer-zero.c.
 *
 * Several implementations exist (a 64-bit word loop, SSE2, AVX2); the
 * fastest one this CPU runs is chosen once, at start-up, from the CPU's
 * feature flags. bench/zerobench measures them all on this machine.
 *
 * The buffer may change while it is scanned (guest RAM under a running
 * guest): the answer is then whatever some mix of old and new bytes gives,
 * and dirty tracking resends the page. Any thread.
 */
#ifndef MIGVM_BUFFER_ZERO_H
#define MIGVM_BUFFER_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/* True when the len bytes at p are all zero (len 0: true). Any alignment;
 * never reads outside [p, p + len). */
bool buffer_is_zero(const void *p, size_t len);

/* The implementations, for the unit test and the micro-benchmark. */
typedef bool BufferZeroFn(const void *p, size_t len);
typedef struct BufferZeroImpl {
    const char *name;       /* "word", "sse2", "avx2" */
    BufferZeroFn *fn;
    bool usable;            /* this CPU runs it */
} BufferZeroImpl;
/* Every implementation, slowest first; *n gets their count. */
const BufferZeroImpl *buffer_zero_impls(size_t *n);
/* The one buffer_is_zero uses. */
const char *buffer_zero_impl_name(void);

#endif
