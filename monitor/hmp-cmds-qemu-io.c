/*
 * HMP `qemu-io [-d] device "command"`: the few qemu-io commands that tests
 * and operators need to touch a drive through the block layer (so its dirty
 * bitmaps see the writes), with QEMU 7.2's syntax:
 *   write [-P pattern] [-z] offset length    pattern byte (default 0xcd), or zeroes
 *   read [-P pattern] offset length          checks every byte against the pattern
 * offset and length take qemu-io's suffixes (k, M, G, ...; bytes without one).
 * Success prints nothing on the monitor (QEMU 7.2's qemu-io output goes to
 * its stdout); a failed check prints where it failed.
 */
#include "hmp-int.h"
#include "block.h"
#include "monitor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#define QEMU_IO_MAX_LEN (64u << 20)      /* one request, as a sanity bound */

typedef struct IoRequest {
    bool write;
    bool zeroes;
    int pattern;
    uint64_t offset;
    uint64_t len;
} IoRequest;

static bool parse_number(Monitor *mon, const char *word, uint64_t *out)
{
    if (hmp_parse_size(word, 1, out) != 0) {
        monitor_printf(mon, "non-numeric length argument -- %s\n", word);
        return false;
    }
    return true;
}

static bool parse_request(Monitor *mon, const char *command, IoRequest *r)
{
    g_auto(GStrv) argv = NULL;
    int argc;
    if (!g_shell_parse_argv(command, &argc, &argv, NULL)) {
        monitor_printf(mon, "Invalid command\n");
        return false;
    }
    *r = (IoRequest){ .pattern = 0xcd };
    if (strcmp(argv[0], "write") == 0) {
        r->write = true;
    } else if (strcmp(argv[0], "read") != 0) {
        monitor_printf(mon, "command \"%s\" not found (migvm knows read and write)\n", argv[0]);
        return false;
    }
    int i = 1;
    bool pattern = false;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-P") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 0);
            if (*end || v < 0 || v > 255) {
                monitor_printf(mon, "%s: invalid pattern -- %s\n", argv[0], argv[i]);
                return false;
            }
            r->pattern = (int)v;
            pattern = true;
        } else if (r->write && strcmp(argv[i], "-z") == 0) {
            r->zeroes = true;
        } else {
            monitor_printf(mon, "%s: invalid option -- '%s'\n", argv[0], argv[i]);
            return false;
        }
    }
    if (argc - i != 2) {
        monitor_printf(mon, "bad number of arguments to %s\n", argv[0]);
        return false;
    }
    if (pattern && r->zeroes) {
        monitor_printf(mon, "-z and -P cannot be specified at the same time\n");
        return false;
    }
    if (!parse_number(mon, argv[i], &r->offset) || !parse_number(mon, argv[i + 1], &r->len)) {
        return false;
    }
    if (r->len == 0 || r->len > QEMU_IO_MAX_LEN) {
        monitor_printf(mon, "length must be 1 .. %u bytes\n", QEMU_IO_MAX_LEN);
        return false;
    }
    return true;
}

static void run_request(Monitor *mon, BlockBackend *blk, const IoRequest *r)
{
    if (r->offset > (uint64_t)blk_getlength(blk) || r->len > blk_getlength(blk) - r->offset) {
        monitor_printf(mon, "%s failed: Input/output error\n", r->write ? "write" : "read");
        return;
    }
    g_autofree uint8_t *buf = g_malloc(r->len);
    int ret;
    if (r->write) {
        memset(buf, r->pattern, r->len);
        ret = r->zeroes ? blk_pwrite_zeroes(blk, r->offset, r->len)
                        : blk_pwrite(blk, r->offset, buf, r->len);
    } else {
        ret = blk_pread(blk, r->offset, buf, r->len);
    }
    if (ret < 0) {
        monitor_printf(mon, "%s failed: %s\n", r->write ? "write" : "read", g_strerror(-ret));
        return;
    }
    for (uint64_t i = 0; !r->write && i < r->len; i++) {
        if (buf[i] != r->pattern) {
            monitor_printf(mon, "Pattern verification failed at offset %" PRIu64 ", %" PRIu64
                           " bytes\n", r->offset + i, r->len - i);
            return;
        }
    }
}

void hmp_qemu_io(Monitor *mon, const HmpArgs *args)
{
    const char *device = hmp_args_str(args, "device");
    BlockBackend *blk = blk_by_name(device);
    if (!blk) {
        monitor_printf(mon, "Error: Cannot find device='' nor node-name='%s'\n", device);
        return;
    }
    IoRequest r;
    if (!parse_request(mon, hmp_args_str(args, "command"), &r)) {
        return;
    }
    if (r.write && blk_is_read_only(blk)) {
        monitor_printf(mon, "Block node is read-only\n");
        return;
    }
    run_request(mon, blk, &r);
}
