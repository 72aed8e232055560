/* gopt_net_summary (gradopt/net.h): a Keras model.summary() / torchinfo-style table. */
#include <stdarg.h>
#include <stdio.h>

#include "core/common.h"
#include "nn/net_priv.h"
#include "gradopt/custom_layer.h"

typedef struct out_text {
    char *buf;
    size_t size, len; /* len: the whole text's length so far, written or not */
} out_text;

static void put(out_text *o, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    for (int i = 0; i < n; i++, o->len++)
        if (o->len + 1 < o->size) o->buf[o->len] = line[i];
    if (o->size) o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *b, size_t size, int64_t v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0 && o + 1 < size) b[o++] = '-';
    for (int i = 0; i < n && o + 1 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 1 < size) b[o++] = ',';
        if (o + 1 < size) b[o++] = digits[i];
    }
    b[o] = '\0';
    return b;
}

/* Layer i's parameter count; *frozen gets the part in frozen tensors (gopt_params_set_frozen,
 * gopt_net_freeze). */
static int64_t layer_params(const gopt_net *net, int i, int64_t *frozen) {
    int64_t total = 0;
    *frozen = 0;
    for (int t = net->nodes[i].p_first; t < net->nodes[i].p_end; t++) {
        gopt_param_info pi;
        if (gopt_params_info(net->params, t, &pi) != GOPT_OK) continue;
        total += pi.value.numel;
        if (gopt_params_is_frozen(net->params, t)) *frozen += pi.value.numel;
    }
    return total;
}

/* "a,b" of the node's inputs when it does not read just the previous layer, else "" */
static void inputs_text(const gopt_net *net, int i, char *b, size_t size) {
    const gopt__node *nd = &net->nodes[i];
    b[0] = '\0';
    if (nd->ninputs == 1 && nd->inputs[0] == i - 1) return;
    size_t o = 0;
    for (int j = 0; j < nd->ninputs && o + 1 < size; j++) {
        const char *nm = nd->inputs[j] < 0 ? "input" : net->nodes[nd->inputs[j]].name;
        int w = snprintf(b + o, size - o, "%s%s", j ? "," : "", nm);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (o + 1 >= size && size > 4) memcpy(b + size - 4, "...", 4);
}

static int is_graph(const gopt_net *net) { /* as gopt_net_build decides, also before it */
    for (int i = 0; i < net->nlayers; i++)
        if (net->nodes[i].ninputs != 1 || net->nodes[i].inputs[0] != i - 1) return 1;
    return 0;
}

/* the gradient slots and scratch a graph net allocates at build (0 if out of memory) */
static size_t graph_grad_floats(const gopt_net *net) {
    const int L = net->nlayers;
    int *slot_of = gopt__calloc((size_t)L, sizeof *slot_of);
    size_t *floats = gopt__calloc(2 * (size_t)L, sizeof *floats);
    size_t total = 0, scratch = 0;
    int ns = 0;
    if (slot_of && floats) total = gopt__graph_plan(net, slot_of, floats, &ns);
    for (int i = 0; i < L - 1; i++) {
        const size_t n = (size_t)net->cfg.max_batch * (size_t)net->layers[i]->out_numel;
        if (net->nodes[i].consumers > 1 && n > scratch) scratch = n;
    }
    gopt__free(slot_of);
    gopt__free(floats);
    return total + scratch;
}

size_t gopt_net_summary(const gopt_net *net, char *buf, size_t size) {
    out_text o = {buf, buf ? size : 0, 0};
    if (o.size) buf[0] = '\0';
    if (!net) return 0;
    const int graph = is_graph(net);
    int wn = 10, wi = 6; /* column widths: name, inputs */
    char in[160], shape[64], p[32], f[32];
    for (int i = 0; i < net->nlayers; i++) {
        int len = (int)strlen(net->nodes[i].name);
        if (len > wn) wn = len;
        inputs_text(net, i, in, sizeof in);
        if ((int)strlen(in) > wi) wi = (int)strlen(in);
    }
    gopt__shape_fmt(shape, sizeof shape, "N", net->cfg.in_ndim, net->cfg.in_shape);
    put(&o, "Net: %d layers, input %s, max_batch %d%s\n", net->nlayers, shape, net->cfg.max_batch,
        graph ? ", graph" : "");
    const int width = wn + 16 + 18 + wi + 16 + 16 + 5;
    char rule[256];
    int rw = width < (int)sizeof rule - 1 ? width : (int)sizeof rule - 1;
    memset(rule, '-', (size_t)rw);
    rule[rw] = '\0';
    put(&o, "%s\n", rule);
    put(&o, "%-*s %-15s %-17s %-*s %15s %15s\n", wn, "Layer", "Type", "Output shape", wi, "Inputs", "Params", "FLOPs");
    put(&o, "%s\n", rule);
    int64_t total = 0, frozen = 0;
    double flops = 0.0;
    size_t act = 0;
    const size_t mb = (size_t)net->cfg.max_batch;
    for (int i = 0; i < net->nlayers; i++) {
        const gopt_layer *l = net->layers[i];
        int64_t nf;
        const int64_t np = layer_params(net, i, &nf);
        const double fl = gopt__layer_flops(l);
        total += np;
        frozen += nf;
        flops += fl;
        if (!(l->vt->flags & GOPT__VT_OUT_ALIASES_IN) && !l->recompute) act += mb * (size_t)l->out_numel;
        gopt__shape_fmt(shape, sizeof shape, "N", l->out_ndim, l->out_shape);
        inputs_text(net, i, in, sizeof in);
        grouped(p, sizeof p, np);
        if (nf > 0) snprintf(p + strlen(p), sizeof p - strlen(p), nf == np ? " (F)" : " (part F)");
        put(&o, "%-*s %-15s %-17s %-*s %15s %15s\n", wn, net->nodes[i].name, gopt_layer_label(l), shape,
            wi, in, p, grouped(f, sizeof f, (int64_t)fl));
    }
    if (graph) act += graph_grad_floats(net);
    put(&o, "%s\n", rule);
    put(&o, "Total params: %s\n", grouped(p, sizeof p, total));
    put(&o, "Trainable params: %s\n", grouped(p, sizeof p, total - frozen));
    put(&o, "Frozen params: %s\n", grouped(p, sizeof p, frozen));
    put(&o, "Forward FLOPs per sample: %s\n", grouped(f, sizeof f, (int64_t)flops));
    const size_t bytes = act * sizeof(float);
    put(&o, "Activation memory at max_batch %d: %s bytes (%.2f MiB)%s\n", net->cfg.max_batch,
        grouped(p, sizeof p, (int64_t)bytes), (double)bytes / (1024.0 * 1024.0),
        graph ? ", outputs and their gradients" : ", layer outputs");
    return o.len;
}
