/*
 * migvm's test guest: a 512-byte x86 boot sector (GNU as, AT&T syntax).
 *
 * Entered at 0000:7c00 in real mode, by a BIOS (QEMU) or directly by
 * migvm's KVM accelerator. It:
 *   1. enables A20 (fast A20, port 0x92), loads a flat GDT and enters
 *      32-bit protected mode;
 *   2. reads the top of RAM: if the dword at 0x7bf0 is the loader's magic
 *      "MIGV" (hw/loader.h), the top is the dword at 0x7bf4; otherwise (a
 *      real BIOS left that memory) the built-in DEFAULT_TOP (101 MiB, i.e.
 *      100 MiB of pages above 1 MiB);
 *   3. writes 'A' to COM1, then forever: increments the first byte of every
 *      4 KiB page in [1 MiB, top) in ascending order and writes 'B' after
 *      each pass.
 * So after any pause, every page from 1 MiB up holds n or n-1 (mod 256),
 * with at most one place, in ascending address order, where n changes to
 * n-1: what the migration tests check in the destination's memory.
 *
 * Serial output polls LSR bit 5 (THR empty) before each byte. The stack
 * sits at 0x7000, below the loader's RAM hint, which is read before any
 * push anyway.
 */
#include "boot-flat32.h"

/* Built with -DTOP_CAP=N (bench/module.mk): pages up to N only, whatever
 * the RAM size and whether the hint is there (the same guest under QEMU). */
#ifdef TOP_CAP
#define DEFAULT_TOP TOP_CAP
#else
#define TOP_CAP 0
#define DEFAULT_TOP (101 << 20)
#endif

    BOOT_TO_PROTECTED_MODE protected_mode
protected_mode:
    FLAT_DATA_SEGMENTS
    movl    $STACK_TOP, %esp

    READ_RAM_TOP DEFAULT_TOP, TOP_CAP   /* ebx = end of the pages we touch */
    movb    $'A', %al
    call    putc

pass:
    movl    $PAGES_START, %edi
2:
    cmpl    %ebx, %edi
    jae     3f
    incb    (%edi)
    addl    $PAGE_SIZE, %edi
    jmp     2b
3:
    movb    $'B', %al
    call    putc
    jmp     pass

    PUTC_FUNCTION
    FLAT_GDT

    .org    510
    .byte   0x55, 0xaa
