# tests/interop: migvm against the real QEMU 7.2 (qemu-system-x86_64, installed by
# scripts/install-deps.sh). Each test prints `SKIP: <reason>` when QEMU is missing.
FUNC_TESTS += tests/interop/test-interop-migration.py \
              tests/interop/test-conformance-qmp.py \
              tests/interop/test-conformance-hmp.py
