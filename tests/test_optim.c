/* Tests of gradopt/optim.h: configs and their refusals, groups and weight-decay exemption,
 * LR/momentum access, exact resume, thread-count independence, and Lion, LAMB and
 * Lookahead against double-precision references written from the papers. The torch.optim
 * algorithms are checked against PyTorch by the golden cases (tests/golden/cases). */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

/* An arena with tensors of the given sizes (weights unless tags given), values and grads
 * filled from a seed. */
static gopt_params *make_arena(int n, const int64_t *sizes, const gopt_param_tag *tags, uint64_t seed) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        assert_ok(gopt_params_add(p, name, 1, &sizes[i], tags ? tags[i] : GOPT_TAG_WEIGHT, NULL));
    }
    assert_ok(gopt_params_finalize(p));
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    float *v = gopt_params_values(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] = gopt_rng_normal(&rng);
    return p;
}

static void fill_grads(gopt_params *p, uint64_t seed) {
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    float *g = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) g[i] = gopt_rng_normal(&rng);
}

static void test_names_and_defaults(void **state) {
    (void)state;
    for (int a = 0; a < GOPT_ALGO_COUNT; a++) {
        gopt_algo back;
        assert_non_null(gopt_algo_name((gopt_algo)a));
        assert_ok(gopt_algo_from_name(gopt_algo_name((gopt_algo)a), &back));
        assert_int_equal(back, a);
    }
    assert_null(gopt_algo_name(GOPT_ALGO_COUNT));
    gopt_algo out;
    assert_status(gopt_algo_from_name("adamz", &out), GOPT_EINVAL, "adamz");
    assert_status(gopt_algo_from_name(NULL, &out), GOPT_EINVAL, "name");
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    assert_true(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.weight_decay == 0);
    c = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    assert_true(c.weight_decay == 1e-2f);
    c = gopt_optim_config_default(GOPT_ALGO_ADAGRAD);
    assert_true(c.lr == 1e-2f && c.eps == 1e-10f && c.initial_accumulator_value == 0);
    c = gopt_optim_config_default(GOPT_ALGO_ADADELTA);
    assert_true(c.lr == 1.0f && c.rho == 0.9f && c.eps == 1e-6f);
    c = gopt_optim_config_default(GOPT_ALGO_RMSPROP);
    assert_true(c.lr == 1e-2f && c.alpha == 0.99f && c.eps == 1e-8f);
    c = gopt_optim_config_default(GOPT_ALGO_NADAM);
    assert_true(c.lr == 2e-3f && c.momentum_decay == 4e-3f);
    c = gopt_optim_config_default(GOPT_ALGO_LION);
    assert_true(c.lr == 1e-4f && c.beta2 == 0.99f);
    assert_int_equal(c.lookahead_k, 0);
}

typedef struct bad_case {
    gopt_algo algo;
    const char *field;
    void (*edit)(gopt_optim_config *c);
} bad_case;

static void e_lr(gopt_optim_config *c) { c->lr = -1e-3f; }
static void e_lr_nan(gopt_optim_config *c) { c->lr = NAN; }
static void e_eps0(gopt_optim_config *c) { c->eps = 0.0f; }
static void e_epsneg(gopt_optim_config *c) { c->eps = -1e-8f; }
static void e_b1(gopt_optim_config *c) { c->beta1 = 1.0f; }
static void e_b1neg(gopt_optim_config *c) { c->beta1 = -0.1f; }
static void e_b2(gopt_optim_config *c) { c->beta2 = 1.5f; }
static void e_mom(gopt_optim_config *c) { c->momentum = -0.5f; }
static void e_nest0(gopt_optim_config *c) { c->nesterov = 1; c->momentum = 0; }
static void e_nestd(gopt_optim_config *c) { c->nesterov = 1; c->momentum = 0.9f; c->dampening = 0.1f; }
static void e_damp(gopt_optim_config *c) { c->dampening = -0.1f; }
static void e_wd(gopt_optim_config *c) { c->weight_decay = -1e-4f; }
static void e_rho(gopt_optim_config *c) { c->rho = 1.01f; }
static void e_rhoneg(gopt_optim_config *c) { c->rho = -0.01f; }
static void e_alpha(gopt_optim_config *c) { c->alpha = -0.9f; }
static void e_lrd(gopt_optim_config *c) { c->lr_decay = -0.1f; }
static void e_iav(gopt_optim_config *c) { c->initial_accumulator_value = -1.0f; }
static void e_md(gopt_optim_config *c) { c->momentum_decay = -4e-3f; }
static void e_algo(gopt_optim_config *c) { c->algo = GOPT_ALGO_COUNT; }
static void e_lak(gopt_optim_config *c) { c->lookahead_k = -1; }
static void e_laa(gopt_optim_config *c) { c->lookahead_k = 5; c->lookahead_alpha = 1.5f; }
static void e_laaneg(gopt_optim_config *c) { c->lookahead_alpha = -0.5f; }

static void test_invalid_configs(void **state) {
    (void)state;
    int64_t n = 4;
    gopt_params *p = make_arena(1, &n, NULL, 1);
    const bad_case cases[] = {
        {GOPT_ALGO_SGD, "lr", e_lr},           {GOPT_ALGO_ADAM, "lr", e_lr_nan},
        {GOPT_ALGO_ADAM, "eps", e_eps0},       {GOPT_ALGO_RMSPROP, "eps", e_epsneg},
        {GOPT_ALGO_ADAGRAD, "eps", e_eps0},    {GOPT_ALGO_ADADELTA, "eps", e_eps0},
        {GOPT_ALGO_LAMB, "eps", e_epsneg},     {GOPT_ALGO_ADAM, "betas[0]", e_b1},
        {GOPT_ALGO_NADAM, "betas[0]", e_b1neg}, {GOPT_ALGO_ADAMW, "betas[1]", e_b2},
        {GOPT_ALGO_LION, "betas[0]", e_b1},    {GOPT_ALGO_ADAMAX, "betas[1]", e_b2},
        {GOPT_ALGO_RADAM, "betas[0]", e_b1},   {GOPT_ALGO_SGD, "momentum", e_mom},
        {GOPT_ALGO_RMSPROP, "momentum", e_mom}, {GOPT_ALGO_SGD, "nesterov", e_nest0},
        {GOPT_ALGO_SGD, "nesterov", e_nestd},  {GOPT_ALGO_SGD, "dampening", e_damp},
        {GOPT_ALGO_SGD, "weight_decay", e_wd}, {GOPT_ALGO_ADAMW, "weight_decay", e_wd},
        {GOPT_ALGO_ADADELTA, "rho", e_rho},    {GOPT_ALGO_ADADELTA, "rho", e_rhoneg},
        {GOPT_ALGO_RMSPROP, "alpha", e_alpha}, {GOPT_ALGO_ADAGRAD, "lr_decay", e_lrd},
        {GOPT_ALGO_ADAGRAD, "initial_accumulator_value", e_iav},
        {GOPT_ALGO_NADAM, "momentum_decay", e_md}, {GOPT_ALGO_ADAM, "algo", e_algo},
        {GOPT_ALGO_ADAM, "lookahead_k", e_lak}, {GOPT_ALGO_SGD, "lookahead_alpha", e_laa},
        {GOPT_ALGO_LION, "lookahead_alpha", e_laaneg},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gopt_optim_config c = gopt_optim_config_default(cases[i].algo);
        cases[i].edit(&c);
        gopt_optim *opt = (gopt_optim *)&c; /* must be reset to NULL on failure */
        assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, cases[i].field);
        assert_null(opt);
    }
    /* Boundaries that are valid: rho = 1, rho = 0, betas = 0, Lion/SGD ignore eps. */
    gopt_optim *opt = NULL;
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADADELTA);
    c.rho = 1.0f;
    assert_ok(gopt_optim_create(&c, p, &opt));
    gopt_optim_destroy(opt);
    c = gopt_optim_config_default(GOPT_ALGO_LION);
    c.eps = 0;
    c.beta1 = 0;
    assert_ok(gopt_optim_create(&c, p, &opt));
    gopt_optim_destroy(opt);
    /* Arguments and arena state. */
    assert_status(gopt_optim_create(NULL, p, &opt), GOPT_EINVAL, "cfg");
    assert_status(gopt_optim_create(&c, NULL, &opt), GOPT_EINVAL, "params");
    assert_status(gopt_optim_create(&c, p, NULL), GOPT_EINVAL, "out");
    gopt_params *raw = NULL;
    assert_ok(gopt_params_create(&raw));
    assert_ok(gopt_params_add(raw, "w", 1, &n, GOPT_TAG_WEIGHT, NULL));
    assert_status(gopt_optim_create(&c, raw, &opt), GOPT_ESTATE, "finalize");
    gopt_params_destroy(raw);
    /* A group override out of range for this algorithm names the group. */
    gopt_group_config gc = gopt_group_config_default();
    gc.beta1 = 1.0f;
    assert_ok(gopt_params_add_group(p, &gc, NULL));
    c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "group 1");
    gopt_params_destroy(p);
    gopt_optim_destroy(NULL);
    assert_status(gopt_optim_step(NULL), GOPT_EINVAL, "opt");
}

/* Bias and norm tensors exempt from weight decay through gopt_params_group_by_tag. */
static void test_weight_decay_exemption(void **state) {
    (void)state;
    const int64_t sizes[3] = {6, 3, 2};
    const gopt_param_tag tags[3] = {GOPT_TAG_WEIGHT, GOPT_TAG_BIAS, GOPT_TAG_NORM};
    gopt_params *p = make_arena(3, sizes, tags, 7);
    gopt_group_config nd = gopt_group_config_default();
    nd.weight_decay = 0.0f;
    int g = -1;
    assert_ok(gopt_params_group_by_tag(p, GOPT_TAG_BIAS | GOPT_TAG_NORM, &nd, &g));
    assert_int_equal(g, 1);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    c.lr = 0.1f;
    c.weight_decay = 0.5f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    gopt_optim_config gcfg;
    assert_ok(gopt_optim_group_config(opt, 1, &gcfg));
    assert_true(gcfg.weight_decay == 0.0f && gcfg.lr == 0.1f);
    float before[11];
    memcpy(before, gopt_params_values(p), sizeof before);
    gopt_optim_zero_grad(opt); /* zero grads: only the decoupled decay moves p */
    assert_ok(gopt_optim_step(opt));
    const float *v = gopt_params_values(p);
    float decay = (float)(1.0 - 0.1 * 0.5);
    for (int i = 0; i < 6; i++) assert_true(v[i] == before[i] * decay);
    for (int i = 6; i < 11; i++) assert_true(v[i] == before[i]);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_lr_momentum_access(void **state) {
    (void)state;
    int64_t sizes[2] = {5, 5};
    gopt_params *p = make_arena(2, sizes, NULL, 3);
    gopt_group_config gc = gopt_group_config_default();
    gc.lr = 0.5f;
    int g;
    assert_ok(gopt_params_add_group(p, &gc, &g));
    assert_ok(gopt_params_set_group(p, 1, g));
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    assert_int_equal(gopt_optim_group_count(opt), 2);
    assert_ptr_equal(gopt_optim_params(opt), p);
    assert_true(gopt_optim_get_lr(opt, 0) == 0.1f && gopt_optim_get_lr(opt, 1) == 0.5f);
    assert_true(isnan(gopt_optim_get_lr(opt, 2)) && isnan(gopt_optim_get_lr(NULL, 0)));
    assert_ok(gopt_optim_set_lr(opt, 1, 0.25f));
    assert_true(gopt_optim_get_lr(opt, 1) == 0.25f && gopt_optim_initial_lr(opt, 1) == 0.5f);
    assert_status(gopt_optim_set_lr(opt, 2, 0.1f), GOPT_ERANGE, "group 2");
    assert_status(gopt_optim_set_lr(opt, 0, -0.1f), GOPT_EINVAL, "lr");
    assert_status(gopt_optim_set_lr(opt, 0, INFINITY), GOPT_EINVAL, "lr");
    assert_true(gopt_optim_get_momentum(opt, 0) == 0.9f);
    assert_ok(gopt_optim_set_momentum(opt, 0, 0.8f));
    assert_true(gopt_optim_get_momentum(opt, 0) == 0.8f);
    assert_status(gopt_optim_set_momentum(opt, 0, 1.0f), GOPT_EINVAL, "momentum");
    assert_status(gopt_optim_set_momentum(opt, 5, 0.5f), GOPT_ERANGE, "group 5");
    /* The step counter, zero_grad. */
    assert_int_equal(gopt_optim_step_count(opt), 0);
    fill_grads(p, 9);
    assert_ok(gopt_optim_step(opt));
    assert_ok(gopt_optim_step(opt));
    assert_int_equal(gopt_optim_step_count(opt), 2);
    gopt_optim_zero_grad(opt);
    for (int i = 0; i < 10; i++) assert_true(gopt_params_grads(p)[i] == 0.0f);
    gopt_optim_destroy(opt);

    /* Adagrad has no momentum; plain SGD cannot grow a momentum buffer later. */
    c = gopt_optim_config_default(GOPT_ALGO_ADAGRAD);
    assert_ok(gopt_optim_create(&c, p, &opt));
    assert_true(isnan(gopt_optim_get_momentum(opt, 0)));
    assert_status(gopt_optim_set_momentum(opt, 0, 0.5f), GOPT_EINVAL, "adagrad");
    gopt_optim_destroy(opt);
    c = gopt_optim_config_default(GOPT_ALGO_SGD);
    assert_ok(gopt_optim_create(&c, p, &opt));
    assert_status(gopt_optim_set_momentum(opt, 0, 0.5f), GOPT_ESTATE, "momentum buffer");
    gopt_optim_destroy(opt);
    /* Adam: momentum is beta1; set_group_config cannot turn amsgrad on without its buffer. */
    c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    assert_ok(gopt_optim_create(&c, p, &opt));
    assert_true(gopt_optim_get_momentum(opt, 1) == 0.9f);
    assert_ok(gopt_optim_set_momentum(opt, 1, 0.85f));
    gopt_optim_config gcfg;
    assert_ok(gopt_optim_group_config(opt, 1, &gcfg));
    assert_true(gcfg.beta1 == 0.85f);
    gcfg.amsgrad = 1;
    assert_status(gopt_optim_set_group_config(opt, 1, &gcfg), GOPT_ESTATE, "max_exp_avg_sq");
    gcfg.amsgrad = 0;
    gcfg.eps = 0;
    assert_status(gopt_optim_set_group_config(opt, 1, &gcfg), GOPT_EINVAL, "eps");
    gcfg.eps = 1e-8f;
    gcfg.algo = GOPT_ALGO_SGD;
    assert_status(gopt_optim_set_group_config(opt, 1, &gcfg), GOPT_EINVAL, "algo");
    assert_status(gopt_optim_set_group_config(opt, 7, &gcfg), GOPT_ERANGE, "group 7");
    assert_status(gopt_optim_group_config(opt, -1, &gcfg), GOPT_ERANGE, "group -1");
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

/* N steps, save, load into a fresh optimizer over a copy of the arena, M steps ==
 * N+M steps straight, bit for bit (parameters and state). */
static void check_resume(gopt_optim_config c, int64_t numel) {
    int64_t sizes[3] = {numel, 37, 5};
    gopt_params *pa = make_arena(3, sizes, NULL, 11), *pb = make_arena(3, sizes, NULL, 11);
    gopt_group_config gc = gopt_group_config_default();
    gc.lr = c.lr * 0.5f;
    int g;
    assert_ok(gopt_params_add_group(pa, &gc, &g));
    assert_ok(gopt_params_set_group(pa, 1, g));
    assert_ok(gopt_params_add_group(pb, &gc, &g));
    assert_ok(gopt_params_set_group(pb, 1, g));
    gopt_optim *a = NULL, *b = NULL;
    assert_ok(gopt_optim_create(&c, pa, &a));
    assert_ok(gopt_optim_create(&c, pb, &b));
    const int N = 5, M = 6;
    for (int s = 0; s < N; s++) {
        fill_grads(pa, 100 + (uint64_t)s);
        assert_ok(gopt_optim_step(a));
    }
    size_t size = gopt_optim_state_size(a);
    size_t psize = gopt_params_state_size(pa);
    unsigned char *buf = malloc(size), *pbuf = malloc(psize);
    assert_ok(gopt_optim_state_save(a, buf, size));
    assert_ok(gopt_params_state_save(pa, pbuf, psize));
    assert_status(gopt_optim_state_save(a, buf, size - 1), GOPT_EINVAL, "need");
    assert_ok(gopt_params_state_load(pb, pbuf, psize));
    assert_ok(gopt_optim_state_load(b, buf, size));
    assert_int_equal(gopt_optim_step_count(b), N);
    for (int s = N; s < N + M; s++) {
        fill_grads(pa, 100 + (uint64_t)s);
        fill_grads(pb, 100 + (uint64_t)s);
        assert_ok(gopt_optim_step(a));
        assert_ok(gopt_optim_step(b));
    }
    assert_memory_equal(gopt_params_values(pa), gopt_params_values(pb), (size_t)gopt_params_numel(pa) * sizeof(float));
    unsigned char *buf2 = malloc(size);
    assert_ok(gopt_optim_state_save(a, buf, size));
    assert_ok(gopt_optim_state_save(b, buf2, size));
    assert_memory_equal(buf, buf2, size);
    free(buf);
    free(buf2);
    free(pbuf);
    gopt_optim_destroy(a);
    gopt_optim_destroy(b);
    gopt_params_destroy(pa);
    gopt_params_destroy(pb);
}

static void test_resume_bit_identical(void **state) {
    (void)state;
    for (int algo = 0; algo < GOPT_ALGO_COUNT; algo++) {
        if (algo == GOPT_ALGO_MUON) continue; /* needs matrices: tests/test_optim_frontier.c */
        gopt_optim_config c = gopt_optim_config_default((gopt_algo)algo);
        c.weight_decay = 0.01f;
        if (algo == GOPT_ALGO_SGD) {
            c.momentum = 0.9f;
            c.nesterov = 1;
        }
        if (algo == GOPT_ALGO_RMSPROP) {
            c.momentum = 0.5f;
            c.centered = 1;
        }
        if (algo == GOPT_ALGO_ADAM) c.amsgrad = 1;
        if (algo == GOPT_ALGO_RADAM) c.lookahead_k = 3;
        check_resume(c, 1000);
    }
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    c.lookahead_k = 4;
    check_resume(c, 200000); /* multi-threaded path */
}

static void test_state_load_errors(void **state) {
    (void)state;
    int64_t n = 50;
    gopt_params *p = make_arena(1, &n, NULL, 5), *q = make_arena(1, (int64_t[]){51}, NULL, 5);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    gopt_optim *a = NULL, *b = NULL, *other = NULL, *small = NULL, *ams = NULL;
    assert_ok(gopt_optim_create(&c, p, &a));
    assert_ok(gopt_optim_create(&c, p, &b));
    assert_ok(gopt_optim_create(&c, q, &small));
    c.amsgrad = 1;
    assert_ok(gopt_optim_create(&c, p, &ams));
    gopt_optim_config s = gopt_optim_config_default(GOPT_ALGO_SGD);
    assert_ok(gopt_optim_create(&s, p, &other));
    fill_grads(p, 1);
    assert_ok(gopt_optim_step(a));
    assert_ok(gopt_optim_step(a));
    size_t size = gopt_optim_state_size(a);
    unsigned char *buf = malloc(size);
    assert_ok(gopt_optim_state_save(a, buf, size));
    assert_status(gopt_optim_state_load(b, buf, size - 1), GOPT_EFORMAT, "bytes");
    assert_status(gopt_optim_state_load(b, buf, 3), GOPT_EFORMAT, "truncated");
    assert_status(gopt_optim_state_load(other, buf, size), GOPT_EFORMAT, "algo");
    assert_status(gopt_optim_state_load(small, buf, size), GOPT_EFORMAT, "parameters");
    assert_status(gopt_optim_state_load(ams, buf, size), GOPT_EFORMAT, "buffers");
    buf[0] ^= 0xff;
    assert_status(gopt_optim_state_load(b, buf, size), GOPT_EFORMAT, "magic");
    buf[0] ^= 0xff;
    /* Corrupt group 0's eps (header 44 bytes, then 6 u32 and lr, wd, momentum, dampening,
     * lr_decay, initial_accumulator_value before eps). */
    float bad = -1.0f;
    memcpy(buf + 44 + 24 + 24, &bad, 4);
    assert_status(gopt_optim_state_load(b, buf, size), GOPT_EFORMAT, "group 0");
    assert_int_equal(gopt_optim_step_count(b), 0); /* unchanged on failure */
    assert_status(gopt_optim_state_load(NULL, buf, size), GOPT_EINVAL, "opt");
    assert_status(gopt_optim_state_save(a, NULL, size), GOPT_EINVAL, "buf");
    assert_int_equal(gopt_optim_state_size(NULL), 0);
    free(buf);
    gopt_optim_destroy(a);
    gopt_optim_destroy(b);
    gopt_optim_destroy(other);
    gopt_optim_destroy(small);
    gopt_optim_destroy(ams);
    gopt_params_destroy(p);
    gopt_params_destroy(q);
}

/* Same inputs, 1 thread vs 2 threads: the same bits (arena above the parallel threshold). */
static void test_thread_count_independence(void **state) {
    (void)state;
    const gopt_algo algos[] = {GOPT_ALGO_ADAM, GOPT_ALGO_LAMB, GOPT_ALGO_SGD, GOPT_ALGO_NADAM};
    int64_t sizes[3] = {150001, 7, 70000};
    for (size_t k = 0; k < sizeof algos / sizeof algos[0]; k++) {
        float *result[2];
        for (int t = 0; t < 2; t++) {
            gopt_set_threads(t + 1);
            gopt_params *p = make_arena(3, sizes, NULL, 21);
            gopt_optim_config c = gopt_optim_config_default(algos[k]);
            c.weight_decay = 0.01f;
            c.momentum = 0.9f;
            gopt_optim *opt = NULL;
            assert_ok(gopt_optim_create(&c, p, &opt));
            for (int s = 0; s < 3; s++) {
                fill_grads(p, 50 + (uint64_t)s);
                assert_ok(gopt_optim_step(opt));
            }
            size_t bytes = (size_t)gopt_params_numel(p) * sizeof(float);
            result[t] = malloc(bytes);
            memcpy(result[t], gopt_params_values(p), bytes);
            gopt_optim_destroy(opt);
            gopt_params_destroy(p);
        }
        assert_memory_equal(result[0], result[1], (size_t)(150001 + 7 + 70000) * sizeof(float));
        free(result[0]);
        free(result[1]);
    }
    gopt_set_threads(2);
}

/* ---- double-precision references from the papers -------------------------------------- */

static void assert_close(const float *got, const double *want, int n) {
    for (int i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-5 + 1e-4 * fabs(want[i]))
            fail_msg("element %d: got %.9g, want %.9g", i, got[i], want[i]);
}

static void test_lion_reference(void **state) {
    (void)state;
    int64_t n = 40;
    gopt_params *p = make_arena(1, &n, NULL, 31);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_LION);
    c.lr = 0.01f;
    c.weight_decay = 0.1f;
    c.beta1 = 0.8f;
    c.beta2 = 0.95f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    double x[40], m[40] = {0};
    for (int i = 0; i < 40; i++) x[i] = gopt_params_values(p)[i];
    for (int s = 0; s < 8; s++) {
        fill_grads(p, 200 + (uint64_t)s);
        if (s == 2) gopt_params_grads(p)[3] = 0.0f; /* sign(0) path with m != 0 */
        const float *g = gopt_params_grads(p);
        for (int i = 0; i < 40; i++) {
            double u = 0.8 * m[i] + 0.2 * g[i];
            double sgn = u > 0 ? 1 : u < 0 ? -1 : 0;
            x[i] -= 0.01 * (sgn + 0.1 * x[i]);
            m[i] = 0.95 * m[i] + 0.05 * g[i];
        }
        assert_ok(gopt_optim_step(opt));
        assert_close(gopt_params_values(p), x, 40);
    }
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_lamb_reference(void **state) {
    (void)state;
    /* Tensor 1 spans several norm blocks; tensor 2 is all zeros (trust ratio 1). */
    int64_t sizes[3] = {9, 10000, 4};
    gopt_params *p = make_arena(3, sizes, NULL, 41);
    float *v = gopt_params_values(p);
    for (int i = 0; i < 4; i++) v[10009 + i] = 0.0f;
    gopt_group_config gc = gopt_group_config_default();
    gc.weight_decay = 0.0f;
    gc.lr = 0.02f;
    int g;
    assert_ok(gopt_params_add_group(p, &gc, &g));
    assert_ok(gopt_params_set_group(p, 0, g));
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_LAMB);
    c.lr = 0.01f;
    c.weight_decay = 0.05f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    const int N = 10013;
    double *x = calloc(N, sizeof *x), *m = calloc(N, sizeof *m), *vv = calloc(N, sizeof *vv), *r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++) x[i] = v[i];
    const int64_t off[4] = {0, 9, 10009, 10013};
    for (int s = 1; s <= 6; s++) {
        fill_grads(p, 300 + (uint64_t)s);
        const float *gr = gopt_params_grads(p);
        double bc1 = 1 - pow(0.9, s), bc2 = 1 - pow(0.999, s);
        for (int t = 0; t < 3; t++) {
            double lr = t == 0 ? 0.02 : 0.01, wd = t == 0 ? 0.0 : 0.05, pn = 0, rn = 0;
            for (int64_t i = off[t]; i < off[t + 1]; i++) {
                m[i] = 0.9 * m[i] + 0.1 * gr[i];
                vv[i] = 0.999 * vv[i] + 0.001 * gr[i] * gr[i];
                r[i] = (m[i] / bc1) / (sqrt(vv[i] / bc2) + 1e-6) + wd * x[i];
                pn += x[i] * x[i];
                rn += r[i] * r[i];
            }
            double trust = (pn > 0 && rn > 0) ? sqrt(pn) / sqrt(rn) : 1.0;
            for (int64_t i = off[t]; i < off[t + 1]; i++) x[i] -= lr * trust * r[i];
        }
        assert_ok(gopt_optim_step(opt));
        assert_close(gopt_params_values(p), x, N);
    }
    free(x);
    free(m);
    free(vv);
    free(r);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

/* Lookahead around SGD with momentum (Zhang et al. 2019, Algorithm 1). */
static void test_lookahead_reference(void **state) {
    (void)state;
    int64_t n = 16;
    gopt_params *p = make_arena(1, &n, NULL, 51);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.lookahead_k = 3;
    c.lookahead_alpha = 0.5f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    double x[16], slow[16], buf[16];
    for (int i = 0; i < 16; i++) slow[i] = x[i] = gopt_params_values(p)[i];
    for (int s = 1; s <= 10; s++) {
        fill_grads(p, 400 + (uint64_t)s);
        const float *g = gopt_params_grads(p);
        for (int i = 0; i < 16; i++) {
            buf[i] = s == 1 ? g[i] : 0.9 * buf[i] + g[i];
            x[i] -= 0.1 * buf[i];
            if (s % 3 == 0) {
                slow[i] += 0.5 * (x[i] - slow[i]);
                x[i] = slow[i];
            }
        }
        assert_ok(gopt_optim_step(opt));
        assert_close(gopt_params_values(p), x, 16);
    }
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_out_of_memory(void **state) {
    (void)state;
    int64_t sizes[2] = {100, 30};
    gopt_params *p = make_arena(2, sizes, NULL, 61);
    const gopt_algo algos[] = {GOPT_ALGO_ADAM, GOPT_ALGO_LAMB};
    for (size_t k = 0; k < 2; k++) {
        gopt_optim_config c = gopt_optim_config_default(algos[k]);
        c.amsgrad = 1;
        c.lookahead_k = 2;
        int ok = 0;
        for (long budget = 0; budget < 32 && !ok; budget++) {
            testutil_fail_after(budget);
            gopt_optim *opt = NULL;
            gopt_clear_error();
            gopt_status s = gopt_optim_create(&c, p, &opt);
            testutil_alloc_reset();
            if (s == GOPT_OK) {
                ok = 1;
                assert_true(budget > 3);
                assert_ok(gopt_optim_step(opt));
                gopt_optim_destroy(opt);
            } else {
                assert_int_equal(s, GOPT_ENOMEM);
                assert_null(opt);
                assert_true(strlen(gopt_last_error()) > 0);
            }
        }
        assert_true(ok);
    }
    gopt_params_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_defaults),
        cmocka_unit_test(test_invalid_configs),
        cmocka_unit_test(test_weight_decay_exemption),
        cmocka_unit_test(test_lr_momentum_access),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_state_load_errors),
        cmocka_unit_test(test_thread_count_independence),
        cmocka_unit_test(test_lion_reference),
        cmocka_unit_test(test_lamb_reference),
        cmocka_unit_test(test_lookahead_reference),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
