/*
 * Boot disk loader (see loader.h for the memory it fills).
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include "block.h"
#include "vm.h"
#include "loader.h"
#include "memory.h"

#define TOP_LIMIT 0xfffff000ULL         /* the guest addresses RAM with 32 bits */

/* Read up to `max` bytes of the drive into buf; *len gets how many (it may be smaller). */
static bool read_image(BlockBackend *blk, uint8_t *buf, size_t max, size_t *len, Error **errp)
{
    int64_t size = blk_getlength(blk);
    size_t want = size < (int64_t)max ? (size_t)size : max;
    int ret;

    if (want < LOADER_BOOT_SECTOR_SIZE) {
        error_setg(errp, "'%s' is %zu bytes, shorter than a %d-byte boot sector", blk_filename(blk), want,
                   LOADER_BOOT_SECTOR_SIZE);
        return false;
    }
    ret = blk_pread(blk, 0, buf, want);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "'%s': read error", blk_filename(blk));
        return false;
    }
    *len = want;
    return true;
}

static bool write_ram_info(size_t loaded, Error **errp)
{
    RAMBlock *b = ram_block_by_gpa(LOADER_BOOT_SECTOR_ADDR);
    /* The mapping at address 0 only: a split block's high part lies above
     * 4 GiB, out of reach of the 32-bit field; it gets its own word. */
    uint64_t top = b->gpa + b->low_length;
    uint64_t high = b->used_length - b->low_length;
    uint32_t info[4];

    if (top > TOP_LIMIT) {
        top = TOP_LIMIT;
    }
    info[0] = LOADER_RAM_MAGIC;
    info[1] = (uint32_t)(top & ~0xfffULL);
    info[2] = (uint32_t)loaded;
    info[3] = (uint32_t)(high >> 20);
    /* x86 guest: little-endian words. */
    uint8_t bytes[sizeof(info)];
    for (size_t i = 0; i < sizeof(bytes); i++) {
        bytes[i] = info[i / 4] >> (8 * (i % 4));
    }
    return guest_phys_write(LOADER_RAM_INFO_ADDR, bytes, sizeof(bytes), errp);
}

bool loader_load_boot_sector(BlockBackend *blk, Error **errp)
{
    assert(bql_locked());
    g_autofree uint8_t *image = NULL;
    size_t len = 0;

    if (!ram_block_by_gpa(LOADER_RAM_INFO_ADDR) ||
        !ram_block_by_gpa(LOADER_BOOT_SECTOR_ADDR + LOADER_BOOT_SECTOR_SIZE - 1)) {
        error_setg(errp, "no RAM at 0x%x to load the boot sector into", LOADER_RAM_INFO_ADDR);
        return false;
    }
    image = g_malloc(LOADER_IMAGE_MAX);
    if (!read_image(blk, image, LOADER_IMAGE_MAX, &len, errp)) {
        return false;
    }
    if (image[510] != 0x55 || image[511] != 0xaa) {
        warn_report("'%s' has no boot signature (0x55 0xAA at offset 510); booting it anyway", blk_filename(blk));
    }
    /* Beyond the boot sector, copy only what fits in RAM (a tiny -m). */
    if (len > LOADER_BOOT_SECTOR_SIZE && !ram_block_by_gpa(LOADER_BOOT_SECTOR_ADDR + len - 1)) {
        len = LOADER_BOOT_SECTOR_SIZE;
    }
    if (!guest_phys_write(LOADER_BOOT_SECTOR_ADDR, image, len, errp)) {
        return false;
    }
    return write_ram_info(len, errp);
}
