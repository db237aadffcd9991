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
#include "boot-entry.h"

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20
#define RAM_INFO 0x7bf0
#define RAM_MAGIC 0x5647494d
#define PAGES_START 0x100000
/* Built with -DTOP_CAP=N (bench/module.mk): pages up to N only, whatever
 * the RAM size and whether the hint is there (the same guest under QEMU). */
#ifdef TOP_CAP
#define DEFAULT_TOP TOP_CAP
#else
#define DEFAULT_TOP (101 << 20)
#endif
#define PAGE_SIZE 4096
#define STACK_TOP 0x7000
#define CODE_SEL 0x08
#define DATA_SEL 0x10

    .code16
    .text
    .globl _start
_start:
    BOOT_ENTRY STACK_TOP

    inb     $0x92, %al                  /* fast A20: set bit 1, never bit 0 (reset) */
    orb     $0x02, %al
    andb    $0xfe, %al
    outb    %al, $0x92

    lgdtl   gdt_desc
    movl    %cr0, %eax
    orl     $1, %eax                    /* PE */
    movl    %eax, %cr0
    ljmpl   $CODE_SEL, $protected_mode

    .code32
protected_mode:
    movw    $DATA_SEL, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movl    $STACK_TOP, %esp

    movl    $DEFAULT_TOP, %ebx          /* ebx = end of the pages we touch */
    cmpl    $RAM_MAGIC, RAM_INFO
    jne     1f
    movl    RAM_INFO + 4, %ebx
    andl    $~(PAGE_SIZE - 1), %ebx
#ifdef TOP_CAP
    cmpl    $TOP_CAP, %ebx
    jbe     1f
    movl    $TOP_CAP, %ebx
#endif
1:
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

/* putc: write %al to COM1 once the transmitter is empty. Clobbers %edx. */
putc:
    movb    %al, %ah
    movw    $COM1_LSR, %dx
4:
    inb     %dx, %al
    testb   $LSR_THR_EMPTY, %al
    jz      4b
    movb    %ah, %al
    movw    $COM1, %dx
    outb    %al, %dx
    ret

    .p2align 3
gdt:
    .quad   0                           /* null */
    .quad   0x00cf9a000000ffff          /* 0x08: code, base 0, limit 4 GiB, 32-bit */
    .quad   0x00cf92000000ffff          /* 0x10: data, base 0, limit 4 GiB */
gdt_end:
gdt_desc:
    .word   gdt_end - gdt - 1
    .long   gdt

    .org    510
    .byte   0x55, 0xaa
