/* golden_run_clip: kind clip cases (FORMAT.md) against gopt_clip_* over a parameter arena. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

#define MAX_TENSORS 64

int golden_run_clip(const golden_case *c, golden_result *r) {
    const char *mode = golden_cfg(c, "clip");
    if (!mode) return golden_fail(r, "config has no clip=");
    int ntensors = 0;
    const golden_record *grads[MAX_TENSORS];
    for (int i = 0; i < MAX_TENSORS; i++) {
        grads[i] = golden_find(c, "grad", NULL, i, -1);
        if (!grads[i]) break;
        ntensors++;
    }
    if (ntensors == 0) return golden_fail(r, "no grad records");
    gopt_params *p = NULL;
    if (gopt_params_create(&p) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
    int rc = 0;
    for (int i = 0; i < ntensors && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        if (gopt_params_add(p, name, grads[i]->ndim, grads[i]->shape, GOPT_TAG_WEIGHT, NULL) != GOPT_OK)
            rc = golden_fail(r, "gopt_params_add: %s", gopt_last_error());
    }
    if (rc == 0 && gopt_params_finalize(p) != GOPT_OK) rc = golden_fail(r, "finalize: %s", gopt_last_error());
    for (int i = 0; i < ntensors && rc == 0; i++) {
        gopt_param_info info;
        gopt_params_info(p, i, &info);
        memcpy(info.grad.data, grads[i]->fvalues, (size_t)grads[i]->numel * sizeof(float));
    }
    if (rc == 0) {
        if (!strcmp(mode, "norm")) {
            float total = NAN;
            double max_norm = golden_cfg_num(c, "max_norm", NAN);
            double norm_type = golden_cfg_num(c, "norm_type", 2.0);
            int err = (int)golden_cfg_num(c, "error_if_nonfinite", 0);
            if (gopt_clip_grad_norm(p, max_norm, norm_type, err, &total) != GOPT_OK)
                rc = golden_fail(r, "gopt_clip_grad_norm: %s", gopt_last_error());
            const golden_record *tn = golden_find(c, "expect_total_norm", NULL, -1, -1);
            if (rc == 0 && tn) golden_compare_scalar(r, "total_norm", total, tn->scalar, 1e-5, 1e-4);
        } else if (!strcmp(mode, "value")) {
            if (gopt_clip_grad_value(p, golden_cfg_num(c, "clip_value", NAN)) != GOPT_OK)
                rc = golden_fail(r, "gopt_clip_grad_value: %s", gopt_last_error());
        } else {
            rc = golden_fail(r, "unknown clip mode '%s'", mode);
        }
    }
    for (int i = 0; i < ntensors && rc == 0; i++) {
        const golden_record *want = golden_find(c, "expect", NULL, i, -1);
        if (!want) {
            rc = golden_fail(r, "no expect record for tensor %d", i);
            break;
        }
        gopt_param_info info;
        gopt_params_info(p, i, &info);
        if (want->numel != info.grad.numel) {
            rc = golden_fail(r, "expect %d has %lld values, grad %lld", i, (long long)want->numel, (long long)info.grad.numel);
            break;
        }
        char label[32];
        snprintf(label, sizeof label, "grad%d", i);
        golden_compare(r, label, info.grad.data, want->values, want->numel, 1e-5, 1e-4);
    }
    gopt_params_destroy(p);
    return rc;
}
