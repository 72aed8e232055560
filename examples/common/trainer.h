/* A complete training run built from libgradopt's pieces, shared by the example programs:
 * a CIFAR ResNet, an optimizer (any algorithm), an LR schedule, optional clipping and
 * accumulation, the stability monitor, the data loader, evaluation and checkpoints.
 * It is example code (not part of the library): it prints nothing, and returns -1 with a
 * message in `err` on failure. */
#ifndef GOPT_EXAMPLES_TRAINER_H
#define GOPT_EXAMPLES_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include <gradopt.h>

typedef enum trainer_schedule {
    SCHED_CONSTANT = 0, /* the optimizer's LR throughout (after the warmup, if any) */
    SCHED_ONECYCLE,     /* OneCycleLR; the warmup sets pct_start */
    SCHED_COSINE,       /* CosineAnnealingLR to 0 over the run, after the warmup */
    SCHED_STEP,         /* StepLR: x0.1 every third of the run */
    SCHED_MULTISTEP,    /* MultiStepLR: x0.1 at 50% and 75% of the run */
    SCHED_EXPONENTIAL,  /* ExponentialLR reaching 1% of the LR at the end */
    SCHED_PLATEAU,      /* ReduceLROnPlateau on the validation loss, once per epoch */
    SCHED_COUNT
} trainer_schedule;

const char *trainer_schedule_name(trainer_schedule s);
int trainer_schedule_from_name(const char *name, trainer_schedule *out);

typedef struct trainer_config {
    /* model: CIFAR ResNet of depth 6n+2 and width multiplier */
    int depth;
    float width;
    int batch;
    uint64_t seed;          /* weights, data order and augmentation */
    int augment;            /* random crop (4 px) + horizontal flip */
    int prefetch;           /* build the next batch on a second thread */
    /* optimizer */
    gopt_optim_config optim;
    int decay_norm_bias;    /* 0: biases and BatchNorm parameters get no weight decay */
    /* schedule; steps count optimizer steps (not micro-batches) */
    trainer_schedule schedule;
    int64_t total_steps;    /* length of the run in optimizer steps (the schedules need it) */
    int64_t warmup_steps;   /* linear warmup from 1% of the LR (plateau: in epochs) */
    /* stability */
    double clip_norm;       /* > 0: clip the global L2 gradient norm */
    double agc;             /* > 0: adaptive gradient clipping factor */
    float label_smoothing;
    int accum;              /* micro-batches per optimizer step (>= 1) */
    int skip_nonfinite;     /* monitor: skip steps with NaN/Inf gradients or loss */
    int skip_spikes;        /* monitor: skip loss spikes */
    double diverge_factor;  /* loss above this multiple of the first loss = diverged (0: off) */
} trainer_config;

trainer_config trainer_config_default(void);

/* What one optimizer step did. */
typedef struct trainer_step {
    int64_t step;           /* optimizer steps attempted so far, 1-based */
    int64_t epoch;          /* 0-based */
    double loss, acc;       /* over the step's micro-batches */
    double lr;              /* LR of group 0 used for this step */
    double grad_norm;       /* global L2 norm before clipping */
    double update_ratio;    /* ||update|| / ||params|| over the whole arena */
    int applied;            /* 0: skipped by the monitor */
    int nonfinite, spike;
    int diverged;           /* set once: non-finite loss or loss > diverge_factor * first loss */
    int images;
} trainer_step;

typedef struct trainer trainer;

/* train and val are borrowed and must outlive the trainer; val may be NULL. */
int trainer_create(const trainer_config *cfg, const gopt_dataset *train, const gopt_dataset *val, trainer **out,
                   char *err, size_t errlen);
void trainer_destroy(trainer *t);

/* One optimizer step (accum micro-batches). Moves to the next epoch when the current one
 * ends; *epoch_done is set when this step consumed the last batch of an epoch. */
int trainer_step_once(trainer *t, trainer_step *out, int *epoch_done, char *err, size_t errlen);

/* Mean loss and accuracy over a dataset in eval mode (then back to training mode). */
int trainer_evaluate(trainer *t, const gopt_dataset *ds, double *loss, double *acc, char *err, size_t errlen);

/* End-of-epoch bookkeeping: ReduceLROnPlateau steps on `val_loss`. */
int trainer_end_epoch(trainer *t, double val_loss, char *err, size_t errlen);

int64_t trainer_epoch(const trainer *t);      /* current epoch, 0-based */
int64_t trainer_steps(const trainer *t);      /* optimizer steps attempted */
int64_t trainer_steps_per_epoch(const trainer *t);
gopt_net *trainer_net(trainer *t);
gopt_optim *trainer_optim(trainer *t);
gopt_monitor *trainer_monitor(trainer *t);
int trainer_diverged(const trainer *t);

/* Checkpoint every piece of state (params, BN statistics, optimizer, scheduler, monitor,
 * loader position, counters, and `config_text`) atomically to path; load it back into a
 * trainer created with the same config. */
int trainer_save(const trainer *t, const char *path, const char *config_text, char *err, size_t errlen);
int trainer_load(trainer *t, const char *path, char *err, size_t errlen);

#endif
