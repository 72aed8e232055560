/* Private pieces shared by the safetensors and .npz writers and readers and the one-call
 * checkpoints (src/io/weights.c): the list of tensors a net or an arena exchanges, under the
 * names gradopt/interop.h describes, the write-to-temporary-then-rename file output, JSON
 * name escaping and reading a whole file. */
#ifndef GRADOPT_INTERNAL_WEIGHTS_H
#define GRADOPT_INTERNAL_WEIGHTS_H

#include <stdio.h>

#include "gradopt/interop.h"

#define GOPT__WNAME_MAX 128

/* Errors are recorded under the public function the user called (fn), not the helper. */
#define GOPT__FAIL_AS(fn, status, ...) gopt__fail((status), (fn), __VA_ARGS__)

typedef struct gopt__wslot {
    char name[GOPT__WNAME_MAX]; /* the exchanged name */
    int ndim;                   /* 0: a scalar (num_batches_tracked) */
    int64_t shape[4];
    int64_t numel;
    float *data;                /* into the arena or a batchnorm; NULL for num_batches_tracked */
    int is_count;               /* num_batches_tracked: int64, value `count` */
    int64_t count;
} gopt__wslot;

/* The tensors of net (p = its arena) or of the arena p alone (net NULL): arena order, then
 * the buffers, then (net, cfg->num_batches_tracked >= 0) one num_batches_tracked per
 * batchnorm. *out is freed with gopt__free; errors name fn. Errors: GOPT_ESTATE (arena not finalized),
 * GOPT_ENOMEM, GOPT_ERANGE (a name too long). */
gopt_status gopt__weights_gather(gopt_params *p, gopt_net *net, const gopt_weights_config *cfg, gopt__wslot **out,
                                 int *n, const char *fn);

/* Writing path through "<path>.tmp": open gives *f (GOPT_EIO naming it); finish checks the
 * stream, fsyncs, closes and renames (GOPT_EIO), abort closes and removes the temporary. */
typedef struct gopt__wfile {
    const char *fn; /* the public function, named in error details */
    FILE *f;
    char *path, *tmp;
} gopt__wfile;
gopt_status gopt__wfile_open(gopt__wfile *w, const char *path, const char *fn);
gopt_status gopt__wfile_finish(gopt__wfile *w);
void gopt__wfile_abort(gopt__wfile *w);
/* fwrite with the stream's error checked at finish. */
static inline void gopt__wfile_put(gopt__wfile *w, const void *p, size_t n) {
    if (n) (void)fwrite(p, 1, n, w->f);
}
/* Little-endian encoders. */
static inline void gopt__le16(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}
static inline void gopt__le32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static inline void gopt__le64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
/* The slot's data as little-endian bytes (float32, or the int64 count), through a bounce
 * buffer. */
void gopt__wfile_put_slot(gopt__wfile *w, const gopt__wslot *s);
/* CRC-32 (zip, IEEE 802.3) of the slot's bytes as put_slot writes them, continuing crc. */
uint32_t gopt__crc32(uint32_t crc, const void *data, size_t n);
uint32_t gopt__crc32_slot(uint32_t crc, const gopt__wslot *s);

/* The n bytes of s as the body of a JSON string ('"' and '\\' escaped, control bytes as \u00XX):
 * written to o (which then needs one byte beyond the result for the terminating NUL an escape
 * may write), or only measured when o is NULL; returns the length. */
size_t gopt__json_escape(char *o, const char *s, size_t n);

/* The whole file at path in *out (freed with gopt__free; one spare byte allocated), its size
 * in *size. Errors name fn: GOPT_EIO (cannot open, size or read it), GOPT_ENOMEM. */
gopt_status gopt__read_whole(const char *path, unsigned char **out, size_t *size, const char *fn);

/* The safetensors import of src/io/safetensors.c (strict matching, staging, report) over
 * bytes in memory, for the other readers (weights-only files, .npz): label names the bytes
 * in details, fn the public function; cfg NULL: defaults. */
gopt_status gopt__safetensors_import(gopt_params *p, gopt_net *net, const void *buf, size_t size, const char *label,
                                     const gopt_weights_config *cfg, gopt_weights_report *report, const char *fn);

#endif
