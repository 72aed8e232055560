/* One-call checkpoints and weights-only files (see gradopt/checkpoint.h): a list of typed
 * entries becomes the sections of one gopt_ckpt file, plus a section "__entries__" naming
 * each section's kind; load checks every entry first, keeps each object's state, and puts
 * the kept states back if a later section is refused. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "gradopt/checkpoint.h"
#include "core/common.h"
#include "io/weights.h"

#define ENTRIES_SECTION "__entries__"
#define ENTRIES_MAGIC "gradopt-entries 1\n"
#define WEIGHTS_SUFFIX ".weights"
#define WEIGHTS_SECTION "weights"
#define NAME_MAX_LEN 55 /* + ".weights" fits the container's 63 bytes */

/* ---- kinds ------------------------------------------------------------------------------- */

#define OBJ_OPS(kind, T)                                                                                     \
    static size_t kind##_size(const void *o) { return gopt_##kind##_state_size((const T *)o); }              \
    static gopt_status kind##_save(const void *o, void *b, size_t n) {                                       \
        return gopt_##kind##_state_save((const T *)o, b, n);                                                 \
    }                                                                                                        \
    static gopt_status kind##_load(void *o, const void *b, size_t n) { return gopt_##kind##_state_load((T *)o, b, n); }

OBJ_OPS(params, gopt_params)
OBJ_OPS(net, gopt_net)
OBJ_OPS(optim, gopt_optim)
OBJ_OPS(sched, gopt_sched)
OBJ_OPS(monitor, gopt_monitor)
OBJ_OPS(loader, gopt_loader)
OBJ_OPS(text_loader, gopt_text_loader)
OBJ_OPS(average, gopt_average)
OBJ_OPS(accum, gopt_accum)

typedef struct kind_ops {
    const char *name;
    size_t (*size)(const void *);
    gopt_status (*save)(const void *, void *, size_t);
    gopt_status (*load)(void *, const void *, size_t);
} kind_ops;

#define K(k) {#k, k##_size, k##_save, k##_load}
static const kind_ops kinds[] = {
    {NULL, NULL, NULL, NULL}, K(params), K(net), K(optim), K(sched), K(monitor), K(loader), K(text_loader),
    K(average), K(accum), {"rng", NULL, NULL, NULL}, {"u64", NULL, NULL, NULL}, {"i64", NULL, NULL, NULL},
    {"int", NULL, NULL, NULL}, {"text", NULL, NULL, NULL}, {"blob", NULL, NULL, NULL},
    {"object", NULL, NULL, NULL},
};
#undef K
#define KIND_COUNT ((int)(sizeof kinds / sizeof kinds[0]))

static int is_state_kind(gopt_ckpt_kind k) { return (k >= GOPT_CKPT_PARAMS && k <= GOPT_CKPT_ACCUM) || k == GOPT_CKPT_OBJECT; }

static const char *kind_name(gopt_ckpt_kind k) { return (int)k > 0 && (int)k < KIND_COUNT ? kinds[k].name : "?"; }

/* the state functions of a state entry */
static kind_ops ops_of(const gopt_ckpt_entry *e) {
    if (e->kind == GOPT_CKPT_OBJECT) {
        kind_ops o = {"object", e->state_size, e->state_save, e->state_load};
        return o;
    }
    return kinds[e->kind];
}

/* ---- constructors ------------------------------------------------------------------------ */

static gopt_ckpt_entry make(const char *name, gopt_ckpt_kind kind, void *obj) {
    gopt_ckpt_entry e;
    memset(&e, 0, sizeof e);
    e.name = name;
    e.kind = kind;
    e.obj = obj;
    return e;
}

gopt_ckpt_entry gopt_ckpt_params(const char *name, gopt_params *p) { return make(name, GOPT_CKPT_PARAMS, p); }
gopt_ckpt_entry gopt_ckpt_net(const char *name, gopt_net *net) { return make(name, GOPT_CKPT_NET, net); }
gopt_ckpt_entry gopt_ckpt_optim(const char *name, gopt_optim *opt) { return make(name, GOPT_CKPT_OPTIM, opt); }
gopt_ckpt_entry gopt_ckpt_sched(const char *name, gopt_sched *s) { return make(name, GOPT_CKPT_SCHED, s); }
gopt_ckpt_entry gopt_ckpt_monitor(const char *name, gopt_monitor *m) { return make(name, GOPT_CKPT_MONITOR, m); }
gopt_ckpt_entry gopt_ckpt_loader(const char *name, gopt_loader *l) { return make(name, GOPT_CKPT_LOADER, l); }
gopt_ckpt_entry gopt_ckpt_text_loader(const char *name, gopt_text_loader *l) {
    return make(name, GOPT_CKPT_TEXT_LOADER, l);
}
gopt_ckpt_entry gopt_ckpt_average(const char *name, gopt_average *avg) { return make(name, GOPT_CKPT_AVERAGE, avg); }
gopt_ckpt_entry gopt_ckpt_accum(const char *name, gopt_accum *a) { return make(name, GOPT_CKPT_ACCUM, a); }
gopt_ckpt_entry gopt_ckpt_rng(const char *name, gopt_rng *rng) { return make(name, GOPT_CKPT_RNG, rng); }
gopt_ckpt_entry gopt_ckpt_u64(const char *name, uint64_t *value) { return make(name, GOPT_CKPT_U64, value); }
gopt_ckpt_entry gopt_ckpt_i64(const char *name, int64_t *value) { return make(name, GOPT_CKPT_I64, value); }
gopt_ckpt_entry gopt_ckpt_int(const char *name, int *value) { return make(name, GOPT_CKPT_INT, value); }

gopt_ckpt_entry gopt_ckpt_text(const char *name, const char *text, char *out, size_t out_size) {
    gopt_ckpt_entry e = make(name, GOPT_CKPT_TEXT, out);
    e.text = text;
    e.size = out ? out_size : 0;
    return e;
}

gopt_ckpt_entry gopt_ckpt_blob(const char *name, void *data, size_t size) {
    gopt_ckpt_entry e = make(name, GOPT_CKPT_BLOB, data);
    e.size = size;
    return e;
}

gopt_ckpt_entry gopt_ckpt_object(const char *name, void *obj, size_t (*state_size)(const void *obj),
                                 gopt_status (*state_save)(const void *obj, void *buf, size_t size),
                                 gopt_status (*state_load)(void *obj, const void *buf, size_t size)) {
    gopt_ckpt_entry e = make(name, GOPT_CKPT_OBJECT, obj);
    e.state_size = state_size;
    e.state_save = state_save;
    e.state_load = state_load;
    return e;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* The detail of the last failure without its "function: " prefix (the caller re-records it
 * under the public function the user called). */
static const char *inner_detail(void) {
    const char *d = gopt_last_error();
    if (strncmp(d, "gopt_", 5) == 0) {
        const char *c = strstr(d, ": ");
        if (c && (size_t)(c - d) < 64) return c + 2;
    }
    return d;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The list itself: names, objects, kinds (save: texts). */
static gopt_status check_list(const gopt_ckpt_entry *entries, int n, int saving, const char *fn) {
    if (!entries) return GOPT__FAIL_AS(fn, GOPT_EINVAL, "argument 'entries' is NULL");
    if (n < 1) return GOPT__FAIL_AS(fn, GOPT_EINVAL, "n = %d: the list needs at least one entry", n);
    for (int i = 0; i < n; i++) {
        const gopt_ckpt_entry *e = &entries[i];
        if (!e->name || !e->name[0]) return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entries[%d] has no name", i);
        const size_t len = strlen(e->name);
        if (len > NAME_MAX_LEN || ends_with(e->name, WEIGHTS_SUFFIX) || strcmp(e->name, ENTRIES_SECTION) == 0)
            return GOPT__FAIL_AS(fn, GOPT_EINVAL,
                                 "entries[%d]: name '%s' must be 1..%d bytes, not end in '" WEIGHTS_SUFFIX
                                 "' and not be '" ENTRIES_SECTION "'",
                                 i, e->name, NAME_MAX_LEN);
        if (strchr(e->name, '\n') || strchr(e->name, '\t'))
            return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entries[%d]: name has a tab or newline", i);
        if ((int)e->kind < 1 || (int)e->kind >= KIND_COUNT)
            return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entry '%s': kind %d is not a gopt_ckpt_kind", e->name, (int)e->kind);
        for (int j = 0; j < i; j++)
            if (strcmp(entries[j].name, e->name) == 0)
                return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entries[%d] and entries[%d] are both named '%s'", j, i, e->name);
        if (e->kind == GOPT_CKPT_TEXT) {
            if (saving && !e->text)
                return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entry '%s' (text): text is NULL (a load-only entry)", e->name);
            if (!saving && e->obj && e->size == 0)
                return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entry '%s' (text): out_size is 0", e->name);
            continue;
        }
        if (!e->obj && !(e->kind == GOPT_CKPT_BLOB && e->size == 0))
            return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entry '%s' (%s): its object is NULL", e->name, kind_name(e->kind));
        if (e->kind == GOPT_CKPT_OBJECT && (!e->state_size || !e->state_save || !e->state_load))
            return GOPT__FAIL_AS(fn, GOPT_EINVAL, "entry '%s' (object): a state function is NULL", e->name);
    }
    return GOPT_OK;
}

/* ---- the weights image: a safetensors file in memory (arena names, F32, little-endian) ---- */

/* One pass measures (o NULL), the second writes; returns the header length without padding. */
static size_t weights_json(const gopt__wslot *s, int n, char *o) {
    size_t k = 0;
    uint64_t off = 0;
    char tmp[128];
#define PUT(str, len) do { if (o) memcpy(o + k, (str), (len)); k += (len); } while (0)
    PUT("{", 1);
    for (int i = 0; i < n; i++) {
        if (i) PUT(",", 1);
        PUT("\"", 1);
        k += gopt__json_escape(o ? o + k : NULL, s[i].name, strlen(s[i].name));
        PUT("\":{\"dtype\":\"F32\",\"shape\":[", sizeof "\":{\"dtype\":\"F32\",\"shape\":[" - 1);
        for (int d = 0; d < s[i].ndim; d++) {
            int m = snprintf(tmp, sizeof tmp, "%s%" PRId64, d ? "," : "", s[i].shape[d]);
            PUT(tmp, (size_t)m);
        }
        const uint64_t end = off + (uint64_t)s[i].numel * 4u;
        int m = snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, end);
        PUT(tmp, (size_t)m);
        off = end;
    }
    PUT("}", 1);
#undef PUT
    return k;
}

static gopt_status weights_image(const gopt_net *net, unsigned char **out, size_t *size, const char *fn) {
    gopt_weights_config c = gopt_weights_config_default();
    c.names = GOPT_NAMES_ARENA;
    c.num_batches_tracked = -1;
    gopt_net *m = (gopt_net *)net; /* read only */
    gopt__wslot *s;
    int n;
    GOPT_TRY(gopt__weights_gather(gopt_net_params(m), m, &c, &s, &n, fn));
    size_t hl = weights_json(s, n, NULL), padded = (hl + 7) / 8 * 8;
    uint64_t data = 0;
    for (int i = 0; i < n; i++) data += (uint64_t)s[i].numel * 4u;
    if (data > SIZE_MAX - padded - 8) {
        gopt__free(s);
        return GOPT__FAIL_AS(fn, GOPT_EOVERFLOW, "weights of %" PRIu64 " bytes", data);
    }
    size_t total = 8 + padded + (size_t)data;
    unsigned char *b = gopt__malloc(total);
    if (!b) {
        gopt__free(s);
        return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%zu bytes of weights", total);
    }
    gopt__le64(b, padded);
    weights_json(s, n, (char *)b + 8);
    memset(b + 8 + hl, ' ', padded - hl);
    unsigned char *p = b + 8 + padded;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < s[i].numel; j++, p += 4) {
            uint32_t u;
            memcpy(&u, &s[i].data[j], 4);
            gopt__le32(p, u);
        }
    gopt__free(s);
    *out = b;
    *size = total;
    return GOPT_OK;
}

/* ---- save -------------------------------------------------------------------------------- */

static gopt_status add_section(gopt_ckpt_writer *w, const char *path, const gopt_ckpt_entry *e, const char *fn) {
    unsigned char small[32];
    const void *data = small;
    size_t size = 0;
    void *heap = NULL;
    switch (e->kind) {
    case GOPT_CKPT_RNG: memcpy(small, ((const gopt_rng *)e->obj)->s, 32); size = 32; break;
    case GOPT_CKPT_U64:
    case GOPT_CKPT_I64: memcpy(small, e->obj, 8); size = 8; break;
    case GOPT_CKPT_INT: {
        int64_t v = *(const int *)e->obj;
        memcpy(small, &v, 8);
        size = 8;
        break;
    }
    case GOPT_CKPT_TEXT: data = e->text; size = strlen(e->text); break;
    case GOPT_CKPT_BLOB: data = e->obj; size = e->size; break;
    default: {
        const kind_ops o = ops_of(e);
        size = o.size(e->obj);
        heap = gopt__malloc(size ? size : 1);
        if (!heap)
            return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%s: section '%s' (%s): %zu bytes of state", path, e->name,
                                 kind_name(e->kind), size);
        gopt_status st = o.save(e->obj, heap, size);
        if (st != GOPT_OK) {
            gopt__free(heap);
            return GOPT__FAIL_AS(fn, st, "%s: section '%s' (%s): %s", path, e->name, kind_name(e->kind), inner_detail());
        }
        data = heap;
    }
    }
    gopt_status st = gopt_ckpt_writer_add(w, e->name, data, size);
    gopt__free(heap);
    if (st != GOPT_OK) return GOPT__FAIL_AS(fn, st, "%s", inner_detail());
    if (e->kind == GOPT_CKPT_NET) {
        char wname[GOPT_CKPT_NAME_MAX];
        snprintf(wname, sizeof wname, "%s" WEIGHTS_SUFFIX, e->name);
        unsigned char *img;
        size_t n;
        GOPT_TRY(weights_image(e->obj, &img, &n, fn));
        st = gopt_ckpt_writer_add(w, wname, img, n);
        gopt__free(img);
        if (st != GOPT_OK) return GOPT__FAIL_AS(fn, st, "%s", inner_detail());
    }
    return GOPT_OK;
}

/* "__entries__": the magic line, then "<section>\t<kind>\n" per section. */
static char *entries_text(const gopt_ckpt_entry *entries, int n) {
    size_t len = strlen(ENTRIES_MAGIC) + 1;
    for (int i = 0; i < n; i++) len += 2 * (strlen(entries[i].name) + 24);
    char *t = gopt__malloc(len);
    if (!t) return NULL;
    size_t k = (size_t)snprintf(t, len, "%s", ENTRIES_MAGIC);
    for (int i = 0; i < n; i++) {
        k += (size_t)snprintf(t + k, len - k, "%s\t%s\n", entries[i].name, kind_name(entries[i].kind));
        if (entries[i].kind == GOPT_CKPT_NET)
            k += (size_t)snprintf(t + k, len - k, "%s" WEIGHTS_SUFFIX "\t" WEIGHTS_SECTION "\n", entries[i].name);
    }
    return t;
}

static gopt_status bundle_save(const char *path, const gopt_ckpt_entry *entries, int n, const char *fn) {
    gopt_ckpt_writer *w;
    gopt_status st = gopt_ckpt_writer_begin(path, &w);
    if (st != GOPT_OK) return GOPT__FAIL_AS(fn, st, "%s", inner_detail());
    for (int i = 0; i < n && st == GOPT_OK; i++) st = add_section(w, path, &entries[i], fn);
    if (st == GOPT_OK) {
        char *t = entries_text(entries, n);
        if (!t) st = GOPT__FAIL_AS(fn, GOPT_ENOMEM, "the entry list");
        else if ((st = gopt_ckpt_writer_add_text(w, ENTRIES_SECTION, t)) != GOPT_OK)
            st = GOPT__FAIL_AS(fn, st, "%s", inner_detail());
        gopt__free(t);
    }
    if (st != GOPT_OK) {
        gopt_ckpt_writer_abort(w);
        return st;
    }
    st = gopt_ckpt_writer_commit(w);
    if (st != GOPT_OK) return GOPT__FAIL_AS(fn, st, "%s", inner_detail());
    return GOPT_OK;
}

gopt_status gopt_checkpoint_save(const char *path, const gopt_ckpt_entry *entries, int n) {
    GOPT_CHECK_NULL(path);
    GOPT_TRY(check_list(entries, n, 1, __func__));
    return bundle_save(path, entries, n, __func__);
}

/* ---- the entry list of a file ------------------------------------------------------------ */

/* The kind "__entries__" gives section `name` ("" when the file has none, NULL when the
 * file has the list but not this section). */
static const char *listed_kind(const char *list, size_t size, const char *name, char *buf, size_t cap) {
    if (!list) return "";
    const size_t ml = strlen(ENTRIES_MAGIC), nl = strlen(name);
    if (size < ml) return NULL;
    const char *p = list + ml, *end = list + size;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *tab = memchr(p, '\t', (size_t)(eol - p));
        if (tab && (size_t)(tab - p) == nl && memcmp(p, name, nl) == 0) {
            size_t k = (size_t)(eol - tab - 1);
            if (k >= cap) k = cap - 1;
            memcpy(buf, tab + 1, k);
            buf[k] = '\0';
            return buf;
        }
        p = eol + 1;
    }
    return NULL;
}

typedef struct opened {
    gopt_ckpt *c;
    const char *list; /* "__entries__" or NULL */
    size_t list_size;
} opened;

static gopt_status open_file(const char *path, opened *o, const char *fn) {
    memset(o, 0, sizeof *o);
    gopt_status st = gopt_ckpt_open(path, &o->c);
    if (st != GOPT_OK) return GOPT__FAIL_AS(fn, st, "%s", inner_detail());
    if (gopt_ckpt_has(o->c, ENTRIES_SECTION)) {
        const void *d;
        (void)gopt_ckpt_find(o->c, ENTRIES_SECTION, &d, &o->list_size);
        o->list = d;
        if (o->list_size < strlen(ENTRIES_MAGIC) || memcmp(o->list, ENTRIES_MAGIC, strlen(ENTRIES_MAGIC)) != 0) {
            gopt_ckpt_close(o->c);
            o->c = NULL;
            return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '" ENTRIES_SECTION "' does not start with '%.17s'",
                                 path, ENTRIES_MAGIC);
        }
    }
    return GOPT_OK;
}

/* ---- load -------------------------------------------------------------------------------- */

typedef struct loaded {
    const void *data; /* the section; NULL: missing and optional (skipped) */
    size_t size;
    void *snap; /* the entry's state before the load */
    size_t snap_size;
} loaded;

/* Pass 1: every section there, of the entry's kind and size; nothing changes. */
static gopt_status check_entry(const char *path, const opened *o, const gopt_ckpt_entry *e, loaded *l,
                               const char *fn) {
    const char *kn = kind_name(e->kind);
    if (!gopt_ckpt_has(o->c, e->name)) {
        if (e->optional) return GOPT_OK;
        return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' (%s) is missing", path, e->name, kn);
    }
    (void)gopt_ckpt_find(o->c, e->name, &l->data, &l->size);
    char buf[32];
    const char *fk = listed_kind(o->list, o->list_size, e->name, buf, sizeof buf);
    if (!fk) return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' is not in the file's entry list", path, e->name);
    if (fk[0] && strcmp(fk, kn) != 0)
        return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' holds a %s, the entry is a %s", path, e->name, fk, kn);
    size_t want = 0;
    switch (e->kind) {
    case GOPT_CKPT_RNG: want = 32; break;
    case GOPT_CKPT_U64:
    case GOPT_CKPT_I64:
    case GOPT_CKPT_INT: want = 8; break;
    case GOPT_CKPT_BLOB: want = e->size; break;
    case GOPT_CKPT_TEXT:
        if (memchr(l->data, '\0', l->size))
            return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' (text) holds a NUL byte", path, e->name);
        if (e->obj && l->size >= e->size)
            return GOPT__FAIL_AS(fn, GOPT_ERANGE, "%s: section '%s' (text) is %zu bytes, out_size %zu holds %zu", path,
                                 e->name, l->size, e->size, e->size - 1);
        return GOPT_OK;
    default: return GOPT_OK; /* the object's own load checks its blob */
    }
    if (l->size != want)
        return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' is %zu bytes, a%s %s entry takes %zu", path, e->name,
                             l->size, e->kind == GOPT_CKPT_I64 || e->kind == GOPT_CKPT_INT ? "n" : "", kn, want);
    if (e->kind == GOPT_CKPT_INT) {
        int64_t v;
        memcpy(&v, l->data, 8);
        if (v < INT_MIN || v > INT_MAX)
            return GOPT__FAIL_AS(fn, GOPT_EFORMAT, "%s: section '%s' holds %" PRId64 ", outside int", path, e->name, v);
    }
    return GOPT_OK;
}

/* Pass 2: keep what the entry holds now. */
static gopt_status snapshot(const char *path, const gopt_ckpt_entry *e, loaded *l, const char *fn) {
    if (is_state_kind(e->kind)) {
        const kind_ops o = ops_of(e);
        l->snap_size = o.size(e->obj);
    } else if (e->kind == GOPT_CKPT_RNG) {
        l->snap_size = 32;
    } else if (e->kind == GOPT_CKPT_INT) {
        l->snap_size = sizeof(int);
    } else if (e->kind == GOPT_CKPT_TEXT) {
        l->snap_size = e->obj ? e->size : 0;
    } else if (e->kind == GOPT_CKPT_BLOB) {
        l->snap_size = e->size;
    } else {
        l->snap_size = 8;
    }
    l->snap = gopt__malloc(l->snap_size ? l->snap_size : 1);
    if (!l->snap)
        return GOPT__FAIL_AS(fn, GOPT_ENOMEM, "%s: %zu bytes to keep the state of '%s'", path, l->snap_size, e->name);
    if (is_state_kind(e->kind)) {
        gopt_status st = ops_of(e).save(e->obj, l->snap, l->snap_size);
        if (st != GOPT_OK)
            return GOPT__FAIL_AS(fn, st, "%s: keeping the state of '%s' (%s): %s", path, e->name, kind_name(e->kind),
                                 inner_detail());
    } else if (l->snap_size) {
        memcpy(l->snap, e->obj, l->snap_size);
    }
    return GOPT_OK;
}

/* Pass 3: one entry from its section (check_entry has passed). */
static gopt_status apply(const gopt_ckpt_entry *e, const loaded *l) {
    switch (e->kind) {
    case GOPT_CKPT_RNG: memcpy(((gopt_rng *)e->obj)->s, l->data, 32); return GOPT_OK;
    case GOPT_CKPT_U64:
    case GOPT_CKPT_I64: memcpy(e->obj, l->data, 8); return GOPT_OK;
    case GOPT_CKPT_INT: {
        int64_t v;
        memcpy(&v, l->data, 8);
        *(int *)e->obj = (int)v;
        return GOPT_OK;
    }
    case GOPT_CKPT_TEXT:
        if (e->obj) {
            memcpy(e->obj, l->data, l->size);
            ((char *)e->obj)[l->size] = '\0';
        }
        return GOPT_OK;
    case GOPT_CKPT_BLOB:
        if (l->size) memcpy(e->obj, l->data, l->size);
        return GOPT_OK;
    default: return ops_of(e).load(e->obj, l->data, l->size);
    }
}

static gopt_status restore(const gopt_ckpt_entry *e, const loaded *l) {
    if (is_state_kind(e->kind)) return ops_of(e).load(e->obj, l->snap, l->snap_size);
    if (l->snap_size) memcpy(e->obj, l->snap, l->snap_size);
    return GOPT_OK;
}

gopt_status gopt_checkpoint_load(const char *path, const gopt_ckpt_entry *entries, int n) {
    GOPT_CHECK_NULL(path);
    GOPT_TRY(check_list(entries, n, 0, __func__));
    loaded *l = gopt__calloc((size_t)n, sizeof *l);
    if (!l) return GOPT_FAIL(GOPT_ENOMEM, "%d entries", n);
    opened o;
    gopt_status st = open_file(path, &o, __func__);
    for (int i = 0; i < n && st == GOPT_OK; i++) st = check_entry(path, &o, &entries[i], &l[i], __func__);
    for (int i = 0; i < n && st == GOPT_OK; i++)
        if (l[i].data) st = snapshot(path, &entries[i], &l[i], __func__);
    int done = 0;
    for (; done < n && st == GOPT_OK; done++) {
        const gopt_ckpt_entry *e = &entries[done];
        if (!l[done].data) continue;
        gopt_status s = apply(e, &l[done]);
        if (s != GOPT_OK) {
            st = GOPT_FAIL(s, "%s: section '%s' (%s): %s", path, e->name, kind_name(e->kind), inner_detail());
            char first[512];
            snprintf(first, sizeof first, "%s", gopt_last_error() + strlen(__func__) + 2);
            int bad = -1; /* put back what was loaded before the refusal */
            for (int i = done - 1; i >= 0; i--)
                if (l[i].data && restore(&entries[i], &l[i]) != GOPT_OK && bad < 0) bad = i;
            if (bad >= 0)
                gopt__fail(st, __func__, "%s; restoring '%s' failed: %s", first, entries[bad].name, inner_detail());
            else
                gopt__fail(st, __func__, "%s; nothing was changed", first);
            break;
        }
    }
    for (int i = 0; i < n; i++) gopt__free(l[i].snap);
    gopt__free(l);
    gopt_ckpt_close(o.c);
    return st;
}

/* ---- list -------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *b;
    size_t cap, len; /* len counts what the whole listing needs */
} sbuf;

GOPT_PRINTF(2, 3) static void sb_printf(sbuf *s, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = (int)sizeof tmp - 1;
    if (s->len < s->cap) {
        size_t room = s->cap - s->len, k = (size_t)n < room ? (size_t)n : room;
        memcpy(s->b + s->len, tmp, k);
    }
    s->len += (size_t)n;
}

gopt_status gopt_checkpoint_list(const char *path, char *buf, size_t size, size_t *needed) {
    GOPT_CHECK_NULL(path);
    GOPT_CHECK_NULL(buf);
    if (size == 0) return GOPT_FAIL(GOPT_EINVAL, "size is 0");
    opened o;
    GOPT_TRY(open_file(path, &o, __func__));
    sbuf s = {buf, size - 1, 0};
    for (int i = 0; i < gopt_ckpt_section_count(o.c); i++) {
        const char *name;
        size_t n;
        const void *d;
        (void)gopt_ckpt_section_info(o.c, i, &name, &n);
        (void)gopt_ckpt_find(o.c, name, &d, &n);
        if (strcmp(name, ENTRIES_SECTION) == 0) continue;
        char kb[32];
        const char *kind = listed_kind(o.list, o.list_size, name, kb, sizeof kb);
        if (!kind) kind = "unlisted";
        else if (!kind[0]) kind = "section";
        sb_printf(&s, "%s %s %zu bytes", name, kind, n);
        if (n == 8 && (strcmp(kind, "i64") == 0 || strcmp(kind, "int") == 0)) {
            int64_t v;
            memcpy(&v, d, 8);
            sb_printf(&s, " = %" PRId64, v);
        } else if (n == 8 && strcmp(kind, "u64") == 0) {
            uint64_t v;
            memcpy(&v, d, 8);
            sb_printf(&s, " = %" PRIu64, v);
        } else if (strcmp(kind, "text") == 0) {
            char t[208];
            size_t k = n < 200 ? n : 200;
            for (size_t j = 0; j < k; j++) {
                unsigned char c = ((const unsigned char *)d)[j];
                t[j] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
            t[k] = '\0';
            sb_printf(&s, " = \"%s\"%s", t, n > 200 ? "..." : "");
        }
        sb_printf(&s, "\n");
    }
    gopt_ckpt_close(o.c);
    if (needed) *needed = s.len;
    if (s.len <= s.cap) {
        buf[s.len] = '\0';
    } else {
        buf[s.cap] = '\0';
        if (s.cap >= 3) memcpy(buf + s.cap - 3, "...", 3);
    }
    return GOPT_OK;
}

/* ---- weights-only files ------------------------------------------------------------------ */

gopt_status gopt_net_save_weights(const gopt_net *net, const char *path) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    unsigned char *img;
    size_t n;
    GOPT_TRY(weights_image(net, &img, &n, __func__));
    gopt_ckpt_writer *w;
    gopt_status st = gopt_ckpt_writer_begin(path, &w);
    if (st == GOPT_OK) {
        st = gopt_ckpt_writer_add(w, WEIGHTS_SECTION, img, n);
        if (st == GOPT_OK) st = gopt_ckpt_writer_add_text(w, ENTRIES_SECTION, ENTRIES_MAGIC WEIGHTS_SECTION "\t" WEIGHTS_SECTION "\n");
        if (st == GOPT_OK) st = gopt_ckpt_writer_commit(w);
        else gopt_ckpt_writer_abort(w);
    }
    gopt__free(img);
    if (st != GOPT_OK) return GOPT_FAIL(st, "%s", inner_detail());
    return GOPT_OK;
}

gopt_status gopt_net_load_weights(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                  gopt_weights_report *report) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(path);
    gopt_weights_config c = cfg ? *cfg : gopt_weights_config_default();
    c.names = GOPT_NAMES_ARENA;
    opened o;
    GOPT_TRY(open_file(path, &o, __func__));
    /* the first section the entry list calls "weights"; else one named so */
    const char *section = NULL;
    for (int i = 0; i < gopt_ckpt_section_count(o.c) && !section; i++) {
        const char *name;
        (void)gopt_ckpt_section_info(o.c, i, &name, NULL);
        char kb[32];
        const char *k = listed_kind(o.list, o.list_size, name, kb, sizeof kb);
        if (k && strcmp(k, WEIGHTS_SECTION) == 0) section = name;
    }
    if (!section && !o.list && gopt_ckpt_has(o.c, WEIGHTS_SECTION)) section = WEIGHTS_SECTION;
    gopt_status st;
    if (!section) {
        st = GOPT_FAIL(GOPT_EFORMAT, "%s: has no weights section (neither a weights file nor a checkpoint with a net entry)",
                       path);
    } else {
        const void *d;
        size_t n;
        (void)gopt_ckpt_find(o.c, section, &d, &n);
        char label[512];
        snprintf(label, sizeof label, "%s (section '%s')", path, section);
        st = gopt__safetensors_import(gopt_net_params(net), net, d, n, label, &c, report, __func__);
    }
    gopt_ckpt_close(o.c);
    return st;
}
