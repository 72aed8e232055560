/* train_cifar10: train a CIFAR ResNet on CIFAR-10 with any optimizer and schedule, with
 * validation, checkpoints every epoch, exact resume and a CSV/JSONL log.
 *
 *   build/examples/train_cifar10 --data DIR [--arch resnet8|20|32|56] [--epochs N] ...
 *   build/examples/train_cifar10 --help
 *
 * Without --data it trains on a small built-in synthetic dataset and says so. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "trainer.h"

static void usage(FILE *f) {
    fputs("usage: train_cifar10 [options]\n"
          "  --data DIR            CIFAR-10 binary directory (data_batch_1..5.bin); without it, a\n"
          "                        small built-in synthetic dataset is used (and said so)\n"
          "  --val-split N         hold out the last N training images for validation (10000 =\n"
          "                        data_batch_5); default 10000, or 2000 on synthetic data\n"
          "  --test FILE           evaluate on FILE (e.g. test_batch.bin) instead of a split\n"
          "  --arch A              resnet8 | resnet20 | resnet32 | resnet56 (default resnet8)\n"
          "  --width K             width multiplier (widths 16K-32K-64K; default per recipe)\n"
          "  --epochs N            default per recipe\n"
          "  --batch B             default 128\n"
          "  --optimizer NAME      sgd adagrad rmsprop adam adamw adadelta nadam radam adamax lion lamb\n"
          "  --lr X --momentum X --nesterov 0|1 --wd X --dampening X --beta1 X --beta2 X --eps X\n"
          "  --alpha X --rho X --amsgrad 0|1 --centered 0|1 --lr-decay X --momentum-decay X\n"
          "  --lookahead-k K --lookahead-alpha X     hyperparameters, torch.optim names\n"
          "  --decay-norm-bias     apply weight decay to biases and BatchNorm too (default: exempt)\n"
          "  --schedule S          onecycle | cosine | step | multistep | exponential | plateau | constant\n"
          "  --warmup E            linear warmup over E epochs (fractions allowed)\n"
          "  --clip-norm X         clip the global L2 gradient norm to X\n"
          "  --agc X               adaptive gradient clipping with factor X\n"
          "  --label-smoothing X   default per recipe\n"
          "  --accum K             accumulate K micro-batches per optimizer step\n"
          "  --no-augment          no random crop / flip\n"
          "  --threads T           busy cores (default: all)\n"
          "  --seed S              weights, data order, augmentation (default 1)\n"
          "  --checkpoint PATH     save a checkpoint after every epoch (atomic)\n"
          "  --resume PATH         continue a run from its checkpoint, bit-exactly\n"
          "  --max-steps N         stop after N optimizer steps (for tests and timing)\n"
          "  --log FILE            per-step log, CSV (.csv) or JSON lines (.jsonl)\n"
          "  --synthetic-size N    images in the built-in dataset (default 6000)\n"
          "  --help\n"
          "Recipes (used unless overridden):\n"
          "  resnet8:  width 1, 12 epochs, SGD nesterov momentum 0.9, lr 0.4, wd 5e-4, one-cycle,\n"
          "            label smoothing 0.1, crop+flip, batch 128\n"
          "  resnet20+: 50 epochs, SGD nesterov momentum 0.9, lr 0.2, wd 5e-4, one-cycle,\n"
          "            label smoothing 0.1, crop+flip, batch 128\n"
          "  fast:     --arch resnet20 --epochs 12 (README: 83.7% validation in 7 minutes on 2 cores)\n",
          f);
}

typedef struct options {
    const char *data, *test, *checkpoint, *resume, *log;
    int64_t val_split, synth;
    int epochs, threads;
    double warmup_epochs;
    int64_t max_steps;
    int depth;
    trainer_config tc;
    int have_lr, have_width, have_epochs, have_ls, have_sched;
} options;

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->tc = trainer_config_default();
    o->val_split = -1;
    o->synth = 6000;
    o->depth = 8;
    o->tc.optim = gopt_optim_config_default(GOPT_ALGO_SGD);
    o->tc.optim.momentum = 0.9f;
    o->tc.optim.nesterov = 1;
    o->tc.optim.weight_decay = 5e-4f;
    gopt_algo algo = GOPT_ALGO_SGD;
    /* first pass: the optimizer, so its defaults apply before the hyperparameters */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--optimizer") && i + 1 < argc) {
            if (gopt_algo_from_name(argv[i + 1], &algo) != GOPT_OK) {
                fprintf(stderr, "error: --optimizer: unknown algorithm '%s'\n", argv[i + 1]);
                return -1;
            }
            if (algo != GOPT_ALGO_SGD) o->tc.optim = gopt_optim_config_default(algo);
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--no-augment")) { o->tc.augment = 0; continue; }
        if (!strcmp(a, "--decay-norm-bias")) { o->tc.decay_norm_bias = 1; continue; }
        if (!v) {
            fprintf(stderr, "error: %s needs a value (see --help)\n", a);
            return -1;
        }
        i++;
        int r = cli_optim_option(a, v, &o->tc.optim);
        if (r < 0) return -1;
        if (r > 0) {
            if (!strcmp(a, "--lr")) o->have_lr = 1;
            continue;
        }
        if (!strcmp(a, "--optimizer")) continue;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--test")) o->test = v;
        else if (!strcmp(a, "--checkpoint")) o->checkpoint = v;
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--arch")) {
            if (strncmp(v, "resnet", 6) || cli_int("--arch", v + 6, 8, 1000, &n) || (n - 2) % 6) {
                fprintf(stderr, "error: --arch: '%s' is not resnet8, resnet20, resnet32, resnet56 or another 6n+2\n", v);
                return -1;
            }
            o->depth = (int)n;
        } else if (!strcmp(a, "--width")) {
            if (cli_double(a, v, 0.05, 16, &d)) return -1;
            o->tc.width = (float)d;
            o->have_width = 1;
        } else if (!strcmp(a, "--epochs")) {
            if (cli_int(a, v, 1, 100000, &n)) return -1;
            o->epochs = (int)n;
            o->have_epochs = 1;
        } else if (!strcmp(a, "--batch")) {
            if (cli_int(a, v, 1, 65536, &n)) return -1;
            o->tc.batch = (int)n;
        } else if (!strcmp(a, "--schedule")) {
            if (trainer_schedule_from_name(v, &o->tc.schedule)) {
                fprintf(stderr, "error: --schedule: unknown schedule '%s' (see --help)\n", v);
                return -1;
            }
            o->have_sched = 1;
        } else if (!strcmp(a, "--warmup")) {
            if (cli_double(a, v, 0, 1000, &o->warmup_epochs)) return -1;
        } else if (!strcmp(a, "--clip-norm")) {
            if (cli_double(a, v, 0, 1e30, &o->tc.clip_norm)) return -1;
        } else if (!strcmp(a, "--agc")) {
            if (cli_double(a, v, 0, 1e30, &o->tc.agc)) return -1;
        } else if (!strcmp(a, "--label-smoothing")) {
            if (cli_double(a, v, 0, 1, &d)) return -1;
            o->tc.label_smoothing = (float)d;
            o->have_ls = 1;
        } else if (!strcmp(a, "--accum")) {
            if (cli_int(a, v, 1, 1024, &n)) return -1;
            o->tc.accum = (int)n;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int(a, v, 1, 1024, &n)) return -1;
            o->threads = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, 2147483647L, &n)) return -1;
            o->tc.seed = (uint64_t)n;
        } else if (!strcmp(a, "--val-split")) {
            if (cli_int(a, v, 1, 10000000, &n)) return -1;
            o->val_split = n;
        } else if (!strcmp(a, "--max-steps")) {
            if (cli_int(a, v, 1, 1000000000L, &n)) return -1;
            o->max_steps = n;
        } else if (!strcmp(a, "--synthetic-size")) {
            if (cli_int(a, v, 200, 10000000, &n)) return -1;
            o->synth = n;
        } else {
            fprintf(stderr, "error: unknown option '%s' (see --help)\n", a);
            return -1;
        }
    }
    /* the recipe, for what was not given */
    o->tc.depth = o->depth;
    if (!o->have_epochs) o->epochs = o->depth == 8 ? 12 : 50;
    if (!o->have_width) o->tc.width = 1.0f;
    if (!o->have_lr) o->tc.optim.lr = algo == GOPT_ALGO_SGD ? (o->depth == 8 ? 0.4f : 0.2f) : cli_default_lr(algo);
    if (!o->have_ls) o->tc.label_smoothing = 0.1f;
    if (!o->have_sched) o->tc.schedule = SCHED_ONECYCLE;
    if (o->val_split < 0) o->val_split = o->data ? 10000 : o->synth / 5;
    return 0;
}

static void describe(const options *o, char *buf, size_t n) {
    const gopt_optim_config *c = &o->tc.optim;
    snprintf(buf, n,
             "arch=resnet%d width=%g epochs=%d batch=%d optimizer=%s lr=%g momentum=%g nesterov=%d wd=%g "
             "beta1=%g beta2=%g eps=%g schedule=%s warmup=%g clip_norm=%g agc=%g label_smoothing=%g accum=%d "
             "augment=%d seed=%llu",
             o->depth, o->tc.width, o->epochs, o->tc.batch, gopt_algo_name(c->algo), c->lr, c->momentum, c->nesterov,
             c->weight_decay, c->beta1, c->beta2, c->eps, trainer_schedule_name(o->tc.schedule), o->warmup_epochs,
             o->tc.clip_norm, o->tc.agc, o->tc.label_smoothing, o->tc.accum, o->tc.augment,
             (unsigned long long)o->tc.seed);
}

int main(int argc, char **argv) {
    options o;
    if (parse_args(argc, argv, &o)) return 2;
    if (o.threads) gopt_set_threads(o.threads);
    cli_data data;
    if (cli_load_data(o.data, o.val_split, o.test, o.synth, o.tc.seed, &data)) return 1;
    printf("data: %s\n", data.source);
    if (data.synthetic) printf("note: running on the built-in synthetic dataset, not CIFAR-10 (give --data DIR)\n");

    char err[1024], desc[1024];
    /* schedule length: steps per epoch from the loader, known once the trainer exists */
    trainer *t = NULL;
    o.tc.total_steps = 1;
    if (trainer_create(&o.tc, data.train, data.val, &t, err, sizeof err)) goto fail;
    int64_t spe = trainer_steps_per_epoch(t);
    trainer_destroy(t);
    t = NULL;
    o.tc.total_steps = spe * o.epochs;
    o.tc.warmup_steps = o.tc.schedule == SCHED_PLATEAU ? (int64_t)ceil(o.warmup_epochs)
                                                         : (int64_t)llround(o.warmup_epochs * (double)spe);
    if (trainer_create(&o.tc, data.train, data.val, &t, err, sizeof err)) goto fail;
    describe(&o, desc, sizeof desc);
    printf("config: %s threads=%d\n", desc, gopt_get_threads());
    printf("model: %lld parameters, %lld steps per epoch\n", (long long)gopt_params_numel(gopt_net_params(trainer_net(t))),
           (long long)spe);
    if (o.resume) {
        if (trainer_load(t, o.resume, err, sizeof err)) goto fail;
        printf("resumed from %s at epoch %lld, step %lld\n", o.resume, (long long)trainer_epoch(t),
               (long long)trainer_steps(t));
    }

    FILE *log = NULL;
    int jsonl = 0;
    if (o.log) {
        size_t len = strlen(o.log);
        jsonl = len > 6 && !strcmp(o.log + len - 6, ".jsonl");
        log = fopen(o.log, o.resume ? "a" : "w");
        if (!log) {
            snprintf(err, sizeof err, "cannot open log '%s'", o.log);
            goto fail;
        }
        if (!jsonl && !o.resume) fprintf(log, "step,epoch,loss,acc,lr,grad_norm,update_ratio,applied,val_loss,val_acc\n");
    }

    int tty = isatty(STDOUT_FILENO);
    double t0 = cli_now(), best_acc = 0;
    int64_t total = o.tc.total_steps;
    if (o.max_steps && o.max_steps < total) total = o.max_steps;
    int64_t images = 0;
    double loss_ema = NAN, acc_ema = NAN;
    while (trainer_steps(t) < total && !trainer_diverged(t)) {
        trainer_step st;
        int epoch_done;
        if (trainer_step_once(t, &st, &epoch_done, err, sizeof err)) goto fail;
        images += st.images;
        loss_ema = isnan(loss_ema) ? st.loss : 0.95 * loss_ema + 0.05 * st.loss;
        acc_ema = isnan(acc_ema) ? st.acc : 0.95 * acc_ema + 0.05 * st.acc;
        double el = cli_now() - t0, ips = images / el;
        double eta = (double)(total - trainer_steps(t)) * el / (double)(images / o.tc.batch);
        char label[32];
        snprintf(label, sizeof label, "epoch %lld/%d", (long long)st.epoch + 1, o.epochs);
        int64_t in_epoch = (st.step - 1) % spe + 1;
        if (tty || epoch_done || in_epoch % 50 == 0)
            cli_progress(stdout, tty, label, in_epoch, spe, loss_ema, acc_ema, st.lr, ips, eta, 0);
        double vl = NAN, va = NAN;
        int last = trainer_steps(t) >= total || trainer_diverged(t);
        if (epoch_done || last) {
            if (trainer_evaluate(t, data.val, &vl, &va, err, sizeof err)) goto fail;
            if (trainer_end_epoch(t, vl, err, sizeof err)) goto fail;
            if (va > best_acc) best_acc = va;
            if (tty) fputc('\n', stdout);
            printf("epoch %lld: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | lr %.4g | %.0f img/s | %s\n",
                   (long long)st.epoch + 1, loss_ema, 100 * acc_ema, vl, 100 * va, st.lr, ips,
                   data.synthetic ? "synthetic data" : "CIFAR-10");
            fflush(stdout);
            if (o.checkpoint) {
                if (trainer_save(t, o.checkpoint, desc, err, sizeof err)) goto fail;
            }
        }
        if (log) {
            if (jsonl)
                fprintf(log,
                        "{\"step\":%lld,\"epoch\":%lld,\"loss\":%.6g,\"acc\":%.6g,\"lr\":%.6g,\"grad_norm\":%.6g,"
                        "\"update_ratio\":%.6g,\"applied\":%d,\"val_loss\":%.6g,\"val_acc\":%.6g}\n",
                        (long long)st.step, (long long)st.epoch, st.loss, st.acc, st.lr, st.grad_norm,
                        isfinite(st.update_ratio) ? st.update_ratio : -1, st.applied, isfinite(vl) ? vl : -1,
                        isfinite(va) ? va : -1);
            else
                fprintf(log, "%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%.6g,%.6g\n", (long long)st.step, (long long)st.epoch,
                        st.loss, st.acc, st.lr, st.grad_norm, st.update_ratio, st.applied, vl, va);
        }
    }
    gopt_monitor_counts mc;
    gopt_monitor_counts_get(trainer_monitor(t), &mc);
    double wall = cli_now() - t0;
    printf("\nsummary: %s\n", desc);
    printf("  data: %s\n", data.source);
    printf("  %lld optimizer steps (%lld applied, %lld skipped non-finite, %lld skipped spikes) in %.1f s, %.0f img/s\n",
           (long long)trainer_steps(t), (long long)mc.applied, (long long)mc.skipped_nonfinite,
           (long long)mc.skipped_spike, wall, images / wall);
    printf("  best validation accuracy %.2f%%%s\n", 100 * best_acc, trainer_diverged(t) ? " (run DIVERGED)" : "");
    int diverged = trainer_diverged(t);
    if (log) fclose(log);
    trainer_destroy(t);
    cli_data_free(&data);
    return diverged ? 3 : 0;
fail:
    fprintf(stderr, "\nerror: %s\n", err);
    trainer_destroy(t);
    cli_data_free(&data);
    return 1;
}
