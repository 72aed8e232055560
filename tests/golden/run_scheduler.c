/* golden_run_scheduler: kind scheduler cases (FORMAT.md) against detached gopt_sched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "golden.h"

#define MAX_PARTS 8

static int parse_int64_list(const char *v, int64_t *out, int max, int *n) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    *n = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        if (*n == max) return -1;
        out[(*n)++] = strtoll(t, NULL, 10);
    }
    return 0;
}

static int is_true(const char *v) { return !strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1"); }

/* Set one torch.optim.lr_scheduler option on cfg; -1 for an unknown key. */
static int apply_option(gopt_sched_config *c, const char *key, const char *v) {
    double d = strcmp(v, "inf") == 0 ? INFINITY : strtod(v, NULL);
    if (!strcmp(key, "step_size")) c->step_size = (int64_t)d;
    else if (!strcmp(key, "gamma")) c->gamma = d;
    else if (!strcmp(key, "milestones")) return parse_int64_list(v, c->milestones, GOPT_SCHED_MAX_MILESTONES, &c->n_milestones);
    else if (!strcmp(key, "T_max")) c->T_max = (int64_t)d;
    else if (!strcmp(key, "eta_min")) c->eta_min = d;
    else if (!strcmp(key, "T_0")) c->T_0 = (int64_t)d;
    else if (!strcmp(key, "T_mult")) c->T_mult = (int64_t)d;
    else if (!strcmp(key, "max_lr")) c->max_lr = d;
    else if (!strcmp(key, "total_steps")) c->total_steps = (int64_t)d;
    else if (!strcmp(key, "pct_start")) c->pct_start = d;
    else if (!strcmp(key, "anneal_strategy")) {
        if (!strcmp(v, "cos")) c->anneal_strategy = GOPT_ANNEAL_COS;
        else if (!strcmp(v, "linear")) c->anneal_strategy = GOPT_ANNEAL_LINEAR;
        else return -1;
    } else if (!strcmp(key, "div_factor")) c->div_factor = d;
    else if (!strcmp(key, "final_div_factor")) c->final_div_factor = d;
    else if (!strcmp(key, "three_phase")) c->three_phase = is_true(v);
    else if (!strcmp(key, "cycle_momentum")) c->cycle_momentum = is_true(v);
    else if (!strcmp(key, "base_momentum")) c->base_momentum = d;
    else if (!strcmp(key, "max_momentum")) c->max_momentum = d;
    else if (!strcmp(key, "start_factor")) c->start_factor = d;
    else if (!strcmp(key, "end_factor")) c->end_factor = d;
    else if (!strcmp(key, "total_iters")) c->total_iters = (int64_t)d;
    else if (!strcmp(key, "factor")) c->factor = d;
    else if (!strcmp(key, "power")) c->power = d;
    else if (!strcmp(key, "mode")) {
        if (!strcmp(v, "min")) c->mode = GOPT_PLATEAU_MIN;
        else if (!strcmp(v, "max")) c->mode = GOPT_PLATEAU_MAX;
        else return -1;
    } else if (!strcmp(key, "threshold_mode")) {
        if (!strcmp(v, "rel")) c->threshold_mode = GOPT_THRESHOLD_REL;
        else if (!strcmp(v, "abs")) c->threshold_mode = GOPT_THRESHOLD_ABS;
        else return -1;
    } else if (!strcmp(key, "threshold")) c->threshold = d;
    else if (!strcmp(key, "patience")) c->patience = (int64_t)d;
    else if (!strcmp(key, "cooldown")) c->cooldown = (int64_t)d;
    else if (!strcmp(key, "min_lr")) c->min_lr = d;
    else if (!strcmp(key, "eps")) c->eps = d;
    else if (!strcmp(key, "swa_lr")) c->swa_lr = d; /* SWALR */
    else if (!strcmp(key, "anneal_epochs")) c->anneal_epochs = (int64_t)d;
    else return -1;
    return 0;
}

/* "name(k=v,k=v)" -> config */
static int parse_part(const char *spec, gopt_sched_config *c, golden_result *r) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *open = strchr(buf, '(');
    char *args = NULL;
    if (open) {
        char *close = strrchr(buf, ')');
        if (!close) return golden_fail(r, "unbalanced '(' in '%s'", spec);
        *open = '\0';
        *close = '\0';
        args = open + 1;
    }
    gopt_sched_kind kind;
    if (gopt_sched_kind_from_name(buf, &kind) != GOPT_OK) return golden_fail(r, "unknown scheduler '%s'", buf);
    *c = gopt_sched_config_default(kind);
    if (args) {
        /* Split on commas that start a new key=value: a list value such as
         * milestones=5,10 keeps its commas. */
        char *p = args;
        while (*p) {
            char *key = p, *eq = strchr(p, '=');
            if (!eq) return golden_fail(r, "expected key=value in '%s'", spec);
            *eq = '\0';
            char *v = eq + 1, *end = v;
            for (;;) {
                char *comma = strchr(end, ',');
                if (!comma) { end += strlen(end); break; }
                char *next_eq = strchr(comma + 1, '='), *next_comma = strchr(comma + 1, ',');
                if (next_eq && (!next_comma || next_eq < next_comma)) { end = comma; break; }
                end = comma + 1;
            }
            int last = *end == '\0';
            *end = '\0';
            if (apply_option(c, key, v) != 0) return golden_fail(r, "unknown option '%s' of '%s'", key, buf);
            p = last ? end : end + 1;
        }
    }
    return 0;
}

static int is_meta(const char *key) {
    return !strcmp(key, "base_lr") || !strcmp(key, "steps") || !strcmp(key, "sched") || !strcmp(key, "first") ||
           !strncmp(key, "then", 4);
}

int golden_run_scheduler(const golden_case *c, golden_result *r) {
    const char *name = golden_cfg(c, "sched");
    if (!name) return golden_fail(r, "config has no sched=");
    double base_lr = golden_cfg_num(c, "base_lr", NAN);
    long steps = (long)golden_cfg_num(c, "steps", -1);
    if (!isfinite(base_lr) || steps < 0) return golden_fail(r, "config needs base_lr= and steps=");
    gopt_sched_config cfg, parts[MAX_PARTS];
    int nparts = 0;
    if (!strcmp(name, "sequential") || !strcmp(name, "chained")) {
        cfg = gopt_sched_config_default(!strcmp(name, "sequential") ? GOPT_SCHED_SEQUENTIAL : GOPT_SCHED_CHAINED);
        for (int i = 0; i < c->nconfig; i++) {
            const char *k = c->config[i].key;
            if (strcmp(k, "first") && strncmp(k, "then", 4)) continue;
            if (nparts == MAX_PARTS) return golden_fail(r, "more than %d parts", MAX_PARTS);
            if (parse_part(c->config[i].value, &parts[nparts++], r)) return -1;
        }
        cfg.children = parts;
        cfg.n_children = nparts;
    } else {
        if (parse_part(name, &cfg, r)) return -1;
    }
    for (int i = 0; i < c->nconfig; i++) {
        const char *k = c->config[i].key;
        if (is_meta(k)) continue;
        if (apply_option(&cfg, k, c->config[i].value) != 0) return golden_fail(r, "unknown config key '%s'", k);
    }
    const golden_record *want = golden_find(c, "expect", "lr", -1, -1);
    if (!want || want->numel != steps + 1) return golden_fail(r, "expect lr must hold steps + 1 = %ld values", steps + 1);
    const golden_record *metrics = golden_find(c, "metrics", NULL, -1, -1);
    if (metrics && metrics->numel < steps) return golden_fail(r, "metrics holds %lld values, need %ld", (long long)metrics->numel, steps);

    gopt_sched *s = NULL;
    if (gopt_sched_create_detached(&cfg, 1, &base_lr, &s) != GOPT_OK)
        return golden_fail(r, "gopt_sched_create_detached: %s", gopt_last_error());
    if (gopt_sched_needs_metric(s) && !metrics) {
        gopt_sched_destroy(s);
        return golden_fail(r, "a plateau scheduler needs a metrics record");
    }
    char label[64];
    golden_compare_scalar(r, "lr[0]", gopt_sched_get_lr(s, 0), want->values[0], 1e-5, 1e-4);
    for (long t = 0; t < steps; t++) {
        gopt_status st = gopt_sched_needs_metric(s) ? gopt_sched_step_metric(s, metrics->values[t]) : gopt_sched_step(s);
        if (st != GOPT_OK) {
            golden_fail(r, "step %ld: %s", t + 1, gopt_last_error());
            gopt_sched_destroy(s);
            return -1;
        }
        snprintf(label, sizeof label, "lr[%ld]", t + 1);
        golden_compare_scalar(r, label, gopt_sched_get_lr(s, 0), want->values[t + 1], 1e-5, 1e-4);
    }
    gopt_sched_destroy(s);
    return 0;
}
