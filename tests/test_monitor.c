#define _POSIX_C_SOURCE 200809L
/* Tests of gradopt/monitor.h against a real optimizer: NaN/Inf gradients and a loss spike
 * are skipped and counted with parameters and optimizer state untouched; flags, update
 * ratios, export and config validation. */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "testutil.h"

static gopt_params *make_params(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[2] = {4, 3}, b[1] = {4};
    assert_ok(gopt_params_add(p, "w", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "b", 1, b, GOPT_TAG_BIAS, NULL));
    assert_ok(gopt_params_finalize(p));
    float *v = gopt_params_values(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] = 0.1f * (float)(i + 1);
    return p;
}

static void fill_grads(gopt_params *p, float scale) {
    float *g = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) g[i] = scale * (float)((i % 5) - 2) + 0.01f * scale;
}

typedef struct snap {
    float values[16];
    unsigned char *optstate;
    size_t optsize;
} snap;

static void take(snap *s, gopt_params *p, gopt_optim *opt) {
    memcpy(s->values, gopt_params_values(p), sizeof s->values);
    s->optsize = gopt_optim_state_size(opt);
    s->optstate = malloc(s->optsize);
    assert_ok(gopt_optim_state_save(opt, s->optstate, s->optsize));
}

static void assert_untouched(const snap *s, gopt_params *p, gopt_optim *opt) {
    assert_memory_equal(s->values, gopt_params_values(p), sizeof s->values);
    assert_int_equal(gopt_optim_state_size(opt), s->optsize);
    unsigned char *now = malloc(s->optsize);
    assert_ok(gopt_optim_state_save(opt, now, s->optsize));
    assert_memory_equal(now, s->optstate, s->optsize);
    free(now);
}

/* One monitored training step; returns the report. */
static gopt_monitor_report train_step(gopt_monitor *m, gopt_optim *opt, gopt_params *p, float gscale, double loss) {
    fill_grads(p, gscale);
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, loss, &r));
    if (r.apply) {
        assert_ok(gopt_optim_step(opt));
        assert_ok(gopt_monitor_after_step(m));
    }
    gopt_optim_zero_grad(opt);
    return r;
}

static void test_skips_nonfinite_and_spikes(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    oc.lr = 0.01f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.loss_window = 10;
    mc.loss_min_samples = 5;
    mc.spike_zscore = 4.0;
    mc.skip_spikes = 1;
    mc.nonfinite_lr_backoff = 0.5;
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m));

    for (int t = 0; t < 8; t++) {
        gopt_monitor_report r = train_step(m, opt, p, 1.0f, 1.0 - 0.01 * t + 0.003 * (t % 2));
        assert_true(r.apply);
        assert_int_equal(r.step, t);
    }
    assert_int_equal(gopt_optim_step_count(opt), 8);

    /* NaN in one gradient element */
    snap s;
    take(&s, p, opt);
    fill_grads(p, 1.0f);
    gopt_params_grads(p)[5] = NAN;
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, 0.9, &r));
    assert_false(r.apply);
    assert_true(r.nonfinite_grad);
    assert_false(r.nonfinite_loss);
    assert_status(gopt_monitor_after_step(m), GOPT_ESTATE, "apply");
    gopt_optim_zero_grad(opt);
    assert_true(gopt_optim_get_lr(opt, 0) == 0.005f); /* backed off */
    /* (the back-off is in the optimizer's LR, so compare the rest of the state after restoring) */
    assert_memory_equal(s.values, gopt_params_values(p), sizeof s.values);
    assert_ok(gopt_optim_set_lr(opt, 0, 0.01f));
    assert_untouched(&s, p, opt);

    /* +Inf in a gradient, with an otherwise normal loss */
    fill_grads(p, 1.0f);
    gopt_params_grads(p)[13] = INFINITY;
    assert_ok(gopt_monitor_before_step(m, 0.9, &r));
    assert_false(r.apply);
    assert_true(r.nonfinite_grad);
    gopt_optim_zero_grad(opt);
    assert_ok(gopt_optim_set_lr(opt, 0, 0.01f));
    assert_untouched(&s, p, opt);

    /* NaN loss, finite gradients */
    fill_grads(p, 1.0f);
    assert_ok(gopt_monitor_before_step(m, NAN, &r));
    assert_false(r.apply);
    assert_true(r.nonfinite_loss);
    gopt_optim_zero_grad(opt);
    assert_ok(gopt_optim_set_lr(opt, 0, 0.01f));
    assert_untouched(&s, p, opt);

    /* a loss spike */
    fill_grads(p, 1.0f);
    assert_ok(gopt_monitor_before_step(m, 50.0, &r));
    assert_false(r.apply);
    assert_true(r.spike);
    assert_true(r.zscore > 4.0);
    gopt_optim_zero_grad(opt);
    assert_true(gopt_optim_get_lr(opt, 0) == 0.01f); /* spikes do not back the LR off */
    assert_untouched(&s, p, opt);
    free(s.optstate);

    gopt_monitor_counts c;
    assert_ok(gopt_monitor_counts_get(m, &c));
    assert_int_equal(c.steps, 12);
    assert_int_equal(c.applied, 8);
    assert_int_equal(c.skipped_nonfinite, 3);
    assert_int_equal(c.skipped_spike, 1);
    assert_int_equal(c.nonfinite_grad, 2);
    assert_int_equal(c.nonfinite_loss, 1);
    assert_int_equal(c.spikes, 1);
    assert_int_equal(c.lr_backoffs, 3);

    /* training continues */
    float before = gopt_params_values(p)[0];
    r = train_step(m, opt, p, 1.0f, 0.91);
    assert_true(r.apply);
    assert_false(r.spike);
    assert_true(gopt_params_values(p)[0] != before);
    assert_int_equal(gopt_optim_step_count(opt), 9);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) assert_true(isfinite(gopt_params_values(p)[i]));
    gopt_monitor_destroy(m);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_norms_and_update_ratio(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.explosion_window = 3;
    mc.explosion_factor = 5.0;
    mc.vanishing_floor = 1e-3;
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m));
    gopt_monitor_report r = train_step(m, opt, p, 1.0f, 1.0);
    /* hand-computed norms: grads of "w" are elements 0..11, "b" 12..15 */
    fill_grads(p, 1.0f);
    const float *g = gopt_params_grads(p);
    double ss_w = 0, ss_b = 0;
    for (int i = 0; i < 12; i++) ss_w += (double)g[i] * g[i];
    for (int i = 12; i < 16; i++) ss_b += (double)g[i] * g[i];
    assert_true(fabs(r.grad_norm - sqrt(ss_w + ss_b)) < 1e-5);
    gopt_monitor_tensor t;
    assert_ok(gopt_monitor_tensor_stats(m, 0, &t));
    assert_true(fabs(t.grad_norm - sqrt(ss_w)) < 1e-5);
    /* plain SGD: update = lr * g */
    assert_true(fabs(t.update_norm - 0.1 * sqrt(ss_w)) < 1e-5);
    const float *v = gopt_params_values(p);
    double pn = 0;
    for (int i = 0; i < 12; i++) pn += (double)v[i] * v[i];
    assert_true(fabs(t.param_norm - sqrt(pn)) < 1e-5);
    assert_true(fabs(t.update_ratio - t.update_norm / t.param_norm) < 1e-12);
    assert_status(gopt_monitor_tensor_stats(m, 2, &t), GOPT_ERANGE, "index");
    gopt_optim_zero_grad(opt);

    r = train_step(m, opt, p, 1.0f, 1.0);
    assert_false(r.explosion);
    r = train_step(m, opt, p, 100.0f, 1.0); /* 100x the mean of the window */
    assert_true(r.explosion);
    assert_true(r.apply); /* flag only */
    r = train_step(m, opt, p, 1e-6f, 1.0);
    assert_true(r.vanishing);
    double hist[8];
    int n = 0;
    assert_ok(gopt_monitor_grad_norm_history(m, hist, 8, &n));
    assert_int_equal(n, 4);
    assert_true(hist[2] > 50 * hist[1]);
    assert_ok(gopt_monitor_grad_norm_history(m, hist, 2, &n));
    assert_int_equal(n, 2);
    assert_true(hist[1] < 1e-4); /* newest kept */

    /* export: CSV with header, JSONL, and to a path */
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_CSV, 1));
    assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_JSONL, 0));
    rewind(f);
    char line[2048];
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, "step,applied,loss,zscore,grad_norm,lr"));
    assert_non_null(strstr(line, "w.update_ratio"));
    assert_non_null(fgets(line, sizeof line, f));
    assert_true(strncmp(line, "3,1,", 4) == 0);
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, "\"step\":3"));
    assert_non_null(strstr(line, "\"vanishing\":true"));
    fclose(f);
    char path[] = "/tmp/gopt_monitor_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_ok(gopt_monitor_append_row(m, path, GOPT_MONITOR_CSV));
    assert_ok(gopt_monitor_append_row(m, path, GOPT_MONITOR_CSV));
    f = fopen(path, "r");
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    unlink(path);
    assert_int_equal(lines, 3); /* one header */
    assert_status(gopt_monitor_append_row(m, "/nonexistent-dir/x.csv", GOPT_MONITOR_CSV), GOPT_EIO, "/nonexistent-dir/x.csv");

    /* state round trip */
    size_t sz = gopt_monitor_state_size(m);
    unsigned char *buf = malloc(sz);
    assert_ok(gopt_monitor_state_save(m, buf, sz));
    gopt_monitor *m2 = NULL;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m2));
    assert_ok(gopt_monitor_state_load(m2, buf, sz));
    gopt_monitor_counts a, b;
    gopt_monitor_counts_get(m, &a);
    gopt_monitor_counts_get(m2, &b);
    assert_memory_equal(&a, &b, sizeof a);
    assert_status(gopt_monitor_state_load(m2, buf, sz - 1), GOPT_EFORMAT, "bytes");
    buf[0] ^= 1;
    assert_status(gopt_monitor_state_load(m2, buf, sz), GOPT_EFORMAT, "magic");
    free(buf);
    gopt_monitor_destroy(m2);
    gopt_monitor_destroy(m);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
}

static void test_config_errors(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_monitor *m = NULL;
    struct {
        const char *field;
        gopt_monitor_config c;
    } cases[10];
    int n = 0;
#define CASE(f, stmt) do { cases[n].field = f; cases[n].c = gopt_monitor_config_default(); { gopt_monitor_config *c = &cases[n].c; stmt; } n++; } while (0)
    CASE("history", c->history = 0);
    CASE("loss_window", c->loss_window = 1);
    CASE("loss_min_samples", c->loss_min_samples = 1);
    CASE("loss_min_samples", c->loss_min_samples = c->loss_window + 1);
    CASE("spike_zscore", c->spike_zscore = 0);
    CASE("nonfinite_lr_backoff", c->nonfinite_lr_backoff = 1.5);
    CASE("nonfinite_lr_backoff", c->nonfinite_lr_backoff = 0.5); /* without an optimizer */
    CASE("explosion_window", c->explosion_window = 1);
    CASE("explosion_factor", c->explosion_factor = 1.0);
    CASE("vanishing_floor", c->vanishing_floor = -1);
    for (int i = 0; i < n; i++) assert_status(gopt_monitor_create(&cases[i].c, p, NULL, &m), GOPT_EINVAL, cases[i].field);
    gopt_monitor_config ok = gopt_monitor_config_default();
    assert_status(gopt_monitor_create(&ok, NULL, NULL, &m), GOPT_EINVAL, "params");
    gopt_params *raw = NULL;
    assert_ok(gopt_params_create(&raw));
    assert_status(gopt_monitor_create(&ok, raw, NULL, &m), GOPT_ESTATE, "finalized");
    gopt_params_destroy(raw);
    assert_ok(gopt_monitor_create(&ok, p, NULL, &m));
    assert_status(gopt_monitor_write_row(m, stdout, GOPT_MONITOR_CSV, 0), GOPT_ESTATE, "no step");
    assert_status(gopt_monitor_after_step(m), GOPT_ESTATE, "after_step");
    assert_status(gopt_monitor_before_step(m, 1.0, NULL), GOPT_EINVAL, "report");
    gopt_monitor_destroy(m);
    gopt_monitor_destroy(NULL);
    for (long budget = 0; budget < 5; budget++) {
        testutil_fail_after(budget);
        gopt_status st = gopt_monitor_create(&ok, p, NULL, &m);
        testutil_alloc_reset();
        assert_int_equal(st, GOPT_ENOMEM);
    }
    gopt_params_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skips_nonfinite_and_spikes),
        cmocka_unit_test(test_norms_and_update_ratio),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
