# tests/interop: migvm against the real QEMU 7.2 (qemu-system-x86_64, installed by
# scripts/install-deps.sh). Each test prints `SKIP: <reason>` when QEMU is missing.
FUNC_TESTS += tests/interop/test-interop-migration.py \
              tests/interop/test-conformance-qmp.py \
              tests/interop/test-conformance-hmp.py
# Dirty bitmaps QEMU 7.2 <-> migvm (exec and tcp, -M none), and the same section bytes as QEMU's.
FUNC_TESTS += tests/interop/test-interop-dirty-bitmaps.py
# Block migration: QEMU 7.2 -> migvm (exec, file, live tcp), both writers' block records compared, corruptions.
FUNC_TESTS += tests/interop/test-interop-block.py
