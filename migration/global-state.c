/*
 * "globalstate" (shared docs: migration-stream.md section 6.4), version 1:
 *     be32 size          strlen(runstate) + 1
 *     100 bytes          run-state name ("running", "paused", ...), NUL padded
 * Saved at completion from the run state the source had before it stopped
 * the guest; validated on load (terminated, a known RunState name).
 */
#include "global-state.h"
#include "vm.h"
#include "savevm.h"

#include <string.h>
#include <glib.h>

#define RUNSTATE_LEN 100

typedef struct GlobalState {
    uint32_t size;
    uint8_t runstate[RUNSTATE_LEN];
    bool stored;            /* source: runstate[] holds a snapshot */
    bool received;          /* destination: a valid section was loaded */
    RunState received_state;
} GlobalState;

static GlobalState global_state;

static void store_state(RunState state)
{
    memset(global_state.runstate, 0, sizeof(global_state.runstate));
    g_strlcpy((char *)global_state.runstate, RunState_str(state), sizeof(global_state.runstate));
    global_state.stored = true;
}

void global_state_store(void)
{
    assert(bql_locked());
    store_state(runstate_get());
}

void global_state_reset(void)
{
    memset(&global_state, 0, sizeof(global_state));
}

bool global_state_received(RunState *out)
{
    if (global_state.received && out) {
        *out = global_state.received_state;
    }
    return global_state.received;
}

static bool global_state_pre_save(void *opaque, Error **errp)
{
    GlobalState *s = opaque;
    if (!s->stored) {
        store_state(runstate_get());
    }
    s->size = strlen((char *)s->runstate) + 1;
    return true;
}

static bool global_state_pre_load(void *opaque, Error **errp)
{
    GlobalState *s = opaque;
    s->received = false;
    memset(s->runstate, 0, sizeof(s->runstate));
    return true;
}

static bool global_state_post_load(void *opaque, int version_id, Error **errp)
{
    GlobalState *s = opaque;
    const char *name = (const char *)s->runstate;
    if (strnlen(name, sizeof(s->runstate)) == sizeof(s->runstate)) {
        error_setg(errp, "received run state is not terminated");
        return false;
    }
    RunState state;
    if (!RunState_parse(name, &state)) {
        g_autofree char *escaped = g_strescape(name, NULL);
        error_setg(errp, "unknown received run state '%s'", escaped);
        return false;
    }
    s->received_state = state;
    s->received = true;
    return true;
}

static const VMStateDescription vmstate_globalstate = {
    .name = "globalstate",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = global_state_pre_save,
    .pre_load = global_state_pre_load,
    .post_load = global_state_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(size, GlobalState),
        VMSTATE_BUFFER(runstate, GlobalState),
        VMSTATE_END_OF_LIST()
    },
};

bool global_state_register(Error **errp)
{
    return vmstate_register(NULL, 0, &vmstate_globalstate, &global_state, errp);
}
