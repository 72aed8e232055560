/* fuzz_text: the text-corpus reader (gopt_text_load with its own vocabulary and with a
 * fixed one, gopt_text_from_memory, gopt_text_split) and the text loader over what it
 * accepts. The first byte picks the loader's shape (B, T, order, cover_all). */
#include <string.h>

#include "fuzz.h"

static void use_text(const gopt_text *t, uint8_t shape) {
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 1 + (shape & 3);
    c.seq_len = 1 + ((shape >> 2) & 7);
    c.order = (shape >> 5) & 1 ? GOPT_TEXT_STREAMS : GOPT_TEXT_RANDOM;
    c.cover_all = c.order == GOPT_TEXT_STREAMS ? (shape >> 6) & 1 : 0;
    gopt_text_loader *l = (gopt_text_loader *)1;
    gopt_clear_error();
    gopt_status s = gopt_text_loader_create(&c, t, &l);
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(l == NULL && (s == GOPT_EFORMAT || s == GOPT_EINVAL), "loader refusal %d left *out set", s);
        return;
    }
    int32_t in[4 * 8], tg[4 * 8];
    const int vocab = gopt_text_vocab(t)->size;
    int n;
    for (int k = 0; k < 4 && gopt_text_loader_next(l, in, tg, &n, NULL) == GOPT_OK && n > 0; k++)
        for (int i = 0; i < n * c.seq_len; i++)
            FZ_CHECK(in[i] >= 0 && in[i] < vocab && (tg[i] == c.ignore_index || (tg[i] >= 0 && tg[i] < vocab)),
                     "id out of the vocabulary in a batch");
    size_t bytes = gopt_text_loader_state_size(l);
    unsigned char *st = malloc(bytes);
    if (st) {
        FZ_CHECK(gopt_text_loader_state_save(l, st, bytes) == GOPT_OK, "text loader save");
        FZ_CHECK(gopt_text_loader_state_load(l, st, bytes) == GOPT_OK, "text loader reload: %s", gopt_last_error());
        free(st);
    }
    gopt_text_loader_destroy(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t shape = data[0];
    data++;
    size--;
    gopt_text *t = (gopt_text *)1;
    gopt_clear_error();
    gopt_status s = gopt_text_load(fz_file(data, size), NULL, &t);
    fz_file_close();
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(t == NULL, "a failed load left *out set");
        FZ_CHECK(s == GOPT_EFORMAT && (size == 0 || memchr(data, 0, size)), "%zu bytes of text refused: %s", size,
                 gopt_last_error());
        return 0;
    }
    FZ_CHECK(gopt_text_length(t) == (int64_t)size && memcmp(gopt_text_bytes(t), data, size) == 0,
             "the loaded text differs from the file");
    const gopt_vocab *v = gopt_text_vocab(t);
    const int32_t *ids = gopt_text_ids(t);
    for (size_t i = 0; i < size; i++) FZ_CHECK(v->bytes[ids[i]] == data[i], "byte %zu encodes wrongly", i);
    use_text(t, shape);
    gopt_text *train = NULL, *val = NULL;
    if (gopt_text_split(t, 0.75, &train, &val) == GOPT_OK) {
        FZ_CHECK(gopt_text_length(train) + gopt_text_length(val) == (int64_t)size, "split loses bytes");
        use_text(train, shape);
        gopt_text_destroy(train);
        gopt_text_destroy(val);
    } else {
        FZ_CHECK(train == NULL && val == NULL, "a failed split left outputs set");
    }
    gopt_text_destroy(t);

    /* A fixed vocabulary (lower-case letters, space, newline): any other byte is refused. */
    static const char alphabet[] = "\n abcdefghijklmnopqrstuvwxyz";
    gopt_vocab fixed;
    FZ_CHECK(gopt_vocab_build(alphabet, sizeof alphabet - 1, &fixed) == GOPT_OK, "vocab_build");
    int outside = 0;
    for (size_t i = 0; i < size; i++) outside |= fixed.id[data[i]] < 0; /* NUL included */
    t = (gopt_text *)1;
    s = gopt_text_from_memory(data, size, "fuzz", &fixed, &t);
    FZ_CHECK((s == GOPT_OK) == (size > 0 && !outside), "fixed vocabulary: status %d with outside=%d", s, outside);
    if (s == GOPT_OK) {
        use_text(t, shape);
        gopt_text_destroy(t);
    } else {
        FZ_HAS_DETAIL();
        FZ_CHECK(t == NULL, "a refused text left *out set");
    }
    return 0;
}
