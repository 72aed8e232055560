/* golden_run_recurrent: the layer cases of the recurrent section of tests/golden/FORMAT.md
 * (layer=rnn|lstm|gru|sigmoid|tanh), run through gopt_layer_* and the recurrent state API:
 * x, h0 (c0) in; out, h_n (c_n); backward of sum(out*dout) + sum(h_n*dout_hn)
 * (+ sum(c_n*dout_cn)) gives dx, dh0 (dc0) and the parameter gradients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

#define ATOL 1e-5
#define RTOL 1e-4

static int compare(golden_result *r, const char *what, const golden_record *want, const gopt_tensor *got) {
    if (!want) return 0;
    if (got->numel != want->numel)
        return golden_fail(r, "%s: %lld values, reference has %lld", what, (long long)got->numel,
                           (long long)want->numel);
    golden_compare(r, what, got->data, want->values, want->numel, ATOL, RTOL);
    return 0;
}

static int view(const golden_record *rec, float *data, gopt_tensor *t) {
    return gopt_tensor_view(data, rec->ndim, rec->shape, t) == GOPT_OK ? 0 : -1;
}

static int parse_config(const golden_case *c, golden_result *r, gopt_layer_config *lc) {
    const char *name = golden_cfg(c, "layer");
    if (!name) return golden_fail(r, "config has no layer=");
    if (!strcmp(name, "sigmoid") || !strcmp(name, "tanh")) {
        *lc = gopt_layer_config_default(!strcmp(name, "sigmoid") ? GOPT_LAYER_SIGMOID : GOPT_LAYER_TANH);
        return 0;
    }
    int I = (int)golden_cfg_num(c, "input_size", 0), H = (int)golden_cfg_num(c, "hidden_size", 0);
    int L = (int)golden_cfg_num(c, "num_layers", 1), bias = (int)golden_cfg_num(c, "bias", 1);
    float p = (float)golden_cfg_num(c, "dropout", 0);
    if (golden_cfg_num(c, "batch_first", 0) != 1) return golden_fail(r, "only batch_first=true cases are supported");
    if (!strcmp(name, "rnn")) {
        const char *nl = golden_cfg(c, "nonlinearity");
        int relu = nl && !strcmp(nl, "relu");
        if (nl && !relu && strcmp(nl, "tanh")) return golden_fail(r, "rnn nonlinearity='%s'", nl);
        *lc = gopt_layer_rnn(I, H, L, relu ? GOPT_RNN_RELU : GOPT_RNN_TANH, bias, p, 0);
    } else if (!strcmp(name, "lstm")) {
        *lc = gopt_layer_lstm(I, H, L, bias, p, 0);
    } else if (!strcmp(name, "gru")) {
        *lc = gopt_layer_gru(I, H, L, bias, p, 0);
    } else {
        return golden_fail(r, "layer '%s' is not a recurrent or sequence layer", name);
    }
    return 0;
}

int golden_run_recurrent(const golden_case *c, golden_result *r) {
    gopt_layer_config lc;
    if (parse_config(c, r, &lc)) return -1;
    const int recurrent = lc.type == GOPT_LAYER_RNN || lc.type == GOPT_LAYER_LSTM || lc.type == GOPT_LAYER_GRU;
    const int lstm = lc.type == GOPT_LAYER_LSTM;
    const golden_record *in = golden_find(c, "input", NULL, 0, -1);
    const golden_record *h0 = golden_find(c, "input", NULL, 1, -1);
    const golden_record *c0 = golden_find(c, "input", NULL, 2, -1);
    const golden_record *dout = golden_find(c, "dout", NULL, -1, -1);
    const golden_record *dhn = golden_find(c, "dout_hn", NULL, -1, -1);
    const golden_record *dcn = golden_find(c, "dout_cn", NULL, -1, -1);
    if (!in) return golden_fail(r, "no 'input 0' record");
    if (recurrent && in->ndim != 3) return golden_fail(r, "input 0 must be (N,T,I)");
    int rc = -1;
    gopt_params *params = NULL;
    gopt_layer *layer = NULL;
    float *dybuf = NULL, *dxbuf = NULL;
    gopt_tensor x, y, t1, t2;
    if (gopt_params_create(&params) != GOPT_OK) {
        golden_fail(r, "params: %s", gopt_last_error());
        goto done;
    }
    if (gopt_layer_create(&lc, in->ndim - 1, in->shape + 1, (int)in->shape[0], params, "layer", &layer) != GOPT_OK) {
        golden_fail(r, "create: %s", gopt_last_error());
        goto done;
    }
    if (gopt_params_count(params) > 0) {
        if (gopt_params_finalize(params) != GOPT_OK) {
            golden_fail(r, "finalize: %s", gopt_last_error());
            goto done;
        }
        gopt_rng rng;
        gopt_rng_seed(&rng, 1);
        if (gopt_layer_init_params(layer, GOPT_INIT_TORCH_DEFAULT, &rng) != GOPT_OK) {
            golden_fail(r, "init: %s", gopt_last_error());
            goto done;
        }
    }
    for (int i = 0; i < gopt_params_count(params); i++) {
        const golden_record *w = golden_find(c, "weight", NULL, i, -1);
        gopt_param_info info;
        gopt_params_info(params, i, &info);
        if (!w) {
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
    if (recurrent && (h0 || c0)) {
        gopt_tensor th, tc;
        if (h0) view(h0, h0->fvalues, &th);
        if (c0) view(c0, c0->fvalues, &tc);
        if (gopt_layer_rnn_set_state(layer, h0 ? &th : NULL, lstm && c0 ? &tc : NULL) != GOPT_OK) {
            golden_fail(r, "set_state: %s", gopt_last_error());
            goto done;
        }
    }
    view(in, in->fvalues, &x);
    if (gopt_layer_forward(layer, &x, &y) != GOPT_OK) {
        golden_fail(r, "forward: %s", gopt_last_error());
        goto done;
    }
    if (compare(r, "out", golden_find(c, "expect", "out", -1, -1), &y)) goto done;
    if (recurrent) {
        if (gopt_layer_rnn_get_state(layer, &t1, lstm ? &t2 : NULL) != GOPT_OK) {
            golden_fail(r, "get_state: %s", gopt_last_error());
            goto done;
        }
        if (compare(r, "hn", golden_find(c, "expect", "hn", -1, -1), &t1)) goto done;
        if (lstm && compare(r, "cn", golden_find(c, "expect", "cn", -1, -1), &t2)) goto done;
    }
    if (dout) {
        dybuf = malloc(sizeof(float) * (size_t)dout->numel);
        dxbuf = malloc(sizeof(float) * (size_t)in->numel);
        if (!dybuf || !dxbuf) {
            golden_fail(r, "out of memory");
            goto done;
        }
        memcpy(dybuf, dout->fvalues, sizeof(float) * (size_t)dout->numel);
        gopt_tensor dy, dx;
        view(dout, dybuf, &dy);
        view(in, dxbuf, &dx);
        if (recurrent && (dhn || dcn)) {
            gopt_tensor th, tc;
            if (dhn) view(dhn, dhn->fvalues, &th);
            if (dcn) view(dcn, dcn->fvalues, &tc);
            if (gopt_layer_rnn_set_state_grad(layer, dhn ? &th : NULL, lstm && dcn ? &tc : NULL) != GOPT_OK) {
                golden_fail(r, "set_state_grad: %s", gopt_last_error());
                goto done;
            }
        }
        if (gopt_params_count(params) > 0) gopt_params_zero_grad(params);
        if (gopt_layer_backward(layer, &x, &dy, &dx) != GOPT_OK) {
            golden_fail(r, "backward: %s", gopt_last_error());
            goto done;
        }
        if (compare(r, "dinput 0", golden_find(c, "expect", "dinput", 0, -1), &dx)) goto done;
        if (recurrent) {
            if (gopt_layer_rnn_get_state_grad(layer, &t1, lstm ? &t2 : NULL) != GOPT_OK) {
                golden_fail(r, "get_state_grad: %s", gopt_last_error());
                goto done;
            }
            if (compare(r, "dinput 1", golden_find(c, "expect", "dinput", 1, -1), &t1)) goto done;
            if (lstm && compare(r, "dinput 2", golden_find(c, "expect", "dinput", 2, -1), &t2)) goto done;
        }
        for (int i = 0; i < gopt_params_count(params); i++) {
            gopt_param_info info;
            gopt_params_info(params, i, &info);
            char what[32];
            snprintf(what, sizeof what, "dweight %d", i);
            if (compare(r, what, golden_find(c, "expect", "dweight", i, -1), &info.grad)) goto done;
        }
    }
    rc = 0;
done:
    free(dybuf);
    free(dxbuf);
    gopt_layer_destroy(layer);
    gopt_params_destroy(params);
    return rc;
}

int golden_recurrent_handles(const golden_case *c) {
    static const char *const names[] = {"rnn", "lstm", "gru", "sigmoid", "tanh"};
    const char *name = golden_cfg(c, "layer");
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}
