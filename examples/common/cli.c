/* See cli.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
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

static const struct optim_opt {
    const char *name;
    size_t offset;
    int is_int;
} optim_opts[] = {
    {"--lr", offsetof(gopt_optim_config, lr), 0},
    {"--momentum", offsetof(gopt_optim_config, momentum), 0},
    {"--wd", offsetof(gopt_optim_config, weight_decay), 0},
    {"--weight-decay", offsetof(gopt_optim_config, weight_decay), 0},
    {"--dampening", offsetof(gopt_optim_config, dampening), 0},
    {"--nesterov", offsetof(gopt_optim_config, nesterov), 1},
    {"--beta1", offsetof(gopt_optim_config, beta1), 0},
    {"--beta2", offsetof(gopt_optim_config, beta2), 0},
    {"--eps", offsetof(gopt_optim_config, eps), 0},
    {"--alpha", offsetof(gopt_optim_config, alpha), 0},
    {"--rho", offsetof(gopt_optim_config, rho), 0},
    {"--amsgrad", offsetof(gopt_optim_config, amsgrad), 1},
    {"--centered", offsetof(gopt_optim_config, centered), 1},
    {"--lr-decay", offsetof(gopt_optim_config, lr_decay), 0},
    {"--momentum-decay", offsetof(gopt_optim_config, momentum_decay), 0},
    {"--lookahead-k", offsetof(gopt_optim_config, lookahead_k), 1},
    {"--lookahead-alpha", offsetof(gopt_optim_config, lookahead_alpha), 0},
    /* every algorithm: coupled L1, g += l1*sign(p) */
    {"--l1", offsetof(gopt_optim_config, l1), 0},
    /* Schedule-Free: the optimizer's own linear warmup (in steps), the average's weighting */
    {"--warmup-steps", offsetof(gopt_optim_config, warmup_steps), 1},
    {"--r", offsetof(gopt_optim_config, r), 0},
    {"--weight-lr-power", offsetof(gopt_optim_config, weight_lr_power), 0},
    /* Muon, and its AdamW for what it does not take */
    {"--ns-steps", offsetof(gopt_optim_config, ns_steps), 1},
    {"--adamw-lr-ratio", offsetof(gopt_optim_config, adamw_lr_ratio), 0},
    {"--adamw-eps", offsetof(gopt_optim_config, adamw_eps), 0},
    {"--adamw-wd", offsetof(gopt_optim_config, adamw_weight_decay), 0},
    /* Adafactor */
    {"--beta2-decay", offsetof(gopt_optim_config, beta2_decay), 0},
    {"--eps2", offsetof(gopt_optim_config, eps2), 0},
    {"--clip-threshold", offsetof(gopt_optim_config, clip_threshold), 0},
};

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

int cli_is_optim_option(const char *name) {
    for (size_t i = 0; i < sizeof optim_opts / sizeof optim_opts[0]; i++)
        if (strcmp(name, optim_opts[i].name) == 0) return 1;
    return 0;
}

int cli_optim_option(const char *name, const char *value, gopt_optim_config *cfg) {
    const struct optim_opt *opts = optim_opts;
    const size_t count = sizeof optim_opts / sizeof optim_opts[0];
    for (size_t i = 0; i < count; i++) {
        if (strcmp(name, opts[i].name) != 0) continue;
        char *field = (char *)cfg + opts[i].offset;
        if (opts[i].is_int) {
            long v;
            if (cli_int(name, value, 0, 1000000, &v)) return -1;
            *(int *)field = (int)v;
        } else {
            double v;
            if (cli_double(name, value, -1e30, 1e30, &v)) return -1;
            *(float *)field = (float)v;
        }
        return 1;
    }
    return 0;
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
