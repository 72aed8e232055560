/* A user program built against the installed libgradopt: make an arena, fill it, and
 * check a failure is reported with a detail message. */
#include <gradopt.h>
#include <stdio.h>

int main(void) {
    gopt_params *p = NULL;
    const int64_t shape[2] = {3, 4};
    if (gopt_params_create(&p) != GOPT_OK || gopt_params_add(p, "w", 2, shape, GOPT_TAG_WEIGHT, NULL) != GOPT_OK ||
        gopt_params_finalize(p) != GOPT_OK) {
        fprintf(stderr, "consumer: %s\n", gopt_last_error());
        return 1;
    }
    gopt_status s = gopt_params_add(p, "late", 2, shape, GOPT_TAG_WEIGHT, NULL);
    printf("libgradopt %s: %lld params; adding after finalize -> %s (%s)\n", gopt_version_string(),
           (long long)gopt_params_numel(p), gopt_status_str(s), gopt_last_error());
    gopt_params_destroy(p);
    return s == GOPT_ESTATE ? 0 : 1;
}
