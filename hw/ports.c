/*
 * The small port devices a PC guest expects (pc board only):
 *
 *   0x80        POST diagnostic port: writes ignored (guests use it as an
 *               I/O delay), reads 0.
 *   0x92        System Control Port A: bit 1 = A20 gate (remembered, A20 is
 *               always on here), bit 0 going 0 -> 1 = fast reset.
 *   0xcf9       Reset Control Register: a write with bit 2 (RST_CPU) set
 *               resets the machine (0x06 / 0x0e, the usual values).
 *   0x60, 0x64  the i8042 keyboard controller, only as far as reset needs:
 *               command 0xfe on 0x64 pulses the reset line; status reads 0
 *               (nothing to read, input buffer empty), data reads 0.
 *   0x501-0x502 debug exit, for tests (as QEMU's isa-debug-exit): a write of
 *               V stops the guest with a SHUTDOWN (reason guest-shutdown)
 *               and prints "debug-exit: ... status (V << 1) | 1" on stderr.
 *               migvm still exits 0: the status is for the test to read.
 *
 * A reset request goes through vm_request_reset (RESET event, machine_reset
 * on the main loop), never from inside the vCPU's I/O exit.
 *
 * The board finds this file through PC_DEVICE_REGISTER (hw/ports.h), so
 * that tests linking the board without the run-state layer leave it out.
 *
 * None of these hold migratable state except port 0x92's A20 bit, which a
 * guest cannot observe changing anything, so there is no VMState section.
 */
#include <stdio.h>
#include "hw-bus.h"
#include "ports.h"
#include "vm.h"

#define PORT_POST 0x80
#define PORT_A 0x92
#define PORT_A_RESET 0x01
#define PORT_A_A20 0x02
#define PORT_RCR 0xcf9
#define RCR_RST_CPU 0x04
#define PORT_KBD_DATA 0x60
#define PORT_KBD_CMD 0x64
#define KBD_CMD_PULSE_RESET 0xfe
#define PORT_DEBUG_EXIT 0x501

static void request_reset(void)
{
    vm_request_reset(SHUTDOWN_CAUSE_GUEST_RESET);
}

static uint8_t port_a = PORT_A_A20;
static uint8_t rcr;

static uint64_t post_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0;
}

static void post_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
}

static uint64_t port_a_read(void *opaque, uint64_t offset, unsigned size)
{
    return port_a;
}

static void port_a_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    bool reset = (value & PORT_A_RESET) && !(port_a & PORT_A_RESET);

    port_a = value & (PORT_A_RESET | PORT_A_A20);
    if (reset) {
        port_a &= ~PORT_A_RESET;
        request_reset();
    }
}

static uint64_t rcr_read(void *opaque, uint64_t offset, unsigned size)
{
    return rcr;
}

static void rcr_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    if (value & RCR_RST_CPU) {
        rcr = 0;
        request_reset();
        return;
    }
    rcr = value & 0x0a;                     /* SYS_RST and FULL_RST are kept */
}

static uint64_t kbd_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0;
}

static void kbd_cmd_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    if ((value & 0xff) == KBD_CMD_PULSE_RESET) {
        request_reset();
    }
}

static void debug_exit_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    fprintf(stderr, "migvm: debug-exit: guest wrote 0x%llx, exit status %llu; shutting down\n",
            (unsigned long long)value, (unsigned long long)((value << 1) | 1));
    vm_request_shutdown(SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
}

static const BusOps post_ops = { post_read, post_write };
static const BusOps port_a_ops = { port_a_read, port_a_write };
static const BusOps rcr_ops = { rcr_read, rcr_write };
static const BusOps kbd_data_ops = { kbd_read, NULL };
static const BusOps kbd_cmd_ops = { kbd_read, kbd_cmd_write };
static const BusOps debug_exit_ops = { NULL, debug_exit_write };

static bool ports_create(Error **errp)
{
    port_a = PORT_A_A20;
    rcr = 0;
    return pio_register("post", PORT_POST, 1, &post_ops, NULL, errp) &&
           pio_register("port92", PORT_A, 1, &port_a_ops, NULL, errp) &&
           pio_register("reset-control", PORT_RCR, 1, &rcr_ops, NULL, errp) &&
           pio_register("i8042-data", PORT_KBD_DATA, 1, &kbd_data_ops, NULL, errp) &&
           pio_register("i8042-cmd", PORT_KBD_CMD, 1, &kbd_cmd_ops, NULL, errp) &&
           pio_register("debug-exit", PORT_DEBUG_EXIT, 2, &debug_exit_ops, NULL, errp);
}

static void ports_reset(void)
{
    port_a = PORT_A_A20;
    rcr = 0;
}

static const PcDevice ports_device = { "ports", ports_create, ports_reset };
PC_DEVICE_REGISTER(ports_device)
