/* Crash-safe checkpoint files of named, checksummed sections (see gradopt/checkpoint.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gradopt/checkpoint.h"
#include "core/common.h"

#define CKPT_MAGIC "GOPTCKPT"
#define BYTE_ORDER_MARK 0x01020304u
#define ALIGN 16 /* every section starts at a multiple of 16 bytes; the padding is zero */

static uint64_t align_up(uint64_t x) { return (x + (ALIGN - 1)) & ~(uint64_t)(ALIGN - 1); }

/* ---- CRC-32 (IEEE, reflected 0xEDB88320), slice-by-4 tables built once ----------------- */

static uint32_t crc_table[4][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t gopt_crc32(uint32_t crc, const void *data, size_t size) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    if (!p) return crc;
    while (size >= 4) {
        c ^= (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        c = crc_table[3][c & 0xff] ^ crc_table[2][(c >> 8) & 0xff] ^ crc_table[1][(c >> 16) & 0xff] ^
            crc_table[0][c >> 24];
        p += 4;
        size -= 4;
    }
    while (size--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ---- on-disk structures ---------------------------------------------------------------- */

typedef struct ckpt_entry {
    char name[GOPT_CKPT_NAME_MAX];
    uint64_t offset, size;
    uint32_t crc;
} ckpt_entry;

typedef struct ckpt_header {
    uint32_t version, byte_order, count;
    uint64_t table_offset, table_size, file_size;
    uint32_t table_crc, header_crc;
} ckpt_header;

static void header_encode(const ckpt_header *h, unsigned char out[GOPT_CKPT_HEADER_BYTES]) {
    memset(out, 0, GOPT_CKPT_HEADER_BYTES);
    gopt__wcur c = gopt__wcur_make(out, GOPT_CKPT_HEADER_BYTES);
    gopt__put(&c, CKPT_MAGIC, 8);
    gopt__put_u32(&c, h->version);
    gopt__put_u32(&c, h->byte_order);
    gopt__put_u32(&c, h->count);
    gopt__put_u32(&c, 0);
    gopt__put_u64(&c, h->table_offset);
    gopt__put_u64(&c, h->table_size);
    gopt__put_u64(&c, h->file_size);
    gopt__put_u32(&c, h->table_crc);
    gopt__put_u32(&c, 0);
    gopt__put_u32(&c, 0);
    gopt__put_u32(&c, gopt_crc32(0, out, GOPT_CKPT_HEADER_BYTES - 4));
}

static void entry_encode(const ckpt_entry *e, unsigned char out[GOPT_CKPT_ENTRY_BYTES]) {
    memset(out, 0, GOPT_CKPT_ENTRY_BYTES);
    gopt__wcur c = gopt__wcur_make(out, GOPT_CKPT_ENTRY_BYTES);
    gopt__put(&c, e->name, GOPT_CKPT_NAME_MAX);
    gopt__put_u64(&c, e->offset);
    gopt__put_u64(&c, e->size);
    gopt__put_u32(&c, e->crc);
    gopt__put_u32(&c, 0);
}

/* ---- writes that survive RLIMIT_FSIZE --------------------------------------------------
 * A write that would grow a file past RLIMIT_FSIZE (`ulimit -f`) fails with EFBIG and also
 * sends SIGXFSZ to the writing thread, whose default action ends the process (exit status
 * 153 in a shell) with the temporary file left behind. The writer therefore blocks SIGXFSZ
 * in the calling thread around its writes, and after an EFBIG takes the signal its own write
 * raised (sigtimedwait, no wait) unless one was pending already, so that neither the mask,
 * nor the pending set, nor the signal dispositions of the caller change. */

typedef struct xfsz_guard {
    sigset_t old;
    int blocked, was_pending;
} xfsz_guard;

static void xfsz_block(xfsz_guard *g) {
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGXFSZ);
    g->blocked = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ) == 1;
}

static void xfsz_restore(xfsz_guard *g, int failed_efbig) {
    if (!g->blocked) return;
    if (failed_efbig && !g->was_pending) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGXFSZ);
        const struct timespec now = {0, 0};
        /* the kernel sends it to this thread (thread-directed), which sigtimedwait takes first */
        while (sigtimedwait(&set, NULL, &now) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Write size bytes at the file position (offset < 0) or at offset; -1 with errno on failure. */
static int write_all_at(int fd, const void *data, size_t size, off_t offset) {
    const unsigned char *p = data;
    xfsz_guard g;
    xfsz_block(&g);
    int rc = 0;
    while (size > 0) {
        ssize_t n = offset < 0 ? write(fd, p, size) : pwrite(fd, p, size, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            rc = -1;
            break;
        }
        p += n;
        size -= (size_t)n;
        if (offset >= 0) offset += n;
    }
    int err = errno;
    xfsz_restore(&g, rc != 0 && err == EFBIG);
    errno = err;
    return rc;
}

static int write_all(int fd, const void *data, size_t size) { return write_all_at(fd, data, size, -1); }

/* What a user can do about a failed create or write, appended to strerror. */
static const char *io_hint(int err) {
    switch (err) {
    case EFBIG: return " (the file size limit RLIMIT_FSIZE, `ulimit -f`, was reached)";
    case ENOSPC: return " (no space left on the device)";
#ifdef EDQUOT
    case EDQUOT: return " (the disk quota is used up)";
#endif
    case EROFS: return " (the directory is on a read-only file system)";
    case EACCES:
    case EPERM: return " (no permission to create files in the directory)";
    default: return "";
    }
}

/* The directory holding path ("." if none), for the fsync after rename. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return gopt__strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = gopt__malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

/* ---- temporary files of dead writers ----------------------------------------------------
 * A live writer holds flock(LOCK_EX) on its temporary file from creation to commit or
 * abort; the lock goes with the process, however it ends. So a "<base>.tmp.XXXXXX" next to
 * the target that can be locked belongs to a writer that died, and is removed. */

#define TMP_SUFFIX ".tmp.XXXXXX"

/* name == base + ".tmp." + six letters or digits (what mkstemp puts for XXXXXX) */
static int is_temp_of(const char *name, const char *base, size_t base_len) {
    if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".tmp.", 5) != 0) return 0;
    const char *x = name + base_len + 5;
    for (int i = 0; i < 6; i++)
        if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') || (x[i] >= '0' && x[i] <= '9'))) return 0;
    return x[6] == '\0';
}

/* Best effort: a directory that cannot be read or a file that cannot be removed is left as
 * it is (begin then reports what matters, e.g. that it cannot create its own file). */
static void remove_dead_temps(const char *dir, const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t base_len = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_temp_of(e->d_name, base, base_len)) continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat held, named;
        /* unlink only the file that was locked: the name still leads to it */
        if (fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dfd, e->d_name, &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_dev == held.st_dev &&
            named.st_ino == held.st_ino)
            unlinkat(dfd, e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

/* mkstemp + flock. A writer of the same target cleaning up at the same moment may take the
 * new file for a dead one's between the two calls: then the lock is refused, or the file has
 * no name any more (st_nlink 0) once locked, and another name is tried. On a file system
 * without flock the file stays unlocked (and no cleaner can lock it either). Returns the fd,
 * or -1 with errno. */
static int create_locked_temp(char *tmp_path, size_t template_at) {
    for (int attempt = 0; attempt < 100; attempt++) {
        memcpy(tmp_path + template_at, TMP_SUFFIX, sizeof TMP_SUFFIX);
        int fd = mkstemp(tmp_path);
        if (fd < 0) return -1;
        /* not inherited across exec: a child must not keep the lock alive once we are gone */
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        int rc;
        while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
        }
        struct stat st;
        if (rc != 0 && errno != EWOULDBLOCK) return fd; /* no locks here */
        if (rc == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) return fd;
        close(fd); /* taken by a cleaner, which removes it */
    }
    errno = EEXIST;
    return -1;
}

/* ---- writer ----------------------------------------------------------------------------- */

struct gopt_ckpt_writer {
    char *path, *tmp_path, *dir;
    int fd;       /* the temporary file, locked; -1 once removed */
    int failed;
    uint64_t end; /* bytes written so far */
    ckpt_entry *entries;
    int count, capacity;
};

static void writer_free(gopt_ckpt_writer *w) {
    gopt__free(w->path);
    gopt__free(w->tmp_path);
    gopt__free(w->dir);
    gopt__free(w->entries);
    gopt__free(w);
}

/* Remove the temporary file (unlinked while still locked, so no cleaner sees it unlocked). */
static void writer_discard(gopt_ckpt_writer *w) {
    if (w->fd < 0) return;
    unlink(w->tmp_path);
    close(w->fd);
    w->fd = -1;
}

/* A write failed with errno err while doing `what` (in the public function func): remove
 * the temporary file at once (its space is free again for the retry) and say so. */
static gopt_status writer_write_failed(gopt_ckpt_writer *w, const char *func, const char *what, int err) {
    w->failed = 1;
    writer_discard(w);
    return gopt__fail(GOPT_EIO, func,
                      "%s: checkpoint not written: %s failed: %s%s; the temporary file was removed and the previous "
                      "checkpoint is unchanged",
                      w->path, what, strerror(err), io_hint(err));
}

gopt_status gopt_ckpt_writer_begin(const char *path, gopt_ckpt_writer **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(path);
    if (path[0] == '\0') return GOPT_FAIL(GOPT_EINVAL, "path is empty");
    gopt_ckpt_writer *w = gopt__calloc(1, sizeof *w);
    if (!w) return GOPT_FAIL(GOPT_ENOMEM, "checkpoint writer");
    w->fd = -1;
    size_t len = strlen(path);
    w->path = gopt__strdup(path);
    w->tmp_path = gopt__malloc(len + sizeof TMP_SUFFIX);
    w->dir = parent_dir(path);
    if (!w->path || !w->tmp_path || !w->dir) {
        writer_free(w);
        return GOPT_FAIL(GOPT_ENOMEM, "checkpoint writer for %s", path);
    }
    memcpy(w->tmp_path, path, len);
    remove_dead_temps(w->dir, path); /* first, so that their space is free for this one */
    w->fd = create_locked_temp(w->tmp_path, len);
    if (w->fd < 0) {
        int err = errno;
        gopt_status s = GOPT_FAIL(GOPT_EIO, "%s: cannot create the temporary file %s" TMP_SUFFIX ": %s%s", path, path,
                                  strerror(err), io_hint(err));
        writer_free(w);
        return s;
    }
    (void)fchmod(w->fd, 0644); /* mkstemp makes 0600; a checkpoint is an ordinary data file */
    unsigned char zero[GOPT_CKPT_HEADER_BYTES] = {0};
    if (write_all(w->fd, zero, sizeof zero) != 0) {
        gopt_status s = writer_write_failed(w, __func__, "writing the header", errno);
        writer_free(w);
        return s;
    }
    w->end = GOPT_CKPT_HEADER_BYTES;
    *out = w;
    return GOPT_OK;
}

static gopt_status writer_pad(gopt_ckpt_writer *w, const char *func) {
    static const unsigned char zero[ALIGN] = {0};
    uint64_t target = align_up(w->end);
    if (target != w->end && write_all(w->fd, zero, (size_t)(target - w->end)) != 0)
        return writer_write_failed(w, func, "writing padding", errno);
    w->end = target;
    return GOPT_OK;
}

gopt_status gopt_ckpt_writer_add(gopt_ckpt_writer *w, const char *name, const void *data, size_t size) {
    GOPT_CHECK_NULL(w);
    GOPT_CHECK_NULL(name);
    if (!data && size) return GOPT_FAIL(GOPT_EINVAL, "section '%s': data is NULL with size %zu", name, size);
    if (w->failed) return GOPT_FAIL(GOPT_ESTATE, "%s: an earlier write failed", w->path);
    size_t len = strlen(name);
    if (len == 0 || len >= GOPT_CKPT_NAME_MAX)
        return GOPT_FAIL(GOPT_EINVAL, "section name '%s' must be 1..%d bytes", name, GOPT_CKPT_NAME_MAX - 1);
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return GOPT_FAIL(GOPT_EINVAL, "section '%s' was already added", name);
    if ((uint64_t)size > UINT64_MAX / 2 - w->end) return GOPT_FAIL(GOPT_EOVERFLOW, "section '%s' too large", name);
    if (w->count == w->capacity) {
        if (w->capacity > (1 << 20)) return GOPT_FAIL(GOPT_EOVERFLOW, "too many sections");
        int cap = w->capacity ? 2 * w->capacity : 16;
        ckpt_entry *n = gopt__calloc((size_t)cap, sizeof *n);
        if (!n) return GOPT_FAIL(GOPT_ENOMEM, "section table of %d entries", cap);
        if (w->count) memcpy(n, w->entries, (size_t)w->count * sizeof *n);
        gopt__free(w->entries);
        w->entries = n;
        w->capacity = cap;
    }
    GOPT_TRY(writer_pad(w, __func__));
    if (size && write_all(w->fd, data, size) != 0) {
        int err = errno;
        char what[GOPT_CKPT_NAME_MAX + 80];
        snprintf(what, sizeof what, "writing section '%s' (%zu bytes at byte %llu)", name, size,
                 (unsigned long long)w->end);
        return writer_write_failed(w, __func__, what, err);
    }
    ckpt_entry *e = &w->entries[w->count++];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, len);
    e->offset = w->end;
    e->size = size;
    e->crc = gopt_crc32(0, data, size);
    w->end += size;
    return GOPT_OK;
}

gopt_status gopt_ckpt_writer_add_u64(gopt_ckpt_writer *w, const char *name, uint64_t value) {
    return gopt_ckpt_writer_add(w, name, &value, sizeof value);
}

gopt_status gopt_ckpt_writer_add_text(gopt_ckpt_writer *w, const char *name, const char *text) {
    GOPT_CHECK_NULL(text);
    return gopt_ckpt_writer_add(w, name, text, strlen(text));
}

void gopt_ckpt_writer_abort(gopt_ckpt_writer *w) {
    if (!w) return;
    writer_discard(w);
    writer_free(w);
}

/* fsync a directory so a rename inside it is durable. */
static int fsync_dir(const char *dir, int *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = fsync(fd);
    *err = errno;
    close(fd);
    /* Some file systems refuse fsync on a directory; that is not a failure of ours. */
    if (rc != 0 && (*err == EINVAL || *err == ENOTSUP)) rc = 0;
    return rc;
}

gopt_status gopt_ckpt_writer_commit(gopt_ckpt_writer *w) {
    GOPT_CHECK_NULL(w);
    if (w->failed) {
        gopt_status s = GOPT_FAIL(GOPT_ESTATE, "%s: an earlier write failed; nothing committed", w->path);
        gopt_ckpt_writer_abort(w);
        return s;
    }
    gopt_status s = writer_pad(w, __func__);
    if (s != GOPT_OK) {
        gopt_ckpt_writer_abort(w);
        return s;
    }
    size_t table_bytes = (size_t)w->count * GOPT_CKPT_ENTRY_BYTES;
    unsigned char *table = gopt__malloc(table_bytes ? table_bytes : 1);
    if (!table) {
        gopt_ckpt_writer_abort(w);
        return GOPT_FAIL(GOPT_ENOMEM, "section table");
    }
    for (int i = 0; i < w->count; i++) entry_encode(&w->entries[i], table + (size_t)i * GOPT_CKPT_ENTRY_BYTES);
    ckpt_header h = {GOPT_CKPT_VERSION, BYTE_ORDER_MARK, (uint32_t)w->count, w->end, table_bytes,
                     w->end + table_bytes, gopt_crc32(0, table, table_bytes), 0};
    unsigned char header[GOPT_CKPT_HEADER_BYTES];
    header_encode(&h, header);
    int rc = write_all(w->fd, table, table_bytes);
    int err = errno;
    gopt__free(table);
    if (rc != 0) s = writer_write_failed(w, __func__, "writing the section table", err);
    else if (write_all_at(w->fd, header, sizeof header, 0) != 0)
        s = writer_write_failed(w, __func__, "writing the header", errno);
    if (s != GOPT_OK) {
        gopt_ckpt_writer_abort(w);
        return s;
    }
    /* fsync, then rename while the lock is still held (no cleaner can take the file), then
     * close: the previous file at path stays until the complete new one replaces it */
    const char *step = "fsync";
    rc = fsync(w->fd);
    if (rc == 0) {
        step = "rename";
        rc = rename(w->tmp_path, w->path);
    }
    if (rc != 0) {
        err = errno;
        s = GOPT_FAIL(GOPT_EIO,
                      "%s: checkpoint not written: %s of %s failed: %s%s; the temporary file was removed and the "
                      "previous checkpoint is unchanged",
                      w->path, step, w->tmp_path, strerror(err), io_hint(err));
        gopt_ckpt_writer_abort(w);
        return s;
    }
    rc = close(w->fd);
    err = errno;
    w->fd = -1;
    if (rc != 0)
        s = GOPT_FAIL(GOPT_EIO, "%s: written and renamed, but closing it failed: %s", w->path, strerror(err));
    else if (fsync_dir(w->dir, &err) != 0)
        s = GOPT_FAIL(GOPT_EIO, "%s: written, but fsync of its directory failed: %s", w->path, strerror(err));
    writer_free(w);
    return s;
}

/* ---- reader ------------------------------------------------------------------------------ */

struct gopt_ckpt {
    unsigned char *buf;
    size_t size;
    ckpt_entry *entries;
    int count;
};

void gopt_ckpt_close(gopt_ckpt *c) {
    if (!c) return;
    gopt__aligned_free(c->buf);
    gopt__free(c->entries);
    gopt__free(c);
}

/* read_whole and parse record their failures under the public function, gopt_ckpt_open */
#define OPEN_FAIL(status, ...) gopt__fail((status), "gopt_ckpt_open", __VA_ARGS__)

static gopt_status read_whole(const char *path, unsigned char **out, size_t *out_size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return OPEN_FAIL(GOPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return OPEN_FAIL(GOPT_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return OPEN_FAIL(GOPT_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 128) {
        close(fd);
        return OPEN_FAIL(GOPT_EOVERFLOW, "%s: %lld bytes do not fit in memory", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = gopt__aligned_alloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return OPEN_FAIL(GOPT_ENOMEM, "%s: %zu bytes", path, size);
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            gopt__aligned_free(buf);
            return OPEN_FAIL(GOPT_EIO, "%s: read failed at byte %zu: %s", path, done, strerror(err));
        }
        if (n == 0) break; /* shrank meanwhile: the checks below report the truncation */
        done += (size_t)n;
    }
    close(fd);
    *out = buf;
    *out_size = done;
    return GOPT_OK;
}

static gopt_status parse(const char *path, gopt_ckpt *c) {
    const unsigned char *buf = c->buf;
    size_t size = c->size;
    if (size < GOPT_CKPT_HEADER_BYTES)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: truncated at byte %zu (the header alone is %d bytes)", path, size,
                         GOPT_CKPT_HEADER_BYTES);
    if (memcmp(buf, CKPT_MAGIC, 8) != 0) return OPEN_FAIL(GOPT_EFORMAT, "%s: bad magic (not a gradopt checkpoint)", path);
    gopt__rcur r = gopt__rcur_make(buf + 8, GOPT_CKPT_HEADER_BYTES - 8);
    ckpt_header h;
    h.version = gopt__get_u32(&r);
    h.byte_order = gopt__get_u32(&r);
    h.count = gopt__get_u32(&r);
    uint32_t reserved0 = gopt__get_u32(&r);
    h.table_offset = gopt__get_u64(&r);
    h.table_size = gopt__get_u64(&r);
    h.file_size = gopt__get_u64(&r);
    h.table_crc = gopt__get_u32(&r);
    uint32_t reserved1 = gopt__get_u32(&r), reserved2 = gopt__get_u32(&r);
    h.header_crc = gopt__get_u32(&r);
    if (h.version != GOPT_CKPT_VERSION)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: unsupported version %u (this library reads version %d)", path, h.version,
                         GOPT_CKPT_VERSION);
    if (h.byte_order != BYTE_ORDER_MARK)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: byte-order mark 0x%08x (written on a host of another endianness?)", path,
                         h.byte_order);
    if (gopt_crc32(0, buf, GOPT_CKPT_HEADER_BYTES - 4) != h.header_crc)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: header checksum mismatch", path);
    if (reserved0 || reserved1 || reserved2) return OPEN_FAIL(GOPT_EFORMAT, "%s: reserved header fields are not 0", path);
    if (h.file_size > size)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: truncated at byte %zu (the header says %llu bytes)", path, size,
                         (unsigned long long)h.file_size);
    if (h.file_size < size)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: %zu bytes, but the header says %llu (trailing data)", path, size,
                         (unsigned long long)h.file_size);
    if (h.count > (size - GOPT_CKPT_HEADER_BYTES) / GOPT_CKPT_ENTRY_BYTES ||
        h.table_size != (uint64_t)h.count * GOPT_CKPT_ENTRY_BYTES || h.table_offset < GOPT_CKPT_HEADER_BYTES ||
        h.table_offset > size || h.table_size > size - h.table_offset || h.table_offset + h.table_size != size ||
        h.table_offset % ALIGN != 0)
        return OPEN_FAIL(GOPT_EFORMAT,
                         "%s: section table out of bounds (%u entries, offset %llu, size %llu, file %zu bytes)", path,
                         h.count, (unsigned long long)h.table_offset, (unsigned long long)h.table_size, size);
    const unsigned char *table = buf + h.table_offset;
    if (gopt_crc32(0, table, (size_t)h.table_size) != h.table_crc)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: section table checksum mismatch", path);
    c->entries = gopt__calloc(h.count ? h.count : 1, sizeof *c->entries);
    if (!c->entries) return OPEN_FAIL(GOPT_ENOMEM, "%s: section table of %u entries", path, h.count);
    uint64_t expect = GOPT_CKPT_HEADER_BYTES;
    for (uint32_t i = 0; i < h.count; i++) {
        ckpt_entry *e = &c->entries[i];
        gopt__rcur t = gopt__rcur_make(table + (size_t)i * GOPT_CKPT_ENTRY_BYTES, GOPT_CKPT_ENTRY_BYTES);
        gopt__get(&t, e->name, GOPT_CKPT_NAME_MAX);
        e->offset = gopt__get_u64(&t);
        e->size = gopt__get_u64(&t);
        e->crc = gopt__get_u32(&t);
        uint32_t reserved = gopt__get_u32(&t);
        size_t len = strnlen(e->name, GOPT_CKPT_NAME_MAX);
        if (len == 0 || len == GOPT_CKPT_NAME_MAX)
            return OPEN_FAIL(GOPT_EFORMAT, "%s: section %u has an empty or unterminated name", path, i);
        for (size_t k = len; k < GOPT_CKPT_NAME_MAX; k++)
            if (e->name[k] != '\0') return OPEN_FAIL(GOPT_EFORMAT, "%s: section '%s': name padding is not zero", path, e->name);
        if (reserved) return OPEN_FAIL(GOPT_EFORMAT, "%s: section '%s': reserved field is not 0", path, e->name);
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(c->entries[k].name, e->name) == 0)
                return OPEN_FAIL(GOPT_EFORMAT, "%s: section '%s' appears twice", path, e->name);
        if (e->offset != expect || e->size > h.table_offset - e->offset)
            return OPEN_FAIL(GOPT_EFORMAT, "%s: section '%s' out of bounds (offset %llu, size %llu, table at %llu)",
                             path, e->name, (unsigned long long)e->offset, (unsigned long long)e->size,
                             (unsigned long long)h.table_offset);
        uint64_t end = e->offset + e->size, next = align_up(end);
        for (uint64_t k = end; k < next && k < h.table_offset; k++)
            if (buf[k] != 0) return OPEN_FAIL(GOPT_EFORMAT, "%s: padding after section '%s' is not zero", path, e->name);
        if (gopt_crc32(0, buf + e->offset, (size_t)e->size) != e->crc)
            return OPEN_FAIL(GOPT_EFORMAT, "%s: section '%s' checksum mismatch", path, e->name);
        expect = next;
    }
    if (expect != h.table_offset)
        return OPEN_FAIL(GOPT_EFORMAT, "%s: %llu unaccounted bytes before the section table", path,
                         (unsigned long long)(h.table_offset - expect));
    c->count = (int)h.count;
    return GOPT_OK;
}

gopt_status gopt_ckpt_open(const char *path, gopt_ckpt **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(path);
    gopt_ckpt *c = gopt__calloc(1, sizeof *c);
    if (!c) return GOPT_FAIL(GOPT_ENOMEM, "checkpoint reader");
    gopt_status s = read_whole(path, &c->buf, &c->size);
    if (s == GOPT_OK) s = parse(path, c);
    if (s != GOPT_OK) {
        gopt_ckpt_close(c);
        return s;
    }
    *out = c;
    return GOPT_OK;
}

int gopt_ckpt_section_count(const gopt_ckpt *c) { return c ? c->count : 0; }

gopt_status gopt_ckpt_section_info(const gopt_ckpt *c, int index, const char **name, size_t *size) {
    GOPT_CHECK_NULL(c);
    if (index < 0 || index >= c->count)
        return GOPT_FAIL(GOPT_ERANGE, "section index %d is outside 0..%d", index, c->count - 1);
    if (name) *name = c->entries[index].name;
    if (size) *size = (size_t)c->entries[index].size;
    return GOPT_OK;
}

static const ckpt_entry *find_entry(const gopt_ckpt *c, const char *name) {
    for (int i = 0; i < c->count; i++)
        if (strcmp(c->entries[i].name, name) == 0) return &c->entries[i];
    return NULL;
}

int gopt_ckpt_has(const gopt_ckpt *c, const char *name) { return c && name && find_entry(c, name) != NULL; }

gopt_status gopt_ckpt_find(const gopt_ckpt *c, const char *name, const void **data, size_t *size) {
    GOPT_CHECK_NULL(c);
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(data);
    GOPT_CHECK_NULL(size);
    const ckpt_entry *e = find_entry(c, name);
    if (!e) return GOPT_FAIL(GOPT_ERANGE, "the checkpoint has no section '%s'", name);
    *data = c->buf + e->offset;
    *size = (size_t)e->size;
    return GOPT_OK;
}

gopt_status gopt_ckpt_get_u64(const gopt_ckpt *c, const char *name, uint64_t *value) {
    GOPT_CHECK_NULL(value);
    const void *p;
    size_t n;
    GOPT_TRY(gopt_ckpt_find(c, name, &p, &n));
    if (n != sizeof *value) return GOPT_FAIL(GOPT_EFORMAT, "section '%s' is %zu bytes, not a u64 (8)", name, n);
    memcpy(value, p, sizeof *value);
    return GOPT_OK;
}
