/*
 * The first instructions of the test guests' boot sectors (every guest/*.S
 * through boot-flat32.h, and guest/ring3/boot.S, each its own image):
 * BOOT_ENTRY: no interrupts, string ops upwards, DS = ES = SS = 0, a stack
 * below the sector, then a far jump so that CS:IP is 0000:07cxx however the
 * BIOS entered; ENTER_PROTECTED_MODE: the switch to 32-bit code.
 */
#ifndef GUEST_BOOT_ENTRY_H
#define GUEST_BOOT_ENTRY_H

.macro BOOT_ENTRY stack_top
    cli
    cld
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    $\stack_top, %sp
    ljmpw   $0, $1f                     /* some BIOSes enter at 07c0:0000 */
1:
.endm

/* Fast A20 (port 0x92: set bit 1, never bit 0, which resets), the GDT that
 * gdt_desc describes, CR0.PE, then a far jump to `target` in the 32-bit
 * code segment `code_sel`. */
.macro ENTER_PROTECTED_MODE code_sel, target
    inb     $0x92, %al
    orb     $0x02, %al
    andb    $0xfe, %al
    outb    %al, $0x92
    lgdtl   gdt_desc
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   $\code_sel, $\target
.endm

#endif
