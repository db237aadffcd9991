/*
 * 16550A UART (hw/serial.c). Private to hw/ and its tests.
 */
#ifndef MIGVM_HW_SERIAL_H
#define MIGVM_HW_SERIAL_H

#include <stdint.h>
#include "chardev.h"
#include "vmstate.h"

#define SERIAL_FIFO_LEN 16

/* Wire layout of QEMU's Fifo8 (data, head, num). */
typedef struct SerialFifo {
    uint8_t data[SERIAL_FIFO_LEN];
    uint32_t head;
    uint32_t num;
} SerialFifo;

typedef void (*SerialIrqFn)(void *opaque, int level);

typedef struct SerialState {
    /* Migrated registers, in QEMU 7.2's "serial" order. */
    uint16_t divider;
    uint8_t rbr, ier, iir, lcr, mcr, lsr, msr, scr;
    uint8_t fcr, fcr_vmstate;
    int32_t thr_ipending;       /* THR-empty interrupt latched */
    uint32_t tsr_retry;         /* always 0: bytes go out at once */
    uint8_t thr, tsr;
    SerialFifo recv_fifo, xmit_fifo;
    int32_t timeout_ipending;   /* character timeout pending (FIFO mode) */
    int32_t poll_msl;           /* -1: no modem-line polling */
    int64_t fifo_timeout_timer; /* never armed; read and ignored on load */
    int64_t modem_status_poll;  /* idem */
    /* Not migrated. */
    uint8_t itl;                /* receive FIFO trigger level */
    int irq_level;
    SerialIrqFn irq_fn;
    void *irq_opaque;
    Chardev *chr;
    uint16_t base;              /* I/O port base, 0 if not on the bus */
    bool registered;            /* vmstate_register succeeded */
} SerialState;

extern const VMStateDescription vmstate_serial;

/* A UART writing to chr (may be NULL), in power-on state, not on any bus. */
SerialState *serial_new(Chardev *chr);
/* The board's COM port: open the backend, claim 8 ports at base, register
 * VMState "serial" instance `index`. [BQL, machine_init] */
SerialState *serial_create(uint16_t base, int index, const ChardevSpec *spec, Error **errp);
/* Undo serial_create / serial_new (closes the backend). NULL-safe. */
void serial_destroy(SerialState *s);
void serial_reset(SerialState *s);
/* The interrupt line (no interrupt controller yet): fn(opaque, level). */
void serial_set_irq(SerialState *s, SerialIrqFn fn, void *opaque);

/* Register access, offset 0..7. [BQL] */
uint8_t serial_read(SerialState *s, unsigned offset);
void serial_write(SerialState *s, unsigned offset, uint8_t value);
/* Feed received bytes (what the backend does on input). [BQL] */
int serial_can_receive(void *opaque);
void serial_receive(void *opaque, const uint8_t *buf, int len);

#endif
