/*
 * libFuzzer target: the return path as the source reads it
 * (migration/return-path.c): messages (be16 type, be16 len, payload) read
 * with mig_rp_read until an error, SHUT or the end of the input, each
 * checked for type and length before its payload is read into the fixed
 * MIG_RP_MAX_LEN buffer the migration thread uses.
 *   make fuzz-return-path && build/fuzz/fuzz-return-path tests/fuzz/corpus/fuzz-return-path
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "savevm.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MigStream *rp = mig_stream_new_mem_reader(data, size);
    for (;;) {
        uint16_t type = 0, len = 0;
        uint8_t payload[MIG_RP_MAX_LEN];
        Error *err = NULL;
        bool ok = mig_rp_read(rp, &type, payload, &len, &err);
        if (ok == (err != NULL) || (ok && len > MIG_RP_MAX_LEN)) {
            __builtin_trap();
        }
        if (!ok) {
            error_free(err);
            break;
        }
        if (type == MIG_RP_MSG_SHUT) {
            break;
        }
    }
    mig_stream_close(rp, NULL);
    return 0;
}
