/* Helpers for the cmocka tests: a failing allocator for out-of-memory paths, and checks
 * that a call failed with a given status and a non-empty detail. */
#ifndef GOPT_TESTUTIL_H
#define GOPT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gradopt.h>

/* x[0..n) = standard normal draws of a generator seeded with `seed` */
static inline void testutil_fill_normal(float *x, int64_t n, uint64_t seed) {
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) x[i] = gopt_rng_normal(&rng);
}

/* the arena's gradients: normal draws (testutil_fill_normal) */
static inline void testutil_fill_grads(gopt_params *p, uint64_t seed) {
    testutil_fill_normal(gopt_params_grads(p), gopt_params_numel(p), seed);
}

/* Allocator that fails once `budget` allocations have succeeded (budget < 0: never). */
static long testutil_alloc_budget = -1;
static long testutil_alloc_count;
static void *testutil_malloc(void *opaque, size_t size) {
    (void)opaque;
    if (testutil_alloc_budget >= 0 && testutil_alloc_count >= testutil_alloc_budget) return NULL;
    testutil_alloc_count++;
    return malloc(size);
}
static void testutil_free(void *opaque, void *ptr) {
    (void)opaque;
    free(ptr);
}
static inline void testutil_fail_after(long n) {
    testutil_alloc_budget = n;
    testutil_alloc_count = 0;
    gopt_allocator a = {testutil_malloc, testutil_free, NULL};
    gopt_set_allocator(&a);
}
static inline void testutil_alloc_reset(void) {
    testutil_alloc_budget = -1;
    gopt_set_allocator(NULL);
}

static inline void testutil_check_detail(const char *needle) {
    if (needle != NULL && strstr(gopt_last_error(), needle) == NULL)
        fail_msg("detail '%s' does not mention '%s'", gopt_last_error(), needle);
}

/* Assert `expr` returned `status` and left a detail that contains `needle` (may be NULL). */
#define assert_status(expr, status, needle)                                                  \
    do {                                                                                     \
        gopt_clear_error();                                                                  \
        gopt_status testutil_s = (expr);                                                     \
        if (testutil_s != (status))                                                          \
            fail_msg("%s returned %d (%s), wanted %d; detail: %s", #expr, (int)testutil_s,   \
                     gopt_status_str(testutil_s), (int)(status), gopt_last_error());         \
        if ((status) != GOPT_OK) {                                                           \
            assert_true(strlen(gopt_last_error()) > 0);                                      \
            testutil_check_detail((needle));                                                 \
        }                                                                                    \
    } while (0)

#define assert_ok(expr) assert_status(expr, GOPT_OK, NULL)

#endif
