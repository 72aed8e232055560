/* gradopt/data.h: CIFAR-10 binary reader and writer, in-memory datasets, train/validation
 * split, datasets from your own float arrays, NumPy .npy files and token streams, and one
 * batch loader for all of them (deterministic shuffling, random crop + horizontal flip and
 * per-channel normalisation for images, optional prefetch thread, per-batch transforms).
 *
 * Images are 3 x 32 x 32 bytes stored channel-major exactly as the CIFAR-10 binary format
 * stores them: 1024 red, 1024 green, 1024 blue bytes, each plane row-major. A batch is a
 * float NCHW block of shape (n, 3, 32, 32) plus n int32 labels.
 *
 * CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):
 * a file is a sequence of 3073-byte records, 1 label byte (0..9) + 3072 pixel bytes.
 * The reader checks that a file is non-empty, a whole number of records, and that every
 * label is 0..9; violations are GOPT_EFORMAT naming the file and record, e.g.
 *   "data_batch_3.bin: record 1234 has label 12"
 *   "data_batch_1.bin: 30727 bytes is not a whole number of 3073-byte records".
 * A missing or unreadable file is GOPT_EIO naming the path and strerror. */
#ifndef GRADOPT_DATA_H
#define GRADOPT_DATA_H

#include "tensor.h"

GOPT_EXTERN_C_BEGIN

#define GOPT_IMAGE_CHANNELS 3
#define GOPT_IMAGE_HEIGHT 32
#define GOPT_IMAGE_WIDTH 32
#define GOPT_IMAGE_PIXELS (GOPT_IMAGE_HEIGHT * GOPT_IMAGE_WIDTH)  /* 1024 per channel */
#define GOPT_IMAGE_BYTES (GOPT_IMAGE_CHANNELS * GOPT_IMAGE_PIXELS) /* 3072 */
#define GOPT_CIFAR10_RECORD_BYTES (1 + GOPT_IMAGE_BYTES)          /* 3073 */
#define GOPT_CIFAR10_CLASSES 10

/* ---- datasets ---------------------------------------------------------------------------
 * An immutable in-memory set of `count` images (uint8, 3x32x32 each, channel-major) and
 * labels (uint8, 0..classes-1). Loaders borrow a dataset: it must outlive them. */
typedef struct gopt_dataset gopt_dataset;

/* Which standard files gopt_cifar10_load_dir reads (a bit mask). */
enum {
    GOPT_CIFAR10_BATCH_1 = 1 << 0, /* data_batch_1.bin */
    GOPT_CIFAR10_BATCH_2 = 1 << 1,
    GOPT_CIFAR10_BATCH_3 = 1 << 2,
    GOPT_CIFAR10_BATCH_4 = 1 << 3,
    GOPT_CIFAR10_BATCH_5 = 1 << 4, /* data_batch_5.bin */
    GOPT_CIFAR10_TEST = 1 << 5,    /* test_batch.bin */
    GOPT_CIFAR10_TRAIN_ALL = 0x1f  /* data_batch_1..5.bin */
};

/* Read CIFAR-10 binary files, concatenated in the given order (classes = 10).
 * Errors: GOPT_EINVAL (NULL, n < 1), GOPT_EIO (open/read failure, naming the path),
 *         GOPT_EFORMAT (empty file, partial record, label > 9: naming file and record),
 *         GOPT_EOVERFLOW, GOPT_ENOMEM. *out is NULL on failure. */
GOPT_API gopt_status gopt_cifar10_load_files(const char *const paths[], int n, gopt_dataset **out);

/* Read the standard names inside `dir` selected by `which` (GOPT_CIFAR10_* bits), in the
 * order batch 1..5 then test. Example: the usual 45k/5k protocol on the training files is
 *   gopt_cifar10_load_dir(dir, GOPT_CIFAR10_BATCH_1 | ... | GOPT_CIFAR10_BATCH_4, &train);
 *   gopt_cifar10_load_dir(dir, GOPT_CIFAR10_BATCH_5, &val);
 * Errors as gopt_cifar10_load_files; GOPT_EINVAL for which == 0 or unknown bits. */
GOPT_API gopt_status gopt_cifar10_load_dir(const char *dir, unsigned which, gopt_dataset **out);

/* Write `count` records in the CIFAR-10 binary format (images: count x 3072 bytes,
 * labels: count bytes, each 0..9). Written to `path` directly (not atomically).
 * Errors: GOPT_EINVAL (NULL, count < 1, a label > 9, naming its index), GOPT_EIO. */
GOPT_API gopt_status gopt_cifar10_write(const char *path, const uint8_t *images, const uint8_t *labels,
                                        int64_t count);
/* Write a whole dataset (its labels must be 0..9). Errors as gopt_cifar10_write. */
GOPT_API gopt_status gopt_dataset_write_cifar10(const gopt_dataset *ds, const char *path);

/* A dataset copied from memory: images count x 3072 bytes, labels count bytes, each label
 * < classes, 1 <= classes <= 256. Errors: GOPT_EINVAL (naming the bad label), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dataset_from_memory(const uint8_t *images, const uint8_t *labels, int64_t count,
                                              int classes, gopt_dataset **out);

/* A built-in synthetic image-classification set, so programs run without CIFAR-10.
 * Image i has label i % classes. Each class c has an orientation (theta = pi * c / classes),
 * a stripe frequency (2 + c % 3 cycles per image) and a colour shared with its pair
 * (hue = floor(c / 2) / ceil(classes / 2), jittered per image), so colour alone cannot
 * separate the classes; each image draws a random phase,
 * a random brightness/contrast jitter, one bright blob at a random place, and per-pixel
 * Gaussian noise (std 24), so the classes overlap a little but a small convnet separates
 * them well within a minute. Same (count, classes, seed): the same bytes.
 * Errors: GOPT_EINVAL (count < 1, classes outside 2..256), GOPT_EOVERFLOW, GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dataset_synthetic(int64_t count, int classes, uint64_t seed, gopt_dataset **out);

/* A new dataset holding images indices[0..n-1] of ds, in that order (duplicates allowed).
 * Errors: GOPT_EINVAL (NULL, n < 1), GOPT_ERANGE (an index outside 0..count-1), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dataset_subset(const gopt_dataset *ds, const int64_t *indices, int64_t n,
                                         gopt_dataset **out);

/* Split ds into a training set and a validation set of val_count images.
 *   random == 0: validation = the last val_count images, training = the first
 *                count - val_count (deterministic, no seed used);
 *   random != 0: validation = a seeded random choice of val_count images (a Fisher-Yates
 *                shuffle from gopt_rng_seed(seed)); both parts keep the original order.
 * The two parts are disjoint and together hold every image once; both are copies (ds may
 * be destroyed afterwards). Errors: GOPT_EINVAL (NULL, val_count outside 1..count-1,
 * naming both numbers), GOPT_ENOMEM. On failure both outputs are NULL. */
GOPT_API gopt_status gopt_dataset_split(const gopt_dataset *ds, int64_t val_count, int random, uint64_t seed,
                                        gopt_dataset **train, gopt_dataset **val);

GOPT_API void gopt_dataset_destroy(gopt_dataset *ds);

GOPT_API int64_t gopt_dataset_count(const gopt_dataset *ds);
GOPT_API int gopt_dataset_classes(const gopt_dataset *ds);
/* count x 3072 bytes (image i at i * GOPT_IMAGE_BYTES) and count labels. */
GOPT_API const uint8_t *gopt_dataset_images(const gopt_dataset *ds);
GOPT_API const uint8_t *gopt_dataset_labels(const gopt_dataset *ds);

/* ---- datasets from your arrays, .npy files and token streams ---------------------------
 * Besides CIFAR-style uint8 images (GOPT_DATASET_IMAGES, every function above), a dataset
 * may hold:
 *   GOPT_DATASET_ARRAYS  float32 features of any per-sample shape x_shape (1..3 dims: (F),
 *                        (T,F), (C,H,W), ...), count samples, row-major (sample-major), with
 *                        either one int32 class label per sample (0..classes-1) or float32
 *                        targets of any per-sample shape y_shape (1..3 dims);
 *   GOPT_DATASET_TOKENS  a 1-D stream of n int32 token ids cut into count = floor((n-1)/T)
 *                        samples of T = seq_len tokens: sample i has the inputs
 *                        ids[iT .. iT+T) and the next-token targets ids[iT+1 .. iT+T+1)
 *                        (the char LM's windows of gradopt/text.h, without overlap; the last
 *                        (n-1) mod T ids are in no sample, but checked). classes is the
 *                        vocabulary size.
 * All go through the same loader (below). gopt_dataset_subset and _split take image and
 * array datasets (an array subset is a float32/int32 copy, whatever its source; token
 * streams: GOPT_EINVAL, split the ids instead); _write_cifar10, _images and _labels are
 * for image datasets only (others: GOPT_EINVAL, or NULL).
 *
 * Ownership: GOPT_DATA_COPY copies the arrays (the caller may free them on return);
 * GOPT_DATA_BORROW keeps the caller's pointers: the arrays must stay valid and unchanged
 * until gopt_dataset_destroy (and loaders borrow the dataset, so they must be destroyed
 * first). Labels and tokens are checked once, when the dataset is made. */
/* Example: an MLP on NumPy arrays (x.npy float (N, 20), y.npy int (N,)), the short last
 * batch included, with one dlogits buffer for every batch:
 *   gopt_dataset *ds;       gopt_dataset_from_npy("x.npy", "y.npy", 0, &ds);
 *   gopt_loader_config lc = gopt_loader_config_default();
 *   lc.batch_size = 64;     lc.seed = 1;
 *   gopt_loader *l;         gopt_loader_create(&lc, ds, &l);
 *   gopt_tensor *dlogits;   gopt_tensor_create(2, (int64_t[]){64, classes}, &dlogits);
 *   for (int64_t e = 0; e < epochs; e++) {
 *       gopt_loader_start_epoch(l, e);
 *       for (gopt_batch b; gopt_loader_next(l, &b) == GOPT_OK && b.n > 0;) {
 *           gopt_tensor x, logits;
 *           gopt_tensor_view((float *)b.images, 2, (int64_t[]){b.n, 20}, &x);
 *           gopt_net_forward(net, &x, &logits);
 *           gopt_loss_cross_entropy(&logits, b.labels, 0.0f, &loss, dlogits);
 *           ... backward, step ...
 *       }
 *   }
 * (tests/test_data_array.c trains such an MLP; status checks left out here.) */
typedef enum gopt_dataset_kind {
    GOPT_DATASET_IMAGES = 0, /* uint8 3x32x32 images + labels (CIFAR-10 layout) */
    GOPT_DATASET_ARRAYS = 1, /* float features + class labels or float targets */
    GOPT_DATASET_TOKENS = 2  /* token stream cut into (seq_len) windows */
} gopt_dataset_kind;

typedef enum gopt_data_ownership { GOPT_DATA_COPY = 0, GOPT_DATA_BORROW = 1 } gopt_data_ownership;

#define GOPT_DATASET_MAX_DIMS 3

/* Features x (count, x_shape...) float32 with class labels (count) int32, each in
 * 0..classes-1; classes >= 1, or 0 for max(labels) + 1.
 * Errors: GOPT_EINVAL (NULL; count < 1; x_ndim outside 1..3 or a dim < 1, naming it; a
 * label outside 0..classes-1, naming its index; classes < 0; own unknown), GOPT_EOVERFLOW,
 * GOPT_ENOMEM. *out is NULL on failure. */
GOPT_API gopt_status gopt_dataset_from_floats(const float *x, int64_t count, int x_ndim, const int64_t x_shape[],
                                              const int32_t *labels, int classes, gopt_data_ownership own,
                                              gopt_dataset **out);
/* Features x (count, x_shape...) with float targets y (count, y_shape...), y_ndim 1..3
 * (a scalar target per sample is y_shape {1}). Errors as gopt_dataset_from_floats. */
GOPT_API gopt_status gopt_dataset_from_floats_targets(const float *x, int64_t count, int x_ndim,
                                                      const int64_t x_shape[], const float *y, int y_ndim,
                                                      const int64_t y_shape[], gopt_data_ownership own,
                                                      gopt_dataset **out);

/* Features and targets from two NumPy .npy files (numpy.save), memory-mapped read-only, so
 * arrays larger than RAM work (pages are read as batches need them; the files must not
 * change while the dataset exists: a file truncated under a mapping makes the next read of
 * the lost pages raise SIGBUS, as with any mmap). x_path: shape (count, ...) with 1..3 dims after count,
 * dtype '<f4' or '<f8' (float64 is converted to float32 as batches are gathered).
 * y_path: '<i4' or '<i8' of shape (count,): class labels (classes as in from_floats; each
 * is checked); '<f4' or '<f8' of shape (count, ...), 0..3 dims after count: float targets
 * (shape (count,) is one target per sample, target shape {1}).
 * The reader validates the magic "\x93NUMPY", the format version (1.0, 2.0, 3.0), the
 * header dict (descr, fortran_order, shape), refuses big-endian ('>f4'), other dtypes and
 * fortran_order True by name, and requires the data to fill the file exactly.
 * Errors: GOPT_EINVAL (NULL, classes < 0), GOPT_EIO (naming the path and strerror),
 *         GOPT_EFORMAT naming the file and the problem, e.g.
 *           "x.npy: dtype '>f4' is big-endian; only little-endian data is read (...)"
 *           "x.npy: truncated data: shape (100,4) of '<f4' (float32) needs 1600 bytes, ..."
 *           "y.npy: 99 samples, x.npy has 100"
 *           "y.npy: label[7] = 12 is outside 0..9",
 *         GOPT_EOVERFLOW, GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dataset_from_npy(const char *x_path, const char *y_path, int classes,
                                           gopt_dataset **out);

/* A token stream ids[0..n) (int32, each in 0..vocab_size-1; vocab_size >= 1, or 0 for
 * max(ids) + 1) cut into samples of seq_len (see GOPT_DATASET_TOKENS).
 * Errors: GOPT_EINVAL (NULL, seq_len < 1, vocab_size < 0, an id outside the vocabulary
 * naming its position, n < seq_len + 1: fewer tokens than one sample), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dataset_from_tokens(const int32_t *ids, int64_t n, int seq_len, int vocab_size,
                                              gopt_data_ownership own, gopt_dataset **out);
/* The same from a 1-D .npy of '<i4' or '<i8' ids (memory-mapped; int64 ids must fit the
 * vocabulary). Errors as gopt_dataset_from_tokens and gopt_dataset_from_npy. */
GOPT_API gopt_status gopt_dataset_from_tokens_npy(const char *path, int seq_len, int vocab_size,
                                                  gopt_dataset **out);

/* gopt_dataset_count and gopt_dataset_classes work for every kind: classes is the number of
 * classes (labels), the vocabulary size (tokens), or 0 (float targets). */
GOPT_API gopt_dataset_kind gopt_dataset_kind_of(const gopt_dataset *ds); /* NULL: IMAGES */
/* Per-sample shape of the features (images: 3,32,32; tokens: seq_len) into shape[3];
 * returns its ndim (0 for NULL). */
GOPT_API int gopt_dataset_sample_shape(const gopt_dataset *ds, int64_t shape[GOPT_DATASET_MAX_DIMS]);
/* Per-sample shape of the float targets; returns 0 when the dataset has class labels
 * (images, arrays with labels) and 1 with shape {seq_len} for tokens (int32 targets). */
GOPT_API int gopt_dataset_target_shape(const gopt_dataset *ds, int64_t shape[GOPT_DATASET_MAX_DIMS]);

/* ---- loader: batches of normalised, optionally augmented images ------------------------
 * For image `s` at position p of epoch e's order:
 *   order:  shuffle ? a Fisher-Yates permutation from an RNG seeded by mix(seed, e)
 *                   : 0, 1, ..., count-1
 *   crop:   (augment, crop_padding = P) the image is zero-padded by P pixels on every side
 *           (pixel value 0, i.e. black, before normalisation: torchvision's
 *           RandomCrop(32, padding=P)) and a 32x32 window at offset (dy, dx), each uniform
 *           in 0..2P, is kept: out[y][x] = in[y + dy - P][x + dx - P] (0 outside);
 *   flip:   (augment, flip) with probability 1/2, out[y][x] = cropped[y][31 - x]
 *           (RandomHorizontalFlip after RandomCrop, as torchvision composes them);
 *   value:  x = (pixel / 255 - mean[c]) / std[c]  (ToTensor + Normalize).
 * dy, dx and the flip come from an RNG seeded by mix(seed, e, p), so they depend only on
 * (seed, epoch, position): batches are bit-identical with or without the prefetch thread,
 * and a loader positioned with gopt_loader_seek (or state_load) reproduces the rest of an
 * interrupted epoch exactly. No allocation after create.
 *
 * Other datasets (GOPT_DATASET_ARRAYS, GOPT_DATASET_TOKENS) go through the same order,
 * batching, drop_last, sharding, prefetch and state; their samples are copied as stored
 * (float64 converted to float32, int64 to int32): augment must be 0 and mean/std are not
 * used. A short last batch (drop_last = 0) has n < batch_size rows; the losses accept a
 * gradient tensor allocated once for batch_size rows (gradopt/loss.h), so no re-view is
 * needed.
 *
 * Transforms: an optional callback runs on every batch after it is gathered (and after the
 * image normalisation and augmentation), before the loader hands it out, with the batch's
 * buffers writable (e.g. noise, masking, feature scaling). It runs once per batch built:
 * once per gopt_loader_next batch, once per gopt_loader_batch_at call (a batch that the
 * prefetch thread built ahead and a seek discarded was transformed too). With prefetch = 1
 * it runs on the prefetch thread (and batch_at's call on the caller's thread may overlap
 * it: a transform with shared state must then lock). For random transforms, seed an RNG from batch->seed, a
 * function of (config seed, epoch, index): batches then stay reproducible across resume
 * and prefetch. A status other than GOPT_OK fails that gopt_loader_next (the detail names
 * the batch and carries the callback's detail); the batch counts as taken. */
typedef struct gopt_batch_data {
    float *x;          /* (n, sample shape) features; NULL for tokens */
    int32_t *labels;   /* n class labels, or (n, seq_len) next-token targets; NULL for float targets */
    float *targets;    /* (n, target shape) float targets, else NULL */
    int32_t *tokens;   /* (n, seq_len) input ids for tokens, else NULL */
    int n;             /* rows in this batch (1..batch_size) */
    int64_t epoch, index;
    uint64_t seed;     /* per-batch seed for random transforms */
    const gopt_dataset *dataset;
} gopt_batch_data;
typedef gopt_status (*gopt_batch_transform_fn)(gopt_batch_data *batch, void *user);

typedef struct gopt_loader_config {
    int batch_size;   /* >= 1; default 128 */
    int shuffle;      /* 1 (default): a new order every epoch; 0: dataset order */
    int drop_last;    /* 0 (default): the last batch may be short; 1: drop it */
    uint64_t seed;    /* default 0 */
    int augment;      /* 0 (default): no crop or flip; 1: the crop and flip below */
    int crop_padding; /* 0..16, default 4 (0 = no crop) */
    int flip;         /* 0 or 1 (default): random horizontal flip */
    float mean[3];    /* default CIFAR-10: 0.4914, 0.4822, 0.4465 */
    float std[3];     /* default CIFAR-10: 0.2470, 0.2435, 0.2616 (each finite, > 0) */
    int prefetch;     /* 0 (default): build each batch in gopt_loader_next;
                         1: a second thread builds batch k+1 while the caller uses batch k */
    /* Data-parallel sharding, as torch.utils.data.distributed.DistributedSampler: every
     * process draws the same permutation of each epoch (same seed) and takes positions
     * rank, rank + num_replicas, rank + 2 num_replicas, ... of it. When the count does not
     * divide, drop_last = 0 pads the permutation by repeating its start (each process gets
     * ceil(count / num_replicas) samples, as the sampler's default), drop_last = 1 drops
     * the tail (floor) and also drops a last short batch. Batch k of rank r holds positions
     * (k B + i) num_replicas + r: over the ranks, batch k of B per rank is exactly batch k
     * of B num_replicas samples of one process (augmentation draws by that global position
     * too, so an image gets the same crop and flip on any world size). A padded position
     * q >= count holds image order[q mod count] (the permutation's start again, and draws
     * its augmentation by q). Every rank has the same number of batches. The shards are
     * disjoint when num_replicas divides count or with drop_last; otherwise the padding,
     * fewer than num_replicas samples, repeats images some other rank also reads. */
    int num_replicas; /* >= 1 (1) */
    int rank;         /* 0 .. num_replicas - 1 (0) */
    gopt_batch_transform_fn transform; /* NULL (default): none */
    void *transform_user;              /* passed to transform */
} gopt_loader_config;

GOPT_API gopt_loader_config gopt_loader_config_default(void);

typedef struct gopt_loader gopt_loader;

/* One batch, in buffers the loader owns: valid until the next gopt_loader_next, seek, or
 * destroy. n == 0 marks the end of the epoch. By dataset kind:
 *   images: images (n, 3, 32, 32), labels n;
 *   arrays: images (n, sample shape) features, then labels n or targets (n, target shape);
 *   tokens: tokens (n, seq_len) input ids, labels (n, seq_len) next-token targets. */
typedef struct gopt_batch {
    const float *images;    /* float features (NULL for tokens) */
    const int32_t *labels;  /* class labels or next-token targets (NULL for float targets) */
    int n;
    int64_t epoch, index;   /* which batch of which epoch this is */
    const float *targets;   /* float targets, else NULL */
    const int32_t *tokens;  /* input token ids, else NULL */
} gopt_batch;

/* Create a loader over ds (borrowed), positioned at epoch 0, batch 0.
 * Errors: GOPT_EINVAL (NULL; batch_size < 1; augment = 1 on a dataset that is not images;
 *         crop_padding outside 0..16; flip, augment, shuffle, drop_last, prefetch not 0/1;
 *         mean not finite; std not finite or <= 0; num_replicas < 1; rank outside
 *         0..num_replicas-1; drop_last with fewer images per rank, floor(count /
 *         num_replicas), than one batch), GOPT_ENOMEM, GOPT_ESTATE
 *         (the prefetch thread could not be started). */
GOPT_API gopt_status gopt_loader_create(const gopt_loader_config *cfg, const gopt_dataset *ds,
                                        gopt_loader **out);
/* Stops the prefetch thread. NULL is a no-op. */
GOPT_API void gopt_loader_destroy(gopt_loader *l);

/* Batches in one epoch of this rank: ceil(S / batch_size) with S = ceil(count / num_replicas),
 * or floor(S / batch_size) with S = floor(count / num_replicas) under drop_last (with one
 * replica: ceil or floor of count / batch_size). */
GOPT_API int64_t gopt_loader_batches_per_epoch(const gopt_loader *l);

/* Position the loader at batch `index` (0..batches_per_epoch) of epoch `epoch` (>= 0).
 * gopt_loader_start_epoch(l, e) is gopt_loader_seek(l, e, 0).
 * Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (epoch < 0 or index out of range). */
GOPT_API gopt_status gopt_loader_seek(gopt_loader *l, int64_t epoch, int64_t index);
GOPT_API gopt_status gopt_loader_start_epoch(gopt_loader *l, int64_t epoch);

/* The next batch of the current epoch into the loader's buffers; out->n == 0 at the end of
 * the epoch (then call gopt_loader_start_epoch). Errors: GOPT_EINVAL (NULL). */
GOPT_API gopt_status gopt_loader_next(gopt_loader *l, gopt_batch *out);

/* As gopt_loader_next, but copies into caller buffers of at least batch_size * (per-sample
 * floats: 3072 for images) floats and batch_size labels; *n receives the batch size (0 at
 * the end of the epoch). For datasets of features and class labels (images, arrays with
 * labels); others: GOPT_EINVAL (use gopt_loader_next). */
GOPT_API gopt_status gopt_loader_next_into(gopt_loader *l, float *images, int32_t *labels, int *n);

/* Build batch `index` of epoch `epoch` into caller buffers without moving the loader
 * (a pure function of the config, the dataset and (epoch, index), the transform included).
 * *n receives its size. Buffers and datasets as gopt_loader_next_into.
 * Errors: GOPT_EINVAL (NULL, dataset kind), GOPT_ERANGE, the transform's status.
 * Not to be called concurrently with next/seek. */
GOPT_API gopt_status gopt_loader_batch_at(gopt_loader *l, int64_t epoch, int64_t index, float *images,
                                          int32_t *labels, int *n);

/* Position (epoch, next batch index) for checkpoints, with the params.h convention: the state
 * ("LDR2") is seed, dataset count, batch size, drop_last, shuffle, epoch, next batch,
 * num_replicas, rank. load checks that num_replicas, seed, count, batch size, drop_last and
 * shuffle match this loader (GOPT_EFORMAT naming the field and both values: a state from
 * another world size is refused) and seeks. A state saved by another rank of the same world
 * size loads: all ranks of a data-parallel run stand at the same position, and every rank
 * loads the checkpoint rank 0 wrote; each then reads its own shard from there. States saved
 * before sharding existed ("LDR1", 8 bytes shorter) still load, as num_replicas 1, rank 0. */
GOPT_API size_t gopt_loader_state_size(const gopt_loader *l);
GOPT_API gopt_status gopt_loader_state_save(const gopt_loader *l, void *buf, size_t size);
GOPT_API gopt_status gopt_loader_state_load(gopt_loader *l, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_DATA_H */
