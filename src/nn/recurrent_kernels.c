/* The fused per-step passes of the recurrent cells (formulas in nn/recurrent.h): gate
 * nonlinearities, cell update and their backward in one pass over the step's N x H cells,
 * vectorised over H (each row's gate blocks are H apart) with the polynomial sigmoid/tanh of
 * nn/act.h. The row kernels are compiled for AVX2 and the baseline (picked at load time);
 * a step splits its rows over OpenMP threads only when it is large, since a step of the
 * default model (32 x 256 cells) takes microseconds. Every output element is computed by
 * one thread from the same inputs, so results do not depend on the thread count. */
#include "nn/act.h"
GOPT_ACT_NO_TRAPPING

#ifdef _OPENMP
#  include <omp.h>
#endif

#include "gradopt/common.h"
#include "nn/recurrent.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define RK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#  define RK_CLONES
#endif

/* Cells per step below which a pass stays on the calling thread. */
#define RK_OMP_MIN_CELLS 65536

typedef void (*row_fn)(const gopt__rnn_step *s, int n0, int n1, int j0, int j1);

static void run_rows(row_fn fn, const gopt__rnn_step *s) {
    int64_t cells = (int64_t)s->N * s->H;
    int threads = gopt_get_threads();
    if (cells < RK_OMP_MIN_CELLS || threads < 2 || s->N < 2) {
        fn(s, 0, s->N, 0, s->H);
        return;
    }
    if (threads > s->N) threads = s->N;
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int id = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        int id = 0, nt = 1;
#endif
        int n0 = (int)((int64_t)s->N * id / nt), n1 = (int)((int64_t)s->N * (id + 1) / nt);
        if (n1 > n0) fn(s, n0, n1, 0, s->H);
    }
}

/* ---- rnn ---------------------------------------------------------------------------------- */

RK_CLONES static void rnn_fwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    const float *b = s->bias;
    for (int n = n0; n < n1; n++) {
        const float *g = s->gates + (int64_t)n * H;
        float *h = s->h + (int64_t)n * H;
        if (s->relu) {
#pragma omp simd
            for (int j = j0; j < j1; j++) {
                float v = g[j] + b[j];
                h[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (int j = j0; j < j1; j++) h[j] = gopt__tanhf(g[j] + b[j]);
        }
        if (s->out) memcpy(s->out + (int64_t)n * s->out_ld + j0, h + j0, sizeof(float) * (size_t)(j1 - j0));
    }
}

RK_CLONES static void rnn_bwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    for (int n = n0; n < n1; n++) {
        float *g = s->gates + (int64_t)n * H;
        const float *h = s->h + (int64_t)n * H, *dh = s->dh + (int64_t)n * H;
        if (s->relu) {
#pragma omp simd
            for (int j = j0; j < j1; j++) g[j] = h[j] > 0.0f ? dh[j] : 0.0f;
        } else {
#pragma omp simd
            for (int j = j0; j < j1; j++) g[j] = dh[j] * (1.0f - h[j] * h[j]);
        }
    }
}

void gopt__rnn_step_forward(const gopt__rnn_step *s) { run_rows(rnn_fwd_rows, s); }
void gopt__rnn_step_backward(const gopt__rnn_step *s) { run_rows(rnn_bwd_rows, s); }

/* ---- lstm --------------------------------------------------------------------------------- */

RK_CLONES static void lstm_fwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    const float *b = s->bias;
    for (int n = n0; n < n1; n++) {
        float *gi = s->gates + (int64_t)n * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const float *cp = s->c_prev + (int64_t)n * H;
        float *c = s->c + (int64_t)n * H, *tc = s->tc + (int64_t)n * H, *h = s->h + (int64_t)n * H;
        const float *bi = b, *bf = b + H, *bg = b + 2 * H, *bo = b + 3 * H;
#pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = gopt__sigmoidf(gi[j] + bi[j]);
            float f = gopt__sigmoidf(gf[j] + bf[j]);
            float g = gopt__tanhf(gg[j] + bg[j]);
            float o = gopt__sigmoidf(go[j] + bo[j]);
            float cv = f * cp[j] + i * g;
            float t = gopt__tanhf(cv);
            gi[j] = i;
            gf[j] = f;
            gg[j] = g;
            go[j] = o;
            c[j] = cv;
            tc[j] = t;
            h[j] = o * t;
        }
        if (s->out) memcpy(s->out + (int64_t)n * s->out_ld + j0, h + j0, sizeof(float) * (size_t)(j1 - j0));
    }
}

RK_CLONES static void lstm_bwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    for (int n = n0; n < n1; n++) {
        float *gi = s->gates + (int64_t)n * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const float *cp = s->c_prev + (int64_t)n * H, *tc = s->tc + (int64_t)n * H;
        const float *dh = s->dh + (int64_t)n * H;
        float *dc = s->dc + (int64_t)n * H;
#pragma omp simd
        for (int j = j0; j < j1; j++) {
            float i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tc[j], d = dh[j];
            float dct = dc[j] + d * o * (1.0f - t * t);
            gi[j] = dct * g * (i * (1.0f - i));
            gf[j] = dct * cp[j] * (f * (1.0f - f));
            gg[j] = dct * i * (1.0f - g * g);
            go[j] = d * t * (o * (1.0f - o));
            dc[j] = dct * f;
        }
    }
}

void gopt__lstm_step_forward(const gopt__rnn_step *s) { run_rows(lstm_fwd_rows, s); }
void gopt__lstm_step_backward(const gopt__rnn_step *s) { run_rows(lstm_bwd_rows, s); }

/* ---- gru ---------------------------------------------------------------------------------- */

RK_CLONES static void gru_fwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    const float *bx = s->bias, *bh = s->bias_h;
    for (int n = n0; n < n1; n++) {
        float *xr = s->gates + (int64_t)n * 3 * H, *xz = xr + H, *xn = xr + 2 * H;
        const float *hr = s->gh + (int64_t)n * 3 * H, *hz = hr + H, *hhn = hr + 2 * H;
        const float *hp = s->h_prev + (int64_t)n * H;
        float *hn = s->hn + (int64_t)n * H, *h = s->h + (int64_t)n * H;
#pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = gopt__sigmoidf((xr[j] + bx[j]) + (hr[j] + bh[j]));
            float z = gopt__sigmoidf((xz[j] + bx[H + j]) + (hz[j] + bh[H + j]));
            float hv = hhn[j] + bh[2 * H + j];
            float nv = gopt__tanhf((xn[j] + bx[2 * H + j]) + r * hv);
            xr[j] = r;
            xz[j] = z;
            xn[j] = nv;
            hn[j] = hv;
            h[j] = (hp[j] - nv) * z + nv;
        }
        if (s->out) memcpy(s->out + (int64_t)n * s->out_ld + j0, h + j0, sizeof(float) * (size_t)(j1 - j0));
    }
}

RK_CLONES static void gru_bwd_rows(const gopt__rnn_step *s, int n0, int n1, int j0, int j1) {
    const int H = s->H;
    for (int n = n0; n < n1; n++) {
        float *gr = s->gates + (int64_t)n * 3 * H, *gz = gr + H, *gn = gr + 2 * H;
        float *hr = s->gh + (int64_t)n * 3 * H, *hz = hr + H, *hnn = hr + 2 * H;
        const float *hp = s->h_prev + (int64_t)n * H, *hn = s->hn + (int64_t)n * H;
        const float *dh = s->dh + (int64_t)n * H;
        float *dhp = s->dh_prev + (int64_t)n * H;
#pragma omp simd
        for (int j = j0; j < j1; j++) {
            float r = gr[j], z = gz[j], nv = gn[j], d = dh[j];
            float dnp = d * (1.0f - z) * (1.0f - nv * nv);
            float dzp = d * (hp[j] - nv) * (z * (1.0f - z));
            float drp = dnp * hn[j] * (r * (1.0f - r));
            gr[j] = drp;
            gz[j] = dzp;
            gn[j] = dnp;
            hr[j] = drp;
            hz[j] = dzp;
            hnn[j] = dnp * r;
            dhp[j] += d * z;
        }
    }
}

void gopt__gru_step_forward(const gopt__rnn_step *s) { run_rows(gru_fwd_rows, s); }
void gopt__gru_step_backward(const gopt__rnn_step *s) { run_rows(gru_bwd_rows, s); }

void gopt__rnn_cell_range(int G, int backward, const gopt__rnn_step *s, int j0, int j1) {
    static const row_fn fns[2][3] = {{rnn_fwd_rows, gru_fwd_rows, lstm_fwd_rows},
                                     {rnn_bwd_rows, gru_bwd_rows, lstm_bwd_rows}};
    fns[backward ? 1 : 0][G == 1 ? 0 : G == 3 ? 1 : 2](s, 0, s->N, j0, j1);
}

/* ---- layout and dropout helpers ------------------------------------------------------------ */

void gopt__swap_axes(float *dst, const float *src, int A, int B, int F) {
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++)
            memcpy(dst + ((int64_t)b * A + a) * F, src + ((int64_t)a * B + b) * F, sizeof(float) * (size_t)F);
}

RK_CLONES void gopt__mask_scale(float *y, const float *x, const uint8_t *mask, float scale, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = mask[i] ? x[i] * scale : 0.0f;
}
