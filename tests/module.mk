# tests/: functional tests and fuzz targets (unit tests live with the module.mk of what they test).
include tests/functional/module.mk
