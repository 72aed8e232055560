/* fz_file: fuzz input as an openable path (see fuzz.h). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

static int fz_fd = -1;
static char fz_path[64];

const char *fz_file(const void *data, size_t size) {
    fz_file_close();
    fz_fd = memfd_create("gopt-fuzz", MFD_CLOEXEC);
    FZ_CHECK(fz_fd >= 0, "memfd_create failed");
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(fz_fd, p, size);
        FZ_CHECK(n > 0, "write to the memfd failed");
        p += n;
        size -= (size_t)n;
    }
    snprintf(fz_path, sizeof fz_path, "/proc/self/fd/%d", fz_fd);
    return fz_path;
}

void fz_file_close(void) {
    if (fz_fd >= 0) close(fz_fd);
    fz_fd = -1;
}
