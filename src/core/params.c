/* The parameter arena (see gradopt/params.h). */
#include "gradopt/params.h"
#include <stdio.h>

#include "core/common.h"

typedef struct param_entry {
    char name[GOPT_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[GOPT_MAX_DIMS];
    int64_t numel;
    int64_t offset;
    gopt_param_tag tag;
    int group;
    int frozen; /* gopt_params_set_frozen: in no run, so no optimizer or clip touches it */
} param_entry;

struct gopt_params {
    param_entry *entries;
    int count, capacity;
    gopt_group_config *groups;
    int group_count, group_capacity;
    int64_t numel;
    float *values, *grads; /* NULL until finalized */
    gopt_param_run *runs;  /* capacity `count`, filled once finalized; frozen tensors in none */
    int run_count;
    int frozen_count;
};

gopt_group_config gopt_group_config_default(void) {
    gopt_group_config c = {NAN, NAN, NAN, NAN, NAN, NAN};
    return c;
}

static gopt_status grow(void **array, int *capacity, int needed, size_t elem) {
    if (needed <= *capacity) return GOPT_OK;
    int cap = *capacity ? *capacity : 8;
    while (cap < needed) {
        if (cap > INT32_MAX / 2) return GOPT_FAIL(GOPT_EOVERFLOW, "too many entries");
        cap *= 2;
    }
    void *n = gopt__calloc((size_t)cap, elem);
    if (!n) return GOPT_FAIL(GOPT_ENOMEM, "%d entries of %zu bytes", cap, elem);
    if (*array) memcpy(n, *array, (size_t)*capacity * elem);
    gopt__free(*array);
    *array = n;
    *capacity = cap;
    return GOPT_OK;
}

gopt_status gopt_params_create(gopt_params **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    gopt_params *p = gopt__calloc(1, sizeof *p);
    if (!p) return GOPT_FAIL(GOPT_ENOMEM, "params header");
    gopt_status s = grow((void **)&p->groups, &p->group_capacity, 1, sizeof *p->groups);
    if (s != GOPT_OK) {
        gopt__free(p);
        return s;
    }
    p->groups[0] = gopt_group_config_default();
    p->group_count = 1;
    *out = p;
    return GOPT_OK;
}

void gopt_params_destroy(gopt_params *p) {
    if (!p) return;
    gopt__free(p->entries);
    gopt__free(p->groups);
    gopt__free(p->runs);
    gopt__aligned_free(p->values);
    gopt__aligned_free(p->grads);
    gopt__free(p);
}

gopt_status gopt_params_add(gopt_params *p, const char *name, int ndim, const int64_t shape[],
                            gopt_param_tag tag, int *index) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(name);
    if (p->values) return GOPT_FAIL(GOPT_ESTATE, "cannot add '%s': the arena is already finalized", name);
    size_t len = strlen(name);
    if (len == 0 || len >= GOPT_PARAM_NAME_MAX)
        return GOPT_FAIL(GOPT_EINVAL, "name '%s' must be 1..%d bytes", name, GOPT_PARAM_NAME_MAX - 1);
    if (tag != GOPT_TAG_WEIGHT && tag != GOPT_TAG_BIAS && tag != GOPT_TAG_NORM)
        return GOPT_FAIL(GOPT_EINVAL, "'%s': tag %d is not GOPT_TAG_WEIGHT, _BIAS or _NORM", name, (int)tag);
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->entries[i].name, name) == 0)
            return GOPT_FAIL(GOPT_EINVAL, "a tensor named '%s' is already registered", name);
    int64_t numel;
    GOPT_TRY(gopt_shape_numel(ndim, shape, &numel));
    if (p->numel > INT64_MAX / (int64_t)sizeof(float) - numel ||
        (uint64_t)(p->numel + numel) > SIZE_MAX / sizeof(float))
        return GOPT_FAIL(GOPT_EOVERFLOW, "'%s' makes the arena too large", name);
    if (p->count == INT32_MAX) return GOPT_FAIL(GOPT_EOVERFLOW, "too many tensors");
    GOPT_TRY(grow((void **)&p->entries, &p->capacity, p->count + 1, sizeof *p->entries));
    param_entry *e = &p->entries[p->count];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, len + 1);
    e->ndim = ndim;
    for (int i = 0; i < GOPT_MAX_DIMS; i++) e->shape[i] = i < ndim ? shape[i] : 1;
    e->numel = numel;
    e->offset = p->numel;
    e->tag = tag;
    e->group = 0;
    p->numel += numel;
    if (index) *index = p->count;
    p->count++;
    return GOPT_OK;
}

void gopt__params_truncate(gopt_params *p, int count) {
    if (!p || p->values || count < 0 || count >= p->count) return;
    for (int i = count; i < p->count; i++) p->frozen_count -= p->entries[i].frozen;
    p->count = count;
    p->numel = count ? p->entries[count - 1].offset + p->entries[count - 1].numel : 0;
}

static void rebuild_runs(gopt_params *p) {
    p->run_count = 0;
    for (int i = 0; i < p->count; i++) {
        const param_entry *e = &p->entries[i];
        if (e->frozen) continue; /* the run before it ends there: its end is not e->offset + numel */
        gopt_param_run *last = p->run_count ? &p->runs[p->run_count - 1] : NULL;
        if (last && last->group == e->group && last->end == e->offset) {
            last->end = e->offset + e->numel;
        } else {
            gopt_param_run r = {e->offset, e->offset + e->numel, e->group};
            p->runs[p->run_count++] = r;
        }
    }
}

gopt_status gopt_params_finalize(gopt_params *p) {
    GOPT_CHECK_NULL(p);
    if (p->values) return GOPT_FAIL(GOPT_ESTATE, "the arena is already finalized");
    if (p->count == 0) return GOPT_FAIL(GOPT_ESTATE, "no tensors registered");
    size_t bytes = (size_t)p->numel * sizeof(float);
    p->values = gopt__aligned_alloc(bytes);
    p->grads = gopt__aligned_alloc(bytes);
    p->runs = gopt__calloc((size_t)p->count, sizeof *p->runs);
    if (!p->values || !p->grads || !p->runs) {
        gopt__aligned_free(p->values);
        gopt__aligned_free(p->grads);
        gopt__free(p->runs);
        p->values = p->grads = NULL;
        p->runs = NULL;
        return GOPT_FAIL(GOPT_ENOMEM, "arena of 2 x %lld floats", (long long)p->numel);
    }
    rebuild_runs(p);
    return GOPT_OK;
}

int gopt_params_finalized(const gopt_params *p) { return p && p->values != NULL; }
int gopt_params_count(const gopt_params *p) { return p ? p->count : 0; }
int64_t gopt_params_numel(const gopt_params *p) { return p ? p->numel : 0; }
float *gopt_params_values(gopt_params *p) { return p ? p->values : NULL; }
float *gopt_params_grads(gopt_params *p) { return p ? p->grads : NULL; }
const float *gopt_params_values_const(const gopt_params *p) { return p ? p->values : NULL; }
const float *gopt_params_grads_const(const gopt_params *p) { return p ? p->grads : NULL; }

gopt_status gopt_params_info(const gopt_params *p, int index, gopt_param_info *out) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(out);
    if (index < 0 || index >= p->count)
        return GOPT_FAIL(GOPT_ERANGE, "index %d is outside 0..%d", index, p->count - 1);
    const param_entry *e = &p->entries[index];
    memset(out, 0, sizeof *out);
    out->name = e->name;
    out->tag = e->tag;
    out->group = e->group;
    out->frozen = e->frozen;
    out->offset = e->offset;
    gopt_tensor shape_only = {NULL, e->ndim, {e->shape[0], e->shape[1], e->shape[2], e->shape[3]}, e->numel, 0};
    out->value = shape_only;
    out->grad = shape_only;
    if (p->values) {
        out->value.data = p->values + e->offset;
        out->grad.data = p->grads + e->offset;
    }
    return GOPT_OK;
}

gopt_status gopt_params_find(const gopt_params *p, const char *name, int *index) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(index);
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->entries[i].name, name) == 0) {
            *index = i;
            return GOPT_OK;
        }
    const char *dot = strrchr(name, '.');
    if (dot && (!strcmp(dot, ".running_mean") || !strcmp(dot, ".running_var") || !strcmp(dot, ".num_batches_tracked")))
        return GOPT_FAIL(GOPT_ERANGE, "no tensor named '%s': BatchNorm running statistics are the net's buffers, "
                                      "not parameters (gopt_net_find_buffer, gradopt/net.h)", name);
    return GOPT_FAIL(GOPT_ERANGE, "no tensor named '%s'", name);
}

void gopt_params_zero_grad(gopt_params *p) {
    if (p && p->grads) memset(p->grads, 0, (size_t)p->numel * sizeof(float));
}

/* ---- groups ------------------------------------------------------------------------- */

static gopt_status check_group_config(const gopt_group_config *c) {
    /* NAN = inherit; anything set must be finite, and in range where the range does not
     * depend on the algorithm (the optimizer checks the rest when it resolves them). */
    const float v[6] = {c->lr, c->weight_decay, c->momentum, c->beta1, c->beta2, c->eps};
    static const char *names[6] = {"lr", "weight_decay", "momentum", "beta1", "beta2", "eps"};
    for (int i = 0; i < 6; i++) {
        if (isnan(v[i])) continue;
        if (!isfinite(v[i]) || v[i] < 0)
            return GOPT_FAIL(GOPT_EINVAL, "group %s = %g must be finite and >= 0 (or NAN to inherit)", names[i], v[i]);
    }
    return GOPT_OK;
}

gopt_status gopt_params_add_group(gopt_params *p, const gopt_group_config *cfg, int *group) {
    GOPT_CHECK_NULL(p);
    gopt_group_config c = cfg ? *cfg : gopt_group_config_default();
    GOPT_TRY(check_group_config(&c));
    GOPT_TRY(grow((void **)&p->groups, &p->group_capacity, p->group_count + 1, sizeof *p->groups));
    p->groups[p->group_count] = c;
    if (group) *group = p->group_count;
    p->group_count++;
    return GOPT_OK;
}

gopt_status gopt_params_set_group(gopt_params *p, int index, int group) {
    GOPT_CHECK_NULL(p);
    if (index < 0 || index >= p->count)
        return GOPT_FAIL(GOPT_ERANGE, "tensor index %d is outside 0..%d", index, p->count - 1);
    if (group < 0 || group >= p->group_count)
        return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, p->group_count - 1);
    p->entries[index].group = group;
    if (p->runs) rebuild_runs(p);
    return GOPT_OK;
}

gopt_status gopt_params_group_by_tag(gopt_params *p, unsigned tag_mask, const gopt_group_config *cfg,
                                     int *group) {
    GOPT_CHECK_NULL(p);
    if (tag_mask == 0 || (tag_mask & ~(unsigned)GOPT_TAG_ALL))
        return GOPT_FAIL(GOPT_EINVAL, "tag_mask 0x%x is not a non-empty set of GOPT_TAG_* bits", tag_mask);
    int g;
    GOPT_TRY(gopt_params_add_group(p, cfg, &g));
    for (int i = 0; i < p->count; i++)
        if ((unsigned)p->entries[i].tag & tag_mask) p->entries[i].group = g;
    if (p->runs) rebuild_runs(p);
    if (group) *group = g;
    return GOPT_OK;
}

int gopt_params_group_count(const gopt_params *p) { return p ? p->group_count : 0; }

gopt_status gopt_params_group_get(const gopt_params *p, int group, gopt_group_config *out) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(out);
    if (group < 0 || group >= p->group_count)
        return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, p->group_count - 1);
    *out = p->groups[group];
    return GOPT_OK;
}

gopt_status gopt_params_group_set(gopt_params *p, int group, const gopt_group_config *cfg) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(cfg);
    if (group < 0 || group >= p->group_count)
        return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, p->group_count - 1);
    GOPT_TRY(check_group_config(cfg));
    p->groups[group] = *cfg;
    return GOPT_OK;
}

int gopt_params_run_count(const gopt_params *p) { return p ? p->run_count : 0; }

/* ---- freezing ------------------------------------------------------------------------- */

gopt_status gopt_params_set_frozen(gopt_params *p, int index, int on) {
    GOPT_CHECK_NULL(p);
    if (index < 0 || index >= p->count)
        return GOPT_FAIL(GOPT_ERANGE, "tensor index %d is outside 0..%d", index, p->count - 1);
    if (on != 0 && on != 1) return GOPT_FAIL(GOPT_EINVAL, "on = %d must be 0 or 1", on);
    param_entry *e = &p->entries[index];
    if (e->frozen == on) return GOPT_OK;
    e->frozen = on;
    p->frozen_count += on ? 1 : -1;
    if (p->runs) rebuild_runs(p);
    return GOPT_OK;
}

int gopt_params_is_frozen(const gopt_params *p, int index) {
    return p && index >= 0 && index < p->count && p->entries[index].frozen;
}

int gopt_params_frozen_count(const gopt_params *p) { return p ? p->frozen_count : 0; }
const gopt_param_run *gopt_params_runs(const gopt_params *p) { return p ? p->runs : NULL; }

/* ---- state --------------------------------------------------------------------------
 * "PRM2": magic, tensor count (u32), numel (i64), per tensor {name[64], ndim (u32),
 * shape[4] (i64), tag (u32), group (u32)}, the group count (u32), then the values. "PRM1" blobs (no
 * tags, groups or group count) still load; they cannot be checked against the groups. */

#define PARAMS_MAGIC_V1 GOPT__MAGIC('P', 'R', 'M', '1')
#define PARAMS_MAGIC GOPT__MAGIC('P', 'R', 'M', '2')
#define ENTRY_BYTES_V1 (GOPT_PARAM_NAME_MAX + 4 + 8 * GOPT_MAX_DIMS)
#define ENTRY_BYTES (ENTRY_BYTES_V1 + 4 + 4)

size_t gopt_params_state_size(const gopt_params *p) {
    if (!p) return 0;
    return 4 + 4 + 8 + 4 + (size_t)p->count * ENTRY_BYTES + (size_t)p->numel * sizeof(float);
}

gopt_status gopt_params_state_save(const gopt_params *p, void *buf, size_t size) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(buf);
    if (!p->values) return GOPT_FAIL(GOPT_ESTATE, "the arena is not finalized");
    if (size < gopt_params_state_size(p))
        return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, gopt_params_state_size(p));
    gopt__wcur c = gopt__wcur_make(buf, size);
    gopt__put_u32(&c, PARAMS_MAGIC);
    gopt__put_u32(&c, (uint32_t)p->count);
    gopt__put_i64(&c, p->numel);
    for (int i = 0; i < p->count; i++) {
        const param_entry *e = &p->entries[i];
        gopt__put(&c, e->name, GOPT_PARAM_NAME_MAX);
        gopt__put_u32(&c, (uint32_t)e->ndim);
        for (int d = 0; d < GOPT_MAX_DIMS; d++) gopt__put_i64(&c, e->shape[d]);
        gopt__put_u32(&c, (uint32_t)e->tag);
        gopt__put_u32(&c, (uint32_t)e->group);
    }
    gopt__put_u32(&c, (uint32_t)p->group_count);
    gopt__put(&c, p->values, (size_t)p->numel * sizeof(float));
    return c.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

/* "(3,4)" for a state's shape (dimensions clamped for printing only). */
static void shape_text(char *buf, size_t size, uint32_t ndim, const int64_t *shape) {
    int o = snprintf(buf, size, "(");
    for (uint32_t d = 0; d < ndim && d < GOPT_MAX_DIMS && o > 0 && (size_t)o < size; d++)
        o += snprintf(buf + o, size - (size_t)o, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (o > 0 && (size_t)o < size) snprintf(buf + o, size - (size_t)o, ")");
}

static int64_t state_numel(uint32_t ndim, const int64_t *shape) {
    int64_t n = 1;
    for (uint32_t d = 0; d < ndim && d < GOPT_MAX_DIMS; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && n > INT64_MAX / shape[d])) return -1;
        n *= shape[d];
    }
    return n;
}

gopt_status gopt_params_copy_values(gopt_params *dst, const gopt_params *src) {
    GOPT_CHECK_NULL(dst);
    GOPT_CHECK_NULL(src);
    if (!dst->values || !src->values)
        return GOPT_FAIL(GOPT_ESTATE, "the %s arena is not finalized", !dst->values ? "destination" : "source");
    const int common = dst->count < src->count ? dst->count : src->count;
    for (int i = 0; i < common; i++) {
        const param_entry *d = &dst->entries[i], *s = &src->entries[i];
        if (strcmp(d->name, s->name) != 0)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor %d is '%s' in the source, '%s' in the destination", i, s->name, d->name);
        if (d->ndim != s->ndim || memcmp(d->shape, s->shape, sizeof d->shape) != 0) {
            char have[96], want[96];
            shape_text(have, sizeof have, (uint32_t)s->ndim, s->shape);
            shape_text(want, sizeof want, (uint32_t)d->ndim, d->shape);
            return GOPT_FAIL(GOPT_EFORMAT, "tensor '%s' is %s (%lld values) in the source, %s (%lld values) in the "
                             "destination", d->name, have, (long long)s->numel, want, (long long)d->numel);
        }
    }
    if (dst->count != src->count)
        return GOPT_FAIL(GOPT_EFORMAT, "the source has %d tensors, the destination %d: the first %s one is '%s'",
                         src->count, dst->count, src->count > dst->count ? "extra" : "missing",
                         (src->count > dst->count ? src : dst)->entries[common].name);
    memcpy(dst->values, src->values, (size_t)dst->numel * sizeof(float));
    return GOPT_OK;
}

gopt_status gopt_params_state_load(gopt_params *p, const void *buf, size_t size) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(buf);
    if (!p->values) return GOPT_FAIL(GOPT_ESTATE, "the arena is not finalized");
    gopt__rcur c = gopt__rcur_make(buf, size);
    const uint32_t magic = gopt__get_u32(&c);
    if (!c.ok || (magic != PARAMS_MAGIC && magic != PARAMS_MAGIC_V1))
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state of %zu bytes: bad magic", size);
    const int v1 = magic == PARAMS_MAGIC_V1;
    const uint32_t count = gopt__get_u32(&c);
    const int64_t numel = gopt__get_i64(&c);
    if (!c.ok) return GOPT_FAIL(GOPT_EFORMAT, "parameter state of %zu bytes: truncated header", size);
    /* Tensor by tensor, so the first one that differs is named (before any size check). */
    const uint32_t common = count < (uint32_t)p->count ? count : (uint32_t)p->count;
    for (uint32_t i = 0; i < common; i++) {
        const param_entry *e = &p->entries[i];
        char name[GOPT_PARAM_NAME_MAX];
        gopt__get(&c, name, sizeof name);
        name[GOPT_PARAM_NAME_MAX - 1] = '\0';
        uint32_t ndim = gopt__get_u32(&c);
        int64_t shape[GOPT_MAX_DIMS];
        for (int d = 0; d < GOPT_MAX_DIMS; d++) shape[d] = gopt__get_i64(&c);
        uint32_t tag = v1 ? (uint32_t)e->tag : gopt__get_u32(&c);
        uint32_t group = v1 ? (uint32_t)e->group : gopt__get_u32(&c);
        if (!c.ok)
            return GOPT_FAIL(GOPT_EFORMAT, "parameter state of %zu bytes is truncated in tensor %u ('%s' in the arena)",
                             size, i, e->name);
        if (strcmp(name, e->name) != 0)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor %u is '%s' in the state, '%s' in the arena", i, name, e->name);
        if (ndim != (uint32_t)e->ndim || memcmp(shape, e->shape, sizeof shape) != 0) {
            char have[96], want[96];
            shape_text(have, sizeof have, ndim, shape);
            shape_text(want, sizeof want, (uint32_t)e->ndim, e->shape);
            return GOPT_FAIL(GOPT_EFORMAT, "tensor '%s' is %s (%lld values) in the state, %s (%lld values) in the arena",
                             e->name, have, (long long)state_numel(ndim, shape), want, (long long)e->numel);
        }
        if (tag != (uint32_t)e->tag)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor '%s' has tag %u in the state, %d in the arena", e->name, tag,
                             (int)e->tag);
        if (group != (uint32_t)e->group)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor '%s' is in group %u in the state, group %d in the arena (the blob "
                             "was saved with other parameter groups)", e->name, group, e->group);
    }
    if (count != (uint32_t)p->count) {
        if (count > (uint32_t)p->count) {
            char name[GOPT_PARAM_NAME_MAX] = "?";
            gopt__get(&c, name, sizeof name);
            name[GOPT_PARAM_NAME_MAX - 1] = '\0';
            return GOPT_FAIL(GOPT_EFORMAT, "parameter state holds %u tensors, the arena %d: the first extra one is "
                             "'%s'", count, p->count, c.ok ? name : "?");
        }
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state holds %u tensors, the arena %d: the first missing one is '%s'",
                         count, p->count, p->entries[count].name);
    }
    const uint32_t groups = v1 ? (uint32_t)p->group_count : gopt__get_u32(&c);
    if (!c.ok) return GOPT_FAIL(GOPT_EFORMAT, "parameter state of %zu bytes is truncated after its tensors", size);
    if (groups != (uint32_t)p->group_count)
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state was saved with %u parameter groups, the arena has %d", groups,
                         p->group_count);
    if (numel != p->numel)
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state holds %lld values, the arena %lld", (long long)numel,
                         (long long)p->numel);
    if ((size_t)(c.end - c.p) != (size_t)p->numel * sizeof(float))
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state is %zu bytes, this arena needs %zu (values truncated or "
                         "followed by extra bytes)", size, v1 ? size - (size_t)(c.end - c.p) + (size_t)p->numel *
                         sizeof(float) : gopt_params_state_size(p));
    memcpy(p->values, c.p, (size_t)p->numel * sizeof(float));
    return GOPT_OK;
}
