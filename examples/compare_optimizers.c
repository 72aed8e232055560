/* compare_optimizers: train the same net from the same initial weights on the same batch
 * order with each optimizer (with and without gradient clipping and warmup), then sweep a
 * log-spaced LR grid per optimizer, and write results.csv, summary.csv, sweep.csv and an
 * offline report.html with inline SVG charts.
 *
 *   build/examples/compare_optimizers [--data DIR] [--out DIR] [--quick] [--threads T]
 *
 * Without a CIFAR-10 directory (--data, $GOPT_CIFAR10_DIR, ./data/cifar10 or
 * ./data/cifar-10-batches-bin) it runs on a small built-in synthetic dataset and says so,
 * in the output and in the report.
 *
 * LR sensitivity follows Wortsman et al. 2023 ("Small-scale proxies for large-scale
 * Transformer training instabilities", sec. 3): over the LR grid, the mean of
 * min(final loss, initial loss) minus the smallest of those; a divergent run counts as
 * the initial loss. Lower means the optimizer is less sensitive to its LR. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "trainer.h"

#define MAX_RUNS 512
/* LR grid: GRID points, half a decade apart, from default x 10^GRID_LO up to default x 10^3
 * (4.5 decades). It reaches that far up so the sweep finds where each optimizer diverges:
 * with BatchNorm every optimizer here survives 30x its default LR for 100 steps on CIFAR-10. */
#define GRID 10
#define GRID_LO (-1.5)
static double grid_exponent(int g) { return GRID_LO + 0.5 * g; }

enum { VAR_BASE = 0, VAR_CLIP, VAR_WARMUP, VAR_CLIP_WARMUP, VAR_COUNT };
static const char *const variant_names[VAR_COUNT] = {"base", "clip", "warmup", "clip+warmup"};

typedef struct optimizer_entry {
    const char *label; /* "SGD", "Nesterov", ... */
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
};
#define NOPT (int)(sizeof optimizers / sizeof optimizers[0])

typedef struct run_result {
    char name[64];
    const char *phase; /* "compare" or "sweep" */
    int opt_index, variant;
    double lr;
    int steps;
    double *loss, *acc, *lr_now, *grad_norm, *ratio; /* per step */
    int *applied;
    double initial_loss, final_loss; /* final: mean training loss over the last 10% of steps */
    double val_loss, val_acc;
    int diverged, diverge_step;
    int64_t skipped;
    double seconds;
} run_result;

typedef struct settings {
    const char *data_dir, *out_dir;
    int quick, threads, sweep, compare;
    uint64_t seed;
    int compare_steps, sweep_steps, compare_batch, sweep_batch;
    float compare_width, sweep_width;
    int compare_depth;
    int64_t train_subset, val_subset;
    int sweep_variants;
    double diverge_factor, clip_norm, warmup_frac, huge_lr, huge_clip;
} settings;

static void usage(FILE *f) {
    fputs("usage: compare_optimizers [options]\n"
          "  --data DIR          CIFAR-10 binary directory (else $GOPT_CIFAR10_DIR, ./data/cifar10,\n"
          "                      ./data/cifar-10-batches-bin; else the built-in synthetic data)\n"
          "  --out DIR           output directory (default results/compare)\n"
          "  --quick             a run of under 2 minutes (fewer steps, smaller subsets)\n"
          "  --no-sweep          only the comparison at default LRs\n"
          "  --no-compare        only the LR sweep\n"
          "  --steps N           optimizer steps per comparison run\n"
          "  --sweep-steps N     optimizer steps per sweep run\n"
          "  --train-subset N    training images used (default 40000: data_batch_1..4)\n"
          "  --clip-norm X       max global L2 norm in the clipped variants (default 1)\n"
          "  --warmup-frac X     warmup length as a fraction of the run (default 0.1)\n"
          "  --diverge-factor X  a run diverges when its loss is not finite or the mean of its last 5\n"
          "                      losses exceeds X times the first loss (default 3)\n"
          "  --huge-lr X         LR of the deliberately exploding plain-SGD pair (default 30; its\n"
          "                      clipped twin clips at max norm 0.1)\n"
          "  --threads T  --seed S  --help\n",
          f);
}

static int dir_has_cifar(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    return access(path, R_OK) == 0;
}

static int parse(int argc, char **argv, settings *s) {
    memset(s, 0, sizeof *s);
    s->out_dir = "results/compare";
    s->sweep = s->compare = 1;
    s->seed = 1;
    s->diverge_factor = 3.0;
    s->clip_norm = 1.0;
    s->warmup_frac = 0.1;
    int steps = 0, sweep_steps = 0;
    long subset = 0;
    double huge = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) s->quick = 1;
        else if (!strcmp(a, "--no-sweep")) s->sweep = 0;
        else if (!strcmp(a, "--no-compare")) s->compare = 0;
        else if (!v) {
            fprintf(stderr, "error: %s needs a value (see --help)\n", a);
            return -1;
        } else {
            i++;
            if (!strcmp(a, "--data")) s->data_dir = v;
            else if (!strcmp(a, "--out")) s->out_dir = v;
            else if (!strcmp(a, "--threads")) {
                if (cli_int(a, v, 1, 1024, &n)) return -1;
                s->threads = (int)n;
            } else if (!strcmp(a, "--seed")) {
                if (cli_int(a, v, 0, 2147483647L, &n)) return -1;
                s->seed = (uint64_t)n;
            } else if (!strcmp(a, "--steps")) {
                if (cli_int(a, v, 2, 1000000, &n)) return -1;
                steps = (int)n;
            } else if (!strcmp(a, "--sweep-steps")) {
                if (cli_int(a, v, 2, 1000000, &n)) return -1;
                sweep_steps = (int)n;
            } else if (!strcmp(a, "--train-subset")) {
                if (cli_int(a, v, 256, 10000000, &subset)) return -1;
            } else if (!strcmp(a, "--clip-norm")) {
                if (cli_double(a, v, 1e-6, 1e6, &s->clip_norm)) return -1;
            } else if (!strcmp(a, "--warmup-frac")) {
                if (cli_double(a, v, 0.01, 0.9, &s->warmup_frac)) return -1;
            } else if (!strcmp(a, "--huge-lr")) {
                if (cli_double(a, v, 1e-6, 1e9, &huge)) return -1;
            } else if (!strcmp(a, "--diverge-factor")) {
                if (cli_double(a, v, 1.01, 1e6, &s->diverge_factor)) return -1;
            } else {
                fprintf(stderr, "error: unknown option '%s' (see --help)\n", a);
                return -1;
            }
        }
    }
    if (s->data_dir && !dir_has_cifar(s->data_dir)) {
        fprintf(stderr, "error: --data %s: no data_batch_1.bin there (CIFAR-10 binary version expected)\n",
                s->data_dir);
        return -1;
    }
    if (!s->data_dir) {
        const char *env = getenv("GOPT_CIFAR10_DIR");
        const char *candidates[] = {env, "data/cifar10", "data/cifar-10-batches-bin"};
        for (int i = 0; i < 3 && !s->data_dir; i++)
            if (candidates[i] && *candidates[i] && dir_has_cifar(candidates[i])) s->data_dir = candidates[i];
    }
    /* budgets: about 15 minutes on 2 cores by default, under 2 with --quick */
    s->compare_depth = 8;
    s->compare_width = s->quick ? 0.5f : 1.0f;
    s->compare_batch = s->quick ? 64 : 128;
    s->sweep_width = s->quick ? 0.25f : 0.5f;
    s->sweep_batch = s->quick ? 32 : 64;
    s->compare_steps = s->quick ? 30 : 200;
    s->sweep_steps = s->quick ? 16 : 100;
    s->sweep_variants = s->quick ? 2 : VAR_COUNT; /* quick: base and clip only */
    s->train_subset = s->quick ? 4000 : 40000;
    s->val_subset = s->quick ? 500 : 2000;
    s->huge_lr = huge > 0 ? huge : 30.0;
    s->huge_clip = 0.1;
    if (steps) s->compare_steps = steps;
    if (sweep_steps) s->sweep_steps = sweep_steps;
    if (subset) s->train_subset = subset;
    return 0;
}

static int mkdir_p(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    return (mkdir(tmp, 0777) && errno != EEXIST) ? -1 : 0;
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
    return c;
}

static void free_result(run_result *r) {
    free(r->loss);
    free(r->acc);
    free(r->lr_now);
    free(r->grad_norm);
    free(r->ratio);
    free(r->applied);
}

/* One training run; appends its step rows to `csv`. Returns -1 on a library error. */
static int run_one(const settings *s, const cli_data *d, const char *phase, int opt_index, int variant, double lr,
                   int steps, int depth, float width, int batch, const char *name, FILE *csv, run_result *r,
                   int run_no, int run_total, int tty) {
    int evaluate = !strcmp(phase, "compare"); /* the sweep ranks runs by training loss only */
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->phase = phase;
    r->opt_index = opt_index;
    r->variant = variant;
    r->lr = lr;
    r->diverge_step = -1;
    r->val_loss = r->val_acc = NAN;
    r->loss = calloc((size_t)steps, sizeof(double));
    r->acc = calloc((size_t)steps, sizeof(double));
    r->lr_now = calloc((size_t)steps, sizeof(double));
    r->grad_norm = calloc((size_t)steps, sizeof(double));
    r->ratio = calloc((size_t)steps, sizeof(double));
    r->applied = calloc((size_t)steps, sizeof(int));
    if (!r->loss || !r->acc || !r->lr_now || !r->grad_norm || !r->ratio || !r->applied) {
        fprintf(stderr, "error: out of memory\n");
        return -1;
    }
    trainer_config tc = trainer_config_default();
    tc.depth = depth;
    tc.width = width;
    tc.batch = batch;
    tc.seed = s->seed; /* same initial weights and batch order for every run */
    tc.optim = optim_for(opt_index, lr);
    tc.schedule = SCHED_CONSTANT;
    tc.total_steps = steps;
    tc.warmup_steps = (variant == VAR_WARMUP || variant == VAR_CLIP_WARMUP) ? (int64_t)ceil(s->warmup_frac * steps) : 0;
    tc.clip_norm = (variant == VAR_CLIP || variant == VAR_CLIP_WARMUP) ? s->clip_norm : 0;
    tc.label_smoothing = 0;
    tc.diverge_factor = s->diverge_factor;
    trainer *t = NULL;
    char err[1024];
    double t0 = cli_now();
    if (trainer_create(&tc, d->train, d->val, &t, err, sizeof err)) {
        fprintf(stderr, "\nerror: %s: %s\n", name, err);
        trainer_destroy(t);
        return -1;
    }
    int64_t spe = trainer_steps_per_epoch(t);
    for (int i = 0; i < steps; i++) {
        trainer_step st;
        int epoch_done;
        if (trainer_step_once(t, &st, &epoch_done, err, sizeof err)) {
            fprintf(stderr, "\nerror: %s: %s\n", name, err);
            trainer_destroy(t);
            return -1;
        }
        r->loss[i] = st.loss;
        r->acc[i] = st.acc;
        r->lr_now[i] = st.lr;
        r->grad_norm[i] = st.grad_norm;
        r->ratio[i] = st.update_ratio;
        r->applied[i] = st.applied;
        if (!st.applied) r->skipped++;
        r->steps = i + 1;
        if (i == 0) r->initial_loss = st.loss;
        double vl = NAN, va = NAN;
        int last = i + 1 == steps || st.diverged;
        if (evaluate && ((epoch_done && spe > 0) || last)) {
            if (trainer_evaluate(t, d->val, &vl, &va, err, sizeof err)) {
                fprintf(stderr, "\nerror: %s: %s\n", name, err);
                trainer_destroy(t);
                return -1;
            }
            r->val_loss = vl;
            r->val_acc = va;
        }
        fprintf(csv, "%s,%s,%s,%s,%.6g,%d,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d", phase, name,
                optimizers[opt_index].label, variant_names[variant], lr, i + 1, (long long)st.epoch, st.loss, st.acc,
                st.lr, st.grad_norm, st.update_ratio, st.applied, st.diverged);
        if (isfinite(vl)) fprintf(csv, ",%.6g,%.6g\n", vl, va);
        else fputs(",,\n", csv);
        if (tty && (i % 5 == 0 || last)) {
            printf("\r[%d/%d] %-34s step %4d/%d loss %8.4f acc %5.1f%% |g| %9.3g\033[K", run_no, run_total, name, i + 1,
                   steps, st.loss, 100 * st.acc, st.grad_norm);
            fflush(stdout);
        }
        if (st.diverged) {
            r->diverged = 1;
            r->diverge_step = i + 1;
            break;
        }
    }
    r->seconds = cli_now() - t0;
    /* final loss: mean over the last 10% of steps, capped at the initial loss if diverged */
    int tail = r->steps / 10 > 0 ? r->steps / 10 : 1;
    double sum = 0;
    for (int i = r->steps - tail; i < r->steps; i++) sum += r->loss[i];
    r->final_loss = r->diverged ? r->initial_loss : sum / tail;
    if (!isfinite(r->final_loss)) r->final_loss = r->initial_loss;
    if (tty) printf("\r\033[K");
    printf("[%d/%d] %-34s %s after %d steps: loss %.4f", run_no, run_total, name, r->diverged ? "DIVERGED" : "done",
           r->steps, r->diverged ? r->loss[r->steps - 1] : r->final_loss);
    if (evaluate) printf(", val acc %.1f%%", 100 * r->val_acc);
    printf(", %lld skipped, %.1f s\n", (long long)r->skipped, r->seconds);
    fflush(stdout);
    trainer_destroy(t);
    return 0;
}

/* ---- sweep analysis ------------------------------------------------------------------- */

typedef struct sweep_row {
    int opt_index, variant;
    double lrs[GRID], final[GRID], initial[GRID];
    int diverged[GRID];
    double stable_lo, stable_hi; /* NAN if every LR diverged */
    double best_lr, best_loss, sensitivity;
} sweep_row;

static void analyse_sweep(sweep_row *row) {
    double best = INFINITY;
    row->best_lr = NAN;
    for (int g = 0; g < GRID; g++)
        if (!row->diverged[g] && row->final[g] < best) {
            best = row->final[g];
            row->best_lr = row->lrs[g];
        }
    row->best_loss = best;
    /* stable range: the longest run of consecutive non-divergent grid points */
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
    /* Wortsman et al.: E_lr[min(L(lr), L0) - L*], divergent runs at L0 */
    /* L* is the best capped loss too, so a grid where no run got below its initial loss
     * (a very short budget) reads as 0, not negative. */
    double sum = 0, best_capped = INFINITY;
    for (int g = 0; g < GRID; g++) {
        double capped = fmin(row->final[g], row->initial[g]);
        sum += capped;
        best_capped = fmin(best_capped, capped);
    }
    row->sensitivity = isfinite(best) ? sum / GRID - best_capped : NAN;
}

/* ---- outputs -------------------------------------------------------------------------- */

static void fmt_lr(char *buf, size_t n, double lr) { snprintf(buf, n, "%.3g", lr); }

static void write_summary(FILE *f, const run_result *runs, int nruns) {
    fputs("phase,run,optimizer,variant,lr,steps,initial_loss,final_loss,val_loss,val_acc,skipped_steps,diverged,"
          "diverge_step,seconds\n",
          f);
    for (int i = 0; i < nruns; i++) {
        const run_result *r = &runs[i];
        fprintf(f, "%s,%s,%s,%s,%.6g,%d,%.6g,%.6g,%.6g,%.6g,%lld,%d,%d,%.2f\n", r->phase, r->name,
                optimizers[r->opt_index].label, variant_names[r->variant], r->lr, r->steps, r->initial_loss,
                r->final_loss, r->val_loss, r->val_acc, (long long)r->skipped, r->diverged, r->diverge_step,
                r->seconds);
    }
}

static void write_sweep_csv(FILE *f, const sweep_row *rows, int nrows) {
    fputs("optimizer,variant,stable_lr_min,stable_lr_max,best_lr,best_final_loss,lr_sensitivity,diverged_points\n", f);
    for (int i = 0; i < nrows; i++) {
        const sweep_row *r = &rows[i];
        int nd = 0;
        for (int g = 0; g < GRID; g++) nd += r->diverged[g];
        fprintf(f, "%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%d\n", optimizers[r->opt_index].label, variant_names[r->variant],
                r->stable_lo, r->stable_hi, r->best_lr, r->best_loss, r->sensitivity, nd);
    }
}

/* Charts of one quantity for a set of runs. */
typedef enum { Q_LOSS, Q_GRAD, Q_ACC, Q_RATIO } quantity;

static void chart(FILE *f, const char *title, const char *ylabel, const run_result *runs, const int *which, int n,
                  quantity q, int log_y) {
    report_series *s = calloc((size_t)n, sizeof *s);
    double **xs = calloc((size_t)n, sizeof *xs);
    for (int k = 0; k < n; k++) {
        const run_result *r = &runs[which[k]];
        xs[k] = malloc((size_t)(r->steps ? r->steps : 1) * sizeof(double));
        for (int i = 0; i < r->steps; i++) xs[k][i] = i + 1;
        s[k].name = r->name;
        s[k].x = xs[k];
        s[k].n = r->steps;
        s[k].y = q == Q_LOSS ? r->loss : q == Q_GRAD ? r->grad_norm : q == Q_ACC ? r->acc : r->ratio;
    }
    fputs("<figure>\n", f);
    report_line_chart(f, title, "optimizer step", ylabel, s, n, log_y);
    fputs("</figure>\n", f);
    for (int k = 0; k < n; k++) free(xs[k]);
    free(xs);
    free(s);
}

static void write_report(FILE *f, const settings *st, const cli_data *d, const run_result *runs, int nruns,
                         const sweep_row *rows, int nrows, double seconds) {
    report_begin(f, "libgradopt: optimizer comparison");
    fputs("<h1>Optimizer comparison</h1>\n", f);
    if (d->synthetic)
        fputs("<p class=\"note\"><b>Built-in synthetic data, not CIFAR-10.</b> No CIFAR-10 directory was given or "
              "found, so this report was made on the small synthetic dataset that ships with the library. Give "
              "<code>--data DIR</code> for the real comparison.</p>\n",
              f);
    fputs("<p>Data: ", f);
    report_escape(f, d->source);
    fprintf(f, ".<br>Every run starts from the same initial weights (seed %llu) and sees the same batches in the "
               "same order. Wall time %.0f s on %d thread(s).</p>\n",
            (unsigned long long)st->seed, seconds, gopt_get_threads());
    fprintf(f, "<p>A run <b>diverges</b> when its training loss is not finite or exceeds %.3g&times; its first "
               "loss; it stops there. Non-finite gradient steps are skipped by the stability monitor and "
               "counted.</p>\n",
            st->diverge_factor);

    int *which = malloc((size_t)(nruns ? nruns : 1) * sizeof *which);
    int ncompare = 0;
    for (int i = 0; i < nruns; i++)
        if (!strcmp(runs[i].phase, "compare")) ncompare++;
    if (ncompare) {
        fprintf(f, "<h2>Comparison at default learning rates (ResNet-%d, width %g, batch %d, %d steps, constant "
                   "LR)</h2>\n",
                st->compare_depth, st->compare_width, st->compare_batch, st->compare_steps);
        for (int v = 0; v < VAR_COUNT; v++) {
            int n = 0;
            for (int i = 0; i < nruns; i++)
                if (!strcmp(runs[i].phase, "compare") && runs[i].variant == v && strncmp(runs[i].name, "explode", 7))
                    which[n++] = i;
            if (!n) continue;
            char title[128];
            fprintf(f, "<h3>Variant: %s</h3>\n", variant_names[v]);
            snprintf(title, sizeof title, "Training loss (%s)", variant_names[v]);
            chart(f, title, "loss", runs, which, n, Q_LOSS, 0);
            snprintf(title, sizeof title, "Global gradient norm (%s)", variant_names[v]);
            chart(f, title, "L2 norm before clipping", runs, which, n, Q_GRAD, 1);
            snprintf(title, sizeof title, "Training accuracy (%s)", variant_names[v]);
            chart(f, title, "batch accuracy", runs, which, n, Q_ACC, 0);
            snprintf(title, sizeof title, "Update/parameter ratio (%s)", variant_names[v]);
            chart(f, title, "||update|| / ||params||", runs, which, n, Q_RATIO, 1);
        }
        int n = 0;
        for (int i = 0; i < nruns; i++)
            if (!strncmp(runs[i].name, "explode", 7)) which[n++] = i;
        if (n) {
            fprintf(f, "<h3>A deliberately exploding setting: plain SGD at LR %g, without and with clipping "
                       "(max norm %g)</h3>\n",
                    st->huge_lr, st->huge_clip);
            fputs("<ul>\n", f);
            for (int k = 0; k < n; k++) {
                const run_result *r = &runs[which[k]];
                fputs("<li>", f);
                report_escape(f, r->name);
                if (r->diverged)
                    fprintf(f, ": <span class=\"bad\">diverged</span> at step %d</li>\n", r->diverge_step);
                else
                    fprintf(f, ": stable, final loss %.4g</li>\n", r->final_loss);
            }
            fputs("</ul>\n", f);
            chart(f, "Exploding setting: training loss", "loss", runs, which, n, Q_LOSS, 1);
            chart(f, "Exploding setting: gradient norm", "L2 norm before clipping", runs, which, n, Q_GRAD, 1);
        }
        fputs("<table><tr><th>run</th><th>LR</th><th>final loss</th><th>val loss</th><th>val acc</th>"
              "<th>skipped</th><th>diverged</th><th>time</th></tr>\n",
              f);
        for (int i = 0; i < nruns; i++) {
            const run_result *r = &runs[i];
            if (strcmp(r->phase, "compare")) continue;
            fputs("<tr><td>", f);
            report_escape(f, r->name);
            fprintf(f, "</td><td>%.3g</td><td>%.4f</td><td>%.4f</td><td>%.1f%%</td><td>%lld</td><td>%s</td><td>%.1f s</td></tr>\n",
                    r->lr, r->final_loss, r->val_loss, 100 * r->val_acc, (long long)r->skipped,
                    r->diverged ? "<span class=\"bad\">yes</span>" : "no", r->seconds);
        }
        fputs("</table>\n", f);
    }
    if (nrows) {
        fprintf(f, "<h2>Learning-rate sweep (ResNet-8 width %g, batch %d, %d steps per run)</h2>\n", st->sweep_width,
                st->sweep_batch, st->sweep_steps);
        fprintf(f, "<p>Each optimizer runs at %d learning rates spaced half a decade apart, from its default "
                "x10^%g to its default x10^%g. <b>Stable range</b>: the widest run of consecutive grid LRs that "
                "did not diverge. <b>LR sensitivity</b> (Wortsman et al. 2023): the mean over the grid of the final "
                "loss capped at the initial loss (divergent runs count as the initial loss), minus the smallest of "
                "those capped losses (lower is better).</p>\n",
                GRID, grid_exponent(0), grid_exponent(GRID - 1));
        const char *row_names[NOPT];
        char row_buf[NOPT][48];
        for (int v = 0; v < VAR_COUNT; v++) {
            double values[NOPT * GRID];
            int marked[NOPT * GRID], nr = 0;
            const char *cols[GRID];
            char colbuf[GRID][24];
            for (int g = 0; g < GRID; g++) {
                snprintf(colbuf[g], sizeof colbuf[g], "x10^%+.1f", grid_exponent(g));
                cols[g] = colbuf[g];
            }
            for (int i = 0; i < nrows; i++) {
                if (rows[i].variant != v) continue;
                snprintf(row_buf[nr], sizeof row_buf[nr], "%s (lr %g)", optimizers[rows[i].opt_index].label,
                         optimizers[rows[i].opt_index].lr);
                row_names[nr] = row_buf[nr];
                for (int g = 0; g < GRID; g++) {
                    values[nr * GRID + g] = rows[i].final[g];
                    marked[nr * GRID + g] = rows[i].diverged[g];
                }
                nr++;
            }
            if (!nr) continue;
            char title[160];
            snprintf(title, sizeof title, "Final training loss by optimizer and LR (multiple of its default), %s", variant_names[v]);
            fputs("<figure>\n", f);
            report_heatmap(f, title, row_names, nr, cols, GRID, values, marked, "diverged");
            fputs("</figure>\n", f);
        }
        fputs("<table><tr><th>optimizer</th><th>variant</th><th>stable LR range</th><th>best LR</th>"
              "<th>best final loss</th><th>LR sensitivity</th></tr>\n",
              f);
        for (int i = 0; i < nrows; i++) {
            const sweep_row *r = &rows[i];
            char lo[32], hi[32], best[32];
            fmt_lr(lo, sizeof lo, r->stable_lo);
            fmt_lr(hi, sizeof hi, r->stable_hi);
            fmt_lr(best, sizeof best, r->best_lr);
            fputs("<tr><td>", f);
            report_escape(f, optimizers[r->opt_index].label);
            char range[80];
            if (isfinite(r->stable_lo)) snprintf(range, sizeof range, "%s &ndash; %s", lo, hi);
            else snprintf(range, sizeof range, "<span class=\"bad\">none</span>");
            fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td>%.4f</td><td>%.4f</td></tr>\n",
                    variant_names[r->variant], range, isfinite(r->best_lr) ? best : "-", r->best_loss, r->sensitivity);
        }
        fputs("</table>\n", f);
    }
    free(which);
    fputs("<p>Files: <code>results.csv</code> (one row per run and step), <code>summary.csv</code> (one row per "
          "run), <code>sweep.csv</code> (one row per optimizer and variant).</p>\n",
          f);
    report_end(f);
}

/* Open DIR/NAME for writing, or say why not. */
static FILE *open_output(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno));
    return f;
}

/* Close an output, reporting a failed write (a full disk shows up here). */
static int close_output(FILE *f, const char *dir, const char *name) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "error: writing '%s/%s' failed\n", dir, name);
        return -1;
    }
    return 0;
}

/* Keep the first n images of ds (a copy). */
static int take_first(gopt_dataset **ds, int64_t n) {
    if (gopt_dataset_count(*ds) <= n) return 0;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) return -1;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    gopt_dataset *sub = NULL;
    gopt_status s = gopt_dataset_subset(*ds, idx, n, &sub);
    free(idx);
    if (s != GOPT_OK) {
        fprintf(stderr, "error: subset: %s\n", gopt_last_error());
        return -1;
    }
    gopt_dataset_destroy(*ds);
    *ds = sub;
    return 0;
}

int main(int argc, char **argv) {
    settings st;
    if (parse(argc, argv, &st)) return 2;
    if (st.threads) gopt_set_threads(st.threads);
    double t0 = cli_now();

    cli_data d;
    int64_t synth = st.train_subset / 4 + st.val_subset; /* the synthetic set is small by design */
    if (cli_load_data(st.data_dir, st.data_dir ? 10000 : st.val_subset, NULL, synth, st.seed, &d)) return 1;
    if (take_first(&d.train, st.train_subset) || take_first(&d.val, st.val_subset)) return 1;
    if (st.data_dir) {
        char src[sizeof d.source];
        memcpy(src, d.source, sizeof src);
        snprintf(d.source, sizeof d.source, "%.400s; this comparison uses the first %lld training and %lld validation images",
                 src, (long long)gopt_dataset_count(d.train), (long long)gopt_dataset_count(d.val));
    }
    printf("data: %s\n", d.source);
    if (d.synthetic)
        printf("NOTE: no CIFAR-10 directory given or found: running on the BUILT-IN SYNTHETIC dataset "
               "(use --data DIR, or scripts/run.sh which finds or unpacks CIFAR-10)\n");
    if (mkdir_p(st.out_dir)) {
        fprintf(stderr, "error: cannot create output directory '%s': %s\n", st.out_dir, strerror(errno));
        return 1;
    }
    FILE *csv = open_output(st.out_dir, "results.csv");
    if (!csv) return 1;
    fputs("phase,run,optimizer,variant,lr,step,epoch,loss,acc,lr_now,grad_norm,update_ratio,applied,diverged,"
          "val_loss,val_acc\n",
          csv);

    run_result *runs = calloc(MAX_RUNS, sizeof *runs);
    sweep_row *rows = calloc(NOPT * VAR_COUNT, sizeof *rows);
    int nruns = 0, nrows = 0, tty = isatty(STDOUT_FILENO);
    const int compare_variants[] = {VAR_BASE, VAR_CLIP, VAR_WARMUP};
    const int sweep_variants[] = {VAR_BASE, VAR_CLIP, VAR_WARMUP, VAR_CLIP_WARMUP};
    int total = (st.compare ? NOPT * 3 + 2 : 0) + (st.sweep ? NOPT * st.sweep_variants * GRID : 0);
    if (st.compare) {
        printf("\n== comparison: %d optimizers x {base, clip, warmup}, %d steps each, ResNet-%d width %g, batch %d\n",
               NOPT, st.compare_steps, st.compare_depth, st.compare_width, st.compare_batch);
        for (int vi = 0; vi < 3; vi++)
            for (int o = 0; o < NOPT; o++) {
                int v = compare_variants[vi];
                char name[64];
                snprintf(name, sizeof name, "%s%s%s", optimizers[o].label, v == VAR_BASE ? "" : "+", v == VAR_BASE ? "" : variant_names[v]);
                if (run_one(&st, &d, "compare", o, v, optimizers[o].lr, st.compare_steps, st.compare_depth,
                            st.compare_width, st.compare_batch, name, csv, &runs[nruns], nruns + 1, total, tty))
                    return 1;
                nruns++;
            }
        /* the deliberately exploding pair: plain SGD at a huge LR, without and with clipping */
        settings explode = st; /* the clipped twin clips harder: LR x max norm bounds each step */
        explode.clip_norm = st.huge_clip;
        for (int v = 0; v < 2; v++) {
            char name[64];
            snprintf(name, sizeof name, "explode: SGD lr=%g%s", st.huge_lr, v ? "+clip" : "");
            if (run_one(&explode, &d, "compare", 0, v ? VAR_CLIP : VAR_BASE, st.huge_lr, st.compare_steps, st.compare_depth,
                        st.compare_width, st.compare_batch, name, csv, &runs[nruns], nruns + 1, total, tty))
                return 1;
            nruns++;
        }
    }
    if (st.sweep) {
        printf("\n== LR sweep: %d optimizers x %d LRs x {%s}, %d steps each, ResNet-8 width %g, batch %d\n", NOPT,
               GRID, st.sweep_variants == VAR_COUNT ? "base, clip, warmup, clip+warmup" : "base, clip", st.sweep_steps,
               st.sweep_width, st.sweep_batch);
        for (int vi = 0; vi < st.sweep_variants; vi++)
            for (int o = 0; o < NOPT; o++) {
                sweep_row *row = &rows[nrows++];
                row->opt_index = o;
                row->variant = sweep_variants[vi];
                for (int g = 0; g < GRID; g++) {
                    double lr = optimizers[o].lr * pow(10.0, grid_exponent(g));
                    char name[64];
                    snprintf(name, sizeof name, "%s %s lr=%.3g", optimizers[o].label, variant_names[row->variant], lr);
                    run_result *r = &runs[nruns];
                    if (run_one(&st, &d, "sweep", o, row->variant, lr, st.sweep_steps, 8, st.sweep_width, st.sweep_batch,
                                name, csv, r, nruns + 1, total, tty))
                        return 1;
                    row->lrs[g] = lr;
                    row->final[g] = r->final_loss;
                    row->initial[g] = r->initial_loss;
                    row->diverged[g] = r->diverged;
                    nruns++;
                }
                analyse_sweep(row);
            }
    }
    if (close_output(csv, st.out_dir, "results.csv")) return 1;
    double seconds = cli_now() - t0;

    FILE *f;
    if (!(f = open_output(st.out_dir, "summary.csv"))) return 1;
    write_summary(f, runs, nruns);
    if (close_output(f, st.out_dir, "summary.csv")) return 1;
    if (!(f = open_output(st.out_dir, "sweep.csv"))) return 1;
    write_sweep_csv(f, rows, nrows);
    if (close_output(f, st.out_dir, "sweep.csv")) return 1;
    if (!(f = open_output(st.out_dir, "report.html"))) return 1;
    write_report(f, &st, &d, runs, nruns, rows, nrows, seconds);
    if (close_output(f, st.out_dir, "report.html")) return 1;

    /* terminal summary */
    if (st.compare) {
        printf("\n%-28s %10s %10s %8s %8s %9s\n", "run (default LR)", "final loss", "val loss", "val acc", "skipped", "diverged");
        for (int i = 0; i < nruns; i++) {
            const run_result *r = &runs[i];
            if (strcmp(r->phase, "compare")) continue;
            printf("%-28s %10.4f %10.4g %7.1f%% %8lld %9s\n", r->name, r->final_loss, r->val_loss, 100 * r->val_acc,
                   (long long)r->skipped, r->diverged ? "YES" : "no");
        }
    }
    if (st.sweep) {
        printf("\n%-14s %-12s %-22s %10s %12s\n", "optimizer", "variant", "stable LR range", "best LR", "sensitivity");
        for (int i = 0; i < nrows; i++) {
            const sweep_row *r = &rows[i];
            char range[64];
            if (isfinite(r->stable_lo)) snprintf(range, sizeof range, "%.3g - %.3g", r->stable_lo, r->stable_hi);
            else snprintf(range, sizeof range, "none");
            printf("%-14s %-12s %-22s %10.3g %12.4f\n", optimizers[r->opt_index].label, variant_names[r->variant], range,
                   r->best_lr, r->sensitivity);
        }
    }
    printf("\n%s in %.0f s. Report: %s/report.html (also results.csv, summary.csv, sweep.csv)\n",
           d.synthetic ? "done on the built-in SYNTHETIC dataset" : "done on CIFAR-10", seconds, st.out_dir);
    for (int i = 0; i < nruns; i++) free_result(&runs[i]);
    free(runs);
    free(rows);
    cli_data_free(&d);
    return 0;
}
