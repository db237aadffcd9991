# tests/interop: migvm against the real QEMU 7.2 (qemu-system-x86_64, installed by
# scripts/install-deps.sh). Each test prints `SKIP: <reason>` when QEMU is missing.
FUNC_TESTS += tests/interop/test-interop-migration.py \
              tests/interop/test-conformance-qmp.py \
              tests/interop/test-conformance-hmp.py
# Dirty bitmaps QEMU 7.2 <-> migvm (exec and tcp, -M none), and the same section bytes as QEMU's.
FUNC_TESTS += tests/interop/test-interop-dirty-bitmaps.py
# Block migration: QEMU 7.2 -> migvm (exec, file, live tcp), both writers' block records compared, corruptions.
FUNC_TESTS += tests/interop/test-interop-block.py
# Multifd QEMU 7.2 <-> migvm both ways (tcp/unix, 2/4 channels, none/zlib/zstd), memory verified; mismatches.
FUNC_TESTS += tests/interop/test-interop-multifd.py
# The whole multifd matrix (every transport x channels x compression, both test scripts): not part of check.
.PHONY: check-multifd-full
check-multifd-full: all
	$(Q)MULTIFD_FULL=1 BUILD=$(BUILD) scripts/run-tests.sh -- tests/functional/test-multifd.py \
		tests/interop/test-interop-multifd.py
# Postcopy QEMU 7.2 -> migvm -> QEMU 7.2 over tcp (-M none): page requests from the destination's monitor, RAM compared.
FUNC_TESTS += tests/interop/test-interop-postcopy.py
# Postcopy recovery QEMU 7.2 -> migvm -> QEMU 7.2: migrate-pause on either side, migrate-recover, resume, RAM compared.
FUNC_TESTS += tests/interop/test-interop-postcopy-recovery.py
# TLS QEMU 7.2 <-> migvm both ways (tcp with tls-authz, unix + multifd with tls-hostname), memory verified;
# the missing host name refused by both alike.
FUNC_TESTS += tests/interop/test-interop-tls.py
