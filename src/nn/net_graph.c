/* Nets of any shape (gradopt/net.h): a net where some layer reads other than the previous
 * layer, or merges several, runs here. Forward visits the layers in the order they were
 * added (every input is an earlier layer, so that order is topological) and hands each its
 * inputs' outputs. Backward keeps one gradient buffer per layer output instead of the
 * sequential net's in-place scheme, because an output read by several layers must stay
 * alive until all of them ran backward and receives the sum of their input gradients: the
 * first consumer to run backward (the one added last) writes the buffer, each later one
 * writes into a shared scratch that is then added in (merge nodes add directly). Gradient
 * buffers whose live ranges do not overlap share memory (gopt__graph_plan). */
#include "core/common.h"
#include "nn/net_priv.h"

static const float *node_out(const gopt_net *net, int j) { return j < 0 ? net->input : net->layers[j]->out; }

void gopt__graph_free(gopt_net *net) {
    for (int k = 0; net->slots && k < net->nslots; k++) gopt__aligned_free(net->slots[k]);
    gopt__free(net->slots);
    net->slots = NULL;
    net->nslots = 0;
    for (int i = 0; net->nodes && i < net->nlayers; i++) net->nodes[i].grad = NULL;
    gopt__aligned_free(net->scratch);
    net->scratch = NULL;
}

/* Gradient memory: layer i's output gradient is live from the backward of its last reader
 * (the first to run) through its own backward, so layers whose live ranges do not overlap
 * share a slot. Walking the backward order, a layer's gradient takes a free slot when its
 * first reader runs (the smallest that fits, else the largest free one, grown, else a new
 * one) and gives it back after its own backward. A chain of layers then needs two or three
 * slots instead of one buffer per layer. */
size_t gopt__graph_plan(const gopt_net *net, int *slot_of, size_t *slot_floats, int *nslots) {
    const int L = net->nlayers;
    const size_t mb = (size_t)net->cfg.max_batch;
    int ns = 0;
    for (int i = 0; i < L; i++) slot_of[i] = -1;
    int *busy = (int *)(slot_floats + L); /* the caller's second, zeroed half: slot k in use */
    for (int t = L - 1; t >= 0; t--) {
        const gopt__node *nd = &net->nodes[t];
        for (int j = 0; j < nd->ninputs; j++) {
            const int src = nd->inputs[j];
            if (src < 0 || slot_of[src] >= 0) continue;
            const size_t want = mb * (size_t)net->layers[src]->out_numel;
            int best = -1;
            for (int k = 0; k < ns; k++) {
                if (busy[k]) continue;
                if (best < 0) {
                    best = k;
                    continue;
                }
                const int fits = slot_floats[k] >= want, bfits = slot_floats[best] >= want;
                if ((fits && (!bfits || slot_floats[k] < slot_floats[best])) ||
                    (!fits && !bfits && slot_floats[k] > slot_floats[best]))
                    best = k;
            }
            if (best < 0) {
                best = ns++;
                slot_floats[best] = 0;
            }
            if (slot_floats[best] < want) slot_floats[best] = want;
            busy[best] = 1;
            slot_of[src] = best;
        }
        if (t < L - 1 && slot_of[t] >= 0) busy[slot_of[t]] = 0; /* dead after its own backward */
    }
    size_t total = 0;
    for (int k = 0; k < ns; k++) total += slot_floats[k];
    *nslots = ns;
    return total;
}

gopt_status gopt__graph_build(gopt_net *net) {
    const int L = net->nlayers;
    const size_t mb = (size_t)net->cfg.max_batch;
    gopt__graph_free(net); /* a retried build plans again */
    int *slot_of = gopt__calloc((size_t)L, sizeof *slot_of);
    size_t *floats = gopt__calloc(2 * (size_t)L, sizeof *floats);
    net->slots = gopt__calloc((size_t)L, sizeof *net->slots);
    gopt_status st = GOPT_OK;
    if (!slot_of || !floats || !net->slots) st = GOPT_FAIL(GOPT_ENOMEM, "gradient plan of %d layers", L);
    int ns = 0;
    if (st == GOPT_OK) (void)gopt__graph_plan(net, slot_of, floats, &ns);
    for (int k = 0; st == GOPT_OK && k < ns; k++) {
        net->slots[k] = gopt__aligned_alloc(floats[k] * sizeof(float));
        if (!net->slots[k]) st = GOPT_FAIL(GOPT_ENOMEM, "gradient slot of %zu floats", floats[k]);
        net->nslots = k + 1;
    }
    size_t scratch = 0;
    for (int i = 0; st == GOPT_OK && i < L - 1; i++) { /* the last layer's gradient is net->dlast */
        gopt__node *nd = &net->nodes[i];
        const size_t n = mb * (size_t)net->layers[i]->out_numel;
        if (nd->consumers > 1 && n > scratch) scratch = n;
        nd->grad = net->slots[slot_of[i]];
    }
    if (st == GOPT_OK && scratch) {
        net->scratch = gopt__aligned_alloc(scratch * sizeof(float));
        if (!net->scratch) st = GOPT_FAIL(GOPT_ENOMEM, "gradient scratch of %zu floats", scratch);
    }
    gopt__free(slot_of);
    gopt__free(floats);
    return st;
}

gopt_status gopt__graph_forward(gopt_net *net, int n) {
    for (int i = 0; i < net->nlayers; i++) {
        gopt_layer *l = net->layers[i];
        const gopt__node *nd = &net->nodes[i];
        l->timer = net->timing_on ? net->timer : NULL;
        if (gopt__is_merge(l)) {
            for (int j = 0; j < nd->ninputs; j++) gopt__merge_set_input(l, j, node_out(net, nd->inputs[j]));
            GOPT_TRY(gopt__layer_forward_raw(l, NULL, n));
        } else { /* a custom layer's callback may fail */
            GOPT_TRY(gopt__layer_forward_raw(l, node_out(net, nd->inputs[0]), n));
        }
        if (net->timing_on) net->calls[l->cfg.type]++;
        if (net->bn_sync) GOPT_TRY(gopt__net_take_bn_status(l));
    }
    return GOPT_OK;
}

/* g += s, charged to the add type's backward time (an implicit sum node) */
static void accumulate(gopt_net *net, float *g, const float *s, int64_t total) {
    const double t0 = net->timing_on ? gopt__now() : 0.0;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > 16384)
    for (int64_t i = 0; i < total; i++) g[i] += s[i];
    if (net->timing_on) net->timer[GOPT_LAYER_TYPE_COUNT + GOPT_LAYER_ADD] += gopt__now() - t0;
}

gopt_status gopt__graph_backward(gopt_net *net, int n) {
    const int last = net->nlayers - 1;
    for (int i = 0; i < net->nlayers; i++) net->nodes[i].written = 0;
    for (int i = last; i >= 0; i--) {
        if (!net->nodes[i].need) continue; /* nothing trainable here or upstream */
        gopt_layer *l = net->layers[i];
        const gopt__node *nd = &net->nodes[i];
        float *dy = i == last ? net->dlast : nd->grad;
        l->timer = net->timing_on ? net->timer : NULL;
        if (gopt__is_merge(l)) {
            for (int j = 0; j < nd->ninputs; j++) {
                const int src = nd->inputs[j];
                if (src < 0 || !net->nodes[src].need) {
                    gopt__merge_set_grad(l, j, NULL, 0);
                    continue;
                }
                gopt__merge_set_grad(l, j, net->nodes[src].grad, net->nodes[src].written);
                net->nodes[src].written = 1;
            }
            GOPT_TRY(gopt__layer_backward_raw(l, NULL, dy, NULL, n));
        } else {
            const int src = nd->inputs[0];
            float *dx = NULL;
            int sum = 0;
            if (src >= 0 && net->nodes[src].need) {
                sum = net->nodes[src].written;
                dx = sum ? net->scratch : net->nodes[src].grad;
                net->nodes[src].written = 1;
            }
            GOPT_TRY(gopt__layer_backward_raw(l, node_out(net, src), dy, dx, n));
            if (sum) accumulate(net, net->nodes[src].grad, net->scratch, (int64_t)n * net->layers[src]->out_numel);
        }
        if (net->bn_sync) GOPT_TRY(gopt__net_take_bn_status(l));
    }
    return GOPT_OK;
}
