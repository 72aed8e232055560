/* Private: the NumPy .npy reader shared by the datasets (src/io/dataset_array.c) and any
 * other reader of .npy bytes (an .npz member is a whole .npy file).
 *
 * Format (numpy.lib.format, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 *   "\x93NUMPY", major, minor (1.0, 2.0 or 3.0), header length (u16 LE for 1.0, u32 LE for
 *   2.0/3.0), then a Python dict literal {'descr': '<f4', 'fortran_order': False,
 *   'shape': (3, 4), } padded with spaces and ending in '\n', then the raw data, C order.
 * Accepted: descr '<f4', '<f8', '<i4', '<i8' ('=' and '|' are not little-endian spellings
 * numpy writes for these, and are refused); fortran_order False; up to GOPT__NPY_MAX_DIMS
 * dimensions (0 dims: a scalar); and exactly numel * itemsize data bytes after the header. */
#ifndef GRADOPT_IO_NPY_H
#define GRADOPT_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "gradopt/status.h"

#define GOPT__NPY_MAX_DIMS 8

typedef enum gopt__npy_dtype {
    GOPT__NPY_F4 = 0, /* '<f4' float32 */
    GOPT__NPY_F8,     /* '<f8' float64 */
    GOPT__NPY_I4,     /* '<i4' int32 */
    GOPT__NPY_I8      /* '<i8' int64 */
} gopt__npy_dtype;

typedef struct gopt__npy_header {
    gopt__npy_dtype dtype;
    int itemsize; /* 4 or 8 */
    int major;    /* format version 1, 2 or 3 */
    int ndim;
    int64_t shape[GOPT__NPY_MAX_DIMS];
    int64_t numel;      /* product of shape (1 for a scalar) */
    size_t data_offset; /* where the data starts */
    size_t data_bytes;  /* numel * itemsize */
} gopt__npy_header;

/* The name of a dtype, e.g. "'<f4' (float32)". */
const char *gopt__npy_dtype_name(gopt__npy_dtype d);

/* Parse and validate the .npy bytes buf[0..size) (the whole file: the data length is
 * checked against size). Errors are GOPT_EFORMAT, recorded as "func: NAME: problem". */
gopt_status gopt__npy_parse(const void *buf, size_t size, const char *name, const char *func,
                            gopt__npy_header *out);

/* A .npy file mapped read-only (mmap: pages are read on demand, so files larger than RAM
 * work). data points at the first element (not necessarily aligned for its type: read it
 * with memcpy). */
typedef struct gopt__npy_map {
    void *map;
    size_t map_len;
    const unsigned char *data;
    gopt__npy_header h;
} gopt__npy_map;

/* Errors: GOPT_EIO naming the path and strerror (open, stat, not a regular file, mmap),
 * GOPT_EFORMAT as gopt__npy_parse. On failure *out is zeroed. */
gopt_status gopt__npy_map_open(const char *path, const char *func, gopt__npy_map *out);
void gopt__npy_map_close(gopt__npy_map *m); /* zeroed or NULL map: no-op */

#endif /* GRADOPT_IO_NPY_H */
