/*
 * auto-converge: when RAM is dirtied faster than it is sent, throttle the
 * vCPUs (cpu-throttle.h) step by step. The migration thread calls
 * auto_converge_period() at the end of each dirty-rate period (>= 1 s,
 * at a bitmap sync after the first); the state is that thread's only.
 */
#ifndef MIGRATION_AUTO_CONVERGE_H
#define MIGRATION_AUTO_CONVERGE_H

#include <stdint.h>

typedef struct AutoConverge {
    uint64_t sent_prev;          /* RAM bytes sent at the previous period's end */
    unsigned high_periods;       /* periods with too much dirtied, since the last step */
} AutoConverge;

/* A new migration: nothing measured yet (does not touch the throttle). */
void auto_converge_reset(AutoConverge *ac);
/* A period ended: `sent` is the running total of RAM bytes sent, `dirtied`
 * the bytes dirtied during the period. Steps the throttle when due and the
 * capability is on. */
void auto_converge_period(AutoConverge *ac, uint64_t sent, uint64_t dirtied);

#endif
