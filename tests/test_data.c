/* data.h: CIFAR-10 reader/writer and its error paths, datasets, split, loader (order,
 * normalisation, crop/flip geometry, determinism with and without the prefetch thread,
 * resume, data-parallel shards as DistributedSampler), synthetic data. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers -------------------------------------------------------------------------- */

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/gopt_test_data_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* Image i: every byte distinct per (i, c, y, x) pattern; byte 0..2 encode i for identification. */
static void make_images(uint8_t *images, uint8_t *labels, int64_t n, int offset) {
    for (int64_t i = 0; i < n; i++) {
        uint8_t *img = images + i * GOPT_IMAGE_BYTES;
        for (int k = 0; k < GOPT_IMAGE_BYTES; k++) img[k] = (uint8_t)((k * 7 + (i + offset) * 13 + k / 32) & 0xff);
        int64_t id = i + offset;
        img[0] = (uint8_t)(id & 0xff);
        img[1] = (uint8_t)((id >> 8) & 0xff);
        labels[i] = (uint8_t)((i + offset) % 10);
    }
}

static void write_raw(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (size) assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static gopt_dataset *make_ds(int64_t n) {
    uint8_t *images = malloc((size_t)n * GOPT_IMAGE_BYTES), *labels = malloc((size_t)n);
    make_images(images, labels, n, 0);
    gopt_dataset *ds = NULL;
    assert_ok(gopt_dataset_from_memory(images, labels, n, 10, &ds));
    free(images);
    free(labels);
    return ds;
}

static int image_id(const gopt_dataset *ds, int64_t i) {
    const uint8_t *img = gopt_dataset_images(ds) + i * GOPT_IMAGE_BYTES;
    return img[0] | (img[1] << 8);
}

/* ---- CIFAR files -------------------------------------------------------------------------- */

static void test_cifar_roundtrip(void **state) {
    (void)state;
    enum { N1 = 7, N2 = 3 };
    uint8_t im1[N1 * GOPT_IMAGE_BYTES], lb1[N1], im2[N2 * GOPT_IMAGE_BYTES], lb2[N2];
    make_images(im1, lb1, N1, 0);
    make_images(im2, lb2, N2, N1);
    assert_ok(gopt_cifar10_write(tmp_path("data_batch_1.bin"), im1, lb1, N1));
    assert_ok(gopt_cifar10_write(tmp_path("data_batch_2.bin"), im2, lb2, N2));
    struct stat st;
    assert_int_equal(stat(tmp_path("data_batch_1.bin"), &st), 0);
    assert_int_equal(st.st_size, N1 * 3073);

    /* The byte layout is the standard one: label byte then 3072 pixel bytes. */
    FILE *f = fopen(tmp_path("data_batch_1.bin"), "rb");
    uint8_t rec[3073];
    assert_non_null(f);
    assert_int_equal(fseek(f, 3073 * 2, SEEK_SET), 0);
    assert_int_equal(fread(rec, 1, sizeof rec, f), sizeof rec);
    fclose(f);
    assert_int_equal(rec[0], lb1[2]);
    assert_memory_equal(rec + 1, im1 + 2 * GOPT_IMAGE_BYTES, GOPT_IMAGE_BYTES);

    gopt_dataset *ds = NULL;
    const char *paths[2] = {tmp_path("data_batch_1.bin"), tmp_path("data_batch_2.bin")};
    assert_ok(gopt_cifar10_load_files(paths, 2, &ds));
    assert_int_equal(gopt_dataset_count(ds), N1 + N2);
    assert_int_equal(gopt_dataset_classes(ds), 10);
    assert_memory_equal(gopt_dataset_images(ds), im1, sizeof im1);
    assert_memory_equal(gopt_dataset_images(ds) + sizeof im1, im2, sizeof im2);
    assert_memory_equal(gopt_dataset_labels(ds), lb1, N1);
    assert_memory_equal(gopt_dataset_labels(ds) + N1, lb2, N2);

    /* load_dir: the selected standard names in the standard order (batch 2 then test). */
    gopt_dataset *dd = NULL;
    assert_ok(gopt_dataset_write_cifar10(ds, tmp_path("test_batch.bin")));
    assert_ok(gopt_cifar10_load_dir(tmpdir, GOPT_CIFAR10_BATCH_2 | GOPT_CIFAR10_TEST, &dd));
    assert_int_equal(gopt_dataset_count(dd), N2 + N1 + N2);
    assert_memory_equal(gopt_dataset_images(dd), im2, sizeof im2);
    assert_memory_equal(gopt_dataset_images(dd) + sizeof im2, gopt_dataset_images(ds), (N1 + N2) * GOPT_IMAGE_BYTES);
    gopt_dataset_destroy(dd);
    /* Missing data_batch_3.bin is an I/O error naming it. */
    assert_status(gopt_cifar10_load_dir(tmpdir, GOPT_CIFAR10_TRAIN_ALL, &dd), GOPT_EIO, "data_batch_3.bin");
    assert_null(dd);
    assert_status(gopt_cifar10_load_dir(tmpdir, 0, &dd), GOPT_EINVAL, "which");
    assert_status(gopt_cifar10_load_dir(tmpdir, 0x40, &dd), GOPT_EINVAL, "which");
    assert_status(gopt_cifar10_load_dir(NULL, 1, &dd), GOPT_EINVAL, "dir");
    gopt_dataset_destroy(ds);
    gopt_dataset_destroy(NULL);
}

static void test_cifar_errors(void **state) {
    (void)state;
    enum { N = 5 };
    uint8_t im[N * GOPT_IMAGE_BYTES], lb[N];
    make_images(im, lb, N, 0);
    gopt_dataset *ds = (gopt_dataset *)&ds; /* must be reset to NULL on failure */
    const char *p;

    p = tmp_path("missing.bin");
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EIO, "missing.bin: cannot open: No such file");
    assert_null(ds);

    p = tmp_path("empty.bin");
    write_raw(p, "", 0);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "empty.bin: empty file");

    /* 10 records minus one byte: 30729 bytes. The example, 30727 bytes, too. */
    assert_ok(gopt_cifar10_write(tmp_path("full.bin"), im, lb, N));
    unsigned char *raw = malloc(10 * 3073);
    for (int r = 0; r < 10; r++) {
        raw[r * 3073] = (uint8_t)(r % 10);
        memset(raw + r * 3073 + 1, r, 3072);
    }
    p = tmp_path("data_batch_1.bin");
    write_raw(p, raw, 30727);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT,
                  "data_batch_1.bin: 30727 bytes is not a whole number of 3073-byte records");
    write_raw(p, raw, 3072); /* a record missing its last byte */
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "3072 bytes is not a whole number");
    write_raw(p, raw, 3074);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "3074 bytes");

    /* Labels 10 and 12 are refused naming file and record. */
    raw[7 * 3073] = 12;
    p = tmp_path("data_batch_3.bin");
    write_raw(p, raw, 10 * 3073);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "data_batch_3.bin: record 7 has label 12");
    raw[7 * 3073] = 7;
    raw[0] = 10;
    write_raw(p, raw, 10 * 3073);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "record 0 has label 10");
    raw[0] = 0;
    raw[9 * 3073] = 255;
    write_raw(p, raw, 10 * 3073);
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EFORMAT, "record 9 has label 255");
    assert_null(ds);
    raw[9 * 3073] = 9;
    write_raw(p, raw, 10 * 3073);
    assert_ok(gopt_cifar10_load_files(&p, 1, &ds));
    assert_int_equal(gopt_dataset_count(ds), 10);
    assert_int_equal(gopt_dataset_images(ds)[9 * 3072 + 100], 9);
    gopt_dataset_destroy(ds);
    free(raw);

    /* The second file of a list is named when it is the bad one. */
    const char *two[2] = {tmp_path("full.bin"), tmp_path("empty.bin")};
    assert_status(gopt_cifar10_load_files(two, 2, &ds), GOPT_EFORMAT, "empty.bin");
    /* A directory is not a data file. */
    p = tmpdir;
    assert_status(gopt_cifar10_load_files(&p, 1, &ds), GOPT_EIO, "not a regular file");
    /* Arguments. */
    assert_status(gopt_cifar10_load_files(two, 0, &ds), GOPT_EINVAL, "n = 0");
    assert_status(gopt_cifar10_load_files(NULL, 1, &ds), GOPT_EINVAL, "paths");
    const char *nullpath[1] = {NULL};
    assert_status(gopt_cifar10_load_files(nullpath, 1, &ds), GOPT_EINVAL, "paths[0]");
    assert_status(gopt_cifar10_load_files(two, 1, NULL), GOPT_EINVAL, "out");

    /* Writer: labels must be CIFAR-10 labels; unwritable path is EIO. */
    lb[3] = 10;
    assert_status(gopt_cifar10_write(tmp_path("w.bin"), im, lb, N), GOPT_EINVAL, "label[3] = 10");
    lb[3] = 3;
    assert_status(gopt_cifar10_write("/nonexistent_dir_gopt/x.bin", im, lb, N), GOPT_EIO, "/nonexistent_dir_gopt/x.bin");
    assert_status(gopt_cifar10_write(tmp_path("w.bin"), im, lb, 0), GOPT_EINVAL, "count");
    assert_status(gopt_cifar10_write(tmp_path("w.bin"), NULL, lb, 1), GOPT_EINVAL, "images");

    /* from_memory checks labels against classes. */
    assert_status(gopt_dataset_from_memory(im, lb, N, 4, &ds), GOPT_EINVAL, "label[4] = 4");
    assert_status(gopt_dataset_from_memory(im, lb, N, 0, &ds), GOPT_EINVAL, "classes");
    assert_status(gopt_dataset_from_memory(im, lb, 0, 10, &ds), GOPT_EINVAL, "count");
}

static void test_out_of_memory(void **state) {
    (void)state;
    enum { N = 9 };
    uint8_t im[N * GOPT_IMAGE_BYTES], lb[N];
    make_images(im, lb, N, 0);
    const char *p = tmp_path("oom.bin");
    assert_ok(gopt_cifar10_write(p, im, lb, N));
    gopt_dataset *src = make_ds(20);
    int saw_ok = 0;
    for (long budget = 0; budget < 40 && !saw_ok; budget++) {
        gopt_dataset *ds = NULL, *tr = NULL, *va = NULL;
        gopt_loader *l = NULL;
        gopt_loader_config cfg = gopt_loader_config_default();
        cfg.batch_size = 4;
        testutil_fail_after(budget);
        gopt_status s1 = gopt_cifar10_load_files(&p, 1, &ds);
        gopt_status s2 = gopt_dataset_split(src, 5, 1, 3, &tr, &va);
        gopt_status s3 = gopt_loader_create(&cfg, src, &l);
        testutil_alloc_reset();
        assert_true(s1 == GOPT_OK || s1 == GOPT_ENOMEM);
        assert_true(s2 == GOPT_OK || s2 == GOPT_ENOMEM);
        assert_true(s3 == GOPT_OK || s3 == GOPT_ENOMEM);
        if (s1 != GOPT_OK) assert_null(ds);
        if (s2 != GOPT_OK) assert_true(tr == NULL && va == NULL);
        if (s3 != GOPT_OK) assert_null(l);
        saw_ok = s1 == GOPT_OK && s2 == GOPT_OK && s3 == GOPT_OK;
        gopt_dataset_destroy(ds);
        gopt_dataset_destroy(tr);
        gopt_dataset_destroy(va);
        gopt_loader_destroy(l);
    }
    assert_true(saw_ok);
    gopt_dataset_destroy(src);
}

/* ---- split ---------------------------------------------------------------------------- */

static void test_split(void **state) {
    (void)state;
    enum { N = 50 };
    gopt_dataset *ds = make_ds(N), *tr = NULL, *va = NULL;
    /* Deterministic: the last val_count images. */
    assert_ok(gopt_dataset_split(ds, 12, 0, 0, &tr, &va));
    assert_int_equal(gopt_dataset_count(tr), 38);
    assert_int_equal(gopt_dataset_count(va), 12);
    for (int i = 0; i < 38; i++) assert_int_equal(image_id(tr, i), i);
    for (int i = 0; i < 12; i++) assert_int_equal(image_id(va, i), 38 + i);
    assert_memory_equal(gopt_dataset_labels(va), gopt_dataset_labels(ds) + 38, 12);
    gopt_dataset_destroy(tr);
    gopt_dataset_destroy(va);

    /* Random: disjoint, complete, each part in dataset order, reproducible per seed. */
    int first_val[2][12];
    for (int run = 0; run < 3; run++) {
        uint64_t seed = run == 2 ? 99 : 7;
        assert_ok(gopt_dataset_split(ds, 12, 1, seed, &tr, &va));
        int seen[N] = {0};
        for (int i = 0; i < 38; i++) seen[image_id(tr, i)]++;
        for (int i = 0; i < 12; i++) seen[image_id(va, i)] += 10;
        int nval = 0;
        for (int i = 0; i < N; i++) {
            assert_true(seen[i] == 1 || seen[i] == 10);
            nval += seen[i] == 10;
        }
        assert_int_equal(nval, 12);
        for (int i = 1; i < 38; i++) assert_true(image_id(tr, i) > image_id(tr, i - 1));
        for (int i = 1; i < 12; i++) assert_true(image_id(va, i) > image_id(va, i - 1));
        /* Labels travel with their images. */
        for (int i = 0; i < 12; i++) assert_int_equal(gopt_dataset_labels(va)[i], image_id(va, i) % 10);
        if (run < 2)
            for (int i = 0; i < 12; i++) first_val[run][i] = image_id(va, i);
        else {
            int same = 1;
            for (int i = 0; i < 12; i++) same &= first_val[0][i] == image_id(va, i);
            assert_false(same); /* another seed, another split */
        }
        gopt_dataset_destroy(tr);
        gopt_dataset_destroy(va);
    }
    assert_memory_equal(first_val[0], first_val[1], sizeof first_val[0]);
    /* The trailing split differs from the random one. */
    assert_true(first_val[0][0] != 38 || first_val[0][11] != 49 || first_val[0][5] != 43);

    /* Bad sizes. */
    tr = va = (gopt_dataset *)&ds;
    assert_status(gopt_dataset_split(ds, 0, 0, 0, &tr, &va), GOPT_EINVAL, "val_count = 0 must be in 1..49");
    assert_true(tr == NULL && va == NULL);
    assert_status(gopt_dataset_split(ds, N, 1, 0, &tr, &va), GOPT_EINVAL, "val_count = 50");
    assert_status(gopt_dataset_split(ds, -3, 0, 0, &tr, &va), GOPT_EINVAL, "val_count = -3");
    assert_status(gopt_dataset_split(NULL, 3, 0, 0, &tr, &va), GOPT_EINVAL, "ds");

    /* Subset: indices checked. */
    gopt_dataset *sub = NULL;
    int64_t idx[3] = {4, 4, 49};
    assert_ok(gopt_dataset_subset(ds, idx, 3, &sub));
    assert_int_equal(image_id(sub, 0), 4);
    assert_int_equal(image_id(sub, 1), 4);
    assert_int_equal(image_id(sub, 2), 49);
    gopt_dataset_destroy(sub);
    idx[1] = 50;
    assert_status(gopt_dataset_subset(ds, idx, 3, &sub), GOPT_ERANGE, "indices[1] = 50");
    assert_null(sub);
    gopt_dataset_destroy(ds);
}

/* ---- loader ----------------------------------------------------------------------------- */

static void test_loader_normalisation_and_order(void **state) {
    (void)state;
    enum { N = 10 };
    gopt_dataset *ds = make_ds(N);
    gopt_loader_config cfg = gopt_loader_config_default();
    assert_int_equal(cfg.batch_size, 128);
    assert_true(cfg.mean[0] == 0.4914f && cfg.mean[1] == 0.4822f && cfg.mean[2] == 0.4465f);
    assert_true(cfg.std[0] == 0.2470f && cfg.std[1] == 0.2435f && cfg.std[2] == 0.2616f);
    cfg.batch_size = 4;
    cfg.shuffle = 0;
    gopt_loader *l = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 3);
    gopt_batch b;
    int sizes[3] = {4, 4, 2};
    const uint8_t *im = gopt_dataset_images(ds);
    for (int k = 0; k < 3; k++) {
        assert_ok(gopt_loader_next(l, &b));
        assert_int_equal(b.n, sizes[k]);
        assert_int_equal(b.index, k);
        assert_int_equal(b.epoch, 0);
        for (int i = 0; i < b.n; i++) {
            int s = 4 * k + i;
            assert_int_equal(b.labels[i], s % 10);
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 1024; p += 37) {
                    uint8_t v = im[s * 3072 + c * 1024 + p];
                    float want = ((float)v / 255.0f - cfg.mean[c]) / cfg.std[c];
                    assert_true(b.images[i * 3072 + c * 1024 + p] == want);
                }
        }
    }
    /* A worked value: byte 255 in the red channel is (1 - 0.4914) / 0.2470 = 2.0591. */
    assert_ok(gopt_loader_seek(l, 0, 0));
    assert_ok(gopt_loader_next(l, &b));
    int found = 0;
    for (int p = 0; p < 1024; p++)
        if (im[p] == 255) {
            assert_float_equal(b.images[p], 2.059109f, 1e-5);
            found = 1;
        }
    assert_true(found);
    assert_ok(gopt_loader_seek(l, 0, 3));
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, 0); /* end of epoch */
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, 0);
    gopt_loader_destroy(l);

    /* Overridden mean/std: mean 0, std 1 gives v / 255; drop_last drops the short batch. */
    cfg.mean[0] = cfg.mean[1] = cfg.mean[2] = 0.0f;
    cfg.std[0] = cfg.std[1] = cfg.std[2] = 1.0f;
    cfg.drop_last = 1;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 2);
    float *x = malloc(4 * 3072 * sizeof(float));
    int32_t y[4];
    int n = -1;
    assert_ok(gopt_loader_next_into(l, x, y, &n));
    assert_int_equal(n, 4);
    for (int k = 0; k < 4 * 3072; k++) assert_true(x[k] == (float)im[k] / 255.0f);
    assert_ok(gopt_loader_next_into(l, x, y, &n));
    assert_int_equal(n, 4);
    assert_ok(gopt_loader_next_into(l, x, y, &n));
    assert_int_equal(n, 0);
    free(x);
    gopt_loader_destroy(l);
    gopt_dataset_destroy(ds);
}

/* Reference crop + flip, written independently: build the padded 40x40 image, cut, mirror. */
static void reference_augment(const uint8_t *img, int pad, int dy, int dx, int flip, uint8_t *out) {
    enum { S = 32 + 2 * 16 };
    static uint8_t padded[3][S][S];
    uint8_t crop[3][32][32];
    memset(padded, 0, sizeof padded);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) padded[c][y + pad][x + pad] = img[c * 1024 + y * 32 + x];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) crop[c][y][x] = padded[c][y + dy][x + dx];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) out[c * 1024 + y * 32 + x] = crop[c][y][flip ? 31 - x : x];
}

static void test_crop_flip_geometry(void **state) {
    (void)state;
    /* One known image (no zero bytes, so padding is recognisable), repeated. */
    enum { N = 64, P = 4 };
    uint8_t *im = malloc(N * 3072), lb[N];
    for (int k = 0; k < 3072; k++) im[k] = (uint8_t)(1 + (k * 31 + k / 32 * 7) % 250);
    for (int i = 1; i < N; i++) memcpy(im + i * 3072, im, 3072);
    memset(lb, 3, sizeof lb);
    gopt_dataset *ds = NULL;
    assert_ok(gopt_dataset_from_memory(im, lb, N, 10, &ds));
    gopt_loader_config cfg = gopt_loader_config_default();
    cfg.batch_size = N;
    cfg.augment = 1;
    cfg.crop_padding = P;
    cfg.seed = 5;
    cfg.mean[0] = cfg.mean[1] = cfg.mean[2] = 0.0f;
    cfg.std[0] = cfg.std[1] = cfg.std[2] = 1.0f; /* output = pixel / 255 */
    gopt_loader *l = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    gopt_batch b;
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, N);
    int seen_dy[2 * P + 1] = {0}, seen_dx[2 * P + 1] = {0}, seen_flip[2] = {0};
    uint8_t ref[3072];
    for (int i = 0; i < N; i++) {
        int matches = 0;
        for (int dy = 0; dy <= 2 * P; dy++)
            for (int dx = 0; dx <= 2 * P; dx++)
                for (int flip = 0; flip < 2; flip++) {
                    reference_augment(im, P, dy, dx, flip, ref);
                    int eq = 1;
                    for (int k = 0; k < 3072 && eq; k++) eq = b.images[i * 3072 + k] == (float)ref[k] / 255.0f;
                    if (eq) {
                        matches++;
                        seen_dy[dy]++;
                        seen_dx[dx]++;
                        seen_flip[flip]++;
                    }
                }
        assert_int_equal(matches, 1); /* exactly one (dy, dx, flip) explains each output */
    }
    /* 64 draws cover both flips and most offsets; a stuck RNG would not. */
    assert_true(seen_flip[0] > 8 && seen_flip[1] > 8);
    int distinct_dy = 0, distinct_dx = 0;
    for (int k = 0; k <= 2 * P; k++) {
        distinct_dy += seen_dy[k] > 0;
        distinct_dx += seen_dx[k] > 0;
    }
    assert_true(distinct_dy >= 6 && distinct_dx >= 6);
    gopt_loader_destroy(l);

    /* flip only (crop_padding 0): each output is the image or its mirror. */
    cfg.crop_padding = 0;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_ok(gopt_loader_next(l, &b));
    int mirrored = 0;
    for (int i = 0; i < N; i++) {
        int same = b.images[i * 3072 + 0] == (float)im[0] / 255.0f;
        int mirror = b.images[i * 3072 + 0] == (float)im[31] / 255.0f;
        assert_true(same != mirror);
        mirrored += mirror;
        for (int y = 0; y < 32; y++)
            assert_true(b.images[i * 3072 + 2048 + y * 32 + 5] == (float)im[2048 + y * 32 + (mirror ? 26 : 5)] / 255.0f);
    }
    assert_true(mirrored > 8 && mirrored < N - 8);
    gopt_loader_destroy(l);
    gopt_dataset_destroy(ds);
    free(im);
}

/* Every batch of epochs 0..epochs-1 concatenated. */
static float *collect(gopt_loader *l, int epochs, int32_t *labels_out, size_t *count) {
    int64_t per_epoch = gopt_loader_batches_per_epoch(l);
    (void)per_epoch;
    size_t cap = 4096, n = 0;
    float *all = malloc(cap * 3072 * sizeof(float));
    for (int e = 0; e < epochs; e++) {
        assert_ok(gopt_loader_start_epoch(l, e));
        gopt_batch b;
        for (;;) {
            assert_ok(gopt_loader_next(l, &b));
            if (b.n == 0) break;
            assert_true(n + (size_t)b.n <= cap);
            memcpy(all + n * 3072, b.images, (size_t)b.n * 3072 * sizeof(float));
            memcpy(labels_out + n, b.labels, (size_t)b.n * sizeof(int32_t));
            n += (size_t)b.n;
        }
    }
    *count = n;
    return all;
}

static void test_loader_determinism(void **state) {
    (void)state;
    enum { N = 203, EPOCHS = 3 };
    gopt_dataset *ds = make_ds(N);
    gopt_loader_config cfg = gopt_loader_config_default();
    cfg.batch_size = 16;
    cfg.augment = 1;
    cfg.seed = 1234;
    gopt_loader *a = NULL, *b = NULL, *c = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &a));
    cfg.prefetch = 1;
    assert_ok(gopt_loader_create(&cfg, ds, &b));
    cfg.seed = 1235;
    assert_ok(gopt_loader_create(&cfg, ds, &c));
    int32_t la[EPOCHS * N], lb[EPOCHS * N], lc[EPOCHS * N];
    size_t na, nb, nc;
    float *xa = collect(a, EPOCHS, la, &na), *xb = collect(b, EPOCHS, lb, &nb), *xc = collect(c, EPOCHS, lc, &nc);
    assert_int_equal(na, EPOCHS * N);
    assert_int_equal(nb, na);
    /* Bit-identical with and without the prefetch thread. */
    assert_memory_equal(xa, xb, na * 3072 * sizeof(float));
    assert_memory_equal(la, lb, na * sizeof(int32_t));
    /* Another seed: another order. */
    assert_true(memcmp(la, lc, na * sizeof(int32_t)) != 0);
    /* Each epoch visits every image once, in a different order each epoch. */
    int64_t first_ids[EPOCHS][4];
    for (int e = 0; e < EPOCHS; e++) {
        int label_hist[10] = {0};
        for (int i = 0; i < N; i++) label_hist[la[e * N + i]]++;
        for (int k = 0; k < 10; k++) assert_int_equal(label_hist[k], N / 10 + (k < N % 10));
        for (int i = 0; i < 4; i++) first_ids[e][i] = la[e * N + i];
    }
    assert_true(memcmp(la, la + N, N * sizeof(int32_t)) != 0);
    assert_true(memcmp(la + N, la + 2 * N, N * sizeof(int32_t)) != 0);
    (void)first_ids;

    /* Resume mid-epoch: seek (or state save/load into a fresh loader) continues identically. */
    size_t off = (size_t)(N + 5 * 16); /* epoch 1, batch 5 */
    gopt_batch bt;
    assert_ok(gopt_loader_seek(b, 1, 5));
    assert_ok(gopt_loader_next(b, &bt));
    assert_int_equal(bt.epoch, 1);
    assert_int_equal(bt.index, 5);
    assert_memory_equal(bt.images, xa + off * 3072, 16 * 3072 * sizeof(float));
    unsigned char st[64];
    assert_true(gopt_loader_state_size(b) <= sizeof st);
    assert_ok(gopt_loader_state_save(b, st, sizeof st)); /* position: epoch 1, next batch 6 */
    cfg.seed = 1234;
    cfg.prefetch = 0;
    gopt_loader *d = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &d));
    assert_ok(gopt_loader_state_load(d, st, gopt_loader_state_size(b)));
    assert_ok(gopt_loader_next(d, &bt));
    assert_int_equal(bt.index, 6);
    assert_memory_equal(bt.images, xa + (off + 16) * 3072, 16 * 3072 * sizeof(float));
    assert_memory_equal(bt.labels, la + off + 16, 16 * sizeof(int32_t));
    /* batch_at is the same pure function, wherever the loader stands. */
    float *x = malloc(16 * 3072 * sizeof(float));
    int32_t y[16];
    int n = 0;
    assert_ok(gopt_loader_batch_at(d, 2, 12, x, y, &n));
    assert_int_equal(n, N - 12 * 16);
    assert_memory_equal(x, xa + (2 * N + 12 * 16) * 3072, (size_t)n * 3072 * sizeof(float));
    assert_status(gopt_loader_batch_at(d, 2, 13, x, y, &n), GOPT_ERANGE, "batch index 13");
    assert_status(gopt_loader_batch_at(d, -1, 0, x, y, &n), GOPT_ERANGE, "epoch");
    free(x);

    /* State mismatches are named. */
    assert_status(gopt_loader_state_load(c, st, gopt_loader_state_size(b)), GOPT_EFORMAT, "seed");
    assert_status(gopt_loader_state_load(d, st, 10), GOPT_EFORMAT, "bytes");
    st[0] ^= 1;
    assert_status(gopt_loader_state_load(d, st, gopt_loader_state_size(b)), GOPT_EFORMAT, "magic");
    st[0] ^= 1;
    cfg.batch_size = 8;
    gopt_loader *e = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &e));
    assert_status(gopt_loader_state_load(e, st, gopt_loader_state_size(b)), GOPT_EFORMAT, "batch_size");
    assert_status(gopt_loader_state_save(e, st, 8), GOPT_EINVAL, "buffer");
    gopt_loader_destroy(e);

    /* A prefetching loader survives being destroyed mid-epoch and seeks while busy. */
    assert_ok(gopt_loader_seek(b, 0, 2));
    assert_ok(gopt_loader_seek(b, 2, 0));
    assert_ok(gopt_loader_next(b, &bt));
    assert_memory_equal(bt.images, xa + (2 * N) * 3072, 16 * 3072 * sizeof(float));
    free(xa);
    free(xb);
    free(xc);
    gopt_loader_destroy(a);
    gopt_loader_destroy(b);
    gopt_loader_destroy(c);
    gopt_loader_destroy(d);
    gopt_dataset_destroy(ds);
}

static void test_loader_config_errors(void **state) {
    (void)state;
    gopt_dataset *ds = make_ds(10);
    gopt_loader *l = (gopt_loader *)&ds;
    gopt_loader_config cfg;
#define BAD(field_stmt, needle)                                                   \
    do {                                                                          \
        cfg = gopt_loader_config_default();                                       \
        field_stmt;                                                               \
        assert_status(gopt_loader_create(&cfg, ds, &l), GOPT_EINVAL, needle);    \
        assert_null(l);                                                           \
    } while (0)
    BAD(cfg.batch_size = 0, "batch_size = 0");
    BAD(cfg.crop_padding = 17, "crop_padding = 17");
    BAD(cfg.crop_padding = -1, "crop_padding = -1");
    BAD(cfg.flip = 2, "flip = 2");
    BAD(cfg.augment = -1, "augment = -1");
    BAD(cfg.shuffle = 3, "shuffle = 3");
    BAD(cfg.prefetch = 2, "prefetch = 2");
    BAD(cfg.std[1] = 0.0f, "std[1]");
    BAD(cfg.std[2] = -1.0f, "std[2]");
    BAD(cfg.std[0] = NAN, "std[0]");
    BAD(cfg.mean[2] = INFINITY, "mean[2]");
    BAD((cfg.drop_last = 1, cfg.batch_size = 11), "drop_last");
    BAD(cfg.num_replicas = 0, "num_replicas = 0 must be >= 1");
    BAD((cfg.num_replicas = -2, cfg.rank = -3), "num_replicas = -2");
    BAD((cfg.num_replicas = 2, cfg.rank = 2), "rank = 2 is outside 0..1 (num_replicas = 2)");
    BAD(cfg.rank = -1, "rank = -1 is outside 0..0");
    BAD(cfg.rank = 1, "rank = 1 is outside 0..0");
    /* 10 images over 3 ranks: 3 each once the tail is dropped, fewer than a batch of 4. */
    BAD((cfg.num_replicas = 3, cfg.rank = 2, cfg.drop_last = 1, cfg.batch_size = 4),
        "drop_last with 10 images over num_replicas = 3 (3 per rank) and batch_size = 4 leaves no batch");
#undef BAD
    cfg = gopt_loader_config_default();
    assert_status(gopt_loader_create(NULL, ds, &l), GOPT_EINVAL, "cfg");
    assert_status(gopt_loader_create(&cfg, NULL, &l), GOPT_EINVAL, "ds");
    assert_status(gopt_loader_create(&cfg, ds, NULL), GOPT_EINVAL, "out");
    /* ... while a batch of 3 fits (and 10 images over 11 ranks pad to one each). */
    cfg.num_replicas = 3;
    cfg.rank = 2;
    cfg.drop_last = 1;
    cfg.batch_size = 3;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 1);
    gopt_loader_destroy(l);
    cfg = gopt_loader_config_default();
    cfg.num_replicas = 11;
    cfg.rank = 10;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 1);
    gopt_loader_destroy(l);
    cfg = gopt_loader_config_default();
    cfg.batch_size = 3;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_status(gopt_loader_seek(l, 0, 5), GOPT_ERANGE, "batch index 5");
    assert_status(gopt_loader_seek(l, -1, 0), GOPT_ERANGE, "epoch = -1");
    assert_status(gopt_loader_next(l, NULL), GOPT_EINVAL, "out");
    assert_status(gopt_loader_next(NULL, NULL), GOPT_EINVAL, NULL);
    assert_int_equal(gopt_loader_batches_per_epoch(NULL), 0);
    gopt_loader_destroy(l);
    gopt_loader_destroy(NULL);
    gopt_dataset_destroy(ds);
}

/* ---- sharding (num_replicas / rank, as DistributedSampler) ------------------------------ */

static gopt_loader_config shard_config(int batch, int replicas, int rank, int drop_last, int augment) {
    gopt_loader_config cfg = gopt_loader_config_default();
    cfg.batch_size = batch;
    cfg.num_replicas = replicas;
    cfg.rank = rank;
    cfg.drop_last = drop_last;
    cfg.augment = augment;
    cfg.seed = 77;
    if (!augment) { /* output = byte / 255, so the image id in bytes 0..1 can be read back */
        cfg.mean[0] = cfg.mean[1] = cfg.mean[2] = 0.0f;
        cfg.std[0] = cfg.std[1] = cfg.std[2] = 1.0f;
    }
    return cfg;
}

static int float_id(const float *image) {
    return (int)lroundf(image[0] * 255.0f) | ((int)lroundf(image[1] * 255.0f) << 8);
}

/* The ids of every image rank `rank` reads in `epoch`, in order; returns how many. */
static int64_t shard_ids(const gopt_dataset *ds, int batch, int replicas, int rank, int drop_last, int64_t epoch,
                         int *ids) {
    gopt_loader_config cfg = shard_config(batch, replicas, rank, drop_last, 0);
    gopt_loader *l = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &l));
    assert_ok(gopt_loader_start_epoch(l, epoch));
    int64_t n = 0, batches = 0;
    gopt_batch b;
    for (;;) {
        assert_ok(gopt_loader_next(l, &b));
        if (b.n == 0) break;
        batches++;
        if (drop_last) assert_int_equal(b.n, batch);
        for (int i = 0; i < b.n; i++) {
            ids[n + i] = float_id(b.images + (size_t)i * 3072);
            assert_int_equal(b.labels[i], ids[n + i] % 10);
        }
        n += b.n;
    }
    assert_int_equal(batches, gopt_loader_batches_per_epoch(l));
    gopt_loader_destroy(l);
    return n;
}

/* Over the ranks, batch k of B per rank is batch k of one process with B * P: every image
 * at the same global position, augmentation included, bit for bit. */
static void test_shard_union_is_global_batch(void **state) {
    (void)state;
    enum { N = 103, B = 5, EPOCHS = 2 };
    gopt_dataset *ds = make_ds(N);
    for (int replicas = 2; replicas <= 3; replicas++) {
        gopt_loader_config cfg = shard_config(B * replicas, 1, 0, 0, 1);
        gopt_loader *single = NULL, *rank_loader[3] = {NULL, NULL, NULL};
        assert_ok(gopt_loader_create(&cfg, ds, &single));
        for (int r = 0; r < replicas; r++) {
            cfg = shard_config(B, replicas, r, 0, 1);
            cfg.prefetch = r == 1; /* the prefetch thread reads the same shard */
            assert_ok(gopt_loader_create(&cfg, ds, &rank_loader[r]));
        }
        /* ceil(103 / 2) = 52 per rank: 11 batches, the last of 2; ceil(103 / 3) = 35: 7 full. */
        const int64_t per_rank = (N + replicas - 1) / replicas, batches = (per_rank + B - 1) / B;
        assert_int_equal(gopt_loader_batches_per_epoch(rank_loader[0]), replicas == 2 ? 11 : 7);
        float *ref = malloc((size_t)B * replicas * 3072 * sizeof(float));
        int32_t ref_labels[B * 3];
        int full_batches = 0, checked_positions = 0;
        for (int64_t e = 0; e < EPOCHS; e++) {
            for (int r = 0; r < replicas; r++) assert_ok(gopt_loader_start_epoch(rank_loader[r], e));
            for (int64_t k = 0; k < batches; k++) {
                int ref_n = 0;
                assert_ok(gopt_loader_batch_at(single, e, k, ref, ref_labels, &ref_n));
                int used[B * 3] = {0}, union_n = 0;
                for (int r = 0; r < replicas; r++) {
                    gopt_batch b;
                    assert_ok(gopt_loader_next(rank_loader[r], &b));
                    assert_int_equal(b.epoch, e);
                    assert_int_equal(b.index, k);
                    assert_int_equal(b.n, k < batches - 1 ? B : per_rank - k * B);
                    union_n += b.n;
                    for (int i = 0; i < b.n; i++) {
                        const float *img = b.images + (size_t)i * 3072;
                        /* Same global position, same crop and flip. */
                        int m = i * replicas + r;
                        if ((int64_t)k * B * replicas + m < N) {
                            assert_true(m < ref_n);
                            assert_memory_equal(img, ref + (size_t)m * 3072, 3072 * sizeof(float));
                            assert_int_equal(b.labels[i], ref_labels[m]);
                            checked_positions++;
                        }
                        /* As a multiset: each rank image matches one unused image of the batch. */
                        if (ref_n == B * replicas) {
                            int found = -1;
                            for (int j = 0; j < ref_n && found < 0; j++)
                                if (!used[j] && ref_labels[j] == b.labels[i] &&
                                    memcmp(ref + (size_t)j * 3072, img, 3072 * sizeof(float)) == 0)
                                    found = j;
                            assert_true(found >= 0);
                            used[found] = 1;
                        }
                    }
                }
                if (ref_n == B * replicas) {
                    assert_int_equal(union_n, ref_n);
                    full_batches++;
                }
            }
            for (int r = 0; r < replicas; r++) {
                gopt_batch b;
                assert_ok(gopt_loader_next(rank_loader[r], &b));
                assert_int_equal(b.n, 0);
            }
        }
        assert_int_equal(full_batches, EPOCHS * (N / (B * replicas)));
        assert_int_equal(checked_positions, EPOCHS * N);
        /* Epochs differ (the test would pass trivially on a constant order otherwise). */
        float *x0 = malloc((size_t)B * 3072 * sizeof(float)), *x1 = malloc((size_t)B * 3072 * sizeof(float));
        int32_t y0[B], y1[B];
        int n0, n1;
        assert_ok(gopt_loader_batch_at(rank_loader[0], 0, 0, x0, y0, &n0));
        assert_ok(gopt_loader_batch_at(rank_loader[0], 1, 0, x1, y1, &n1));
        assert_true(memcmp(x0, x1, (size_t)B * 3072 * sizeof(float)) != 0);
        /* Ranks read different images. */
        assert_ok(gopt_loader_batch_at(rank_loader[1], 0, 0, x1, y1, &n1));
        assert_true(memcmp(x0, x1, (size_t)B * 3072 * sizeof(float)) != 0);
        free(x0);
        free(x1);
        free(ref);
        gopt_loader_destroy(single);
        for (int r = 0; r < replicas; r++) gopt_loader_destroy(rank_loader[r]);
    }
    gopt_dataset_destroy(ds);
}

/* Per-rank counts, padding from the permutation's start, dropping the tail, disjointness. */
static void test_shard_counts_padding_disjoint(void **state) {
    (void)state;
    enum { N = 103, B = 5 };
    gopt_dataset *ds = make_ds(N);
    int perm[N], ids[3][64], seen[N];
    for (int64_t e = 0; e < 2; e++) {
        /* The epoch's permutation, as one process reads it. */
        assert_int_equal(shard_ids(ds, N, 1, 0, 0, e, perm), N);
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < N; i++) seen[perm[i]]++;
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
        for (int replicas = 2; replicas <= 3; replicas++) {
            /* drop_last = 0: ceil(N / P) each (52, 35); rank r's sample j is position jP + r,
             * and the positions past N repeat the permutation from its start. */
            const int64_t ceil_n = (N + replicas - 1) / replicas;
            memset(seen, 0, sizeof seen);
            for (int r = 0; r < replicas; r++) {
                assert_int_equal(shard_ids(ds, B, replicas, r, 0, e, ids[r]), ceil_n);
                for (int64_t j = 0; j < ceil_n; j++) {
                    int64_t q = j * replicas + r;
                    assert_int_equal(ids[r][j], perm[q % N]);
                    seen[ids[r][j]]++;
                }
            }
            const int pad = (int)(ceil_n * replicas - N); /* 1 for P = 2, 2 for P = 3 */
            assert_int_equal(pad, replicas - 1);
            if (replicas == 2) assert_int_equal(ids[1][51], perm[0]); /* position 103 */
            if (replicas == 3) {
                assert_int_equal(ids[1][34], perm[0]); /* position 103 */
                assert_int_equal(ids[2][34], perm[1]); /* position 104 */
            }
            for (int i = 0; i < N; i++) assert_int_equal(seen[perm[i]], i < pad ? 2 : 1);

            /* drop_last = 1: floor(N / P) each (51, 34), then whole batches only (50, 30);
             * the shards are disjoint and cover the permutation's first positions. */
            const int64_t floor_n = N / replicas, kept = floor_n / B * B;
            memset(seen, 0, sizeof seen);
            for (int r = 0; r < replicas; r++) {
                assert_int_equal(shard_ids(ds, B, replicas, r, 1, e, ids[r]), kept);
                for (int64_t j = 0; j < kept; j++) {
                    assert_int_equal(ids[r][j], perm[j * replicas + r]);
                    seen[ids[r][j]]++;
                }
            }
            for (int i = 0; i < N; i++) assert_int_equal(seen[perm[i]], i < kept * replicas ? 1 : 0);
        }
    }
    gopt_dataset_destroy(ds);

    /* When P divides the count the shards are disjoint and cover every image once, with
     * drop_last 0 (no padding) as with 1 (batches of 17 divide 102 / 2 and 102 / 3). */
    enum { M = 102 };
    ds = make_ds(M);
    for (int replicas = 2; replicas <= 3; replicas++)
        for (int drop_last = 0; drop_last <= 1; drop_last++) {
            memset(seen, 0, sizeof seen);
            int64_t total = 0;
            for (int r = 0; r < replicas; r++) {
                int64_t n = shard_ids(ds, 17, replicas, r, drop_last, 1, ids[r]);
                assert_int_equal(n, M / replicas);
                for (int64_t j = 0; j < n; j++) seen[ids[r][j]]++;
                total += n;
            }
            assert_int_equal(total, M);
            for (int i = 0; i < M; i++) assert_int_equal(seen[i], 1);
        }
    gopt_dataset_destroy(ds);

    /* Fewer images than ranks: every rank still gets one, padded cyclically. */
    ds = make_ds(2);
    int few[3][4];
    assert_int_equal(shard_ids(ds, 2, 1, 0, 0, 0, perm), 2);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(shard_ids(ds, 4, 3, r, 0, 0, few[r]), 1);
        assert_int_equal(few[r][0], perm[r % 2]);
    }
    gopt_dataset_destroy(ds);
}

/* seek, batch_at and the state of a sharded loader; world-size mismatches refused. */
static void test_shard_seek_and_state(void **state) {
    (void)state;
    enum { N = 103, B = 5 };
    gopt_dataset *ds = make_ds(N);
    gopt_loader_config cfg = shard_config(B, 3, 1, 0, 1);
    gopt_loader *a = NULL, *b = NULL, *other_rank = NULL, *two = NULL, *one = NULL;
    assert_ok(gopt_loader_create(&cfg, ds, &a));
    cfg.prefetch = 1;
    assert_ok(gopt_loader_create(&cfg, ds, &b));
    cfg.prefetch = 0;
    cfg.rank = 2;
    assert_ok(gopt_loader_create(&cfg, ds, &other_rank));
    cfg = shard_config(B, 2, 1, 0, 1);
    assert_ok(gopt_loader_create(&cfg, ds, &two));
    cfg = shard_config(B, 1, 0, 0, 1);
    assert_ok(gopt_loader_create(&cfg, ds, &one));
    float *want = malloc(B * 3072 * sizeof(float));
    int32_t want_labels[B];
    int n = 0;
    gopt_batch bt;

    /* No allocation after create: next, seek, batch_at, state save and load. */
    unsigned char st[64], st_other[64];
    assert_true(gopt_loader_state_size(a) <= sizeof st);
    testutil_fail_after(-1); /* count allocations, never fail */
    assert_ok(gopt_loader_seek(a, 1, 3));
    assert_ok(gopt_loader_next(a, &bt));
    assert_int_equal(bt.epoch, 1);
    assert_int_equal(bt.index, 3);
    assert_ok(gopt_loader_batch_at(a, 1, 3, want, want_labels, &n));
    assert_int_equal(n, B);
    assert_memory_equal(bt.images, want, B * 3072 * sizeof(float));
    assert_ok(gopt_loader_state_save(a, st, sizeof st)); /* epoch 1, next batch 4 */
    assert_ok(gopt_loader_state_load(b, st, gopt_loader_state_size(a)));
    assert_ok(gopt_loader_next(b, &bt));
    assert_int_equal(bt.index, 4);
    assert_ok(gopt_loader_batch_at(a, 1, 4, want, want_labels, &n));
    assert_memory_equal(bt.images, want, B * 3072 * sizeof(float));
    assert_memory_equal(bt.labels, want_labels, B * sizeof(int32_t));
    /* The last, padded batch and the end of the epoch after a seek. */
    assert_ok(gopt_loader_seek(b, 0, 6));
    assert_ok(gopt_loader_next(b, &bt));
    assert_int_equal(bt.n, 5);
    assert_ok(gopt_loader_batch_at(a, 0, 6, want, want_labels, &n));
    assert_memory_equal(bt.images, want, B * 3072 * sizeof(float));
    assert_ok(gopt_loader_next(b, &bt));
    assert_int_equal(bt.n, 0);
    assert_int_equal(testutil_alloc_count, 0);
    testutil_alloc_reset();

    /* Another rank of the same world size loads the state (every rank loads the checkpoint
     * rank 0 wrote) and continues from the same position with its own shard. */
    assert_ok(gopt_loader_state_load(other_rank, st, gopt_loader_state_size(a)));
    assert_ok(gopt_loader_next(other_rank, &bt));
    assert_int_equal(bt.epoch, 1);
    assert_int_equal(bt.index, 4);
    assert_ok(gopt_loader_batch_at(other_rank, 1, 4, want, want_labels, &n));
    assert_memory_equal(bt.images, want, B * 3072 * sizeof(float));
    assert_ok(gopt_loader_batch_at(a, 1, 4, want, want_labels, &n));
    assert_true(memcmp(bt.images, want, B * 3072 * sizeof(float)) != 0);
    assert_ok(gopt_loader_state_save(other_rank, st_other, sizeof st_other));
    assert_true(memcmp(st, st_other, gopt_loader_state_size(a)) != 0); /* the rank is recorded */

    /* Another world size is refused, naming both. */
    assert_status(gopt_loader_state_load(two, st, gopt_loader_state_size(a)), GOPT_EFORMAT,
                  "saved with num_replicas 3 (by rank 1), this loader has num_replicas 2 (rank 1)");
    assert_status(gopt_loader_state_load(one, st, gopt_loader_state_size(a)), GOPT_EFORMAT,
                  "num_replicas 3 (by rank 1), this loader has num_replicas 1 (rank 0)");
    assert_ok(gopt_loader_state_save(one, st_other, sizeof st_other));
    assert_status(gopt_loader_state_load(a, st_other, gopt_loader_state_size(a)), GOPT_EFORMAT,
                  "saved with num_replicas 1 (by rank 0), this loader has num_replicas 3 (rank 1)");
    /* A corrupt rank field is refused too. */
    memcpy(st_other, st, sizeof st);
    uint32_t bad_rank = 3;
    memcpy(st_other + gopt_loader_state_size(a) - 4, &bad_rank, 4);
    assert_status(gopt_loader_state_load(a, st_other, gopt_loader_state_size(a)), GOPT_EFORMAT,
                  "rank 3 is outside 0..2");

    /* A state saved before sharding existed (LDR1: the same fields without num_replicas and
     * rank, 8 bytes shorter) loads into a loader of one process and is refused by a shard. */
    unsigned char v1[48], *p = v1;
    const uint32_t magic = 'L' | ('D' << 8) | ('R' << 16) | ((uint32_t)'1' << 24), bs = B, zero = 0, on = 1;
    const uint64_t seed = 77;
    const int64_t count = N, epoch = 2, next = 7;
    memcpy(p, &magic, 4), p += 4;
    memcpy(p, &seed, 8), p += 8;
    memcpy(p, &count, 8), p += 8;
    memcpy(p, &bs, 4), p += 4;
    memcpy(p, &zero, 4), p += 4; /* drop_last */
    memcpy(p, &on, 4), p += 4;   /* shuffle */
    memcpy(p, &epoch, 8), p += 8;
    memcpy(p, &next, 8), p += 8;
    assert_int_equal(p - v1, 48);
    assert_int_equal(gopt_loader_state_size(one), 56);
    assert_ok(gopt_loader_state_load(one, v1, sizeof v1));
    assert_ok(gopt_loader_next(one, &bt));
    assert_int_equal(bt.epoch, 2);
    assert_int_equal(bt.index, 7);
    assert_ok(gopt_loader_batch_at(one, 2, 7, want, want_labels, &n));
    assert_memory_equal(bt.images, want, B * 3072 * sizeof(float));
    assert_status(gopt_loader_state_load(a, v1, sizeof v1), GOPT_EFORMAT,
                  "(LDR1, single process): saved with num_replicas 1 (by rank 0), this loader has num_replicas 3");
    assert_status(gopt_loader_state_load(one, v1, 40), GOPT_EFORMAT, "(LDR1) is 40 bytes, expected 48");
    assert_status(gopt_loader_state_load(one, st, 48), GOPT_EFORMAT, "is 48 bytes, expected 56");
    assert_status(gopt_loader_state_load(one, st, 3), GOPT_EFORMAT, "is 3 bytes, expected 56");

    free(want);
    gopt_loader_destroy(a);
    gopt_loader_destroy(b);
    gopt_loader_destroy(other_rank);
    gopt_loader_destroy(two);
    gopt_loader_destroy(one);
    gopt_dataset_destroy(ds);
}

/* ---- synthetic ------------------------------------------------------------------------- */

static void test_synthetic(void **state) {
    (void)state;
    enum { N = 2000, K = 10 };
    gopt_dataset *a = NULL, *b = NULL, *c = NULL;
    assert_ok(gopt_dataset_synthetic(N, K, 42, &a));
    assert_ok(gopt_dataset_synthetic(N, K, 42, &b));
    assert_ok(gopt_dataset_synthetic(N, K, 43, &c));
    assert_int_equal(gopt_dataset_count(a), N);
    assert_int_equal(gopt_dataset_classes(a), K);
    assert_memory_equal(gopt_dataset_images(a), gopt_dataset_images(b), (size_t)N * 3072);
    assert_true(memcmp(gopt_dataset_images(a), gopt_dataset_images(c), (size_t)N * 3072) != 0);
    for (int i = 0; i < N; i++) assert_int_equal(gopt_dataset_labels(a)[i], i % K);
    /* Colour alone carries some signal (pairs of classes share a colour), but not all of it:
     * nearest class mean of per-channel averages, fitted on the first half, scored on the
     * second, lands well above chance (10%) and well below what the stripes allow. */
    double mean[K][3] = {{0}};
    const uint8_t *im = gopt_dataset_images(a);
    double feat[N][3];
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < 3; ch++) {
            double s = 0;
            for (int p = 0; p < 1024; p++) s += im[i * 3072 + ch * 1024 + p];
            feat[i][ch] = s / 1024;
        }
    for (int i = 0; i < N / 2; i++)
        for (int ch = 0; ch < 3; ch++) mean[i % K][ch] += feat[i][ch] / (N / 2 / K);
    int correct = 0;
    for (int i = N / 2; i < N; i++) {
        int best = 0;
        double bd = 1e30;
        for (int k = 0; k < K; k++) {
            double d = 0;
            for (int ch = 0; ch < 3; ch++) d += (feat[i][ch] - mean[k][ch]) * (feat[i][ch] - mean[k][ch]);
            if (d < bd) {
                bd = d;
                best = k;
            }
        }
        correct += best == i % K;
    }
    print_message("synthetic: nearest-colour-mean accuracy %.3f\n", correct / (double)(N / 2));
    assert_true(correct > N / 2 * 3 / 10);
    assert_true(correct < N / 2 * 8 / 10);
    /* Not saturated: pixels use the range. */
    int hist_lo = 0, hist_hi = 0;
    for (size_t k = 0; k < (size_t)N * 3072; k++) {
        hist_lo += im[k] < 64;
        hist_hi += im[k] > 192;
    }
    assert_true(hist_lo > 0 && hist_hi > 0);
    /* Works with the loader like any dataset. */
    gopt_loader_config cfg = gopt_loader_config_default();
    gopt_loader *l = NULL;
    assert_ok(gopt_loader_create(&cfg, a, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), (N + 127) / 128);
    gopt_loader_destroy(l);
    gopt_dataset *d = (gopt_dataset *)&d;
    assert_status(gopt_dataset_synthetic(0, 10, 1, &d), GOPT_EINVAL, "count = 0");
    assert_null(d);
    assert_status(gopt_dataset_synthetic(10, 1, 1, &d), GOPT_EINVAL, "classes = 1");
    assert_status(gopt_dataset_synthetic(10, 257, 1, &d), GOPT_EINVAL, "classes = 257");
    assert_status(gopt_dataset_synthetic(10, 10, 1, NULL), GOPT_EINVAL, "out");
    /* Synthetic sets with 10 classes can be written as CIFAR-10 files and read back. */
    assert_ok(gopt_dataset_write_cifar10(a, tmp_path("syn.bin")));
    const char *p = tmp_path("syn.bin");
    assert_ok(gopt_cifar10_load_files(&p, 1, &d));
    assert_memory_equal(gopt_dataset_images(d), gopt_dataset_images(a), (size_t)N * 3072);
    gopt_dataset_destroy(d);
    gopt_dataset_destroy(a);
    gopt_dataset_destroy(b);
    gopt_dataset_destroy(c);
    assert_ok(gopt_dataset_synthetic(50, 12, 1, &a));
    assert_status(gopt_dataset_write_cifar10(a, tmp_path("x.bin")), GOPT_EINVAL, "label[10] = 10");
    gopt_dataset_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar_roundtrip),
        cmocka_unit_test(test_cifar_errors),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_loader_normalisation_and_order),
        cmocka_unit_test(test_crop_flip_geometry),
        cmocka_unit_test(test_loader_determinism),
        cmocka_unit_test(test_loader_config_errors),
        cmocka_unit_test(test_shard_union_is_global_batch),
        cmocka_unit_test(test_shard_counts_padding_disjoint),
        cmocka_unit_test(test_shard_seek_and_state),
        cmocka_unit_test(test_synthetic),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
