/* fuzz_npy: the .npy reader behind gopt_dataset_from_npy and gopt_dataset_from_tokens_npy
 * (header parse, dtype/shape/size validation, memory map, label and id checks), then a
 * whole epoch of the loader over an accepted dataset. The first byte picks the call:
 *   mode % 4 == 0: features = targets = the input (one file, both roles);
 *   mode % 4 == 1: two files: bytes 1..2 (LE) give the first file's length, the rest is the
 *                  second (features, then labels or targets), classes 0 (max + 1);
 *   mode % 4 == 2: a token stream, seq_len = 1 + byte 1 % 16, vocab_size 0 or 64;
 *   mode % 4 == 3: as 1 with classes = byte 3 % 8 (0: max + 1).
 * A refusal must be GOPT_EFORMAT, say why and leave *out NULL; an accepted dataset must
 * yield every sample once per epoch with labels and ids inside the vocabulary, and an array
 * dataset must take a subset. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

/* a second memory file for the two-file modes (fz_file holds the first) */
static int fd2 = -1;
static char path2[64];

static const char *second_file(const uint8_t *data, size_t size) {
    if (fd2 >= 0) close(fd2);
    fd2 = memfd_create("gopt-fuzz-2", MFD_CLOEXEC);
    FZ_CHECK(fd2 >= 0, "memfd_create failed");
    while (size > 0) {
        ssize_t n = write(fd2, data, size);
        FZ_CHECK(n > 0, "write to the memfd failed");
        data += n;
        size -= (size_t)n;
    }
    snprintf(path2, sizeof path2, "/proc/self/fd/%d", fd2);
    return path2;
}

static void close_second(void) {
    if (fd2 >= 0) close(fd2);
    fd2 = -1;
}

static void one_epoch(gopt_dataset *ds, uint64_t seed) {
    const int64_t count = gopt_dataset_count(ds);
    const gopt_dataset_kind kind = gopt_dataset_kind_of(ds);
    const int classes = gopt_dataset_classes(ds);
    FZ_CHECK(count >= 1, "an accepted dataset of %lld samples", (long long)count);
    int64_t shape[GOPT_DATASET_MAX_DIMS], tshape[GOPT_DATASET_MAX_DIMS];
    const int nd = gopt_dataset_sample_shape(ds, shape), td = gopt_dataset_target_shape(ds, tshape);
    FZ_CHECK(nd >= 1 && nd <= GOPT_DATASET_MAX_DIMS && td >= 0 && td <= GOPT_DATASET_MAX_DIMS, "shapes %d, %d", nd,
             td);
    int64_t per = 1;
    for (int d = 0; d < nd; d++) per *= shape[d];
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 1 + (int)(seed % 7);
    c.seed = seed;
    gopt_loader *l;
    FZ_CHECK(gopt_loader_create(&c, ds, &l) == GOPT_OK, "a loader over an accepted dataset: %s", gopt_last_error());
    int64_t seen = 0;
    for (;;) {
        gopt_batch b;
        FZ_CHECK(gopt_loader_next(l, &b) == GOPT_OK, "next");
        if (b.n == 0) break;
        seen += b.n;
        if (kind == GOPT_DATASET_TOKENS) {
            for (int64_t i = 0; i < b.n * per; i++)
                FZ_CHECK(b.tokens[i] >= 0 && b.tokens[i] < classes && b.labels[i] >= 0 && b.labels[i] < classes,
                         "token id outside the vocabulary of %d", classes);
        } else {
            FZ_CHECK(b.images != NULL, "features");
            if (b.labels)
                for (int i = 0; i < b.n; i++)
                    FZ_CHECK(b.labels[i] >= 0 && b.labels[i] < classes, "label %d of %d classes", b.labels[i], classes);
            else
                FZ_CHECK(b.targets != NULL && td >= 1, "neither labels nor targets");
        }
    }
    FZ_CHECK(seen == count, "an epoch of %lld samples from %lld", (long long)seen, (long long)count);
    gopt_loader_destroy(l);
    if (kind == GOPT_DATASET_ARRAYS) { /* a subset copies (and converts) the last and first samples */
        const int64_t idx[2] = {count - 1, 0};
        gopt_dataset *sub = NULL;
        FZ_CHECK(gopt_dataset_subset(ds, idx, 2, &sub) == GOPT_OK && gopt_dataset_count(sub) == 2, "subset: %s",
                 gopt_last_error());
        gopt_dataset_destroy(sub);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const uint8_t mode = data[0];
    gopt_dataset *ds = (gopt_dataset *)1;
    gopt_status s;
    gopt_clear_error();
    switch (mode % 4) {
    case 0: {
        const char *p = fz_file(data + 1, size - 1);
        s = gopt_dataset_from_npy(p, p, 0, &ds);
        break;
    }
    case 2: {
        const char *p = fz_file(data + 3, size - 3);
        s = gopt_dataset_from_tokens_npy(p, 1 + data[1] % 16, (data[2] & 1) ? 64 : 0, &ds);
        break;
    }
    default: {
        size_t first = (size_t)data[1] | (size_t)data[2] << 8;
        const uint8_t *rest = data + 4;
        const size_t n = size - 4;
        if (first > n) first = n;
        const char *px = fz_file(rest, first);
        const char *py = second_file(rest + first, n - first);
        s = gopt_dataset_from_npy(px, py, mode % 4 == 3 ? data[3] % 8 : 0, &ds);
        break;
    }
    }
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(s == GOPT_EFORMAT, "refused with status %d", s);
        FZ_CHECK(ds == NULL, "a refusal left *out set");
    } else {
        one_epoch(ds, size);
        gopt_dataset_destroy(ds);
    }
    fz_file_close();
    close_second();
    return 0;
}
