/* Private to the optimizers: the table of algorithms and the optimizer's layout.
 *
 * optim.c holds what every algorithm shares (create/destroy, groups, set_lr/momentum,
 * state save/load framing, threading over the arena; Lookahead, which wraps any
 * algorithm, is in lookahead.c); each
 * algorithm family has one file (sgd.c, adagrad.c, rmsprop.c, adam.c for Adam/AdamW/
 * AMSGrad, adadelta.c, nadam.c, radam.c, adamax.c, lion.c, lamb.c, schedulefree.c for
 * Schedule-Free AdamW/SGD) holding its formula,
 * its config checks, its per-step scalars and its fused kernel side by side, and exporting
 * one gopt__optim_algo entry per algorithm. optim.c finds the entry by the gopt_algo value
 * (its table `algos`), so adding an algorithm is a new file, a new enum value and a new
 * line in the table; no switch statement elsewhere names the algorithms. L1 (every
 * algorithm) is applied by optim.c around the kernels; weight averaging (average.c) is its
 * own object beside the optimizer. */
#ifndef GRADOPT_OPTIM_IMPL_H
#define GRADOPT_OPTIM_IMPL_H

#include "gradopt/optim.h"
#include "core/common.h"

/* The loops that call sqrtf vectorise only with -fno-math-errno, which CMakeLists.txt sets
 * for every file of the library (GCC ignores it in pragmas and attributes). */
#if defined(__GNUC__) || defined(__clang__)
#  define GOPT_INLINE static inline __attribute__((always_inline))
#else
#  define GOPT_INLINE static inline
#endif

/* x86-64: the kernel drivers are compiled for AVX-512, AVX2 and the baseline, picked at
 * load time (GCC function multiversioning); the baseline build stays portable. Element-wise
 * results are the same in every clone (no FMA contraction in ISO C mode); LAMB's norm
 * partial sums may differ in the last bits between clones, never between thread counts. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define GOPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define GOPT_CLONES
#endif

#define GOPT__OPTIM_PARALLEL_MIN 65536 /* elements: below this a step runs on one thread */
#define GOPT__OPTIM_NSTATE 3           /* state buffers an algorithm may use */

/* What gopt_optim_{get,set}_momentum reach (OneCycleLR's cycle_momentum). */
typedef enum gopt__momentum_field {
    GOPT__MOMENTUM_NONE = 0,
    GOPT__MOMENTUM_MOMENTUM, /* cfg.momentum (SGD, RMSprop) */
    GOPT__MOMENTUM_BETA1     /* cfg.beta1 (Adam family, Lion, LAMB) */
} gopt__momentum_field;

typedef struct gopt__optim_group {
    gopt_optim_config cfg; /* resolved; cfg.lr is the current LR */
    float initial_lr;
    /* Per-group values an algorithm carries from step to step. The state format has one
     * slot for each (see gopt_optim_state_save), whatever the algorithm. */
    float mu_product;   /* NAdam (nadam.c): product of mu_1..mu_t; 1 before the first step */
    int momentum_ready; /* SGD (sgd.c): the momentum buffer has been initialised */
    /* Schedule-Free (schedulefree.c): the sum of the average's weights and the largest
     * scheduled LR so far (schedule_free's group['weight_sum'], group['lr_max'], in double
     * as Python floats); 0 and -1 before the first step. */
    double weight_sum, lr_max;
} gopt__optim_group;

struct gopt_optim {
    gopt_algo algo;
    const struct gopt__optim_algo *impl; /* table entry of algo */
    gopt_params *params;
    /* The range of the arena this optimizer updates, [begin, begin + numel): the whole
     * arena, or one rank's slice (gopt_optim_create_range, ZeRO-1). state[i][j] and slow[j]
     * belong to arena element begin + j. */
    int64_t begin;
    int64_t numel;
    int ngroups;
    gopt__optim_group *groups;
    /* One block of impl->scalars_size bytes per group, `scalars_stride` apart: the step's
     * scalars in the algorithm's own struct, written by impl->step_scalars. */
    unsigned char *scalars;
    size_t scalars_stride;
    int64_t step;
    float *state[GOPT__OPTIM_NSTATE]; /* state[i] allocated iff bit i of buf_mask */
    unsigned buf_mask;
    void *algo_data;                  /* owned by the algorithm (impl->create/destroy) */
    /* Lookahead (lookahead.c) */
    int lookahead_k;
    float lookahead_alpha;
    float *slow;
    int slow_ready;
    /* L1 (optim.c) for an algorithm with its own pass: the gradients g + l1*sign(p) the pass
     * reads (gopt__optim_grads), allocated at create when a group has l1 > 0; NULL otherwise
     * (element-wise algorithms add the term block by block, in cache). */
    float *l1_grads;
    int eval_mode; /* Schedule-Free: the arena holds x (gopt_optim_eval); 0 for other algorithms */
};

/* One algorithm. Required: name, validate (may be NULL: nothing beyond the shared checks),
 * state_slots, scalars_size, step_scalars, and either run or pass. */
typedef struct gopt__optim_algo {
    const char *name;                              /* gopt_algo_name */
    int has_eps, has_betas;                        /* checked by the shared validation */
    gopt__momentum_field momentum_field;
    const char *state_names[GOPT__OPTIM_NSTATE];   /* PyTorch's state keys of state[i] */
    /* PyTorch's defaults where they differ from gopt_optim_config_default's common ones
     * (lr 1e-3, eps 1e-8, alpha 0.99, betas (0.9, 0.999), rho 0.9, momentum_decay 4e-3,
     * weight_decay 0). NULL: none differ. */
    void (*defaults)(gopt_optim_config *c);
    /* The algorithm's own fields, after the shared checks of lr, weight_decay, eps and
     * betas. Returns GOPT_EINVAL naming the field; `where` is "" or " (group N)". */
    gopt_status (*validate)(const gopt_optim_config *c, const char *where);
    /* Bit i set: state[i] is needed by a group with this config. */
    unsigned (*state_slots)(const gopt_optim_config *c);
    /* Optional: build the algorithm's own tables in opt->algo_data (create, after the state
     * buffers), and free them (destroy, also after a failed create). */
    gopt_status (*create)(gopt_optim *opt);
    void (*destroy)(gopt_optim *opt);
    /* Optional: give the state buffers their initial values (zero otherwise); called at
     * create, and when a group's config is replaced before the first step. */
    void (*init_state)(gopt_optim *opt);
    /* Per-step scalars of one group for step t (1-based), computed once per step in double
     * and rounded to float into the algorithm's scalars struct (scalars_size bytes). It
     * also advances the group's carried values (mu_product, momentum_ready): every step
     * that computes scalars completes. */
    size_t scalars_size;
    void (*step_scalars)(gopt__optim_group *g, int64_t t, void *scalars);
    /* The fused kernel over one run of a group: p, g and state[] already offset to the
     * run's first element (state[i] NULL when not allocated), n elements. Called from
     * inside the OpenMP region of the element-wise pass, on disjoint ranges. */
    void (*run)(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                float *const state[GOPT__OPTIM_NSTATE], int64_t n);
    /* Optional: the whole update, for an algorithm that is not element-wise (LAMB); when
     * set, run is not used. */
    void (*pass)(gopt_optim *opt);
    /* Optional: switch the arena between train (y) and eval (x) weights (Schedule-Free);
     * to_eval 1: y -> x, 0: x -> y. Called only when the mode changes. NULL: the algorithm
     * has one set of weights and gopt_optim_train/eval change nothing. */
    void (*set_mode)(gopt_optim *opt, int to_eval);
    /* Muon and Adafactor (muon.c, adafactor.c); all optional. */
    /* Bit a set: a group of this optimizer may run algorithm a instead (Muon: AdamW). */
    unsigned group_algos;
    /* A group's new config (gopt_optim_set_group_config), against the tensors it holds. */
    gopt_status (*check_group)(const gopt_optim *opt, int group, const gopt_optim_config *c);
    /* The algorithm's own config fields in each group's state record (cfg_bytes of them). */
    size_t cfg_bytes;
    void (*put_cfg)(gopt__wcur *w, const gopt_optim_config *c);
    void (*get_cfg)(gopt__rcur *r, gopt_optim_config *c);
    /* State that is not laid out like the arena (Adafactor's factors), after the buffers. */
    size_t (*extra_size)(const gopt_optim *opt);
    void (*extra_save)(const gopt_optim *opt, gopt__wcur *w);
    void (*extra_load)(gopt_optim *opt, gopt__rcur *r);
} gopt__optim_algo;

/* The table entries, one per family file. Functions returning a static entry rather than
 * global objects: the library exports no data symbols (under ASan a global would also
 * export an unprefixed __odr_asan.<name>, which symbols_prefixed refuses). */
typedef const gopt__optim_algo *(*gopt__optim_algo_fn)(void);
const gopt__optim_algo *gopt__optim_sgd(void);
const gopt__optim_algo *gopt__optim_adagrad(void);
const gopt__optim_algo *gopt__optim_rmsprop(void);
const gopt__optim_algo *gopt__optim_adam(void);
const gopt__optim_algo *gopt__optim_adamw(void);
const gopt__optim_algo *gopt__optim_adadelta(void);
const gopt__optim_algo *gopt__optim_nadam(void);
const gopt__optim_algo *gopt__optim_radam(void);
const gopt__optim_algo *gopt__optim_adamax(void);
const gopt__optim_algo *gopt__optim_lion(void);
const gopt__optim_algo *gopt__optim_lamb(void);
const gopt__optim_algo *gopt__optim_adamw_schedulefree(void); /* schedulefree.c */
const gopt__optim_algo *gopt__optim_sgd_schedulefree(void);
const gopt__optim_algo *gopt__optim_muon(void);
const gopt__optim_algo *gopt__optim_adafactor(void);

/* Refuse a config field: return GOPT_EINVAL "<algo>: <field> = <val> <why><where>". */
#define GOPT__REFUSE(cond, algo_name, field, why, val, where)                                          \
    do {                                                                                               \
        if (cond)                                                                                      \
            return GOPT_FAIL(GOPT_EINVAL, "%s: " field " = %g " why "%s", (algo_name), (double)(val), \
                             (where));                                                                 \
    } while (0)

/* The step's scalars of group gi. */
static inline const void *gopt__optim_scalars(const gopt_optim *opt, int gi) {
    return opt->scalars + (size_t)gi * opt->scalars_stride;
}

/* Threads for a pass over the arena: one below GOPT__OPTIM_PARALLEL_MIN elements. */
static inline int gopt__optim_threads(const gopt_optim *opt) {
    return opt->numel > GOPT__OPTIM_PARALLEL_MIN ? gopt_get_threads() : 1;
}

/* Thread t of nt's slice of [0, numel), on 16-element aligned boundaries. */
static inline void gopt__optim_thread_slice(int64_t numel, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t chunks = (numel + 15) / 16;
    int64_t a = chunks * t / nt * 16, b = chunks * (t + 1) / nt * 16;
    *lo = a < numel ? a : numel;
    *hi = b < numel ? b : numel;
}

/* The gradients an algorithm's own pass reads: the arena's, or with L1 on, g + l1*sign(p)
 * (maximize folded in so that the pass's g = -g gives -g + l1*sign(p)). */
static inline const float *gopt__optim_grads(const gopt_optim *opt) {
    return opt->l1_grads ? opt->l1_grads : gopt_params_grads_const(opt->params);
}

/* l1 * sign(p) with sign(0) = 0, branch-free so that it vectorises (a NaN p gives 0; the
 * step's own use of p propagates the NaN). */
GOPT_INLINE float gopt__l1_term(float p, float l1) {
    return l1 * ((float)(p > 0.0f) - (float)(p < 0.0f));
}

/* Lookahead (lookahead.c): init copies the weights into the slow weights; otherwise
 * slow += alpha*(p - slow) and p = slow. */
void gopt__lookahead_sync(gopt_optim *opt, int init);

#endif /* GRADOPT_OPTIM_IMPL_H */
