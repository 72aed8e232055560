/* A complete training run built from libgradopt's pieces, shared by the example programs:
 * an optimizer (any algorithm), an LR schedule, optional clipping and accumulation, the
 * stability monitor, divergence detection and checkpoints with bit-exact resume, over any
 * net and any data: a `trainer_task` supplies the batches (CIFAR-10 images in
 * task_cifar.c, text in task_text.c).
 * It is example code (not part of the library): it prints nothing, and returns -1 with a
 * message in `err` on failure.
 *
 * Data parallel (trainer_config.dist, gradopt/dist.h): every process of an MPI world runs
 * the same trainer on its share of each global batch; the trainer broadcasts rank 0's net,
 * averages the gradients, decides every step on global values (loss, norms, the monitor)
 * and takes the same step on every rank. Every function below is then collective (all
 * ranks call it, in the same order) unless it says otherwise. A failure that only some
 * ranks see returns -1 on those ranks while the others may wait in a collective (the
 * process should leave without gopt_dist_destroy: mpirun then ends the others);
 * TRAINER_FAILED_ALL says that every rank failed at the same point (the ranks agreed on
 * it, so each can leave cleanly). */
#ifndef GOPT_EXAMPLES_TRAINER_H
#define GOPT_EXAMPLES_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include <gradopt.h>
#include <gradopt/dist.h>

typedef enum trainer_schedule {
    SCHED_CONSTANT = 0, /* the optimizer's LR throughout (after the warmup, if any) */
    SCHED_ONECYCLE,     /* OneCycleLR; the warmup sets pct_start */
    SCHED_COSINE,       /* CosineAnnealingLR to 0 over the run, after the warmup */
    SCHED_STEP,         /* StepLR: x0.1 every third of the run */
    SCHED_MULTISTEP,    /* MultiStepLR: x0.1 at 50% and 75% of the run */
    SCHED_EXPONENTIAL,  /* ExponentialLR reaching 1% of the LR at the end */
    SCHED_PLATEAU,      /* ReduceLROnPlateau on the validation loss, once per evaluation
                           (trainer_end_epoch) after the warmup */
    SCHED_COUNT
} trainer_schedule;

const char *trainer_schedule_name(trainer_schedule s);
int trainer_schedule_from_name(const char *name, trainer_schedule *out);

typedef struct trainer_config {
    /* model (task_cifar.c only): a CIFAR ResNet of depth 6n+2 and width multiplier, or with
     * arch = TRAINER_ARCH_AIRBENCH the plain conv-pool net of airbench94 (Jordan 2024, "94% on
     * CIFAR-10 in 3.29 seconds"): a 3x3 stem of 24 channels, then three blocks of conv 3x3,
     * maxpool 2, BN+ReLU, conv 3x3, BN+ReLU at widths 64K, 256K, 256K (K = width), global
     * average pool and a linear layer without bias; depth is ignored */
    int arch;
    int depth;
    float width;
    int batch;
    uint64_t seed;          /* weights, data order and augmentation */
    int augment;            /* CIFAR: random crop + horizontal flip */
    int crop_padding;       /* CIFAR: the crop's zero padding in pixels (default 4) */
    int tta;                /* CIFAR evaluation: logits averaged over each image and its mirror
                               image (flip test-time augmentation) */
    int prefetch;           /* CIFAR: build the next batch on a second thread */
    const char *init_weights; /* NULL, or a .safetensors / .npz file (PyTorch names) loaded into
                                 the net before the optimizer takes it (trainer_create_custom) */
    /* optimizer */
    gopt_optim_config optim;
    int decay_norm_bias;    /* 0: biases and BatchNorm parameters get no weight decay */
    /* schedule; steps count optimizer steps (not micro-batches) */
    trainer_schedule schedule;
    int64_t total_steps;    /* length of the run in optimizer steps (the schedules need it) */
    int64_t warmup_steps;   /* linear warmup from 1% of the LR over this many optimizer steps;
                               for SCHED_PLATEAU too (a second scheduler: the evaluations
                               during the warmup do not step the plateau) */
    /* stability */
    double clip_norm;       /* > 0: clip the global L2 gradient norm */
    double clip_value;      /* > 0: then clamp every gradient element to [-clip_value, clip_value] */
    double agc;             /* > 0: adaptive gradient clipping factor */
    float label_smoothing;
    int accum;              /* micro-batches per optimizer step (>= 1) */
    int skip_nonfinite;     /* monitor: skip steps with NaN/Inf gradients, loss or input */
    int skip_spikes;        /* monitor: skip loss spikes */
    double diverge_factor;  /* loss above this multiple of the first loss = diverged (0: off) */
    /* data parallel: NULL = one process (no collective anywhere). Otherwise `batch` stays
     * the global batch and each of the P ranks trains on batch / P of it (P must divide
     * it); the optimizer comes from gopt_dist_optim_create (ZeRO-1 when the world's config
     * says so). Borrowed: it must outlive the trainer. */
    gopt_dist *dist;
    /* weight averaging (torch.optim.swa_utils), at most one of the two:
     *  ema:       ema_decay in [0, 1): an EMA of the weights updated after every applied step;
     *  swa_start: > 0: SWA from epoch swa_start (1-based) on: the main schedule stops when
     *             that epoch begins, and at the end of that epoch and of every later one the
     *             weights are folded into an equal average and SWALR steps (annealing to
     *             swa_lr over swa_anneal_epochs epochs, cos), torch's recipe.
     * Evaluation then reports the average (trainer_eval_begin). Schedule-Free: the arena
     * holds y, and y is what is averaged. */
    int ema;
    float ema_decay;
    int swa_start;
    double swa_lr;
    int swa_anneal_epochs;
    /* BatchNorm statistics recomputed over this many training batches (a deterministic pass
     * of its own: the training data stream and RNGs are untouched) before evaluating
     * Schedule-Free's x or an average (0: not recomputed). Nets without BatchNorm skip it. */
    int bn_recal;
    int sync_bn;             /* dist: SyncBatchNorm (statistics over the global batch); 0: per rank */
    const char *verify_text; /* dist: hashed with the arena and optimizer by gopt_dist_verify
                                at create (the program's options: every rank must agree) */
} trainer_config;

enum { TRAINER_ARCH_RESNET = 0, TRAINER_ARCH_AIRBENCH = 1 };

trainer_config trainer_config_default(void);

/* Returned (instead of -1) when every rank of the world failed at the same point. */
#define TRAINER_FAILED_ALL (-2)

/* Not collective: this process's rank and the world size (0 and 1 without dist). */
int trainer_rank(const trainer_config *cfg);
int trainer_world(const trainer_config *cfg);
/* Not collective: the batch this rank trains on (cfg->batch / P); -1 with a message naming
 * both numbers when P does not divide cfg->batch. */
int trainer_local_batch(const trainer_config *cfg, int *local, char *err, size_t errlen);
/* Agree on a failure: rc is this rank's result (0 or < 0). Returns 0 when every rank
 * succeeded, else TRAINER_FAILED_ALL on every rank (the ranks that succeeded get a message
 * saying how many others failed). Without dist: rc. */
int trainer_agree(gopt_dist *d, int rc, char *err, size_t errlen);

/* What one micro-batch gave: mean loss over its `count` targets, `correct` top-1 hits, and
 * the float input it fed the net (input_n floats; NULL for token ids), which the step
 * checks for NaN/Inf (gopt_monitor_check_input). */
typedef struct trainer_batch {
    double loss;
    int64_t correct, count;
    const float *input;
    int64_t input_n;
} trainer_batch;

/* The data side of a run. Every function returns 0, or -1 with a message in err. */
typedef struct trainer_task {
    void *ctx;
    int64_t (*batches_per_epoch)(void *ctx);
    /* Position the training data at batch `index` of `epoch` (index 0: the epoch starts). */
    int (*seek)(void *ctx, int64_t epoch, int64_t index, char *err, size_t errlen);
    /* The next training micro-batch: forward, loss (label smoothing), backward (which
     * accumulates into the arena's gradients). */
    int (*train_batch)(void *ctx, gopt_net *net, float label_smoothing, trainer_batch *out, char *err, size_t errlen);
    /* The data position (and whatever else the task carries between batches) for
     * checkpoints, in the section "data". check validates a saved state without changing
     * anything (run before any other section is loaded: a checkpoint of other data is
     * refused by name); load applies it. */
    size_t (*state_size)(void *ctx, gopt_net *net);
    int (*state_save)(void *ctx, gopt_net *net, void *buf, size_t size, char *err, size_t errlen);
    int (*state_check)(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen);
    int (*state_load)(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen);
    void (*destroy)(void *ctx); /* may be NULL */
    /* May be NULL (a net without BatchNorm): batch i of the BatchNorm recalibration pass,
     * as gopt_net_recalibrate_bn asks for it (user = ctx). The same batches at every call,
     * from a source of its own: the training position and every RNG of the task stay as
     * they were. */
    gopt_net_batch_fn recal_batch;
} trainer_task;

/* What one optimizer step did. */
typedef struct trainer_step {
    int64_t step;           /* optimizer steps attempted so far, 1-based */
    int64_t epoch;          /* 0-based */
    double loss, acc;       /* over the step's micro-batches (and ranks) */
    double lr;              /* LR of group 0 used for this step */
    double grad_norm;       /* global L2 norm before clipping */
    double update_ratio;    /* ||update|| / ||params|| over the whole arena */
    int applied;            /* 0: skipped by the monitor */
    int clipped;            /* 1: the norm clip scaled the gradients, or an element exceeded clip_value */
    int nonfinite, spike;
    int diverged;           /* set once: non-finite loss or loss > diverge_factor * first loss */
    int64_t count;          /* targets trained on (images, characters), over all ranks */
} trainer_step;

typedef struct trainer trainer;

/* A run over `net` (built; owned by the trainer from now on, also on failure) and `task`
 * (owned too: its destroy is called by trainer_destroy). dist: TRAINER_FAILED_ALL when the
 * ranks did not build the same run (gopt_dist_verify, reported on every rank). */
int trainer_create_custom(const trainer_config *cfg, gopt_net *net, const trainer_task *task, trainer **out,
                          char *err, size_t errlen);
void trainer_destroy(trainer *t);

/* One optimizer step (accum micro-batches). Moves to the next epoch when the current one
 * ends; *epoch_done is set when this step consumed the last batch of an epoch. */
int trainer_step_once(trainer *t, trainer_step *out, int *epoch_done, char *err, size_t errlen);

/* After an evaluation: ReduceLROnPlateau steps on `val_loss` (once the warmup is over). */
int trainer_end_epoch(trainer *t, double val_loss, char *err, size_t errlen);

/* Evaluation of what the run stands for, around the task's own evaluation:
 *  - with an average (cfg->ema, cfg->swa_start, once it holds an update): the average is
 *    swapped into the arena;
 *  - else with a Schedule-Free optimizer: eval mode (the arena holds x);
 *  - else nothing (the training weights as they are).
 * In the first two cases BatchNorm statistics are recomputed for those weights over
 * cfg->bn_recal training batches (update_bn). trainer_eval_end puts everything back: the
 * training weights, train mode, and the net's own BatchNorm statistics (net state saved
 * before and loaded after), so a run that evaluates trains exactly as one that does not.
 * `what` receives "" for the training weights, else a short description ("EMA 0.999 of
 * the weights", "SWA of 3 epochs", "Schedule-Free x"), for the output line. */
int trainer_eval_begin(trainer *t, char *what, size_t whatlen, char *err, size_t errlen);
int trainer_eval_end(trainer *t, char *err, size_t errlen);
/* The average (NULL without --ema / --swa-start). */
gopt_average *trainer_average(trainer *t);
/* 1 once the SWA phase has begun (SWALR drives the LR). */
int trainer_in_swa(const trainer *t);

int64_t trainer_epoch(const trainer *t);      /* current epoch, 0-based */
int64_t trainer_steps(const trainer *t);      /* optimizer steps attempted */
int64_t trainer_steps_per_epoch(const trainer *t);
gopt_net *trainer_net(trainer *t);
gopt_optim *trainer_optim(trainer *t);
gopt_monitor *trainer_monitor(trainer *t);
void *trainer_task_ctx(trainer *t);
const trainer_config *trainer_get_config(const trainer *t);
int trainer_diverged(const trainer *t);

/* Checkpoint every piece of state (params, net state, optimizer, scheduler, monitor,
 * accumulation, the task's data position, counters, `config_text`, the weight average
 * ("average") and SWALR ("swalr") when there are any) atomically to path, with a
 * Schedule-Free optimizer in train mode (its mode is in the optimizer state); load it back into a trainer created with the same
 * config. Load validates the task's section first, then every other, and changes nothing
 * when one does not fit.
 * dist: every rank calls both. The optimizer state is gathered into the unsharded format
 * (gopt_dist_optim_state_save) and rank 0 alone writes the file, with a section "dist"
 * holding the world size and the ZeRO flag; every rank reads it. A checkpoint of another
 * world size is refused naming both sizes (one without "dist" is from one process).
 * Both agree on failure (TRAINER_FAILED_ALL). */
int trainer_save(const trainer *t, const char *path, const char *config_text, char *err, size_t errlen);
int trainer_load(trainer *t, const char *path, char *err, size_t errlen);

/* ---- CIFAR-10 (task_cifar.c) -------------------------------------------------------------
 * A CIFAR ResNet of cfg->depth and cfg->width over `train` (borrowed, must outlive the
 * trainer); val may be NULL. */
int trainer_create(const trainer_config *cfg, const gopt_dataset *train, const gopt_dataset *val, trainer **out,
                   char *err, size_t errlen);
/* The same over any classifier `net` of the images (built; owned by the trainer from now on,
 * also on failure) whose per-sample input is the image viewed as in_shape[0..in_ndim-1]
 * (3072 values: e.g. {3072} for an MLP over flattened images). trainer_evaluate works on it. */
int trainer_create_images(const trainer_config *cfg, gopt_net *net, int in_ndim, const int64_t in_shape[],
                          const gopt_dataset *train, trainer **out, char *err, size_t errlen);
/* Mean loss and accuracy over a dataset in eval mode (then back to training mode).
 * dist: each rank evaluates its contiguous share of ds (rank r: images [r N / P,
 * (r+1) N / P)) with rank 0's BatchNorm statistics (broadcast first, so the net state is
 * rank 0's everywhere, as the checkpoints store it), and the sums are reduced: every rank
 * gets the same numbers, those of the whole set. */
int trainer_evaluate(trainer *t, const gopt_dataset *ds, double *loss, double *acc, char *err, size_t errlen);

/* Shared by the tasks: format into err and return -1. */
int trainer_fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A library failure: what was being done plus the library's own detail. */
#define TRAINER_LIB(call, what)                                                                             \
    do {                                                                                                    \
        gopt_status s_ = (call);                                                                            \
        if (s_ != GOPT_OK)                                                                                  \
            return trainer_fail(err, errlen, "%s: %s (%s)", what, gopt_status_str(s_), gopt_last_error()); \
    } while (0)

#endif
