/* .npz export (numpy.savez's layout, see gradopt/interop.h): a zip archive of stored .npy
 * members, written in one pass (each member's CRC-32 computed before its local header). */
#include <inttypes.h>
#include <stdio.h>

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
