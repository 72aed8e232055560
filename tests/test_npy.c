/* The .npy reader (src/io/npy.c) and gopt_dataset_from_npy / gopt_dataset_from_tokens_npy on
 * files written here byte by byte: every accepted dtype and format version, and each
 * malformed file refused with GOPT_EFORMAT (or GOPT_EIO) and a message naming the file and
 * the problem; and a sparse 32 GiB .npy, larger than this machine's RAM, mapped and read.
 * Files written by NumPy itself are read in test_data_array --numpy. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "io/npy.h"
#include "testutil.h"

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/gopt_test_npy_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name) {
    static char p[32][256];
    static int k;
    k = (k + 1) % 32;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* A .npy image as numpy.save writes it: magic, version, header length, the dict padded
 * with spaces to a multiple of 64 and ended by '\n', then `data`. Returns its size. */
static size_t npy_bytes(unsigned char *out, size_t cap, int major, const char *dict, const void *data, size_t n) {
    const size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64;
    assert_true(total + n <= cap);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    const size_t hl = total - pre;
    out[8] = (unsigned char)(hl & 0xff);
    out[9] = (unsigned char)(hl >> 8);
    if (major != 1) {
        out[10] = (unsigned char)(hl >> 16);
        out[11] = (unsigned char)(hl >> 24);
    }
    memcpy(out + pre, dict, dl);
    memset(out + pre + dl, ' ', total - pre - dl - 1);
    out[total - 1] = '\n';
    if (n) memcpy(out + total, data, n);
    return total + n;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (size) assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static const char *write_npy(const char *name, int major, const char *dict, const void *data, size_t n) {
    static unsigned char buf[1 << 16];
    size_t size = npy_bytes(buf, sizeof buf, major, dict, data, n);
    const char *p = tmp_path(name);
    write_file(p, buf, size);
    return p;
}

/* ---- the header parser ---------------------------------------------------------------- */

static void test_parse_each_dtype_and_version(void **state) {
    (void)state;
    unsigned char buf[4096];
    float f4[6] = {1, 2, 3, 4, 5, 6};
    double f8[3] = {0.5, -1.25, 1e300};
    int32_t i4[4] = {7, -8, 9, 2147483647};
    int64_t i8[2] = {-1, 4000000000LL};
    struct {
        int major;
        const char *dict;
        const void *data;
        size_t n;
        gopt__npy_dtype dtype;
        int ndim;
        int64_t shape0;
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4, sizeof f4, GOPT__NPY_F4, 2, 2},
        {2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8, sizeof f8, GOPT__NPY_F8, 1, 3},
        {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", i4, sizeof i4, GOPT__NPY_I4, 1, 4},
        {1, "{'shape': (2,1), \"fortran_order\": False, 'descr': '<i8'}", i8, sizeof i8, GOPT__NPY_I8, 2, 2},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f4, 4, GOPT__NPY_F4, 0, 0},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", NULL, 0, GOPT__NPY_F4, 2, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t size = npy_bytes(buf, sizeof buf, cases[k].major, cases[k].dict, cases[k].data, cases[k].n);
        gopt__npy_header h;
        assert_ok(gopt__npy_parse(buf, size, "case.npy", "test", &h));
        assert_int_equal(h.dtype, cases[k].dtype);
        assert_int_equal(h.major, cases[k].major);
        assert_int_equal(h.ndim, cases[k].ndim);
        if (h.ndim) assert_int_equal(h.shape[0], cases[k].shape0);
        assert_int_equal(h.data_bytes, cases[k].n);
        assert_int_equal(h.data_offset % 64, 0);
        assert_memory_equal(buf + h.data_offset, cases[k].data ? cases[k].data : buf, cases[k].n);
    }
}

/* Every malformed header: GOPT_EFORMAT with the file's name and the problem. */
static void test_parse_refusals(void **state) {
    (void)state;
    unsigned char buf[4096];
    float f4[6] = {0};
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    gopt__npy_header h;
    size_t size = npy_bytes(buf, sizeof buf, 1, ok, f4, sizeof f4);
    /* bad magic */
    buf[1] = 'n';
    assert_status(gopt__npy_parse(buf, size, "m.npy", "test", &h), GOPT_EFORMAT, "m.npy: not a .npy file (bad magic");
    buf[1] = 'N';
    /* every truncation of a valid file is refused (never read past the end) */
    for (size_t cut = 0; cut < size; cut++) {
        gopt_clear_error();
        assert_int_equal(gopt__npy_parse(buf, cut, "t.npy", "test", &h), GOPT_EFORMAT);
        assert_non_null(strstr(gopt_last_error(), "t.npy: "));
    }
    assert_status(gopt__npy_parse(buf, 40, "t.npy", "test", &h), GOPT_EFORMAT, "truncated header");
    assert_status(gopt__npy_parse(buf, size - 4, "t.npy", "test", &h), GOPT_EFORMAT,
                  "truncated data: shape (2,3) of '<f4' (float32) needs 24 bytes, the file has 20");
    /* trailing bytes: the data must fill the file exactly */
    size = npy_bytes(buf, sizeof buf, 1, ok, f4, sizeof f4);
    assert_status(gopt__npy_parse(buf, size + 0, "x.npy", "test", &h), GOPT_OK, NULL);
    size = npy_bytes(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f4, 24);
    assert_status(gopt__npy_parse(buf, size, "x.npy", "test", &h), GOPT_EFORMAT, "8 bytes after the data");
    /* version */
    size = npy_bytes(buf, sizeof buf, 1, ok, f4, sizeof f4);
    buf[6] = 4;
    assert_status(gopt__npy_parse(buf, size, "v.npy", "test", &h), GOPT_EFORMAT, "version 4.0 is not supported");
    buf[6] = 1;
    buf[7] = 1;
    assert_status(gopt__npy_parse(buf, size, "v.npy", "test", &h), GOPT_EFORMAT, "version 1.1");
    /* header length past the end */
    size = npy_bytes(buf, sizeof buf, 1, ok, f4, sizeof f4);
    buf[9] = 0x40;
    assert_status(gopt__npy_parse(buf, size, "l.npy", "test", &h), GOPT_EFORMAT, "l.npy: truncated header");
    struct {
        const char *dict, *needle;
    } bad[] = {
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", "dtype '>f4' is big-endian"},
        {"{'descr': '>i8', 'fortran_order': False, 'shape': (2, 3), }", "dtype '>i8' is big-endian"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", "fortran_order is True"},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", "dtype '<f2' is not supported"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", "dtype '|u1' is not supported"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", "dtype '<c8' is not supported"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", "structured dtypes"},
        {"{'descr': '<f4', 'shape': (2, 3), }", "lacks 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False}", "lacks 'shape'"},
        {"{'fortran_order': False, 'shape': (2, 3), }", "lacks 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", "unknown key 'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "'descr' appears twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", "not a tuple of non-negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", "not True or False"},
        {"['descr', '<f4']", "not a Python dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", "unexpected bytes after"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "too large"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size = npy_bytes(buf, sizeof buf, 2, bad[k].dict, f4, sizeof f4);
        assert_status(gopt__npy_parse(buf, size, "bad.npy", "test", &h), GOPT_EFORMAT, bad[k].needle);
        testutil_check_detail("bad.npy: ");
    }
}

/* ---- through the public API ----------------------------------------------------------- */

static void test_dataset_from_npy_each_dtype(void **state) {
    (void)state;
    float xf[12];
    double xd[12];
    for (int i = 0; i < 12; i++) xf[i] = (float)(xd[i] = 0.25 * i - 1.0);
    int32_t y4[4] = {0, 2, 1, 2};
    int64_t y8[4] = {1, 0, 1, 1};
    const char *x4 =
        write_npy("x4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", xf, sizeof xf);
    const char *x8 = write_npy("x8.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 1, 3), }", xd,
                               sizeof xd);
    const char *l4 = write_npy("l4.npy", 3, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", y4, sizeof y4);
    const char *l8 = write_npy("l8.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", y8, sizeof y8);
    const char *t8 = write_npy("t8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", xd, 32);
    const char *x_paths[2] = {x4, x8};
    const char *y_paths[3] = {l4, l8, t8};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++) {
            gopt_dataset *ds;
            assert_ok(gopt_dataset_from_npy(x_paths[a], y_paths[b], 0, &ds));
            assert_int_equal(gopt_dataset_kind_of(ds), GOPT_DATASET_ARRAYS);
            assert_int_equal(gopt_dataset_count(ds), 4);
            int64_t sh[3];
            assert_int_equal(gopt_dataset_sample_shape(ds, sh), a == 0 ? 1 : 2);
            assert_int_equal(sh[a == 0 ? 0 : 1], 3);
            gopt_loader_config c = gopt_loader_config_default();
            c.batch_size = 3;
            c.shuffle = 0;
            gopt_loader *l;
            assert_ok(gopt_loader_create(&c, ds, &l));
            gopt_batch bt;
            assert_ok(gopt_loader_next(l, &bt));
            assert_int_equal(bt.n, 3);
            for (int i = 0; i < 9; i++) assert_true(bt.images[i] == xf[i]);
            if (b == 2) {
                assert_null(bt.labels);
                assert_int_equal(gopt_dataset_target_shape(ds, sh), 1);
                assert_int_equal(sh[0], 1);
                for (int i = 0; i < 3; i++) assert_true(bt.targets[i] == (float)xd[i]);
            } else {
                assert_null(bt.targets);
                assert_int_equal(gopt_dataset_classes(ds), b == 0 ? 3 : 2);
                for (int i = 0; i < 3; i++) assert_int_equal(bt.labels[i], b == 0 ? y4[i] : y8[i]);
            }
            assert_ok(gopt_loader_next(l, &bt));
            assert_int_equal(bt.n, 1); /* the short last batch */
            assert_true(bt.images[2] == xf[11]);
            gopt_loader_destroy(l);
            gopt_dataset_destroy(ds);
        }
    /* tokens from '<i4' and '<i8' */
    int32_t ids4[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t ids8[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    const char *k4 = write_npy("k4.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (10,), }", ids4,
                               sizeof ids4);
    const char *k8 = write_npy("k8.npy", 3, "{'descr': '<i8', 'fortran_order': False, 'shape': (10,), }", ids8,
                               sizeof ids8);
    for (int k = 0; k < 2; k++) {
        gopt_dataset *ds;
        assert_ok(gopt_dataset_from_tokens_npy(k ? k8 : k4, 4, 0, &ds));
        assert_int_equal(gopt_dataset_kind_of(ds), GOPT_DATASET_TOKENS);
        assert_int_equal(gopt_dataset_count(ds), 2); /* floor(9 / 4) */
        assert_int_equal(gopt_dataset_classes(ds), 10);
        gopt_loader_config c = gopt_loader_config_default();
        c.batch_size = 2;
        c.shuffle = 0;
        gopt_loader *l;
        assert_ok(gopt_loader_create(&c, ds, &l));
        gopt_batch bt;
        assert_ok(gopt_loader_next(l, &bt));
        assert_int_equal(bt.n, 2);
        assert_null(bt.images);
        for (int i = 0; i < 8; i++) {
            assert_int_equal(bt.tokens[i], k ? ids8[i] : ids4[i]);
            assert_int_equal(bt.labels[i], k ? ids8[i + 1] : ids4[i + 1]);
        }
        gopt_loader_destroy(l);
        gopt_dataset_destroy(ds);
    }
}

static void test_dataset_from_npy_refusals(void **state) {
    (void)state;
    float xf[12] = {0};
    int32_t y4[4] = {0, 2, 1, 9};
    int64_t y8[4] = {0, 1, 2, 1LL << 40};
    gopt_dataset *ds = (gopt_dataset *)1;
    const char *x = write_npy("x.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", xf, sizeof xf);
    const char *y = write_npy("y.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", y4, sizeof y4);
    assert_status(gopt_dataset_from_npy(x, y, 5, &ds), GOPT_EFORMAT, "y.npy: label[3] = 9 is outside 0..4");
    assert_null(ds);
    assert_ok(gopt_dataset_from_npy(x, y, 0, &ds));
    assert_int_equal(gopt_dataset_classes(ds), 10);
    gopt_dataset_destroy(ds);
    const char *y_big = write_npy("yb.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", y8,
                                  sizeof y8);
    assert_status(gopt_dataset_from_npy(x, y_big, 0, &ds), GOPT_EFORMAT, "is not an int");
    assert_status(gopt_dataset_from_npy(x, y_big, 3, &ds), GOPT_EFORMAT, "label[3] = 1099511627776 is outside 0..2");
    const char *y3 = write_npy("y3.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", y4, 12);
    assert_status(gopt_dataset_from_npy(x, y3, 0, &ds), GOPT_EFORMAT, "y3.npy: 3 samples, ");
    testutil_check_detail("x.npy has 4");
    const char *y2d = write_npy("y2.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4, 1), }", y4, 16);
    assert_status(gopt_dataset_from_npy(x, y2d, 0, &ds), GOPT_EFORMAT, "integer labels must be 1-D");
    const char *xi = write_npy("xi.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", y4, 16);
    assert_status(gopt_dataset_from_npy(xi, y, 0, &ds), GOPT_EFORMAT, "features of dtype '<i4' (int32)");
    const char *x1 = write_npy("x1.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", xf, 48);
    assert_status(gopt_dataset_from_npy(x1, y, 0, &ds), GOPT_EFORMAT, "x1.npy: 1 dimensions");
    const char *x5 = write_npy("x5.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,1,1,1,3), }", xf,
                               48);
    assert_status(gopt_dataset_from_npy(x5, y, 0, &ds), GOPT_EFORMAT, "x5.npy: 5 dimensions");
    const char *x0 = write_npy("x0.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", xf, 0);
    assert_status(gopt_dataset_from_npy(x0, y, 0, &ds), GOPT_EFORMAT, "x0.npy: no samples");
    const char *xz = write_npy("xz.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", xf, 0);
    assert_status(gopt_dataset_from_npy(xz, y, 0, &ds), GOPT_EFORMAT, "empty samples");
    const char *xbe = write_npy("xbe.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 3), }", xf, 48);
    assert_status(gopt_dataset_from_npy(xbe, y, 0, &ds), GOPT_EFORMAT, "xbe.npy: dtype '>f4' is big-endian");
    const char *xfo = write_npy("xfo.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", xf, 48);
    assert_status(gopt_dataset_from_npy(xfo, y, 0, &ds), GOPT_EFORMAT, "xfo.npy: fortran_order is True");
    const char *xsh = write_npy("xsh.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }", xf, 48);
    assert_status(gopt_dataset_from_npy(xsh, y, 0, &ds), GOPT_EFORMAT, "xsh.npy: truncated data: shape (5,3)");
    write_file(tmp_path("empty.npy"), "", 0);
    assert_status(gopt_dataset_from_npy(tmp_path("empty.npy"), y, 0, &ds), GOPT_EFORMAT, "empty.npy: empty file");
    write_file(tmp_path("text.npy"), "hello, world\n", 13);
    assert_status(gopt_dataset_from_npy(tmp_path("text.npy"), y, 0, &ds), GOPT_EFORMAT, "text.npy: not a .npy file");
    assert_status(gopt_dataset_from_npy(tmp_path("missing.npy"), y, 0, &ds), GOPT_EIO,
                  "missing.npy: cannot open: No such file");
    assert_status(gopt_dataset_from_npy(tmpdir, y, 0, &ds), GOPT_EIO, "not a regular file");
    assert_status(gopt_dataset_from_npy(x, y, -1, &ds), GOPT_EINVAL, "classes = -1");
    assert_status(gopt_dataset_from_npy(NULL, y, 0, &ds), GOPT_EINVAL, "x_path");
    assert_status(gopt_dataset_from_npy(x, y, 0, NULL), GOPT_EINVAL, "out");
    /* tokens */
    assert_status(gopt_dataset_from_tokens_npy(x, 2, 0, &ds), GOPT_EFORMAT, "token ids of dtype '<f4' (float32)");
    assert_status(gopt_dataset_from_tokens_npy(y2d, 2, 0, &ds), GOPT_EFORMAT, "must be 1-D, not 2-D");
    assert_status(gopt_dataset_from_tokens_npy(y, 4, 0, &ds), GOPT_EFORMAT,
                  "y.npy: 4 tokens are fewer than one sample");
    assert_status(gopt_dataset_from_tokens_npy(y, 1, 5, &ds), GOPT_EFORMAT, "y.npy: id[3] = 9 is outside 0..4");
    assert_status(gopt_dataset_from_tokens_npy(y, 0, 0, &ds), GOPT_EINVAL, "seq_len = 0");
    assert_null(ds);
}

/* ---- a memory-mapped file larger than this machine's RAM ---------------------------------- */

static void test_npy_larger_than_ram(void **state) {
    (void)state;
    /* 8 Mi samples x 1024 float32 = 32 GiB of features, a sparse file (no disk blocks): the
     * dataset maps it and a batch reads only its own pages. */
    const int64_t count = 8LL << 20, width = 1024;
    char dir[] = "/tmp/gopt_test_bigXXXXXX";
    assert_non_null(mkdtemp(dir));
    char xp[96], yp[96];
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    char head[128];
    int hl = snprintf(head, sizeof head,
                      "\x93NUMPY\x01%c%c%c{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }", 0, 118,
                      0, (long long)count, (long long)width);
    memset(head + hl, ' ', sizeof head - (size_t)hl);
    head[127] = '\n';
    int fd = open(xp, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, head, 128), 128);
    const off_t xsize = 128 + (off_t)count * width * 4;
    int rc = ftruncate(fd, xsize);
    close(fd);
    if (rc != 0) {
        unlink(xp);
        rmdir(dir);
        print_message("skipped: cannot make a sparse file of %lld bytes: %s\n", (long long)xsize, strerror(errno));
        skip();
    }
    hl = snprintf(head, sizeof head, "\x93NUMPY\x01%c%c%c{'descr': '<i4', 'fortran_order': False, 'shape': (%lld,), }",
                  0, 118, 0, (long long)count);
    memset(head + hl, ' ', sizeof head - (size_t)hl);
    head[127] = '\n';
    fd = open(yp, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, head, 128), 128);
    assert_int_equal(ftruncate(fd, 128 + (off_t)count * 4), 0);
    close(fd);
    gopt_dataset *ds;
    assert_ok(gopt_dataset_from_npy(xp, yp, 2, &ds));
    assert_int_equal(gopt_dataset_count(ds), count);
    gopt_loader_config c = gopt_loader_config_default();
    c.batch_size = 16;
    gopt_loader *l;
    assert_ok(gopt_loader_create(&c, ds, &l));
    assert_ok(gopt_loader_seek(l, 0, gopt_loader_batches_per_epoch(l) - 1));
    gopt_batch b;
    assert_ok(gopt_loader_next(l, &b));
    assert_int_equal(b.n, 16);
    for (int64_t i = 0; i < 16 * width; i++) assert_true(b.images[i] == 0.0f);
    gopt_loader_destroy(l);
    gopt_dataset_destroy(ds);
    unlink(xp);
    unlink(yp);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_each_dtype_and_version),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_dataset_from_npy_each_dtype),
        cmocka_unit_test(test_dataset_from_npy_refusals),
        cmocka_unit_test(test_npy_larger_than_ram),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
