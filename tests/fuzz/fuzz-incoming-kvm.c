/*
 * libFuzzer target: arbitrary bytes as the whole incoming migration stream
 * of a real KVM machine: what `migvm -M pc -m 8M -accel kvm -drive
 * file=MEMFD,if=virtio,format=raw` builds (fuzz-machine.c), one vCPU, whose
 * thread never enters KVM_RUN (the run state stays inmigrate). Besides
 * fuzz-incoming's sections this machine has the ones only -accel kvm
 * registers: "kvm-cpu-model" (early), "kvm-pit", "kvm-clock", "kvm-irqchip"
 * 0-2 (the two PICs and the IOAPIC) and "cpu" with its cpu/... subsections
 * (accel-kvm/kvm-cpu-state.c). Each input is loaded as fuzz-incoming loads
 * it (fuzz-load.c).
 *
 * The machine is built on an in-process stand-in for /dev/kvm
 * (fuzz-kvm-standin.c), so every host, CI's fuzz-smoke included, fuzzes the
 * same machine whether it has KVM or not; FUZZ_KVM_REAL=1 builds it on the
 * real /dev/kvm instead. Either way every KVM ioctl a load issues (KVM_SET_REGS/SREGS/MSRS/XSAVE/LAPIC/..., PIT2,
 * IRQCHIP, CLOCK, TSC_KHZ) is answered by fuzz-kvm-ioctl.c, which checks
 * its argument's size and shape as KVM would and never passes it on. The
 * loader is fuzzed; the kernel's own checks of the values are not. The
 * input's last byte may make one of those answers a failure.
 *
 * With FUZZ_KVM_REAL=1 and no usable /dev/kvm the target prints
 * "fuzz-incoming-kvm: SKIP: REASON" and exits with status 69 (smoke.sh
 * counts it as skipped).
 *
 * FUZZ_VERBOSE=1 prints each input's outcome and the ioctls it issued.
 *   make fuzz-incoming-kvm && build/fuzz/fuzz-incoming-kvm -dict=tests/fuzz/fuzz-incoming-kvm.dict \
 *       tests/fuzz/corpus/fuzz-incoming-kvm
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz-kvm.h"
#include "fuzz-load.h"
#include "fuzz-machine.h"

/* sysexits.h's EX_UNAVAILABLE: none of libFuzzer's own exit codes (77 for a bug,
 * 70 for a timeout) nor the sanitizers' (1). */
#define FUZZ_EXIT_SKIP 69

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static bool verbose(void)
{
    const char *v = getenv("FUZZ_VERBOSE");
    return v && *v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *real = getenv("FUZZ_KVM_REAL");
    bool standin = !(real && *real && *real != '0');
    Error *err = NULL;

    (void)argc;
    (void)argv;
    if (standin) {
        fuzz_kvm_standin_enable();
    }
    if (!fuzz_machine_try_init("kvm", &err)) {
        /* Not a failure of the target: this host cannot build the machine.
         * _exit: the half-built machine is no leak to report. */
        fprintf(stderr, "fuzz-incoming-kvm: SKIP: %s\n", error_get_pretty(err));
        fflush(stderr);
        _exit(FUZZ_EXIT_SKIP);
    }
    fuzz_kvm_boundary_arm();
    if (verbose()) {
        fprintf(stderr, "fuzz-incoming-kvm: machine built on %s\n",
                standin ? "the /dev/kvm stand-in" : "/dev/kvm");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_kvm_boundary_input(data, size);
    fuzz_load_stream("fuzz-incoming-kvm", data, size);
    if (verbose()) {
        fprintf(stderr, "fuzz-incoming-kvm: KVM answered: %s\n", *fuzz_kvm_boundary_log() ?
                fuzz_kvm_boundary_log() : "(nothing)");
    }
    return 0;
}
