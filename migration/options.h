/*
 * Migration capabilities and parameters (migrate-set-capabilities,
 * migrate-set-parameters and their query-* twins), with QEMU 7.2's
 * defaults, ranges and error texts. Getters are safe from any thread:
 * bandwidth and downtime changes reach a running migration.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "qapi-types.h"

bool migrate_cap(MigrationCapability cap);
uint64_t migrate_max_bandwidth(void);      /* bytes/s; 0 = unlimited */
uint64_t migrate_max_postcopy_bandwidth(void);  /* bytes/s in postcopy; 0 = unlimited */
uint64_t migrate_downtime_limit_ms(void);
/* x-dead-link-timeout: how long a tcp peer may stay silent (ms, 0: forever). */
uint32_t migrate_dead_link_timeout_ms(void);
/* x-convergence-controller: migvm's convergence controller (converge.c) is on. */
bool migrate_convergence_controller(void);
/* tls-creds, tls-hostname, tls-authz: new strings ("" when unset). */
char *migrate_tls_creds(void);
char *migrate_tls_hostname(void);
char *migrate_tls_authz(void);
/* x-prefault-ram: a destination faults its RAM in ahead of the stream (include/ram-prefault.h). */
bool migrate_prefault_ram(void);
/* auto-converge's parameters, read together. */
typedef struct MigThrottleParams {
    unsigned trigger_threshold, initial, increment, max;
    bool tailslow;
} MigThrottleParams;
void migrate_throttle_params(MigThrottleParams *out);
/* multifd's parameters, read together. */
typedef struct MigrateMultifdParams {
    unsigned channels;
    MultiFDCompression compression;
    int zlib_level, zstd_level;
    bool zero_copy;             /* capability zero-copy-send */
} MigrateMultifdParams;
void migrate_multifd_params(MigrateMultifdParams *out);
/* QMP migrate's blk / inc (HMP -b / -i): capability block (and, for inc,
 * parameter block-incremental) on for this migration only; refused with
 * QEMU 7.2's error when either is already set. No-op when both are false. */
bool migrate_block_options_begin(bool blk, bool inc, Error **errp);
/* The migration ended: switch off what migrate_block_options_begin set. */
void migrate_block_options_end(void);
/* Reset to defaults (tests). */
void migrate_options_reset(void);

#endif
