# tests/functional/: start build/migvm ($BUILD/migvm) and talk QMP/HMP over real sockets.
# Run from the repo root by scripts/run-tests.sh with BUILD set; MIGVM_TEST_BINARY=qemu-system-x86_64
# runs the same scripts against QEMU 7.2 (migvm-only parts skip).

# Monitors and command line.
FUNC_TESTS += tests/functional/test-qmp.py \
              tests/functional/test-qmp-hostile.py \
              tests/functional/test-hmp.py \
              tests/functional/test-cmdline.py \
              tests/functional/test-socat.sh
# QEMU 7.2's own tooling (qemu.machine.QEMUMachine, qemu.qmp.QMPClient, qmp-shell; fetched at test time by
# scripts/fetch-qemu-python.sh into $(BUILD)/qemu-python) and a libvirt-style command line against migvm.
FUNC_TESTS += tests/functional/test-qemu-tools.py
# The KVM accelerator with the boot-sector guest; the pc board.
FUNC_TESTS += tests/functional/test-kvm.py tests/functional/test-kvm-machine.py
# Drives: -drive, query-block and info block against QEMU 7.2, booting from the drive.
FUNC_TESTS += tests/functional/test-block.py
# Live migration end to end between real migvm processes.
FUNC_TESTS += tests/functional/test-migration.py \
              tests/functional/test-migration-bandwidth.py tests/functional/test-ram-prefault.py \
              tests/functional/test-migration-failures.py tests/functional/test-migration-faults.py \
              tests/functional/test-migration-resume.py \
              tests/functional/test-hmp-migration.py tests/functional/test-hmp-tty.py \
              tests/functional/test-migration-history.py tests/functional/test-migration-check.py \
              tests/functional/test-dirty-rate.py
# Hostile incoming streams: huge names, sizes and counts refused, memory under docs/hostile-streams.md's bound.
FUNC_TESTS += tests/functional/test-hostile-streams.py
# Across a real link (two network namespaces, veth, tc tbf, nftables; root): slow and lossy, cut (dead-link bound).
FUNC_TESTS += tests/functional/test-network-faults.py
# TLS migration (tls-creds-x509, authz objects, object-add/-object), refusals named on both sides.
FUNC_TESTS += tests/functional/test-tls.py
# Block migration (the "block" section) between migvm processes with -M none and raw drives.
FUNC_TESTS += tests/functional/test-block-migration.py
# KVM live migration at full size, cancel and failed destination.
FUNC_TESTS += tests/functional/test-kvm-migration.py tests/functional/test-auto-converge.py \
              tests/functional/test-converge.py
# Postcopy (userfaultfd): soft guest over unix, the ring-3 KVM guest over tcp and unix, failure after the switch;
# its recovery: a cut (tcp proxy) or migrate-pause on either side, then migrate-recover and migrate resume:true.
FUNC_TESTS += tests/functional/test-postcopy.py tests/functional/test-postcopy-recovery.py
# KVM's dirty ring (-accel kvm,dirty-ring-size=N): QEMU 7.2's errors, ring against bitmap on a known dirty set,
# a live migration with the ring.
FUNC_TESTS += tests/functional/test-dirty-ring.py
# KVM guests of 4-5 GiB: "pc.ram" split around the 32-bit hole, boot, pmemsave, stream block list, live migration.
FUNC_TESTS += tests/functional/test-kvm-bigmem.py
# HMP `info registers [-a|vcpu]` against the ring3 guest: QEMU 7.2's lines, live guest undisturbed, migration.
FUNC_TESTS += tests/functional/test-hmp-registers.py
# The ring-3 test guest: boot, stop/cont, no-irqchip, one migration; ten live migrations in a row;
# the same image under QEMU 7.2 (boot and QEMU -> QEMU migration) for comparison.
# tests/functional/ring3-soak.py (minutes-long soak) is run by `make soak`, not by make check.
FUNC_TESTS += tests/functional/test-ring3-guest.py tests/functional/test-ring3-pingpong.py \
              tests/functional/test-ring3-qemu.py
# The ring3 guest's virtio-blk driver and disk workload: on QEMU 7.2's virtio-blk (-M microvm) for reference.
FUNC_TESTS += tests/functional/test-ring3-disk.py
# migvm -> migvm with the disk in the stream (capability block): the ring3 guest (KVM) and the soft
# disk-rate workload writing it, unix and tcp, images identical, guest clean; block/final-pass left out is seen.
FUNC_TESTS += tests/functional/test-disk-migration.py
# build/migvm-stream against QEMU 7.2's and migvm's streams, the corruption suites, an exec: pipe;
# make install into a temp dir and the manual page.
FUNC_TESTS += tests/functional/test-migvm-stream.py tests/functional/test-install.py
# virtio-blk on the pc board's virtio-mmio slots: -device/-drive if=virtio spellings and refusals; with KVM a
# boot-sector driver (guest/virtio-blk-check.S) writes and reads its disk, across a live migration and a reset.
FUNC_TESTS += tests/functional/test-virtio-blk.py
# Multifd between migvm processes: unix/tcp, 2-4 channels, none/zlib/zstd, memory identical; exec refused;
# mismatched settings fail on both sides with the source running (MULTIFD_FULL=1: the whole matrix).
FUNC_TESTS += tests/functional/test-multifd.py
# Named dirty bitmaps: block-dirty-bitmap-* with QEMU 7.2's texts, query-block, migvm -> migvm with
# capability dirty-bitmaps (unix, tcp), a destination that has the name or lacks a drive.
FUNC_TESTS += tests/functional/test-dirty-bitmaps.py
