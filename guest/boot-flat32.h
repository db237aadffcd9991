/*
 * What the one-file boot sectors (boot-sector.S, dirty-set.S,
 * virtio-blk-check.S) share: their ports and memory map, and as macros, so
 * that each image places them itself, the start-up after BOOT_ENTRY (32-bit
 * protected mode with flat segments), the loader's RAM hint, a polled COM1
 * putc and the flat GDT.
 */
#ifndef GUEST_BOOT_FLAT32_H
#define GUEST_BOOT_FLAT32_H

#include "boot-entry.h"

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20
#define RAM_INFO 0x7bf0                 /* the loader's hint (hw/loader.h) */
#define RAM_MAGIC 0x5647494d            /* "MIGV" */
#define PAGES_START 0x100000
#define PAGE_SIZE 4096
#define STACK_TOP 0x7000
#define CODE_SEL 0x08
#define DATA_SEL 0x10

/* From 0000:7c00 in real mode to `pm_entry` in 32-bit protected mode. */
.macro BOOT_TO_PROTECTED_MODE pm_entry
    .code16
    .text
    .globl _start
_start:
    BOOT_ENTRY STACK_TOP
    ENTER_PROTECTED_MODE CODE_SEL, \pm_entry
    .code32
.endm

/* Flat data segments: DS, ES, FS, GS and SS (DS, ES and SS with fs_gs=0). */
.macro FLAT_DATA_SEGMENTS fs_gs=1
    movw    $DATA_SEL, %ax
    movw    %ax, %ds
    movw    %ax, %es
    .if \fs_gs
    movw    %ax, %fs
    movw    %ax, %gs
    .endif
    movw    %ax, %ss
.endm

/* %ebx = the top of RAM, page-aligned, from the loader's hint ("MIGV" at
 * RAM_INFO, the top in the next dword) but at most `cap` when not 0, or
 * `default_top` when a real BIOS left that memory. */
.macro READ_RAM_TOP default_top, cap=0
    movl    $\default_top, %ebx
    cmpl    $RAM_MAGIC, RAM_INFO
    jne     1f
    movl    RAM_INFO + 4, %ebx
    andl    $~(PAGE_SIZE - 1), %ebx
    .if \cap
    cmpl    $\cap, %ebx
    jbe     1f
    movl    $\cap, %ebx
    .endif
1:
.endm

/* putc: write %al to COM1 once the transmitter is empty. Clobbers %edx. */
.macro PUTC_FUNCTION
putc:
    movb    %al, %ah
    movw    $COM1_LSR, %dx
1:
    inb     %dx, %al
    testb   $LSR_THR_EMPTY, %al
    jz      1b
    movb    %ah, %al
    movw    $COM1, %dx
    outb    %al, %dx
    ret
.endm

/* gdt: null, CODE_SEL (32-bit code) and DATA_SEL, both base 0, limit 4 GiB,
 * with the access bytes given (0x9b/0x93: already "accessed", so loading a
 * selector never writes the GDT); gdt_desc for lgdt. */
.macro FLAT_GDT code_access=0x9a, data_access=0x92
    .p2align 3
gdt:
    .quad   0
    .quad   0x00cf00000000ffff | (\code_access << 40)
    .quad   0x00cf00000000ffff | (\data_access << 40)
gdt_end:
gdt_desc:
    .word   gdt_end - gdt - 1
    .long   gdt
.endm

#endif
