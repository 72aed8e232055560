/* Schedule-Free (train/eval modes, refusals, exact round trip and resume), L1 per group,
 * weight averaging (SWA/EMA, swap, resume, refusals) and BatchNorm recalibration (update_bn):
 * what the frontier reference cases (tests/golden/frontier) do not cover. */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "core/common.h" /* GOPT_FAIL, for a failing batch source */

#ifndef M_PI
#  define M_PI 3.14159265358979323846
#endif

static gopt_params *make_arena(int n, const int64_t *sizes, uint64_t seed) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        assert_ok(gopt_params_add(p, name, 1, &sizes[i], GOPT_TAG_WEIGHT, NULL));
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

static gopt_optim_config sf_config(gopt_algo algo) {
    gopt_optim_config c = gopt_optim_config_default(algo);
    c.weight_decay = 0.01f;
    c.warmup_steps = 2;
    c.r = 0.5f;
    if (algo == GOPT_ALGO_SGD_SCHEDULEFREE) c.lr = 0.1f;
    return c;
}

/* ---- Schedule-Free ---------------------------------------------------------------------- */

static void test_sf_eval_step_refused(void **state) {
    (void)state;
    const gopt_algo algos[2] = {GOPT_ALGO_ADAMW_SCHEDULEFREE, GOPT_ALGO_SGD_SCHEDULEFREE};
    for (int a = 0; a < 2; a++) {
        int64_t n = 40;
        gopt_params *p = make_arena(1, &n, 1);
        gopt_optim_config c = sf_config(algos[a]);
        gopt_optim *opt = NULL;
        assert_ok(gopt_optim_create(&c, p, &opt));
        assert_int_equal(gopt_optim_in_eval_mode(opt), 0); /* created in train mode */
        fill_grads(p, 2);
        assert_ok(gopt_optim_step(opt));
        assert_ok(gopt_optim_eval(opt));
        assert_int_equal(gopt_optim_in_eval_mode(opt), 1);
        assert_status(gopt_optim_step(opt), GOPT_ESTATE, "gopt_optim_step");
        testutil_check_detail("gopt_optim_train");
        assert_int_equal(gopt_optim_step_count(opt), 1);
        assert_ok(gopt_optim_train(opt));
        assert_ok(gopt_optim_step(opt));
        assert_int_equal(gopt_optim_step_count(opt), 2);
        assert_status(gopt_optim_train(NULL), GOPT_EINVAL, NULL);
        assert_status(gopt_optim_eval(NULL), GOPT_EINVAL, NULL);
        assert_int_equal(gopt_optim_in_eval_mode(NULL), 0);
        gopt_optim_destroy(opt);
        gopt_params_destroy(p);
    }
    /* Other algorithms: no-ops, never refused. */
    int64_t n = 16;
    gopt_params *p = make_arena(1, &n, 1);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    fill_grads(p, 3);
    assert_ok(gopt_optim_step(opt));
    float before[16];
    memcpy(before, gopt_params_values(p), sizeof before);
    assert_ok(gopt_optim_eval(opt));
    assert_int_equal(gopt_optim_in_eval_mode(opt), 0);
    assert_memory_equal(before, gopt_params_values(p), sizeof before);
    assert_ok(gopt_optim_step(opt));
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

/* eval writes x = lerp(y, z, 1-1/b1) (checked against y and the state's z), train puts y
 * back bit for bit; both idempotent; before the first step only the mode changes. */
static void check_round_trip(gopt_algo algo, int64_t n) {
    int64_t sizes[2] = {n, 37};
    gopt_params *p = make_arena(2, sizes, 5);
    gopt_optim_config c = sf_config(algo);
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    const int64_t numel = gopt_params_numel(p);
    float *y0 = malloc((size_t)numel * sizeof(float)), *y = malloc((size_t)numel * sizeof(float));
    memcpy(y0, gopt_params_values(p), (size_t)numel * sizeof(float));
    assert_ok(gopt_optim_eval(opt)); /* no z yet */
    assert_memory_equal(y0, gopt_params_values(p), (size_t)numel * sizeof(float));
    assert_ok(gopt_optim_train(opt));
    for (int s = 0; s < 4; s++) {
        fill_grads(p, 10 + (uint64_t)s);
        assert_ok(gopt_optim_step(opt));
    }
    memcpy(y, gopt_params_values(p), (size_t)numel * sizeof(float));
    /* z from the state blob: the first buffer after the header and group records. */
    size_t size = gopt_optim_state_size(opt);
    unsigned char *blob = malloc(size);
    assert_ok(gopt_optim_state_save(opt, blob, size));
    int nbuf = algo == GOPT_ALGO_ADAMW_SCHEDULEFREE ? 3 : 2;
    const unsigned char *zb = blob + size - (size_t)nbuf * (size_t)numel * sizeof(float);
    assert_ok(gopt_optim_eval(opt));
    assert_ok(gopt_optim_eval(opt)); /* idempotent */
    const float *x = gopt_params_values(p);
    double b1 = algo == GOPT_ALGO_ADAMW_SCHEDULEFREE ? c.beta1 : c.momentum;
    int differs = 0;
    for (int64_t i = 0; i < numel; i++) {
        float z;
        memcpy(&z, zb + (size_t)i * sizeof(float), sizeof z);
        double want = (double)y[i] + (1.0 - 1.0 / b1) * ((double)z - (double)y[i]);
        assert_true(fabs((double)x[i] - want) <= 1e-5 + 1e-5 * fabs(want));
        differs |= x[i] != y[i];
    }
    assert_true(differs);
    assert_ok(gopt_optim_train(opt));
    assert_ok(gopt_optim_train(opt));
    assert_memory_equal(y, gopt_params_values(p), (size_t)numel * sizeof(float));
    free(blob);
    free(y);
    free(y0);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_sf_round_trip_bits(void **state) {
    (void)state;
    /* A range optimizer (ZeRO-1) switches its slice only. */
    int64_t n = 100;
    gopt_params *p = make_arena(1, &n, 5);
    gopt_optim_config c = sf_config(GOPT_ALGO_SGD_SCHEDULEFREE);
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create_range(&c, p, 16, 64, &opt));
    for (int s = 0; s < 2; s++) { /* after one step y = z (ckp1 = 1): x = y */
        fill_grads(p, 3 + (uint64_t)s);
        assert_ok(gopt_optim_step(opt));
    }
    float y[100];
    memcpy(y, gopt_params_values(p), sizeof y);
    assert_ok(gopt_optim_eval(opt));
    const float *v = gopt_params_values(p);
    assert_memory_equal(v, y, 16 * sizeof(float));
    assert_memory_equal(v + 64, y + 64, 36 * sizeof(float));
    assert_memory_not_equal(v + 16, y + 16, 48 * sizeof(float));
    assert_ok(gopt_optim_train(opt));
    assert_memory_equal(v, y, sizeof y);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);

    check_round_trip(GOPT_ALGO_ADAMW_SCHEDULEFREE, 100);
    check_round_trip(GOPT_ALGO_SGD_SCHEDULEFREE, 100);
    check_round_trip(GOPT_ALGO_ADAMW_SCHEDULEFREE, 150000); /* threaded pass */
}

/* Run `steps` steps; with eval_at > 0, switch to eval after step eval_at (checkpointing there
 * into *params_blob / *optim_blob when they are not NULL) and back to train. */
static void sf_run(gopt_algo algo, int64_t n, int steps, int eval_at, float *out, unsigned char **params_blob,
                   size_t *params_size, unsigned char **optim_blob, size_t *optim_size) {
    gopt_params *p = make_arena(1, &n, 7);
    gopt_optim_config c = sf_config(algo);
    c.l1 = 1e-3f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    for (int s = 1; s <= steps; s++) {
        fill_grads(p, 100 + (uint64_t)s);
        assert_ok(gopt_optim_step(opt));
        if (s == eval_at) {
            assert_ok(gopt_optim_eval(opt));
            if (params_blob) {
                *params_size = gopt_params_state_size(p);
                *params_blob = malloc(*params_size);
                assert_ok(gopt_params_state_save(p, *params_blob, *params_size));
                *optim_size = gopt_optim_state_size(opt);
                *optim_blob = malloc(*optim_size);
                assert_ok(gopt_optim_state_save(opt, *optim_blob, *optim_size));
            }
            assert_ok(gopt_optim_train(opt));
        }
    }
    memcpy(out, gopt_params_values(p), (size_t)n * sizeof(float));
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void check_sf_resume(gopt_algo algo, int64_t n) {
    float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float)),
          *r = malloc((size_t)n * sizeof(float));
    unsigned char *pb = NULL, *ob = NULL;
    size_t ps = 0, os = 0;
    sf_run(algo, n, 8, 3, a, &pb, &ps, &ob, &os);
    sf_run(algo, n, 8, 0, b, NULL, NULL, NULL, NULL);
    assert_memory_equal(a, b, (size_t)n * sizeof(float)); /* evaluating changes nothing */
    /* Resume from the checkpoint taken in eval mode. */
    gopt_params *p = make_arena(1, &n, 99);
    gopt_optim_config c = sf_config(algo);
    c.l1 = 1e-3f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&c, p, &opt));
    assert_ok(gopt_params_state_load(p, pb, ps));
    assert_ok(gopt_optim_state_load(opt, ob, os));
    assert_int_equal(gopt_optim_in_eval_mode(opt), 1);
    assert_int_equal(gopt_optim_step_count(opt), 3);
    assert_status(gopt_optim_step(opt), GOPT_ESTATE, "eval mode");
    assert_ok(gopt_optim_train(opt));
    for (int s = 4; s <= 8; s++) {
        fill_grads(p, 100 + (uint64_t)s);
        assert_ok(gopt_optim_step(opt));
    }
    memcpy(r, gopt_params_values(p), (size_t)n * sizeof(float));
    assert_memory_equal(a, r, (size_t)n * sizeof(float));
    /* A train-mode optimizer of another algorithm refuses the blob; a corrupted mode too. */
    gopt_optim_config other = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    gopt_optim *o2 = NULL;
    assert_ok(gopt_optim_create(&other, p, &o2));
    assert_status(gopt_optim_state_load(o2, ob, os), GOPT_EFORMAT, "algo");
    gopt_optim_destroy(o2);
    free(pb);
    free(ob);
    free(a);
    free(b);
    free(r);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_sf_resume_bit_exact(void **state) {
    (void)state;
    check_sf_resume(GOPT_ALGO_ADAMW_SCHEDULEFREE, 300);
    check_sf_resume(GOPT_ALGO_SGD_SCHEDULEFREE, 300);
    check_sf_resume(GOPT_ALGO_ADAMW_SCHEDULEFREE, 140000); /* threaded */
}

static void test_sf_refusals(void **state) {
    (void)state;
    int64_t n = 16;
    gopt_params *p = make_arena(1, &n, 1);
    gopt_optim *opt = NULL;
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAMW_SCHEDULEFREE);
    assert_float_equal(c.lr, 0.0025f, 0);
    assert_float_equal(c.weight_lr_power, 2.0f, 0);
    c.beta1 = 0.0f;
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "betas[0]");
    c = gopt_optim_config_default(GOPT_ALGO_ADAMW_SCHEDULEFREE);
    c.warmup_steps = -1;
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "warmup_steps");
    c = gopt_optim_config_default(GOPT_ALGO_ADAMW_SCHEDULEFREE);
    c.weight_lr_power = -1.0f;
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "weight_lr_power");
    c.weight_lr_power = NAN;
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "weight_lr_power");
    c = gopt_optim_config_default(GOPT_ALGO_ADAMW_SCHEDULEFREE);
    c.r = INFINITY;
    assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "r =");
    gopt_optim_config s = gopt_optim_config_default(GOPT_ALGO_SGD_SCHEDULEFREE);
    assert_float_equal(s.lr, 1.0f, 0);
    assert_float_equal(s.momentum, 0.9f, 0);
    s.momentum = 0.0f;
    assert_status(gopt_optim_create(&s, p, &opt), GOPT_EINVAL, "momentum");
    s.momentum = 1.0f;
    assert_status(gopt_optim_create(&s, p, &opt), GOPT_EINVAL, "momentum");
    assert_null(opt);
    s.momentum = 0.9f;
    assert_ok(gopt_optim_create(&s, p, &opt));
    assert_status(gopt_optim_set_momentum(opt, 0, 0.0f), GOPT_EINVAL, "momentum");
    assert_ok(gopt_optim_set_momentum(opt, 0, 0.8f));
    gopt_optim_destroy(opt);
    gopt_algo back;
    assert_ok(gopt_algo_from_name("adamw_schedulefree", &back));
    assert_int_equal(back, GOPT_ALGO_ADAMW_SCHEDULEFREE);
    assert_ok(gopt_algo_from_name("sgd_schedulefree", &back));
    assert_int_equal(back, GOPT_ALGO_SGD_SCHEDULEFREE);
    gopt_params_destroy(p);
}

/* ---- L1 ------------------------------------------------------------------------------------ */

static void test_l1_validation_and_formula(void **state) {
    (void)state;
    int64_t sizes[2] = {3000, 5};
    /* Refusals, for every algorithm. */
    gopt_params *p = make_arena(1, sizes, 3);
    for (int a = 0; a < GOPT_ALGO_COUNT; a++) {
        if (a == GOPT_ALGO_MUON) continue; /* needs matrices: its L1 is in test_optim_frontier.c */
        gopt_optim_config c = gopt_optim_config_default((gopt_algo)a);
        gopt_optim *opt = NULL;
        c.l1 = -1e-3f;
        assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "l1");
        c.l1 = NAN;
        assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "l1");
        c.l1 = INFINITY;
        assert_status(gopt_optim_create(&c, p, &opt), GOPT_EINVAL, "l1");
        c.l1 = 0.0f;
        assert_ok(gopt_optim_create(&c, p, &opt));
        c.l1 = -1.0f;
        assert_status(gopt_optim_set_group_config(opt, 0, &c), GOPT_EINVAL, "l1");
        c.l1 = 1e-3f;
        if (a == GOPT_ALGO_LAMB || a == GOPT_ALGO_ADAFACTOR) /* own pass: the gradient copy is allocated at create */
            assert_status(gopt_optim_set_group_config(opt, 0, &c), GOPT_ESTATE, "l1");
        else
            assert_ok(gopt_optim_set_group_config(opt, 0, &c));
        gopt_optim_destroy(opt);
    }
    gopt_params_destroy(p);

    /* Plain SGD: p -= lr*(g + l1*sign(p)), sign(0) = 0; maximize: p -= lr*(-g + l1*sign(p)).
     * The arena's gradients are left alone. */
    for (int maximize = 0; maximize < 2; maximize++) {
        p = make_arena(1, sizes, 4);
        float *v = gopt_params_values(p);
        v[0] = 0.0f;
        fill_grads(p, 8);
        float *g0 = malloc(3000 * sizeof(float)), *p0 = malloc(3000 * sizeof(float));
        memcpy(g0, gopt_params_grads(p), 3000 * sizeof(float));
        memcpy(p0, v, 3000 * sizeof(float));
        gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_SGD);
        c.lr = 0.1f;
        c.l1 = 0.25f;
        c.maximize = maximize;
        gopt_optim *opt = NULL;
        assert_ok(gopt_optim_create(&c, p, &opt));
        assert_ok(gopt_optim_step(opt));
        for (int i = 0; i < 3000; i++) {
            float s = p0[i] > 0 ? 1.0f : p0[i] < 0 ? -1.0f : 0.0f;
            float d = (maximize ? -g0[i] : g0[i]) + 0.25f * s;
            assert_true(v[i] == p0[i] + (-0.1f) * d);
        }
        assert_memory_equal(g0, gopt_params_grads(p), 3000 * sizeof(float));
        free(g0);
        free(p0);
        gopt_optim_destroy(opt);
        gopt_params_destroy(p);
    }

    /* LAMB (its own pass) with L1 equals LAMB without L1 on gradients g + l1*sign(p); and a
     * group with l1 = 0 beside one with l1 > 0 is untouched by it. */
    gopt_params *pa = make_arena(2, sizes, 6), *pb = make_arena(2, sizes, 6);
    fill_grads(pa, 9);
    fill_grads(pb, 9);
    {
        float *g = gopt_params_grads(pb), *v = gopt_params_values(pb);
        for (int64_t i = 0; i < gopt_params_numel(pb); i++)
            g[i] = g[i] + (v[i] > 0 ? 0.01f : v[i] < 0 ? -0.01f : 0.0f);
    }
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_LAMB);
    c.weight_decay = 0.01f;
    gopt_optim *oa = NULL, *ob = NULL;
    c.l1 = 0.01f;
    assert_ok(gopt_optim_create(&c, pa, &oa));
    c.l1 = 0.0f;
    assert_ok(gopt_optim_create(&c, pb, &ob));
    assert_ok(gopt_optim_step(oa));
    assert_ok(gopt_optim_step(ob));
    assert_memory_equal(gopt_params_values(pa), gopt_params_values(pb), (size_t)gopt_params_numel(pa) * sizeof(float));
    gopt_optim_destroy(oa);
    gopt_optim_destroy(ob);
    gopt_params_destroy(pa);
    gopt_params_destroy(pb);

    /* Per group: l1 in group 0 only (Adam: the term goes through the moments). */
    gopt_params *pg = NULL, *pr = NULL;
    for (int k = 0; k < 2; k++) {
        gopt_params **pp = k ? &pr : &pg;
        assert_ok(gopt_params_create(pp));
        assert_ok(gopt_params_add(*pp, "a", 1, &sizes[0], GOPT_TAG_WEIGHT, NULL));
        assert_ok(gopt_params_add(*pp, "b", 1, &sizes[1], GOPT_TAG_WEIGHT, NULL));
        int g1;
        assert_ok(gopt_params_add_group(*pp, NULL, &g1));
        assert_ok(gopt_params_set_group(*pp, 1, g1));
        assert_ok(gopt_params_finalize(*pp));
        gopt_rng rng;
        gopt_rng_seed(&rng, 21);
        for (int64_t i = 0; i < gopt_params_numel(*pp); i++) gopt_params_values(*pp)[i] = gopt_rng_normal(&rng);
        fill_grads(*pp, 22);
    }
    c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    c.l1 = 0.5f;
    assert_ok(gopt_optim_create(&c, pg, &oa));
    c.l1 = 0.0f;
    assert_ok(gopt_optim_set_group_config(oa, 1, &c));
    assert_ok(gopt_optim_create(&c, pr, &ob)); /* reference without L1 */
    assert_ok(gopt_optim_step(oa));
    assert_ok(gopt_optim_step(ob));
    /* group 1 (tensor b, after a's 3000 values) matches the run without L1; group 0 does not */
    assert_memory_equal(gopt_params_values(pg) + 3000, gopt_params_values(pr) + 3000, 5 * sizeof(float));
    assert_memory_not_equal(gopt_params_values(pg), gopt_params_values(pr), 3000 * sizeof(float));
    gopt_optim_config got;
    assert_ok(gopt_optim_group_config(oa, 0, &got));
    assert_float_equal(got.l1, 0.5f, 0);
    gopt_optim_destroy(oa);
    gopt_optim_destroy(ob);
    gopt_params_destroy(pg);
    gopt_params_destroy(pr);
}

/* ---- weight averaging ---------------------------------------------------------------------- */

static void test_average_refusals(void **state) {
    (void)state;
    int64_t n = 8;
    gopt_params *p = make_arena(1, &n, 1);
    gopt_average *a = NULL;
    gopt_average_config c = gopt_average_config_default(GOPT_AVERAGE_EMA);
    const float bad[4] = {1.0f, -0.1f, 1.5f, NAN};
    for (int i = 0; i < 4; i++) {
        c.decay = bad[i];
        assert_status(gopt_average_create(&c, p, &a), GOPT_EINVAL, "decay");
        assert_null(a);
    }
    c.decay = 0.0f; /* allowed: the average is the last value */
    assert_ok(gopt_average_create(&c, p, &a));
    gopt_average_destroy(a);
    c.kind = (gopt_average_kind)7;
    assert_status(gopt_average_create(&c, p, &a), GOPT_EINVAL, "kind");
    c = gopt_average_config_default(GOPT_AVERAGE_SWA);
    assert_status(gopt_average_create(NULL, p, &a), GOPT_EINVAL, NULL);
    assert_status(gopt_average_create(&c, NULL, &a), GOPT_EINVAL, NULL);
    gopt_params *unfinished = NULL;
    assert_ok(gopt_params_create(&unfinished));
    assert_status(gopt_average_create(&c, unfinished, &a), GOPT_ESTATE, "finalize");
    gopt_params_destroy(unfinished);
    assert_ok(gopt_average_create(&c, p, &a));
    assert_status(gopt_average_swap(a), GOPT_ESTATE, "no average");
    assert_ok(gopt_average_update(a));
    assert_ok(gopt_average_swap(a));
    assert_int_equal(gopt_average_swapped(a), 1);
    assert_status(gopt_average_update(a), GOPT_ESTATE, "swap back");
    assert_ok(gopt_average_swap(a));
    assert_status(gopt_average_update(NULL), GOPT_EINVAL, NULL);
    gopt_average_destroy(a);
    gopt_average_destroy(NULL);
    gopt_params_destroy(p);
}

/* n updates of an average over an arena whose values follow a fixed sequence. */
static void avg_updates(gopt_average *a, gopt_params *p, int from, int to) {
    float *v = gopt_params_values(p);
    for (int u = from; u < to; u++) {
        gopt_rng rng;
        gopt_rng_seed(&rng, 500 + (uint64_t)u);
        for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] = gopt_rng_normal(&rng);
        assert_ok(gopt_average_update(a));
    }
}

static void check_average_resume(gopt_average_kind kind, int64_t n) {
    gopt_params *p = make_arena(1, &n, 2), *q = make_arena(1, &n, 3);
    gopt_average_config c = gopt_average_config_default(kind);
    c.decay = 0.9f;
    gopt_average *a = NULL, *b = NULL;
    assert_ok(gopt_average_create(&c, p, &a));
    assert_ok(gopt_average_create(&c, q, &b));
    avg_updates(a, p, 0, 3);
    /* save while swapped: the resumed average must come back swapped */
    assert_ok(gopt_average_swap(a));
    size_t size = gopt_average_state_size(a), psize = gopt_params_state_size(p);
    unsigned char *blob = malloc(size), *pblob = malloc(psize);
    assert_ok(gopt_average_state_save(a, blob, size));
    assert_ok(gopt_params_state_save(p, pblob, psize));
    assert_ok(gopt_average_swap(a));
    avg_updates(a, p, 3, 7);
    assert_ok(gopt_params_state_load(q, pblob, psize));
    assert_ok(gopt_average_state_load(b, blob, size));
    assert_int_equal(gopt_average_count(b), 3);
    assert_int_equal(gopt_average_swapped(b), 1);
    assert_ok(gopt_average_swap(b));
    avg_updates(b, q, 3, 7);
    assert_int_equal(gopt_average_count(b), 7);
    assert_memory_equal(gopt_average_values(a), gopt_average_values(b), (size_t)n * sizeof(float));
    /* swap twice: the arena and the average come back bit for bit */
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, gopt_params_values(p), (size_t)n * sizeof(float));
    assert_ok(gopt_average_swap(a));
    assert_memory_equal(gopt_params_values(p), gopt_average_values(b), (size_t)n * sizeof(float));
    assert_ok(gopt_average_swap(a));
    assert_memory_equal(gopt_params_values(p), before, (size_t)n * sizeof(float));
    /* refusals of load */
    assert_status(gopt_average_state_load(b, blob, size - 1), GOPT_EFORMAT, "bytes");
    assert_status(gopt_average_state_load(b, blob, 5), GOPT_EFORMAT, "truncated");
    gopt_average_config other = gopt_average_config_default(kind == GOPT_AVERAGE_SWA ? GOPT_AVERAGE_EMA : GOPT_AVERAGE_SWA);
    gopt_average *o = NULL;
    assert_ok(gopt_average_create(&other, q, &o));
    assert_status(gopt_average_state_load(o, blob, size), GOPT_EFORMAT, "average");
    gopt_average_destroy(o);
    if (kind == GOPT_AVERAGE_EMA) {
        other = c;
        other.decay = 0.5f;
        assert_ok(gopt_average_create(&other, q, &o));
        assert_status(gopt_average_state_load(o, blob, size), GOPT_EFORMAT, "decay");
        gopt_average_destroy(o);
    }
    blob[0] ^= 0xff;
    assert_status(gopt_average_state_load(b, blob, size), GOPT_EFORMAT, "magic");
    assert_int_equal(gopt_average_count(b), 7); /* unchanged on failure */
    free(before);
    free(blob);
    free(pblob);
    gopt_average_destroy(a);
    gopt_average_destroy(b);
    gopt_params_destroy(p);
    gopt_params_destroy(q);
}

static void test_average_resume_and_swap(void **state) {
    (void)state;
    check_average_resume(GOPT_AVERAGE_SWA, 100);
    check_average_resume(GOPT_AVERAGE_EMA, 100);
    check_average_resume(GOPT_AVERAGE_EMA, 130000); /* threaded */
}

/* The formulas, against double arithmetic. */
static void test_average_values(void **state) {
    (void)state;
    int64_t n = 33;
    for (int k = 0; k < 2; k++) {
        gopt_params *p = make_arena(1, &n, 4);
        gopt_average_config c = gopt_average_config_default(k ? GOPT_AVERAGE_EMA : GOPT_AVERAGE_SWA);
        c.decay = 0.75f;
        gopt_average *a = NULL;
        assert_ok(gopt_average_create(&c, p, &a));
        double want[33] = {0};
        float *v = gopt_params_values(p);
        for (int u = 0; u < 6; u++) {
            for (int i = 0; i < 33; i++) v[i] = (float)(u * 0.5 + i * 0.125 - (u % 2));
            assert_ok(gopt_average_update(a));
            for (int i = 0; i < 33; i++)
                want[i] = u == 0 ? v[i] : k ? 0.75 * want[i] + 0.25 * v[i] : want[i] + (v[i] - want[i]) / (u + 1);
            for (int i = 0; i < 33; i++) assert_true(fabs(gopt_average_values(a)[i] - want[i]) <= 1e-5);
        }
        gopt_average_destroy(a);
        gopt_params_destroy(p);
    }
}

/* ---- BatchNorm recalibration ------------------------------------------------------------------ */

#define RB_F 3
static const int batch_sizes[3] = {4, 7, 5};
static float batches[3][7 * RB_F];

static gopt_status next_batch(void *user, int64_t i, gopt_tensor *x) {
    int *calls = user;
    (*calls)++;
    const int64_t shape[2] = {batch_sizes[i], RB_F};
    return gopt_tensor_view(batches[i], 2, shape, x);
}

static gopt_status failing_batch(void *user, int64_t i, gopt_tensor *x) {
    if (i == 1) return GOPT_FAIL(GOPT_EIO, "no more data");
    return next_batch(user, i, x);
}

static gopt_status wrong_shape(void *user, int64_t i, gopt_tensor *x) {
    (void)user;
    const int64_t shape[2] = {2, RB_F + 1};
    return gopt_tensor_view(batches[i], 2, shape, x);
}

static void test_bn_recalibration(void **state) {
    (void)state;
    gopt_rng rng;
    gopt_rng_seed(&rng, 11);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 7 * RB_F; i++) batches[b][i] = 2.0f * gopt_rng_normal(&rng) + (float)(b + i % RB_F);
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 8;
    nc.in_ndim = 1;
    nc.in_shape[0] = RB_F;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    int calls = 0;
    assert_status(gopt_net_recalibrate_bn(net, 3, next_batch, &calls), GOPT_ESTATE, "built");
    gopt_layer_config layers[3] = {gopt_layer_batchnorm1d(RB_F), gopt_layer_dropout(0.5f, 3), gopt_layer_linear(RB_F, 2, 1)};
    for (int i = 0; i < 3; i++) assert_ok(gopt_net_add(net, &layers[i], NULL));
    assert_ok(gopt_net_build(net));
    float *rm, *rv;
    assert_ok(gopt_layer_bn_running(gopt_net_layer(net, 0), &rm, &rv));
    /* some history in the running statistics, and eval mode before the call */
    gopt_tensor x, logits;
    const int64_t s0[2] = {4, RB_F};
    assert_ok(gopt_tensor_view(batches[2], 2, s0, &x));
    assert_ok(gopt_net_forward(net, &x, &logits));
    gopt_net_set_training(net, 0);
    size_t ssize = gopt_net_state_size(net);
    unsigned char *before = malloc(ssize), *after = malloc(ssize);
    assert_ok(gopt_net_state_save(net, before, ssize));

    assert_status(gopt_net_recalibrate_bn(net, 0, next_batch, &calls), GOPT_EINVAL, "nbatches");
    assert_status(gopt_net_recalibrate_bn(NULL, 3, next_batch, &calls), GOPT_EINVAL, NULL);
    assert_status(gopt_net_recalibrate_bn(net, 3, NULL, &calls), GOPT_EINVAL, NULL);
    assert_ok(gopt_net_recalibrate_bn(net, 3, next_batch, &calls));
    assert_int_equal(calls, 3);
    for (int c = 0; c < RB_F; c++) {
        double mean_avg = 0, var_avg = 0;
        for (int b = 0; b < 3; b++) {
            int n = batch_sizes[b];
            double m = 0, v = 0;
            for (int i = 0; i < n; i++) m += batches[b][i * RB_F + c];
            m /= n;
            for (int i = 0; i < n; i++) v += (batches[b][i * RB_F + c] - m) * (batches[b][i * RB_F + c] - m);
            mean_avg += m / 3;
            var_avg += v / (n - 1) / 3; /* unbiased, each batch weighted equally */
        }
        assert_true(fabs(rm[c] - mean_avg) <= 1e-5 + 1e-5 * fabs(mean_avg));
        assert_true(fabs(rv[c] - var_avg) <= 1e-5 + 1e-5 * fabs(var_avg));
    }
    /* the dropout stream and the eval flag are back: an eval forward changes nothing */
    assert_ok(gopt_net_state_save(net, after, ssize));
    assert_memory_equal(before + ssize - 4 * 8, after + ssize - 4 * 8, 4 * 8);
    assert_ok(gopt_net_forward(net, &x, &logits));
    unsigned char *again = malloc(ssize);
    assert_ok(gopt_net_state_save(net, again, ssize));
    assert_memory_equal(after, again, ssize);
    /* the momentum is back to 0.1: one training forward moves mean by 0.1*(batch - running) */
    float m0 = rm[0];
    double bm = 0;
    for (int i = 0; i < 4; i++) bm += batches[2][i * RB_F];
    bm /= 4;
    gopt_net_set_training(net, 1);
    assert_ok(gopt_net_forward(net, &x, &logits));
    assert_true(fabs(rm[0] - (0.9 * m0 + 0.1 * bm)) <= 1e-5);
    /* errors: the callback's status (naming the batch), the forward's shape error */
    assert_status(gopt_net_recalibrate_bn(net, 3, failing_batch, &calls), GOPT_EIO, "batch 1");
    testutil_check_detail("no more data");
    assert_status(gopt_net_recalibrate_bn(net, 2, wrong_shape, &calls), GOPT_ESHAPE, NULL);
    /* no backward of the recalibration's forwards */
    const int64_t ls[2] = {2, 2};
    float dl[4] = {0};
    gopt_tensor dlog;
    assert_ok(gopt_tensor_view(dl, 2, ls, &dlog));
    assert_status(gopt_net_backward(net, &dlog), GOPT_ESTATE, "backward");
    free(before);
    free(after);
    free(again);
    gopt_net_destroy(net);

    /* a net without batchnorm: nothing to do, the batches are not read */
    assert_ok(gopt_net_create(&nc, &net));
    assert_ok(gopt_net_add(net, &layers[2], NULL));
    assert_ok(gopt_net_build(net));
    calls = 0;
    assert_ok(gopt_net_recalibrate_bn(net, 3, next_batch, &calls));
    assert_int_equal(calls, 0);
    gopt_net_destroy(net);
}

/* ---- SWALR beyond the reference cases: in a sequential after the main schedule ---------------- */

static void test_swalr_sequential_and_refusals(void **state) {
    (void)state;
    gopt_sched_config parts[2] = {gopt_sched_config_default(GOPT_SCHED_COSINE), gopt_sched_config_default(GOPT_SCHED_SWALR)};
    parts[0].T_max = 4;
    parts[1].swa_lr = 0.02;
    parts[1].anneal_epochs = 2;
    parts[1].anneal_strategy = GOPT_ANNEAL_LINEAR;
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = parts;
    c.n_children = 2;
    c.milestones[0] = 3;
    c.n_milestones = 1;
    const double lr0 = 0.1;
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create_detached(&c, 1, &lr0, &s));
    for (int t = 0; t < 3; t++) assert_ok(gopt_sched_step(s));
    /* at the milestone SWALR's step(0) runs get_lr with _step_count 2: one anneal step from
     * the cosine's LR at epoch 2 */
    double cos2 = 0.1 * (1 + cos(M_PI * 2 / 4)) / 2;
    assert_true(fabs(gopt_sched_get_lr(s, 0) - (0.02 * 0.5 + cos2 * 0.5)) < 1e-12);
    assert_ok(gopt_sched_step(s));
    assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.02) < 1e-12);
    assert_ok(gopt_sched_step(s));
    assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.02) < 1e-12);
    gopt_sched_destroy(s);
    gopt_sched_config b = gopt_sched_config_default(GOPT_SCHED_SWALR);
    b.swa_lr = -1;
    assert_status(gopt_sched_create_detached(&b, 1, &lr0, &s), GOPT_EINVAL, "swa_lr");
    b = gopt_sched_config_default(GOPT_SCHED_SWALR);
    b.anneal_epochs = -1;
    assert_status(gopt_sched_create_detached(&b, 1, &lr0, &s), GOPT_EINVAL, "anneal_epochs");
    b = gopt_sched_config_default(GOPT_SCHED_SWALR);
    b.anneal_strategy = (gopt_anneal)5;
    assert_status(gopt_sched_create_detached(&b, 1, &lr0, &s), GOPT_EINVAL, "anneal_strategy");
    b = gopt_sched_config_default(GOPT_SCHED_SWALR);
    const double lrs[2] = {0.1, 0.2}, swa[1] = {0.01};
    b.swa_lrs = swa;
    b.n_swa_lrs = 1;
    assert_status(gopt_sched_create_detached(&b, 2, lrs, &s), GOPT_EINVAL, "n_swa_lrs");
    /* resume: bound to an optimizer, saved mid-anneal, continues identically */
    {
        int64_t n = 4;
        gopt_params *p = make_arena(1, &n, 1);
        gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
        oc.lr = 0.3f;
        gopt_optim *o1 = NULL, *o2 = NULL;
        assert_ok(gopt_optim_create(&oc, p, &o1));
        assert_ok(gopt_optim_create(&oc, p, &o2));
        gopt_sched_config sw = gopt_sched_config_default(GOPT_SCHED_SWALR);
        sw.swa_lr = 0.01;
        sw.anneal_epochs = 6;
        gopt_sched *s1 = NULL, *s2 = NULL;
        assert_ok(gopt_sched_create(&sw, o1, &s1));
        assert_ok(gopt_sched_create(&sw, o2, &s2));
        for (int t = 0; t < 3; t++) assert_ok(gopt_sched_step(s1));
        size_t sz = gopt_sched_state_size(s1);
        unsigned char *blob = malloc(sz);
        assert_ok(gopt_sched_state_save(s1, blob, sz));
        assert_ok(gopt_sched_state_load(s2, blob, sz));
        for (int t = 0; t < 5; t++) {
            assert_ok(gopt_sched_step(s1));
            assert_ok(gopt_sched_step(s2));
            assert_true(gopt_sched_get_lr(s1, 0) == gopt_sched_get_lr(s2, 0));
            assert_true(gopt_optim_get_lr(o1, 0) == gopt_optim_get_lr(o2, 0));
        }
        assert_true(fabs(gopt_sched_get_lr(s1, 0) - 0.01) < 1e-12);
        free(blob);
        gopt_sched_destroy(s1);
        gopt_sched_destroy(s2);
        gopt_optim_destroy(o1);
        gopt_optim_destroy(o2);
        gopt_params_destroy(p);
    }
    /* anneal_epochs 0: swa_lr at once */
    b = gopt_sched_config_default(GOPT_SCHED_SWALR);
    b.anneal_epochs = 0;
    b.swa_lr = 0.03;
    assert_ok(gopt_sched_create_detached(&b, 1, &lr0, &s));
    assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.03) < 1e-12);
    assert_ok(gopt_sched_step(s));
    assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.03) < 1e-12);
    gopt_sched_destroy(s);
}

/* Every allocation of gopt_average_create, of a Schedule-Free or L1-with-LAMB create and of
 * gopt_net_recalibrate_bn can fail: GOPT_ENOMEM, nothing leaked, nothing changed. */
static void test_alloc_failures(void **state) {
    (void)state;
    int64_t n = 64;
    gopt_params *p = make_arena(1, &n, 1);
    gopt_average_config ac = gopt_average_config_default(GOPT_AVERAGE_SWA);
    gopt_optim_config sf = gopt_optim_config_default(GOPT_ALGO_ADAMW_SCHEDULEFREE);
    gopt_optim_config lamb = gopt_optim_config_default(GOPT_ALGO_LAMB);
    lamb.l1 = 0.01f;
    for (int which = 0; which < 3; which++) {
        int ok = 0;
        for (long budget = 0; budget < 64 && !ok; budget++) {
            gopt_average *a = NULL;
            gopt_optim *o = NULL;
            testutil_fail_after(budget);
            gopt_status st = which == 0 ? gopt_average_create(&ac, p, &a)
                           : which == 1 ? gopt_optim_create(&sf, p, &o)
                                        : gopt_optim_create(&lamb, p, &o);
            testutil_alloc_reset();
            if (st == GOPT_OK) {
                ok = 1;
            } else {
                assert_int_equal(st, GOPT_ENOMEM);
                assert_null(a);
                assert_null(o);
            }
            gopt_average_destroy(a);
            gopt_optim_destroy(o);
        }
        assert_true(ok);
    }
    gopt_params_destroy(p);

    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 8;
    nc.in_ndim = 1;
    nc.in_shape[0] = RB_F;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config bn = gopt_layer_batchnorm1d(RB_F);
    assert_ok(gopt_net_add(net, &bn, NULL));
    assert_ok(gopt_net_build(net));
    float *rm, *rv;
    assert_ok(gopt_layer_bn_running(gopt_net_layer(net, 0), &rm, &rv));
    rm[0] = 42.0f;
    int calls = 0, ok = 0;
    for (long budget = 0; budget < 16 && !ok; budget++) {
        testutil_fail_after(budget);
        gopt_status st = gopt_net_recalibrate_bn(net, 3, next_batch, &calls);
        testutil_alloc_reset();
        if (st == GOPT_OK) {
            ok = 1;
        } else {
            assert_int_equal(st, GOPT_ENOMEM);
            assert_float_equal(rm[0], 42.0f, 0); /* nothing changed */
        }
    }
    assert_true(ok);
    assert_true(rm[0] != 42.0f);
    gopt_net_destroy(net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sf_eval_step_refused),
        cmocka_unit_test(test_sf_round_trip_bits),
        cmocka_unit_test(test_sf_resume_bit_exact),
        cmocka_unit_test(test_sf_refusals),
        cmocka_unit_test(test_l1_validation_and_formula),
        cmocka_unit_test(test_average_refusals),
        cmocka_unit_test(test_average_resume_and_swap),
        cmocka_unit_test(test_average_values),
        cmocka_unit_test(test_bn_recalibration),
        cmocka_unit_test(test_swalr_sequential_and_refusals),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
