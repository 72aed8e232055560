/* gradopt/loss.h: losses with mean reduction, value and gradient w.r.t. the logits.
 *
 * cross entropy (torch.nn.CrossEntropyLoss(label_smoothing=eps)), logits z (N,C), labels y:
 *   logp = z - logsumexp(z)  (stable: max subtracted, accumulated in double)
 *   loss = 1/N sum_i [ (1-eps) (-logp[i,y_i]) + eps/C sum_c (-logp[i,c]) ]
 *   dz[i,c] = (softmax(z)[i,c] - (1-eps) [c == y_i] - eps/C) / N
 * mse: loss = mean((x - t)^2), dx = 2 (x - t) / numel
 * bce with logits: loss = mean(max(x,0) - x t + log1p(exp(-|x|))), dx = (sigmoid(x) - t) / numel
 *
 * The gradient tensor (may be NULL) has the input's shape, or the input's shape with a
 * larger leading dimension: a buffer allocated once for the largest batch (max_batch, ...)
 * serves every batch, the short last one of an epoch included, without a re-view. The first
 * N rows (N = the input's leading dimension: numel of the input floats) are overwritten,
 * the rows past them are left as they were; gopt_net_backward takes the whole buffer and
 * reads the first N rows (the batch of the forward).
 * Errors: GOPT_EINVAL (NULL), GOPT_ESHAPE naming both shapes, GOPT_ERANGE (a label outside
 * [0, C)), GOPT_EINVAL (label_smoothing outside [0, 1]). */
#ifndef GRADOPT_LOSS_H
#define GRADOPT_LOSS_H

#include "tensor.h"

GOPT_EXTERN_C_BEGIN

/* logits (N,C) 2-D; labels has N entries. */
GOPT_API gopt_status gopt_loss_cross_entropy(const gopt_tensor *logits, const int32_t *labels, float label_smoothing,
                                             float *loss, gopt_tensor *dlogits);
/* Time-distributed cross entropy (torch.nn.CrossEntropyLoss(ignore_index, label_smoothing)
 * on logits.reshape(-1, C)): logits of any ndim >= 2 whose last dimension is the C classes,
 * e.g. (N,T,C), is R = numel/C rows with one label each (labels[R]). Rows whose label is
 * ignore_index (PyTorch's default -100) add nothing to the loss or the gradient (their
 * dlogits rows are 0) and the mean is over the M other rows; with M == 0 the loss is 0 and
 * dlogits 0 (PyTorch returns NaN there). Other labels outside [0, C): GOPT_ERANGE. */
GOPT_API gopt_status gopt_loss_cross_entropy_seq(const gopt_tensor *logits, const int32_t *labels,
                                                 float label_smoothing, int32_t ignore_index, float *loss,
                                                 gopt_tensor *dlogits);
/* pred and target of the same shape. */
GOPT_API gopt_status gopt_loss_mse(const gopt_tensor *pred, const gopt_tensor *target, float *loss, gopt_tensor *dpred);
GOPT_API gopt_status gopt_loss_bce_with_logits(const gopt_tensor *logits, const gopt_tensor *target, float *loss,
                                               gopt_tensor *dlogits);

/* *correct = number of rows i of logits (N,C) with argmax_c logits[i,c] == labels[i]
 * (first maximum wins). Errors: GOPT_EINVAL, GOPT_ESHAPE (not 2-D). */
GOPT_API gopt_status gopt_accuracy_count(const gopt_tensor *logits, const int32_t *labels, int64_t *correct);

GOPT_EXTERN_C_END

#endif /* GRADOPT_LOSS_H */
