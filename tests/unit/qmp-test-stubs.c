/*
 * Stand-ins for the code outside monitor/, qapi/ and util/ that the QMP unit
 * tests would otherwise link (tests only). Handlers of commands not implemented under monitor/ come
 * from the generated weak stubs (build/tests/unit/qmp-handler-stubs.c).
 */
#include <glib.h>
#include "cpus.h"
#include "monitor.h"
#include "vm.h"

bool main_loop_exit_requested(void)
{
    return false;
}

int cpus_count(void)
{
    return 2;
}

char *hmp_run_capture(const char *cmdline, int cpu_index)
{
    (void)cpu_index;
    return g_strdup_printf("hmp: %s\r\n", cmdline);
}
