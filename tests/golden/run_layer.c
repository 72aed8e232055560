/* golden_run_layer and golden_run_loss: the PyTorch reference cases of kinds layer and loss
 * (tests/golden/FORMAT.md) run through gopt_layer_* and gopt_loss_*. An embedding's
 * `input 0` (N,T) holds its integer ids as numbers; it has no input gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

#define ATOL 1e-5
#define RTOL 1e-4

static int parse_layer_config(const golden_case *c, golden_result *r, gopt_layer_config *lc) {
    const char *name = golden_cfg(c, "layer");
    if (!name) return golden_fail(r, "config has no layer=");
    int bias = (int)golden_cfg_num(c, "bias", 1);
    if (!strcmp(name, "linear")) {
        *lc = gopt_layer_linear((int)golden_cfg_num(c, "in", 0), (int)golden_cfg_num(c, "out", 0), bias);
    } else if (!strcmp(name, "conv2d")) {
        *lc = gopt_layer_conv2d((int)golden_cfg_num(c, "in", 0), (int)golden_cfg_num(c, "out", 0),
                                (int)golden_cfg_num(c, "kernel", 0), (int)golden_cfg_num(c, "stride", 1),
                                (int)golden_cfg_num(c, "padding", 0), bias);
    } else if (!strcmp(name, "batchnorm2d")) {
        *lc = gopt_layer_batchnorm2d((int)golden_cfg_num(c, "channels", 0), 0);
        lc->eps = (float)golden_cfg_num(c, "eps", 1e-5);
        lc->momentum = (float)golden_cfg_num(c, "momentum", 0.1);
    } else if (!strcmp(name, "relu")) {
        *lc = gopt_layer_config_default(GOPT_LAYER_RELU);
    } else if (!strcmp(name, "gelu")) {
        *lc = gopt_layer_config_default(GOPT_LAYER_GELU);
        const char *a = golden_cfg(c, "approximate");
        if (a && strcmp(a, "none") && strcmp(a, "tanh")) return golden_fail(r, "gelu approximate='%s'", a);
        lc->gelu_tanh = a && !strcmp(a, "tanh");
    } else if (!strcmp(name, "maxpool2d")) {
        int k = (int)golden_cfg_num(c, "kernel", 0);
        *lc = gopt_layer_maxpool2d(k, (int)golden_cfg_num(c, "stride", k), (int)golden_cfg_num(c, "padding", 0));
    } else if (!strcmp(name, "global_avgpool")) {
        *lc = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    } else if (!strcmp(name, "flatten")) {
        *lc = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    } else if (!strcmp(name, "embedding")) {
        *lc = gopt_layer_embedding((int)golden_cfg_num(c, "num_embeddings", 0),
                                   (int)golden_cfg_num(c, "embedding_dim", 0));
    } else if (!strcmp(name, "dropout")) {
        *lc = gopt_layer_dropout((float)golden_cfg_num(c, "p", 0.5), 0);
    } else {
        return golden_fail(r, "layer '%s' is not supported", name);
    }
    return 0;
}

static int compare_tensor(golden_result *r, const char *what, const golden_record *want, const gopt_tensor *got) {
    if (got->numel != want->numel) return golden_fail(r, "%s: %lld values, reference has %lld", what,
                                                      (long long)got->numel, (long long)want->numel);
    golden_compare(r, what, got->data, want->values, want->numel, ATOL, RTOL);
    return 0;
}

static int view_record(const golden_record *rec, float *data, gopt_tensor *t) {
    return gopt_tensor_view(data, rec->ndim, rec->shape, t) == GOPT_OK ? 0 : -1;
}

int golden_run_layer(const golden_case *c, golden_result *r) {
    if (golden_recurrent_handles(c)) return golden_run_recurrent(c, r);
    gopt_layer_config lc;
    if (parse_layer_config(c, r, &lc)) return -1;
    const golden_record *in = golden_find(c, "input", NULL, 0, -1);
    if (!in) return golden_fail(r, "no 'input 0' record");
    const golden_record *eval_in = golden_find(c, "eval_input", NULL, -1, -1);
    int max_batch = (int)in->shape[0];
    if (eval_in && eval_in->shape[0] > max_batch) max_batch = (int)eval_in->shape[0];
    int rc = -1;
    gopt_params *params = NULL;
    gopt_layer *layer = NULL;
    float *scratch = NULL, *dxbuf = NULL;
    gopt_tensor x, y, dy, dx;
    if (gopt_params_create(&params) != GOPT_OK) {
        golden_fail(r, "params: %s", gopt_last_error());
        goto done;
    }
    if (gopt_layer_create(&lc, in->ndim - 1, in->shape + 1, max_batch, params, "layer", &layer) != GOPT_OK) {
        golden_fail(r, "create: %s", gopt_last_error());
        goto done;
    }
    if (gopt_params_count(params) > 0 && gopt_params_finalize(params) != GOPT_OK) {
        golden_fail(r, "finalize: %s", gopt_last_error());
        goto done;
    }
    if (gopt_params_count(params) > 0) {
        gopt_rng rng;
        gopt_rng_seed(&rng, 1);
        gopt_layer_init_params(layer, GOPT_INIT_TORCH_DEFAULT, &rng);
    }
    for (int i = 0; i < gopt_params_count(params); i++) {
        const golden_record *w = golden_find(c, "weight", NULL, i, -1);
        gopt_param_info info;
        gopt_params_info(params, i, &info);
        if (!w) {
            if (lc.type == GOPT_LAYER_BATCHNORM2D) continue; /* affine defaults gamma 1, beta 0 */
            golden_fail(r, "no 'weight %d' record for parameter %s", i, info.name);
            goto done;
        }
        if (w->numel != info.value.numel) {
            golden_fail(r, "weight %d has %lld values, %s has %lld", i, (long long)w->numel, info.name,
                        (long long)info.value.numel);
            goto done;
        }
        memcpy(info.value.data, w->fvalues, sizeof(float) * (size_t)w->numel);
    }
    gopt_layer_set_training(layer, golden_cfg_num(c, "training", 1) != 0);
    view_record(in, in->fvalues, &x);
    if (gopt_layer_forward(layer, &x, &y) != GOPT_OK) {
        golden_fail(r, "forward: %s", gopt_last_error());
        goto done;
    }
    const golden_record *rec = golden_find(c, "expect", "out", -1, -1);
    if (rec && compare_tensor(r, "out", rec, &y)) goto done;
    const golden_record *dout = golden_find(c, "dout", NULL, -1, -1);
    if (dout) {
        scratch = malloc(sizeof(float) * (size_t)dout->numel);
        dxbuf = malloc(sizeof(float) * (size_t)in->numel);
        if (!scratch || !dxbuf) {
            golden_fail(r, "out of memory");
            goto done;
        }
        memcpy(scratch, dout->fvalues, sizeof(float) * (size_t)dout->numel);
        view_record(dout, scratch, &dy);
        view_record(in, dxbuf, &dx);
        if (gopt_params_count(params) > 0) gopt_params_zero_grad(params);
        if (gopt_layer_backward(layer, &x, &dy, &dx) != GOPT_OK) {
            golden_fail(r, "backward: %s", gopt_last_error());
            goto done;
        }
        rec = golden_find(c, "expect", "dinput", 0, -1);
        if (rec && compare_tensor(r, "dinput", rec, &dx)) goto done;
        for (int i = 0; i < gopt_params_count(params); i++) {
            rec = golden_find(c, "expect", "dweight", i, -1);
            if (!rec) continue;
            gopt_param_info info;
            gopt_params_info(params, i, &info);
            char what[32];
            snprintf(what, sizeof what, "dweight %d", i);
            if (compare_tensor(r, what, rec, &info.grad)) goto done;
        }
    }
    const golden_record *rm = golden_find(c, "expect", "running_mean", -1, -1);
    const golden_record *rv = golden_find(c, "expect", "running_var", -1, -1);
    if (rm || rv) {
        float *mean, *var;
        if (gopt_layer_bn_running(layer, &mean, &var) != GOPT_OK) {
            golden_fail(r, "running stats: %s", gopt_last_error());
            goto done;
        }
        if (rm) golden_compare(r, "running_mean", mean, rm->values, rm->numel, ATOL, RTOL);
        if (rv) golden_compare(r, "running_var", var, rv->values, rv->numel, ATOL, RTOL);
    }
    if (eval_in) {
        gopt_tensor ex;
        view_record(eval_in, eval_in->fvalues, &ex);
        gopt_layer_set_training(layer, 0);
        if (gopt_layer_forward(layer, &ex, &y) != GOPT_OK) {
            golden_fail(r, "eval forward: %s", gopt_last_error());
            goto done;
        }
        rec = golden_find(c, "expect", "eval_out", -1, -1);
        if (rec && compare_tensor(r, "eval_out", rec, &y)) goto done;
    }
    rc = 0;
done:
    free(scratch);
    free(dxbuf);
    gopt_layer_destroy(layer);
    gopt_params_destroy(params);
    return rc;
}

int golden_run_loss(const golden_case *c, golden_result *r) {
    const char *name = golden_cfg(c, "loss");
    if (!name) return golden_fail(r, "config has no loss=");
    const golden_record *in = golden_find(c, "input", NULL, 0, -1);
    const golden_record *tg = golden_find(c, "target", NULL, -1, -1);
    const golden_record *el = golden_find(c, "expect_loss", NULL, -1, -1);
    const golden_record *ed = golden_find(c, "expect", "dinput", 0, -1);
    if (!in || !tg) return golden_fail(r, "needs 'input 0' and 'target'");
    gopt_tensor x, t, d;
    float *grad = malloc(sizeof(float) * (size_t)in->numel);
    int32_t *labels = NULL;
    if (!grad) return golden_fail(r, "out of memory");
    view_record(in, in->fvalues, &x);
    view_record(in, grad, &d);
    float loss = NAN;
    gopt_status s;
    if (!strcmp(name, "cross_entropy") || !strcmp(name, "cross_entropy_seq")) {
        /* cross_entropy_seq: logits (...,C), one label per row of logits.reshape(-1, C) */
        const int seq = !strcmp(name, "cross_entropy_seq");
        const int64_t rows = seq ? in->numel / in->shape[in->ndim - 1] : in->shape[0];
        labels = malloc(sizeof(int32_t) * (size_t)tg->numel);
        if (!labels) {
            free(grad);
            return golden_fail(r, "out of memory");
        }
        for (int64_t i = 0; i < tg->numel; i++) labels[i] = (int32_t)lround(tg->values[i]);
        if (tg->numel != rows) {
            free(grad);
            free(labels);
            return golden_fail(r, "%lld labels for %lld rows", (long long)tg->numel, (long long)rows);
        }
        const float eps = (float)golden_cfg_num(c, "label_smoothing", 0);
        s = seq ? gopt_loss_cross_entropy_seq(&x, labels, eps, (int32_t)golden_cfg_num(c, "ignore_index", -100), &loss,
                                              &d)
                : gopt_loss_cross_entropy(&x, labels, eps, &loss, &d);
    } else if (!strcmp(name, "mse") || !strcmp(name, "bce_with_logits")) {
        view_record(tg, tg->fvalues, &t);
        s = !strcmp(name, "mse") ? gopt_loss_mse(&x, &t, &loss, &d) : gopt_loss_bce_with_logits(&x, &t, &loss, &d);
    } else {
        free(grad);
        return golden_fail(r, "loss '%s' is not supported", name);
    }
    int rc = 0;
    if (s != GOPT_OK) {
        rc = golden_fail(r, "%s: %s", name, gopt_last_error());
    } else {
        if (el) golden_compare_scalar(r, "loss", loss, el->scalar, ATOL, RTOL);
        if (ed) golden_compare(r, "dinput", grad, ed->values, ed->numel, ATOL, RTOL);
    }
    free(grad);
    free(labels);
    return rc;
}
