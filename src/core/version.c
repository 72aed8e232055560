/* Run-time version and thread control. */
#include <unistd.h>

#include "gradopt/version.h"
#include "core/blas.h"
#include "core/common.h"
#ifdef _OPENMP
#  include <omp.h>
#endif

unsigned gopt_version(void) { return GOPT_VERSION_NUMBER; }
const char *gopt_version_string(void) { return GOPT_VERSION_STRING; }

static int current_threads; /* 0 = not set yet: the library uses what OpenMP reports */

int gopt_set_threads(int threads) {
    if (threads < 0) return GOPT_FAIL(GOPT_EINVAL, "threads = %d must be >= 0 (0 = all cores)", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    current_threads = threads;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gopt__blas_set_threads(threads);
    return GOPT_OK;
}

int gopt_get_threads(void) {
    if (current_threads > 0) return current_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
