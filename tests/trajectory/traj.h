/* A parsed trajectory file (`gradopt-trajectory 1`, tests/trajectory/FORMAT.md), shared by
 * the parser (parse.c) and the replay through libgradopt's public API (replay.c). */
#ifndef GOPT_TESTS_TRAJ_H
#define GOPT_TESTS_TRAJ_H

#include <stddef.h>
#include <stdint.h>

#define TRAJ_MAX_KV 40
#define TRAJ_MAX_TENSORS 32
#define TRAJ_MAX_GROUPS 8
#define TRAJ_MAX_CHILDREN 8
#define TRAJ_MAX_STEPS 100000
#define TRAJ_MAX_ACCUM 64
#define TRAJ_MAX_NUMEL (1L << 22)

/* key=value pairs of one header line; line numbers for error messages. */
typedef struct traj_kv {
    char key[32];
    char value[256];
} traj_kv;

typedef struct traj_kvs {
    int present, line;
    traj_kv kv[TRAJ_MAX_KV];
    int n;
} traj_kvs;

typedef struct traj_tensor {
    int present, line, group, ndim;
    int64_t shape[4], numel, offset; /* offset in the concatenation of every tensor */
    float *init;
} traj_tensor;

typedef struct traj {
    const char *path;
    char name[128];
    traj_kvs optim, lookahead, sched, child[TRAJ_MAX_CHILDREN], clip, monitor;
    traj_kvs group[TRAJ_MAX_GROUPS];
    int nchildren;
    char clip_mode[8]; /* "" (none), "norm" or "value" */
    int steps;         /* from `steps`; 0 until seen */
    int accum;         /* micro-batches per step, 1 unless `accum k=` */
    int resume;        /* step after which every state is saved and reloaded; 0 = none */
    int ntensors, ngroups;
    traj_tensor tensor[TRAJ_MAX_TENSORS];
    int64_t numel; /* every tensor together */
    /* per step, allocated once the layout is known (at the first per-step record):
     * s is 1..steps, m 1..accum, g a group, x an element of the concatenation */
    float *grad;               /* [(s-1)*accum + (m-1)][numel] */
    unsigned char *grad_seen;  /* [(s-1)*accum + (m-1)][ntensors] */
    double *loss;              /* [(s-1)*accum + (m-1)] */
    unsigned char *loss_seen;
    double *metric;            /* [s-1] */
    unsigned char *metric_seen;
    double *exp_lr, *exp_mom;  /* [s][TRAJ_MAX_GROUPS], s = 0..steps */
    unsigned char *lr_seen, *mom_seen;
    signed char *exp_applied;  /* [s-1]: -1 not given */
    float *exp_param;          /* [s-1][numel] */
    unsigned char *param_seen; /* [s-1][ntensors] */
} traj;

/* Parse `path`. 0 on success; -1 with err = "path:line: what" (the traj is then freed). */
int traj_parse(const char *path, traj *t, char *err, size_t errsize);
void traj_free(traj *t);

/* Key lookup in a header line: NULL if absent. */
const char *traj_get(const traj_kvs *k, const char *key);

/* Outcome of replaying one trajectory. */
typedef struct traj_result {
    double worst_ratio; /* max |got - want| / (1e-5 + 1e-4 |want|); <= 1 passes */
    double worst_abs;
    char worst_what[256];
    long compared;
    int nonfinite;      /* NaN/Inf where the reference is finite */
    int resumed;        /* the resumed run was also checked (and matched the plain run bit for bit) */
    char error[768];    /* set when the replay failed (a status, a bad key, a mismatch of kind) */
} traj_result;

/* Replay through the public API; workdir holds the resume checkpoint. 0 ran (compare
 * worst_ratio), -1 failed with r->error. */
int traj_replay(const traj *t, const char *workdir, traj_result *r);

#endif
