/* The .npy reader (see io/npy.h): header parser and read-only memory map. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "io/npy.h"

#define NPY_FAIL(...) gopt__fail(GOPT_EFORMAT, func, __VA_ARGS__)

static const struct {
    const char *descr, *name;
    int itemsize;
} npy_types[] = {
    {"<f4", "'<f4' (float32)", 4},
    {"<f8", "'<f8' (float64)", 8},
    {"<i4", "'<i4' (int32)", 4},
    {"<i8", "'<i8' (int64)", 8},
};

const char *gopt__npy_dtype_name(gopt__npy_dtype d) {
    return (unsigned)d < sizeof npy_types / sizeof npy_types[0] ? npy_types[d].name : "?";
}

/* The bytes s[0..n) as printable text for a message (at most 40 characters). */
static const char *printable(const char *s, size_t n, char buf[48]) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < 40; i++) buf[k++] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    if (n > 40) buf[k - 1] = '~';
    buf[k] = 0;
    return buf;
}

typedef struct hcur {
    const char *p, *end;
} hcur;

static void skip_ws(hcur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* A quoted Python string ('...' or "..." without escapes): its bytes in [*s, *s + *n). */
static int parse_str(hcur *c, const char **s, size_t *n) {
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    const char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return 0;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 1;
}

static int match_word(hcur *c, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* '(' [int {',' int} [',']] ')': 1 ok, 0 malformed, -1 too many dimensions, -2 a dim too large */
static int parse_shape(hcur *c, gopt__npy_header *h) {
    if (c->p >= c->end || *c->p != '(') return 0;
    c->p++;
    h->ndim = 0;
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            return 1;
        }
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return -2;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 longs */
        if (h->ndim == GOPT__NPY_MAX_DIMS) return -1;
        h->shape[h->ndim++] = v;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            /* "(3)" is the int 3 in Python, not a tuple: numpy never writes it */
            return h->ndim == 1 ? 0 : 1;
        }
        return 0;
    }
}

static gopt_status parse_dict(const char *text, size_t len, const char *name, const char *func, gopt__npy_header *h) {
    hcur c = {text, text + len};
    char b1[48];
    int have_descr = 0, have_order = 0, have_shape = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return NPY_FAIL("%s: the header is not a Python dict (no '{')", name);
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        const char *key;
        size_t kn;
        if (!parse_str(&c, &key, &kn)) return NPY_FAIL("%s: malformed header dict (expected a quoted key)", name);
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return NPY_FAIL("%s: malformed header dict (no ':' after a key)", name);
        c.p++;
        skip_ws(&c);
        if (kn == 5 && memcmp(key, "descr", 5) == 0) {
            const char *d;
            size_t dn;
            if (have_descr++) return NPY_FAIL("%s: 'descr' appears twice in the header", name);
            if (!parse_str(&c, &d, &dn))
                return NPY_FAIL("%s: 'descr' is not a dtype string (structured dtypes are not supported)", name);
            int found = -1;
            for (int i = 0; i < (int)(sizeof npy_types / sizeof npy_types[0]); i++)
                if (dn == 3 && memcmp(d, npy_types[i].descr, 3) == 0) found = i;
            if (found < 0 && dn >= 1 && d[0] == '>')
                return NPY_FAIL("%s: dtype '%s' is big-endian; only little-endian data is read "
                                "(convert with a.astype(a.dtype.newbyteorder('<')))",
                                name, printable(d, dn, b1));
            if (found < 0)
                return NPY_FAIL("%s: dtype '%s' is not supported (float32 '<f4', float64 '<f8', int32 '<i4', "
                                "int64 '<i8')",
                                name, printable(d, dn, b1));
            h->dtype = (gopt__npy_dtype)found;
            h->itemsize = npy_types[found].itemsize;
        } else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (have_order++) return NPY_FAIL("%s: 'fortran_order' appears twice in the header", name);
            if (match_word(&c, "True"))
                return NPY_FAIL("%s: fortran_order is True (column-major); save a C-order array "
                                "(numpy.ascontiguousarray)",
                                name);
            if (!match_word(&c, "False")) return NPY_FAIL("%s: fortran_order is not True or False", name);
        } else if (kn == 5 && memcmp(key, "shape", 5) == 0) {
            if (have_shape++) return NPY_FAIL("%s: 'shape' appears twice in the header", name);
            int r = parse_shape(&c, h);
            if (r == -1) return NPY_FAIL("%s: shape has more than %d dimensions", name, GOPT__NPY_MAX_DIMS);
            if (r == -2) return NPY_FAIL("%s: a shape dimension is too large", name);
            if (r == 0) return NPY_FAIL("%s: 'shape' is not a tuple of non-negative integers", name);
        } else {
            return NPY_FAIL("%s: unknown key '%s' in the header (have descr, fortran_order, shape)", name,
                            printable(key, kn, b1));
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        return NPY_FAIL("%s: malformed header dict (expected ',' or '}')", name);
    }
    skip_ws(&c);
    if (c.p != c.end) return NPY_FAIL("%s: unexpected bytes after the header dict", name);
    if (!have_descr || !have_order || !have_shape)
        return NPY_FAIL("%s: the header lacks '%s'", name,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return GOPT_OK;
}

gopt_status gopt__npy_parse(const void *buf, size_t size, const char *name, const char *func, gopt__npy_header *out) {
    const unsigned char *b = buf;
    gopt__npy_header h;
    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    if (size < 6 || memcmp(b, "\x93NUMPY", 6) != 0)
        return NPY_FAIL("%s: not a .npy file (%s)", name,
                        size < 6 && memcmp(b, "\x93NUMPY", size) == 0 ? "shorter than the magic"
                                                                     : "bad magic, expected \\x93NUMPY");
    if (size < 8) return NPY_FAIL("%s: truncated header (%zu bytes, no version)", name, size);
    h.major = b[6];
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return NPY_FAIL("%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0)", name, b[6], b[7]);
    const size_t pre = b[6] == 1 ? 10 : 12;
    if (size < pre) return NPY_FAIL("%s: truncated header (%zu bytes, no header length)", name, size);
    size_t hlen = b[6] == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                            : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > size - pre)
        return NPY_FAIL("%s: truncated header (%zu header bytes announced, the file has %zu after the preamble)",
                        name, hlen, size - pre);
    GOPT_TRY(parse_dict((const char *)b + pre, hlen, name, func, &h));
    int64_t numel = 1;
    for (int d = 0; d < h.ndim; d++) {
        if (h.shape[d] != 0 && numel > INT64_MAX / h.shape[d])
            return NPY_FAIL("%s: shape overflows (more than 2^63 elements)", name);
        numel *= h.shape[d];
    }
    size_t bytes;
    if ((uint64_t)numel > SIZE_MAX || !gopt__mul_size((size_t)numel, (size_t)h.itemsize, &bytes))
        return NPY_FAIL("%s: shape overflows the address space", name);
    h.numel = numel;
    h.data_offset = pre + hlen;
    h.data_bytes = bytes;
    const size_t have = size - h.data_offset;
    if (have != bytes) {
        char sh[160];
        int k = snprintf(sh, sizeof sh, "(");
        for (int d = 0; d < h.ndim && k < (int)sizeof sh - 24; d++)
            k += snprintf(sh + k, sizeof sh - (size_t)k, d ? ",%lld" : "%lld", (long long)h.shape[d]);
        snprintf(sh + k, sizeof sh - (size_t)k, ")");
        if (have < bytes)
            return NPY_FAIL("%s: truncated data: shape %s of %s needs %zu bytes, the file has %zu after the header",
                            name, sh, gopt__npy_dtype_name(h.dtype), bytes, have);
        return NPY_FAIL("%s: %zu bytes after the data of shape %s of %s (%zu bytes): the file is not one array",
                        name, have - bytes, sh, gopt__npy_dtype_name(h.dtype), bytes);
    }
    *out = h;
    return GOPT_OK;
}

gopt_status gopt__npy_map_open(const char *path, const char *func, gopt__npy_map *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gopt__fail(GOPT_EIO, func, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return gopt__fail(GOPT_EIO, func, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gopt__fail(GOPT_EIO, func, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return NPY_FAIL("%s: empty file (not a .npy file)", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return gopt__fail(GOPT_EOVERFLOW, func, "%s: %lld bytes do not fit the address space", path,
                          (long long)st.st_size);
    }
    const size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file */
    if (map == MAP_FAILED) return gopt__fail(GOPT_EIO, func, "%s: cannot map %zu bytes: %s", path, len, strerror(err));
    gopt__npy_header h;
    gopt_status s = gopt__npy_parse(map, len, path, func, &h);
    if (s != GOPT_OK) {
        munmap(map, len);
        return s;
    }
    out->map = map;
    out->map_len = len;
    out->data = (const unsigned char *)map + h.data_offset;
    out->h = h;
    return GOPT_OK;
}

void gopt__npy_map_close(gopt__npy_map *m) {
    if (!m || !m->map) return;
    munmap(m->map, m->map_len);
    memset(m, 0, sizeof *m);
}
