/* quickstart: fit y = 3x - 1 (plus noise) with a two-parameter linear model, the params
 * arena and Adam, computing the gradient of the mean squared error by hand. */
#include <stdio.h>

#include <gradopt.h>

int main(void) {
    enum { N = 64 };
    float x[N], y[N];
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    for (int i = 0; i < N; i++) {
        x[i] = 4.0f * gopt_rng_uniform(&rng) - 2.0f;
        y[i] = 3.0f * x[i] - 1.0f + 0.1f * gopt_rng_normal(&rng);
    }

    /* Parameters: w (weight) and b (bias), one arena. */
    gopt_params *params = NULL;
    gopt_optim *opt = NULL;
    const int64_t one[1] = {1};
    int iw, ib;
    gopt_optim_config cfg = gopt_optim_config_default(GOPT_ALGO_ADAM);
    cfg.lr = 0.1f;
    if (gopt_params_create(&params) || gopt_params_add(params, "w", 1, one, GOPT_TAG_WEIGHT, &iw) ||
        gopt_params_add(params, "b", 1, one, GOPT_TAG_BIAS, &ib) || gopt_params_finalize(params) ||
        gopt_optim_create(&cfg, params, &opt)) {
        fprintf(stderr, "error: %s\n", gopt_last_error());
        gopt_params_destroy(params);
        return 1;
    }
    gopt_param_info wi, bi; /* views of each tensor's value and gradient in the arena */
    gopt_params_info(params, iw, &wi);
    gopt_params_info(params, ib, &bi);
    float *w = wi.value.data, *dw = wi.grad.data, *b = bi.value.data, *db = bi.grad.data;

    for (int step = 1; step <= 300; step++) {
        gopt_optim_zero_grad(opt);
        float loss = 0.0f;
        for (int i = 0; i < N; i++) { /* loss = mean (w x + b - y)^2; backward accumulates */
            float err = w[0] * x[i] + b[0] - y[i];
            loss += err * err / N;
            dw[0] += 2.0f * err * x[i] / N;
            db[0] += 2.0f * err / N;
        }
        gopt_optim_step(opt);
        if (step % 50 == 0) printf("step %3d  loss %.5f\n", step, loss);
    }
    printf("fitted y = %.3f x %+.3f (true: y = 3x - 1)\n", w[0], b[0]);
    gopt_optim_destroy(opt);
    gopt_params_destroy(params);
    return 0;
}
