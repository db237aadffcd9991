/*
 * migvm-stream: check a saved or piped migration stream without a VM.
 *
 *   migvm-stream verify FILE|-    one line per section, then a verdict
 *   migvm-stream dump FILE|-      the sections as JSON lines
 *
 * Exit status: 0 the stream is valid, 1 it is not (stderr names the byte
 * offset and what was expected there), 2 usage or I/O error. In a pipe
 * (`migrate "exec:migvm-stream verify -"`) the status decides the migration.
 */
#include "stream-check.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

#define TRAILER_READ_MAX (16u * 1024 * 1024)

/* A regular file's VMDESCRIPTION, from its last bytes (pread: the stream
 * still reads from the start), or NULL. */
static json_object *file_trailer(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 16) {
        return NULL;
    }
    size_t len = MIN((uint64_t)st.st_size, TRAILER_READ_MAX);
    g_autofree uint8_t *tail = g_malloc(len);
    ssize_t n = pread(fd, tail, len, st.st_size - len);
    return n == (ssize_t)len ? walk_find_trailer(tail, len) : NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: migvm-stream verify|dump FILE|-\n\n"
            "  verify FILE   check a whole migration stream; one line per section\n"
            "  dump FILE     the same checks; the sections as JSON lines\n"
            "  FILE - reads standard input (e.g. migrate \"exec:migvm-stream verify -\")\n\n"
            "Exit status: 0 valid, 1 invalid stream (the offset and what was expected\n"
            "on stderr), 2 usage or I/O error.\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-help"))) {
        usage(stdout);
        return EXIT_VALID;
    }
    if (argc != 3 || (strcmp(argv[1], "verify") && strcmp(argv[1], "dump"))) {
        usage(stderr);
        return EXIT_USAGE;
    }
    bool dump = !strcmp(argv[1], "dump");
    const char *path = argv[2];
    bool is_stdin = !strcmp(path, "-");
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "migvm-stream: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    const char *name = is_stdin ? "<stdin>" : path;
    MigStream *f = mig_stream_new_fd_reader(fd, !is_stdin);
    Walk w;
    walk_init(&w, f);
    w.pre_vmdesc = file_trailer(fd);
    bool ok = walk_stream(&w);
    if (dump) {
        report_json(&w, stdout);
    } else {
        report_text(&w, name, stdout);
    }
    fflush(stdout);
    int status = EXIT_VALID;
    if (!ok) {
        fprintf(stderr, "migvm-stream: %s: %s: %s\n", name, w.io_error ? "read error" : "invalid stream",
                error_get_pretty(w.err));
        status = w.io_error ? EXIT_USAGE : EXIT_INVALID;
    }
    walk_free(&w);
    mig_stream_close(f, NULL);
    return status;
}
