/* The depth scenario of the stability lab (lab.h): plain MLPs on flattened 32x32x3 images
 * of 10, 20 and 50 linear layers, with sigmoid, tanh and ReLU, under PyTorch's default init,
 * Xavier (Glorot and Bengio 2010, uniform) and He (He et al. 2015, normal), against the same
 * depth with BatchNorm1d before every hidden activation and with residual blocks
 * (gopt_layer_residual_dense, full pre-activation, no BatchNorm), both under the default
 * init. Every run trains with the same SGD-momentum for the same number of steps.
 *
 * Measured per run, through the monitor's per-layer view (gopt_monitor_layer_stats after
 * each step; the linear layers are the monitor's layers whose first tensor is a weight):
 * the gradient norm of every linear layer at initialisation (the first step's
 * before_step) and at sampled steps, the ratio first layer / last layer at every step, the
 * monitor's per-layer vanishing flags (report.vanishing_layers) and explosion flags, and
 * whether the run learns: its training loss (mean of the last 10 steps) ends below 90% of
 * ln(10) = 2.303, the loss of a uniform guess over the 10 classes, without diverging. The
 * validation accuracy (eval mode) is reported beside it but does not decide: after a few
 * dozen steps a deep BatchNorm net's running statistics still lag its weights, so it can
 * score chance in eval mode while its training loss has halved.
 * Files: depth_runs.csv (one row per run), depth_layers.csv (run, sampled step, linear
 * layer: gradient norm, vanishing flag).
 * Norms at init: the monitor sums squares in float32 lanes, so a layer whose gradient
 * elements are below ~4e-23 reads exactly 0 there (their squares underflow) although they
 * are not 0; the init profile and the first/last ratios at init are therefore summed in
 * double from the same gradients (the arena, right after the first step's before_step),
 * and so is the first/last ratio at every step; depth_layers.csv carries both values.
 * Threads: the runs use one thread whatever o->threads says (restored at the end). Their
 * layers are 128 wide, so each step is some 150 small matrix products and elementwise
 * passes; splitting each over two OpenMP threads gains little on an idle machine and, on a
 * shared one, every parallel region waits for a descheduled partner: measured here under a
 * load of ~11 on 2 cores, the quick plan ran 19 runs in 300 s with 2 threads and 23 in 40 s
 * with one. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab.h"
#include "report.h"
#include "trainer.h"

#define IMG 3072        /* 3 x 32 x 32, flattened */
#define LEARN_LOSS 0.9  /* learns: final training loss below this x ln(10), the loss of a uniform guess */
#define MAX_DEPTH 50
#define NACT 3
#define NVAR 5
#define DEPTH_THREADS 1 /* see "Threads" above */

enum { V_DEFAULT = 0, V_XAVIER, V_HE, V_BN, V_RES };
static const char *const var_names[NVAR] = {"default init", "Xavier init", "He init", "BatchNorm", "residual"};
static const char *const var_keys[NVAR] = {"default", "xavier", "he", "batchnorm", "residual"};
static const gopt_init var_init[NVAR] = {GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_HE_NORMAL,
                                         GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT};
static const gopt_layer_type act_types[NACT] = {GOPT_LAYER_SIGMOID, GOPT_LAYER_TANH, GOPT_LAYER_RELU};
static const char *const act_names[NACT] = {"sigmoid", "tanh", "ReLU"};
static const char *const act_keys[NACT] = {"sigmoid", "tanh", "relu"};

typedef struct depth_plan {
    int depths[3], ndepth;
    int width, batch, steps, samples; /* samples: steps written to depth_layers.csv */
    float lr, momentum;
    int64_t synth_count, val_count;
} depth_plan;

typedef struct depth_run {
    int depth, act, var;
    int nlin;                        /* linear layers found by the monitor (= depth) */
    double init_norm[MAX_DEPTH];     /* per linear layer at the first before_step, summed in double */
    double init_monitor[MAX_DEPTH];  /* the same from the monitor (reads 0 below ~1e-22, see below) */
    int init_vanishing[MAX_DEPTH];   /* the monitor's per-layer flag there */
    int vanishing_at_init;           /* report.vanishing_layers at the first step */
    double *ratio, *loss;            /* per step: first / last linear layer's norm, loss */
    int steps_done;
    int steps_vanishing;             /* steps with at least one layer flagged vanishing */
    int explosions, nonfinite, diverged;
    double first_loss, final_loss;   /* final: mean of the last 10 steps */
    double val_loss, val_acc;
    int learns;
} depth_run;

/* ---- nets ------------------------------------------------------------------------------------ */

static gopt_status add_layer(gopt_net *net, gopt_layer_config c, const char *fmt, int i) {
    char name[32];
    snprintf(name, sizeof name, fmt, i);
    return gopt_net_add(net, &c, name);
}

/* depth linear layers "fc1".."fc<depth>" (3072 -> W -> ... -> 10). Plain: act after every
 * hidden linear; V_BN: linear (no bias) -> BatchNorm1d "bn<i>" -> act; V_RES: fc1, then
 * (depth - 2)/2 blocks "block<k>" (two linears each, named block<k>.fc1/.fc2), act, fc<depth>. */
static gopt_status build_net(const depth_plan *p, int depth, int act, int var, uint64_t seed, gopt_net **out) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = p->batch;
    nc.in_ndim = 1;
    nc.in_shape[0] = IMG;
    nc.seed = seed;
    gopt_net *net;
    gopt_status s = gopt_net_create(&nc, &net);
    if (s != GOPT_OK) return s;
    const int W = p->width;
    const gopt_layer_config a = gopt_layer_config_default(act_types[act]);
    s = add_layer(net, gopt_layer_linear(IMG, W, var != V_BN), "fc%d", 1);
    if (var == V_RES) {
        for (int k = 1; s == GOPT_OK && k <= (depth - 2) / 2; k++)
            s = add_layer(net, gopt_layer_residual_dense(W, act_types[act], 0), "block%d", k);
        if (s == GOPT_OK) s = add_layer(net, a, "act%d", depth - 1);
    } else {
        for (int i = 1; s == GOPT_OK && i < depth; i++) {
            if (i > 1) s = add_layer(net, gopt_layer_linear(W, W, var != V_BN), "fc%d", i);
            if (s == GOPT_OK && var == V_BN) s = add_layer(net, gopt_layer_batchnorm1d(W), "bn%d", i);
            if (s == GOPT_OK) s = add_layer(net, a, "act%d", i);
        }
    }
    if (s == GOPT_OK) s = add_layer(net, gopt_layer_linear(W, 10, 1), "fc%d", depth);
    if (s == GOPT_OK) s = gopt_net_build(net);
    if (s == GOPT_OK) s = gopt_net_init_weights(net, -1, var_init[var], var_init[var], seed);
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return s;
    }
    *out = net;
    return GOPT_OK;
}

/* ---- one run ---------------------------------------------------------------------------------- */

/* L2 norm of tensors [first, first + count) of the arena's gradients, summed in double */
static double exact_norm(gopt_params *params, int first, int count) {
    double sq = 0;
    for (int t = first; t < first + count; t++) {
        gopt_param_info info;
        if (gopt_params_info(params, t, &info) != GOPT_OK) return NAN;
        for (int64_t k = 0; k < info.grad.numel; k++) sq += (double)info.grad.data[k] * info.grad.data[k];
    }
    return sqrt(sq);
}

/* The monitor layers that are linear layers (first tensor tagged weight), in arena order. */
static int linear_layers(gopt_monitor *mon, gopt_params *params, int *idx, int max) {
    int n = 0, count = gopt_monitor_layer_count(mon);
    for (int i = 0; i < count; i++) {
        gopt_monitor_layer ls;
        gopt_param_info info;
        if (gopt_monitor_layer_stats(mon, i, &ls) != GOPT_OK) continue;
        if (gopt_params_info(params, ls.first_tensor, &info) != GOPT_OK || info.tag != GOPT_TAG_WEIGHT) continue;
        if (n < max) idx[n] = i;
        n++;
    }
    return n;
}

static int run_one(const depth_plan *p, const lab_options *o, const cli_data *data, depth_run *r,
                   FILE *layers_csv, char *err, size_t errlen) {
    const uint64_t seed = o->seed * 1000003u + (uint64_t)(r->depth * 100 + r->act * 10 + r->var);
    gopt_net *net = NULL;
    TRAINER_LIB(build_net(p, r->depth, r->act, r->var, seed, &net), "building the MLP");
    trainer_config tc = trainer_config_default();
    tc.batch = p->batch;
    tc.seed = o->seed; /* the batch order: every run sees the same batches (the net has its own seed) */
    tc.augment = 0;
    tc.optim = gopt_optim_config_default(GOPT_ALGO_SGD);
    tc.optim.lr = p->lr;
    tc.optim.momentum = p->momentum;
    tc.schedule = SCHED_CONSTANT;
    tc.total_steps = p->steps;
    tc.diverge_factor = 5.0;
    trainer *t = NULL;
    if (trainer_create_images(&tc, net, 1, (const int64_t[]){IMG}, data->train, &t, err, errlen)) {
        trainer_destroy(t);
        return -1;
    }
    gopt_monitor *mon = trainer_monitor(t);
    gopt_params *params = gopt_net_params(trainer_net(t));
    int lin[MAX_DEPTH];
    const int every = p->samples > 1 ? (p->steps + p->samples - 2) / (p->samples - 1) : p->steps;
    int rc = 0;
    for (int step = 1; step <= p->steps; step++) {
        trainer_step ts;
        int epoch_done;
        if ((rc = trainer_step_once(t, &ts, &epoch_done, err, errlen))) break;
        const gopt_monitor_report *rep = gopt_monitor_last_report(mon);
        if (step == 1) {
            r->nlin = linear_layers(mon, params, lin, MAX_DEPTH);
            if (r->nlin != r->depth) {
                rc = trainer_fail(err, errlen, "the monitor shows %d linear layers in a %d-layer MLP", r->nlin,
                                  r->depth);
                break;
            }
            r->vanishing_at_init = rep->vanishing_layers;
            r->first_loss = ts.loss;
        }
        for (int i = 0; i < r->nlin; i++) {
            gopt_monitor_layer ls;
            if (gopt_monitor_layer_stats(mon, lin[i], &ls) != GOPT_OK) {
                rc = trainer_fail(err, errlen, "monitor layer %d: %s", lin[i], gopt_last_error());
                break;
            }
            /* the gradients are still in the arena: the optimizer step does not clear them */
            double exact = step == 1 || step % every == 0 || step == p->steps
                               ? exact_norm(params, ls.first_tensor, ls.ntensors)
                               : NAN;
            if (step == 1) {
                r->init_norm[i] = exact;
                r->init_monitor[i] = ls.grad_norm;
                r->init_vanishing[i] = ls.vanishing;
            }
            if (layers_csv && isfinite(exact))
                fprintf(layers_csv, "%d,%s,%s,%d,%d,%s,%.6g,%.6g,%d\n", r->depth, act_keys[r->act],
                        var_keys[r->var], step, i + 1, ls.name, ls.grad_norm, exact, ls.vanishing);
        }
        if (rc) break;
        /* first / last in double (see "Norms at init"): the monitor's float sums read 0 for the
         * first layers of the deep sigmoid nets at every step */
        gopt_monitor_layer first, last;
        if (gopt_monitor_layer_stats(mon, lin[0], &first) != GOPT_OK ||
            gopt_monitor_layer_stats(mon, lin[r->nlin - 1], &last) != GOPT_OK) {
            rc = trainer_fail(err, errlen, "monitor layers: %s", gopt_last_error());
            break;
        }
        double nf = exact_norm(params, first.first_tensor, first.ntensors),
               nl = exact_norm(params, last.first_tensor, last.ntensors);
        r->ratio[step - 1] = nl > 0 ? nf / nl : NAN;
        r->loss[step - 1] = ts.loss;
        r->steps_done = step;
        r->steps_vanishing += rep->vanishing_layers > 0;
        r->explosions += rep->explosion != 0;
        r->nonfinite += ts.nonfinite != 0;
        if (ts.diverged) {
            r->diverged = 1;
            break;
        }
    }
    if (!rc) {
        int k = r->steps_done < 10 ? r->steps_done : 10;
        double sum = 0;
        for (int i = r->steps_done - k; i < r->steps_done; i++) sum += r->loss[i];
        r->final_loss = k ? sum / k : NAN;
        rc = trainer_evaluate(t, data->val, &r->val_loss, &r->val_acc, err, errlen);
        r->learns = !rc && !r->diverged && r->final_loss < LEARN_LOSS * log(10.0);
    }
    trainer_destroy(t);
    return rc;
}

/* ---- the report -------------------------------------------------------------------------------- */

static double ratio_at(const depth_run *r, int i) { return i < r->steps_done ? r->ratio[i] : NAN; }

static const depth_run *find_run(const depth_run *runs, int nruns, int depth, int act, int var) {
    for (int i = 0; i < nruns; i++)
        if (runs[i].depth == depth && runs[i].act == act && runs[i].var == var) return &runs[i];
    return NULL;
}

static void fmt_sci(char *buf, size_t n, double v) {
    if (!isfinite(v))
        snprintf(buf, n, "n/a");
    else if (v == 0)
        snprintf(buf, n, "0");
    else
        snprintf(buf, n, "%.2g", v);
}

/* min and max of the positive finite values */
static void range_pos(const double *v, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]) && v[i] > 0) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

static void write_profiles(FILE *f, const depth_plan *p, const depth_run *runs, int nruns, double *xs) {
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < nruns; i++) range_pos(runs[i].init_norm, runs[i].nlin, &lo, &hi);
    fprintf(f, "<h3>Gradient norm per layer at initialisation</h3>\n<p>The L2 norm of each linear layer's "
               "gradient (weight and bias) at the first step, layer by layer as the monitor's per-layer view "
               "groups them; layer 1 takes the input, the last one gives the logits. A line falling to the "
               "left is a gradient vanishing on its way back to the input. Summed in double: the monitor's "
               "float32 sums of squares read 0 for gradients below about 1e-22 (both are in "
               "depth_layers.csv). One y axis for every panel.</p>\n");
    for (int d = 0; d < p->ndepth; d++) {
        report_panel panels[NACT];
        report_series series[NACT][NVAR];
        char titles[NACT][64];
        for (int a = 0; a < NACT; a++) {
            int ns = 0;
            for (int v = 0; v < NVAR; v++) {
                const depth_run *r = find_run(runs, nruns, p->depths[d], a, v);
                if (!r || r->nlin < 1) continue;
                series[a][ns] = (report_series){.name = var_names[v], .x = xs, .y = r->init_norm, .n = r->nlin,
                                                .color = v + 1, .dashed = v >= V_BN};
                ns++;
            }
            snprintf(titles[a], sizeof titles[a], "%d layers, %s", p->depths[d], act_names[a]);
            panels[a] = (report_panel){.title = titles[a], .s = series[a], .ns = ns};
        }
        char title[96];
        snprintf(title, sizeof title, "%d-layer MLPs: gradient norm by layer at init", p->depths[d]);
        report_chart common = report_chart_default();
        common.title = title;
        common.xlabel = "linear layer (1 = input side)";
        common.ylabel = "grad norm";
        common.log_y = 1;
        if (hi > lo) {
            common.ymin = lo;
            common.ymax = hi;
        }
        report_small_multiples(f, &common, panels, NACT, NACT);
    }
}

static void write_ratio_charts(FILE *f, const depth_plan *p, const depth_run *runs, int nruns, double *xs) {
    fprintf(f, "<h3>First layer / last layer over training</h3>\n<p>The first linear layer's gradient norm "
               "divided by the last one's at every step (log scale; summed in double as above): 1 means the "
               "gradient reaches the input "
               "as strong as it leaves the loss; 1e-10 means the first layer does not train.</p>\n");
    report_panel panels[3 * NACT];
    report_series series[3 * NACT][NVAR];
    char titles[3 * NACT][64];
    int np = 0;
    for (int d = 0; d < p->ndepth; d++)
        for (int a = 0; a < NACT; a++, np++) {
            int ns = 0;
            for (int v = 0; v < NVAR; v++) {
                const depth_run *r = find_run(runs, nruns, p->depths[d], a, v);
                if (!r || r->steps_done < 1) continue;
                series[np][ns] = (report_series){.name = var_names[v], .x = xs, .y = r->ratio, .n = r->steps_done,
                                                 .color = v + 1, .dashed = v >= V_BN};
                ns++;
            }
            snprintf(titles[np], sizeof titles[np], "%d layers, %s", p->depths[d], act_names[a]);
            panels[np] = (report_panel){.title = titles[np], .s = series[np], .ns = ns};
        }
    report_chart common = report_chart_default();
    common.title = "gradient norm ratio, first / last linear layer";
    common.xlabel = "step";
    common.ylabel = "first / last";
    common.log_y = 1;
    report_small_multiples(f, &common, panels, np, NACT);
}

static void write_tables(FILE *f, const depth_plan *p, const depth_run *runs, int nruns) {
    fprintf(f, "<h3>Which runs learn</h3>\n<p>A run learns when its training loss (mean of the last 10 of "
               "%d steps) ends below %.2f, %.0f%% of ln 10 (the loss of a uniform guess), and it did not "
               "diverge. Each cell: the first/last gradient ratio at init, the final training loss and the "
               "validation accuracy (eval mode; chance "
               "10%%), and the monitor's flags over the run (vanishing: steps with a layer below %g of the "
               "largest layer's norm; explosions: steps whose global norm exceeded 10x the recent mean).</p>\n"
               "<table>\n",
            p->steps, LEARN_LOSS * log(10.0), 100 * LEARN_LOSS, 1e-4);
    const char *head[2 + NVAR] = {"depth", "activation"};
    for (int v = 0; v < NVAR; v++) head[2 + v] = var_names[v];
    report_row(f, 1, 2 + NVAR, head);
    const char *rows[3 * NACT];
    char row_names[3 * NACT][48];
    double err[3 * NACT * NVAR];
    int marked[3 * NACT * NVAR];
    int nr = 0;
    for (int d = 0; d < p->ndepth; d++)
        for (int a = 0; a < NACT; a++, nr++) {
            char cells[2 + NVAR][256];
            const char *cp[2 + NVAR];
            snprintf(cells[0], sizeof cells[0], "%d", p->depths[d]);
            snprintf(cells[1], sizeof cells[1], "%s", act_names[a]);
            for (int v = 0; v < NVAR; v++) {
                const depth_run *r = find_run(runs, nruns, p->depths[d], a, v);
                err[nr * NVAR + v] = r ? r->final_loss : NAN;
                marked[nr * NVAR + v] = r && !r->learns;
                if (!r) {
                    snprintf(cells[2 + v], sizeof cells[2 + v], "&ndash;");
                    continue;
                }
                char ratio[32];
                fmt_sci(ratio, sizeof ratio, r->nlin ? r->init_norm[0] / r->init_norm[r->nlin - 1] : NAN);
                snprintf(cells[2 + v], sizeof cells[2 + v],
                         "%s<br>%s loss %.2f, val %.1f%%<br><small>%d layers vanishing at init; vanishing %d, "
                         "explosions %d steps%s</small>",
                         ratio, r->learns ? "&#10003;" : "&#10007;", r->final_loss, 100 * r->val_acc,
                         r->vanishing_at_init, r->steps_vanishing, r->explosions, r->diverged ? "; diverged" : "");
            }
            for (int i = 0; i < 2 + NVAR; i++) cp[i] = cells[i];
            report_row(f, 0, 2 + NVAR, cp);
            snprintf(row_names[nr], sizeof row_names[nr], "%d layers, %s", p->depths[d], act_names[a]);
            rows[nr] = row_names[nr];
        }
    fprintf(f, "</table>\n");
    report_heatmap(f, "final training loss (hatched: does not learn)", rows, nr, var_names, NVAR, err, marked, "no");
}

/* ---- the scenario ------------------------------------------------------------------------------ */

static depth_plan make_plan(const lab_options *o) {
    depth_plan p = {{10, 20, 50}, 3, 128, 64, 200, 11, 0.01f, 0.9f, 12000, 2000};
    if (o->quick) { /* the two depths of the question, smaller batches, fewer steps */
        p.depths[0] = 20;
        p.depths[1] = 50;
        p.ndepth = 2;
        p.batch = 64;
        p.width = 64;
        p.steps = 40;
        p.samples = 5;
        p.synth_count = 3000;
        p.val_count = 500;
    }
    return p;
}

static int learn_count(const depth_run *runs, int nruns, int depth, int var_lo, int var_hi, int *total) {
    int n = 0;
    *total = 0;
    for (int i = 0; i < nruns; i++)
        if (runs[i].depth == depth && runs[i].var >= var_lo && runs[i].var <= var_hi) {
            (*total)++;
            n += runs[i].learns;
        }
    return n;
}

static void write_findings(lab_section *out, const depth_plan *p, const depth_run *runs, int nruns) {
    const int deep = p->depths[p->ndepth - 1];
    const int mid = p->ndepth > 1 ? p->depths[p->ndepth - 2] : deep;
    char rd[4][32];
    const depth_run *sd = find_run(runs, nruns, deep, 0, V_DEFAULT), *sm = find_run(runs, nruns, mid, 0, V_DEFAULT),
                    *sb = find_run(runs, nruns, deep, 0, V_BN), *sr = find_run(runs, nruns, deep, 0, V_RES);
    const depth_run *rr[4] = {sd, sm, sb, sr};
    for (int i = 0; i < 4; i++)
        fmt_sci(rd[i], sizeof rd[i],
                rr[i] && rr[i]->nlin ? rr[i]->init_norm[0] / rr[i]->init_norm[rr[i]->nlin - 1] : NAN);
    char rbn[32], rlo[32], rhi[32];
    const depth_run *rb = find_run(runs, nruns, deep, 2, V_BN);
    fmt_sci(rbn, sizeof rbn, rb && rb->nlin ? rb->init_norm[0] / rb->init_norm[rb->nlin - 1] : NAN);
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < nruns; i++)
        if (runs[i].var == V_RES && runs[i].nlin) {
            double q = runs[i].init_norm[0] / runs[i].init_norm[runs[i].nlin - 1];
            if (q < lo) lo = q;
            if (q > hi) hi = q;
        }
    fmt_sci(rlo, sizeof rlo, lo);
    fmt_sci(rhi, sizeof rhi, hi);
    int tp, tb, tr;
    int lp = learn_count(runs, nruns, deep, V_DEFAULT, V_HE, &tp), lb = learn_count(runs, nruns, deep, V_BN, V_BN, &tb),
        lr = learn_count(runs, nruns, deep, V_RES, V_RES, &tr);
    int sig_plain = 0, sig_plain_total = 0;
    for (int i = 0; i < nruns; i++)
        if (runs[i].act == 0 && runs[i].var <= V_HE && runs[i].depth >= mid) {
            sig_plain_total++;
            sig_plain += runs[i].learns;
        }
    snprintf(out->findings, sizeof out->findings,
             "At initialisation the first layer's gradient norm of the %d-layer sigmoid MLP is %s times the last "
             "layer's under PyTorch's default init (%d layers: %s; the monitor flags %d of its %d layers as "
             "vanishing), against %s with BatchNorm and %s with residual blocks. "
             "%d of %d plain %d-layer runs (3 activations x default, Xavier, He) learn (training loss below "
             "%.0f%% of ln 10 after %d SGD-momentum steps), against %d of %d with BatchNorm and %d of %d with "
             "residual blocks; of the plain sigmoid nets of %d and %d layers, %d of %d learn. BatchNorm does "
             "not make a deep plain net's gradient flat: in the %d-layer ReLU net with BatchNorm the first "
             "layer's gradient is %s times the last one's at init (it grows towards the input, as the mean-field "
             "analysis of Yang et al. 2019 predicts), while residual blocks keep every ratio within %s..%s.",
             deep, rd[0], mid, rd[1], sd ? sd->vanishing_at_init : -1, deep, rd[2], rd[3], lp, tp, deep,
             100 * LEARN_LOSS, p->steps, lb, tb, lr, tr, mid, deep, sig_plain, sig_plain_total, deep, rbn, rlo,
             rhi);
}

int lab_depth(const lab_options *o, lab_section *out) {
    memset(out, 0, sizeof *out);
    const depth_plan p = make_plan(o);
    double t_start = cli_now();
    const int threads = gopt_get_threads();
    gopt_set_threads(DEPTH_THREADS);
    cli_data data;
    if (cli_load_data(o->cifar_dir, p.val_count, NULL, p.synth_count + p.val_count, o->seed, &data)) {
        gopt_set_threads(threads);
        return -1;
    }
    out->builtin_data = data.synthetic;
    if (data.synthetic)
        snprintf(out->data, sizeof out->data, "the BUILT-IN SYNTHETIC images, flattened: %.440s",
                 data.source);
    else
        snprintf(out->data, sizeof out->data, "CIFAR-10, flattened to 3072 inputs: %.440s", data.source);
    const int nruns = p.ndepth * NACT * NVAR;
    depth_run *runs = calloc((size_t)nruns, sizeof *runs);
    double *buf = malloc(sizeof(double) * (size_t)nruns * 2 * p.steps);
    double *xs = malloc(sizeof(double) * (size_t)(p.steps > MAX_DEPTH ? p.steps : MAX_DEPTH));
    FILE *runs_csv = NULL, *layers_csv = NULL;
    char path[4096], err[512] = "";
    int rc = -1;
    if (!runs || !buf || !xs) {
        fprintf(stderr, "error: depth: out of memory\n");
        goto done;
    }
    snprintf(path, sizeof path, "%s/depth_runs.csv", o->out_dir);
    runs_csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/depth_layers.csv", o->out_dir);
    layers_csv = fopen(path, "w");
    if (!runs_csv || !layers_csv) {
        fprintf(stderr, "error: depth: cannot write %s\n", path);
        goto done;
    }
    fprintf(runs_csv, "depth,activation,variant,init,steps,first_last_ratio_init,first_last_ratio_final,"
                      "vanishing_layers_init,steps_with_vanishing_layers,explosions,nonfinite,diverged,first_loss,"
                      "final_loss,val_loss,val_acc,learns\n");
    fprintf(layers_csv, "depth,activation,variant,step,layer,name,grad_norm,grad_norm_double,vanishing\n");
    for (int i = 0; i < (p.steps > MAX_DEPTH ? p.steps : MAX_DEPTH); i++) xs[i] = i + 1;
    int k = 0;
    for (int d = 0; d < p.ndepth; d++)
        for (int a = 0; a < NACT; a++)
            for (int v = 0; v < NVAR; v++, k++) {
                depth_run *r = &runs[k];
                r->depth = p.depths[d];
                r->act = a;
                r->var = v;
                r->ratio = buf + (size_t)k * 2 * p.steps;
                r->loss = r->ratio + p.steps;
                double t0 = cli_now();
                if (run_one(&p, o, &data, r, layers_csv, err, sizeof err)) {
                    fprintf(stderr, "error: depth: %d layers %s %s: %s\n", r->depth, act_keys[a], var_keys[v], err);
                    goto done;
                }
                double secs = cli_now() - t0;
                char item[64];
                snprintf(item, sizeof item, "%d_%s_%s", r->depth, act_keys[a], var_keys[v]);
                lab_timing(o, "depth", item, secs);
                fprintf(runs_csv, "%d,%s,%s,%s,%d,%.6g,%.6g,%d,%d,%d,%d,%d,%.6g,%.6g,%.6g,%.4f,%d\n", r->depth,
                        act_keys[a], var_keys[v], gopt_init_name(var_init[v]), r->steps_done,
                        r->init_norm[0] / r->init_norm[r->nlin - 1], ratio_at(r, r->steps_done - 1),
                        r->vanishing_at_init, r->steps_vanishing, r->explosions, r->nonfinite, r->diverged,
                        r->first_loss, r->final_loss, r->val_loss, r->val_acc, r->learns);
                printf("depth %2d %-7s %-9s  init ratio %9.3g  vanishing %2d  loss %.3f -> %.3f  val %.1f%%%s%s\n",
                       r->depth, act_keys[a], var_keys[v], r->init_norm[0] / r->init_norm[r->nlin - 1],
                       r->vanishing_at_init, r->first_loss, r->final_loss, 100 * r->val_acc,
                       r->learns ? "  learns" : "", r->diverged ? "  diverged" : "");
                fflush(stdout);
            }
    lab_html h;
    if (lab_html_open(&h)) goto done;
    fprintf(h.f, "<p>Every run: %d SGD steps (lr %g, momentum %g), batch %d, width %d, the same batches, "
                 "one thread; plain nets under PyTorch's default init, Xavier uniform and He normal; "
                 "BatchNorm1d before every hidden activation, or residual blocks (x + W2 act(W1 act(x)), full "
                 "pre-activation), both under the default init. %d runs in <span class=\"time\">%.0f s</span>."
                 "</p>\n",
            p.steps, p.lr, p.momentum, p.batch, p.width, nruns, cli_now() - t_start);
    write_profiles(h.f, &p, runs, nruns, xs);
    write_ratio_charts(h.f, &p, runs, nruns, xs);
    write_tables(h.f, &p, runs, nruns);
    out->html = lab_html_close(&h);
    if (!out->html) goto done;
    write_findings(out, &p, runs, nruns);
    lab_timing(o, "depth", "total", cli_now() - t_start);
    rc = 0;
done:
    if (runs_csv && fclose(runs_csv) && !rc) {
        fprintf(stderr, "error: depth: writing depth_runs.csv failed\n");
        rc = -1;
    }
    if (layers_csv && fclose(layers_csv) && !rc) {
        fprintf(stderr, "error: depth: writing depth_layers.csv failed\n");
        rc = -1;
    }
    gopt_set_threads(threads);
    cli_data_free(&data);
    free(runs);
    free(buf);
    free(xs);
    return rc;
}
