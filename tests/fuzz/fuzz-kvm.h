/* fuzz-incoming-kvm's boundary with the kernel (fuzz-kvm-ioctl.c) and its
 * stand-in for /dev/kvm (fuzz-kvm-standin.c). The binary is linked with
 * -Wl,--wrap=ioctl,--wrap=open, so every ioctl(2) and open(2) of migvm's
 * objects goes through them. */
#ifndef FUZZ_KVM_H
#define FUZZ_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* From now on no KVM ioctl but KVM_CHECK_EXTENSION and KVM_GET_TSC_KHZ
 * reaches the kernel: the machine is built. */
void fuzz_kvm_boundary_arm(void);
/* Before each load: the input's last byte may make one answer a failure. */
void fuzz_kvm_boundary_input(const uint8_t *data, size_t size);
/* The ioctls answered since fuzz_kvm_boundary_input, e.g. "SET_PIT2
 * SET_CLOCK SET_MSRS(!E)", for FUZZ_VERBOSE. */
const char *fuzz_kvm_boundary_log(void);

/* Answer /dev/kvm's ioctls in the process (no kernel KVM involved), so the
 * target also runs where /dev/kvm is missing. Before the machine is built. */
void fuzz_kvm_standin_enable(void);
bool fuzz_kvm_standin_owns(int fd);
/* As ioctl(2): the result, or -1 with errno. */
int fuzz_kvm_standin_ioctl(int fd, unsigned long req, void *arg);

#endif
