/*
 * Boot loader for the pc board (hw/loader.c): a BIOS-less boot disk.
 *
 * loader_load_boot_sector copies the start of a raw disk image to guest
 * physical 0x7c00 (where a BIOS would put the boot sector; the KVM
 * accelerator starts vCPU 0 at 0000:7c00): the whole image when it is at
 * most LOADER_IMAGE_MAX bytes, else its first LOADER_IMAGE_MAX bytes, so
 * the copy always ends below 0x9fc00 (the usual EBDA). The first 512 bytes
 * are the boot sector; a guest bigger than that finds the rest of itself
 * right behind it instead of reading the disk through a BIOS. It also
 * leaves the guest a hint about its RAM and what was loaded:
 *
 *   0x7bf0  u32  LOADER_RAM_MAGIC, "MIGV" in memory order (0x5647494d)
 *   0x7bf4  u32  top: end of usable RAM below 4 GiB (exclusive), 4 KiB aligned
 *   0x7bf8  u32  bytes of the image copied to 0x7c00 (>= 512)
 *   0x7bfc  u32  RAM mapped at 4 GiB (a split "pc.ram", see hw/machine.c),
 *                in MiB; 0 when all RAM is below 4 GiB
 *
 * Guests check the magic first: under a real BIOS (QEMU) nobody writes it
 * and that memory holds whatever the BIOS left there, so guest/boot-sector.S
 * falls back to a built-in default top then, and guest/ring3 reads the rest
 * of its image with int 0x13.
 */
#ifndef MIGVM_HW_LOADER_H
#define MIGVM_HW_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include "block.h"
#include "error.h"

#define LOADER_BOOT_SECTOR_ADDR 0x7c00
#define LOADER_BOOT_SECTOR_SIZE 512
#define LOADER_IMAGE_MAX (512 * 1024)    /* 0x7c00 + 512 KiB = 0x87c00 < 0x9fc00 */
#define LOADER_RAM_INFO_ADDR 0x7bf0
#define LOADER_RAM_MAGIC 0x5647494dU     /* bytes 'M' 'I' 'G' 'V' */

/* Load the first min(size, LOADER_IMAGE_MAX) bytes of drive `blk` to
 * 0x7c00 and write the RAM hint. The image must hold at least a boot sector;
 * a missing 0x55 0xAA signature only warns. [BQL, machine_init / reset] */
bool loader_load_boot_sector(BlockBackend *blk, Error **errp);

#endif
