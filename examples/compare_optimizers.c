/* compare_optimizers: the stability lab, the README's main job. Three scenarios, one
 * offline report (report.html, inline SVG) and CSV files per scenario:
 *
 *   resnet    CIFAR-10 ResNet: optimizers x {base, clip, warmup}, an LR sweep, and the LR
 *             strategies people choose between (constant, step, cosine, one-cycle,
 *             ReduceLROnPlateau, warmup then ReduceLROnPlateau) for SGD-Nesterov and Adam.
 *   sequence  the adding problem (T = 100, 200) with a tanh RNN and an LSTM, and a
 *             character language model: optimizers x {base, clip by norm, clip by value,
 *             warmup} over seeds and an LR sweep.
 *   depth     plain MLPs of 10, 20 and 50 layers (sigmoid, tanh, ReLU x default, Xavier, He
 *             init) against the same depth with BatchNorm and with residual blocks.
 *
 *   build/examples/compare_optimizers [--scenario all|resnet|sequence|depth[,...]] [--quick]
 *       [--data DIR] [--text FILE] [--out DIR] [--threads T] [--seed S] [--print-config]
 *
 * ("--seed 3" and "--seed=3" alike: getopt_long over lab_opts below, which --help prints.)
 *
 * Without CIFAR-10 (--data, $GOPT_CIFAR10_DIR, ./data/cifar10, ./data/cifar-10-batches-bin)
 * the image scenarios run on the built-in synthetic images; without a text (--text,
 * $GOPT_TEXT_FILE, ./data/tinyshakespeare/input.txt) the language model runs on the
 * built-in text. Both are said on the terminal and in the report. Same seed and thread
 * count: every number in the CSV files and the report is the same run to run (wall times
 * are kept apart, in timing.csv and in <span class="time">). The scenarios live in
 * examples/common/lab_*.c (lab.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lab.h"
#include "report.h"
#include "wait_policy.h"

enum { SC_RESNET, SC_SEQUENCE, SC_DEPTH, SC_COUNT };

static const struct scenario {
    const char *name, *title, *what;
    int (*run)(const lab_options *, lab_section *);
} scenarios[SC_COUNT] = {
    {"resnet", "CIFAR-10 ResNet: optimizers, clipping and learning-rate strategies",
     "A small BatchNorm ResNet on images, where gradients are well behaved: which optimizer and which LR "
     "strategy trains best, and how far each optimizer's LR can be pushed",
     lab_resnet},
    {"sequence", "Sequences: exploding and vanishing gradients through time",
     "The adding problem with a tanh RNN and an LSTM, and a character language model: clipping by norm and "
     "by value and warmup against exploding gradients, and the LSTM against vanishing ones",
     lab_sequence},
    {"depth", "Depth: vanishing gradients in deep plain nets",
     "MLPs of 10, 20 and 50 layers without BatchNorm or residuals under three initialisations, against the "
     "same depth with BatchNorm and with residual blocks",
     lab_depth},
};

typedef struct settings {
    lab_options lab;
    int run[SC_COUNT];
    const char *text_arg;
} settings;

static int dir_has_cifar(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    return access(path, R_OK) == 0;
}

static int parse_scenarios(const char *v, int run[SC_COUNT]) {
    memset(run, 0, SC_COUNT * sizeof run[0]);
    if (!strcmp(v, "all")) {
        for (int i = 0; i < SC_COUNT; i++) run[i] = 1;
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    int any = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < SC_COUNT; i++)
            if (!strcmp(tok, scenarios[i].name)) found = i;
        if (found < 0) {
            cli_error("--scenario: unknown scenario '%s' (expected all, resnet, sequence or depth, "
                      "or a comma-separated list of them)", tok);
            return -1;
        }
        run[found] = any = 1;
    }
    if (!any) {
        cli_error("--scenario: empty list (expected all, resnet, sequence or depth)");
        return -1;
    }
    return 0;
}

static int opt_scenario(void *base, const char *name, const char *v) {
    (void)name;
    return parse_scenarios(v, ((settings *)base)->run);
}

#define SO(f) offsetof(settings, f)
static const cli_opt lab_opts[] = {
    {"--scenario", "LIST", CLI_FN, 0, 0, 0, "all",
     "all, or one or more of resnet, sequence, depth separated by commas", opt_scenario, 0},
    CLI_O("--quick", NULL, CLI_FLAG, SO(lab.quick), 0, 0, NULL,
          "every scenario smaller: all three in a few minutes on 2 cores"),
    CLI_O("--data", "DIR", CLI_STR, SO(lab.cifar_dir), 0, 0, NULL,
          "CIFAR-10 binary directory (else $GOPT_CIFAR10_DIR, ./data/cifar10,\n"
          "./data/cifar-10-batches-bin; else the built-in synthetic images)"),
    CLI_O("--text", "FILE", CLI_STR, SO(text_arg), 0, 0, NULL,
          "text for the language model (else $GOPT_TEXT_FILE,\n"
          "./data/tinyshakespeare/input.txt; else the built-in text)"),
    CLI_O("--out", "DIR", CLI_STR, SO(lab.out_dir), 0, 0, NULL,
          "output directory: report.html, findings.md, <scenario>_*.csv,\ntiming.csv"),
    CLI_O("--threads", "T", CLI_INT, SO(lab.threads), 1, 1024, "all cores", "threads"),
    CLI_O("--seed", "S", CLI_U64, SO(lab.seed), 0, 2147483647L, NULL, "seed of weights, data order and data"),
};
#undef SO

/* CLI_RUN, CLI_HELP (printed), CLI_PRINT_CONFIG, or -1 after printing the error. */
static int parse(int argc, char **argv, settings *s) {
    memset(s, 0, sizeof *s);
    s->lab.out_dir = "results/compare";
    s->lab.seed = 1;
    for (int i = 0; i < SC_COUNT; i++) s->run[i] = 1;
    cli_group group = {NULL, lab_opts, CLI_COUNT(lab_opts), s, NULL, NULL};
    cli_spec spec = {.usage = "compare_optimizers [options]", .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed;
    if (s->lab.cifar_dir && !dir_has_cifar(s->lab.cifar_dir)) {
        cli_error("--data %s: no data_batch_1.bin there (CIFAR-10 binary version expected)", s->lab.cifar_dir);
        return -1;
    }
    if (!s->lab.cifar_dir) {
        const char *env = getenv("GOPT_CIFAR10_DIR");
        const char *candidates[] = {env, "data/cifar10", "data/cifar-10-batches-bin"};
        for (int i = 0; i < 3 && !s->lab.cifar_dir; i++)
            if (candidates[i] && *candidates[i] && dir_has_cifar(candidates[i])) s->lab.cifar_dir = candidates[i];
    }
    if (s->text_arg) {
        if (access(s->text_arg, R_OK)) {
            cli_error("--text %s: %s", s->text_arg, strerror(errno));
            return -1;
        }
        s->lab.text_path = s->text_arg;
    } else {
        const char *env = getenv("GOPT_TEXT_FILE");
        const char *candidates[] = {env, "data/tinyshakespeare/input.txt"};
        for (int i = 0; i < 2 && !s->lab.text_path; i++)
            if (candidates[i] && *candidates[i] && access(candidates[i], R_OK) == 0) s->lab.text_path = candidates[i];
    }
    return parsed;
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

/* The CPU's name from /proc/cpuinfo (or "unknown CPU"). */
static void cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

/* Write DIR/NAME through DIR/NAME.tmp and a rename, so that a failed run leaves the last
 * complete file in place. */
static FILE *open_tmp(const char *dir, const char *name, char *tmp, size_t n) {
    snprintf(tmp, n, "%s/%s.tmp", dir, name);
    FILE *f = fopen(tmp, "w");
    if (!f) fprintf(stderr, "error: cannot write '%s': %s\n", tmp, strerror(errno));
    return f;
}

static int commit_tmp(FILE *f, const char *tmp, const char *dir, const char *name) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "error: writing '%s' failed\n", tmp);
        remove(tmp);
        return -1;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (rename(tmp, path)) {
        fprintf(stderr, "error: cannot rename '%s' to '%s': %s\n", tmp, path, strerror(errno));
        return -1;
    }
    return 0;
}

static void write_report(FILE *f, const settings *st, const lab_section *sec, const double *seconds, double total,
                         const char *cpu) {
    report_begin(f, "libgradopt stability lab");
    fputs("<h1>Stability lab: optimizers against exploding and vanishing gradients</h1>\n", f);
    fputs("<p>Three scenarios, each where a different instability lives. Every run in a comparison starts from the "
          "same initial weights and sees the same data in the same order, so the differences come from the "
          "optimizer, the clipping, the schedule, the initialisation or the architecture alone.</p>\n",
          f);
    fprintf(f, "<p>Seed %llu, %d thread(s)%s. Machine: ", (unsigned long long)st->lab.seed, gopt_get_threads(),
            st->lab.quick ? ", <b>--quick</b> (every scenario smaller than the full lab)" : "");
    report_escape(f, cpu);
    fprintf(f, ". Wall time <span class=\"time\">%.0f s</span>.</p>\n", total);
    fputs("<nav><b>Contents</b><ol>\n", f);
    for (int i = 0; i < SC_COUNT; i++) {
        if (!st->run[i]) continue;
        fprintf(f, "<li><a href=\"#%s\">", scenarios[i].name);
        report_escape(f, scenarios[i].title);
        fputs("</a></li>\n", f);
    }
    fputs("</ol></nav>\n", f);
    for (int i = 0; i < SC_COUNT; i++) {
        if (!st->run[i]) continue;
        fprintf(f, "<section id=\"%s\">\n<h2>", scenarios[i].name);
        report_escape(f, scenarios[i].title);
        fputs("</h2>\n<p>", f);
        report_escape(f, scenarios[i].what);
        fputs(".</p>\n", f);
        fprintf(f, "<p%s>Data: ", sec[i].builtin_data ? " class=\"note\"" : "");
        report_escape(f, sec[i].data);
        fprintf(f, ". Wall time <span class=\"time\">%.0f s</span>.</p>\n", seconds[i]);
        fputs("<p class=\"findings\"><b>Findings.</b> ", f);
        report_escape(f, sec[i].findings);
        fputs("</p>\n", f);
        if (sec[i].html) fputs(sec[i].html, f);
        fputs("</section>\n", f);
    }
    fputs("<p>Files beside this report: <code>findings.md</code> (the findings above), "
          "<code>&lt;scenario&gt;_*.csv</code> (every run and step), <code>timing.csv</code> (wall times).</p>\n",
          f);
    report_end(f);
}

static void write_findings(FILE *f, const settings *st, const lab_section *sec, const double *seconds,
                           const char *cpu) {
    fprintf(f, "# Stability lab findings\n\nSeed %llu, %d thread(s)%s, %s.\n", (unsigned long long)st->lab.seed,
            gopt_get_threads(), st->lab.quick ? ", --quick" : "", cpu);
    for (int i = 0; i < SC_COUNT; i++) {
        if (!st->run[i]) continue;
        fprintf(f, "\n## %s\n\nData: %s. Wall time %.0f s.\n\n%s\n", scenarios[i].title, sec[i].data, seconds[i],
                sec[i].findings);
    }
}

int main(int argc, char **argv) {
    wait_policy_default_passive(argv); /* before OpenMP starts any thread: see wait_policy.h */
    settings st;
    int parsed = parse(argc, argv, &st);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    if (parsed == CLI_PRINT_CONFIG) {
        printf("scenarios:");
        for (int i = 0; i < SC_COUNT; i++)
            if (st.run[i]) printf(" %s", scenarios[i].name);
        printf("\nquick: %d\nimages: %s\ntext: %s\nout: %s\nthreads: %d\nseed: %llu\n", st.lab.quick,
               st.lab.cifar_dir ? st.lab.cifar_dir : "(built-in synthetic)",
               st.lab.text_path ? st.lab.text_path : "(built-in)", st.lab.out_dir, st.lab.threads,
               (unsigned long long)st.lab.seed);
        return 0;
    }
    if (st.lab.threads) gopt_set_threads(st.lab.threads);
    st.lab.threads = gopt_get_threads();
    st.lab.tty = isatty(STDOUT_FILENO);
    if (mkdir_p(st.lab.out_dir)) {
        fprintf(stderr, "error: cannot create output directory '%s': %s\n", st.lab.out_dir, strerror(errno));
        return 1;
    }
    char tpath[1200];
    snprintf(tpath, sizeof tpath, "%s/timing.csv", st.lab.out_dir);
    st.lab.timing = fopen(tpath, "w");
    if (!st.lab.timing) {
        fprintf(stderr, "error: cannot write '%s': %s\n", tpath, strerror(errno));
        return 1;
    }
    fputs("scenario,item,seconds\n", st.lab.timing);
    char cpu[256];
    cpu_name(cpu, sizeof cpu);

    printf("stability lab: %s%s, seed %llu, %d thread(s), %s\n", st.lab.quick ? "quick, " : "",
           st.run[0] && st.run[1] && st.run[2] ? "all three scenarios" : "selected scenarios",
           (unsigned long long)st.lab.seed, st.lab.threads, cpu);
    printf("  images: %s\n", st.lab.cifar_dir ? st.lab.cifar_dir : "no CIFAR-10 given or found: the BUILT-IN SYNTHETIC images");
    printf("  text:   %s\n", st.lab.text_path ? st.lab.text_path : "no text given or found: the BUILT-IN text");

    lab_section sec[SC_COUNT];
    double seconds[SC_COUNT] = {0}, t0 = cli_now();
    memset(sec, 0, sizeof sec);
    int rc = 0;
    for (int i = 0; i < SC_COUNT && !rc; i++) {
        if (!st.run[i]) continue;
        printf("\n== scenario %s: %s\n", scenarios[i].name, scenarios[i].title);
        fflush(stdout);
        double s0 = cli_now();
        if (scenarios[i].run(&st.lab, &sec[i])) {
            fprintf(stderr, "error: scenario %s failed; the previous report (if any) is left as it was\n",
                    scenarios[i].name);
            rc = 1;
            break;
        }
        seconds[i] = cli_now() - s0;
        lab_timing(&st.lab, scenarios[i].name, "section", seconds[i]);
        printf("== %s done in %.0f s on %s\n   %s\n", scenarios[i].name, seconds[i], sec[i].data, sec[i].findings);
    }
    double total = cli_now() - t0;
    if (!rc) lab_timing(&st.lab, "all", "total", total);
    if (fclose(st.lab.timing)) rc = 1;

    char tmp[1200];
    FILE *f;
    if (!rc && (f = open_tmp(st.lab.out_dir, "report.html", tmp, sizeof tmp))) {
        write_report(f, &st, sec, seconds, total, cpu);
        if (commit_tmp(f, tmp, st.lab.out_dir, "report.html")) rc = 1;
    } else rc = 1;
    if (!rc && (f = open_tmp(st.lab.out_dir, "findings.md", tmp, sizeof tmp))) {
        write_findings(f, &st, sec, seconds, cpu);
        if (commit_tmp(f, tmp, st.lab.out_dir, "findings.md")) rc = 1;
    } else rc = 1;
    for (int i = 0; i < SC_COUNT; i++) free(sec[i].html);
    if (rc) return 1;
    int any_builtin = 0;
    for (int i = 0; i < SC_COUNT; i++) any_builtin |= st.run[i] && sec[i].builtin_data;
    printf("\ndone in %.0f s%s. Report: %s/report.html (findings.md, <scenario>_*.csv, timing.csv beside it)\n", total,
           any_builtin ? " (some scenarios on BUILT-IN data: see above)" : "", st.lab.out_dir);
    return 0;
}
