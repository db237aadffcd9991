/*
 * The source's return-path reader thread, used when postcopy-ram is on:
 * page requests must be taken while the migration thread sends
 * (shared docs: postcopy.md section 4).
 */
#ifndef MIGVM_MIGRATION_RP_READER_H
#define MIGVM_MIGRATION_RP_READER_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "stream.h"

typedef struct RpReader RpReader;

/* Read rp on a new thread: REQ_PAGES(_ID) go to the postcopy queue, PONGs
 * and the final SHUT are kept; wake() is called on a request and when the
 * thread ends. */
RpReader *rp_reader_start(MigStream *rp, void (*wake)(void));
/* The thread ended (SHUT, error or end of stream). Any thread. */
bool rp_reader_done(RpReader *r);
/* Join; true if the destination said SHUT(0). started_us: a migvm
 * destination's start report or -1; shut_ns: when SHUT arrived. */
bool rp_reader_finish(RpReader *r, int64_t *started_us, int64_t *shut_ns, Error **errp);
/* The error that ended the thread early, if any (copy into errp). */
bool rp_reader_failed(RpReader *r, Error **errp);

#endif
