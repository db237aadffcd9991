# QMP server, dispatcher, control commands (monitor.c, qmp.c, qapi/dispatch.c, ...)
