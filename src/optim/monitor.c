/* Stability monitor (see gradopt/monitor.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "gradopt/monitor.h"
#include "core/common.h"
#include "optim/dist_hooks.h"
#include "optim/norm.h"

/* MON2 appends the per-layer grad-norm history to MON1's fields, MON3 the count of steps
 * with a non-finite input to MON2's; MON1 and MON2 blobs still load. */
#define MONITOR_MAGIC_V1 GOPT__MAGIC('M', 'O', 'N', '1')
#define MONITOR_MAGIC_V2 GOPT__MAGIC('M', 'O', 'N', '2')
#define MONITOR_MAGIC GOPT__MAGIC('M', 'O', 'N', '3')

typedef struct ring {
    double *v;
    int cap, count, head; /* head: next write position */
} ring;

static void ring_push(ring *r, double x) {
    r->v[r->head] = x;
    r->head = (r->head + 1) % r->cap;
    if (r->count < r->cap) r->count++;
}
/* i-th oldest */
static double ring_at(const ring *r, int i) { return r->v[(r->head - r->count + i + r->cap) % r->cap]; }

struct gopt_monitor {
    gopt_monitor_config cfg;
    gopt_params *params;
    gopt_optim *opt;
    int ntensors;
    gopt_monitor_tensor *tensors;
    float *snapshot; /* parameters before the step (track_updates) */
    ring losses, norms, recent;
    gopt_monitor_counts counts;
    gopt_monitor_report last;
    int has_report, awaiting_after;
    /* per-layer view: runs of tensors sharing a name prefix (gopt_monitor_layer) */
    int nlayers;
    gopt_monitor_layer *layers;
    char *layer_names;  /* the prefixes, NUL-separated; layers[i].name points in here */
    double *layer_hist; /* layer_history rows of nlayers grad norms, a ring of rows */
    int hist_count, hist_head;
    /* data-parallel shard (gopt__monitor_set_shard): the gradient pass reads [shard_begin,
     * shard_end) and sums per-tensor sums of squares and the non-finite count over ranks */
    double *ss; /* ntensors + 2: per-tensor sums of squares, the non-finite gradient count,
                   the non-finite input count */
    int64_t shard_begin, shard_end;
    gopt__sum_fn sum;
    void *sum_ctx;
    /* gopt_monitor_check_input: non-finite input elements since the last before_step; the
     * data-parallel sum of that count when the gradients are already global (DDP) */
    int64_t pending_input;
    int input_checked; /* check_input was called at least once (the same on every rank) */
    gopt__sum_fn input_sum;
    void *input_sum_ctx;
};

void gopt__monitor_set_input_sum(gopt_monitor *m, gopt__sum_fn fn, void *ctx) {
    m->input_sum = fn;
    m->input_sum_ctx = ctx;
}

void gopt__monitor_set_shard(gopt_monitor *m, int64_t begin, int64_t end, gopt__sum_fn fn, void *ctx) {
    m->shard_begin = begin;
    m->shard_end = end;
    m->sum = fn;
    m->sum_ctx = ctx;
}

gopt_monitor_config gopt_monitor_config_default(void) {
    gopt_monitor_config c;
    memset(&c, 0, sizeof c);
    c.history = 1000;
    c.loss_window = 100;
    c.loss_min_samples = 20;
    c.spike_zscore = 6.0;
    c.skip_spikes = 0;
    c.skip_nonfinite = 1;
    c.nonfinite_lr_backoff = 1.0;
    c.explosion_window = 50;
    c.explosion_factor = 10.0;
    c.vanishing_floor = 1e-8;
    c.track_updates = 1;
    c.layer_vanishing_ratio = 1e-4;
    c.layer_history = 0;
    return c;
}

static gopt_status validate(const gopt_monitor_config *c, const gopt_optim *opt) {
    if (c->history < 1) return GOPT_FAIL(GOPT_EINVAL, "history = %d must be >= 1", c->history);
    if (c->loss_window < 2) return GOPT_FAIL(GOPT_EINVAL, "loss_window = %d must be >= 2", c->loss_window);
    if (c->loss_min_samples < 2 || c->loss_min_samples > c->loss_window)
        return GOPT_FAIL(GOPT_EINVAL, "loss_min_samples = %d is outside [2, loss_window = %d]", c->loss_min_samples,
                         c->loss_window);
    if (!(isfinite(c->spike_zscore) && c->spike_zscore > 0))
        return GOPT_FAIL(GOPT_EINVAL, "spike_zscore = %g must be finite and > 0", c->spike_zscore);
    if (!(c->nonfinite_lr_backoff > 0 && c->nonfinite_lr_backoff <= 1))
        return GOPT_FAIL(GOPT_EINVAL, "nonfinite_lr_backoff = %g is outside (0, 1]", c->nonfinite_lr_backoff);
    if (c->nonfinite_lr_backoff < 1 && !opt)
        return GOPT_FAIL(GOPT_EINVAL, "nonfinite_lr_backoff = %g needs an optimizer (opt is NULL)", c->nonfinite_lr_backoff);
    if (c->explosion_window < 2) return GOPT_FAIL(GOPT_EINVAL, "explosion_window = %d must be >= 2", c->explosion_window);
    if (!(isfinite(c->explosion_factor) && c->explosion_factor > 1))
        return GOPT_FAIL(GOPT_EINVAL, "explosion_factor = %g must be finite and > 1", c->explosion_factor);
    if (!(isfinite(c->vanishing_floor) && c->vanishing_floor >= 0))
        return GOPT_FAIL(GOPT_EINVAL, "vanishing_floor = %g must be finite and >= 0", c->vanishing_floor);
    if (!(isfinite(c->layer_vanishing_ratio) && c->layer_vanishing_ratio >= 0))
        return GOPT_FAIL(GOPT_EINVAL, "layer_vanishing_ratio = %g must be finite and >= 0", c->layer_vanishing_ratio);
    if (c->layer_history < 0) return GOPT_FAIL(GOPT_EINVAL, "layer_history = %d must be >= 0", c->layer_history);
    return GOPT_OK;
}

/* Length of the layer prefix of a tensor name: up to the last '.', or -1 without one. */
static int prefix_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? (int)(dot - name) : -1;
}

/* Group the arena's tensors into layers (runs of equal prefixes; a name without '.' alone)
 * and allocate the history; everything the per-layer view needs, once. */
static gopt_status make_layers(gopt_monitor *m) {
    size_t name_bytes = 0;
    int n = 0, prev_len = -1;
    const char *prev = NULL;
    for (int i = 0; i < m->ntensors; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(m->params, i, &info));
        int len = prefix_len(info.name);
        if (!prev || len < 0 || prev_len < 0 || len != prev_len || strncmp(prev, info.name, (size_t)len) != 0) {
            n++;
            name_bytes += (len < 0 ? strlen(info.name) : (size_t)len) + 1;
        }
        prev = info.name;
        prev_len = len;
    }
    m->nlayers = n;
    m->layers = gopt__calloc(n ? (size_t)n : 1, sizeof *m->layers);
    m->layer_names = gopt__malloc(name_bytes ? name_bytes : 1);
    size_t hist;
    if (!gopt__mul_size((size_t)m->cfg.layer_history, (size_t)(n ? n : 1), &hist) || hist > SIZE_MAX / sizeof(double))
        return GOPT_FAIL(GOPT_EOVERFLOW, "layer_history = %d x %d layers", m->cfg.layer_history, n);
    if (hist) m->layer_hist = gopt__calloc(hist, sizeof(double));
    if (!m->layers || !m->layer_names || (hist && !m->layer_hist)) return GOPT_FAIL(GOPT_ENOMEM, "monitor layer buffers");
    char *w = m->layer_names;
    int layer = -1;
    prev = NULL;
    prev_len = -1;
    for (int i = 0; i < m->ntensors; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(m->params, i, &info));
        int len = prefix_len(info.name);
        if (!prev || len < 0 || prev_len < 0 || len != prev_len || strncmp(prev, info.name, (size_t)len) != 0) {
            size_t k = len < 0 ? strlen(info.name) : (size_t)len;
            memcpy(w, info.name, k);
            w[k] = '\0';
            gopt_monitor_layer *ly = &m->layers[++layer];
            ly->name = w;
            ly->first_tensor = i;
            ly->grad_norm = ly->param_norm = ly->update_norm = ly->update_ratio = NAN;
            w += k + 1;
        }
        m->layers[layer].ntensors++;
        prev = info.name;
        prev_len = len;
    }
    return GOPT_OK;
}

gopt_status gopt_monitor_create(const gopt_monitor_config *cfg, gopt_params *params, gopt_optim *opt,
                                gopt_monitor **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(params);
    if (!gopt_params_finalized(params)) return GOPT_FAIL(GOPT_ESTATE, "the parameter arena is not finalized");
    if (opt && gopt_optim_params(opt) != params)
        return GOPT_FAIL(GOPT_ESTATE, "opt steps another parameter arena than params");
    GOPT_TRY(validate(cfg, opt));
    gopt_monitor *m = gopt__calloc(1, sizeof *m);
    if (!m) return GOPT_FAIL(GOPT_ENOMEM, "monitor");
    m->cfg = *cfg;
    m->params = params;
    m->opt = opt;
    m->ntensors = gopt_params_count(params);
    m->tensors = gopt__calloc((size_t)m->ntensors, sizeof *m->tensors);
    m->ss = gopt__calloc((size_t)m->ntensors + 2, sizeof *m->ss);
    m->losses.v = gopt__calloc((size_t)cfg->loss_window, sizeof(double));
    m->norms.v = gopt__calloc((size_t)cfg->history, sizeof(double));
    m->recent.v = gopt__calloc((size_t)cfg->explosion_window, sizeof(double));
    if (cfg->track_updates) m->snapshot = gopt__aligned_alloc((size_t)gopt_params_numel(params) * sizeof(float));
    if (!m->tensors || !m->ss || !m->losses.v || !m->norms.v || !m->recent.v || (cfg->track_updates && !m->snapshot)) {
        gopt_monitor_destroy(m);
        return GOPT_FAIL(GOPT_ENOMEM, "monitor buffers");
    }
    m->losses.cap = cfg->loss_window;
    m->norms.cap = cfg->history;
    m->recent.cap = cfg->explosion_window;
    for (int i = 0; i < m->ntensors; i++)
        m->tensors[i] = (gopt_monitor_tensor){NAN, NAN, NAN, NAN};
    gopt_status st = make_layers(m);
    if (st != GOPT_OK) {
        gopt_monitor_destroy(m);
        return st;
    }
    *out = m;
    return GOPT_OK;
}

void gopt_monitor_destroy(gopt_monitor *m) {
    if (!m) return;
    gopt__free(m->tensors);
    gopt__free(m->ss);
    gopt__free(m->losses.v);
    gopt__free(m->norms.v);
    gopt__free(m->recent.v);
    gopt__aligned_free(m->snapshot);
    gopt__free(m->layers);
    gopt__free(m->layer_names);
    gopt__free(m->layer_hist);
    gopt__free(m);
}

/* Non-finite elements of x[0..n): exponent bits all ones (NaN, +Inf, -Inf); one pass. */
static int64_t count_nonfinite(const float *x, size_t n) {
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad += (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

gopt_status gopt_monitor_check_input(gopt_monitor *m, const float *x, size_t n) {
    GOPT_CHECK_NULL(m);
    if (n > 0) GOPT_CHECK_NULL(x);
    m->pending_input += count_nonfinite(x, n);
    m->input_checked = 1;
    return GOPT_OK;
}

static int has_nonfinite(const float *x, int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return bad;
}

/* Per-layer vanishing flags against the largest layer norm (all finite only) and the
 * history row of this step. */
static void flag_layers(gopt_monitor *m, gopt_monitor_report *r) {
    double largest = 0;
    int finite = 1;
    for (int k = 0; k < m->nlayers; k++) {
        double g = m->layers[k].grad_norm;
        if (!isfinite(g)) finite = 0;
        else if (g > largest) largest = g;
    }
    const double threshold = m->cfg.layer_vanishing_ratio * largest;
    for (int k = 0; k < m->nlayers; k++) {
        gopt_monitor_layer *ly = &m->layers[k];
        int frozen = ly->ntensors > 0; /* a frozen layer's zero norm is not vanishing */
        for (int i = ly->first_tensor; frozen && i < ly->first_tensor + ly->ntensors; i++)
            frozen = gopt_params_is_frozen(m->params, i);
        ly->vanishing = finite && !frozen && ly->grad_norm < threshold;
        r->vanishing_layers += ly->vanishing;
        ly->param_norm = ly->update_norm = ly->update_ratio = NAN;
    }
    if (m->layer_hist) {
        double *row = m->layer_hist + (size_t)m->hist_head * (size_t)m->nlayers;
        for (int k = 0; k < m->nlayers; k++) row[k] = m->layers[k].grad_norm;
        m->hist_head = (m->hist_head + 1) % m->cfg.layer_history;
        if (m->hist_count < m->cfg.layer_history) m->hist_count++;
    }
}

gopt_status gopt_monitor_before_step(gopt_monitor *m, double loss, gopt_monitor_report *report) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(report);
    const gopt_monitor_config *c = &m->cfg;
    gopt_monitor_report r;
    memset(&r, 0, sizeof r);
    r.step = m->counts.steps;
    r.loss = loss;
    r.zscore = NAN;

    /* one read pass over the gradients: per-tensor sums of squares, added up per layer and
     * in all (in arena order, so the global norm does not depend on the grouping) */
    double nonfinite = 0;
    for (int i = 0; i < m->ntensors; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(m->params, i, &info));
        const float *g = info.grad.data;
        int64_t n = info.frozen ? 0 : info.grad.numel; /* frozen: not read, out of every norm (as clipping) */
        if (m->sum) { /* this rank's part of the tensor */
            int64_t b = info.offset > m->shard_begin ? info.offset : m->shard_begin;
            int64_t e = info.offset + n < m->shard_end ? info.offset + n : m->shard_end;
            g += b - info.offset;
            n = e > b ? e - b : 0;
        }
        double ss = n > 0 ? gopt__pow_sum(g, n, 2.0, 1) : 0.0;
        /* float lanes overflow for |g| > ~1e19: confirm with an exact check (rare path) */
        if (!isfinite(ss) && has_nonfinite(g, n)) nonfinite = 1;
        m->ss[i] = ss;
    }
    m->ss[m->ntensors] = nonfinite;
    m->ss[m->ntensors + 1] = (double)m->pending_input;
    m->pending_input = 0; /* counted for this step, whatever happens below */
    if (m->sum) GOPT_TRY(m->sum(m->sum_ctx, m->ss, m->ntensors + 2));
    else if (m->input_sum && m->input_checked) GOPT_TRY(m->input_sum(m->input_sum_ctx, m->ss + m->ntensors + 1, 1));
    double total = 0;
    for (int k = 0; k < m->nlayers; k++) {
        gopt_monitor_layer *ly = &m->layers[k];
        double layer_ss = 0;
        for (int i = ly->first_tensor; i < ly->first_tensor + ly->ntensors; i++) {
            m->tensors[i].grad_norm = sqrt(m->ss[i]);
            total += m->ss[i];
            layer_ss += m->ss[i];
        }
        ly->grad_norm = sqrt(layer_ss);
    }
    r.grad_norm = sqrt(total);
    flag_layers(m, &r);
    r.nonfinite_grad = m->ss[m->ntensors] != 0;
    r.nonfinite_loss = !isfinite(loss);
    r.nonfinite_input = (int64_t)m->ss[m->ntensors + 1];

    if (!r.nonfinite_loss && m->losses.count >= c->loss_min_samples) {
        double mean = 0, var = 0;
        for (int i = 0; i < m->losses.count; i++) mean += ring_at(&m->losses, i);
        mean /= m->losses.count;
        for (int i = 0; i < m->losses.count; i++) {
            double d = ring_at(&m->losses, i) - mean;
            var += d * d;
        }
        double sd = sqrt(var / m->losses.count);
        double floor = 1e-12 * (fabs(mean) + 1.0); /* a flat loss still has a finite z */
        r.zscore = (loss - mean) / (sd > floor ? sd : floor);
        r.spike = r.zscore > c->spike_zscore;
    }
    if (isfinite(r.grad_norm)) {
        if (m->recent.count >= 2) {
            double mean = 0;
            for (int i = 0; i < m->recent.count; i++) mean += ring_at(&m->recent, i);
            mean /= m->recent.count;
            r.explosion = r.grad_norm > c->explosion_factor * mean;
        }
        r.vanishing = r.grad_norm < c->vanishing_floor;
    }

    r.apply = 1;
    m->counts.steps++;
    if (r.nonfinite_grad) m->counts.nonfinite_grad++;
    if (r.nonfinite_loss) m->counts.nonfinite_loss++;
    if (r.nonfinite_input) m->counts.nonfinite_input++;
    if (r.spike) m->counts.spikes++;
    if (r.explosion) m->counts.explosions++;
    if (r.vanishing) m->counts.vanishing++;
    gopt_status st = GOPT_OK;
    if ((r.nonfinite_grad || r.nonfinite_loss || r.nonfinite_input) && c->skip_nonfinite) {
        r.apply = 0;
        m->counts.skipped_nonfinite++;
        if (c->nonfinite_lr_backoff < 1 && m->opt) {
            int ng = gopt_optim_group_count(m->opt);
            for (int g = 0; g < ng && st == GOPT_OK; g++)
                st = gopt_optim_set_lr(m->opt, g, (float)(gopt_optim_get_lr(m->opt, g) * c->nonfinite_lr_backoff));
            m->counts.lr_backoffs++;
        }
    } else if (r.spike && c->skip_spikes) {
        r.apply = 0;
        m->counts.skipped_spike++;
    }
    if (isfinite(r.grad_norm) && !r.nonfinite_input) { /* a corrupt batch's norm says nothing */
        ring_push(&m->norms, r.grad_norm);
        ring_push(&m->recent, r.grad_norm);
    }
    if (r.apply) {
        m->counts.applied++;
        if (!r.nonfinite_loss) ring_push(&m->losses, loss);
        if (m->snapshot)
            memcpy(m->snapshot, gopt_params_values_const(m->params), (size_t)gopt_params_numel(m->params) * sizeof(float));
    }
    for (int i = 0; i < m->ntensors; i++) {
        m->tensors[i].param_norm = NAN;
        m->tensors[i].update_norm = NAN;
        m->tensors[i].update_ratio = NAN;
    }
    m->awaiting_after = r.apply;
    m->last = r;
    m->has_report = 1;
    *report = r;
    return st;
}

static double update_ratio(double update, double param) {
    return param > 0 ? update / param : (update > 0 ? INFINITY : 0.0);
}

gopt_status gopt_monitor_after_step(gopt_monitor *m) {
    GOPT_CHECK_NULL(m);
    if (!m->awaiting_after)
        return GOPT_FAIL(GOPT_ESTATE, "after_step must follow a before_step whose report said apply (once)");
    m->awaiting_after = 0;
    for (int i = 0; i < m->ntensors; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(m->params, i, &info));
        const float *w = info.value.data;
        double pn = sqrt(gopt__pow_sum(w, info.value.numel, 2.0, 1));
        m->tensors[i].param_norm = pn;
        if (m->snapshot) {
            const float *old = m->snapshot + info.offset;
            double un = 0;
            for (int64_t k = 0; k < info.value.numel; k++) {
                double d = (double)w[k] - (double)old[k];
                un += d * d;
            }
            un = sqrt(un);
            m->tensors[i].update_norm = un;
            m->tensors[i].update_ratio = update_ratio(un, pn);
        }
    }
    for (int k = 0; k < m->nlayers; k++) {
        gopt_monitor_layer *ly = &m->layers[k];
        double pss = 0, uss = 0;
        for (int i = ly->first_tensor; i < ly->first_tensor + ly->ntensors; i++) {
            pss += m->tensors[i].param_norm * m->tensors[i].param_norm;
            uss += m->tensors[i].update_norm * m->tensors[i].update_norm; /* NAN without track_updates */
        }
        ly->param_norm = sqrt(pss);
        ly->update_norm = sqrt(uss);
        ly->update_ratio = m->snapshot ? update_ratio(ly->update_norm, ly->param_norm) : NAN;
    }
    return GOPT_OK;
}

const gopt_monitor_report *gopt_monitor_last_report(const gopt_monitor *m) {
    return m && m->has_report ? &m->last : NULL;
}

gopt_status gopt_monitor_counts_get(const gopt_monitor *m, gopt_monitor_counts *out) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(out);
    *out = m->counts;
    return GOPT_OK;
}

gopt_status gopt_monitor_tensor_stats(const gopt_monitor *m, int index, gopt_monitor_tensor *out) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(out);
    if (index < 0 || index >= m->ntensors)
        return GOPT_FAIL(GOPT_ERANGE, "index = %d is outside [0, %d)", index, m->ntensors);
    *out = m->tensors[index];
    return GOPT_OK;
}

gopt_status gopt_monitor_grad_norm_history(const gopt_monitor *m, double *out, int max, int *n) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(n);
    if (max < 0) return GOPT_FAIL(GOPT_EINVAL, "max = %d must be >= 0", max);
    if (max > 0) GOPT_CHECK_NULL(out);
    int count = m->norms.count < max ? m->norms.count : max;
    int skip = m->norms.count - count; /* keep the newest */
    for (int i = 0; i < count; i++) out[i] = ring_at(&m->norms, skip + i);
    *n = count;
    return GOPT_OK;
}

int gopt_monitor_layer_count(const gopt_monitor *m) { return m ? m->nlayers : 0; }

gopt_status gopt_monitor_layer_stats(const gopt_monitor *m, int layer, gopt_monitor_layer *out) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(out);
    if (layer < 0 || layer >= m->nlayers)
        return GOPT_FAIL(GOPT_ERANGE, "layer = %d is outside [0, %d)", layer, m->nlayers);
    *out = m->layers[layer];
    return GOPT_OK;
}

gopt_status gopt_monitor_layer_history(const gopt_monitor *m, int layer, double *out, int max, int *n) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(n);
    if (layer < 0 || layer >= m->nlayers)
        return GOPT_FAIL(GOPT_ERANGE, "layer = %d is outside [0, %d)", layer, m->nlayers);
    if (m->cfg.layer_history == 0)
        return GOPT_FAIL(GOPT_ESTATE, "the monitor keeps no layer history (config layer_history is 0)");
    if (max < 0) return GOPT_FAIL(GOPT_EINVAL, "max = %d must be >= 0", max);
    if (max > 0) GOPT_CHECK_NULL(out);
    const int cap = m->cfg.layer_history;
    int count = m->hist_count < max ? m->hist_count : max;
    int skip = m->hist_count - count; /* keep the newest */
    for (int i = 0; i < count; i++) {
        int row = (m->hist_head - m->hist_count + skip + i + cap) % cap;
        out[i] = m->layer_hist[(size_t)row * (size_t)m->nlayers + (size_t)layer];
    }
    *n = count;
    return GOPT_OK;
}

/* ---- export --------------------------------------------------------------------------- */

static void put_num(FILE *f, double x, int json) {
    if (isfinite(x)) fprintf(f, "%.9g", x);
    else if (json) fputs("null", f);
    else fprintf(f, "%s", isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf"));
}

static const char *const flag_names[5] = {"nonfinite_grad", "nonfinite_loss", "spike", "explosion", "vanishing"};

gopt_status gopt_monitor_write_row(const gopt_monitor *m, FILE *f, gopt_monitor_format fmt, int header) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(f);
    if (fmt != GOPT_MONITOR_CSV && fmt != GOPT_MONITOR_JSONL) return GOPT_FAIL(GOPT_EINVAL, "fmt = %d is not a format", (int)fmt);
    if (!m->has_report) return GOPT_FAIL(GOPT_ESTATE, "no step has been monitored yet");
    const gopt_monitor_report *r = &m->last;
    int json = fmt == GOPT_MONITOR_JSONL;
    int flags[5] = {r->nonfinite_grad, r->nonfinite_loss, r->spike, r->explosion, r->vanishing};
    double lr = m->opt ? gopt_optim_get_lr(m->opt, 0) : NAN;
    if (!json && header) {
        fputs("step,applied,loss,zscore,grad_norm,lr", f);
        for (int k = 0; k < 5; k++) fprintf(f, ",%s", flag_names[k]);
        for (int i = 0; i < m->ntensors; i++) {
            gopt_param_info info;
            gopt_params_info(m->params, i, &info);
            fprintf(f, ",%s.grad_norm,%s.param_norm,%s.update_ratio", info.name, info.name, info.name);
        }
        fputs(",nonfinite_input", f); /* added after the per-tensor columns: older ones keep their place */
        fputc('\n', f);
    }
    if (json) {
        fprintf(f, "{\"step\":%lld,\"applied\":%s,\"loss\":", (long long)r->step, r->apply ? "true" : "false");
        put_num(f, r->loss, 1);
        fputs(",\"zscore\":", f);
        put_num(f, r->zscore, 1);
        fputs(",\"grad_norm\":", f);
        put_num(f, r->grad_norm, 1);
        fputs(",\"lr\":", f);
        put_num(f, lr, 1);
        for (int k = 0; k < 5; k++) fprintf(f, ",\"%s\":%s", flag_names[k], flags[k] ? "true" : "false");
        fputs(",\"tensors\":{", f);
        for (int i = 0; i < m->ntensors; i++) {
            gopt_param_info info;
            gopt_params_info(m->params, i, &info);
            fprintf(f, "%s\"%s\":{\"grad_norm\":", i ? "," : "", info.name);
            put_num(f, m->tensors[i].grad_norm, 1);
            fputs(",\"param_norm\":", f);
            put_num(f, m->tensors[i].param_norm, 1);
            fputs(",\"update_ratio\":", f);
            put_num(f, m->tensors[i].update_ratio, 1);
            fputc('}', f);
        }
        fprintf(f, "},\"nonfinite_input\":%lld}\n", (long long)r->nonfinite_input);
    } else {
        fprintf(f, "%lld,%d,", (long long)r->step, r->apply);
        put_num(f, r->loss, 0);
        fputc(',', f);
        put_num(f, r->zscore, 0);
        fputc(',', f);
        put_num(f, r->grad_norm, 0);
        fputc(',', f);
        if (m->opt) put_num(f, lr, 0);
        for (int k = 0; k < 5; k++) fprintf(f, ",%d", flags[k]);
        for (int i = 0; i < m->ntensors; i++) {
            fputc(',', f);
            put_num(f, m->tensors[i].grad_norm, 0);
            fputc(',', f);
            put_num(f, m->tensors[i].param_norm, 0);
            fputc(',', f);
            put_num(f, m->tensors[i].update_ratio, 0);
        }
        fprintf(f, ",%lld\n", (long long)r->nonfinite_input);
    }
    if (ferror(f)) return GOPT_FAIL(GOPT_EIO, "writing the monitor row failed");
    return GOPT_OK;
}

gopt_status gopt_monitor_append_row(const gopt_monitor *m, const char *path, gopt_monitor_format fmt) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(path);
    if (!m->has_report) return GOPT_FAIL(GOPT_ESTATE, "no step has been monitored yet");
    FILE *f = fopen(path, "a");
    if (!f) return GOPT_FAIL(GOPT_EIO, "cannot open '%s' for appending: %s", path, strerror(errno));
    int empty = ftell(f) == 0;
    gopt_status st = gopt_monitor_write_row(m, f, fmt, empty);
    if (fclose(f) != 0 && st == GOPT_OK) st = GOPT_FAIL(GOPT_EIO, "cannot write '%s': %s", path, strerror(errno));
    else if (st == GOPT_EIO) st = GOPT_FAIL(GOPT_EIO, "cannot write '%s'", path);
    return st;
}

/* ---- state ----------------------------------------------------------------------------- */

/* The counts MON1 and MON2 hold: every field of gopt_monitor_counts up to lr_backoffs, in
 * struct order; MON3 appends nonfinite_input at the end of the blob. */
#define NCOUNTS 10
_Static_assert(offsetof(gopt_monitor_counts, lr_backoffs) == (NCOUNTS - 1) * sizeof(int64_t),
               "the counts of MON1/MON2 are the first NCOUNTS fields");

static size_t ring_bytes(const ring *r) { return 2 * sizeof(uint32_t) + (size_t)r->cap * sizeof(double); }

/* MON1: 5 header words (magic, tensors, loss_window, history, explosion_window), the
 * counts and the three rings. */
static size_t state_size_v1(const gopt_monitor *m) {
    return 5 * sizeof(uint32_t) + NCOUNTS * sizeof(int64_t) + ring_bytes(&m->losses) + ring_bytes(&m->norms) +
           ring_bytes(&m->recent);
}

/* MON2 = MON1's fields, then nlayers, layer_history, count, head and the history rows. */
static size_t layer_section_bytes(const gopt_monitor *m) {
    return 4 * sizeof(uint32_t) + (size_t)m->cfg.layer_history * (size_t)m->nlayers * sizeof(double);
}

size_t gopt_monitor_state_size(const gopt_monitor *m) {
    if (!m) return 0;
    return state_size_v1(m) + layer_section_bytes(m) + sizeof(int64_t);
}

static void ring_save(gopt__wcur *w, const ring *r) {
    gopt__put_u32(w, (uint32_t)r->count);
    gopt__put_u32(w, (uint32_t)r->head);
    gopt__put(w, r->v, (size_t)r->cap * sizeof(double));
}

gopt_status gopt_monitor_state_save(const gopt_monitor *m, void *buf, size_t size) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(buf);
    if (size < gopt_monitor_state_size(m))
        return GOPT_FAIL(GOPT_EINVAL, "size = %zu, the state needs %zu bytes", size, gopt_monitor_state_size(m));
    gopt__wcur w = gopt__wcur_make(buf, size);
    gopt__put_u32(&w, MONITOR_MAGIC);
    gopt__put_u32(&w, (uint32_t)m->ntensors);
    gopt__put_u32(&w, (uint32_t)m->losses.cap);
    gopt__put_u32(&w, (uint32_t)m->norms.cap);
    gopt__put_u32(&w, (uint32_t)m->recent.cap);
    gopt__put(&w, &m->counts, NCOUNTS * sizeof(int64_t));
    ring_save(&w, &m->losses);
    ring_save(&w, &m->norms);
    ring_save(&w, &m->recent);
    gopt__put_u32(&w, (uint32_t)m->nlayers);
    gopt__put_u32(&w, (uint32_t)m->cfg.layer_history);
    gopt__put_u32(&w, (uint32_t)m->hist_count);
    gopt__put_u32(&w, (uint32_t)m->hist_head);
    gopt__put(&w, m->layer_hist, (size_t)m->cfg.layer_history * (size_t)m->nlayers * sizeof(double));
    gopt__put_i64(&w, m->counts.nonfinite_input);
    return w.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "state buffer too small");
}

static gopt_status ring_check(gopt__rcur *r, const ring *ring_, const char *name, uint32_t *count, uint32_t *head,
                              const unsigned char **values) {
    *count = gopt__get_u32(r);
    *head = gopt__get_u32(r);
    *values = r->p;
    gopt__get(r, NULL, 0);
    if (!r->ok || (size_t)(r->end - r->p) < (size_t)ring_->cap * sizeof(double))
        return GOPT_FAIL(GOPT_EFORMAT, "monitor state truncated in %s", name);
    r->p += (size_t)ring_->cap * sizeof(double);
    if (*count > (uint32_t)ring_->cap || *head >= (uint32_t)ring_->cap)
        return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %s count %u / head %u do not fit %d", name, *count, *head, ring_->cap);
    return GOPT_OK;
}

gopt_status gopt_monitor_state_load(gopt_monitor *m, const void *buf, size_t size) {
    GOPT_CHECK_NULL(m);
    GOPT_CHECK_NULL(buf);
    gopt__rcur r = gopt__rcur_make(buf, size);
    uint32_t hdr[5];
    for (int i = 0; i < 5; i++) hdr[i] = gopt__get_u32(&r);
    if (!r.ok) return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %zu bytes, too short for its header", size);
    if (hdr[0] != MONITOR_MAGIC && hdr[0] != MONITOR_MAGIC_V2 && hdr[0] != MONITOR_MAGIC_V1)
        return GOPT_FAIL(GOPT_EFORMAT, "monitor state: bad magic 0x%08x", hdr[0]);
    const int v1 = hdr[0] == MONITOR_MAGIC_V1; /* saved before the layer history was kept */
    const int v2 = hdr[0] == MONITOR_MAGIC_V2; /* saved before non-finite inputs were counted */
    const size_t want = v1   ? state_size_v1(m)
                        : v2 ? state_size_v1(m) + layer_section_bytes(m)
                             : gopt_monitor_state_size(m);
    if (size != want)
        return GOPT_FAIL(GOPT_EFORMAT, "monitor state (%s): %zu bytes, expected %zu", v1 ? "MON1" : v2 ? "MON2" : "MON3",
                         size, want);
    if (hdr[1] != (uint32_t)m->ntensors) return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %u tensors, this monitor has %d", hdr[1], m->ntensors);
    if (hdr[2] != (uint32_t)m->losses.cap) return GOPT_FAIL(GOPT_EFORMAT, "monitor state: loss_window %u, this monitor has %d", hdr[2], m->losses.cap);
    if (hdr[3] != (uint32_t)m->norms.cap) return GOPT_FAIL(GOPT_EFORMAT, "monitor state: history %u, this monitor has %d", hdr[3], m->norms.cap);
    if (hdr[4] != (uint32_t)m->recent.cap)
        return GOPT_FAIL(GOPT_EFORMAT, "monitor state: explosion_window %u, this monitor has %d", hdr[4], m->recent.cap);
    gopt_monitor_counts counts;
    memset(&counts, 0, sizeof counts);
    gopt__get(&r, &counts, NCOUNTS * sizeof(int64_t));
    uint32_t cnt[3], head[3];
    const unsigned char *vals[3];
    GOPT_TRY(ring_check(&r, &m->losses, "loss window", &cnt[0], &head[0], &vals[0]));
    GOPT_TRY(ring_check(&r, &m->norms, "norm history", &cnt[1], &head[1], &vals[1]));
    GOPT_TRY(ring_check(&r, &m->recent, "explosion window", &cnt[2], &head[2], &vals[2]));
    uint32_t lhdr[4] = {(uint32_t)m->nlayers, (uint32_t)m->cfg.layer_history, 0, 0};
    if (!v1) {
        for (int i = 0; i < 4; i++) lhdr[i] = gopt__get_u32(&r);
        if (!r.ok) return GOPT_FAIL(GOPT_EFORMAT, "monitor state truncated in the layer history");
        if (lhdr[0] != (uint32_t)m->nlayers)
            return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %u layers, this monitor has %d", lhdr[0], m->nlayers);
        if (lhdr[1] != (uint32_t)m->cfg.layer_history)
            return GOPT_FAIL(GOPT_EFORMAT, "monitor state: layer_history %u, this monitor has %d", lhdr[1],
                             m->cfg.layer_history);
        if (lhdr[2] > lhdr[1] || (lhdr[1] > 0 && lhdr[3] >= lhdr[1]) || (lhdr[1] == 0 && lhdr[3] != 0))
            return GOPT_FAIL(GOPT_EFORMAT, "monitor state: layer history count %u / head %u do not fit %u", lhdr[2],
                             lhdr[3], lhdr[1]);
    }
    if (!v1 && !v2) { /* MON3: the count after the layer history */
        gopt__rcur tail = gopt__rcur_make((const unsigned char *)buf + size - sizeof(int64_t), sizeof(int64_t));
        counts.nonfinite_input = gopt__get_i64(&tail);
    }
    /* Every count is of steps, at most one per step (in every version). */
    static const char *const count_names[] = {"steps",           "applied",        "skipped_nonfinite", "skipped_spike",
                                              "nonfinite_grad",  "nonfinite_loss", "spikes",            "explosions",
                                              "vanishing",       "lr_backoffs",    "nonfinite_input"};
    _Static_assert(sizeof(gopt_monitor_counts) == sizeof count_names / sizeof count_names[0] * sizeof(int64_t),
                   "gopt_monitor_counts is the int64_t counts named here");
    int64_t count[sizeof count_names / sizeof count_names[0]];
    memcpy(count, &counts, sizeof count);
    if (counts.steps < 0) return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %lld steps", (long long)counts.steps);
    for (size_t i = 1; i < sizeof count / sizeof count[0]; i++)
        if (count[i] < 0 || count[i] > counts.steps)
            return GOPT_FAIL(GOPT_EFORMAT, "monitor state: %s = %lld is outside 0..%lld (the steps)", count_names[i],
                             (long long)count[i], (long long)counts.steps);
    /* everything checked: commit */
    if (!v1 && m->layer_hist) memcpy(m->layer_hist, r.p, (size_t)lhdr[1] * (size_t)m->nlayers * sizeof(double));
    m->hist_count = (int)lhdr[2]; /* a MON1 blob leaves the layer history empty */
    m->hist_head = (int)lhdr[3];
    ring *rings[3] = {&m->losses, &m->norms, &m->recent};
    for (int i = 0; i < 3; i++) {
        rings[i]->count = (int)cnt[i];
        rings[i]->head = (int)head[i];
        memcpy(rings[i]->v, vals[i], (size_t)rings[i]->cap * sizeof(double));
    }
    m->counts = counts; /* an older blob: no step had a non-finite input counted */
    m->pending_input = 0;
    m->awaiting_after = 0;
    return GOPT_OK;
}
