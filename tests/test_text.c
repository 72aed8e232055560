/* text.h: vocabulary (build, encode, decode, compare, state), the reader and its error
 * paths (missing, empty, binary, a byte outside a given vocabulary), the split, and the
 * loader in its three orders (random windows, contiguous streams, cover-all evaluation
 * streams): targets are the next characters, determinism, seek/resume, error paths. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/gopt_test_text_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static int teardown_dir(void **state) {
    (void)state;
    const char *names[] = {"a.txt", "empty.txt", "bin.txt", "test.txt", "big.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(tmpdir);
    return 0;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* ---- vocabulary --------------------------------------------------------------------------- */

static void test_vocab_build_encode_decode(void **state) {
    (void)state;
    const char *s = "hello, world\n";
    gopt_vocab v;
    assert_ok(gopt_vocab_build(s, strlen(s), &v));
    /* sorted distinct bytes: '\n' ' ' ',' 'd' 'e' 'h' 'l' 'o' 'r' 'w' */
    assert_int_equal(v.size, 10);
    const char want[] = "\n ,dehlorw";
    for (int i = 0; i < v.size; i++) {
        assert_int_equal(v.bytes[i], (uint8_t)want[i]);
        assert_int_equal(v.id[(uint8_t)want[i]], i);
    }
    assert_int_equal(v.id['z'], -1);
    int32_t ids[16];
    assert_ok(gopt_vocab_encode(&v, s, strlen(s), ids));
    assert_int_equal(ids[0], 5); /* 'h' */
    assert_int_equal(ids[12], 0); /* '\n' */
    uint8_t back[16];
    assert_ok(gopt_vocab_decode(&v, ids, strlen(s), back));
    assert_memory_equal(back, s, strlen(s));
    /* errors */
    assert_status(gopt_vocab_encode(&v, "helloz", 6, ids), GOPT_EINVAL, "offset 5");
    assert_status(gopt_vocab_encode(&v, "hel\x01", 4, ids), GOPT_EINVAL, "0x01");
    ids[3] = 10;
    assert_status(gopt_vocab_decode(&v, ids, 4, back), GOPT_ERANGE, "ids[3] = 10");
    ids[3] = -1;
    assert_status(gopt_vocab_decode(&v, ids, 4, back), GOPT_ERANGE, "ids[3] = -1");
    assert_status(gopt_vocab_build(s, 0, &v), GOPT_EINVAL, NULL);
    assert_status(gopt_vocab_build(NULL, 3, &v), GOPT_EINVAL, "data");
    assert_status(gopt_vocab_encode(NULL, s, 3, ids), GOPT_EINVAL, NULL);
    assert_status(gopt_vocab_decode(&v, ids, 3, NULL), GOPT_EINVAL, NULL);
}

static void test_vocab_compare_and_state(void **state) {
    (void)state;
    gopt_vocab a, b, c, loaded;
    assert_ok(gopt_vocab_build("abc", 3, &a));
    assert_ok(gopt_vocab_build("cab", 3, &b));
    assert_ok(gopt_vocab_build("abd", 3, &c));
    assert_ok(gopt_vocab_compare(&a, &b));
    assert_status(gopt_vocab_compare(&a, &c), GOPT_EFORMAT, "symbol 2 is 0x63 ('c'), expected 0x64 ('d')");
    gopt_vocab d;
    assert_ok(gopt_vocab_build("ab", 2, &d));
    assert_status(gopt_vocab_compare(&d, &a), GOPT_EFORMAT, "2 symbols, expected 3");

    unsigned char buf[300];
    size_t n = gopt_vocab_state_size(&a);
    assert_int_equal(n, 11);
    assert_status(gopt_vocab_state_save(&a, buf, n - 1), GOPT_EINVAL, "buffer");
    assert_ok(gopt_vocab_state_save(&a, buf, n));
    memset(&loaded, 0, sizeof loaded);
    assert_ok(gopt_vocab_state_load(&loaded, buf, n));
    assert_ok(gopt_vocab_compare(&loaded, &a));
    assert_int_equal(loaded.id['b'], 1);
    assert_int_equal(loaded.id['d'], -1);
    /* corrupt states leave the target unchanged */
    gopt_vocab keep = c;
    assert_status(gopt_vocab_state_load(&c, buf, n - 1), GOPT_EFORMAT, "3 symbols in 10 bytes");
    unsigned char bad[16];
    memcpy(bad, buf, n);
    bad[0] ^= 1;
    assert_status(gopt_vocab_state_load(&c, bad, n), GOPT_EFORMAT, "magic");
    memcpy(bad, buf, n);
    bad[9] = 'a'; /* "aac": not increasing */
    assert_status(gopt_vocab_state_load(&c, bad, n), GOPT_EFORMAT, "increasing");
    memcpy(bad, buf, n);
    bad[4] = 0; /* zero symbols */
    assert_status(gopt_vocab_state_load(&c, bad, n), GOPT_EFORMAT, "0 symbols");
    assert_memory_equal(&c, &keep, sizeof c);
}

/* ---- reader --------------------------------------------------------------------------------- */

static void test_text_load_and_errors(void **state) {
    (void)state;
    const char *s = "To be, or not to be: that is the question.\n";
    write_file(tmp_path("a.txt"), s, strlen(s));
    gopt_text *t;
    assert_ok(gopt_text_load(tmp_path("a.txt"), NULL, &t));
    assert_int_equal(gopt_text_length(t), strlen(s));
    assert_memory_equal(gopt_text_bytes(t), s, strlen(s));
    const gopt_vocab *v = gopt_text_vocab(t);
    for (size_t i = 0; i < strlen(s); i++) assert_int_equal(v->bytes[gopt_text_ids(t)[i]], (uint8_t)s[i]);
    assert_non_null(strstr(gopt_text_name(t), "a.txt"));

    /* missing */
    gopt_text *bad = (gopt_text *)1;
    assert_status(gopt_text_load(tmp_path("nope.txt"), NULL, &bad), GOPT_EIO, "nope.txt");
    assert_null(bad);
    testutil_check_detail("No such file");
    /* empty */
    write_file(tmp_path("empty.txt"), "", 0);
    assert_status(gopt_text_load(tmp_path("empty.txt"), NULL, &bad), GOPT_EFORMAT, "empty.txt' is empty");
    assert_null(bad);
    /* binary: a NUL byte, with its offset */
    const char b[] = "abc\0def";
    write_file(tmp_path("bin.txt"), b, sizeof b - 1);
    assert_status(gopt_text_load(tmp_path("bin.txt"), NULL, &bad), GOPT_EFORMAT, "NUL byte at offset 3");
    testutil_check_detail("bin.txt");
    /* a test file encoded with the training vocabulary: a byte it lacks is refused */
    write_file(tmp_path("test.txt"), "be the one\n", 11);
    gopt_text *test;
    assert_ok(gopt_text_load(tmp_path("test.txt"), v, &test));
    assert_ok(gopt_vocab_compare(gopt_text_vocab(test), v));
    for (int i = 0; i < 11; i++) assert_int_equal(v->bytes[gopt_text_ids(test)[i]], (uint8_t)"be the one\n"[i]);
    gopt_text_destroy(test);
    write_file(tmp_path("test.txt"), "be the ~one\n", 12);
    assert_status(gopt_text_load(tmp_path("test.txt"), v, &bad), GOPT_EFORMAT, "byte 0x7e ('~') at offset 7");
    testutil_check_detail("test.txt");
    assert_null(bad);
    /* NULL arguments */
    assert_status(gopt_text_load(NULL, NULL, &bad), GOPT_EINVAL, "path");
    assert_status(gopt_text_load(tmp_path("a.txt"), NULL, NULL), GOPT_EINVAL, "out");
    assert_status(gopt_text_from_memory(NULL, 3, "x", NULL, &bad), GOPT_EINVAL, "data");
    assert_status(gopt_text_from_memory("", 0, "mem", NULL, &bad), GOPT_EFORMAT, "'mem' is empty");
    /* out of memory at every allocation of the reader */
    for (long k = 0; k < 3; k++) {
        testutil_fail_after(k);
        gopt_status st = gopt_text_load(tmp_path("a.txt"), NULL, &bad);
        testutil_alloc_reset();
        assert_int_equal(st, GOPT_ENOMEM);
        assert_null(bad);
    }
    gopt_text_destroy(t);
    gopt_text_destroy(NULL);
}

static void test_text_load_large(void **state) {
    (void)state;
    /* larger than the first read chunk: the growing buffer keeps every byte */
    size_t n = 200000;
    char *s = malloc(n);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + (i * 7 + i / 13) % 26);
    write_file(tmp_path("big.txt"), s, n);
    gopt_text *t;
    assert_ok(gopt_text_load(tmp_path("big.txt"), NULL, &t));
    assert_int_equal(gopt_text_length(t), n);
    assert_memory_equal(gopt_text_bytes(t), s, n);
    assert_int_equal(gopt_text_vocab(t)->size, 26);
    gopt_text_destroy(t);
    free(s);
}

static void test_text_split(void **state) {
    (void)state;
    char s[101];
    for (int i = 0; i < 100; i++) s[i] = (char)('a' + i % 7);
    s[99] = 'Z'; /* only in the validation part: still in the shared vocabulary */
    gopt_text *t, *tr, *va;
    assert_ok(gopt_text_from_memory(s, 100, "corpus", NULL, &t));
    assert_ok(gopt_text_split(t, 0.9, &tr, &va));
    assert_int_equal(gopt_text_length(tr), 90);
    assert_int_equal(gopt_text_length(va), 10);
    assert_memory_equal(gopt_text_bytes(va), s + 90, 10);
    assert_ok(gopt_vocab_compare(gopt_text_vocab(tr), gopt_text_vocab(t)));
    assert_ok(gopt_vocab_compare(gopt_text_vocab(va), gopt_text_vocab(t)));
    assert_int_equal(gopt_text_ids(va)[9], gopt_text_vocab(t)->id['Z']);
    assert_string_equal(gopt_text_name(va), "corpus (validation)");
    gopt_text_destroy(tr);
    gopt_text_destroy(va);
    /* nanoGPT's int(n * 0.9) on tiny-shakespeare's length */
    assert_int_equal((int64_t)(1115394 * 0.9), 1003854);
    assert_status(gopt_text_split(t, 1.0, &tr, &va), GOPT_EINVAL, "train_fraction");
    assert_status(gopt_text_split(t, 0.0, &tr, &va), GOPT_EINVAL, "train_fraction");
    assert_null(tr);
    assert_null(va);
    gopt_text *one;
    assert_ok(gopt_text_from_memory("a", 1, "tiny", NULL, &one));
    assert_status(gopt_text_split(one, 0.9, &tr, &va), GOPT_EFORMAT, "'tiny' has 1 bytes");
    gopt_text_destroy(one);
    gopt_text_destroy(t);
}

/* ---- loader ---------------------------------------------------------------------------------- */

/* A text whose ids are i mod 251 at position i (all distinct bytes 1..251 used), so a
 * window's start is readable from its first id. */
static gopt_text *counting_text(int64_t n) {
    uint8_t *s = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) s[i] = (uint8_t)(1 + i % 251);
    gopt_text *t;
    assert_int_equal(gopt_text_from_memory(s, (size_t)n, "count", NULL, &t), GOPT_OK);
    free(s);
    return t;
}

static void check_next_char(const gopt_text *t, const int32_t *in, const int32_t *tg, int64_t count) {
    /* in a counting text, every target is the id after its input */
    (void)t;
    for (int64_t i = 0; i < count; i++) assert_int_equal(tg[i], (in[i] + 1) % 251);
}

static void test_loader_random(void **state) {
    (void)state;
    gopt_text *t = counting_text(5000);
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 4;
    c.seq_len = 16;
    c.seed = 3;
    gopt_text_loader *l;
    assert_ok(gopt_text_loader_create(&c, t, &l));
    assert_int_equal(gopt_text_loader_batches_per_epoch(l), 4999 / 64);
    assert_int_equal(gopt_text_loader_tokens_per_epoch(l), 78 * 64);
    int32_t in[64], tg[64], in2[64], tg2[64];
    int n;
    int64_t idx;
    assert_ok(gopt_text_loader_next(l, in, tg, &n, &idx));
    assert_int_equal(n, 4);
    assert_int_equal(idx, 0);
    check_next_char(t, in, tg, 64);
    for (int b = 0; b < 4; b++)
        for (int j = 1; j < 16; j++) assert_int_equal(in[b * 16 + j], (in[b * 16] + j) % 251); /* a window */
    /* deterministic and position-addressed */
    assert_ok(gopt_text_loader_batch_at(l, 0, 0, in2, tg2));
    assert_memory_equal(in, in2, sizeof in);
    assert_memory_equal(tg, tg2, sizeof tg);
    assert_ok(gopt_text_loader_batch_at(l, 1, 0, in2, tg2));
    assert_memory_not_equal(in, in2, sizeof in); /* another epoch, other windows */
    /* another seed, other windows */
    c.seed = 4;
    gopt_text_loader *l2;
    assert_ok(gopt_text_loader_create(&c, t, &l2));
    assert_ok(gopt_text_loader_batch_at(l2, 0, 0, in2, tg2));
    assert_memory_not_equal(in, in2, sizeof in);
    gopt_text_loader_destroy(l2);
    /* the epoch ends after batches_per_epoch */
    int64_t count = 1;
    for (;;) {
        assert_ok(gopt_text_loader_next(l, in, tg, &n, &idx));
        if (n == 0) break;
        assert_int_equal(idx, count);
        count++;
    }
    assert_int_equal(count, 78);
    /* a text of exactly T + 1 characters: one batch, every window the whole text */
    gopt_text *small = counting_text(17);
    gopt_text_loader *ls;
    assert_ok(gopt_text_loader_create(&c, small, &ls));
    assert_int_equal(gopt_text_loader_batches_per_epoch(ls), 1);
    assert_ok(gopt_text_loader_batch_at(ls, 5, 0, in, tg));
    for (int b = 0; b < 4; b++) assert_int_equal(in[b * 16], 0);
    gopt_text_loader_destroy(ls);
    gopt_text_destroy(small);
    gopt_text_loader_destroy(l);
    gopt_text_destroy(t);
}

static void test_loader_streams(void **state) {
    (void)state;
    gopt_text *t = counting_text(1000);
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 3;
    c.seq_len = 10;
    c.order = GOPT_TEXT_STREAMS;
    c.seed = 9;
    gopt_text_loader *l;
    assert_ok(gopt_text_loader_create(&c, t, &l));
    int64_t W = 999 / 30;
    assert_int_equal(gopt_text_loader_batches_per_epoch(l), W);
    int32_t prev_in[30], in[30], tg[30];
    int offsets_differ = 0;
    int64_t first_start = -1;
    for (int64_t e = 0; e < 6; e++) {
        for (int64_t k = 0; k < W; k++) {
            assert_ok(gopt_text_loader_batch_at(l, e, k, in, tg));
            check_next_char(t, in, tg, 30);
            if (k > 0)
                for (int b = 0; b < 3; b++) /* row b continues where it stopped */
                    assert_int_equal(in[b * 10], (prev_in[b * 10] + 10) % 251);
            if (k == 0) {
                /* streams W*T apart: offset + b*W*T, offset within the slack */
                for (int b = 1; b < 3; b++) assert_int_equal(in[b * 10], (in[0] + b * W * 10) % 251);
                int64_t off = in[0]; /* the text counts from 0 and 999 < 251*4: off < slack + 1 <= 9 */
                assert_true(off >= 0 && off <= 999 - 3 * W * 10);
                if (first_start < 0) first_start = off;
                else if (off != first_start) offsets_differ = 1;
            }
            memcpy(prev_in, in, sizeof in);
        }
    }
    assert_true(offsets_differ); /* epochs start at different offsets */
    /* too short for B streams of T + 1 */
    gopt_text *short_t = counting_text(30);
    gopt_text_loader *bad = (gopt_text_loader *)1;
    assert_status(gopt_text_loader_create(&c, short_t, &bad), GOPT_EFORMAT, "30 characters, fewer than 3 streams");
    assert_null(bad);
    gopt_text_destroy(short_t);
    gopt_text_loader_destroy(l);
    gopt_text_destroy(t);
}

static void test_loader_cover_all(void **state) {
    (void)state;
    gopt_text *t = counting_text(101); /* 100 predictions: 3 streams of L = 33, 99 covered */
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 3;
    c.seq_len = 8;
    c.order = GOPT_TEXT_STREAMS;
    c.cover_all = 1;
    gopt_text_loader *l;
    assert_ok(gopt_text_loader_create(&c, t, &l));
    assert_int_equal(gopt_text_loader_batches_per_epoch(l), 5); /* ceil(33 / 8) */
    assert_int_equal(gopt_text_loader_tokens_per_epoch(l), 99);
    int seen[101] = {0};
    int32_t in[24], tg[24];
    int64_t counted = 0;
    for (int64_t k = 0; k < 5; k++) {
        assert_ok(gopt_text_loader_batch_at(l, 0, k, in, tg));
        for (int b = 0; b < 3; b++)
            for (int j = 0; j < 8; j++) {
                int32_t x = in[b * 8 + j], y = tg[b * 8 + j];
                if (k * 8 + j >= 33) { /* padding */
                    assert_int_equal(x, 0);
                    assert_int_equal(y, -100);
                    continue;
                }
                assert_int_equal(x, b * 33 + k * 8 + j); /* stream b from b*L */
                assert_int_equal(y, x + 1);
                seen[y]++;
                counted++;
            }
    }
    assert_int_equal(counted, 99);
    for (int i = 1; i <= 99; i++) assert_int_equal(seen[i], 1); /* each predicted once */
    /* the same in every epoch (no offset) */
    int32_t in2[24], tg2[24];
    assert_ok(gopt_text_loader_batch_at(l, 0, 2, in, tg));
    assert_ok(gopt_text_loader_batch_at(l, 7, 2, in2, tg2));
    assert_memory_equal(in, in2, sizeof in);
    gopt_text_loader_destroy(l);
    /* another ignore index */
    c.ignore_index = -1;
    assert_ok(gopt_text_loader_create(&c, t, &l));
    assert_ok(gopt_text_loader_batch_at(l, 0, 4, in, tg));
    assert_int_equal(tg[7], -1);
    gopt_text_loader_destroy(l);
    /* cover_all needs B + 1 characters */
    gopt_text *tiny = counting_text(3);
    gopt_text_loader *bad;
    assert_status(gopt_text_loader_create(&c, tiny, &bad), GOPT_EFORMAT, "3 characters");
    gopt_text_destroy(tiny);
    gopt_text_destroy(t);
}

static void test_loader_seek_state_and_errors(void **state) {
    (void)state;
    gopt_text *t = counting_text(3000);
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 2;
    c.seq_len = 32;
    c.order = GOPT_TEXT_STREAMS;
    c.seed = 5;
    gopt_text_loader *a, *b;
    assert_ok(gopt_text_loader_create(&c, t, &a));
    assert_ok(gopt_text_loader_create(&c, t, &b));
    int32_t in[64], tg[64], in2[64], tg2[64];
    int n;
    int64_t idx;
    for (int i = 0; i < 5; i++) assert_ok(gopt_text_loader_next(a, in, tg, &n, &idx));
    assert_int_equal(gopt_text_loader_index(a), 5);
    unsigned char buf[128];
    size_t sz = gopt_text_loader_state_size(a);
    assert_true(sz <= sizeof buf);
    assert_ok(gopt_text_loader_state_save(a, buf, sz));
    assert_ok(gopt_text_loader_state_load(b, buf, sz));
    assert_int_equal(gopt_text_loader_index(b), 5);
    assert_int_equal(gopt_text_loader_epoch(b), 0);
    assert_ok(gopt_text_loader_next(a, in, tg, &n, &idx));
    assert_ok(gopt_text_loader_next(b, in2, tg2, &n, &idx));
    assert_int_equal(idx, 5);
    assert_memory_equal(in, in2, sizeof in);
    assert_memory_equal(tg, tg2, sizeof tg);
    /* mismatched loaders refuse the state and stay where they were */
    gopt_text_loader_config other = c;
    other.seed = 6;
    gopt_text_loader *o;
    assert_ok(gopt_text_loader_create(&other, t, &o));
    assert_status(gopt_text_loader_state_load(o, buf, sz), GOPT_EFORMAT, "seed 5");
    other = c;
    other.seq_len = 16;
    gopt_text_loader_destroy(o);
    assert_ok(gopt_text_loader_create(&other, t, &o));
    assert_status(gopt_text_loader_state_load(o, buf, sz), GOPT_EFORMAT, "batch 2 x sequence 32");
    assert_int_equal(gopt_text_loader_index(o), 0);
    gopt_text_loader_destroy(o);
    other = c;
    other.order = GOPT_TEXT_RANDOM;
    assert_ok(gopt_text_loader_create(&other, t, &o));
    assert_status(gopt_text_loader_state_load(o, buf, sz), GOPT_EFORMAT, "order");
    gopt_text_loader_destroy(o);
    gopt_text *t2 = counting_text(2999);
    assert_ok(gopt_text_loader_create(&c, t2, &o));
    assert_status(gopt_text_loader_state_load(o, buf, sz), GOPT_EFORMAT, "3000 characters");
    gopt_text_loader_destroy(o);
    gopt_text_destroy(t2);
    assert_status(gopt_text_loader_state_load(b, buf, sz - 1), GOPT_EFORMAT, "bytes");
    unsigned char bad[128];
    memcpy(bad, buf, sz);
    bad[0] ^= 0xff;
    assert_status(gopt_text_loader_state_load(b, bad, sz), GOPT_EFORMAT, "magic");
    memcpy(bad, buf, sz);
    int64_t far = 1000000;
    memcpy(bad + sz - 8, &far, 8);
    assert_status(gopt_text_loader_state_load(b, bad, sz), GOPT_EFORMAT, "out of range");
    assert_status(gopt_text_loader_state_save(a, buf, sz - 1), GOPT_EINVAL, "buffer");
    /* seek and batch_at ranges */
    int64_t W = gopt_text_loader_batches_per_epoch(a);
    assert_ok(gopt_text_loader_seek(a, 3, W));
    assert_ok(gopt_text_loader_next(a, in, tg, &n, &idx));
    assert_int_equal(n, 0);
    assert_status(gopt_text_loader_seek(a, 0, W + 1), GOPT_ERANGE, "batch");
    assert_status(gopt_text_loader_seek(a, -1, 0), GOPT_ERANGE, "epoch -1");
    assert_status(gopt_text_loader_batch_at(a, 0, W, in, tg), GOPT_ERANGE, "outside");
    assert_status(gopt_text_loader_batch_at(a, 0, 0, NULL, tg), GOPT_EINVAL, "inputs");
    /* config errors */
    gopt_text_loader *bl = (gopt_text_loader *)1;
    gopt_text_loader_config e = c;
    e.batch_size = 0;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "batch_size");
    assert_null(bl);
    e = c;
    e.seq_len = 0;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "seq_len");
    e = c;
    e.order = (gopt_text_order)7;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "order");
    e = c;
    e.order = GOPT_TEXT_RANDOM;
    e.cover_all = 1;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "cover_all");
    e = c;
    e.cover_all = 2;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "cover_all");
    e = c;
    e.batch_size = 1 << 20;
    e.seq_len = 1 << 20;
    assert_status(gopt_text_loader_create(&e, t, &bl), GOPT_EINVAL, "overflows");
    /* a text shorter than one sequence + 1 */
    gopt_text *short_t = counting_text(32);
    e = c;
    e.order = GOPT_TEXT_RANDOM;
    assert_status(gopt_text_loader_create(&e, short_t, &bl), GOPT_EFORMAT,
                  "'count' has 32 characters, fewer than one sequence of 32 + 1");
    gopt_text_destroy(short_t);
    assert_status(gopt_text_loader_create(NULL, t, &bl), GOPT_EINVAL, "cfg");
    assert_status(gopt_text_loader_create(&c, NULL, &bl), GOPT_EINVAL, "t");
    testutil_fail_after(0);
    gopt_status st = gopt_text_loader_create(&c, t, &bl);
    testutil_alloc_reset();
    assert_int_equal(st, GOPT_ENOMEM);
    gopt_text_loader_destroy(a);
    gopt_text_loader_destroy(b);
    gopt_text_loader_destroy(NULL);
    gopt_text_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_build_encode_decode),
        cmocka_unit_test(test_vocab_compare_and_state),
        cmocka_unit_test(test_text_load_and_errors),
        cmocka_unit_test(test_text_load_large),
        cmocka_unit_test(test_text_split),
        cmocka_unit_test(test_loader_random),
        cmocka_unit_test(test_loader_streams),
        cmocka_unit_test(test_loader_cover_all),
        cmocka_unit_test(test_loader_seek_state_and_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
