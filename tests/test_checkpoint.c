/* checkpoint.h: round trip (also of a params state blob), every error path, truncation at
 * every byte, byte flips, a wrong version, and atomic replacement under a crash. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/gopt_test_ckpt_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int count_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    if (d) closedir(d);
    return n;
}

static void clear_dir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
}

static int teardown_dir(void **state) {
    (void)state;
    clear_dir();
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (size) assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* A small checkpoint: three sections of odd sizes plus an empty one. */
static void write_small(const char *path, uint64_t step) {
    gopt_ckpt_writer *w = NULL;
    assert_ok(gopt_ckpt_writer_begin(path, &w));
    float params[5] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
    assert_ok(gopt_ckpt_writer_add(w, "params", params, sizeof params));
    assert_ok(gopt_ckpt_writer_add(w, "optim", "momentum-buffers!", 17));
    assert_ok(gopt_ckpt_writer_add(w, "empty", NULL, 0));
    assert_ok(gopt_ckpt_writer_add_u64(w, "step", step));
    assert_ok(gopt_ckpt_writer_add_text(w, "config", "lr=0.1\nbatch=128\n"));
    assert_ok(gopt_ckpt_writer_commit(w));
}

static void check_small(const char *path, uint64_t step) {
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(path, &c));
    assert_int_equal(gopt_ckpt_section_count(c), 5);
    const void *p;
    size_t n;
    float params[5] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
    assert_ok(gopt_ckpt_find(c, "params", &p, &n));
    assert_int_equal(n, sizeof params);
    assert_memory_equal(p, params, sizeof params);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_ok(gopt_ckpt_find(c, "optim", &p, &n));
    assert_int_equal(n, 17);
    assert_memory_equal(p, "momentum-buffers!", 17);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_ok(gopt_ckpt_find(c, "empty", &p, &n));
    assert_int_equal(n, 0);
    uint64_t v = 0;
    assert_ok(gopt_ckpt_get_u64(c, "step", &v));
    assert_int_equal(v, step);
    assert_ok(gopt_ckpt_find(c, "config", &p, &n));
    assert_int_equal(n, strlen("lr=0.1\nbatch=128\n"));
    assert_memory_equal(p, "lr=0.1\nbatch=128\n", n);
    const char *name;
    assert_ok(gopt_ckpt_section_info(c, 1, &name, &n));
    assert_string_equal(name, "optim");
    assert_int_equal(n, 17);
    assert_true(gopt_ckpt_has(c, "step"));
    assert_false(gopt_ckpt_has(c, "sched"));
    assert_false(gopt_ckpt_has(NULL, "step"));
    assert_status(gopt_ckpt_find(c, "sched", &p, &n), GOPT_ERANGE, "no section 'sched'");
    assert_status(gopt_ckpt_section_info(c, 5, &name, &n), GOPT_ERANGE, "5");
    assert_status(gopt_ckpt_get_u64(c, "optim", &v), GOPT_EFORMAT, "'optim' is 17 bytes");
    gopt_ckpt_close(c);
}

static void test_crc32(void **state) {
    (void)state;
    /* The standard check value of CRC-32/IEEE ("123456789" -> 0xCBF43926), and chaining. */
    assert_int_equal(gopt_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(gopt_crc32(gopt_crc32(0, "12345", 5), "6789", 4), 0xCBF43926u);
    assert_int_equal(gopt_crc32(0, "", 0), 0);
    assert_int_equal(gopt_crc32(0, "a", 1), 0xE8B7BE43u);
}

static void test_roundtrip(void **state) {
    (void)state;
    clear_dir();
    const char *path = tmp_path("ck.bin");
    write_small(path, 1234);
    check_small(path, 1234);
    /* No temporary file left behind; replacing keeps one file. */
    assert_int_equal(count_files(), 1);
    write_small(path, 99);
    check_small(path, 99);
    assert_int_equal(count_files(), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size % 16, 8); /* table of 5 x 88 after 16-aligned data */

    /* A real state blob composes: params saved into a section and loaded back. */
    gopt_params *a = NULL, *b = NULL;
    assert_ok(gopt_params_create(&a));
    assert_ok(gopt_params_create(&b));
    const int64_t shape[2] = {300, 70};
    assert_ok(gopt_params_add(a, "fc.weight", 2, shape, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(b, "fc.weight", 2, shape, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_finalize(a));
    assert_ok(gopt_params_finalize(b));
    float *va = gopt_params_values(a);
    for (int i = 0; i < 300 * 70; i++) va[i] = (float)i * 0.25f - 100.0f;
    size_t size = gopt_params_state_size(a);
    void *blob = malloc(size);
    assert_ok(gopt_params_state_save(a, blob, size));
    gopt_ckpt_writer *w = NULL;
    assert_ok(gopt_ckpt_writer_begin(path, &w));
    assert_ok(gopt_ckpt_writer_add(w, "params", blob, size));
    assert_ok(gopt_ckpt_writer_add_u64(w, "epoch", 3));
    assert_ok(gopt_ckpt_writer_commit(w));
    free(blob);
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(path, &c));
    const void *p;
    size_t n;
    assert_ok(gopt_ckpt_find(c, "params", &p, &n));
    assert_ok(gopt_params_state_load(b, p, n));
    assert_memory_equal(gopt_params_values(b), va, 300 * 70 * sizeof(float));
    gopt_ckpt_close(c);
    gopt_ckpt_close(NULL);
    gopt_params_destroy(a);
    gopt_params_destroy(b);

    /* A checkpoint with no sections is valid too. */
    assert_ok(gopt_ckpt_writer_begin(path, &w));
    assert_ok(gopt_ckpt_writer_commit(w));
    assert_ok(gopt_ckpt_open(path, &c));
    assert_int_equal(gopt_ckpt_section_count(c), 0);
    gopt_ckpt_close(c);
}

static void test_writer_errors(void **state) {
    (void)state;
    clear_dir();
    gopt_ckpt_writer *w = (gopt_ckpt_writer *)&w;
    assert_status(gopt_ckpt_writer_begin("/nonexistent_gopt_dir/ck.bin", &w), GOPT_EIO,
                  "/nonexistent_gopt_dir/ck.bin.tmp.");
    assert_null(w);
    assert_status(gopt_ckpt_writer_begin("", &w), GOPT_EINVAL, "empty");
    assert_status(gopt_ckpt_writer_begin(NULL, &w), GOPT_EINVAL, "path");
    assert_status(gopt_ckpt_writer_begin(tmp_path("x"), NULL), GOPT_EINVAL, "out");
    assert_ok(gopt_ckpt_writer_begin(tmp_path("ck.bin"), &w));
    assert_ok(gopt_ckpt_writer_add(w, "a", "x", 1));
    assert_status(gopt_ckpt_writer_add(w, "a", "y", 1), GOPT_EINVAL, "'a' was already added");
    assert_status(gopt_ckpt_writer_add(w, "", "y", 1), GOPT_EINVAL, "1..63 bytes");
    char longname[80];
    memset(longname, 'n', sizeof longname - 1);
    longname[79] = '\0';
    assert_status(gopt_ckpt_writer_add(w, longname, "y", 1), GOPT_EINVAL, "1..63 bytes");
    longname[64] = '\0';
    assert_status(gopt_ckpt_writer_add(w, longname, "y", 1), GOPT_EINVAL, "1..63 bytes");
    longname[63] = '\0';
    assert_ok(gopt_ckpt_writer_add(w, longname, "y", 1)); /* 63 bytes is the longest */
    assert_status(gopt_ckpt_writer_add(w, "b", NULL, 4), GOPT_EINVAL, "NULL");
    assert_status(gopt_ckpt_writer_add(w, NULL, "y", 1), GOPT_EINVAL, "name");
    assert_status(gopt_ckpt_writer_add_text(w, "t", NULL), GOPT_EINVAL, "text");
    assert_int_equal(count_files(), 1); /* the temporary file */
    gopt_ckpt_writer_abort(w);
    assert_int_equal(count_files(), 0); /* abort removes it; nothing was committed */
    gopt_ckpt_writer_abort(NULL);
    assert_status(gopt_ckpt_writer_commit(NULL), GOPT_EINVAL, "w");
    /* Many sections grow the table. */
    assert_ok(gopt_ckpt_writer_begin(tmp_path("many.bin"), &w));
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_ok(gopt_ckpt_writer_add(w, name, &i, sizeof i));
    }
    assert_ok(gopt_ckpt_writer_commit(w));
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(tmp_path("many.bin"), &c));
    assert_int_equal(gopt_ckpt_section_count(c), 100);
    const void *p;
    size_t n;
    assert_ok(gopt_ckpt_find(c, "s77", &p, &n));
    assert_int_equal(*(const int *)p, 77);
    gopt_ckpt_close(c);
    /* Out of memory in begin/add/commit/open: a clean error each time, never a crash. */
    int saw_ok = 0;
    for (long budget = 0; budget < 20 && !saw_ok; budget++) {
        testutil_fail_after(budget);
        gopt_status s = gopt_ckpt_writer_begin(tmp_path("oom.bin"), &w);
        if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, "a", "abc", 3);
        if (s == GOPT_OK) s = gopt_ckpt_writer_commit(w);
        else if (w) gopt_ckpt_writer_abort(w);
        w = NULL;
        if (s == GOPT_OK) s = gopt_ckpt_open(tmp_path("oom.bin"), &c);
        testutil_alloc_reset();
        assert_true(s == GOPT_OK || s == GOPT_ENOMEM);
        if (s == GOPT_OK) {
            saw_ok = 1;
            gopt_ckpt_close(c);
        }
    }
    assert_true(saw_ok);
}

/* Write a corrupted copy, open it, expect `status` and `needle`. */
static void expect_bad(const unsigned char *data, size_t size, gopt_status status, const char *needle) {
    const char *bad = tmp_path("bad.bin");
    write_file(bad, data, size);
    gopt_ckpt *c = (gopt_ckpt *)&c;
    assert_status(gopt_ckpt_open(bad, &c), status, needle);
    assert_null(c);
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void fix_header_crc(unsigned char *h) { put_u32(h + 60, gopt_crc32(0, h, 60)); }

static void test_open_errors(void **state) {
    (void)state;
    clear_dir();
    gopt_ckpt *c = (gopt_ckpt *)&c;
    assert_status(gopt_ckpt_open(tmp_path("none.bin"), &c), GOPT_EIO, "none.bin: cannot open: No such file");
    assert_null(c);
    assert_status(gopt_ckpt_open(tmpdir, &c), GOPT_EIO, "not a regular file");
    assert_status(gopt_ckpt_open(NULL, &c), GOPT_EINVAL, "path");
    const char *path = tmp_path("ck.bin");
    write_small(path, 5);
    size_t size;
    unsigned char *good = read_file(path, &size), *buf = malloc(size + 16);

    expect_bad(good, 0, GOPT_EFORMAT, "truncated at byte 0");
    expect_bad(good, 40, GOPT_EFORMAT, "truncated at byte 40");
    expect_bad(good, size - 1, GOPT_EFORMAT, "truncated at byte");
    memcpy(buf, good, size);
    buf[size] = 0;
    expect_bad(buf, size + 1, GOPT_EFORMAT, "trailing data");

    memcpy(buf, good, size);
    buf[0] = 'X';
    expect_bad(buf, size, GOPT_EFORMAT, "bad magic");
    /* Version 2 with a consistent header: refused by version, not by checksum. */
    memcpy(buf, good, size);
    put_u32(buf + 8, 2);
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "unsupported version 2");
    memcpy(buf, good, size);
    put_u32(buf + 8, 0);
    expect_bad(buf, size, GOPT_EFORMAT, "unsupported version 0");
    memcpy(buf, good, size);
    put_u32(buf + 12, 0x04030201u);
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "byte-order");
    memcpy(buf, good, size);
    buf[20] ^= 1; /* reserved field without fixing the checksum */
    expect_bad(buf, size, GOPT_EFORMAT, "header checksum mismatch");
    /* Table offset / count out of bounds, with valid header checksums. */
    memcpy(buf, good, size);
    put_u64(buf + 24, (uint64_t)1 << 62);
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "section table out of bounds");
    memcpy(buf, good, size);
    put_u32(buf + 16, 0xffffffffu);
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "section table out of bounds");
    memcpy(buf, good, size);
    put_u64(buf + 32, 0);
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "section table out of bounds");
    /* The table itself. */
    uint64_t table_offset;
    memcpy(&table_offset, good + 24, 8);
    memcpy(buf, good, size);
    buf[table_offset + 70] ^= 1; /* section 0's offset */
    expect_bad(buf, size, GOPT_EFORMAT, "section table checksum mismatch");
    /* A table entry pointing outside the data, with a consistent table checksum. */
    memcpy(buf, good, size);
    put_u64(buf + table_offset + 88 + 72, 1u << 20); /* section 1 ("optim") size */
    put_u32(buf + 48, gopt_crc32(0, buf + table_offset, size - table_offset));
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "section 'optim' out of bounds");
    memcpy(buf, good, size);
    memcpy(buf + table_offset + 88, "params", 7); /* duplicate name */
    put_u32(buf + 48, gopt_crc32(0, buf + table_offset, size - table_offset));
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "'params' appears twice");
    memcpy(buf, good, size);
    memset(buf + table_offset + 88, 0, 64); /* empty name */
    put_u32(buf + 48, gopt_crc32(0, buf + table_offset, size - table_offset));
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "section 1 has an empty or unterminated name");
    memcpy(buf, good, size);
    memset(buf + table_offset + 88, 'z', 64); /* unterminated name */
    put_u32(buf + 48, gopt_crc32(0, buf + table_offset, size - table_offset));
    fix_header_crc(buf);
    expect_bad(buf, size, GOPT_EFORMAT, "unterminated name");
    /* The data of section "optim" (second section, at byte 64 + 32). */
    memcpy(buf, good, size);
    buf[64 + 32 + 3] ^= 0x20;
    expect_bad(buf, size, GOPT_EFORMAT, "section 'optim' checksum mismatch");
    /* Padding after "optim" (17 bytes from 96: bytes 113..127). */
    memcpy(buf, good, size);
    buf[120] = 1;
    expect_bad(buf, size, GOPT_EFORMAT, "padding after section 'optim'");
    free(good);
    free(buf);
}

static void test_truncation_and_flips(void **state) {
    (void)state;
    clear_dir();
    const char *path = tmp_path("ck.bin");
    write_small(path, 77);
    size_t size;
    unsigned char *good = read_file(path, &size), *buf = malloc(size);
    const char *bad = tmp_path("bad.bin");
    gopt_ckpt *c;
    /* Truncation at every byte. */
    for (size_t len = 0; len < size; len++) {
        write_file(bad, good, len);
        c = (gopt_ckpt *)&c;
        gopt_status s = gopt_ckpt_open(bad, &c);
        if (s != GOPT_EFORMAT) fail_msg("truncated to %zu of %zu bytes: status %d (%s)", len, size, s, gopt_last_error());
        assert_null(c);
        assert_non_null(strstr(gopt_last_error(), "truncated at byte"));
    }
    /* Every single-byte change anywhere (three patterns per byte) is caught. */
    const unsigned char xors[3] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < size; i++)
        for (int k = 0; k < 3; k++) {
            memcpy(buf, good, size);
            buf[i] ^= xors[k];
            write_file(bad, buf, size);
            gopt_status s = gopt_ckpt_open(bad, &c);
            if (s != GOPT_EFORMAT) fail_msg("byte %zu ^ 0x%02x: status %d (%s)", i, xors[k], s, gopt_last_error());
        }
    /* Random multi-byte damage plus random truncation: an error or, never, wrong data. */
    gopt_rng rng;
    gopt_rng_seed(&rng, 2024);
    int errors = 0;
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(buf, good, size);
        int flips = 1 + (int)gopt_rng_below(&rng, 8);
        for (int f = 0; f < flips; f++) buf[gopt_rng_below(&rng, size)] = (unsigned char)gopt_rng_u64(&rng);
        size_t len = gopt_rng_below(&rng, 4) == 0 ? (size_t)gopt_rng_below(&rng, size + 1) : size;
        write_file(bad, buf, len);
        gopt_status s = gopt_ckpt_open(bad, &c);
        if (s == GOPT_OK) {
            /* Only possible if the damage rewrote bytes to their own values. */
            assert_int_equal(len, size);
            assert_memory_equal(buf, good, size);
            gopt_ckpt_close(c);
        } else {
            assert_int_equal(s, GOPT_EFORMAT);
            errors++;
        }
    }
    assert_true(errors > 1400);
    free(good);
    free(buf);
}

/* Atomic replacement: a crash before commit, or a kill at an arbitrary moment while a child
 * rewrites the file in a loop, never leaves anything but a complete checkpoint. */
static void write_big(const char *path, unsigned char tag, size_t bytes) {
    unsigned char *data = malloc(bytes);
    memset(data, tag, bytes);
    gopt_ckpt_writer *w = NULL;
    if (gopt_ckpt_writer_begin(path, &w) != GOPT_OK) _exit(3);
    if (gopt_ckpt_writer_add_u64(w, "tag", tag) != GOPT_OK) _exit(3);
    for (int i = 0; i < 4; i++) {
        char name[8] = {'d', (char)('0' + i), 0};
        if (gopt_ckpt_writer_add(w, name, data, bytes / 4) != GOPT_OK) _exit(3);
    }
    if (gopt_ckpt_writer_commit(w) != GOPT_OK) _exit(3);
    free(data);
}

static void check_big(const char *path, size_t bytes, uint64_t *tag_out) {
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(path, &c));
    uint64_t tag;
    assert_ok(gopt_ckpt_get_u64(c, "tag", &tag));
    for (int i = 0; i < 4; i++) {
        char name[8] = {'d', (char)('0' + i), 0};
        const void *p;
        size_t n;
        assert_ok(gopt_ckpt_find(c, name, &p, &n));
        assert_int_equal(n, bytes / 4);
        const unsigned char *b = p;
        for (size_t k = 0; k < n; k += 4093) assert_int_equal(b[k], tag);
        assert_int_equal(b[n - 1], tag);
    }
    gopt_ckpt_close(c);
    *tag_out = tag;
}

static void test_atomic_replace(void **state) {
    (void)state;
    clear_dir();
    const char *path = tmp_path("ck.bin");
    const size_t big = 8u << 20;
    write_big(path, 1, big);
    uint64_t tag;
    check_big(path, big, &tag);
    assert_int_equal(tag, 1);

    /* 1. A writer that never commits: the old file is intact; abort cleans up. */
    gopt_ckpt_writer *w = NULL;
    assert_ok(gopt_ckpt_writer_begin(path, &w));
    assert_ok(gopt_ckpt_writer_add(w, "tag", "xxxxxxxx", 8));
    check_big(path, big, &tag);
    assert_int_equal(tag, 1);
    gopt_ckpt_writer_abort(w);

    /* 2. A child killed (SIGKILL) between adds, before commit. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned char *data = calloc(1, big);
        gopt_ckpt_writer *cw = NULL;
        if (gopt_ckpt_writer_begin(path, &cw) != GOPT_OK) _exit(3);
        if (gopt_ckpt_writer_add(cw, "d0", data, big) != GOPT_OK) _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    check_big(path, big, &tag);
    assert_int_equal(tag, 1);
    assert_int_equal(count_files(), 2); /* the stale temporary file is left, harmless */

    /* 3. A child rewriting the checkpoint in a loop, killed at several arbitrary moments:
     * after each kill the file is one complete checkpoint (an old or a new one). */
    for (int round = 0; round < 4; round++) {
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (unsigned char t = 2;; t = (unsigned char)(t == 250 ? 2 : t + 1)) write_big(path, t, big);
        }
        struct timespec ts = {0, 30000000L + 25000000L * round};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        check_big(path, big, &tag);
        assert_true(tag >= 1 && tag <= 250);
    }
    free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),         cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_errors), cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_truncation_and_flips), cmocka_unit_test(test_atomic_replace),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
