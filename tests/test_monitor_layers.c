#define _POSIX_C_SOURCE 200809L
/* Tests of the monitor's per-layer view (gradopt/monitor.h): grouping of a net's tensors
 * into layers, layer norms against the global norm, the vanishing-layer flag, the layer
 * history ring, its state (MON3; MON1 still loading), unchanged exports and no allocation
 * after create. */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

static gopt_net *make_net(void) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_shape[1] = c.in_shape[2] = 8;
    c.seed = 3;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config conv = gopt_layer_conv2d(3, 8, 3, 1, 1, 1), bn = gopt_layer_batchnorm2d(8, 1),
                      block = gopt_layer_basic_block(8, 16, 2), pool = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL),
                      fc1 = gopt_layer_linear(16, 12, 1), relu = gopt_layer_config_default(GOPT_LAYER_RELU),
                      fc2 = gopt_layer_linear(12, 10, 0);
    assert_ok(gopt_net_add(net, &conv, "conv"));
    assert_ok(gopt_net_add(net, &bn, "bn"));
    assert_ok(gopt_net_add(net, &block, "block"));
    assert_ok(gopt_net_add(net, &pool, NULL));
    assert_ok(gopt_net_add(net, &fc1, "fc1"));
    assert_ok(gopt_net_add(net, &relu, NULL));
    assert_ok(gopt_net_add(net, &fc2, "fc2"));
    assert_ok(gopt_net_build(net));
    return net;
}

/* deterministic gradients of magnitude ~scale everywhere */
static void fill_grads(gopt_params *p, float scale) {
    float *g = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) g[i] = scale * (0.5f + (float)((i * 7919) % 13) / 13.0f);
}

/* multiply the gradients of every tensor whose name starts with prefix */
static void scale_layer(gopt_params *p, const char *prefix, float factor) {
    for (int i = 0; i < gopt_params_count(p); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        if (strncmp(info.name, prefix, strlen(prefix)) != 0) continue;
        for (int64_t k = 0; k < info.grad.numel; k++) info.grad.data[k] *= factor;
    }
}

static int find_layer(const gopt_monitor *m, const char *name) {
    for (int k = 0; k < gopt_monitor_layer_count(m); k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        if (strcmp(ly.name, name) == 0) return k;
    }
    fail_msg("no layer '%s'", name);
    return -1;
}

static void test_grouping_on_a_net(void **state) {
    (void)state;
    gopt_net *net = make_net();
    gopt_params *p = gopt_net_params(net);
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &m));
    /* conv (weight, bias), bn (weight, bias), the block's conv1, bn1, conv2, bn2 and its
     * projection shortcut's conv and bn, fc1 (weight, bias), fc2 (weight) */
    const char *want[] = {"conv", "bn", "block.conv1", "block.bn1", "block.conv2", "block.bn2", NULL, NULL, "fc1", "fc2"};
    assert_int_equal(gopt_monitor_layer_count(m), 10);
    int total = 0;
    for (int k = 0; k < 10; k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        if (want[k]) assert_string_equal(ly.name, want[k]);
        else assert_true(strncmp(ly.name, "block.shortcut", 14) == 0);
        assert_int_equal(ly.first_tensor, total);
        for (int i = ly.first_tensor; i < ly.first_tensor + ly.ntensors; i++) {
            gopt_param_info info;
            assert_ok(gopt_params_info(p, i, &info));
            assert_true(strncmp(info.name, ly.name, strlen(ly.name)) == 0 && info.name[strlen(ly.name)] == '.');
        }
        total += ly.ntensors;
        assert_true(isnan(ly.grad_norm) && isnan(ly.param_norm)); /* nothing measured yet */
        assert_int_equal(ly.vanishing, 0);
    }
    assert_int_equal(total, gopt_params_count(p));
    gopt_monitor_layer ly;
    assert_ok(gopt_monitor_layer_stats(m, 9, &ly));
    assert_int_equal(ly.ntensors, 1); /* fc2 has no bias */
    assert_status(gopt_monitor_layer_stats(m, 10, &ly), GOPT_ERANGE, "10");
    assert_status(gopt_monitor_layer_stats(m, -1, &ly), GOPT_ERANGE, "-1");
    assert_status(gopt_monitor_layer_stats(m, 0, NULL), GOPT_EINVAL, "out");
    assert_status(gopt_monitor_layer_stats(NULL, 0, &ly), GOPT_EINVAL, NULL);
    assert_int_equal(gopt_monitor_layer_count(NULL), 0);
    gopt_monitor_destroy(m);
    gopt_net_destroy(net);
}

/* Grouping on hand-made names: runs of equal prefixes only; a name without '.' alone. */
static void test_grouping_rules(void **state) {
    (void)state;
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    const char *names[] = {"a.w", "a.b", "x", "y", "c.w", "a.v", "m.sub.w", "m.sub.b", "m.w", "ab.w"};
    int64_t s[1] = {3};
    for (int i = 0; i < 10; i++) assert_ok(gopt_params_add(p, names[i], 1, s, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_finalize(p));
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &m));
    const char *want[] = {"a", "x", "y", "c", "a", "m.sub", "m", "ab"};
    const int count[] = {2, 1, 1, 1, 1, 2, 1, 1};
    assert_int_equal(gopt_monitor_layer_count(m), 8);
    for (int k = 0; k < 8; k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        assert_string_equal(ly.name, want[k]);
        assert_int_equal(ly.ntensors, count[k]);
    }
    gopt_monitor_destroy(m);
    gopt_params_destroy(p);
}

static void test_layer_norms_and_vanishing(void **state) {
    (void)state;
    gopt_net *net = make_net();
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.01f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m));
    const int nl = gopt_monitor_layer_count(m);

    fill_grads(p, 1.0f);
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    double sum_sq = 0;
    for (int k = 0; k < nl; k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        double tensors_sq = 0;
        for (int i = ly.first_tensor; i < ly.first_tensor + ly.ntensors; i++) {
            gopt_monitor_tensor t;
            assert_ok(gopt_monitor_tensor_stats(m, i, &t));
            tensors_sq += t.grad_norm * t.grad_norm;
        }
        assert_true(fabs(ly.grad_norm * ly.grad_norm - tensors_sq) <= 1e-12 * tensors_sq);
        assert_int_equal(ly.vanishing, 0);
        sum_sq += ly.grad_norm * ly.grad_norm;
    }
    assert_true(fabs(sum_sq - r.grad_norm * r.grad_norm) <= 1e-12 * sum_sq);
    assert_int_equal(r.vanishing_layers, 0);
    assert_ok(gopt_optim_step(opt));
    assert_ok(gopt_monitor_after_step(m));
    for (int k = 0; k < nl; k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        double pss = 0, uss = 0;
        for (int i = ly.first_tensor; i < ly.first_tensor + ly.ntensors; i++) {
            gopt_monitor_tensor t;
            assert_ok(gopt_monitor_tensor_stats(m, i, &t));
            pss += t.param_norm * t.param_norm;
            uss += t.update_norm * t.update_norm;
        }
        assert_true(fabs(ly.param_norm - sqrt(pss)) <= 1e-12 * sqrt(pss));
        assert_true(fabs(ly.update_norm - sqrt(uss)) <= 1e-12 * sqrt(uss));
        assert_true(fabs(ly.update_ratio - ly.update_norm / ly.param_norm) <= 1e-12 * ly.update_ratio);
        assert_true(ly.update_norm > 0);
    }
    gopt_optim_zero_grad(opt);

    /* one layer's gradients 1e-6 of the rest: it alone is flagged (ratio 1e-4) */
    fill_grads(p, 1.0f);
    scale_layer(p, "block.conv2.", 1e-6f);
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_int_equal(r.vanishing_layers, 1);
    assert_false(r.vanishing); /* the global flag is about the global norm */
    const int c2 = find_layer(m, "block.conv2");
    for (int k = 0; k < nl; k++) {
        gopt_monitor_layer ly;
        assert_ok(gopt_monitor_layer_stats(m, k, &ly));
        assert_int_equal(ly.vanishing, k == c2);
        assert_true(isnan(ly.param_norm)); /* reset until after_step */
    }
    assert_int_equal(gopt_monitor_last_report(m)->vanishing_layers, 1);
    assert_ok(gopt_optim_step(opt));
    assert_ok(gopt_monitor_after_step(m));
    gopt_optim_zero_grad(opt);
    /* 1e-3 of the rest is above the ratio: no flag */
    fill_grads(p, 1.0f);
    scale_layer(p, "block.conv2.", 1e-3f);
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_int_equal(r.vanishing_layers, 0);
    /* a NaN gradient: no layer is judged */
    fill_grads(p, 1.0f);
    scale_layer(p, "fc1.", 1e-6f);
    gopt_params_grads(p)[0] = NAN;
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_true(r.nonfinite_grad);
    assert_int_equal(r.vanishing_layers, 0);
    gopt_monitor_destroy(m);

    /* ratio 0 turns the flag off */
    mc.layer_vanishing_ratio = 0;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m));
    fill_grads(p, 1.0f);
    scale_layer(p, "fc1.", 0.0f);
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_int_equal(r.vanishing_layers, 0);
    gopt_monitor_destroy(m);
    /* a larger ratio flags the layers below it: fc1 at 1e-2 with ratio 0.05 */
    mc.layer_vanishing_ratio = 0.05;
    assert_ok(gopt_monitor_create(&mc, p, opt, &m));
    fill_grads(p, 1.0f);
    scale_layer(p, "fc1.", 1e-2f);
    scale_layer(p, "conv.", 1e-2f);
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_int_equal(r.vanishing_layers, 2);
    gopt_monitor_layer ly;
    assert_ok(gopt_monitor_layer_stats(m, find_layer(m, "fc1"), &ly));
    assert_int_equal(ly.vanishing, 1);
    assert_ok(gopt_monitor_layer_stats(m, find_layer(m, "conv"), &ly));
    assert_int_equal(ly.vanishing, 1);
    gopt_monitor_destroy(m);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
}

/* a small arena of three one-tensor layers */
static gopt_params *three_layers(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t s[2] = {2, 2};
    assert_ok(gopt_params_add(p, "l0.weight", 2, s, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "l1.weight", 2, s, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "l2.weight", 2, s, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_finalize(p));
    return p;
}

/* step k: layer j's gradient is (k+1) * (j+1) in each of its 4 elements: norm 2 (k+1)(j+1) */
static void grads_for_step(gopt_params *p, int k) {
    float *g = gopt_params_grads(p);
    for (int j = 0; j < 3; j++)
        for (int e = 0; e < 4; e++) g[j * 4 + e] = (float)((k + 1) * (j + 1));
}

static void run_steps(gopt_monitor *m, gopt_params *p, int from, int to) {
    for (int k = from; k < to; k++) {
        grads_for_step(p, k);
        gopt_monitor_report r;
        assert_ok(gopt_monitor_before_step(m, 1.0 + 0.01 * k, &r));
    }
}

static void test_layer_history(void **state) {
    (void)state;
    gopt_params *p = three_layers();
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &m)); /* layer_history 0 by default */
    double h[8];
    int n = -1;
    assert_status(gopt_monitor_layer_history(m, 0, h, 8, &n), GOPT_ESTATE, "layer_history");
    gopt_monitor_destroy(m);

    mc.layer_history = 4;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &m));
    assert_ok(gopt_monitor_layer_history(m, 1, h, 8, &n));
    assert_int_equal(n, 0);
    run_steps(m, p, 0, 3); /* not yet wrapped */
    assert_ok(gopt_monitor_layer_history(m, 1, h, 8, &n));
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) assert_true(h[i] == 2.0 * (i + 1) * 2);
    run_steps(m, p, 3, 7); /* 7 steps into a ring of 4: steps 3..6 remain, oldest first */
    for (int j = 0; j < 3; j++) {
        assert_ok(gopt_monitor_layer_history(m, j, h, 8, &n));
        assert_int_equal(n, 4);
        for (int i = 0; i < 4; i++)
            if (h[i] != 2.0 * (3 + i + 1) * (j + 1)) fail_msg("layer %d entry %d = %g", j, i, h[i]);
    }
    /* max below the count: the newest ones */
    assert_ok(gopt_monitor_layer_history(m, 2, h, 2, &n));
    assert_int_equal(n, 2);
    assert_true(h[0] == 2.0 * 6 * 3 && h[1] == 2.0 * 7 * 3);
    assert_ok(gopt_monitor_layer_history(m, 2, NULL, 0, &n));
    assert_int_equal(n, 0);
    assert_status(gopt_monitor_layer_history(m, 3, h, 8, &n), GOPT_ERANGE, "3");
    assert_status(gopt_monitor_layer_history(m, 0, h, -1, &n), GOPT_EINVAL, "max");
    assert_status(gopt_monitor_layer_history(m, 0, NULL, 2, &n), GOPT_EINVAL, "out");
    assert_status(gopt_monitor_layer_history(m, 0, h, 2, NULL), GOPT_EINVAL, "n");
    /* a non-finite step is recorded too (one entry per before_step call) */
    grads_for_step(p, 0);
    gopt_params_grads(p)[4] = INFINITY;
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    assert_ok(gopt_monitor_layer_history(m, 1, h, 8, &n));
    assert_int_equal(n, 4);
    assert_true(isinf(h[3]));
    assert_true(h[0] == 2.0 * 5 * 2);
    gopt_monitor_destroy(m);
    gopt_params_destroy(p);
}

static void test_layer_history_state(void **state) {
    (void)state;
    gopt_params *p = three_layers();
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.layer_history = 4;
    gopt_monitor *a = NULL, *b = NULL;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &a));
    assert_ok(gopt_monitor_create(&mc, p, NULL, &b));
    run_steps(a, p, 0, 6);
    size_t size = gopt_monitor_state_size(a);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    assert_ok(gopt_monitor_state_save(a, buf, size));
    assert_int_equal(buf[3], '3'); /* MON3: MON2 and the count of non-finite inputs */
    assert_ok(gopt_monitor_state_load(b, buf, size));
    double ha[8], hb[8];
    int na, nb;
    for (int j = 0; j < 3; j++) {
        assert_ok(gopt_monitor_layer_history(a, j, ha, 8, &na));
        assert_ok(gopt_monitor_layer_history(b, j, hb, 8, &nb));
        assert_int_equal(na, 4);
        assert_int_equal(nb, 4);
        assert_memory_equal(ha, hb, sizeof(double) * 4);
    }
    /* both continue alike: the ring position was restored too */
    run_steps(a, p, 6, 9);
    run_steps(b, p, 6, 9);
    for (int j = 0; j < 3; j++) {
        assert_ok(gopt_monitor_layer_history(a, j, ha, 8, &na));
        assert_ok(gopt_monitor_layer_history(b, j, hb, 8, &nb));
        assert_int_equal(nb, na);
        assert_memory_equal(ha, hb, sizeof(double) * 4);
        assert_true(ha[3] == 2.0 * 9 * (j + 1));
    }
    gopt_monitor_counts ca, cb;
    assert_ok(gopt_monitor_counts_get(a, &ca));
    assert_ok(gopt_monitor_counts_get(b, &cb));
    assert_int_equal(cb.steps, 9);
    assert_memory_equal(&ca, &cb, sizeof ca);

    /* another layer_history: refused, naming it; a corrupt ring position too */
    gopt_monitor_config mc2 = mc;
    mc2.layer_history = 5;
    gopt_monitor *c = NULL;
    assert_ok(gopt_monitor_create(&mc2, p, NULL, &c));
    assert_status(gopt_monitor_state_load(c, buf, size), GOPT_EFORMAT, NULL);
    unsigned char *big = calloc(1, gopt_monitor_state_size(c));
    assert_ok(gopt_monitor_state_save(a, big, size)); /* a's blob in a buffer of c's size */
    assert_status(gopt_monitor_state_load(c, big, gopt_monitor_state_size(c)), GOPT_EFORMAT, "layer_history 4");
    free(big);
    gopt_monitor_destroy(c);
    const size_t hist_bytes = 4 * 3 * sizeof(double),
                 v1_size = size - sizeof(int64_t) - 4 * sizeof(uint32_t) - hist_bytes;
    unsigned char *bad = malloc(size);
    memcpy(bad, buf, size);
    uint32_t head = 9;
    memcpy(bad + v1_size + 3 * sizeof(uint32_t), &head, sizeof head);
    assert_status(gopt_monitor_state_load(b, bad, size), GOPT_EFORMAT, "head 9");
    assert_ok(gopt_monitor_layer_history(b, 0, hb, 8, &nb)); /* untouched by the failed load */
    assert_int_equal(nb, 4);
    assert_true(hb[3] == 2.0 * 9);

    /* a MON1 blob (saved before the layer history existed) loads, with an empty history */
    unsigned char *v1 = malloc(v1_size);
    memcpy(v1, buf, v1_size);
    v1[3] = '1';
    assert_ok(gopt_monitor_state_load(b, v1, v1_size));
    assert_ok(gopt_monitor_layer_history(b, 0, hb, 8, &nb));
    assert_int_equal(nb, 0);
    assert_ok(gopt_monitor_counts_get(b, &cb));
    assert_int_equal(cb.steps, 6);
    double g[8];
    assert_ok(gopt_monitor_grad_norm_history(b, g, 8, &nb));
    assert_int_equal(nb, 6);
    run_steps(b, p, 6, 7);
    assert_ok(gopt_monitor_layer_history(b, 2, hb, 8, &nb));
    assert_int_equal(nb, 1);
    assert_true(hb[0] == 2.0 * 7 * 3);
    /* MON1 with another size, or MON3 with MON1's: refused */
    assert_status(gopt_monitor_state_load(b, v1, v1_size - 8), GOPT_EFORMAT, "MON1");
    assert_status(gopt_monitor_state_load(b, buf, v1_size), GOPT_EFORMAT, "MON3");
    assert_status(gopt_monitor_state_load(b, buf, 3), GOPT_EFORMAT, "header");
    free(v1);
    free(bad);
    free(buf);
    gopt_monitor_destroy(a);
    gopt_monitor_destroy(b);
    gopt_params_destroy(p);
}

/* The exports do not change with the per-layer view, and nothing is allocated after create
 * (a step, a layer query, a save and a load with an allocator that always fails). */
static void test_exports_unchanged_and_no_alloc(void **state) {
    (void)state;
    gopt_net *net = make_net();
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_monitor_config plain = gopt_monitor_config_default(), layered = plain;
    plain.layer_vanishing_ratio = 0;
    layered.layer_history = 16;
    gopt_monitor *m0 = NULL, *m1 = NULL;
    assert_ok(gopt_monitor_create(&plain, p, opt, &m0));
    assert_ok(gopt_monitor_create(&layered, p, opt, &m1));
    size_t size = gopt_monitor_state_size(m1);
    unsigned char *buf = malloc(size);
    char *out[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int which = 0; which < 2; which++) {
        gopt_monitor *m = which ? m1 : m0;
        FILE *f = open_memstream(&out[which], &len[which]);
        assert_non_null(f);
        fill_grads(p, 1.0f);
        scale_layer(p, "fc1.", 1e-6f); /* flagged in m1 only */
        if (which) testutil_fail_after(0);
        for (int k = 0; k < 3; k++) {
            gopt_monitor_report r;
            assert_ok(gopt_monitor_before_step(m, 2.0 - 0.1 * k, &r));
            assert_int_equal(r.vanishing_layers, which);
            assert_ok(gopt_monitor_after_step(m)); /* no optimizer step: updates are 0 */
            gopt_monitor_layer ly;
            assert_ok(gopt_monitor_layer_stats(m, 0, &ly));
            assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_CSV, k == 0));
            assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_JSONL, 0));
        }
        if (which) {
            double h[16];
            int n;
            assert_ok(gopt_monitor_layer_history(m, 3, h, 16, &n));
            assert_int_equal(n, 3);
            assert_ok(gopt_monitor_state_save(m, buf, size));
            assert_ok(gopt_monitor_state_load(m, buf, size));
            testutil_alloc_reset();
        }
        fclose(f);
    }
    assert_int_equal(len[0], len[1]);
    assert_string_equal(out[0], out[1]);
    /* the header is exactly the documented columns: 11 + 3 per tensor + nonfinite_input */
    int commas = 0;
    for (const char *c = out[0]; *c && *c != '\n'; c++) commas += *c == ',';
    assert_int_equal(commas, 11 + 3 * gopt_params_count(p));
    free(out[0]);
    free(out[1]);
    free(buf);
    gopt_monitor_destroy(m0);
    gopt_monitor_destroy(m1);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
}

static void test_config(void **state) {
    (void)state;
    gopt_monitor_config d = gopt_monitor_config_default();
    assert_true(d.layer_vanishing_ratio == 1e-4);
    assert_int_equal(d.layer_history, 0);
    gopt_params *p = three_layers();
    gopt_monitor *m = NULL;
    gopt_monitor_config c = d;
    c.layer_vanishing_ratio = -1e-3;
    assert_status(gopt_monitor_create(&c, p, NULL, &m), GOPT_EINVAL, "layer_vanishing_ratio");
    c.layer_vanishing_ratio = NAN;
    assert_status(gopt_monitor_create(&c, p, NULL, &m), GOPT_EINVAL, "layer_vanishing_ratio");
    c = d;
    c.layer_history = -1;
    assert_status(gopt_monitor_create(&c, p, NULL, &m), GOPT_EINVAL, "layer_history");
    assert_null(m);
    /* out of memory for the layer buffers: each allocation of create in turn */
    c = d;
    c.layer_history = 8;
    for (long k = 0; k < 12; k++) {
        testutil_fail_after(k);
        gopt_status s = gopt_monitor_create(&c, p, NULL, &m);
        testutil_alloc_reset();
        if (s == GOPT_OK) {
            assert_true(k >= 6); /* tensors, 3 rings, layers, names, history: at least 7 allocations */
            gopt_monitor_destroy(m);
            m = NULL;
            break;
        }
        assert_int_equal(s, GOPT_ENOMEM);
        assert_null(m);
    }
    gopt_params_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouping_on_a_net),
        cmocka_unit_test(test_grouping_rules),
        cmocka_unit_test(test_layer_norms_and_vanishing),
        cmocka_unit_test(test_layer_history),
        cmocka_unit_test(test_layer_history_state),
        cmocka_unit_test(test_exports_unchanged_and_no_alloc),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
