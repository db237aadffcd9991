# The ring-3 test guest (issue 6): boot, stop/cont, no-irqchip, one migration; ten live migrations in a row;
# the same image under QEMU 7.2 (boot and QEMU -> QEMU migration) for comparison.
# tests/functional/ring3-soak.py (minutes-long soak) is run by `make soak`, not by make check.
FUNC_TESTS += tests/functional/test-ring3-guest.py tests/functional/test-ring3-pingpong.py \
              tests/functional/test-ring3-qemu.py
