/*
 * vCPU dirty page rate limits (system/dirtylimit.c): the QMP commands
 * set/cancel/query-vcpu-dirty-limit are declared by the generated
 * qapi-commands.h; this is what the rest of migvm calls.
 */
#ifndef MIGVM_DIRTYLIMIT_H
#define MIGVM_DIRTYLIMIT_H

#include <stdbool.h>

/* Some vCPU has a limit (HMP `info vcpu_dirty_limit`). [BQL] */
bool dirty_limit_in_service(void);
/* Drop every limit and wait for the thread (quit, before the vCPUs and
 * RAM blocks go). [BQL] */
void dirty_limit_shutdown(void);

#endif
