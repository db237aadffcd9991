/*
 * Zero-buffer check: a portable 64-bit word loop plus SSE2 and AVX2
 * versions built with target attributes, picked at start-up from the CPU's
 * feature flags (include/buffer-zero.h). Each SIMD version reads the
 * unaligned head and tail with overlapping unaligned loads and the middle
 * with aligned loads, four vectors per test, so a non-zero page is usually
 * refused within its first cache line and a zero page costs one pass of
 * loads and ORs.
 */
#include "buffer-zero.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BUFFER_ZERO_X86 1
#endif

/* Guest RAM is read while the guest writes it (include/memory.h):
 * outside ThreadSanitizer's model. */
#define ZERO_SCAN __attribute__((no_sanitize_thread))

ZERO_SCAN
static bool bytes_zero(const uint8_t *p, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        acc |= p[i];
    }
    return !acc;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

ZERO_SCAN
static bool zero_word(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 8) {
        return bytes_zero(p, len);
    }
    /* Unaligned first and last words; aligned words in between. */
    if (load64(p) | load64(p + len - 8)) {
        return false;
    }
    const uint64_t *w = (const uint64_t *)(((uintptr_t)p + 8) & ~(uintptr_t)7);
    const uint64_t *end = (const uint64_t *)(((uintptr_t)p + len) & ~(uintptr_t)7);
    while (end - w >= 8) {
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return false;
        }
        w += 8;
    }
    uint64_t acc = 0;
    while (w < end) {
        acc |= *w++;
    }
    return !acc;
}

#ifdef BUFFER_ZERO_X86
__attribute__((target("sse2"))) ZERO_SCAN
static bool zero_sse2(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 64) {
        return zero_word(buf, len);
    }
    const __m128i zero = _mm_setzero_si128();
    __m128i acc = _mm_or_si128(_mm_loadu_si128((const __m128i *)p),
                               _mm_loadu_si128((const __m128i *)(p + len - 16)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
        return false;
    }
    const __m128i *v = (const __m128i *)(((uintptr_t)p + 16) & ~(uintptr_t)15);
    const __m128i *end = (const __m128i *)(((uintptr_t)p + len) & ~(uintptr_t)15);
    while (end - v >= 4) {
        acc = _mm_or_si128(_mm_or_si128(v[0], v[1]), _mm_or_si128(v[2], v[3]));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff) {
            return false;
        }
        v += 4;
    }
    while (v < end) {
        acc = _mm_or_si128(acc, *v++);
    }
    return _mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) == 0xffff;
}

__attribute__((target("avx2"))) ZERO_SCAN
static bool zero_avx2(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 128) {
        return zero_sse2(buf, len);
    }
    __m256i acc = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)p),
                                  _mm256_loadu_si256((const __m256i *)(p + len - 32)));
    if (!_mm256_testz_si256(acc, acc)) {
        return false;
    }
    const __m256i *v = (const __m256i *)(((uintptr_t)p + 32) & ~(uintptr_t)31);
    const __m256i *end = (const __m256i *)(((uintptr_t)p + len) & ~(uintptr_t)31);
    while (end - v >= 4) {
        acc = _mm256_or_si256(_mm256_or_si256(v[0], v[1]), _mm256_or_si256(v[2], v[3]));
        if (!_mm256_testz_si256(acc, acc)) {
            return false;
        }
        v += 4;
    }
    while (v < end) {
        acc = _mm256_or_si256(acc, *v++);
    }
    return _mm256_testz_si256(acc, acc);
}
#endif

static BufferZeroImpl impls[] = {
    { "word", zero_word, true },
#ifdef BUFFER_ZERO_X86
    { "sse2", zero_sse2, false },
    { "avx2", zero_avx2, false },
#endif
};

/* Set once before main() runs (a constructor), read-only afterwards. */
static const BufferZeroImpl *chosen = &impls[0];

/* The fastest usable one, as bench/zerobench measured on this machine's
 * CPU (AMD EPYC: avx2 > sse2 > word for a zero page). */
__attribute__((constructor))
static void buffer_zero_init(void)
{
#ifdef BUFFER_ZERO_X86
    __builtin_cpu_init();
    impls[1].usable = __builtin_cpu_supports("sse2");
    impls[2].usable = __builtin_cpu_supports("avx2");
#endif
    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        if (impls[i].usable) {
            chosen = &impls[i];
        }
    }
}

bool buffer_is_zero(const void *p, size_t len)
{
    return chosen->fn(p, len);
}

const BufferZeroImpl *buffer_zero_impls(size_t *n)
{
    *n = sizeof(impls) / sizeof(impls[0]);
    return impls;
}

const char *buffer_zero_impl_name(void)
{
    return chosen->name;
}
