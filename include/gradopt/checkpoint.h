/* gradopt/checkpoint.h: one crash-safe file of named, checksummed sections.
 *
 * A generic container: callers compose a checkpoint from each object's state blob (the
 * gopt_X_state_size/save/load convention of params.h) plus whatever else they need:
 *   gopt_ckpt_writer *w;
 *   gopt_ckpt_writer_begin("run/ckpt.bin", &w);
 *   gopt_ckpt_writer_add(w, "params", blob, size);        // gopt_params_state_save
 *   gopt_ckpt_writer_add(w, "optim", blob2, size2);       // the optimizer's state
 *   gopt_ckpt_writer_add_u64(w, "step", step);
 *   gopt_ckpt_writer_add(w, "config", text, strlen(text));
 *   gopt_ckpt_writer_commit(w);                           // w is freed, success or not
 * and read it back with
 *   gopt_ckpt *c; gopt_ckpt_open("run/ckpt.bin", &c);
 *   const void *p; size_t n; gopt_ckpt_find(c, "params", &p, &n);
 *   gopt_params_state_load(params, p, n); ... gopt_ckpt_close(c);
 *
 * Crash safety: begin creates "<path>.tmp.XXXXXX" in the target's directory and add writes
 * each section there as it comes; commit appends the section table, rewrites the header,
 * fsyncs the file, renames it over `path` and fsyncs the directory. The guarantee:
 *   After a crash at any moment (the process killed, even by SIGKILL, or the machine losing
 *   power, on a file system that honours fsync), `path` holds the old checkpoint (nothing if
 *   there was none) or the new one, complete, never a mix; once commit has returned GOPT_OK
 *   it holds the new one. A writer that dies leaves at most its own temporary file, and the
 *   next writer of the same path removes what the dead one left.
 * How: until the rename the previous file at `path` is untouched. Each writer holds
 * flock(LOCK_EX) on its temporary file from creation to commit or abort (the lock ends with
 * the process, however it ends), and begin removes every "<basename of path>.tmp.XXXXXX"
 * (six letters or digits) in that directory that it can lock: those of writers that died.
 * Names of that form next to a checkpoint are the writer's; do not give other files such
 * names. Two writers of one path at once (threads or processes) do not disturb each other;
 * the last commit wins. On a file system without flock nothing is removed.
 *
 * Failed writes (a full disk, a quota, the file size limit RLIMIT_FSIZE, a read-only or
 * unwritable directory, an I/O error) return GOPT_EIO naming `path`, the step and the
 * cause ("No space left on device", "the file size limit RLIMIT_FSIZE, `ulimit -f`, was
 * reached", "read-only file system", ...). The temporary file is removed at once, the
 * previous checkpoint is untouched and nothing the caller passed is changed, so the caller
 * can save again once the cause is gone. Growing a file past RLIMIT_FSIZE also sends SIGXFSZ,
 * which by default ends the process: the writer blocks SIGXFSZ in the calling thread
 * around its write calls and takes back the signal its own write raised, so the process
 * lives on and its signal mask, pending signals (a SIGXFSZ pending before stays pending) and
 * dispositions are as they were. (Programs should still ignore SIGXFSZ for their own files:
 * see examples/train_cifar10.c.)
 *
 * File layout (host byte order; the header records it, and a file from a host of the other
 * endianness is refused):
 *   header, 64 bytes: magic "GOPTCKPT" (8), version u32 (= GOPT_CKPT_VERSION),
 *     byte-order mark u32 (0x01020304), section count u32, reserved u32 (0),
 *     table offset u64, table size u64, file size u64, table CRC-32 u32, reserved u32 (0),
 *     reserved u32 (0), header CRC-32 u32 (over the 60 bytes before it);
 *   section data, back to back, starting at byte 64;
 *   section table: per section, name (64 bytes, NUL-padded, 1..63 bytes long), data offset
 *     u64, data size u64, data CRC-32 u32, reserved u32 (0): 88 bytes each.
 * CRC-32 is the IEEE 802.3 / zlib polynomial (reflected 0xEDB88320, init and final xor
 * 0xFFFFFFFF). Every field is checked on open: with the header, table and section checksums,
 * any single changed byte anywhere in the file is an error. */
#ifndef GRADOPT_CHECKPOINT_H
#define GRADOPT_CHECKPOINT_H

#include "status.h"

GOPT_EXTERN_C_BEGIN

#define GOPT_CKPT_VERSION 1
#define GOPT_CKPT_NAME_MAX 64   /* section names are 1..63 bytes */
#define GOPT_CKPT_HEADER_BYTES 64
#define GOPT_CKPT_ENTRY_BYTES 88

/* CRC-32 (IEEE) of size bytes, continuing from crc (start with 0). */
GOPT_API uint32_t gopt_crc32(uint32_t crc, const void *data, size_t size);

/* ---- writer ----------------------------------------------------------------------------- */
typedef struct gopt_ckpt_writer gopt_ckpt_writer;

/* Start a checkpoint that will replace `path` on commit: first remove the temporary files
 * dead writers of `path` left (see "Crash safety"), then create and lock this one's.
 * Errors: GOPT_EINVAL (NULL or empty path), GOPT_EIO (the temporary file cannot be
 *         created or its header written: naming it, strerror and the cause), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_ckpt_writer_begin(const char *path, gopt_ckpt_writer **out);

/* Append a section (data copied to the file now; data may be NULL when size == 0).
 * Errors: GOPT_EINVAL (name NULL, empty, longer than 63 bytes or already added), GOPT_EIO (write
 *         failure, naming the path, the section and the cause; the temporary file is already
 *         removed), GOPT_EOVERFLOW, GOPT_ENOMEM. After GOPT_EIO the writer can only be
 *         aborted (commit returns GOPT_ESTATE). */
GOPT_API gopt_status gopt_ckpt_writer_add(gopt_ckpt_writer *w, const char *name, const void *data, size_t size);
/* A section holding one u64 (8 bytes, host order): counters such as epoch and step. */
GOPT_API gopt_status gopt_ckpt_writer_add_u64(gopt_ckpt_writer *w, const char *name, uint64_t value);
/* A section holding a NUL-free text (strlen(text) bytes, no terminator), e.g. the config. */
GOPT_API gopt_status gopt_ckpt_writer_add_text(gopt_ckpt_writer *w, const char *name, const char *text);

/* Finish, fsync, rename over the target, fsync the directory; frees w in every case
 * (on failure the temporary file is removed and the previous checkpoint is intact).
 * Errors: GOPT_EINVAL (w NULL), GOPT_ESTATE (an earlier add failed), GOPT_EIO (naming
 *         the path, the step and strerror). */
GOPT_API gopt_status gopt_ckpt_writer_commit(gopt_ckpt_writer *w);

/* Discard: close and remove the temporary file, free w. NULL is a no-op. */
GOPT_API void gopt_ckpt_writer_abort(gopt_ckpt_writer *w);

/* ---- reader ------------------------------------------------------------------------------ */
typedef struct gopt_ckpt gopt_ckpt;

/* Read the whole file and check it: header (magic, version, byte order, size, CRC), table
 * (bounds, CRC, names, overlaps, duplicates) and every section's CRC.
 * Errors: GOPT_EINVAL (NULL), GOPT_EIO (open/read failure: path and strerror),
 *   GOPT_EFORMAT naming what is wrong: "bad magic", "unsupported version N",
 *   "truncated at byte X", "header checksum mismatch", "section table out of bounds",
 *   "section 'optim' checksum mismatch", ...; GOPT_ENOMEM. *out is NULL on failure. */
GOPT_API gopt_status gopt_ckpt_open(const char *path, gopt_ckpt **out);
GOPT_API void gopt_ckpt_close(gopt_ckpt *c); /* NULL is a no-op */

GOPT_API int gopt_ckpt_section_count(const gopt_ckpt *c);
/* Name and size of section `index` (in the order they were added); name is owned by c.
 * Errors: GOPT_EINVAL, GOPT_ERANGE. */
GOPT_API gopt_status gopt_ckpt_section_info(const gopt_ckpt *c, int index, const char **name, size_t *size);
/* 1 if a section of that name exists, else 0. */
GOPT_API int gopt_ckpt_has(const gopt_ckpt *c, const char *name);
/* The bytes of section `name` (owned by c, valid until close, 16-byte aligned).
 * Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (no such section, naming it). */
GOPT_API gopt_status gopt_ckpt_find(const gopt_ckpt *c, const char *name, const void **data, size_t *size);
/* A section written by gopt_ckpt_writer_add_u64. Errors: as find, GOPT_EFORMAT (not 8 bytes). */
GOPT_API gopt_status gopt_ckpt_get_u64(const gopt_ckpt *c, const char *name, uint64_t *value);

GOPT_EXTERN_C_END

#endif /* GRADOPT_CHECKPOINT_H */
