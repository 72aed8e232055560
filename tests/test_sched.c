/* Tests of gradopt/sched.h: config validation, binding to a real optimizer, the warmup ->
 * plateau composition, and exact resume through state save/load. The per-kind LR
 * sequences are checked against PyTorch by the golden cases (tests/golden). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static gopt_sched *detached(const gopt_sched_config *c, double lr) {
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create_detached(c, 1, &lr, &s));
    return s;
}

typedef struct bad_case {
    gopt_sched_kind kind;
    const char *field;
    void (*mutate)(gopt_sched_config *c);
} bad_case;

#define MUT(name, ...) static void name(gopt_sched_config *c) { __VA_ARGS__; }
MUT(m_step_size, c->step_size = 0)
MUT(m_gamma, c->gamma = -1)
MUT(m_gamma_nan, c->gamma = NAN)
MUT(m_n_milestones, c->n_milestones = GOPT_SCHED_MAX_MILESTONES + 1)
MUT(m_milestone_neg, { c->n_milestones = 1; c->milestones[0] = -3; })
MUT(m_T_max, c->T_max = 0)
MUT(m_eta_min, c->eta_min = -0.1)
MUT(m_T_0, c->T_0 = 0)
MUT(m_T_mult, c->T_mult = 0)
MUT(m_max_lr, c->max_lr = 0)
MUT(m_total_steps, c->total_steps = 0)
MUT(m_pct_start, c->pct_start = 1.5)
MUT(m_anneal, c->anneal_strategy = (gopt_anneal)7)
MUT(m_div_factor, c->div_factor = 0)
MUT(m_final_div_factor, c->final_div_factor = -1)
MUT(m_base_momentum, c->base_momentum = 1.0)
MUT(m_max_momentum, c->max_momentum = -0.1)
MUT(m_empty_phase, { c->total_steps = 10; c->pct_start = 0.1; })
MUT(m_max_lrs, { static const double v[2] = {0.1, 0.2}; c->max_lrs = v; c->n_max_lrs = 2; })
MUT(m_start_factor, c->start_factor = 0)
MUT(m_end_factor, c->end_factor = 1.5)
MUT(m_total_iters, c->total_iters = 0)
MUT(m_factor_const, c->factor = 0)
MUT(m_power, c->power = INFINITY)
MUT(m_power_neg, c->power = -1.0)
MUT(m_lambda, c->lr_lambda = NULL)
MUT(m_mode, c->mode = (gopt_plateau_mode)3)
MUT(m_threshold_mode, c->threshold_mode = (gopt_threshold_mode)3)
MUT(m_factor_plateau, c->factor = 1.0)
MUT(m_threshold, c->threshold = -1)
MUT(m_patience, c->patience = -1)
MUT(m_cooldown, c->cooldown = -2)
MUT(m_min_lr, c->min_lr = -1)
MUT(m_min_lrs, { static const double v[1] = {-1}; c->min_lrs = v; c->n_min_lrs = 1; })
MUT(m_eps, c->eps = -1)
MUT(m_kind, c->kind = GOPT_SCHED_KIND_COUNT)

static double one(void *u, int g, int64_t e) { (void)u; (void)g; return 1.0 / (double)(e + 1); }

static void test_config_errors(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {GOPT_SCHED_STEP, "step_size", m_step_size},
        {GOPT_SCHED_STEP, "gamma", m_gamma},
        {GOPT_SCHED_EXPONENTIAL, "gamma", m_gamma_nan},
        {GOPT_SCHED_MULTISTEP, "n_milestones", m_n_milestones},
        {GOPT_SCHED_MULTISTEP, "milestones[0]", m_milestone_neg},
        {GOPT_SCHED_MULTISTEP, "gamma", m_gamma},
        {GOPT_SCHED_COSINE, "T_max", m_T_max},
        {GOPT_SCHED_COSINE, "eta_min", m_eta_min},
        {GOPT_SCHED_COSINE_WARM_RESTARTS, "T_0", m_T_0},
        {GOPT_SCHED_COSINE_WARM_RESTARTS, "T_mult", m_T_mult},
        {GOPT_SCHED_COSINE_WARM_RESTARTS, "eta_min", m_eta_min},
        {GOPT_SCHED_ONECYCLE, "max_lr", m_max_lr},
        {GOPT_SCHED_ONECYCLE, "total_steps", m_total_steps},
        {GOPT_SCHED_ONECYCLE, "pct_start", m_pct_start},
        {GOPT_SCHED_ONECYCLE, "anneal_strategy", m_anneal},
        {GOPT_SCHED_ONECYCLE, "div_factor", m_div_factor},
        {GOPT_SCHED_ONECYCLE, "final_div_factor", m_final_div_factor},
        {GOPT_SCHED_ONECYCLE, "base_momentum", m_base_momentum},
        {GOPT_SCHED_ONECYCLE, "max_momentum", m_max_momentum},
        {GOPT_SCHED_ONECYCLE, "pct_start", m_empty_phase},
        {GOPT_SCHED_ONECYCLE, "n_max_lrs", m_max_lrs},
        {GOPT_SCHED_LINEAR, "start_factor", m_start_factor},
        {GOPT_SCHED_LINEAR, "end_factor", m_end_factor},
        {GOPT_SCHED_LINEAR, "total_iters", m_total_iters},
        {GOPT_SCHED_CONSTANT, "factor", m_factor_const},
        {GOPT_SCHED_CONSTANT, "total_iters", m_total_iters},
        {GOPT_SCHED_POLYNOMIAL, "total_iters", m_total_iters},
        {GOPT_SCHED_POLYNOMIAL, "power", m_power},
        {GOPT_SCHED_POLYNOMIAL, "power = -1 must be finite and >= 0", m_power_neg},
        {GOPT_SCHED_LAMBDA, "lr_lambda", m_lambda},
        {GOPT_SCHED_PLATEAU, "mode", m_mode},
        {GOPT_SCHED_PLATEAU, "threshold_mode", m_threshold_mode},
        {GOPT_SCHED_PLATEAU, "factor", m_factor_plateau},
        {GOPT_SCHED_PLATEAU, "threshold", m_threshold},
        {GOPT_SCHED_PLATEAU, "patience", m_patience},
        {GOPT_SCHED_PLATEAU, "cooldown", m_cooldown},
        {GOPT_SCHED_PLATEAU, "min_lr", m_min_lr},
        {GOPT_SCHED_PLATEAU, "min_lrs[0]", m_min_lrs},
        {GOPT_SCHED_PLATEAU, "eps", m_eps},
        {GOPT_SCHED_STEP, "kind", m_kind},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gopt_sched_config c = gopt_sched_config_default(cases[i].kind);
        c.lr_lambda = one;
        cases[i].mutate(&c);
        gopt_sched *s = (gopt_sched *)0x1;
        double lr = 0.1;
        assert_status(gopt_sched_create_detached(&c, 1, &lr, &s), GOPT_EINVAL, cases[i].field);
        assert_null(s);
    }
    /* composites: counts, milestones, nested field paths */
    gopt_sched_config kids[2] = {gopt_sched_config_default(GOPT_SCHED_LINEAR), gopt_sched_config_default(GOPT_SCHED_COSINE)};
    gopt_sched_config seq = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    seq.children = kids;
    seq.n_children = 2;
    gopt_sched *s = NULL;
    double lr = 0.1;
    assert_status(gopt_sched_create_detached(&seq, 1, &lr, &s), GOPT_EINVAL, "n_milestones");
    seq.n_milestones = 1;
    seq.milestones[0] = 0;
    assert_status(gopt_sched_create_detached(&seq, 1, &lr, &s), GOPT_EINVAL, "milestones[0]");
    seq.milestones[0] = 5;
    kids[1].T_max = 0;
    assert_status(gopt_sched_create_detached(&seq, 1, &lr, &s), GOPT_EINVAL, "children[1].T_max");
    kids[1].T_max = 10;
    seq.n_children = 0;
    assert_status(gopt_sched_create_detached(&seq, 1, &lr, &s), GOPT_EINVAL, "n_children");
    seq.n_children = 2;
    seq.children = NULL;
    assert_status(gopt_sched_create_detached(&seq, 1, &lr, &s), GOPT_EINVAL, "children");
    seq.children = kids;
    gopt_sched_config nest[1];
    nest[0] = seq;
    gopt_sched_config deep = gopt_sched_config_default(GOPT_SCHED_CHAINED);
    deep.children = nest;
    deep.n_children = 1;
    gopt_sched_config deeper[GOPT_SCHED_MAX_DEPTH + 1];
    deeper[0] = deep;
    for (int d = 1; d <= GOPT_SCHED_MAX_DEPTH; d++) {
        deeper[d] = gopt_sched_config_default(GOPT_SCHED_CHAINED);
        deeper[d].children = &deeper[d - 1];
        deeper[d].n_children = 1;
    }
    assert_status(gopt_sched_create_detached(&deeper[GOPT_SCHED_MAX_DEPTH], 1, &lr, &s), GOPT_EINVAL, "deeper");
    /* arguments */
    gopt_sched_config ok = gopt_sched_config_default(GOPT_SCHED_STEP);
    assert_status(gopt_sched_create_detached(&ok, 0, &lr, &s), GOPT_EINVAL, "ngroups");
    double bad = -1;
    assert_status(gopt_sched_create_detached(&ok, 1, &bad, &s), GOPT_EINVAL, "initial_lrs[0]");
    assert_status(gopt_sched_create_detached(NULL, 1, &lr, &s), GOPT_EINVAL, "cfg");
    assert_status(gopt_sched_create_detached(&ok, 1, &lr, NULL), GOPT_EINVAL, "out");
    assert_status(gopt_sched_step(NULL), GOPT_EINVAL, "s");
    gopt_sched_destroy(NULL);
}

static void test_names(void **state) {
    (void)state;
    for (int k = 0; k < GOPT_SCHED_KIND_COUNT; k++) {
        gopt_sched_kind back;
        assert_ok(gopt_sched_kind_from_name(gopt_sched_kind_name((gopt_sched_kind)k), &back));
        assert_int_equal(back, k);
    }
    gopt_sched_kind k;
    assert_status(gopt_sched_kind_from_name("cosinus", &k), GOPT_EINVAL, "cosinus");
    assert_null(gopt_sched_kind_name(GOPT_SCHED_KIND_COUNT));
}

static void test_step_vs_metric_and_onecycle_end(void **state) {
    (void)state;
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_PLATEAU);
    gopt_sched *s = detached(&c, 0.1);
    assert_true(gopt_sched_needs_metric(s));
    assert_status(gopt_sched_step(s), GOPT_ESTATE, "gopt_sched_step_metric");
    gopt_sched_destroy(s);
    c = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
    c.total_steps = 4;
    c.pct_start = 0.5;
    s = detached(&c, 0.1);
    assert_status(gopt_sched_step_metric(s, 1.0), GOPT_ESTATE, "gopt_sched_step");
    for (int i = 0; i < 4; i++) assert_ok(gopt_sched_step(s)); /* PyTorch allows total_steps steps */
    double lr = gopt_sched_get_lr(s, 0);
    int64_t e = gopt_sched_last_epoch(s);
    assert_status(gopt_sched_step(s), GOPT_ESTATE, "total_steps");
    assert_true(gopt_sched_get_lr(s, 0) == lr);
    assert_int_equal(gopt_sched_last_epoch(s), e);
    assert_true(isnan(gopt_sched_get_lr(s, 1)));
    assert_true(isnan(gopt_sched_get_lr(s, -1)));
    gopt_sched_destroy(s);
}

static void test_lambda_per_group(void **state) {
    (void)state;
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_LAMBDA);
    c.lr_lambda = one;
    double lrs[2] = {0.1, 0.4};
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create_detached(&c, 2, lrs, &s));
    for (int e = 1; e <= 5; e++) {
        assert_ok(gopt_sched_step(s));
        assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.1 / (e + 1)) < 1e-15);
        assert_true(fabs(gopt_sched_get_lr(s, 1) - 0.4 / (e + 1)) < 1e-15);
    }
    gopt_sched_destroy(s);
}

/* PyTorch cannot do this (#68978): linear warmup for 5 steps, then ReduceLROnPlateau. */
static void test_warmup_then_plateau(void **state) {
    (void)state;
    gopt_sched_config kids[2] = {gopt_sched_config_default(GOPT_SCHED_LINEAR), gopt_sched_config_default(GOPT_SCHED_PLATEAU)};
    kids[0].start_factor = 0.2;
    kids[0].total_iters = 5;
    kids[1].patience = 2;
    kids[1].factor = 0.5;
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = kids;
    c.n_children = 2;
    c.n_milestones = 1;
    c.milestones[0] = 5;
    gopt_sched *s = detached(&c, 1.0);
    assert_true(gopt_sched_needs_metric(s));
    double want_warm[5] = {0.2, 0.36, 0.52, 0.68, 0.84};
    assert_true(fabs(gopt_sched_get_lr(s, 0) - want_warm[0]) < 1e-12);
    for (int t = 1; t < 5; t++) {
        assert_ok(gopt_sched_step_metric(s, 100.0)); /* ignored by the warmup */
        assert_true(fabs(gopt_sched_get_lr(s, 0) - want_warm[t]) < 1e-12);
    }
    /* step 5: the plateau takes over from the base LR; metric 1.0 is its first best */
    assert_ok(gopt_sched_step_metric(s, 1.0));
    assert_true(gopt_sched_get_lr(s, 0) == 1.0);
    /* 3 bad epochs (> patience 2) halve it */
    assert_ok(gopt_sched_step_metric(s, 1.0));
    assert_ok(gopt_sched_step_metric(s, 1.0));
    assert_true(gopt_sched_get_lr(s, 0) == 1.0);
    assert_ok(gopt_sched_step_metric(s, 1.0));
    assert_true(gopt_sched_get_lr(s, 0) == 0.5);
    assert_ok(gopt_sched_step_metric(s, 0.5)); /* improvement: stays */
    assert_true(gopt_sched_get_lr(s, 0) == 0.5);
    gopt_sched_destroy(s);
}

/* ---- resume ---------------------------------------------------------------------------- */

static double metric_at(int t) { return t < 8 ? 1.0 / (t + 1) : 0.12 + 0.001 * (t % 3); }

static void check_resume(const gopt_sched_config *c, int before, int after) {
    double lrs[2] = {0.1, 0.05};
    gopt_sched *a = NULL, *b = NULL;
    assert_ok(gopt_sched_create_detached(c, 2, lrs, &a));
    assert_ok(gopt_sched_create_detached(c, 2, lrs, &b));
    int metric = gopt_sched_needs_metric(a);
    for (int t = 0; t < before; t++) assert_ok(metric ? gopt_sched_step_metric(a, metric_at(t)) : gopt_sched_step(a));
    size_t n = gopt_sched_state_size(a);
    assert_true(n > 0);
    unsigned char *buf = malloc(n);
    assert_ok(gopt_sched_state_save(a, buf, n));
    assert_ok(gopt_sched_state_load(b, buf, n));
    for (int t = before; t < before + after; t++) {
        assert_ok(metric ? gopt_sched_step_metric(a, metric_at(t)) : gopt_sched_step(a));
        assert_ok(metric ? gopt_sched_step_metric(b, metric_at(t)) : gopt_sched_step(b));
        for (int g = 0; g < 2; g++)
            if (gopt_sched_get_lr(a, g) != gopt_sched_get_lr(b, g))
                fail_msg("%s: step %d group %d: %.17g vs resumed %.17g", gopt_sched_kind_name(c->kind), t, g,
                         gopt_sched_get_lr(a, g), gopt_sched_get_lr(b, g));
        assert_true(gopt_sched_last_epoch(a) == gopt_sched_last_epoch(b));
    }
    /* a corrupted or foreign state is refused and the scheduler is unchanged */
    double lr_before = gopt_sched_get_lr(b, 0);
    assert_status(gopt_sched_state_load(b, buf, n - 1), GOPT_EFORMAT, "scheduler state");
    buf[0] ^= 0xff;
    assert_status(gopt_sched_state_load(b, buf, n), GOPT_EFORMAT, "magic");
    assert_true(gopt_sched_get_lr(b, 0) == lr_before);
    assert_status(gopt_sched_state_save(a, buf, n - 1), GOPT_EINVAL, "size");
    free(buf);
    gopt_sched_destroy(a);
    gopt_sched_destroy(b);
}

static void test_resume(void **state) {
    (void)state;
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_COSINE);
    c.T_max = 7;
    check_resume(&c, 5, 20);
    c = gopt_sched_config_default(GOPT_SCHED_COSINE_WARM_RESTARTS);
    c.T_0 = 3;
    c.T_mult = 2;
    check_resume(&c, 4, 30);
    c = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
    c.total_steps = 40;
    c.three_phase = 1;
    check_resume(&c, 11, 29);
    c = gopt_sched_config_default(GOPT_SCHED_PLATEAU);
    c.patience = 1;
    c.cooldown = 2;
    check_resume(&c, 9, 25);
    gopt_sched_config kids[3] = {gopt_sched_config_default(GOPT_SCHED_LINEAR), gopt_sched_config_default(GOPT_SCHED_STEP),
                                 gopt_sched_config_default(GOPT_SCHED_COSINE)};
    kids[1].step_size = 2;
    c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = kids;
    c.n_children = 3;
    c.n_milestones = 2;
    c.milestones[0] = 4;
    c.milestones[1] = 9;
    check_resume(&c, 3, 20);  /* saved inside the first part */
    check_resume(&c, 9, 20);  /* saved right at a milestone */
    gopt_sched_config wp[2] = {gopt_sched_config_default(GOPT_SCHED_LINEAR), gopt_sched_config_default(GOPT_SCHED_PLATEAU)};
    wp[1].patience = 1;
    c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = wp;
    c.n_children = 2;
    c.n_milestones = 1;
    c.milestones[0] = 3;
    check_resume(&c, 6, 20);  /* warmup -> plateau */
    gopt_sched_config ch[2] = {gopt_sched_config_default(GOPT_SCHED_CONSTANT), gopt_sched_config_default(GOPT_SCHED_EXPONENTIAL)};
    ch[1].gamma = 0.9;
    c = gopt_sched_config_default(GOPT_SCHED_CHAINED);
    c.children = ch;
    c.n_children = 2;
    check_resume(&c, 2, 10);

    /* a state of another kind or group count is refused, naming it */
    gopt_sched_config cs = gopt_sched_config_default(GOPT_SCHED_COSINE), st = gopt_sched_config_default(GOPT_SCHED_STEP);
    gopt_sched *a = detached(&cs, 0.1), *b = detached(&st, 0.1);
    size_t n = gopt_sched_state_size(a);
    unsigned char *buf = malloc(n);
    assert_ok(gopt_sched_state_save(a, buf, n));
    assert_status(gopt_sched_state_load(b, buf, n), GOPT_EFORMAT, "kind");
    double two[2] = {0.1, 0.1};
    gopt_sched *g2 = NULL;
    assert_ok(gopt_sched_create_detached(&cs, 2, two, &g2));
    assert_status(gopt_sched_state_load(g2, buf, n), GOPT_EFORMAT, "groups");
    free(buf);
    gopt_sched_destroy(a);
    gopt_sched_destroy(b);
    gopt_sched_destroy(g2);
}

/* ---- bound to a real optimizer ----------------------------------------------------------- */

static gopt_params *make_params(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[2] = {3, 4}, b[1] = {3};
    assert_ok(gopt_params_add(p, "w", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "b", 1, b, GOPT_TAG_BIAS, NULL));
    gopt_group_config gc = gopt_group_config_default();
    gc.lr = 0.02f;
    assert_ok(gopt_params_group_by_tag(p, GOPT_TAG_BIAS, &gc, NULL));
    assert_ok(gopt_params_finalize(p));
    return p;
}

static void test_bound_to_optimizer(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_STEP);
    c.step_size = 2;
    c.gamma = 0.5;
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create(&c, opt, &s));
    assert_int_equal(gopt_sched_group_count(s), 2);
    for (int t = 0; t < 4; t++) {
        assert_ok(gopt_optim_step(opt));
        assert_ok(gopt_sched_step(s));
    }
    /* two decays: group 0 0.1 -> 0.025, group 1 0.02 -> 0.005 */
    assert_true(gopt_optim_get_lr(opt, 0) == (float)0.025);
    assert_true(gopt_optim_get_lr(opt, 1) == (float)0.005);
    /* an LR changed outside (e.g. a monitor back-off) is adopted, as PyTorch's chainable form */
    assert_ok(gopt_optim_set_lr(opt, 0, 0.01f));
    assert_ok(gopt_sched_step(s));
    assert_true(gopt_optim_get_lr(opt, 0) == 0.01f);
    assert_ok(gopt_sched_step(s));
    assert_true(gopt_optim_get_lr(opt, 0) == 0.005f);
    gopt_sched_destroy(s);

    /* OneCycle sets LR and momentum at construction */
    c = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
    c.max_lr = 1.0;
    c.total_steps = 10;
    assert_ok(gopt_sched_create(&c, opt, &s));
    assert_true(gopt_optim_get_lr(opt, 0) == (float)(1.0 / 25));
    assert_true(fabsf(gopt_optim_get_momentum(opt, 0) - 0.95f) < 1e-7f);
    assert_ok(gopt_optim_step(opt));
    assert_ok(gopt_sched_step(s));
    assert_true(gopt_optim_get_momentum(opt, 0) < 0.95f);
    assert_true(fabs(gopt_optim_get_momentum(opt, 1) - gopt_sched_get_momentum(s, 1)) < 1e-7);
    gopt_sched_destroy(s);
    assert_status(gopt_sched_create(&c, NULL, &s), GOPT_EINVAL, "opt");
    gopt_optim_destroy(opt);

    /* cycle_momentum needs an algorithm with a momentum */
    oc = gopt_optim_config_default(GOPT_ALGO_ADAGRAD);
    assert_ok(gopt_optim_create(&oc, p, &opt));
    assert_status(gopt_sched_create(&c, opt, &s), GOPT_EINVAL, "cycle_momentum");
    c.cycle_momentum = 0;
    assert_ok(gopt_sched_create(&c, opt, &s));
    gopt_sched_destroy(s);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

/* A state the optimizer cannot take is refused and changes nothing: an LR that is not a
 * finite float (checked before anything is written), or a momentum the optimizer refuses
 * after some group already took its values (rolled back). Found by tests/fuzz. */
static void test_load_refused_changes_nothing(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
    c.max_lr = 1.0;
    c.total_steps = 10;
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 0; t < 3; t++) assert_ok(gopt_sched_step(s));
    size_t ns = gopt_sched_state_size(s), no = gopt_optim_state_size(opt);
    unsigned char *good = malloc(ns), *bad = malloc(ns), *now = malloc(ns), *ogood = malloc(no), *onow = malloc(no);
    assert_non_null(good && bad && now && ogood && onow);
    assert_ok(gopt_sched_state_save(s, good, ns));
    assert_ok(gopt_optim_state_save(opt, ogood, no));
    /* layout: 4 header words, then initial[2], lr[2], momentum[2] as doubles */
    const double inf = INFINITY, big = 1e300, mom = 1.5;
    const size_t lr1 = 16 + 3 * sizeof(double), mom1 = 16 + 5 * sizeof(double);
    const struct {
        size_t at;
        const double *v;
        const char *detail;
    } cases[] = {{lr1, &inf, "LR inf"}, {lr1, &big, "LR 1e+300"}, {mom1, &mom, "momentum = 1.5"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(bad, good, ns);
        memcpy(bad + cases[k].at, cases[k].v, sizeof(double));
        assert_status(gopt_sched_state_load(s, bad, ns), GOPT_EFORMAT, cases[k].detail);
        assert_ok(gopt_sched_state_save(s, now, ns));
        assert_memory_equal(now, good, ns);
        assert_ok(gopt_optim_state_save(opt, onow, no));
        assert_memory_equal(onow, ogood, no);
    }
    assert_ok(gopt_sched_state_load(s, good, ns));
    free(good);
    free(bad);
    free(now);
    free(ogood);
    free(onow);
    gopt_sched_destroy(s);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

/* The last step of a schedule sized as PyTorch users size it never fails (sched.h, "End of
 * a schedule"). Reference values from PyTorch 1.13; the trajectory cases replay the same
 * runs with optimizer steps in between (tests/trajectory). */
static void test_end_of_schedule(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));

    /* issue 20: OneCycle linear, max_lr 0.01, total_steps 20, pct_start 0.25; PyTorch's LR
     * after step 20 is -0.000666624 (refused by the optimizer) and its momentum 0.956667 */
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
    c.max_lr = 0.01;
    c.total_steps = 20;
    c.pct_start = 0.25;
    c.anneal_strategy = GOPT_ANNEAL_LINEAR;
    gopt_sched *s = NULL;
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 20; t++) {
        assert_ok(gopt_optim_step(opt));
        assert_ok(gopt_sched_step(s));
        if (t == 19) assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.01 / 25 / 1e4) < 1e-15);
    }
    assert_true(gopt_sched_get_lr(s, 0) == 0.01 / 25 / 1e4);     /* the final value, min_lr */
    assert_true(gopt_optim_get_lr(opt, 0) == (float)(0.01 / 25 / 1e4));
    assert_true(gopt_sched_get_lr(s, 1) == 0.01 / 25 / 1e4);
    assert_true(fabs(gopt_sched_get_momentum(s, 0) - (0.85 + 0.1 * 16 / 15)) < 1e-12); /* PyTorch's */
    assert_status(gopt_sched_step(s), GOPT_ESTATE, "past total_steps = 20");
    gopt_sched_destroy(s);

    /* momentum extrapolated to >= 1 becomes max_momentum; cos annealing keeps PyTorch's
     * extrapolation (between min_lr and max_lr) */
    c.total_steps = 4;
    c.pct_start = 0.5;
    c.base_momentum = 0.5;
    c.max_momentum = 0.99; /* last phase epochs 1..3: 0.99 + 0.49/2 = 1.235 at step 4 */
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 4; t++) assert_ok(gopt_sched_step(s));
    assert_true(gopt_sched_get_momentum(s, 0) == 0.99);
    assert_true(gopt_optim_get_momentum(opt, 0) == 0.99f);
    gopt_sched_destroy(s);
    c.anneal_strategy = GOPT_ANNEAL_COS;
    c.three_phase = 1;
    c.total_steps = 10; /* phases end at 4, 8, 9: step 10 is pct 2 of the last phase */
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 10; t++) assert_ok(gopt_sched_step(s));
    double min_lr = 0.01 / 25 / 1e4, initial = 0.01 / 25;
    double want = min_lr + (initial - min_lr) / 2 * (cos(3.14159265358979323846 * 2.0) + 1); /* PyTorch: initial */
    assert_true(fabs(gopt_sched_get_lr(s, 0) - want) < 1e-15);
    gopt_sched_destroy(s);
    /* three-phase linear: the last phase (initial -> min) extrapolates below 0 */
    c.anneal_strategy = GOPT_ANNEAL_LINEAR;
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 10; t++) assert_ok(gopt_sched_step(s));
    assert_true(gopt_sched_get_lr(s, 0) == min_lr);
    assert_true(gopt_sched_get_momentum(s, 0) == 0.99);
    gopt_sched_destroy(s);

    /* LinearLR to 0: PyTorch ends at -4.87e-18 for start_factor 0.37, total_iters 199 */
    c = gopt_sched_config_default(GOPT_SCHED_LINEAR);
    c.start_factor = 0.37;
    c.end_factor = 0.0;
    c.total_iters = 199;
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 199; t++) assert_ok(gopt_sched_step(s));
    assert_true(gopt_sched_get_lr(s, 0) == 0.0);
    assert_true(gopt_optim_get_lr(opt, 0) == 0.0f);
    assert_ok(gopt_sched_step(s)); /* past the end it stays */
    assert_true(gopt_sched_get_lr(s, 0) == 0.0);
    gopt_sched_destroy(s);

    /* PolynomialLR ends at exactly 0 */
    c = gopt_sched_config_default(GOPT_SCHED_POLYNOMIAL);
    c.total_iters = 7;
    c.power = 0.5;
    assert_ok(gopt_sched_create(&c, opt, &s));
    for (int t = 1; t <= 9; t++) assert_ok(gopt_sched_step(s));
    assert_true(gopt_sched_get_lr(s, 0) == 0.0);
    gopt_sched_destroy(s);

    /* mid-run: a cosine chained after a step decay that took the LR below eta_min overshoots
     * below 0 past T_max (PyTorch -4.64e-6 after step 15, then more negative): eta_min */
    gopt_sched_config pair[2] = {gopt_sched_config_default(GOPT_SCHED_STEP), gopt_sched_config_default(GOPT_SCHED_COSINE)};
    pair[0].step_size = 1;
    pair[0].gamma = 0.6461;
    pair[1].T_max = 13;
    pair[1].eta_min = 1e-4;
    c = gopt_sched_config_default(GOPT_SCHED_CHAINED);
    c.children = pair;
    c.n_children = 2;
    double lr_start = 0.003478;
    assert_ok(gopt_sched_create_detached(&c, 1, &lr_start, &s));
    for (int t = 1; t <= 30; t++) {
        assert_ok(gopt_sched_step(s));
        assert_true(gopt_sched_get_lr(s, 0) >= 0);
        if (t == 14) assert_true(fabs(gopt_sched_get_lr(s, 0) - 0.00011368927036739816) < 1e-15); /* PyTorch's */
        if (t == 15) assert_true(gopt_sched_get_lr(s, 0) == 1e-4);
    }
    gopt_sched_destroy(s);

    /* the same rule detached: a OneCycle child of a sequential, ending with the run */
    gopt_sched_config kids[2] = {gopt_sched_config_default(GOPT_SCHED_CONSTANT),
                                 gopt_sched_config_default(GOPT_SCHED_ONECYCLE)};
    kids[0].total_iters = 2;
    kids[1].max_lr = 0.01;
    kids[1].total_steps = 8;
    kids[1].anneal_strategy = GOPT_ANNEAL_LINEAR;
    kids[1].cycle_momentum = 0;
    c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = kids;
    c.n_children = 2;
    c.n_milestones = 1;
    c.milestones[0] = 3; /* the child starts at epoch 3 with step(0): 8 more steps reach 8 */
    double lr0 = 0.1;
    assert_ok(gopt_sched_create_detached(&c, 1, &lr0, &s));
    for (int t = 1; t <= 11; t++) assert_ok(gopt_sched_step(s));
    assert_true(gopt_sched_get_lr(s, 0) == 0.01 / 25 / 1e4);
    assert_status(gopt_sched_step(s), GOPT_ESTATE, "total_steps");
    gopt_sched_destroy(s);

    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_out_of_memory(void **state) {
    (void)state;
    gopt_sched_config kids[2] = {gopt_sched_config_default(GOPT_SCHED_ONECYCLE), gopt_sched_config_default(GOPT_SCHED_PLATEAU)};
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    c.children = kids;
    c.n_children = 2;
    c.n_milestones = 1;
    c.milestones[0] = 50;
    double lr = 0.1;
    int failures = 0;
    for (long budget = 0; budget < 40; budget++) {
        gopt_sched *s = NULL;
        testutil_fail_after(budget);
        gopt_status st = gopt_sched_create_detached(&c, 1, &lr, &s);
        testutil_alloc_reset();
        if (st == GOPT_OK) {
            gopt_sched_destroy(s);
            break;
        }
        assert_int_equal(st, GOPT_ENOMEM);
        assert_null(s);
        failures++;
    }
    assert_true(failures > 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_step_vs_metric_and_onecycle_end),
        cmocka_unit_test(test_lambda_per_group),
        cmocka_unit_test(test_warmup_then_plateau),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_bound_to_optimizer),
        cmocka_unit_test(test_load_refused_changes_nothing),
        cmocka_unit_test(test_end_of_schedule),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
