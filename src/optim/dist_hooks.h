/* Private hooks through which src/dist (gradopt/dist.h) makes the optimizer and the monitor
 * work on one rank's slice of the arena. Nothing else calls them. */
#ifndef GRADOPT_INTERNAL_DIST_HOOKS_H
#define GRADOPT_INTERNAL_DIST_HOOKS_H

#include "gradopt/monitor.h"
#include "gradopt/optim.h"
#include "core/common.h"

/* Gather for gopt__optim_state_save_gathered: every rank passes its slice (n floats);
 * on the root `full` (the whole arena's buffer) receives every slice at its offset; on
 * other ranks full is NULL. */
typedef gopt_status (*gopt__gather_fn)(void *ctx, const float *slice, int64_t n, float *full);

/* Size of the whole-arena state (gopt_optim_state_size of an optimizer over [0, numel)). */
size_t gopt__optim_state_size_whole(const gopt_optim *opt);
/* Write the whole-arena state of a range optimizer, gathering each state buffer with fn
 * (collective through fn). buf (size >= gopt__optim_state_size_whole) on the root only;
 * NULL elsewhere. */
gopt_status gopt__optim_state_save_gathered(const gopt_optim *opt, gopt__gather_fn fn, void *ctx, void *buf,
                                            size_t size);

/* The monitor's gradient pass covers [begin, end) of the arena and its per-tensor sums of
 * squares and non-finite count go through sum (fn) before any flag is decided. */
void gopt__monitor_set_shard(gopt_monitor *m, int64_t begin, int64_t end, gopt__sum_fn fn, void *ctx);
/* Without a shard (gradients already global): the non-finite input count of
 * gopt_monitor_check_input goes through fn, so that every rank skips the same steps. */
void gopt__monitor_set_input_sum(gopt_monitor *m, gopt__sum_fn fn, void *ctx);

#endif
