/* Data-parallel training over MPI (see gradopt/dist.h).
 *
 * Every collective goes through the few comm_* functions below, the only code that names
 * MPI. Built without MPI (GOPT_HAVE_MPI undefined) they are those of a world of one: a sum
 * over ranks is the value itself, a gather is a copy. The rest of the file (slices, the
 * ZeRO-1 step, clipping on slices, hashes) is the same in both builds, so the serial build
 * runs and tests the same logic.
 *
 * Gradients: DDP sums the whole arena with one in-place MPI_Allreduce, then scales by 1/P.
 * A reduce-scatter + all-gather pair (each slice summed once, by its owner) would give every
 * rank the same bits by construction, but measured 0.71x the speed of MPI_Allreduce on
 * ResNet-20's 1.09 MB and 0.46x on 100 MB (bench_dist: Open MPI 4.1's MPI_Reduce_scatter
 * alone takes longer than its MPI_Allreduce); Open MPI's allreduce algorithms hand every
 * rank the same sum of a commutative operation, which test_dist checks (parameters equal
 * bit for bit on every rank after 20 steps). ZeRO-1 needs the reduce-scatter (each rank
 * keeps only its slice) and all-gathers the updated parameters, so there the ranks are
 * identical by construction. Decisions (losses, norms, counts) go through gopt_dist_sum:
 * an all-gather of every rank's vector, summed in rank order. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "gradopt/clip.h"
#include "gradopt/dist.h"
#include "core/common.h"
#include "nn/bn_sync.h"
#include "optim/dist_hooks.h"
#include "optim/norm.h"

#ifdef GOPT_HAVE_MPI
#  include <mpi.h>
#endif

struct gopt_dist {
    gopt_dist_config cfg;
    int rank, size;
    int finalize; /* gopt_dist_create initialised MPI */
#ifdef GOPT_HAVE_MPI
    MPI_Comm comm;
    int have_comm;
#endif
    int *counts, *displs; /* per rank: slice lengths and offsets of the last arena (floats) */
    int64_t slices_for;   /* numel counts/displs were computed for (-1: none) */
    float *slice;         /* reduce-scatter destination: the largest slice */
    int64_t slice_cap;
    double *gathered; /* gopt_dist_sum scratch: size x n doubles */
    int gathered_cap;
};

gopt_dist_config gopt_dist_config_default(void) {
    gopt_dist_config c;
    memset(&c, 0, sizeof c);
    c.zero = 0;
    return c;
}

int gopt_dist_has_mpi(void) {
#ifdef GOPT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* ---- the communication layer ------------------------------------------------------------- */

#ifdef GOPT_HAVE_MPI
static gopt_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return GOPT_FAIL(GOPT_ESTATE, "%s failed: %s", what, msg);
}
#  define MPI_TRY(call, what)                         \
        do {                                          \
            int rc_ = (call);                         \
            if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, what); \
        } while (0)
#endif

static gopt_status comm_barrier(gopt_dist *d) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm) MPI_TRY(MPI_Barrier(d->comm), "MPI_Barrier");
#endif
    (void)d;
    return GOPT_OK;
}

static gopt_status comm_bcast(gopt_dist *d, void *buf, size_t bytes, int root) {
#ifdef GOPT_HAVE_MPI
    for (size_t off = 0; d->have_comm && off < bytes;) { /* counts are ints */
        size_t chunk = bytes - off < (size_t)INT_MAX ? bytes - off : (size_t)INT_MAX;
        MPI_TRY(MPI_Bcast((char *)buf + off, (int)chunk, MPI_BYTE, root, d->comm), "MPI_Bcast");
        off += chunk;
    }
#endif
    (void)d, (void)buf, (void)bytes, (void)root;
    return GOPT_OK;
}

/* out[r * n .. r * n + n - 1] = rank r's in[0..n-1]. */
static gopt_status comm_allgather_f64(gopt_dist *d, const double *in, int n, double *out) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm) {
        MPI_TRY(MPI_Allgather(in, n, MPI_DOUBLE, out, n, MPI_DOUBLE, d->comm), "MPI_Allgather");
        return GOPT_OK;
    }
#endif
    memcpy(out, in, (size_t)n * sizeof *in);
    return GOPT_OK;
}

static gopt_status comm_allgather_u64(gopt_dist *d, const uint64_t *in, int n, uint64_t *out) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm) {
        MPI_TRY(MPI_Allgather(in, n, MPI_UINT64_T, out, n, MPI_UINT64_T, d->comm), "MPI_Allgather");
        return GOPT_OK;
    }
#endif
    memcpy(out, in, (size_t)n * sizeof *in);
    return GOPT_OK;
}

/* x[0..n-1] = the sum over ranks, in place. */
static gopt_status comm_allreduce_f32(gopt_dist *d, float *x, int64_t n) {
#ifdef GOPT_HAVE_MPI
    for (int64_t off = 0; d->have_comm && off < n;) { /* counts are ints */
        int64_t chunk = n - off < INT_MAX ? n - off : INT_MAX;
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, x + off, (int)chunk, MPI_FLOAT, MPI_SUM, d->comm), "MPI_Allreduce");
        off += chunk;
    }
#endif
    (void)d, (void)x, (void)n;
    return GOPT_OK;
}

/* Sum x (the whole arena, every rank's) into d->slice: this rank's slice of the sum. */
static gopt_status comm_reduce_scatter(gopt_dist *d, const float *x) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm) {
        MPI_TRY(MPI_Reduce_scatter(x, d->slice, d->counts, MPI_FLOAT, MPI_SUM, d->comm), "MPI_Reduce_scatter");
        return GOPT_OK;
    }
#endif
    memcpy(d->slice, x + d->displs[0], (size_t)d->counts[0] * sizeof(float));
    return GOPT_OK;
}

/* Every rank's slice of x (already in place on its owner) copied to every rank. */
static gopt_status comm_allgather_slices(gopt_dist *d, float *x) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm)
        MPI_TRY(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, d->counts, d->displs, MPI_FLOAT, d->comm),
                "MPI_Allgatherv");
#endif
    (void)d, (void)x;
    return GOPT_OK;
}

/* Rank 0's `full` receives every rank's slice (n floats) at its offset. */
static gopt_status comm_gather_slices(gopt_dist *d, const float *slice, int64_t n, float *full) {
#ifdef GOPT_HAVE_MPI
    if (d->have_comm) {
        MPI_TRY(MPI_Gatherv(slice, (int)n, MPI_FLOAT, full, d->counts, d->displs, MPI_FLOAT, 0, d->comm),
                "MPI_Gatherv");
        return GOPT_OK;
    }
#endif
    if (n) memcpy(full + d->displs[0], slice, (size_t)n * sizeof(float));
    return GOPT_OK;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

#ifdef GOPT_HAVE_MPI
/* 1 when a launcher started this process as a rank (mpirun/mpiexec of Open MPI, MPICH's
 * Hydra, Slurm's srun, a PMIx server): only then does gopt_dist_create initialise MPI. A
 * plain start runs a world of one without it, and so does not pay MPI's start-up. */
static int launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "GOPT_DIST_FORCE_MPI"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}
#endif

gopt_status gopt_dist_create(const gopt_dist_config *cfg, gopt_dist **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    gopt_dist_config c = cfg ? *cfg : gopt_dist_config_default();
    if (c.zero != 0 && c.zero != 1) return GOPT_FAIL(GOPT_EINVAL, "zero = %d must be 0 or 1", c.zero);
    gopt_dist *d = gopt__calloc(1, sizeof *d);
    if (!d) return GOPT_FAIL(GOPT_ENOMEM, "dist");
    d->cfg = c;
    d->rank = 0;
    d->size = 1;
    d->slices_for = -1;
#ifdef GOPT_HAVE_MPI
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited && !finalized && !launched()) goto tables; /* a plain start: a world of one, no MPI */
    if (finalized) {
        gopt__free(d);
        return GOPT_FAIL(GOPT_ESTATE, "MPI was already finalized");
    }
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            gopt__free(d);
            return mpi_fail(rc, "MPI_Init_thread");
        }
        d->finalize = 1;
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    d->have_comm = rc == MPI_SUCCESS;
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(d->comm, &d->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(d->comm, &d->size);
    if (rc != MPI_SUCCESS) {
        gopt_status s = mpi_fail(rc, "joining MPI_COMM_WORLD");
        gopt_dist_destroy(d);
        return s;
    }
tables:
#endif
    d->counts = gopt__calloc((size_t)d->size, sizeof *d->counts);
    d->displs = gopt__calloc((size_t)d->size, sizeof *d->displs);
    if (!d->counts || !d->displs) {
        int size = d->size; /* not read from d once it is freed */
        gopt_dist_destroy(d);
        return GOPT_FAIL(GOPT_ENOMEM, "dist tables for %d ranks", size);
    }
    *out = d;
    return GOPT_OK;
}

void gopt_dist_destroy(gopt_dist *d) {
    if (!d) return;
#ifdef GOPT_HAVE_MPI
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && d->have_comm) MPI_Comm_free(&d->comm);
    if (d->finalize && !finalized) MPI_Finalize();
#endif
    gopt__free(d->counts);
    gopt__free(d->displs);
    gopt__aligned_free(d->slice);
    gopt__free(d->gathered);
    gopt__free(d);
}

int gopt_dist_rank(const gopt_dist *d) { return d ? d->rank : 0; }
int gopt_dist_size(const gopt_dist *d) { return d ? d->size : 1; }
const gopt_dist_config *gopt_dist_get_config(const gopt_dist *d) { return d ? &d->cfg : NULL; }

gopt_status gopt_dist_barrier(gopt_dist *d) {
    GOPT_CHECK_NULL(d);
    return comm_barrier(d);
}

gopt_status gopt_dist_broadcast(gopt_dist *d, void *buf, size_t bytes, int root) {
    GOPT_CHECK_NULL(d);
    if (bytes) GOPT_CHECK_NULL(buf);
    if (root < 0 || root >= d->size)
        return GOPT_FAIL(GOPT_EINVAL, "root = %d is outside 0..%d", root, d->size - 1);
    return comm_bcast(d, buf, bytes, root);
}

/* ---- sums ------------------------------------------------------------------------------------ */

/* d->gathered[r * n + i] = rank r's v[i] (n >= 1), in a scratch that grows once to the
 * largest vector gathered. */
static gopt_status gather_all(gopt_dist *d, const double *v, int n) {
    if ((int64_t)n * d->size > INT_MAX) return GOPT_FAIL(GOPT_EINVAL, "n = %d is too large to gather", n);
    if (n * d->size > d->gathered_cap) {
        double *g = gopt__malloc((size_t)n * (size_t)d->size * sizeof *g);
        if (!g) return GOPT_FAIL(GOPT_ENOMEM, "sum scratch of %d doubles", n * d->size);
        gopt__free(d->gathered);
        d->gathered = g;
        d->gathered_cap = n * d->size;
    }
    return comm_allgather_f64(d, v, n, d->gathered);
}

gopt_status gopt_dist_sum(gopt_dist *d, double *v, int n) {
    GOPT_CHECK_NULL(d);
    if (n < 0) return GOPT_FAIL(GOPT_EINVAL, "n = %d must be >= 0", n);
    if (n == 0) return GOPT_OK;
    GOPT_CHECK_NULL(v);
    if (d->size == 1) return GOPT_OK;
    GOPT_TRY(gather_all(d, v, n));
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int r = 0; r < d->size; r++) s += d->gathered[(size_t)r * (size_t)n + (size_t)i];
        v[i] = s;
    }
    return GOPT_OK;
}

static gopt_status sum_hook(void *ctx, double *v, int n) { return gopt_dist_sum(ctx, v, n); }

/* ---- verification and broadcast ------------------------------------------------------------- */

typedef struct hash64 {
    uint64_t h;
} hash64;

static void hash_bytes(hash64 *h, const void *p, size_t n) { /* FNV-1a */
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h->h = (h->h ^ b[i]) * 0x100000001b3ULL;
}
static void hash_i64(hash64 *h, int64_t v) { hash_bytes(h, &v, sizeof v); }
static void hash_f32(hash64 *h, float v) { hash_bytes(h, &v, sizeof v); }

static void hash_group_config(hash64 *h, const gopt_group_config *g) {
    const float f[6] = {g->lr, g->weight_decay, g->momentum, g->beta1, g->beta2, g->eps};
    for (int i = 0; i < 6; i++) hash_f32(h, f[i]);
}

static void hash_optim_config(hash64 *h, const gopt_optim_config *c) {
    const int64_t ints[8] = {c->algo, c->maximize, c->nesterov, c->centered, c->amsgrad, c->lookahead_k, 0, 0};
    for (int i = 0; i < 8; i++) hash_i64(h, ints[i]);
    const float f[13] = {c->lr, c->weight_decay, c->momentum, c->dampening, c->lr_decay, c->initial_accumulator_value,
                         c->eps, c->alpha, c->beta1, c->beta2, c->rho, c->momentum_decay, c->lookahead_alpha};
    for (int i = 0; i < 13; i++) hash_f32(h, f[i]);
}

gopt_status gopt_dist_verify(gopt_dist *d, const gopt_params *params, const gopt_optim *opt, const void *extra,
                             size_t extra_size) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(params);
    if (extra_size) GOPT_CHECK_NULL(extra);
    hash64 h[3] = {{0xcbf29ce484222325ULL}, {0xcbf29ce484222325ULL}, {0xcbf29ce484222325ULL}};
    int count = gopt_params_count(params);
    hash_i64(&h[0], count);
    hash_i64(&h[0], gopt_params_numel(params));
    for (int i = 0; i < count; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(params, i, &info));
        hash_bytes(&h[0], info.name, strlen(info.name) + 1);
        hash_i64(&h[0], info.tag);
        hash_i64(&h[0], info.group);
        hash_i64(&h[0], info.offset);
        hash_i64(&h[0], info.value.ndim);
        for (int k = 0; k < info.value.ndim; k++) hash_i64(&h[0], info.value.shape[k]);
    }
    int ng = gopt_params_group_count(params);
    for (int g = 0; g < ng; g++) {
        gopt_group_config gc;
        GOPT_TRY(gopt_params_group_get(params, g, &gc));
        hash_group_config(&h[0], &gc);
    }
    if (opt) {
        int ogroups = gopt_optim_group_count(opt);
        hash_i64(&h[1], ogroups);
        for (int g = 0; g < ogroups; g++) {
            gopt_optim_config oc;
            GOPT_TRY(gopt_optim_group_config(opt, g, &oc));
            hash_optim_config(&h[1], &oc);
        }
    }
    hash_bytes(&h[2], extra, extra_size);
    uint64_t mine[4] = {h[0].h, h[1].h, h[2].h, opt != NULL}, *all = NULL;
    all = gopt__malloc((size_t)d->size * sizeof mine);
    if (!all) return GOPT_FAIL(GOPT_ENOMEM, "hash table of %d ranks", d->size);
    gopt_status s = comm_allgather_u64(d, mine, 4, all);
    static const char *what[4] = {"arena layout (the net: names, shapes, tags, groups)",
                                  "optimizer (algorithm or hyperparameters)", "extra (the program's options)",
                                  "optimizer (one rank passed none)"};
    for (int r = 1; r < d->size && s == GOPT_OK; r++)
        for (int k = 0; k < 4; k++)
            if (all[(size_t)r * 4 + (size_t)k] != all[k]) {
                s = GOPT_FAIL(GOPT_EINVAL, "rank %d's %s differs from rank 0's (hash %016llx vs %016llx): every rank "
                              "must build the same net and optimizer", r, what[k],
                              (unsigned long long)all[(size_t)r * 4 + (size_t)k], (unsigned long long)all[k]);
                break;
            }
    gopt__free(all);
    return s;
}

gopt_status gopt_dist_broadcast_net(gopt_dist *d, gopt_net *net) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(net);
    gopt_params *p = gopt_net_params(net);
    if (!p || !gopt_params_finalized(p)) return GOPT_FAIL(GOPT_ESTATE, "the net is not built");
    GOPT_TRY(comm_bcast(d, gopt_params_values(p), (size_t)gopt_params_numel(p) * sizeof(float), 0));
    uint64_t size = gopt_net_state_size(net), sizes[1] = {size};
    GOPT_TRY(comm_bcast(d, sizes, sizeof sizes, 0));
    if (sizes[0] != size)
        return GOPT_FAIL(GOPT_EINVAL, "rank %d's net state is %llu bytes, rank 0's %llu: the nets differ", d->rank,
                         (unsigned long long)size, (unsigned long long)sizes[0]);
    if (size == 0) return GOPT_OK;
    void *buf = gopt__malloc((size_t)size);
    if (!buf) return GOPT_FAIL(GOPT_ENOMEM, "net state of %llu bytes", (unsigned long long)size);
    gopt_status s = d->rank == 0 ? gopt_net_state_save(net, buf, (size_t)size) : GOPT_OK;
    /* rank 0's save cannot fail on a built net; if it did the others would wait forever,
     * so the broadcast goes ahead and the loads below report the damage */
    gopt_status b = comm_bcast(d, buf, (size_t)size, 0);
    if (s == GOPT_OK) s = b;
    if (s == GOPT_OK && d->rank != 0) s = gopt_net_state_load(net, buf, (size_t)size);
    gopt__free(buf);
    return s;
}

/* ---- slices and the optimizer ------------------------------------------------------------- */

void gopt_dist_slice(const gopt_dist *d, int64_t numel, int rank, int64_t *begin, int64_t *end) {
    int64_t P = d ? d->size : 1, chunks = (numel + 15) / 16;
    int64_t b = chunks * rank / P * 16, e = chunks * (rank + 1) / P * 16;
    if (b > numel) b = numel;
    if (e > numel) e = numel;
    if (begin) *begin = b;
    if (end) *end = e;
}

/* counts/displs for an arena of numel floats, and the reduce-scatter slice buffer. */
static gopt_status prepare_slices(gopt_dist *d, int64_t numel) {
    if (d->slices_for == numel) return GOPT_OK;
    int64_t largest = 0;
    for (int r = 0; r < d->size; r++) {
        int64_t b, e;
        gopt_dist_slice(d, numel, r, &b, &e);
        if (e - b > INT_MAX || b > INT_MAX)
            return GOPT_FAIL(GOPT_EINVAL, "an arena of %lld floats is too large for %d ranks' int counts",
                             (long long)numel, d->size);
        d->counts[r] = (int)(e - b);
        d->displs[r] = (int)b;
        if (e - b > largest) largest = e - b;
    }
    if (largest > d->slice_cap) {
        float *s = gopt__aligned_alloc((size_t)largest * sizeof(float));
        if (!s) return GOPT_FAIL(GOPT_ENOMEM, "gradient slice of %lld floats", (long long)largest);
        gopt__aligned_free(d->slice);
        d->slice = s;
        d->slice_cap = largest;
    }
    d->slices_for = numel;
    return GOPT_OK;
}

/* 1 when opt updates a slice of its arena (ZeRO-1), not the whole. */
static int is_sharded(const gopt_optim *opt) {
    int64_t b, e;
    gopt_optim_range(opt, &b, &e);
    return b != 0 || e != gopt_params_numel(gopt_optim_params((gopt_optim *)opt));
}

gopt_status gopt_dist_optim_create(gopt_dist *d, const gopt_optim_config *cfg, gopt_params *params, gopt_optim **out) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(params);
    if (!d->cfg.zero) return gopt_optim_create(cfg, params, out);
    if (cfg->algo == GOPT_ALGO_LAMB)
        return GOPT_FAIL(GOPT_EINVAL, "ZeRO-1 cannot shard LAMB: its trust ratio needs whole tensors (zero = 0)");
    if (!gopt_params_finalized(params)) return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized");
    int64_t numel = gopt_params_numel(params), b, e;
    GOPT_TRY(prepare_slices(d, numel));
    gopt_dist_slice(d, numel, d->rank, &b, &e);
    GOPT_RETURN(gopt_optim_create_range(cfg, params, b, e, out));
}

/* Reduce-scatter the gradients; the averaged slice lands in place in grads. */
static gopt_status reduce_scatter_grads(gopt_dist *d, gopt_params *p) {
    int64_t numel = gopt_params_numel(p);
    GOPT_TRY(prepare_slices(d, numel));
    float *g = gopt_params_grads(p);
    GOPT_TRY(comm_reduce_scatter(d, g));
    int64_t n = d->counts[d->rank];
    float *dst = g + d->displs[d->rank];
    const float inv = 1.0f / (float)d->size;
    for (int64_t i = 0; i < n; i++) dst[i] = d->slice[i] * inv;
    return GOPT_OK;
}

gopt_status gopt_dist_allreduce_grads(gopt_dist *d, gopt_params *params) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(params);
    if (!gopt_params_finalized(params)) return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized");
    if (d->size == 1) return GOPT_OK;
    float *g = gopt_params_grads(params);
    const int64_t n = gopt_params_numel(params);
    GOPT_TRY(comm_allreduce_f32(d, g, n));
    gopt__scale(g, n, 1.0f / (float)d->size, 1);
    return GOPT_OK;
}

gopt_status gopt_dist_reduce_grads(gopt_dist *d, gopt_optim *opt) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(opt);
    gopt_params *p = gopt_optim_params(opt);
    if (d->size == 1) return GOPT_OK;
    if (!is_sharded(opt)) return gopt_dist_allreduce_grads(d, p);
    return reduce_scatter_grads(d, p);
}

/* The averaged gradient this rank holds for norms: its slice under ZeRO-1, else all of it. */
static void own_grads(gopt_optim *opt, float **g, int64_t *n) {
    int64_t b = 0, e = gopt_params_numel(gopt_optim_params(opt));
    if (is_sharded(opt)) gopt_optim_range(opt, &b, &e);
    *g = gopt_params_grads(gopt_optim_params(opt)) + b;
    *n = e - b;
}

gopt_status gopt_dist_grad_norm(gopt_dist *d, gopt_optim *opt, double norm_type, float *out) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(out);
    if (!(norm_type > 0)) return GOPT_FAIL(GOPT_EINVAL, "norm_type = %g must be > 0 (or INFINITY)", norm_type);
    float *g;
    int64_t n;
    own_grads(opt, &g, &n);
    if (!is_sharded(opt)) return gopt_norm(g, n, norm_type, out);
    double part = n > 0 ? gopt__pow_sum(g, n, norm_type, 1) : 0.0;
    if (isinf(norm_type)) { /* max over ranks: gather and take the largest (NaN wins, as pow_sum) */
        GOPT_TRY(gather_all(d, &part, 1));
        double m = 0;
        for (int r = 0; r < d->size; r++) m = (isnan(d->gathered[r]) || d->gathered[r] > m) ? d->gathered[r] : m;
        *out = (float)m;
        return GOPT_OK;
    }
    GOPT_TRY(gopt_dist_sum(d, &part, 1));
    *out = (float)(norm_type == 2.0 ? sqrt(part) : pow(part, 1.0 / norm_type));
    return GOPT_OK;
}

gopt_status gopt_dist_clip_grad_norm(gopt_dist *d, gopt_optim *opt, double max_norm, double norm_type,
                                     int error_if_nonfinite, float *total_norm) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(opt);
    if (!is_sharded(opt))
        GOPT_RETURN(gopt_clip_grad_norm(gopt_optim_params(opt), max_norm, norm_type, error_if_nonfinite, total_norm));
    GOPT_TRY(gopt__clip_check(max_norm, norm_type));
    float total;
    GOPT_TRY(gopt_dist_grad_norm(d, opt, norm_type, &total));
    if (total_norm) *total_norm = total;
    if (error_if_nonfinite && !isfinite(total))
        return GOPT_FAIL(GOPT_ENONFINITE, "the total %g-norm of the gradients is %g; gradients left untouched", norm_type,
                         (double)total);
    float *g;
    int64_t n;
    own_grads(opt, &g, &n);
    gopt__clip_apply(g, n, total, max_norm, 1);
    return GOPT_OK;
}

gopt_status gopt_dist_step(gopt_dist *d, gopt_optim *opt) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(opt);
    GOPT_TRY(gopt_optim_step(opt));
    if (d->size == 1 || !is_sharded(opt)) return GOPT_OK;
    gopt_params *p = gopt_optim_params(opt);
    GOPT_TRY(prepare_slices(d, gopt_params_numel(p)));
    return comm_allgather_slices(d, gopt_params_values(p));
}

gopt_status gopt_dist_attach_monitor(gopt_dist *d, gopt_monitor *mon, gopt_optim *opt) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(mon);
    GOPT_CHECK_NULL(opt);
    if (is_sharded(opt)) {
        int64_t b, e;
        gopt_optim_range(opt, &b, &e);
        gopt__monitor_set_shard(mon, b, e, sum_hook, d);
    } else {
        gopt__monitor_set_input_sum(mon, sum_hook, d); /* only the input check's count */
    }
    return GOPT_OK;
}

gopt_status gopt_dist_sync_batchnorm(gopt_dist *d, gopt_net *net, int on) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(net);
    return gopt__net_set_bn_sync(net, on ? sum_hook : NULL, d);
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

size_t gopt_dist_optim_state_size(const gopt_dist *d, const gopt_optim *opt) {
    (void)d;
    return gopt__optim_state_size_whole(opt);
}

static gopt_status gather_hook(void *ctx, const float *slice, int64_t n, float *full) {
    return comm_gather_slices(ctx, slice, n, full);
}

gopt_status gopt_dist_optim_state_save(gopt_dist *d, const gopt_optim *opt, void *buf, size_t size) {
    GOPT_CHECK_NULL(d);
    GOPT_CHECK_NULL(opt);
    if (d->rank == 0) GOPT_CHECK_NULL(buf);
    if (!is_sharded(opt)) return d->rank == 0 ? gopt_optim_state_save(opt, buf, size) : GOPT_OK;
    GOPT_TRY(prepare_slices(d, gopt_params_numel(gopt_optim_params((gopt_optim *)opt))));
    return gopt__optim_state_save_gathered(opt, gather_hook, d, d->rank == 0 ? buf : NULL, size);
}
