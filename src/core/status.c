/* Status strings, the thread-local error detail, and the allocator hooks. */
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"

#define GOPT_ERROR_MAX 512

static _Thread_local char last_error[GOPT_ERROR_MAX];

const char *gopt_status_str(gopt_status s) {
    switch (s) {
    case GOPT_OK: return "ok";
    case GOPT_EINVAL: return "invalid argument";
    case GOPT_ENOMEM: return "out of memory";
    case GOPT_ESHAPE: return "shape mismatch";
    case GOPT_EOVERFLOW: return "size overflow";
    case GOPT_EIO: return "input/output error";
    case GOPT_EFORMAT: return "malformed data";
    case GOPT_ENONFINITE: return "non-finite value";
    case GOPT_ESTATE: return "invalid state";
    case GOPT_ERANGE: return "index out of range";
    }
    return "unknown status";
}

const char *gopt_last_error(void) { return last_error; }

void gopt_clear_error(void) { last_error[0] = '\0'; }

gopt_status gopt__fail(gopt_status s, const char *func, const char *fmt, ...) {
    /* Formatted aside first: an argument may be gopt_last_error() itself (a detail that
     * wraps the previous one), and vsnprintf into the buffer it reads from is undefined
     * (Valgrind: "source and destination overlap"). */
    char msg[sizeof last_error];
    int n = snprintf(msg, sizeof msg, "%s: ", func);
    if (n < 0 || (size_t)n >= sizeof msg) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return s;
}

gopt_status gopt__retag(gopt_status s, const char *func) {
    if (strncmp(func, "gopt_", 5) != 0 || func[5] == '_') return s;
    const char *colon = strstr(last_error, ": ");
    if (!colon || colon == last_error) return s;
    for (const char *p = last_error; p < colon; p++) /* an identifier, not a sentence */
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return s;
    size_t plen = (size_t)(colon - last_error), flen = strlen(func);
    if (plen == flen && memcmp(last_error, func, flen) == 0) return s;
    char msg[sizeof last_error];
    snprintf(msg, sizeof msg, "%s%s", func, colon);
    memcpy(last_error, msg, sizeof msg);
    return s;
}

/* ---- allocator --------------------------------------------------------------------- */

static gopt_allocator allocator; /* zero: the C library */

void gopt_set_allocator(const gopt_allocator *a) {
    if (a) allocator = *a;
    else memset(&allocator, 0, sizeof allocator);
}

void *gopt__malloc(size_t size) {
    if (size == 0) size = 1;
    if (allocator.malloc_fn) return allocator.malloc_fn(allocator.opaque, size);
    return malloc(size);
}

void gopt__free(void *ptr) {
    if (!ptr) return;
    if (allocator.free_fn) allocator.free_fn(allocator.opaque, ptr);
    else free(ptr);
}

void *gopt__calloc(size_t n, size_t size) {
    size_t bytes;
    if (!gopt__mul_size(n, size, &bytes)) return NULL;
    void *p = gopt__malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* 64-byte alignment on top of any allocator: over-allocate and keep the original pointer
 * just below the aligned block. */
void *gopt__aligned_alloc(size_t size) {
    if (size > SIZE_MAX - 64 - sizeof(void *)) return NULL;
    unsigned char *raw = gopt__malloc(size + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    unsigned char *aligned = (unsigned char *)((start + 63) & ~(uintptr_t)63);
    memcpy(aligned - sizeof(void *), &raw, sizeof(void *));
    memset(aligned, 0, size);
    return aligned;
}

void gopt__aligned_free(void *ptr) {
    if (!ptr) return;
    void *raw;
    memcpy(&raw, (unsigned char *)ptr - sizeof(void *), sizeof(void *));
    gopt__free(raw);
}

char *gopt__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = gopt__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
