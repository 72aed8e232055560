/* CIFAR-10 binary files: reader and writer (see gradopt/data.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "io/dataset.h"

/* ---- CIFAR-10 binary files ------------------------------------------------------------ */

#define READ_CHUNK_RECORDS 256

static gopt_status file_records(const char *path, int64_t *records) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return GOPT_FAIL(GOPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st);
    int err = errno;
    close(fd);
    if (rc != 0) return GOPT_FAIL(GOPT_EIO, "%s: cannot stat: %s", path, strerror(err));
    if (!S_ISREG(st.st_mode)) return GOPT_FAIL(GOPT_EIO, "%s: not a regular file", path);
    if (st.st_size == 0) return GOPT_FAIL(GOPT_EFORMAT, "%s: empty file (0 records)", path);
    if (st.st_size % GOPT_CIFAR10_RECORD_BYTES != 0)
        return GOPT_FAIL(GOPT_EFORMAT, "%s: %lld bytes is not a whole number of %d-byte records", path,
                         (long long)st.st_size, GOPT_CIFAR10_RECORD_BYTES);
    *records = (int64_t)(st.st_size / GOPT_CIFAR10_RECORD_BYTES);
    return GOPT_OK;
}

/* Read exactly n bytes (retrying short reads); 0 on success, else sets *got. */
static int read_full(int fd, unsigned char *buf, size_t n, size_t *got) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            *got = done;
            return r < 0 ? -1 : 1;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static gopt_status read_file_into(const char *path, int64_t records, unsigned char *chunk, gopt_dataset *ds,
                                  int64_t first) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return GOPT_FAIL(GOPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    gopt_status s = GOPT_OK;
    for (int64_t r = 0; r < records && s == GOPT_OK; r += READ_CHUNK_RECORDS) {
        int64_t n = records - r < READ_CHUNK_RECORDS ? records - r : READ_CHUNK_RECORDS;
        size_t got = 0;
        int rc = read_full(fd, chunk, (size_t)n * GOPT_CIFAR10_RECORD_BYTES, &got);
        if (rc < 0) {
            s = GOPT_FAIL(GOPT_EIO, "%s: read failed at byte %lld: %s", path,
                          (long long)(r * GOPT_CIFAR10_RECORD_BYTES + (int64_t)got), strerror(errno));
            break;
        }
        if (rc > 0) {
            s = GOPT_FAIL(GOPT_EIO, "%s: file shrank while reading (ends at byte %lld)", path,
                          (long long)(r * GOPT_CIFAR10_RECORD_BYTES + (int64_t)got));
            break;
        }
        for (int64_t k = 0; k < n; k++) {
            const unsigned char *rec = chunk + (size_t)k * GOPT_CIFAR10_RECORD_BYTES;
            if (rec[0] >= GOPT_CIFAR10_CLASSES) {
                s = GOPT_FAIL(GOPT_EFORMAT, "%s: record %lld has label %d (labels are 0..9)", path,
                              (long long)(r + k), rec[0]);
                break;
            }
            int64_t dst = first + r + k;
            ds->labels[dst] = rec[0];
            memcpy(ds->images + (size_t)dst * GOPT_IMAGE_BYTES, rec + 1, GOPT_IMAGE_BYTES);
        }
    }
    close(fd);
    return s;
}

gopt_status gopt_cifar10_load_files(const char *const paths[], int n, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(paths);
    if (n < 1) return GOPT_FAIL(GOPT_EINVAL, "n = %d files; need at least 1", n);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!paths[i]) return GOPT_FAIL(GOPT_EINVAL, "paths[%d] is NULL", i);
        int64_t records;
        GOPT_TRY(file_records(paths[i], &records));
        if (total > INT64_MAX - records) return GOPT_FAIL(GOPT_EOVERFLOW, "too many records");
        total += records;
    }
    gopt_dataset *ds;
    GOPT_TRY(gopt__dataset_alloc(total, GOPT_CIFAR10_CLASSES, &ds));
    unsigned char *chunk = gopt__malloc((size_t)READ_CHUNK_RECORDS * GOPT_CIFAR10_RECORD_BYTES);
    if (!chunk) {
        gopt_dataset_destroy(ds);
        return GOPT_FAIL(GOPT_ENOMEM, "read buffer");
    }
    int64_t first = 0;
    gopt_status s = GOPT_OK;
    for (int i = 0; i < n && s == GOPT_OK; i++) {
        int64_t records;
        s = file_records(paths[i], &records); /* again: the size must not have changed */
        if (s == GOPT_OK && first + records > total)
            s = GOPT_FAIL(GOPT_EIO, "%s: file grew while loading", paths[i]);
        if (s == GOPT_OK) s = read_file_into(paths[i], records, chunk, ds, first);
        first += records;
    }
    gopt__free(chunk);
    if (s == GOPT_OK && first != total) s = GOPT_FAIL(GOPT_EIO, "files changed size while loading");
    if (s != GOPT_OK) {
        gopt_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return GOPT_OK;
}

gopt_status gopt_cifar10_load_dir(const char *dir, unsigned which, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(dir);
    if (which == 0 || (which & ~0x3fu))
        return GOPT_FAIL(GOPT_EINVAL, "which = 0x%x is not a non-empty set of GOPT_CIFAR10_* bits", which);
    static const char *names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    char *paths[6] = {0};
    int n = 0;
    size_t dlen = strlen(dir);
    gopt_status s = GOPT_OK;
    for (int i = 0; i < 6; i++) {
        if (!(which & (1u << i))) continue;
        size_t len = dlen + 1 + strlen(names[i]) + 1;
        paths[n] = gopt__malloc(len);
        if (!paths[n]) {
            s = GOPT_FAIL(GOPT_ENOMEM, "path");
            break;
        }
        snprintf(paths[n], len, "%s/%s", dir, names[i]);
        n++;
    }
    if (s == GOPT_OK) s = gopt_cifar10_load_files((const char *const *)paths, n, out);
    for (int i = 0; i < n; i++) gopt__free(paths[i]);
    return s;
}

gopt_status gopt_cifar10_write(const char *path, const uint8_t *images, const uint8_t *labels, int64_t count) {
    GOPT_CHECK_NULL(path);
    GOPT_CHECK_NULL(images);
    GOPT_CHECK_NULL(labels);
    if (count < 1) return GOPT_FAIL(GOPT_EINVAL, "count = %lld must be >= 1", (long long)count);
    for (int64_t i = 0; i < count; i++)
        if (labels[i] >= GOPT_CIFAR10_CLASSES)
            return GOPT_FAIL(GOPT_EINVAL, "%s: label[%lld] = %d is not 0..9", path, (long long)i, labels[i]);
    FILE *f = fopen(path, "wb");
    if (!f) return GOPT_FAIL(GOPT_EIO, "%s: cannot create: %s", path, strerror(errno));
    int ok = 1;
    for (int64_t i = 0; i < count && ok; i++) {
        ok = fputc(labels[i], f) != EOF &&
             fwrite(images + (size_t)i * GOPT_IMAGE_BYTES, 1, GOPT_IMAGE_BYTES, f) == GOPT_IMAGE_BYTES;
    }
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) return GOPT_FAIL(GOPT_EIO, "%s: write failed: %s", path, strerror(err));
    return GOPT_OK;
}

gopt_status gopt_dataset_write_cifar10(const gopt_dataset *ds, const char *path) {
    GOPT_CHECK_NULL(ds);
    if (ds->kind != GOPT_DATASET_IMAGES) return GOPT_FAIL(GOPT_EINVAL, "ds is not an image dataset");
    return gopt_cifar10_write(path, ds->images, ds->labels, ds->count);
}
