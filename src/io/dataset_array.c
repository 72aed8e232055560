/* Datasets from float arrays, .npy files and token streams (see gradopt/data.h): made
 * here, batched by the loader in src/io/data.c through gopt__dataset_gather. */
#include <limits.h>

#include "core/common.h"
#include "io/dataset.h"

/* ---- reading a column ---------------------------------------------------------------- */

static inline double col_float(const gopt__column *c, int64_t e) {
    if (c->dtype == GOPT__NPY_F8) {
        double v;
        memcpy(&v, c->base + (size_t)e * 8, 8);
        return v;
    }
    float v;
    memcpy(&v, c->base + (size_t)e * 4, 4);
    return v;
}

static inline int64_t col_int(const gopt__column *c, int64_t e) {
    if (c->dtype == GOPT__NPY_I8) {
        int64_t v;
        memcpy(&v, c->base + (size_t)e * 8, 8);
        return v;
    }
    int32_t v;
    memcpy(&v, c->base + (size_t)e * 4, 4);
    return v;
}

/* n floats starting at element e (float32 copied, float64 converted) */
static void col_floats(const gopt__column *c, int64_t e, int64_t n, float *dst) {
    if (c->dtype == GOPT__NPY_F4) {
        memcpy(dst, c->base + (size_t)e * 4, (size_t)n * 4);
        return;
    }
    for (int64_t k = 0; k < n; k++) dst[k] = (float)col_float(c, e + k);
}

static void col_ints(const gopt__column *c, int64_t e, int64_t n, int32_t *dst) {
    if (c->dtype == GOPT__NPY_I4) {
        memcpy(dst, c->base + (size_t)e * 4, (size_t)n * 4);
        return;
    }
    for (int64_t k = 0; k < n; k++) dst[k] = (int32_t)col_int(c, e + k); /* range checked at creation */
}

/* ---- the loader's side ------------------------------------------------------------------ */

gopt__sample_sizes gopt__dataset_sample_sizes(const gopt_dataset *ds) {
    gopt__sample_sizes z = {0, 0, 0, 0};
    switch (ds->kind) {
    case GOPT_DATASET_IMAGES:
        z.x = GOPT_IMAGE_BYTES;
        z.labels = 1;
        break;
    case GOPT_DATASET_ARRAYS:
        z.x = ds->x_elems;
        if (ds->y_float) z.targets = ds->y_elems;
        else z.labels = 1;
        break;
    case GOPT_DATASET_TOKENS:
        z.tokens = ds->x_elems;
        z.labels = ds->x_elems;
        break;
    }
    return z;
}

void gopt__dataset_gather(const gopt_dataset *ds, int64_t s, int64_t i, float *x, int32_t *labels, float *targets,
                          int32_t *tokens) {
    if (ds->kind == GOPT_DATASET_TOKENS) {
        const int64_t T = ds->x_elems;
        col_ints(&ds->x, s * ds->x.stride, T, tokens + i * T);
        col_ints(&ds->y, s * ds->y.stride, T, labels + i * T);
        return;
    }
    col_floats(&ds->x, s * ds->x.stride, ds->x_elems, x + i * ds->x_elems);
    if (ds->y_float) col_floats(&ds->y, s * ds->y.stride, ds->y_elems, targets + i * ds->y_elems);
    else labels[i] = (int32_t)col_int(&ds->y, s);
}

void gopt__dataset_release_arrays(gopt_dataset *ds) {
    for (int k = 0; k < 2; k++) {
        gopt__free(ds->owned[k]);
        ds->owned[k] = NULL;
        gopt__npy_map_close(&ds->maps[k]);
    }
}

/* ---- making one ---------------------------------------------------------------------- */

/* A per-sample shape of 1..3 dims >= 1 whose numel (and count times it, in bytes of
 * itemsize) fits; *elems = numel. */
static gopt_status check_shape(const char *func, const char *what, int ndim, const int64_t *shape, int64_t count,
                               int64_t *elems) {
    if (ndim < 1 || ndim > GOPT_DATASET_MAX_DIMS)
        return gopt__fail(GOPT_EINVAL, func, "%s has %d dimensions per sample; 1..%d are supported", what, ndim,
                          GOPT_DATASET_MAX_DIMS);
    if (!shape) return gopt__fail(GOPT_EINVAL, func, "%s shape is NULL", what);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1)
            return gopt__fail(GOPT_EINVAL, func, "%s shape[%d] = %lld must be >= 1", what, d, (long long)shape[d]);
        if (n > INT64_MAX / shape[d]) return gopt__fail(GOPT_EOVERFLOW, func, "%s per-sample size overflows", what);
        n *= shape[d];
    }
    size_t bytes;
    if ((uint64_t)n > SIZE_MAX || (uint64_t)count > SIZE_MAX ||
        !gopt__mul_size((size_t)n, (size_t)count, &bytes) || !gopt__mul_size(bytes, 8, &bytes))
        return gopt__fail(GOPT_EOVERFLOW, func, "%lld samples of %s do not fit in memory", (long long)count, what);
    *elems = n;
    return GOPT_OK;
}

/* Every label (element i * stride of c, i < count) in 0..classes-1; classes 0: max + 1. */
static gopt_status check_labels(const char *func, gopt_status bad, const char *name, const gopt__column *c,
                                int64_t count, int64_t stride, int *classes, const char *what) {
    int64_t hi = *classes;
    if (hi == 0) {
        int64_t m = -1;
        for (int64_t i = 0; i < count; i++) {
            int64_t v = col_int(c, i * stride);
            if (v < 0)
                return gopt__fail(bad, func, "%s%s%s[%lld] = %lld is negative", name, *name ? ": " : "",
                                  what, (long long)i, (long long)v);
            if (v > m) m = v;
        }
        if (m >= INT_MAX)
            return gopt__fail(bad, func, "%s%s%s: the largest, %lld, is not an int", name, *name ? ": " : "",
                              what, (long long)m);
        *classes = (int)(m + 1);
        return GOPT_OK;
    }
    for (int64_t i = 0; i < count; i++) {
        int64_t v = col_int(c, i * stride);
        if (v < 0 || v >= hi)
            return gopt__fail(bad, func, "%s%s%s[%lld] = %lld is outside 0..%lld", name, *name ? ": " : "",
                              what, (long long)i, (long long)v, (long long)hi - 1);
    }
    return GOPT_OK;
}

/* A copy of n * itemsize bytes (own == COPY) kept in ds->owned[k], or the pointer itself. */
static gopt_status keep(const char *func, gopt_dataset *ds, int k, const void *src, int64_t n, size_t itemsize,
                        gopt_data_ownership own, const unsigned char **base) {
    if (own == GOPT_DATA_BORROW) {
        *base = src;
        return GOPT_OK;
    }
    size_t bytes = (size_t)n * itemsize; /* checked by check_shape */
    ds->owned[k] = gopt__malloc(bytes ? bytes : 1);
    if (!ds->owned[k]) return gopt__fail(GOPT_ENOMEM, func, "a copy of %zu bytes", bytes);
    if (src) memcpy(ds->owned[k], src, bytes);
    *base = ds->owned[k];
    return GOPT_OK;
}

static gopt_status new_dataset(const char *func, gopt_dataset_kind kind, int64_t count, gopt_dataset **out) {
    gopt_dataset *ds = gopt__calloc(1, sizeof *ds);
    if (!ds) return gopt__fail(GOPT_ENOMEM, func, "dataset header");
    ds->kind = kind;
    ds->count = count;
    *out = ds;
    return GOPT_OK;
}

static gopt_status finish(gopt_status s, gopt_dataset *ds, gopt_dataset **out) {
    if (s != GOPT_OK) {
        gopt_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return GOPT_OK;
}

static gopt_status from_floats(const char *func, const float *x, int64_t count, int x_ndim, const int64_t *x_shape,
                               const int32_t *labels, int classes, const float *y, int y_ndim, const int64_t *y_shape,
                               gopt_data_ownership own, gopt_dataset **out) {
    if (count < 1) return gopt__fail(GOPT_EINVAL, func, "count = %lld must be >= 1", (long long)count);
    if (own != GOPT_DATA_COPY && own != GOPT_DATA_BORROW)
        return gopt__fail(GOPT_EINVAL, func, "own = %d is not GOPT_DATA_COPY or GOPT_DATA_BORROW", (int)own);
    if (classes < 0) return gopt__fail(GOPT_EINVAL, func, "classes = %d must be >= 1 (or 0: max label + 1)", classes);
    int64_t xe, ye = 1;
    GOPT_TRY(check_shape(func, "x", x_ndim, x_shape, count, &xe));
    if (y) GOPT_TRY(check_shape(func, "y", y_ndim, y_shape, count, &ye));
    gopt_dataset *ds = NULL;
    GOPT_TRY(new_dataset(func, GOPT_DATASET_ARRAYS, count, &ds));
    ds->x_ndim = x_ndim;
    memcpy(ds->x_shape, x_shape, (size_t)x_ndim * sizeof *x_shape);
    ds->x_elems = xe;
    ds->x = (gopt__column){NULL, GOPT__NPY_F4, xe};
    gopt_status s = GOPT_OK;
    if (y) {
        ds->y_float = 1;
        ds->y_ndim = y_ndim;
        memcpy(ds->y_shape, y_shape, (size_t)y_ndim * sizeof *y_shape);
        ds->y_elems = ye;
        ds->y = (gopt__column){NULL, GOPT__NPY_F4, ye};
        s = keep(func, ds, 1, y, count * ye, sizeof(float), own, &ds->y.base);
    } else {
        ds->y = (gopt__column){(const unsigned char *)labels, GOPT__NPY_I4, 1};
        ds->y_elems = 1;
        s = check_labels(func, GOPT_EINVAL, "", &ds->y, count, 1, &classes, "label");
        ds->classes = classes;
        if (s == GOPT_OK) s = keep(func, ds, 1, labels, count, sizeof(int32_t), own, &ds->y.base);
    }
    if (s == GOPT_OK) s = keep(func, ds, 0, x, count * xe, sizeof(float), own, &ds->x.base);
    return finish(s, ds, out);
}

gopt_status gopt_dataset_from_floats(const float *x, int64_t count, int x_ndim, const int64_t x_shape[],
                                     const int32_t *labels, int classes, gopt_data_ownership own, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(x_shape);
    GOPT_CHECK_NULL(labels);
    return from_floats(__func__, x, count, x_ndim, x_shape, labels, classes, NULL, 0, NULL, own, out);
}

gopt_status gopt_dataset_from_floats_targets(const float *x, int64_t count, int x_ndim, const int64_t x_shape[],
                                             const float *y, int y_ndim, const int64_t y_shape[],
                                             gopt_data_ownership own, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(x_shape);
    GOPT_CHECK_NULL(y);
    GOPT_CHECK_NULL(y_shape);
    return from_floats(__func__, x, count, x_ndim, x_shape, NULL, 0, y, y_ndim, y_shape, own, out);
}

static int is_float(gopt__npy_dtype d) { return d == GOPT__NPY_F4 || d == GOPT__NPY_F8; }

gopt_status gopt_dataset_from_npy(const char *x_path, const char *y_path, int classes, gopt_dataset **out) {
    static const char *func = "gopt_dataset_from_npy";
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(x_path);
    GOPT_CHECK_NULL(y_path);
    if (classes < 0) return GOPT_FAIL(GOPT_EINVAL, "classes = %d must be >= 1 (or 0: max label + 1)", classes);
    gopt_dataset *ds = NULL;
    GOPT_TRY(new_dataset(func, GOPT_DATASET_ARRAYS, 0, &ds));
    gopt__npy_map *xm = &ds->maps[0], *ym = &ds->maps[1];
    gopt_status s = gopt__npy_map_open(x_path, func, xm);
    if (s == GOPT_OK) s = gopt__npy_map_open(y_path, func, ym);
    if (s != GOPT_OK) return finish(s, ds, out);
    const gopt__npy_header *xh = &xm->h, *yh = &ym->h;
    if (!is_float(xh->dtype))
        return finish(gopt__fail(GOPT_EFORMAT, func, "%s: features of dtype %s; float32 or float64 are read", x_path,
                                 gopt__npy_dtype_name(xh->dtype)),
                      ds, out);
    if (xh->ndim < 2 || xh->ndim > 1 + GOPT_DATASET_MAX_DIMS)
        return finish(gopt__fail(GOPT_EFORMAT, func,
                                 "%s: %d dimensions; features are (count, ...) with 1..%d dimensions per sample",
                                 x_path, xh->ndim, GOPT_DATASET_MAX_DIMS),
                      ds, out);
    const int64_t count = xh->shape[0];
    if (count < 1) return finish(gopt__fail(GOPT_EFORMAT, func, "%s: no samples (shape[0] = 0)", x_path), ds, out);
    if (yh->ndim < 1 || yh->shape[0] != count)
        return finish(gopt__fail(GOPT_EFORMAT, func, "%s: %lld samples, %s has %lld", y_path,
                                 yh->ndim < 1 ? 0LL : (long long)yh->shape[0], x_path, (long long)count),
                      ds, out);
    ds->count = count;
    ds->x_ndim = xh->ndim - 1;
    memcpy(ds->x_shape, xh->shape + 1, (size_t)ds->x_ndim * sizeof(int64_t));
    ds->x_elems = xh->numel / count;
    for (int d = 0; d < ds->x_ndim; d++)
        if (ds->x_shape[d] < 1)
            return finish(gopt__fail(GOPT_EFORMAT, func, "%s: shape[%d] = 0 (empty samples)", x_path, d + 1), ds, out);
    ds->x = (gopt__column){xm->data, xh->dtype, ds->x_elems};
    if (is_float(yh->dtype)) {
        if (yh->ndim > 1 + GOPT_DATASET_MAX_DIMS)
            return finish(gopt__fail(GOPT_EFORMAT, func, "%s: %d dimensions; targets are (count, ...) with 0..%d more",
                                     y_path, yh->ndim, GOPT_DATASET_MAX_DIMS),
                          ds, out);
        ds->y_float = 1;
        ds->y_ndim = yh->ndim > 1 ? yh->ndim - 1 : 1;
        if (yh->ndim > 1) memcpy(ds->y_shape, yh->shape + 1, (size_t)ds->y_ndim * sizeof(int64_t));
        else ds->y_shape[0] = 1;
        ds->y_elems = yh->numel / count;
        if (ds->y_elems < 1)
            return finish(gopt__fail(GOPT_EFORMAT, func, "%s: empty targets (a dimension is 0)", y_path), ds, out);
        ds->y = (gopt__column){ym->data, yh->dtype, ds->y_elems};
    } else {
        if (yh->ndim != 1)
            return finish(gopt__fail(GOPT_EFORMAT, func, "%s: integer labels must be 1-D (count,), not %d-D", y_path,
                                     yh->ndim),
                          ds, out);
        ds->y_elems = 1;
        ds->y = (gopt__column){ym->data, yh->dtype, 1};
        s = check_labels(func, GOPT_EFORMAT, y_path, &ds->y, count, 1, &classes, "label");
        if (s != GOPT_OK) return finish(s, ds, out);
        ds->classes = classes;
    }
    return finish(GOPT_OK, ds, out);
}

/* bad: the status of a problem of the ids themselves (too few, one outside the vocabulary) */
static gopt_status tokens_make(const char *func, gopt_status bad, gopt_dataset *ds, int64_t n, int seq_len,
                               int vocab_size, gopt__npy_dtype dtype, const char *name) {
    if (seq_len < 1) return gopt__fail(GOPT_EINVAL, func, "seq_len = %d must be >= 1", seq_len);
    if (vocab_size < 0)
        return gopt__fail(GOPT_EINVAL, func, "vocab_size = %d must be >= 1 (or 0: max id + 1)", vocab_size);
    if (n < (int64_t)seq_len + 1)
        return gopt__fail(bad, func, "%s%s%lld tokens are fewer than one sample of seq_len + 1 = %lld", name,
                          *name ? ": " : "", (long long)n, (long long)seq_len + 1);
    ds->count = (n - 1) / seq_len;
    ds->x_ndim = ds->y_ndim = 1;
    ds->x_shape[0] = ds->y_shape[0] = seq_len;
    ds->x_elems = ds->y_elems = seq_len;
    ds->x.dtype = ds->y.dtype = dtype;
    ds->x.stride = ds->y.stride = seq_len;
    ds->y.base = ds->x.base + (dtype == GOPT__NPY_I8 ? 8 : 4);
    /* every id of the stream (also those past the last whole sample): the vocabulary is the data's */
    gopt__column all = {ds->x.base, dtype, 1};
    gopt_status s = check_labels(func, bad, name, &all, n, 1, &vocab_size, "id");
    ds->classes = vocab_size;
    return s;
}

gopt_status gopt_dataset_from_tokens(const int32_t *ids, int64_t n, int seq_len, int vocab_size,
                                     gopt_data_ownership own, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(ids);
    if (own != GOPT_DATA_COPY && own != GOPT_DATA_BORROW)
        return GOPT_FAIL(GOPT_EINVAL, "own = %d is not GOPT_DATA_COPY or GOPT_DATA_BORROW", (int)own);
    gopt_dataset *ds = NULL;
    GOPT_TRY(new_dataset(__func__, GOPT_DATASET_TOKENS, 0, &ds));
    ds->x.base = (const unsigned char *)ids;
    gopt_status s = tokens_make(__func__, GOPT_EINVAL, ds, n, seq_len, vocab_size, GOPT__NPY_I4, "");
    if (s == GOPT_OK) {
        const int64_t used = ds->count * seq_len + 1;
        if ((uint64_t)used > SIZE_MAX / 4) s = GOPT_FAIL(GOPT_EOVERFLOW, "%lld tokens", (long long)n);
        else s = keep(__func__, ds, 0, ids, used, sizeof(int32_t), own, &ds->x.base);
        ds->y.base = ds->x.base + 4;
    }
    return finish(s, ds, out);
}

gopt_status gopt_dataset_from_tokens_npy(const char *path, int seq_len, int vocab_size, gopt_dataset **out) {
    static const char *func = "gopt_dataset_from_tokens_npy";
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(path);
    gopt_dataset *ds = NULL;
    GOPT_TRY(new_dataset(func, GOPT_DATASET_TOKENS, 0, &ds));
    gopt__npy_map *m = &ds->maps[0];
    gopt_status s = gopt__npy_map_open(path, func, m);
    if (s != GOPT_OK) return finish(s, ds, out);
    if (m->h.dtype != GOPT__NPY_I4 && m->h.dtype != GOPT__NPY_I8)
        s = gopt__fail(GOPT_EFORMAT, func, "%s: token ids of dtype %s; int32 or int64 are read", path,
                       gopt__npy_dtype_name(m->h.dtype));
    else if (m->h.ndim != 1)
        s = gopt__fail(GOPT_EFORMAT, func, "%s: token ids must be 1-D, not %d-D", path, m->h.ndim);
    if (s == GOPT_OK) {
        ds->x.base = m->data;
        s = tokens_make(func, GOPT_EFORMAT, ds, m->h.numel, seq_len, vocab_size, m->h.dtype, path);
    }
    return finish(s, ds, out);
}

gopt_status gopt__dataset_subset_arrays(const gopt_dataset *ds, const int64_t *indices, int64_t n,
                                        gopt_dataset **out) {
    static const char *func = "gopt_dataset_subset";
    int64_t xe, ye;
    GOPT_TRY(check_shape(func, "x", ds->x_ndim, ds->x_shape, n, &xe));
    GOPT_TRY(check_shape(func, "y", ds->y_float ? ds->y_ndim : 1, ds->y_float ? ds->y_shape : &ds->y_elems, n, &ye));
    gopt_dataset *sub = NULL;
    GOPT_TRY(new_dataset(func, GOPT_DATASET_ARRAYS, n, &sub));
    sub->classes = ds->classes;
    sub->y_float = ds->y_float;
    sub->x_ndim = ds->x_ndim;
    sub->y_ndim = ds->y_ndim;
    memcpy(sub->x_shape, ds->x_shape, sizeof sub->x_shape);
    memcpy(sub->y_shape, ds->y_shape, sizeof sub->y_shape);
    sub->x_elems = xe;
    sub->y_elems = ds->y_elems;
    float *x = gopt__malloc((size_t)(n * xe) * sizeof(float));
    void *y = gopt__malloc((size_t)(n * ds->y_elems) * (ds->y_float ? sizeof(float) : sizeof(int32_t)));
    sub->owned[0] = x;
    sub->owned[1] = y;
    if (!x || !y)
        return finish(gopt__fail(GOPT_ENOMEM, func, "a subset of %lld samples", (long long)n), sub, out);
    for (int64_t i = 0; i < n; i++)
        gopt__dataset_gather(ds, indices[i], i, x, ds->y_float ? NULL : y, ds->y_float ? y : NULL, NULL);
    sub->x = (gopt__column){(const unsigned char *)x, GOPT__NPY_F4, xe};
    sub->y = (gopt__column){(const unsigned char *)y, ds->y_float ? GOPT__NPY_F4 : GOPT__NPY_I4, ds->y_elems};
    return finish(GOPT_OK, sub, out);
}

gopt_dataset_kind gopt_dataset_kind_of(const gopt_dataset *ds) { return ds ? ds->kind : GOPT_DATASET_IMAGES; }

int gopt_dataset_sample_shape(const gopt_dataset *ds, int64_t shape[GOPT_DATASET_MAX_DIMS]) {
    if (!ds || !shape) return 0;
    if (ds->kind == GOPT_DATASET_IMAGES) {
        shape[0] = GOPT_IMAGE_CHANNELS;
        shape[1] = GOPT_IMAGE_HEIGHT;
        shape[2] = GOPT_IMAGE_WIDTH;
        return 3;
    }
    memcpy(shape, ds->x_shape, (size_t)ds->x_ndim * sizeof(int64_t));
    return ds->x_ndim;
}

int gopt_dataset_target_shape(const gopt_dataset *ds, int64_t shape[GOPT_DATASET_MAX_DIMS]) {
    if (!ds || !shape || ds->kind == GOPT_DATASET_IMAGES) return 0;
    if (ds->kind == GOPT_DATASET_ARRAYS && !ds->y_float) return 0;
    memcpy(shape, ds->y_shape, (size_t)ds->y_ndim * sizeof(int64_t));
    return ds->y_ndim;
}
