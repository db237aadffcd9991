/* ring3 guest: line building (see fmt.h). Pure functions, no state: callable
 * from ring 0 and ring 3 alike. */
#include "fmt.h"

void line_reset(struct line *l)
{
    l->len = 0;
}

static void put(struct line *l, char c)
{
    if (l->len < sizeof(l->text) - 1) {
        l->text[l->len++] = c;
    }
}

void line_str(struct line *l, const char *s)
{
    while (*s) {
        put(l, *s++);
    }
}

void line_u64(struct line *l, uint64_t v)
{
    char digits[20];
    int n = 0;

    do {
        digits[n++] = '0' + v % 10;
        v /= 10;
    } while (v);
    while (n) {
        put(l, digits[--n]);
    }
}

void line_hex(struct line *l, uint64_t v)
{
    int shift = 60;

    line_str(l, "0x");
    while (shift > 0 && !(v >> shift)) {
        shift -= 4;
    }
    for (; shift >= 0; shift -= 4) {
        put(l, "0123456789abcdef"[(v >> shift) & 15]);
    }
}

/* gcc may emit calls to these; plain loops it must not turn back into calls. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
void *memset(void *d, int c, unsigned long n)
{
    unsigned char *p = d;

    while (n--) {
        *p++ = (unsigned char)c;
    }
    return d;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
void *memcpy(void *d, const void *s, unsigned long n)
{
    unsigned char *p = d;
    const unsigned char *q = s;

    while (n--) {
        *p++ = *q++;
    }
    return d;
}
