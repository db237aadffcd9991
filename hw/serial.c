/*
 * 16550A UART.
 *
 * Registers (offset from the base port; DLAB = LCR bit 7):
 *   0  read RBR / write THR        (DLAB=1: divisor latch low)
 *   1  IER                         (DLAB=1: divisor latch high)
 *   2  read IIR / write FCR
 *   3  LCR    4  MCR    5  LSR (read only)    6  MSR (read only)    7  SCR
 *
 * Transmission is instantaneous: a THR write goes to the backend at once,
 * THR/TSR stay empty (LSR.THRE|TEMT) and the THR-empty interrupt is
 * re-latched. Received bytes fill the 16-byte FIFO (FIFO mode) or RBR.
 * Without timers, the FIFO "character timeout" is raised as soon as data
 * sits below the trigger level.
 *
 * Interrupts: one line (IRQ 4 on the pc board, through serial_set_irq),
 * high while an enabled interrupt is pending (IIR bit 0 clear): transmit
 * holding register empty, received data / character timeout, line status,
 * modem status, as a 16550 does.
 *
 * Migration: VMState "serial" version 3 laid out as QEMU 7.2's (fields of
 * vmstate_serial, then its subsections); timers are never armed here, so
 * their subsections are only ever loaded, never sent. Loading does not
 * drive the interrupt line: the board restores line levels itself.
 */
#include <string.h>
#include <glib.h>
#include "hw-bus.h"
#include "vm.h"
#include "serial.h"

#define LSR_DR      0x01
#define LSR_OE      0x02
#define LSR_BI      0x10
#define LSR_THRE    0x20
#define LSR_TEMT    0x40
#define LSR_INT_ANY 0x1e

#define IER_RDI     0x01
#define IER_THRI    0x02
#define IER_RLSI    0x04
#define IER_MSI     0x08

#define IIR_NO_INT  0x01
#define IIR_ID      0x0e
#define IIR_MSI     0x00
#define IIR_THRI    0x02
#define IIR_RDI     0x04
#define IIR_RLSI    0x06
#define IIR_CTI     0x0c
#define IIR_FE      0xc0

#define FCR_FE      0x01
#define FCR_RFR     0x02
#define FCR_XFR     0x04
#define FCR_ITL     0xc0

#define LCR_DLAB    0x80
#define LCR_BREAK   0x40

#define MCR_DTR     0x01
#define MCR_RTS     0x02
#define MCR_OUT1    0x04
#define MCR_OUT2    0x08
#define MCR_LOOP    0x10

#define MSR_DELTA   0x0f
#define MSR_CTS     0x10
#define MSR_DSR     0x20
#define MSR_RI      0x40
#define MSR_DCD     0x80

/* ---- receive FIFO ---- */

static void fifo_reset(SerialFifo *f)
{
    f->head = f->num = 0;
}

static void fifo_push(SerialFifo *f, uint8_t byte)
{
    f->data[(f->head + f->num) % SERIAL_FIFO_LEN] = byte;
    f->num++;
}

static uint8_t fifo_pop(SerialFifo *f)
{
    uint8_t byte = f->data[f->head];

    f->head = (f->head + 1) % SERIAL_FIFO_LEN;
    f->num--;
    return byte;
}

/* ---- interrupts ---- */

static uint8_t serial_pending_id(SerialState *s)
{
    bool fifo = s->fcr & FCR_FE;

    if ((s->ier & IER_RLSI) && (s->lsr & LSR_INT_ANY)) {
        return IIR_RLSI;
    }
    if ((s->ier & IER_RDI) && s->timeout_ipending) {
        return IIR_CTI;
    }
    if ((s->ier & IER_RDI) && (s->lsr & LSR_DR) && (!fifo || s->recv_fifo.num >= s->itl)) {
        return IIR_RDI;
    }
    if ((s->ier & IER_THRI) && s->thr_ipending) {
        return IIR_THRI;
    }
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTA)) {
        return IIR_MSI;
    }
    return IIR_NO_INT;
}

static void serial_update_irq(SerialState *s)
{
    uint8_t id = serial_pending_id(s);
    int level = id != IIR_NO_INT;

    s->iir = id | (s->fcr & FCR_FE ? IIR_FE : 0);
    if (level != s->irq_level) {
        s->irq_level = level;
        if (s->irq_fn) {
            s->irq_fn(s->irq_opaque, level);
        }
    }
}

void serial_set_irq(SerialState *s, SerialIrqFn fn, void *opaque)
{
    s->irq_fn = fn;
    s->irq_opaque = opaque;
}

/* ---- modem lines ---- */

static void serial_update_msr(SerialState *s)
{
    uint8_t lines;

    if (s->mcr & MCR_LOOP) {
        lines = (s->mcr & MCR_RTS ? MSR_CTS : 0) | (s->mcr & MCR_DTR ? MSR_DSR : 0) |
                (s->mcr & MCR_OUT1 ? MSR_RI : 0) | (s->mcr & MCR_OUT2 ? MSR_DCD : 0);
    } else {
        lines = MSR_DCD | MSR_DSR | MSR_CTS;
    }
    uint8_t changed = (lines ^ s->msr) & 0xf0;
    uint8_t delta = (changed & MSR_CTS ? 0x01 : 0) | (changed & MSR_DSR ? 0x02 : 0) |
                    ((s->msr & MSR_RI) && !(lines & MSR_RI) ? 0x04 : 0) |
                    (changed & MSR_DCD ? 0x08 : 0);
    s->msr = lines | (s->msr & MSR_DELTA) | delta;
}

/* ---- receive path ---- */

int serial_can_receive(void *opaque)
{
    assert(bql_locked());
    SerialState *s = opaque;

    if (s->fcr & FCR_FE) {
        return SERIAL_FIFO_LEN - (int)s->recv_fifo.num;
    }
    return !(s->lsr & LSR_DR);
}

static void serial_receive_byte(SerialState *s, uint8_t byte)
{
    if (s->fcr & FCR_FE) {
        if (s->recv_fifo.num == SERIAL_FIFO_LEN) {
            s->lsr |= LSR_OE;
            return;
        }
        fifo_push(&s->recv_fifo, byte);
        s->timeout_ipending = s->recv_fifo.num < s->itl;
    } else {
        if (s->lsr & LSR_DR) {
            s->lsr |= LSR_OE;
        }
        s->rbr = byte;
    }
    s->lsr |= LSR_DR;
}

void serial_receive(void *opaque, const uint8_t *buf, int len)
{
    assert(bql_locked());
    SerialState *s = opaque;

    for (int i = 0; i < len; i++) {
        serial_receive_byte(s, buf[i]);
    }
    serial_update_irq(s);
}

static uint8_t serial_read_rbr(SerialState *s)
{
    uint8_t byte = s->rbr;

    if (s->fcr & FCR_FE) {
        byte = s->recv_fifo.num ? fifo_pop(&s->recv_fifo) : 0;
        s->rbr = byte;
        s->timeout_ipending = 0;
        if (!s->recv_fifo.num) {
            s->lsr &= ~LSR_DR;
        }
    } else {
        s->lsr &= ~(LSR_DR | LSR_BI);
    }
    serial_update_irq(s);
    chardev_accept_input(s->chr);
    return byte;
}

/* ---- transmit path ---- */

static void serial_write_thr(SerialState *s, uint8_t byte)
{
    s->thr = byte;
    if (s->mcr & MCR_LOOP) {
        serial_receive_byte(s, byte);
    } else {
        chardev_write(s->chr, &byte, 1);
    }
    /* Sent already: THR and TSR are empty again. */
    s->lsr |= LSR_THRE | LSR_TEMT;
    s->thr_ipending = 1;
    serial_update_irq(s);
}

static void serial_write_fcr(SerialState *s, uint8_t value)
{
    static const uint8_t levels[4] = { 1, 4, 8, 14 };

    if ((value ^ s->fcr) & FCR_FE) {
        value |= FCR_RFR | FCR_XFR;         /* toggling FIFO mode empties both */
    }
    if (value & FCR_RFR) {
        fifo_reset(&s->recv_fifo);
        s->timeout_ipending = 0;
        s->lsr &= ~(LSR_DR | LSR_BI);
    }
    if (value & FCR_XFR) {
        fifo_reset(&s->xmit_fifo);
        s->lsr |= LSR_THRE;
        s->thr_ipending = 1;
    }
    s->fcr = value & 0xc9;
    s->itl = levels[(value & FCR_ITL) >> 6];
}

/* ---- register access ---- */

uint8_t serial_read(SerialState *s, unsigned offset)
{
    assert(bql_locked());
    uint8_t v;

    switch (offset & 7) {
    case 0:
        return s->lcr & LCR_DLAB ? s->divider & 0xff : serial_read_rbr(s);
    case 1:
        return s->lcr & LCR_DLAB ? s->divider >> 8 : s->ier;
    case 2:
        v = s->iir;
        if ((v & IIR_ID) == IIR_THRI) {
            s->thr_ipending = 0;            /* reading IIR acknowledges THRE */
            serial_update_irq(s);
        }
        return v;
    case 3:
        return s->lcr;
    case 4:
        return s->mcr;
    case 5:
        v = s->lsr;
        if (v & (LSR_BI | LSR_OE)) {
            s->lsr &= ~(LSR_BI | LSR_OE);
            serial_update_irq(s);
        }
        return v;
    case 6:
        v = s->msr;
        if (v & MSR_DELTA) {
            s->msr &= ~MSR_DELTA;
            serial_update_irq(s);
        }
        return v;
    default:
        return s->scr;
    }
}

void serial_write(SerialState *s, unsigned offset, uint8_t value)
{
    assert(bql_locked());
    switch (offset & 7) {
    case 0:
        if (s->lcr & LCR_DLAB) {
            s->divider = (s->divider & 0xff00) | value;
        } else {
            serial_write_thr(s, value);
        }
        break;
    case 1:
        if (s->lcr & LCR_DLAB) {
            s->divider = (uint16_t)((s->divider & 0x00ff) | (value << 8));
            break;
        }
        /* Enabling THRI while THR is empty raises it at once. */
        if ((value & IER_THRI) && !(s->ier & IER_THRI) && (s->lsr & LSR_THRE)) {
            s->thr_ipending = 1;
        }
        s->ier = value & 0x0f;
        serial_update_irq(s);
        break;
    case 2:
        serial_write_fcr(s, value);
        serial_update_irq(s);
        break;
    case 3:
        s->lcr = value;
        break;
    case 4:
        s->mcr = value & 0x1f;
        serial_update_msr(s);
        serial_update_irq(s);
        break;
    case 5:
    case 6:
        break;                              /* read-only */
    default:
        s->scr = value;
        break;
    }
}

/* ---- life cycle ---- */

void serial_reset(SerialState *s)
{
    s->divider = 0x0c;                      /* 9600 baud */
    s->rbr = s->ier = s->lcr = s->scr = 0;
    s->mcr = MCR_OUT2;
    s->lsr = LSR_TEMT | LSR_THRE;
    s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
    s->fcr = s->fcr_vmstate = 0;
    s->itl = 1;
    s->thr_ipending = 0;
    s->tsr_retry = 0;
    s->thr = s->tsr = 0;
    fifo_reset(&s->recv_fifo);
    fifo_reset(&s->xmit_fifo);
    s->timeout_ipending = 0;
    s->poll_msl = -1;
    s->fifo_timeout_timer = s->modem_status_poll = -1;
    serial_update_irq(s);
    chardev_accept_input(s->chr);
}

SerialState *serial_new(Chardev *chr)
{
    SerialState *s = g_new0(SerialState, 1);

    s->chr = chr;
    serial_reset(s);
    chardev_set_handlers(chr, serial_can_receive, serial_receive, s);
    return s;
}

static uint64_t serial_bus_read(void *opaque, uint64_t offset, unsigned size)
{
    return serial_read(opaque, (unsigned)offset);
}

static void serial_bus_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    serial_write(opaque, (unsigned)offset, (uint8_t)value);
}

static const BusOps serial_bus_ops = { serial_bus_read, serial_bus_write };

SerialState *serial_create(uint16_t base, int index, const ChardevSpec *spec, Error **errp)
{
    assert(bql_locked());
    Chardev *chr = chardev_open(spec, errp);

    if (!chr) {
        return NULL;
    }
    SerialState *s = serial_new(chr);
    if (!pio_register("serial", base, 8, &serial_bus_ops, s, errp)) {
        serial_destroy(s);
        return NULL;
    }
    s->base = base;
    if (!vmstate_register("serial", (uint32_t)index, &vmstate_serial, s, errp)) {
        serial_destroy(s);
        return NULL;
    }
    s->registered = true;
    return s;
}

void serial_destroy(SerialState *s)
{
    if (!s) {
        return;
    }
    if (s->registered) {
        vmstate_unregister(&vmstate_serial, s);
    }
    if (s->base) {
        pio_unregister(s->base);
    }
    chardev_close(s->chr);
    g_free(s);
}

/* ---- VMState ---- */

static bool serial_pre_save(void *opaque, Error **errp)
{
    SerialState *s = opaque;

    s->fcr_vmstate = s->fcr;
    return true;
}

static bool serial_pre_load(void *opaque, Error **errp)
{
    SerialState *s = opaque;

    s->thr_ipending = -1;                   /* "not sent": derive from IIR */
    s->fcr_vmstate = 0;                     /* version 2 streams lack it */
    s->tsr_retry = 0;
    s->timeout_ipending = 0;
    fifo_reset(&s->recv_fifo);
    fifo_reset(&s->xmit_fifo);
    return true;
}

static bool serial_fifo_valid(const SerialFifo *f)
{
    return f->head < SERIAL_FIFO_LEN && f->num <= SERIAL_FIFO_LEN;
}

static bool serial_post_load(void *opaque, int version_id, Error **errp)
{
    SerialState *s = opaque;

    if (!serial_fifo_valid(&s->recv_fifo) || !serial_fifo_valid(&s->xmit_fifo)) {
        error_setg(errp, "serial: invalid FIFO state in migration stream");
        return false;
    }
    if (s->thr_ipending == -1) {
        s->thr_ipending = (s->iir & IIR_ID) == IIR_THRI;
    }
    /* Bytes the source had not sent yet are lost: we transmit at once. */
    s->tsr_retry = 0;
    fifo_reset(&s->xmit_fifo);
    s->lsr |= LSR_THRE | LSR_TEMT;
    uint8_t fcr = s->fcr_vmstate;
    s->fcr = fcr & 0xc9;
    s->itl = (uint8_t[]){ 1, 4, 8, 14 }[(fcr & FCR_ITL) >> 6];
    s->poll_msl = -1;
    s->fifo_timeout_timer = s->modem_status_poll = -1;
    /* Recompute IIR and the level, but do not drive the line: the board's
     * "irq-lines" section, loaded after the interrupt controllers, restores
     * the level the line had (hw/machine.c). */
    uint8_t id = serial_pending_id(s);
    s->irq_level = id != IIR_NO_INT;
    s->iir = id | (s->fcr & FCR_FE ? IIR_FE : 0);
    return true;
}

static bool serial_thr_ipending_needed(void *opaque)
{
    SerialState *s = opaque;

    if (!(s->ier & IER_THRI)) {
        return false;                       /* re-sampled when enabled */
    }
    return s->thr_ipending != ((s->iir & IIR_ID) == IIR_THRI);
}

static bool serial_tsr_needed(void *opaque)
{
    return ((SerialState *)opaque)->tsr_retry != 0;
}

static bool serial_recv_fifo_needed(void *opaque)
{
    return ((SerialState *)opaque)->recv_fifo.num != 0;
}

static bool serial_xmit_fifo_needed(void *opaque)
{
    return ((SerialState *)opaque)->xmit_fifo.num != 0;
}

static bool serial_timer_needed(void *opaque)
{
    return false;                           /* no timers are ever armed */
}

static bool serial_timeout_ipending_needed(void *opaque)
{
    return ((SerialState *)opaque)->timeout_ipending != 0;
}

static bool serial_poll_needed(void *opaque)
{
    return ((SerialState *)opaque)->poll_msl >= 0;
}

static const VMStateField fifo_fields[] = {
    VMSTATE_BUFFER_V(data, SerialFifo, 1),
    VMSTATE_UINT32(head, SerialFifo),
    VMSTATE_UINT32(num, SerialFifo),
    VMSTATE_END_OF_LIST()
};

static const VMStateDescription vmstate_fifo8 = {
    .name = "Fifo8", .version_id = 1, .minimum_version_id = 1, .fields = fifo_fields,
};

#define SERIAL_SUBSECTION(var, subname, needed_fn, ...)                       \
    static const VMStateField var##_fields[] = { __VA_ARGS__, VMSTATE_END_OF_LIST() }; \
    static const VMStateDescription var = {                                   \
        .name = "serial/" subname, .version_id = 1, .minimum_version_id = 1,  \
        .needed = needed_fn, .fields = var##_fields,                          \
    }

SERIAL_SUBSECTION(vmstate_serial_thr_ipending, "thr_ipending", serial_thr_ipending_needed,
                  VMSTATE_INT32(thr_ipending, SerialState));
SERIAL_SUBSECTION(vmstate_serial_tsr, "tsr", serial_tsr_needed,
                  VMSTATE_UINT32(tsr_retry, SerialState),
                  VMSTATE_UINT8(thr, SerialState),
                  VMSTATE_UINT8(tsr, SerialState));
SERIAL_SUBSECTION(vmstate_serial_recv_fifo, "recv_fifo", serial_recv_fifo_needed,
                  VMSTATE_STRUCT_V(recv_fifo, SerialState, 1, vmstate_fifo8, SerialFifo));
SERIAL_SUBSECTION(vmstate_serial_xmit_fifo, "xmit_fifo", serial_xmit_fifo_needed,
                  VMSTATE_STRUCT_V(xmit_fifo, SerialState, 1, vmstate_fifo8, SerialFifo));
SERIAL_SUBSECTION(vmstate_serial_fifo_timeout_timer, "fifo_timeout_timer", serial_timer_needed,
                  VMSTATE_INT64(fifo_timeout_timer, SerialState));
SERIAL_SUBSECTION(vmstate_serial_timeout_ipending, "timeout_ipending",
                  serial_timeout_ipending_needed,
                  VMSTATE_INT32(timeout_ipending, SerialState));
SERIAL_SUBSECTION(vmstate_serial_poll, "poll", serial_poll_needed,
                  VMSTATE_INT32(poll_msl, SerialState),
                  VMSTATE_INT64(modem_status_poll, SerialState));

static const VMStateField serial_fields[] = {
    VMSTATE_UINT16_V(divider, SerialState, 2),
    VMSTATE_UINT8(rbr, SerialState),
    VMSTATE_UINT8(ier, SerialState),
    VMSTATE_UINT8(iir, SerialState),
    VMSTATE_UINT8(lcr, SerialState),
    VMSTATE_UINT8(mcr, SerialState),
    VMSTATE_UINT8(lsr, SerialState),
    VMSTATE_UINT8(msr, SerialState),
    VMSTATE_UINT8(scr, SerialState),
    VMSTATE_UINT8_V(fcr_vmstate, SerialState, 3),
    VMSTATE_END_OF_LIST()
};

static const VMStateDescription *const serial_subsections[] = {
    &vmstate_serial_thr_ipending,
    &vmstate_serial_tsr,
    &vmstate_serial_recv_fifo,
    &vmstate_serial_xmit_fifo,
    &vmstate_serial_fifo_timeout_timer,
    &vmstate_serial_timeout_ipending,
    &vmstate_serial_poll,
    NULL
};

const VMStateDescription vmstate_serial = {
    .name = "serial",
    .version_id = 3,
    .minimum_version_id = 2,
    .pre_save = serial_pre_save,
    .pre_load = serial_pre_load,
    .post_load = serial_post_load,
    .fields = serial_fields,
    .subsections = serial_subsections,
};
