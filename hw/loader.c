/*
 * Boot sector loader (see loader.h for the memory it fills).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "loader.h"
#include "memory.h"

#define TOP_LIMIT 0xfffff000ULL         /* the guest addresses RAM with 32 bits */

static bool read_sector(const char *path, uint8_t *buf, Error **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
        return false;
    }
    while (got < LOADER_BOOT_SECTOR_SIZE) {
        ssize_t n = read(fd, buf + got, LOADER_BOOT_SECTOR_SIZE - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n < 0) {
                error_setg_errno(errp, errno, "'%s': read error", path);
            } else {
                error_setg(errp, "'%s' is %zu bytes, shorter than a %d-byte boot sector", path, got,
                           LOADER_BOOT_SECTOR_SIZE);
            }
            close(fd);
            return false;
        }
        got += n;
    }
    close(fd);
    return true;
}

static bool write_ram_info(Error **errp)
{
    RAMBlock *b = ram_block_by_gpa(LOADER_BOOT_SECTOR_ADDR);
    uint64_t top = b->gpa + b->used_length;
    uint32_t info[2];

    if (top > TOP_LIMIT) {
        top = TOP_LIMIT;
    }
    info[0] = LOADER_RAM_MAGIC;
    info[1] = (uint32_t)(top & ~0xfffULL);
    /* x86 guest: little-endian words. */
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++) {
        bytes[i] = info[i / 4] >> (8 * (i % 4));
    }
    return guest_phys_write(LOADER_RAM_INFO_ADDR, bytes, sizeof(bytes), errp);
}

bool loader_load_boot_sector(const char *path, Error **errp)
{
    uint8_t sector[LOADER_BOOT_SECTOR_SIZE];

    if (!ram_block_by_gpa(LOADER_RAM_INFO_ADDR) ||
        !ram_block_by_gpa(LOADER_BOOT_SECTOR_ADDR + LOADER_BOOT_SECTOR_SIZE - 1)) {
        error_setg(errp, "no RAM at 0x%x to load the boot sector into", LOADER_RAM_INFO_ADDR);
        return false;
    }
    if (!read_sector(path, sector, errp)) {
        return false;
    }
    if (sector[510] != 0x55 || sector[511] != 0xaa) {
        warn_report("'%s' has no boot signature (0x55 0xAA at offset 510); booting it anyway", path);
    }
    if (!guest_phys_write(LOADER_BOOT_SECTOR_ADDR, sector, sizeof(sector), errp)) {
        return false;
    }
    return write_ram_info(errp);
}
