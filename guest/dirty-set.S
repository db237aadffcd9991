/*
 * A boot sector that writes a known set of pages once, for the dirty
 * tracking tests (tests/functional/test-dirty-ring.py). GNU as, AT&T syntax.
 *
 * Entered at 0000:7c00 in real mode; it enters 32-bit protected mode (A20,
 * flat GDT), reads the top of RAM from the loader's hint at 0x7bf0 (the
 * magic "MIGV", then the top; else DEFAULT_TOP), then:
 *   1. writes 1 to the first byte of every 4 KiB page in [1 MiB, top) and
 *      prints 'A' on COM1;
 *   2. waits for any byte on COM1 (polls LSR data-ready, no interrupts);
 *   3. increments the first byte of every 3rd page of [1 MiB, top), then of
 *      every 5th page (page index counted from 1 MiB), and prints 'D';
 *   4. halts with interrupts off, for good.
 * After step 1 it writes nothing but the pages of step 3: no stack, no
 * other data (serial output is inlined), so the pages dirtied between 'A'
 * and 'D' are exactly { 1 MiB + i * 4 KiB : i % 3 == 0 or i % 5 == 0 }.
 */
#include "boot-flat32.h"

#define DEFAULT_TOP (17 << 20)

/* Write the byte `c` to COM1 once the transmitter is empty (no stack). */
.macro PUTC c
1:
    movw    $COM1_LSR, %dx
    inb     %dx, %al
    testb   $LSR_THR_EMPTY, %al
    jz      1b
    movb    $\c, %al
    movw    $COM1, %dx
    outb    %al, %dx
.endm

/* Increment the first byte of every `stride`th page in [PAGES_START, %ebx). */
.macro TOUCH stride
    movl    $PAGES_START, %edi
1:
    cmpl    %ebx, %edi
    jae     2f
    incb    (%edi)
    addl    $(PAGE_SIZE * \stride), %edi
    jmp     1b
2:
.endm

    BOOT_TO_PROTECTED_MODE protected_mode
protected_mode:
    FLAT_DATA_SEGMENTS
    READ_RAM_TOP DEFAULT_TOP            /* ebx = end of the pages we touch */
    movl    $PAGES_START, %edi          /* 1: every page once */
4:
    cmpl    %ebx, %edi
    jae     5f
    movb    $1, (%edi)
    addl    $PAGE_SIZE, %edi
    jmp     4b
5:
    PUTC    'A'

    movw    $COM1_LSR, %dx              /* 2: wait for a byte */
6:
    inb     %dx, %al
    testb   $LSR_DATA_READY, %al
    jz      6b
    movw    $COM1, %dx
    inb     %dx, %al

    TOUCH   3                           /* 3: the known set */
    TOUCH   5
    PUTC    'D'

7:
    hlt                                 /* 4: for good (interrupts are off) */
    jmp     7b

    FLAT_GDT 0x9b, 0x93                 /* accessed: no GDT write after step 1 */

    .org    510
    .byte   0x55, 0xaa
