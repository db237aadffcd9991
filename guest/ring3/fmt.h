/* ring3 guest: building text lines without libc (used in ring 0 and ring 3). */
#ifndef RING3_FMT_H
#define RING3_FMT_H

#include <stdint.h>

struct line {
    char text[160];
    uint32_t len;                        /* stays below sizeof(text): excess is dropped */
};

void line_reset(struct line *l);
void line_str(struct line *l, const char *s);
void line_u64(struct line *l, uint64_t v);      /* decimal */
void line_hex(struct line *l, uint64_t v);      /* 0x-prefixed hex */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

#endif
