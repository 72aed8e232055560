/* The CIFAR-10 side of the trainer (see trainer.h): a CIFAR ResNet fed by gopt_loader, and
 * evaluation over a dataset. Data parallel: each rank's loader takes its DistributedSampler
 * share of every epoch (num_replicas = P, rank = r) in batches of batch / P, so batch k of
 * the P ranks together is batch k of one process at the global batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airbench.h"
#include "trainer.h"

typedef struct cifar_task {
    gopt_loader *loader, *eval_loader;
    gopt_loader *recal_loader;   /* BatchNorm recalibration: its own order, same batches each time */
    const gopt_dataset *train;
    const gopt_dataset *eval_ds; /* what eval_loader reads (its share of it, under dist) */
    gopt_dataset *eval_shard;    /* dist: this rank's share of eval_ds (owned) */
    gopt_tensor *dlogits;
    int batch;                   /* per rank */
    gopt_dist *dist;
    int in_ndim;          /* the net's per-sample input: the images viewed as in_shape */
    int64_t in_shape[3];
    int tta;              /* evaluation: logits averaged over each image and its mirror */
    float *flipped;       /* tta: the mirrored batch (batch x 3072), then its logits */
    float *tta_logits;    /* tta: the first pass's logits (batch x classes) */
} cifar_task;

/* The batch of images as the net's input (N, in_shape...). */
static gopt_status images_view(const cifar_task *c, const gopt_batch *b, gopt_tensor *x) {
    int64_t shape[4] = {b->n};
    for (int i = 0; i < c->in_ndim; i++) shape[i + 1] = c->in_shape[i];
    return gopt_tensor_view((float *)b->images, c->in_ndim + 1, shape, x);
}

static int64_t cifar_batches(void *ctx) { return gopt_loader_batches_per_epoch(((cifar_task *)ctx)->loader); }

static int cifar_seek(void *ctx, int64_t epoch, int64_t index, char *err, size_t errlen) {
    cifar_task *c = ctx;
    TRAINER_LIB(gopt_loader_seek(c->loader, epoch, index), "training loader");
    return 0;
}

static int cifar_train_batch(void *ctx, gopt_net *net, float label_smoothing, trainer_batch *out, char *err,
                             size_t errlen) {
    cifar_task *c = ctx;
    gopt_batch b;
    TRAINER_LIB(gopt_loader_next(c->loader, &b), "next batch");
    if (b.n == 0) return trainer_fail(err, errlen, "the training loader ran past the end of its epoch");
    gopt_tensor x, logits, dl;
    TRAINER_LIB(images_view(c, &b, &x), "batch view");
    TRAINER_LIB(gopt_net_forward(net, &x, &logits), "forward");
    TRAINER_LIB(gopt_tensor_view(c->dlogits->data, 2, (const int64_t[]){b.n, logits.shape[1]}, &dl), "gradient view");
    float loss;
    TRAINER_LIB(gopt_loss_cross_entropy(&logits, b.labels, label_smoothing, &loss, &dl), "loss");
    int64_t correct;
    TRAINER_LIB(gopt_accuracy_count(&logits, b.labels, &correct), "accuracy");
    TRAINER_LIB(gopt_net_backward(net, &dl), "backward");
    out->loss = loss;
    out->correct = correct;
    out->count = b.n;
    out->input = x.data; /* the loader's buffer: valid until the next batch */
    out->input_n = x.numel;
    return 0;
}

static size_t cifar_state_size(void *ctx, gopt_net *net) {
    (void)net;
    return gopt_loader_state_size(((cifar_task *)ctx)->loader);
}

static int cifar_state_save(void *ctx, gopt_net *net, void *buf, size_t size, char *err, size_t errlen) {
    (void)net;
    TRAINER_LIB(gopt_loader_state_save(((cifar_task *)ctx)->loader, buf, size), "saving the loader position");
    return 0;
}

static int cifar_state_check(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    (void)net;
    if (size != gopt_loader_state_size(((cifar_task *)ctx)->loader))
        return trainer_fail(err, errlen, "checkpoint section 'data' is not a CIFAR-10 loader position (%zu bytes)",
                            size);
    return 0;
}

static int cifar_state_load(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    (void)net;
    gopt_status s = gopt_loader_state_load(((cifar_task *)ctx)->loader, buf, size);
    if (s != GOPT_OK)
        return trainer_fail(err, errlen, "checkpoint section 'data' does not fit this run: %s", gopt_last_error());
    return 0;
}

static void cifar_destroy(void *ctx) {
    cifar_task *c = ctx;
    if (!c) return;
    gopt_loader_destroy(c->eval_loader);
    gopt_loader_destroy(c->recal_loader);
    gopt_loader_destroy(c->loader);
    gopt_dataset_destroy(c->eval_shard);
    gopt_tensor_destroy(c->dlogits);
    free(c->flipped);
    free(c->tta_logits);
    free(c);
}

/* Batch i of the BatchNorm recalibration pass: a loader of its own over the training images
 * (shuffled with a seed of its own, the run's augmentation, this rank's share), restarted at
 * its epoch 0 when i = 0, so every pass sees the same batches and the training loader, its
 * position and its RNG are untouched. */
static gopt_status cifar_recal_batch(void *ctx, int64_t i, gopt_tensor *x) {
    cifar_task *c = ctx;
    gopt_status s;
    if (i == 0 && (s = gopt_loader_start_epoch(c->recal_loader, 0)) != GOPT_OK) return s;
    gopt_batch b;
    if ((s = gopt_loader_next(c->recal_loader, &b)) != GOPT_OK) return s;
    if (b.n == 0) { /* more batches asked than an epoch holds: the next epoch of its own order */
        if ((s = gopt_loader_start_epoch(c->recal_loader, 1 + i / gopt_loader_batches_per_epoch(c->recal_loader))) !=
                GOPT_OK ||
            (s = gopt_loader_next(c->recal_loader, &b)) != GOPT_OK)
            return s;
    }
    return images_view(c, &b, x);
}

/* The task over `train` for `net` (owned from here on, also on failure). */
static int create_images(const trainer_config *cfg, gopt_net *net, int in_ndim, const int64_t in_shape[],
                         const gopt_dataset *train, trainer **out, char *err, size_t errlen) {
    *out = NULL;
    int local_batch;
    if (trainer_local_batch(cfg, &local_batch, err, errlen)) {
        gopt_net_destroy(net);
        return -1;
    }
    cifar_task *c = calloc(1, sizeof *c);
    if (!c) {
        gopt_net_destroy(net);
        return trainer_fail(err, errlen, "out of memory");
    }
    c->batch = local_batch;
    c->dist = cfg->dist;
    c->in_ndim = in_ndim;
    c->tta = cfg->tta;
    memcpy(c->in_shape, in_shape, (size_t)in_ndim * sizeof in_shape[0]);
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = local_batch;
    lc.seed = cfg->seed;
    lc.augment = cfg->augment;
    lc.crop_padding = cfg->crop_padding;
    lc.prefetch = cfg->prefetch;
    /* equal-size steps when possible (the tail of each epoch's permutation is dropped);
     * with fewer images than one global batch each rank's share is padded by repeating
     * the start of the permutation (DistributedSampler) */
    lc.drop_last = gopt_dataset_count(train) >= cfg->batch;
    lc.num_replicas = trainer_world(cfg);
    lc.rank = trainer_rank(cfg);
    const int64_t shape[2] = {local_batch, gopt_dataset_classes(train)};
    const char *what = "training loader";
    gopt_status s = gopt_loader_create(&lc, train, &c->loader);
    c->train = train;
    if (s == GOPT_OK) {
        gopt_loader_config rl = lc;
        rl.seed = cfg->seed ^ 0x5eca1b4a7c0ffeeULL; /* an order of its own */
        rl.prefetch = 0;
        what = "BatchNorm recalibration loader";
        s = gopt_loader_create(&rl, train, &c->recal_loader);
    }
    if (s == GOPT_OK) {
        what = "gradient buffer";
        s = gopt_tensor_create(2, shape, &c->dlogits);
    }
    if (s != GOPT_OK) {
        trainer_fail(err, errlen, "%s: %s (%s)", what, gopt_status_str(s), gopt_last_error());
        gopt_net_destroy(net);
        cifar_destroy(c);
        return -1;
    }
    trainer_task task = {c,          cifar_batches,     cifar_seek,        cifar_train_batch, cifar_state_size,
                         cifar_state_save, cifar_state_check, cifar_state_load, cifar_destroy, cifar_recal_batch};
    return trainer_create_custom(cfg, net, &task, out, err, errlen);
}

int trainer_create(const trainer_config *cfg, const gopt_dataset *train, const gopt_dataset *val, trainer **out,
                   char *err, size_t errlen) {
    (void)val;
    *out = NULL;
    if (!cfg || !train) return trainer_fail(err, errlen, "trainer: config and training data are required");
    int local_batch;
    if (trainer_local_batch(cfg, &local_batch, err, errlen)) return -1;
    gopt_net *net = NULL;
    gopt_status s;
    if (cfg->arch == TRAINER_ARCH_AIRBENCH) {
        if (lroundf(64 * cfg->width) < 1)
            return trainer_fail(err, errlen, "network: airbench at width %g leaves its first block without channels "
                                             "(64 x width rounds to 0)", cfg->width);
        s = airbench_build(cfg->width, gopt_dataset_classes(train), local_batch, cfg->seed, &net);
    } else {
        gopt_resnet_config rc = gopt_resnet_config_default();
        rc.depth = cfg->depth;
        rc.width = cfg->width;
        rc.num_classes = gopt_dataset_classes(train);
        rc.max_batch = local_batch;
        rc.seed = cfg->seed;
        s = gopt_resnet_cifar(&rc, &net);
    }
    if (s != GOPT_OK) return trainer_fail(err, errlen, "network: %s (%s)", gopt_status_str(s), gopt_last_error());
    return create_images(cfg, net, 3, (const int64_t[]){3, 32, 32}, train, out, err, errlen);
}

int trainer_create_images(const trainer_config *cfg, gopt_net *net, int in_ndim, const int64_t in_shape[],
                          const gopt_dataset *train, trainer **out, char *err, size_t errlen) {
    *out = NULL;
    int64_t numel = 1;
    for (int i = 0; in_shape && i < in_ndim && i < 3; i++) numel *= in_shape[i];
    if (!cfg || !net || !train || in_ndim < 1 || in_ndim > 3 || numel != 3 * 32 * 32) {
        gopt_net_destroy(net);
        return trainer_fail(err, errlen, "trainer: config, net, training data and an input shape of 3072 "
                                         "values per image (rank 1 to 3) are required");
    }
    if (cfg->batch < 1) {
        gopt_net_destroy(net);
        return trainer_fail(err, errlen, "batch = %d must be >= 1", cfg->batch);
    }
    return create_images(cfg, net, in_ndim, in_shape, train, out, err, errlen);
}

/* Flip test-time augmentation: the logits of the batch's mirror images (each 32-pixel row
 * reversed) averaged into `logits`, which then views c->flipped. */
static int tta_average(cifar_task *c, const gopt_batch *b, gopt_net *net, gopt_tensor *logits, char *err,
                       size_t errlen) {
    const int64_t n = b->n, k = logits->shape[1], rows = n * 3 * 32;
    if (k > 3072) return trainer_fail(err, errlen, "flip evaluation: %lld classes (at most 3072)", (long long)k);
    if (!c->flipped || !c->tta_logits) { /* kept until the task ends (the classes do not change) */
        free(c->flipped);
        free(c->tta_logits);
        c->flipped = malloc((size_t)c->batch * 3072 * sizeof *c->flipped);
        c->tta_logits = malloc((size_t)c->batch * (size_t)k * sizeof *c->tta_logits);
        if (!c->flipped || !c->tta_logits) return trainer_fail(err, errlen, "out of memory for flip evaluation");
    }
    memcpy(c->tta_logits, logits->data, (size_t)(n * k) * sizeof *c->tta_logits);
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < 32; j++) c->flipped[r * 32 + j] = b->images[r * 32 + 31 - j];
    gopt_batch fb = *b;
    fb.images = c->flipped;
    gopt_tensor x, second;
    TRAINER_LIB(images_view(c, &fb, &x), "batch view");
    TRAINER_LIB(gopt_net_forward(net, &x, &second), "forward (mirrored)");
    for (int64_t i = 0; i < n * k; i++) c->flipped[i] = 0.5f * (c->tta_logits[i] + second.data[i]);
    TRAINER_LIB(gopt_tensor_view(c->flipped, 2, (const int64_t[]){n, k}, logits), "logits view");
    return 0;
}

int trainer_evaluate(trainer *t, const gopt_dataset *ds, double *loss, double *acc, char *err, size_t errlen) {
    if (!ds) return trainer_fail(err, errlen, "no evaluation data");
    cifar_task *c = trainer_task_ctx(t);
    gopt_net *net = trainer_net(t);
    if (c->eval_ds != ds) {
        gopt_loader_destroy(c->eval_loader);
        c->eval_loader = NULL;
        gopt_dataset_destroy(c->eval_shard);
        c->eval_shard = NULL;
        c->eval_ds = NULL;
        const gopt_dataset *mine = ds;
        if (c->dist) { /* a contiguous share each: no image twice, none left out */
            const int64_t n = gopt_dataset_count(ds), world = gopt_dist_size(c->dist), r = gopt_dist_rank(c->dist);
            const int64_t begin = n * r / world, end = n * (r + 1) / world;
            if (end > begin) {
                int64_t *idx = malloc((size_t)(end - begin) * sizeof *idx);
                if (!idx) return trainer_fail(err, errlen, "out of memory for the evaluation share");
                for (int64_t i = begin; i < end; i++) idx[i - begin] = i;
                gopt_status s = gopt_dataset_subset(ds, idx, end - begin, &c->eval_shard);
                free(idx);
                TRAINER_LIB(s, "evaluation share");
            }
            mine = c->eval_shard; /* NULL: more ranks than images, nothing to evaluate here */
        }
        if (mine) {
            gopt_loader_config lc = gopt_loader_config_default();
            lc.batch_size = c->batch;
            lc.shuffle = 0;
            lc.augment = 0;
            TRAINER_LIB(gopt_loader_create(&lc, mine, &c->eval_loader), "evaluation loader");
        }
        c->eval_ds = ds;
    }
    /* rank 0's BatchNorm statistics everywhere (they are per rank without SyncBatchNorm) */
    if (c->dist) TRAINER_LIB(gopt_dist_broadcast_net(c->dist, net), "broadcasting rank 0's net state");
    double loss_sum = 0;
    int64_t correct = 0, count = 0;
    if (c->eval_loader) TRAINER_LIB(gopt_loader_start_epoch(c->eval_loader, 0), "evaluation loader");
    gopt_net_set_training(net, 0);
    while (c->eval_loader) {
        gopt_batch b;
        TRAINER_LIB(gopt_loader_next(c->eval_loader, &b), "evaluation batch");
        if (b.n == 0) break;
        gopt_tensor x, logits;
        TRAINER_LIB(images_view(c, &b, &x), "batch view");
        TRAINER_LIB(gopt_net_forward(net, &x, &logits), "forward");
        if (c->tta && tta_average(c, &b, net, &logits, err, errlen)) return -1;
        float l;
        TRAINER_LIB(gopt_loss_cross_entropy(&logits, b.labels, 0.0f, &l, NULL), "loss");
        int64_t k;
        TRAINER_LIB(gopt_accuracy_count(&logits, b.labels, &k), "accuracy");
        loss_sum += (double)l * b.n;
        correct += k;
        count += b.n;
    }
    gopt_net_set_training(net, 1);
    if (c->dist) {
        double v[3] = {loss_sum, (double)correct, (double)count};
        TRAINER_LIB(gopt_dist_sum(c->dist, v, 3), "evaluation over the ranks");
        loss_sum = v[0];
        correct = (int64_t)v[1];
        count = (int64_t)v[2];
    }
    *loss = count ? loss_sum / (double)count : NAN;
    *acc = count ? (double)correct / (double)count : NAN;
    return 0;
}
