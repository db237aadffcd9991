/*
 * 16550A UART (hw/serial.c): register behaviour, the file backend, port I/O
 * dispatch, and the "serial" VMState (golden bytes, round trip, bad input)
 * through migration/vmstate.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib.h>
#include "hw-bus.h"
#include "../../hw/serial.h"
#include "vm.h"

/* The test thread plays the main thread, which holds the BQL. */
bool bql_locked(void)
{
    return true;
}

bool main_loop_exit_requested(void)
{
    return false;
}
#include "../../migration/savevm.h"
#include "unit-test.h"

/* The save-state registry is not linked in: count registrations instead. */
static int registered;
bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp)
{
    ck_assert_str_eq(idstr, "serial");
    ck_assert_ptr_eq(vmsd, &vmstate_serial);
    registered++;
    return true;
}

void vmstate_unregister(const VMStateDescription *vmsd, void *opaque)
{
    registered--;
}

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4,
       LSR = 5, MSR = 6, SCR = 7 };

static int irq_level, irq_changes;
static void irq_handler(void *opaque, int level)
{
    irq_level = level;
    irq_changes++;
}

static char tmp_path[64];

static SerialState *new_serial_on_file(void)
{
    ChardevSpec spec = { .kind = CHARDEV_FILE, .path = tmp_path };
    Chardev *chr;

    strcpy(tmp_path, "/tmp/test-serial-XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    chr = chardev_open(&spec, NULL);
    ck_assert_ptr_nonnull(chr);
    SerialState *s = serial_new(chr);
    irq_level = irq_changes = 0;
    serial_set_irq(s, irq_handler, NULL);
    return s;
}

static char *file_contents(void)
{
    static char buf[256];
    FILE *f = fopen(tmp_path, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);

    fclose(f);
    buf[n] = 0;
    return buf;
}

static void done_serial(SerialState *s)
{
    serial_destroy(s);
    unlink(tmp_path);
}

START_TEST(test_reset_state)
{
    SerialState *s = serial_new(NULL);

    ck_assert_uint_eq(serial_read(s, LSR), 0x60);
    ck_assert_uint_eq(serial_read(s, IIR), 0x01);
    ck_assert_uint_eq(serial_read(s, MSR), 0xb0);
    ck_assert_uint_eq(serial_read(s, MCR), 0x08);
    ck_assert_uint_eq(serial_read(s, LCR), 0x00);
    ck_assert_uint_eq(serial_read(s, IER), 0x00);
    ck_assert_uint_eq(s->divider, 0x0c);
    serial_destroy(s);
}
END_TEST

START_TEST(test_transmit_to_file)
{
    SerialState *s = new_serial_on_file();

    serial_write(s, THR, 'A');
    ck_assert_uint_eq(serial_read(s, LSR) & 0x60, 0x60);   /* THRE|TEMT: sent at once */
    serial_write(s, THR, 'B');
    serial_write(s, THR, 'B');
    ck_assert_str_eq(file_contents(), "ABB");               /* visible without close */
    done_serial(s);
}
END_TEST

START_TEST(test_divisor_latch_and_scratch)
{
    SerialState *s = serial_new(NULL);

    serial_write(s, LCR, 0x83);                             /* DLAB + 8N1 */
    serial_write(s, DLL, 0x01);
    serial_write(s, DLM, 0x02);
    ck_assert_uint_eq(serial_read(s, DLL), 0x01);
    ck_assert_uint_eq(serial_read(s, DLM), 0x02);
    ck_assert_uint_eq(s->divider, 0x0201);
    serial_write(s, LCR, 0x03);
    ck_assert_uint_eq(serial_read(s, LCR), 0x03);
    serial_write(s, IER, 0x00);
    ck_assert_uint_eq(serial_read(s, IER), 0x00);           /* IER, not DLM */
    ck_assert_uint_eq(s->divider, 0x0201);
    serial_write(s, SCR, 0x5a);
    ck_assert_uint_eq(serial_read(s, SCR), 0x5a);
    serial_write(s, LSR, 0x00);                             /* read-only */
    ck_assert_uint_eq(serial_read(s, LSR), 0x60);
    serial_write(s, IER, 0xff);
    ck_assert_uint_eq(serial_read(s, IER), 0x0f);
    serial_destroy(s);
}
END_TEST

START_TEST(test_thr_empty_interrupt)
{
    SerialState *s = new_serial_on_file();

    ck_assert_int_eq(irq_level, 0);
    serial_write(s, IER, 0x02);                             /* THRI */
    ck_assert_int_eq(irq_level, 1);
    ck_assert_uint_eq(serial_read(s, IIR), 0x02);           /* read acknowledges */
    ck_assert_int_eq(irq_level, 0);
    ck_assert_uint_eq(serial_read(s, IIR), 0x01);
    serial_write(s, THR, 'x');                              /* THR empties again */
    ck_assert_int_eq(irq_level, 1);
    ck_assert_uint_eq(serial_read(s, IIR), 0x02);
    serial_write(s, IER, 0x00);
    ck_assert_int_eq(irq_level, 0);
    done_serial(s);
}
END_TEST

START_TEST(test_receive)
{
    SerialState *s = serial_new(NULL);
    const uint8_t one = 'x', three[3] = { '1', '2', '3' };

    serial_set_irq(s, irq_handler, NULL);
    serial_write(s, IER, 0x01);                             /* RDI */
    ck_assert_int_eq(serial_can_receive(s), 1);
    serial_receive(s, &one, 1);
    ck_assert_int_eq(serial_can_receive(s), 0);
    ck_assert_uint_eq(serial_read(s, LSR) & 0x01, 0x01);
    ck_assert_uint_eq(serial_read(s, IIR), 0x04);
    ck_assert_int_eq(irq_level, 1);
    ck_assert_uint_eq(serial_read(s, RBR), 'x');
    ck_assert_uint_eq(serial_read(s, LSR) & 0x01, 0);
    ck_assert_int_eq(irq_level, 0);

    serial_write(s, FCR, 0xc1);                             /* FIFO, trigger 14 */
    ck_assert_uint_eq(serial_read(s, IIR), 0xc1);
    ck_assert_int_eq(serial_can_receive(s), 16);
    serial_receive(s, three, 3);
    ck_assert_int_eq(serial_can_receive(s), 13);
    ck_assert_uint_eq(serial_read(s, IIR), 0xcc);           /* below trigger: timeout */
    ck_assert_uint_eq(serial_read(s, RBR), '1');
    ck_assert_uint_eq(serial_read(s, RBR), '2');
    ck_assert_uint_eq(serial_read(s, RBR), '3');
    ck_assert_uint_eq(serial_read(s, LSR) & 0x01, 0);
    ck_assert_uint_eq(serial_read(s, IIR), 0xc1);

    /* Loopback: transmitted bytes come back, modem lines follow MCR. */
    serial_write(s, MCR, 0x10 | 0x03);
    serial_write(s, THR, 'L');
    ck_assert_uint_eq(serial_read(s, RBR), 'L');
    ck_assert_uint_eq(serial_read(s, MSR) & 0xf0, 0x30);    /* CTS|DSR from RTS|DTR */
    serial_destroy(s);
}
END_TEST

START_TEST(test_port_io_dispatch)
{
    ChardevSpec spec = { .kind = CHARDEV_NONE };
    Error *err = NULL;
    SerialState *s = serial_create(0x3f8, 0, &spec, &err);

    ck_assert_ptr_null(err);
    ck_assert_int_eq(registered, 1);
    pio_write(0x3ff, 0x77, 1);
    ck_assert_uint_eq(pio_read(0x3ff, 1), 0x77);
    ck_assert_uint_eq(pio_read(0x3fd, 1), 0x60);
    ck_assert_uint_eq(pio_read(0x400, 1), 0xff);            /* unclaimed */
    ck_assert_uint_eq(pio_read(0x2f8, 2), 0xffff);
    ck_assert_ptr_null(serial_create(0x3fc, 1, &spec, &err)); /* overlaps */
    error_free_or_abort(&err);
    serial_destroy(s);
    ck_assert_int_eq(registered, 0);
    ck_assert_uint_eq(pio_read(0x3ff, 1), 0xff);
    bus_cleanup();
}
END_TEST

/* Spin the default main context (where the backend's watches live) until
 * cond(opaque) holds or 5 s pass. */
static bool iterate_until(bool (*cond)(void *), void *opaque)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!cond(opaque) && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return cond(opaque);
}

static bool data_ready(void *opaque)
{
    return serial_read(opaque, LSR) & 0x01;
}

START_TEST(test_unix_socket_backend)
{
    char dir[] = "/tmp/test-serial-sock-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    g_autofree char *path = g_strdup_printf("%s/s", dir);
    ChardevSpec spec = { .kind = CHARDEV_UNIX, .path = path, .server = true, .wait = false };
    Error *err = NULL;
    Chardev *chr = chardev_open(&spec, &err);

    ck_assert_ptr_null(err);
    SerialState *s = serial_new(chr);
    serial_write(s, THR, '0');                              /* nobody connected: dropped */

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(fd, "z", 1), 1);
    ck_assert(iterate_until(data_ready, s));                /* accepted, then read */
    ck_assert_uint_eq(serial_read(s, RBR), 'z');

    serial_write(s, THR, 'B');
    char c = 0;
    ck_assert_int_eq(read(fd, &c, 1), 1);
    ck_assert_int_eq(c, 'B');
    close(fd);
    serial_destroy(s);                                      /* removes the socket file */
    ck_assert_int_ne(access(path, F_OK), 0);
    rmdir(dir);
}
END_TEST

/* ---- VMState ---- */

static uint8_t *save_to_bytes(SerialState *s, size_t *len)
{
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;

    ck_assert(vmstate_save(f, &vmstate_serial, s, NULL, &err));
    const uint8_t *data = mig_stream_mem_data(f, len);
    uint8_t *copy = g_memdup2(data, *len);
    mig_stream_close(f, NULL);
    return copy;
}

static bool load_from_bytes(SerialState *s, const uint8_t *data, size_t len, int version,
                            Error **errp)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    bool ok = vmstate_load(f, &vmstate_serial, s, version, errp);

    mig_stream_close(f, NULL);
    return ok;
}

START_TEST(test_vmstate_golden_reset)
{
    SerialState *s = serial_new(NULL);
    static const uint8_t golden[] = {
        0x00, 0x0c,                         /* divider */
        0x00, 0x00, 0x01, 0x00,             /* rbr ier iir lcr */
        0x08, 0x60, 0xb0, 0x00,             /* mcr lsr msr scr */
        0x00,                               /* fcr_vmstate */
    };
    size_t len;
    uint8_t *bytes = save_to_bytes(s, &len);

    ck_assert_uint_eq(len, sizeof(golden));
    ck_assert_mem_eq(bytes, golden, sizeof(golden));
    g_free(bytes);
    serial_destroy(s);
}
END_TEST

START_TEST(test_vmstate_round_trip)
{
    SerialState *a = serial_new(NULL), *b = serial_new(NULL);
    const uint8_t in[2] = { 'p', 'q' };
    Error *err = NULL;
    size_t len;

    serial_write(a, LCR, 0x80);
    serial_write(a, DLL, 0x01);
    serial_write(a, LCR, 0x1b);
    serial_write(a, SCR, 0x42);
    serial_write(a, FCR, 0x81);                             /* FIFO, trigger 8 */
    serial_write(a, IER, 0x03);
    serial_receive(a, in, 2);
    uint8_t *bytes = save_to_bytes(a, &len);

    /* Subsection "serial/recv_fifo" is on the wire (Fifo8: 16 + 4 + 4 bytes). */
    ck_assert(memmem(bytes, len, "serial/recv_fifo", 16) != NULL);
    ck_assert(load_from_bytes(b, bytes, len, 3, &err));
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(b->divider, 1);
    ck_assert_uint_eq(b->lcr, 0x1b);
    ck_assert_uint_eq(b->scr, 0x42);
    ck_assert_uint_eq(b->ier, 0x03);
    ck_assert_uint_eq(b->fcr, 0x81);
    ck_assert_uint_eq(b->iir, a->iir);
    ck_assert_uint_eq(b->lsr, a->lsr);
    ck_assert_int_eq(serial_can_receive(b), 14);
    ck_assert_uint_eq(serial_read(b, RBR), 'p');
    ck_assert_uint_eq(serial_read(b, RBR), 'q');

    /* Truncated input fails cleanly. */
    SerialState *c = serial_new(NULL);
    ck_assert(!load_from_bytes(c, bytes, len - 3, 3, &err));
    error_free_or_abort(&err);
    /* A FIFO count beyond the FIFO is refused. Layout: 11 bytes of fields,
     * then [0x05, len, "serial/thr_ipending"?]... find num (be32) by offset
     * from the end: head(4) num(4) are the recv_fifo's last 8 bytes. */
    uint8_t *bad = g_memdup2(bytes, len);
    const uint8_t *sub = memmem(bad, len, "serial/recv_fifo", 16);
    size_t num_at = (size_t)(sub - bad) + 16 + 4 + 16 + 4;  /* name, version, data, head */
    bad[num_at + 3] = 17;
    ck_assert(!load_from_bytes(c, bad, len, 3, &err));
    error_free_or_abort(&err);
    g_free(bad);
    g_free(bytes);
    serial_destroy(a);
    serial_destroy(b);
    serial_destroy(c);
}
END_TEST

START_TEST(test_vmstate_version2_and_too_new)
{
    SerialState *s = serial_new(NULL);
    /* Version 2: no fcr_vmstate. */
    static const uint8_t v2[] = { 0x00, 0x06, 0x00, 0x00, 0x01, 0x03, 0x08, 0x60, 0xb0, 0x11 };
    Error *err = NULL;

    ck_assert(load_from_bytes(s, v2, sizeof(v2), 2, &err));
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(s->divider, 6);
    ck_assert_uint_eq(s->lcr, 3);
    ck_assert_uint_eq(s->scr, 0x11);
    ck_assert_uint_eq(s->fcr, 0);
    ck_assert(!load_from_bytes(s, v2, sizeof(v2), 4, &err));
    error_free_or_abort(&err);
    ck_assert(!load_from_bytes(s, v2, sizeof(v2), 1, &err));
    error_free_or_abort(&err);
    serial_destroy(s);
}
END_TEST

static Suite *serial_suite(void)
{
    Suite *s = suite_create("serial");
    TCase *regs = tcase_create("registers");
    TCase *vm = tcase_create("vmstate");

    tcase_add_test(regs, test_reset_state);
    tcase_add_test(regs, test_transmit_to_file);
    tcase_add_test(regs, test_divisor_latch_and_scratch);
    tcase_add_test(regs, test_thr_empty_interrupt);
    tcase_add_test(regs, test_receive);
    tcase_add_test(regs, test_port_io_dispatch);
    tcase_add_test(regs, test_unix_socket_backend);
    tcase_add_test(vm, test_vmstate_golden_reset);
    tcase_add_test(vm, test_vmstate_round_trip);
    tcase_add_test(vm, test_vmstate_version2_and_too_new);
    suite_add_tcase(s, regs);
    suite_add_tcase(s, vm);
    return s;
}

int main(void)
{
    return check_run_suite(serial_suite());
}
