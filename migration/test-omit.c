/*
 * The test-only section omission list (include/vmstate.h): read once from
 * MIGVM_TEST_OMIT_SECTIONS at start-up, then only consulted, so the
 * migration thread's lookups read no environment and take no lock.
 */
#include "vmstate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#define OMIT_ENV "MIGVM_TEST_OMIT_SECTIONS"

typedef struct OmitEntry {
    char *name;
    bool any_instance;
    uint32_t instance_id;
} OmitEntry;

static GArray *omit_list;               /* OmitEntry; NULL: nothing omitted */

static void omit_list_clear(void)
{
    if (!omit_list) {
        return;
    }
    for (guint i = 0; i < omit_list->len; i++) {
        g_free(g_array_index(omit_list, OmitEntry, i).name);
    }
    g_array_free(omit_list, true);
    omit_list = NULL;
}

static bool parse_item(const char *item, OmitEntry *e, Error **errp)
{
    g_autofree char *copy = g_strstrip(g_strdup(item));
    char *colon = strrchr(copy, ':');
    e->any_instance = !colon;
    e->instance_id = 0;
    if (colon) {
        *colon = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(colon + 1, &end, 0);
        if (colon[1] == '\0' || *end || errno || v > UINT32_MAX) {
            error_setg(errp, OMIT_ENV ": '%s' is not NAME or NAME:INSTANCE", item);
            return false;
        }
        e->instance_id = v;
    }
    if (!*copy) {
        error_setg(errp, OMIT_ENV ": empty name in '%s'", item);
        return false;
    }
    e->name = g_strdup(copy);
    return true;
}

bool vmstate_test_omit_set(const char *spec, Error **errp)
{
    omit_list_clear();
    if (!spec || !*spec) {
        return true;
    }
    GArray *list = g_array_new(false, false, sizeof(OmitEntry));
    g_auto(GStrv) items = g_strsplit(spec, ",", -1);
    for (int i = 0; items[i]; i++) {
        OmitEntry e;
        if (!parse_item(items[i], &e, errp)) {
            omit_list = list;
            omit_list_clear();
            return false;
        }
        g_array_append_val(list, e);
    }
    omit_list = list;
    return true;
}

bool vmstate_test_omit_init(Error **errp)
{
    return vmstate_test_omit_set(getenv(OMIT_ENV), errp);
}

bool vmstate_test_omitted(const char *name, uint32_t instance_id)
{
    for (guint i = 0; omit_list && i < omit_list->len; i++) {
        const OmitEntry *e = &g_array_index(omit_list, OmitEntry, i);
        if (strcmp(e->name, name) == 0 && (e->any_instance || e->instance_id == instance_id)) {
            warn_report(OMIT_ENV ": leaving '%s' instance %" PRIu32 " out of the stream (test only)",
                        name, instance_id);
            return true;
        }
    }
    return false;
}
