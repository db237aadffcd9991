/*
 * Guest RAM: named RAM blocks and the dirty bitmaps live migration uses.
 * Implementation: system/memory.c.
 *
 * A RAM block is anonymous host memory mapped at a guest physical base. Its
 * name is what the migration stream sends ("pc.ram" on -M pc, "ram" on -M
 * none). Pages are 4 KiB.
 *
 * A block may be split into two guest-physical mappings, as QEMU's pc board
 * maps "pc.ram" around the 32-bit PCI/LAPIC/IOAPIC hole: block offsets
 * [0, low_length) at gpa, [low_length, used_length) at high_gpa. It is
 * still one block (one name, one size, one pair of bitmaps indexed by the
 * offset within the block), so migration never sees the split. Unsplit
 * blocks have low_length == used_length. Blocks are created by machine_init and freed by
 * machine_cleanup; between the two the list never changes, so any thread
 * may walk it without a lock.
 *
 * Dirty tracking has two bitmaps per block, one bit per page:
 *   log   where writers record writes as they happen: the soft accelerator's
 *         workload and the VMM itself (guest_phys_write, ram_block_set_dirty).
 *         Always recorded, whether or not dirty logging is on.
 *   bmap  the migration bitmap: what migration still has to send. Filled by
 *         memory_global_dirty_log_sync() (accelerator log + software log),
 *         emptied by ram_block_test_and_clear_dirty() one page at a time.
 * Every bit operation is atomic on unsigned long words, so the workload may
 * write while the migration thread syncs and scans without the BQL.
 *
 * The rule that keeps migration exact: test-and-clear a page's bmap bit
 * BEFORE reading the page for sending. A write that lands after the clear
 * sets the log bit again and is picked up by the next sync.
 *
 * So guest RAM contents are read while the guest writes them, by design,
 * and no lock or atomic orders the two. ThreadSanitizer does not see guest
 * stores under KVM (the CPU makes them), nor under QEMU's TCG (generated
 * code); the soft workload's store stands for a guest store and is kept out
 * of its sight the same way, with GUEST_RAM_ACCESS, as is ram.c's scan of
 * page contents (its hot loop). The bitmaps stay instrumented.
 */
#ifndef MIGVM_MEMORY_H
#define MIGVM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

/* A function that touches guest RAM contents as the guest would (see above). */
#define GUEST_RAM_ACCESS __attribute__((no_sanitize_thread))

#define MIGVM_PAGE_BITS 12
#define MIGVM_PAGE_SIZE (1ULL << MIGVM_PAGE_BITS)
#define MIGVM_BITS_PER_LONG (8 * (unsigned)sizeof(unsigned long))

typedef struct RAMBlock RAMBlock;
struct RAMBlock {
    char *name;                 /* migration idstr, e.g. "pc.ram" */
    uint8_t *host;              /* mmap'ed, used_length bytes */
    uint64_t used_length;       /* bytes, multiple of the page size */
    uint64_t gpa;               /* guest physical base of offset 0 */
    uint64_t low_length;        /* bytes mapped at gpa (== used_length unless split) */
    uint64_t high_gpa;          /* where offset low_length is mapped, if split */
    uint64_t npages;            /* used_length / page size */
    unsigned long *bmap;        /* migration bitmap (see above) */
    unsigned long *log;         /* software dirty log (see above) */
    unsigned long *rate_bmap;   /* pages harvested while a capture runs (below) */
    uint64_t bmap_count;        /* set bits in bmap (atomic) */
    /* Recovery of a broken connection (migration/recv-bitmap.c owns them,
     * NULL outside a migration): the destination's pages received, the
     * source's pages sent, and those sent again since the last checkpoint
     * the destination acknowledged (two generations). */
    unsigned long *receivedmap, *sentmap, *resentmap, *resentmap_old;
    uint64_t loaded_upto;       /* end of the highest page an incoming record wrote (atomic; ram-prefault.h) */
    uint64_t prefault_first;    /* index of its first 2 MiB piece among all blocks' (ram-prefault.h) */
    RAMBlock *next;
};

/* ---- Blocks [machine_init / machine_cleanup, BQL] ---- */

/* Add a block of `size` bytes (rounded up to a page) at guest address `gpa`.
 * Fails on a duplicate name, an overlap or when the mapping fails. */
RAMBlock *ram_block_add(const char *name, uint64_t gpa, uint64_t size, Error **errp);
/* The same, split: the first low_length bytes at gpa, the rest at high_gpa
 * (above the low part). low_length must be a multiple of
 * RAM_BLOCK_SPLIT_ALIGN, so that an accelerator's per-mapping dirty bitmap
 * merges into the block's bitmap on a word boundary; high_gpa page-aligned.
 * low_length >= size (rounded) gives an unsplit block. */
#define RAM_BLOCK_SPLIT_ALIGN (MIGVM_PAGE_SIZE * 64)
RAMBlock *ram_block_add_split(const char *name, uint64_t gpa, uint64_t size,
                              uint64_t low_length, uint64_t high_gpa, Error **errp);
/* Unmap and free every block. */
void ram_blocks_free_all(void);

/* ---- Lookup [any thread] ---- */
RAMBlock *ram_block_first(void);
#define RAMBLOCK_FOREACH(b) for (RAMBlock *b = ram_block_first(); b; b = b->next)
RAMBlock *ram_block_by_name(const char *name);
/* The block holding guest address gpa, or NULL. */
RAMBlock *ram_block_by_gpa(uint64_t gpa);
/* gpa's byte offset within b; false if b does not map gpa. */
bool ram_block_gpa_to_offset(const RAMBlock *b, uint64_t gpa, uint64_t *offset);

/* One guest-physical mapping of a block: block bytes [offset, offset+len)
 * at guest address gpa. An accelerator maps each one (KVM: one slot each). */
typedef struct RAMMapping {
    uint64_t gpa;
    uint64_t offset;
    uint64_t len;
} RAMMapping;
#define RAM_BLOCK_MAX_MAPPINGS 2
/* Fill m with b's mappings in offset order; returns how many (1 or 2). */
int ram_block_mappings(const RAMBlock *b, RAMMapping m[RAM_BLOCK_MAX_MAPPINGS]);
int ram_block_count(void);
uint64_t ram_total_size(void);          /* sum of used_length */

/* ---- Guest physical access for the VMM (pmemsave, device DMA) ----
 * The range may span adjacent mappings; any byte outside RAM (e.g. in the
 * hole of a split block) fails the whole call before anything is copied.
 * Writes mark the pages dirty. */
bool guest_phys_read(uint64_t gpa, void *buf, size_t len, Error **errp);
bool guest_phys_write(uint64_t gpa, const void *buf, size_t len, Error **errp);
/* Host pointer for [gpa, gpa+len) if it lies inside one mapping, else NULL.
 * A caller writing through it must call ram_block_set_dirty_range. */
void *guest_phys_to_host(uint64_t gpa, uint64_t len);

/* ---- Recording writes [any thread] ---- */
/* Record a write to page `page` (index in the block) in the software log. */
static inline void ram_block_set_dirty(RAMBlock *b, uint64_t page)
{
    unsigned long bit = 1UL << (page % MIGVM_BITS_PER_LONG);
    unsigned long *word = &b->log[page / MIGVM_BITS_PER_LONG];

    /* Always a release RMW, never "read first and skip": the sync's
     * exchange must synchronize with it so the data write is visible to
     * whoever reads the page after the bit is harvested. */
    __atomic_fetch_or(word, bit, __ATOMIC_SEQ_CST);
}
/* Record writes to [offset, offset+len) of the block (bytes). */
void ram_block_set_dirty_range(RAMBlock *b, uint64_t offset, uint64_t len);

/* ---- Dirty logging for migration ----
 * start/stop [BQL]: switch the accelerator's dirty logging on/off; start also
 * drops stale software log bits. Migration then marks every page dirty
 * itself (ram_block_set_all_dirty) for the first pass. Calls nest: a dirty
 * rate measurement and a migration may each start and stop logging; it is
 * on while either needs it, and only the first start drops the software log.
 * Outside a migration bmap means nothing (a measurement's syncs fill it; the
 * next migration's setup marks every page anyway).
 * sync [any thread, normally the migration thread without the BQL]: ask the
 * accelerator to merge its dirty log into each bmap, then merge the software
 * logs. Returns the number of pages that became dirty in bmap. */
bool memory_global_dirty_log_start(Error **errp);
void memory_global_dirty_log_stop(void);
bool memory_global_dirty_log_enabled(void);
uint64_t memory_global_dirty_log_sync(void);

/* Dirty page capture for measurements [one measurement at a time]: between
 * start and stop, every page any sync harvests (the migration's or the
 * measurement's own) is also recorded in rate_bmap; stop returns how many
 * distinct pages were recorded. Dirty logging must be on meanwhile. */
void ram_dirty_capture_start(void);
uint64_t ram_dirty_capture_stop(void);

/* For accelerators' dirty_log_sync: OR `npages` bits of `src` (bit i = page
 * first_page + i of the block; first_page a multiple of the word size) into
 * the block's bmap. Returns pages newly set. */
uint64_t ram_block_merge_dirty(RAMBlock *b, const unsigned long *src,
                               uint64_t first_page, uint64_t npages);

/* ---- Migration side [migration thread, no BQL needed] ---- */
/* Clear page's bmap bit; true if it was set (the page must then be sent). */
bool ram_block_test_and_clear_dirty(RAMBlock *b, uint64_t page);
/* Clear the bits of `mask` in bmap word `w` at once; returns those that
 * were set (those pages must then be sent). */
unsigned long ram_block_test_and_clear_dirty_word(RAMBlock *b, uint64_t w, unsigned long mask);
bool ram_block_test_dirty(RAMBlock *b, uint64_t page);
/* First page >= start with its bmap bit set, or b->npages if none. */
uint64_t ram_block_find_next_dirty(RAMBlock *b, uint64_t start);
void ram_block_set_all_dirty(RAMBlock *b);
void ram_block_clear_all_dirty(RAMBlock *b);
/* Set bits in bmap: of one block, and of all blocks. */
uint64_t ram_block_dirty_pages(RAMBlock *b);
uint64_t ram_dirty_pages(void);

#endif
