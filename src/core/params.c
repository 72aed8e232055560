/* The parameter arena (see gradopt/params.h). */
#include "gradopt/params.h"
#include "core/common.h"

typedef struct param_entry {
    char name[GOPT_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[GOPT_MAX_DIMS];
    int64_t numel;
    int64_t offset;
    gopt_param_tag tag;
    int group;
} param_entry;

struct gopt_params {
    param_entry *entries;
    int count, capacity;
    gopt_group_config *groups;
    int group_count, group_capacity;
    int64_t numel;
    float *values, *grads; /* NULL until finalized */
    gopt_param_run *runs;  /* capacity `count`, filled once finalized */
    int run_count;
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
    p->count = count;
    p->numel = count ? p->entries[count - 1].offset + p->entries[count - 1].numel : 0;
}

static void rebuild_runs(gopt_params *p) {
    p->run_count = 0;
    for (int i = 0; i < p->count; i++) {
        const param_entry *e = &p->entries[i];
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
const gopt_param_run *gopt_params_runs(const gopt_params *p) { return p ? p->runs : NULL; }

/* ---- state -------------------------------------------------------------------------- */

#define PARAMS_MAGIC GOPT__MAGIC('P', 'R', 'M', '1')
#define ENTRY_BYTES (GOPT_PARAM_NAME_MAX + 4 + 8 * GOPT_MAX_DIMS)

size_t gopt_params_state_size(const gopt_params *p) {
    if (!p) return 0;
    return 4 + 4 + 8 + (size_t)p->count * ENTRY_BYTES + (size_t)p->numel * sizeof(float);
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
    }
    gopt__put(&c, p->values, (size_t)p->numel * sizeof(float));
    return c.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_params_state_load(gopt_params *p, const void *buf, size_t size) {
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(buf);
    if (!p->values) return GOPT_FAIL(GOPT_ESTATE, "the arena is not finalized");
    if (size != gopt_params_state_size(p))
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state is %zu bytes, this arena needs %zu", size,
                         gopt_params_state_size(p));
    gopt__rcur c = gopt__rcur_make(buf, size);
    if (gopt__get_u32(&c) != PARAMS_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "parameter state: bad magic");
    uint32_t count = gopt__get_u32(&c);
    int64_t numel = gopt__get_i64(&c);
    if (count != (uint32_t)p->count || numel != p->numel)
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state holds %u tensors / %lld values, arena has %d / %lld",
                         count, (long long)numel, p->count, (long long)p->numel);
    for (int i = 0; i < p->count; i++) {
        const param_entry *e = &p->entries[i];
        char name[GOPT_PARAM_NAME_MAX];
        gopt__get(&c, name, sizeof name);
        name[GOPT_PARAM_NAME_MAX - 1] = '\0';
        uint32_t ndim = gopt__get_u32(&c);
        int64_t shape[GOPT_MAX_DIMS];
        for (int d = 0; d < GOPT_MAX_DIMS; d++) shape[d] = gopt__get_i64(&c);
        if (strcmp(name, e->name) != 0)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor %d is '%s' in the state, '%s' in the arena", i, name, e->name);
        if (ndim != (uint32_t)e->ndim || memcmp(shape, e->shape, sizeof shape) != 0)
            return GOPT_FAIL(GOPT_EFORMAT, "tensor '%s' has another shape in the state", e->name);
    }
    if (!c.ok || (size_t)(c.end - c.p) != (size_t)p->numel * sizeof(float))
        return GOPT_FAIL(GOPT_EFORMAT, "parameter state truncated");
    memcpy(p->values, c.p, (size_t)p->numel * sizeof(float));
    return GOPT_OK;
}
