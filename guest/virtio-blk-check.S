/*
 * A boot sector that checks the pc board's first virtio-blk device
 * (virtio-mmio version 2 at 0xfeb00000, hw/virtio-mmio.c) by polling, the
 * way a minimal driver does:
 *   1. 32-bit protected mode, flat segments (as boot-sector.S);
 *   2. MagicValue, Version 2, DeviceID 2, else "VBLK FAIL M";
 *   3. reset, ACKNOWLEDGE, DRIVER, accept VIRTIO_F_VERSION_1 only,
 *      FEATURES_OK must stick, else "VBLK FAIL F";
 *   4. queue 0 of 8 entries (rings at 0x10000/0x10800/0x11000), DRIVER_OK;
 *   5. OUT: 512 bytes (byte i = 3i + 0x11) to sector 100; IN: sector 100
 *      back into another buffer; each a three-descriptor chain (header,
 *      data, status), waited for on used.idx; a non-zero status byte prints
 *      "VBLK FAIL S", different data "VBLK FAIL C";
 *   6. InterruptStatus has the used-buffer bit and an ACK clears it, else
 *      "VBLK FAIL I"; the PIC (programmed with every line masked, IF 0)
 *      latched IRQ 10 in its IRR, else "VBLK FAIL L" (interrupts are not
 *      taken: this host's KVM cannot emulate a 32-bit iret);
 *   7. prints "VBLK OK", then repeats the round trip forever, printing a
 *      '.' every 64 (after a migration the dots go on only if the device
 *      state arrived).
 * The test (tests/functional/test-virtio-blk.py) then finds the pattern in
 * sector 100 of the image. Two sectors: migvm's loader copies the whole
 * image, a BIOS would load only the first.
 */
#include "boot-flat32.h"

#define VIRTIO_BASE 0xfeb00000
#define QSIZE 8
#define DESC 0x10000
#define AVAIL 0x10800
#define USED 0x11000
#define HDR 0x12000
#define STATUS 0x12100
#define WBUF 0x13000
#define RBUF 0x14000
#define AREA_END 0x15000
#define SECTOR 100

    BOOT_TO_PROTECTED_MODE protected_mode
protected_mode:
    FLAT_DATA_SEGMENTS fs_gs=0
    movl    $STACK_TOP, %esp
    movl    $VIRTIO_BASE, %ebp

    movb    $'M', %bl
    cmpl    $0x74726976, 0x000(%ebp)    /* MagicValue */
    jne     fail
    cmpl    $2, 0x004(%ebp)             /* Version */
    jne     fail
    cmpl    $2, 0x008(%ebp)             /* DeviceID: block */
    jne     fail

    movb    $'F', %bl
    movl    $0, 0x070(%ebp)             /* Status: reset */
    movl    $1, 0x070(%ebp)             /* ACKNOWLEDGE */
    movl    $3, 0x070(%ebp)             /* DRIVER */
    movl    $1, 0x014(%ebp)             /* DeviceFeaturesSel: bits 32-63 */
    testl   $1, 0x010(%ebp)             /* VERSION_1 offered */
    jz      fail
    movl    $1, 0x024(%ebp)
    movl    $1, 0x020(%ebp)             /* DriverFeatures 32-63: VERSION_1 */
    movl    $0, 0x024(%ebp)
    movl    $0, 0x020(%ebp)
    movl    $0xb, 0x070(%ebp)           /* FEATURES_OK */
    testl   $8, 0x070(%ebp)
    jz      fail

    movl    $DESC, %edi                 /* rings and buffers start zeroed */
    xorl    %eax, %eax
    movl    $(AREA_END - DESC) / 4, %ecx
    rep stosl

    movb    $'Q', %bl
    movl    $0, 0x030(%ebp)             /* QueueSel 0 */
    cmpl    $QSIZE, 0x034(%ebp)         /* QueueNumMax */
    jb      fail
    movl    $QSIZE, 0x038(%ebp)
    movl    $DESC, 0x080(%ebp)
    movl    $0, 0x084(%ebp)
    movl    $AVAIL, 0x090(%ebp)
    movl    $0, 0x094(%ebp)
    movl    $USED, 0x0a0(%ebp)
    movl    $0, 0x0a4(%ebp)
    movl    $1, 0x044(%ebp)             /* QueueReady */
    movl    $0xf, 0x070(%ebp)           /* DRIVER_OK */

    xorl    %ecx, %ecx                  /* WBUF[i] = 3i + 0x11 */
1:
    leal    0x11(%ecx,%ecx,2), %eax
    movb    %al, WBUF(%ecx)
    incl    %ecx
    cmpl    $512, %ecx
    jb      1b

    call    pic_setup
    call    round_trip

    movb    $'I', %bl
    testl   $1, 0x060(%ebp)             /* InterruptStatus: used buffer */
    jz      fail
    movb    $'L', %bl
    inb     $0xa0, %al                  /* the line reached the PIC: IRR bit 2 of */
    testb   $0x04, %al                  /* the slave is IRQ 10 */
    jz      fail
    movb    $'I', %bl
    movl    $1, 0x064(%ebp)             /* InterruptACK */
    testl   $1, 0x060(%ebp)
    jnz     fail

    movl    $msg_ok, %esi
    call    puts

    xorl    %edi, %edi                  /* then forever, a '.' per 64 round trips */
more:
    pushl   %edi
    call    round_trip
    popl    %edi
    incl    %edi
    testl   $63, %edi
    jnz     more
    movb    $'.', %al
    call    putc
    jmp     more

halt:
    hlt
    jmp     halt

fail:
    movl    $msg_fail, %esi
    call    puts
    movb    %bl, %al
    call    putc
    movl    $msg_eol, %esi
    call    puts
    jmp     halt

    /* The loader copies the whole image (two sectors) to 0x7c00: the rest
     * of the code follows the boot signature. */
    .org    510
    .byte   0x55, 0xaa

/* round_trip: OUT from WBUF, IN into RBUF, compare. */
round_trip:
    movl    $1, %eax                    /* OUT from WBUF */
    movl    $WBUF, %esi
    xorl    %edx, %edx
    call    request
    xorl    %eax, %eax                  /* IN into RBUF: data writable */
    movl    $RBUF, %esi
    movl    $2, %edx
    call    request
    movb    $'C', %bl
    movl    $WBUF, %esi
    movl    $RBUF, %edi
    movl    $512, %ecx
    repe cmpsb
    jne     fail
    ret

/* request: type %eax, data buffer %esi, data descriptor flags %edx (WRITE
 * for IN); sector SECTOR, 512 bytes; waits for the used entry and checks the
 * status byte. Clobbers %eax, %ecx, %edx. */
request:
    movl    %eax, HDR                   /* type */
    movl    $0, HDR + 4                 /* ioprio */
    movl    $SECTOR, HDR + 8
    movl    $0, HDR + 12
    movb    $0xff, STATUS
    movl    $HDR, DESC                  /* 0: header, readable */
    movl    $16, DESC + 8
    movw    $1, DESC + 12               /* NEXT */
    movw    $1, DESC + 14
    movl    %esi, DESC + 16             /* 1: data */
    movl    $512, DESC + 24
    orl     $1, %edx
    movw    %dx, DESC + 28
    movw    $2, DESC + 30
    movl    $STATUS, DESC + 32          /* 2: status, writable */
    movl    $1, DESC + 40
    movw    $2, DESC + 44
    movzwl  AVAIL + 2, %ecx             /* avail.ring[idx % QSIZE] = 0 */
    movl    %ecx, %eax
    andl    $QSIZE - 1, %eax
    movw    $0, AVAIL + 4(,%eax,2)
    incl    %ecx
    movw    %cx, AVAIL + 2              /* then avail.idx (x86 keeps store order) */
    movl    $0, 0x050(%ebp)             /* QueueNotify 0 */
2:
    cmpw    %cx, USED + 2
    jne     2b
    movb    $'S', %bl
    cmpb    $0, STATUS
    jne     fail
    ret

/* pic_setup: vectors 0x20-0x2f, every line masked: interrupts are never
 * taken (IF stays 0), but the PIC still latches requests in its IRR. */
pic_setup:
    movb    $0x11, %al                  /* ICW1: edge, cascade, ICW4 */
    outb    %al, $0x20
    outb    %al, $0xa0
    movb    $0x20, %al                  /* ICW2: vector bases */
    outb    %al, $0x21
    movb    $0x28, %al
    outb    %al, $0xa1
    movb    $0x04, %al                  /* ICW3: slave on IRQ 2 */
    outb    %al, $0x21
    movb    $0x02, %al
    outb    %al, $0xa1
    movb    $0x01, %al                  /* ICW4: 8086 mode */
    outb    %al, $0x21
    outb    %al, $0xa1
    movb    $0xff, %al                  /* mask everything */
    outb    %al, $0x21
    outb    %al, $0xa1
    movb    $0x0a, %al                  /* OCW3: reads of 0xa0 return the IRR */
    outb    %al, $0xa0
    ret

/* puts: the NUL-terminated string at %esi. */
puts:
    lodsb
    testb   %al, %al
    jz      3f
    call    putc
    jmp     puts
3:
    ret

    PUTC_FUNCTION

msg_ok:     .asciz "VBLK OK\r\n"
msg_fail:   .asciz "VBLK FAIL "
msg_eol:    .asciz "\r\n"

    FLAT_GDT

    .org    1024
