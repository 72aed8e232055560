/* gradopt/dist.h: data-parallel training across processes and machines, over MPI.
 *
 * The semantics are PyTorch DDP's (torch.nn.parallel.DistributedDataParallel,
 * https://pytorch.org/docs/1.13/notes/ddp.html), with optimizer-state sharding as ZeRO
 * stage 1 (DeepSpeed; llm.c's "zero_stage 1"):
 *   - every rank builds the same net and optimizer; gopt_dist_verify checks that at start
 *     (a hash of the arena layout, the optimizer config and any caller bytes);
 *   - parameters and buffers (BatchNorm running statistics) are broadcast from rank 0;
 *   - each rank trains on its own shard of every epoch's permutation (gopt_loader_config
 *     num_replicas / rank: torch.utils.data.distributed.DistributedSampler);
 *   - after backward the gradients are averaged over the ranks (gopt_dist_reduce_grads),
 *     so every rank sees the gradient of the global batch and takes the same step;
 *   - every decision that ends a step is taken on global values: the loss and metrics are
 *     reduced (gopt_dist_sum), norms for clipping come from the global gradient
 *     (gopt_dist_clip_grad_norm), the monitor's norms and flags are global
 *     (gopt_dist_attach_monitor), so a NaN on one rank makes every rank skip the step.
 *
 * A training step:
 *   gopt_optim_zero_grad(opt);  forward + backward of the rank's micro-batch(es);
 *   gopt_dist_reduce_grads(d, opt);                 // average (DDP) or reduce-scatter (ZeRO-1)
 *   double v[1] = {local_loss}; gopt_dist_sum(d, v, 1); loss = v[0] / gopt_dist_size(d);
 *   gopt_monitor_before_step(mon, loss, &rep);      // global norms once attached
 *   if (rep.apply) { gopt_dist_clip_grad_norm(d, opt, 1.0, 2.0, 0, NULL); gopt_dist_step(d, opt); }
 *
 * Determinism: every collective whose result decides anything (sums of losses, norms,
 * counts) is an all-gather of each rank's value followed by a sum in rank order, so all
 * ranks hold the same bits. The gradient average is one MPI_Allreduce (sum) and a scale by
 * 1/P, the fastest measured; Open MPI gives every rank the same sum, so the parameters
 * never drift apart (test_dist checks them bit for bit across ranks). Under ZeRO-1 each
 * slice is summed once by its owner and the parameters are all-gathered: identical by
 * construction. The same seeds, world size and thread count give bit-identical runs,
 * across save and resume.
 *
 * ZeRO stage 1 (cfg.zero = 1): gopt_dist_optim_create gives each rank an optimizer over
 * its slice of the arena (gopt_optim_create_range: P near-equal slices, 16-float aligned),
 * so optimizer-state memory per rank is about 1/P. gopt_dist_reduce_grads then only
 * reduce-scatters (each rank holds the averaged gradient of its own slice; the rest of its
 * gradient block is stale), gopt_dist_step updates the slice and all-gathers the
 * parameters. Not with LAMB (its trust ratio needs whole tensors) or AGC (whole gradient
 * rows): gopt_dist_allreduce_grads gives every rank the whole averaged gradient instead.
 *
 * Checkpoints: the optimizer state of a ZeRO optimizer is gathered into the format of an
 * unsharded one (gopt_dist_optim_state_save, rank 0 writes it); every rank loads the same
 * file with gopt_optim_state_load, which takes a range optimizer's slice out of a whole
 * state. A resumed run with the same world size continues bit-identically.
 *
 * Not synchronised: dropout masks and augmentation draw from per-sample streams (the
 * same image gets the same crop on any world size); BatchNorm statistics are per rank
 * unless gopt_dist_sync_batchnorm (SyncBatchNorm) is on; the RNG of anything the caller
 * owns.
 *
 * Built when CMake finds MPI (GOPT_WITH_MPI, default auto; gopt_dist_has_mpi() says);
 * without it the same functions run a world of one process, so code written against this
 * header runs unchanged. No MPI type appears in this header or any other of the library:
 * the communicator is MPI_COMM_WORLD (duplicated). When the caller has not initialised MPI,
 * gopt_dist_create does (MPI_THREAD_FUNNELED: only the calling thread talks to MPI) if a
 * launcher started the process (mpirun/mpiexec, srun: it finds OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE, PMI_RANK or PMIX_RANK in the environment; GOPT_DIST_FORCE_MPI forces it), and
 * gopt_dist_destroy finalises it; a plain start is a world of one without MPI, so programs
 * that always create a gopt_dist do not pay MPI's start-up when run alone. MPI errors come back as
 * statuses (MPI_ERRORS_RETURN on the library's communicator), never as an abort.
 *
 * Every function here is collective (all ranks call it, in the same order) unless it says
 * otherwise. Errors: GOPT_EINVAL (arguments), GOPT_ESTATE (an MPI call failed, named in
 * the detail), GOPT_ENOMEM. */
#ifndef GRADOPT_DIST_H
#define GRADOPT_DIST_H

#include "net.h"
#include "optim.h"
#include "monitor.h"

GOPT_EXTERN_C_BEGIN

typedef struct gopt_dist_config {
    int zero; /* 1: ZeRO stage 1, optimizer state sharded over the ranks (0) */
} gopt_dist_config;

GOPT_API gopt_dist_config gopt_dist_config_default(void);

typedef struct gopt_dist gopt_dist;

/* 1 when the library was built with MPI, else 0 (not collective). */
GOPT_API int gopt_dist_has_mpi(void);

/* Join the world (MPI_COMM_WORLD). Initialises MPI if needed.
 * Errors: GOPT_ESTATE (MPI could not start), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_dist_create(const gopt_dist_config *cfg, gopt_dist **out);
/* Leave; finalises MPI when gopt_dist_create initialised it. NULL is a no-op. */
GOPT_API void gopt_dist_destroy(gopt_dist *d);

/* Not collective. */
GOPT_API int gopt_dist_rank(const gopt_dist *d);
GOPT_API int gopt_dist_size(const gopt_dist *d);
GOPT_API const gopt_dist_config *gopt_dist_get_config(const gopt_dist *d);

/* Barrier. */
GOPT_API gopt_status gopt_dist_barrier(gopt_dist *d);

/* Broadcast `bytes` bytes from rank `root` into buf on every rank. */
GOPT_API gopt_status gopt_dist_broadcast(gopt_dist *d, void *buf, size_t bytes, int root);

/* v[0..n-1] = the sum over ranks of each rank's v, in rank order (same bits everywhere).
 * For losses, correct counts, sample counts. */
GOPT_API gopt_status gopt_dist_sum(gopt_dist *d, double *v, int n);

/* Check that every rank built the same thing: a 64-bit hash of the arena layout (names,
 * shapes, tags, groups and their overrides), the optimizer's algorithm and
 * hyperparameters (opt may be NULL) and `extra` (extra_size bytes, may be NULL: e.g. the
 * program's options), compared across ranks. On a mismatch every rank gets GOPT_EINVAL
 * naming the first rank that differs from rank 0 and what differs ("arena layout",
 * "optimizer", "extra"). */
GOPT_API gopt_status gopt_dist_verify(gopt_dist *d, const gopt_params *params, const gopt_optim *opt,
                                      const void *extra, size_t extra_size);

/* Rank 0's parameter values and net state (BatchNorm running statistics, recurrent
 * state) copied to every rank: DDP's broadcast at construction. */
GOPT_API gopt_status gopt_dist_broadcast_net(gopt_dist *d, gopt_net *net);

/* An optimizer for this world: gopt_optim_create when cfg.zero is 0; with ZeRO-1 one over
 * this rank's slice of the arena (see gopt_dist_slice). Errors: as gopt_optim_create;
 * GOPT_EINVAL for LAMB under ZeRO-1. Destroy with gopt_optim_destroy. */
GOPT_API gopt_status gopt_dist_optim_create(gopt_dist *d, const gopt_optim_config *cfg, gopt_params *params,
                                            gopt_optim **out);

/* Not collective: [begin, end) of an arena of numel floats owned by `rank` under ZeRO-1:
 * P near-equal slices on 16-float boundaries, in rank order. */
GOPT_API void gopt_dist_slice(const gopt_dist *d, int64_t numel, int rank, int64_t *begin, int64_t *end);

/* Average the gradients over the ranks as this world's optimizer needs them: the whole
 * arena (DDP), or each rank's own slice (ZeRO-1; opt must come from gopt_dist_optim_create).
 * DDP: one in-place all-reduce of the whole arena; ZeRO-1: one reduce-scatter. */
GOPT_API gopt_status gopt_dist_reduce_grads(gopt_dist *d, gopt_optim *opt);
/* Average the whole gradient arena on every rank, whatever the mode (before AGC). */
GOPT_API gopt_status gopt_dist_allreduce_grads(gopt_dist *d, gopt_params *params);

/* clip_grad_norm_ on the global averaged gradient (after gopt_dist_reduce_grads): the
 * norm of the whole arena, or under ZeRO-1 the norm summed over the slices. Arguments and
 * total_norm as gopt_clip_grad_norm. */
GOPT_API gopt_status gopt_dist_clip_grad_norm(gopt_dist *d, gopt_optim *opt, double max_norm, double norm_type,
                                              int error_if_nonfinite, float *total_norm);
/* The global p-norm of the averaged gradient (norm_type > 0 or INFINITY). */
GOPT_API gopt_status gopt_dist_grad_norm(gopt_dist *d, gopt_optim *opt, double norm_type, float *out);

/* gopt_optim_step, then under ZeRO-1 the all-gather of the updated parameter slices. */
GOPT_API gopt_status gopt_dist_step(gopt_dist *d, gopt_optim *opt);

/* The monitor reads the global gradient: under ZeRO-1 its per-tensor sums of squares and
 * non-finite checks cover this rank's slice and are summed over the ranks before any flag
 * is decided; otherwise (the gradients are already global) only the count of non-finite
 * input elements (gopt_monitor_check_input) is summed, when the program checks inputs. Call once,
 * after creating both; the monitor must not outlive d. */
GOPT_API gopt_status gopt_dist_attach_monitor(gopt_dist *d, gopt_monitor *mon, gopt_optim *opt);

/* SyncBatchNorm (torch.nn.SyncBatchNorm): on = 1 makes every BatchNorm layer of the net
 * (blocks' included) compute its batch statistics, and the sums of its backward, over the
 * global batch; 0 (the default, as DDP) keeps them per rank. The running variance uses the
 * global count's unbiased estimate. The net must not outlive d. */
GOPT_API gopt_status gopt_dist_sync_batchnorm(gopt_dist *d, gopt_net *net, int on);

/* Optimizer state for a checkpoint in the format of gopt_optim_state_save for the whole
 * arena, whatever the sharding: size (not collective) and save (collective: the slices are
 * gathered to rank 0; buf and size matter on rank 0 only, others may pass NULL, 0). Load
 * on every rank with gopt_optim_state_load. */
GOPT_API size_t gopt_dist_optim_state_size(const gopt_dist *d, const gopt_optim *opt);
GOPT_API gopt_status gopt_dist_optim_state_save(gopt_dist *d, const gopt_optim *opt, void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_DIST_H */
