/*
 * ThreadSanitizer annotations (no-ops in other builds).
 *
 * tsan_ignore_begin/end: the calling thread's memory accesses in between
 * are not recorded. Used only where guest RAM crosses a copy or a system
 * call (the stream's writev of guest pages, loading a page on the
 * destination, guest_phys_read/write): guest RAM is outside TSan's model (GUEST_RAM_ACCESS,
 * memory.h), and recording it would cost 4 bytes of shadow memory per byte
 * of guest RAM migrated (a 1 GiB guest grew to 5 GiB of RSS).
 */
#ifndef MIGVM_TSAN_H
#define MIGVM_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define MIGVM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MIGVM_TSAN 1
#endif
#endif

#ifdef MIGVM_TSAN
/* The TSan runtime's dynamic annotations (they ignore reads and writes). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define tsan_ignore_begin() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define tsan_ignore_end() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define tsan_ignore_begin() ((void)0)
#define tsan_ignore_end() ((void)0)
#endif

#endif
