/* train_cifar10: train a CIFAR ResNet on CIFAR-10 with any optimizer and schedule, with
 * validation, checkpoints every epoch, exact resume and a CSV/JSONL log.
 *
 *   build/examples/train_cifar10 --data DIR [--arch resnet8|20|32|56] [--epochs N] ...
 *   build/examples/train_cifar10 --help
 *
 * Options: "--lr 0.1" and "--lr=0.1" alike (getopt_long over the tables below and in
 * common/run.c and common/cli.c, which --help prints).
 *
 * Without --data it trains on a small built-in synthetic dataset and says so.
 *
 * Data parallel with the same options: mpirun -np P build/examples/train_cifar10 ... (each
 * process trains on its DistributedSampler share, batch / P images per step; see run.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"
#include "trainer.h"
#include "wait_policy.h"

/* The time-to-accuracy recipes (--recipe; README "Time to accuracy" says how they were
 * chosen): airbench's net at these widths, this many epochs, batch 256, Muon at its LR 0.02
 * on a one-cycle schedule (AdamW inside it for BatchNorm and the output layer), label
 * smoothing 0.2, flip test-time augmentation, a 5000-image validation split. */
#define RECIPE_FAST_EPOCHS 13
#define RECIPE_FAST_WIDTH 0.5f
#define RECIPE_30MIN_EPOCHS 13
#define RECIPE_30MIN_WIDTH 1.0f
#define RECIPE_ALGO GOPT_ALGO_MUON

/* The value of the last "--name V" or "--name=V" in argv before a "--", or NULL. */
static const char *argv_value(int argc, char **argv, const char *name) {
    const char *v = NULL;
    const size_t n = strlen(name);
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (strcmp(argv[i], name) == 0 && i + 1 < argc) v = argv[++i];
        else if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') v = argv[i] + n + 1;
    }
    return v;
}

typedef struct options {
    run_options run;
    const char *data;
    int64_t val_split, synth;
    int depth, arch;
    const char *recipe;
} options;

static int opt_recipe(void *base, const char *name, const char *v) {
    options *o = base;
    (void)name;
    if (strcmp(v, "fast") && strcmp(v, "30min")) {
        cli_error("--recipe: '%s' is not fast or 30min", v);
        return -1;
    }
    o->recipe = strcmp(v, "fast") == 0 ? "fast" : "30min";
    return 0;
}

static int opt_arch(void *base, const char *name, const char *v) {
    options *o = base;
    long n;
    (void)name;
    if (strcmp(v, "airbench") == 0) {
        o->arch = TRAINER_ARCH_AIRBENCH;
        return 0;
    }
    o->arch = TRAINER_ARCH_RESNET;
    if (strncmp(v, "resnet", 6) || cli_int("--arch", v + 6, 8, 1000, &n) || (n - 2) % 6) {
        cli_error("--arch: '%s' is not airbench, resnet8, resnet20, resnet32, resnet56 or another 6n+2", v);
        return -1;
    }
    o->depth = (int)n;
    return 0;
}

#define OO(f) offsetof(options, f)
static const cli_opt cifar_opts[] = {
    CLI_O("--data", "DIR", CLI_STR, OO(data), 0, 0, NULL,
     "CIFAR-10 binary directory (data_batch_1..5.bin); without it, a\n"
     "small built-in synthetic dataset is used (and said so)"),
    CLI_O("--val-split", "N", CLI_I64, OO(val_split), 1, 10000000, "10000, or 2000 on synthetic data",
     "hold out the last N training images for validation (10000 =\ndata_batch_5)"),
    {"--recipe", "R", CLI_FN, 0, 0, 0, "",
     "fast | 30min: the best this library does in 10 or 30 minutes of\n"
     "training on 2 cores (see Recipes below); options given override it", opt_recipe, 0},
    {"--arch", "A", CLI_FN, 0, 0, 0, "resnet8",
     "resnet8 | resnet20 | resnet32 | resnet56 (or another 6n+2) | airbench\n"
     "(airbench94's plain conv-pool net, Jordan 2024)", opt_arch, 0},
    CLI_O("--width", "K", CLI_FLOAT, OO(run.tc.width), 0.05, 16, "per recipe",
     "width multiplier (ResNet widths 16K-32K-64K, airbench 64K-256K-256K)"),
    CLI_O("--tta", NULL, CLI_FLAG, OO(run.tc.tta), 0, 0, "per recipe",
     "evaluate with flip test-time augmentation (logits of each image and\nits mirror image averaged)"),
    CLI_O("--no-augment", NULL, CLI_FLAG_OFF, OO(run.tc.augment), 0, 0, NULL, "no random crop / flip"),
    CLI_O("--crop-padding", "P", CLI_INT, OO(run.tc.crop_padding), 0, 16, "4",
     "the random crop's zero padding in pixels (0: flips only)"),
    CLI_O("--synthetic-size", "N", CLI_I64, OO(synth), 200, 10000000, NULL, "images in the built-in dataset"),
    CLI_O("--sync-bn", NULL, CLI_FLAG, OO(run.tc.sync_bn), 0, 0, NULL,
     "under mpirun: SyncBatchNorm, batch statistics over the global batch\n(default: per process, as DDP)"),
};
#undef OO

static const char cifar_notes[] =
    "  Each process reads every epoch's shuffled order and takes positions r, r + P, ...\n"
    "  (DistributedSampler); the tail that does not fill a global batch is dropped, as alone\n"
    "  (with fewer images than one global batch, the share is padded by repeating the start).\n"
    "  Validation: each process evaluates a contiguous 1/P of the set, with rank 0's BatchNorm\n"
    "  statistics; the sums are reduced, so the figures are those of the whole set.\n"
    "Recipes (used unless overridden):\n"
    "  resnet8:  width 1, 12 epochs, SGD nesterov momentum 0.9, lr 0.4, wd 5e-4, one-cycle,\n"
    "            label smoothing 0.1, crop+flip, batch 128\n"
    "  resnet20+: 50 epochs, SGD nesterov momentum 0.9, lr 0.2, wd 5e-4, one-cycle,\n"
    "            label smoothing 0.1, crop+flip, batch 128\n"
    "  airbench: width 0.5, 12 epochs, otherwise as resnet8\n"
    "  --recipe fast:  airbench width 0.5, 13 epochs, batch 256, Muon (lr 0.02, momentum\n"
    "            0.95 nesterov, wd 0.1; AdamW at lr 0.002 for BatchNorm and fc), one-cycle,\n"
    "            label smoothing 0.2, crop+flip, flip TTA, the last 5000 images for\n"
    "            validation (README: 88.3% in 525 s of training on 2 Zen 4 cores)\n"
    "  --recipe 30min: the same at width 1 (README: 91.1% in 1432 s on 2 Zen 4 cores)\n";

/* CLI_RUN: parsed; CLI_HELP: --help printed; CLI_PRINT_CONFIG: --print-config; -1: an
 * error printed. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    trainer_config tc = trainer_config_default();
    tc.optim = gopt_optim_config_default(GOPT_ALGO_SGD);
    tc.optim.momentum = 0.9f;
    tc.optim.nesterov = 1;
    tc.optim.weight_decay = 5e-4f;
    run_options_init(&o->run, &tc);
    run_options *r = &o->run;
    /* a recipe's optimizer, unless one is named: set before parsing, as --optimizer would be
     * (its defaults first, then any hyperparameter given) */
    if (argv_value(argc, argv, "--recipe") && !argv_value(argc, argv, "--optimizer") &&
        !argv_value(argc, argv, "--optim")) {
        r->algo = RECIPE_ALGO;
        r->tc.optim = gopt_optim_config_default(RECIPE_ALGO);
    }
    o->val_split = -1;
    o->synth = 6000;
    o->depth = 8;
    cli_group groups[3] = {{NULL, cifar_opts, CLI_COUNT(cifar_opts), o, NULL, NULL}};
    run_cli_groups(r, "Training options shared with train_text:", groups + 1);
    cli_spec spec = {.usage = "train_cifar10 [options]", .groups = groups, .ngroups = 3, .notes = cifar_notes};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed;
    run_options_given(r, &spec);
    /* the recipe, for what was not given */
    if (o->recipe && !cli_given(&spec, "--arch")) o->arch = TRAINER_ARCH_AIRBENCH;
    r->tc.arch = o->arch;
    r->tc.depth = o->depth;
    const int fast = o->recipe && strcmp(o->recipe, "fast") == 0, airbench = o->arch == TRAINER_ARCH_AIRBENCH;
    if (o->recipe) { /* with --arch resnetN: the ResNet at width 1 under the recipe's training */
        if (!r->have_epochs) r->epochs = fast ? RECIPE_FAST_EPOCHS : RECIPE_30MIN_EPOCHS;
        if (!cli_given(&spec, "--width") && airbench) r->tc.width = fast ? RECIPE_FAST_WIDTH : RECIPE_30MIN_WIDTH;
        if (!r->have_batch) r->tc.batch = 256;
        if (!cli_given(&spec, "--tta")) r->tc.tta = 1;
        if (!r->have_ls) r->tc.label_smoothing = 0.2f;
        if (o->val_split < 0 && o->data) o->val_split = 5000;
    }
    if (!r->have_epochs && !o->recipe) r->epochs = o->depth == 8 || airbench ? 12 : 50;
    if (!cli_given(&spec, "--width") && !(o->recipe && airbench)) r->tc.width = airbench ? 0.5f : 1.0f;
    if (!r->have_lr)
        r->tc.optim.lr = r->algo == GOPT_ALGO_SGD ? (o->depth == 8 || airbench ? 0.4f : 0.2f) : cli_default_lr(r->algo);
    if (!r->have_ls && !o->recipe) r->tc.label_smoothing = 0.1f;
    if (!r->have_sched && !cli_is_schedulefree(r->algo)) r->tc.schedule = SCHED_ONECYCLE;
    if (o->val_split < 0) o->val_split = o->data ? 10000 : o->synth / 5;
    return run_options_finish(r) ? -1 : parsed;
}

static void describe(const options *o, const run_world *w, char *buf, size_t n) {
    char shared[768];
    run_options_describe(&o->run, w, shared, sizeof shared);
    char arch[16];
    if (o->arch == TRAINER_ARCH_AIRBENCH) snprintf(arch, sizeof arch, "airbench");
    else snprintf(arch, sizeof arch, "resnet%d", o->depth);
    char recipe[24] = "";
    if (o->recipe) snprintf(recipe, sizeof recipe, "recipe=%s ", o->recipe);
    snprintf(buf, n, "%sarch=%s width=%g augment=%d crop_padding=%d tta=%d %s", recipe, arch, o->run.tc.width,
             o->run.tc.augment, o->run.tc.crop_padding, o->run.tc.tta, shared);
}

static int eval_cifar(void *ctx, trainer *t, double *loss, double *acc, char *err, size_t errlen) {
    return trainer_evaluate(t, (const gopt_dataset *)ctx, loss, acc, err, errlen);
}

int main(int argc, char **argv) {
    wait_policy_default_passive(argv); /* before OpenMP starts any thread: see wait_policy.h */
    /* A checkpoint or log growing past the file size limit (`ulimit -f`) must be an error
     * the program reports (EFBIG: which file, why) and not the end of the process by
     * SIGXFSZ (exit status 153). The library never changes signal dispositions; a program may. */
    signal(SIGXFSZ, SIG_IGN);
    run_world w;
    if (run_world_init(&w, argc, argv)) return 1;
    options o;
    int parsed = parse_args(argc, argv, &o);
    if (parsed < 0 || parsed == CLI_HELP) return run_world_exit(&w, 0, parsed < 0 ? 2 : 0);
    run_options *r = &o.run;
    if (parsed == CLI_PRINT_CONFIG) {
        char desc[1024];
        describe(&o, &w, desc, sizeof desc);
        printf("config: %s data=%s val_split=%lld synthetic_size=%lld\n", desc, o.data ? o.data : "(built-in)",
               (long long)o.val_split, (long long)o.synth);
        return run_world_exit(&w, 0, 0);
    }
    if (run_check_batch(r, &w)) return run_world_exit(&w, 0, 2);
    run_world_threads(&w, r->threads);
    r->tc.dist = run_world_dist(&w);
    char err[1024], desc[1024];
    trainer *t = NULL;
    int rc = 0;
    cli_data data;
    /* every rank reads the data (the same path on every host): agree before training */
    int loaded = cli_load_data(o.data, o.val_split, r->test, o.synth, r->tc.seed, &data);
    if ((rc = trainer_agree(r->tc.dist, loaded, err, sizeof err)) != 0) {
        if (!loaded) cli_error("%s", err);
        cli_data_free(&data);
        return run_world_exit(&w, rc, 1);
    }
    printf("data: %s\n", data.source);
    if (data.synthetic) printf("note: running on the built-in synthetic dataset, not CIFAR-10 (give --data DIR)\n");
    const char *ev = r->test ? "test" : "validation";

    describe(&o, &w, desc, sizeof desc);
    r->tc.verify_text = desc; /* every rank must run the same options */
    /* schedule length: steps per epoch from the loader, known once the trainer exists */
    r->tc.total_steps = 1;
    if ((rc = trainer_create(&r->tc, data.train, data.val, &t, err, sizeof err)) != 0) goto fail;
    int64_t spe = trainer_steps_per_epoch(t);
    trainer_destroy(t);
    t = NULL;
    r->tc.total_steps = spe * r->epochs;
    r->tc.warmup_steps = run_warmup_steps(r, spe);
    if ((rc = trainer_create(&r->tc, data.train, data.val, &t, err, sizeof err)) != 0) goto fail;
    printf("config: %s threads=%d\n", desc, gopt_get_threads());
    printf("model: %lld parameters, %lld steps per epoch\n", (long long)gopt_params_numel(gopt_net_params(trainer_net(t))),
           (long long)spe);
    if (w.size > 1)
        printf("data parallel: %d processes x %d images per step%s%s\n", w.size, r->tc.batch / w.size,
               r->zero ? ", ZeRO-1 optimizer state" : "", r->tc.sync_bn ? ", SyncBatchNorm" : "");
    if (r->resume) {
        if ((rc = trainer_load(t, r->resume, err, sizeof err)) != 0) goto fail;
        printf("resumed from %s at epoch %lld, step %lld\n", r->resume, (long long)trainer_epoch(t),
               (long long)trainer_steps(t));
    }
    run_spec spec = {"img", r->test ? "test" : "val", data.synthetic ? "synthetic data" : "CIFAR-10", desc, eval_cifar,
                     (void *)data.val};
    run_result res;
    if ((rc = run_loop(r, &spec, t, &res, err, sizeof err)) != 0) goto fail;
    printf("\nsummary: %s\n", desc);
    printf("  data: %s\n", data.source);
    run_print_steps(stdout, t, &res, "img");
    printf("  best %s accuracy %.2f%%%s\n", ev, 100 * res.best_eval_acc, trainer_diverged(t) ? " (run DIVERGED)" : "");
    int diverged = trainer_diverged(t);
    trainer_destroy(t);
    cli_data_free(&data);
    return run_world_exit(&w, 0, diverged ? 3 : 0);
fail:
    fputc('\n', stderr);
    cli_error("%s", err);
    /* a failure of this rank alone leaves at once (the others may wait in a collective) */
    if (rc == TRAINER_FAILED_ALL || w.size == 1) {
        trainer_destroy(t);
        cli_data_free(&data);
    }
    return run_world_exit(&w, rc, 1);
}
