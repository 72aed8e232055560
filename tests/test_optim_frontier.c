/* Tests of Muon (with its AdamW for the tensors it does not take) and Adafactor (issue 18)
 * beyond the reference cases of tests/golden/frontier: refusals, the fallback grouping
 * against standalone optimizers (bit for bit), resume bit-exactness, thread-count
 * independence, Adafactor's state size, the monitor around them, and no allocation in a
 * step (and every allocation site of create failed in turn, with tests/alloc_fail.h). */
#include "alloc_fail.h"

typedef struct spec {
    const char *name;
    int ndim;
    int64_t shape[4];
    gopt_param_tag tag;
} spec;

/* Muon's mix: a linear weight, a conv weight, a tall matrix, a bias, a norm scale. */
static const spec MIX[] = {
    {"fc.weight", 2, {6, 10}, GOPT_TAG_WEIGHT},
    {"conv.weight", 4, {5, 3, 3, 3}, GOPT_TAG_WEIGHT},
    {"tall.weight", 2, {12, 4}, GOPT_TAG_WEIGHT},
    {"fc.bias", 1, {6}, GOPT_TAG_BIAS},
    {"bn.weight", 1, {5}, GOPT_TAG_NORM},
};
#define NMIX 5

static gopt_params *make(const spec *s, int n, uint64_t seed) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    for (int i = 0; i < n; i++) assert_ok(gopt_params_add(p, s[i].name, s[i].ndim, s[i].shape, s[i].tag, NULL));
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

/* ---- refusals ---------------------------------------------------------------------------- */

static void test_muon_refuses(void **state) {
    (void)state;
    const spec vecs[] = {{"b1", 1, {7}, GOPT_TAG_BIAS}, {"b2", 1, {3}, GOPT_TAG_NORM}};
    gopt_params *v = make(vecs, 2, 1), *mix = make(MIX, NMIX, 2);
    gopt_optim *o = NULL;
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_MUON);
    /* every tensor 1-D, no fallback: refused, naming the call and the tensor */
    c.muon_adamw_1d = 0;
    assert_status(gopt_optim_create(&c, v, &o), GOPT_EINVAL, "gopt_optim_create");
    assert_status(gopt_optim_create(&c, v, &o), GOPT_EINVAL, "'b1'");
    assert_null(o);
    /* a 1-D tensor among matrices without the fallback: refused, naming it */
    assert_status(gopt_optim_create(&c, mix, &o), GOPT_EINVAL, "'fc.bias' (group 0) has 1");
    /* with the fallback, an arena of vectors leaves Muon nothing: refused too */
    c.muon_adamw_1d = 1;
    assert_status(gopt_optim_create(&c, v, &o), GOPT_EINVAL, "muon would take no tensor");
    /* hyperparameters */
    gopt_optim_config b;
    b = c; b.ns_steps = -1;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "ns_steps");
    b = c; b.ns_steps = 100;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "ns_steps");
    b = c; b.momentum = -0.1f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "momentum");
    b = c; b.momentum = 1.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "momentum");
    b = c; b.eps = 0.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "eps");
    b = c; b.ns_coefficients[1] = NAN;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "ns_coefficients");
    b = c; b.adjust_lr_fn = (gopt_muon_adjust_lr)7;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "adjust_lr_fn");
    b = c; b.adamw_eps = 0.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "adamw_eps");
    b = c; b.adamw_lr_ratio = -1.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "adamw_lr_ratio");
    b = c; b.adamw_weight_decay = -1.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "adamw_weight_decay");
    b = c; b.beta2 = 1.0f;
    assert_status(gopt_optim_create(&b, mix, &o), GOPT_EINVAL, "betas[1]");
    assert_null(o);
    /* ZeRO-1 slices cannot hold whole matrices */
    assert_status(gopt_optim_create_range(&c, mix, 0, 16, &o), GOPT_EINVAL, "whole tensors");
    /* groups: AdamW for the only group would leave Muon nothing; amsgrad needs a buffer */
    assert_ok(gopt_optim_create(&c, mix, &o));
    gopt_optim_config aw = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    assert_status(gopt_optim_set_group_config(o, 0, &aw), GOPT_EINVAL, "muon would take no tensor");
    gopt_optim_config sgd = gopt_optim_config_default(GOPT_ALGO_SGD);
    assert_status(gopt_optim_set_group_config(o, 0, &sgd), GOPT_EINVAL, "differs");
    gopt_optim_config nofb = c;
    nofb.muon_adamw_1d = 0;
    assert_status(gopt_optim_set_group_config(o, 0, &nofb), GOPT_EINVAL, "'fc.bias'");
    gopt_optim_destroy(o);
    o = NULL;
    gopt_params_destroy(v);
    gopt_params_destroy(mix);
}

static void test_muon_group_refusals(void **state) {
    (void)state;
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[2] = {4, 6}, h[2] = {3, 4};
    int head;
    assert_ok(gopt_params_add(p, "w", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "head", 2, h, GOPT_TAG_WEIGHT, &head));
    int g;
    assert_ok(gopt_params_add_group(p, NULL, &g));
    assert_ok(gopt_params_set_group(p, head, g));
    assert_ok(gopt_params_finalize(p));
    /* without the fallback there is no exp_avg_sq: an AdamW group is refused (ESTATE) */
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_MUON);
    c.muon_adamw_1d = 0;
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&c, p, &o));
    gopt_optim_config aw = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    assert_status(gopt_optim_set_group_config(o, g, &aw), GOPT_ESTATE, "exp_avg_sq");
    gopt_optim_destroy(o);
    c.muon_adamw_1d = 1;
    assert_ok(gopt_optim_create(&c, p, &o));
    aw.amsgrad = 1;
    assert_status(gopt_optim_set_group_config(o, g, &aw), GOPT_ESTATE, "max_exp_avg_sq");
    aw.amsgrad = 0;
    aw.eps = 0.0f;
    assert_status(gopt_optim_set_group_config(o, g, &aw), GOPT_EINVAL, "eps");
    aw.eps = 1e-8f;
    assert_ok(gopt_optim_set_group_config(o, g, &aw));
    gopt_optim_config back;
    assert_ok(gopt_optim_group_config(o, g, &back));
    assert_int_equal(back.algo, GOPT_ALGO_ADAMW);
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

static void test_adafactor_refuses(void **state) {
    (void)state;
    gopt_params *p = make(MIX, NMIX, 3);
    gopt_optim *o = NULL;
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    assert_true(c.lr == 1e-2f && c.eps == 0x1p-23f && c.eps2 == 1e-3f && c.clip_threshold == 1.0f &&
                c.beta2_decay == -0.8f && c.weight_decay == 0.0f);
    gopt_optim_config b;
    b = c; b.beta2_decay = 0.1f;
    assert_status(gopt_optim_create(&b, p, &o), GOPT_EINVAL, "beta2_decay");
    b = c; b.eps2 = -1e-3f;
    assert_status(gopt_optim_create(&b, p, &o), GOPT_EINVAL, "eps2");
    b = c; b.clip_threshold = 0.5f;
    assert_status(gopt_optim_create(&b, p, &o), GOPT_EINVAL, "clip_threshold");
    b = c; b.eps = 0.0f;
    assert_status(gopt_optim_create(&b, p, &o), GOPT_EINVAL, "eps");
    b = c; b.lr = -1.0f;
    assert_status(gopt_optim_create(&b, p, &o), GOPT_EINVAL, "lr");
    assert_null(o);
    assert_status(gopt_optim_create_range(&c, p, 0, 16, &o), GOPT_EINVAL, "whole tensors");
    assert_ok(gopt_optim_create(&c, p, &o));
    assert_true(isnan(gopt_optim_get_momentum(o, 0)));
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* ---- the fallback grouping, against standalone optimizers -------------------------------- */

/* Copy tensor `name` of src into dst (same shape). */
static void copy_tensor(gopt_params *dst, const gopt_params *src, const char *name, int grad) {
    int i, j;
    assert_ok(gopt_params_find(src, name, &i));
    assert_ok(gopt_params_find(dst, name, &j));
    gopt_param_info a, b;
    assert_ok(gopt_params_info(src, i, &a));
    assert_ok(gopt_params_info(dst, j, &b));
    assert_int_equal(a.value.numel, b.value.numel);
    memcpy(grad ? b.grad.data : b.value.data, grad ? a.grad.data : a.value.data, (size_t)a.value.numel * 4);
}

static void assert_same_tensor(const gopt_params *x, const gopt_params *y, const char *name) {
    int i, j;
    assert_ok(gopt_params_find(x, name, &i));
    assert_ok(gopt_params_find(y, name, &j));
    gopt_param_info a, b;
    assert_ok(gopt_params_info(x, i, &a));
    assert_ok(gopt_params_info(y, j, &b));
    if (memcmp(a.value.data, b.value.data, (size_t)a.value.numel * 4) != 0)
        fail_msg("tensor %s differs from its standalone optimizer's", name);
}

static void test_fallback_grouping(void **state) {
    (void)state;
    /* whole: Muon over MIX with the 1-D fallback and "tall.weight" moved into an AdamW group;
     * muon: Muon alone over the two other matrices; vec: AdamW over the vectors with the
     * fallback's hyperparameters; grp: AdamW over tall.weight with the group's. */
    gopt_params *whole = NULL;
    assert_ok(gopt_params_create(&whole));
    for (int i = 0; i < NMIX; i++)
        assert_ok(gopt_params_add(whole, MIX[i].name, MIX[i].ndim, MIX[i].shape, MIX[i].tag, NULL));
    int g;
    assert_ok(gopt_params_add_group(whole, NULL, &g));
    assert_ok(gopt_params_set_group(whole, 2, g));
    assert_ok(gopt_params_finalize(whole));
    gopt_params *muon = make(MIX, 2, 0), *vec = make(MIX + 3, 2, 0), *grp = make(MIX + 2, 1, 0);
    gopt_rng rng;
    gopt_rng_seed(&rng, 9);
    for (int64_t i = 0; i < gopt_params_numel(whole); i++) gopt_params_values(whole)[i] = gopt_rng_normal(&rng);
    for (int i = 0; i < NMIX; i++) {
        gopt_params *dst = i < 2 ? muon : i == 2 ? grp : vec;
        copy_tensor(dst, whole, MIX[i].name, 0);
    }
    gopt_optim_config mc = gopt_optim_config_default(GOPT_ALGO_MUON);
    mc.lr = 0.02f;
    mc.adamw_lr_ratio = 0.25f;
    mc.adamw_weight_decay = 0.05f;
    mc.adamw_eps = 1e-6f;
    mc.beta1 = 0.8f;
    mc.beta2 = 0.95f;
    gopt_optim_config gc = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    gc.lr = 3e-3f;
    gc.beta2 = 0.99f;
    gc.weight_decay = 0.02f;
    gopt_optim_config vc = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    vc.lr = (float)((double)mc.lr * mc.adamw_lr_ratio);
    vc.eps = mc.adamw_eps;
    vc.weight_decay = mc.adamw_weight_decay;
    vc.beta1 = mc.beta1;
    vc.beta2 = mc.beta2;
    gopt_optim *ow = NULL, *om = NULL, *ov = NULL, *og = NULL;
    assert_ok(gopt_optim_create(&mc, whole, &ow));
    assert_ok(gopt_optim_set_group_config(ow, g, &gc));
    assert_ok(gopt_optim_create(&mc, muon, &om));
    assert_ok(gopt_optim_create(&vc, vec, &ov));
    assert_ok(gopt_optim_create(&gc, grp, &og));
    for (int s = 0; s < 4; s++) {
        fill_grads(whole, 50 + (uint64_t)s);
        for (int i = 0; i < NMIX; i++) copy_tensor(i < 2 ? muon : i == 2 ? grp : vec, whole, MIX[i].name, 1);
        assert_ok(gopt_optim_step(ow));
        assert_ok(gopt_optim_step(om));
        assert_ok(gopt_optim_step(ov));
        assert_ok(gopt_optim_step(og));
        for (int i = 0; i < NMIX; i++)
            assert_same_tensor(whole, i < 2 ? muon : i == 2 ? grp : vec, MIX[i].name);
    }
    /* and Muon did move the matrices: not an AdamW step in disguise */
    const float *v = gopt_params_values(whole);
    float before[60];
    memcpy(before, v, sizeof before);
    fill_grads(whole, 99);
    assert_ok(gopt_optim_step(ow));
    assert_true(memcmp(before, v, sizeof before) != 0);
    gopt_optim_destroy(ow);
    gopt_optim_destroy(om);
    gopt_optim_destroy(ov);
    gopt_optim_destroy(og);
    gopt_params_destroy(whole);
    gopt_params_destroy(muon);
    gopt_params_destroy(vec);
    gopt_params_destroy(grp);
}

/* Muon's update of a matrix is (nearly) orthogonal: after one step from zero momentum with
 * nesterov off, momentum 0, wd 0 and lr 1, -dp = O has singular values in (0.5, 1.5),
 * so O O^T is close to the identity in the sense |(O O^T)_ii - 1| < 0.8 and small off the
 * diagonal (the quintic iteration's known band, Jordan 2024). */
static void test_muon_orthogonalises(void **state) {
    (void)state;
    const spec s[] = {{"w", 2, {8, 32}, GOPT_TAG_WEIGHT}};
    gopt_params *p = make(s, 1, 4);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_MUON);
    c.lr = 1.0f;
    c.weight_decay = 0.0f;
    c.momentum = 0.0f;
    c.nesterov = 0;
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&c, p, &o));
    float before[256];
    memcpy(before, gopt_params_values(p), sizeof before);
    fill_grads(p, 5);
    assert_ok(gopt_optim_step(o));
    double O[256];
    for (int i = 0; i < 256; i++) O[i] = before[i] - gopt_params_values(p)[i];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            double d = 0;
            for (int k = 0; k < 32; k++) d += O[i * 32 + k] * O[j * 32 + k];
            if (i == j) assert_true(d > 0.2 && d < 1.8);
            else assert_true(fabs(d) < 0.5);
        }
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* ---- resume -------------------------------------------------------------------------------- */

/* N steps on a, save, load into a fresh b (over a copy of the arena), then M more steps on
 * both: parameters and state bit for bit. */
static void check_resume(const gopt_optim_config *c, const spec *s, int n) {
    gopt_params *pa = make(s, n, 21), *pb = make(s, n, 22); /* pb's values are overwritten by the load */
    gopt_optim *a = NULL, *b = NULL;
    assert_ok(gopt_optim_create(c, pa, &a));
    const int N = 4, M = 5;
    for (int st = 0; st < N; st++) {
        fill_grads(pa, 200 + (uint64_t)st);
        assert_ok(gopt_optim_step(a));
    }
    size_t size = gopt_optim_state_size(a), psize = gopt_params_state_size(pa);
    unsigned char *buf = malloc(size), *pbuf = malloc(psize);
    assert_ok(gopt_optim_state_save(a, buf, size));
    assert_ok(gopt_params_state_save(pa, pbuf, psize));
    assert_ok(gopt_params_state_load(pb, pbuf, psize));
    assert_ok(gopt_optim_create(c, pb, &b));
    assert_status(gopt_optim_state_load(b, buf, size - 1), GOPT_EFORMAT, "bytes");
    assert_ok(gopt_optim_state_load(b, buf, size));
    assert_int_equal(gopt_optim_step_count(b), N);
    for (int st = N; st < N + M; st++) {
        fill_grads(pa, 200 + (uint64_t)st);
        fill_grads(pb, 200 + (uint64_t)st);
        assert_ok(gopt_optim_step(a));
        assert_ok(gopt_optim_step(b));
    }
    assert_memory_equal(gopt_params_values(pa), gopt_params_values(pb), (size_t)gopt_params_numel(pa) * 4);
    unsigned char *buf2 = malloc(size), *buf3 = malloc(size);
    assert_ok(gopt_optim_state_save(a, buf2, size));
    assert_ok(gopt_optim_state_save(b, buf3, size));
    assert_memory_equal(buf2, buf3, size);
    free(buf);
    free(buf2);
    free(buf3);
    free(pbuf);
    gopt_optim_destroy(a);
    gopt_optim_destroy(b);
    gopt_params_destroy(pa);
    gopt_params_destroy(pb);
}

/* Muon with an AdamW group, resumed: the group's algorithm and every config field travel
 * in the state. */
static void test_resume_muon_with_group(void **state) {
    (void)state;
    gopt_params *mk[2];
    gopt_optim *op[2];
    unsigned char *blob = NULL;
    size_t size = 0;
    for (int k = 0; k < 2; k++) {
        gopt_params *p = NULL;
        assert_ok(gopt_params_create(&p));
        for (int i = 0; i < NMIX; i++)
            assert_ok(gopt_params_add(p, MIX[i].name, MIX[i].ndim, MIX[i].shape, MIX[i].tag, NULL));
        int g;
        assert_ok(gopt_params_add_group(p, NULL, &g));
        assert_ok(gopt_params_set_group(p, 2, g));
        assert_ok(gopt_params_finalize(p));
        gopt_rng rng;
        gopt_rng_seed(&rng, 31);
        for (int64_t i = 0; i < gopt_params_numel(p); i++) gopt_params_values(p)[i] = gopt_rng_normal(&rng);
        gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_MUON);
        c.lr = 0.01f;
        c.adjust_lr_fn = GOPT_MUON_ADJUST_MATCH_RMS_ADAMW;
        c.ns_steps = 3;
        assert_ok(gopt_optim_create(&c, p, &op[k]));
        if (k == 0) { /* only a has the group: the load must bring it to b */
            gopt_optim_config gc = gopt_optim_config_default(GOPT_ALGO_ADAMW);
            gc.lr = 4e-3f;
            assert_ok(gopt_optim_set_group_config(op[0], g, &gc));
        }
        mk[k] = p;
    }
    for (int st = 0; st < 3; st++) {
        fill_grads(mk[0], 300 + (uint64_t)st);
        assert_ok(gopt_optim_step(op[0]));
    }
    size = gopt_optim_state_size(op[0]);
    blob = malloc(size);
    assert_ok(gopt_optim_state_save(op[0], blob, size));
    memcpy(gopt_params_values(mk[1]), gopt_params_values(mk[0]), (size_t)gopt_params_numel(mk[0]) * 4);
    assert_ok(gopt_optim_state_load(op[1], blob, size));
    gopt_optim_config back;
    assert_ok(gopt_optim_group_config(op[1], 1, &back));
    assert_int_equal(back.algo, GOPT_ALGO_ADAMW);
    assert_true(back.lr == 4e-3f);
    assert_ok(gopt_optim_group_config(op[1], 0, &back));
    assert_int_equal(back.ns_steps, 3);
    assert_int_equal(back.adjust_lr_fn, GOPT_MUON_ADJUST_MATCH_RMS_ADAMW);
    for (int st = 3; st < 7; st++)
        for (int k = 0; k < 2; k++) {
            fill_grads(mk[k], 300 + (uint64_t)st);
            assert_ok(gopt_optim_step(op[k]));
        }
    assert_memory_equal(gopt_params_values(mk[0]), gopt_params_values(mk[1]), (size_t)gopt_params_numel(mk[0]) * 4);
    /* another algorithm's state is refused, naming both */
    gopt_optim_config af = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    gopt_optim *other = NULL;
    assert_ok(gopt_optim_create(&af, mk[1], &other));
    assert_status(gopt_optim_state_load(other, blob, size), GOPT_EFORMAT, "muon");
    gopt_optim_destroy(other);
    free(blob);
    for (int k = 0; k < 2; k++) {
        gopt_optim_destroy(op[k]);
        gopt_params_destroy(mk[k]);
    }
}

static void test_resume_bit_exact(void **state) {
    (void)state;
    gopt_optim_config m = gopt_optim_config_default(GOPT_ALGO_MUON);
    m.lr = 0.02f;
    check_resume(&m, MIX, NMIX);
    m.nesterov = 0;
    m.maximize = 1;
    check_resume(&m, MIX, NMIX);
    gopt_optim_config a = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    check_resume(&a, MIX, NMIX);
    a.weight_decay = 0.01f;
    a.maximize = 1;
    a.clip_threshold = 1.5f;
    const spec big[] = {{"m", 2, {300, 250}, GOPT_TAG_WEIGHT}, /* > 65536: the threaded passes */
                        {"c", 4, {16, 8, 3, 3}, GOPT_TAG_WEIGHT},
                        {"t", 3, {4, 5, 6}, GOPT_TAG_WEIGHT},
                        {"v", 1, {9000}, GOPT_TAG_BIAS}};
    check_resume(&a, big, 4);
    check_resume(&m, big, 4);
}

/* Same thread count, same bits; and Adafactor's fixed units make 1 and 2 threads agree. */
static void test_adafactor_threads(void **state) {
    (void)state;
    const spec big[] = {{"m", 2, {400, 300}, GOPT_TAG_WEIGHT},
                        {"c", 4, {32, 16, 3, 3}, GOPT_TAG_WEIGHT},
                        {"v", 1, {20000}, GOPT_TAG_BIAS}};
    gopt_params *p[2];
    int saved = gopt_get_threads();
    for (int k = 0; k < 2; k++) {
        gopt_set_threads(k + 1);
        p[k] = make(big, 3, 41);
        gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
        c.weight_decay = 0.1f;
        gopt_optim *o = NULL;
        assert_ok(gopt_optim_create(&c, p[k], &o));
        for (int st = 0; st < 3; st++) {
            fill_grads(p[k], 400 + (uint64_t)st);
            assert_ok(gopt_optim_step(o));
        }
        gopt_optim_destroy(o);
    }
    gopt_set_threads(saved);
    assert_memory_equal(gopt_params_values(p[0]), gopt_params_values(p[1]), (size_t)gopt_params_numel(p[0]) * 4);
    gopt_params_destroy(p[0]);
    gopt_params_destroy(p[1]);
}

/* Muon's small tensors go one per thread with single-threaded GEMMs: 1 and 2 threads agree
 * bit for bit (the mixed arena, with the AdamW fallback beside them). */
static void test_muon_threads(void **state) {
    (void)state;
    gopt_params *p[2];
    int saved = gopt_get_threads();
    for (int k = 0; k < 2; k++) {
        gopt_set_threads(k + 1);
        p[k] = make(MIX, NMIX, 43);
        gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_MUON);
        gopt_optim *o = NULL;
        assert_ok(gopt_optim_create(&c, p[k], &o));
        for (int st = 0; st < 3; st++) {
            fill_grads(p[k], 500 + (uint64_t)st);
            assert_ok(gopt_optim_step(o));
        }
        gopt_optim_destroy(o);
    }
    gopt_set_threads(saved);
    assert_memory_equal(gopt_params_values(p[0]), gopt_params_values(p[1]), (size_t)gopt_params_numel(p[0]) * 4);
    gopt_params_destroy(p[0]);
    gopt_params_destroy(p[1]);
}

/* Adafactor keeps row and column factors only: a 1024x1024 weight's whole state blob
 * (header, group record, factors) is under 10 kB; a vector keeps a full variance. */
static void test_adafactor_state_size(void **state) {
    (void)state;
    const spec w[] = {{"w", 2, {1024, 1024}, GOPT_TAG_WEIGHT}};
    gopt_params *p = make(w, 1, 1);
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&c, p, &o));
    size_t size = gopt_optim_state_size(o);
    assert_true(size < 10 * 1024);
    assert_true(size >= 2048 * sizeof(float));
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
    const spec v[] = {{"v", 1, {1000}, GOPT_TAG_BIAS}};
    p = make(v, 1, 1);
    assert_ok(gopt_optim_create(&c, p, &o));
    assert_true(gopt_optim_state_size(o) >= 1000 * sizeof(float));
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* L1 (g += l1*sign(p), for every algorithm): the same bits as l1 = 0 on gradients that
 * already hold the term, and the arena's gradients are left alone. */
static void check_l1(gopt_optim_config c) {
    gopt_params *a = make(MIX, NMIX, 12), *b = make(MIX, NMIX, 12);
    gopt_optim *oa = NULL, *ob = NULL;
    c.l1 = 0.03f;
    assert_ok(gopt_optim_create(&c, a, &oa));
    c.l1 = 0.0f;
    assert_ok(gopt_optim_create(&c, b, &ob));
    const int64_t n = gopt_params_numel(a);
    float *g0 = malloc((size_t)n * 4);
    for (int st = 0; st < 3; st++) {
        fill_grads(a, 600 + (uint64_t)st);
        memcpy(g0, gopt_params_grads(a), (size_t)n * 4);
        const float *pb = gopt_params_values(b);
        float *gb = gopt_params_grads(b);
        for (int64_t i = 0; i < n; i++) {
            float s = pb[i] > 0 ? 1.0f : pb[i] < 0 ? -1.0f : 0.0f;
            gb[i] = g0[i] + (c.maximize ? -0.03f : 0.03f) * s;
        }
        assert_ok(gopt_optim_step(oa));
        assert_ok(gopt_optim_step(ob));
        assert_memory_equal(g0, gopt_params_grads(a), (size_t)n * 4);
        assert_memory_equal(gopt_params_values(a), gopt_params_values(b), (size_t)n * 4);
    }
    free(g0);
    gopt_optim_destroy(oa);
    gopt_optim_destroy(ob);
    gopt_params_destroy(a);
    gopt_params_destroy(b);
}

static void test_l1(void **state) {
    (void)state;
    check_l1(gopt_optim_config_default(GOPT_ALGO_MUON));
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    check_l1(c);
    c.maximize = 1;
    check_l1(c);
}

/* ---- the monitor around them --------------------------------------------------------------- */

static void check_monitor(gopt_optim_config c) {
    gopt_params *p = make(MIX, NMIX, 6);
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&c, p, &o));
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.nonfinite_lr_backoff = 0.5;
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &m));
    size_t bytes = (size_t)gopt_params_numel(p) * 4;
    float *before = malloc(bytes);
    /* a NaN gradient: skipped, LR halved, parameters untouched */
    fill_grads(p, 7);
    gopt_params_grads(p)[3] = NAN;
    memcpy(before, gopt_params_values(p), bytes);
    gopt_monitor_report rep;
    float lr0 = gopt_optim_get_lr(o, 0);
    assert_ok(gopt_monitor_before_step(m, 1.0, &rep));
    assert_int_equal(rep.apply, 0);
    assert_true(gopt_optim_get_lr(o, 0) == lr0 * 0.5f);
    assert_memory_equal(before, gopt_params_values(p), bytes);
    /* a finite one: applied, and the per-tensor update norms are measured */
    fill_grads(p, 8);
    assert_ok(gopt_monitor_before_step(m, 1.0, &rep));
    assert_int_equal(rep.apply, 1);
    assert_ok(gopt_optim_step(o));
    assert_ok(gopt_monitor_after_step(m));
    for (int i = 0; i < NMIX; i++) {
        gopt_monitor_tensor t;
        assert_ok(gopt_monitor_tensor_stats(m, i, &t));
        assert_true(isfinite(t.update_norm) && t.update_norm > 0);
    }
    free(before);
    gopt_monitor_destroy(m);
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

static void test_monitor(void **state) {
    (void)state;
    check_monitor(gopt_optim_config_default(GOPT_ALGO_MUON));
    check_monitor(gopt_optim_config_default(GOPT_ALGO_ADAFACTOR));
}

/* ---- allocation: none in a step; every site of create failed in turn ------------------------ */

static gopt_optim_config alloc_cfgs[3];

static void setup_mix(fx *f) { f->p = make(MIX, NMIX, 8); }
static gopt_status call_create(fx *f) {
    gopt_optim *o = SENTINEL;
    gopt_status s = gopt_optim_create(&alloc_cfgs[f->arg], f->p, &o);
    f->out = o;
    return s;
}
static void ok_create(fx *f) {
    gopt_optim *o = f->out;
    /* steps allocate nothing */
    fill_grads(f->p, 1);
    assert_ok(gopt_optim_step(o)); /* OpenMP/OpenBLAS may set themselves up once */
    long c0 = atomic_load(&n_calls);
    for (int s = 0; s < 3; s++) {
        fill_grads(f->p, 2 + (uint64_t)s);
        assert_ok(gopt_optim_step(o));
    }
    if (atomic_load(&n_calls) != c0) fail_msg("%s step allocated %ld times", gopt_algo_name(alloc_cfgs[f->arg].algo),
                                              atomic_load(&n_calls) - c0);
    gopt_optim_destroy(o);
}

static void test_alloc(void **state) {
    (void)state;
    alloc_cfgs[0] = gopt_optim_config_default(GOPT_ALGO_MUON);
    alloc_cfgs[1] = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    alloc_cfgs[2] = gopt_optim_config_default(GOPT_ALGO_MUON);
    alloc_cfgs[2].lookahead_k = 2;
    const char *labels[3] = {"gopt_optim_create(muon, mixed arena)", "gopt_optim_create(adafactor, mixed arena)",
                             "gopt_optim_create(muon + lookahead)"};
    acase c = {NULL, setup_mix, call_create, NULL, ok_create, NULL};
    for (int i = 0; i < 3; i++) run_case(&c, i, labels[i]);
}

int main(void) {
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_muon_refuses),
        cmocka_unit_test(test_muon_group_refusals),
        cmocka_unit_test(test_adafactor_refuses),
        cmocka_unit_test(test_fallback_grouping),
        cmocka_unit_test(test_muon_orthogonalises),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_resume_muon_with_group),
        cmocka_unit_test(test_adafactor_threads),
        cmocka_unit_test(test_muon_threads),
        cmocka_unit_test(test_adafactor_state_size),
        cmocka_unit_test(test_l1),
        cmocka_unit_test(test_monitor),
    };
    const struct CMUnitTest counted[] = {
        cmocka_unit_test(test_alloc),
    };
    int rc = cmocka_run_group_tests_name("frontier optimizers", plain, NULL, NULL);
    rc |= cmocka_run_group_tests_name("frontier optimizers, counted allocations", counted, group_setup,
                                      group_teardown);
    return rc;
}
