/* Datasets from float arrays, .npy files and token streams through gopt_loader (data.h):
 * batches and the short last batch, copy and borrow, subset and split, determinism per
 * seed, prefetch, state save/load resuming the same batch sequence, drop_last, per-batch
 * transforms, token windows and next-token targets, allocation failures, and an MLP trained
 * from arrays through the public API with one dlogits buffer for every batch size (the
 * losses' side of the short batch is tested in test_loss_batch; the .npy reader, and a
 * mapped file larger than RAM, in test_npy).
 *
 * With `--numpy PYTHON DIR` (test_data_array_numpy): NumPy writes the .npy files (float64
 * features, int64 labels, float32 in format 2.0 and 3.0, big-endian and Fortran-order ones
 * that must be refused), and an MLP is trained from them. Exit 77 (skipped) without numpy. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- data ------------------------------------------------------------------------------- */

enum { F = 4, K = 3 };

/* Three Gaussian blobs in 4-D: sample i has class i % 3. */
static void blobs(float *x, int32_t *y, int64_t n, uint64_t seed) {
    static const float centers[K][F] = {{2, 0, 0, 0}, {0, 2, 0, 0}, {0, 0, 2, -1}};
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % K);
        for (int f = 0; f < F; f++) x[i * F + f] = centers[y[i]][f] + 0.7f * gopt_rng_normal(&rng);
    }
}

/* Sample i's features are (i, i + 0.5, ...): a batch row tells which sample it holds. */
static gopt_dataset *indexed(int64_t n, int with_targets) {
    float *x = malloc((size_t)n * 6 * sizeof(float)), *t = malloc((size_t)n * 2 * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < 6; k++) x[i * 6 + k] = (float)i + 0.5f * (float)k;
        t[2 * i] = -(float)i;
        t[2 * i + 1] = (float)(i * i);
        y[i] = (int32_t)(i % 5);
    }
    const int64_t xs[2] = {2, 3}, ts[1] = {2};
    gopt_dataset *ds;
    if (with_targets) assert_ok(gopt_dataset_from_floats_targets(x, n, 2, xs, t, 1, ts, GOPT_DATA_COPY, &ds));
    else assert_ok(gopt_dataset_from_floats(x, n, 2, xs, y, 5, GOPT_DATA_COPY, &ds));
    free(x);
    free(t);
    free(y);
    return ds;
}

/* The samples of one epoch, batch after batch (-1 between batches), into seq; returns length. */
static int epoch_sequence(gopt_loader *l, int64_t epoch, int *seq, int cap) {
    assert_ok(gopt_loader_start_epoch(l, epoch));
    int k = 0;
    for (;;) {
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        if (b.n == 0) break;
        for (int i = 0; i < b.n; i++) {
            assert_true(k < cap);
            seq[k++] = (int)b.images[i * 6];
        }
        assert_true(k < cap);
        seq[k++] = -1;
    }
    return k;
}

/* ---- datasets and batches -------------------------------------------------------------- */

static void test_batches_and_short_last(void **state) {
    (void)state;
    gopt_dataset *ds = indexed(10, 0);
    assert_int_equal(gopt_dataset_kind_of(ds), GOPT_DATASET_ARRAYS);
    assert_int_equal(gopt_dataset_count(ds), 10);
    assert_int_equal(gopt_dataset_classes(ds), 5);
    assert_null(gopt_dataset_images(ds));
    int64_t sh[3];
    assert_int_equal(gopt_dataset_sample_shape(ds, sh), 2);
    assert_true(sh[0] == 2 && sh[1] == 3);
    assert_int_equal(gopt_dataset_target_shape(ds, sh), 0);
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 4;
    c.shuffle = 0;
    gopt_loader *l;
    assert_ok(gopt_loader_create(&c, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 3);
    const int sizes[3] = {4, 4, 2};
    for (int k = 0; k < 3; k++) {
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        assert_int_equal(b.n, sizes[k]);
        assert_int_equal(b.index, k);
        assert_null(b.targets);
        assert_null(b.tokens);
        for (int i = 0; i < b.n; i++) {
            const int s = 4 * k + i;
            for (int e = 0; e < 6; e++) assert_true(b.images[i * 6 + e] == (float)s + 0.5f * (float)e);
            assert_int_equal(b.labels[i], s % 5);
        }
    }
    gopt_batch b;
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, 0);
    /* next_into and batch_at give the same as next */
    float xs[4 * 6];
    int32_t ys[4];
    int n;
    assert_ok(gopt_loader_batch_at(l, 0, 2, xs, ys, &n));
    assert_int_equal(n, 2);
    assert_true(xs[6] == 9.0f && ys[1] == 4);
    assert_ok(gopt_loader_start_epoch(l, 0));
    assert_ok(gopt_loader_next_into(l, xs, ys, &n));
    assert_true(n == 4 && xs[6] == 1.0f && ys[3] == 3);
    gopt_loader_destroy(l);
    /* drop_last: two full batches, the short one dropped */
    c.drop_last = 1;
    assert_ok(gopt_loader_create(&c, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 2);
    for (int k = 0; k < 2; k++) {
        assert_ok(gopt_loader_next(l, &b));
        assert_int_equal(b.n, 4);
    }
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, 0);
    gopt_loader_destroy(l);
    c.batch_size = 11;
    assert_status(gopt_loader_create(&c, ds, &l), GOPT_EINVAL, "leaves no batch");
    c = gopt_loader_config_default();
    c.augment = 1;
    assert_status(gopt_loader_create(&c, ds, &l), GOPT_EINVAL, "this dataset is not images");
    /* subset and split copy samples; the CIFAR-10 writer is for images only */
    gopt_dataset *sub;
    int64_t idx[3] = {9, 0, 9};
    assert_ok(gopt_dataset_subset(ds, idx, 3, &sub));
    assert_int_equal(gopt_dataset_count(sub), 3);
    assert_int_equal(gopt_dataset_classes(sub), 5);
    c = gopt_loader_config_default();
    c.batch_size = 3;
    c.shuffle = 0;
    assert_ok(gopt_loader_create(&c, sub, &l));
    assert_ok(gopt_loader_next(l, &b));
    assert_true(b.n == 3 && b.images[0] == 9.0f && b.images[6] == 0.0f && b.images[17] == 11.5f);
    assert_true(b.labels[0] == 4 && b.labels[1] == 0 && b.labels[2] == 4);
    gopt_loader_destroy(l);
    gopt_dataset_destroy(sub);
    idx[1] = 10;
    assert_status(gopt_dataset_subset(ds, idx, 3, &sub), GOPT_ERANGE, "indices[1] = 10 is outside 0..9");
    gopt_dataset *tr, *va;
    assert_ok(gopt_dataset_split(ds, 3, 1, 8, &tr, &va));
    assert_int_equal(gopt_dataset_count(tr), 7);
    assert_int_equal(gopt_dataset_count(va), 3);
    int hit[10] = {0};
    gopt_dataset *parts[2] = {tr, va};
    for (int p = 0; p < 2; p++) {
        assert_int_equal(gopt_dataset_kind_of(parts[p]), GOPT_DATASET_ARRAYS);
        assert_ok(gopt_loader_create(&c, parts[p], &l));
        for (;;) {
            assert_ok(gopt_loader_next(l, &b));
            if (b.n == 0) break;
            for (int i = 0; i < b.n; i++) {
                int s = (int)b.images[i * 6];
                hit[s]++;
                assert_int_equal(b.labels[i], s % 5);
            }
        }
        gopt_loader_destroy(l);
    }
    for (int s = 0; s < 10; s++) assert_int_equal(hit[s], 1); /* disjoint, together everything */
    gopt_dataset_destroy(tr);
    gopt_dataset_destroy(va);
    assert_status(gopt_dataset_write_cifar10(ds, "/nonexistent/x"), GOPT_EINVAL, "not an image dataset");
    gopt_dataset_destroy(ds);
}

static void test_float_targets(void **state) {
    (void)state;
    gopt_dataset *ds = indexed(7, 1);
    int64_t sh[3];
    assert_int_equal(gopt_dataset_target_shape(ds, sh), 1);
    assert_int_equal(sh[0], 2);
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 3;
    c.seed = 11;
    gopt_loader *l;
    assert_ok(gopt_loader_create(&c, ds, &l));
    int seen[7] = {0};
    for (;;) {
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        if (b.n == 0) break;
        assert_null(b.labels);
        for (int i = 0; i < b.n; i++) {
            int s = (int)b.images[i * 6];
            seen[s]++;
            assert_true(b.targets[2 * i] == -(float)s && b.targets[2 * i + 1] == (float)(s * s));
        }
    }
    for (int s = 0; s < 7; s++) assert_int_equal(seen[s], 1);
    /* a subset keeps the float targets */
    gopt_dataset *sub;
    const int64_t idx[2] = {6, 2};
    assert_ok(gopt_dataset_subset(ds, idx, 2, &sub));
    assert_int_equal(gopt_dataset_target_shape(sub, sh), 1);
    gopt_loader_config sc = gopt_loader_config_default();
    sc.shuffle = 0;
    gopt_loader *sl;
    assert_ok(gopt_loader_create(&sc, sub, &sl));
    gopt_batch sb;
    assert_ok(gopt_loader_next(sl, &sb));
    assert_true(sb.n == 2 && sb.targets[0] == -6.0f && sb.targets[1] == 36.0f && sb.targets[3] == 4.0f);
    gopt_loader_destroy(sl);
    gopt_dataset_destroy(sub);
    /* next_into is for features with class labels */
    float x[18];
    int32_t y[3];
    int n;
    assert_status(gopt_loader_next_into(l, x, y, &n), GOPT_EINVAL, "use gopt_loader_next");
    assert_status(gopt_loader_batch_at(l, 0, 0, x, y, &n), GOPT_EINVAL, "not features with class labels");
    gopt_loader_destroy(l);
    gopt_dataset_destroy(ds);
}

static void test_copy_and_borrow(void **state) {
    (void)state;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t y[4] = {0, 1, 0, 1};
    const int64_t s2[1] = {2};
    gopt_dataset *copy, *borrow;
    assert_ok(gopt_dataset_from_floats(x, 4, 1, s2, y, 2, GOPT_DATA_COPY, &copy));
    assert_ok(gopt_dataset_from_floats(x, 4, 1, s2, y, 2, GOPT_DATA_BORROW, &borrow));
    x[0] = 100.0f; /* the copy does not see it, the borrowing dataset does */
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 4;
    c.shuffle = 0;
    gopt_loader *lc, *lb;
    assert_ok(gopt_loader_create(&c, copy, &lc));
    assert_ok(gopt_loader_create(&c, borrow, &lb));
    gopt_batch bc, bb;
    assert_ok(gopt_loader_next(lc, &bc));
    assert_ok(gopt_loader_next(lb, &bb));
    assert_true(bc.images[0] == 1.0f && bb.images[0] == 100.0f);
    assert_true(bc.images[7] == 8.0f && bb.images[7] == 8.0f);
    gopt_loader_destroy(lc);
    gopt_loader_destroy(lb);
    gopt_dataset_destroy(copy);
    gopt_dataset_destroy(borrow);
    /* errors */
    gopt_dataset *ds = (gopt_dataset *)1;
    y[2] = 2;
    assert_status(gopt_dataset_from_floats(x, 4, 1, s2, y, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "label[2] = 2 is outside 0..1");
    assert_null(ds);
    y[2] = -1;
    assert_status(gopt_dataset_from_floats(x, 4, 1, s2, y, 0, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "label[2] = -1 is negative");
    y[2] = 0;
    assert_ok(gopt_dataset_from_floats(x, 4, 1, s2, y, 0, GOPT_DATA_COPY, &ds));
    assert_int_equal(gopt_dataset_classes(ds), 2);
    gopt_dataset_destroy(ds);
    const int64_t bad0[1] = {0}, four[4] = {1, 1, 1, 2};
    assert_status(gopt_dataset_from_floats(x, 4, 1, bad0, y, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "x shape[0] = 0 must be >= 1");
    assert_status(gopt_dataset_from_floats(x, 4, 4, four, y, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "x has 4 dimensions per sample");
    assert_status(gopt_dataset_from_floats(x, 0, 1, s2, y, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "count = 0");
    assert_status(gopt_dataset_from_floats(x, 4, 1, s2, y, -2, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "classes = -2");
    assert_status(gopt_dataset_from_floats(x, 4, 1, s2, y, 2, (gopt_data_ownership)7, &ds), GOPT_EINVAL, "own = 7");
    assert_status(gopt_dataset_from_floats(NULL, 4, 1, s2, y, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "'x'");
    assert_status(gopt_dataset_from_floats(x, 4, 1, s2, NULL, 2, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "labels");
    assert_status(gopt_dataset_from_floats_targets(x, 4, 1, s2, x, 0, s2, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "y has 0 dimensions");
    assert_status(gopt_dataset_from_floats_targets(x, 4, 1, s2, NULL, 1, s2, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "'y'");
    const int64_t huge[3] = {INT64_MAX / 2, 4, 1};
    assert_status(gopt_dataset_from_floats(x, 4, 3, huge, y, 2, GOPT_DATA_COPY, &ds), GOPT_EOVERFLOW, "overflows");
}

/* ---- order, determinism, state ------------------------------------------------------ */

static void test_determinism_per_seed(void **state) {
    (void)state;
    gopt_dataset *ds = indexed(37, 0);
    enum { CAP = 37 + 8 };
    int a[CAP], b[CAP], p[CAP];
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 5;
    c.seed = 3;
    gopt_loader *l1, *l2, *l3, *lp;
    assert_ok(gopt_loader_create(&c, ds, &l1));
    assert_ok(gopt_loader_create(&c, ds, &l2));
    c.prefetch = 1;
    assert_ok(gopt_loader_create(&c, ds, &lp));
    c.prefetch = 0;
    c.seed = 4;
    assert_ok(gopt_loader_create(&c, ds, &l3));
    for (int e = 0; e < 3; e++) {
        int na = epoch_sequence(l1, e, a, CAP), nb = epoch_sequence(l2, e, b, CAP);
        int np = epoch_sequence(lp, e, p, CAP);
        assert_int_equal(na, 37 + 8); /* 8 batches, the last of 2 */
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, sizeof(int) * (size_t)na);
        assert_int_equal(na, np);
        assert_memory_equal(a, p, sizeof(int) * (size_t)na); /* prefetch: the same batches */
        int seen[37] = {0};
        for (int k = 0; k < na; k++)
            if (a[k] >= 0) seen[a[k]]++;
        for (int s = 0; s < 37; s++) assert_int_equal(seen[s], 1);
        int n3 = epoch_sequence(l3, e, b, CAP);
        assert_int_equal(n3, na);
        assert_true(memcmp(a, b, sizeof(int) * (size_t)na) != 0); /* another seed, another order */
        if (e == 1) {
            int prev[CAP];
            epoch_sequence(l1, 0, prev, CAP);
            assert_true(memcmp(a, prev, sizeof(int) * (size_t)na) != 0); /* a new order each epoch */
        }
    }
    gopt_loader_destroy(l1);
    gopt_loader_destroy(l2);
    gopt_loader_destroy(l3);
    gopt_loader_destroy(lp);
    gopt_dataset_destroy(ds);
}

static void test_state_resumes_sequence(void **state) {
    (void)state;
    gopt_dataset *ds = indexed(23, 1);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        gopt_loader_config c = gopt_loader_config_default();
        c.batch_size = 4;
        c.seed = 99;
        c.prefetch = prefetch;
        gopt_loader *ref, *l, *r;
        assert_ok(gopt_loader_create(&c, ds, &ref));
        assert_ok(gopt_loader_create(&c, ds, &l));
        assert_ok(gopt_loader_create(&c, ds, &r));
        /* the reference: epochs 0..2 uninterrupted */
        float want[3][6][4 * 2];
        int wn[3][6];
        for (int e = 0; e < 3; e++) {
            assert_ok(gopt_loader_start_epoch(ref, e));
            for (int k = 0; k < 6; k++) {
                gopt_batch b;
                assert_ok(gopt_loader_next(ref, &b));
                wn[e][k] = b.n;
                memcpy(want[e][k], b.targets, (size_t)b.n * 2 * sizeof(float));
            }
        }
        assert_int_equal(wn[0][5], 3);
        /* interrupted in epoch 1 after 2 batches, saved, resumed by another loader */
        assert_ok(gopt_loader_start_epoch(l, 1));
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        assert_ok(gopt_loader_next(l, &b));
        unsigned char buf[256];
        size_t size = gopt_loader_state_size(l);
        assert_true(size > 0 && size <= sizeof buf);
        assert_ok(gopt_loader_state_save(l, buf, size));
        assert_ok(gopt_loader_state_load(r, buf, size));
        for (int e = 1; e < 3; e++) {
            for (int k = e == 1 ? 2 : 0; k < 6; k++) {
                assert_ok(gopt_loader_next(r, &b));
                assert_int_equal(b.n, wn[e][k]);
                assert_int_equal(b.epoch, e);
                assert_int_equal(b.index, k);
                assert_memory_equal(b.targets, want[e][k], (size_t)b.n * 2 * sizeof(float));
            }
            assert_ok(gopt_loader_next(r, &b));
            assert_int_equal(b.n, 0);
            assert_ok(gopt_loader_start_epoch(r, e + 1));
        }
        gopt_loader_destroy(ref);
        gopt_loader_destroy(l);
        gopt_loader_destroy(r);
        /* another dataset size or seed is refused */
        unsigned char saved[256];
        memcpy(saved, buf, size);
        c.seed = 100;
        assert_ok(gopt_loader_create(&c, ds, &l));
        assert_status(gopt_loader_state_load(l, saved, size), GOPT_EFORMAT, "seed 99");
        gopt_loader_destroy(l);
    }
    gopt_dataset_destroy(ds);
}

/* ---- transforms ------------------------------------------------------------------------ */

typedef struct tf_log {
    int calls;
    int64_t last_index;
    uint64_t seeds[16];
    int fail_at; /* index that fails, -1 none */
} tf_log;

static gopt_status scale_and_count(gopt_batch_data *b, void *user) {
    tf_log *t = user;
    t->calls++;
    t->last_index = b->index;
    if (b->index < 16) t->seeds[b->index] = b->seed;
    if (b->index == t->fail_at) {
        /* a transform reports its own failure through a status; here via a library call */
        gopt_tensor v;
        return gopt_tensor_view(NULL, 1, (const int64_t[]){1}, &v);
    }
    for (int64_t i = 0; i < (int64_t)b->n * 6; i++) b->x[i] *= 2.0f;
    for (int i = 0; i < b->n; i++) b->labels[i] = 7;
    return GOPT_OK;
}

static void test_transform_once_per_batch(void **state) {
    (void)state;
    gopt_dataset *ds = indexed(10, 0);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        tf_log t = {0, -1, {0}, -1};
        gopt_loader_config c = gopt_loader_config_default();
        c.batch_size = 3;
        c.shuffle = 0;
        c.seed = 5;
        c.prefetch = prefetch;
        c.transform = scale_and_count;
        c.transform_user = &t;
        gopt_loader *l;
        assert_ok(gopt_loader_create(&c, ds, &l));
        for (int k = 0; k < 4; k++) {
            gopt_batch b;
            assert_ok(gopt_loader_next(l, &b));
            assert_int_equal(b.n, k < 3 ? 3 : 1);
            assert_true(b.images[0] == 2.0f * (float)(3 * k)); /* transformed */
            assert_int_equal(b.labels[0], 7);
            if (!prefetch) assert_int_equal(t.calls, k + 1);
        }
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        assert_int_equal(b.n, 0);
        assert_int_equal(t.calls, 4); /* once per batch, the short one included */
        /* seeds differ per batch and are a function of (seed, epoch, index) */
        uint64_t first[4];
        memcpy(first, t.seeds, sizeof first);
        assert_true(first[0] != first[1] && first[1] != first[2] && first[2] != first[3]);
        assert_ok(gopt_loader_start_epoch(l, 0));
        for (int k = 0; k < 4; k++) assert_ok(gopt_loader_next(l, &b));
        assert_memory_equal(first, t.seeds, sizeof first);
        /* batch_at runs it too */
        float x[18];
        int32_t y[3];
        int n, before = t.calls;
        assert_ok(gopt_loader_batch_at(l, 0, 1, x, y, &n));
        assert_int_equal(t.calls, before + 1);
        assert_true(x[0] == 6.0f && y[0] == 7);
        gopt_loader_destroy(l);
        /* a failing transform fails that batch, naming it and the cause */
        t.fail_at = 1;
        assert_ok(gopt_loader_create(&c, ds, &l));
        assert_ok(gopt_loader_next(l, &b));
        assert_status(gopt_loader_next(l, &b), GOPT_EINVAL, "the transform of batch 1 of epoch 0 failed: ");
        testutil_check_detail("'data' is NULL");
        assert_ok(gopt_loader_next(l, &b)); /* the failed batch was taken: on to batch 2 */
        assert_int_equal(b.index, 2);
        assert_status(gopt_loader_batch_at(l, 0, 1, x, y, &n), GOPT_EINVAL, "the transform of batch 1");
        gopt_loader_destroy(l);
    }
    gopt_dataset_destroy(ds);
}

/* ---- token streams --------------------------------------------------------------------- */

static void test_token_stream(void **state) {
    (void)state;
    enum { N = 103, T = 8, V = 50 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 7) % V;
    gopt_dataset *ds;
    assert_ok(gopt_dataset_from_tokens(ids, N, T, 0, GOPT_DATA_COPY, &ds));
    assert_int_equal(gopt_dataset_kind_of(ds), GOPT_DATASET_TOKENS);
    assert_int_equal(gopt_dataset_count(ds), (N - 1) / T); /* 12 */
    assert_int_equal(gopt_dataset_classes(ds), V);
    int64_t sh[3];
    assert_int_equal(gopt_dataset_sample_shape(ds, sh), 1);
    assert_int_equal(sh[0], T);
    assert_int_equal(gopt_dataset_target_shape(ds, sh), 1);
    assert_int_equal(sh[0], T);
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 5;
    c.seed = 1;
    gopt_loader *l;
    assert_ok(gopt_loader_create(&c, ds, &l));
    assert_int_equal(gopt_loader_batches_per_epoch(l), 3);
    int seen[12] = {0};
    const int sizes[3] = {5, 5, 2};
    for (int k = 0; k < 3; k++) {
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        assert_int_equal(b.n, sizes[k]);
        assert_null(b.images);
        assert_null(b.targets);
        for (int i = 0; i < b.n; i++) {
            /* which window: find its start in the stream */
            int s = -1;
            for (int w = 0; w < 12; w++)
                if (memcmp(b.tokens + i * T, ids + w * T, T * sizeof(int32_t)) == 0) s = w;
            assert_true(s >= 0);
            seen[s]++;
            for (int t = 0; t < T; t++) assert_int_equal(b.labels[i * T + t], ids[s * T + t + 1]); /* next token */
        }
    }
    for (int w = 0; w < 12; w++) assert_int_equal(seen[w], 1);
    float x[8];
    int32_t y[8];
    int n;
    assert_status(gopt_loader_next_into(l, x, y, &n), GOPT_EINVAL, "use gopt_loader_next");
    gopt_loader_destroy(l);
    gopt_dataset *sub, *tr, *va;
    const int64_t one[1] = {0};
    assert_status(gopt_dataset_subset(ds, one, 1, &sub), GOPT_EINVAL, "a token stream");
    assert_status(gopt_dataset_split(ds, 2, 0, 0, &tr, &va), GOPT_EINVAL, "a token stream");
    gopt_dataset_destroy(ds);
    /* borrow, and the refusals */
    assert_ok(gopt_dataset_from_tokens(ids, T + 1, T, V, GOPT_DATA_BORROW, &ds));
    assert_int_equal(gopt_dataset_count(ds), 1);
    gopt_dataset_destroy(ds);
    assert_status(gopt_dataset_from_tokens(ids, T, T, V, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "8 tokens are fewer than one sample of seq_len + 1 = 9");
    assert_status(gopt_dataset_from_tokens(ids, N, T, 40, GOPT_DATA_COPY, &ds), GOPT_EINVAL,
                  "id[6] = 42 is outside 0..39");
    ids[3] = -4;
    assert_status(gopt_dataset_from_tokens(ids, N, T, 0, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "id[3] = -4 is negative");
    assert_status(gopt_dataset_from_tokens(ids, N, 0, 0, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "seq_len = 0");
    assert_status(gopt_dataset_from_tokens(ids, N, T, -1, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "vocab_size = -1");
    assert_status(gopt_dataset_from_tokens(NULL, N, T, 0, GOPT_DATA_COPY, &ds), GOPT_EINVAL, "ids");
    assert_null(ds);
}

/* ---- training an MLP from a dataset -------------------------------------------------------- */

typedef struct train_result {
    float first_loss, last_loss, accuracy;
    int short_batches;
} train_result;

/* linear(F,32) -> relu -> linear(32,K), cross-entropy, SGD(0.05, momentum 0.9), batch 32:
 * the public API only; dlogits is one (32,K) tensor for every batch. */
static train_result train_mlp(const gopt_dataset *ds, int epochs) {
    train_result r = {0, 0, 0, 0};
    const int B = 32;
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = B;
    nc.in_ndim = 1;
    nc.in_shape[0] = F;
    nc.seed = 1;
    gopt_net *net;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config l1 = gopt_layer_linear(F, 32, 1), relu = gopt_layer_config_default(GOPT_LAYER_RELU),
                      l2 = gopt_layer_linear(32, K, 1);
    assert_ok(gopt_net_add(net, &l1, "fc1"));
    assert_ok(gopt_net_add(net, &relu, "relu"));
    assert_ok(gopt_net_add(net, &l2, "fc2"));
    assert_ok(gopt_net_build(net));
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.05f;
    oc.momentum = 0.9f;
    gopt_optim *opt;
    assert_ok(gopt_optim_create(&oc, gopt_net_params(net), &opt));
    const int64_t dshape[2] = {B, K};
    gopt_tensor *dlogits;
    assert_ok(gopt_tensor_create(2, dshape, &dlogits));
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = B;
    lc.seed = 2;
    gopt_loader *l;
    assert_ok(gopt_loader_create(&lc, ds, &l));
    for (int e = 0; e < epochs; e++) {
        assert_ok(gopt_loader_start_epoch(l, e));
        double sum = 0;
        int64_t seen = 0;
        for (;;) {
            gopt_batch b;
            assert_ok(gopt_loader_next(l, &b));
            if (b.n == 0) break;
            if (b.n < B) r.short_batches++;
            const int64_t xs[2] = {b.n, F};
            gopt_tensor x, logits;
            assert_ok(gopt_tensor_view((float *)b.images, 2, xs, &x));
            assert_ok(gopt_net_forward(net, &x, &logits));
            float loss;
            assert_ok(gopt_loss_cross_entropy(&logits, b.labels, 0.0f, &loss, dlogits)); /* (32,K) for any n */
            gopt_optim_zero_grad(opt);
            assert_ok(gopt_net_backward(net, dlogits)); /* the whole buffer: the net reads b.n rows */
            assert_ok(gopt_optim_step(opt));
            sum += (double)loss * b.n;
            seen += b.n;
        }
        assert_int_equal(seen, gopt_dataset_count(ds));
        if (e == 0) r.first_loss = (float)(sum / (double)seen);
        r.last_loss = (float)(sum / (double)seen);
    }
    /* accuracy over the whole set, in order */
    gopt_loader_destroy(l);
    lc.shuffle = 0;
    assert_ok(gopt_loader_create(&lc, ds, &l));
    gopt_net_set_training(net, 0);
    int64_t correct = 0;
    for (;;) {
        gopt_batch b;
        assert_ok(gopt_loader_next(l, &b));
        if (b.n == 0) break;
        const int64_t xs[2] = {b.n, F};
        gopt_tensor x, logits;
        assert_ok(gopt_tensor_view((float *)b.images, 2, xs, &x));
        assert_ok(gopt_net_forward(net, &x, &logits));
        int64_t c;
        assert_ok(gopt_accuracy_count(&logits, b.labels, &c));
        correct += c;
    }
    r.accuracy = (float)correct / (float)gopt_dataset_count(ds);
    gopt_loader_destroy(l);
    gopt_tensor_destroy(dlogits);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    return r;
}

static void test_mlp_from_arrays(void **state) {
    (void)state;
    enum { N = 203 }; /* 6 batches of 32 and a short one of 11 */
    float x[N * F];
    int32_t y[N];
    blobs(x, y, N, 42);
    const int64_t fs[1] = {F};
    gopt_dataset *ds;
    assert_ok(gopt_dataset_from_floats(x, N, 1, fs, y, K, GOPT_DATA_BORROW, &ds));
    train_result r = train_mlp(ds, 15);
    print_message("MLP from arrays: loss %.4f -> %.4f, accuracy %.3f (chance 0.333), %d short batches\n",
                  r.first_loss, r.last_loss, r.accuracy, r.short_batches);
    assert_int_equal(r.short_batches, 15);
    assert_true(r.last_loss < 0.5f * r.first_loss);
    assert_true(r.accuracy > 0.85f);
    gopt_dataset_destroy(ds);
}

/* ---- allocation failures ----------------------------------------------------------------- */

/* Every allocation of each create function, failed in turn: GOPT_ENOMEM, *out NULL, nothing
 * leaked (the sanitizer build checks), then success once the budget suffices. */
static void test_alloc_failures(void **state) {
    (void)state;
    float x[12] = {0};
    int32_t y[4] = {0, 1, 2, 1}, ids[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0};
    const int64_t s3[1] = {3}, t1[1] = {3};
    for (int which = 0; which < 6; which++) {
        int done = 0;
        for (long budget = 0; budget < 64 && !done; budget++) {
            gopt_dataset *base = NULL, *ds = (gopt_dataset *)1;
            gopt_loader *l = (gopt_loader *)1;
            if (which >= 3) {
                if (which == 3) assert_ok(gopt_dataset_from_floats(x, 4, 1, s3, y, 3, GOPT_DATA_BORROW, &base));
                if (which == 4)
                    assert_ok(gopt_dataset_from_floats_targets(x, 4, 1, s3, x, 1, t1, GOPT_DATA_BORROW, &base));
                if (which == 5) assert_ok(gopt_dataset_from_tokens(ids, 13, 3, 0, GOPT_DATA_BORROW, &base));
            }
            testutil_fail_after(budget);
            gopt_status s;
            gopt_loader_config c = gopt_loader_config_default();
            c.batch_size = 2;
            c.prefetch = 1;
            switch (which) {
            case 0: s = gopt_dataset_from_floats(x, 4, 1, s3, y, 3, GOPT_DATA_COPY, &ds); break;
            case 1: s = gopt_dataset_from_floats_targets(x, 4, 1, s3, x, 1, t1, GOPT_DATA_COPY, &ds); break;
            case 2: s = gopt_dataset_from_tokens(ids, 13, 3, 0, GOPT_DATA_COPY, &ds); break;
            case 3: {
                const int64_t idx[2] = {3, 1};
                s = gopt_dataset_subset(base, idx, 2, &ds);
                break;
            }
            default: s = gopt_loader_create(&c, base, &l); break;
            }
            testutil_alloc_reset();
            if (s == GOPT_OK) {
                done = 1;
                if (which == 4 || which == 5) gopt_loader_destroy(l);
                else gopt_dataset_destroy(ds);
            } else {
                assert_int_equal(s, GOPT_ENOMEM);
                if (which == 4 || which == 5) assert_null(l);
                else assert_null(ds);
            }
            gopt_dataset_destroy(base);
        }
        assert_true(done);
    }
}

/* ---- --numpy: files written by NumPy ------------------------------------------------------ */

static const char *make_py =
    "import sys\n"
    "try:\n"
    "    import numpy as np\n"
    "    import numpy.lib.format as fmt\n"
    "except ImportError:\n"
    "    sys.exit(77)\n"
    "d = sys.argv[1]\n"
    "rng = np.random.default_rng(5)\n"
    "n = 203\n"
    "y = np.arange(n) % 3\n"
    "centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, -1]], dtype=np.float64)\n"
    "x = centers[y] + 0.7 * rng.standard_normal((n, 4))\n"
    "np.save(d + '/x.npy', x)\n"
    "np.save(d + '/y.npy', y.astype(np.int64))\n"
    "np.save(d + '/y32.npy', y.astype(np.int32))\n"
    "np.save(d + '/xf.npy', x.astype(np.float32))\n"
    "x.astype(np.float32).tofile(d + '/x_f32.bin')\n"
    "for v in (2, 3):\n"
    "    with open(d + '/x_v%d.npy' % v, 'wb') as f:\n"
    "        fmt.write_array(f, x.astype(np.float32).reshape(n, 2, 2), version=(v, 0))\n"
    "np.save(d + '/targets.npy', (x[:, :2] * 2).astype(np.float32))\n"
    "np.save(d + '/x_be.npy', x.astype('>f4'))\n"
    "np.save(d + '/x_fortran.npy', np.asfortranarray(x.astype(np.float32)))\n"
    "np.save(d + '/x_f16.npy', x.astype(np.float16))\n"
    "np.save(d + '/tokens.npy', (np.arange(1001) * 7 % 50).astype(np.int64))\n";

static int numpy_main(const char *python, const char *dir) {
    if (access(python, X_OK) != 0) {
        printf("SKIPPED: %s is not there\n", python);
        return 77;
    }
    mkdir(dir, 0755);
    char script[512], cmd[2048], p[640], q[640];
    snprintf(script, sizeof script, "%s/make_npy.py", dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(make_py, f) < 0 || fclose(f) != 0) {
        printf("FAIL: cannot write %s\n", script);
        return 1;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", python, script, dir);
    int rc = system(cmd);
    if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        printf("SKIPPED: numpy is not installed for %s\n", python);
        return 77;
    }
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        printf("FAIL: %s exited with %d\n", cmd, rc);
        return 1;
    }
    int fails = 0;
#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            printf("FAIL line %d: ", __LINE__);           \
            printf(__VA_ARGS__);                          \
            printf(" (last error: %s)\n", gopt_last_error()); \
            fails++;                                      \
        }                                                 \
    } while (0)
    /* numpy's float32 rounding of the features, for comparison */
    float ref[203 * 4];
    snprintf(p, sizeof p, "%s/x_f32.bin", dir);
    f = fopen(p, "rb");
    CHECK(f && fread(ref, sizeof(float), 203 * 4, f) == 203 * 4, "reading %s", p);
    if (f) fclose(f);
    /* every feature file reads as the same float32 values, in order */
    const char *xs[4] = {"x.npy", "xf.npy", "x_v2.npy", "x_v3.npy"};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, xs[k]);
        snprintf(q, sizeof q, "%s/%s", dir, k % 2 ? "y32.npy" : "y.npy");
        gopt_dataset *ds = NULL;
        gopt_status s = gopt_dataset_from_npy(p, q, 0, &ds);
        CHECK(s == GOPT_OK, "%s", xs[k]);
        if (s != GOPT_OK) continue;
        CHECK(gopt_dataset_count(ds) == 203 && gopt_dataset_classes(ds) == 3, "%s: count/classes", xs[k]);
        gopt_loader_config c = gopt_loader_config_default();
        c.batch_size = 203;
        c.shuffle = 0;
        gopt_loader *l = NULL;
        gopt_batch b = {0};
        if (gopt_loader_create(&c, ds, &l) == GOPT_OK && gopt_loader_next(l, &b) == GOPT_OK) {
            CHECK(b.n == 203 && memcmp(b.images, ref, sizeof ref) == 0, "%s: features differ from numpy's", xs[k]);
            for (int i = 0; i < 203; i++) CHECK(b.labels[i] == i % 3, "%s: label %d", xs[k], i);
        } else {
            CHECK(0, "%s: loader", xs[k]);
        }
        gopt_loader_destroy(l);
        if (k == 0) {
            /* a subset of the float64 file is a float32 copy of the same values */
            gopt_dataset *sub = NULL;
            const int64_t idx[2] = {202, 5};
            CHECK(gopt_dataset_subset(ds, idx, 2, &sub) == GOPT_OK, "subset");
            c.batch_size = 2;
            l = NULL;
            if (sub && gopt_loader_create(&c, sub, &l) == GOPT_OK && gopt_loader_next(l, &b) == GOPT_OK)
                CHECK(b.n == 2 && memcmp(b.images, ref + 202 * 4, 16) == 0 && memcmp(b.images + 4, ref + 20, 16) == 0 &&
                          b.labels[0] == 1 && b.labels[1] == 2,
                      "subset rows");
            else
                CHECK(0, "subset loader");
            gopt_loader_destroy(l);
            gopt_dataset_destroy(sub);
            train_result r = train_mlp(ds, 15);
            printf("MLP from numpy's .npy files: loss %.4f -> %.4f, accuracy %.3f (chance 0.333), %d short "
                   "batches\n",
                   r.first_loss, r.last_loss, r.accuracy, r.short_batches);
            CHECK(r.short_batches == 15, "short batches %d", r.short_batches);
            CHECK(r.last_loss < 0.5f * r.first_loss, "loss %g -> %g", r.first_loss, r.last_loss);
            CHECK(r.accuracy > 0.85f, "accuracy %g", r.accuracy);
        }
        gopt_dataset_destroy(ds);
    }
    /* float targets */
    {
        snprintf(p, sizeof p, "%s/xf.npy", dir);
        snprintf(q, sizeof q, "%s/targets.npy", dir);
        gopt_dataset *ds = NULL;
        int64_t sh[3];
        CHECK(gopt_dataset_from_npy(p, q, 0, &ds) == GOPT_OK, "targets");
        CHECK(gopt_dataset_target_shape(ds, sh) == 1 && sh[0] == 2, "target shape");
        gopt_dataset_destroy(ds);
    }
    /* refusals of numpy-written files */
    const struct {
        const char *file, *needle;
    } bad[] = {{"x_be.npy", "dtype '>f4' is big-endian"},
               {"x_fortran.npy", "fortran_order is True"},
               {"x_f16.npy", "dtype '<f2' is not supported"}};
    snprintf(q, sizeof q, "%s/y.npy", dir);
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, bad[k].file);
        gopt_dataset *ds = NULL;
        gopt_status s = gopt_dataset_from_npy(p, q, 0, &ds);
        CHECK(s == GOPT_EFORMAT && strstr(gopt_last_error(), bad[k].needle) && strstr(gopt_last_error(), p),
              "%s: status %d", bad[k].file, s);
        gopt_dataset_destroy(ds);
    }
    /* a token stream saved as int64 */
    {
        snprintf(p, sizeof p, "%s/tokens.npy", dir);
        gopt_dataset *ds = NULL;
        CHECK(gopt_dataset_from_tokens_npy(p, 10, 0, &ds) == GOPT_OK, "tokens");
        CHECK(gopt_dataset_count(ds) == 100 && gopt_dataset_classes(ds) == 50, "tokens: count %lld classes %d",
              (long long)gopt_dataset_count(ds), gopt_dataset_classes(ds));
        gopt_loader_config c = gopt_loader_config_default();
        c.batch_size = 7;
        gopt_loader *l = NULL;
        gopt_batch b = {0};
        if (ds && gopt_loader_create(&c, ds, &l) == GOPT_OK && gopt_loader_next(l, &b) == GOPT_OK) {
            for (int i = 0; i < b.n * 10; i++)
                CHECK(b.labels[i] == (b.tokens[i] + 7) % 50, "next token at %d", i);
        } else {
            CHECK(0, "tokens loader");
        }
        gopt_loader_destroy(l);
        gopt_dataset_destroy(ds);
    }
    printf("%s: %d failures\n", fails ? "FAIL" : "ok", fails);
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--numpy") == 0) return numpy_main(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_and_short_last), cmocka_unit_test(test_float_targets),
        cmocka_unit_test(test_copy_and_borrow),        cmocka_unit_test(test_determinism_per_seed),
        cmocka_unit_test(test_state_resumes_sequence), cmocka_unit_test(test_transform_once_per_batch),
        cmocka_unit_test(test_token_stream),           cmocka_unit_test(test_mlp_from_arrays),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
