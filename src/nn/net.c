/* A net of layers (see gradopt/net.h): building, the sequential run with in-place
 * gradients, state. Nets of any shape run through net_graph.c, merge nodes are merge.c. */
#include <stdio.h>

#include "core/common.h"
#include "nn/bn_sync.h"
#include "nn/net_priv.h"

gopt_net_config gopt_net_config_default(void) {
    gopt_net_config c;
    memset(&c, 0, sizeof c);
    c.max_batch = 128;
    c.in_ndim = 3;
    c.in_shape[0] = 3;
    c.in_shape[1] = 32;
    c.in_shape[2] = 32;
    c.init = GOPT_NET_INIT_TORCH;
    return c;
}

gopt_status gopt_net_create(const gopt_net_config *cfg, gopt_net **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    if (cfg->max_batch < 1) return GOPT_FAIL(GOPT_EINVAL, "max_batch = %d must be >= 1", cfg->max_batch);
    if (cfg->in_ndim < 1 || cfg->in_ndim > 3) return GOPT_FAIL(GOPT_EINVAL, "in_ndim = %d must be 1..3", cfg->in_ndim);
    if (cfg->init != GOPT_NET_INIT_TORCH && cfg->init != GOPT_NET_INIT_HE)
        return GOPT_FAIL(GOPT_EINVAL, "init = %d is not a gopt_net_init", (int)cfg->init);
    int64_t numel = 1;
    for (int i = 0; i < cfg->in_ndim; i++) {
        if (cfg->in_shape[i] < 1 || cfg->in_shape[i] > (1 << 24))
            return GOPT_FAIL(GOPT_EINVAL, "in_shape[%d] = %lld is out of range", i, (long long)cfg->in_shape[i]);
        numel *= cfg->in_shape[i];
    }
    gopt_net *net = gopt__calloc(1, sizeof *net);
    if (!net) return GOPT_FAIL(GOPT_ENOMEM, "net");
    net->cfg = *cfg;
    for (int i = cfg->in_ndim; i < 3; i++) net->cfg.in_shape[i] = 1;
    net->in_numel = numel;
    net->training = 1;
    gopt_status s = gopt_params_create(&net->params);
    if (s != GOPT_OK) {
        gopt__free(net);
        return s;
    }
    *out = net;
    return GOPT_OK;
}

void gopt_net_destroy(gopt_net *net) {
    if (!net) return;
    gopt__graph_free(net);
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer_destroy(net->layers[i]);
        gopt__free(net->nodes[i].inputs);
    }
    gopt__free(net->layers);
    gopt__free(net->nodes);
    gopt_params_destroy(net->params);
    gopt__aligned_free(net->ws);
    gopt__aligned_free(net->input);
    gopt__aligned_free(net->dlast);
    gopt__free(net);
}

static int cur_shape(const gopt_net *net, int64_t shape[3]) {
    if (net->nlayers == 0) {
        for (int i = 0; i < 3; i++) shape[i] = net->cfg.in_shape[i];
        return net->cfg.in_ndim;
    }
    return gopt_layer_out_shape(net->layers[net->nlayers - 1], shape);
}

gopt_status gopt__net_reserve(gopt_net *net) {
    if (net->nlayers < net->capacity) return GOPT_OK;
    int cap = net->capacity ? 2 * net->capacity : 16;
    gopt_layer **n = gopt__calloc((size_t)cap, sizeof *n);
    gopt__node *nd = gopt__calloc((size_t)cap, sizeof *nd);
    if (!n || !nd) {
        gopt__free(n);
        gopt__free(nd);
        return GOPT_FAIL(GOPT_ENOMEM, "layer list of %d", cap);
    }
    if (net->layers) memcpy(n, net->layers, sizeof *n * (size_t)net->nlayers);
    if (net->nodes) memcpy(nd, net->nodes, sizeof *nd * (size_t)net->nlayers);
    gopt__free(net->layers);
    gopt__free(net->nodes);
    net->layers = n;
    net->nodes = nd;
    net->capacity = cap;
    return GOPT_OK;
}

int gopt__net_lookup(const gopt_net *net, const char *name) {
    if (strcmp(name, "input") == 0) return GOPT__NET_INPUT;
    for (int i = 0; i < net->nlayers; i++)
        if (strcmp(net->nodes[i].name, name) == 0) return i;
    return -2;
}

int gopt__net_node_shape(const gopt_net *net, int i, int64_t shape[3]) {
    if (i >= 0) return gopt_layer_out_shape(net->layers[i], shape);
    for (int d = 0; d < 3; d++) shape[d] = net->cfg.in_shape[d];
    return net->cfg.in_ndim;
}

const char *gopt__net_name_problem(const gopt_net *net, const char **name, char auto_name[GOPT__NET_NAME_MAX]) {
    if (!*name) {
        snprintf(auto_name, GOPT__NET_NAME_MAX, "layer%d", net->nlayers);
        *name = auto_name;
    }
    size_t len = strlen(*name);
    if (len < 1 || len > 40) return "must be 1..40 bytes";
    if (strcmp(*name, "input") == 0) return "is reserved for the net's input";
    if (gopt__net_lookup(net, *name) >= 0) return "is already taken by an earlier layer (names are unique)";
    return NULL;
}

/* Append l with its input list `in` (ninputs entries, allocated by the caller, now the
 * node's); cannot fail. */
static void append_node(gopt_net *net, gopt_layer *l, const char *name, int *in, int ninputs, int p_first) {
    gopt__node *nd = &net->nodes[net->nlayers];
    memset(nd, 0, sizeof *nd);
    nd->inputs = in;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->ninputs = ninputs;
    for (int j = 0; j < ninputs; j++)
        if (in[j] >= 0) net->nodes[in[j]].consumers++;
    nd->p_first = p_first;
    nd->p_end = gopt_params_count(net->params);
    net->layers[net->nlayers++] = l;
}

gopt_status gopt__net_append(gopt_net *net, gopt_layer *l, const char *name, const int *inputs, int ninputs,
                             int p_first) {
    int *in = gopt__calloc((size_t)ninputs, sizeof *in);
    if (!in) {
        gopt_layer_destroy(l);
        gopt__params_truncate(net->params, p_first);
        return GOPT_FAIL(GOPT_ENOMEM, "layer inputs");
    }
    memcpy(in, inputs, sizeof *in * (size_t)ninputs);
    append_node(net, l, name, in, ninputs, p_first);
    return GOPT_OK;
}

gopt_status gopt_net_add(gopt_net *net, const gopt_layer_config *cfg, const char *name) {
    GOPT_RETURN(gopt_net_add_from(net, cfg, name, NULL));
}

gopt_status gopt_net_add_from(gopt_net *net, const gopt_layer_config *cfg, const char *name, const char *input) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(cfg);
    if (net->built) return GOPT_FAIL(GOPT_ESTATE, "cannot add a layer after gopt_net_build");
    if (cfg->type == GOPT_LAYER_ADD || cfg->type == GOPT_LAYER_CONCAT)
        return GOPT_FAIL(GOPT_EINVAL, "a %s node takes several inputs: add it with gopt_net_add_merge",
                         gopt_layer_type_name(cfg->type));
    char auto_name[GOPT__NET_NAME_MAX];
    const char *why = gopt__net_name_problem(net, &name, auto_name);
    if (why) return GOPT_FAIL(GOPT_EINVAL, "name '%s' %s", name, why);
    int src = net->nlayers - 1; /* NULL: the previous layer (the net's input for the first) */
    if (input) {
        src = gopt__net_lookup(net, input);
        if (src == -2) return GOPT_FAIL(GOPT_EINVAL, "input '%s': no earlier layer has that name", input);
    }
    if (cfg->type == GOPT_LAYER_EMBEDDING && net->nlayers > 0)
        return GOPT_FAIL(GOPT_EINVAL, "layer %d: an embedding takes token ids, so it must be the net's first layer",
                         net->nlayers);
    GOPT_TRY(gopt__net_reserve(net));
    int64_t shape[3];
    int ndim = gopt__net_node_shape(net, src, shape);
    const int p_first = gopt_params_count(net->params);
    /* Everything the node needs is allocated before the layer: once created, a layer is
     * the net's (a custom layer's destroy would run on a failure after it). */
    int *in = gopt__calloc(1, sizeof *in);
    if (!in) return GOPT_FAIL(GOPT_ENOMEM, "layer inputs");
    in[0] = src;
    gopt_layer *l;
    gopt_status s = gopt__layer_create(cfg, ndim, shape, net->cfg.max_batch, net->params, name, 0, &l);
    if (s != GOPT_OK) {
        gopt__free(in);
        return gopt__retag(s, __func__);
    }
    append_node(net, l, name, in, 1, p_first);
    return GOPT_OK;
}

const char *gopt_net_layer_name(const gopt_net *net, int i) {
    return (net && i >= 0 && i < net->nlayers) ? net->nodes[i].name : NULL;
}

gopt_status gopt_net_find_layer(const gopt_net *net, const char *name, int *index) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(name);
    int i = gopt__net_lookup(net, name);
    if (i < 0) return GOPT_FAIL(GOPT_ERANGE, "no layer named '%s' (the net has %d layers)", name, net->nlayers);
    if (index) *index = i;
    return GOPT_OK;
}

gopt_status gopt_net_set_recompute(gopt_net *net, int i, int on) {
    GOPT_CHECK_NULL(net);
    if (net->built) return GOPT_FAIL(GOPT_ESTATE, "set recompute before gopt_net_build");
    if (i < 0 || i >= net->nlayers)
        return GOPT_FAIL(GOPT_EINVAL, "layer %d out of range (the net has %d layers)", i, net->nlayers);
    gopt_layer *l = net->layers[i];
    if (on && !l->vt->recompute)
        return GOPT_FAIL(GOPT_EINVAL, "layer %d (%s) cannot be recomputed", i, gopt_layer_type_name(l->cfg.type));
    l->recompute = on ? 1 : 0;
    return GOPT_OK;
}

/* floats of a recomputed layer's output in the workspace, 64-byte aligned */
static size_t recompute_floats(const gopt_layer *l) {
    return ((size_t)l->max_batch * (size_t)l->out_numel + 15) / 16 * 16;
}

static gopt_status check_recompute(const gopt_net *net) {
    for (int i = 0; i < net->nlayers; i++) {
        if (!net->layers[i]->recompute) continue;
        if (i == net->nlayers - 1)
            return GOPT_FAIL(GOPT_EINVAL, "layer %d: the last layer cannot be recomputed (its output is the logits)",
                             i);
        const gopt_layer *next = net->layers[i + 1];
        if (next->recompute)
            return GOPT_FAIL(GOPT_EINVAL, "layers %d and %d: two adjacent layers cannot both be recomputed", i, i + 1);
        if (next->vt->flags & GOPT__VT_OUT_ALIASES_IN)
            return GOPT_FAIL(GOPT_EINVAL, "layer %d cannot be recomputed: layer %d (%s) passes its input on", i, i + 1,
                             gopt_layer_type_name(next->cfg.type));
    }
    return GOPT_OK;
}

gopt_status gopt_net_build(gopt_net *net) {
    GOPT_CHECK_NULL(net);
    if (net->built) return GOPT_FAIL(GOPT_ESTATE, "the net is already built");
    if (net->nlayers == 0) return GOPT_FAIL(GOPT_ESTATE, "the net has no layers");
    net->graph = 0;
    for (int i = 0; i < net->nlayers; i++)
        if (net->nodes[i].ninputs != 1 || net->nodes[i].inputs[0] != i - 1) net->graph = 1;
    for (int i = 0; net->graph && i < net->nlayers; i++) {
        const char *nm = net->nodes[i].name;
        if (net->layers[i]->recompute)
            return GOPT_FAIL(GOPT_EINVAL,
                             "layer %d '%s': recompute (gopt_net_set_recompute) is not supported in a net with "
                             "branches or merges",
                             i, nm);
        if (i < net->nlayers - 1 && net->nodes[i].consumers == 0)
            return GOPT_FAIL(GOPT_EINVAL,
                             "layer %d '%s': no layer reads its output (the net's output is its last layer's)", i, nm);
    }
    if (!net->graph) GOPT_TRY(check_recompute(net));
    /* Lean layers (blocks) with the largest activations keep conv2's output in the shared
     * workspace and recompute it in backward: one workspace-sized scratch instead of one
     * buffer each (for ResNet-20 at batch 128: 24 MB less for ~4% more time). */
    int64_t max_act = 0;
    int n_max = 0; /* lean layers of that size: with one, the scratch would save nothing */
    for (int i = 0; i < net->nlayers; i++) {
        const gopt_layer *l = net->layers[i];
        if (!(l->vt->flags & GOPT__VT_LEAN)) continue;
        if (l->out_numel > max_act) {
            max_act = l->out_numel;
            n_max = 0;
        }
        if (l->out_numel == max_act) n_max++;
    }
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        int lean = (l->vt->flags & GOPT__VT_LEAN) && n_max > 1 && l->out_numel == max_act;
        GOPT_TRY(gopt__layer_alloc_buffers(l, lean));
    }
    /* The workspace: the largest layer's scratch, and for a recomputed layer i its output
     * at the start with layer i's and layer i+1's scratch after it (i+1 reads that output
     * in forward and in backward). */
    size_t ws = 0, g = (size_t)net->layers[net->nlayers - 1]->out_numel;
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        if (l->ws_floats > ws) ws = l->ws_floats;
        if (l->recompute) {
            const size_t next_ws = net->layers[i + 1]->ws_floats;
            size_t inner = l->ws_floats > next_ws ? l->ws_floats : next_ws;
            if (recompute_floats(l) + inner > ws) ws = recompute_floats(l) + inner;
        }
    }
    size_t mb = (size_t)net->cfg.max_batch;
    /* After an allocation failure the net keeps what this build allocated (freed by
     * gopt_net_destroy) and a second build allocates only what is missing. */
    if (gopt_params_count(net->params) > 0 && !gopt_params_finalized(net->params))
        GOPT_TRY(gopt_params_finalize(net->params));
    if (ws && !net->ws) {
        net->ws = gopt__aligned_alloc(ws * sizeof(float));
        if (!net->ws) return GOPT_FAIL(GOPT_ENOMEM, "net workspace of %zu floats", ws);
    }
    if (!net->input) net->input = gopt__aligned_alloc(mb * (size_t)net->in_numel * sizeof(float));
    if (!net->dlast) net->dlast = gopt__aligned_alloc(mb * g * sizeof(float));
    if (!net->input || !net->dlast) return GOPT_FAIL(GOPT_ENOMEM, "net buffers of %zu floats", mb * g);
    if (net->graph) GOPT_TRY(gopt__graph_build(net));
    for (int i = 0; i < net->nlayers; i++) gopt__layer_set_ws(net->layers[i], net->ws);
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        if (!l->recompute) continue;
        l->out = net->ws; /* not owned */
        gopt__layer_set_ws(l, net->ws + recompute_floats(l));
        gopt__layer_set_ws(net->layers[i + 1], net->ws + recompute_floats(l));
    }
    gopt_rng rng;
    gopt_rng_seed(&rng, net->cfg.seed);
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        gopt_init kind = GOPT_INIT_TORCH_DEFAULT;
        if (net->cfg.init == GOPT_NET_INIT_HE && l->cfg.type != GOPT_LAYER_LINEAR) kind = GOPT_INIT_HE_NORMAL;
        GOPT_TRY(gopt_layer_init_params(l, kind, &rng));
    }
    net->built = 1;
    return GOPT_OK;
}

/* One stream from `seed` through the chosen layers in order, as build draws: with layer -1,
 * TORCH_DEFAULT twice and seed = cfg.seed this gives what build gave a GOPT_NET_INIT_TORCH net. */
gopt_status gopt_net_init_weights(gopt_net *net, int layer, gopt_init weights, gopt_init recurrent, uint64_t seed) {
    GOPT_CHECK_NULL(net);
    if (!net->built) return GOPT_FAIL(GOPT_ESTATE, "the net is not built (call gopt_net_build first)");
    if (layer < -1 || layer >= net->nlayers)
        return GOPT_FAIL(GOPT_ERANGE, "layer = %d is outside [-1, %d)", layer, net->nlayers);
    if (weights < GOPT_INIT_HE_NORMAL || weights > GOPT_INIT_ORTHOGONAL)
        return GOPT_FAIL(GOPT_EINVAL, "weights = %d is not a gopt_init", (int)weights);
    if (recurrent < GOPT_INIT_HE_NORMAL || recurrent > GOPT_INIT_ORTHOGONAL)
        return GOPT_FAIL(GOPT_EINVAL, "recurrent = %d is not a gopt_init", (int)recurrent);
    const gopt__init_spec spec = {weights, recurrent, 0};
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    const int first = layer < 0 ? 0 : layer, last = layer < 0 ? net->nlayers - 1 : layer;
    for (int i = first; i <= last; i++) GOPT_TRY(gopt__layer_init(net->layers[i], &spec, &rng));
    return GOPT_OK;
}

gopt_params *gopt_net_params(gopt_net *net) { return net ? net->params : NULL; }
int gopt_net_layer_count(const gopt_net *net) { return net ? net->nlayers : 0; }
gopt_layer *gopt_net_layer(gopt_net *net, int i) {
    return (net && i >= 0 && i < net->nlayers) ? net->layers[i] : NULL;
}
int gopt_net_out_shape(const gopt_net *net, int64_t out_shape[3]) {
    if (!net || !out_shape) return 0;
    return cur_shape(net, out_shape);
}

void gopt_net_set_training(gopt_net *net, int training) {
    if (!net) return;
    net->training = training ? 1 : 0;
    for (int i = 0; i < net->nlayers; i++) gopt_layer_set_training(net->layers[i], net->training);
}

static gopt_status check_shape(const gopt_net *net, const gopt_tensor *t, const char *what, int ndim,
                               const int64_t *shape, int want_n) {
    char got[96], want[96];
    int ok = t->data != NULL && t->ndim == ndim + 1 && t->shape[0] >= 1 &&
             (want_n <= 0 ? t->shape[0] <= net->cfg.max_batch : t->shape[0] >= want_n);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i + 1] == shape[i];
    if (ok) return GOPT_OK;
    int o = want_n > 0 ? snprintf(want, sizeof want, "(%d", want_n) : snprintf(want, sizeof want, "(N");
    for (int i = 0; i < ndim; i++) o += snprintf(want + o, sizeof want - (size_t)o, ",%lld", (long long)shape[i]);
    snprintf(want + o, sizeof want - (size_t)o, ")");
    gopt_shape_str(t, got, sizeof got);
    if (want_n > 0)
        return GOPT_FAIL(GOPT_ESHAPE, "%s %s does not match %s (at least %d rows, the last forward's batch)%s", what,
                         got, want, want_n, t->data ? "" : " or has no data");
    return GOPT_FAIL(GOPT_ESHAPE, "%s %s does not match %s (batch at most %d)%s", what, got, want,
                     net->cfg.max_batch, t->data ? "" : " or has no data");
}

/* Every layer's check of a batch of n before anything runs; x (the net's input) goes to the
 * first layer, the others' inputs do not exist yet. */
static gopt_status check_layers(const gopt_net *net, const float *x, int n) {
    for (int i = 0; i < net->nlayers; i++) {
        const gopt_layer *l = net->layers[i];
        const int reads_input = net->nodes[i].ninputs == 1 && net->nodes[i].inputs[0] == GOPT__NET_INPUT;
        if (l->vt->check_input) GOPT_TRY(l->vt->check_input(l, reads_input ? x : NULL, n));
    }
    return GOPT_OK;
}

/* ---- synchronised batchnorm (nn/bn_sync.h) --------------------------------------------------
 * Every batchnorm of the net, through the layers' bns hook (a block's three included), sums
 * its statistics over the processes with fn (nn/kernels.h, gopt__bn_sync). The layers'
 * forward and backward return nothing, so a failing fn is kept in the bn and taken here
 * after each layer: the net stops there and returns it. */
gopt_status gopt__net_set_bn_sync(gopt_net *net, gopt__sum_fn fn, void *ctx) {
    GOPT_CHECK_NULL(net);
    if (!net->built) return GOPT_FAIL(GOPT_ESTATE, "batchnorm sync: the net is not built (gopt_net_build)");
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++) {
            gopt_status s = gopt__bn_set_sync(b3[j], fn, ctx);
            if (s == GOPT_OK) continue;
            /* out of memory: every batchnorm back to per-process statistics */
            (void)gopt__net_set_bn_sync(net, NULL, NULL);
            return s;
        }
    }
    net->bn_sync = fn != NULL;
    return GOPT_OK;
}

/* The first failure of a synchronised sum in layer l's last forward or backward (all of
 * its batchnorms cleared). */
gopt_status gopt__net_take_bn_status(gopt_layer *l) {
    gopt__bn *b3[3];
    gopt_status first = GOPT_OK;
    int k = gopt__layer_bns(l, b3);
    for (int j = 0; j < k; j++) {
        gopt_status s = gopt__bn_sync_take(b3[j]);
        if (first == GOPT_OK) first = s;
    }
    return first;
}

/* Forward of n samples already in net->input (checked). */
static gopt_status run_forward(gopt_net *net, int n, gopt_tensor *logits) {
    if (net->graph) {
        gopt_status s = gopt__graph_forward(net, n);
        if (s != GOPT_OK) {
            net->last_n = 0;
            return s;
        }
    }
    const float *cur = net->input;
    for (int i = 0; i < net->nlayers && !net->graph; i++) {
        gopt_layer *l = net->layers[i];
        l->timer = net->timing_on ? net->timer : NULL;
        gopt_status fs = gopt__layer_forward_raw(l, cur, n); /* a custom layer's callback may fail */
        if (fs != GOPT_OK) {
            net->last_n = 0;
            return fs;
        }
        if (net->timing_on) net->calls[l->cfg.type]++;
        cur = l->out;
        if (net->bn_sync) {
            gopt_status s = gopt__net_take_bn_status(l);
            if (s != GOPT_OK) { /* the activations are incomplete: no backward for this forward */
                net->last_n = 0;
                return s;
            }
        }
    }
    net->last_n = n;
    net->backward_done = 0;
    gopt_layer *last = net->layers[net->nlayers - 1];
    int64_t shape[4] = {n, last->out_shape[0], last->out_shape[1], last->out_shape[2]};
    return gopt_tensor_view(last->out, last->out_ndim + 1, shape, logits);
}

gopt_status gopt_net_forward(gopt_net *net, const gopt_tensor *x, gopt_tensor *logits) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(logits);
    if (!net->built) return GOPT_FAIL(GOPT_ESTATE, "the net is not built (gopt_net_build)");
    GOPT_TRY(check_shape(net, x, "input", net->cfg.in_ndim, net->cfg.in_shape, 0));
    int n = (int)x->shape[0];
    GOPT_TRY(check_layers(net, x->data, n));
    memcpy(net->input, x->data, sizeof(float) * (size_t)(n * net->in_numel));
    return run_forward(net, n, logits);
}

gopt_status gopt_net_forward_tokens(gopt_net *net, const int32_t *tokens, int n, gopt_tensor *logits) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(tokens);
    GOPT_CHECK_NULL(logits);
    if (!net->built) return GOPT_FAIL(GOPT_ESTATE, "the net is not built (gopt_net_build)");
    const gopt_layer *first = net->layers[0];
    if (first->cfg.type != GOPT_LAYER_EMBEDDING)
        return GOPT_FAIL(GOPT_EINVAL, "token input needs an embedding as the first layer, not %s",
                         gopt_layer_type_name(first->cfg.type));
    if (n < 1 || n > net->cfg.max_batch)
        return GOPT_FAIL(GOPT_ESHAPE, "batch of %d sequences, the net takes 1..%d", n, net->cfg.max_batch);
    const int64_t T = net->in_numel, V = first->cfg.in_features;
    for (int64_t i = 0; i < (int64_t)n * T; i++) /* all of them before anything runs */
        if (tokens[i] < 0 || tokens[i] >= V)
            return GOPT_FAIL(GOPT_EINVAL, "token id %d at (sample %lld, step %lld) is outside [0, %lld)",
                             (int)tokens[i], (long long)(i / T), (long long)(i % T), (long long)V);
    GOPT_TRY(check_layers(net, NULL, n));
    for (int64_t i = 0; i < (int64_t)n * T; i++) net->input[i] = (float)tokens[i]; /* exact: V <= 2^24 */
    return run_forward(net, n, logits);
}

void gopt_net_reset_state(gopt_net *net) {
    for (int i = 0; net && i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        if (l->vt->reset_state) (void)l->vt->reset_state(l); /* recurrent layers; cannot fail on a valid layer */
    }
}

gopt_status gopt_net_backward(gopt_net *net, const gopt_tensor *dlogits) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(dlogits);
    if (!net->built || net->last_n == 0) return GOPT_FAIL(GOPT_ESTATE, "backward before forward");
    int64_t shape[3];
    int ndim = cur_shape(net, shape);
    GOPT_TRY(check_shape(net, dlogits, "dlogits", ndim, shape, net->last_n));
    if (net->backward_done)
        return GOPT_FAIL(GOPT_ESTATE, "backward already ran for the last forward (it consumes the activations)");
    const int n = net->last_n;
    gopt_layer *last = net->layers[net->nlayers - 1];
    memcpy(net->dlast, dlogits->data, sizeof(float) * (size_t)(n * last->out_numel)); /* the first n rows */
    gopt__net_mark_need(net);
    if (net->graph) {
        net->backward_done = 1;
        return gopt__graph_backward(net, n);
    }
    /* Gradients in place: layer i's output gradient lives in its own output buffer (dead once
     * layer i+1's backward has run) and its input gradient overwrites its input, the previous
     * layer's output; every layer reads what it needs of x before writing dx. A recomputed
     * layer's output (in the workspace, overwritten since its forward) is rewritten from
     * its input just before the next layer's backward needs it. Layers with nothing
     * trainable in or before them (need 0: frozen or parameter-free) are skipped, and
     * the first layer that needs backward gets no dx. */
    net->backward_done = 1;
    for (int i = net->nlayers - 1; i >= 0 && net->nodes[i].need; i--) {
        gopt_layer *l = net->layers[i];
        gopt_layer *prev = i > 0 ? net->layers[i - 1] : NULL;
        l->timer = net->timing_on ? net->timer : NULL;
        if (prev && prev->recompute) {
            prev->timer = l->timer;
            gopt__layer_recompute_raw(prev, i > 1 ? net->layers[i - 2]->out : net->input, n);
        }
        const float *xin = prev ? prev->out : net->input;
        float *dy = i == net->nlayers - 1 ? net->dlast : l->out;
        float *dx = prev && net->nodes[i - 1].need ? prev->out : NULL;
        GOPT_TRY(gopt__layer_backward_raw(l, xin, dy, dx, n));
        if (net->bn_sync) GOPT_TRY(gopt__net_take_bn_status(l));
    }
    return GOPT_OK;
}

void gopt__net_mark_need(gopt_net *net) {
    for (int i = 0; i < net->nlayers; i++) {
        const gopt__node *nd = &net->nodes[i];
        int need = 0; /* a tensor of its own that trains (gopt_net_freeze, gopt_params_set_frozen) */
        for (int t = nd->p_first; t < nd->p_end && !need; t++) need = !gopt_params_is_frozen(net->params, t);
        need = need && !net->layers[i]->frozen;
        for (int j = 0; j < nd->ninputs && !need; j++) need = nd->inputs[j] >= 0 && net->nodes[nd->inputs[j]].need;
        net->nodes[i].need = need;
    }
}

const float *gopt__net_grad(const gopt_net *net, int i) {
    if (!net || i < 0 || i >= net->nlayers || !net->backward_done || !net->nodes[i].need) return NULL;
    if (i == net->nlayers - 1) return net->dlast;
    return net->graph ? net->nodes[i].grad : net->layers[i]->out;
}

void gopt_net_set_timing(gopt_net *net, int on) {
    if (net) net->timing_on = on ? 1 : 0;
}
void gopt_net_timing_get(const gopt_net *net, gopt_net_timing *out) {
    if (!net || !out) return;
    for (int t = 0; t < GOPT_LAYER_TYPE_COUNT; t++) {
        out->forward_s[t] = net->timer[t];
        out->backward_s[t] = net->timer[GOPT_LAYER_TYPE_COUNT + t];
        out->calls[t] = net->calls[t];
    }
}
void gopt_net_timing_reset(gopt_net *net) {
    if (!net) return;
    memset(net->timer, 0, sizeof net->timer);
    memset(net->calls, 0, sizeof net->calls);
}
double gopt_net_forward_flops(const gopt_net *net) {
    double f = 0.0;
    for (int i = 0; net && i < net->nlayers; i++) f += gopt__layer_flops(net->layers[i]);
    return f;
}

/* ---- state: BN running statistics and the layers' random streams ---------------------------
 * "GNS2": magic, batchnorm count, per batchnorm {C, running_mean[C], running_var[C]}, then
 * the count of layers with a random stream (dropout, dropout between recurrent layers) and
 * each stream's four words, so a resumed run draws the same masks. "GNS1" blobs (before the
 * streams were saved) still load and leave the streams as they are. */
#define NET_MAGIC_V1 GOPT__MAGIC('G', 'N', 'S', '1')
#define NET_MAGIC GOPT__MAGIC('G', 'N', 'S', '2')

static int collect_bns(const gopt_net *net, gopt__bn **bns, int max) {
    int n = 0;
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++) {
            if (bns && n < max) bns[n] = b3[j];
            n++;
        }
    }
    return n;
}

static gopt_rng *layer_rng(gopt_layer *l) { return l->vt->rng ? l->vt->rng(l) : NULL; }

static int count_rngs(const gopt_net *net) {
    int n = 0;
    for (int i = 0; i < net->nlayers; i++) n += layer_rng(net->layers[i]) != NULL;
    return n;
}

size_t gopt_net_state_size(const gopt_net *net) {
    if (!net) return 0;
    size_t size = 8;
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++) size += 4 + 8 * (size_t)b3[j]->C;
    }
    return size + 4 + sizeof(gopt_rng) * (size_t)count_rngs(net) + gopt__layers_state_size(net->layers, net->nlayers);
}

gopt_status gopt_net_state_save(const gopt_net *net, void *buf, size_t size) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(buf);
    size_t need = gopt_net_state_size(net);
    if (size < need) return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, state needs %zu", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    int nbn = collect_bns(net, NULL, 0);
    gopt__put_u32(&w, NET_MAGIC);
    gopt__put_u32(&w, (uint32_t)nbn);
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++) {
            gopt__put_u32(&w, (uint32_t)b3[j]->C);
            gopt__put(&w, b3[j]->running_mean, sizeof(float) * (size_t)b3[j]->C);
            gopt__put(&w, b3[j]->running_var, sizeof(float) * (size_t)b3[j]->C);
        }
    }
    gopt__put_u32(&w, (uint32_t)count_rngs(net));
    for (int i = 0; i < net->nlayers; i++) {
        const gopt_rng *rng = layer_rng(net->layers[i]);
        for (int j = 0; rng && j < 4; j++) gopt__put_u64(&w, rng->s[j]);
    }
    GOPT_TRY(gopt__layers_state_save(net->layers, net->nlayers, &w)); /* custom layers' state, last */
    return w.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_net_state_load(gopt_net *net, const void *buf, size_t size) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(buf);
    gopt__rcur r = gopt__rcur_make(buf, size);
    uint32_t magic = gopt__get_u32(&r), count = gopt__get_u32(&r);
    if (!r.ok || (magic != NET_MAGIC && magic != NET_MAGIC_V1))
        return GOPT_FAIL(GOPT_EFORMAT, "net state: bad magic or truncated header");
    const int with_rngs = magic == NET_MAGIC;
    int nbn = collect_bns(net, NULL, 0);
    if ((int)count != nbn || count > 100000)
        return GOPT_FAIL(GOPT_EFORMAT, "net state: %u batchnorm layers, the net has %d", count, nbn);
    /* validate everything before changing anything */
    gopt__rcur v = r;
    int idx = 0;
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++, idx++) {
            uint32_t c = gopt__get_u32(&v);
            if (!v.ok || c != (uint32_t)b3[j]->C)
                return GOPT_FAIL(GOPT_EFORMAT, "net state: batchnorm %d (layer %d) has %u channels, expected %d", idx, i,
                                 c, b3[j]->C);
            if ((size_t)(v.end - v.p) < 8 * (size_t)c)
                return GOPT_FAIL(GOPT_EFORMAT, "net state: truncated in batchnorm %d (%zu bytes, expected %zu)", idx,
                                 size, gopt_net_state_size(net));
            v.p += 8 * (size_t)c;
        }
    }
    if (with_rngs) {
        uint32_t nrng = gopt__get_u32(&v);
        if (!v.ok)
            return GOPT_FAIL(GOPT_EFORMAT, "net state: truncated before the random streams (%zu bytes, expected %zu)",
                             size, gopt_net_state_size(net));
        if (nrng != (uint32_t)count_rngs(net))
            return GOPT_FAIL(GOPT_EFORMAT, "net state: %u layers with a random stream (dropout), the net has %d", nrng,
                             count_rngs(net));
        if ((size_t)(v.end - v.p) < sizeof(gopt_rng) * (size_t)nrng)
            return GOPT_FAIL(GOPT_EFORMAT, "net state: truncated in the random streams (%zu bytes, expected %zu)", size,
                             gopt_net_state_size(net));
        v.p += sizeof(gopt_rng) * (size_t)nrng;
    }
    gopt__rcur own = v; /* custom layers' state: checked here, loaded first below */
    GOPT_TRY(gopt__layers_state_check(net->layers, net->nlayers, &v));
    if (v.p != v.end)
        return GOPT_FAIL(GOPT_EFORMAT, "net state: %zu bytes, expected %zu", size, gopt_net_state_size(net));
    GOPT_TRY(gopt__layers_state_load(net->layers, net->nlayers, &own)); /* may refuse: before anything changes */
    for (int i = 0; i < net->nlayers; i++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(net->layers[i], b3);
        for (int j = 0; j < k; j++) {
            (void)gopt__get_u32(&r);
            gopt__get(&r, b3[j]->running_mean, sizeof(float) * (size_t)b3[j]->C);
            gopt__get(&r, b3[j]->running_var, sizeof(float) * (size_t)b3[j]->C);
        }
    }
    if (with_rngs) {
        (void)gopt__get_u32(&r);
        for (int i = 0; i < net->nlayers; i++) {
            gopt_rng *rng = layer_rng(net->layers[i]);
            for (int j = 0; rng && j < 4; j++) rng->s[j] = gopt__get_u64(&r);
        }
    }
    return GOPT_OK;
}

/* ---- BatchNorm recalibration (net.h: update_bn) ------------------------------------------ */

gopt_status gopt_net_recalibrate_bn(gopt_net *net, int64_t nbatches, gopt_net_batch_fn next, void *user) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(next);
    if (!net->built) return GOPT_FAIL(GOPT_ESTATE, "the net is not built (gopt_net_build)");
    if (nbatches < 1) return GOPT_FAIL(GOPT_EINVAL, "nbatches = %lld must be >= 1", (long long)nbatches);
    const int nbn = collect_bns(net, NULL, 0), nrng = count_rngs(net);
    if (nbn == 0) return GOPT_OK;
    gopt__bn **bns = gopt__calloc((size_t)nbn, sizeof *bns);
    float *momenta = gopt__calloc((size_t)nbn, sizeof *momenta);
    gopt_rng *streams = gopt__calloc((size_t)(nrng > 0 ? nrng : 1), sizeof *streams);
    if (!bns || !momenta || !streams) {
        gopt__free(bns);
        gopt__free(momenta);
        gopt__free(streams);
        return GOPT_FAIL(GOPT_ENOMEM, "recalibration of %d batchnorms", nbn);
    }
    collect_bns(net, bns, nbn);
    for (int i = 0, k = 0; i < net->nlayers; i++) {
        const gopt_rng *rng = layer_rng(net->layers[i]);
        if (rng) streams[k++] = *rng;
    }
    for (int j = 0; j < nbn; j++) {
        momenta[j] = bns[j]->momentum;
        gopt__bn_reset_running(bns[j]);
    }
    const int was_training = net->training;
    gopt_net_set_training(net, 1);
    gopt_status st = GOPT_OK;
    for (int64_t b = 0; b < nbatches && st == GOPT_OK; b++) {
        const float m = (float)(1.0 / (double)(b + 1)); /* momentum=None: the cumulative average */
        for (int j = 0; j < nbn; j++) bns[j]->momentum = m;
        gopt_tensor x, logits;
        memset(&x, 0, sizeof x);
        st = next(user, b, &x);
        if (st != GOPT_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", gopt_last_error());
            st = GOPT_FAIL(st, "batch %lld of %lld: %s", (long long)b, (long long)nbatches, why);
            break;
        }
        st = gopt_net_forward(net, &x, &logits);
    }
    for (int j = 0; j < nbn; j++) bns[j]->momentum = momenta[j];
    for (int i = 0, k = 0; i < net->nlayers; i++) {
        gopt_rng *rng = layer_rng(net->layers[i]);
        if (rng) *rng = streams[k++];
    }
    gopt_net_set_training(net, was_training);
    net->last_n = 0; /* no backward of these forwards */
    gopt__free(bns);
    gopt__free(momenta);
    gopt__free(streams);
    return st;
}
