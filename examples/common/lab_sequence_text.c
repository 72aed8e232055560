/* Scenario 2 of the stability lab, second part: the character language model
 * (task_text.h) on tiny-shakespeare or the built-in text, each optimizer x {base, clip by
 * norm, clip by value, warmup} and a small LR sweep. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin_text.h"
#include "cli.h"
#include "lab_sequence.h"
#include "task_text.h"

#define TXT_BATCH 32
#define TXT_SEQ 64
#define TXT_EMBED 32
#define TXT_BUILTIN_BYTES 200000
#define TXT_BUILTIN_SEED 1997u
#define TXT_VAL_MAX 16000      /* held-out characters evaluated (a prefix of the held-out part) */
#define TXT_MED_STEPS 20
#define TXT_CLIP_FRACTION 0.5
#define TXT_WARMUP_FRACTION 0.1
#define TXT_NEVAL 2            /* evaluations per run, evenly spaced, the last at the end */

static const double txt_lr[SEQ_NOPTIM] = {1.0, 0.003, 0.002}; /* SGD-momentum, Adam, RMSprop */
static const double txt_sweep[] = {0.3, 3.0};                 /* LR sweep: these times the LR, base only, */
#define TXT_SWEEP_OPTIM SEQ_ADAM                              /* ... for this optimizer */
#define TXT_NSWEEP 2

typedef struct txt_run {
    const char *label;       /* the frontier runs: their optimizer's name and config */
    gopt_optim_config cfg;
    double train_seconds;    /* inside the steps */
    int optim, variant;
    double lr, clip_norm, clip_value;
    int64_t warmup;
    seq_trace tr;
    double val_loss, seconds;
    int diverged, steps;
} txt_run;

static int txt_run_one(const lab_options *o, const text_model_config *m, const gopt_text *train, const gopt_text *val,
                       int steps, txt_run *r, int id, FILE *csv, double *maxabs) {
    char err[512];
    trainer_config c = trainer_config_default();
    c.batch = TXT_BATCH;
    c.seed = o->seed;
    c.optim = r->label ? r->cfg : seq_optim_config(r->optim, r->lr);
    c.total_steps = steps;
    c.clip_norm = r->clip_norm;
    c.clip_value = r->clip_value;
    c.warmup_steps = r->warmup;
    c.skip_nonfinite = 1;
    c.diverge_factor = 3;
    r->val_loss = NAN;
    if (seq_trace_init(&r->tr, steps, TXT_NEVAL + 1)) return -1;
    trainer *t = NULL;
    double t0 = cli_now();
    if (text_trainer_create(&c, m, train, &t, err, sizeof err)) {
        trainer_destroy(t);
        fprintf(stderr, "error: sequence: text model: %s\n", err);
        return -1;
    }
    int rc = 0;
    for (int s = 1; s <= steps; s++) {
        trainer_step st;
        int epoch_done;
        double ts = cli_now();
        int failed = trainer_step_once(t, &st, &epoch_done, err, sizeof err);
        r->train_seconds += cli_now() - ts;
        if (failed) {
            fprintf(stderr, "error: sequence: text model step %d: %s\n", s, err);
            rc = -1;
            break;
        }
        seq_trace_step(&r->tr, &st);
        if (maxabs && s <= TXT_MED_STEPS) maxabs[s - 1] = seq_grad_maxabs(t);
        int last = s == steps || st.diverged;
        double vl = NAN, va;
        if (last || s % (steps / TXT_NEVAL > 0 ? steps / TXT_NEVAL : 1) == 0) {
            if (st.diverged && !isfinite(st.loss)) {
                vl = INFINITY;
            } else {
                /* Schedule-Free: evaluated at x (trainer_eval_begin), then back to y */
                char what[64];
                int ev = trainer_eval_begin(t, what, sizeof what, err, sizeof err);
                if (!ev) ev = text_evaluate(t, val, &vl, &va, err, sizeof err);
                if (trainer_eval_end(t, ev ? err + strlen(err) : err, ev ? 0 : sizeof err) || ev) {
                    fprintf(stderr, "error: sequence: text evaluation: %s\n", err);
                    rc = -1;
                    break;
                }
            }
            seq_trace_eval(&r->tr, s, vl);
            r->val_loss = vl;
        }
        fprintf(csv, "%d,%s,%g,%s,%d,%.6g,%.6g,%d,%d,%d,", id, r->label ? r->label : seq_optim_names[r->optim], r->lr,
                seq_variant_names[r->variant], s, st.loss, st.grad_norm, st.clipped, st.spike, st.applied);
        if (isnan(vl)) fputs("\n", csv);
        else fprintf(csv, "%.6g\n", vl);
        r->steps = s;
        if (st.diverged) r->diverged = 1;
        if (o->tty && s % 20 == 0) {
            printf("\r  step %d/%d loss %.4f", s, steps, st.loss);
            fflush(stdout);
        }
        if (last) break;
    }
    trainer_destroy(t);
    r->seconds = cli_now() - t0;
    return rc;
}

/* Panels = optimizers, lines = variants. what 0: gradient norm, 1: training loss. */
static void txt_grid(FILE *h, const txt_run *runs, int nruns, int what) {
    report_panel p[SEQ_NOPTIM];
    report_series s[SEQ_NOPTIM][SEQ_NVARIANTS];
    double hl[SEQ_NOPTIM];
    const char *hll[1] = {"clip threshold"};
    char titles[SEQ_NOPTIM][64], notes[SEQ_NOPTIM][160];
    int np = 0;
    for (int op = 0; op < SEQ_NOPTIM; op++) {
        report_panel *pn = &p[np];
        memset(pn, 0, sizeof *pn);
        int ns = 0;
        notes[np][0] = 0;
        for (int i = 0; i < nruns; i++) {
            const txt_run *r = &runs[i];
            if (r->optim != op || r->lr != txt_lr[op]) continue;
            report_series *x = &s[np][ns++];
            memset(x, 0, sizeof *x);
            x->name = seq_variant_names[r->variant];
            x->color = r->variant + 1;
            x->x = r->tr.x;
            x->y = what == 0 ? r->tr.norm : r->tr.loss;
            x->n = r->tr.n;
            if (what == 0) {
                x->marks = r->tr.spikes;
                x->nmarks = r->tr.nspikes;
            }
            if (r->variant == SEQ_CLIP_NORM) {
                hl[np] = r->clip_norm;
                pn->hlines = &hl[np];
                pn->hline_labels = hll;
                pn->nhlines = what == 0;
            }
            if (what == 0 && (r->variant == SEQ_CLIP_NORM || r->variant == SEQ_CLIP_VALUE)) {
                char pc[16];
                size_t len = strlen(notes[np]);
                snprintf(notes[np] + len, sizeof notes[np] - len, "%s%s %s", len ? ", " : "clipped: ",
                         r->variant == SEQ_CLIP_NORM ? "norm" : "value", seq_pct(pc, sizeof pc, r->tr.clipped, r->tr.n));
            }
        }
        if (!ns) continue;
        snprintf(titles[np], sizeof titles[np], "%s lr %g", seq_optim_names[op], txt_lr[op]);
        pn->title = titles[np];
        pn->s = s[np];
        pn->ns = ns;
        pn->note = what == 0 && notes[np][0] ? notes[np] : NULL;
        np++;
    }
    if (!np) return;
    report_chart c = report_chart_default();
    c.xlabel = "step";
    if (what == 0) {
        c.title = "Character LM: gradient norm before clipping";
        c.ylabel = "global L2 norm";
        c.log_y = 1;
    } else {
        c.title = "Character LM: training loss (EMA 0.9)";
        c.ylabel = "loss";
        c.smooth = 0.9;
    }
    report_small_multiples(h, &c, p, np, 3);
}

/* Issue 18: the frontier optimizers next to AdamW and SGD-Nesterov on the same model, data
 * and steps, base variant at a constant LR (Schedule-Free needs no schedule; the others run
 * as the rest of this section does), each at a sensible LR for this LSTM. */
typedef struct txt_frontier_entry {
    const char *label;
    gopt_algo algo;
    double lr;
} txt_frontier_entry;
static const txt_frontier_entry txt_frontier[] = {
    {"AdamW", GOPT_ALGO_ADAMW, 0.003},       {"SGD-Nesterov", GOPT_ALGO_SGD, 1.0},
    {"AdamW-SF", GOPT_ALGO_ADAMW_SCHEDULEFREE, 0.005}, {"SGD-SF", GOPT_ALGO_SGD_SCHEDULEFREE, 1.0},
    {"Muon", GOPT_ALGO_MUON, 0.02},          {"Adafactor", GOPT_ALGO_ADAFACTOR, 0.01},
};
#define TXT_NFRONTIER (int)(sizeof txt_frontier / sizeof txt_frontier[0])

static gopt_optim_config txt_frontier_config(const txt_frontier_entry *e) {
    gopt_optim_config c = gopt_optim_config_default(e->algo);
    c.lr = (float)e->lr;
    if (e->algo == GOPT_ALGO_SGD) {
        c.momentum = 0.9f;
        c.nesterov = 1;
    }
    if (e->algo == GOPT_ALGO_MUON) c.adamw_lr_ratio = 0.1f; /* the embedding and the head at 0.002 */
    return c;
}

/* Runs them (ids from id0 on, rows in the same CSV files), writes their subsection and a
 * sentence of findings. */
static int txt_frontier_runs(const lab_options *o, const text_model_config *m, const gopt_text *train,
                             const gopt_text *val, int steps, int id0, FILE *csv, FILE *sum, FILE *h, char *finding,
                             size_t nfinding) {
    txt_run runs[TXT_NFRONTIER];
    memset(runs, 0, sizeof runs);
    int rc = 0, n = 0;
    for (int k = 0; k < TXT_NFRONTIER && !rc; k++, n++) {
        txt_run *r = &runs[k];
        r->label = txt_frontier[k].label;
        r->cfg = txt_frontier_config(&txt_frontier[k]);
        r->lr = txt_frontier[k].lr;
        r->variant = SEQ_BASE;
        if (txt_run_one(o, m, train, val, steps, r, id0 + k, csv, NULL)) {
            rc = -1;
            break;
        }
        if (o->tty) printf("\r");
        printf("sequence: text %s lr %g: %d steps, val loss %.4f nats/char%s (%.2f s of training)\n", r->label, r->lr,
               r->steps, r->val_loss, r->diverged ? " (DIVERGED)" : "", r->train_seconds);
        fflush(stdout);
        fprintf(sum, "%d,%s,%g,%s,0,0,0,%d,%.6g,%.6g,%d,%d,%d,%d\n", id0 + k, r->label, r->lr,
                seq_variant_names[SEQ_BASE], r->steps, r->val_loss, r->tr.max_norm, r->tr.clipped, r->tr.skipped,
                r->tr.nspikes, r->diverged);
        char item[128];
        snprintf(item, sizeof item, "text frontier %s lr %g", r->label, r->lr);
        lab_timing(o, "sequence", item, r->train_seconds);
    }
    if (!rc) {
        fprintf(h,
                "<h3>Character language model: the frontier optimizers</h3>\n<p>Schedule-Free AdamW and SGD "
                "(evaluated at x), Muon (the LSTM's matrices; the embedding, the output layer and the biases run "
                "AdamW inside it at a tenth of its LR) and Adafactor next to AdamW and SGD-Nesterov: the same model, "
                "text, batches and %d steps at a constant LR, from the same initial weights.</p>\n<table>\n",
                steps);
        const char *head[] = {"optimizer", "lr", "val loss (nats/char)", "max grad norm", "training s/step"};
        report_row(h, 1, 5, head);
        size_t len = (size_t)snprintf(finding, nfinding, " The frontier on the character LM (%d steps, val loss):",
                                      steps);
        for (int k = 0; k < n; k++) {
            const txt_run *r = &runs[k];
            char lr[32], vl[64], mx[32], ps[64];
            snprintf(lr, sizeof lr, "%g", r->lr);
            if (r->diverged) snprintf(vl, sizeof vl, "<span class=\"bad\">diverged</span>");
            else snprintf(vl, sizeof vl, "%.4f", r->val_loss);
            snprintf(mx, sizeof mx, "%.3g", r->tr.max_norm);
            snprintf(ps, sizeof ps, "<span class=\"time\">%.4f</span>", r->steps ? r->train_seconds / r->steps : 0);
            const char *row[] = {r->label, lr, vl, mx, ps};
            report_row(h, 0, 5, row);
            if (len < nfinding)
                len += (size_t)snprintf(finding + len, nfinding - len, "%s %s %.3f%s", k ? "," : "", r->label,
                                        r->val_loss, r->diverged ? " (diverged)" : "");
        }
        fputs("</table>\n", h);
        if (len < nfinding) snprintf(finding + len, nfinding - len, ".");
    }
    for (int k = 0; k < TXT_NFRONTIER; k++) seq_trace_free(&runs[k].tr);
    return rc;
}

int lab_sequence_text(const lab_options *o, FILE *h, char *findings, size_t nfind, char *data, size_t ndata,
                      int *builtin) {
    gopt_text *all = NULL, *train = NULL, *held = NULL, *val = NULL;
    char *gen = NULL;
    gopt_status s;
    const char *what;
    if (o->text_path) {
        what = "loading the text";
        s = gopt_text_load(o->text_path, NULL, &all);
        *builtin = 0;
    } else {
        what = "generating the built-in text";
        if (builtin_text_generate(TXT_BUILTIN_SEED, TXT_BUILTIN_BYTES, &gen)) {
            fprintf(stderr, "error: sequence: out of memory generating the built-in text\n");
            return -1;
        }
        s = gopt_text_from_memory(gen, TXT_BUILTIN_BYTES, "built-in text", NULL, &all);
        free(gen);
        *builtin = 1;
    }
    if (s == GOPT_OK) {
        what = "splitting the text";
        s = gopt_text_split(all, 0.9, &train, &held);
    }
    if (s == GOPT_OK) {
        what = "the held-out text";
        int64_t n = gopt_text_length(held) < TXT_VAL_MAX ? gopt_text_length(held) : TXT_VAL_MAX;
        s = gopt_text_from_memory(gopt_text_bytes(held), (size_t)n, "held-out text", gopt_text_vocab(train), &val);
    }
    if (s != GOPT_OK) {
        fprintf(stderr, "error: sequence: %s%s%s: %s\n", what, o->text_path ? " " : "", o->text_path ? o->text_path : "",
                gopt_last_error());
        gopt_text_destroy(all);
        gopt_text_destroy(train);
        gopt_text_destroy(held);
        return -1;
    }
    const int vocab = gopt_text_vocab(train)->size;
    if (o->text_path)
        snprintf(data, ndata, "the adding problem (generated sequences) and the text %s (%lld characters, %d symbols)",
                 o->text_path, (long long)gopt_text_length(all), vocab);
    else
        snprintf(data, ndata,
                 "the adding problem (generated sequences) and the BUILT-IN TEXT (no text file given): %d characters "
                 "of a seeded English-like grammar, %d symbols",
                 TXT_BUILTIN_BYTES, vocab);

    text_model_config m;
    memset(&m, 0, sizeof m);
    m.arch = GOPT_LAYER_LSTM;
    m.vocab = vocab;
    m.embed = TXT_EMBED;
    m.hidden = o->quick ? 64 : 128;
    m.layers = 1;
    m.seq_len = TXT_SEQ;
    m.streams = 1;
    const int steps = o->quick ? 40 : 150;

    /* quick: base and clip by norm only */
    const int nvar = o->quick ? 2 : SEQ_NVARIANTS;
    const int nruns = SEQ_NOPTIM * nvar + (o->quick ? 0 : TXT_NSWEEP);
    txt_run *runs = calloc((size_t)nruns, sizeof *runs);
    char path[1024];
    snprintf(path, sizeof path, "%s/sequence_text_steps.csv", o->out_dir);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/sequence_text.csv", o->out_dir);
    FILE *sum = fopen(path, "w");
    int rc = 0, k = 0;
    double t_all = cli_now();
    if (!runs || !csv || !sum) {
        fprintf(stderr, "error: sequence: cannot write %s/sequence_text*.csv (or out of memory)\n", o->out_dir);
        rc = -1;
        goto done;
    }
    fputs("run,optimizer,lr,variant,step,loss,grad_norm,clipped,spike,applied,val_loss\n", csv);
    fputs("run,optimizer,lr,variant,clip_norm,clip_value,warmup_steps,steps,val_loss,max_grad_norm,clipped_steps,"
          "skipped_steps,spikes,diverged\n",
          sum);
    for (int op = 0; op < SEQ_NOPTIM && !rc; op++) {
        double maxabs[TXT_MED_STEPS];
        double cn = 0, cv = 0;
        const int nv = nvar + (!o->quick && op == TXT_SWEEP_OPTIM ? TXT_NSWEEP : 0);
        for (int v = 0; v < nv && !rc; v++) {
            txt_run *r = &runs[k];
            r->optim = op;
            r->variant = v < nvar ? v : SEQ_BASE;
            r->lr = v < nvar ? txt_lr[op] : txt_lr[op] * txt_sweep[v - nvar];
            r->clip_norm = v == SEQ_CLIP_NORM ? cn : 0;
            r->clip_value = v == SEQ_CLIP_VALUE ? cv : 0;
            r->warmup = v == SEQ_WARMUP ? (int64_t)(steps * TXT_WARMUP_FRACTION) : 0;
            if (txt_run_one(o, &m, train, val, steps, r, k, csv, v == SEQ_BASE ? maxabs : NULL)) {
                rc = -1;
                break;
            }
            if (v == SEQ_BASE) {
                cn = TXT_CLIP_FRACTION * lab_median_first(r->tr.norm, r->tr.n, TXT_MED_STEPS);
                cv = TXT_CLIP_FRACTION * lab_median_first(maxabs, r->tr.n < TXT_MED_STEPS ? r->tr.n : TXT_MED_STEPS,
                                                          TXT_MED_STEPS);
                if (!(cn > 0)) cn = 1;
                if (!(cv > 0)) cv = 0.1;
            }
            if (o->tty) printf("\r");
            printf("sequence: text %s lr %g %s: %d steps, val loss %.4f nats/char%s, max grad norm %.3g, clipped %d, "
                   "skipped %d\n",
                   seq_optim_names[op], r->lr, seq_variant_names[r->variant], r->steps, r->val_loss,
                   r->diverged ? " (DIVERGED)" : "", r->tr.max_norm, r->tr.clipped, r->tr.skipped);
            fflush(stdout);
            fprintf(sum, "%d,%s,%g,%s,%.6g,%.6g,%lld,%d,%.6g,%.6g,%d,%d,%d,%d\n", k, seq_optim_names[op], r->lr,
                    seq_variant_names[r->variant], r->clip_norm, r->clip_value, (long long)r->warmup, r->steps,
                    r->val_loss, r->tr.max_norm, r->tr.clipped, r->tr.skipped, r->tr.nspikes, r->diverged);
            char item[128];
            snprintf(item, sizeof item, "text %s lr %g %s", seq_optim_names[op], r->lr, seq_variant_names[r->variant]);
            lab_timing(o, "sequence", item, r->seconds);
            k++;
        }
    }
    if (rc) goto done;
    lab_timing(o, "sequence", "character LM", cli_now() - t_all);
    char frontier_finding[512] = "";

    fprintf(h,
            "<h3>Character language model</h3>\n<p>%s. A 1-layer LSTM of %d units (embedding %d), sequences of %d "
            "characters, batch %d, %d steps (truncated BPTT over contiguous streams); validation loss in nats per "
            "character on %lld held-out characters. Thresholds as above: half the median of the base run's first %d "
            "steps.</p>\n",
            *builtin ? "The built-in text (a seeded stochastic grammar of English-like sentences)" : "The given text",
            m.hidden, m.embed, m.seq_len, TXT_BATCH, steps, (long long)gopt_text_length(val), TXT_MED_STEPS);
    fputs("<table>\n", h);
    const char *head[] = {"optimizer", "lr", "variant", "threshold", "val loss", "max grad norm", "clipped",
                          "skipped", "spikes"};
    report_row(h, 1, 9, head);
    for (int i = 0; i < k; i++) {
        const txt_run *r = &runs[i];
        char lr[32], thr[64], vl[48], mx[32], cp[16], sk[16], sp[16];
        snprintf(lr, sizeof lr, "%g", r->lr);
        if (r->variant == SEQ_CLIP_NORM) snprintf(thr, sizeof thr, "norm %.3g", r->clip_norm);
        else if (r->variant == SEQ_CLIP_VALUE) snprintf(thr, sizeof thr, "|g| %.3g", r->clip_value);
        else if (r->variant == SEQ_WARMUP) snprintf(thr, sizeof thr, "%lld steps", (long long)r->warmup);
        else snprintf(thr, sizeof thr, "&ndash;");
        if (r->diverged) snprintf(vl, sizeof vl, "<span class=\"bad\">diverged</span>");
        else snprintf(vl, sizeof vl, "%.4f", r->val_loss);
        snprintf(mx, sizeof mx, "%.3g", r->tr.max_norm);
        seq_pct(cp, sizeof cp, r->tr.clipped, r->tr.n);
        snprintf(sk, sizeof sk, "%d", r->tr.skipped);
        snprintf(sp, sizeof sp, "%d", r->tr.nspikes);
        const char *row[] = {seq_optim_names[r->optim], lr, seq_variant_names[r->variant], thr, vl, mx, cp, sk, sp};
        report_row(h, 0, 9, row);
    }
    fputs("</table>\n", h);
    txt_grid(h, runs, k, 1);
    txt_grid(h, runs, k, 0);
    if (!o->quick) { /* the LR sweep */
        double xs[SEQ_NOPTIM][1 + TXT_NSWEEP], ys[SEQ_NOPTIM][1 + TXT_NSWEEP];
        report_series ss[SEQ_NOPTIM];
        for (int op = TXT_SWEEP_OPTIM; op == TXT_SWEEP_OPTIM; op++) {
            int n = 0;
            for (int i = 0; i < k; i++)
                if (runs[i].optim == op && runs[i].variant == SEQ_BASE) {
                    xs[op][n] = runs[i].lr;
                    ys[op][n++] = runs[i].diverged ? NAN : runs[i].val_loss;
                }
            for (int a = 1; a < n; a++)
                for (int b = a; b > 0 && xs[op][b] < xs[op][b - 1]; b--) {
                    double tx = xs[op][b], ty = ys[op][b];
                    xs[op][b] = xs[op][b - 1], ys[op][b] = ys[op][b - 1];
                    xs[op][b - 1] = tx, ys[op][b - 1] = ty;
                }
            memset(&ss[op], 0, sizeof ss[op]);
            ss[op].name = seq_optim_names[op];
            ss[op].x = xs[op];
            ss[op].y = ys[op];
            ss[op].n = n;
        }
        report_chart c = report_chart_default();
        c.title = "Character LM: Adam LR sweep, final val loss";
        c.xlabel = "learning rate";
        c.ylabel = "val loss (nats/char)";
        c.log_x = 1;
        report_chart_draw(h, &c, &ss[TXT_SWEEP_OPTIM], 1);
    }

    if (txt_frontier_runs(o, &m, train, val, steps, k, csv, sum, h, frontier_finding, sizeof frontier_finding)) {
        rc = -1;
        goto done;
    }
    { /* the finding: per optimizer, the val loss of each variant that ran */
        const char *name = *builtin ? "built-in text" : strrchr(o->text_path, '/') ? strrchr(o->text_path, '/') + 1
                                                                                    : o->text_path;
        size_t len = (size_t)snprintf(findings, nfind, "Character LM (%s, %d steps), val loss (nats/char) by variant:", name,
                                      steps);
        for (int op = 0; op < SEQ_NOPTIM && len < nfind; op++) {
            len += (size_t)snprintf(findings + len, nfind - len, "%s %s lr %g", op ? ";" : "", seq_optim_names[op],
                                    txt_lr[op]);
            for (int i = 0; i < k && len < nfind; i++) {
                const txt_run *r = &runs[i];
                if (r->optim != op || r->lr != txt_lr[op]) continue;
                char pc[16];
                len += (size_t)snprintf(findings + len, nfind - len, " %s %.3f%s", seq_variant_names[r->variant],
                                        r->val_loss, r->diverged ? " (diverged)" : "");
                if (r->variant == SEQ_CLIP_NORM && len < nfind)
                    len += (size_t)snprintf(findings + len, nfind - len, " (clipped %s of steps)",
                                            seq_pct(pc, sizeof pc, r->tr.clipped, r->tr.n));
            }
        }
        if (len < nfind) len += (size_t)snprintf(findings + len, nfind - len, ".");
        if (len < nfind) snprintf(findings + len, nfind - len, "%s", frontier_finding);
    }
done:
    if (csv) fclose(csv);
    if (sum) fclose(sum);
    if (runs)
        for (int i = 0; i < nruns; i++) seq_trace_free(&runs[i].tr);
    free(runs);
    gopt_text_destroy(val);
    gopt_text_destroy(held);
    gopt_text_destroy(train);
    gopt_text_destroy(all);
    return rc;
}
