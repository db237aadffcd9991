/*
 * Boot loader for the pc board (hw/loader.c): a BIOS-less boot sector.
 *
 * loader_load_boot_sector copies the first 512 bytes of a raw disk image to
 * guest physical 0x7c00 (where a BIOS would put it; the KVM accelerator
 * starts vCPU 0 at 0000:7c00) and leaves the guest a hint about its RAM:
 *
 *   0x7bf0  u32  LOADER_RAM_MAGIC, "MIGV" in memory order (0x5647494d)
 *   0x7bf4  u32  top: end of usable RAM below 4 GiB (exclusive), 4 KiB aligned
 *
 * Guests check the magic first: under a real BIOS (QEMU) nobody writes it
 * and that memory holds whatever the BIOS left there, so guest/boot-sector.S
 * falls back to a built-in default top then.
 */
#ifndef MIGVM_HW_LOADER_H
#define MIGVM_HW_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"

#define LOADER_BOOT_SECTOR_ADDR 0x7c00
#define LOADER_BOOT_SECTOR_SIZE 512
#define LOADER_RAM_INFO_ADDR 0x7bf0
#define LOADER_RAM_MAGIC 0x5647494dU     /* bytes 'M' 'I' 'G' 'V' */

/* Load the boot sector of raw image `path` and write the RAM hint.
 * A missing 0x55 0xAA signature only warns. [BQL, machine_init / reset] */
bool loader_load_boot_sector(const char *path, Error **errp);

#endif
