/*
 * Accelerator registry: accelerators register themselves before main()
 * (ACCEL_REGISTER), machine_init selects one by name.
 */
#include <string.h>
#include "accel.h"
#include "vm.h"

#define MAX_ACCELS 4

static const AccelOps *registered[MAX_ACCELS];
static int n_registered;
static const AccelOps *current;

void accel_register(const AccelOps *ops)
{
    if (n_registered < MAX_ACCELS && !accel_find(ops->name)) {
        registered[n_registered++] = ops;
    }
}

const AccelOps *accel_find(const char *name)
{
    for (int i = 0; name && i < n_registered; i++) {
        if (!strcmp(registered[i]->name, name)) {
            return registered[i];
        }
    }
    return NULL;
}

bool accel_select(const char *name, Error **errp)
{
    assert(bql_locked());
    const AccelOps *ops = accel_find(name ? name : "soft");

    if (!ops) {
        if (name && !strcmp(name, "kvm")) {
            error_setg(errp, "KVM accelerator is not available in this build");
        } else {
            error_setg(errp, "invalid accelerator %s", name);
        }
        return false;
    }
    current = ops;
    return true;
}

const AccelOps *accel_current(void)
{
    return current;
}

void accel_deselect(void)
{
    current = NULL;
}

bool accel_synchronize_state(Error **errp)
{
    assert(bql_locked());
    if (!current || !current->synchronize_state) {
        return true;
    }
    return current->synchronize_state(errp);
}

bool accel_dump_registers(int cpu, GString *out, Error **errp)
{
    assert(bql_locked());
    if (!current || !current->dump_registers) {
        error_setg(errp, "No CPU state to show: the %s accelerator has no CPU registers",
                   current ? current->name : "(none)");
        return false;
    }
    return current->dump_registers(cpu, out, errp);
}

void accel_vm_state_change(bool running)
{
    assert(bql_locked());
    if (current && current->vm_state_change) {
        current->vm_state_change(running);
    }
}

bool accel_dirty_ring_enabled(void)
{
    return current && current->dirty_ring_enabled && current->dirty_ring_enabled();
}

bool accel_vcpu_dirty_counts(uint64_t *pages, int n)
{
    return current && current->vcpu_dirty_counts && current->vcpu_dirty_counts(pages, n);
}
