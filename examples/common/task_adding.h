/* The adding problem as a trainer_task (see trainer.h): Hochreiter and Schmidhuber 1997,
 * in the form Pascanu et al. 2013 ("On the difficulty of training recurrent neural
 * networks") and Arjovsky et al. 2016 use.
 *
 * A sequence is (T, 2): channel 0 values uniform in [0, 1), channel 1 a marker with
 * exactly two 1s, one at a uniform position in the first half [0, T/2) and one in the
 * second half [T/2, T); the target is the sum of the two marked values. The net
 * "rnn" (rnn/lstm, 2 -> H, one layer) -> "head" linear(H, 1) reads (N, T, 2) and writes
 * (N, T, 1); the loss is the MSE of the last step's output only (the gradient is written at
 * t = T-1 and is zero elsewhere). Always answering 1 (the target's mean) scores
 * E[(a+b-1)^2] = 1/6 = 0.167; a run "solves" the task when its test MSE drops below 0.01.
 *
 * Training batches are fresh sequences from a stream seeded by the trainer's seed (an
 * "epoch" is a block of ADDING_BATCHES_PER_EPOCH batches, each epoch its own stream);
 * the test set is a fixed set of `test_n` sequences from `test_seed`, the same for every
 * run. */
#ifndef GOPT_EXAMPLES_TASK_ADDING_H
#define GOPT_EXAMPLES_TASK_ADDING_H

#include <stdint.h>

#include "trainer.h"

#define ADDING_BATCHES_PER_EPOCH 1000000

typedef struct adding_model {
    gopt_layer_type arch; /* GOPT_LAYER_RNN (tanh) or GOPT_LAYER_LSTM */
    int T;                /* sequence length, >= 2 */
    int hidden;
    /* rnn only: > 0 draws weight_hh from N(0, rec_gain^2 / H), a matrix whose spectral
     * radius is close to rec_gain (Pascanu et al. 2013 section 2.1: above 1 gradients can
     * explode); 0 keeps PyTorch's U(+-1/sqrt(H)) (radius about 0.58: they vanish). */
    double rec_gain;
    int test_n;           /* test sequences (>= 1) */
    uint64_t test_seed;
} adding_model;

/* "rnn" / "lstm". */
const char *adding_arch_name(gopt_layer_type arch);

/* Fill x (n, T, 2) and y (n) with n sequences from rng. */
void adding_generate(gopt_rng *rng, int n, int T, float *x, float *y);

/* The net above, parameters from seed (PyTorch's defaults, then rec_gain). */
int adding_net_build(const adding_model *m, int max_batch, uint64_t seed, gopt_net **out, char *err, size_t errlen);

/* A trainer of cfg->batch sequences per micro-batch, seeded by cfg->seed. */
int adding_trainer_create(const trainer_config *cfg, const adding_model *m, trainer **out, char *err, size_t errlen);

/* MSE of the last step's output over the fixed test set (eval mode, then back to training
 * mode). */
int adding_evaluate(trainer *t, double *mse, char *err, size_t errlen);

#endif
