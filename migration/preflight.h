/*
 * The pre-flight check (preflight.c): QMP x-migrate-check on the source,
 * and on the destination the classification of each incoming connection.
 */
#ifndef MIGVM_MIGRATION_PREFLIGHT_H
#define MIGVM_MIGRATION_PREFLIGHT_H

#include "channel.h"

typedef void MigPreflightLoadFn(MigChannel *ch);

/* An incoming connection: once its first bytes arrived, either serve a
 * pre-flight check (then call done() on the main loop: listen again) or
 * hand the channel to load() (a migration). Non-sockets go to load() at
 * once. [main loop] */
void mig_preflight_classify(MigChannel *ch, MigPreflightLoadFn *load, void (*done)(void));

#endif
