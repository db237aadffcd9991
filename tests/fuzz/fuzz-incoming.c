/*
 * libFuzzer target: arbitrary bytes as the whole incoming migration stream
 * of a real machine. Built once per process as `migvm -M pc -m 8M -accel
 * soft -drive file=MEMFD,if=virtio,format=raw` (a 2 MiB in-memory drive,
 * virtio0) builds it: the real board, its devices' sections ("timer",
 * "soft-cpu", serial, "virtio-blk"...), the real RAM block pc.ram and
 * the real "ram", "block", "dirty-bitmap" and globalstate handlers. The
 * vCPU thread exists but never runs (the run state stays inmigrate).
 *
 * Each input is loaded as the incoming thread loads a channel (fuzz-load.c).
 * The loader must return true or false with an error and never crash,
 * overflow, leak or allocate past its bounds (docs/hostile-streams.md).
 * fuzz-incoming-kvm loads the same way into the machine -accel kvm builds.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome.
 *   make fuzz-incoming && build/fuzz/fuzz-incoming -dict=tests/fuzz/fuzz-incoming.dict \
 *       -max_len=65536 tests/fuzz/corpus/fuzz-incoming
 */
#include <stdint.h>
#include <stddef.h>

#include "fuzz-load.h"
#include "fuzz-machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_machine_init("soft");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load_stream("fuzz-incoming", data, size);
    return 0;
}
