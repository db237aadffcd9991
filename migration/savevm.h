/*
 * The save-state registry and the top-level migration stream framing:
 * writer (savevm.c), loader (loadvm.c), return path (return-path.c)
 * (shared docs: migration-stream.md sections 1-4, 7-10).
 *
 * Writer, called by the migration thread in this order:
 *   savevm_state_header            magic, version, CONFIGURATION
 *   [savevm_send_open_return_path, savevm_send_ping(1)]
 *   [savevm_send_postcopy_advise]
 *   savevm_state_setup             START + setup data + footer, per live handler
 *   savevm_state_iterate ...       PART + data + footer (stops at the rate limit)
 *   savevm_state_pending           how much the live handlers still have
 *   savevm_state_complete_precopy  END per live handler, FULL per device, EOF, VMDESCRIPTION
 *   savevm_state_cleanup           always, success or not
 * Reader (incoming thread): qemu_loadvm_state (loadvm.c).
 *
 * Locking: registration and the setup/complete phases run with the BQL
 * held; iterate/pending run without it (live handlers protect their own
 * state). The registry itself is only changed under the BQL.
 */
#ifndef MIGVM_MIGRATION_SAVEVM_H
#define MIGVM_MIGRATION_SAVEVM_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "error.h"
#include "vmstate.h"
#include "stream.h"

/* Stream framing constants. */
#define QEMU_VM_FILE_MAGIC          0x5145564Du
#define QEMU_VM_FILE_VERSION_COMPAT 0x00000002u
#define QEMU_VM_FILE_VERSION        0x00000003u

enum {
    QEMU_VM_EOF = 0x00,
    QEMU_VM_SECTION_START = 0x01,
    QEMU_VM_SECTION_PART = 0x02,
    QEMU_VM_SECTION_END = 0x03,
    QEMU_VM_SECTION_FULL = 0x04,
    QEMU_VM_SUBSECTION = 0x05,
    QEMU_VM_VMDESCRIPTION = 0x06,
    QEMU_VM_CONFIGURATION = 0x07,
    QEMU_VM_COMMAND = 0x08,
    QEMU_VM_SECTION_FOOTER = 0x7e,
};

enum MigCommand {
    MIG_CMD_INVALID = 0,
    MIG_CMD_OPEN_RETURN_PATH = 1,
    MIG_CMD_PING = 2,
    MIG_CMD_POSTCOPY_ADVISE = 3,
    MIG_CMD_POSTCOPY_LISTEN = 4,
    MIG_CMD_POSTCOPY_RUN = 5,
    MIG_CMD_POSTCOPY_RAM_DISCARD = 6,
    MIG_CMD_PACKAGED = 7,
    MIG_CMD_ENABLE_COLO = 8,
    MIG_CMD_POSTCOPY_RESUME = 9,
    MIG_CMD_RECV_BITMAP = 10,
    MIG_CMD_MAX = 11,
};

/* Return-path messages (destination -> source): be16 type, be16 len, payload. */
enum MigRpMessage {
    MIG_RP_MSG_INVALID = 0,
    MIG_RP_MSG_SHUT = 1,          /* be32 status, 0 = success */
    MIG_RP_MSG_PONG = 2,          /* be32 echo of PING */
    MIG_RP_MSG_REQ_PAGES_ID = 3,
    MIG_RP_MSG_REQ_PAGES = 4,
    MIG_RP_MSG_RECV_BITMAP = 5,
    MIG_RP_MSG_RESUME_ACK = 6,
    MIG_RP_MSG_SWITCHOVER_ACK = 7,
    MIG_RP_MSG_MAX = 8,
};
#define MIG_RP_MAX_LEN 512

/* migvm to migvm only (return-path.c explains): the source's PING saying
 * "migvm here", and the flag of the destination's PONG that answers it
 * with the microseconds from loaded to started. */
#define MIG_PING_MIGVM 0x6d766d00u
#define MIG_PONG_STARTED_US 0x80000000u

#define MIGVM_TARGET_PAGE_BITS 12
#define MIGVM_TARGET_PAGE_SIZE (1u << MIGVM_TARGET_PAGE_BITS)
#define MIGVM_VMDESC_MAX_LEN (64u * 1024 * 1024)   /* reader bound */

/* ---------------- VMState on a stream (migration/vmstate.c) ---------------- */

/* Write vmsd's fields and needed subsections (current version, no header).
 * vmdesc: a JSON object to fill with {"vmsd_name", "version", "fields",
 * ["subsections"]} as the VMDESCRIPTION section describes, or NULL. */
bool vmstate_save(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                  json_object *vmdesc, Error **errp);
/* Read a body written with version_id; checks versions, EQUAL/LE, array
 * capacities, subsections; runs pre_load / post_load. */
bool vmstate_load(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                  int version_id, Error **errp);

/* ---------------- registry ---------------- */

#define VMSTATE_INSTANCE_ID_ANY UINT32_MAX  /* next free instance id for that idstr */

typedef struct SaveVMHandlers {
    /* Optional: handler takes part in this migration (default yes). */
    bool (*is_active)(void *opaque);
    /* Source. [BQL] setup and complete; iterate and pending without it. */
    bool (*save_setup)(MigStream *f, void *opaque, Error **errp);
    /* Bytes still to send (estimate, cheap); adds to *must_precopy_bytes. */
    void (*state_pending)(void *opaque, uint64_t *must_precopy_bytes);
    /* Optional exact variant (may sync dirty bitmaps); falls back to state_pending. */
    void (*state_pending_exact)(void *opaque, uint64_t *must_precopy_bytes);
    /* <0 error (errp set), 0 more to do, 1 this pass is done. */
    int (*save_live_iterate)(MigStream *f, void *opaque, Error **errp);
    bool (*save_live_complete_precopy)(MigStream *f, void *opaque, Error **errp);
    /* Optional: the migration goes on on a new channel after a recovery
     * handshake (its first records must not rely on the old stream). */
    void (*resume_prepare)(void *opaque);
    void (*save_cleanup)(void *opaque);
    /* Goes on sending after the switch to postcopy (RAM); the others end
     * before it. */
    bool postcopiable;
    /* Destination. */
    bool (*load_setup)(void *opaque, Error **errp);
    /* One START/PART/END (or FULL) body. */
    bool (*load_state)(MigStream *f, void *opaque, int version_id, Error **errp);
    void (*load_cleanup)(void *opaque);
} SaveVMHandlers;

/* A live (iterative) handler, e.g. "ram" v4. Section ids come from a
 * registration counter, as QEMU's. [BQL] */
bool register_savevm_live(const char *idstr, uint32_t instance_id, int version_id,
                          const SaveVMHandlers *ops, void *opaque, Error **errp);
void unregister_savevm(const char *idstr, void *opaque);
/* Forget every entry and restart section ids at 0 (tests, machine teardown). */
void savevm_unregister_all(void);

/* ---------------- writer ---------------- */

/* What the CONFIGURATION section carries; the same struct describes the
 * local side when loading. */
typedef struct MigConfigOptions {
    const char *machine_type;     /* e.g. "pc-i440fx-7.2", "none" */
    bool x_ignore_shared;         /* sent as configuration/capabilities */
} MigConfigOptions;

bool savevm_state_header(MigStream *f, const MigConfigOptions *cfg, Error **errp);
void savevm_send_open_return_path(MigStream *f);
void savevm_send_ping(MigStream *f, uint32_t value);
/* POSTCOPY_ADVISE with length 0: what QEMU 7.2 sends with capability
 * dirty-bitmaps and no postcopy-ram. */
void savevm_send_postcopy_advise(MigStream *f);
/* Postcopy (shared docs: postcopy.md): ADVISE with the 16-byte page-size
 * payload, one POSTCOPY_RAM_DISCARD of n byte ranges, LISTEN, RUN, and
 * PACKAGED followed by its len bytes. */
void savevm_send_postcopy_advise_ram(MigStream *f);
void savevm_send_postcopy_ram_discard(MigStream *f, const char *block, const uint64_t *starts,
                                      const uint64_t *lens, unsigned n);
void savevm_send_postcopy_listen(MigStream *f);
void savevm_send_postcopy_run(MigStream *f);
void savevm_send_packaged(MigStream *f, const uint8_t *data, uint32_t len);
/* The switch-over to postcopy: END of the live handlers that cannot go on
 * (block); FULL of every device (into the PACKAGED blob); at the very end
 * END of the postcopiable ones (RAM) and EOF, no VMDESCRIPTION. [BQL for
 * the first two] */
bool savevm_state_complete_precopy_only(MigStream *f, Error **errp);
bool savevm_state_postcopy_devices(MigStream *f, Error **errp);
bool savevm_state_complete_postcopy(MigStream *f, Error **errp);
/* The pre-flight check's stream (preflight.c): header and configuration,
 * the early_setup device sections (the CPU model), EOF; no guest data. [BQL] */
bool savevm_state_preflight(MigStream *f, const MigConfigOptions *cfg, Error **errp);
/* Each section a migration would send now (active live handlers, wanted
 * devices), in registration order. [BQL] */
typedef void SavevmSectionFn(const char *idstr, uint32_t instance_id, int version_id, void *opaque);
void savevm_foreach_section(SavevmSectionFn *fn, void *opaque);
/* NULL if this side can load section (idstr, instance) written with
 * version_id, else what it has instead ("absent", "versions 1 to 3"; g_free). */
char *savevm_section_refusal(const char *idstr, uint32_t instance_id, int version_id);
/* START + setup data of every live handler. [BQL] */
bool savevm_state_setup(MigStream *f, Error **errp);
/* 1: every live handler finished its pass; 0: more to do (or the rate limit
 * ended the round); <0: error (errp set). */
int savevm_state_iterate(MigStream *f, Error **errp);
/* Postcopy: one PART of each postcopiable handler, whatever the rate limit
 * (page requests go first inside it). */
int savevm_state_iterate_postcopy(MigStream *f, Error **errp);
/* Sum of the live handlers' pending bytes. */
void savevm_state_pending(bool exact, uint64_t *must_precopy_bytes);
/* END for live handlers, FULL for every device, EOF, then VMDESCRIPTION
 * (when send_vmdesc). Flushes. [BQL, guest stopped] */
bool savevm_state_complete_precopy(MigStream *f, bool send_vmdesc, Error **errp);
/* Told when savevm_state_complete_precopy has finished the live sections
 * (SAVEVM_COMPLETE_LIVE) and written the devices, EOF and VMDESCRIPTION
 * (SAVEVM_COMPLETE_DEVICES, before its flush): the downtime's phases. */
typedef enum { SAVEVM_COMPLETE_LIVE, SAVEVM_COMPLETE_DEVICES } SavevmCompleteStage;
typedef void SavevmCompleteFn(SavevmCompleteStage stage);
void savevm_set_complete_observer(SavevmCompleteFn *fn);
/* resume_prepare of every live handler that was set up. [migration thread] */
void savevm_state_resume_prepare(void);
/* save_cleanup of every handler that was set up. [BQL] */
void savevm_state_cleanup(void);

/* ---------------- reader (loadvm.c) ---------------- */

/* Postcopy on the destination (postcopy-ram.c, incoming.c). */
typedef struct LoadvmPostcopy {
    bool (*enabled)(void);          /* capability postcopy-ram on here */
    int (*state)(void);             /* PostcopyIncomingState */
    bool (*advise)(uint64_t page_summary, uint64_t target_page, Error **errp);
    bool (*discard)(const char *block, uint64_t start, uint64_t len, Error **errp);
    /* Register RAM, start the fault thread; another thread then reads the
     * rest of the outer stream while the package's devices load here. */
    bool (*listen)(MigStream *rp, Error **errp);
    bool (*run)(Error **errp);      /* the package's devices are loaded */
} LoadvmPostcopy;
/* QEMU 7.2 accepts up to 4 GiB; migvm's device state is a few KiB. */
#define MIGVM_PACKAGED_MAX_LEN (64u * 1024 * 1024)

typedef struct LoadvmOptions {
    MigConfigOptions local;          /* what this side runs: compared with CONFIGURATION */
    bool allow_no_configuration;     /* accept a stream without CONFIGURATION (default: reject) */
    /* Writer towards the source for OPEN_RETURN_PATH/PING (NULL: channel is
     * one-way, and OPEN_RETURN_PATH fails). */
    MigStream *return_path;
    /* Send SHUT(0/1) on the return path (if the source opened it) when
     * loading ends; else the caller sends it with mig_rp_send_shut. */
    bool send_shut;
    bool *return_path_opened;        /* optional out: the source opened the return path */
    bool *peer_is_migvm;             /* optional out: the source sent PING(MIG_PING_MIGVM) */
    uint32_t max_vmdesc_len;         /* 0 = MIGVM_VMDESC_MAX_LEN */
    /* Called with true before and false after each device (VMState) section
     * load, e.g. to take the BQL; live sections (RAM) load without it, so a
     * monitor keeps answering during a long load. NULL: no locking. */
    void (*device_lock)(bool lock);
    const LoadvmPostcopy *postcopy;  /* NULL: postcopy commands refused */
    /* Recovery of a broken connection (recovery.c, incoming.c), NULL: none.
     * channel_lost: the stream failed reading (an I/O error, not bad
     * content) while "ram" was open and no "block" section was; it may
     * block until a new connection arrives and return true with the streams
     * to go on with (closing the old ones), or false to fail the load.
     * In postcopy (the guest runs here) it is called from the thread that
     * reads the outer stream after LISTEN, when that stream breaks in
     * POSTCOPY_INCOMING_RUNNING.
     * recovery_command: RECV_BITMAP and POSTCOPY_RESUME (else refused). */
    bool (*channel_lost)(void *opaque, MigStream **f, MigStream **rp);
    bool (*recovery_command)(void *opaque, uint16_t cmd, uint16_t len, MigStream *f,
                             MigStream *rp, Error **errp);
    void *recovery_opaque;
} LoadvmOptions;

/* Read a whole stream (header to EOF, then an optional vmdesc). On failure
 * returns false with the cause in errp; the guest must not be started. Never
 * crashes or allocates unbounded memory on hostile input. [BQL for the
 * device loads; the caller decides] */
bool qemu_loadvm_state(MigStream *f, const LoadvmOptions *opts, Error **errp);

/* ---------------- return path (return-path.c) ---------------- */

bool mig_rp_send(MigStream *rp, uint16_t type, const void *payload, uint16_t len, Error **errp);
bool mig_rp_send_pong(MigStream *rp, uint32_t value, Error **errp);
bool mig_rp_send_shut(MigStream *rp, uint32_t status, Error **errp);
/* Source side: read one message, checking type and length. payload must
 * hold MIG_RP_MAX_LEN bytes. */
bool mig_rp_read(MigStream *rp, uint16_t *type, uint8_t *payload, uint16_t *len, Error **errp);

/* ---------------- configuration section (config-section.c) ---------------- */

/* Writes u8 0x07 and the body. */
void config_section_save(MigStream *f, const MigConfigOptions *cfg);
/* Reads the body (after the 0x07 byte) and checks it against local. */
bool config_section_load(MigStream *f, const MigConfigOptions *local, Error **errp);

#endif
