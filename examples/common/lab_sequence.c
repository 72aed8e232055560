/* Scenario 2 of the stability lab (lab.h): the adding problem with a tanh RNN and an LSTM
 * at T = 100 and 200, each optimizer with and without clipping and warmup, over seeds; the
 * character language model is in lab_sequence_text.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab_sequence.h"
#include "task_adding.h"

/* ---- shared with lab_sequence_text.c ------------------------------------------------- */

const char *const seq_variant_names[SEQ_NVARIANTS] = {"base", "clip norm", "clip value", "warmup"};
const char *const seq_optim_names[SEQ_NOPTIM] = {"SGD-momentum", "Adam", "RMSprop"};

gopt_optim_config seq_optim_config(int optim, double lr) {
    gopt_optim_config c;
    switch (optim) {
    case SEQ_SGD:
        c = gopt_optim_config_default(GOPT_ALGO_SGD);
        c.momentum = 0.9f;
        break;
    case SEQ_ADAM: c = gopt_optim_config_default(GOPT_ALGO_ADAM); break;
    default: c = gopt_optim_config_default(GOPT_ALGO_RMSPROP); break;
    }
    c.lr = (float)lr;
    return c;
}

int seq_trace_init(seq_trace *t, int cap, int ecap) {
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->ecap = ecap;
    t->x = malloc((size_t)cap * sizeof(double));
    t->loss = malloc((size_t)cap * sizeof(double));
    t->norm = malloc((size_t)cap * sizeof(double));
    t->spikes = malloc((size_t)cap * sizeof(int));
    t->ex = malloc((size_t)ecap * sizeof(double));
    t->ey = malloc((size_t)ecap * sizeof(double));
    if (!t->x || !t->loss || !t->norm || !t->spikes || !t->ex || !t->ey) {
        seq_trace_free(t);
        fprintf(stderr, "error: sequence: out of memory\n");
        return -1;
    }
    return 0;
}

void seq_trace_free(seq_trace *t) {
    free(t->x);
    free(t->loss);
    free(t->norm);
    free(t->spikes);
    free(t->ex);
    free(t->ey);
    memset(t, 0, sizeof *t);
}

void seq_trace_step(seq_trace *t, const trainer_step *s) {
    if (t->n >= t->cap) return;
    int i = t->n++;
    t->x[i] = (double)s->step;
    t->loss[i] = s->loss;
    t->norm[i] = s->grad_norm;
    if (s->spike) t->spikes[t->nspikes++] = i;
    t->clipped += s->clipped;
    t->skipped += !s->applied;
    t->nonfinite += s->nonfinite;
    if (isfinite(s->grad_norm) && s->grad_norm > t->max_norm) t->max_norm = s->grad_norm;
    if (!isfinite(s->grad_norm)) t->max_norm = INFINITY;
}

void seq_trace_eval(seq_trace *t, double step, double value) {
    if (t->ne >= t->ecap) return;
    t->ex[t->ne] = step;
    t->ey[t->ne++] = value;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double seq_grad_maxabs(trainer *t) {
    gopt_params *p = gopt_net_params(trainer_net(t));
    float m = NAN;
    if (gopt_norm(gopt_params_grads(p), gopt_params_numel(p), INFINITY, &m) != GOPT_OK) return NAN;
    return m;
}

const char *seq_pct(char *buf, size_t n, int a, int b) {
    snprintf(buf, n, "%.0f%%", b > 0 ? 100.0 * a / b : 0.0);
    return buf;
}

/* ---- the adding problem ------------------------------------------------------------ */

#define ADD_HIDDEN 32
#define ADD_BATCH 32
#define ADD_TEST_N 512
#define ADD_TEST_SEED 20130101u /* the test set is the same for every run */
#define ADD_EVAL_EVERY 50
#define ADD_SUCCESS 0.01
#define ADD_BASELINE (1.0 / 6.0)
#define ADD_MED_STEPS 20       /* thresholds from the median over the base run's first steps */
#define ADD_CLIP_FRACTION 0.5  /* ... times this */
#define ADD_WARMUP_FRACTION 0.1

typedef struct add_group {
    gopt_layer_type arch;
    double rec_gain; /* rnn: weight_hh ~ N(0, gain^2/H) */
    int T, optim;
    double lr;
    int steps, seeds;
    unsigned variants; /* bit v: run variant v */
    int panel;         /* 0..3: drawn in the grids ({RNN, LSTM} x {T=100, T=200}); -1: table only */
} add_group;

typedef struct add_run {
    int group, variant;
    uint64_t seed;
    double clip_norm, clip_value;
    int64_t warmup;
    seq_trace tr;
    int steps, success_step, diverged;
    double final_mse, best_mse, seconds;
} add_run;

#define V(b) (1u << (b))
#define ALLV (V(SEQ_BASE) | V(SEQ_CLIP_NORM) | V(SEQ_CLIP_VALUE) | V(SEQ_WARMUP))
#define BASE_CLIP (V(SEQ_BASE) | V(SEQ_CLIP_NORM))

/* The plan. The RNN's recurrent matrix is drawn with spectral radius about 1 (gain 1, the
 * regime of an orthogonal init) so that SGD's gradients can explode (Pascanu et al. 2013);
 * panels hold the headline pairs: tanh RNN + SGD-momentum, LSTM + Adam. */
static const add_group plan_full[] = {
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_SGD, 0.05, 800, 3, ALLV, 0},
    {GOPT_LAYER_RNN, 1.0, 200, SEQ_SGD, 0.05, 600, 3, ALLV, 1},
    {GOPT_LAYER_LSTM, 0, 100, SEQ_ADAM, 0.01, 2000, 2, ALLV, 2},
    {GOPT_LAYER_LSTM, 0, 200, SEQ_ADAM, 0.01, 3000, 2, BASE_CLIP, 3},
    /* the same optimizer on both models at T = 200, and the other optimizers */
    {GOPT_LAYER_RNN, 1.0, 200, SEQ_ADAM, 0.01, 1000, 2, V(SEQ_BASE), -1},
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_ADAM, 0.01, 800, 1, BASE_CLIP, -1},
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_RMSPROP, 0.003, 800, 1, BASE_CLIP, -1},
    {GOPT_LAYER_LSTM, 0, 100, SEQ_RMSPROP, 0.003, 2000, 1, V(SEQ_BASE), -1},
    /* LR sweep (with the headline rows above) */
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_SGD, 0.01, 800, 1, BASE_CLIP, -1},
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_SGD, 0.1, 800, 1, BASE_CLIP, -1},
    {GOPT_LAYER_LSTM, 0, 100, SEQ_ADAM, 0.003, 2000, 1, V(SEQ_BASE), -1},
};

static const add_group plan_quick[] = {
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_SGD, 0.05, 300, 1, ALLV, 0},
    {GOPT_LAYER_RNN, 1.0, 200, SEQ_SGD, 0.05, 300, 1, BASE_CLIP, 1},
    {GOPT_LAYER_LSTM, 0, 100, SEQ_ADAM, 0.01, 1500, 1, V(SEQ_BASE), 2},
    {GOPT_LAYER_RNN, 1.0, 100, SEQ_SGD, 0.1, 200, 1, BASE_CLIP, -1},
};

static const char *arch_label(gopt_layer_type a) { return a == GOPT_LAYER_LSTM ? "LSTM" : "tanh RNN"; }

static void group_label(const add_group *g, char *buf, size_t n) {
    snprintf(buf, n, "%s T=%d %s lr %g", arch_label(g->arch), g->T, seq_optim_names[g->optim], g->lr);
}

/* One run: train, evaluate every ADD_EVAL_EVERY steps, stop at success or divergence. */
static int add_run_one(const lab_options *o, const add_group *g, add_run *r, int run_id, FILE *csv,
                       double *maxabs_first) {
    char err[512];
    adding_model m = {g->arch, g->T, ADD_HIDDEN, g->arch == GOPT_LAYER_RNN ? g->rec_gain : 0, ADD_TEST_N,
                      ADD_TEST_SEED};
    trainer_config c = trainer_config_default();
    c.batch = ADD_BATCH;
    c.seed = r->seed;
    c.optim = seq_optim_config(g->optim, g->lr);
    c.total_steps = g->steps;
    c.clip_norm = r->clip_norm;
    c.clip_value = r->clip_value;
    c.warmup_steps = r->warmup;
    c.skip_nonfinite = 1;
    c.diverge_factor = 100;
    r->success_step = -1;
    r->final_mse = r->best_mse = NAN;
    if (seq_trace_init(&r->tr, g->steps, g->steps / ADD_EVAL_EVERY + 2)) return -1;
    trainer *t = NULL;
    double t0 = cli_now();
    if (adding_trainer_create(&c, &m, &t, err, sizeof err)) {
        trainer_destroy(t);
        fprintf(stderr, "error: sequence: adding problem: %s\n", err);
        return -1;
    }
    int rc = 0;
    for (int s = 1; s <= g->steps; s++) {
        trainer_step st;
        int epoch_done;
        if (trainer_step_once(t, &st, &epoch_done, err, sizeof err)) {
            fprintf(stderr, "error: sequence: adding problem step %d: %s\n", s, err);
            rc = -1;
            break;
        }
        seq_trace_step(&r->tr, &st);
        if (maxabs_first && s <= ADD_MED_STEPS) maxabs_first[s - 1] = seq_grad_maxabs(t);
        int last = s == g->steps || st.diverged;
        double mse = NAN;
        if (s % ADD_EVAL_EVERY == 0 || last) {
            if (adding_evaluate(t, &mse, err, sizeof err)) {
                fprintf(stderr, "error: sequence: adding problem evaluation: %s\n", err);
                rc = -1;
                break;
            }
            seq_trace_eval(&r->tr, s, mse);
            r->final_mse = mse;
            if (!(r->best_mse <= mse)) r->best_mse = isfinite(mse) ? mse : r->best_mse;
            if (mse < ADD_SUCCESS && r->success_step < 0) {
                r->success_step = s;
                last = 1;
            }
        }
        fprintf(csv, "%d,%s,%d,%s,%g,%s,%llu,%d,%.6g,%.6g,%d,%d,%d,", run_id, adding_arch_name(g->arch), g->T,
                seq_optim_names[g->optim], g->lr, seq_variant_names[r->variant], (unsigned long long)r->seed, s,
                st.loss, st.grad_norm, st.clipped, st.spike, st.applied);
        if (isnan(mse)) fputs("\n", csv);
        else fprintf(csv, "%.6g\n", mse);
        r->steps = s;
        if (st.diverged) r->diverged = 1;
        if (o->tty && s % 50 == 0) {
            printf("\r  step %d/%d loss %.4f", s, g->steps, st.loss);
            fflush(stdout);
        }
        if (last) break;
    }
    trainer_destroy(t);
    r->seconds = cli_now() - t0;
    return rc;
}

static int n_bits(unsigned v) {
    int n = 0;
    for (; v; v >>= 1) n += v & 1;
    return n;
}

/* Aggregates of one group x variant over its seeds. */
typedef struct add_cell {
    int runs, successes, diverged, clipped, skipped, spikes, steps;
    double med_success_steps, med_final, max_norm, clip_norm, clip_value;
} add_cell;

static void add_cell_of(const add_run *runs, int nruns, int group, int variant, add_cell *c) {
    memset(c, 0, sizeof *c);
    double succ[16], fin[16];
    int ns = 0, nf = 0;
    for (int i = 0; i < nruns; i++) {
        const add_run *r = &runs[i];
        if (r->group != group || r->variant != variant) continue;
        c->runs++;
        c->clip_norm = r->clip_norm;
        c->clip_value = r->clip_value;
        if (r->success_step > 0) {
            c->successes++;
            if (ns < 16) succ[ns++] = r->success_step;
        }
        c->diverged += r->diverged;
        c->clipped += r->tr.clipped;
        c->skipped += r->tr.skipped;
        c->spikes += r->tr.nspikes;
        c->steps += r->steps;
        if (nf < 16) fin[nf++] = r->diverged ? INFINITY : r->final_mse;
        if (r->tr.max_norm > c->max_norm || !isfinite(r->tr.max_norm)) c->max_norm = r->tr.max_norm;
    }
    c->med_success_steps = ns ? lab_median_first(succ, ns, ns) : NAN;
    if (nf) {
        qsort(fin, (size_t)nf, sizeof fin[0], cmp_double);
        c->med_final = nf % 2 ? fin[nf / 2] : 0.5 * (fin[nf / 2 - 1] + fin[nf / 2]);
    } else {
        c->med_final = NAN;
    }
}

static const char *fmt_g(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "&ndash;");
    else if (isinf(v)) snprintf(buf, n, "inf");
    else snprintf(buf, n, "%.3g", v);
    return buf;
}

static const char *mse_str(char *buf, size_t n, double v) {
    if (isinf(v)) snprintf(buf, n, "inf (diverged)");
    else snprintf(buf, n, "%.3g", v);
    return buf;
}

/* The summary table. */
static void add_table(FILE *h, const add_group *plan, int ng, const add_run *runs, int nruns) {
    fputs("<table>\n", h);
    const char *head[] = {"model", "optimizer", "variant", "threshold", "solved", "steps to 0.01", "final MSE",
                          "max norm", "clipped / skipped", "spikes", "diverged"};
    report_row(h, 1, 11, head);
    for (int gi = 0; gi < ng; gi++) {
        const add_group *g = &plan[gi];
        for (int v = 0; v < SEQ_NVARIANTS; v++) {
            if (!(g->variants & V(v))) continue;
            add_cell c;
            add_cell_of(runs, nruns, gi, v, &c);
            if (!c.runs) continue;
            char T[48], lr[64], thr[64], succ[32], sts[32], fin[32], mx[32], clp[48], skp[32], spk[32], div[32];
            snprintf(T, sizeof T, "%s T=%d", g->arch == GOPT_LAYER_LSTM ? "LSTM" : "RNN", g->T);
            snprintf(lr, sizeof lr, "%s %g", g->optim == SEQ_SGD ? "SGD-m" : seq_optim_names[g->optim], g->lr);
            if (v == SEQ_CLIP_NORM) snprintf(thr, sizeof thr, "norm %.3g", c.clip_norm);
            else if (v == SEQ_CLIP_VALUE) snprintf(thr, sizeof thr, "|g| %.3g", c.clip_value);
            else if (v == SEQ_WARMUP) snprintf(thr, sizeof thr, "%lld steps", (long long)(g->steps * ADD_WARMUP_FRACTION));
            else snprintf(thr, sizeof thr, "&ndash;");
            snprintf(succ, sizeof succ, "%d/%d", c.successes, c.runs);
            if (isnan(c.med_success_steps)) snprintf(sts, sizeof sts, "&ndash;");
            else snprintf(sts, sizeof sts, "%.0f", c.med_success_steps);
            fmt_g(fin, sizeof fin, c.med_final);
            if (isinf(c.med_final)) snprintf(fin, sizeof fin, "diverged");
            fmt_g(mx, sizeof mx, c.max_norm);
            char pc[16];
            snprintf(clp, sizeof clp, "%s / %d", seq_pct(pc, sizeof pc, c.clipped, c.steps), c.skipped);
            (void)skp;
            snprintf(spk, sizeof spk, "%d", c.spikes);
            snprintf(div, sizeof div, "%s%d/%d%s", c.diverged ? "<span class=\"bad\">" : "", c.diverged, c.runs,
                     c.diverged ? "</span>" : "");
            const char *row[11] = {T, lr, seq_variant_names[v], thr, succ, sts, fin, mx, clp, spk, div};
            report_row(h, 0, 11, row);
        }
    }
    fputs("</table>\n", h);
}

/* The grids: panels {RNN, LSTM} x {T=100, T=200}, one line per variant (first seed). what:
 * 0 gradient norm, 1 test MSE, 2 training loss. */
static void add_grid(FILE *h, const add_group *plan, int ng, const add_run *runs, int nruns, int what) {
    report_panel panels[4];
    report_series series[4][SEQ_NVARIANTS];
    double hl[4][2];
    const char *hl_labels[4][2];
    char titles[4][96], notes[4][160];
    int np = 0;
    for (int p = 0; p < 4; p++) {
        int gi = -1;
        for (int k = 0; k < ng; k++)
            if (plan[k].panel == p) gi = k;
        if (gi < 0) continue;
        const add_group *g = &plan[gi];
        report_panel *pn = &panels[np];
        memset(pn, 0, sizeof *pn);
        snprintf(titles[np], sizeof titles[np], "%s, T=%d, %s lr %g", arch_label(g->arch), g->T,
                 seq_optim_names[g->optim], g->lr);
        pn->title = titles[np];
        int ns = 0;
        char *note = notes[np];
        note[0] = 0;
        for (int v = 0; v < SEQ_NVARIANTS; v++) {
            const add_run *r = NULL;
            for (int i = 0; i < nruns && !r; i++)
                if (runs[i].group == gi && runs[i].variant == v) r = &runs[i];
            if (!r) continue;
            report_series *s = &series[np][ns++];
            memset(s, 0, sizeof *s);
            s->name = seq_variant_names[v];
            s->color = v + 1;
            if (what == 1) {
                s->x = r->tr.ex;
                s->y = r->tr.ey;
                s->n = r->tr.ne;
            } else {
                s->x = r->tr.x;
                s->y = what == 0 ? r->tr.norm : r->tr.loss;
                s->n = r->tr.n;
                if (what == 0) {
                    s->marks = r->tr.spikes;
                    s->nmarks = r->tr.nspikes;
                }
            }
            if (what == 0 && (v == SEQ_CLIP_NORM || v == SEQ_CLIP_VALUE)) {
                char pc[16];
                size_t len = strlen(note);
                snprintf(note + len, sizeof notes[np] - len, "%s%s %s", len ? ", " : "clipped: ",
                         v == SEQ_CLIP_NORM ? "norm" : "value", seq_pct(pc, sizeof pc, r->tr.clipped, r->tr.n));
            }
            if (what == 0 && v == SEQ_CLIP_NORM) {
                hl[np][pn->nhlines] = r->clip_norm;
                hl_labels[np][pn->nhlines++] = "clip threshold";
            }
        }
        if (what == 1) {
            hl[np][0] = ADD_SUCCESS;
            hl_labels[np][0] = "success 0.01";
            hl[np][1] = ADD_BASELINE;
            hl_labels[np][1] = "predict 1: 0.167";
            pn->nhlines = 2;
        }
        pn->s = series[np];
        pn->ns = ns;
        pn->hlines = hl[np];
        pn->hline_labels = hl_labels[np];
        pn->note = what == 0 && note[0] ? note : NULL;
        np++;
    }
    if (!np) return;
    report_chart c = report_chart_default();
    c.xlabel = "step";
    c.log_y = what != 2;
    if (what == 0) {
        c.title = "Gradient norm before clipping";
        fputs("<p>Gradient norm per step (first seed), red rings at the monitor's loss spikes, dashed: the clip-by-"
              "norm threshold; under each panel the share of steps each clip changed.</p>\n",
              h);
        c.ylabel = "global L2 norm";
    } else if (what == 1) {
        c.title = "Test MSE";
        fputs("<p>Test MSE every 50 steps (first seed); a run stops when it succeeds (MSE &lt; 0.01) or "
              "diverges.</p>\n",
              h);
        c.ylabel = "test MSE";
    } else {
        c.title = "Training loss (EMA 0.9, raw faint)";
        c.ylabel = "loss";
        c.smooth = 0.9;
        c.ymin = 0;
        c.ymax = 0.4;
    }
    report_small_multiples(h, &c, panels, np, 2);
}

/* The LR sweep: final test MSE against the LR for the groups that share model, T and optimizer. */
static void add_sweep_chart(FILE *h, const add_group *plan, int ng, const add_run *runs, int nruns) {
    /* the sweeps: (RNN, T=100, SGD) base and clip norm, (LSTM, T=100, Adam) base */
    static const struct {
        gopt_layer_type arch;
        int optim, variant;
    } lines[] = {{GOPT_LAYER_RNN, SEQ_SGD, SEQ_BASE}, {GOPT_LAYER_RNN, SEQ_SGD, SEQ_CLIP_NORM},
                 {GOPT_LAYER_LSTM, SEQ_ADAM, SEQ_BASE}};
    double xs[3][8], ys[3][8];
    char names[3][64];
    report_series s[3];
    int ns = 0;
    for (int l = 0; l < 3; l++) {
        int n = 0;
        for (int gi = 0; gi < ng && n < 8; gi++) {
            const add_group *g = &plan[gi];
            if (g->arch != lines[l].arch || g->optim != lines[l].optim || g->T != 100) continue;
            if (!(g->variants & V(lines[l].variant))) continue;
            add_cell c;
            add_cell_of(runs, nruns, gi, lines[l].variant, &c);
            if (!c.runs) continue;
            xs[l][n] = g->lr;
            ys[l][n++] = isfinite(c.med_final) ? c.med_final : NAN;
        }
        if (n < 2) continue;
        for (int i = 1; i < n; i++) /* by LR */
            for (int j = i; j > 0 && xs[l][j] < xs[l][j - 1]; j--) {
                double tx = xs[l][j], ty = ys[l][j];
                xs[l][j] = xs[l][j - 1], ys[l][j] = ys[l][j - 1];
                xs[l][j - 1] = tx, ys[l][j - 1] = ty;
            }
        snprintf(names[ns], sizeof names[ns], "%s %s, %s", arch_label(lines[l].arch),
                 seq_optim_names[lines[l].optim], seq_variant_names[lines[l].variant]);
        memset(&s[ns], 0, sizeof s[ns]);
        s[ns].name = names[ns];
        s[ns].x = xs[l];
        s[ns].y = ys[l];
        s[ns].n = n;
        ns++;
    }
    if (!ns) return;
    report_chart c = report_chart_default();
    c.title = "LR sweep at T=100: final test MSE (median; gap: diverged)";
    c.xlabel = "learning rate";
    c.ylabel = "final test MSE";
    c.log_x = 1;
    c.log_y = 1;
    c.xmin = INFINITY, c.xmax = 0; /* the whole grid, diverged LRs included */
    for (int l = 0; l < ns; l++)
        for (int i = 0; i < s[l].n; i++) c.xmin = fmin(c.xmin, s[l].x[i] / 1.3), c.xmax = fmax(c.xmax, s[l].x[i] * 1.3);
    double hl[2] = {ADD_SUCCESS, ADD_BASELINE};
    const char *hll[2] = {"success", "predict 1"};
    c.hlines = hl;
    c.hline_labels = hll;
    c.nhlines = 2;
    report_chart_draw(h, &c, s, ns);
}

/* The adding problem: runs, CSV files, HTML, a finding. */
static int lab_adding(const lab_options *o, FILE *h, char *find, size_t nfind) {
    const add_group *plan = o->quick ? plan_quick : plan_full;
    const int ng = o->quick ? (int)(sizeof plan_quick / sizeof plan_quick[0])
                            : (int)(sizeof plan_full / sizeof plan_full[0]);
    int nruns = 0;
    for (int gi = 0; gi < ng; gi++) nruns += plan[gi].seeds * n_bits(plan[gi].variants);
    add_run *runs = calloc((size_t)nruns, sizeof *runs);
    char path[1024];
    snprintf(path, sizeof path, "%s/sequence_adding_steps.csv", o->out_dir);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/sequence_adding.csv", o->out_dir);
    FILE *sum = fopen(path, "w");
    int rc = 0;
    if (!runs || !csv || !sum) {
        fprintf(stderr, "error: sequence: cannot write %s/sequence_adding*.csv (or out of memory)\n", o->out_dir);
        rc = -1;
        goto done;
    }
    fputs("run,model,T,optimizer,lr,variant,seed,step,loss,grad_norm,clipped,spike,applied,test_mse\n", csv);
    fputs("run,model,T,optimizer,lr,variant,seed,clip_norm,clip_value,warmup_steps,steps,success_step,final_test_mse,"
          "best_test_mse,max_grad_norm,clipped_steps,skipped_steps,spikes,diverged\n",
          sum);
    int k = 0;
    double t_all = cli_now();
    for (int gi = 0; gi < ng && !rc; gi++) {
        const add_group *g = &plan[gi];
        double clip_norm = 0, clip_value = 0;
        double maxabs[ADD_MED_STEPS];
        for (int i = 0; i < ADD_MED_STEPS; i++) maxabs[i] = NAN;
        for (int v = 0; v < SEQ_NVARIANTS && !rc; v++) {
            if (!(g->variants & V(v))) continue;
            for (int sd = 0; sd < g->seeds && !rc; sd++) {
                add_run *r = &runs[k];
                r->group = gi;
                r->variant = v;
                r->seed = o->seed + (uint64_t)sd;
                r->clip_norm = v == SEQ_CLIP_NORM ? clip_norm : 0;
                r->clip_value = v == SEQ_CLIP_VALUE ? clip_value : 0;
                r->warmup = v == SEQ_WARMUP ? (int64_t)(g->steps * ADD_WARMUP_FRACTION) : 0;
                if (add_run_one(o, g, r, k, csv, v == SEQ_BASE && sd == 0 ? maxabs : NULL)) {
                    rc = -1;
                    break;
                }
                if (v == SEQ_BASE && sd == 0) { /* the thresholds, from this run's first steps */
                    clip_norm = ADD_CLIP_FRACTION * lab_median_first(r->tr.norm, r->tr.n, ADD_MED_STEPS);
                    clip_value = ADD_CLIP_FRACTION * lab_median_first(maxabs, ADD_MED_STEPS, ADD_MED_STEPS);
                    if (!(clip_norm > 0)) clip_norm = 1;
                    if (!(clip_value > 0)) clip_value = 0.1;
                }
                char label[128];
                group_label(g, label, sizeof label);
                if (o->tty) printf("\r");
                printf("sequence: adding %s %s seed %llu: %d steps, %s, test MSE %.4g, max grad norm %.3g, clipped "
                       "%d, skipped %d\n",
                       label, seq_variant_names[v], (unsigned long long)r->seed, r->steps,
                       r->success_step > 0 ? "solved" : r->diverged ? "DIVERGED" : "not solved", r->final_mse,
                       r->tr.max_norm, r->tr.clipped, r->tr.skipped);
                fflush(stdout);
                fprintf(sum, "%d,%s,%d,%s,%g,%s,%llu,%.6g,%.6g,%lld,%d,%d,%.6g,%.6g,%.6g,%d,%d,%d,%d\n", k,
                        adding_arch_name(g->arch), g->T, seq_optim_names[g->optim], g->lr, seq_variant_names[v],
                        (unsigned long long)r->seed, r->clip_norm, r->clip_value, (long long)r->warmup, r->steps,
                        r->success_step, r->final_mse, r->best_mse, r->tr.max_norm, r->tr.clipped, r->tr.skipped,
                        r->tr.nspikes, r->diverged);
                char item[160];
                snprintf(item, sizeof item, "adding %s %s seed %llu", label, seq_variant_names[v],
                         (unsigned long long)r->seed);
                lab_timing(o, "sequence", item, r->seconds);
                k++;
            }
        }
    }
    if (rc) goto done;
    lab_timing(o, "sequence", "adding problem", cli_now() - t_all);

    /* findings: the headline panels, in three sentences (RNN + SGD, LSTM vs RNN) */
    {
        add_cell c[4][SEQ_NVARIANTS];
        int have[4] = {0};
        for (int gi = 0; gi < ng; gi++)
            if (plan[gi].panel >= 0) {
                have[plan[gi].panel] = gi + 1;
                for (int v = 0; v < SEQ_NVARIANTS; v++) add_cell_of(runs, k, gi, v, &c[plan[gi].panel][v]);
            }
        size_t len = 0;
        find[0] = 0;
#define FIND(...) \
    (len += len < nfind ? (size_t)snprintf(find + len, nfind - len, __VA_ARGS__) : 0)
        char a[32], b2[32], pc[16];
        int first = 1;
        for (int p = 0; p < 2; p++) { /* the RNN panels: base vs clip by norm, then clip by value */
            if (!have[p]) continue;
            const add_group *g = &plan[have[p] - 1];
            add_cell *b = &c[p][SEQ_BASE], *cn = &c[p][SEQ_CLIP_NORM], *cv = &c[p][SEQ_CLIP_VALUE];
            if (first) FIND("Adding problem, tanh RNN with %s lr %g: ", seq_optim_names[g->optim], g->lr);
            else FIND(" At ");
            FIND("%sT=%d without clipping the gradient norm reached %.3g, %d/%d runs diverged (median final test "
                 "MSE %s)",
                 first ? "at " : "", g->T, b->max_norm, b->diverged, b->runs, mse_str(a, sizeof a, b->med_final));
            if (cn->runs)
                FIND("; clipped by norm at %.3g (%s of steps) %d/%d diverged and %d/%d solved it (median final MSE "
                     "%s vs 0.167 for predicting 1%s)",
                     cn->clip_norm, seq_pct(pc, sizeof pc, cn->clipped, cn->steps), cn->diverged, cn->runs,
                     cn->successes, cn->runs, mse_str(b2, sizeof b2, cn->med_final),
                     !cn->diverged && !cn->successes ? ": no explosion, but no learning either" : "");
            if (cv->runs)
                FIND("; clip by value at %.3g (%s of steps) let the norm reach %.3g (MSE %s)", cv->clip_value,
                     seq_pct(pc, sizeof pc, cv->clipped, cv->steps), cv->max_norm, mse_str(a, sizeof a, cv->med_final));
            FIND(".");
            first = 0;
        }
        first = 1;
        for (int p = 2; p < 4; p++) { /* the LSTM panels against the RNN with the same optimizer */
            if (!have[p]) continue;
            const add_group *g = &plan[have[p] - 1];
            add_cell *b = &c[p][SEQ_BASE];
            if (first)
                FIND(" The LSTM with %s lr %g solved, at T=%d, %d/%d seeds", seq_optim_names[g->optim], g->lr, g->T,
                     b->successes, b->runs);
            else
                FIND("; at T=%d, %d/%d", g->T, b->successes, b->runs);
            if (b->successes) FIND(" (median %.0f steps)", b->med_success_steps);
            for (int gi = 0; gi < ng; gi++)
                if (plan[gi].arch == GOPT_LAYER_RNN && plan[gi].T == g->T && plan[gi].optim == g->optim) {
                    add_cell r;
                    add_cell_of(runs, k, gi, SEQ_BASE, &r);
                    if (r.runs)
                        FIND(" where the tanh RNN with %s solved %d/%d (MSE %s)", seq_optim_names[g->optim],
                             r.successes, r.runs, mse_str(a, sizeof a, r.med_final));
                    break;
                }
            first = 0;
        }
        if (!first) FIND(". ");
        else FIND(" ");
#undef FIND
    }

    fputs("<h3>The adding problem</h3>\n<p>Input (T, 2): a value channel uniform in [0, 1) and a marker channel with "
          "two 1s (one in each half); target: the sum of the two marked values; loss: MSE of the last step's output "
          "through a linear head. Predicting 1 scores 0.167; a run succeeds when its test MSE (512 fixed sequences) "
          "drops below 0.01. Hidden size 32, batch 32, one layer; the tanh RNN's recurrent matrix is drawn from "
          "N(0, 1/H) (spectral radius about 1), the LSTM has PyTorch's init. Clip thresholds are half the median of "
          "the first 20 steps of the base run (the global norm for clip by norm, max |g| for clip by value); warmup "
          "is linear over the first 10% of the steps. Seeds run from the lab's seed up. The scenario runs on one "
          "thread (these small recurrent nets gain nothing from two). In the table RNN is the tanh RNN, SGD-m is SGD "
          "with momentum 0.9; medians over seeds; clipped: the share of steps a clip changed, skipped: steps the "
          "monitor skipped; spikes: the monitor's loss spikes.</p>\n",
          h);
    add_table(h, plan, ng, runs, k);
    add_grid(h, plan, ng, runs, k, 0);
    add_grid(h, plan, ng, runs, k, 1);
    add_grid(h, plan, ng, runs, k, 2);
    add_sweep_chart(h, plan, ng, runs, k);
done:
    if (csv) fclose(csv);
    if (sum) fclose(sum);
    if (runs)
        for (int i = 0; i < nruns; i++) seq_trace_free(&runs[i].tr);
    free(runs);
    return rc;
}

int lab_sequence(const lab_options *o, lab_section *out) {
    memset(out, 0, sizeof *out);
    lab_html h;
    if (lab_html_open(&h)) return -1;
    double t0 = cli_now();
    /* One thread: the nets here are small (32-128 units), their per-time-step products
     * gain nothing from a second thread, and on a shared machine a second thread's barrier
     * at every time step made them 10x slower (measured); the numbers do not depend on the
     * thread count (the library's reductions are chunked in a fixed order). */
    const int threads = gopt_get_threads();
    gopt_set_threads(1);
    char find_add[1400], find_text[600];
    find_add[0] = find_text[0] = 0;
    int rc = lab_adding(o, h.f, find_add, sizeof find_add);
    if (!rc)
        rc = lab_sequence_text(o, h.f, find_text, sizeof find_text, out->data, sizeof out->data, &out->builtin_data);
    gopt_set_threads(threads);
    char *html = lab_html_close(&h);
    if (rc || !html) {
        free(html);
        return -1;
    }
    out->html = html;
    snprintf(out->findings, sizeof out->findings, "%s%s", find_add, find_text);
    lab_timing(o, "sequence", "total", cli_now() - t0);
    return 0;
}
