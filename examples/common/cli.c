/* See cli.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <time.h>

static int error_rank = -1; /* >= 0: "rank N: " before each error */

void cli_set_rank(int rank, int size) { error_rank = size > 1 ? rank : -1; }

void cli_error(const char *fmt, ...) {
    /* one write per message: the lines of several ranks do not interleave */
    char line[2048];
    int n = error_rank >= 0 ? snprintf(line, sizeof line, "rank %d: error: ", error_rank)
                            : snprintf(line, sizeof line, "error: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
    fflush(stderr);
}

int cli_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_error("%s: '%s' is not a number in [%g, %g]", opt, s ? s : "(missing)", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        cli_error("%s: '%s' is not an integer in [%ld, %ld]", opt, s ? s : "(missing)", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* The optimizer hyperparameters (torch.optim names), in a gopt_optim_config. Integers in
 * [0, 1000000], numbers in [-1e30, 1e30]: the algorithm checks its own ranges when it is
 * created (gopt_optim_create names the field). */
#define OPT_X(name, field, def, help) \
    CLI_O(name, "X", CLI_FLOAT, offsetof(gopt_optim_config, field), -1e30, 1e30, def, help)
#define OPT_N(name, arg, field, def, help) \
    CLI_O(name, arg, CLI_INT, offsetof(gopt_optim_config, field), 0, 1000000, def, help)
static const cli_opt optim_opts[] = {
    OPT_X("--lr", lr, "per optimizer and recipe", "learning rate"),
    OPT_X("--momentum", momentum, NULL, "momentum (SGD, RMSprop)"),
    OPT_X("--wd", weight_decay, NULL, "weight decay (torch.optim's weight_decay)"),
    OPT_X("--weight-decay", weight_decay, NULL, "the same as --wd"),
    OPT_X("--dampening", dampening, NULL, "SGD's dampening"),
    OPT_N("--nesterov", "0|1", nesterov, NULL, "SGD: Nesterov momentum"),
    OPT_X("--beta1", beta1, NULL, "first-moment decay (Adam family, Lion, Lamb)"),
    OPT_X("--beta2", beta2, NULL, "second-moment decay (Adam family, Lion, Lamb; Adafactor: see --beta2-decay)"),
    OPT_X("--eps", eps, NULL, "the denominator's epsilon (Adafactor: its eps1)"),
    OPT_X("--alpha", alpha, NULL, "RMSprop's smoothing constant"),
    OPT_X("--rho", rho, NULL, "Adadelta's decay"),
    OPT_N("--amsgrad", "0|1", amsgrad, NULL, "Adam, AdamW: the AMSGrad variant"),
    OPT_N("--centered", "0|1", centered, NULL, "RMSprop: centered"),
    OPT_X("--lr-decay", lr_decay, NULL, "Adagrad's lr_decay"),
    OPT_X("--momentum-decay", momentum_decay, NULL, "NAdam's momentum_decay"),
    OPT_N("--lookahead-k", "K", lookahead_k, NULL, "Lookahead around the optimizer: sync every K steps (0: off)"),
    OPT_X("--lookahead-alpha", lookahead_alpha, NULL, "Lookahead's slow-weights step"),
    OPT_X("--l1", l1, NULL, "coupled L1 regularisation (g += X sign(p)), every algorithm"),
    OPT_N("--warmup-steps", "N", warmup_steps, "per optimizer",
     "Schedule-Free: its own linear warmup, in optimizer steps"),
    OPT_X("--r", r, "per optimizer", "Schedule-Free: the average's weighting power r"),
    OPT_X("--weight-lr-power", weight_lr_power, "per optimizer", "Schedule-Free: the average's weight_lr_power"),
    OPT_N("--ns-steps", "N", ns_steps, "per optimizer", "Muon: Newton-Schulz steps"),
    OPT_X("--adamw-lr-ratio", adamw_lr_ratio, "per optimizer", "Muon: its AdamW's LR as a multiple of --lr"),
    OPT_X("--adamw-eps", adamw_eps, "per optimizer", "Muon: its AdamW's eps"),
    OPT_X("--adamw-wd", adamw_weight_decay, "per optimizer", "Muon: its AdamW's weight decay"),
    OPT_X("--beta2-decay", beta2_decay, "per optimizer", "Adafactor: the second-moment decay exponent"),
    OPT_X("--eps2", eps2, "per optimizer", "Adafactor: the relative-step epsilon eps2"),
    OPT_X("--clip-threshold", clip_threshold, "per optimizer", "Adafactor: the update's RMS clipping threshold"),
};
#undef OPT_X
#undef OPT_N

cli_group cli_optim_group(gopt_optim_config *cfg, const char *heading) {
    cli_group g = {heading, optim_opts, CLI_COUNT(optim_opts), cfg, NULL, NULL};
    return g;
}

/* The trainers' short names next to the registry's. */
static const struct algo_alias {
    const char *alias, *name;
} algo_aliases[] = {
    {"adamw-sf", "adamw_schedulefree"},
    {"sgd-sf", "sgd_schedulefree"},
};

int cli_algo_from_name(const char *name, gopt_algo *out) {
    if (!name) return -1;
    for (size_t i = 0; i < sizeof algo_aliases / sizeof algo_aliases[0]; i++)
        if (!strcmp(name, algo_aliases[i].alias)) name = algo_aliases[i].name;
    return gopt_algo_from_name(name, out) == GOPT_OK ? 0 : -1;
}

const char *cli_algo_short_name(gopt_algo algo) {
    const char *name = gopt_algo_name(algo);
    for (size_t i = 0; name && i < sizeof algo_aliases / sizeof algo_aliases[0]; i++)
        if (!strcmp(name, algo_aliases[i].name)) return algo_aliases[i].alias;
    return name;
}

int cli_is_schedulefree(gopt_algo algo) {
    return algo == GOPT_ALGO_ADAMW_SCHEDULEFREE || algo == GOPT_ALGO_SGD_SCHEDULEFREE;
}

float cli_default_lr(gopt_algo algo) {
    switch (algo) {
    case GOPT_ALGO_SGD: return 0.1f;
    case GOPT_ALGO_ADAGRAD: return 0.01f;
    case GOPT_ALGO_RMSPROP: return 1e-3f;
    case GOPT_ALGO_ADAM: return 1e-3f;
    case GOPT_ALGO_ADAMW: return 1e-3f;
    case GOPT_ALGO_ADADELTA: return 1.0f;
    case GOPT_ALGO_NADAM: return 2e-3f;
    case GOPT_ALGO_RADAM: return 1e-3f;
    case GOPT_ALGO_ADAMAX: return 2e-3f;
    case GOPT_ALGO_LION: return 1e-4f;
    case GOPT_ALGO_LAMB: return 1e-2f;
    case GOPT_ALGO_ADAMW_SCHEDULEFREE: return 2.5e-3f; /* schedule_free's default */
    case GOPT_ALGO_SGD_SCHEDULEFREE: return 1.0f;      /* schedule_free's default */
    case GOPT_ALGO_MUON: return 0.02f;                 /* Keller Jordan's; AdamW part: x adamw-lr-ratio */
    case GOPT_ALGO_ADAFACTOR: return 1e-2f;            /* torch.optim.Adafactor's default */
    default: return 1e-3f;
    }
}

int cli_load_data(const char *dir, int64_t val_split, const char *test_file, int64_t synth_count, uint64_t seed,
                  cli_data *out) {
    memset(out, 0, sizeof *out);
    gopt_dataset *all = NULL;
    gopt_status s;
    if (dir) {
        s = gopt_cifar10_load_dir(dir, GOPT_CIFAR10_TRAIN_ALL, &all);
        if (s != GOPT_OK) {
            cli_error("loading CIFAR-10 from '%s': %s", dir, gopt_last_error());
            return -1;
        }
    } else {
        s = gopt_dataset_synthetic(synth_count, 10, seed, &all);
        if (s != GOPT_OK) {
            cli_error("building the synthetic dataset: %s", gopt_last_error());
            return -1;
        }
        out->synthetic = 1;
    }
    if (test_file) {
        const char *paths[1] = {test_file};
        s = gopt_cifar10_load_files(paths, 1, &out->val);
        if (s != GOPT_OK) {
            cli_error("loading the test file: %s", gopt_last_error());
            gopt_dataset_destroy(all);
            return -1;
        }
        out->train = all;
        snprintf(out->source, sizeof out->source, "%s: %lld training images; evaluation on %s (%lld images)",
                 dir ? dir : "built-in synthetic data", (long long)gopt_dataset_count(all), test_file,
                 (long long)gopt_dataset_count(out->val));
        return 0;
    }
    s = gopt_dataset_split(all, val_split, 0, seed, &out->train, &out->val);
    int64_t total = gopt_dataset_count(all);
    gopt_dataset_destroy(all);
    if (s != GOPT_OK) {
        cli_error("--val-split %lld: %s", (long long)val_split, gopt_last_error());
        return -1;
    }
    if (dir)
        snprintf(out->source, sizeof out->source,
                 "CIFAR-10 in %s: %lld training images, the last %lld held out for validation%s", dir,
                 (long long)(total - val_split), (long long)val_split,
                 val_split == 10000 && total == 50000 ? " (data_batch_1..4 train, data_batch_5 validation)" : "");
    else
        snprintf(out->source, sizeof out->source,
                 "built-in synthetic dataset (no CIFAR-10 directory given): %lld training and %lld validation "
                 "images of 10 classes",
                 (long long)(total - val_split), (long long)val_split);
    return 0;
}

void cli_data_free(cli_data *d) {
    gopt_dataset_destroy(d->train);
    gopt_dataset_destroy(d->val);
    memset(d, 0, sizeof *d);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void cli_progress(FILE *f, int is_tty, const char *label, int64_t done, int64_t total, double loss, double acc,
                  double lr, double rate, const char *unit, double eta_s, int final) {
    char eta[32];
    format_duration(eta, sizeof eta, eta_s);
    if (is_tty) {
        const int width = 24;
        int filled = total > 0 ? (int)(width * done / total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(f, "\r%s [%s] %lld/%lld loss %.4f acc %5.1f%% lr %.3g %6.0f %s/s ETA %s\033[K", label, bar,
                (long long)done, (long long)total, loss, 100 * acc, lr, rate, unit, eta);
        if (final) fputc('\n', f);
        fflush(f);
    } else {
        fprintf(f, "%s %lld/%lld loss %.4f acc %.1f%% lr %.3g %.0f %s/s ETA %s\n", label, (long long)done,
                (long long)total, loss, 100 * acc, lr, rate, unit, eta);
        fflush(f);
    }
}

/* ---- option tables (cli.h) ------------------------------------------------------------------ */

enum { VAL_BASE = 256, VAL_PRINT = 255 };

static const char *const print_config_help = "print the configuration after parsing the options and exit (nothing runs)";

/* The i-th option over all groups, and its group. */
static const cli_opt *flat_opt(const cli_spec *spec, size_t i, const cli_group **group) {
    for (size_t g = 0; g < spec->ngroups; g++) {
        if (i < spec->groups[g].count) {
            if (group) *group = &spec->groups[g];
            return &spec->groups[g].opts[i];
        }
        i -= spec->groups[g].count;
    }
    return NULL;
}

static size_t total_opts(const cli_spec *spec) {
    size_t n = 0;
    for (size_t g = 0; g < spec->ngroups; g++) n += spec->groups[g].count;
    return n;
}

static int apply(const cli_opt *o, void *base, const char *v) {
    void *t = (char *)base + o->off;
    long n;
    double d;
    switch (o->kind) {
    case CLI_FLAG: *(int *)t = 1; return 0;
    case CLI_FLAG_OFF: *(int *)t = 0; return 0;
    case CLI_INT:
        if (cli_int(o->name, v, (long)o->lo, (long)o->hi, &n)) return -1;
        *(int *)t = (int)n;
        return 0;
    case CLI_I64:
        if (cli_int(o->name, v, (long)o->lo, (long)o->hi, &n)) return -1;
        *(int64_t *)t = n;
        return 0;
    case CLI_U64:
        if (cli_int(o->name, v, (long)o->lo, (long)o->hi, &n)) return -1;
        *(uint64_t *)t = (uint64_t)n;
        return 0;
    case CLI_FLOAT:
        if (cli_double(o->name, v, o->lo, o->hi, &d)) return -1;
        *(float *)t = (float)d;
        return 0;
    case CLI_DOUBLE: return cli_double(o->name, v, o->lo, o->hi, (double *)t);
    case CLI_STR: *(const char **)t = v; return 0;
    case CLI_FN: return o->fn(base, o->name, v);
    }
    return -1;
}

/* "NAME" of "--NAME" or "--NAME=VALUE" as typed is exactly `name`: getopt_long's unambiguous
 * abbreviations are refused. */
static int typed_exactly(const char *elem, const char *name) {
    size_t len = strcspn(elem, "=");
    return !strncmp(elem, "--", 2) && len - 2 == strlen(name) && !strncmp(elem + 2, name, len - 2);
}

int cli_parse(cli_spec *spec, int argc, char **argv) {
    memset(spec->given, 0, sizeof spec->given);
    size_t total = total_opts(spec);
    if (total > CLI_MAX_OPTS) {
        cli_error("%zu options, more than the %d the parser takes", total, CLI_MAX_OPTS);
        return -1;
    }
    struct option *lo = calloc(total + 3, sizeof *lo);
    char **av = calloc((size_t)argc + 1, sizeof *av);
    struct hit {
        size_t idx;
        const char *value;
    } *hits = calloc((size_t)argc + 1, sizeof *hits);
    int rc = -1, nhits = 0;
    if (!lo || !av || !hits) {
        cli_error("out of memory parsing the options");
        goto done;
    }
    for (size_t i = 0; i < total; i++) {
        const cli_opt *o = flat_opt(spec, i, NULL);
        lo[i].name = o->name + 2; /* "--lr" -> "lr" */
        lo[i].has_arg = o->arg ? required_argument : no_argument;
        lo[i].val = VAL_BASE + (int)i;
    }
    lo[total].name = "help";
    lo[total].val = 'h';
    lo[total + 1].name = "print-config";
    lo[total + 1].val = VAL_PRINT;
    memcpy(av, argv, (size_t)argc * sizeof *av); /* getopt_long permutes: the caller's argv stays */
    int print = 0, c, li;
    opterr = 0;
    optind = 0; /* glibc: start afresh (another parse may have run) */
    while (li = -1, (c = getopt_long(argc, av, ":h", lo, &li)) != -1) {
        if (c == '?') {
            const char *bad = av[optind - 1];
            if (optopt >= VAL_BASE) cli_error("%s takes no value ('%s')", flat_opt(spec, (size_t)(optopt - VAL_BASE), NULL)->name, bad);
            else if (optopt == 'h' && !strncmp(bad, "--", 2)) cli_error("--help takes no value ('%s')", bad);
            else if (optopt == VAL_PRINT) cli_error("--print-config takes no value ('%s')", bad);
            else if (optopt) cli_error("unknown option '-%c' (see --help)", optopt);
            else if (!strncmp(bad, "--", 2)) cli_error("unknown option '%.*s' (see --help)", (int)strcspn(bad, "="), bad);
            else cli_error("unknown option '%s' (see --help)", bad);
            goto done;
        }
        if (c == ':') {
            cli_error("%s needs a value (see --help)",
                      optopt >= VAL_BASE ? flat_opt(spec, (size_t)(optopt - VAL_BASE), NULL)->name : av[optind - 1]);
            goto done;
        }
        if (li >= 0) {
            const char *elem = optarg && optarg == av[optind - 1] ? av[optind - 2] : av[optind - 1];
            if (!typed_exactly(elem, lo[li].name)) {
                cli_error("unknown option '%.*s' (see --help; did you mean --%s? options are not abbreviated)",
                          (int)strcspn(elem, "="), elem, lo[li].name);
                goto done;
            }
        }
        if (c == 'h') {
            cli_help(stdout, spec);
            rc = CLI_HELP;
            goto done;
        }
        if (c == VAL_PRINT) {
            print = 1;
            continue;
        }
        hits[nhits].idx = (size_t)(c - VAL_BASE);
        hits[nhits++].value = optarg;
    }
    if (optind < argc) {
        cli_error("unexpected argument '%s' (see --help)", av[optind]);
        goto done;
    }
    /* the early options, each group's preparation, then the rest in order */
    for (int pass = 0; pass < 2; pass++) {
        for (int h = 0; h < nhits; h++) {
            const cli_group *g;
            const cli_opt *o = flat_opt(spec, hits[h].idx, &g);
            if ((o->early == 0) != pass) continue;
            if (apply(o, g->base, hits[h].value)) goto done;
            spec->given[hits[h].idx] = 1;
        }
        for (size_t g = 0; pass == 0 && g < spec->ngroups; g++)
            if (spec->groups[g].prepare) spec->groups[g].prepare(spec->groups[g].base);
    }
    rc = print ? CLI_PRINT_CONFIG : CLI_RUN;
done:
    free(lo);
    free(av);
    free(hits);
    optind = 0;
    return rc;
}

int cli_given(const cli_spec *spec, const char *name) {
    size_t total = total_opts(spec);
    for (size_t i = 0; i < total; i++)
        if (!strcmp(flat_opt(spec, i, NULL)->name, name)) return spec->given[i];
    return 0;
}

/* The target's value as text (""; nothing to show). */
static void value_text(const cli_opt *o, const void *base, char *buf, size_t n) {
    const void *t = (const char *)base + o->off;
    buf[0] = '\0';
    switch (o->kind) {
    case CLI_FLAG:
    case CLI_FLAG_OFF: snprintf(buf, n, "%d", *(const int *)t); break;
    case CLI_INT: snprintf(buf, n, "%d", *(const int *)t); break;
    case CLI_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)t); break;
    case CLI_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)t); break;
    case CLI_FLOAT:
        if (isfinite(*(const float *)t)) snprintf(buf, n, "%g", (double)*(const float *)t);
        break;
    case CLI_DOUBLE:
        if (isfinite(*(const double *)t)) snprintf(buf, n, "%g", *(const double *)t);
        break;
    case CLI_STR:
        if (*(const char *const *)t) snprintf(buf, n, "%s", *(const char *const *)t);
        break;
    case CLI_FN: break;
    }
}

/* "  --name ARG" padded to the help column, then the help's lines, the default after them. */
static void help_line(FILE *f, const char *name, const char *arg, const char *help, const char *def) {
    enum { COL = 24 };
    int w = fprintf(f, "  %s%s%s", name, arg ? " " : "", arg ? arg : "");
    fprintf(f, "%*s", w < COL ? COL - w : 1, "");
    for (const char *p = help; *p;) {
        size_t len = strcspn(p, "\n");
        fwrite(p, 1, len, f);
        p += len;
        if (*p) {
            fprintf(f, "\n%*s", COL, "");
            p++;
        }
    }
    if (def && *def) fprintf(f, " (default %s)", def);
    fputc('\n', f);
}

void cli_help(FILE *f, const cli_spec *spec) {
    fprintf(f, "usage: %s\n", spec->usage);
    if (spec->about) fputs(spec->about, f);
    for (size_t g = 0; g < spec->ngroups; g++) {
        const cli_group *gr = &spec->groups[g];
        if (gr->heading) fprintf(f, "%s\n", gr->heading);
        for (size_t i = 0; i < gr->count; i++) {
            const cli_opt *o = &gr->opts[i];
            char def[128];
            if (o->def) snprintf(def, sizeof def, "%s", o->def);
            else if (o->kind == CLI_FLAG || o->kind == CLI_FLAG_OFF) def[0] = '\0';
            else value_text(o, gr->base, def, sizeof def);
            help_line(f, o->name, o->arg, o->help, def);
        }
        if (g == 0) {
            help_line(f, "--print-config", NULL, print_config_help, NULL);
            help_line(f, "-h, --help", NULL, "print this help and exit", NULL);
        }
        if (gr->notes) fputs(gr->notes, f);
    }
    if (spec->notes) fputs(spec->notes, f);
}

void cli_print_values(FILE *f, const cli_spec *spec) {
    for (size_t g = 0; g < spec->ngroups; g++)
        for (size_t i = 0; i < spec->groups[g].count; i++) {
            const cli_opt *o = &spec->groups[g].opts[i];
            char v[512];
            value_text(o, spec->groups[g].base, v, sizeof v);
            if (o->kind == CLI_FN) continue; /* the program prints what its handlers set */
            fprintf(f, "%s %s\n", o->name, *v ? v : "(none)");
        }
}
