/* .npz export and import (numpy.savez's layout, see gradopt/interop.h): a zip archive of
 * stored .npy members, written in one pass (each member's CRC-32 computed before its local
 * header), and read back with every structure checked. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"
#include "io/weights.h"

/* The .npy header of slot s (format 1.0): magic, version, u16 length, the dict padded with
 * spaces and '\n' so the data starts at a multiple of 64. Returns its length. */
static size_t npy_header(const gopt__wslot *s, unsigned char *h, size_t cap) {
    char dict[256];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     s->is_count ? "<i8" : "<f4");
    for (int d = 0; d < s->ndim; d++) k += snprintf(dict + k, sizeof dict - (size_t)k, "%" PRId64 ",", s->shape[d]);
    if (s->ndim > 1) k--; /* "(3,)" for one dimension, "(3,4)" for more */
    k += snprintf(dict + k, sizeof dict - (size_t)k, "), }");
    size_t total = 10 + (size_t)k + 1;
    total = (total + 63) / 64 * 64;
    if (total > cap) return 0;
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    gopt__le16(h + 8, (uint32_t)(total - 10));
    memcpy(h + 10, dict, (size_t)k);
    memset(h + 10 + k, ' ', total - 10 - (size_t)k - 1);
    h[total - 1] = '\n';
    return total;
}

gopt_status gopt_net_save_npz(const gopt_net *net, const char *path, const gopt_weights_config *cfg) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    if (c.names != GOPT_NAMES_TORCH && c.names != GOPT_NAMES_ARENA)
        return GOPT_FAIL(GOPT_EINVAL, "cfg->names = %d is not GOPT_NAMES_TORCH or GOPT_NAMES_ARENA", (int)c.names);
    gopt_net *m = (gopt_net *)net; /* read only */
    gopt__wslot *s;
    int n;
    GOPT_TRY(gopt__weights_gather(gopt_net_params(m), m, &c, &s, &n, __func__));
    if (n > 65535) {
        gopt__free(s);
        return GOPT_FAIL(GOPT_EOVERFLOW, "%d members: a zip without zip64 holds 65535", n);
    }
    /* per member: offset of its local header, CRC, size (for the central directory) */
    uint32_t *meta = gopt__calloc((size_t)(n ? n : 1) * 3, sizeof *meta);
    if (!meta) {
        gopt__free(s);
        return GOPT_FAIL(GOPT_ENOMEM, "%d zip entries", n);
    }
    gopt__wfile w;
    gopt_status st = gopt__wfile_open(&w, path, __func__);
    uint64_t pos = 0;
    unsigned char h[320], lh[30];
    for (int i = 0; i < n && st == GOPT_OK; i++) {
        size_t hl = npy_header(&s[i], h, sizeof h);
        const uint64_t size = hl + (uint64_t)s[i].numel * (s[i].is_count ? 8u : 4u);
        const size_t nl = strlen(s[i].name) + 4;
        if (hl == 0 || size > 0xFFFFFFFFu || pos + 30 + nl + size > 0xFFFFFFFFu) {
            st = GOPT_FAIL(GOPT_EOVERFLOW, "'%s': past 4 GiB, a zip without zip64 cannot hold it", s[i].name);
            break;
        }
        uint32_t crc = gopt__crc32(0, h, hl);
        crc = gopt__crc32_slot(crc, &s[i]);
        meta[3 * i] = (uint32_t)pos;
        meta[3 * i + 1] = crc;
        meta[3 * i + 2] = (uint32_t)size;
        memset(lh, 0, sizeof lh);
        gopt__le32(lh, 0x04034b50u);
        gopt__le16(lh + 4, 20);          /* version needed: 2.0 */
        gopt__le16(lh + 12, 0x21);       /* date 1980-01-01 (time 0) */
        gopt__le32(lh + 14, crc);
        gopt__le32(lh + 18, (uint32_t)size); /* compressed = uncompressed: stored */
        gopt__le32(lh + 22, (uint32_t)size);
        gopt__le16(lh + 26, (uint32_t)nl);
        gopt__wfile_put(&w, lh, 30);
        gopt__wfile_put(&w, s[i].name, nl - 4);
        gopt__wfile_put(&w, ".npy", 4);
        gopt__wfile_put(&w, h, hl);
        gopt__wfile_put_slot(&w, &s[i]);
        pos += 30 + nl + size;
    }
    uint64_t cd = pos;
    for (int i = 0; i < n && st == GOPT_OK; i++) {
        unsigned char ch[46];
        memset(ch, 0, sizeof ch);
        const size_t nl = strlen(s[i].name) + 4;
        gopt__le32(ch, 0x02014b50u);
        gopt__le16(ch + 4, 20);
        gopt__le16(ch + 6, 20);
        gopt__le16(ch + 14, 0x21);
        gopt__le32(ch + 16, meta[3 * i + 1]);
        gopt__le32(ch + 20, meta[3 * i + 2]);
        gopt__le32(ch + 24, meta[3 * i + 2]);
        gopt__le16(ch + 28, (uint32_t)nl);
        gopt__le32(ch + 42, meta[3 * i]);
        gopt__wfile_put(&w, ch, 46);
        gopt__wfile_put(&w, s[i].name, nl - 4);
        gopt__wfile_put(&w, ".npy", 4);
        pos += 46 + nl;
    }
    if (st == GOPT_OK && pos > 0xFFFFFFFFu)
        st = GOPT_FAIL(GOPT_EOVERFLOW, "the central directory ends past 4 GiB (no zip64)");
    if (st == GOPT_OK) {
        unsigned char e[22];
        memset(e, 0, sizeof e);
        gopt__le32(e, 0x06054b50u);
        gopt__le16(e + 8, (uint32_t)n);
        gopt__le16(e + 10, (uint32_t)n);
        gopt__le32(e + 12, (uint32_t)(pos - cd));
        gopt__le32(e + 16, (uint32_t)cd);
        gopt__wfile_put(&w, e, 22);
        st = gopt__wfile_finish(&w);
    } else if (w.f) {
        gopt__wfile_abort(&w);
    }
    gopt__free(meta);
    gopt__free(s);
    return st;
}

/* ---- .npz import ------------------------------------------------------------------------------
 * The archive is checked whole (end record, central directory, each local header, CRC-32s,
 * no overlapping members) and each member's .npy header parsed; the tensors then become a
 * safetensors image in memory that the safetensors import matches against the net (the same
 * names, strictness, staging and report). A small .npy header parser lives here for now;
 * src/io/npy.c (the standalone reader) may take its place later. */

#define NPZ_MAX_DIMS 8
#define NPZ_MAX_MEMBERS (1 << 20)

typedef struct npz_member {
    const char *name; /* into the archive: name_len bytes, ".npy" stripped */
    size_t name_len;
    const unsigned char *data; /* the array's bytes (after the .npy header) */
    uint64_t bytes;
    const char *dtype; /* safetensors dtype name */
    int itemsize, swap; /* swap: big-endian in the file */
    int ndim;
    int64_t shape[NPZ_MAX_DIMS];
    uint64_t lh_begin, end; /* local header to end of data, for the overlap check */
} npz_member;

typedef struct npz_ctx {
    const char *fn, *label;
    const unsigned char *buf;
    size_t size;
} npz_ctx;

GOPT_PRINTF(2, 3) static gopt_status npz_fail(const npz_ctx *z, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return GOPT__FAIL_AS(z->fn, GOPT_EFORMAT, "%s: %s", z->label, msg);
}

static uint32_t rd16(const unsigned char *b) { return (uint32_t)b[0] | ((uint32_t)b[1] << 8); }
static uint32_t rd32(const unsigned char *b) { return rd16(b) | (rd16(b + 2) << 16); }
static uint64_t rd64(const unsigned char *b) { return (uint64_t)rd32(b) | ((uint64_t)rd32(b + 4) << 32); }

/* ---- the .npy header: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } -------- */

typedef struct npy_parser {
    const char *p, *end;
} npy_parser;

static void npy_ws(npy_parser *q) {
    while (q->p < q->end && (*q->p == ' ' || *q->p == '\t' || *q->p == '\n' || *q->p == '\r')) q->p++;
}
static int npy_eat(npy_parser *q, char c) {
    npy_ws(q);
    if (q->p < q->end && *q->p == c) {
        q->p++;
        return 1;
    }
    return 0;
}
/* a quoted Python string without escapes, into out (cap bytes) */
static int npy_string(npy_parser *q, char *out, size_t cap) {
    npy_ws(q);
    if (q->p >= q->end || (*q->p != '\'' && *q->p != '"')) return 0;
    const char quote = *q->p++;
    size_t k = 0;
    while (q->p < q->end && *q->p != quote) {
        if (*q->p == '\\' || k + 1 >= cap) return 0;
        out[k++] = *q->p++;
    }
    if (q->p >= q->end) return 0;
    q->p++;
    out[k] = '\0';
    return 1;
}

static const struct {
    char kind;
    int size;
    const char *dtype;
} npy_types[] = {{'f', 2, "F16"}, {'f', 4, "F32"}, {'f', 8, "F64"}, {'i', 1, "I8"},  {'i', 2, "I16"},
                 {'i', 4, "I32"}, {'i', 8, "I64"}, {'u', 1, "U8"},  {'u', 2, "U16"}, {'u', 4, "U32"},
                 {'u', 8, "U64"}, {'b', 1, "BOOL"}};

static gopt_status npy_parse(const npz_ctx *z, npz_member *m, const unsigned char *b, uint64_t n) {
    const int nl = (int)(m->name_len < 200 ? m->name_len : 200);
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return npz_fail(z, "member '%.*s.npy' is not a .npy array (no \\x93NUMPY magic)", nl, m->name);
    const int major = b[6], minor = b[7];
    if (!(major >= 1 && major <= 3) || minor != 0)
        return npz_fail(z, "member '%.*s.npy': .npy format version %d.%d (this reader takes 1.0, 2.0, 3.0)", nl,
                        m->name, major, minor);
    uint64_t hl, start;
    if (major == 1) {
        hl = rd16(b + 8);
        start = 10;
    } else {
        if (n < 12) return npz_fail(z, "member '%.*s.npy': truncated .npy header", nl, m->name);
        hl = rd32(b + 8);
        start = 12;
    }
    if (hl > n - start) return npz_fail(z, "member '%.*s.npy': its header of %" PRIu64 " bytes runs past the member", nl, m->name, hl);
    npy_parser q = {(const char *)b + start, (const char *)b + start + hl};
    if (hl == 0 || q.end[-1] != '\n') return npz_fail(z, "member '%.*s.npy': the header does not end in a newline", nl, m->name);
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    char descr[32];
    if (!npy_eat(&q, '{')) return npz_fail(z, "member '%.*s.npy': the header is not a dict", nl, m->name);
    while (!npy_eat(&q, '}')) {
        char key[32];
        if (!npy_string(&q, key, sizeof key) || !npy_eat(&q, ':'))
            return npz_fail(z, "member '%.*s.npy': the header dict is malformed", nl, m->name);
        if (strcmp(key, "descr") == 0 && !have_descr++) {
            if (!npy_string(&q, descr, sizeof descr))
                return npz_fail(z, "member '%.*s.npy': 'descr' is not a plain dtype string (structured arrays are not "
                                   "weights)", nl, m->name);
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran++) {
            npy_ws(&q);
            if (q.end - q.p >= 4 && memcmp(q.p, "True", 4) == 0) fortran = 1, q.p += 4;
            else if (q.end - q.p >= 5 && memcmp(q.p, "False", 5) == 0) q.p += 5;
            else return npz_fail(z, "member '%.*s.npy': 'fortran_order' is not True or False", nl, m->name);
        } else if (strcmp(key, "shape") == 0 && !have_shape++) {
            if (!npy_eat(&q, '(')) return npz_fail(z, "member '%.*s.npy': 'shape' is not a tuple", nl, m->name);
            while (!npy_eat(&q, ')')) {
                npy_ws(&q);
                uint64_t v = 0;
                int digits = 0;
                while (q.p < q.end && *q.p >= '0' && *q.p <= '9') {
                    if (v > (UINT64_MAX >> 2) / 10) return npz_fail(z, "member '%.*s.npy': a dimension is too large", nl, m->name);
                    v = v * 10 + (uint64_t)(*q.p++ - '0');
                    digits++;
                }
                if (!digits) return npz_fail(z, "member '%.*s.npy': 'shape' holds something other than integers", nl, m->name);
                if (m->ndim == NPZ_MAX_DIMS)
                    return npz_fail(z, "member '%.*s.npy': more than %d dimensions", nl, m->name, NPZ_MAX_DIMS);
                m->shape[m->ndim++] = (int64_t)v;
                if (!npy_eat(&q, ',')) {
                    if (!npy_eat(&q, ')')) return npz_fail(z, "member '%.*s.npy': 'shape' is not closed", nl, m->name);
                    break;
                }
            }
        } else {
            return npz_fail(z, "member '%.*s.npy': unexpected or repeated key '%s' in the header", nl, m->name, key);
        }
        if (!npy_eat(&q, ',')) {
            if (!npy_eat(&q, '}')) return npz_fail(z, "member '%.*s.npy': expected ',' or '}' in the header", nl, m->name);
            break;
        }
    }
    npy_ws(&q);
    if (q.p != q.end) return npz_fail(z, "member '%.*s.npy': bytes after the header dict", nl, m->name);
    if (!have_descr || !have_fortran || !have_shape)
        return npz_fail(z, "member '%.*s.npy': the header needs 'descr', 'fortran_order' and 'shape'", nl, m->name);
    /* the dtype: byte order, kind, size */
    const char order = descr[0];
    m->dtype = NULL;
    if ((order == '<' || order == '>' || order == '|' || order == '=') && descr[1] && descr[2] >= '1' &&
        descr[2] <= '8' && descr[3] == '\0')
        for (size_t t = 0; t < sizeof npy_types / sizeof npy_types[0]; t++)
            if (npy_types[t].kind == descr[1] && npy_types[t].size == descr[2] - '0') {
                m->dtype = npy_types[t].dtype;
                m->itemsize = npy_types[t].size;
            }
    if (!m->dtype)
        return npz_fail(z, "member '%.*s.npy': dtype '%s' is not a float, integer or bool number", nl, m->name, descr);
    if (order == '|' && m->itemsize != 1)
        return npz_fail(z, "member '%.*s.npy': dtype '%s' has no byte order", nl, m->name, descr);
    m->swap = order == '>' && m->itemsize > 1;
    int big = 0;
    for (int d = 0; d < m->ndim; d++) big += m->shape[d] != 1;
    if (fortran && big > 1)
        return npz_fail(z, "member '%.*s.npy': Fortran order is not supported (save numpy.ascontiguousarray(a))", nl,
                        m->name);
    uint64_t numel = 1;
    for (int d = 0; d < m->ndim; d++) {
        uint64_t v = (uint64_t)m->shape[d];
        if (v && numel > UINT64_MAX / 16 / v) return npz_fail(z, "member '%.*s.npy': shape too large", nl, m->name);
        numel *= v;
    }
    const uint64_t want = numel * (uint64_t)m->itemsize, have = n - start - hl;
    if (want != have)
        return npz_fail(z, "member '%.*s.npy': %" PRIu64 " bytes of data, its dtype '%s' and shape need %" PRIu64, nl,
                        m->name, have, descr, want);
    m->data = b + start + hl;
    m->bytes = want;
    return GOPT_OK;
}

/* ---- the zip archive ------------------------------------------------------------------------ */

static int cmp_span(const void *a, const void *b) {
    const npz_member *x = a, *y = b;
    return x->lh_begin < y->lh_begin ? -1 : x->lh_begin > y->lh_begin;
}

/* The central directory's members into *out (sorted by position in the file). */
static gopt_status zip_parse(const npz_ctx *z, npz_member **out, int *count) {
    const unsigned char *b = z->buf;
    const size_t size = z->size;
    *out = NULL;
    *count = 0;
    if (size < 22) return npz_fail(z, "%zu bytes, too short for a zip archive (the end record alone is 22)", size);
    size_t eocd = SIZE_MAX;
    const size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t pos = size - 22 + 1; pos-- > lowest;)
        if (rd32(b + pos) == 0x06054b50u && rd16(b + pos + 20) == size - pos - 22) {
            eocd = pos;
            break;
        }
    if (eocd == SIZE_MAX) return npz_fail(z, "not a zip archive (no end-of-central-directory record)");
    uint64_t n = rd16(b + eocd + 10), cd_size = rd32(b + eocd + 12), cd_off = rd32(b + eocd + 16);
    uint64_t limit = eocd; /* the directory ends before this */
    if (rd16(b + eocd + 4) != 0 || rd16(b + eocd + 6) != 0 || rd16(b + eocd + 8) != n)
        return npz_fail(z, "a multi-disk zip archive");
    if (n == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) { /* zip64 end record */
        if (eocd < 20 || rd32(b + eocd - 20) != 0x07064b50u) return npz_fail(z, "zip64 fields without a zip64 locator");
        const uint64_t z64 = rd64(b + eocd - 12);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || rd32(b + z64) != 0x06064b50u)
            return npz_fail(z, "the zip64 end record is out of place");
        if (rd32(b + z64 + 16) != 0 || rd32(b + z64 + 20) != 0 || rd64(b + z64 + 24) != rd64(b + z64 + 32))
            return npz_fail(z, "a multi-disk zip archive");
        n = rd64(b + z64 + 32);
        cd_size = rd64(b + z64 + 40);
        cd_off = rd64(b + z64 + 48);
        limit = z64;
    }
    if (cd_off > limit || cd_size != limit - cd_off)
        return npz_fail(z, "the central directory (offset %" PRIu64 ", %" PRIu64 " bytes) does not end at the end record",
                        cd_off, cd_size);
    if (n > NPZ_MAX_MEMBERS || n * 46 > cd_size)
        return npz_fail(z, "%" PRIu64 " members do not fit a central directory of %" PRIu64 " bytes", n, cd_size);
    npz_member *m = gopt__calloc((size_t)(n ? n : 1), sizeof *m);
    if (!m) return GOPT__FAIL_AS(z->fn, GOPT_ENOMEM, "%s: %" PRIu64 " members", z->label, n);
    gopt_status st = GOPT_OK;
    uint64_t at = cd_off;
    for (uint64_t i = 0; i < n && st == GOPT_OK; i++) {
        const unsigned char *c = b + at;
        if (limit - at < 46 || rd32(c) != 0x02014b50u) {
            st = npz_fail(z, "central directory entry %" PRIu64 " is malformed", i);
            break;
        }
        const uint32_t flags = rd16(c + 8), method = rd16(c + 10), crc = rd32(c + 16);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lh = rd32(c + 42);
        const uint32_t nlen = rd16(c + 28), xlen = rd16(c + 30), klen = rd16(c + 32);
        if (limit - at - 46 < (uint64_t)nlen + xlen + klen) {
            st = npz_fail(z, "central directory entry %" PRIu64 " runs past the directory", i);
            break;
        }
        const char *name = (const char *)c + 46;
        const int pn = (int)(nlen < 200 ? nlen : 200);
        /* zip64 extra: the fields that are 0xFFFFFFFF, in the order usize, csize, offset */
        const unsigned char *x = c + 46 + nlen, *xe = x + xlen;
        while (xe - x >= 4) {
            const uint32_t id = rd16(x), len = rd16(x + 2);
            if ((uint64_t)(xe - x - 4) < len) break;
            if (id == 1) {
                const unsigned char *f = x + 4, *fe = f + len;
                if (usize == 0xFFFFFFFFu && fe - f >= 8) usize = rd64(f), f += 8;
                if (csize == 0xFFFFFFFFu && fe - f >= 8) csize = rd64(f), f += 8;
                if (lh == 0xFFFFFFFFu && fe - f >= 8) lh = rd64(f), f += 8;
            }
            x += 4 + len;
        }
        if (flags & 1) st = npz_fail(z, "member '%.*s' is encrypted", pn, name);
        else if (method == 8)
            st = npz_fail(z, "member '%.*s' is compressed with deflate (numpy.savez_compressed); this reader takes "
                             "numpy.savez archives (stored members)", pn, name);
        else if (method != 0) st = npz_fail(z, "member '%.*s' uses zip compression method %u (only stored, 0, is read)", pn, name, method);
        else if (csize != usize) st = npz_fail(z, "member '%.*s' is stored with %" PRIu64 " bytes but claims %" PRIu64, pn, name, csize, usize);
        else if (nlen <= 4 || memcmp(name + nlen - 4, ".npy", 4) != 0 || memchr(name, '\0', nlen))
            st = npz_fail(z, "member '%.*s' is not named '<tensor>.npy'", pn, name);
        else if (lh > cd_off || cd_off - lh < 30 || rd32(b + lh) != 0x04034b50u)
            st = npz_fail(z, "member '%.*s': no local header at byte %" PRIu64, pn, name, lh);
        if (st != GOPT_OK) break;
        const unsigned char *l = b + lh;
        const uint32_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
        const uint64_t data = lh + 30 + lnlen + lxlen;
        if (rd16(l + 8) != method || lnlen != nlen || memcmp(l + 30, name, nlen) != 0)
            st = npz_fail(z, "member '%.*s': the local header disagrees with the central directory", pn, name);
        else if (data > cd_off || cd_off - data < csize)
            st = npz_fail(z, "member '%.*s': its %" PRIu64 " bytes run past the central directory", pn, name, csize);
        else if (gopt__crc32(0, b + data, (size_t)csize) != crc)
            st = npz_fail(z, "member '%.*s': CRC-32 mismatch", pn, name);
        if (st != GOPT_OK) break;
        m[i].name = name;
        m[i].name_len = nlen - 4;
        m[i].lh_begin = lh;
        m[i].end = data + csize;
        st = npy_parse(z, &m[i], b + data, csize);
        at += 46 + (uint64_t)nlen + xlen + klen;
    }
    if (st == GOPT_OK && n > 1) {
        qsort(m, (size_t)n, sizeof *m, cmp_span);
        for (uint64_t i = 1; i < n && st == GOPT_OK; i++)
            if (m[i].lh_begin < m[i - 1].end)
                st = npz_fail(z, "members '%.*s.npy' and '%.*s.npy' overlap", (int)m[i - 1].name_len, m[i - 1].name,
                              (int)m[i].name_len, m[i].name);
    }
    if (st != GOPT_OK) {
        gopt__free(m);
        return st;
    }
    *out = m;
    *count = (int)n;
    return GOPT_OK;
}

/* ---- members -> a safetensors image -> the safetensors import ------------------------------ */

static size_t image_header(const npz_member *m, int n, char *o) {
    size_t k = 0;
    uint64_t off = 0;
    char tmp[96];
#define PUTS(str) do { size_t l_ = strlen(str); if (o) memcpy(o + k, (str), l_); k += l_; } while (0)
    PUTS("{");
    for (int i = 0; i < n; i++) {
        PUTS(i ? ",\"" : "\"");
        k += gopt__json_escape(o ? o + k : NULL, m[i].name, m[i].name_len);
        snprintf(tmp, sizeof tmp, "\":{\"dtype\":\"%s\",\"shape\":[", m[i].dtype);
        PUTS(tmp);
        for (int d = 0; d < m[i].ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%" PRId64, d ? "," : "", m[i].shape[d]);
            PUTS(tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + m[i].bytes);
        PUTS(tmp);
        off += m[i].bytes;
    }
    PUTS("}");
#undef PUTS
    return k;
}

static gopt_status npz_import(gopt_params *p, gopt_net *net, const void *buf, size_t size, const char *label,
                              const gopt_weights_config *cfg, gopt_weights_report *report, const char *fn) {
    npz_ctx z = {fn, label, buf, size};
    npz_member *m;
    int n;
    GOPT_TRY(zip_parse(&z, &m, &n));
    const size_t hl = image_header(m, n, NULL), padded = (hl + 7) / 8 * 8;
    uint64_t data = 0;
    for (int i = 0; i < n; i++) data += m[i].bytes; /* each member fits in the file: no overflow */
    unsigned char *img = gopt__malloc(8 + padded + (size_t)data);
    if (!img) {
        gopt__free(m);
        return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%s: %" PRIu64 " bytes to stage the arrays", label, data);
    }
    gopt__le64(img, padded);
    image_header(m, n, (char *)img + 8);
    memset(img + 8 + hl, ' ', padded - hl);
    unsigned char *o = img + 8 + padded;
    for (int i = 0; i < n; i++) {
        if (!m[i].swap) {
            if (m[i].bytes) memcpy(o, m[i].data, (size_t)m[i].bytes);
        } else {
            const int s = m[i].itemsize;
            for (uint64_t j = 0; j < m[i].bytes; j += (uint64_t)s)
                for (int t = 0; t < s; t++) o[j + (uint64_t)t] = m[i].data[j + (uint64_t)(s - 1 - t)];
        }
        o += m[i].bytes;
    }
    gopt__free(m);
    gopt_status st = gopt__safetensors_import(p, net, img, 8 + padded + (size_t)data, label, cfg, report, fn);
    gopt__free(img);
    return st;
}

static gopt_status npz_load_path(gopt_params *p, gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                 gopt_weights_report *report, const char *fn) {
    if (!gopt_params_finalized(p)) return GOPT__FAIL_AS(fn, GOPT_ESTATE, "the parameter arena is not finalized");
    unsigned char *b;
    size_t size;
    GOPT_TRY(gopt__read_whole(path, &b, &size, fn));
    gopt_status st = npz_import(p, net, b, size, path, cfg, report, fn);
    gopt__free(b);
    return st;
}

gopt_status gopt_net_load_npz(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                              gopt_weights_report *report) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    return npz_load_path(gopt_net_params(net), net, path, cfg, report, __func__);
}

gopt_status gopt_net_load_npz_mem(gopt_net *net, const void *data, size_t size, const char *label,
                                  const gopt_weights_config *cfg, gopt_weights_report *report) {
    GOPT_CHECK_NULL(net);
    if (!data && size) return GOPT_FAIL(GOPT_EINVAL, "argument 'data' is NULL with size %zu", size);
    gopt_params *p = gopt_net_params(net);
    if (!gopt_params_finalized(p)) return GOPT_FAIL(GOPT_ESTATE, "the net is not built");
    static const unsigned char empty[1];
    return npz_import(p, net, data ? data : empty, size, label ? label : "<memory>", cfg, report, __func__);
}

gopt_status gopt_params_load_npz(gopt_params *p, const char *path, const gopt_weights_config *cfg,
                                 gopt_weights_report *report) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    c.names = GOPT_NAMES_ARENA;
    return npz_load_path(p, NULL, path, &c, report, __func__);
}
