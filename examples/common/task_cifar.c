/* The CIFAR-10 side of the trainer (see trainer.h): a CIFAR ResNet fed by gopt_loader, and
 * evaluation over a dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

typedef struct cifar_task {
    gopt_loader *loader, *eval_loader;
    const gopt_dataset *eval_ds; /* what eval_loader reads */
    gopt_tensor *dlogits;
    int batch;
} cifar_task;

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
    TRAINER_LIB(gopt_tensor_view((float *)b.images, 4, (const int64_t[]){b.n, 3, 32, 32}, &x), "batch view");
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
    gopt_loader_destroy(c->loader);
    gopt_tensor_destroy(c->dlogits);
    free(c);
}

int trainer_create(const trainer_config *cfg, const gopt_dataset *train, const gopt_dataset *val, trainer **out,
                   char *err, size_t errlen) {
    (void)val;
    *out = NULL;
    if (!cfg || !train) return trainer_fail(err, errlen, "trainer: config and training data are required");
    if (cfg->batch < 1) return trainer_fail(err, errlen, "batch = %d must be >= 1", cfg->batch);
    cifar_task *c = calloc(1, sizeof *c);
    if (!c) return trainer_fail(err, errlen, "out of memory");
    c->batch = cfg->batch;
    gopt_net *net = NULL;
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = cfg->depth;
    rc.width = cfg->width;
    rc.num_classes = gopt_dataset_classes(train);
    rc.max_batch = cfg->batch;
    rc.seed = cfg->seed;
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = cfg->batch;
    lc.seed = cfg->seed;
    lc.augment = cfg->augment;
    lc.prefetch = cfg->prefetch;
    lc.drop_last = gopt_dataset_count(train) >= cfg->batch; /* equal-size steps when possible */
    const int64_t shape[2] = {cfg->batch, rc.num_classes};
    const char *what = "network";
    gopt_status s = gopt_resnet_cifar(&rc, &net);
    if (s == GOPT_OK) {
        what = "training loader";
        s = gopt_loader_create(&lc, train, &c->loader);
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
                         cifar_state_save, cifar_state_check, cifar_state_load, cifar_destroy};
    return trainer_create_custom(cfg, net, &task, out, err, errlen);
}

int trainer_evaluate(trainer *t, const gopt_dataset *ds, double *loss, double *acc, char *err, size_t errlen) {
    if (!ds) return trainer_fail(err, errlen, "no evaluation data");
    cifar_task *c = trainer_task_ctx(t);
    gopt_net *net = trainer_net(t);
    if (c->eval_ds != ds) {
        gopt_loader_destroy(c->eval_loader);
        c->eval_loader = NULL;
        gopt_loader_config lc = gopt_loader_config_default();
        lc.batch_size = c->batch;
        lc.shuffle = 0;
        lc.augment = 0;
        TRAINER_LIB(gopt_loader_create(&lc, ds, &c->eval_loader), "evaluation loader");
        c->eval_ds = ds;
    }
    TRAINER_LIB(gopt_loader_start_epoch(c->eval_loader, 0), "evaluation loader");
    gopt_net_set_training(net, 0);
    double loss_sum = 0;
    int64_t correct = 0, count = 0;
    for (;;) {
        gopt_batch b;
        TRAINER_LIB(gopt_loader_next(c->eval_loader, &b), "evaluation batch");
        if (b.n == 0) break;
        gopt_tensor x, logits;
        TRAINER_LIB(gopt_tensor_view((float *)b.images, 4, (const int64_t[]){b.n, 3, 32, 32}, &x), "batch view");
        TRAINER_LIB(gopt_net_forward(net, &x, &logits), "forward");
        float l;
        TRAINER_LIB(gopt_loss_cross_entropy(&logits, b.labels, 0.0f, &l, NULL), "loss");
        int64_t k;
        TRAINER_LIB(gopt_accuracy_count(&logits, b.labels, &k), "accuracy");
        loss_sum += (double)l * b.n;
        correct += k;
        count += b.n;
    }
    gopt_net_set_training(net, 1);
    *loss = count ? loss_sum / (double)count : NAN;
    *acc = count ? (double)correct / (double)count : NAN;
    return 0;
}
