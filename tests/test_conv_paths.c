/* The convolution paths against a float64 direct convolution: the Winograd F(4x4,3x3)
 * kernels (forward, input gradient, weight gradient; bias, accumulation, a fused
 * batchnorm + relu on the input, dx aliasing dy, partial tile blocks, 1 and 2 threads),
 * im2col with the library's AVX2 products (stem, stride-2 and 1x1 shapes, and shapes they
 * refuse), the implicit-GEMM AVX2 kernels (stem, stride 2, 1x1, odd shapes) and im2col +
 * OpenBLAS on the same data (dx = , +=, and aliasing x), with the error of each printed. GOPT_CONV_PATH picks
 * the path at setup, and an unknown value is refused by name. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gradopt.h"
#include "core/common.h"
#include "nn/kernels.h"

static double urand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) + 0.5) / 16777216.0;
}
static float nrand(unsigned *s) { return (float)(sqrt(-2.0 * log(urand(s))) * cos(6.283185307179586 * urand(s))); }

typedef struct shape {
    int n, C, K, H, W;
    int R, stride; /* 0: 3 and 1; padding R / 2 */
} shape;

static int sR(const shape *s) { return s->R ? s->R : 3; }
static int sS(const shape *s) { return s->stride ? s->stride : 1; }
static int sOH(const shape *s) { return (s->H + 2 * (sR(s) / 2) - sR(s)) / sS(s) + 1; }
static int sOW(const shape *s) { return (s->W + 2 * (sR(s) / 2) - sR(s)) / sS(s) + 1; }

/* float64 references of y = conv(xin) + b, dx = W^T dy (full conv), dw = dy * xin */
static void ref_all(const shape *s, const float *w, const float *b, const float *xin, const float *dy, double *y,
                    double *dx, double *dw) {
    const int C = s->C, K = s->K, H = s->H, W = s->W, R = sR(s), st = sS(s), pd = R / 2, OH = sOH(s), OW = sOW(s);
    memset(dx, 0, sizeof(double) * (size_t)s->n * C * H * W);
    memset(dw, 0, sizeof(double) * (size_t)K * C * R * R);
    for (int j = 0; j < s->n; j++)
        for (int k = 0; k < K; k++)
            for (int h = 0; h < OH; h++)
                for (int x = 0; x < OW; x++) {
                    double acc = b ? b[k] : 0.0;
                    const double g = dy[(((size_t)j * K + k) * OH + h) * OW + x];
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++)
                            for (int q = 0; q < R; q++) {
                                int ih = h * st + r - pd, iw = x * st + q - pd;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                size_t xi = (((size_t)j * C + c) * H + ih) * W + iw, wi = (((size_t)k * C + c) * R + r) * R + q;
                                acc += (double)w[wi] * xin[xi];
                                dx[xi] += (double)w[wi] * g;
                                dw[wi] += g * xin[xi];
                            }
                    y[(((size_t)j * K + k) * OH + h) * OW + x] = acc;
                }
}

static double rel_err(const float *a, const double *ref, size_t m) {
    double e = 0.0, mx = 0.0;
    for (size_t i = 0; i < m; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    return e / (mx > 0 ? mx : 1.0);
}

static gopt_status setup_path(gopt__conv *c, const char *path, const shape *s) {
    setenv("GOPT_CONV_PATH", path, 1);
    gopt_status st = gopt__conv_setup(c, s->C, s->K, s->H, s->W, sR(s), sS(s), sR(s) / 2, 0, s->n);
    unsetenv("GOPT_CONV_PATH");
    return st;
}

/* One shape through one path: forward (+bias, optionally through a fused bn-relu), dx
 * (= and +=, aliasing dy or x), dw; returns the worst of the three errors in err[3]. */
static void run_path(const shape *s, const char *path, int fused, int bias, double err[3]) {
    gopt__conv c;
    assert_int_equal(setup_path(&c, path, s), GOPT_OK);
    if (!strcmp(path, "winograd")) assert_true(c.wino);
    if (!strcmp(path, "generic")) assert_false(c.wino || c.fast || c.cgemm || c.impl);
    if (!strcmp(path, "implicit"))
        assert_int_equal(c.impl, gopt__conv_cpu_wino() && sOW(s) % 8 == 0 && s->K % 8 == 0);
    if (!strcmp(path, "im2col")) assert_int_equal(c.cgemm, gopt__conv_cpu_wino() && sOH(s) * sOW(s) % 16 == 0 && s->K % 4 == 0);
    const size_t nx = (size_t)s->n * s->C * s->H * s->W, ny = (size_t)s->n * s->K * sOH(s) * sOW(s),
                 nw = (size_t)s->K * s->C * sR(s) * sR(s);
    float *x = malloc(sizeof(float) * nx), *xin = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * nw);
    float *b = malloc(sizeof(float) * (size_t)s->K), *dy = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
    float *dx = malloc(sizeof(float) * (nx > ny ? nx : ny)), *dw = calloc(nw, sizeof(float));
    float *sc = malloc(sizeof(float) * (size_t)s->C), *sh = malloc(sizeof(float) * (size_t)s->C);
    double *ry = malloc(sizeof(double) * ny), *rdx = malloc(sizeof(double) * nx), *rdw = malloc(sizeof(double) * nw);
    float *ws = gopt__aligned_alloc(sizeof(float) * gopt__conv_ws_floats(&c));
    assert_non_null(ws);
    for (size_t i = 0; i < gopt__conv_ws_floats(&c); i++) ws[i] = NAN; /* nothing may read stale scratch */
    unsigned seed = 12345u + (unsigned)(s->C * 7 + s->K * 13 + s->H);
    for (size_t i = 0; i < nx; i++) x[i] = nrand(&seed);
    const float ws_std = (float)sqrt(2.0 / ((double)sR(s) * sR(s) * s->C));
    for (size_t i = 0; i < nw; i++) w[i] = ws_std * nrand(&seed);
    for (int k = 0; k < s->K; k++) b[k] = 0.1f * nrand(&seed);
    for (size_t i = 0; i < ny; i++) dy[i] = nrand(&seed);
    for (int ci = 0; ci < s->C; ci++) {
        sc[ci] = 0.5f + (float)urand(&seed);
        sh[ci] = 0.2f * nrand(&seed);
    }
    const size_t HW = (size_t)s->H * s->W;
    for (size_t i = 0; i < nx; i++) { /* what the fused path sees */
        size_t ci = (i / HW) % (size_t)s->C;
        float v = x[i] * sc[ci] + sh[ci];
        xin[i] = fused ? (v > 0.0f ? v : 0.0f) : x[i];
    }
    ref_all(s, w, bias ? b : NULL, xin, dy, ry, rdx, rdw);
    const float *fs = fused ? sc : NULL, *fh = fused ? sh : NULL;
    if (fused)
        gopt__conv_fused_forward(&c, w, bias ? b : NULL, x, y, s->n, ws, fs, fh);
    else
        gopt__conv_forward(&c, w, bias ? b : NULL, x, y, s->n, ws);
    err[0] = rel_err(y, ry, ny);
    /* dw, with dx into a copy of dy when C == K (dx aliasing dy), else fresh */
    const int alias = s->C == s->K && fused && nx == ny;
    if (alias) memcpy(dx, dy, sizeof(float) * ny);
    if (fused)
        gopt__conv_fused_backward(&c, w, dw, NULL, x, alias ? dx : dy, dx, 0, s->n, ws, fs, fh);
    else
        gopt__conv_backward(&c, w, dw, NULL, x, dy, dx, 0, s->n, ws);
    err[1] = rel_err(dx, rdx, nx);
    err[2] = rel_err(dw, rdw, nw);
    /* accumulate: dx += W^T dy on top of dx = 1; dw and x untouched by a dx-only call */
    if (!fused) {
        for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
        gopt__conv_backward(&c, w, NULL, NULL, x, dy, dx, 1, s->n, ws);
        for (size_t i = 0; i < nx; i++) rdx[i] += 1.0;
        double e = rel_err(dx, rdx, nx);
        if (e > err[1]) err[1] = e;
        for (size_t i = 0; i < nx; i++) rdx[i] -= 1.0;
        /* dx aliasing x: dw from x, then dx over it */
        memcpy(dx, x, sizeof(float) * nx);
        memset(dw, 0, sizeof(float) * nw);
        gopt__conv_backward(&c, w, dw, NULL, dx, dy, dx, 0, s->n, ws);
        e = rel_err(dx, rdx, nx);
        if (e > err[1]) err[1] = e;
        e = rel_err(dw, rdw, nw);
        if (e > err[2]) err[2] = e;
    }
    gopt__aligned_free(ws);
    free(x), free(xin), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(sc), free(sh);
    free(ry), free(rdx), free(rdw);
}

static void check_shape(const shape *s, int fused, int bias) {
    double ew[3], eg[3];
    run_path(s, "winograd", fused, bias, ew);
    run_path(s, "generic", 0, bias, eg);
    printf("conv n=%d %dx%dx%d -> %d%s%s: winograd fwd %.2e dx %.2e dw %.2e | im2col fwd %.2e dx %.2e dw %.2e\n", s->n,
           s->C, s->H, s->W, s->K, fused ? " fused bn-relu" : "", bias ? " bias" : "", ew[0], ew[1], ew[2], eg[0],
           eg[1], eg[2]);
    for (int i = 0; i < 3; i++) {
        assert_true(ew[i] < 2e-5); /* F(4x4,3x3) in float32: a few 1e-6 here */
        assert_true(eg[i] < 1e-5);
    }
}

/* the shapes Winograd does not take: im2col with the library's products and with OpenBLAS */
static void check_im2col(const shape *s, int bias) {
    double ei[3], eg[3];
    run_path(s, "im2col", 0, bias, ei);
    run_path(s, "generic", 0, bias, eg);
    printf("conv n=%d %dx%dx%d -> %d k%d s%d%s: im2col fwd %.2e dx %.2e dw %.2e | generic fwd %.2e dx %.2e dw %.2e\n",
           s->n, s->C, s->H, s->W, s->K, sR(s), sS(s), bias ? " bias" : "", ei[0], ei[1], ei[2], eg[0], eg[1], eg[2]);
    for (int i = 0; i < 3; i++) {
        assert_true(ei[i] < 1e-5);
        assert_true(eg[i] < 1e-5);
    }
}

/* ResNet-20's other layers (stem, stride-2 3x3, 1x1 projections), and shapes the library's
 * products refuse (pixels not a multiple of 16, outputs not of 4), one thread and two */
static void test_im2col_paths(void **state) {
    (void)state;
    const shape s[] = {{4, 3, 16, 32, 32, 3, 1}, {3, 16, 32, 32, 32, 3, 2}, {3, 32, 64, 16, 16, 3, 2},
                       {3, 16, 32, 32, 32, 1, 2}, {2, 5, 6, 10, 10, 3, 2}, {3, 8, 12, 8, 8, 1, 1}};
    const int threads = gopt_get_threads();
    for (int t = 1; t <= 2; t++) {
        gopt_set_threads(t);
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) check_im2col(&s[i], (int)(i % 2));
    }
    gopt_set_threads(threads);
}

/* the implicit-GEMM kernels: ResNet's stem, stride-2 and 1x1 layers, 3x3 stride-1 layers,
 * an odd count of 8-pixel groups (7 x 8 outputs), K = 24 (an 8-channel dW tile), 5x5,
 * odd input sizes at stride 2, 1x1 stride 1, stride 3; against im2col + OpenBLAS; 1 and 2 threads */
static void test_implicit_paths(void **state) {
    (void)state;
    const shape s[] = {{4, 3, 16, 32, 32, 3, 1}, {3, 16, 32, 32, 32, 3, 2}, {3, 32, 64, 16, 16, 3, 2},
                       {3, 16, 32, 32, 32, 1, 2}, {3, 32, 64, 16, 16, 1, 2}, {2, 16, 16, 16, 16, 3, 1},
                       {2, 4, 8, 7, 8, 3, 1},     {3, 5, 24, 16, 16, 3, 2},  {2, 3, 8, 16, 16, 5, 1},
                       {2, 6, 8, 15, 15, 3, 2},   {3, 8, 16, 8, 8, 1, 1},    {2, 7, 8, 16, 16, 1, 2},
                       {2, 4, 8, 24, 24, 3, 3}};
    const int threads = gopt_get_threads();
    for (int t = 1; t <= 2; t++) {
        gopt_set_threads(t);
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            double ei[3], eg[3];
            run_path(&s[i], "implicit", 0, (int)(i % 2), ei);
            run_path(&s[i], "generic", 0, (int)(i % 2), eg);
            printf("conv n=%d %dx%dx%d -> %d k%d s%d: implicit fwd %.2e dx %.2e dw %.2e | generic fwd %.2e dx %.2e "
                   "dw %.2e\n",
                   s[i].n, s[i].C, s[i].H, s[i].W, s[i].K, sR(&s[i]), sS(&s[i]), ei[0], ei[1], ei[2], eg[0], eg[1],
                   eg[2]);
            for (int j = 0; j < 3; j++) {
                assert_true(ei[j] < 1e-5);
                assert_true(eg[j] < 1e-5);
            }
        }
    }
    gopt_set_threads(threads);
}

/* ResNet-20's 3x3 stride-1 layers (batch 4 and 3) */
static void test_resnet20_layers(void **state) {
    (void)state;
    const shape s[] = {{4, 16, 16, 32, 32, 0, 0}, {4, 32, 32, 16, 16, 0, 0}, {4, 64, 64, 8, 8, 0, 0}, {3, 16, 16, 32, 32, 0, 0}, {3, 64, 64, 8, 8, 0, 0}};
    const int threads = gopt_get_threads();
    for (int t = 1; t <= 2; t++) {
        gopt_set_threads(t);
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) check_shape(&s[i], 0, 0), check_shape(&s[i], 1, 0);
    }
    gopt_set_threads(threads);
}

/* partial blocks (5 images of 8x8: 20 tiles; 3 of 4x12), K not a multiple of 6, bias,
 * fused bn-relu with dx aliasing dy, one thread and two */
static void test_edges_and_threads(void **state) {
    (void)state;
    const shape s[] = {{5, 8, 20, 8, 8, 0, 0}, {3, 16, 10, 4, 12, 0, 0}, {2, 24, 24, 12, 8, 0, 0}};
    const int threads = gopt_get_threads();
    for (int t = 1; t <= 2; t++) {
        gopt_set_threads(t);
        for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
            check_shape(&s[i], 0, 1);
            check_shape(&s[i], 1, 0);
        }
    }
    gopt_set_threads(threads);
}

/* Shapes Winograd does not take stay on the other paths; a bad GOPT_CONV_PATH is named. */
static void test_path_choice(void **state) {
    (void)state;
    gopt__conv c;
    const shape odd = {2, 8, 8, 10, 10, 0, 0}, few = {2, 3, 16, 32, 32, 0, 0}, ok = {2, 16, 16, 8, 8, 0, 0};
    assert_int_equal(setup_path(&c, "winograd", &odd), GOPT_OK);
    assert_false(c.wino); /* 10 is not a multiple of 4 */
    assert_int_equal(setup_path(&c, "winograd", &few), GOPT_OK);
    assert_false(c.wino); /* 3 input channels */
    assert_int_equal(setup_path(&c, "winograd", &ok), GOPT_OK);
    assert_int_equal(c.wino, gopt__conv_cpu_wino());
    assert_int_equal(setup_path(&c, "direct", &ok), GOPT_OK);
    assert_false(c.wino);
    assert_int_equal(setup_path(&c, "generic", &ok), GOPT_OK);
    assert_false(c.wino || c.fast);
    assert_int_equal(setup_path(&c, "im2col", &ok), GOPT_OK);
    assert_false(c.wino || c.fast);
    assert_int_equal(c.cgemm, gopt__conv_cpu_wino());
    assert_int_equal(setup_path(&c, "implicit", &ok), GOPT_OK); /* asked for: taken on AVX-512 CPUs too */
    assert_false(c.wino);
    assert_int_equal(c.impl, gopt__conv_cpu_wino());
    assert_int_equal(setup_path(&c, "auto", &ok), GOPT_OK); /* Winograd first, AVX-512 or not */
    assert_int_equal(c.wino, gopt__conv_cpu_wino());
    assert_false(c.wino && (c.fast || c.impl));
    assert_int_equal(setup_path(&c, "implicit", &odd), GOPT_OK); /* 10 outputs per row: not a multiple of 8 */
    assert_false(c.impl);
    assert_int_equal(setup_path(&c, "auto", &few), GOPT_OK); /* the stem: implicit on any AVX2 CPU */
    assert_int_equal(c.impl, gopt__conv_cpu_wino());
    assert_false(c.impl && c.fast);
    assert_int_equal(setup_path(&c, "fastest", &ok), GOPT_EINVAL);
    assert_non_null(strstr(gopt_last_error(), "GOPT_CONV_PATH='fastest'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_choice),
        cmocka_unit_test(test_resnet20_layers),
        cmocka_unit_test(test_edges_and_threads),
        cmocka_unit_test(test_im2col_paths),
        cmocka_unit_test(test_implicit_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
