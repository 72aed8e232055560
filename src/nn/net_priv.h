/* Private: the net struct and its graph (gradopt/net.h), shared by net.c (build, run, state),
 * net_graph.c (nets of any shape: add_from, forward and backward over the graph), merge.c
 * (the add and concat nodes) and net_summary.c. */
#ifndef GRADOPT_INTERNAL_NET_PRIV_H
#define GRADOPT_INTERNAL_NET_PRIV_H

#include "nn/layer.h"
#include "gradopt/net.h"

#define GOPT__NET_NAME_MAX 48 /* a layer name: 1..40 bytes (gopt_layer_create's prefix) */
#define GOPT__NET_INPUT (-1)  /* a node's input index meaning the net's input */

/* What the net knows of layer i besides the layer: its name, where it reads, which
 * parameter tensors it registered, and its output gradient buffer in a graph net. */
typedef struct gopt__node {
    char name[GOPT__NET_NAME_MAX];
    int ninputs;   /* 1, or 2+ for a merge node */
    int *inputs;   /* ninputs node indices (< i), GOPT__NET_INPUT for the net's input */
    int p_first, p_end; /* parameter tensors [p_first, p_end) of the arena */
    float *grad;   /* graph nets: d loss / d output (max_batch x out_numel), in a shared slot */
    int consumers; /* nodes reading this one's output (an input listed twice counts twice) */
    int need;      /* backward: it or something upstream has trainable parameters */
    int written;   /* graph backward: grad holds a first contribution */
} gopt__node;

struct gopt_net {
    gopt_net_config cfg;
    gopt_params *params;
    gopt_layer **layers;
    gopt__node *nodes; /* parallel to layers */
    int nlayers, capacity;
    int built;
    int graph;       /* 1: some layer reads other than the previous one (separate gradients) */
    int training;
    int64_t in_numel;
    float *ws;       /* shared workspace (im2col columns, block scratch) */
    float *input;    /* copy of the last forward's input */
    float *dlast;    /* the last layer's output gradient (the logits stay readable) */
    float *scratch;  /* graph nets: a second input gradient summed into a shared one */
    float **slots;   /* graph nets: the gradient slots the layers' grad point into */
    int nslots;
    int last_n;
    int backward_done; /* the activations of the last forward were consumed by a backward */
    int timing_on;
    int bn_sync;     /* gopt__net_set_bn_sync: batchnorm statistics summed over the processes */
    double timer[2 * GOPT_LAYER_TYPE_COUNT];
    int64_t calls[GOPT_LAYER_TYPE_COUNT];
};

/* net.c */
/* What is wrong with a new layer's name (NULL: nothing); *name NULL becomes "layer<i>" in
 * auto_name. */
const char *gopt__net_name_problem(const gopt_net *net, const char **name, char auto_name[GOPT__NET_NAME_MAX]);
/* Append layer l (created by the caller, room reserved, name checked) reading `inputs`
 * (copied); on failure (ENOMEM) l is destroyed. */
gopt_status gopt__net_append(gopt_net *net, gopt_layer *l, const char *name, const int *inputs, int ninputs,
                             int p_first);
/* Room for one more layer. */
gopt_status gopt__net_reserve(gopt_net *net);
/* The index of `name` ("input": GOPT__NET_INPUT), -2 when unknown. */
int gopt__net_lookup(const gopt_net *net, const char *name);
/* Per-sample output shape of node i (GOPT__NET_INPUT: the net's input); returns ndim. */
int gopt__net_node_shape(const gopt_net *net, int i, int64_t shape[3]);
/* The first failure of a synchronised sum in layer l's last forward or backward. */
gopt_status gopt__net_take_bn_status(gopt_layer *l);
/* d loss / d (output of layer i) after the last backward, or NULL where it was not computed
 * (tests: the input gradient of a block). In a graph net a layer's gradient slot may be
 * reused by an earlier layer's later in backward: reliable for the first layer. */
const float *gopt__net_grad(const gopt_net *net, int i);

/* net_graph.c: graph nets (net->graph) */
/* The gradient slots of a graph net: slot_of[i] for every layer but the last (-1: the
 * last), slot_floats[0..*nslots-1]; slot_of has nlayers entries, slot_floats 2 nlayers,
 * zeroed (the second half is working space). Returns the floats of all slots. */
size_t gopt__graph_plan(const gopt_net *net, int *slot_of, size_t *slot_floats, int *nslots);
/* Allocate the gradient slots and the scratch (build). */
gopt_status gopt__graph_build(gopt_net *net);
void gopt__graph_free(gopt_net *net);
/* Forward of n samples already in net->input; backward from net->dlast. */
gopt_status gopt__graph_forward(gopt_net *net, int n);
gopt_status gopt__graph_backward(gopt_net *net, int n);
/* nodes[i].need for every layer from the frozen flags and parameter ranges. */
void gopt__net_mark_need(gopt_net *net);

/* merge.c: add / concat nodes. A merge layer reads input j from what set_input gave it
 * before forward, and writes input j's gradient where set_grad says before backward
 * (dx NULL: input j needs no gradient; acc: add into dx instead of writing). */
gopt_status gopt__merge_create(gopt_layer_type kind, const int64_t (*shapes)[3], const int *ndims, int ninputs,
                               int max_batch, gopt_params *params, gopt_layer **out);
void gopt__merge_set_input(gopt_layer *l, int j, const float *x);
void gopt__merge_set_grad(gopt_layer *l, int j, float *dx, int acc);
int gopt__is_merge(const gopt_layer *l);

#endif
