/* Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back",
 * Alg. 1) around any algorithm: the inner optimizer's weights are the fast weights; every
 * lookahead_k steps
 *
 *   slow += alpha*(p - slow);  p = slow.
 *
 * The slow weights start as a copy of the weights at the first step (init), and are saved
 * with the state. Frozen tensors (params.h) are neither pulled back nor their slow weights
 * moved. optim.c allocates them and calls this after every lookahead_k-th step. */
#include <omp.h>

#include "optim/optim_impl.h"

void gopt__lookahead_sync(gopt_optim *opt, int init) {
    float *restrict p = gopt_params_values(opt->params) + opt->begin;
    float *restrict slow = opt->slow;
    const float a = opt->lookahead_alpha;
    const int64_t numel = opt->numel;
    const int nthreads = gopt__optim_threads(opt);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        gopt__optim_thread_slice(numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (init) {
            if (hi > lo) memcpy(slow + lo, p + lo, (size_t)(hi - lo) * sizeof(float));
        } else { /* over the arena's runs: a frozen tensor (in none) is not pulled back */
            const gopt_param_run *runs = gopt_params_runs(opt->params);
            const int nr = gopt_params_run_count(opt->params);
            for (int r = 0; r < nr; r++) {
                const int64_t b = runs[r].begin - opt->begin > lo ? runs[r].begin - opt->begin : lo;
                const int64_t e = runs[r].end - opt->begin < hi ? runs[r].end - opt->begin : hi;
#pragma omp simd
                for (int64_t i = b; i < e; i++) {
                    float s = slow[i] + a * (p[i] - slow[i]);
                    slow[i] = s;
                    p[i] = s;
                }
            }
        }
    }
}
