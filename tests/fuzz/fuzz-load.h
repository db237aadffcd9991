/* One input loaded as the whole incoming stream of the fuzz machine
 * (fuzz-load.c), for the targets that feed it streams. */
#ifndef FUZZ_LOAD_H
#define FUZZ_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Load `data` as the incoming thread loads a channel; traps if the result
 * and the error disagree. `target` names the FUZZ_VERBOSE=1 lines. */
bool fuzz_load_stream(const char *target, const uint8_t *data, size_t size);

#endif
