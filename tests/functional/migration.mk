# Live migration end to end between real migvm processes (the migration room's tests).
FUNC_TESTS += tests/functional/test-migration.py \
              tests/functional/test-migration-bandwidth.py \
              tests/functional/test-migration-failures.py \
              tests/functional/test-hmp-migration.py
