# The ring-3 test guest (issue 6): boot, stop/cont, no-irqchip, one migration; ten live migrations in a row.
# tests/functional/ring3-soak.py (minutes-long soak) is run by hand, not by make check.
FUNC_TESTS += tests/functional/test-ring3-guest.py tests/functional/test-ring3-pingpong.py
