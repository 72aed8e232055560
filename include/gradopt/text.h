/* gradopt/text.h: text corpora for character-level language models: a byte-level
 * vocabulary, a reader with validation, a train/validation split, and a batch loader of
 * (B,T) inputs and (B,T) next-character targets.
 *
 * Vocabulary: the sorted distinct bytes of the training text (tiny-shakespeare: 65). Id i
 * stands for bytes[i]; ids are int32 in [0, size). A vocabulary is saved with a checkpoint
 * and compared on resume, so a model trained on another vocabulary is refused.
 *
 * Reader: a file is read whole as bytes. GOPT_EIO names the path and strerror (missing,
 * unreadable); GOPT_EFORMAT: "'PATH' is empty", "'PATH' is not text: a NUL byte at
 * offset N", and, for a file read with a given vocabulary (a held-out test file encoded
 * with the training vocabulary), "'PATH': byte 0x7e ('~') at offset N is not in the
 * vocabulary".
 *
 * Split (nanoGPT's and char-rnn's convention): train = the first floor(n * train_fraction)
 * bytes, validation = the rest; both keep the whole text's vocabulary.
 *
 * Loader: batch k of epoch e holds, for each row b < B, a window of T+1 consecutive ids
 * starting at s(b): inputs = ids[s .. s+T), targets = ids[s+1 .. s+T+1). Two orders:
 *   GOPT_TEXT_RANDOM   s(b) uniform in [0, n-T-1], from an RNG seeded by (seed, e, k):
 *                      every window independent (torch's randint over start positions);
 *                      floor((n-1)/(B*T)) batches per epoch (at least 1); needs n >= T+1.
 *   GOPT_TEXT_STREAMS  the text is B contiguous streams, for truncated backpropagation
 *                      through time (the recurrent layers' carry_state): W = floor((n-1)/(B*T))
 *                      windows per stream, stream b starts at off(e) + b*W*T, window k of
 *                      it at off(e) + b*W*T + k*T, so row b of batch k+1 continues row b of
 *                      batch k. off(e) is uniform in [0, (n-1) - B*W*T] from (seed, e)
 *                      (0 when cover_all); needs n >= B*T + 1.
 *     cover_all = 1    (evaluation) streams of L = floor((n-1)/B) predictions each, stream
 *                      b from b*L, W = ceil(L/T) windows; the part of the last window past
 *                      L has input 0 and target ignore_index, so every one of the B*L
 *                      characters is predicted exactly once; needs n >= B + 1.
 * Batches depend only on (config, text, epoch, index): a loader positioned by seek or
 * state_load reproduces an interrupted epoch exactly. Too short a text for the config is
 * GOPT_EFORMAT naming the text, its length and what it needs. Nothing is printed;
 * nothing is allocated after create. */
#ifndef GRADOPT_TEXT_H
#define GRADOPT_TEXT_H

#include "tensor.h"

GOPT_EXTERN_C_BEGIN

/* ---- vocabulary (an open value type: copy it by assignment) ------------------------- */
#define GOPT_VOCAB_MAX 256
typedef struct gopt_vocab {
    int size;                         /* 1..256 symbols */
    uint8_t bytes[GOPT_VOCAB_MAX];    /* bytes[id], strictly increasing */
    int16_t id[GOPT_VOCAB_MAX];       /* id[byte], -1 when the byte is not in the vocabulary */
} gopt_vocab;

/* The sorted distinct bytes of data[0..n). Errors: GOPT_EINVAL (NULL, n == 0). */
GOPT_API gopt_status gopt_vocab_build(const void *data, size_t n, gopt_vocab *out);
/* ids[i] = the id of data[i]. Errors: GOPT_EINVAL (NULL; a byte not in the vocabulary,
 * naming it and its offset; ids is then partly written). */
GOPT_API gopt_status gopt_vocab_encode(const gopt_vocab *v, const void *data, size_t n, int32_t *ids);
/* out[i] = the byte of ids[i]. Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (an id outside
 * [0, size), naming it and its position). */
GOPT_API gopt_status gopt_vocab_decode(const gopt_vocab *v, const int32_t *ids, size_t n, uint8_t *out);
/* GOPT_OK when a and b are the same vocabulary, else GOPT_EFORMAT naming the first
 * difference ("vocabulary of 65 symbols, expected 64", "symbol 12 is 'a', expected 'b'"). */
GOPT_API gopt_status gopt_vocab_compare(const gopt_vocab *have, const gopt_vocab *want);
/* State (params.h convention): magic, size, the bytes. load validates (size 1..256, bytes
 * strictly increasing) and rebuilds the id table; *v is unchanged on failure. */
GOPT_API size_t gopt_vocab_state_size(const gopt_vocab *v);
GOPT_API gopt_status gopt_vocab_state_save(const gopt_vocab *v, void *buf, size_t size);
GOPT_API gopt_status gopt_vocab_state_load(gopt_vocab *v, const void *buf, size_t size);

/* ---- text: bytes, their ids and the vocabulary --------------------------------------- */
typedef struct gopt_text gopt_text;

/* Read `path`. vocab NULL: the vocabulary is built from the file; otherwise the file is
 * encoded with *vocab (copied) and a byte outside it is GOPT_EFORMAT (see above).
 * Errors: GOPT_EINVAL (NULL), GOPT_EIO, GOPT_EFORMAT, GOPT_ENOMEM. *out NULL on failure. */
GOPT_API gopt_status gopt_text_load(const char *path, const gopt_vocab *vocab, gopt_text **out);
/* The same from memory (copied); `name` (NULL: "text") appears in messages in place of
 * the path. Errors as gopt_text_load without GOPT_EIO. */
GOPT_API gopt_status gopt_text_from_memory(const void *data, size_t n, const char *name, const gopt_vocab *vocab,
                                           gopt_text **out);
/* Split into the first floor(n * train_fraction) bytes and the rest (copies named
 * "NAME (train)" and "NAME (validation)", sharing t's vocabulary). Errors: GOPT_EINVAL
 * (NULL, train_fraction not in (0, 1)), GOPT_EFORMAT (a part would be empty, naming n),
 * GOPT_ENOMEM. On failure both outputs are NULL. */
GOPT_API gopt_status gopt_text_split(const gopt_text *t, double train_fraction, gopt_text **train,
                                     gopt_text **val);
GOPT_API void gopt_text_destroy(gopt_text *t); /* NULL is a no-op */

GOPT_API int64_t gopt_text_length(const gopt_text *t);        /* bytes (= ids) */
GOPT_API const uint8_t *gopt_text_bytes(const gopt_text *t);
GOPT_API const int32_t *gopt_text_ids(const gopt_text *t);
GOPT_API const gopt_vocab *gopt_text_vocab(const gopt_text *t);
GOPT_API const char *gopt_text_name(const gopt_text *t);

/* ---- loader ---------------------------------------------------------------------------- */
typedef enum gopt_text_order {
    GOPT_TEXT_RANDOM = 0,  /* independent random windows */
    GOPT_TEXT_STREAMS = 1  /* B contiguous streams (truncated BPTT) */
} gopt_text_order;

typedef struct gopt_text_loader_config {
    int batch_size;        /* B >= 1; default 32 */
    int seq_len;           /* T >= 1; default 128 */
    gopt_text_order order; /* default GOPT_TEXT_RANDOM */
    int cover_all;         /* streams only: 0 (default) or 1, see above */
    int32_t ignore_index;  /* target of cover_all's padding; default -100 (PyTorch's) */
    uint64_t seed;         /* default 0 */
} gopt_text_loader_config;

GOPT_API gopt_text_loader_config gopt_text_loader_config_default(void);

typedef struct gopt_text_loader gopt_text_loader;

/* A loader over t (borrowed: it must outlive the loader), at epoch 0, batch 0.
 * Errors: GOPT_EINVAL (NULL, batch_size or seq_len < 1, order unknown, cover_all not 0/1
 * or with RANDOM, B*T overflowing), GOPT_EFORMAT (t too short, see above), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_text_loader_create(const gopt_text_loader_config *cfg, const gopt_text *t,
                                             gopt_text_loader **out);
GOPT_API void gopt_text_loader_destroy(gopt_text_loader *l); /* NULL is a no-op */

GOPT_API int64_t gopt_text_loader_batches_per_epoch(const gopt_text_loader *l);
/* Target positions that count per epoch (not ignore_index): B*T per batch, B*L with cover_all. */
GOPT_API int64_t gopt_text_loader_tokens_per_epoch(const gopt_text_loader *l);

/* Batch `index` of epoch `epoch` into inputs[B*T] and targets[B*T] (row-major (B,T)),
 * without moving the loader. Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (epoch < 0, index
 * outside 0..batches_per_epoch-1). */
GOPT_API gopt_status gopt_text_loader_batch_at(const gopt_text_loader *l, int64_t epoch, int64_t index,
                                               int32_t *inputs, int32_t *targets);
/* The next batch of the current epoch into caller buffers; *n = B, or 0 at the end of the
 * epoch (then call gopt_text_loader_seek(l, epoch + 1, 0)). *index (may be NULL) receives
 * the batch's index in its epoch: 0 marks the first batch (a new stream for truncated BPTT).
 * Errors: GOPT_EINVAL (NULL). */
GOPT_API gopt_status gopt_text_loader_next(gopt_text_loader *l, int32_t *inputs, int32_t *targets, int *n,
                                           int64_t *index);
/* Position at batch `index` (0..batches_per_epoch) of `epoch` (>= 0). Errors: GOPT_EINVAL,
 * GOPT_ERANGE. */
GOPT_API gopt_status gopt_text_loader_seek(gopt_text_loader *l, int64_t epoch, int64_t index);
GOPT_API int64_t gopt_text_loader_epoch(const gopt_text_loader *l);
GOPT_API int64_t gopt_text_loader_index(const gopt_text_loader *l); /* next batch's index */

/* Position for checkpoints (params.h convention): seed, text length, B, T, order,
 * cover_all, epoch, next index. load checks the first six against this loader
 * (GOPT_EFORMAT naming the field) and seeks. */
GOPT_API size_t gopt_text_loader_state_size(const gopt_text_loader *l);
GOPT_API gopt_status gopt_text_loader_state_save(const gopt_text_loader *l, void *buf, size_t size);
GOPT_API gopt_status gopt_text_loader_state_load(gopt_text_loader *l, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_TEXT_H */
