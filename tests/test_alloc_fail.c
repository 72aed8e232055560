#define _POSIX_C_SOURCE 200809L
/* Allocation failure at every allocation site (issue 15, fault injection).
 *
 * The library allocates only through the allocator of gopt_set_allocator. This test installs
 * a counting one that tracks live allocations and can fail exactly the k-th call. For every
 * public function that allocates, it runs the call once to count the allocations it makes
 * (N), then N more times failing allocation k = 0..N-1 in turn (every later one succeeds).
 * Each failing call must return GOPT_ENOMEM with a detail, leave its outputs NULL and leave
 * nothing allocated (the live count is back to the baseline once the objects made before
 * the call are destroyed; ASan's leak check sees the same). A call that extends an existing
 * object (gopt_params_add, gopt_net_add, gopt_net_build, gopt_ckpt_writer_add, ...) must
 * leave it usable: the same call succeeds once allocation works again, and the object then
 * trains (bit-identical to one built without a failure) or saves (the checkpoint reads
 * back). One line per function: "<function>: N allocation sites, each failed in turn: ok".
 * This file: tensors, params, every layer type, nets (add, build, ResNet, re-init);
 * test_alloc_fail_io.c: optimizers, schedulers, monitor, data, text, checkpoints, dist, and
 * a training step that allocates nothing after the first. The driver: alloc_fail.h. */
#include "alloc_fail.h"

/* ---- tensors, params ----------------------------------------------------------------------- */

static gopt_status call_tensor_create(fx *f) {
    int64_t sh[3] = {2, 3, 4};
    gopt_tensor *t = SENTINEL;
    gopt_status s = gopt_tensor_create(3, sh, &t);
    f->out = t;
    return s;
}
static void ok_tensor(fx *f) { gopt_tensor_destroy(f->out); }

static void setup_tensor(fx *f) {
    int64_t sh[2] = {6, 4};
    assert_ok(gopt_tensor_create(2, sh, &f->t));
}
static gopt_status call_tensor_init_orth(fx *f) {
    gopt_rng r;
    gopt_rng_seed(&r, 5);
    return gopt_tensor_init(f->t, GOPT_INIT_ORTHOGONAL, &r);
}
static void fail_tensor_init(fx *f) {
    /* the tensor is still usable: the same init succeeds */
    assert_ok(call_tensor_init_orth(f));
}

static gopt_status call_params_create(fx *f) {
    gopt_params *p = SENTINEL;
    gopt_status s = gopt_params_create(&p);
    f->out = p;
    return s;
}
static void ok_params(fx *f) { gopt_params_destroy(f->out); }

/* gopt_params_add: 16 tensors registered already, the 17th grows the table */
static void setup_params_16(fx *f) {
    assert_ok(gopt_params_create(&f->p));
    for (int i = 0; i < f->arg; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        int64_t sh[1] = {3};
        assert_ok(gopt_params_add(f->p, name, 1, sh, GOPT_TAG_WEIGHT, NULL));
    }
}
static gopt_status call_params_add(fx *f) {
    int64_t sh[2] = {2, 5};
    int idx = -1;
    gopt_status s = gopt_params_add(f->p, "new.weight", 2, sh, GOPT_TAG_WEIGHT, &idx);
    if (s == GOPT_OK) assert_int_equal(idx, f->arg);
    return s;
}
static void params_usable(gopt_params *p, int count) {
    assert_int_equal(gopt_params_count(p), count);
    if (!gopt_params_finalized(p)) assert_ok(gopt_params_finalize(p));
    float *v = gopt_params_values(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] = (float)i;
    size_t n = gopt_params_state_size(p);
    void *buf = malloc(n);
    assert_ok(gopt_params_state_save(p, buf, n));
    memset(v, 0, (size_t)gopt_params_numel(p) * sizeof(float));
    assert_ok(gopt_params_state_load(p, buf, n));
    for (int64_t i = 0; i < gopt_params_numel(p); i++) assert_true(v[i] == (float)i);
    free(buf);
}
static void fail_params_add(fx *f) {
    assert_int_equal(gopt_params_count(f->p), f->arg); /* nothing half-registered */
    assert_ok(call_params_add(f));
    params_usable(f->p, f->arg + 1);
}
static void ok_params_add(fx *f) { params_usable(f->p, f->arg + 1); }

static void setup_params_unfinalized(fx *f) {
    f->arg = 3;
    setup_params_16(f);
}
static gopt_status call_params_finalize(fx *f) { return gopt_params_finalize(f->p); }
static void fail_params_finalize(fx *f) {
    assert_false(gopt_params_finalized(f->p));
    assert_null(gopt_params_values(f->p));
    assert_ok(gopt_params_finalize(f->p));
    params_usable(f->p, 3);
}

/* groups: 8 groups exist, the next one grows the table */
static void setup_params_groups(fx *f) {
    int groups = f->arg;
    setup_params_unfinalized(f);
    for (int i = 0; i < groups; i++) assert_ok(gopt_params_add_group(f->p, NULL, NULL));
    assert_int_equal(gopt_params_group_count(f->p), groups + 1);
}
static gopt_status call_params_add_group(fx *f) {
    gopt_group_config g = gopt_group_config_default();
    g.lr = 0.5f;
    int grp = -1;
    gopt_status s = gopt_params_add_group(f->p, &g, &grp);
    if (s == GOPT_OK) assert_int_equal(grp, gopt_params_group_count(f->p) - 1);
    return s;
}
static gopt_status call_params_group_by_tag(fx *f) {
    gopt_group_config g = gopt_group_config_default();
    g.weight_decay = 0.0f;
    return gopt_params_group_by_tag(f->p, GOPT_TAG_BIAS, &g, NULL);
}
static void fail_params_group(fx *f, gopt_status (*again)(fx *)) {
    int before = gopt_params_group_count(f->p);
    assert_ok(again(f));
    assert_int_equal(gopt_params_group_count(f->p), before + 1);
    params_usable(f->p, gopt_params_count(f->p));
}
static void fail_params_add_group(fx *f) { fail_params_group(f, call_params_add_group); }
static void fail_params_group_by_tag(fx *f) { fail_params_group(f, call_params_group_by_tag); }

static void test_tensors_and_params(void **state) {
    (void)state;
    acase c1 = {"gopt_tensor_create", NULL, call_tensor_create, NULL, ok_tensor, NULL};
    run(&c1);
    acase c2 = {"gopt_tensor_init(ORTHOGONAL)", setup_tensor, call_tensor_init_orth, fail_tensor_init, NULL, NULL};
    run(&c2);
    acase c3 = {"gopt_params_create", NULL, call_params_create, NULL, ok_params, NULL};
    run(&c3);
    acase c4 = {"gopt_params_add", setup_params_16, call_params_add, fail_params_add, ok_params_add, NULL};
    run_case(&c4, 0, "gopt_params_add (first tensor)");
    run_case(&c4, 16, "gopt_params_add (17th tensor: the table grows)");
    acase c5 = {"gopt_params_finalize", setup_params_unfinalized, call_params_finalize, fail_params_finalize, NULL,
                NULL};
    run(&c5);
    acase c6 = {"gopt_params_add_group", setup_params_groups, call_params_add_group, fail_params_add_group, NULL, NULL};
    run_case(&c6, 7, "gopt_params_add_group (9th group: the table grows)");
    acase c7 = {NULL, setup_params_groups, call_params_group_by_tag, fail_params_group_by_tag,
                NULL, NULL};
    run_case(&c7, 7, "gopt_params_group_by_tag (9th group: the table grows)");
}

/* ---- layers and nets ----------------------------------------------------------------------- */

static void setup_layer(fx *f) { assert_ok(gopt_params_create(&f->p)); }
static gopt_status call_layer_create(fx *f) {
    layer_spec s = spec_of((gopt_layer_type)f->arg);
    gopt_layer *l = SENTINEL;
    gopt_status st = gopt_layer_create(&s.cfg, s.ndim, s.shape, MAXB, f->p, "l0", &l);
    f->out = l;
    return st;
}
static void fail_layer_create(fx *f) {
    assert_null(f->out);
    /* the arena holds nothing of the failed layer: the same layer registers again */
    assert_int_equal(gopt_params_count(f->p), 0);
    assert_ok(call_layer_create(f));
    if (gopt_params_count(f->p) > 0) assert_ok(gopt_params_finalize(f->p));
    gopt_layer_destroy(f->out);
}
static void ok_layer(fx *f) { gopt_layer_destroy(f->out); }

static void setup_net_for_layer(fx *f) {
    layer_spec s = spec_of((gopt_layer_type)f->arg);
    f->net = net_for(&s);
}
static gopt_status call_net_add(fx *f) {
    layer_spec s = spec_of((gopt_layer_type)f->arg);
    return gopt_net_add(f->net, &s.cfg, "l0");
}
/* After a failed add, the same add succeeds and the net trains exactly as one built
 * without the failure. */
static void net_add_usable(fx *f) {
    layer_spec s = spec_of((gopt_layer_type)f->arg);
    net_finish(f->net);
    assert_ok(gopt_net_build(f->net));
    net_train(f->net, &s);
    gopt_net *ref = net_for(&s);
    assert_ok(gopt_net_add(ref, &s.cfg, "l0"));
    net_finish(ref);
    assert_ok(gopt_net_build(ref));
    net_train(ref, &s);
    assert_same_params(f->net, ref);
    gopt_net_destroy(ref);
}
static void fail_net_add(fx *f) {
    assert_int_equal(gopt_net_layer_count(f->net), 0);
    assert_int_equal(gopt_params_count(gopt_net_params(f->net)), 0);
    assert_ok(call_net_add(f));
    net_add_usable(f);
}

/* a net of every image layer, one of them recomputed: build allocates every buffer */
static gopt_status call_net_build(fx *f) { return gopt_net_build(f->net); }
static void net_build_usable(fx *f) {
    layer_spec s = spec_of(GOPT_LAYER_CONV2D);
    net_train(f->net, &s);
    gopt_net *ref = net_for(&s);
    build_image_net(ref);
    assert_ok(gopt_net_build(ref));
    net_train(ref, &s);
    assert_same_params(f->net, ref);
    gopt_net_destroy(ref);
}
static void fail_net_build(fx *f) {
    /* not built (a forward would be refused), and a second build completes it */
    assert_int_equal(gopt_net_init_weights(f->net, -1, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1), GOPT_ESTATE);
    assert_ok(gopt_net_build(f->net));
    net_build_usable(f);
}

/* a recurrent net built: every recurrent layer type stacked */
static void setup_seq_build(fx *f) {
    layer_spec s = spec_of(GOPT_LAYER_EMBEDDING);
    f->net = net_for(&s);
    build_seq_net(f->net);
}
static void fail_seq_build(fx *f) {
    assert_int_equal(gopt_net_init_weights(f->net, -1, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1), GOPT_ESTATE);
    assert_ok(gopt_net_build(f->net));
    layer_spec s = spec_of(GOPT_LAYER_EMBEDDING);
    net_train(f->net, &s);
    gopt_net *ref = net_for(&s);
    build_seq_net(ref);
    assert_ok(gopt_net_build(ref));
    net_train(ref, &s);
    assert_same_params(f->net, ref);
    gopt_net_destroy(ref);
}

static gopt_status call_net_create(fx *f) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 2;
    gopt_net *n = SENTINEL;
    gopt_status s = gopt_net_create(&nc, &n);
    f->out = n;
    return s;
}
static void ok_net(fx *f) { gopt_net_destroy(f->out); }

static gopt_status call_resnet(fx *f) {
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 8;
    rc.max_batch = 2;
    rc.in_shape[1] = rc.in_shape[2] = 8;
    gopt_net *n = SENTINEL;
    gopt_status s = gopt_resnet_cifar(&rc, &n);
    f->out = n;
    return s;
}

static gopt_status call_init_weights_orth(fx *f) {
    return gopt_net_init_weights(f->net, -1, GOPT_INIT_ORTHOGONAL, GOPT_INIT_ORTHOGONAL, 3);
}
static void fail_init_weights(fx *f) {
    assert_ok(call_init_weights_orth(f));
    layer_spec s = spec_of(GOPT_LAYER_CONV2D);
    net_train(f->net, &s);
}

static void test_layers(void **state) {
    (void)state;
    acase c = {NULL, setup_layer, call_layer_create, fail_layer_create, ok_layer, NULL};
    for (int t = 0; t <= GOPT_LAYER_RESIDUAL_DENSE; t++) { /* add, concat, custom: test_net_dag, test_custom_layer */
        char label[96];
        snprintf(label, sizeof label, "gopt_layer_create(%s)", gopt_layer_type_name((gopt_layer_type)t));
        run_case(&c, t, label);
    }
}

static void test_nets(void **state) {
    (void)state;
    acase c0 = {"gopt_net_create", NULL, call_net_create, NULL, ok_net, NULL};
    run(&c0);
    acase c = {NULL, setup_net_for_layer, call_net_add, fail_net_add, net_add_usable, NULL};
    for (int t = 0; t <= GOPT_LAYER_RESIDUAL_DENSE; t++) { /* add, concat, custom: test_net_dag, test_custom_layer */
        char label[96];
        snprintf(label, sizeof label, "gopt_net_add(%s)", gopt_layer_type_name((gopt_layer_type)t));
        run_case(&c, t, label);
    }
    acase b = {"gopt_net_build (image layers, one recomputed)", setup_net_build, call_net_build, fail_net_build,
               net_build_usable, NULL};
    run(&b);
    acase b2 = {"gopt_net_build (embedding, lstm, gru, rnn)", setup_seq_build, call_net_build, fail_seq_build, NULL,
                NULL};
    run(&b2);
    acase r = {"gopt_resnet_cifar (depth 8)", NULL, call_resnet, NULL, ok_net, NULL};
    run(&r);
    acase iw = {"gopt_net_init_weights(ORTHOGONAL)", setup_built_net, call_init_weights_orth, fail_init_weights, NULL,
                NULL};
    run(&iw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensors_and_params),
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_nets),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
