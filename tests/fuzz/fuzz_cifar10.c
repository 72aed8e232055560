/* fuzz_cifar10: the CIFAR-10 binary reader (gopt_cifar10_load_files) on arbitrary files,
 * then what consumes a dataset (split, loader with augmentation, a whole epoch). An
 * accepted file must hold exactly size / 3073 records whose bytes are the file's. */
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    const char *paths[2] = {path, path};
    gopt_dataset *ds = (gopt_dataset *)1;
    gopt_clear_error();
    /* one file, or the same file twice (the multi-file path), chosen by the size */
    const int nfiles = 1 + (int)(size & 1);
    gopt_status s = gopt_cifar10_load_files(paths, nfiles, &ds);
    fz_file_close();
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(ds == NULL, "a failed load left *out set");
        FZ_CHECK(size == 0 || size % GOPT_CIFAR10_RECORD_BYTES != 0 || s == GOPT_EFORMAT,
                 "whole records refused with status %d", s);
        return 0;
    }
    const int64_t per_file = (int64_t)(size / GOPT_CIFAR10_RECORD_BYTES), count = gopt_dataset_count(ds);
    FZ_CHECK(size % GOPT_CIFAR10_RECORD_BYTES == 0 && count == nfiles * per_file,
             "%zu bytes in %d files accepted as %lld records", size, nfiles, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *rec = data + (size_t)(i % per_file) * GOPT_CIFAR10_RECORD_BYTES;
        FZ_CHECK(gopt_dataset_labels(ds)[i] == rec[0] && rec[0] < 10, "record %lld: label mismatch", (long long)i);
        FZ_CHECK(memcmp(gopt_dataset_images(ds) + (size_t)i * GOPT_IMAGE_BYTES, rec + 1, GOPT_IMAGE_BYTES) == 0,
                 "record %lld: pixels differ from the file", (long long)i);
    }
    gopt_dataset *train = NULL, *val = NULL;
    if (count >= 2) FZ_CHECK(gopt_dataset_split(ds, 1, 1, size, &train, &val) == GOPT_OK, "split of %lld", (long long)count);
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = 3;
    lc.augment = 1;
    lc.seed = size;
    gopt_loader *l;
    FZ_CHECK(gopt_loader_create(&lc, train ? train : ds, &l) == GOPT_OK, "loader over an accepted dataset");
    static float images[3 * GOPT_IMAGE_BYTES];
    int32_t labels[3];
    int n, batches = 0;
    while (gopt_loader_next_into(l, images, labels, &n) == GOPT_OK && n > 0) {
        for (int k = 0; k < n; k++) FZ_CHECK(labels[k] >= 0 && labels[k] < 10, "a label out of range in a batch");
        batches++;
    }
    FZ_CHECK(batches == gopt_loader_batches_per_epoch(l), "%d batches, expected %lld", batches,
             (long long)gopt_loader_batches_per_epoch(l));
    gopt_loader_destroy(l);
    gopt_dataset_destroy(train);
    gopt_dataset_destroy(val);
    gopt_dataset_destroy(ds);
    return 0;
}
