/*
 * QEMU options migvm refuses, each with the reason, so a command line
 * written for QEMU 7.2 fails with a message that says what to do instead of
 * "invalid option". Options migvm does not know at all stay "invalid".
 */
#include <string.h>
#include "cmdline-int.h"

static const struct {
    const char *names;        /* space-separated */
    const char *reason;
} refused[] = {
    { "vnc spice sdl curses full-screen portrait rotate", "no display: use -display none" },
    { "netdev net nic", "no network devices" },
    { "cdrom hda hdb hdc hdd fda fdb sd mtdblock pflash snapshot",
      "the only disk is -drive file=IMAGE,format=raw" },
    { "blockdev", "block nodes are not supported: use -drive file=IMAGE,format=raw" },
    { "kernel initrd append dtb bios L boot", "the guest boots from the -drive image's boot sector" },
    { "cpu", "the vCPU model is fixed: the accelerator's" },
    { "global set readconfig writeconfig compat", "no QOM properties" },
    { "usb usbdevice", "no USB" },
    { "audiodev audio soundhw", "no sound devices" },
    { "numa mem-path overcommit", "guest RAM is one anonymous block without NUMA" },
    { "fsdev virtfs", "no 9p file sharing" },
    { "tpmdev", "no TPM" },
    { "parallel virtioconsole debugcon", "the only character device frontends are -serial and -mon" },
    { "chroot runas sandbox", "no privilege dropping or seccomp" },
    { "loadvm", "no internal snapshots: migrate to file: and -incoming instead" },
    { "icount gdb s qtest", "no debugger stub, icount or qtest" },
    { "rtc uuid smbios", "the board's clock, UUID and SMBIOS tables are fixed" },
    { "watchdog watchdog-action action no-reboot", "guest actions are fixed: a reset resets, a shutdown exits "
                                                   "(or stops with -no-shutdown)" },
    { "k", "no keyboard" },
    { "msg trace D d", "no log or trace options" },
    { "add-fd", "pass sockets with -chardev socket,fd=N, descriptors for monitors with getfd" },
};

const char *cmdline_refused_reason(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_auto(GStrv) names = g_strsplit(refused[i].names, " ", -1);
        for (char **n = names; *n; n++) {
            if (!strcmp(*n, name)) {
                return refused[i].reason;
            }
        }
    }
    return NULL;
}
