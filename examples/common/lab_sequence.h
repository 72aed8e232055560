/* Private to the sequence scenario (lab_sequence.c: the adding problem and the section;
 * lab_sequence_text.c: the character language model). Example code. */
#ifndef GOPT_EXAMPLES_LAB_SEQUENCE_H
#define GOPT_EXAMPLES_LAB_SEQUENCE_H

#include <stdint.h>
#include <stdio.h>

#include "lab.h"
#include "report.h"
#include "trainer.h"

/* The remedies every optimizer is run with. */
enum { SEQ_BASE = 0, SEQ_CLIP_NORM, SEQ_CLIP_VALUE, SEQ_WARMUP, SEQ_NVARIANTS };
extern const char *const seq_variant_names[SEQ_NVARIANTS];

/* The optimizers: SGD with momentum 0.9 (as Pascanu et al. 2013 train RNNs, with momentum),
 * Adam and RMSprop at PyTorch's defaults otherwise. */
enum { SEQ_SGD = 0, SEQ_ADAM, SEQ_RMSPROP, SEQ_NOPTIM };
extern const char *const seq_optim_names[SEQ_NOPTIM];
gopt_optim_config seq_optim_config(int optim, double lr);

/* What one run recorded, step by step. */
typedef struct seq_trace {
    int n, cap;                 /* steps recorded */
    double *x;                  /* step number, 1-based */
    double *loss, *norm;        /* training loss; global gradient norm before clipping */
    int *spikes, nspikes;       /* indices (into x) of the monitor's loss spikes */
    int clipped, skipped, nonfinite;
    double max_norm;
    /* evaluations */
    int ne, ecap;
    double *ex, *ey;
} seq_trace;

int seq_trace_init(seq_trace *t, int cap, int ecap);
void seq_trace_free(seq_trace *t);
/* Record a step. */
void seq_trace_step(seq_trace *t, const trainer_step *s);
void seq_trace_eval(seq_trace *t, double step, double value);

/* max |g| of the arena's gradients now (after a step: the gradient the optimizer used). */
double seq_grad_maxabs(trainer *t);

/* "12.3%" of a over b. */
const char *seq_pct(char *buf, size_t n, int a, int b);

/* The character language model: its subsection into h, a sentence for the findings, and
 * which text ran. 0, or -1 after printing the error. */
int lab_sequence_text(const lab_options *o, FILE *h, char *findings, size_t nfind, char *data, size_t ndata,
                      int *builtin);

#endif
