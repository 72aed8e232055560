/* Private hook through which src/dist (gopt_dist_sync_batchnorm) makes every BatchNorm of a
 * net synchronised (torch.nn.SyncBatchNorm). Defined in net.c. */
#ifndef GRADOPT_INTERNAL_BN_SYNC_H
#define GRADOPT_INTERNAL_BN_SYNC_H

#include "gradopt/net.h"
#include "core/common.h"

/* fn != NULL: every BatchNorm layer of the net (those inside blocks included) sums its
 * per-channel batch statistics in training forward (count, sum, sum of squares) and the
 * per-channel sums of its backward (sum dy, sum dy*xhat) over the processes with fn before
 * using them; the running variance takes the global count's unbiased estimate.
 * fn == NULL: per-process statistics again (the default). A failure of fn makes the
 * forward or backward that called it return its status. */
gopt_status gopt__net_set_bn_sync(gopt_net *net, gopt__sum_fn fn, void *ctx);

#endif
