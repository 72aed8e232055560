/* The fuzz targets' object set (see objects.h). */
#include <string.h>

#include "objects.h"

enum { K_PARAMS, K_NET, K_OPTIM, K_SCHED, K_MONITOR, K_ACCUM, K_LOADER, K_TLOADER, K_VOCAB, K_AVERAGE };

/* Typed state functions behind the generic signatures (no calls through cast pointers). */
#define FZ_WRAP(X, T)                                                                                        \
    static size_t X##_size(const void *o) { return gopt_##X##_state_size((const T *)o); }                    \
    static gopt_status X##_save(const void *o, void *b, size_t n) { return gopt_##X##_state_save((const T *)o, b, n); } \
    static gopt_status X##_load(void *o, const void *b, size_t n) { return gopt_##X##_state_load((T *)o, b, n); }
FZ_WRAP(params, gopt_params)
FZ_WRAP(net, gopt_net)
FZ_WRAP(optim, gopt_optim)
FZ_WRAP(sched, gopt_sched)
FZ_WRAP(monitor, gopt_monitor)
FZ_WRAP(accum, gopt_accum)
FZ_WRAP(loader, gopt_loader)
FZ_WRAP(text_loader, gopt_text_loader)
FZ_WRAP(vocab, gopt_vocab)
FZ_WRAP(average, gopt_average) /* issue 18 (sf) */

#define BATCH 4
#define SEQ 8

static struct {
    int ready;
    gopt_net *net;
    gopt_params *params;
    gopt_dataset *ds;
    gopt_text *text;
    gopt_vocab vocab;
    fz_obj objs[FZ_MAX_OBJS];
    int n;
    unsigned char *scratch;
    size_t scratch_size;
    float x[BATCH * 3 * 8 * 8], logits[BATCH * 10], images[BATCH * 3 * 32 * 32];
    int32_t labels[BATCH], inputs[2 * SEQ], targets[2 * SEQ];
} W;

#define OK(call) FZ_CHECK((call) == GOPT_OK, "%s", #call)

static void add_obj(const char *name, void *obj, int kind, fz_size_fn size, fz_save_fn save, fz_load_fn load) {
    FZ_CHECK(W.n < FZ_MAX_OBJS, "more than FZ_MAX_OBJS objects");
    fz_obj *o = &W.objs[W.n++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->obj = obj;
    o->kind = kind;
    o->size = size;
    o->save = save;
    o->load = load;
    o->partner = -1;
}
#define ADD(name, obj, kind, X) add_obj(name, obj, kind, X##_size, X##_save, X##_load)

static void fill_grads(void) {
    float *g = gopt_params_grads(W.params);
    int64_t n = gopt_params_numel(W.params);
    for (int64_t i = 0; i < n; i++) g[i] = 0.01f * (float)((i * 7919) % 23 - 11);
}

static double lambda_fn(void *user, int group, int64_t epoch) {
    (void)user;
    (void)group;
    return 1.0 / (1.0 + (double)epoch);
}

static void add_optims(void) {
    static const struct {
        gopt_algo algo;
        const char *variant;
    } list[] = {{GOPT_ALGO_SGD, ""},      {GOPT_ALGO_SGD, "nesterov"}, {GOPT_ALGO_SGD, "lookahead"},
                {GOPT_ALGO_ADAGRAD, ""},  {GOPT_ALGO_RMSPROP, ""},     {GOPT_ALGO_RMSPROP, "centered"},
                {GOPT_ALGO_ADAM, ""},     {GOPT_ALGO_ADAM, "amsgrad"}, {GOPT_ALGO_ADAMW, ""},
                {GOPT_ALGO_ADAMW, "amsgrad"}, {GOPT_ALGO_ADADELTA, ""}, {GOPT_ALGO_NADAM, ""},
                {GOPT_ALGO_RADAM, ""},    {GOPT_ALGO_ADAMAX, ""},      {GOPT_ALGO_LION, ""},
                {GOPT_ALGO_LAMB, ""},     {GOPT_ALGO_ADAM, "range"},
                /* issue 18 (sf): Schedule-Free (one saved in eval mode), L1 on LAMB's own pass */
                {GOPT_ALGO_ADAMW_SCHEDULEFREE, ""}, {GOPT_ALGO_SGD_SCHEDULEFREE, "eval"}, {GOPT_ALGO_LAMB, "l1"},
                /* issue 18 (muon): Muon (its own config fields in the group records), Adafactor
                 * (its factors after the buffers) */
                {GOPT_ALGO_MUON, ""}, {GOPT_ALGO_ADAFACTOR, ""}};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        gopt_optim_config c = gopt_optim_config_default(list[i].algo);
        const char *v = list[i].variant;
        if (!strcmp(v, "nesterov")) {
            c.momentum = 0.9f;
            c.nesterov = 1;
        } else if (!strcmp(v, "lookahead")) {
            c.momentum = 0.9f;
            c.lookahead_k = 3;
            c.lookahead_alpha = 0.5f;
        } else if (!strcmp(v, "centered")) {
            c.centered = 1;
            c.momentum = 0.5f;
        } else if (!strcmp(v, "amsgrad")) {
            c.amsgrad = 1;
        } else if (!strcmp(v, "l1")) {
            c.l1 = 1e-3f;
        }
        c.weight_decay = 0.01f;
        gopt_optim *o;
        if (!strcmp(v, "range"))
            OK(gopt_optim_create_range(&c, W.params, 16, 64, &o));
        else
            OK(gopt_optim_create(&c, W.params, &o));
        for (int s = 0; s < 4; s++) OK(gopt_optim_step(o));
        if (!strcmp(v, "eval")) { /* saved in eval mode: the arena holds x */
            OK(gopt_optim_eval(o));
            OK(gopt_optim_train(o));
            OK(gopt_optim_eval(o));
        }
        char name[48];
        snprintf(name, sizeof name, "optim:%s%s%s", gopt_algo_name(list[i].algo), *v ? "-" : "", v);
        ADD(name, o, K_OPTIM, optim);
    }
}

static void add_scheds(void) {
    for (int k = 0; k < GOPT_SCHED_KIND_COUNT; k++) {
        gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
        oc.momentum = 0.9f;
        gopt_optim *o;
        OK(gopt_optim_create(&oc, W.params, &o));
        gopt_sched_config c = gopt_sched_config_default((gopt_sched_kind)k), children[2];
        if (k == GOPT_SCHED_MULTISTEP) {
            c.milestones[0] = 2;
            c.milestones[1] = 4;
            c.n_milestones = 2;
        } else if (k == GOPT_SCHED_LAMBDA) {
            c.lr_lambda = lambda_fn;
        } else if (k == GOPT_SCHED_SEQUENTIAL || k == GOPT_SCHED_CHAINED) {
            children[0] = gopt_sched_config_default(k == GOPT_SCHED_SEQUENTIAL ? GOPT_SCHED_LINEAR : GOPT_SCHED_STEP);
            children[1] = gopt_sched_config_default(k == GOPT_SCHED_SEQUENTIAL ? GOPT_SCHED_COSINE
                                                                               : GOPT_SCHED_EXPONENTIAL);
            children[1].gamma = 0.9;
            c.children = children;
            c.n_children = 2;
            if (k == GOPT_SCHED_SEQUENTIAL) {
                c.milestones[0] = 3;
                c.n_milestones = 1;
            }
        }
        gopt_sched *s;
        OK(gopt_sched_create(&c, o, &s));
        for (int t = 0; t < 5; t++) OK(gopt_sched_needs_metric(s) ? gopt_sched_step_metric(s, 1.0 / (1 + t)) : gopt_sched_step(s));
        char name[48];
        snprintf(name, sizeof name, "optim:for-%s", gopt_sched_kind_name((gopt_sched_kind)k));
        ADD(name, o, K_OPTIM, optim);
        snprintf(name, sizeof name, "sched:%s", gopt_sched_kind_name((gopt_sched_kind)k));
        ADD(name, s, K_SCHED, sched);
        W.objs[W.n - 1].partner = W.n - 2;
    }
}

static void world_init(void) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = BATCH;
    nc.in_ndim = 3;
    nc.in_shape[0] = 3;
    nc.in_shape[1] = 8;
    nc.in_shape[2] = 8;
    nc.seed = 3;
    OK(gopt_net_create(&nc, &W.net));
    gopt_layer_config layers[] = {gopt_layer_conv2d(3, 4, 3, 1, 1, 0), gopt_layer_batchnorm2d(4, 1),
                                  gopt_layer_maxpool2d(2, 2, 0), gopt_layer_dropout(0.25f, 7),
                                  gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL), gopt_layer_linear(4, 10, 1)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) OK(gopt_net_add(W.net, &layers[i], NULL));
    OK(gopt_net_build(W.net));
    W.params = gopt_net_params(W.net);
    for (size_t i = 0; i < sizeof W.x / sizeof W.x[0]; i++) W.x[i] = (float)((i * 31) % 17) / 17.0f - 0.5f;
    const int64_t xs[4] = {BATCH, 3, 8, 8}, ls[2] = {BATCH, 10};
    gopt_tensor x, y;
    OK(gopt_tensor_view(W.x, 4, xs, &x));
    OK(gopt_tensor_view(W.logits, 2, ls, &y));
    OK(gopt_net_forward(W.net, &x, &y)); /* moves the running statistics and the dropout stream */
    fill_grads();
    ADD("params", W.params, K_PARAMS, params);
    ADD("net", W.net, K_NET, net);
    add_optims();
    add_scheds();

    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.layer_history = 4;
    mc.loss_window = 4;
    mc.loss_min_samples = 2;
    mc.history = 8;
    mc.explosion_window = 3;
    gopt_monitor *m;
    OK(gopt_monitor_create(&mc, W.params, NULL, &m));
    for (int t = 0; t < 6; t++) {
        gopt_monitor_report rep;
        OK(gopt_monitor_before_step(m, 2.0 - 0.1 * t, &rep));
        if (rep.apply) OK(gopt_monitor_after_step(m));
    }
    ADD("monitor", m, K_MONITOR, monitor);

    gopt_accum *a;
    OK(gopt_accum_create(4, &a));
    int step_now;
    OK(gopt_accum_add(a, W.params, &step_now));
    ADD("accum", a, K_ACCUM, accum);

    OK(gopt_dataset_synthetic(10, 10, 5, &W.ds));
    for (int r = 0; r < 2; r++) {
        gopt_loader_config lc = gopt_loader_config_default();
        lc.batch_size = BATCH;
        lc.augment = 1;
        lc.seed = 9;
        lc.num_replicas = 1 + r;
        lc.rank = r;
        lc.drop_last = r;
        gopt_loader *l;
        OK(gopt_loader_create(&lc, W.ds, &l));
        int n;
        OK(gopt_loader_next_into(l, W.images, W.labels, &n));
        ADD(r ? "loader:rank1of2" : "loader", l, K_LOADER, loader);
    }

    static const char corpus[] =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n";
    OK(gopt_text_from_memory(corpus, sizeof corpus - 1, "corpus", NULL, &W.text));
    for (int o = 0; o < 2; o++) {
        gopt_text_loader_config tc = gopt_text_loader_config_default();
        tc.batch_size = 2;
        tc.seq_len = SEQ;
        tc.order = o ? GOPT_TEXT_STREAMS : GOPT_TEXT_RANDOM;
        tc.cover_all = o;
        tc.seed = 4;
        gopt_text_loader *l;
        OK(gopt_text_loader_create(&tc, W.text, &l));
        int n;
        OK(gopt_text_loader_next(l, W.inputs, W.targets, &n, NULL));
        ADD(o ? "text_loader:streams" : "text_loader:random", l, K_TLOADER, text_loader);
    }
    W.vocab = *gopt_text_vocab(W.text);
    ADD("vocab", &W.vocab, K_VOCAB, vocab);

    for (int k = 0; k < 2; k++) { /* issue 18 (sf): weight averages */
        gopt_average_config ac = gopt_average_config_default(k ? GOPT_AVERAGE_EMA : GOPT_AVERAGE_SWA);
        gopt_average *av;
        OK(gopt_average_create(&ac, W.params, &av));
        for (int u = 0; u < 3; u++) OK(gopt_average_update(av));
        ADD(k ? "average:ema" : "average:swa", av, K_AVERAGE, average);
    }

    for (int i = 0; i < W.n; i++) {
        fz_obj *o = &W.objs[i];
        o->pristine_size = o->size(o->obj);
        o->pristine = malloc(o->pristine_size ? o->pristine_size : 1);
        FZ_CHECK(o->pristine, "out of memory");
        OK(o->save(o->obj, o->pristine, o->pristine_size));
        if (o->pristine_size > W.scratch_size) W.scratch_size = o->pristine_size;
    }
    W.scratch = malloc(W.scratch_size);
    FZ_CHECK(W.scratch, "out of memory");
    W.ready = 1;
}

int fz_obj_count(void) {
    if (!W.ready) world_init();
    return W.n;
}

const fz_obj *fz_obj_get(int i) {
    if (!W.ready) world_init();
    return i >= 0 && i < W.n ? &W.objs[i] : NULL;
}

/* Object i holds exactly its original state. */
static void check_pristine(int i, const char *after) {
    fz_obj *o = &W.objs[i];
    size_t n = o->size(o->obj);
    FZ_CHECK(n == o->pristine_size, "%s: state size changed from %zu to %zu after %s", o->name, o->pristine_size, n,
             after);
    FZ_CHECK(o->save(o->obj, W.scratch, n) == GOPT_OK, "%s: save failed after %s", o->name, after);
    FZ_CHECK(memcmp(W.scratch, o->pristine, n) == 0, "%s: state changed by %s", o->name, after);
}

/* Exercise a freshly loaded object: it must work (its calls may refuse, never crash). */
static void use(fz_obj *o) {
    switch (o->kind) {
    case K_OPTIM:
        (void)gopt_optim_step(o->obj);
        break;
    case K_AVERAGE: /* refused while swapped; the arena is not changed */
        (void)gopt_average_update(o->obj);
        break;
    case K_SCHED:
        (void)(gopt_sched_needs_metric(o->obj) ? gopt_sched_step_metric(o->obj, 0.5) : gopt_sched_step(o->obj));
        (void)gopt_sched_get_lr(o->obj, 0);
        break;
    case K_MONITOR: {
        gopt_monitor_report rep;
        (void)gopt_monitor_check_input(o->obj, W.x, sizeof W.x / sizeof W.x[0]);
        if (gopt_monitor_before_step(o->obj, 1.0, &rep) == GOPT_OK && rep.apply) (void)gopt_monitor_after_step(o->obj);
        double hist[16];
        int n;
        (void)gopt_monitor_grad_norm_history(o->obj, hist, 16, &n);
        for (int l = 0; l < gopt_monitor_layer_count(o->obj); l++)
            (void)gopt_monitor_layer_history(o->obj, l, hist, 16, &n);
        break;
    }
    case K_ACCUM: {
        int step_now;
        (void)gopt_accum_add(o->obj, W.params, &step_now);
        break;
    }
    case K_LOADER:
        for (int k = 0; k < 3; k++) {
            int n;
            if (gopt_loader_next_into(o->obj, W.images, W.labels, &n) != GOPT_OK || n == 0) break;
        }
        break;
    case K_TLOADER:
        for (int k = 0; k < 3; k++) {
            int n;
            if (gopt_text_loader_next(o->obj, W.inputs, W.targets, &n, NULL) != GOPT_OK || n == 0) break;
        }
        break;
    case K_VOCAB: {
        const gopt_vocab *v = o->obj;
        int32_t ids[GOPT_VOCAB_MAX];
        uint8_t bytes[GOPT_VOCAB_MAX];
        for (int k = 0; k < v->size; k++) ids[k] = k;
        FZ_CHECK(gopt_vocab_decode(v, ids, (size_t)v->size, bytes) == GOPT_OK, "a loaded vocabulary cannot decode");
        FZ_CHECK(gopt_vocab_encode(v, bytes, (size_t)v->size, ids) == GOPT_OK, "a loaded vocabulary cannot encode");
        for (int k = 0; k < v->size; k++) FZ_CHECK(ids[k] == k, "vocabulary round trip broken at %d", k);
        break;
    }
    case K_NET: {
        const int64_t xs[4] = {BATCH, 3, 8, 8}, ls[2] = {BATCH, 10};
        gopt_tensor x, y;
        OK(gopt_tensor_view(W.x, 4, xs, &x));
        OK(gopt_tensor_view(W.logits, 2, ls, &y));
        gopt_net_set_training(W.net, 0);
        (void)gopt_net_forward(W.net, &x, &y);
        gopt_net_set_training(W.net, 1);
        break;
    }
    default:
        break;
    }
}

void fz_try_load(int i, const void *data, size_t size, int check_all) {
    if (!W.ready) world_init();
    fz_obj *o = &W.objs[i];
    gopt_clear_error();
    gopt_status s = o->load(o->obj, data, size);
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        if (check_all)
            for (int k = 0; k < W.n; k++) check_pristine(k, o->name);
        else
            check_pristine(i, "a failed load");
        return;
    }
    /* Accepted: the same bytes must come back out (the blob is the whole state), the object
     * must work, and then everything goes back to the original state. */
    size_t n = o->size(o->obj);
    unsigned char *again = malloc(n ? n : 1);
    FZ_CHECK(again, "out of memory");
    FZ_CHECK(o->save(o->obj, again, n) == GOPT_OK, "%s: an accepted state does not save", o->name);
    FZ_CHECK(o->load(o->obj, again, n) == GOPT_OK, "%s: an accepted state does not load again once saved: %s",
             o->name, gopt_last_error());
    free(again);
    use(o);
    const int restore[4] = {i, o->partner, 0 /* params */, 1 /* net */};
    for (int k = 0; k < 4; k++) {
        if (restore[k] < 0) continue;
        fz_obj *r = &W.objs[restore[k]];
        FZ_CHECK(r->load(r->obj, r->pristine, r->pristine_size) == GOPT_OK, "%s: restoring the original state failed",
                 r->name);
    }
    fill_grads();
}
