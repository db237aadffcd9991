/*
 * ring3 guest: boot sector, mode switches, GDT, interrupt entry points
 * (GNU as, AT&T syntax). See ring3.h for the memory map, kernel.c for what
 * ring 0 does, user.c for the workload and the serial line format.
 *
 * 1. Boot sector (0x7c00, real mode, entered by a BIOS or by migvm):
 *    if migvm's loader hint ("MIGV" at 0x7bf0) is there, the whole image is
 *    already in memory (its byte count is at 0x7bf8, checked); otherwise
 *    read sectors 1.. of the boot drive (DL) to 0x7e00 with int 0x13 AH=0x42,
 *    64 sectors per call. A failure prints "BOOT FAIL: ..." (polled COM1).
 * 2. Stage 2 (0x7e40, past the config block): fast A20, GDT, 32-bit
 *    protected mode; clear .bss; build the identity map (2 MiB pages over
 *    0-8 GiB, the IOAPIC/LAPIC page uncached and supervisor-only); PAE,
 *    SSE (for ring 3), EFER.LME, paging; far jump to 64-bit code.
 * 3. entry64: kernel stack, kmain() (kernel.c), which ends in enter_user.
 *
 * Interrupts: 256 stubs, 16 bytes apart, push (error code or 0, vector)
 * and reach trap() in C with every GPR saved. The PIT and LAPIC timer have
 * short dedicated handlers instead (ring 0 is emulated at ~1 MIPS under
 * PVM): count, EOI, iretq.
 */
#include "../boot-entry.h"
#include "ring3.h"

#define COM1 0x3f8

/* ---------------------------------------------------------------- 1 */
    .code16
    .section .boot, "ax"
    .globl _start
_start:
    BOOT_ENTRY 0x7000
    movb    %dl, boot_drive
    cmpl    $R3_RAM_MAGIC, R3_RAM_INFO
    jne     bios_load
    movb    $1, loaded_by_migvm
    cmpl    $__image_size, R3_RAM_INFO + 8
    jae     to_stage2
    movw    $msg_short, %si
    jmp     boot_fail

bios_load:
    movw    $__image_sectors - 1, %cx   /* sectors behind the boot sector */
2:
    jcxz    to_stage2
    movw    %cx, %bx
    cmpw    $64, %bx
    jbe     3f
    movw    $64, %bx
3:
    movw    %bx, dap_count
    movw    $dap, %si
    movb    boot_drive, %dl
    movb    $0x42, %ah
    pushw   %cx
    pushw   %bx
    int     $0x13
    popw    %bx
    popw    %cx
    jc      disk_error
    subw    %bx, %cx
    addw    %bx, dap_lba
    shlw    $5, %bx                     /* sectors -> paragraphs */
    addw    %bx, dap_seg
    jmp     2b

disk_error:
    movw    $msg_disk, %si
boot_fail:                              /* polled COM1, then stop */
    lodsb
    testb   %al, %al
    jz      9f
    movb    %al, %bl
    movw    $COM1 + 5, %dx
4:  inb     %dx, %al
    testb   $0x20, %al
    jz      4b
    movb    %bl, %al
    movw    $COM1, %dx
    outb    %al, %dx
    jmp     boot_fail
9:  hlt
    jmp     9b

to_stage2:
    ljmpw   $0, $stage2

msg_disk:  .asciz "BOOT FAIL: int 0x13 read error\r\n"
msg_short: .asciz "BOOT FAIL: migvm loaded a truncated image\r\n"

    .globl boot_drive, loaded_by_migvm
boot_drive:      .byte 0
loaded_by_migvm: .byte 0
    .balign 4
dap:
    .byte   16, 0
dap_count:
    .word   0
    .word   0                           /* offset */
dap_seg:
    .word   0x07e0
dap_lba:
    .quad   1

    .org    510
    .byte   0x55, 0xaa

/* ---------------------------------------------------------------- config */
    .section .config, "aw"
    .globl r3_config
r3_config:
    .ascii  "R3CF"
    .long   1                           /* version */
    .long   16                          /* mem_start_mib */
    .long   64                          /* mem_size_mib */
    .long   1024                        /* region_kib */
    .long   100                         /* pit_hz */
    .long   100                         /* lapic_hz */
    .long   100                         /* report_ticks */
    .long   256                         /* default_top_mib */
    .balign 64, 0

/* ---------------------------------------------------------------- 2 */
    .section .stage2, "ax"
    .code16
stage2:
    ENTER_PROTECTED_MODE SEL_CODE32, pm32

    .code32
pm32:
    movw    $SEL_DATA32, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movl    $0x7000, %esp

    movl    $__bss_start, %edi          /* .bss: a BIOS leaves junk there */
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    shrl    $2, %ecx
    xorl    %eax, %eax
    rep stosl

    movl    $R3_PML4, %edi              /* PML4, PDPT, 8 PDs */
    movl    $10 * 1024, %ecx
    rep stosl
    movl    $R3_PDPT + 7, R3_PML4       /* P | RW | U */
    movl    $R3_PD + 7, %eax            /* PDPT[0..7] -> PD 0..7 */
    movl    $R3_PDPT, %edi
    movl    $8, %ecx
7:  movl    %eax, (%edi)
    addl    $0x1000, %eax
    addl    $8, %edi
    loop    7b
    movl    $R3_PD, %edi                /* 2 MiB pages over 0-8 GiB */
    movl    $0x87, %eax                 /* P | RW | U | PS; bits 32+ in %edx */
    xorl    %edx, %edx
    movl    $4096, %ecx
5:  movl    %eax, (%edi)
    movl    %edx, 4(%edi)
    addl    $0x200000, %eax
    adcl    $0, %edx
    addl    $8, %edi
    loop    5b
    /* 0xfec00000 (IOAPIC) and 0xfee00000 (LAPIC): P | RW | PWT | PCD | PS */
    movl    $0xfec00000 + 0x9b, R3_PD + (0xfec00000 >> 21) * 8
    movl    $0xfee00000 + 0x9b, R3_PD + (0xfee00000 >> 21) * 8

    movl    %cr4, %eax
    orl     $0x20 | 0x200 | 0x400, %eax /* PAE | OSFXSR | OSXMMEXCPT */
    movl    %eax, %cr4
    movl    $R3_PML4, %eax
    movl    %eax, %cr3
    movl    $0xc0000080, %ecx           /* EFER.LME */
    rdmsr
    orl     $0x100, %eax
    wrmsr
    movl    %cr0, %eax
    andl    $~(0x60000000 | 0x4), %eax  /* caches on (CD, NW), no FPU emulation (EM) */
    orl     $0x80000000 | 0x2, %eax     /* PG | MP */
    movl    %eax, %cr0
    ljmpl   $SEL_KCODE, $entry64

/* ---------------------------------------------------------------- GDT */
    .section .data
    .balign 16
    .globl gdt
gdt:
    .quad   0                           /* 0x00 */
    .quad   0x00209a0000000000          /* 0x08 kernel code, 64-bit */
    .quad   0x00cf92000000ffff          /* 0x10 kernel data */
    .quad   0x00cff2000000ffff          /* 0x18 user data, DPL 3 */
    .quad   0x0020fa0000000000          /* 0x20 user code, 64-bit, DPL 3 */
    .quad   0, 0                        /* 0x28 TSS, filled by kernel.c */
    .quad   0x00cf9a000000ffff          /* 0x38 code, 32-bit (boot) */
    .quad   0x00cf92000000ffff          /* 0x40 data, 32-bit (boot) */
gdt_end:
    .balign 8
    .globl gdt_desc
gdt_desc:                               /* lgdtl reads 6 bytes, lgdt (64-bit) 10 */
    .word   gdt_end - gdt - 1
    .quad   gdt

/* ---------------------------------------------------------------- 3 */
    .text
    .code64
entry64:
    movw    $SEL_KDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    xorl    %eax, %eax
    movw    %ax, %fs
    movw    %ax, %gs
    movq    $R3_KSTACK_TOP, %rsp
    call    kmain
6:  cli
    hlt
    jmp     6b

/* enter_user(entry, stack_top): iretq to ring 3 with interrupts on. */
    .globl enter_user
enter_user:
    movw    $SEL_UDATA, %ax
    movw    %ax, %ds
    movw    %ax, %es
    pushq   $SEL_UDATA
    pushq   %rsi
    pushq   $0x202                      /* IF */
    pushq   $SEL_UCODE
    pushq   %rdi
    xorl    %eax, %eax
    xorl    %ecx, %ecx
    xorl    %edx, %edx
    xorl    %esi, %esi
    xorl    %edi, %edi
    iretq

/* ---------------------------------------------------------------- interrupts */
    .globl isr_stubs
    .balign 16
isr_stubs:
vec = 0
    .rept 256
    .balign 16
    .if !(vec == 8 || vec == 10 || vec == 11 || vec == 12 || vec == 13 || vec == 14 || vec == 17 || vec == 21 || vec == 29 || vec == 30)
    pushq   $0
    .endif
    pushq   $vec
    jmp     isr_common
vec = vec + 1
    .endr

isr_common:
    pushq   %rax
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %rbx
    pushq   %rbp
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, %rdi
    cld
    call    trap
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbp
    popq    %rbx
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rax
    addq    $16, %rsp
    iretq

/* IRQ0: count, EOI the master 8259. */
    .globl isr_pit
isr_pit:
    incq    kstat + 0(%rip)
    pushq   %rax
    movb    $0x20, %al
    outb    %al, $0x20
    popq    %rax
    iretq

/* LAPIC timer: count, EOI the LAPIC. */
    .globl isr_lapic_timer
isr_lapic_timer:
    incq    kstat + 8(%rip)
    pushq   %rax
    movl    $R3_LAPIC_BASE + 0xb0, %eax
    movl    $0, (%rax)
    popq    %rax
    iretq

/* LAPIC spurious vector: no EOI. */
    .globl isr_lapic_spurious
isr_lapic_spurious:
    iretq

    .section .note.GNU-stack, "", @progbits
