/*
 * Resuming a migration on a new connection: QEMU 7.2's received-bitmap
 * exchange (RECV_BITMAP / POSTCOPY_RESUME / RESUME_ACK; protocol at the top
 * of recovery.c). Used by postcopy recovery and by migvm's resumable precopy
 * (capability x-resumable-precopy).
 */
#ifndef MIGRATION_RECOVERY_H
#define MIGRATION_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "stream.h"

/* Source, on the new channel f (writer) with its return path rp: send
 * RECV_BITMAP for every RAM block, merge each answer into the block's
 * migration bitmap (pages not received become dirty; with precopy, pages
 * sent more than once too: recv-bitmap.h), then POSTCOPY_RESUME, and wait
 * for RESUME_ACK. *marked: pages that became dirty. The caller then lets
 * its live handlers restart (savevm_state_resume_prepare). [migration thread] */
bool recovery_source_handshake(MigStream *f, MigStream *rp, bool precopy, uint64_t *marked,
                               Error **errp);

/* Destination: RECV_BITMAP (answered on rp with the block's received map)
 * and POSTCOPY_RESUME (answered with RESUME_ACK 1); the loader calls it
 * with the command's length, its payload unread on f. recovering: the
 * incoming side accepted a recovery connection (QEMU 7.2's postcopy-recover
 * state); outside it, RECV_BITMAP fails and RESUME is ignored, as QEMU 7.2.
 * *resumed: set when RESUME was acknowledged. [incoming thread] */
typedef struct RAMBlock RAMBlock;
/* The received map of b to answer with (postcopy: postcopy_received_map);
 * NULL: b->receivedmap, what precopy loads fill (recv-bitmap.h). Fills
 * recv_bitmap_wire_size(b) / 8 words. */
typedef uint64_t RecoveryReceivedMapFn(const RAMBlock *b, unsigned long *out);
bool recovery_load_command(uint16_t cmd, uint16_t len, MigStream *f, MigStream *rp,
                           bool recovering, RecoveryReceivedMapFn *received_map, bool *resumed,
                           Error **errp);

#endif
