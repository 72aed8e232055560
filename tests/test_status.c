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
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_custom_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
