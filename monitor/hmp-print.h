/*
 * Text of HMP `info` answers, built from the QAPI structures the qmp_*
 * handlers return. Each formatter appends "\n"-terminated lines to a
 * GString (the monitor turns them into "\r\n"), so unit tests can compare
 * against QEMU 7.2's real output without a running VM.
 */
#ifndef MIGVM_HMP_PRINT_H
#define MIGVM_HMP_PRINT_H

#include <glib.h>
#include "qapi-types.h"

/* info status: "VM status: running" / "paused" / "paused (<runstate>)". */
void hmp_format_status(GString *out, const StatusInfo *info);
/* info version: "<major>.<minor>.<micro><package>". */
void hmp_format_version(GString *out, const VersionInfo *info);
/* info kvm: "kvm support: enabled|disabled|not compiled". */
void hmp_format_kvm(GString *out, const KvmInfo *info);

/* The fixed "globals:" block that starts every `info migrate`. */
void hmp_format_migrate_globals(GString *out);
/* Everything of `info migrate`: globals, then each part that exists. */
void hmp_format_migrate(GString *out, const MigrationInfo *info);
void hmp_format_migrate_capabilities(GString *out, const MigrationCapabilityStatusList *caps);
void hmp_format_migrate_parameters(GString *out, const MigrationParameters *params);

/* The live progress of a synchronous `migrate` on an interactive console,
 * without a line end (the caller rewrites it in place): "migration: active
 *  37%, 49152 kbytes sent, 1650.33 mbps, remaining 82944 kbytes, expected
 * downtime 35 ms, pass 3" (percent: the share of RAM and disks no longer dirty). */
void hmp_format_migrate_progress(GString *out, const MigrationInfo *info);
/* The closing line of a synchronous `migrate`: "migration: completed" or
 * "migration: failed (<error>)". */
void hmp_format_migrate_result(GString *out, const MigrationInfo *info);

/* "tcp:host:port", "unix:path", "vsock:cid:port", "fd:name". */
char *hmp_socket_address_str(const SocketAddress *addr);

#endif
