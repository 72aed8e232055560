/* Private: the dataset object shared by the CIFAR-10 side (src/io/data.c) and the datasets
 * from arrays, .npy files and token streams (src/io/dataset_array.c), and the per-sample
 * gather the loader calls for the latter. */
#ifndef GRADOPT_IO_DATASET_H
#define GRADOPT_IO_DATASET_H

#include "gradopt/data.h"
#include "io/npy.h"

/* One array of samples: element e of sample s is at base + (s * stride + e) * itemsize,
 * stored as dtype (float32/float64 features and targets, int32/int64 labels and tokens;
 * memory-mapped arrays are converted while gathering). */
typedef struct gopt__column {
    const unsigned char *base;
    gopt__npy_dtype dtype;
    int64_t stride; /* elements from one sample to the next */
} gopt__column;

struct gopt_dataset {
    gopt_dataset_kind kind;
    int64_t count;
    int classes; /* images, arrays with class labels: classes; tokens: the vocabulary size */
    /* GOPT_DATASET_IMAGES (CIFAR-10 layout): owned */
    uint8_t *images; /* count * GOPT_IMAGE_BYTES */
    uint8_t *labels; /* count */
    /* GOPT_DATASET_ARRAYS and GOPT_DATASET_TOKENS */
    int x_ndim, y_ndim;                 /* per-sample shapes; y_ndim 0 = one class label */
    int64_t x_shape[GOPT_DATASET_MAX_DIMS], y_shape[GOPT_DATASET_MAX_DIMS];
    int64_t x_elems, y_elems;           /* per-sample numel (tokens: seq_len each) */
    gopt__column x, y;                  /* tokens: x = y = the stream, y one token later */
    int y_float;                        /* arrays: 1 = float targets, 0 = class labels */
    void *owned[2];                     /* copies made by the dataset (freed on destroy) */
    gopt__npy_map maps[2];              /* mapped .npy files (unmapped on destroy) */
};

/* Floats and int32s a batch of the dataset holds per sample: features x, class labels or
 * next-token targets (labels), float targets, input token ids. */
typedef struct gopt__sample_sizes {
    int64_t x, labels, targets, tokens;
} gopt__sample_sizes;
gopt__sample_sizes gopt__dataset_sample_sizes(const gopt_dataset *ds);

/* Copy sample s of an ARRAYS or TOKENS dataset into row i of the batch buffers (those the
 * sizes above say are used). */
void gopt__dataset_gather(const gopt_dataset *ds, int64_t s, int64_t i, float *x, int32_t *labels, float *targets,
                          int32_t *tokens);

/* An IMAGES dataset of count images with uninitialised bytes (src/io/data.c).
 * Errors: GOPT_EOVERFLOW, GOPT_ENOMEM. */
gopt_status gopt__dataset_alloc(int64_t count, int classes, gopt_dataset **out);

/* gopt_dataset_subset of an ARRAYS dataset (indices already checked): a copy, float32 and
 * int32 whatever the source's dtypes. Errors: GOPT_EOVERFLOW, GOPT_ENOMEM. */
gopt_status gopt__dataset_subset_arrays(const gopt_dataset *ds, const int64_t *indices, int64_t n,
                                        gopt_dataset **out);

/* Frees the ARRAYS/TOKENS parts (copies, maps); called by gopt_dataset_destroy. */
void gopt__dataset_release_arrays(gopt_dataset *ds);

#endif /* GRADOPT_IO_DATASET_H */
