/* The text side of the trainer (see trainer.h): a character-level language model
 * (embedding -> rnn/lstm/gru -> time-distributed linear -> cross entropy over every step)
 * fed by gopt_text_loader, its evaluation over a held-out text, and sampling. */
#ifndef GOPT_EXAMPLES_TASK_TEXT_H
#define GOPT_EXAMPLES_TASK_TEXT_H

#include <stdint.h>

#include "trainer.h"

typedef struct text_model_config {
    gopt_layer_type arch; /* GOPT_LAYER_LSTM, GOPT_LAYER_GRU or GOPT_LAYER_RNN (tanh) */
    int vocab;            /* symbols (the text's vocabulary size) */
    int embed, hidden, layers;
    float dropout;        /* between recurrent layers, as PyTorch's `dropout` */
    int seq_len;          /* T */
    int streams;          /* 1: batches are B contiguous streams and the state carries
                             (truncated BPTT); 0: independent random windows from zeros */
} text_model_config;

/* "lstm", "gru", "rnn" <-> the layer type. */
const char *text_arch_name(gopt_layer_type arch);
int text_arch_from_name(const char *name, gopt_layer_type *out);

/* The net: "embed" embedding(V,E) -> "rnn" (E->H, L layers, dropout) -> "head" linear(H,V),
 * per-sample input (seq_len) token ids, output (seq_len, V); parameters initialised from
 * seed as PyTorch's defaults. carry: the recurrent layer's carry_state. */
int text_net_build(const text_model_config *m, int max_batch, int seq_len, int carry, uint64_t seed,
                   gopt_net **out, char *err, size_t errlen);

/* A trainer over `train` (borrowed: it must outlive the trainer), batches of cfg->batch
 * windows of m->seq_len, seeded by cfg->seed. Its checkpoints hold the vocabulary, and a
 * checkpoint of another vocabulary is refused naming the difference. */
int text_trainer_create(const trainer_config *cfg, const text_model_config *m, const gopt_text *train, trainer **out,
                        char *err, size_t errlen);

/* Mean nats per character over `held_out` (borrowed until the trainer is destroyed): B
 * contiguous streams of (n-1)/B predictions each, the state carried from window to window
 * (gopt_text_loader's cover_all), eval mode; and top-1 accuracy. The training state
 * (carried states, training mode) is restored afterwards. */
int text_evaluate(trainer *t, const gopt_text *held_out, double *loss, double *acc, char *err, size_t errlen);

/* n characters generated from the trained model (a copy of its parameters at batch 1,
 * sequence 1): starting after a newline (or the first symbol when the vocabulary has
 * none), each sampled from softmax(logits / temperature) with an RNG seeded by seed;
 * temperature 0 takes the most likely symbol. out receives n bytes. */
int text_sample(trainer *t, const text_model_config *m, int n, double temperature, uint64_t seed, uint8_t *out,
                char *err, size_t errlen);

#endif
