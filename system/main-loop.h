/*
 * The main loop: glib's default GMainContext, run by the main thread with
 * the BQL held except while it polls (system/main-loop.c).
 * main_loop_schedule() and main_loop_exit_requested() are declared in include/vm.h.
 */
#ifndef MIGVM_SYSTEM_MAIN_LOOP_H
#define MIGVM_SYSTEM_MAIN_LOOP_H

#include <stdbool.h>

/* Attach the scheduled-work source and the BQL-dropping poll function.
 * [main thread, before the loop runs] */
void main_loop_init(void);
/* SIGTERM, SIGINT, SIGHUP ask for a shutdown (reason host-signal);
 * SIGPIPE is ignored. */
void main_loop_add_signal_handlers(void);
/* Iterate until main_loop_request_exit(). [main thread, BQL] */
void main_loop_run(void);
/* Make main_loop_run() return once pending I/O (a command's response) has
 * been handled. Safe from any thread. */
void main_loop_request_exit(void);
/* Run everything main_loop_schedule() queued so far. [main thread, BQL] */
void main_loop_run_scheduled(void);
/* Detach sources and signal handlers; queued work is dropped; the loop is
 * back to its initial state (exit no longer requested). */
void main_loop_cleanup(void);

#endif
