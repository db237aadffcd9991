# KVM accelerator live migration at full size, cancel and failed destination (issue 4).
FUNC_TESTS += tests/functional/test-kvm-migration.py
