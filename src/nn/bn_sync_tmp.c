/* Temporary until the SyncBatchNorm branch lands (it defines this in net.c and deletes this
 * file): refuses, so nothing silently trains with per-rank statistics when sync was asked. */
#include "nn/bn_sync.h"

gopt_status gopt__net_set_bn_sync(gopt_net *net, gopt__sum_fn fn, void *ctx) {
    (void)net, (void)ctx;
    if (!fn) return GOPT_OK;
    return GOPT_FAIL(GOPT_EINVAL, "SyncBatchNorm is not in this build yet");
}
