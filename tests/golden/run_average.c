/* golden_run_average: `kind average` cases (FORMAT.md) through gopt_average, PyTorch 1.13's
 * torch.optim.swa_utils.AveragedModel: `config average=swa` or `average=ema decay=<d>`;
 * for each update u, `param u i` is tensor i of the model after training step u and
 * `expect u i` the averaged tensor after update_parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

static int run(const golden_case *c, golden_result *r, gopt_params *p, gopt_average **avgp) {
    const char *kind = golden_cfg(c, "average");
    if (!kind) return golden_fail(r, "config has no average=");
    gopt_average_config cfg;
    if (!strcmp(kind, "swa")) {
        cfg = gopt_average_config_default(GOPT_AVERAGE_SWA);
    } else if (!strcmp(kind, "ema")) {
        cfg = gopt_average_config_default(GOPT_AVERAGE_EMA);
        double d = golden_cfg_num(c, "decay", NAN);
        if (isnan(d)) return golden_fail(r, "average=ema needs decay=");
        cfg.decay = (float)d;
    } else {
        return golden_fail(r, "average=%s is neither swa nor ema", kind);
    }
    int ntensors = 0;
    for (;; ntensors++) {
        const golden_record *rec = golden_find(c, "param", NULL, 1, ntensors);
        if (!rec) break;
        char name[32];
        snprintf(name, sizeof name, "p%d", ntensors);
        if (gopt_params_add(p, name, rec->ndim, rec->shape, GOPT_TAG_WEIGHT, NULL) != GOPT_OK)
            return golden_fail(r, "param 1 %d: %s", ntensors, gopt_last_error());
    }
    if (ntensors == 0) return golden_fail(r, "no `param 1 i` records");
    if (gopt_params_finalize(p) != GOPT_OK) return golden_fail(r, "finalize: %s", gopt_last_error());
    if (gopt_average_create(&cfg, p, avgp) != GOPT_OK) return golden_fail(r, "create: %s", gopt_last_error());
    for (long u = 1; golden_find(c, "param", NULL, u, 0); u++) {
        for (int t = 0; t < ntensors; t++) {
            const golden_record *rec = golden_find(c, "param", NULL, u, t);
            gopt_param_info info;
            gopt_params_info(p, t, &info);
            if (!rec || rec->numel != info.value.numel) return golden_fail(r, "param %ld %d: missing or size mismatch", u, t);
            memcpy(info.value.data, rec->fvalues, (size_t)rec->numel * sizeof(float));
        }
        if (gopt_average_update(*avgp) != GOPT_OK) return golden_fail(r, "update %ld: %s", u, gopt_last_error());
        const float *avg = gopt_average_values(*avgp);
        for (int t = 0; t < ntensors; t++) {
            const golden_record *e = golden_find(c, "expect", NULL, u, t);
            if (!e) continue;
            gopt_param_info info;
            gopt_params_info(p, t, &info);
            if (e->numel != info.value.numel) return golden_fail(r, "expect %ld %d: size mismatch", u, t);
            char what[64];
            snprintf(what, sizeof what, "update %ld tensor %d", u, t);
            golden_compare(r, what, avg + info.offset, e->values, e->numel, 1e-5, 1e-4);
        }
    }
    return 0;
}

int golden_run_average(const golden_case *c, golden_result *r) {
    gopt_params *p = NULL;
    gopt_average *avg = NULL;
    if (gopt_params_create(&p) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
    int rc = run(c, r, p, &avg);
    gopt_average_destroy(avg);
    gopt_params_destroy(p);
    return rc;
}
