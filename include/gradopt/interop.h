/* gradopt/interop.h: weights in and out of the library in the formats PyTorch and NumPy
 * users exchange: safetensors (export and import) and .npz (export and import). For the
 * library's own weights-only files (and the weights inside a one-call checkpoint), see
 * gopt_net_save_weights / gopt_net_load_weights in gradopt/checkpoint.h.
 *
 * What is written: every tensor of the parameter arena (values, not gradients) and, for a
 * net, its buffers (gopt_net_buffer_info, net.h: each BatchNorm's running_mean and
 * running_var) plus, unless cfg.num_batches_tracked < 0, each BatchNorm's
 * "<bn>.num_batches_tracked" as PyTorch's state_dict has it (int64, shape []). The library
 * does not count BatchNorm updates (its momentum is fixed; PyTorch uses the count only with
 * momentum=None), so the value written is cfg.num_batches_tracked for every BatchNorm; on
 * import those tensors are checked (one integer or float element) and their value ignored.
 *
 * Names (cfg.names):
 *  - GOPT_NAMES_TORCH (default): PyTorch's state_dict names. Layers keep the names given to
 *    gopt_net_add ("conv1.weight", "bn1.running_mean", "fc.bias", ...), which are PyTorch's
 *    when the layers are named as the attributes of the nn.Module; the k-th basic block of
 *    the net (0-based, in layer order; a block written out with nodes whose add node is named
 *    "<block>.add", as gopt_resnet_config.graph builds it, counts as one) becomes "layers.<k>"
 *    as the nn.Sequential `layers`
 *    of bench/torch_train.py, and its projection shortcut "shortcut.0" (conv) and
 *    "shortcut.1" (BatchNorm), so a gopt_resnet_cifar net reads and writes exactly the
 *    state_dict of bench/torch_train.py's ResNet of the same depth and width:
 *      conv1.weight, bn1.{weight,bias,running_mean,running_var,num_batches_tracked},
 *      layers.<k>.conv1.weight, layers.<k>.bn1.*, layers.<k>.conv2.weight, layers.<k>.bn2.*,
 *      layers.<k>.shortcut.0.weight, layers.<k>.shortcut.1.*, fc.weight, fc.bias.
 *    Layouts are PyTorch's already (linear weight (out,in), conv weight (K,C,R,R)), so no
 *    tensor is transposed. Recurrent layers keep the library's names (not nn.LSTM's).
 *  - GOPT_NAMES_ARENA: the arena's names ("layer1.0.shortcut.conv.weight") and the buffer
 *    names of net.h.
 *
 * safetensors (https://huggingface.co/docs/safetensors, the format of the `safetensors`
 * package): u64 little-endian N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"format": "pt"}} padded with spaces
 * to a multiple of 8, then the raw little-endian data; offsets are relative to the data.
 * The writer emits F32 (I64 for num_batches_tracked), tensors in the net's order, densely.
 * The reader takes F32, F16, BF16 and F64 (converted to float; F64 rounded to nearest) and
 * refuses, with GOPT_EFORMAT naming the file and the tensor: a file shorter than 8 bytes,
 * a header longer than the file or than 100 MB, JSON that is not an object of tensor
 * entries (each with dtype, shape of non-negative integers and two offsets; duplicate names;
 * other keys are ignored, as is "__metadata__"), an unknown dtype, offsets that do not
 * match dtype x shape, that run past the data, overlap, or leave bytes of the data
 * uncovered (the specification requires the tensors to tile the data). Then it matches
 * the file against the net: GOPT_ESHAPE for a shape that differs from the net's tensor
 * (both named), GOPT_EFORMAT for a dtype the tensor cannot take (an integer dtype for a
 * float tensor) and, when cfg.strict (default), for a tensor of the net missing from the
 * file or a tensor in the file the net does not have (num_batches_tracked is never
 * required). With strict = 0 missing tensors keep their values and unexpected ones are
 * ignored; the report says which. On any error nothing in the net or arena has changed.
 * The file is read whole into memory.
 *
 * .npz (numpy.savez): a zip archive of "<name>.npy" members, stored (not compressed), with
 * correct CRC-32s; each .npy is format 1.0, '<f4' (num_batches_tracked '<i8'), C order.
 * numpy.load(path)["conv1.weight"] gives the tensor. At most 65535 members and 4 GiB
 * (no zip64): GOPT_EOVERFLOW beyond.
 * The .npz reader takes what numpy.savez writes (zip64 fields included) and the writer
 * above: every member stored (not compressed), named "<tensor>.npy", a .npy array of
 * format 1.0, 2.0 or 3.0 with dtype float16/32/64, integer or bool of either byte order,
 * C order (Fortran order only for arrays with at most one dimension above 1), up to 8
 * dimensions. Floats are converted to float as the safetensors reader does; then the tensors
 * are matched against the net with the same names, strict rules, staging and report as
 * gopt_net_load_safetensors (on any error nothing changes). Refused with GOPT_EFORMAT
 * naming the file and the member: not a zip (no end record), a multi-disk or encrypted
 * archive, a member compressed with deflate (numpy.savez_compressed: "compressed with
 * deflate"; save with numpy.savez) or another method, a directory that does not end at the
 * end record, local headers that disagree with it or overlap, data past the directory, a
 * CRC-32 mismatch, a member not named "*.npy", a .npy without its magic, of another version,
 * with a header that is not {'descr': ..., 'fortran_order': ..., 'shape': (...)}, an
 * unsupported dtype (complex, strings, objects, structured), or data of another length
 * than dtype x shape. The whole file is read into memory and staged once more.
 *
 * Files are written to "<path>.tmp" and renamed over path once complete (a failed write
 * removes the temporary and leaves path as it was). Errors (all): GOPT_EINVAL (NULL, a
 * config field out of range), GOPT_EIO (open, read, write, rename; the detail names the
 * path and errno's text), GOPT_ENOMEM, and those above. */
#ifndef GRADOPT_INTEROP_H
#define GRADOPT_INTEROP_H

#include "net.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_weights_names {
    GOPT_NAMES_TORCH = 0, /* PyTorch state_dict names (above) */
    GOPT_NAMES_ARENA = 1  /* the library's names */
} gopt_weights_names;

typedef struct gopt_weights_config {
    gopt_weights_names names;    /* default GOPT_NAMES_TORCH */
    int strict;                  /* import: 1 (default) every tensor on both sides must match */
    int64_t num_batches_tracked; /* export: the value written for every BatchNorm; < 0: none */
} gopt_weights_config;

GOPT_API gopt_weights_config gopt_weights_config_default(void); /* TORCH, strict, 0 */

/* What an import did (may be NULL). On success: loaded + missing = the net's tensors
 * (arena + buffers); text lists the missing and unexpected names ("missing: a, b;
 * unexpected: c", truncated with "..."), empty when there are none. */
typedef struct gopt_weights_report {
    int loaded;     /* tensors written from the file */
    int missing;    /* tensors of the net not in the file (non-strict: left unchanged) */
    int unexpected; /* tensors of the file the net does not have (non-strict: ignored) */
    char text[1024];
} gopt_weights_report;

/* The name `name` (a tensor of the net's arena or a buffer name, net.h) has in PyTorch's
 * state_dict of the same model (GOPT_NAMES_TORCH above); names of other layers come back
 * unchanged. Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (buf too small: size <= length). */
GOPT_API gopt_status gopt_net_torch_name(const gopt_net *net, const char *name, char *buf, size_t size);

/* A net: its arena, its buffers and num_batches_tracked (above). cfg NULL: defaults. */
GOPT_API gopt_status gopt_net_save_safetensors(const gopt_net *net, const char *path,
                                               const gopt_weights_config *cfg);
GOPT_API gopt_status gopt_net_load_safetensors(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                               gopt_weights_report *report);
/* The same from bytes in memory; label names them in error details ("<memory>" if NULL). */
GOPT_API gopt_status gopt_net_load_safetensors_mem(gopt_net *net, const void *data, size_t size, const char *label,
                                                   const gopt_weights_config *cfg, gopt_weights_report *report);
GOPT_API gopt_status gopt_net_save_npz(const gopt_net *net, const char *path, const gopt_weights_config *cfg);
GOPT_API gopt_status gopt_net_load_npz(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                       gopt_weights_report *report);
GOPT_API gopt_status gopt_net_load_npz_mem(gopt_net *net, const void *data, size_t size, const char *label,
                                           const gopt_weights_config *cfg, gopt_weights_report *report);

/* An arena on its own (finalized): its tensors under their own names (cfg.names and
 * cfg.num_batches_tracked do not apply; cfg.strict does). Errors as above, GOPT_ESTATE
 * (not finalized). */
GOPT_API gopt_status gopt_params_save_safetensors(const gopt_params *p, const char *path);
GOPT_API gopt_status gopt_params_load_safetensors(gopt_params *p, const char *path, const gopt_weights_config *cfg,
                                                  gopt_weights_report *report);
GOPT_API gopt_status gopt_params_load_npz(gopt_params *p, const char *path, const gopt_weights_config *cfg,
                                          gopt_weights_report *report);

GOPT_EXTERN_C_END

#endif /* GRADOPT_INTEROP_H */
