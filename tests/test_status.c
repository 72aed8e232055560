/* status.h, version.h, common.h: strings, thread-local detail, versions, threads, allocator. */
#include <pthread.h>
#include <stdio.h>

#include "testutil.h"

static void test_status_strings(void **state) {
    (void)state;
    const gopt_status all[] = {GOPT_OK, GOPT_EINVAL, GOPT_ENOMEM, GOPT_ESHAPE, GOPT_EOVERFLOW,
                               GOPT_EIO, GOPT_EFORMAT, GOPT_ENONFINITE, GOPT_ESTATE, GOPT_ERANGE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = gopt_status_str(all[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s, gopt_status_str(all[j]));
    }
    assert_string_equal(gopt_status_str((gopt_status)-999), "unknown status");
}

static void *other_thread(void *arg) {
    (void)arg;
    /* A fresh thread starts with no detail, whatever the main thread recorded. */
    return (void *)(uintptr_t)(gopt_last_error()[0] == '\0');
}

static void test_last_error_is_thread_local(void **state) {
    (void)state;
    assert_status(gopt_set_threads(-3), GOPT_EINVAL, "threads = -3");
    pthread_t t;
    void *clean = NULL;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &clean), 0);
    assert_true(clean != NULL);
    assert_true(strstr(gopt_last_error(), "gopt_set_threads") != NULL);
    gopt_clear_error();
    assert_string_equal(gopt_last_error(), "");
}

/* A detail names the public call the user made, not the helper that found the problem:
 * gopt_params_add checks the shape through gopt_shape_numel, gopt_optim_create validates
 * through gopt_optim_create_range and a static validate(), the arena clip through the
 * buffer one. */
static void test_detail_names_the_public_call(void **state) {
    (void)state;
    gopt_params *p;
    assert_ok(gopt_params_create(&p));
    const int64_t bad[2] = {4, -3}, four[1] = {4};
    int i;
    assert_int_equal(gopt_params_add(p, "w", 2, bad, GOPT_TAG_WEIGHT, &i), GOPT_EINVAL);
    assert_non_null(strstr(gopt_last_error(), "gopt_params_add: shape[1] = -3"));
    assert_ok(gopt_params_add(p, "w", 1, four, GOPT_TAG_WEIGHT, &i));
    assert_ok(gopt_params_finalize(p));
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_SGD);
    c.lr = -1.0f;
    gopt_optim *o = NULL;
    assert_int_equal(gopt_optim_create(&c, p, &o), GOPT_EINVAL);
    assert_true(strncmp(gopt_last_error(), "gopt_optim_create: sgd: lr = -1", 31) == 0);
    float norm;
    assert_int_equal(gopt_clip_grad_norm(p, -1.0, 2.0, 0, &norm), GOPT_EINVAL);
    assert_true(strncmp(gopt_last_error(), "gopt_clip_grad_norm: max_norm = -1", 34) == 0);
    gopt_params_destroy(p);
}

static void test_version(void **state) {
    (void)state;
    assert_int_equal(gopt_version(), GOPT_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GOPT_VERSION_MAJOR, GOPT_VERSION_MINOR, GOPT_VERSION_PATCH);
    assert_string_equal(gopt_version_string(), expect);
    assert_string_equal(GOPT_VERSION_STRING, expect);
}

static void test_threads(void **state) {
    (void)state;
    assert_int_equal(gopt_set_threads(1), GOPT_OK);
    assert_int_equal(gopt_get_threads(), 1);
    assert_int_equal(gopt_set_threads(0), GOPT_OK);
    assert_true(gopt_get_threads() >= 1);
    assert_int_equal(gopt_set_threads(2), GOPT_OK);
    assert_int_equal(gopt_get_threads(), 2);
}

static long custom_calls;
static void *counting_malloc(void *opaque, size_t size) {
    (void)opaque;
    custom_calls++;
    return malloc(size);
}

static void test_custom_allocator(void **state) {
    (void)state;
    gopt_allocator a = {counting_malloc, NULL, NULL}; /* free falls back to the C library */
    gopt_set_allocator(&a);
    gopt_tensor *t = NULL;
    const int64_t shape[1] = {10};
    assert_ok(gopt_tensor_create(1, shape, &t));
    assert_true(custom_calls >= 2);
    gopt_tensor_destroy(t);
    gopt_set_allocator(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_last_error_is_thread_local),
        cmocka_unit_test(test_detail_names_the_public_call),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_custom_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
