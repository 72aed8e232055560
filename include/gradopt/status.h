/* gradopt/status.h: status codes and error detail.
 *
 * Every fallible function returns a gopt_status: 0 on success, a negative code otherwise.
 * The library never prints, exits or aborts; instead the failing call records a detail
 * message (which argument, field, file or shape was wrong) that gopt_last_error() returns.
 * The detail is thread-local and stays until the next failure on the same thread
 * (libuv's uv_strerror + zstd's ZSTD_getErrorName). */
#ifndef GRADOPT_STATUS_H
#define GRADOPT_STATUS_H

#include "common.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_status {
    GOPT_OK = 0,
    GOPT_EINVAL = -1,     /* an argument or config field is out of range, or NULL */
    GOPT_ENOMEM = -2,     /* an allocation failed */
    GOPT_ESHAPE = -3,     /* tensor shapes do not match */
    GOPT_EOVERFLOW = -4,  /* a size computation would overflow */
    GOPT_EIO = -5,        /* a file could not be opened, read or written */
    GOPT_EFORMAT = -6,    /* a file or buffer is malformed, truncated or of another version */
    GOPT_ENONFINITE = -7, /* a NaN or Inf was found where a finite value is required */
    GOPT_ESTATE = -8,     /* the call is not valid in the object's current state */
    GOPT_ERANGE = -9      /* an index is out of range */
} gopt_status;

/* Short static description of a status ("invalid argument", ...); never NULL. */
GOPT_API const char *gopt_status_str(gopt_status s);

/* Detail of the most recent failure on this thread, e.g.
 * "gopt_optim_create: betas[0] = 1.5 is outside [0, 1)". Empty string if none yet. */
GOPT_API const char *gopt_last_error(void);

/* Forget the detail of the last failure on this thread. */
GOPT_API void gopt_clear_error(void);

GOPT_EXTERN_C_END

#endif /* GRADOPT_STATUS_H */
