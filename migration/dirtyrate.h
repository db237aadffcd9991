/*
 * Dirty rate measurement (migration/dirtyrate.c): calc-dirty-rate's
 * page sampling, usable on its own by whoever wants a cheap estimate of how
 * fast the guest rewrites its memory without dirty logging.
 */
#ifndef MIGVM_DIRTYRATE_H
#define MIGVM_DIRTYRATE_H

#include <stdint.h>

/* A set of pages chosen at random (per_gib per GiB of each RAM block, at
 * least one per block) with a hash of each page's contents. [any thread;
 * RAM blocks must outlive it] */
typedef struct PageSample PageSample;

PageSample *page_sample_new(uint64_t per_gib, uint32_t seed);
/* Hash the pages again: how many changed since the last look (which the
 * new hashes replace), and how many pages are sampled. */
uint64_t page_sample_changed(PageSample *s, uint64_t *sampled);
/* Bytes of RAM the sample stands for (the sampled blocks' sizes). */
uint64_t page_sample_ram_bytes(const PageSample *s);
void page_sample_free(PageSample *s);

/* MiB/s from `pages` dirtied pages of 4 KiB in `ms` milliseconds. */
int64_t dirty_rate_mib_per_s(double pages, int64_t ms);

#endif
