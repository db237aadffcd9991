/*
 * The save-state registry as the writer (savevm.c) and the loader
 * (loadvm.c) see it. Private to those two files.
 */
#ifndef MIGVM_MIGRATION_SAVEVM_INT_H
#define MIGVM_MIGRATION_SAVEVM_INT_H

#include "savevm.h"
#include <glib.h>

typedef struct SaveStateEntry {
    char *idstr;
    uint32_t instance_id;
    int version_id;
    uint32_t section_id;
    const SaveVMHandlers *ops;          /* live handler, or NULL */
    const VMStateDescription *vmsd;     /* device, or NULL */
    void *opaque;
    bool setup_done;                    /* writer: save_setup was called */
} SaveStateEntry;

/* Every entry (SaveStateEntry *), in registration order. Changed only
 * under the BQL and never while a migration runs (registration happens in
 * machine_init and migration_init), so the migration and incoming threads
 * walk it without the BQL. */
GPtrArray *savevm_entries(void);
SaveStateEntry *savevm_find_entry(const char *idstr, uint32_t instance_id);
/* A live handler taking part in this migration. */
bool savevm_entry_is_active(SaveStateEntry *se);

#endif
