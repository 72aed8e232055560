/* gradopt/common.h: export macro, C++ guards, allocator hooks and thread control.
 *
 * Everything here is shared by the other public headers; include <gradopt.h> rather than
 * this file directly. */
#ifndef GRADOPT_COMMON_H
#define GRADOPT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(GOPT_SHARED)
#  define GOPT_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#  define GOPT_API __attribute__((visibility("default")))
#else
#  define GOPT_API
#endif

#ifdef __cplusplus
#  define GOPT_EXTERN_C_BEGIN extern "C" {
#  define GOPT_EXTERN_C_END }
#else
#  define GOPT_EXTERN_C_BEGIN
#  define GOPT_EXTERN_C_END
#endif

GOPT_EXTERN_C_BEGIN

/* Allocator used for every allocation the library makes (zstd's ZSTD_customMem idea).
 * malloc_fn must return memory aligned for any type; free_fn accepts NULL. Any field left
 * NULL falls back to the C library. `opaque` is passed to every call. Set it before creating
 * objects and keep it until all objects are destroyed: memory is freed through the allocator
 * that is current at destroy time. Not thread-safe with concurrent creates. */
typedef struct gopt_allocator {
    void *(*malloc_fn)(void *opaque, size_t size);
    void (*free_fn)(void *opaque, void *ptr);
    void *opaque;
} gopt_allocator;

/* Install `a` (copied), or restore the C library allocator with NULL. */
GOPT_API void gopt_set_allocator(const gopt_allocator *a);

/* Threads: the library owns the cores. `gopt_set_threads(T)` makes every later library call
 * use at most T busy cores: its own OpenMP loops run with T threads, and OpenBLAS (the OpenMP
 * build, libopenblas0-openmp, which shares the one OpenMP runtime) is told to use T threads
 * for the matrix products, which the library only ever calls from outside its own parallel
 * regions, so the two never stack. T = 0 means the number of online cores, the default.
 * Returns GOPT_EINVAL (as int) for T < 0, else 0.
 *
 * A shared machine: between parallel regions OpenMP's idle workers spin before they sleep
 * (libgomp: 300,000 polls), so beside another busy process they take its core and wait for
 * each other. The OpenMP runtime fixes that wait policy from OMP_WAIT_POLICY when the
 * process starts; a library cannot change it afterwards. Measured on AMD EPYC (Zen 3, 2
 * cores), a small conv net, 200 steps of batch 32: idle 1.43 s by default, 1.39 s with
 * OMP_WAIT_POLICY=passive, 1.90 s on one thread; beside one busy process 3.5 s by default,
 * 1.98 s passive, 1.94 s on one thread. ResNet-8 and ResNet-20 training steps on the idle
 * machine: passive within the run-to-run noise of the default (2103 vs 1999 and 707 vs 689
 * img/s, medians of 3). So on a machine you share, start your program with
 * OMP_WAIT_POLICY=passive: this project's example programs default to it themselves (they
 * re-execute once with it set when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set).
 * The thread count does not follow the machine's load: results are the same bits for one
 * binary, seed and thread count, and a count that changed with a neighbour's load would
 * make a run, and its bit-exact resume, depend on it. */
GOPT_API int gopt_set_threads(int threads);
/* The thread count currently in force (>= 1). */
GOPT_API int gopt_get_threads(void);

GOPT_EXTERN_C_END

#endif /* GRADOPT_COMMON_H */
