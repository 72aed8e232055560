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
#include "clip.h"
#include "data.h"
#include "interop.h"
#include "monitor.h"
#include "sched.h"
#include "text.h"

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

/* ---- one-call checkpoints (src/io/ckpt_bundle.c) ----------------------------------------
 * List what a run needs, once, and save or load all of it in one call:
 *   int64_t epoch = 0, step = 0;
 *   char note[256] = "";
 *   gopt_ckpt_entry run[] = {
 *       gopt_ckpt_params("params", params),     gopt_ckpt_net("net", net),
 *       gopt_ckpt_optim("optim", opt),          gopt_ckpt_sched("sched", sched),
 *       gopt_ckpt_monitor("monitor", mon),      gopt_ckpt_loader("loader", loader),
 *       gopt_ckpt_rng("rng", &rng),             gopt_ckpt_i64("epoch", &epoch),
 *       gopt_ckpt_i64("step", &step),           gopt_ckpt_text("note", "lr 0.1, seed 1", note, sizeof note),
 *   };
 *   gopt_checkpoint_save("run/ckpt.bin", run, 10);   // every 1000 steps
 *   gopt_checkpoint_load("run/ckpt.bin", run, 10);   // at start-up, if the file exists
 * (PyTorch's general checkpoint, torch.save of a dict of state_dicts plus epoch and loss,
 * https://pytorch.org/tutorials/recipes/recipes/saving_and_loading_a_general_checkpoint.html,
 * here with the atomic write and the all-or-nothing load below.)
 * Each entry is a section of a gopt_ckpt file (the container above): the object's state blob
 * (its gopt_X_state_save), or the variable's bytes. The file also holds a section
 * "__entries__" listing each section's name and kind, so load can say "section 'sched' holds
 * a monitor" instead of failing in the wrong parser, and gopt_checkpoint_list can describe
 * a file without the objects.
 *
 * Kinds and what is stored:
 *   params, net, optim, sched, monitor, loader, text_loader, average, accum: the object's
 *     state blob (params.h convention). A net entry "N" also writes "N.weights": the net's
 *     parameter values and buffers by name (the weights-only image below), so that
 *     gopt_net_load_weights reads the weights out of a full checkpoint; the net's state blob
 *     alone (BatchNorm statistics, dropout streams) is what gopt_checkpoint_load restores
 *     from a net entry (the values come from the params entry). The copy makes the file
 *     one arena larger: ResNet-20 under AdamW, 4.40 MB instead of 3.29 MB.
 *   rng: the four words of a gopt_rng (32 bytes);
 *   u64, i64, int: the counter as 8 bytes (host order; gopt_ckpt_get_u64 reads any of them;
 *     an int entry refuses on load a value outside int's range);
 *   text: save writes `text` (NUL-free, without terminator); load copies it into out
 *     (out_size bytes with the terminator; a longer text is an error) or, out NULL, only
 *     checks that the section is there;
 *   blob: size bytes at data, saved and loaded as they are (load requires the same size);
 *   object: user callbacks with the params.h convention over an object of the user's.
 *
 * Save (GOPT_EINVAL for a bad list: NULL, n < 1, an empty or duplicate name, a name longer
 * than 55 bytes (room for ".weights"), ending in ".weights", equal to "__entries__" or holding
 * a tab or newline, a kind outside the enum, an entry without its object or callbacks, a
 * text entry without text):
 * the sections are written through gopt_ckpt_writer, so the crash-safety guarantee above
 * holds: on any failure (an object's state_save, a write, a full disk) the previous file at
 * path is intact and the error names the section. Nothing listed is changed by save.
 *
 * Load: opens and checks the whole file (gopt_ckpt_open), then checks every entry before
 * any object changes: its section is there (an entry with .optional = 1 may be missing and
 * is then left as it is), of the entry's kind (when the file has "__entries__"; files written
 * section by section with gopt_ckpt_writer load too, unchecked), of the right size for rng,
 * counters, text and blob. Then each object's current state is kept in memory (one
 * state_size allocation per object: for an optimizer, about twice the arena) and the
 * entries are loaded in order; when an object's own state_load refuses its section (another
 * architecture: "tensor 'fc.weight' ..."), the entries loaded before it are put back from
 * the kept states, so a failed load leaves every listed object and variable as it was.
 * Sections of the file no entry names are ignored: a list of just the counters and the text
 * reads them without touching anything else.
 * Errors: GOPT_EINVAL (above), GOPT_EIO, GOPT_EFORMAT (the container; "section 'optim' (optim)
 *   is missing"; "section 'sched' holds a monitor, the entry is a sched"; "section 'step' is
 *   4 bytes, an i64 entry takes 8"; "section 'epochs' holds 3000000000, outside int"), the
 *   status of an object's state_load with "section 'params' (params): " before its detail
 *   and "; nothing was changed" after it, GOPT_ERANGE (a text longer than out_size - 1),
 *   GOPT_ENOMEM. */
typedef enum gopt_ckpt_kind {
    GOPT_CKPT_PARAMS = 1,
    GOPT_CKPT_NET,
    GOPT_CKPT_OPTIM,
    GOPT_CKPT_SCHED,
    GOPT_CKPT_MONITOR,
    GOPT_CKPT_LOADER,
    GOPT_CKPT_TEXT_LOADER,
    GOPT_CKPT_AVERAGE,
    GOPT_CKPT_ACCUM,
    GOPT_CKPT_RNG,
    GOPT_CKPT_U64,
    GOPT_CKPT_I64,
    GOPT_CKPT_INT,
    GOPT_CKPT_TEXT,
    GOPT_CKPT_BLOB,
    GOPT_CKPT_OBJECT
} gopt_ckpt_kind;

/* One thing to save and load. Build it with the constructors below (they fill every field);
 * set .optional = 1 afterwards if a load may find the section missing. */
typedef struct gopt_ckpt_entry {
    const char *name;    /* the section name */
    gopt_ckpt_kind kind;
    void *obj;           /* the object, the variable (rng, counter), text's out, blob's data */
    const char *text;    /* text: what save writes (NULL: the entry is load-only, save refuses) */
    size_t size;         /* text: out_size; blob: bytes */
    int optional;        /* load: a missing section leaves the entry as it is */
    /* object: the params.h convention over obj */
    size_t (*state_size)(const void *obj);
    gopt_status (*state_save)(const void *obj, void *buf, size_t size);
    gopt_status (*state_load)(void *obj, const void *buf, size_t size);
} gopt_ckpt_entry;

GOPT_API gopt_ckpt_entry gopt_ckpt_params(const char *name, gopt_params *p);
GOPT_API gopt_ckpt_entry gopt_ckpt_net(const char *name, gopt_net *net);
GOPT_API gopt_ckpt_entry gopt_ckpt_optim(const char *name, gopt_optim *opt);
GOPT_API gopt_ckpt_entry gopt_ckpt_sched(const char *name, gopt_sched *s);
GOPT_API gopt_ckpt_entry gopt_ckpt_monitor(const char *name, gopt_monitor *m);
GOPT_API gopt_ckpt_entry gopt_ckpt_loader(const char *name, gopt_loader *l);
GOPT_API gopt_ckpt_entry gopt_ckpt_text_loader(const char *name, gopt_text_loader *l);
GOPT_API gopt_ckpt_entry gopt_ckpt_average(const char *name, gopt_average *avg);
GOPT_API gopt_ckpt_entry gopt_ckpt_accum(const char *name, gopt_accum *a);
GOPT_API gopt_ckpt_entry gopt_ckpt_rng(const char *name, gopt_rng *rng);
GOPT_API gopt_ckpt_entry gopt_ckpt_u64(const char *name, uint64_t *value);
GOPT_API gopt_ckpt_entry gopt_ckpt_i64(const char *name, int64_t *value);
GOPT_API gopt_ckpt_entry gopt_ckpt_int(const char *name, int *value);
/* text: saved from `text`; loaded into out[out_size] (out may be NULL: not read back) */
GOPT_API gopt_ckpt_entry gopt_ckpt_text(const char *name, const char *text, char *out, size_t out_size);
GOPT_API gopt_ckpt_entry gopt_ckpt_blob(const char *name, void *data, size_t size);
GOPT_API gopt_ckpt_entry gopt_ckpt_object(const char *name, void *obj, size_t (*state_size)(const void *obj),
                                          gopt_status (*state_save)(const void *obj, void *buf, size_t size),
                                          gopt_status (*state_load)(void *obj, const void *buf, size_t size));

GOPT_API gopt_status gopt_checkpoint_save(const char *path, const gopt_ckpt_entry *entries, int n);
GOPT_API gopt_status gopt_checkpoint_load(const char *path, const gopt_ckpt_entry *entries, int n);

/* A description of the file at path without any object: one line per section,
 *   "<name> <kind> <bytes> bytes[ = <value>]"
 * with the value of counters (u64/i64/int) and of text sections (up to 200 bytes, quoted,
 * with control characters as '?'); <kind> is "section" for a file without "__entries__".
 * Written into buf (size bytes, NUL-terminated, truncated with "..." if too small); *needed
 * (may be NULL) gets the length the whole listing needs, without the terminator.
 * Errors: GOPT_EINVAL (NULL path or buf with size 0), those of gopt_ckpt_open. */
GOPT_API gopt_status gopt_checkpoint_list(const char *path, char *buf, size_t size, size_t *needed);

/* ---- weights-only files ---------------------------------------------------------------------
 * The net's parameter values and buffers (BatchNorm running statistics) by name, for
 * inference or fine-tuning; no optimizer, no dropout streams. The file is a gopt_ckpt
 * container (crash-safe as above) with a section "weights" (kind "weights") holding a
 * safetensors image of the net in the library's names (GOPT_NAMES_ARENA, gradopt/interop.h,
 * no num_batches_tracked). Load reads such a file or a full one-call checkpoint (the
 * "<net>.weights" section of its first net entry) and matches by name as
 * gopt_net_load_safetensors does: cfg NULL is strict (every tensor on both sides, shapes
 * equal), errors name the missing, unexpected or mismatched tensor (GOPT_EFORMAT,
 * GOPT_ESHAPE), and a failed load changes nothing. cfg->names is ignored (the file holds
 * arena names). To hand weights to PyTorch or NumPy instead, see gradopt/interop.h
 * (gopt_net_save_safetensors, gopt_net_save_npz).
 * Errors: GOPT_EINVAL, GOPT_ESTATE (net not built), GOPT_EIO, GOPT_EFORMAT (not a weights
 *   file or checkpoint with a net entry: "has no weights section"), GOPT_ESHAPE, GOPT_ENOMEM. */
GOPT_API gopt_status gopt_net_save_weights(const gopt_net *net, const char *path);
GOPT_API gopt_status gopt_net_load_weights(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                           gopt_weights_report *report);

GOPT_EXTERN_C_END

#endif /* GRADOPT_CHECKPOINT_H */
