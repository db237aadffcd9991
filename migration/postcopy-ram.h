/*
 * Postcopy RAM (shared docs: postcopy.md). Destination: guest RAM behind
 * userfaultfd, a fault thread that asks the source for missing pages, pages
 * placed atomically. Source: the page-request queue the return-path reader
 * fills and RAM's postcopy sender drains first, and the discard commands.
 */
#ifndef MIGVM_MIGRATION_POSTCOPY_RAM_H
#define MIGVM_MIGRATION_POSTCOPY_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "memory.h"
#include "stream.h"

/* ---- host support (any side) ---- */

/* userfaultfd with MISSING registration, COPY and ZEROPAGE on anonymous RAM. */
bool postcopy_ram_supported(Error **errp);

/* ---- destination ---- */

/* The incoming postcopy states (QEMU 7.2's numbers, used in its messages). */
typedef enum {
    POSTCOPY_INCOMING_NONE = 0,
    POSTCOPY_INCOMING_ADVISE,
    POSTCOPY_INCOMING_DISCARD,
    POSTCOPY_INCOMING_LISTENING,
    POSTCOPY_INCOMING_RUNNING,
    POSTCOPY_INCOMING_END,
} PostcopyIncomingState;

PostcopyIncomingState postcopy_incoming_state(void);
/* 16-byte ADVISE: checks page sizes, drops all RAM (so whatever was never
 * sent faults later), allocates the received map. [incoming thread] */
bool postcopy_incoming_advise(uint64_t page_summary, uint64_t target_page, Error **errp);
/* One POSTCOPY_RAM_DISCARD range (bytes in the block). [incoming thread] */
bool postcopy_incoming_discard(const char *block, uint64_t start, uint64_t len, Error **errp);
/* LISTEN: register every block with userfaultfd and start the fault thread,
 * which requests pages on rp (mig_rp_send is thread-safe). [incoming thread] */
bool postcopy_incoming_listen(MigStream *rp, Error **errp);
void postcopy_incoming_set_running(void);
/* RAM's loader after LISTEN: place one page (data NULL: zero page)
 * atomically and wake whoever waits for it. */
bool postcopy_place_page(RAMBlock *b, uint64_t offset, const void *data, Error **errp);
/* RAM's loader before LISTEN (after ADVISE): the page is here. */
void postcopy_mark_received(RAMBlock *b, uint64_t offset);
/* Recovery (postcopy.md 6.3), for the recovery handshake: pause when the
 * channel broke (faults keep being recorded, requests wait); resume on the
 * new channel's return path, asking again for every page requested and not
 * received yet (false if that write failed); the received map of a block
 * (bit i = target page i, 1 = here), copied into out (npages bits, unsigned
 * longs), to answer RECV_BITMAP. Any thread. */
void postcopy_incoming_pause(void);
bool postcopy_incoming_resume(MigStream *rp);
uint64_t postcopy_received_map(const RAMBlock *b, unsigned long *out);
/* Stop the fault thread, unregister, free. keep_registered: the guest ran
 * and pages are missing: leave RAM registered so nothing reads the holes.
 * [incoming thread] */
void postcopy_incoming_cleanup(bool keep_registered);
/* Blocktime statistics (capability postcopy-blocktime) in ms, per vCPU;
 * false when none were measured. [main] */
bool postcopy_blocktime_get(uint32_t *total_ms, uint32_t **per_vcpu_ms, int *nvcpus);

/* ---- source ---- */

/* A page request from the return path (block NULL: same as the last one).
 * false with errp on a bad request. [return-path reader] */
bool postcopy_request_push(const char *block, uint64_t start, uint32_t len, Error **errp);
/* The oldest queued request, false if none. [migration thread] */
bool postcopy_request_pop(RAMBlock **b, uint64_t *start, uint64_t *len);
bool postcopy_request_pending(void);
void postcopy_requests_reset(void);
/* A recovered channel: its first request names its block again (queued
 * requests stay; a page already sent is skipped). No reader runs. */
void postcopy_requests_new_channel(void);
uint64_t postcopy_requests_count(void);
/* Wake the migration thread when a request arrives (set by migration.c). */
void postcopy_request_set_notify(void (*fn)(void));

#endif
