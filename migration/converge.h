/*
 * migvm's convergence controller (converge.c): watches each pass of an
 * outgoing migration, says at once when passes stop shrinking what remains,
 * throttles the vCPUs from then on within the user's limits, and decides
 * when to switch over: at the predicted minimum, the downtime limit being a
 * ceiling. Parameter x-convergence-controller off: QEMU 7.2's behaviour.
 *
 * Every function but converge_query runs on the migration thread.
 */
#ifndef MIGRATION_CONVERGE_H
#define MIGRATION_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>
#include "qapi-types.h"

/* Counters of one instant, as the migration thread reads them. */
typedef struct ConvergeSample {
    int64_t ns;
    uint64_t stream_bytes;      /* written so far */
    uint64_t pages_sent;        /* normal + zero pages so far */
} ConvergeSample;

/* A migration's iterations begin. */
void converge_start(const ConvergeSample *now);
/* A bitmap sync started pass `pass`: `dirtied` pages were found dirty
 * (written during the pass that ended), `remaining` bytes are left. */
void converge_pass(uint64_t pass, uint64_t dirtied, uint64_t remaining, const ConvergeSample *now);
/* Between rounds of sending: takes the throttle's next step when due. */
void converge_tick(int64_t now_ns);
/* After a sync, what remains (`pending` bytes, > 0) fits the downtime limit
 * at `bytes_per_ms`: true to take one more pass instead of switching over
 * now. Records and announces the decision either way. */
bool converge_continue(uint64_t pending, double bytes_per_ms);
/* A sync left nothing to send: the switch-over starts (announced when the
 * controller made other decisions in this migration). */
void converge_nothing_left(void);
/* The iterations ended (switch-over, failure or cancel). */
void converge_stop(void);

/* query-migrate's x-convergence while a migration runs with the controller
 * on, else NULL. [any thread] */
XMigrationConvergence *converge_query(void);

#endif
