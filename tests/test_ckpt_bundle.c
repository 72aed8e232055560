#define _POSIX_C_SOURCE 200809L
/* One-call checkpoints and weights-only files (gradopt/checkpoint.h), .npz import
 * (gradopt/interop.h): a run of a small net with BatchNorm and dropout under AdamW, a cosine
 * schedule, a monitor and a shuffling loader resumes bit-exactly from gopt_checkpoint_load
 * into objects built afresh; every refused load (missing file, truncated file, missing
 * section, another kind, another architecture, a refusal after other sections loaded)
 * leaves every object as it was; weights files round-trip and refuse mismatches by name;
 * .npz files written by gopt_net_save_npz and by numpy.savez import exactly, malformed
 * ones are refused.
 *
 * With arguments `--numpy PYTHON DIR` it runs only the numpy test (exit 77 when PYTHON
 * lacks numpy). */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h" /* gopt__fail: the user objects below leave a detail as library code does */
#include "testutil.h"

#define NS 64   /* samples */
#define BATCH 16
#define CLASSES 10

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[64][512]; /* a ring: a path stays valid for 63 more calls */
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* ---- a training run -------------------------------------------------------------------- */

typedef struct run {
    gopt_dataset *ds;
    gopt_loader *ld;
    gopt_net *net;
    gopt_optim *opt;
    gopt_sched *sch;
    gopt_monitor *mon;
    gopt_average *avg; /* an EMA of the weights */
    gopt_accum *acc;   /* two micro-batches per optimizer step */
    gopt_rng rng;  /* the user's own: input noise */
    int64_t epoch, step;
    int best;      /* an int counter */
    char note[64]; /* loaded metadata */
    float *x, *dlog;
} run;

/* wide: the architecture variant (a wider hidden layer); extra: one more linear layer */
static gopt_net *make_net(uint64_t seed, int wide, int extra) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = BATCH;
    c.seed = seed;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&c, &net));
    const int h = wide ? 12 : 8;
    gopt_layer_config conv = gopt_layer_conv2d(3, 4, 3, 4, 1, 0), bn = gopt_layer_batchnorm2d(4, 1),
                      pool = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL), fc1 = gopt_layer_linear(4, h, 1),
                      bn1 = gopt_layer_batchnorm1d(h), relu = gopt_layer_config_default(GOPT_LAYER_RELU),
                      drop = gopt_layer_dropout(0.25f, 5), fc2 = gopt_layer_linear(h, CLASSES, 1),
                      fc3 = gopt_layer_linear(CLASSES, CLASSES, 1);
    assert_ok(gopt_net_add(net, &conv, "conv"));
    assert_ok(gopt_net_add(net, &bn, "bn"));
    assert_ok(gopt_net_add(net, &pool, NULL));
    assert_ok(gopt_net_add(net, &fc1, "fc1"));
    assert_ok(gopt_net_add(net, &bn1, "bn1"));
    assert_ok(gopt_net_add(net, &relu, NULL));
    assert_ok(gopt_net_add(net, &drop, "drop"));
    assert_ok(gopt_net_add(net, &fc2, "fc2"));
    if (extra) assert_ok(gopt_net_add(net, &fc3, "fc3"));
    assert_ok(gopt_net_build(net));
    return net;
}

static int use_prefetch; /* the loader's prefetch thread */

static void run_make(run *r, uint64_t seed, int wide) {
    memset(r, 0, sizeof *r);
    assert_ok(gopt_dataset_synthetic(NS, CLASSES, 11, &r->ds));
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = BATCH;
    lc.seed = 7;
    lc.augment = 1;
    lc.prefetch = use_prefetch;
    assert_ok(gopt_loader_create(&lc, r->ds, &r->ld));
    r->net = make_net(seed, wide, 0);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    oc.lr = 0.01f;
    assert_ok(gopt_optim_create(&oc, gopt_net_params(r->net), &r->opt));
    gopt_sched_config sc = gopt_sched_config_default(GOPT_SCHED_COSINE);
    sc.T_max = 20;
    assert_ok(gopt_sched_create(&sc, r->opt, &r->sch));
    gopt_monitor_config mc = gopt_monitor_config_default();
    assert_ok(gopt_monitor_create(&mc, gopt_net_params(r->net), r->opt, &r->mon));
    gopt_average_config ac = gopt_average_config_default(GOPT_AVERAGE_EMA);
    ac.decay = 0.9f;
    assert_ok(gopt_average_create(&ac, gopt_net_params(r->net), &r->avg));
    assert_ok(gopt_accum_create(2, &r->acc));
    gopt_rng_seed(&r->rng, seed + 1000);
    r->x = malloc(sizeof(float) * BATCH * 3072);
    r->dlog = malloc(sizeof(float) * BATCH * CLASSES);
    assert_non_null(r->x);
    assert_non_null(r->dlog);
}

static void run_free(run *r) {
    gopt_accum_destroy(r->acc);
    gopt_average_destroy(r->avg);
    gopt_monitor_destroy(r->mon);
    gopt_sched_destroy(r->sch);
    gopt_optim_destroy(r->opt);
    gopt_net_destroy(r->net);
    gopt_loader_destroy(r->ld);
    gopt_dataset_destroy(r->ds);
    free(r->x);
    free(r->dlog);
}

/* One micro-batch (an optimizer step every second one); *loss and a checksum of the batch
 * (images and labels) out. */
static void run_step(run *r, float *loss, uint64_t *batch_sum) {
    gopt_batch b;
    assert_ok(gopt_loader_next(r->ld, &b));
    if (b.n == 0) {
        r->epoch++;
        assert_ok(gopt_loader_start_epoch(r->ld, r->epoch));
        assert_ok(gopt_loader_next(r->ld, &b));
    }
    assert_true(b.n == BATCH);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < b.n * 3072; i++) {
        uint32_t u;
        memcpy(&u, &b.images[i], 4);
        h = (h ^ u) * 1099511628211ull;
        r->x[i] = b.images[i] + 0.01f * gopt_rng_normal(&r->rng);
    }
    for (int i = 0; i < b.n; i++) h = (h ^ (uint64_t)b.labels[i]) * 1099511628211ull;
    *batch_sum = h;
    const int64_t xs[4] = {b.n, 3, 32, 32}, ls[2] = {b.n, CLASSES};
    gopt_tensor x, logits, dl;
    assert_ok(gopt_tensor_view(r->x, 4, xs, &x));
    assert_ok(gopt_tensor_view(r->dlog, 2, ls, &dl));
    assert_ok(gopt_net_forward(r->net, &x, &logits));
    assert_ok(gopt_loss_cross_entropy(&logits, b.labels, 0.0f, loss, &dl));
    assert_ok(gopt_net_backward(r->net, &dl));
    int now = 0;
    assert_ok(gopt_accum_add(r->acc, gopt_net_params(r->net), &now));
    if (!now) return;
    gopt_monitor_report rep;
    assert_ok(gopt_monitor_before_step(r->mon, *loss, &rep));
    assert_ok(gopt_optim_step(r->opt));
    assert_ok(gopt_monitor_after_step(r->mon));
    assert_ok(gopt_sched_step(r->sch));
    assert_ok(gopt_average_update(r->avg));
    gopt_optim_zero_grad(r->opt);
    r->step++;
    if (r->step % 3 == 0) r->best++;
}

#define NENT 13
static void run_entries(run *r, gopt_ckpt_entry e[NENT]) {
    e[0] = gopt_ckpt_params("params", gopt_net_params(r->net));
    e[1] = gopt_ckpt_net("net", r->net);
    e[2] = gopt_ckpt_optim("optim", r->opt);
    e[3] = gopt_ckpt_sched("sched", r->sch);
    e[4] = gopt_ckpt_monitor("monitor", r->mon);
    e[5] = gopt_ckpt_loader("loader", r->ld);
    e[6] = gopt_ckpt_rng("rng", &r->rng);
    e[7] = gopt_ckpt_i64("epoch", &r->epoch);
    e[8] = gopt_ckpt_i64("step", &r->step);
    e[9] = gopt_ckpt_int("best", &r->best);
    e[10] = gopt_ckpt_text("note", "adamw lr 0.01, cosine 20", r->note, sizeof r->note);
    e[11] = gopt_ckpt_average("ema", r->avg);
    e[12] = gopt_ckpt_accum("accum", r->acc);
}

/* Everything a run holds, as bytes: each object's state blob, the rng, the counters. */
typedef struct blob {
    unsigned char *p;
    size_t n;
} blob;

static void blob_add(blob *b, const void *p, size_t n) {
    b->p = realloc(b->p, b->n + n + 1);
    assert_non_null(b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

#define ADD_STATE(b, kind, obj)                                   \
    do {                                                          \
        size_t n_ = gopt_##kind##_state_size(obj);                \
        unsigned char *t_ = malloc(n_ + 1);                       \
        assert_ok(gopt_##kind##_state_save(obj, t_, n_));         \
        blob_add(b, t_, n_);                                      \
        free(t_);                                                 \
    } while (0)

static blob fingerprint(run *r) {
    blob b = {NULL, 0};
    ADD_STATE(&b, params, gopt_net_params(r->net));
    ADD_STATE(&b, net, r->net);
    ADD_STATE(&b, optim, r->opt);
    ADD_STATE(&b, sched, r->sch);
    ADD_STATE(&b, monitor, r->mon);
    ADD_STATE(&b, loader, r->ld);
    ADD_STATE(&b, average, r->avg);
    ADD_STATE(&b, accum, r->acc);
    blob_add(&b, &r->rng, sizeof r->rng);
    blob_add(&b, &r->epoch, sizeof r->epoch);
    blob_add(&b, &r->step, sizeof r->step);
    blob_add(&b, &r->best, sizeof r->best);
    blob_add(&b, r->note, sizeof r->note);
    return b;
}

static void assert_same_blob(blob a, blob b) {
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.p, b.p, a.n);
}

static blob file_bytes(const char *path) {
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) blob_add(&b, buf, k);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- resume ------------------------------------------------------------------------------ */

#define K_STEPS 6 /* micro-batches: a checkpoint at an optimizer step (gradients are not saved) */
#define M_STEPS 8

static void resume(int prefetch_a, int prefetch_b) {
    run a, b;
    use_prefetch = prefetch_a;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < K_STEPS; i++) run_step(&a, &loss, &sum);
    gopt_ckpt_entry ea[NENT];
    run_entries(&a, ea);
    const char *path = tmp_path("resume.ckpt");
    assert_ok(gopt_checkpoint_save(path, ea, NENT));
    float la[M_STEPS], lb[M_STEPS];
    uint64_t sa[M_STEPS], sb[M_STEPS];
    for (int i = 0; i < M_STEPS; i++) run_step(&a, &la[i], &sa[i]);
    assert_true(a.epoch >= 1); /* the continuation crossed an epoch: the loader reshuffled */

    use_prefetch = prefetch_b;
    run_make(&b, 99, 0); /* other initial weights, other rng */
    use_prefetch = 0;
    gopt_ckpt_entry eb[NENT];
    run_entries(&b, eb);
    assert_ok(gopt_checkpoint_load(path, eb, NENT));
    assert_int_equal(b.step, K_STEPS / 2);
    assert_string_equal(b.note, "adamw lr 0.01, cosine 20");
    assert_int_equal(b.best, K_STEPS / 2 / 3);
    for (int i = 0; i < M_STEPS; i++) run_step(&b, &lb[i], &sb[i]);
    assert_memory_equal(la, lb, sizeof la);
    assert_memory_equal(sa, sb, sizeof sa);
    memcpy(a.note, b.note, sizeof a.note);
    blob fa = fingerprint(&a), fb = fingerprint(&b);
    assert_same_blob(fa, fb); /* parameters, BN statistics, dropout streams, moments, ... */
    free(fa.p);
    free(fb.p);

    /* the list describes the file without any object */
    char listing[2048];
    size_t need = 0;
    assert_ok(gopt_checkpoint_list(path, listing, sizeof listing, &need));
    assert_true(need == strlen(listing));
    assert_non_null(strstr(listing, "step i64 8 bytes = 3\n"));
    assert_non_null(strstr(listing, "best int 8 bytes = 1\n"));
    assert_non_null(strstr(listing, "note text 24 bytes = \"adamw lr 0.01, cosine 20\"\n"));
    assert_non_null(strstr(listing, "net.weights weights "));
    assert_non_null(strstr(listing, "optim optim "));
    char small[16];
    assert_ok(gopt_checkpoint_list(path, small, sizeof small, &need));
    assert_int_equal(strlen(small), 15);
    assert_non_null(strstr(small, "..."));
    /* a partial list reads the counters and touches nothing else */
    int64_t step = -1;
    char note[8] = "x";
    gopt_ckpt_entry few[2] = {gopt_ckpt_i64("step", &step), gopt_ckpt_text("note", NULL, NULL, 0)};
    assert_ok(gopt_checkpoint_load(path, few, 2));
    assert_int_equal(step, K_STEPS / 2);
    few[1] = gopt_ckpt_text("note", NULL, note, sizeof note);
    assert_status(gopt_checkpoint_load(path, few, 2), GOPT_ERANGE, "section 'note' (text) is 24 bytes");
    assert_string_equal(note, "x");
    run_free(&a);
    run_free(&b);
}

static void test_resume_bit_exact(void **state) {
    (void)state;
    resume(0, 0);
    resume(1, 0); /* the loader's position is the same with or without its prefetch thread */
    resume(0, 1);
}

/* ---- refused loads change nothing --------------------------------------------------------- */

static int refuse_load;
static uint64_t user_counter;
static size_t user_size(const void *o) {
    (void)o;
    return 8;
}
static gopt_status user_save(const void *o, void *buf, size_t size) {
    if (size < 8) return GOPT_EINVAL;
    memcpy(buf, o, 8);
    return GOPT_OK;
}
static gopt_status user_load(void *o, const void *buf, size_t size) {
    if (refuse_load || size != 8) return gopt__fail(GOPT_EFORMAT, "user_load", "refused on purpose");
    memcpy(o, buf, 8);
    return GOPT_OK;
}

static char refused_detail[600];
static void expect_refused(run *r, const char *path, gopt_ckpt_entry *e, int n, gopt_status st, const char *needle) {
    blob before = fingerprint(r);
    assert_status(gopt_checkpoint_load(path, e, n), st, needle);
    snprintf(refused_detail, sizeof refused_detail, "%s", gopt_last_error());
    blob after = fingerprint(r);
    assert_same_blob(before, after);
    free(before.p);
    free(after.p);
}

static void test_refused_loads_change_nothing(void **state) {
    (void)state;
    run a, b;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < K_STEPS; i++) run_step(&a, &loss, &sum);
    gopt_ckpt_entry e[NENT + 1];
    run_entries(&a, e);
    user_counter = 42;
    e[NENT] = gopt_ckpt_object("user", &user_counter, user_size, user_save, user_load);
    const char *path = tmp_path("full.ckpt");
    assert_ok(gopt_checkpoint_save(path, e, NENT + 1));

    run_make(&b, 99, 0);
    for (int i = 0; i < 2; i++) run_step(&b, &loss, &sum); /* b has state of its own */
    memcpy(b.note, "mine", 5);
    gopt_ckpt_entry eb[NENT + 1];
    run_entries(&b, eb);
    uint64_t mine = 7;
    eb[NENT] = gopt_ckpt_object("user", &mine, user_size, user_save, user_load);

    expect_refused(&b, tmp_path("does-not-exist.ckpt"), eb, NENT + 1, GOPT_EIO, "does-not-exist.ckpt");
    /* truncated */
    blob whole = file_bytes(path);
    write_bytes(tmp_path("trunc.ckpt"), whole.p, whole.n - 100);
    expect_refused(&b, tmp_path("trunc.ckpt"), eb, NENT + 1, GOPT_EFORMAT, "truncated");
    /* a flipped byte in a section */
    whole.p[200] ^= 1;
    write_bytes(tmp_path("flip.ckpt"), whole.p, whole.n);
    expect_refused(&b, tmp_path("flip.ckpt"), eb, NENT + 1, GOPT_EFORMAT, "checksum mismatch");
    free(whole.p);
    /* a section missing: a file saved without the scheduler */
    gopt_ckpt_entry nosched[NENT];
    memcpy(nosched, e, sizeof nosched);
    nosched[3] = nosched[NENT - 1];
    assert_ok(gopt_checkpoint_save(tmp_path("nosched.ckpt"), nosched, NENT - 1));
    expect_refused(&b, tmp_path("nosched.ckpt"), eb, NENT + 1, GOPT_EFORMAT, "section 'sched' (sched) is missing");
    /* ... unless the entry is optional: then it is left alone and the rest loads */
    {
        run c;
        run_make(&c, 5, 0);
        gopt_ckpt_entry ec[NENT];
        run_entries(&c, ec);
        ec[3].optional = 1;
        size_t n0 = gopt_sched_state_size(c.sch);
        unsigned char *s0 = malloc(n0), *s1 = malloc(n0);
        assert_ok(gopt_sched_state_save(c.sch, s0, n0));
        assert_ok(gopt_checkpoint_load(tmp_path("nosched.ckpt"), ec, NENT));
        assert_ok(gopt_sched_state_save(c.sch, s1, n0));
        assert_memory_equal(s0, s1, n0);
        assert_int_equal(c.step, K_STEPS / 2);
        free(s0);
        free(s1);
        run_free(&c);
    }
    /* a section of another kind */
    gopt_ckpt_entry swapped[NENT + 1];
    memcpy(swapped, eb, sizeof swapped);
    swapped[4] = gopt_ckpt_monitor("sched", b.mon);
    swapped[3] = gopt_ckpt_sched("monitor", b.sch);
    expect_refused(&b, path, swapped, NENT + 1, GOPT_EFORMAT, "section 'monitor' holds a monitor, the entry is a sched");
    /* a counter of the wrong size, a blob of the wrong size */
    memcpy(swapped, eb, sizeof swapped);
    swapped[8] = gopt_ckpt_rng("step", &b.rng);
    expect_refused(&b, path, swapped, NENT + 1, GOPT_EFORMAT, "section 'step' holds a i64, the entry is a rng");
    /* the last entry refuses after every other section has loaded: all put back */
    refuse_load = 1;
    expect_refused(&b, path, eb, NENT + 1, GOPT_EFORMAT, "section 'user' (object)");
    assert_non_null(strstr(refused_detail, "nothing was changed"));
    assert_int_equal(mine, 7);
    refuse_load = 0;
    /* another architecture: the arena's own loader names the mismatch */
    run w;
    run_make(&w, 3, 1);
    gopt_ckpt_entry ew[NENT];
    run_entries(&w, ew);
    expect_refused(&w, path, ew, NENT, GOPT_EFORMAT, "section 'params' (params)");
    /* the arena's loader's own words follow (helper "custom" makes them name the tensor) */
    /* params last, after the sections that fit this run: those are loaded, then put back */
    gopt_ckpt_entry late[8] = {ew[5], ew[3], ew[6], ew[7], ew[8], ew[9], ew[10], ew[0]};
    expect_refused(&w, path, late, 8, GOPT_EFORMAT, "section 'params' (params)");
    assert_non_null(strstr(refused_detail, "nothing was changed"));
    /* the net's own loader names its mismatch too */
    late[7] = ew[1];
    expect_refused(&w, path, late, 8, GOPT_EFORMAT, "section 'net' (net): net state: batchnorm 1");
    run_free(&w);

    /* nothing refused: the same list loads and the user object came back */
    assert_ok(gopt_checkpoint_load(path, eb, NENT + 1));
    assert_int_equal(mine, 42);
    assert_string_equal(b.note, "adamw lr 0.01, cosine 20");
    memcpy(a.note, b.note, sizeof a.note);
    blob fa = fingerprint(&a), fb = fingerprint(&b);
    assert_same_blob(fa, fb);
    free(fa.p);
    free(fb.p);
    run_free(&a);
    run_free(&b);
}

/* Every allocation of a load or a save failing in turn: a load either succeeds or changes
 * nothing; a failed save leaves the previous file as it was. */
static void test_out_of_memory(void **state) {
    (void)state;
    run a, b;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < 3; i++) run_step(&a, &loss, &sum);
    gopt_ckpt_entry ea[NENT];
    run_entries(&a, ea);
    const char *path = tmp_path("oom.ckpt");
    assert_ok(gopt_checkpoint_save(path, ea, NENT));
    blob file = file_bytes(path);
    run_make(&b, 2, 0);
    gopt_ckpt_entry eb[NENT];
    run_entries(&b, eb);
    blob before = fingerprint(&b);
    int failures = 0;
    for (long budget = 0;; budget++) {
        testutil_fail_after(budget);
        gopt_status st = gopt_checkpoint_load(path, eb, NENT);
        testutil_alloc_reset();
        if (st == GOPT_OK) break;
        failures++;
        assert_int_equal(st, GOPT_ENOMEM);
        blob now = fingerprint(&b);
        assert_same_blob(before, now);
        free(now.p);
        assert_true(budget < 1000);
    }
    assert_true(failures >= 3); /* the file, the list, the snapshots */
    for (long budget = 0;; budget++) {
        testutil_fail_after(budget);
        gopt_status st = gopt_checkpoint_save(path, eb, NENT);
        testutil_alloc_reset();
        if (st == GOPT_OK) break;
        assert_int_equal(st, GOPT_ENOMEM);
        blob now = file_bytes(path);
        assert_same_blob(file, now);
        free(now.p);
        assert_true(budget < 1000);
    }
    free(before.p);
    free(file.p);
    run_free(&a);
    run_free(&b);
}

/* ---- refused saves ------------------------------------------------------------------------- */

static int refuse_save;
static gopt_status user_save_maybe(const void *o, void *buf, size_t size) {
    if (refuse_save) return gopt__fail(GOPT_EIO, "user_save", "disk of the user object is gone");
    return user_save(o, buf, size);
}

static void test_refused_saves(void **state) {
    (void)state;
    run a;
    run_make(&a, 1, 0);
    gopt_ckpt_entry e[NENT + 1];
    run_entries(&a, e);
    uint64_t u = 5;
    e[NENT] = gopt_ckpt_object("user", &u, user_size, user_save_maybe, user_load);
    const char *path = tmp_path("saves.ckpt");
    assert_ok(gopt_checkpoint_save(path, e, NENT + 1));
    blob before = file_bytes(path);
    /* an object's save refuses: the error names the section, the old file stays */
    refuse_save = 1;
    assert_status(gopt_checkpoint_save(path, e, NENT + 1), GOPT_EIO, "section 'user' (object): user_save: disk of the user");
    refuse_save = 0;
    blob after = file_bytes(path);
    assert_same_blob(before, after);
    free(after.p);
    /* bad lists */
    gopt_ckpt_entry bad[2] = {gopt_ckpt_i64("step", &a.step), gopt_ckpt_i64("step", &a.epoch)};
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "both named 'step'");
    bad[1] = gopt_ckpt_i64("x.weights", &a.epoch);
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, ".weights");
    bad[1] = gopt_ckpt_i64("__entries__", &a.epoch);
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "__entries__");
    bad[1] = gopt_ckpt_i64("a-name-that-is-much-too-long-for-a-section-of-the-container-format", &a.epoch);
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "1..55 bytes");
    bad[1] = gopt_ckpt_optim("optim", NULL);
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "entry 'optim' (optim): its object is NULL");
    bad[1] = gopt_ckpt_text("note", NULL, a.note, sizeof a.note);
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "load-only");
    bad[1].kind = (gopt_ckpt_kind)99;
    assert_status(gopt_checkpoint_save(path, bad, 2), GOPT_EINVAL, "kind 99");
    assert_status(gopt_checkpoint_save(path, bad, 0), GOPT_EINVAL, "n = 0");
    assert_status(gopt_checkpoint_save(path, NULL, 1), GOPT_EINVAL, "entries");
    assert_status(gopt_checkpoint_save(NULL, e, 1), GOPT_EINVAL, "path");
    assert_status(gopt_checkpoint_load(path, bad, 0), GOPT_EINVAL, "n = 0");
    /* a directory that does not exist: EIO naming it */
    assert_status(gopt_checkpoint_save(tmp_path("no/such/dir.ckpt"), e, NENT), GOPT_EIO, "no/such/dir.ckpt");
    after = file_bytes(path);
    assert_same_blob(before, after);
    free(after.p);
    free(before.p);
    /* a blob: saved and loaded as it is, its size checked */
    unsigned char bytes[5] = {1, 2, 3, 4, 5}, back[5] = {0}, wrong[4] = {9, 9, 9, 9};
    gopt_ckpt_entry bl[1] = {gopt_ckpt_blob("bytes", bytes, 5)};
    assert_ok(gopt_checkpoint_save(tmp_path("blob.ckpt"), bl, 1));
    bl[0] = gopt_ckpt_blob("bytes", wrong, 4);
    assert_status(gopt_checkpoint_load(tmp_path("blob.ckpt"), bl, 1), GOPT_EFORMAT, "section 'bytes' is 5 bytes, a blob entry takes 4");
    assert_int_equal(wrong[0], 9);
    bl[0] = gopt_ckpt_blob("bytes", back, 5);
    assert_ok(gopt_checkpoint_load(tmp_path("blob.ckpt"), bl, 1));
    assert_memory_equal(back, bytes, 5);
    /* an int counter out of range */
    int64_t big = 3000000000LL;
    int small = 1;
    gopt_ckpt_entry ie[1] = {gopt_ckpt_i64("n", &big)};
    assert_ok(gopt_checkpoint_save(tmp_path("int.ckpt"), ie, 1));
    ie[0] = gopt_ckpt_int("n", &small);
    ie[0].kind = GOPT_CKPT_INT;
    assert_status(gopt_checkpoint_load(tmp_path("int.ckpt"), ie, 1), GOPT_EFORMAT, "holds a i64");
    run_free(&a);
}

/* A file written section by section (gopt_ckpt_writer, no entry list) loads unchecked by
 * kind, and gopt_ckpt_get_u64 reads what gopt_checkpoint_save wrote. */
static void test_plain_container(void **state) {
    (void)state;
    gopt_rng r;
    gopt_rng_seed(&r, 5);
    gopt_ckpt_writer *w;
    const char *path = tmp_path("plain.ckpt");
    assert_ok(gopt_ckpt_writer_begin(path, &w));
    assert_ok(gopt_ckpt_writer_add_u64(w, "step", 12));
    assert_ok(gopt_ckpt_writer_add(w, "rng", r.s, sizeof r.s));
    assert_ok(gopt_ckpt_writer_add_text(w, "config", "hand written"));
    assert_ok(gopt_ckpt_writer_commit(w));
    int64_t step = 0;
    gopt_rng back;
    memset(&back, 0, sizeof back);
    char cfg[32];
    gopt_ckpt_entry e[3] = {gopt_ckpt_i64("step", &step), gopt_ckpt_rng("rng", &back),
                            gopt_ckpt_text("config", NULL, cfg, sizeof cfg)};
    assert_ok(gopt_checkpoint_load(path, e, 3));
    assert_int_equal(step, 12);
    assert_memory_equal(&back, &r, sizeof r);
    assert_string_equal(cfg, "hand written");
    char listing[256];
    assert_ok(gopt_checkpoint_list(path, listing, sizeof listing, NULL));
    assert_string_equal(listing, "step section 8 bytes\nrng section 32 bytes\nconfig section 12 bytes\n");
    /* the other way round */
    uint64_t u = 0;
    int epochs = -3;
    gopt_ckpt_entry f[1] = {gopt_ckpt_int("epochs", &epochs)};
    assert_ok(gopt_checkpoint_save(path, f, 1));
    gopt_ckpt *c;
    assert_ok(gopt_ckpt_open(path, &c));
    assert_ok(gopt_ckpt_get_u64(c, "epochs", &u));
    assert_int_equal((int64_t)u, -3);
    gopt_ckpt_close(c);
    epochs = 0;
    assert_ok(gopt_checkpoint_load(path, f, 1));
    assert_int_equal(epochs, -3);
}

/* ---- weights-only files ---------------------------------------------------------------------- */

static void assert_same_weights(gopt_net *x, gopt_net *y) {
    gopt_params *px = gopt_net_params(x), *py = gopt_net_params(y);
    assert_int_equal(gopt_params_numel(px), gopt_params_numel(py));
    assert_memory_equal(gopt_params_values(px), gopt_params_values(py), (size_t)gopt_params_numel(px) * sizeof(float));
    assert_int_equal(gopt_net_buffer_count(x), gopt_net_buffer_count(y));
    for (int i = 0; i < gopt_net_buffer_count(x); i++) {
        gopt_net_buffer a, b;
        assert_ok(gopt_net_buffer_info(x, i, &a));
        assert_ok(gopt_net_buffer_info(y, i, &b));
        assert_memory_equal(a.value.data, b.value.data, (size_t)a.value.numel * sizeof(float));
    }
}

static int weights_differ(gopt_net *x, gopt_net *y) {
    gopt_params *px = gopt_net_params(x), *py = gopt_net_params(y);
    return memcmp(gopt_params_values(px), gopt_params_values(py), (size_t)gopt_params_numel(px) * sizeof(float)) != 0;
}

/* every value and buffer of net, as bytes */
static blob net_values(gopt_net *net) {
    blob b = {NULL, 0};
    gopt_params *p = gopt_net_params(net);
    blob_add(&b, gopt_params_values(p), (size_t)gopt_params_numel(p) * sizeof(float));
    for (int i = 0; i < gopt_net_buffer_count(net); i++) {
        gopt_net_buffer nb;
        assert_ok(gopt_net_buffer_info(net, i, &nb));
        blob_add(&b, nb.value.data, (size_t)nb.value.numel * sizeof(float));
    }
    return b;
}

static void test_weights_only(void **state) {
    (void)state;
    run a;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < 4; i++) run_step(&a, &loss, &sum); /* BN statistics away from their start */
    const char *wpath = tmp_path("w.gopt");
    assert_ok(gopt_net_save_weights(a.net, wpath));
    gopt_net *b = make_net(77, 0, 0);
    assert_true(weights_differ(a.net, b));
    gopt_weights_report rep;
    assert_ok(gopt_net_load_weights(b, wpath, NULL, &rep));
    assert_same_weights(a.net, b);
    assert_int_equal(rep.loaded, gopt_params_count(gopt_net_params(b)) + gopt_net_buffer_count(b));
    assert_int_equal(rep.missing, 0);
    assert_int_equal(rep.unexpected, 0);
    gopt_net_destroy(b);

    /* the weights out of a full one-call checkpoint */
    gopt_ckpt_entry e[NENT];
    run_entries(&a, e);
    const char *cpath = tmp_path("w-full.ckpt");
    assert_ok(gopt_checkpoint_save(cpath, e, NENT));
    b = make_net(78, 0, 0);
    assert_ok(gopt_net_load_weights(b, cpath, NULL, NULL));
    assert_same_weights(a.net, b);
    gopt_net_destroy(b);

    /* strict mismatches, each named, nothing changed */
    gopt_net *wide = make_net(5, 1, 0);
    blob before = net_values(wide);
    assert_status(gopt_net_load_weights(wide, wpath, NULL, NULL), GOPT_ESHAPE, "tensor 'fc1.weight' has shape (8,4)");
    blob after = net_values(wide);
    assert_same_blob(before, after);
    free(before.p);
    free(after.p);
    gopt_net_destroy(wide);
    gopt_net *extra = make_net(5, 0, 1);
    before = net_values(extra);
    assert_status(gopt_net_load_weights(extra, wpath, NULL, NULL), GOPT_EFORMAT, "tensor 'fc3.weight' of the net is missing");
    after = net_values(extra);
    assert_same_blob(before, after);
    free(after.p);
    /* non-strict: the rest loads, the report names what was missing */
    gopt_weights_config wc = gopt_weights_config_default();
    wc.strict = 0;
    assert_ok(gopt_net_load_weights(extra, wpath, &wc, &rep));
    assert_int_equal(rep.missing, 2);
    assert_non_null(strstr(rep.text, "missing: fc3.weight, fc3.bias"));
    free(before.p);
    /* a smaller net than the file: unexpected tensors */
    assert_ok(gopt_net_save_weights(extra, tmp_path("w-extra.gopt")));
    b = make_net(6, 0, 0);
    assert_status(gopt_net_load_weights(b, tmp_path("w-extra.gopt"), NULL, NULL), GOPT_EFORMAT,
                  "tensor 'fc3.bias' is not in the net");
    gopt_net_destroy(b);
    gopt_net_destroy(extra);
    /* not a weights file: a checkpoint without a net entry; a missing file; garbage */
    int64_t st = 3;
    gopt_ckpt_entry one[1] = {gopt_ckpt_i64("step", &st)};
    assert_ok(gopt_checkpoint_save(tmp_path("nonet.ckpt"), one, 1));
    assert_status(gopt_net_load_weights(a.net, tmp_path("nonet.ckpt"), NULL, NULL), GOPT_EFORMAT, "no weights section");
    assert_status(gopt_net_load_weights(a.net, tmp_path("nope.gopt"), NULL, NULL), GOPT_EIO, "nope.gopt");
    write_bytes(tmp_path("garbage.gopt"), "not a checkpoint at all, just some words to fill the header....", 64);
    assert_status(gopt_net_load_weights(a.net, tmp_path("garbage.gopt"), NULL, NULL), GOPT_EFORMAT, "bad magic");
    assert_status(gopt_net_save_weights(NULL, wpath), GOPT_EINVAL, "net");
    run_free(&a);
}

/* ---- .npz import ------------------------------------------------------------------------------ */

static void test_npz_round_trip(void **state) {
    (void)state;
    run a;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < 4; i++) run_step(&a, &loss, &sum);
    for (int names = 0; names < 2; names++) {
        gopt_weights_config c = gopt_weights_config_default();
        c.names = names ? GOPT_NAMES_ARENA : GOPT_NAMES_TORCH;
        const char *path = tmp_path(names ? "arena.npz" : "torch.npz");
        assert_ok(gopt_net_save_npz(a.net, path, &c));
        gopt_net *b = make_net(50 + (uint64_t)names, 0, 0);
        assert_true(weights_differ(a.net, b));
        gopt_weights_report rep;
        assert_ok(gopt_net_load_npz(b, path, &c, &rep));
        assert_same_weights(a.net, b);
        assert_int_equal(rep.loaded, gopt_params_count(gopt_net_params(b)) + gopt_net_buffer_count(b));
        assert_int_equal(rep.unexpected, 0);
        /* from memory too */
        blob bytes = file_bytes(path);
        gopt_net *m = make_net(60, 0, 0);
        assert_ok(gopt_net_load_npz_mem(m, bytes.p, bytes.n, "mem", &c, NULL));
        assert_same_weights(a.net, m);
        gopt_net_destroy(m);
        free(bytes.p);
        gopt_net_destroy(b);
    }
    /* the arena alone, in arena names */
    gopt_net *b = make_net(51, 0, 0);
    /* strict: the buffers in the file are not in an arena */
    assert_status(gopt_params_load_npz(gopt_net_params(b), tmp_path("arena.npz"), NULL, NULL), GOPT_EFORMAT,
                  "is not in the net");
    gopt_weights_config loose = gopt_weights_config_default();
    loose.strict = 0;
    gopt_weights_report rep;
    assert_ok(gopt_params_load_npz(gopt_net_params(b), tmp_path("arena.npz"), &loose, &rep));
    assert_memory_equal(gopt_params_values(gopt_net_params(a.net)), gopt_params_values(gopt_net_params(b)),
                        (size_t)gopt_params_numel(gopt_net_params(b)) * sizeof(float));
    assert_true(rep.unexpected > 0); /* the buffers, which an arena does not have */
    gopt_net_destroy(b);
    /* strict mismatches named, nothing changed */
    gopt_net *wide = make_net(5, 1, 0);
    blob before = net_values(wide);
    assert_status(gopt_net_load_npz(wide, tmp_path("torch.npz"), NULL, NULL), GOPT_ESHAPE,
                  "tensor 'fc1.weight' has shape (8,4) in the file, (12,4) in the net");
    blob after = net_values(wide);
    assert_same_blob(before, after);
    free(before.p);
    free(after.p);
    gopt_net_destroy(wide);
    gopt_net *extra = make_net(5, 0, 1);
    assert_status(gopt_net_load_npz(extra, tmp_path("torch.npz"), NULL, NULL), GOPT_EFORMAT,
                  "tensor 'fc3.weight' of the net is missing");
    gopt_net_destroy(extra);
    assert_status(gopt_net_load_npz(a.net, tmp_path("none.npz"), NULL, NULL), GOPT_EIO, "none.npz");
    assert_status(gopt_net_load_npz(NULL, tmp_path("torch.npz"), NULL, NULL), GOPT_EINVAL, "net");
    run_free(&a);
}

/* A zip of stored members with correct CRCs (what numpy.savez writes, without zip64). */
typedef struct zmember {
    const char *name;
    const void *data;
    size_t size;
    int method;
} zmember;

static blob make_zip(const zmember *m, int n) {
    blob z = {NULL, 0}, cd = {NULL, 0};
    for (int i = 0; i < n; i++) {
        unsigned char h[46] = {0};
        const uint32_t crc = gopt_crc32(0, m[i].data, m[i].size), off = (uint32_t)z.n;
        const size_t nl = strlen(m[i].name);
        unsigned char l[30] = {0};
        l[0] = 0x50, l[1] = 0x4b, l[2] = 3, l[3] = 4, l[4] = 20, l[8] = (unsigned char)m[i].method;
        memcpy(l + 14, &crc, 4);
        memcpy(l + 18, &(uint32_t){(uint32_t)m[i].size}, 4);
        memcpy(l + 22, &(uint32_t){(uint32_t)m[i].size}, 4);
        l[26] = (unsigned char)nl;
        blob_add(&z, l, 30);
        blob_add(&z, m[i].name, nl);
        blob_add(&z, m[i].data, m[i].size);
        h[0] = 0x50, h[1] = 0x4b, h[2] = 1, h[3] = 2, h[4] = 20, h[6] = 20, h[10] = (unsigned char)m[i].method;
        memcpy(h + 16, &crc, 4);
        memcpy(h + 20, &(uint32_t){(uint32_t)m[i].size}, 4);
        memcpy(h + 24, &(uint32_t){(uint32_t)m[i].size}, 4);
        h[28] = (unsigned char)nl;
        memcpy(h + 42, &off, 4);
        blob_add(&cd, h, 46);
        blob_add(&cd, m[i].name, nl);
    }
    const uint32_t cdo = (uint32_t)z.n, cds = (uint32_t)cd.n;
    blob_add(&z, cd.p, cd.n);
    unsigned char e[22] = {0x50, 0x4b, 5, 6};
    e[8] = e[10] = (unsigned char)n;
    memcpy(e + 12, &cds, 4);
    memcpy(e + 16, &cdo, 4);
    blob_add(&z, e, 22);
    free(cd.p);
    return z;
}

/* a .npy: the header dict as given (padded to 64 with a newline), then size data bytes */
static blob make_npy(const char *dict, const void *data, size_t size) {
    blob b = {NULL, 0};
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64;
    unsigned char h[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xff),
                           (unsigned char)((total - 10) >> 8)};
    blob_add(&b, h, 10);
    blob_add(&b, dict, dl);
    for (size_t i = 10 + dl; i < total - 1; i++) blob_add(&b, " ", 1);
    blob_add(&b, "\n", 1);
    if (size) blob_add(&b, data, size);
    return b;
}

/* load z non-strictly into net; returns the status */
static gopt_status load_zip(gopt_net *net, blob z, gopt_weights_report *rep) {
    gopt_weights_config c = gopt_weights_config_default();
    c.strict = 0;
    return gopt_net_load_npz_mem(net, z.p, z.n, "crafted.npz", &c, rep);
}

static void expect_npz_refused(gopt_net *net, const char *dict, size_t data_size, int method, const char *needle) {
    unsigned char data[64] = {0};
    blob y = make_npy(dict, data, data_size);
    zmember m = {"fc2.bias.npy", y.p, y.n, method};
    blob z = make_zip(&m, 1);
    blob before = net_values(net);
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, needle);
    blob after = net_values(net);
    assert_same_blob(before, after);
    free(before.p);
    free(after.p);
    free(z.p);
    free(y.p);
}

static void test_npz_crafted(void **state) {
    (void)state;
    gopt_net *net = make_net(9, 0, 0);
    /* big-endian float32, float64 and int16 members convert */
    unsigned char be[40], f64[80];
    int16_t i16[10];
    for (int i = 0; i < 10; i++) {
        float v = (float)i - 2.5f;
        uint32_t u;
        memcpy(&u, &v, 4);
        for (int k = 0; k < 4; k++) be[4 * i + k] = (unsigned char)(u >> (24 - 8 * k));
        double d = 0.25 * i;
        memcpy(f64 + 8 * i, &d, 8);
        i16[i] = (int16_t)(-i);
    }
    gopt_param_info bias_i, w_i;
    int bi, wi;
    assert_ok(gopt_params_find(gopt_net_params(net), "fc2.bias", &bi));
    assert_ok(gopt_params_find(gopt_net_params(net), "fc1.bias", &wi));
    assert_ok(gopt_params_info(gopt_net_params(net), bi, &bias_i));
    assert_ok(gopt_params_info(gopt_net_params(net), wi, &w_i));
    gopt_tensor bias = bias_i.value, w = w_i.value;
    blob y1 = make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (10,), }", be, 40);
    blob y2 = make_npy("{\"shape\": (8,), \"fortran_order\": False, \"descr\": \"<f8\"}", f64, 64);
    zmember ms[2] = {{"fc2.bias.npy", y1.p, y1.n, 0}, {"fc1.bias.npy", y2.p, y2.n, 0}};
    blob z = make_zip(ms, 2);
    gopt_weights_report rep;
    assert_ok(load_zip(net, z, &rep));
    assert_int_equal(rep.loaded, 2);
    for (int i = 0; i < 10; i++) assert_true(bias.data[i] == (float)i - 2.5f);
    for (int i = 0; i < 8; i++) assert_true(w.data[i] == 0.25f * (float)i);
    free(z.p);
    free(y1.p);
    free(y2.p);
    /* an integer array into a float tensor: refused by the matcher, named */
    y1 = make_npy("{'descr': '<i2', 'fortran_order': False, 'shape': (10,), }", i16, 20);
    zmember mi = {"fc2.bias.npy", y1.p, y1.n, 0};
    z = make_zip(&mi, 1);
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, "tensor 'fc2.bias' is I16");
    /* a flipped byte: the CRC; truncation; not a zip */
    z.p[30 + 12 + 64 + 3] ^= 0x10; /* a data byte of the array */
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, "CRC-32 mismatch");
    assert_status(gopt_net_load_npz_mem(net, z.p, z.n - 1, "t.npz", NULL, NULL), GOPT_EFORMAT, "no end-of-central-directory");
    assert_status(gopt_net_load_npz_mem(net, z.p, 10, "t.npz", NULL, NULL), GOPT_EFORMAT, "too short for a zip");
    assert_status(gopt_net_load_npz_mem(net, NULL, 0, NULL, NULL, NULL), GOPT_EFORMAT, "<memory>");
    free(z.p);
    free(y1.p);
    /* the central directory pointing elsewhere, an overlapping second member */
    y1 = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }", be, 40);
    zmember two[2] = {{"fc2.bias.npy", y1.p, y1.n, 0}, {"fc1.bias.npy", y1.p, y1.n, 0}};
    z = make_zip(two, 2);
    size_t cd2 = z.n - 22 - (46 + 12); /* the second central entry */
    memset(z.p + cd2 + 42, 0, 4);       /* its local header offset -> the first member's */
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, "disagrees with the central directory");
    free(z.p);
    free(y1.p);
    /* malformed members */
    const char *ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }";
    expect_npz_refused(net, ok_dict, 40, 8, "compressed with deflate (numpy.savez_compressed)");
    expect_npz_refused(net, ok_dict, 40, 12, "compression method 12");
    expect_npz_refused(net, ok_dict, 36, 0, "36 bytes of data, its dtype '<f4' and shape need 40");
    expect_npz_refused(net, "{'descr': '<c8', 'fortran_order': False, 'shape': (5,), }", 40, 0, "dtype '<c8'");
    expect_npz_refused(net, "{'descr': '|O', 'fortran_order': False, 'shape': (5,), }", 40, 0, "dtype '|O'");
    expect_npz_refused(net, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (10,), }", 40, 0, "structured");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 5), }", 40, 0, "Fortran order");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': False}", 40, 0, "needs 'descr', 'fortran_order' and 'shape'");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), 'x': 1}", 40, 0, "unexpected or repeated key 'x'");
    expect_npz_refused(net, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (10,)}", 40, 0, "repeated key 'descr'");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': False, 'shape': (-10,), }", 40, 0, "other than integers");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': False, 'shape': (10,) ", 40, 0, "expected ',' or '}'");
    expect_npz_refused(net, "['descr']", 40, 0, "not a dict");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (10,), }", 40, 0, "not True or False");
    expect_npz_refused(net, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,10), }", 40, 0, "more than 8 dimensions");
    /* a member without the .npy magic, a member not named *.npy */
    zmember raw = {"fc2.bias.npy", "plain bytes", 11, 0};
    z = make_zip(&raw, 1);
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, "no \\x93NUMPY magic");
    free(z.p);
    raw.name = "notes.txt";
    z = make_zip(&raw, 1);
    assert_status(load_zip(net, z, NULL), GOPT_EFORMAT, "member 'notes.txt' is not named '<tensor>.npy'");
    free(z.p);
    gopt_net_destroy(net);
}

/* --numpy PYTHON DIR: numpy.savez writes what gopt_net_load_npz reads, numpy.savez_compressed is refused by name */
static const char *py_exe, *py_dir;

static void test_npz_from_numpy(void **state) {
    (void)state;
    run a;
    run_make(&a, 1, 0);
    float loss;
    uint64_t sum;
    for (int i = 0; i < 3; i++) run_step(&a, &loss, &sum);
    char src[600], cmd[2400];
    snprintf(src, sizeof src, "%s/lib.npz", py_dir);
    assert_ok(gopt_net_save_npz(a.net, src, NULL));
    snprintf(cmd, sizeof cmd,
             "'%s' -c \"import sys, numpy as np\n"
             "d = dict(np.load(sys.argv[1]))\n"
             "o = sys.argv[2]\n"
             "np.savez(o + '/plain.npz', **d)\n"
             "np.savez(o + '/f64be.npz', **{k: (v.astype('>f8') if v.dtype.kind == 'f' else v) for k, v in d.items()})\n"
             "np.savez(o + '/scaled.npz', **{k: (v * 2).astype(v.dtype) for k, v in d.items()})\n"
             "np.savez_compressed(o + '/compressed.npz', **d)\n"
             "np.savez(o + '/positional.npz', *d.values())\n\" '%s' '%s'",
             py_exe, src, py_dir);
    assert_int_equal(system(cmd), 0);
    const char *files[2] = {"plain.npz", "f64be.npz"};
    for (int f = 0; f < 2; f++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", py_dir, files[f]);
        gopt_net *b = make_net(40 + (uint64_t)f, 0, 0);
        gopt_weights_report rep;
        assert_ok(gopt_net_load_npz(b, p, NULL, &rep));
        assert_same_weights(a.net, b);
        gopt_net_destroy(b);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/scaled.npz", py_dir);
    gopt_net *b = make_net(42, 0, 0);
    assert_ok(gopt_net_load_npz(b, p, NULL, NULL));
    const float *x = gopt_params_values(gopt_net_params(a.net)), *y = gopt_params_values(gopt_net_params(b));
    for (int64_t i = 0; i < gopt_params_numel(gopt_net_params(b)); i++) assert_true(y[i] == 2.0f * x[i]);
    blob before = net_values(b);
    snprintf(p, sizeof p, "%s/compressed.npz", py_dir);
    assert_status(gopt_net_load_npz(b, p, NULL, NULL), GOPT_EFORMAT, "compressed with deflate (numpy.savez_compressed)");
    snprintf(p, sizeof p, "%s/positional.npz", py_dir);
    assert_status(gopt_net_load_npz(b, p, NULL, NULL), GOPT_EFORMAT, "of the net is missing");
    blob after = net_values(b);
    assert_same_blob(before, after);
    free(before.p);
    free(after.p);
    gopt_net_destroy(b);
    run_free(&a);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void remove_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    snprintf(tmpdir, sizeof tmpdir, "%s/gopt_ckpt_bundle_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (argc == 4 && strcmp(argv[1], "--numpy") == 0) {
        py_exe = argv[2];
        py_dir = argv[3];
        char cmd[700];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' 2>/dev/null", py_exe);
        if (system(cmd) != 0) {
            printf("numpy is not available to %s: test skipped\n", py_exe);
            remove_tree(tmpdir);
            return 77;
        }
        mkdir(py_dir, 0755);
        const struct CMUnitTest np_tests[] = {cmocka_unit_test(test_npz_from_numpy)};
        int rc = cmocka_run_group_tests(np_tests, NULL, NULL);
        remove_tree(tmpdir);
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_refused_loads_change_nothing),
        cmocka_unit_test(test_refused_saves),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_plain_container),
        cmocka_unit_test(test_weights_only),
        cmocka_unit_test(test_npz_round_trip),
        cmocka_unit_test(test_npz_crafted),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_tree(tmpdir);
    return rc;
}
