#define _POSIX_C_SOURCE 200809L
/* safetensors export and import (see gradopt/interop.h): the writer, a strict reader of the
 * header (a small JSON parser for exactly what the format allows) and the all-or-nothing
 * import into a net or an arena. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"
#include "io/weights.h"

#define ST_HEADER_MAX 100000000u /* the reference implementation's limit */
#define ST_MAX_DIMS 8

gopt_weights_config gopt_weights_config_default(void) {
    gopt_weights_config c;
    memset(&c, 0, sizeof c);
    c.names = GOPT_NAMES_TORCH;
    c.strict = 1;
    c.num_batches_tracked = 0;
    return c;
}

static gopt_status check_cfg(const gopt_weights_config *cfg, const char *fn) {
    if (cfg->names != GOPT_NAMES_TORCH && cfg->names != GOPT_NAMES_ARENA)
        return GOPT__FAIL_AS(fn, GOPT_EINVAL, "cfg->names = %d is not GOPT_NAMES_TORCH or GOPT_NAMES_ARENA", (int)cfg->names);
    return GOPT_OK;
}

/* ---- dtypes ------------------------------------------------------------------------------- */

enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_U16, DT_U32, DT_U64, DT_BOOL,
       DT_COUNT };
static const struct {
    const char *name;
    int size;
} dtypes[DT_COUNT] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                      {"I8", 1},  {"U8", 1},  {"U16", 2},  {"U32", 4}, {"U64", 8}, {"BOOL", 1}};

static int dtype_float(int d) { return d <= DT_F64; }

static float half_to_float(uint32_t h) {
    uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        bits = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        bits = sign;
    } else { /* subnormal: m * 2^-24, exact in float */
        float f = (float)m * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint64_t rd_le(const unsigned char *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

/* n elements of dtype d at b (little-endian) -> float dst. */
static void convert(int d, const unsigned char *b, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) {
        if (d == DT_F32) {
            uint32_t u = (uint32_t)rd_le(b + 4 * i, 4);
            memcpy(&dst[i], &u, 4);
        } else if (d == DT_F16) {
            dst[i] = half_to_float((uint32_t)rd_le(b + 2 * i, 2));
        } else if (d == DT_BF16) {
            uint32_t u = (uint32_t)rd_le(b + 2 * i, 2) << 16;
            memcpy(&dst[i], &u, 4);
        } else {
            uint64_t u = rd_le(b + 8 * i, 8);
            double x;
            memcpy(&x, &u, 8);
            dst[i] = (float)x;
        }
    }
}

/* ---- writer ------------------------------------------------------------------------------- */

static gopt_status write_safetensors(const gopt__wslot *s, int n, const char *path, const char *fn) {
    /* header: at most 6 bytes per name byte, 64 per dimension and 128 of fixed text each */
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += 6 * strlen(s[i].name) + 64 * 4 + 160;
    char *h = gopt__malloc(cap);
    if (!h) return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "a header of %zu bytes", cap);
    size_t k = (size_t)sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const int dsize = s[i].is_count ? 8 : 4;
        h[k++] = ',';
        h[k++] = '"';
        k += gopt__json_escape(h + k, s[i].name, strlen(s[i].name));
        k += (size_t)sprintf(h + k, "\":{\"dtype\":\"%s\",\"shape\":[", s[i].is_count ? "I64" : "F32");
        for (int d = 0; d < s[i].ndim; d++) k += (size_t)sprintf(h + k, "%s%" PRId64, d ? "," : "", s[i].shape[d]);
        uint64_t end = off + (uint64_t)s[i].numel * (uint64_t)dsize;
        k += (size_t)sprintf(h + k, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, end);
        off = end;
    }
    h[k++] = '}';
    while (k % 8) h[k++] = ' ';
    gopt__wfile w;
    gopt_status st = gopt__wfile_open(&w, path, fn);
    if (st != GOPT_OK) {
        gopt__free(h);
        return st;
    }
    unsigned char len[8];
    gopt__le64(len, (uint64_t)k);
    gopt__wfile_put(&w, len, 8);
    gopt__wfile_put(&w, h, k);
    gopt__free(h);
    for (int i = 0; i < n; i++) gopt__wfile_put_slot(&w, &s[i]);
    return gopt__wfile_finish(&w);
}

gopt_status gopt_net_save_safetensors(const gopt_net *net, const char *path, const gopt_weights_config *cfg) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    GOPT_TRY(check_cfg(&c, __func__));
    gopt_net *m = (gopt_net *)net; /* read only */
    gopt__wslot *s;
    int n;
    GOPT_TRY(gopt__weights_gather(gopt_net_params(m), m, &c, &s, &n, __func__));
    gopt_status st = write_safetensors(s, n, path, __func__);
    gopt__free(s);
    return st;
}

gopt_status gopt_params_save_safetensors(const gopt_params *p, const char *path) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = gopt_weights_config_default();
    gopt__wslot *s;
    int n;
    GOPT_TRY(gopt__weights_gather((gopt_params *)p, NULL, &c, &s, &n, __func__));
    gopt_status st = write_safetensors(s, n, path, __func__);
    gopt__free(s);
    return st;
}

/* ---- reader: the header ------------------------------------------------------------------- */

typedef struct st_entry {
    const char *name; /* into the parser's pool */
    int dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;
    int used;
} st_entry;

typedef struct st_parser {
    const char *fn; /* the public function, named in error details */
    const char *p, *end;
    const char *label;
    char *pool; /* decoded strings */
    size_t pool_used, pool_cap;
    st_entry *e;
    int n, cap;
} st_parser;

#define PFAIL(ps, ...) st_fail((ps), __VA_ARGS__)
GOPT_PRINTF(2, 3) static gopt_status st_fail(const st_parser *ps, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: safetensors header: %s", ps->label, msg);
}

static void ws(st_parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}
static int eat(st_parser *ps, char c) {
    ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 1;
    }
    return 0;
}
static size_t at(const st_parser *ps, const char *hdr) { return (size_t)(ps->p - hdr) + 8; }

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static int read_hex4(st_parser *ps, uint32_t *v) {
    if (ps->end - ps->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return 0;
        *v = (*v << 4) | (uint32_t)h;
    }
    ps->p += 4;
    return 1;
}

/* A JSON string, decoded into the pool (NUL-terminated); *out its start. The pool holds at
 * most the header's size plus one byte per string (decoding never lengthens). */
static gopt_status parse_string(st_parser *ps, const char **out) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p != '"') return PFAIL(ps, "expected a string");
    ps->p++;
    char *o = ps->pool + ps->pool_used;
    size_t k = 0;
    for (;;) {
        if (ps->p >= ps->end) return PFAIL(ps, "unterminated string");
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') break;
        if (c < 0x20) return PFAIL(ps, "control character 0x%02x in a string", c);
        if (c != '\\') {
            o[k++] = (char)c;
            continue;
        }
        if (ps->p >= ps->end) return PFAIL(ps, "unterminated escape");
        char e = *ps->p++;
        uint32_t u;
        switch (e) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u':
            if (!read_hex4(ps, &u)) return PFAIL(ps, "bad \\u escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') return PFAIL(ps, "lone surrogate");
                ps->p += 2;
                if (!read_hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) return PFAIL(ps, "bad surrogate pair");
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return PFAIL(ps, "lone surrogate");
            }
            if (u == 0) return PFAIL(ps, "\\u0000 in a string");
            /* 6 or 12 escape bytes become at most 4 */
            if (u < 0x80) {
                o[k++] = (char)u;
            } else if (u < 0x800) {
                o[k++] = (char)(0xC0 | (u >> 6));
                o[k++] = (char)(0x80 | (u & 0x3f));
            } else if (u < 0x10000) {
                o[k++] = (char)(0xE0 | (u >> 12));
                o[k++] = (char)(0x80 | ((u >> 6) & 0x3f));
                o[k++] = (char)(0x80 | (u & 0x3f));
            } else {
                o[k++] = (char)(0xF0 | (u >> 18));
                o[k++] = (char)(0x80 | ((u >> 12) & 0x3f));
                o[k++] = (char)(0x80 | ((u >> 6) & 0x3f));
                o[k++] = (char)(0x80 | (u & 0x3f));
            }
            break;
        default: return PFAIL(ps, "bad escape '\\%c'", e);
        }
    }
    o[k++] = '\0';
    ps->pool_used += k;
    *out = o;
    return GOPT_OK;
}

/* A non-negative integer below 2^63 (no sign, fraction or exponent). */
static gopt_status parse_uint(st_parser *ps, const char *what, const char *tensor, uint64_t *v) {
    ws(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return PFAIL(ps, "tensor '%s': %s must be non-negative integers", tensor, what);
    uint64_t x = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        uint64_t dgt = (uint64_t)(*ps->p - '0');
        if (x > (((uint64_t)INT64_MAX) - dgt) / 10) return PFAIL(ps, "tensor '%s': %s too large", tensor, what);
        x = x * 10 + dgt;
        ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
        return PFAIL(ps, "tensor '%s': %s must be integers", tensor, what);
    *v = x;
    return GOPT_OK;
}

/* Any JSON value (for "__metadata__" and unknown keys), nesting at most 64 deep. */
static gopt_status skip_value(st_parser *ps, int depth) {
    if (depth > 64) return PFAIL(ps, "nesting deeper than 64");
    ws(ps);
    if (ps->p >= ps->end) return PFAIL(ps, "a value is missing");
    const char c = *ps->p;
    if (c == '"') {
        const char *s;
        size_t mark = ps->pool_used;
        GOPT_TRY(parse_string(ps, &s));
        ps->pool_used = mark; /* not kept */
        return GOPT_OK;
    }
    if (c == '{' || c == '[') {
        const char close = c == '{' ? '}' : ']';
        ps->p++;
        if (eat(ps, close)) return GOPT_OK;
        do {
            if (c == '{') {
                ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') return PFAIL(ps, "an object key must be a string");
                GOPT_TRY(skip_value(ps, depth + 1));
                if (!eat(ps, ':')) return PFAIL(ps, "expected ':'");
            }
            GOPT_TRY(skip_value(ps, depth + 1));
        } while (eat(ps, ','));
        if (!eat(ps, close)) return PFAIL(ps, "expected ',' or '%c'", close);
        return GOPT_OK;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if ((size_t)(ps->end - ps->p) >= l && memcmp(ps->p, words[i], l) == 0) {
            ps->p += l;
            return GOPT_OK;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        while (ps->p < ps->end && strchr("+-.eE0123456789", *ps->p)) ps->p++;
        return GOPT_OK;
    }
    return PFAIL(ps, "unexpected character 0x%02x", (unsigned char)c);
}

static gopt_status add_entry(st_parser *ps, st_entry **out) {
    if (ps->n == ps->cap) {
        int nc = ps->cap ? 2 * ps->cap : 64;
        st_entry *e = gopt__calloc((size_t)nc, sizeof *e);
        if (!e) return GOPT__FAIL_AS(ps->fn, GOPT_ENOMEM, "%s: %d tensor entries", ps->label, nc);
        if (ps->n) memcpy(e, ps->e, (size_t)ps->n * sizeof *e);
        gopt__free(ps->e);
        ps->e = e;
        ps->cap = nc;
    }
    *out = &ps->e[ps->n++];
    memset(*out, 0, sizeof **out);
    return GOPT_OK;
}

static gopt_status parse_entry(st_parser *ps, const char *name) {
    st_entry *e = NULL;
    GOPT_TRY(add_entry(ps, &e));
    e->name = name;
    e->dtype = -1;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (!eat(ps, '{')) return PFAIL(ps, "tensor '%s': expected an object", name);
    if (!eat(ps, '}')) {
        do {
            const char *key;
            GOPT_TRY(parse_string(ps, &key));
            if (!eat(ps, ':')) return PFAIL(ps, "tensor '%s': expected ':'", name);
            if (strcmp(key, "dtype") == 0) {
                if (have_dtype++) return PFAIL(ps, "tensor '%s': two dtypes", name);
                const char *dt;
                GOPT_TRY(parse_string(ps, &dt));
                for (int d = 0; d < DT_COUNT; d++)
                    if (strcmp(dt, dtypes[d].name) == 0) e->dtype = d;
                if (e->dtype < 0) return PFAIL(ps, "tensor '%s': unknown dtype '%.32s'", name, dt);
            } else if (strcmp(key, "shape") == 0) {
                if (have_shape++) return PFAIL(ps, "tensor '%s': two shapes", name);
                if (!eat(ps, '[')) return PFAIL(ps, "tensor '%s': shape must be an array", name);
                if (!eat(ps, ']')) {
                    do {
                        uint64_t v;
                        if (e->ndim == ST_MAX_DIMS)
                            return PFAIL(ps, "tensor '%s': more than %d dimensions", name, ST_MAX_DIMS);
                        GOPT_TRY(parse_uint(ps, "shape", name, &v));
                        e->shape[e->ndim++] = (int64_t)v;
                    } while (eat(ps, ','));
                    if (!eat(ps, ']')) return PFAIL(ps, "tensor '%s': expected ',' or ']' in shape", name);
                }
            } else if (strcmp(key, "data_offsets") == 0) {
                if (have_off++) return PFAIL(ps, "tensor '%s': two data_offsets", name);
                if (!eat(ps, '[')) return PFAIL(ps, "tensor '%s': data_offsets must be an array", name);
                GOPT_TRY(parse_uint(ps, "data_offsets", name, &e->begin));
                if (!eat(ps, ',')) return PFAIL(ps, "tensor '%s': data_offsets must hold two integers", name);
                GOPT_TRY(parse_uint(ps, "data_offsets", name, &e->end));
                if (!eat(ps, ']')) return PFAIL(ps, "tensor '%s': data_offsets must hold two integers", name);
            } else {
                GOPT_TRY(skip_value(ps, 1));
            }
        } while (eat(ps, ','));
        if (!eat(ps, '}')) return PFAIL(ps, "tensor '%s': expected ',' or '}'", name);
    }
    if (!have_dtype || !have_shape || !have_off)
        return PFAIL(ps, "tensor '%s': needs dtype, shape and data_offsets", name);
    return GOPT_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}
static int cmp_off(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parse and validate the whole file: entries sorted by name, every offset checked. */
static gopt_status parse_file(st_parser *ps, const unsigned char *buf, size_t size) {
    if (size < 8) return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: %zu bytes, shorter than the 8-byte header length", ps->label, size);
    const uint64_t hlen = rd_le(buf, 8);
    if (hlen > size - 8)
        return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: the header claims %" PRIu64 " bytes, the file has %zu after the length",
                         ps->label, hlen, size - 8);
    if (hlen > ST_HEADER_MAX)
        return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: header of %" PRIu64 " bytes exceeds %u", ps->label, hlen, ST_HEADER_MAX);
    const char *hdr = (const char *)buf + 8;
    ps->p = hdr;
    ps->end = hdr + hlen;
    ps->pool_cap = (size_t)hlen + 1;
    ps->pool = gopt__malloc(ps->pool_cap);
    if (!ps->pool) return GOPT__FAIL_AS(ps->fn, GOPT_ENOMEM, "%s: %" PRIu64 " bytes for the header's strings", ps->label, hlen);
    if (!eat(ps, '{')) return PFAIL(ps, "does not start with '{'");
    int meta = 0;
    if (!eat(ps, '}')) {
        do {
            const char *key;
            GOPT_TRY(parse_string(ps, &key));
            if (!eat(ps, ':')) return PFAIL(ps, "expected ':' after '%s'", key);
            if (strcmp(key, "__metadata__") == 0) {
                if (meta++) return PFAIL(ps, "two __metadata__");
                ws(ps);
                if (ps->p >= ps->end || *ps->p != '{') return PFAIL(ps, "__metadata__ must be an object");
                GOPT_TRY(skip_value(ps, 1));
            } else {
                GOPT_TRY(parse_entry(ps, key));
            }
        } while (eat(ps, ','));
        if (!eat(ps, '}')) return PFAIL(ps, "expected ',' or '}' at byte %zu", at(ps, hdr));
    }
    ws(ps);
    if (ps->p != ps->end) return PFAIL(ps, "bytes after the JSON object (at byte %zu)", at(ps, hdr));
    const uint64_t data_len = (uint64_t)(size - 8 - hlen);
    for (int i = 0; i < ps->n; i++) {
        st_entry *e = &ps->e[i];
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            uint64_t v = (uint64_t)e->shape[d];
            if (v && numel > UINT64_MAX / 8 / v)
                return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: tensor '%s': shape too large", ps->label, e->name);
            numel *= v;
        }
        e->numel = (int64_t)numel;
        const uint64_t bytes = numel * (uint64_t)dtypes[e->dtype].size;
        if (e->end < e->begin || e->end - e->begin != bytes)
            return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT,
                             "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] do not hold %" PRIu64
                             " bytes (%s x %" PRIu64 " elements)",
                             ps->label, e->name, e->begin, e->end, bytes, dtypes[e->dtype].name, numel);
        if (e->end > data_len)
            return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT,
                             "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the %" PRIu64
                             " bytes of data",
                             ps->label, e->name, e->begin, e->end, data_len);
    }
    if (ps->n > 1) qsort(ps->e, (size_t)ps->n, sizeof *ps->e, cmp_name);
    for (int i = 1; i < ps->n; i++)
        if (strcmp(ps->e[i - 1].name, ps->e[i].name) == 0)
            return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: tensor '%s' appears twice", ps->label, ps->e[i].name);
    /* the tensors must tile [0, data_len): sorted by offset, each starts where the last ended */
    const st_entry **by = gopt__calloc((size_t)(ps->n ? ps->n : 1), sizeof *by);
    if (!by) return GOPT__FAIL_AS(ps->fn, GOPT_ENOMEM, "%s: %d offsets", ps->label, ps->n);
    for (int i = 0; i < ps->n; i++) by[i] = &ps->e[i];
    if (ps->n > 1) qsort(by, (size_t)ps->n, sizeof *by, cmp_off);
    uint64_t pos = 0;
    const char *prev = NULL;
    gopt_status st = GOPT_OK;
    for (int i = 0; i < ps->n && st == GOPT_OK; i++) {
        if (by[i]->begin < pos)
            st = GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: tensors '%s' and '%s' overlap (bytes %" PRIu64 "..%" PRIu64 ")",
                           ps->label, prev, by[i]->name, by[i]->begin, pos);
        else if (by[i]->begin > pos)
            st = GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT,
                           "%s: bytes %" PRIu64 "..%" PRIu64 " of the data belong to no tensor (before '%s')",
                           ps->label, pos, by[i]->begin, by[i]->name);
        pos = by[i]->end;
        prev = by[i]->name;
    }
    gopt__free(by);
    GOPT_TRY(st);
    if (pos != data_len)
        return GOPT__FAIL_AS(ps->fn, GOPT_EFORMAT, "%s: the last %" PRIu64 " bytes of the data belong to no tensor", ps->label,
                         data_len - pos);
    return GOPT_OK;
}

static const st_entry *find_entry(const st_parser *ps, const char *name) {
    int lo = 0, hi = ps->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ps->e[mid].name, name);
        if (c == 0) return &ps->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---- import ------------------------------------------------------------------------------- */

static void report_add(gopt_weights_report *r, size_t *used, const char *head, int *first, const char *name) {
    if (!r) return;
    char *t = r->text;
    const size_t cap = sizeof r->text;
    if (*used + 4 >= cap) return;
    int n;
    if (*first) n = snprintf(t + *used, cap - *used, "%s%s: %s", *used ? "; " : "", head, name);
    else n = snprintf(t + *used, cap - *used, ", %s", name);
    *first = 0;
    if (n < 0 || *used + (size_t)n >= cap - 4) {
        memcpy(t + cap - 4, "...", 4);
        *used = cap;
    } else {
        *used += (size_t)n;
    }
}

static gopt_status import(gopt_params *p, gopt_net *net, const unsigned char *buf, size_t size, const char *label,
                          const gopt_weights_config *cfg, gopt_weights_report *report, const char *fn) {
    gopt__wslot *s = NULL;
    int n = 0;
    gopt_weights_config gc = *cfg;
    gc.num_batches_tracked = 0; /* gather the count slots so the file's ones are recognised */
    GOPT_TRY(gopt__weights_gather(p, net, &gc, &s, &n, fn));
    st_parser ps;
    memset(&ps, 0, sizeof ps);
    ps.label = label;
    ps.fn = fn;
    float *stage = NULL;
    gopt_status st = parse_file(&ps, buf, size);
    const unsigned char *data = buf + 8 + (st == GOPT_OK ? rd_le(buf, 8) : 0);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += s[i].is_count ? 0 : s[i].numel;
    if (st == GOPT_OK) {
        stage = gopt__malloc((size_t)(total > 0 ? total : 1) * sizeof(float));
        if (!stage) st = GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%s: %" PRId64 " floats of staging", label, total);
    }
    int loaded = 0, missing = 0;
    int64_t off = 0;
    for (int i = 0; i < n && st == GOPT_OK; i++) {
        const gopt__wslot *w = &s[i];
        st_entry *e = (st_entry *)find_entry(&ps, w->name);
        if (!e) {
            if (w->is_count) continue;
            if (cfg->strict) {
                st = GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: tensor '%s' of the net is missing (%s names; strict load: set "
                                                   "strict = 0 to keep its value)", label, w->name,
                                   net ? (cfg->names == GOPT_NAMES_TORCH ? "PyTorch" : "arena") : "arena");
                break;
            }
            missing++;
            off += w->numel;
            continue;
        }
        e->used = 1;
        if (w->is_count) { /* one number, any numeric dtype; the value is not kept */
            if (e->numel != 1 || e->dtype == DT_BOOL)
                st = GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: tensor '%s' must be one number, has %" PRId64 " elements of %s",
                               label, e->name, e->numel, dtypes[e->dtype].name);
            continue;
        }
        int same = e->ndim == w->ndim;
        for (int d = 0; same && d < w->ndim; d++) same = e->shape[d] == w->shape[d];
        if (!same) {
            char a[160], b[160];
            int k = snprintf(a, sizeof a, "(");
            for (int d = 0; d < e->ndim; d++) k += snprintf(a + k, sizeof a - (size_t)k, "%s%" PRId64, d ? "," : "", e->shape[d]);
            snprintf(a + k, sizeof a - (size_t)k, ")");
            k = snprintf(b, sizeof b, "(");
            for (int d = 0; d < w->ndim; d++) k += snprintf(b + k, sizeof b - (size_t)k, "%s%" PRId64, d ? "," : "", w->shape[d]);
            snprintf(b + k, sizeof b - (size_t)k, ")");
            st = GOPT__FAIL_AS(fn, GOPT_ESHAPE, "%s: tensor '%s' has shape %s in the file, %s in the net", label, w->name, a, b);
            break;
        }
        if (!dtype_float(e->dtype)) {
            st = GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: tensor '%s' is %s, a float tensor takes F32, F16, BF16 or F64", label,
                           w->name, dtypes[e->dtype].name);
            break;
        }
        convert(e->dtype, data + e->begin, w->numel, stage + off);
        off += w->numel;
        loaded++;
    }
    int unexpected = 0;
    if (st == GOPT_OK) {
        for (int i = 0; i < ps.n; i++) unexpected += !ps.e[i].used;
        if (unexpected && cfg->strict) {
            for (int i = 0; i < ps.n; i++)
                if (!ps.e[i].used) {
                    st = GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: tensor '%s' is not in the net (%d such; strict load; set "
                                                 "strict = 0 to ignore them)", label, ps.e[i].name, unexpected);
                    break;
                }
        }
    }
    if (st == GOPT_OK) { /* commit: nothing before this point touched the net */
        off = 0;
        size_t used = 0;
        int first_m = 1, first_u = 1;
        if (report) memset(report, 0, sizeof *report);
        for (int i = 0; i < n; i++) {
            if (s[i].is_count) continue;
            if (find_entry(&ps, s[i].name)) memcpy(s[i].data, stage + off, (size_t)s[i].numel * sizeof(float));
            else report_add(report, &used, "missing", &first_m, s[i].name);
            off += s[i].numel;
        }
        for (int i = 0; i < ps.n; i++)
            if (!ps.e[i].used) report_add(report, &used, "unexpected", &first_u, ps.e[i].name);
        if (report) {
            report->loaded = loaded;
            report->missing = missing;
            report->unexpected = unexpected;
        }
    }
    gopt__free(stage);
    gopt__free(ps.pool);
    gopt__free(ps.e);
    gopt__free(s);
    return st;
}

static gopt_status load_path(gopt_params *p, gopt_net *net, const char *path, const gopt_weights_config *cfg,
                             gopt_weights_report *report, const char *fn) {
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    GOPT_TRY(check_cfg(&c, fn));
    if (!gopt_params_finalized(p)) return GOPT__FAIL_AS(fn, GOPT_ESTATE, "the parameter arena is not finalized");
    unsigned char *b;
    size_t size;
    GOPT_TRY(gopt__read_whole(path, &b, &size, fn));
    gopt_status st = import(p, net, b, size, path, &c, report, fn);
    gopt__free(b);
    return st;
}

gopt_status gopt__safetensors_import(gopt_params *p, gopt_net *net, const void *buf, size_t size, const char *label,
                                     const gopt_weights_config *cfg, gopt_weights_report *report, const char *fn) {
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    GOPT_TRY(check_cfg(&c, fn));
    if (!gopt_params_finalized(p)) return GOPT__FAIL_AS(fn, GOPT_ESTATE, "the parameter arena is not finalized");
    static const unsigned char empty[1];
    return import(p, net, buf ? buf : empty, size, label, &c, report, fn);
}

gopt_status gopt_net_load_safetensors(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                      gopt_weights_report *report) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    return load_path(gopt_net_params(net), net, path, cfg, report, __func__);
}

gopt_status gopt_params_load_safetensors(gopt_params *p, const char *path, const gopt_weights_config *cfg,
                                         gopt_weights_report *report) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    c.names = GOPT_NAMES_ARENA;
    return load_path(p, NULL, path, &c, report, __func__);
}

gopt_status gopt_net_load_safetensors_mem(gopt_net *net, const void *data, size_t size, const char *label,
                                          const gopt_weights_config *cfg, gopt_weights_report *report) {
    GOPT_CHECK_NULL(net);
    if (!data && size) return GOPT_FAIL(GOPT_EINVAL, "argument 'data' is NULL with size %zu", size);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    GOPT_TRY(check_cfg(&c, __func__));
    gopt_params *p = gopt_net_params(net);
    if (!gopt_params_finalized(p)) return GOPT_FAIL(GOPT_ESTATE, "the net is not built");
    static const unsigned char empty[1];
    return import(p, net, data ? data : empty, size, label ? label : "<memory>", &c, report, __func__);
}
