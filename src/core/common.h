/* Private helpers shared by every module: error recording, allocation, bounded
 * serialisation cursors, and small checks. Not installed. */
#ifndef GRADOPT_INTERNAL_COMMON_H
#define GRADOPT_INTERNAL_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "gradopt/status.h"
#include "gradopt/tensor.h"

#if defined(__GNUC__)
#  define GOPT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#  define GOPT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define GOPT_PRINTF(a, b)
#  define GOPT_UNLIKELY(x) (x)
#endif

/* Record "func: message" as this thread's detail and return s. */
gopt_status gopt__fail(gopt_status s, const char *func, const char *fmt, ...) GOPT_PRINTF(3, 4);
#define GOPT_FAIL(status, ...) gopt__fail((status), __func__, __VA_ARGS__)

/* Return GOPT_EINVAL naming the argument when ptr is NULL. */
#define GOPT_CHECK_NULL(ptr) \
    do { if ((ptr) == NULL) return GOPT_FAIL(GOPT_EINVAL, "argument '%s' is NULL", #ptr); } while (0)

/* Propagate a failing status. In a public function (gopt_x, not gopt__x) the detail's
 * leading "helper: " becomes "gopt_x: ", so the user reads the call they made, not the
 * internal helper or lower-level public function that found the problem (see gopt__retag). */
#define GOPT_TRY(expr) \
    do { gopt_status gopt__s = (expr); if (gopt__s != GOPT_OK) return gopt__retag(gopt__s, __func__); } while (0)

/* return expr, a status, retagged as GOPT_TRY does: for a public function that delegates
 * to another ("return gopt_x_range(...)") so the detail names the one the user called. */
#define GOPT_RETURN(expr) \
    do { gopt_status gopt__s = (expr); return gopt__s == GOPT_OK ? gopt__s : gopt__retag(gopt__s, __func__); } while (0)

/* When func is a public name (gopt_ prefix, not gopt__), replace the leading identifier of
 * this thread's detail ("validate: ...", "gopt_shape_numel: ...") with func; return s. Only
 * the first prefix changes: a wrapped detail ("x: loading f: y: ...") keeps its inner ones. */
gopt_status gopt__retag(gopt_status s, const char *func);

/* Allocation through the user's allocator (see gopt_set_allocator). */
void *gopt__malloc(size_t size);
void *gopt__calloc(size_t n, size_t size);      /* zeroed; NULL on overflow */
void *gopt__aligned_alloc(size_t size);          /* 64-byte aligned, zeroed */
void gopt__aligned_free(void *ptr);
void gopt__free(void *ptr);
char *gopt__strdup(const char *s);

/* Unregister the tensors added after the first `count` of an arena not yet finalized: a
 * layer whose create failed takes its parameters back out (src/core/params.c). */
struct gopt_params;
void gopt__params_truncate(struct gopt_params *p, int count);

/* Overflow-checked size arithmetic: return 0 on overflow. */
static inline int gopt__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* ---- bounded serialisation ------------------------------------------------------------
 * Little-endian-as-the-host fixed-size fields (checkpoints are not portable across
 * endianness; the checkpoint header records it). A cursor never writes or reads past its
 * end: once an access would overflow, `ok` drops to 0 and further accesses do nothing. */
typedef struct gopt__wcur {
    unsigned char *p, *end;
    int ok;
} gopt__wcur;
typedef struct gopt__rcur {
    const unsigned char *p, *end;
    int ok;
} gopt__rcur;

static inline gopt__wcur gopt__wcur_make(void *buf, size_t size) {
    gopt__wcur c = {(unsigned char *)buf, (unsigned char *)buf + size, buf != NULL};
    return c;
}
static inline gopt__rcur gopt__rcur_make(const void *buf, size_t size) {
    gopt__rcur c = {(const unsigned char *)buf, (const unsigned char *)buf + size, buf != NULL};
    return c;
}
static inline void gopt__put(gopt__wcur *c, const void *src, size_t n) {
    if (!c->ok || (size_t)(c->end - c->p) < n) { c->ok = 0; return; }
    if (n) memcpy(c->p, src, n);
    c->p += n;
}
static inline void gopt__get(gopt__rcur *c, void *dst, size_t n) {
    if (!c->ok || (size_t)(c->end - c->p) < n) { c->ok = 0; return; }
    if (n) memcpy(dst, c->p, n);
    c->p += n;
}
static inline void gopt__put_u32(gopt__wcur *c, uint32_t v) { gopt__put(c, &v, sizeof v); }
static inline void gopt__put_u64(gopt__wcur *c, uint64_t v) { gopt__put(c, &v, sizeof v); }
static inline void gopt__put_i64(gopt__wcur *c, int64_t v) { gopt__put(c, &v, sizeof v); }
static inline void gopt__put_f32(gopt__wcur *c, float v) { gopt__put(c, &v, sizeof v); }
static inline void gopt__put_f64(gopt__wcur *c, double v) { gopt__put(c, &v, sizeof v); }
static inline uint32_t gopt__get_u32(gopt__rcur *c) { uint32_t v = 0; gopt__get(c, &v, sizeof v); return v; }
static inline uint64_t gopt__get_u64(gopt__rcur *c) { uint64_t v = 0; gopt__get(c, &v, sizeof v); return v; }
static inline int64_t gopt__get_i64(gopt__rcur *c) { int64_t v = 0; gopt__get(c, &v, sizeof v); return v; }
static inline float gopt__get_f32(gopt__rcur *c) { float v = 0; gopt__get(c, &v, sizeof v); return v; }
static inline double gopt__get_f64(gopt__rcur *c) { double v = 0; gopt__get(c, &v, sizeof v); return v; }

/* A sum over the processes of a data-parallel run, in place: v[0..n-1] becomes the sum of
 * every process's v, the same bits on each (gradopt/dist.h installs one; the layers and the
 * monitor call it where a statistic must be global). */
typedef gopt_status (*gopt__sum_fn)(void *ctx, double *v, int n);

/* Four-byte magic tags for state blobs, e.g. GOPT__MAGIC('P','R','M','1'). */
#define GOPT__MAGIC(a, b, c, d) \
    ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

/* 1 if x is neither NaN nor infinite. */
static inline int gopt__finite(double x) { return isfinite(x); }

#endif /* GRADOPT_INTERNAL_COMMON_H */
