#define _POSIX_C_SOURCE 200809L
/* The tensors a net or an arena exchanges, and atomic file output (see io/weights.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "io/weights.h"

gopt_status gopt__weights_gather(gopt_params *p, gopt_net *net, const gopt_weights_config *cfg, gopt__wslot **out,
                                 int *n, const char *fn) {
    *out = NULL;
    *n = 0;
    if (!gopt_params_finalized(p)) return GOPT__FAIL_AS(fn, GOPT_ESTATE, "the parameter arena is not finalized");
    const int np = gopt_params_count(p);
    const int nb = net ? gopt_net_buffer_count(net) : 0;
    const int nc = (net && cfg->num_batches_tracked >= 0) ? nb / 2 : 0;
    const int total = np + nb + nc;
    gopt__wslot *s = gopt__calloc((size_t)(total > 0 ? total : 1), sizeof *s);
    if (!s) return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%d tensor descriptions", total);
    gopt_status st = GOPT_OK;
    const int torch = net && cfg->names == GOPT_NAMES_TORCH;
    for (int i = 0; i < np + nb && st == GOPT_OK; i++) {
        gopt__wslot *d = &s[i];
        const char *name;
        gopt_tensor v;
        gopt_param_info pi;
        gopt_net_buffer bi;
        if (i < np) {
            st = gopt_params_info(p, i, &pi);
            name = pi.name;
            v = pi.value;
        } else {
            st = gopt_net_buffer_info(net, i - np, &bi);
            name = bi.name;
            v = bi.value;
        }
        if (st != GOPT_OK) break;
        if (torch) {
            st = gopt_net_torch_name(net, name, d->name, sizeof d->name);
        } else if (strlen(name) >= sizeof d->name) {
            st = GOPT__FAIL_AS(fn, GOPT_ERANGE, "name '%s' too long", name);
        } else {
            strcpy(d->name, name);
        }
        if (st != GOPT_OK) break;
        d->ndim = v.ndim;
        for (int k = 0; k < v.ndim && k < 4; k++) d->shape[k] = v.shape[k];
        d->numel = v.numel;
        d->data = v.data;
    }
    for (int j = 0; j < nc && st == GOPT_OK; j++) {
        /* after the running_mean slot: "<bn>.running_mean" -> "<bn>.num_batches_tracked" */
        const gopt__wslot *rm = &s[np + 2 * j];
        gopt__wslot *d = &s[np + nb + j];
        size_t base = strlen(rm->name) - strlen("running_mean");
        if (base + strlen("num_batches_tracked") >= sizeof d->name) {
            st = GOPT__FAIL_AS(fn, GOPT_ERANGE, "name '%.*snum_batches_tracked' too long", (int)base, rm->name);
            break;
        }
        memcpy(d->name, rm->name, base);
        strcpy(d->name + base, "num_batches_tracked");
        d->ndim = 0;
        d->numel = 1;
        d->is_count = 1;
        d->count = cfg->num_batches_tracked;
    }
    if (st != GOPT_OK) {
        gopt__free(s);
        return st;
    }
    *out = s;
    *n = total;
    return GOPT_OK;
}

/* ---- files -------------------------------------------------------------------------------- */

gopt_status gopt__wfile_open(gopt__wfile *w, const char *path, const char *fn) {
    memset(w, 0, sizeof *w);
    w->fn = fn;
    size_t len = strlen(path);
    w->path = gopt__strdup(path);
    w->tmp = gopt__malloc(len + 5);
    if (!w->path || !w->tmp) {
        gopt__free(w->path);
        gopt__free(w->tmp);
        memset(w, 0, sizeof *w);
        return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "the path '%s'", path);
    }
    memcpy(w->tmp, path, len);
    memcpy(w->tmp + len, ".tmp", 5);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        gopt_status s = GOPT__FAIL_AS(fn, GOPT_EIO, "cannot create '%s': %s", w->tmp, strerror(e));
        gopt__free(w->path);
        gopt__free(w->tmp);
        memset(w, 0, sizeof *w);
        return s;
    }
    return GOPT_OK;
}

static void wfile_release(gopt__wfile *w) {
    gopt__free(w->path);
    gopt__free(w->tmp);
    memset(w, 0, sizeof *w);
}

void gopt__wfile_abort(gopt__wfile *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    wfile_release(w);
}

gopt_status gopt__wfile_finish(gopt__wfile *w) {
    int bad = fflush(w->f) != 0 || ferror(w->f);
    int e = errno;
    if (!bad && fsync(fileno(w->f)) != 0 && errno != EINVAL) {
        bad = 1;
        e = errno;
    }
    if (fclose(w->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    w->f = NULL;
    if (bad) {
        gopt_status s = GOPT__FAIL_AS(w->fn, GOPT_EIO, "writing '%s' failed: %s", w->tmp, strerror(e));
        gopt__wfile_abort(w);
        return s;
    }
    if (rename(w->tmp, w->path) != 0) {
        e = errno;
        gopt_status s = GOPT__FAIL_AS(w->fn, GOPT_EIO, "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(e));
        gopt__wfile_abort(w);
        return s;
    }
    wfile_release(w);
    return GOPT_OK;
}

/* The slot's bytes, `chunk` at a time, to fn. */
static void slot_bytes(const gopt__wslot *s, void (*fn)(void *ctx, const unsigned char *b, size_t n), void *ctx) {
    unsigned char buf[4096];
    if (s->is_count) {
        gopt__le64(buf, (uint64_t)s->count);
        fn(ctx, buf, 8);
        return;
    }
    int64_t i = 0;
    while (i < s->numel) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < s->numel; k++, i++) {
            uint32_t u;
            memcpy(&u, &s->data[i], 4);
            gopt__le32(buf + 4 * k, u);
        }
        fn(ctx, buf, 4 * k);
    }
}

static void put_fn(void *ctx, const unsigned char *b, size_t n) { gopt__wfile_put(ctx, b, n); }
void gopt__wfile_put_slot(gopt__wfile *w, const gopt__wslot *s) { slot_bytes(s, put_fn, w); }

uint32_t gopt__crc32(uint32_t crc, const void *data, size_t n) {
    uint32_t table[256]; /* per call (2k operations, callers pass 4 KiB chunks): no shared state */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void crc_fn(void *ctx, const unsigned char *b, size_t n) {
    uint32_t *c = ctx;
    *c = gopt__crc32(*c, b, n);
}
uint32_t gopt__crc32_slot(uint32_t crc, const gopt__wslot *s) {
    slot_bytes(s, crc_fn, &crc);
    return crc;
}

size_t gopt__json_escape(char *o, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (o) o[k] = '\\', o[k + 1] = (char)c;
            k += 2;
        } else if (c < 0x20) {
            if (o) snprintf(o + k, 7, "\\u%04x", c);
            k += 6;
        } else {
            if (o) o[k] = (char)c;
            k++;
        }
    }
    return k;
}

gopt_status gopt__read_whole(const char *path, unsigned char **out, size_t *size, const char *fn) {
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return GOPT__FAIL_AS(fn, GOPT_EIO, "cannot open '%s': %s", path, strerror(errno));
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return GOPT__FAIL_AS(fn, GOPT_EIO, "cannot size '%s' (not a regular file?)", path);
    }
    unsigned char *b = gopt__malloc((size_t)len + 1);
    if (!b) {
        fclose(f);
        return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%ld bytes to read '%s'", len, path);
    }
    size_t got = fread(b, 1, (size_t)len, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != (size_t)len) {
        gopt__free(b);
        return GOPT__FAIL_AS(fn, GOPT_EIO, "reading '%s' failed (%zu of %ld bytes)", path, got, len);
    }
    *out = b;
    *size = (size_t)len;
    return GOPT_OK;
}
