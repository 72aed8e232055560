/* train_text: a character-level language model on any text file: embedding -> LSTM / GRU /
 * RNN -> linear over every time step, trained with any optimizer, schedule, clipping and
 * monitor option train_cifar10 has (the code is shared: examples/common/run.c, trainer.c),
 * with checkpoints and bit-exact resume, a CSV/JSONL log, a generated sample at the end,
 * and `val loss X` (mean nats per character over the validation split) as the last line.
 *
 *   build/examples/train_text --data ../shared/data/tinyshakespeare/input.txt --max-seconds 180
 *   build/examples/train_text --help
 *
 * Options: "--lr 0.1" and "--lr=0.1" alike (getopt_long over the tables below and in
 * common/run.c and common/cli.c, which --help prints).
 *
 * Data: the first 90% of the file trains, the last 10% validates (or --test FILE, encoded
 * with the training file's vocabulary, is the held-out set: then the last line is
 * `test loss X`). The vocabulary is the file's distinct bytes.
 *
 * Data parallel with the same options: mpirun -np P build/examples/train_text ... (rank r
 * trains on sequences r, r + P, ... of each global batch; see task_text.c). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "run.h"
#include "task_text.h"
#include "trainer.h"
#include "wait_policy.h"

typedef struct options {
    run_options run;
    const char *data;
    text_model_config model;
    int sample;
    double temperature;
} options;

static int opt_arch(void *base, const char *name, const char *v) {
    options *o = base;
    (void)name;
    if (text_arch_from_name(v, &o->model.arch)) {
        cli_error("--arch: '%s' is not lstm, gru or rnn", v);
        return -1;
    }
    return 0;
}

static int opt_order(void *base, const char *name, const char *v) {
    options *o = base;
    (void)name;
    if (!strcmp(v, "random")) o->model.streams = 0;
    else if (!strcmp(v, "streams")) o->model.streams = 1;
    else {
        cli_error("--order: '%s' is not random or streams", v);
        return -1;
    }
    return 0;
}

#define OO(f) offsetof(options, f)
static const cli_opt text_opts[] = {
    CLI_O("--data", "FILE", CLI_STR, OO(data), 0, 0, NULL,
     "a text file (bytes; no NUL): first 90% train, last 10% validation\n(required)"),
    {"--arch", "A", CLI_FN, 0, 0, 0, "lstm", "lstm | gru | rnn (tanh)", opt_arch, 0},
    CLI_O("--embed", "E", CLI_INT, OO(model.embed), 1, 65536, NULL, "embedding width"),
    CLI_O("--hidden", "H", CLI_INT, OO(model.hidden), 1, 65536, NULL, "recurrent width"),
    CLI_O("--layers", "L", CLI_INT, OO(model.layers), 1, 64, NULL, "stacked recurrent layers"),
    CLI_O("--dropout", "P", CLI_FLOAT, OO(model.dropout), 0, 0.99, NULL, "dropout between recurrent layers, as PyTorch's"),
    CLI_O("--seq-len", "T", CLI_INT, OO(model.seq_len), 1, 100000, NULL,
     "characters per window, backpropagation through time"),
    {"--order", "O", CLI_FN, 0, 0, 0, "random",
     "random: independent random windows from a zero state;\n"
     "streams: B contiguous streams, the state carried across batches\n(truncated BPTT)",
     opt_order, 0},
    CLI_O("--sample", "N", CLI_INT, OO(sample), 0, 1000000, NULL, "generate N characters at the end (0: none)"),
    CLI_O("--temperature", "X", CLI_DOUBLE, OO(temperature), 0, 100, NULL,
     "sampling temperature (0: most likely character)"),
};
#undef OO

static const char text_notes[] =
    "  Each process trains on sequences r, r + P, r + 2P, ... of every global batch (and with\n"
    "  --order streams carries those streams' state); validation: each process evaluates\n"
    "  those streams of the held-out text and the sums are reduced.\n"
    "Recipe (used unless overridden): 2-layer LSTM 256, embedding 64, batch 32, sequence 128,\n"
    "  random windows, Adam lr 6e-3 with a cosine decay over 12 epochs, global-norm clipping\n"
    "  at 1. README: validation loss against wall time on tiny-shakespeare, 2 threads.\n";

/* CLI_RUN: parsed; CLI_HELP: --help printed; CLI_PRINT_CONFIG: --print-config; -1: an
 * error printed. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    trainer_config tc = trainer_config_default();
    tc.batch = 32;
    tc.optim = gopt_optim_config_default(GOPT_ALGO_ADAM);
    tc.optim.lr = 6e-3f; /* at 250 steps: 1.90 (2e-3), 1.79 (4e-3), 1.68 (6e-3), 1.75 (8e-3) */
    tc.clip_norm = 1.0;
    tc.schedule = SCHED_COSINE;
    tc.label_smoothing = 0;
    run_options_init(&o->run, &tc);
    run_options *r = &o->run;
    text_model_config *m = &o->model;
    m->arch = GOPT_LAYER_LSTM;
    m->embed = 64;
    m->hidden = 256;
    m->layers = 2;
    m->dropout = 0;
    m->seq_len = 128;
    m->streams = 0;
    o->sample = 300;
    o->temperature = 0.8;
    cli_group groups[3] = {{NULL, text_opts, CLI_COUNT(text_opts), o, NULL, NULL}};
    run_cli_groups(r, "Training options shared with train_cifar10:", groups + 1);
    cli_spec spec = {.usage = "train_text --data FILE [options]", .groups = groups, .ngroups = 3, .notes = text_notes};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed;
    run_options_given(r, &spec);
    if (!o->data) {
        cli_error("--data FILE is required (a text file, e.g. ../shared/data/tinyshakespeare/input.txt)");
        return -1;
    }
    /* the recipe, for what was not given */
    if (!r->have_epochs) r->epochs = 12;
    if (!r->have_lr && r->algo != GOPT_ALGO_ADAM) r->tc.optim.lr = cli_default_lr(r->algo);
    return run_options_finish(r) ? -1 : parsed;
}

static void describe(const options *o, const run_world *w, char *buf, size_t n) {
    char shared[768];
    run_options_describe(&o->run, w, shared, sizeof shared);
    const text_model_config *m = &o->model;
    snprintf(buf, n, "arch=%s embed=%d hidden=%d layers=%d dropout=%g seq_len=%d order=%s %s", text_arch_name(m->arch),
             m->embed, m->hidden, m->layers, m->dropout, m->seq_len, m->streams ? "streams" : "random", shared);
}

static int eval_text(void *ctx, trainer *t, double *loss, double *acc, char *err, size_t errlen) {
    return text_evaluate(t, (const gopt_text *)ctx, loss, acc, err, errlen);
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
        printf("config: %s data=%s sample=%d temperature=%g\n", desc, o.data, o.sample, o.temperature);
        return run_world_exit(&w, 0, 0);
    }
    if (run_check_batch(r, &w)) return run_world_exit(&w, 0, 2);
    run_world_threads(&w, r->threads);
    r->tc.dist = run_world_dist(&w);
    char err[1024], desc[1024];
    trainer *t = NULL;
    gopt_text *all = NULL, *train = NULL, *held = NULL;
    uint8_t *sample = NULL;
    int rc = 0;
    /* every rank reads the files (the same paths on every host): agree before training */
    gopt_status s = gopt_text_load(o.data, NULL, &all);
    if (s != GOPT_OK) snprintf(err, sizeof err, "--data: %s", gopt_last_error());
    if (s == GOPT_OK && r->test) {
        s = gopt_text_load(r->test, gopt_text_vocab(all), &held);
        if (s != GOPT_OK) snprintf(err, sizeof err, "--test: %s", gopt_last_error());
    }
    if ((rc = trainer_agree(r->tc.dist, s == GOPT_OK ? 0 : -1, err, sizeof err)) != 0) goto fail;
    const gopt_vocab *vocab = gopt_text_vocab(all);
    if (r->test) {
        train = all;
        all = NULL;
        printf("data: %s: %lld characters, vocabulary of %d; test on %s (%lld characters)\n", o.data,
               (long long)gopt_text_length(train), vocab->size, r->test, (long long)gopt_text_length(held));
    } else {
        s = gopt_text_split(all, 0.9, &train, &held);
        if (s != GOPT_OK) {
            snprintf(err, sizeof err, "--data: %s", gopt_last_error());
            rc = TRAINER_FAILED_ALL; /* the same text on every rank */
            goto fail;
        }
        printf("data: %s: %lld characters, vocabulary of %d; the first %lld train, the last %lld validate\n", o.data,
               (long long)gopt_text_length(all), vocab->size, (long long)gopt_text_length(train),
               (long long)gopt_text_length(held));
    }
    vocab = gopt_text_vocab(train);
    o.model.vocab = vocab->size;
    describe(&o, &w, desc, sizeof desc);
    r->tc.verify_text = desc; /* every rank must run the same options */
    /* schedule length: steps per epoch from the loader, known once the trainer exists */
    r->tc.total_steps = 1;
    if ((rc = text_trainer_create(&r->tc, &o.model, train, &t, err, sizeof err)) != 0) goto fail;
    if (gopt_text_length(held) < r->tc.batch + 1) {
        snprintf(err, sizeof err, "the %s text '%s' has %lld characters, fewer than the batch of %d streams + 1",
                 r->test ? "test" : "validation", gopt_text_name(held), (long long)gopt_text_length(held),
                 r->tc.batch);
        rc = TRAINER_FAILED_ALL; /* the same text on every rank */
        goto fail;
    }
    int64_t spe = trainer_steps_per_epoch(t);
    trainer_destroy(t);
    t = NULL;
    r->tc.total_steps = spe * r->epochs;
    r->tc.warmup_steps = run_warmup_steps(r, spe);
    if ((rc = text_trainer_create(&r->tc, &o.model, train, &t, err, sizeof err)) != 0) goto fail;
    printf("config: %s threads=%d\n", desc, gopt_get_threads());
    printf("model: %lld parameters, %lld steps per epoch (%lld characters)\n",
           (long long)gopt_params_numel(gopt_net_params(trainer_net(t))), (long long)spe,
           (long long)spe * r->tc.batch * o.model.seq_len * r->tc.accum);
    if (w.size > 1)
        printf("data parallel: %d processes x %d sequences per step%s\n", w.size, r->tc.batch / w.size,
               r->zero ? ", ZeRO-1 optimizer state" : "");
    if (r->resume) {
        if ((rc = trainer_load(t, r->resume, err, sizeof err)) != 0) goto fail;
        printf("resumed from %s at epoch %lld, step %lld\n", r->resume, (long long)trainer_epoch(t),
               (long long)trainer_steps(t));
    }
    const char *ev = r->test ? "test" : "val";
    run_spec spec = {"tok", ev, NULL, desc, eval_text, (void *)held};
    run_result res;
    if ((rc = run_loop(r, &spec, t, &res, err, sizeof err)) != 0) goto fail;
    if (o.sample > 0 && w.rank == 0) { /* the same parameters everywhere: rank 0 samples */
        sample = malloc((size_t)o.sample);
        if (!sample) {
            snprintf(err, sizeof err, "out of memory for the sample");
            rc = -1;
            goto fail;
        }
        if ((rc = text_sample(t, &o.model, o.sample, o.temperature, r->tc.seed, sample, err, sizeof err)) != 0)
            goto fail;
        printf("\nsample (%d characters, temperature %g):\n", o.sample, o.temperature);
        fwrite(sample, 1, (size_t)o.sample, stdout);
        printf("\n");
    }
    printf("\nsummary: %s\n", desc);
    printf("  data: %s, vocabulary of %d\n", o.data, vocab->size);
    run_print_steps(stdout, t, &res, "tok");
    printf("  best %s loss %.4f nats/char (%.4f bits/char)%s\n", ev, res.best_eval_loss, res.best_eval_loss / log(2.0),
           trainer_diverged(t) ? " (run DIVERGED)" : "");
    printf("%s loss %.4f\n", ev, res.eval_loss);
    int diverged = trainer_diverged(t);
    trainer_destroy(t);
    gopt_text_destroy(all);
    gopt_text_destroy(train);
    gopt_text_destroy(held);
    free(sample);
    return run_world_exit(&w, 0, diverged ? 3 : 0);
fail:
    fputc('\n', stderr);
    cli_error("%s", err);
    /* a failure of this rank alone leaves at once (the others may wait in a collective) */
    if (rc == TRAINER_FAILED_ALL || w.size == 1) {
        trainer_destroy(t);
        gopt_text_destroy(all);
        gopt_text_destroy(train);
        gopt_text_destroy(held);
        free(sample);
    }
    return run_world_exit(&w, rc, 1);
}
