/*
 * libFuzzer target: multifd channel input (migration/multifd-packet.c,
 * multifd-recv.c, multifd-compress.c) into the real RAM of fuzz-machine.c's
 * machine. The first byte picks the compression (none, zlib, zstd) and
 * whether the channel's 64-byte initial packet comes first; then packets
 * (1344-byte header + payload) follow back to back, through one decoder per
 * input, as one channel receives them: multifd_recv_packet_buffer, the code
 * a channel runs on each packet, must fail with an error or fill guest RAM.
 *   make fuzz-multifd && build/fuzz/fuzz-multifd -dict=tests/fuzz/fuzz-multifd.dict tests/fuzz/corpus/fuzz-multifd
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-machine.h"
#include "multifd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_machine_init("soft");
    return 0;
}

static const MultiFDCompression methods[] = {
    MULTIFD_COMPRESSION_NONE, MULTIFD_COMPRESSION_ZLIB, MULTIFD_COMPRESSION_ZSTD,
};

/* The bytes one packet takes: header and payload, as a channel reads them. */
static size_t packet_len(const uint8_t *buf, size_t len, bool compressed)
{
    MultifdPacket p;
    Error *err = NULL;
    if (len < MULTIFD_HEADER_SIZE || !multifd_packet_parse(buf, &p, &err)) {
        error_free(err);
        return len;                 /* the parser will refuse it: one last call */
    }
    uint64_t payload = compressed ? p.next_packet_size : (uint64_t)p.normal_pages * 4096;
    return MIN(len, MULTIFD_HEADER_SIZE + payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) {
        return 0;
    }
    MultiFDCompression method = methods[data[0] % 3];
    bool with_init = data[0] & 0x80;
    data++;
    size--;
    Error *err = NULL;
    if (with_init) {
        MultifdInit init;
        if (size < MULTIFD_INIT_SIZE || !multifd_init_parse(data, &init, &err)) {
            error_free(err);
            return 0;
        }
        data += MULTIFD_INIT_SIZE;
        size -= MULTIFD_INIT_SIZE;
    }
    MultifdCodec *dec = multifd_codec_new_decoder(method, &err);
    if (err) {
        abort();                    /* the codecs are built in */
    }
    uint32_t flag = multifd_compression_flag(method);
    while (size) {
        size_t n = packet_len(data, size, dec != NULL);
        bool ok = multifd_recv_packet_buffer(dec, flag, data, n, &err);
        if (ok == (err != NULL)) {
            __builtin_trap();       /* return value and errp must agree */
        }
        if (!ok) {
            error_free(err);
            break;
        }
        data += n;
        size -= n;
    }
    multifd_codec_free(dec);
    return 0;
}
