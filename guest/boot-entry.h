/*
 * The first instructions of both test guests' boot sectors (included by
 * guest/boot-sector.S and guest/ring3/boot.S, each its own image): no
 * interrupts, string ops upwards, DS = ES = SS = 0, a stack below the sector,
 * then a far jump so that CS:IP is 0000:07cxx however the BIOS entered.
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

#endif
