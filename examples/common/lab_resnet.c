/* The lab's resnet scenario (see lab.h): a CIFAR ResNet (or the built-in synthetic images)
 * trained with each optimizer x {base, clip, warmup} at its default LR, a deliberately
 * exploding plain-SGD pair, an LR sweep, and the LR strategies (lab_resnet_sched.c).
 *
 * Clipping that bites: a clipped run's max norm is half the median global gradient norm
 * of the same optimizer's base run over its first 20 steps (same weights, same batches),
 * so it clips most steps at first; the report draws that threshold on the norm chart and
 * gives the fraction of steps clipped.
 *
 * LR sensitivity follows Wortsman et al. 2023 ("Small-scale proxies for large-scale
 * Transformer training instabilities", sec. 3): over the LR grid, the mean of
 * min(final loss, initial loss) minus the smallest of those; a divergent run counts as
 * the initial loss. Lower means the optimizer is less sensitive to its LR. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab_resnet_internal.h"
#include "report.h"

/* LR grid: GRID points half a decade apart, from default x 10^-1.5 to default x 10^3. */
#define GRID 10
#define GRID_LO (-1.5)
#define GRID_DEFAULT 3 /* the grid point at the default LR */
static double grid_exponent(int g) { return GRID_LO + 0.5 * g; }

enum { VAR_BASE = 0, VAR_CLIP, VAR_WARMUP, VAR_COUNT };
static const char *const variant_names[VAR_COUNT] = {"base", "clip", "warmup"};

typedef struct optimizer_entry {
    const char *label;
    gopt_algo algo;
    float lr, momentum, weight_decay;
    int nesterov;
} optimizer_entry;

/* Each at a sensible default LR for a small ResNet at batch 64-128 with constant LR. */
static const optimizer_entry optimizers[] = {
    {"SGD", GOPT_ALGO_SGD, 0.1f, 0.0f, 0.0f, 0},
    {"SGD+momentum", GOPT_ALGO_SGD, 0.05f, 0.9f, 0.0f, 0},
    {"Nesterov", GOPT_ALGO_SGD, 0.05f, 0.9f, 0.0f, 1},
    {"Adagrad", GOPT_ALGO_ADAGRAD, 0.01f, 0, 0, 0},
    {"RMSprop", GOPT_ALGO_RMSPROP, 1e-3f, 0, 0, 0},
    {"Adam", GOPT_ALGO_ADAM, 1e-3f, 0, 0, 0},
    {"AdamW", GOPT_ALGO_ADAMW, 1e-3f, 0, 0.05f, 0},
    {"Adadelta", GOPT_ALGO_ADADELTA, 1.0f, 0, 0, 0},
    {"NAdam", GOPT_ALGO_NADAM, 2e-3f, 0, 0, 0},
    {"RAdam", GOPT_ALGO_RADAM, 1e-3f, 0, 0, 0},
    {"Lion", GOPT_ALGO_LION, 1e-4f, 0, 0, 0},
    /* issue 18: the frontier (schedule_free's and PyTorch's defaults; Muon at Keller
     * Jordan's 0.02 with its AdamW part, the output layer and vectors, at a tenth of it) */
    {"AdamW-SF", GOPT_ALGO_ADAMW_SCHEDULEFREE, 2.5e-3f, 0, 0.05f, 0},
    {"SGD-SF", GOPT_ALGO_SGD_SCHEDULEFREE, 0.5f, 0, 0, 0},
    {"Muon", GOPT_ALGO_MUON, 0.02f, 0, 0, 0},
    {"Adafactor", GOPT_ALGO_ADAFACTOR, 1e-2f, 0, 0, 0},
};
#define NOPT (int)(sizeof optimizers / sizeof optimizers[0])

/* The time-to-target comparison: the frontier next to the usual baselines. */
static const char *const ttt_labels[] = {"AdamW", "Nesterov", "AdamW-SF", "SGD-SF", "Muon", "Adafactor"};
#define NTTT (int)(sizeof ttt_labels / sizeof ttt_labels[0])

/* The sizes of each part (full and --quick). */
typedef struct rn_settings {
    int depth;
    int compare_steps, compare_batch;
    float compare_width;
    int sweep_steps, sweep_batch, sweep_variants;
    float sweep_width;
    int64_t train_subset, val_subset;
    double diverge_factor, clip_fraction, warmup_frac, huge_lr, huge_clip;
    int clip_window; /* steps of the base run whose median norm sets the clip threshold */
    rn_ttt_settings ttt;
} rn_settings;

static rn_settings settings_for(int quick) {
    rn_settings s;
    memset(&s, 0, sizeof s);
    s.depth = 8;
    s.compare_width = 0.25f;
    s.compare_batch = 64;
    s.compare_steps = quick ? 30 : 150;
    s.sweep_width = 0.25f;
    s.sweep_batch = 32;
    s.sweep_steps = quick ? 12 : 30;
    s.sweep_variants = quick ? 1 : VAR_COUNT; /* quick: base only */
    s.train_subset = quick ? 4000 : 40000;
    s.val_subset = quick ? 500 : 2000;
    s.diverge_factor = 3.0;
    s.clip_fraction = 0.5;
    s.clip_window = 20;
    s.warmup_frac = 0.1;
    s.huge_lr = 30.0;
    s.huge_clip = 0.1;
    s.ttt.steps = quick ? 40 : 300;
    s.ttt.eval_every = quick ? 10 : 25;
    s.ttt.batch = s.compare_batch;
    s.ttt.depth = s.depth;
    s.ttt.width = s.compare_width;
    s.ttt.diverge_factor = s.diverge_factor;
    return s;
}

static gopt_optim_config optim_for(int opt_index, double lr) {
    const optimizer_entry *e = &optimizers[opt_index];
    gopt_optim_config c = gopt_optim_config_default(e->algo);
    c.lr = (float)lr;
    if (e->algo == GOPT_ALGO_SGD) {
        c.momentum = e->momentum;
        c.nesterov = e->nesterov;
    }
    if (e->weight_decay > 0) c.weight_decay = e->weight_decay;
    if (e->algo == GOPT_ALGO_MUON) c.adamw_lr_ratio = 0.1f;
    return c;
}

/* `fraction` x the median gradient norm over the first `window` steps of a base run. */
static double clip_threshold(const rn_run *base, int window, double fraction) {
    double med = lab_median_first(base->grad_norm, base->steps, window);
    return isfinite(med) ? fraction * med : 1.0;
}

static double clipped_frac(const rn_run *r) { return r->steps ? (double)r->clipped / r->steps : 0; }

/* ---- the sweep ------------------------------------------------------------------------- */

typedef struct sweep_row {
    int opt_index, variant;
    double clip_norm, clipped;   /* clipped: the mean fraction of steps clipped over the grid */
    double lrs[GRID], final[GRID], initial[GRID];
    int diverged[GRID];
    double stable_lo, stable_hi; /* NAN if every LR diverged */
    double best_lr, best_loss, sensitivity;
    int first_diverged;          /* the lowest grid point that diverged, -1: none */
} sweep_row;

static void analyse_sweep(sweep_row *row) {
    double best = INFINITY;
    row->best_lr = NAN;
    row->first_diverged = -1;
    for (int g = 0; g < GRID; g++) {
        if (row->diverged[g] && row->first_diverged < 0) row->first_diverged = g;
        if (!row->diverged[g] && row->final[g] < best) {
            best = row->final[g];
            row->best_lr = row->lrs[g];
        }
    }
    row->best_loss = best;
    int best_len = 0, best_start = -1;
    for (int g = 0; g < GRID;) {
        if (row->diverged[g]) {
            g++;
            continue;
        }
        int h = g;
        while (h < GRID && !row->diverged[h]) h++;
        if (h - g > best_len) best_len = h - g, best_start = g;
        g = h;
    }
    row->stable_lo = best_len ? row->lrs[best_start] : NAN;
    row->stable_hi = best_len ? row->lrs[best_start + best_len - 1] : NAN;
    /* Wortsman et al.: E_lr[min(L(lr), L0) - L*], divergent runs at L0; L* is the best capped
     * loss, so a grid where no run got below its initial loss reads as 0, not negative. */
    double sum = 0, best_capped = INFINITY;
    for (int g = 0; g < GRID; g++) {
        double capped = fmin(row->final[g], row->initial[g]);
        sum += capped;
        best_capped = fmin(best_capped, capped);
    }
    row->sensitivity = isfinite(best) ? sum / GRID - best_capped : NAN;
}

/* ---- report pieces --------------------------------------------------------------------- */

typedef enum { Q_LOSS, Q_GRAD } quantity;

/* Small multiples: one panel per optimizer, the given variants' runs in it. cmp[o][v] is
 * the comparison run of optimizer o and variant v. */
static void compare_panels(FILE *f, rn_run *const cmp[NOPT][VAR_COUNT], const double *xs, quantity q,
                           const int *vars, int nvars, char (*notes)[96]) {
    report_panel panels[NOPT];
    report_series series[NOPT][VAR_COUNT];
    const char *labels[NOPT][1];
    double hl[NOPT][1];
    for (int o = 0; o < NOPT; o++) {
        int ns = 0;
        for (int k = 0; k < nvars; k++) {
            const rn_run *r = cmp[o][vars[k]];
            report_series *s = &series[o][ns++];
            memset(s, 0, sizeof *s);
            s->name = variant_names[vars[k]];
            s->x = xs;
            s->y = q == Q_LOSS ? r->loss : r->grad_norm;
            s->n = r->steps;
            s->color = vars[k] + 1;
        }
        memset(&panels[o], 0, sizeof panels[o]);
        panels[o].title = optimizers[o].label;
        panels[o].s = series[o];
        panels[o].ns = ns;
        if (q == Q_GRAD) {
            hl[o][0] = cmp[o][VAR_CLIP]->clip_norm;
            labels[o][0] = "clip";
            panels[o].hlines = hl[o];
            panels[o].hline_labels = labels[o];
            panels[o].nhlines = 1;
            panels[o].note = notes[o];
        }
    }
    report_chart c = report_chart_default();
    c.xlabel = "optimizer step";
    if (q == Q_LOSS) {
        c.title = "Training loss per optimizer: base, clip and warmup (EMA 0.9 bold, raw faint; shared axes)";
        c.ylabel = "loss";
        c.smooth = 0.9;
    } else {
        c.title = "Global gradient norm before clipping, base and clip (log scale, shared axes; dashed: the clip "
                  "run's max norm)";
        c.ylabel = "L2 norm";
        c.log_y = 1;
        c.smooth = 0.9;
    }
    fputs("<figure>\n", f);
    report_small_multiples(f, &c, panels, NOPT, 4);
    fputs("</figure>\n", f);
}

static void fmt_pct(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.1f%%", 100 * v);
    else snprintf(buf, n, "-");
}

static void compare_html(FILE *f, const rn_settings *st, rn_run *const cmp[NOPT][VAR_COUNT], rn_run *explode,
                         const double *xs, double seconds) {
    fprintf(f, "<h3>Optimizers at their default learning rates: base, clip, warmup</h3>\n"
               "<p>ResNet-%d (width %g), batch %d, %d steps at a constant LR, every run from the same initial "
               "weights over the same batches; validation accuracy at the end. <b>clip</b>: the global gradient "
               "norm is clipped to %g&times; the median norm of the same optimizer's base run over its first %d "
               "steps, a threshold that bites (the fraction of steps clipped is under each norm panel). "
               "<b>warmup</b>: LR linear from 1%% to 100%% over the first %g%% of the steps. A run "
               "<b>diverges</b> when its loss is not finite or the mean of its last 5 losses exceeds %g&times; its "
               "first; it stops there. <span class=\"time\">(%.0f s)</span></p>\n",
            st->depth, st->compare_width, st->compare_batch, st->compare_steps, st->clip_fraction, st->clip_window,
            100 * st->warmup_frac, st->diverge_factor, seconds);
    const int all3[] = {VAR_BASE, VAR_CLIP, VAR_WARMUP}, two[] = {VAR_BASE, VAR_CLIP};
    compare_panels(f, cmp, xs, Q_LOSS, all3, 3, NULL);
    char notes[NOPT][96];
    for (int o = 0; o < NOPT; o++)
        snprintf(notes[o], sizeof notes[o], "clipped %.0f%% of steps at %.3g", 100 * clipped_frac(cmp[o][VAR_CLIP]),
                 cmp[o][VAR_CLIP]->clip_norm);
    compare_panels(f, cmp, xs, Q_GRAD, two, 2, notes);

    fputs("<table><tr><th>optimizer</th><th>LR</th><th>clip max norm</th><th>steps clipped</th>"
          "<th>val acc base</th><th>val acc clip</th><th>val acc warmup</th><th>final loss base</th>"
          "<th>final loss clip</th><th>final loss warmup</th><th>diverged</th></tr>\n",
          f);
    for (int o = 0; o < NOPT; o++) {
        char b[3][32], cf[32];
        for (int v = 0; v < VAR_COUNT; v++) fmt_pct(b[v], sizeof b[v], cmp[o][v]->val_acc);
        fmt_pct(cf, sizeof cf, clipped_frac(cmp[o][VAR_CLIP]));
        int nd = 0;
        char dv[96] = "";
        for (int v = 0; v < VAR_COUNT; v++)
            if (cmp[o][v]->diverged)
                nd += snprintf(dv + nd, sizeof dv - (size_t)nd, "%s%s", nd ? ", " : "", variant_names[v]);
        fprintf(f, "<tr><td>%s</td><td>%.3g</td><td>%.3g</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%s%s%s</td></tr>\n",
                optimizers[o].label, (double)optimizers[o].lr, cmp[o][VAR_CLIP]->clip_norm, cf, b[0], b[1], b[2],
                cmp[o][0]->final_loss, cmp[o][1]->final_loss, cmp[o][2]->final_loss, nd ? "<span class=\"bad\">" : "",
                nd ? dv : "no", nd ? "</span>" : "");
    }
    fputs("</table>\n", f);

    fprintf(f, "<h3>A deliberately exploding setting: plain SGD at LR %g, without and with clipping (max norm "
               "%g)</h3>\n<ul>\n",
            st->huge_lr, st->huge_clip);
    for (int k = 0; k < 2; k++) {
        const rn_run *r = &explode[k];
        fputs("<li>", f);
        report_escape(f, r->name);
        if (r->diverged) fprintf(f, ": <span class=\"bad\">diverged</span> at step %d", r->diverge_step);
        else fprintf(f, ": stable, final loss %.4g, val acc %.1f%%", r->final_loss, 100 * r->val_acc);
        if (r->clip_norm > 0) fprintf(f, "; clipped %.0f%% of steps", 100 * clipped_frac(r));
        fputs("</li>\n", f);
    }
    fputs("</ul>\n", f);
    report_series s[2];
    memset(s, 0, sizeof s);
    for (int k = 0; k < 2; k++) {
        s[k].name = k ? "clip" : "base";
        s[k].x = xs;
        s[k].n = explode[k].steps;
        s[k].color = k + 1;
    }
    report_panel p[2];
    memset(p, 0, sizeof p);
    p[0].title = "training loss";
    p[1].title = "gradient norm before clipping";
    report_series sl[2] = {s[0], s[1]}, sg[2] = {s[0], s[1]};
    for (int k = 0; k < 2; k++) {
        sl[k].y = explode[k].loss;
        sg[k].y = explode[k].grad_norm;
    }
    report_chart c = report_chart_default();
    c.title = "Exploding setting: loss and gradient norm (log scale)";
    c.xlabel = "optimizer step";
    c.log_y = 1;
    const double hl[1] = {st->huge_clip};
    const char *const hll[1] = {"clip max norm"};
    fputs("<figure>\n", f);
    report_chart cl = c;
    cl.title = "Training loss (log scale)";
    cl.ylabel = "loss";
    cl.width = 480;
    cl.height = 280;
    report_chart_draw(f, &cl, sl, 2);
    report_chart cg = cl;
    cg.title = "Gradient norm before clipping (log)";
    cg.ylabel = "L2 norm";
    cg.hlines = hl;
    cg.hline_labels = hll;
    cg.nhlines = 1;
    report_chart_draw(f, &cg, sg, 2);
    fputs("</figure>\n", f);
}

static void sweep_html(FILE *f, const rn_settings *st, const sweep_row *rows, int nrows, double seconds) {
    fprintf(f, "<h3>Learning-rate sweep (ResNet-%d width %g, batch %d, %d steps per run)</h3>\n", st->depth,
            st->sweep_width, st->sweep_batch, st->sweep_steps);
    fprintf(f, "<p>Each optimizer runs at %d learning rates spaced half a decade apart, from its default "
               "&times;10^%g to &times;10^%g, as <b>base</b>%s. <b>Stable range</b>: the widest run of "
               "consecutive grid LRs that did not diverge. <b>LR sensitivity</b> (Wortsman et al. 2023): the mean "
               "over the grid of the final loss capped at the initial loss (divergent runs count as the initial "
               "loss), minus the smallest of those capped losses (lower is better). <span class=\"time\">(%.0f "
               "s)</span></p>\n",
            GRID, grid_exponent(0), grid_exponent(GRID - 1),
            st->sweep_variants == VAR_COUNT ? ", <b>clip</b> and <b>warmup</b>"
            : st->sweep_variants == 2     ? " and <b>clip</b>"
                                          : " only (--quick)",
            seconds);
    if (st->sweep_variants > VAR_CLIP)
        fprintf(f, "<p>The sweep's clip threshold is %g&times; the median norm of the base run at the default LR "
                   "over its first %d steps.</p>\n",
                st->clip_fraction, st->clip_window);
    const char *cols[GRID];
    char colbuf[GRID][24];
    for (int g = 0; g < GRID; g++) {
        snprintf(colbuf[g], sizeof colbuf[g], "x10^%+.1f", grid_exponent(g));
        cols[g] = colbuf[g];
    }
    for (int v = 0; v < st->sweep_variants; v++) {
        double values[NOPT * GRID];
        int marked[NOPT * GRID], nr = 0;
        const char *row_names[NOPT];
        char row_buf[NOPT][48];
        for (int i = 0; i < nrows; i++) {
            if (rows[i].variant != v) continue;
            snprintf(row_buf[nr], sizeof row_buf[nr], "%s (lr %g)", optimizers[rows[i].opt_index].label,
                     (double)optimizers[rows[i].opt_index].lr);
            row_names[nr] = row_buf[nr];
            for (int g = 0; g < GRID; g++) {
                values[nr * GRID + g] = rows[i].final[g];
                marked[nr * GRID + g] = rows[i].diverged[g];
            }
            nr++;
        }
        char title[160];
        snprintf(title, sizeof title, "Final training loss by optimizer and LR (multiple of its default), %s",
                 variant_names[v]);
        fputs("<figure>\n", f);
        report_heatmap(f, title, row_names, nr, cols, GRID, values, marked, "diverged");
        fputs("</figure>\n", f);
    }
    fputs("<table><tr><th>optimizer</th><th>variant</th><th>clip max norm</th><th>steps clipped</th><th>stable LR range</th>"
          "<th>diverged from</th><th>best LR</th><th>best final loss</th><th>LR sensitivity</th></tr>\n",
          f);
    for (int i = 0; i < nrows; i++) {
        const sweep_row *r = &rows[i];
        char range[80], from[48], clip[64];
        if (isfinite(r->stable_lo)) snprintf(range, sizeof range, "%.3g &ndash; %.3g", r->stable_lo, r->stable_hi);
        else snprintf(range, sizeof range, "<span class=\"bad\">none</span>");
        if (r->first_diverged >= 0)
            snprintf(from, sizeof from, "%.3g (&times;10^%+.1f)", r->lrs[r->first_diverged],
                     grid_exponent(r->first_diverged));
        else snprintf(from, sizeof from, "never");
        if (r->clip_norm > 0) snprintf(clip, sizeof clip, "%.3g</td><td>%.0f%%", r->clip_norm, 100 * r->clipped);
        else snprintf(clip, sizeof clip, "-</td><td>-");
        fprintf(f, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>", optimizers[r->opt_index].label,
                variant_names[r->variant], clip, range, from);
        if (isfinite(r->best_lr)) fprintf(f, "<td>%.3g</td><td>%.4f</td>", r->best_lr, r->best_loss);
        else fputs("<td>-</td><td>-</td>", f);
        fprintf(f, "<td>%.4f</td></tr>\n", r->sensitivity);
    }
    fputs("</table>\n", f);
}

static void write_sweep_csv(FILE *f, const sweep_row *rows, int nrows) {
    fputs("optimizer,variant,clip_norm,clipped_fraction,stable_lr_min,stable_lr_max,first_diverged_lr,"
          "first_diverged_multiple,best_lr,best_final_loss,lr_sensitivity,diverged_points\n",
          f);
    for (int i = 0; i < nrows; i++) {
        const sweep_row *r = &rows[i];
        int nd = 0;
        for (int g = 0; g < GRID; g++) nd += r->diverged[g];
        double fl = r->first_diverged >= 0 ? r->lrs[r->first_diverged] : NAN;
        double fm = r->first_diverged >= 0 ? pow(10.0, grid_exponent(r->first_diverged)) : NAN;
        fprintf(f, "%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d\n", optimizers[r->opt_index].label,
                variant_names[r->variant], r->clip_norm, r->clipped, r->stable_lo, r->stable_hi, fl, fm, r->best_lr, r->best_loss,
                r->sensitivity, nd);
    }
}

/* ---- the scenario ------------------------------------------------------------------------ */

/* Keep the first n images of ds (a copy), or ds itself when it has no more. */
static int take_first(const gopt_dataset *ds, int64_t n, gopt_dataset **out) {
    *out = NULL;
    if (gopt_dataset_count(ds) <= n) n = gopt_dataset_count(ds);
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) {
        fprintf(stderr, "error: resnet: out of memory\n");
        return -1;
    }
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    gopt_status s = gopt_dataset_subset(ds, idx, n, out);
    free(idx);
    if (s != GOPT_OK) {
        fprintf(stderr, "error: resnet: subset of %lld images: %s\n", (long long)n, gopt_last_error());
        return -1;
    }
    return 0;
}

typedef struct rn_state {
    rn_settings st;
    cli_data d;
    gopt_dataset *train, *val, *sched_train;
    FILE *runs, *summary;
    rn_run *runs_arr;
    int nruns;
    sweep_row rows[NOPT * VAR_COUNT];
    int nrows;
    double *xs;
} rn_state;

static void state_free(rn_state *s) {
    for (int i = 0; i < s->nruns; i++) rn_run_free(&s->runs_arr[i]);
    free(s->runs_arr);
    free(s->xs);
    gopt_dataset_destroy(s->train);
    gopt_dataset_destroy(s->val);
    gopt_dataset_destroy(s->sched_train);
    cli_data_free(&s->d);
    if (s->runs) fclose(s->runs);
    if (s->summary) fclose(s->summary);
}

static int run_compare(const lab_options *o, rn_state *S, rn_run *cmp[NOPT][VAR_COUNT], rn_run **explode,
                       int *run_no, int total) {
    const rn_settings *st = &S->st;
    printf("\n== resnet: comparison: %d optimizers x {base, clip, warmup}, %d steps each, ResNet-%d width %g, "
           "batch %d\n",
           NOPT, st->compare_steps, st->depth, st->compare_width, st->compare_batch);
    for (int v = 0; v < VAR_COUNT; v++)
        for (int k = 0; k < NOPT; k++) {
            char name[80];
            snprintf(name, sizeof name, "%s%s%s", optimizers[k].label, v == VAR_BASE ? "" : "+",
                     v == VAR_BASE ? "" : variant_names[v]);
            rn_spec sp = {.phase = "compare", .name = name, .optimizer = optimizers[k].label,
                          .variant = variant_names[v], .optim = optim_for(k, optimizers[k].lr),
                          .schedule = SCHED_CONSTANT, .steps = st->compare_steps, .depth = st->depth,
                          .batch = st->compare_batch, .width = st->compare_width, .eval_every = 0,
                          .diverge_factor = st->diverge_factor};
            if (v == VAR_WARMUP) sp.warmup_steps = (int64_t)ceil(st->warmup_frac * st->compare_steps);
            if (v == VAR_CLIP) sp.clip_norm = clip_threshold(cmp[k][VAR_BASE], st->clip_window, st->clip_fraction);
            rn_run *r = &S->runs_arr[S->nruns];
            if (rn_train(o, S->train, S->val, &sp, S->runs, r, ++*run_no, total)) return -1;
            S->nruns++;
            cmp[k][v] = r;
        }
    /* the deliberately exploding pair: plain SGD at a huge LR, without and with clipping at a
     * norm small enough that LR x max norm bounds each step */
    *explode = &S->runs_arr[S->nruns];
    for (int v = 0; v < 2; v++) {
        char name[80];
        snprintf(name, sizeof name, "explode: SGD lr=%g%s", st->huge_lr, v ? "+clip" : "");
        rn_spec sp = {.phase = "compare", .name = name, .optimizer = "SGD", .variant = v ? "clip" : "base",
                      .optim = optim_for(0, st->huge_lr), .schedule = SCHED_CONSTANT, .clip_norm = v ? st->huge_clip : 0,
                      .steps = st->compare_steps, .depth = st->depth, .batch = st->compare_batch,
                      .width = st->compare_width, .eval_every = 0, .diverge_factor = st->diverge_factor};
        if (rn_train(o, S->train, S->val, &sp, S->runs, &S->runs_arr[S->nruns], ++*run_no, total)) return -1;
        S->nruns++;
    }
    return 0;
}

static int run_sweep(const lab_options *o, rn_state *S, int *run_no, int total) {
    const rn_settings *st = &S->st;
    printf("\n== resnet: LR sweep: %d optimizers x %d LRs x {%s}, %d steps each, ResNet-%d width %g, batch %d\n",
           NOPT, GRID, st->sweep_variants == VAR_COUNT ? "base, clip, warmup" : st->sweep_variants == 2 ? "base, clip" : "base",
           st->sweep_steps,
           st->depth, st->sweep_width, st->sweep_batch);
    double clip_at[NOPT] = {0};
    for (int v = 0; v < st->sweep_variants; v++)
        for (int k = 0; k < NOPT; k++) {
            sweep_row *row = &S->rows[S->nrows++];
            row->opt_index = k;
            row->variant = v;
            row->clip_norm = v == VAR_CLIP ? clip_at[k] : 0;
            for (int g = 0; g < GRID; g++) {
                double lr = optimizers[k].lr * pow(10.0, grid_exponent(g));
                char name[80];
                snprintf(name, sizeof name, "%s %s lr=%.3g", optimizers[k].label, variant_names[v], lr);
                rn_spec sp = {.phase = "sweep", .name = name, .optimizer = optimizers[k].label,
                              .variant = variant_names[v], .optim = optim_for(k, lr), .schedule = SCHED_CONSTANT,
                              .clip_norm = row->clip_norm, .steps = st->sweep_steps, .depth = st->depth,
                              .batch = st->sweep_batch, .width = st->sweep_width, .eval_every = -1,
                              .diverge_factor = st->diverge_factor};
                if (v == VAR_WARMUP) sp.warmup_steps = (int64_t)ceil(st->warmup_frac * st->sweep_steps);
                rn_run *r = &S->runs_arr[S->nruns];
                if (rn_train(o, S->train, S->val, &sp, S->runs, r, ++*run_no, total)) return -1;
                S->nruns++;
                row->lrs[g] = lr;
                row->final[g] = r->final_loss;
                row->initial[g] = r->initial_loss;
                row->diverged[g] = r->diverged;
                row->clipped += clipped_frac(r) / GRID;
                if (v == VAR_BASE && g == GRID_DEFAULT) clip_at[k] = clip_threshold(r, st->clip_window, st->clip_fraction);
            }
            analyse_sweep(row);
        }
    return 0;
}

/* The findings' sentences about the comparison and the sweep. */
static void compare_findings(char *buf, size_t n, const rn_settings *st, rn_run *const cmp[NOPT][VAR_COUNT],
                             const rn_run *explode, const sweep_row *rows, int nrows) {
    double fsum = 0, dsum = 0, dmin = INFINITY, dmax = -INFINITY;
    int nd = 0;
    const char *dmin_name = "", *dmax_name = "";
    for (int k = 0; k < NOPT; k++) {
        fsum += clipped_frac(cmp[k][VAR_CLIP]);
        double d = cmp[k][VAR_CLIP]->val_acc - cmp[k][VAR_BASE]->val_acc;
        if (!isfinite(d)) continue;
        dsum += d;
        nd++;
        if (d < dmin) dmin = d, dmin_name = optimizers[k].label;
        if (d > dmax) dmax = d, dmax_name = optimizers[k].label;
    }
    size_t len = 0;
    len += (size_t)snprintf(buf + len, n - len,
                            "Clipping at %g x each optimizer's median early gradient norm clipped %.0f%% of steps on "
                            "average and changed validation accuracy after %d steps by %+.1f points on average (from "
                            "%+.1f for %s to %+.1f for %s); plain SGD at LR %g %s without clipping and %s with it. ",
                            st->clip_fraction, 100 * fsum / NOPT, st->compare_steps, nd ? 100 * dsum / nd : NAN,
                            100 * dmin, dmin_name, 100 * dmax, dmax_name, st->huge_lr,
                            explode[0].diverged ? "diverged" : "did not diverge",
                            explode[1].diverged ? "diverged too" : "stayed finite");
    if (len >= n) return;
    int nev = 0;
    char list[600] = "";
    size_t ll = 0;
    for (int i = 0; i < nrows; i++) {
        const sweep_row *r = &rows[i];
        if (r->variant != VAR_BASE) continue;
        if (r->first_diverged < 0) continue;
        nev++;
        if (ll < sizeof list)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s from x%.3g", ll ? ", " : "",
                                   optimizers[r->opt_index].label, pow(10.0, grid_exponent(r->first_diverged)));
    }
    if (nev)
        snprintf(buf + len, n - len, "In the LR sweep (base, up to x%.0f the default LR) %d of %d optimizers diverged: %s.",
                 pow(10.0, grid_exponent(GRID - 1)), nev, NOPT, list);
    else
        snprintf(buf + len, n - len, "In the LR sweep (base, up to x%.0f the default LR) no optimizer diverged.",
                 pow(10.0, grid_exponent(GRID - 1)));
}

int lab_resnet(const lab_options *o, lab_section *out) {
    memset(out, 0, sizeof *out);
    rn_state S;
    memset(&S, 0, sizeof S);
    S.st = settings_for(o->quick);
    const rn_settings *st = &S.st;
    const int64_t sched_subset = o->quick ? 2000 : 8000;
    double t_all = cli_now();
    /* data: the synthetic set is small by design */
    int64_t synth = st->train_subset / 4 + st->val_subset;
    if (cli_load_data(o->cifar_dir, o->cifar_dir ? 10000 : st->val_subset, NULL, synth, o->seed, &S.d)) return -1;
    if (take_first(S.d.train, st->train_subset, &S.train) || take_first(S.d.val, st->val_subset, &S.val) ||
        take_first(S.d.train, sched_subset, &S.sched_train)) {
        state_free(&S);
        return -1;
    }
    out->builtin_data = S.d.synthetic;
    if (S.d.synthetic)
        snprintf(out->data, sizeof out->data,
                 "the BUILT-IN SYNTHETIC images (no CIFAR-10 directory given or found): %lld training and %lld "
                 "validation images (the LR strategies train on the first %lld)",
                 (long long)gopt_dataset_count(S.train), (long long)gopt_dataset_count(S.val),
                 (long long)gopt_dataset_count(S.sched_train));
    else
        snprintf(out->data, sizeof out->data,
                 "CIFAR-10 from %.200s: the first %lld training images (the LR strategies: the first %lld), and "
                 "%lld validation images held out from the training batches (data_batch_5)",
                 o->cifar_dir, (long long)gopt_dataset_count(S.train), (long long)gopt_dataset_count(S.sched_train),
                 (long long)gopt_dataset_count(S.val));
    printf("resnet data: %s\n", out->data);

    int total_runs = NOPT * VAR_COUNT + 2 + NOPT * st->sweep_variants * GRID + NTTT + 12;
    S.runs_arr = calloc((size_t)total_runs, sizeof *S.runs_arr);
    int max_steps = st->compare_steps > st->sweep_steps ? st->compare_steps : st->sweep_steps;
    S.xs = malloc((size_t)max_steps * sizeof *S.xs);
    S.runs = rn_open(o, "resnet_runs.csv");
    S.summary = rn_open(o, "resnet_summary.csv");
    if (!S.runs_arr || !S.xs || !S.runs || !S.summary) {
        if (!S.runs_arr || !S.xs) fprintf(stderr, "error: resnet: out of memory\n");
        state_free(&S);
        return -1;
    }
    for (int i = 0; i < max_steps; i++) S.xs[i] = i + 1;
    fputs("phase,run,optimizer,variant,lr,step,epoch,loss,acc,lr_now,grad_norm,clip_norm,clipped,applied,diverged,"
          "val_loss,val_acc\n",
          S.runs);
    fputs("phase,run,optimizer,variant,lr,steps,initial_loss,final_loss,val_loss,val_acc,best_val_acc,clip_norm,"
          "clipped_fraction,skipped_steps,diverged,diverge_step\n",
          S.summary);

    lab_html h;
    if (lab_html_open(&h)) {
        state_free(&S);
        return -1;
    }
    int run_no = 0, rc = -1;
    rn_run *cmp[NOPT][VAR_COUNT], *explode = NULL;
    rn_sched_result sr;
    memset(&sr, 0, sizeof sr);
    double t0 = cli_now();
    if (run_compare(o, &S, cmp, &explode, &run_no, total_runs)) goto done;
    double t_compare = cli_now() - t0;
    lab_timing(o, "resnet", "compare", t_compare);
    t0 = cli_now();
    int first_sweep = S.nruns;
    if (run_sweep(o, &S, &run_no, total_runs)) goto done;
    double t_sweep = cli_now() - t0;
    lab_timing(o, "resnet", "sweep", t_sweep);
    for (int i = 0; i < S.nruns; i++) rn_summary_row(S.summary, &S.runs_arr[i]);
    /* the sweep's per-step arrays are not needed any more */
    for (int i = first_sweep; i < S.nruns; i++) rn_run_free(&S.runs_arr[i]);
    S.nruns = first_sweep;

    /* time to target at each frontier optimizer's best LR from the sweep (base variant).
     * The targets fit the run: 300 steps of ResNet-8 at width 0.25 (a third of an epoch of
     * CIFAR-10) reach about 30-35% validation accuracy with a tuned SGD-Nesterov; the
     * built-in images are easier (40 steps of --quick reach 40-55%). */
    rn_ttt_settings ttt = st->ttt;
    const double real_targets[RN_NTARGET] = {0.25, 0.30, 0.35}, synth_targets[RN_NTARGET] = {0.30, 0.40, 0.50};
    memcpy(ttt.targets, S.d.synthetic ? synth_targets : real_targets, sizeof ttt.targets);
    gopt_optim_config ttt_cfg[NTTT];
    for (int j = 0; j < NTTT; j++) {
        int k = 0;
        while (k < NOPT && strcmp(optimizers[k].label, ttt_labels[j])) k++;
        double best = NAN;
        for (int i = 0; i < S.nrows; i++)
            if (S.rows[i].opt_index == k && S.rows[i].variant == VAR_BASE) best = S.rows[i].best_lr;
        ttt_cfg[j] = optim_for(k, isfinite(best) ? best : 0);
        if (!isfinite(best)) ttt_cfg[j].lr = NAN;
    }
    lab_html ttt_h;
    if (lab_html_open(&ttt_h)) goto done;
    char ttt_finding[512];
    double t_ttt = 0;
    int ttt_rc = rn_time_to_target(o, S.train, S.val, &ttt, ttt_labels, ttt_cfg, NTTT, S.runs, S.summary, ttt_h.f,
                                   run_no, total_runs, ttt_finding, sizeof ttt_finding, &t_ttt);
    run_no += NTTT;
    char *ttt_html = lab_html_close(&ttt_h);
    if (ttt_rc || !ttt_html) {
        free(ttt_html);
        goto done;
    }
    lab_timing(o, "resnet", "time to target", t_ttt);

    /* the report: the LR strategies first (the headline), then the comparison and the sweep */
    if (rn_schedules(o, S.sched_train, S.val, S.runs, S.summary, h.f, run_no, total_runs, &sr)) {
        free(ttt_html);
        goto done;
    }
    lab_timing(o, "resnet", "schedules", sr.seconds);
    fputs(ttt_html, h.f);
    free(ttt_html);
    compare_html(h.f, st, cmp, explode, S.xs, t_compare);
    sweep_html(h.f, st, S.rows, S.nrows, t_sweep);

    FILE *f = rn_open(o, "resnet_sweep.csv");
    if (!f) goto done;
    write_sweep_csv(f, S.rows, S.nrows);
    if (rn_close(f, o, "resnet_sweep.csv")) goto done;
    fputs("<p>Files: <code>resnet_runs.csv</code> (one row per run and step), <code>resnet_summary.csv</code> (one "
          "row per run), <code>resnet_sweep.csv</code> (one row per optimizer and variant of the sweep), "
          "<code>resnet_schedules.csv</code> (one row per LR strategy), <code>resnet_time_to_target.csv</code> (the "
          "step at which each optimizer first reached each target; the seconds are in <code>timing.csv</code>).</p>\n",
          h.f);

    char cf[1024];
    compare_findings(cf, sizeof cf, st, cmp, explode, S.rows, S.nrows);
    size_t fl = (size_t)snprintf(out->findings, sizeof out->findings, "%s ", sr.finding);
    if (fl < sizeof out->findings) fl += (size_t)snprintf(out->findings + fl, sizeof out->findings - fl, "%s ", ttt_finding);
    if (fl < sizeof out->findings) snprintf(out->findings + fl, sizeof out->findings - fl, "%s", cf);
    rc = 0;
done:
    out->html = lab_html_close(&h);
    if (!out->html && rc == 0) rc = -1;
    {
        int bad = rn_close(S.runs, o, "resnet_runs.csv");
        bad |= rn_close(S.summary, o, "resnet_summary.csv");
        S.runs = S.summary = NULL;
        if (bad) rc = -1;
    }
    state_free(&S);
    if (rc) {
        free(out->html);
        out->html = NULL;
    } else {
        double secs = cli_now() - t_all;
        lab_timing(o, "resnet", "total", secs);
        printf("resnet: done in %.0f s\n", secs);
    }
    return rc;
}
