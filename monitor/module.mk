# monitor/: QMP and HMP servers.
include monitor/qmp.mk
include monitor/hmp.mk
