/* golden_run_optimizer: replay a `kind optimizer` case (FORMAT.md) through gopt_optim.
 *
 * Tensors `param i` are registered in index order; `group g params=i,j key=value...` moves
 * them into group g (group 0 is the arena's default group) and overrides any hyperparameter
 * by its torch.optim name through gopt_optim_set_group_config. The optimizer is created
 * with the union of the state-buffer options of every group (momentum, centered, amsgrad)
 * and then every group gets its exact configuration. Keys left out take PyTorch's
 * defaults (gopt_optim_config_default). A group line may name another algorithm
 * (`algo=adamw` inside Muon, frontier/): that group starts from its defaults instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

#define MAX_TENSORS 64
#define MAX_GROUPS 16

static int truthy(const char *v) { return !strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1"); }

/* Apply one torch.optim key to cfg; 0 ok, -1 unknown key or bad value. */
static int apply_key(gopt_optim_config *c, const char *key, const char *val, golden_result *r) {
    char *end;
    if (!strcmp(key, "algo") || !strcmp(key, "params")) return 0;
    if (!strcmp(key, "betas")) {
        double b1 = strtod(val, &end);
        if (*end != ',') return golden_fail(r, "betas '%s' is not b1,b2", val);
        double b2 = strtod(end + 1, &end);
        if (*end) return golden_fail(r, "betas '%s' is not b1,b2", val);
        c->beta1 = (float)b1;
        c->beta2 = (float)b2;
        return 0;
    }
    /* frontier/ (FORMAT.md): Muon and Adafactor */
    if (!strcmp(key, "ns_coefficients")) {
        for (int i = 0; i < 3; i++) {
            c->ns_coefficients[i] = (float)strtod(val, &end);
            if (end == val || *end != (i < 2 ? ',' : '\0')) return golden_fail(r, "ns_coefficients '%s' is not a,b,c", val);
            val = end + 1;
        }
        return 0;
    }
    if (!strcmp(key, "adjust_lr_fn")) {
        if (!strcmp(val, "original") || !strcmp(val, "None")) c->adjust_lr_fn = GOPT_MUON_ADJUST_ORIGINAL;
        else if (!strcmp(val, "match_rms_adamw")) c->adjust_lr_fn = GOPT_MUON_ADJUST_MATCH_RMS_ADAMW;
        else return golden_fail(r, "adjust_lr_fn '%s' is not original or match_rms_adamw", val);
        return 0;
    }
    if (!strcmp(key, "ns_steps")) {
        c->ns_steps = (int)strtol(val, &end, 10);
        return (end == val || *end) ? golden_fail(r, "ns_steps '%s' is not an integer", val) : 0;
    }
    if (!strcmp(key, "eps") && strchr(val, ',')) { /* Adafactor's eps=eps1,eps2; eps1 none = 2^-23 */
        if (!strncmp(val, "none,", 5) || !strncmp(val, "None,", 5)) {
            c->eps = 0x1p-23f;
            end = (char *)val + 4;
        } else {
            c->eps = (float)strtod(val, &end);
        }
        if (*end != ',') return golden_fail(r, "eps '%s' is not eps1,eps2", val);
        const char *v2 = end + 1;
        c->eps2 = (float)strtod(v2, &end);
        return (end == v2 || *end) ? golden_fail(r, "eps '%s' is not eps1,eps2", val) : 0;
    }
    if (!strcmp(key, "beta2_decay") || !strcmp(key, "d")) {
        double v = strtod(val, &end);
        if (end == val || *end) return golden_fail(r, "%s='%s' is not a number", key, val);
        *(!strcmp(key, "d") ? &c->clip_threshold : &c->beta2_decay) = (float)v;
        return 0;
    }
    int *flag = !strcmp(key, "nesterov") ? &c->nesterov
              : !strcmp(key, "maximize") ? &c->maximize
              : !strcmp(key, "centered") ? &c->centered
              : !strcmp(key, "amsgrad")  ? &c->amsgrad
                                         : NULL;
    if (flag) {
        *flag = truthy(val);
        return 0;
    }
    if (!strcmp(key, "foreach") || !strcmp(key, "differentiable") || !strcmp(key, "capturable")) return 0;
    if (!strcmp(key, "warmup_steps")) { /* Schedule-Free */
        long v = strtol(val, &end, 10);
        if (end == val || *end) return golden_fail(r, "warmup_steps='%s' is not an integer", val);
        c->warmup_steps = (int)v;
        return 0;
    }
    static const char *const names[] = {"lr", "momentum", "dampening", "weight_decay", "lr_decay",
                                        "initial_accumulator_value", "eps", "alpha", "rho", "momentum_decay",
                                        "l1", "r", "weight_lr_power"};
    float *fields[] = {&c->lr, &c->momentum, &c->dampening, &c->weight_decay, &c->lr_decay,
                       &c->initial_accumulator_value, &c->eps, &c->alpha, &c->rho, &c->momentum_decay,
                       &c->l1, &c->r, &c->weight_lr_power};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(key, names[i])) {
            double v = strtod(val, &end);
            if (end == val || *end) return golden_fail(r, "%s='%s' is not a number", key, val);
            *fields[i] = (float)v;
            return 0;
        }
    return golden_fail(r, "unknown optimizer key '%s'", key);
}

static int run(const golden_case *c, golden_result *r, gopt_params *p, gopt_optim **optp) {
    const char *algo_name = golden_cfg(c, "algo");
    if (!algo_name) return golden_fail(r, "config has no algo");
    gopt_algo algo;
    if (gopt_algo_from_name(algo_name, &algo) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
    gopt_optim_config base = gopt_optim_config_default(algo);
    for (int i = 0; i < c->nconfig; i++)
        if (apply_key(&base, c->config[i].key, c->config[i].value, r)) return -1;

    /* Tensors, in index order. */
    int ntensors = 0;
    for (;; ntensors++) {
        const golden_record *rec = golden_find(c, "param", NULL, ntensors, -1);
        if (!rec) break;
        if (ntensors == MAX_TENSORS) return golden_fail(r, "more than %d tensors", MAX_TENSORS);
        char name[32];
        snprintf(name, sizeof name, "p%d", ntensors);
        if (gopt_params_add(p, name, rec->ndim, rec->shape, GOPT_TAG_WEIGHT, NULL) != GOPT_OK)
            return golden_fail(r, "param %d: %s", ntensors, gopt_last_error());
    }
    if (ntensors == 0) return golden_fail(r, "no param records");

    /* Groups: resolve each group's full config. */
    gopt_optim_config gcfg[MAX_GROUPS];
    int ngroups = 1;
    gcfg[0] = base;
    for (int i = 0; i < c->nrecords; i++) {
        const golden_record *rec = &c->records[i];
        if (strcmp(rec->words[0], "group") != 0) continue;
        long g = rec->idx[0];
        if (g < 0 || g >= MAX_GROUPS) return golden_fail(r, "group %ld out of range", g);
        while (ngroups <= g) {
            if (gopt_params_add_group(p, NULL, NULL) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
            gcfg[ngroups++] = base;
        }
        /* algo=<name> on a group line (frontier/): the group runs that algorithm inside the
         * optimizer (Muon's AdamW), from that algorithm's defaults. */
        const char *galgo = golden_kv_get(rec->kv, rec->nkv, "algo");
        if (galgo) {
            gopt_algo ga;
            if (gopt_algo_from_name(galgo, &ga) != GOPT_OK) return golden_fail(r, "group %ld: %s", g, gopt_last_error());
            if (ga != base.algo) gcfg[g] = gopt_optim_config_default(ga);
        }
        for (int k = 0; k < rec->nkv; k++)
            if (apply_key(&gcfg[g], rec->kv[k].key, rec->kv[k].value, r)) return -1;
        const char *list = golden_kv_get(rec->kv, rec->nkv, "params");
        if (!list) return golden_fail(r, "group %ld has no params=", g);
        for (const char *s = list; *s;) {
            char *end;
            long t = strtol(s, &end, 10);
            if (end == s || t < 0 || t >= ntensors) return golden_fail(r, "group %ld: bad params '%s'", g, list);
            if (gopt_params_set_group(p, (int)t, (int)g) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
            s = *end == ',' ? end + 1 : end;
        }
    }
    if (gopt_params_finalize(p) != GOPT_OK) return golden_fail(r, "finalize: %s", gopt_last_error());
    for (int t = 0; t < ntensors; t++) {
        gopt_param_info info;
        gopt_params_info(p, t, &info);
        memcpy(info.value.data, golden_find(c, "param", NULL, t, -1)->fvalues, (size_t)info.value.numel * sizeof(float));
    }

    /* Create with the union of buffer-needing options, then give every group its config. */
    gopt_optim_config create = base;
    for (int g = 0; g < ngroups; g++) {
        if (gcfg[g].momentum > create.momentum) create.momentum = gcfg[g].momentum;
        create.centered |= gcfg[g].centered;
        create.amsgrad |= gcfg[g].amsgrad;
    }
    if (create.nesterov && create.momentum > 0 && base.momentum == 0) create.nesterov = 0;
    if (gopt_optim_create(&create, p, optp) != GOPT_OK) return golden_fail(r, "create: %s", gopt_last_error());
    for (int g = 0; g < ngroups; g++)
        if (gopt_optim_set_group_config(*optp, g, &gcfg[g]) != GOPT_OK)
            return golden_fail(r, "group %d: %s", g, gopt_last_error());

    float *grads = gopt_params_grads(p);
    for (long step = 1;; step++) {
        if (!golden_find(c, "grad", NULL, step, -1)) {
            if (step == 1) return golden_fail(r, "no grad records");
            break;
        }
        gopt_optim_zero_grad(*optp);
        for (int t = 0; t < ntensors; t++) {
            const golden_record *g = golden_find(c, "grad", NULL, step, t);
            if (!g) continue; /* a tensor without a gradient keeps zeros */
            gopt_param_info info;
            gopt_params_info(p, t, &info);
            if (g->numel != info.grad.numel) return golden_fail(r, "grad %ld %d: %lld values, tensor has %lld", step, t,
                                                               (long long)g->numel, (long long)info.grad.numel);
            memcpy(grads + info.offset, g->fvalues, (size_t)g->numel * sizeof(float));
        }
        if (gopt_optim_step(*optp) != GOPT_OK) return golden_fail(r, "step %ld: %s", step, gopt_last_error());
        for (int t = 0; t < ntensors; t++) {
            const golden_record *e = golden_find(c, "expect", NULL, step, t);
            if (!e) continue;
            gopt_param_info info;
            gopt_params_info(p, t, &info);
            if (e->numel != info.value.numel) return golden_fail(r, "expect %ld %d: size mismatch", step, t);
            char what[64];
            snprintf(what, sizeof what, "step %ld param %d", step, t);
            golden_compare(r, what, info.value.data, e->values, e->numel, 1e-5, 1e-4);
        }
    }
    /* Schedule-Free (FORMAT.md "frontier/"): after the last step, eval mode puts x in the
     * arena; `expect_eval i` holds it. */
    if (golden_find(c, "expect_eval", NULL, -1, -1)) {
        if (gopt_optim_eval(*optp) != GOPT_OK) return golden_fail(r, "eval: %s", gopt_last_error());
        for (int t = 0; t < ntensors; t++) {
            const golden_record *e = golden_find(c, "expect_eval", NULL, t, -1);
            if (!e) continue;
            gopt_param_info info;
            gopt_params_info(p, t, &info);
            if (e->numel != info.value.numel) return golden_fail(r, "expect_eval %d: size mismatch", t);
            char what[64];
            snprintf(what, sizeof what, "eval param %d", t);
            golden_compare(r, what, info.value.data, e->values, e->numel, 1e-5, 1e-4);
        }
    }
    return 0;
}

int golden_run_optimizer(const golden_case *c, golden_result *r) {
    gopt_params *p = NULL;
    gopt_optim *opt = NULL;
    if (gopt_params_create(&p) != GOPT_OK) return golden_fail(r, "%s", gopt_last_error());
    int rc = run(c, r, p, &opt);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
    return rc;
}
