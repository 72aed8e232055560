/* Text corpora: vocabulary, reader, split and the (B,T) batch loader (see gradopt/text.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>

#include "gradopt/text.h"
#include "core/common.h"

#define TEXT_NAME_MAX 512

struct gopt_text {
    int64_t n;
    uint8_t *bytes;
    int32_t *ids;
    gopt_vocab vocab;
    char name[TEXT_NAME_MAX];
};

/* A byte for messages: 'a', or 0x0a for the unprintable. */
static const char *byte_str(uint8_t b, char buf[16]) {
    if (b >= 0x20 && b < 0x7f && b != '\'') snprintf(buf, 16, "0x%02x ('%c')", b, (char)b);
    else snprintf(buf, 16, "0x%02x", b);
    return buf;
}

/* ---- vocabulary ------------------------------------------------------------------------ */

static void vocab_index(gopt_vocab *v) {
    for (int b = 0; b < GOPT_VOCAB_MAX; b++) v->id[b] = -1;
    for (int i = 0; i < v->size; i++) v->id[v->bytes[i]] = (int16_t)i;
}

gopt_status gopt_vocab_build(const void *data, size_t n, gopt_vocab *out) {
    GOPT_CHECK_NULL(out);
    GOPT_CHECK_NULL(data);
    if (n == 0) return GOPT_FAIL(GOPT_EINVAL, "no bytes to build a vocabulary from");
    unsigned char seen[GOPT_VOCAB_MAX] = {0};
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) seen[p[i]] = 1;
    gopt_vocab v;
    memset(&v, 0, sizeof v);
    for (int b = 0; b < GOPT_VOCAB_MAX; b++)
        if (seen[b]) v.bytes[v.size++] = (uint8_t)b;
    vocab_index(&v);
    *out = v;
    return GOPT_OK;
}

gopt_status gopt_vocab_encode(const gopt_vocab *v, const void *data, size_t n, int32_t *ids) {
    GOPT_CHECK_NULL(v);
    GOPT_CHECK_NULL(ids);
    if (n && !data) return GOPT_FAIL(GOPT_EINVAL, "argument 'data' is NULL");
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        int id = v->id[p[i]];
        if (id < 0) {
            char b[16];
            return GOPT_FAIL(GOPT_EINVAL, "byte %s at offset %zu is not in the vocabulary of %d symbols",
                             byte_str(p[i], b), i, v->size);
        }
        ids[i] = id;
    }
    return GOPT_OK;
}

gopt_status gopt_vocab_decode(const gopt_vocab *v, const int32_t *ids, size_t n, uint8_t *out) {
    GOPT_CHECK_NULL(v);
    GOPT_CHECK_NULL(out);
    if (n && !ids) return GOPT_FAIL(GOPT_EINVAL, "argument 'ids' is NULL");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->size)
            return GOPT_FAIL(GOPT_ERANGE, "ids[%zu] = %d is outside [0, %d)", i, (int)ids[i], v->size);
        out[i] = v->bytes[ids[i]];
    }
    return GOPT_OK;
}

gopt_status gopt_vocab_compare(const gopt_vocab *have, const gopt_vocab *want) {
    GOPT_CHECK_NULL(have);
    GOPT_CHECK_NULL(want);
    if (have->size != want->size)
        return GOPT_FAIL(GOPT_EFORMAT, "vocabulary of %d symbols, expected %d", have->size, want->size);
    for (int i = 0; i < have->size; i++)
        if (have->bytes[i] != want->bytes[i]) {
            char a[16], b[16];
            return GOPT_FAIL(GOPT_EFORMAT, "vocabulary symbol %d is %s, expected %s", i, byte_str(have->bytes[i], a),
                             byte_str(want->bytes[i], b));
        }
    return GOPT_OK;
}

#define VOCAB_MAGIC GOPT__MAGIC('V', 'O', 'C', '1')

size_t gopt_vocab_state_size(const gopt_vocab *v) { return v ? 8 + (size_t)v->size : 0; }

gopt_status gopt_vocab_state_save(const gopt_vocab *v, void *buf, size_t size) {
    GOPT_CHECK_NULL(v);
    GOPT_CHECK_NULL(buf);
    if (v->size < 1 || v->size > GOPT_VOCAB_MAX)
        return GOPT_FAIL(GOPT_EINVAL, "vocabulary size %d is outside 1..%d", v->size, GOPT_VOCAB_MAX);
    if (size < gopt_vocab_state_size(v))
        return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, gopt_vocab_state_size(v));
    gopt__wcur c = gopt__wcur_make(buf, size);
    gopt__put_u32(&c, VOCAB_MAGIC);
    gopt__put_u32(&c, (uint32_t)v->size);
    gopt__put(&c, v->bytes, (size_t)v->size);
    return c.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_vocab_state_load(gopt_vocab *v, const void *buf, size_t size) {
    GOPT_CHECK_NULL(v);
    GOPT_CHECK_NULL(buf);
    gopt__rcur c = gopt__rcur_make(buf, size);
    if (size < 8 || gopt__get_u32(&c) != VOCAB_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "vocabulary state: bad magic");
    uint32_t n = gopt__get_u32(&c);
    if (n < 1 || n > GOPT_VOCAB_MAX || size != 8 + (size_t)n)
        return GOPT_FAIL(GOPT_EFORMAT, "vocabulary state: %u symbols in %zu bytes", n, size);
    gopt_vocab nv;
    memset(&nv, 0, sizeof nv);
    nv.size = (int)n;
    gopt__get(&c, nv.bytes, n);
    for (uint32_t i = 1; i < n; i++)
        if (nv.bytes[i] <= nv.bytes[i - 1])
            return GOPT_FAIL(GOPT_EFORMAT, "vocabulary state: symbols not strictly increasing at %u", i);
    vocab_index(&nv);
    *v = nv;
    return GOPT_OK;
}

/* ---- text -------------------------------------------------------------------------------- */

void gopt_text_destroy(gopt_text *t) {
    if (!t) return;
    gopt__free(t->bytes);
    gopt__free(t->ids);
    gopt__free(t);
}

/* Take ownership of bytes[0..n) (freed on failure too) and make a text of them; errors are
 * reported as coming from `func`, the public entry point. */
#define TEXT_FAIL(status, ...) gopt__fail((status), func, __VA_ARGS__)
static gopt_status text_make(const char *func, uint8_t *bytes, size_t n, const char *name, const gopt_vocab *vocab,
                             gopt_text **out) {
    if (n == 0) {
        gopt__free(bytes);
        return TEXT_FAIL(GOPT_EFORMAT, "'%s' is empty", name);
    }
    const uint8_t *nul = memchr(bytes, 0, n);
    if (nul) {
        size_t at = (size_t)(nul - bytes);
        gopt__free(bytes);
        return TEXT_FAIL(GOPT_EFORMAT, "'%s' is not text: a NUL byte at offset %zu", name, at);
    }
    size_t id_bytes;
    if (n > (size_t)INT64_MAX || !gopt__mul_size(n, sizeof(int32_t), &id_bytes)) {
        gopt__free(bytes);
        return TEXT_FAIL(GOPT_EOVERFLOW, "'%s': %zu bytes is too long", name, n);
    }
    gopt_text *t = gopt__calloc(1, sizeof *t);
    if (!t) {
        gopt__free(bytes);
        return TEXT_FAIL(GOPT_ENOMEM, "text header");
    }
    t->bytes = bytes;
    t->n = (int64_t)n;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ids = gopt__malloc(id_bytes);
    if (!t->ids) {
        gopt_text_destroy(t);
        return TEXT_FAIL(GOPT_ENOMEM, "ids of '%s' (%zu bytes)", name, id_bytes);
    }
    if (vocab) {
        if (vocab->size < 1 || vocab->size > GOPT_VOCAB_MAX) {
            gopt_text_destroy(t);
            return TEXT_FAIL(GOPT_EINVAL, "vocabulary size %d is outside 1..%d", vocab->size, GOPT_VOCAB_MAX);
        }
        t->vocab = *vocab;
        for (size_t i = 0; i < n; i++)
            if (t->vocab.id[bytes[i]] < 0) {
                char b[16];
                gopt_status s = TEXT_FAIL(GOPT_EFORMAT, "'%s': byte %s at offset %zu is not in the vocabulary (%d symbols)",
                                          name, byte_str(bytes[i], b), i, vocab->size);
                gopt_text_destroy(t);
                return s;
            }
    } else {
        gopt_vocab_build(bytes, n, &t->vocab);
    }
    for (size_t i = 0; i < n; i++) t->ids[i] = t->vocab.id[bytes[i]];
    *out = t;
    return GOPT_OK;
}

gopt_status gopt_text_from_memory(const void *data, size_t n, const char *name, const gopt_vocab *vocab,
                                  gopt_text **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    if (n && !data) return GOPT_FAIL(GOPT_EINVAL, "argument 'data' is NULL");
    uint8_t *copy = gopt__malloc(n ? n : 1);
    if (!copy) return GOPT_FAIL(GOPT_ENOMEM, "copy of %zu bytes", n);
    if (n) memcpy(copy, data, n);
    return text_make("gopt_text_from_memory", copy, n, name ? name : "text", vocab, out);
}

gopt_status gopt_text_load(const char *path, const gopt_vocab *vocab, gopt_text **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(path);
    FILE *f = fopen(path, "rb");
    if (!f) return GOPT_FAIL(GOPT_EIO, "cannot open '%s': %s", path, strerror(errno));
    /* read in growing chunks: works for pipes and files whose size changes */
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = gopt__malloc(cap);
    if (!buf) {
        fclose(f);
        return GOPT_FAIL(GOPT_ENOMEM, "read buffer for '%s'", path);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            uint8_t *nb = ncap > cap ? gopt__malloc(ncap) : NULL;
            if (!nb) {
                gopt__free(buf);
                fclose(f);
                return GOPT_FAIL(GOPT_ENOMEM, "'%s' is larger than memory allows (%zu bytes read)", path, n);
            }
            memcpy(nb, buf, n);
            gopt__free(buf);
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        gopt__free(buf);
        return GOPT_FAIL(GOPT_EIO, "reading '%s': %s", path, strerror(err));
    }
    return text_make("gopt_text_load", buf, n, path, vocab, out);
}

gopt_status gopt_text_split(const gopt_text *t, double train_fraction, gopt_text **train, gopt_text **val) {
    GOPT_CHECK_NULL(train);
    GOPT_CHECK_NULL(val);
    *train = *val = NULL;
    GOPT_CHECK_NULL(t);
    if (!(train_fraction > 0.0 && train_fraction < 1.0))
        return GOPT_FAIL(GOPT_EINVAL, "train_fraction = %g is not in (0, 1)", train_fraction);
    int64_t ntrain = (int64_t)((double)t->n * train_fraction);
    if (ntrain < 1 || ntrain >= t->n)
        return GOPT_FAIL(GOPT_EFORMAT, "'%s' has %lld bytes: too short to split %g / %g", t->name, (long long)t->n,
                         train_fraction, 1.0 - train_fraction);
    char name[TEXT_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s (train)", t->name);
    GOPT_TRY(gopt_text_from_memory(t->bytes, (size_t)ntrain, name, &t->vocab, train));
    snprintf(name, sizeof name, "%s (validation)", t->name);
    gopt_status s = gopt_text_from_memory(t->bytes + ntrain, (size_t)(t->n - ntrain), name, &t->vocab, val);
    if (s != GOPT_OK) {
        gopt_text_destroy(*train);
        *train = NULL;
    }
    return s;
}

int64_t gopt_text_length(const gopt_text *t) { return t ? t->n : 0; }
const uint8_t *gopt_text_bytes(const gopt_text *t) { return t ? t->bytes : NULL; }
const int32_t *gopt_text_ids(const gopt_text *t) { return t ? t->ids : NULL; }
const gopt_vocab *gopt_text_vocab(const gopt_text *t) { return t ? &t->vocab : NULL; }
const char *gopt_text_name(const gopt_text *t) { return t ? t->name : NULL; }

/* ---- loader ----------------------------------------------------------------------------- */

struct gopt_text_loader {
    gopt_text_loader_config cfg;
    const gopt_text *text;
    int64_t batches;     /* per epoch */
    int64_t windows;     /* streams: W windows per stream */
    int64_t stream_len;  /* cover_all: L predictions per stream */
    int64_t epoch, next; /* position */
};

gopt_text_loader_config gopt_text_loader_config_default(void) {
    gopt_text_loader_config c;
    memset(&c, 0, sizeof c);
    c.batch_size = 32;
    c.seq_len = 128;
    c.order = GOPT_TEXT_RANDOM;
    c.cover_all = 0;
    c.ignore_index = -100;
    c.seed = 0;
    return c;
}

/* Independent streams from (seed, tag, a, b), as data.c seeds its loader. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void stream_seed(gopt_rng *rng, uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
    uint64_t h = mix64(seed ^ mix64(tag));
    h = mix64(h ^ a);
    h = mix64(h ^ (b * 0xD1B54A32D192ED03ull));
    gopt_rng_seed(rng, h);
}

enum { TEXT_STREAM_WINDOWS = 11, TEXT_STREAM_OFFSET = 12 };

gopt_status gopt_text_loader_create(const gopt_text_loader_config *cfg, const gopt_text *t, gopt_text_loader **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(t);
    const int64_t B = cfg->batch_size, T = cfg->seq_len, n = t->n;
    if (B < 1) return GOPT_FAIL(GOPT_EINVAL, "batch_size = %lld must be >= 1", (long long)B);
    if (T < 1) return GOPT_FAIL(GOPT_EINVAL, "seq_len = %lld must be >= 1", (long long)T);
    if (B > INT32_MAX / T) return GOPT_FAIL(GOPT_EINVAL, "batch_size x seq_len = %lld x %lld overflows", (long long)B,
                                            (long long)T);
    if (cfg->order != GOPT_TEXT_RANDOM && cfg->order != GOPT_TEXT_STREAMS)
        return GOPT_FAIL(GOPT_EINVAL, "order = %d is not GOPT_TEXT_RANDOM or GOPT_TEXT_STREAMS", (int)cfg->order);
    if (cfg->cover_all != 0 && cfg->cover_all != 1)
        return GOPT_FAIL(GOPT_EINVAL, "cover_all = %d must be 0 or 1", cfg->cover_all);
    if (cfg->cover_all && cfg->order != GOPT_TEXT_STREAMS)
        return GOPT_FAIL(GOPT_EINVAL, "cover_all needs order GOPT_TEXT_STREAMS");
    gopt_text_loader l;
    memset(&l, 0, sizeof l);
    l.cfg = *cfg;
    l.text = t;
    if (cfg->order == GOPT_TEXT_RANDOM) {
        if (n < T + 1)
            return GOPT_FAIL(GOPT_EFORMAT, "'%s' has %lld characters, fewer than one sequence of %lld + 1", t->name,
                             (long long)n, (long long)T);
        l.batches = (n - 1) / (B * T);
        if (l.batches < 1) l.batches = 1;
    } else if (!cfg->cover_all) {
        if (n < B * T + 1)
            return GOPT_FAIL(GOPT_EFORMAT,
                             "'%s' has %lld characters, fewer than %lld streams of one sequence of %lld + 1",
                             t->name, (long long)n, (long long)B, (long long)T);
        l.windows = (n - 1) / (B * T);
        l.batches = l.windows;
    } else {
        if (n < B + 1)
            return GOPT_FAIL(GOPT_EFORMAT, "'%s' has %lld characters, fewer than %lld streams of 1 + 1", t->name,
                             (long long)n, (long long)B);
        l.stream_len = (n - 1) / B;
        l.windows = (l.stream_len + T - 1) / T;
        l.batches = l.windows;
    }
    gopt_text_loader *p = gopt__calloc(1, sizeof *p);
    if (!p) return GOPT_FAIL(GOPT_ENOMEM, "text loader");
    *p = l;
    *out = p;
    return GOPT_OK;
}

void gopt_text_loader_destroy(gopt_text_loader *l) { gopt__free(l); }

int64_t gopt_text_loader_batches_per_epoch(const gopt_text_loader *l) { return l ? l->batches : 0; }

int64_t gopt_text_loader_tokens_per_epoch(const gopt_text_loader *l) {
    if (!l) return 0;
    if (l->cfg.cover_all) return (int64_t)l->cfg.batch_size * l->stream_len;
    return l->batches * l->cfg.batch_size * l->cfg.seq_len;
}

gopt_status gopt_text_loader_batch_at(const gopt_text_loader *l, int64_t epoch, int64_t index, int32_t *inputs,
                                      int32_t *targets) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(inputs);
    GOPT_CHECK_NULL(targets);
    if (epoch < 0 || index < 0 || index >= l->batches)
        return GOPT_FAIL(GOPT_ERANGE, "batch %lld of epoch %lld is outside 0..%lld", (long long)index,
                         (long long)epoch, (long long)l->batches - 1);
    const int64_t B = l->cfg.batch_size, T = l->cfg.seq_len, n = l->text->n;
    const int32_t *ids = l->text->ids;
    gopt_rng rng;
    if (l->cfg.order == GOPT_TEXT_RANDOM) {
        stream_seed(&rng, l->cfg.seed, TEXT_STREAM_WINDOWS, (uint64_t)epoch, (uint64_t)index);
        for (int64_t b = 0; b < B; b++) {
            int64_t s = (int64_t)gopt_rng_below(&rng, (uint64_t)(n - T)); /* 0..n-T-1 */
            memcpy(inputs + b * T, ids + s, (size_t)T * sizeof *ids);
            memcpy(targets + b * T, ids + s + 1, (size_t)T * sizeof *ids);
        }
    } else if (!l->cfg.cover_all) {
        int64_t span = l->windows * T, slack = (n - 1) - B * span;
        stream_seed(&rng, l->cfg.seed, TEXT_STREAM_OFFSET, (uint64_t)epoch, 0);
        int64_t off = (int64_t)gopt_rng_below(&rng, (uint64_t)slack + 1);
        for (int64_t b = 0; b < B; b++) {
            int64_t s = off + b * span + index * T;
            memcpy(inputs + b * T, ids + s, (size_t)T * sizeof *ids);
            memcpy(targets + b * T, ids + s + 1, (size_t)T * sizeof *ids);
        }
    } else {
        int64_t L = l->stream_len, k0 = index * T;
        int64_t valid = L - k0 < T ? L - k0 : T;
        for (int64_t b = 0; b < B; b++) {
            int64_t s = b * L + k0;
            memcpy(inputs + b * T, ids + s, (size_t)valid * sizeof *ids);
            memcpy(targets + b * T, ids + s + 1, (size_t)valid * sizeof *ids);
            for (int64_t j = valid; j < T; j++) {
                inputs[b * T + j] = 0;
                targets[b * T + j] = l->cfg.ignore_index;
            }
        }
    }
    return GOPT_OK;
}

gopt_status gopt_text_loader_next(gopt_text_loader *l, int32_t *inputs, int32_t *targets, int *n, int64_t *index) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(n);
    *n = 0;
    if (index) *index = l->next;
    if (l->next >= l->batches) return GOPT_OK;
    GOPT_TRY(gopt_text_loader_batch_at(l, l->epoch, l->next, inputs, targets));
    l->next++;
    *n = l->cfg.batch_size;
    return GOPT_OK;
}

gopt_status gopt_text_loader_seek(gopt_text_loader *l, int64_t epoch, int64_t index) {
    GOPT_CHECK_NULL(l);
    if (epoch < 0 || index < 0 || index > l->batches)
        return GOPT_FAIL(GOPT_ERANGE, "position (epoch %lld, batch %lld) is outside epoch >= 0, batch 0..%lld",
                         (long long)epoch, (long long)index, (long long)l->batches);
    l->epoch = epoch;
    l->next = index;
    return GOPT_OK;
}

int64_t gopt_text_loader_epoch(const gopt_text_loader *l) { return l ? l->epoch : 0; }
int64_t gopt_text_loader_index(const gopt_text_loader *l) { return l ? l->next : 0; }

#define TLOADER_MAGIC GOPT__MAGIC('T', 'X', 'L', '1')
#define TLOADER_STATE_BYTES (4 + 8 + 8 + 4 + 4 + 4 + 4 + 8 + 8)

size_t gopt_text_loader_state_size(const gopt_text_loader *l) { return l ? TLOADER_STATE_BYTES : 0; }

gopt_status gopt_text_loader_state_save(const gopt_text_loader *l, void *buf, size_t size) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(buf);
    if (size < TLOADER_STATE_BYTES)
        return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %d", size, TLOADER_STATE_BYTES);
    gopt__wcur c = gopt__wcur_make(buf, size);
    gopt__put_u32(&c, TLOADER_MAGIC);
    gopt__put_u64(&c, l->cfg.seed);
    gopt__put_i64(&c, l->text->n);
    gopt__put_u32(&c, (uint32_t)l->cfg.batch_size);
    gopt__put_u32(&c, (uint32_t)l->cfg.seq_len);
    gopt__put_u32(&c, (uint32_t)l->cfg.order);
    gopt__put_u32(&c, (uint32_t)l->cfg.cover_all);
    gopt__put_i64(&c, l->epoch);
    gopt__put_i64(&c, l->next);
    return c.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_text_loader_state_load(gopt_text_loader *l, const void *buf, size_t size) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(buf);
    if (size != TLOADER_STATE_BYTES)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state is %zu bytes, expected %d", size, TLOADER_STATE_BYTES);
    gopt__rcur c = gopt__rcur_make(buf, size);
    if (gopt__get_u32(&c) != TLOADER_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "text loader state: bad magic");
    uint64_t seed = gopt__get_u64(&c);
    int64_t n = gopt__get_i64(&c);
    uint32_t B = gopt__get_u32(&c), T = gopt__get_u32(&c), order = gopt__get_u32(&c), cover = gopt__get_u32(&c);
    int64_t epoch = gopt__get_i64(&c), next = gopt__get_i64(&c);
    if (seed != l->cfg.seed)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state: seed %llu, this loader has %llu", (unsigned long long)seed,
                         (unsigned long long)l->cfg.seed);
    if (n != l->text->n)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state: a text of %lld characters, this loader has %lld",
                         (long long)n, (long long)l->text->n);
    if (B != (uint32_t)l->cfg.batch_size || T != (uint32_t)l->cfg.seq_len)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state: batch %u x sequence %u, this loader has %d x %d", B, T,
                         l->cfg.batch_size, l->cfg.seq_len);
    if (order != (uint32_t)l->cfg.order || cover != (uint32_t)l->cfg.cover_all)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state: order/cover_all %u/%u, this loader has %d/%d", order,
                         cover, (int)l->cfg.order, l->cfg.cover_all);
    if (epoch < 0 || next < 0 || next > l->batches)
        return GOPT_FAIL(GOPT_EFORMAT, "text loader state: position (epoch %lld, batch %lld) is out of range",
                         (long long)epoch, (long long)next);
    GOPT_RETURN(gopt_text_loader_seek(l, epoch, next));
}
