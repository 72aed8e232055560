/* Image datasets, split, synthetic data, and the batch loader of every dataset kind (see
 * gradopt/data.h); the CIFAR-10 files are read in dataset_cifar10.c, the other kinds made in
 * dataset_array.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "io/dataset.h"

/* ---- seeding: independent streams from (seed, tag, a, b) ------------------------------ */

enum { STREAM_PERM = 1, STREAM_AUGMENT = 2, STREAM_SYNTHETIC = 3, STREAM_SPLIT = 4, STREAM_TRANSFORM = 5 };

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t stream_hash(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
    uint64_t h = mix64(seed ^ mix64(tag));
    h = mix64(h ^ a);
    return mix64(h ^ (b * 0xD1B54A32D192ED03ull));
}

static void stream_seed(gopt_rng *rng, uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
    gopt_rng_seed(rng, stream_hash(seed, tag, a, b));
}

/* ---- datasets ----------------------------------------------------------------------- */

gopt_status gopt__dataset_alloc(int64_t count, int classes, gopt_dataset **out) {
    size_t bytes;
    if (count < 1 || (uint64_t)count > SIZE_MAX || !gopt__mul_size((size_t)count, GOPT_IMAGE_BYTES, &bytes))
        return GOPT_FAIL(GOPT_EOVERFLOW, "%lld images do not fit in memory", (long long)count);
    gopt_dataset *ds = gopt__calloc(1, sizeof *ds);
    if (!ds) return GOPT_FAIL(GOPT_ENOMEM, "dataset header");
    ds->images = gopt__malloc(bytes);
    ds->labels = gopt__malloc((size_t)count);
    if (!ds->images || !ds->labels) {
        gopt_dataset_destroy(ds);
        return GOPT_FAIL(GOPT_ENOMEM, "dataset of %lld images (%zu bytes)", (long long)count, bytes);
    }
    ds->count = count;
    ds->classes = classes;
    *out = ds;
    return GOPT_OK;
}

void gopt_dataset_destroy(gopt_dataset *ds) {
    if (!ds) return;
    gopt__dataset_release_arrays(ds);
    gopt__free(ds->images);
    gopt__free(ds->labels);
    gopt__free(ds);
}

int64_t gopt_dataset_count(const gopt_dataset *ds) { return ds ? ds->count : 0; }
int gopt_dataset_classes(const gopt_dataset *ds) { return ds ? ds->classes : 0; }
const uint8_t *gopt_dataset_images(const gopt_dataset *ds) { return ds ? ds->images : NULL; }
const uint8_t *gopt_dataset_labels(const gopt_dataset *ds) { return ds ? ds->labels : NULL; }

gopt_status gopt_dataset_from_memory(const uint8_t *images, const uint8_t *labels, int64_t count, int classes,
                                     gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(images);
    GOPT_CHECK_NULL(labels);
    if (count < 1) return GOPT_FAIL(GOPT_EINVAL, "count = %lld must be >= 1", (long long)count);
    if (classes < 1 || classes > 256) return GOPT_FAIL(GOPT_EINVAL, "classes = %d is outside 1..256", classes);
    for (int64_t i = 0; i < count; i++)
        if (labels[i] >= classes)
            return GOPT_FAIL(GOPT_EINVAL, "label[%lld] = %d is not below classes = %d", (long long)i, labels[i],
                             classes);
    gopt_dataset *ds;
    GOPT_TRY(gopt__dataset_alloc(count, classes, &ds));
    memcpy(ds->images, images, (size_t)count * GOPT_IMAGE_BYTES);
    memcpy(ds->labels, labels, (size_t)count);
    *out = ds;
    return GOPT_OK;
}

gopt_status gopt_dataset_subset(const gopt_dataset *ds, const int64_t *indices, int64_t n, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(ds);
    GOPT_CHECK_NULL(indices);
    if (ds->kind == GOPT_DATASET_TOKENS)
        return GOPT_FAIL(GOPT_EINVAL, "ds is a token stream: cut the stream itself instead");
    if (n < 1) return GOPT_FAIL(GOPT_EINVAL, "n = %lld must be >= 1", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->count)
            return GOPT_FAIL(GOPT_ERANGE, "indices[%lld] = %lld is outside 0..%lld", (long long)i,
                             (long long)indices[i], (long long)ds->count - 1);
    if (ds->kind == GOPT_DATASET_ARRAYS) return gopt__dataset_subset_arrays(ds, indices, n, out);
    gopt_dataset *sub;
    GOPT_TRY(gopt__dataset_alloc(n, ds->classes, &sub));
    for (int64_t i = 0; i < n; i++) {
        memcpy(sub->images + (size_t)i * GOPT_IMAGE_BYTES, ds->images + (size_t)indices[i] * GOPT_IMAGE_BYTES,
               GOPT_IMAGE_BYTES);
        sub->labels[i] = ds->labels[indices[i]];
    }
    *out = sub;
    return GOPT_OK;
}

gopt_status gopt_dataset_split(const gopt_dataset *ds, int64_t val_count, int random, uint64_t seed,
                               gopt_dataset **train, gopt_dataset **val) {
    GOPT_CHECK_NULL(train);
    GOPT_CHECK_NULL(val);
    *train = *val = NULL;
    GOPT_CHECK_NULL(ds);
    if (ds->kind == GOPT_DATASET_TOKENS)
        return GOPT_FAIL(GOPT_EINVAL, "ds is a token stream: cut the stream itself instead");
    if (val_count < 1 || val_count > ds->count - 1)
        return GOPT_FAIL(GOPT_EINVAL, "val_count = %lld must be in 1..%lld for a dataset of %lld images",
                         (long long)val_count, (long long)ds->count - 1, (long long)ds->count);
    int64_t n = ds->count, train_count = n - val_count;
    int64_t *order = gopt__calloc((size_t)n, sizeof *order);
    unsigned char *is_val = gopt__calloc((size_t)n, 1);
    if (!order || !is_val) {
        gopt__free(order);
        gopt__free(is_val);
        return GOPT_FAIL(GOPT_ENOMEM, "split indices for %lld images", (long long)n);
    }
    if (random) {
        /* Choose the validation set by a seeded shuffle, then keep both parts in dataset order. */
        for (int64_t i = 0; i < n; i++) order[i] = i;
        gopt_rng rng;
        stream_seed(&rng, seed, STREAM_SPLIT, 0, 0);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)gopt_rng_below(&rng, (uint64_t)i + 1);
            int64_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int64_t i = 0; i < val_count; i++) is_val[order[i]] = 1;
    } else {
        for (int64_t i = train_count; i < n; i++) is_val[i] = 1;
    }
    int64_t t = 0, v = train_count;
    for (int64_t i = 0; i < n; i++) {
        if (is_val[i]) order[v++] = i;
        else order[t++] = i;
    }
    gopt_status s = gopt_dataset_subset(ds, order, train_count, train);
    if (s == GOPT_OK) s = gopt_dataset_subset(ds, order + train_count, val_count, val);
    gopt__free(order);
    gopt__free(is_val);
    if (s != GOPT_OK) {
        gopt_dataset_destroy(*train);
        *train = NULL;
    }
    return s;
}

/* ---- synthetic data ------------------------------------------------------------------- */

static uint8_t clamp_pixel(double v) {
    if (!(v > 0.0)) return 0;
    if (v >= 255.0) return 255;
    return (uint8_t)(v + 0.5);
}

gopt_status gopt_dataset_synthetic(int64_t count, int classes, uint64_t seed, gopt_dataset **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    if (count < 1) return GOPT_FAIL(GOPT_EINVAL, "count = %lld must be >= 1", (long long)count);
    if (classes < 2 || classes > 256) return GOPT_FAIL(GOPT_EINVAL, "classes = %d is outside 2..256", classes);
    gopt_dataset *ds;
    GOPT_TRY(gopt__dataset_alloc(count, classes, &ds));
    const double two_pi = 6.283185307179586;
    for (int64_t i = 0; i < count; i++) {
        int c = (int)(i % classes);
        gopt_rng rng;
        stream_seed(&rng, seed, STREAM_SYNTHETIC, (uint64_t)i, 0);
        double theta = 3.141592653589793 * c / classes;
        double freq = 2.0 + (c % 3); /* stripes across the image */
        double ct = cos(theta), st = sin(theta);
        /* Class colour: a hue wheel shared by pairs of classes (so colour alone does not
         * separate them: the stripes' orientation must be seen), jittered per image. */
        double hue = (double)(c / 2) / ((classes + 1) / 2) + 0.04 * gopt_rng_normal(&rng), colour[3];
        for (int ch = 0; ch < 3; ch++) colour[ch] = 0.5 + 0.5 * cos(two_pi * (hue - ch / 3.0));
        double phase = two_pi * gopt_rng_uniform(&rng);
        double contrast = 0.6 + 0.4 * gopt_rng_uniform(&rng);
        double offset = 40.0 * (gopt_rng_uniform(&rng) - 0.5);
        double by = 6.0 + 20.0 * gopt_rng_uniform(&rng), bx = 6.0 + 20.0 * gopt_rng_uniform(&rng);
        double br = 3.0 + 4.0 * gopt_rng_uniform(&rng);
        uint8_t *img = ds->images + (size_t)i * GOPT_IMAGE_BYTES;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < GOPT_IMAGE_HEIGHT; y++)
                for (int x = 0; x < GOPT_IMAGE_WIDTH; x++) {
                    double s = sin(two_pi * freq * (x * ct + y * st) / GOPT_IMAGE_WIDTH + phase);
                    double d2 = (y - by) * (y - by) + (x - bx) * (x - bx);
                    double blob = d2 < br * br ? 70.0 : 0.0;
                    double v = 50.0 + 130.0 * colour[ch] + offset + contrast * 60.0 * s + blob +
                               24.0 * gopt_rng_normal(&rng);
                    img[ch * GOPT_IMAGE_PIXELS + y * GOPT_IMAGE_WIDTH + x] = clamp_pixel(v);
                }
        ds->labels[i] = (uint8_t)c;
    }
    *out = ds;
    return GOPT_OK;
}

/* ---- loader ------------------------------------------------------------------------- */

#define GOPT_DETAIL_BYTES 384

typedef struct batch_bufs {
    float *x, *targets;
    int32_t *labels, *tokens;
} batch_bufs;

struct gopt_loader {
    gopt_loader_config cfg;
    const gopt_dataset *ds;
    int64_t per_rank; /* samples this rank reads per epoch (DistributedSampler's num_samples) */
    int64_t batches;
    float lut[3][256]; /* normalised value of each byte, per channel */
    int64_t *perm;     /* order of the current epoch (read by the worker) */
    int64_t *scratch;  /* order for gopt_loader_batch_at */
    gopt__sample_sizes per; /* floats / ints per sample in each buffer */
    float *images[2];  /* features */
    int32_t *labels[2];
    float *targets[2];
    int32_t *tokens[2];
    int counts[2];
    gopt_status failed[2];          /* the transform's status for the batch in each slot */
    char why[2][GOPT_DETAIL_BYTES]; /* and its detail (the prefetch thread's is its own) */
    int64_t epoch;
    int64_t taken; /* batches of this epoch handed out so far */
    /* prefetch thread; every field below and epoch/taken/perm are guarded by mu when threaded */
    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t produce_next;
    int64_t ready[2]; /* batch index held by each slot, -1 if none */
    int busy, quit;
};

gopt_loader_config gopt_loader_config_default(void) {
    gopt_loader_config c;
    memset(&c, 0, sizeof c);
    c.batch_size = 128;
    c.shuffle = 1;
    c.drop_last = 0;
    c.seed = 0;
    c.augment = 0;
    c.crop_padding = 4;
    c.flip = 1;
    c.mean[0] = 0.4914f;
    c.mean[1] = 0.4822f;
    c.mean[2] = 0.4465f;
    c.std[0] = 0.2470f;
    c.std[1] = 0.2435f;
    c.std[2] = 0.2616f;
    c.prefetch = 0;
    c.num_replicas = 1;
    c.rank = 0;
    c.transform = NULL;
    c.transform_user = NULL;
    return c;
}

static void make_order(const gopt_loader *l, int64_t epoch, int64_t *order) {
    int64_t n = l->ds->count;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!l->cfg.shuffle) return;
    gopt_rng rng;
    stream_seed(&rng, l->cfg.seed, STREAM_PERM, (uint64_t)epoch, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)gopt_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Batch `index` of `epoch` given that epoch's order: a pure function of its inputs.
 * This rank's sample j is the epoch's global position pos = j num_replicas + rank; a position
 * past the end of the order (drop_last = 0 padding) wraps to its start, as
 * DistributedSampler pads by repeating the permutation. The crop and flip are drawn by pos,
 * so they do not depend on the world size. */
static int build_batch(const gopt_loader *l, const int64_t *order, int64_t epoch, int64_t index,
                       const batch_bufs *b) {
    const gopt_loader_config *cfg = &l->cfg;
    const int64_t count = l->ds->count, replicas = cfg->num_replicas;
    int64_t start = index * cfg->batch_size;
    int64_t n = l->per_rank - start;
    if (n > cfg->batch_size) n = cfg->batch_size;
    if (l->ds->kind != GOPT_DATASET_IMAGES) {
        for (int64_t i = 0; i < n; i++) {
            int64_t pos = (start + i) * replicas + cfg->rank;
            gopt__dataset_gather(l->ds, order[pos < count ? pos : pos % count], i, b->x, b->labels, b->targets,
                                 b->tokens);
        }
        return (int)n;
    }
    float *images = b->x;
    int32_t *labels = b->labels;
    const int pad = cfg->augment ? cfg->crop_padding : 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t pos = (start + i) * replicas + cfg->rank, s = order[pos < count ? pos : pos % count];
        int dy = 0, dx = 0, flip = 0;
        if (cfg->augment) {
            gopt_rng rng;
            stream_seed(&rng, cfg->seed, STREAM_AUGMENT, (uint64_t)epoch, (uint64_t)pos);
            dy = (int)gopt_rng_below(&rng, (uint64_t)(2 * pad + 1));
            dx = (int)gopt_rng_below(&rng, (uint64_t)(2 * pad + 1));
            flip = cfg->flip && (gopt_rng_u64(&rng) >> 63);
        }
        const uint8_t *in = l->ds->images + (size_t)s * GOPT_IMAGE_BYTES;
        float *out = images + (size_t)i * GOPT_IMAGE_BYTES;
        labels[i] = l->ds->labels[s];
        for (int c = 0; c < GOPT_IMAGE_CHANNELS; c++) {
            const float *lut = l->lut[c];
            const float zero = lut[0];
            const uint8_t *plane = in + c * GOPT_IMAGE_PIXELS;
            for (int y = 0; y < GOPT_IMAGE_HEIGHT; y++) {
                float *orow = out + c * GOPT_IMAGE_PIXELS + y * GOPT_IMAGE_WIDTH;
                int sy = y + dy - pad;
                if (sy < 0 || sy >= GOPT_IMAGE_HEIGHT) {
                    for (int x = 0; x < GOPT_IMAGE_WIDTH; x++) orow[x] = zero;
                    continue;
                }
                const uint8_t *irow = plane + sy * GOPT_IMAGE_WIDTH;
                if (!flip && pad == 0) {
                    for (int x = 0; x < GOPT_IMAGE_WIDTH; x++) orow[x] = lut[irow[x]];
                    continue;
                }
                for (int x = 0; x < GOPT_IMAGE_WIDTH; x++) {
                    int sx = (flip ? GOPT_IMAGE_WIDTH - 1 - x : x) + dx - pad;
                    orow[x] = (sx >= 0 && sx < GOPT_IMAGE_WIDTH) ? lut[irow[sx]] : zero;
                }
            }
        }
    }
    return (int)n;
}

static batch_bufs slot_bufs(const gopt_loader *l, int slot) {
    batch_bufs b = {l->images[slot], l->targets[slot], l->labels[slot], l->tokens[slot]};
    return b;
}

/* build_batch, then the user's transform; on its failure, its detail is copied to why. */
static gopt_status make_batch(const gopt_loader *l, const int64_t *order, int64_t epoch, int64_t index,
                              const batch_bufs *b, int *n, char why[GOPT_DETAIL_BYTES]) {
    *n = build_batch(l, order, epoch, index, b);
    if (!l->cfg.transform) return GOPT_OK;
    gopt_batch_data d = {b->x, b->labels, b->targets, b->tokens, *n, epoch, index,
                         stream_hash(l->cfg.seed, STREAM_TRANSFORM, (uint64_t)epoch, (uint64_t)index), l->ds};
    gopt_clear_error();
    gopt_status s = l->cfg.transform(&d, l->cfg.transform_user);
    if (s != GOPT_OK) snprintf(why, GOPT_DETAIL_BYTES, "%s", gopt_last_error()[0] ? gopt_last_error() : "no detail");
    return s;
}

static gopt_status transform_failed(const char *func, int64_t epoch, int64_t index, gopt_status s,
                                    const char *why) {
    return gopt__fail(s, func, "the transform of batch %lld of epoch %lld failed: %s",
                      (long long)index, (long long)epoch, why);
}

static void *prefetch_main(void *arg) {
    gopt_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && !(l->produce_next < l->batches && l->produce_next <= l->taken))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        int64_t j = l->produce_next++, epoch = l->epoch;
        int slot = (int)(j & 1);
        l->busy = 1;
        pthread_mutex_unlock(&l->mu);
        /* The caller holds slot (j-1)&1 and seek waits for busy == 0, so perm and this slot
         * are ours until we report back. */
        int n;
        batch_bufs b = slot_bufs(l, slot);
        gopt_status st = make_batch(l, l->perm, epoch, j, &b, &n, l->why[slot]);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        l->failed[slot] = st;
        l->counts[slot] = n;
        l->ready[slot] = j;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static gopt_status check_loader_config(const gopt_loader_config *c, const gopt_dataset *ds) {
    if (c->batch_size < 1) return GOPT_FAIL(GOPT_EINVAL, "batch_size = %d must be >= 1", c->batch_size);
    if (c->augment == 1 && ds->kind != GOPT_DATASET_IMAGES)
        return GOPT_FAIL(GOPT_EINVAL, "augment = 1 crops and flips images; this dataset is not images");
    const int flags[5] = {c->shuffle, c->drop_last, c->augment, c->flip, c->prefetch};
    static const char *names[5] = {"shuffle", "drop_last", "augment", "flip", "prefetch"};
    for (int i = 0; i < 5; i++)
        if (flags[i] != 0 && flags[i] != 1)
            return GOPT_FAIL(GOPT_EINVAL, "%s = %d must be 0 or 1", names[i], flags[i]);
    if (c->crop_padding < 0 || c->crop_padding > 16)
        return GOPT_FAIL(GOPT_EINVAL, "crop_padding = %d is outside 0..16", c->crop_padding);
    for (int i = 0; i < 3; i++) {
        if (!gopt__finite(c->mean[i])) return GOPT_FAIL(GOPT_EINVAL, "mean[%d] = %g is not finite", i, c->mean[i]);
        if (!gopt__finite(c->std[i]) || !(c->std[i] > 0))
            return GOPT_FAIL(GOPT_EINVAL, "std[%d] = %g must be finite and > 0", i, c->std[i]);
    }
    if (c->num_replicas < 1) return GOPT_FAIL(GOPT_EINVAL, "num_replicas = %d must be >= 1", c->num_replicas);
    if (c->rank < 0 || c->rank >= c->num_replicas)
        return GOPT_FAIL(GOPT_EINVAL, "rank = %d is outside 0..%d (num_replicas = %d)", c->rank,
                         c->num_replicas - 1, c->num_replicas);
    if (c->drop_last && ds->count / c->num_replicas < c->batch_size) {
        if (c->num_replicas == 1)
            return GOPT_FAIL(GOPT_EINVAL, "drop_last with %lld images and batch_size = %d leaves no batch",
                             (long long)ds->count, c->batch_size);
        return GOPT_FAIL(GOPT_EINVAL,
                         "drop_last with %lld images over num_replicas = %d (%lld per rank) and batch_size = %d "
                         "leaves no batch",
                         (long long)ds->count, c->num_replicas, (long long)(ds->count / c->num_replicas),
                         c->batch_size);
    }
    return GOPT_OK;
}

static void loader_free(gopt_loader *l) {
    gopt__free(l->perm);
    gopt__free(l->scratch);
    for (int i = 0; i < 2; i++) {
        gopt__aligned_free(l->images[i]);
        gopt__free(l->labels[i]);
        gopt__aligned_free(l->targets[i]);
        gopt__free(l->tokens[i]);
    }
    gopt__free(l);
}

gopt_status gopt_loader_create(const gopt_loader_config *cfg, const gopt_dataset *ds, gopt_loader **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(ds);
    GOPT_TRY(check_loader_config(cfg, ds));
    gopt_loader *l = gopt__calloc(1, sizeof *l);
    if (!l) return GOPT_FAIL(GOPT_ENOMEM, "loader");
    l->cfg = *cfg;
    l->ds = ds;
    /* DistributedSampler: ceil(count / P) per rank, the permutation padded from its start;
     * with drop_last the tail is dropped instead (floor), and so is a last short batch. */
    l->per_rank = cfg->drop_last ? ds->count / cfg->num_replicas
                                 : (ds->count + cfg->num_replicas - 1) / cfg->num_replicas;
    l->batches = cfg->drop_last ? l->per_rank / cfg->batch_size
                                : (l->per_rank + cfg->batch_size - 1) / cfg->batch_size;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) l->lut[c][v] = ((float)v / 255.0f - cfg->mean[c]) / cfg->std[c];
    l->per = gopt__dataset_sample_sizes(ds);
    const size_t B = (size_t)cfg->batch_size;
    size_t xb = 0, tb = 0, lb = 0, kb = 0; /* bytes of each buffer */
    int ok = gopt__mul_size(B, (size_t)l->per.x * sizeof(float), &xb) &&
             gopt__mul_size(B, (size_t)l->per.targets * sizeof(float), &tb) &&
             gopt__mul_size(B, (size_t)l->per.labels, &lb) && gopt__mul_size(B, (size_t)l->per.tokens, &kb);
    l->perm = gopt__calloc((size_t)ds->count, sizeof *l->perm);
    l->scratch = gopt__calloc((size_t)ds->count, sizeof *l->scratch);
    ok = ok && l->perm && l->scratch;
    for (int i = 0; i < 2 && ok; i++) {
        l->images[i] = xb ? gopt__aligned_alloc(xb) : NULL;
        l->targets[i] = tb ? gopt__aligned_alloc(tb) : NULL;
        l->labels[i] = lb ? gopt__calloc(lb, sizeof(int32_t)) : NULL;
        l->tokens[i] = kb ? gopt__calloc(kb, sizeof(int32_t)) : NULL;
        ok = (l->images[i] || !xb) && (l->targets[i] || !tb) && (l->labels[i] || !lb) && (l->tokens[i] || !kb);
    }
    if (!ok) {
        loader_free(l);
        return GOPT_FAIL(GOPT_ENOMEM, "loader buffers for batch_size = %d", cfg->batch_size);
    }
    make_order(l, 0, l->perm);
    l->ready[0] = l->ready[1] = -1;
    if (cfg->prefetch) {
        int rc = pthread_mutex_init(&l->mu, NULL);
        if (rc == 0) {
            rc = pthread_cond_init(&l->cv, NULL);
            if (rc != 0) pthread_mutex_destroy(&l->mu);
        }
        if (rc == 0) {
            rc = pthread_create(&l->thread, NULL, prefetch_main, l);
            if (rc != 0) {
                pthread_cond_destroy(&l->cv);
                pthread_mutex_destroy(&l->mu);
            }
        }
        if (rc != 0) {
            loader_free(l);
            return GOPT_FAIL(GOPT_ESTATE, "cannot start the prefetch thread: %s", strerror(rc));
        }
        l->threaded = 1;
    }
    *out = l;
    return GOPT_OK;
}

void gopt_loader_destroy(gopt_loader *l) {
    if (!l) return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    loader_free(l);
}

int64_t gopt_loader_batches_per_epoch(const gopt_loader *l) { return l ? l->batches : 0; }

gopt_status gopt_loader_seek(gopt_loader *l, int64_t epoch, int64_t index) {
    GOPT_CHECK_NULL(l);
    if (epoch < 0) return GOPT_FAIL(GOPT_ERANGE, "epoch = %lld must be >= 0", (long long)epoch);
    if (index < 0 || index > l->batches)
        return GOPT_FAIL(GOPT_ERANGE, "batch index %lld is outside 0..%lld", (long long)index,
                         (long long)l->batches);
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        while (l->busy) pthread_cond_wait(&l->cv, &l->mu);
    }
    if (epoch != l->epoch) make_order(l, epoch, l->perm);
    l->epoch = epoch;
    l->taken = index;
    l->produce_next = index;
    l->ready[0] = l->ready[1] = -1;
    if (l->threaded) {
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    return GOPT_OK;
}

gopt_status gopt_loader_start_epoch(gopt_loader *l, int64_t epoch) { return gopt_loader_seek(l, epoch, 0); }

gopt_status gopt_loader_next(gopt_loader *l, gopt_batch *out) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(out);
    memset(out, 0, sizeof *out);
    out->epoch = l->epoch;
    out->index = l->taken;
    if (l->taken >= l->batches) return GOPT_OK;
    int slot = (int)(l->taken & 1);
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        while (l->ready[slot] != l->taken) pthread_cond_wait(&l->cv, &l->mu);
        l->taken++;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    } else {
        batch_bufs b = slot_bufs(l, slot);
        l->failed[slot] = make_batch(l, l->perm, l->epoch, l->taken, &b, &l->counts[slot], l->why[slot]);
        l->taken++;
    }
    if (l->failed[slot] != GOPT_OK)
        return transform_failed(__func__, out->epoch, out->index, l->failed[slot], l->why[slot]);
    out->images = l->images[slot];
    out->labels = l->labels[slot];
    out->targets = l->targets[slot];
    out->tokens = l->tokens[slot];
    out->n = l->counts[slot];
    return GOPT_OK;
}

/* next_into and batch_at fill (images, labels) pairs: features with one class label each */
static gopt_status check_into(const gopt_loader *l, const char *func) {
    if (l->per.x < 1 || l->per.labels != 1)
        return gopt__fail(GOPT_EINVAL, func,
                          "the dataset's batches are not features with class labels (use gopt_loader_next)");
    return GOPT_OK;
}

gopt_status gopt_loader_next_into(gopt_loader *l, float *images, int32_t *labels, int *n) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(images);
    GOPT_CHECK_NULL(labels);
    GOPT_CHECK_NULL(n);
    GOPT_TRY(check_into(l, __func__));
    gopt_batch b;
    GOPT_TRY(gopt_loader_next(l, &b));
    if (b.n > 0) {
        memcpy(images, b.images, (size_t)b.n * (size_t)l->per.x * sizeof(float));
        memcpy(labels, b.labels, (size_t)b.n * sizeof(int32_t));
    }
    *n = b.n;
    return GOPT_OK;
}

gopt_status gopt_loader_batch_at(gopt_loader *l, int64_t epoch, int64_t index, float *images, int32_t *labels,
                                 int *n) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(images);
    GOPT_CHECK_NULL(labels);
    GOPT_CHECK_NULL(n);
    if (epoch < 0) return GOPT_FAIL(GOPT_ERANGE, "epoch = %lld must be >= 0", (long long)epoch);
    if (index < 0 || index >= l->batches)
        return GOPT_FAIL(GOPT_ERANGE, "batch index %lld is outside 0..%lld", (long long)index,
                         (long long)l->batches - 1);
    GOPT_TRY(check_into(l, __func__));
    make_order(l, epoch, l->scratch);
    batch_bufs b = {images, NULL, labels, NULL};
    char why[GOPT_DETAIL_BYTES];
    gopt_status s = make_batch(l, l->scratch, epoch, index, &b, n, why);
    return s == GOPT_OK ? GOPT_OK : transform_failed(__func__, epoch, index, s, why);
}

/* ---- loader state ----------------------------------------------------------------------- */

/* LDR2 appends num_replicas and rank to LDR1's fields. LDR1 blobs (saved before sharding
 * existed, always by a single process) still load, as num_replicas 1, rank 0. */
#define LOADER_MAGIC_V1 GOPT__MAGIC('L', 'D', 'R', '1')
#define LOADER_MAGIC GOPT__MAGIC('L', 'D', 'R', '2')
#define LOADER_STATE_BYTES_V1 (4 + 8 + 8 + 4 + 4 + 4 + 8 + 8)
#define LOADER_STATE_BYTES (LOADER_STATE_BYTES_V1 + 4 + 4)

size_t gopt_loader_state_size(const gopt_loader *l) { return l ? LOADER_STATE_BYTES : 0; }

gopt_status gopt_loader_state_save(const gopt_loader *l, void *buf, size_t size) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(buf);
    if (size < LOADER_STATE_BYTES)
        return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %d", size, LOADER_STATE_BYTES);
    gopt__wcur c = gopt__wcur_make(buf, size);
    gopt__put_u32(&c, LOADER_MAGIC);
    gopt__put_u64(&c, l->cfg.seed);
    gopt__put_i64(&c, l->ds->count);
    gopt__put_u32(&c, (uint32_t)l->cfg.batch_size);
    gopt__put_u32(&c, (uint32_t)l->cfg.drop_last);
    gopt__put_u32(&c, (uint32_t)l->cfg.shuffle);
    gopt__put_i64(&c, l->epoch);
    gopt__put_i64(&c, l->taken);
    gopt__put_u32(&c, (uint32_t)l->cfg.num_replicas);
    gopt__put_u32(&c, (uint32_t)l->cfg.rank);
    return c.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_loader_state_load(gopt_loader *l, const void *buf, size_t size) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(buf);
    gopt__rcur c = gopt__rcur_make(buf, size);
    uint32_t magic = gopt__get_u32(&c);
    if (c.ok && magic != LOADER_MAGIC && magic != LOADER_MAGIC_V1)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: bad magic 0x%08x", magic);
    const int v1 = c.ok && magic == LOADER_MAGIC_V1;
    const size_t want = v1 ? LOADER_STATE_BYTES_V1 : LOADER_STATE_BYTES;
    if (size != want)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state%s is %zu bytes, expected %zu", v1 ? " (LDR1)" : "", size,
                         want);
    uint64_t seed = gopt__get_u64(&c);
    int64_t count = gopt__get_i64(&c);
    uint32_t batch_size = gopt__get_u32(&c), drop_last = gopt__get_u32(&c), shuffle = gopt__get_u32(&c);
    int64_t epoch = gopt__get_i64(&c), next = gopt__get_i64(&c);
    uint32_t replicas = 1, rank = 0;
    if (!v1) {
        replicas = gopt__get_u32(&c);
        rank = gopt__get_u32(&c);
    }
    /* Another world size shards every epoch differently: refused. Another rank of the same
     * world size is accepted: the ranks of a data-parallel run stand at the same (epoch,
     * batch), and a checkpoint written by rank 0 is loaded by every rank (gradopt/dist.h). */
    if (replicas != (uint32_t)l->cfg.num_replicas)
        return GOPT_FAIL(GOPT_EFORMAT,
                         "loader state%s: saved with num_replicas %u (by rank %u), this loader has num_replicas %d "
                         "(rank %d): resume with the same world size",
                         v1 ? " (LDR1, single process)" : "", replicas, rank, l->cfg.num_replicas, l->cfg.rank);
    if (rank >= replicas)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: rank %u is outside 0..%u", rank, replicas - 1);
    if (seed != l->cfg.seed)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: seed %llu, this loader has %llu", (unsigned long long)seed,
                         (unsigned long long)l->cfg.seed);
    if (count != l->ds->count)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: dataset of %lld images, this loader has %lld",
                         (long long)count, (long long)l->ds->count);
    if (batch_size != (uint32_t)l->cfg.batch_size)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: batch_size %u, this loader has %d", batch_size,
                         l->cfg.batch_size);
    if (drop_last != (uint32_t)l->cfg.drop_last || shuffle != (uint32_t)l->cfg.shuffle)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: drop_last/shuffle %u/%u, this loader has %d/%d", drop_last,
                         shuffle, l->cfg.drop_last, l->cfg.shuffle);
    if (epoch < 0 || next < 0 || next > l->batches)
        return GOPT_FAIL(GOPT_EFORMAT, "loader state: position (epoch %lld, batch %lld) is out of range",
                         (long long)epoch, (long long)next);
    return gopt_loader_seek(l, epoch, next);
}
