#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    if (n < 1) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

FILE *bench_torch_open(const char *python, const char *script, const char *args) {
    static const char *const candidates[] = {"python3", "/usr/bin/python3"};
    char path[4096], cmd[8192];
    int w = strchr(script, '/') ? snprintf(path, sizeof path, "%s", script)
                                : snprintf(path, sizeof path, "%s/%s", GOPT_BENCH_DIR, script);
    if (w < 0 || (size_t)w >= sizeof path) return NULL;
    for (int i = 0; i < 2; i++) {
        const char *py = python ? python : candidates[i];
        if (!python) {
            w = snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", py);
            if (w < 0 || (size_t)w >= sizeof cmd || system(cmd) != 0) continue;
        }
        w = snprintf(cmd, sizeof cmd, "%s '%s' %s", py, path, args ? args : "");
        if (w < 0 || (size_t)w >= sizeof cmd) return NULL;
        return popen(cmd, "r");
    }
    return NULL;
}

static void row_value(double v) {
    if (isfinite(v) && v > 0.0) printf("\t%.6g", v);
    else fputs("\t-", stdout);
}

void bench_row(const char *name, const char *unit, double ours, double floor_, double peer) {
    printf("ROW\t%s\t%s", name, unit);
    row_value(ours);
    row_value(floor_);
    row_value(peer);
    putchar('\n');
    fflush(stdout);
}
