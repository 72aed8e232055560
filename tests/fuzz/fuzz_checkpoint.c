/* fuzz_checkpoint: gopt_ckpt_open on arbitrary files, then every section into every
 * state_load of the library (objects.c).
 *
 * Each input is opened twice: as it is, and with its checksums recomputed where the layout
 * allows (header, section table, each section in bounds), so that mutations reach the
 * structural checks behind the CRCs and the state loaders behind the container. A
 * section named after an object ("optim:adam", "sched:step", ...) goes to that object
 * only; any other section goes to all of them. */
#include <string.h>

#include "objects.h"

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Recompute the CRCs of checkpoint.h's layout wherever the offsets are in bounds. */
static void fix_checksums(uint8_t *b, size_t n) {
    if (n < GOPT_CKPT_HEADER_BYTES || memcmp(b, "GOPTCKPT", 8) != 0) return;
    uint32_t count = rd32(b + 16);
    uint64_t toff = rd64(b + 24), tsize = rd64(b + 32);
    if (toff <= n && tsize <= n - toff) {
        for (uint64_t i = 0; i < count && (i + 1) * GOPT_CKPT_ENTRY_BYTES <= tsize; i++) {
            uint8_t *e = b + toff + i * GOPT_CKPT_ENTRY_BYTES;
            uint64_t off = rd64(e + 64), size = rd64(e + 72);
            if (off <= n && size <= n - off) wr32(e + 80, gopt_crc32(0, b + off, (size_t)size));
        }
        wr32(b + 48, gopt_crc32(0, b + toff, (size_t)tsize));
    }
    wr32(b + 60, gopt_crc32(0, b, 60));
}

static void open_and_load(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    gopt_ckpt *c = (gopt_ckpt *)1;
    gopt_clear_error();
    gopt_status s = gopt_ckpt_open(path, &c);
    fz_file_close();
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(c == NULL, "a failed open left *out set");
        return;
    }
    int n = gopt_ckpt_section_count(c);
    FZ_CHECK(n >= 0, "negative section count");
    for (int i = 0; i < n; i++) {
        const char *name;
        size_t bytes;
        FZ_CHECK(gopt_ckpt_section_info(c, i, &name, &bytes) == GOPT_OK, "section_info(%d) of %d failed", i, n);
        FZ_CHECK(name && name[0] && strlen(name) < GOPT_CKPT_NAME_MAX, "a section name out of spec");
        const void *p;
        size_t got;
        FZ_CHECK(gopt_ckpt_find(c, name, &p, &got) == GOPT_OK, "section '%s' listed but not found", name);
        FZ_CHECK(got == bytes && ((uintptr_t)p % 16) == 0, "section '%s': size or alignment not as promised", name);
        uint64_t u;
        gopt_status su = gopt_ckpt_get_u64(c, name, &u);
        FZ_CHECK((su == GOPT_OK) == (bytes == 8), "get_u64 of a %zu-byte section returned %d", bytes, su);
        int routed = 0;
        for (int k = 0; k < fz_obj_count(); k++)
            if (strcmp(fz_obj_get(k)->name, name) == 0) {
                fz_try_load(k, p, got, 0);
                routed = 1;
            }
        if (!routed)
            for (int k = 0; k < fz_obj_count(); k++) fz_try_load(k, p, got, 0);
    }
    FZ_CHECK(gopt_ckpt_section_info(c, n, NULL, NULL) == GOPT_ERANGE, "section_info past the end");
    gopt_ckpt_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    open_and_load(data, size);
    if (size >= GOPT_CKPT_HEADER_BYTES) {
        uint8_t *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        fix_checksums(copy, size);
        if (memcmp(copy, data, size) != 0) open_and_load(copy, size);
        free(copy);
    }
    return 0;
}
