# KVM accelerator live migration at full size, cancel and failed destination (issue 4).
FUNC_TESTS += tests/functional/test-kvm-migration.py
# KVM guests of 4-5 GiB: "pc.ram" split around the 32-bit hole, boot, pmemsave, stream block list, live migration.
FUNC_TESTS += tests/functional/test-kvm-bigmem.py
# HMP `info registers [-a|vcpu]` against the ring3 guest: QEMU 7.2's lines, live guest undisturbed, migration.
FUNC_TESTS += tests/functional/test-hmp-registers.py
