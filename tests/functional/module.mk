# functional tests: start build/migvm ($BUILD/migvm) and talk QMP/HMP over real sockets.
# Run from the repo root by scripts/run-tests.sh with BUILD set; MIGVM_TEST_BINARY=qemu-system-x86_64
# runs the same scripts against QEMU 7.2 (migvm-only parts skip).
FUNC_TESTS += tests/functional/test-qmp.py \
              tests/functional/test-qmp-hostile.py \
              tests/functional/test-hmp.py \
              tests/functional/test-cmdline.py \
              tests/functional/test-socat.sh
