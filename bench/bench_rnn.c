#define _POSIX_C_SOURCE 200809L
/* bench_rnn: training throughput (tokens/s) of train_text's default model: embedding(V,64)
 * -> 2-layer LSTM 256 -> time-distributed linear(256,V) -> cross entropy over every step,
 * global-norm clipping at 1 and an Adam step (lr 2e-3), at batch 32 x sequence 128, with a
 * per-layer-type time breakdown; with --torch the same model in PyTorch (bench/torch_rnn.py,
 * /usr/bin/python3 or the first python3 with torch) on the same batches, in the same run.
 *
 *   bench_rnn [--data FILE] [--arch lstm|gru|rnn] [--batch 32] [--seq-len 128] [--embed 64]
 *             [--hidden 256] [--layers 2] [--threads 2] [--iters 20] [--warmup 3] [--rounds 3]
 *             [--torch] [--python PATH]
 *
 * The batches are random windows of FILE (gopt_text_loader, seed 1), or without --data
 * uniformly random ids over 65 symbols; they are written to a temporary file that the torch
 * script reads. Each round times --iters steps of ours, then of torch's; the reported
 * figures are medians over every timed step of every round (other processes share the
 * cores), the ratio is of those medians, and peak RSS is each process's ru_maxrss.
 * Machine-readable (bench_row): ROW rnn.<arch> tokens/s ours - torch (no floor is measured). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gradopt.h>

#include "bench_util.h"
#include "cli.h"

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_rnn: %s: %s (%s)\n", what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

typedef struct opts {
    const char *arch, *python, *data;
    int batch, T, embed, hidden, layers, threads, iters, warmup, rounds, torch;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--data", "FILE", CLI_STR, OO(data), 0, 0, "random tokens",
          "a text file whose random windows are the batches"),
    CLI_O("--arch", "A", CLI_STR, OO(arch), 0, 0, NULL, "lstm | gru | rnn"),
    CLI_O("--batch", "B", CLI_INT, OO(batch), 1, 1000000, NULL, "batch size"),
    CLI_O("--seq-len", "T", CLI_INT, OO(T), 1, 1000000, NULL, "sequence length"),
    CLI_O("--embed", "E", CLI_INT, OO(embed), 1, 1000000, NULL, "embedding width"),
    CLI_O("--hidden", "H", CLI_INT, OO(hidden), 1, 1000000, NULL, "recurrent width"),
    CLI_O("--layers", "L", CLI_INT, OO(layers), 1, 1000, NULL, "stacked recurrent layers"),
    CLI_O("--threads", "N", CLI_INT, OO(threads), 1, 1024, NULL, "threads"),
    CLI_O("--iters", "N", CLI_INT, OO(iters), 1, 1000000, NULL, "timed steps per round"),
    CLI_O("--warmup", "N", CLI_INT, OO(warmup), 0, 1000000, NULL, "untimed steps first"),
    CLI_O("--rounds", "N", CLI_INT, OO(rounds), 1, 1000000, NULL, "rounds (ours, then torch's)"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "the same model in PyTorch too (bench/torch_rnn.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
};
#undef OO
#define USAGE "bench_rnn [options]"

int main(int argc, char **argv) {
    opts o = {.arch = "lstm", .batch = 32, .T = 128, .embed = 64, .hidden = 256, .layers = 2, .threads = 2,
              .iters = 20, .warmup = 3, .rounds = 3};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    const char *arch = o.arch, *python = o.python, *data = o.data;
    int batch = o.batch, T = o.T, embed = o.embed, hidden = o.hidden, layers = o.layers, threads = o.threads;
    int iters = o.iters, warmup = o.warmup, rounds = o.rounds, run_torch = o.torch;
    gopt_layer_type type = !strcmp(arch, "lstm") ? GOPT_LAYER_LSTM
                           : !strcmp(arch, "gru") ? GOPT_LAYER_GRU
                           : !strcmp(arch, "rnn") ? GOPT_LAYER_RNN
                                                  : GOPT_LAYER_TYPE_COUNT;
    if (type == GOPT_LAYER_TYPE_COUNT || batch < 1 || T < 1 || embed < 1 || hidden < 1 || layers < 1 ||
        threads < 1 || iters < 1 || warmup < 0 || rounds < 1) {
        fprintf(stderr, "bench_rnn: bad --arch/--batch/--seq-len/--embed/--hidden/--layers/--threads/--iters/--rounds\n");
        return 2;
    }
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    gopt_set_threads(threads);
    gopt_status s;

    /* the batches: (B, T+1) windows, inputs the first T, targets the last T */
    const int nbatches = warmup + iters;
    const size_t win = (size_t)batch * (size_t)(T + 1);
    int32_t *windows = malloc(sizeof(int32_t) * win * (size_t)nbatches);
    int32_t *inputs = malloc(sizeof(int32_t) * (size_t)batch * T), *targets = malloc(sizeof(int32_t) * (size_t)batch * T);
    if (!windows || !inputs || !targets) return 1;
    int V = 65;
    if (data) {
        gopt_text *text;
        gopt_text_loader *l;
        if ((s = gopt_text_load(data, NULL, &text))) die("--data", s);
        V = gopt_text_vocab(text)->size;
        gopt_text_loader_config lc = gopt_text_loader_config_default();
        lc.batch_size = batch;
        lc.seq_len = T;
        lc.seed = 1;
        if ((s = gopt_text_loader_create(&lc, text, &l))) die("text loader", s);
        for (int k = 0; k < nbatches; k++) {
            int64_t bpe = gopt_text_loader_batches_per_epoch(l);
            if ((s = gopt_text_loader_batch_at(l, k / bpe, k % bpe, inputs, targets))) die("batch", s);
            for (int b = 0; b < batch; b++) {
                int32_t *w = windows + (size_t)k * win + (size_t)b * (T + 1);
                memcpy(w, inputs + (size_t)b * T, sizeof(int32_t) * (size_t)T);
                w[T] = targets[(size_t)b * T + T - 1];
            }
        }
        gopt_text_loader_destroy(l);
        gopt_text_destroy(text);
    } else {
        gopt_rng rng;
        gopt_rng_seed(&rng, 1);
        for (size_t i = 0; i < win * (size_t)nbatches; i++) windows[i] = (int32_t)gopt_rng_below(&rng, (uint64_t)V);
    }

    /* the model, as train_text builds it */
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = batch;
    nc.in_ndim = 1;
    nc.in_shape[0] = T;
    nc.seed = 1;
    nc.init = GOPT_NET_INIT_TORCH;
    gopt_net *net;
    if ((s = gopt_net_create(&nc, &net))) die("gopt_net_create", s);
    gopt_layer_config emb = gopt_layer_embedding(V, embed);
    gopt_layer_config rnn = type == GOPT_LAYER_LSTM  ? gopt_layer_lstm(embed, hidden, layers, 1, 0.0f, 2)
                            : type == GOPT_LAYER_GRU ? gopt_layer_gru(embed, hidden, layers, 1, 0.0f, 2)
                                                     : gopt_layer_rnn(embed, hidden, layers, GOPT_RNN_TANH, 1, 0.0f, 2);
    gopt_layer_config head = gopt_layer_linear(hidden, V, 1);
    if ((s = gopt_net_add(net, &emb, "embed")) || (s = gopt_net_add(net, &rnn, "rnn")) ||
        (s = gopt_net_add(net, &head, "head")) || (s = gopt_net_build(net)))
        die("building the model", s);
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    oc.lr = 2e-3f;
    gopt_optim *opt;
    if ((s = gopt_optim_create(&oc, p, &opt))) die("gopt_optim_create", s);
    const int64_t dshape[3] = {batch, T, V};
    gopt_tensor *dlogits;
    if ((s = gopt_tensor_create(3, dshape, &dlogits))) die("gradient buffer", s);

    char path[] = "/tmp/bench_rnn_batches.XXXXXX";
    if (run_torch) {
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!f || fwrite(windows, sizeof(int32_t) * win, (size_t)nbatches, f) != (size_t)nbatches || fclose(f)) {
            fprintf(stderr, "bench_rnn: cannot write the batches to %s\n", path);
            return 1;
        }
    }
    double *ours = malloc(sizeof(double) * (size_t)iters * rounds);
    double *theirs_ms = malloc(sizeof(double) * (size_t)rounds);
    if (!ours || !theirs_ms) return 1;
    double torch_rss = 0, torch_loss = NAN;
    long long torch_params = 0;
    int torch_runs = 0;
    float loss = 0.0f, total_norm = 0.0f;
    char torch_version[64] = "?";
    for (int r = 0; r < rounds; r++) {
        if (r == rounds - 1) {
            gopt_net_timing_reset(net);
            gopt_net_set_timing(net, 1);
        }
        for (int it = 0; it < nbatches; it++) {
            const int32_t *w = windows + (size_t)it * win;
            for (int b = 0; b < batch; b++) {
                memcpy(inputs + (size_t)b * T, w + (size_t)b * (T + 1), sizeof(int32_t) * (size_t)T);
                memcpy(targets + (size_t)b * T, w + (size_t)b * (T + 1) + 1, sizeof(int32_t) * (size_t)T);
            }
            if (r == rounds - 1 && it == warmup) gopt_net_timing_reset(net);
            double t0 = bench_now();
            gopt_tensor logits;
            gopt_optim_zero_grad(opt);
            if ((s = gopt_net_forward_tokens(net, inputs, batch, &logits))) die("forward", s);
            if ((s = gopt_loss_cross_entropy_seq(&logits, targets, 0.0f, -100, &loss, dlogits))) die("loss", s);
            if ((s = gopt_net_backward(net, dlogits))) die("backward", s);
            if ((s = gopt_clip_grad_norm(p, 1.0, 2.0, 0, &total_norm))) die("clip", s);
            if ((s = gopt_optim_step(opt))) die("step", s);
            double t = bench_now() - t0;
            if (it >= warmup) ours[r * iters + it - warmup] = t;
        }
        if (!run_torch) continue;
        char args[512];
        snprintf(args, sizeof args,
                 "--batches %s --arch %s --vocab %d --embed %d --hidden %d --layers %d --batch %d --seq-len %d "
                 "--threads %d --iters %d --warmup %d",
                 path, arch, V, embed, hidden, layers, batch, T, threads, iters, warmup);
        FILE *f = bench_torch_open(python, "torch_rnn.py", args);
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *q = strstr(line, " ms=");
            if (!strncmp(line, "TORCH", 5) && q) {
                theirs_ms[torch_runs++] = atof(q + 4);
                if ((q = strstr(line, " rss_mb="))) torch_rss = fmax(torch_rss, atof(q + 8));
                if ((q = strstr(line, " loss="))) torch_loss = atof(q + 6);
                if ((q = strstr(line, " params="))) torch_params = atoll(q + 8);
                if ((q = strstr(line, " torch="))) sscanf(q + 7, "%63s", torch_version);
            }
        }
        if (f) pclose(f);
    }
    if (run_torch) unlink(path);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double med = bench_median(ours, iters * rounds), best = ours[0]; /* sorted */
    const double tokens = (double)batch * T;
    printf("bench_rnn %s V=%d embed=%d hidden=%d layers=%d batch=%d seq_len=%d threads=%d iters=%d rounds=%d "
           "params=%lld data=%s\n",
           arch, V, embed, hidden, layers, batch, T, threads, iters, rounds, (long long)gopt_params_numel(p),
           data ? data : "(random ids)");
    printf("gradopt: median %.2f ms/iter (best %.2f)  %.0f tokens/s  loss %.4f  grad norm %.3f  peak RSS %.1f MB "
           "(%.1f MB after build)\n",
           1e3 * med, 1e3 * best, tokens / med, loss, total_norm, ru.ru_maxrss / 1024.0, ru0.ru_maxrss / 1024.0);
    gopt_net_timing tm;
    gopt_net_timing_get(net, &tm);
    printf("per layer type (ms/iter, last round): forward / backward\n");
    for (int k = 0; k < GOPT_LAYER_TYPE_COUNT; k++) {
        if (tm.forward_s[k] == 0.0 && tm.backward_s[k] == 0.0) continue;
        printf("  %-15s %8.2f / %8.2f\n", gopt_layer_type_name((gopt_layer_type)k), 1e3 * tm.forward_s[k] / iters,
               1e3 * tm.backward_s[k] / iters);
    }
    double torch_tok = NAN;
    if (run_torch) {
        if (torch_runs > 0) {
            double tmed = bench_median(theirs_ms, torch_runs) / 1e3;
            torch_tok = tokens / tmed;
            printf("torch %s: median of %d rounds %.2f ms/iter  %.0f tokens/s  loss %.4f  params %lld  peak RSS %.1f MB\n",
                   torch_version, torch_runs, 1e3 * tmed, tokens / tmed, torch_loss, torch_params, torch_rss);
            printf("ratio gradopt/torch tokens/s: %.2fx (medians, same batches, same run, %d threads)\n", tmed / med,
                   threads);
        } else {
            printf("torch run failed (python3 with torch not found, or bench/torch_rnn.py failed)\n");
        }
    }
    char row[64];
    snprintf(row, sizeof row, "rnn.%s", arch);
    bench_row(row, "tokens/s", tokens / med, NAN, torch_tok);
    gopt_tensor_destroy(dlogits);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    free(windows);
    free(inputs);
    free(targets);
    free(ours);
    free(theirs_ms);
    return 0;
}
