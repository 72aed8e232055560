/* Helpers shared by the bench programs: a monotonic clock, medians, and the PyTorch peer
 * (bench/torch_*.py run through python3 in the same invocation). */
#ifndef GOPT_BENCH_UTIL_H
#define GOPT_BENCH_UTIL_H

#include <stdio.h>

/* The floors' loops are compiled like the library's kernels: for AVX-512, AVX2 and the
 * baseline, picked at load time, so a floor never loses by instruction set alone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define BENCH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define BENCH_CLONES
/* The machine-readable line scripts/bench.sh collects, one per figure, on stdout:
 *   ROW<TAB>name<TAB>unit<TAB>ours<TAB>floor<TAB>peer
 * Higher is better for every unit (throughputs: GB/s, img/s, MB/s, tokens/s, ...). A floor or
 * peer that is not finite or not > 0 (absent, not measured) is printed as "-"; so is ours.
 * name and unit must hold no tab or newline. Flushes stdout (a later crash keeps the row). */
void bench_row(const char *name, const char *unit, double ours, double floor_, double peer);

#endif

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Median of v[0..n); sorts v in place. */
double bench_median(double *v, int n);

/* Runs `PYTHON SCRIPT ARGS` with stdout readable from the returned stream (close it with
 * pclose). SCRIPT is a file name in bench/ (this source directory) unless it holds a '/'.
 * PYTHON NULL: the first of python3 and /usr/bin/python3 that can import torch. Returns
 * NULL when no such python is found (torch is not installed: the comparison is skipped). */
FILE *bench_torch_open(const char *python, const char *script, const char *args);

/* The machine-readable line scripts/bench.sh collects, one per figure, on stdout:
 *   ROW<TAB>name<TAB>unit<TAB>ours<TAB>floor<TAB>peer
 * Higher is better for every unit (throughputs: GB/s, img/s, MB/s, tokens/s, ...). A floor or
 * peer that is not finite or not > 0 (absent, not measured) is printed as "-"; so is ours.
 * name and unit must hold no tab or newline. Flushes stdout (a later crash keeps the row). */
void bench_row(const char *name, const char *unit, double ours, double floor_, double peer);

#endif
