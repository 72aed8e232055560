/* params.h: registration, arena layout, views, groups and runs, state save/load, errors. */
#include <math.h>

#include "testutil.h"

static gopt_params *make_net(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    assert_ok(gopt_params_add(p, "conv.weight", 4, (const int64_t[]){8, 3, 3, 3}, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "bn.weight", 1, (const int64_t[]){8}, GOPT_TAG_NORM, NULL));
    assert_ok(gopt_params_add(p, "bn.bias", 1, (const int64_t[]){8}, GOPT_TAG_NORM, NULL));
    assert_ok(gopt_params_add(p, "fc.weight", 2, (const int64_t[]){10, 8}, GOPT_TAG_WEIGHT, NULL));
    int idx = -1;
    assert_ok(gopt_params_add(p, "fc.bias", 1, (const int64_t[]){10}, GOPT_TAG_BIAS, &idx));
    assert_int_equal(idx, 4);
    return p;
}

static void test_arena_layout(void **state) {
    (void)state;
    gopt_params *p = make_net();
    assert_null(gopt_params_values(p));
    assert_false(gopt_params_finalized(p));
    assert_ok(gopt_params_finalize(p));
    assert_true(gopt_params_finalized(p));
    assert_int_equal(gopt_params_count(p), 5);
    assert_int_equal(gopt_params_numel(p), 216 + 8 + 8 + 80 + 10);
    float *v = gopt_params_values(p), *g = gopt_params_grads(p);
    assert_non_null(v);
    assert_int_equal((uintptr_t)v % 64, 0);
    int64_t expect_offset = 0;
    for (int i = 0; i < 5; i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        assert_int_equal(info.offset, expect_offset);
        assert_ptr_equal(info.value.data, v + info.offset);
        assert_ptr_equal(info.grad.data, g + info.offset);
        assert_int_equal(info.group, 0);
        expect_offset += info.value.numel;
    }
    int idx;
    assert_ok(gopt_params_find(p, "fc.weight", &idx));
    assert_int_equal(idx, 3);
    assert_status(gopt_params_find(p, "nope", &idx), GOPT_ERANGE, "nope");
    gopt_param_info info;
    assert_status(gopt_params_info(p, 5, &info), GOPT_ERANGE, "index 5");
    assert_status(gopt_params_info(p, -1, &info), GOPT_ERANGE, NULL);

    for (int64_t i = 0; i < gopt_params_numel(p); i++) g[i] = 1.0f;
    gopt_params_zero_grad(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) assert_true(g[i] == 0.0f);
    gopt_params_destroy(p);
    gopt_params_destroy(NULL);
}

static void test_add_errors(void **state) {
    (void)state;
    gopt_params *p = make_net();
    const int64_t s[1] = {4};
    assert_status(gopt_params_add(p, "fc.bias", 1, s, GOPT_TAG_BIAS, NULL), GOPT_EINVAL, "already registered");
    assert_status(gopt_params_add(p, "", 1, s, GOPT_TAG_BIAS, NULL), GOPT_EINVAL, "name");
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[99] = '\0';
    assert_status(gopt_params_add(p, longname, 1, s, GOPT_TAG_BIAS, NULL), GOPT_EINVAL, "1..63 bytes");
    assert_status(gopt_params_add(p, "t", 1, s, (gopt_param_tag)3, NULL), GOPT_EINVAL, "tag 3");
    assert_status(gopt_params_add(p, "t", 1, (const int64_t[]){0}, GOPT_TAG_BIAS, NULL), GOPT_EINVAL, "shape[0]");
    assert_status(gopt_params_add(p, NULL, 1, s, GOPT_TAG_BIAS, NULL), GOPT_EINVAL, "name");
    assert_status(gopt_params_add(p, "huge", 2, (const int64_t[]){INT64_C(1) << 40, INT64_C(1) << 22}, GOPT_TAG_WEIGHT, NULL),
                  GOPT_EOVERFLOW, NULL);
    assert_ok(gopt_params_finalize(p));
    assert_status(gopt_params_finalize(p), GOPT_ESTATE, "already finalized");
    assert_status(gopt_params_add(p, "late", 1, s, GOPT_TAG_BIAS, NULL), GOPT_ESTATE, "late");
    gopt_params_destroy(p);

    assert_ok(gopt_params_create(&p));
    assert_status(gopt_params_finalize(p), GOPT_ESTATE, "no tensors");
    gopt_params_destroy(p);
    assert_status(gopt_params_create(NULL), GOPT_EINVAL, "out");
}

static void test_out_of_memory(void **state) {
    (void)state;
    /* Every allocation point fails cleanly (no leak, no crash) and later succeeds. */
    for (long budget = 0; budget < 8; budget++) {
        testutil_fail_after(budget);
        gopt_params *p = NULL;
        gopt_status s = gopt_params_create(&p);
        if (s == GOPT_OK) s = gopt_params_add(p, "w", 2, (const int64_t[]){4, 4}, GOPT_TAG_WEIGHT, NULL);
        if (s == GOPT_OK) s = gopt_params_finalize(p);
        if (s != GOPT_OK) {
            assert_int_equal(s, GOPT_ENOMEM);
            assert_true(strlen(gopt_last_error()) > 0);
        }
        gopt_params_destroy(p);
    }
    testutil_alloc_reset();
}

static void test_groups_and_runs(void **state) {
    (void)state;
    gopt_params *p = make_net();
    assert_ok(gopt_params_finalize(p));
    assert_int_equal(gopt_params_group_count(p), 1);
    assert_int_equal(gopt_params_run_count(p), 1);

    gopt_group_config nd = gopt_group_config_default();
    nd.weight_decay = 0.0f;
    int g = -1;
    assert_ok(gopt_params_group_by_tag(p, GOPT_TAG_BIAS | GOPT_TAG_NORM, &nd, &g));
    assert_int_equal(g, 1);
    /* conv.weight | bn.weight bn.bias | fc.weight | fc.bias -> 4 runs alternating 0,1,0,1 */
    assert_int_equal(gopt_params_run_count(p), 4);
    const gopt_param_run *runs = gopt_params_runs(p);
    const int groups[4] = {0, 1, 0, 1};
    const int64_t begins[4] = {0, 216, 232, 312};
    for (int r = 0; r < 4; r++) {
        assert_int_equal(runs[r].group, groups[r]);
        assert_int_equal(runs[r].begin, begins[r]);
    }
    assert_int_equal(runs[3].end, gopt_params_numel(p));

    gopt_group_config got;
    assert_ok(gopt_params_group_get(p, 1, &got));
    assert_true(got.weight_decay == 0.0f);
    assert_true(isnan(got.lr));
    assert_status(gopt_params_group_get(p, 2, &got), GOPT_ERANGE, "group 2");

    int g2;
    gopt_group_config slow = gopt_group_config_default();
    slow.lr = 0.01f;
    assert_ok(gopt_params_add_group(p, &slow, &g2));
    assert_ok(gopt_params_set_group(p, 4, g2));
    assert_int_equal(gopt_params_runs(p)[3].group, g2);
    assert_status(gopt_params_set_group(p, 4, 9), GOPT_ERANGE, "group 9");
    assert_status(gopt_params_set_group(p, 9, 0), GOPT_ERANGE, "tensor index 9");

    gopt_group_config bad = gopt_group_config_default();
    bad.lr = -1.0f;
    assert_status(gopt_params_add_group(p, &bad, NULL), GOPT_EINVAL, "lr");
    bad.lr = INFINITY;
    assert_status(gopt_params_group_set(p, 0, &bad), GOPT_EINVAL, "lr");
    assert_status(gopt_params_group_by_tag(p, 0, NULL, NULL), GOPT_EINVAL, "tag_mask");
    assert_status(gopt_params_group_by_tag(p, 64, NULL, NULL), GOPT_EINVAL, "tag_mask");
    gopt_params_destroy(p);
}

static void test_state_roundtrip(void **state) {
    (void)state;
    gopt_params *a = make_net(), *b = make_net();
    assert_ok(gopt_params_finalize(a));
    assert_ok(gopt_params_finalize(b));
    float *va = gopt_params_values(a);
    for (int64_t i = 0; i < gopt_params_numel(a); i++) va[i] = (float)i * 0.5f;
    size_t size = gopt_params_state_size(a);
    unsigned char *buf = malloc(size);
    assert_status(gopt_params_state_save(a, buf, size - 1), GOPT_EINVAL, "need");
    assert_ok(gopt_params_state_save(a, buf, size));
    assert_ok(gopt_params_state_load(b, buf, size));
    assert_memory_equal(gopt_params_values(b), va, (size_t)gopt_params_numel(a) * sizeof(float));

    assert_status(gopt_params_state_load(b, buf, size - 4), GOPT_EFORMAT, "bytes");
    unsigned char saved = buf[0];
    buf[0] ^= 0xff;
    assert_status(gopt_params_state_load(b, buf, size), GOPT_EFORMAT, "magic");
    buf[0] = saved;
    /* A differently named tensor is named in the error. */
    buf[16] = 'X';
    assert_status(gopt_params_state_load(b, buf, size), GOPT_EFORMAT, "Xonv.weight");
    free(buf);

    gopt_params *c = NULL;
    unsigned char small[100];
    assert_ok(gopt_params_create(&c));
    assert_ok(gopt_params_add(c, "w", 1, (const int64_t[]){3}, GOPT_TAG_WEIGHT, NULL));
    assert_status(gopt_params_state_save(c, small, sizeof small), GOPT_ESTATE, "not finalized");
    gopt_params_destroy(c);
    gopt_params_destroy(a);
    gopt_params_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_layout),   cmocka_unit_test(test_add_errors),
        cmocka_unit_test(test_out_of_memory),  cmocka_unit_test(test_groups_and_runs),
        cmocka_unit_test(test_state_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
