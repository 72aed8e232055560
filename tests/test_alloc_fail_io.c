#define _POSIX_C_SOURCE 200809L
/* Allocation failure at every allocation site, continued (see test_alloc_fail.c): every
 * optimizer, scheduler, the monitor, accumulation, datasets and loaders, text, checkpoints,
 * dist in its world of one; and a training step allocates nothing after the first. */
#include "alloc_fail.h"

/* ---- optimizers, schedulers, monitor, accumulation ----------------------------------------- */

typedef struct optim_variant {
    const char *label;
    gopt_optim_config cfg;
} optim_variant;

static optim_variant optim_variants[GOPT_ALGO_COUNT + 8];
static int n_optim_variants;

static void make_optim_variants(void) {
    n_optim_variants = 0;
    for (int a = 0; a < GOPT_ALGO_COUNT; a++) {
        optim_variant *v = &optim_variants[n_optim_variants++];
        v->cfg = gopt_optim_config_default((gopt_algo)a);
        v->label = gopt_algo_name((gopt_algo)a);
    }
    optim_variant *v;
    v = &optim_variants[n_optim_variants++];
    v->cfg = gopt_optim_config_default(GOPT_ALGO_SGD);
    v->cfg.momentum = 0.9f;
    v->cfg.nesterov = 1;
    v->label = "sgd, nesterov momentum";
    v = &optim_variants[n_optim_variants++];
    v->cfg = gopt_optim_config_default(GOPT_ALGO_RMSPROP);
    v->cfg.momentum = 0.9f;
    v->cfg.centered = 1;
    v->label = "rmsprop, centered, momentum";
    v = &optim_variants[n_optim_variants++];
    v->cfg = gopt_optim_config_default(GOPT_ALGO_ADAMW);
    v->cfg.amsgrad = 1;
    v->label = "adamw, amsgrad";
    v = &optim_variants[n_optim_variants++];
    v->cfg = gopt_optim_config_default(GOPT_ALGO_ADAM);
    v->cfg.lookahead_k = 3;
    v->cfg.lookahead_alpha = 0.5f;
    v->label = "adam + lookahead";
    v = &optim_variants[n_optim_variants++];
    v->cfg = gopt_optim_config_default(GOPT_ALGO_LAMB);
    v->cfg.lookahead_k = 2;
    v->cfg.lookahead_alpha = 0.5f;
    v->label = "lamb + lookahead";
}

static void setup_arena(fx *f) { f->p = small_params(); }

static gopt_status call_optim_create(fx *f) {
    gopt_optim *o = SENTINEL;
    gopt_status s = gopt_optim_create(&optim_variants[f->arg].cfg, f->p, &o);
    f->out = o;
    return s;
}
/* the optimizer a successful create made steps, saves and loads */
static void ok_optim(fx *f) {
    gopt_optim *o = f->out;
    assert_ok(gopt_optim_step(o));
    size_t n = gopt_optim_state_size(o);
    void *buf = malloc(n);
    assert_ok(gopt_optim_state_save(o, buf, n));
    assert_ok(gopt_optim_state_load(o, buf, n));
    free(buf);
    gopt_optim_destroy(o);
}
static gopt_status call_optim_create_range(fx *f) {
    gopt_optim *o = SENTINEL;
    gopt_status s = gopt_optim_create_range(&optim_variants[f->arg].cfg, f->p, 16, 40, &o);
    f->out = o;
    return s;
}

static void setup_optim(fx *f) {
    f->p = small_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.momentum = 0.9f;
    assert_ok(gopt_optim_create(&oc, f->p, &f->opt));
}

static double lambda_half(void *user, int group, int64_t epoch) {
    (void)user;
    (void)group;
    return 1.0 / (1.0 + 0.5 * (double)epoch);
}

static gopt_sched_config sched_cfg(gopt_sched_kind k, gopt_sched_config children[2]) {
    gopt_sched_config c = gopt_sched_config_default(k);
    if (k == GOPT_SCHED_MULTISTEP) {
        c.n_milestones = 2;
        c.milestones[0] = 2;
        c.milestones[1] = 5;
    }
    if (k == GOPT_SCHED_LAMBDA) c.lr_lambda = lambda_half;
    if (k == GOPT_SCHED_ONECYCLE) c.cycle_momentum = 1;
    if (k == GOPT_SCHED_SEQUENTIAL || k == GOPT_SCHED_CHAINED) {
        children[0] = gopt_sched_config_default(GOPT_SCHED_LINEAR);
        children[1] = gopt_sched_config_default(GOPT_SCHED_COSINE);
        c.children = children;
        c.n_children = 2;
        if (k == GOPT_SCHED_SEQUENTIAL) {
            c.n_milestones = 1;
            c.milestones[0] = 3;
        }
    }
    return c;
}

static gopt_status call_sched_create(fx *f) {
    gopt_sched_config ch[2];
    gopt_sched_config c = sched_cfg((gopt_sched_kind)f->arg, ch);
    gopt_sched *s = SENTINEL;
    gopt_status st = gopt_sched_create(&c, f->opt, &s);
    f->out = s;
    return st;
}
static void sched_use(gopt_sched *s) {
    for (int i = 0; i < 3; i++)
        assert_ok(gopt_sched_needs_metric(s) ? gopt_sched_step_metric(s, 1.0) : gopt_sched_step(s));
    size_t n = gopt_sched_state_size(s);
    void *buf = malloc(n);
    assert_ok(gopt_sched_state_save(s, buf, n));
    assert_ok(gopt_sched_state_load(s, buf, n));
    free(buf);
}
static void ok_sched(fx *f) {
    sched_use(f->out);
    gopt_sched_destroy(f->out);
}
static void fail_sched(fx *f) {
    assert_null(f->out);
    /* the optimizer is untouched and a scheduler can still be made over it */
    assert_true(gopt_optim_get_lr(f->opt, 0) == gopt_optim_initial_lr(f->opt, 0));
    assert_ok(call_sched_create(f));
    ok_sched(f);
}
static gopt_status call_sched_detached(fx *f) {
    gopt_sched_config ch[2];
    gopt_sched_config c = sched_cfg((gopt_sched_kind)f->arg, ch);
    if (f->arg == GOPT_SCHED_ONECYCLE) c.cycle_momentum = 0;
    double lrs[3] = {0.1, 0.05, 0.2};
    gopt_sched *s = SENTINEL;
    gopt_status st = gopt_sched_create_detached(&c, 3, lrs, &s);
    f->out = s;
    return st;
}

static gopt_status call_monitor_create(fx *f) {
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.track_updates = f->arg & 1;
    mc.layer_history = (f->arg & 2) ? 5 : 0;
    gopt_monitor *m = SENTINEL;
    gopt_status s = gopt_monitor_create(&mc, f->p, f->opt, &m);
    f->out = m;
    return s;
}
static void ok_monitor(fx *f) {
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(f->out, 1.0, &r));
    assert_true(r.apply);
    assert_ok(gopt_optim_step(f->opt));
    assert_ok(gopt_monitor_after_step(f->out));
    gopt_monitor_destroy(f->out);
}

static gopt_status call_accum_create(fx *f) {
    gopt_accum *a = SENTINEL;
    gopt_status s = gopt_accum_create(4, &a);
    f->out = a;
    return s;
}
static void ok_accum(fx *f) { gopt_accum_destroy(f->out); }

static void test_optimizers(void **state) {
    (void)state;
    make_optim_variants();
    acase c = {NULL, setup_arena, call_optim_create, NULL, ok_optim, NULL};
    acase r = {NULL, setup_arena, call_optim_create_range, NULL, ok_optim, NULL};
    for (int i = 0; i < n_optim_variants; i++) {
        char label[96];
        snprintf(label, sizeof label, "gopt_optim_create(%s)", optim_variants[i].label);
        run_case(&c, i, label);
        gopt_algo a = optim_variants[i].cfg.algo; /* whole tensors (trust ratios, matrices, factors): whole arena only */
        if (a == GOPT_ALGO_LAMB || a == GOPT_ALGO_MUON || a == GOPT_ALGO_ADAFACTOR) continue;
        snprintf(label, sizeof label, "gopt_optim_create_range(%s)", optim_variants[i].label);
        run_case(&r, i, label);
    }
}

static void test_schedulers_monitor_accum(void **state) {
    (void)state;
    acase c = {NULL, setup_optim, call_sched_create, fail_sched, ok_sched, NULL};
    acase d = {NULL, NULL, call_sched_detached, NULL, ok_sched, NULL};
    for (int k = 0; k < GOPT_SCHED_KIND_COUNT; k++) {
        char label[96];
        snprintf(label, sizeof label, "gopt_sched_create(%s)", gopt_sched_kind_name((gopt_sched_kind)k));
        run_case(&c, k, label);
        snprintf(label, sizeof label, "gopt_sched_create_detached(%s)", gopt_sched_kind_name((gopt_sched_kind)k));
        run_case(&d, k, label);
    }
    acase m = {NULL, setup_optim, call_monitor_create, NULL, ok_monitor, NULL};
    run_case(&m, 0, "gopt_monitor_create (no update tracking, no layer history)");
    run_case(&m, 3, "gopt_monitor_create (update tracking, layer history)");
    acase a = {"gopt_accum_create", NULL, call_accum_create, NULL, ok_accum, NULL};
    run(&a);
}

/* ---- data ------------------------------------------------------------------------------------ */

#define NIMG 12

static void make_images(uint8_t *img, uint8_t *lab) {
    for (int i = 0; i < NIMG * GOPT_IMAGE_BYTES; i++) img[i] = (uint8_t)((i * 31) % 251);
    for (int i = 0; i < NIMG; i++) lab[i] = (uint8_t)(i % 10);
}

static gopt_status call_from_memory(fx *f) {
    static uint8_t img[NIMG * GOPT_IMAGE_BYTES], lab[NIMG];
    make_images(img, lab);
    gopt_dataset *d = SENTINEL;
    gopt_status s = gopt_dataset_from_memory(img, lab, NIMG, 10, &d);
    f->out = d;
    return s;
}
static void ok_dataset(fx *f) { gopt_dataset_destroy(f->out); }
static gopt_status call_synthetic(fx *f) {
    gopt_dataset *d = SENTINEL;
    gopt_status s = gopt_dataset_synthetic(NIMG, 4, 9, &d);
    f->out = d;
    return s;
}
static void setup_dataset(fx *f) {
    fx g;
    memset(&g, 0, sizeof g);
    assert_ok(call_from_memory(&g));
    f->ds = g.out;
}
static gopt_status call_subset(fx *f) {
    int64_t idx[4] = {3, 1, 3, 11};
    gopt_dataset *d = SENTINEL;
    gopt_status s = gopt_dataset_subset(f->ds, idx, 4, &d);
    f->out = d;
    return s;
}
static gopt_status call_split(fx *f) {
    gopt_dataset *tr = SENTINEL, *va = SENTINEL;
    gopt_status s = gopt_dataset_split(f->ds, 4, f->arg, 5, &tr, &va);
    f->out = tr;
    f->out2 = va;
    return s;
}
static void ok_split(fx *f) {
    assert_int_equal(gopt_dataset_count(f->out), NIMG - 4);
    assert_int_equal(gopt_dataset_count(f->out2), 4);
    gopt_dataset_destroy(f->out);
    gopt_dataset_destroy(f->out2);
}
static void fail_split(fx *f) {
    assert_null(f->out);
    assert_null(f->out2);
}

static void setup_cifar_file(fx *f) {
    static uint8_t img[NIMG * GOPT_IMAGE_BYTES], lab[NIMG];
    make_images(img, lab);
    snprintf(f->path, sizeof f->path, "alloc_fail_cifar_%d.bin", (int)getpid());
    assert_ok(gopt_cifar10_write(f->path, img, lab, NIMG));
}
static gopt_status call_cifar_load(fx *f) {
    const char *paths[2] = {f->path, f->path};
    gopt_dataset *d = SENTINEL;
    gopt_status s = gopt_cifar10_load_files(paths, 2, &d);
    f->out = d;
    if (s == GOPT_OK) assert_int_equal(gopt_dataset_count(d), 2 * NIMG);
    return s;
}
static void setup_cifar_dir(fx *f) {
    static uint8_t img[NIMG * GOPT_IMAGE_BYTES], lab[NIMG];
    make_images(img, lab);
    char dir[64];
    snprintf(dir, sizeof dir, "alloc_fail_dir_%d", (int)getpid()); /* private: tests run in parallel */
    if (mkdir(dir, 0755) != 0) fail_msg("mkdir %s", dir);
    snprintf(f->path, sizeof f->path, "%s/data_batch_2.bin", dir);
    assert_ok(gopt_cifar10_write(f->path, img, lab, NIMG));
}
static void teardown_cifar_dir(fx *f) {
    teardown_all(f);
    char dir[64];
    snprintf(dir, sizeof dir, "alloc_fail_dir_%d", (int)getpid());
    assert_int_equal(rmdir(dir), 0);
}
static gopt_status call_cifar_dir(fx *f) {
    gopt_dataset *d = SENTINEL;
    char dir[64];
    snprintf(dir, sizeof dir, "alloc_fail_dir_%d", (int)getpid());
    gopt_status s = gopt_cifar10_load_dir(dir, GOPT_CIFAR10_BATCH_2, &d);
    f->out = d;
    return s;
}

static gopt_status call_loader_create(fx *f) {
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = 5;
    lc.augment = 1;
    lc.prefetch = f->arg;
    gopt_loader *l = SENTINEL;
    gopt_status s = gopt_loader_create(&lc, f->ds, &l);
    f->out = l;
    return s;
}
static void ok_loader(fx *f) {
    gopt_batch b;
    assert_ok(gopt_loader_next(f->out, &b));
    assert_int_equal(b.n, 5);
    gopt_loader_destroy(f->out);
}

static const char text_data[] = "the quick brown fox jumps over the lazy dog\nsphinx of black quartz, judge my vow\n";

static gopt_status call_text_from_memory(fx *f) {
    gopt_text *t = SENTINEL;
    gopt_status s = gopt_text_from_memory(text_data, sizeof text_data - 1, NULL, NULL, &t);
    f->out = t;
    return s;
}
static void ok_text(fx *f) { gopt_text_destroy(f->out); }
static void setup_text_file(fx *f) {
    snprintf(f->path, sizeof f->path, "alloc_fail_text_%d.txt", (int)getpid());
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    /* long enough that the reader's buffer grows */
    for (int i = 0; i < 1000; i++) fputs(text_data, fp); /* > 64 KiB */
    fclose(fp);
}
static gopt_status call_text_load(fx *f) {
    gopt_text *t = SENTINEL;
    gopt_status s = gopt_text_load(f->path, NULL, &t);
    f->out = t;
    return s;
}
static void setup_text(fx *f) {
    fx g;
    memset(&g, 0, sizeof g);
    assert_ok(call_text_from_memory(&g));
    f->text = g.out;
}
static gopt_status call_text_split(fx *f) {
    gopt_text *tr = SENTINEL, *va = SENTINEL;
    gopt_status s = gopt_text_split(f->text, 0.75, &tr, &va);
    f->out = tr;
    f->out2 = va;
    return s;
}
static void ok_text_split(fx *f) {
    gopt_text_destroy(f->out);
    gopt_text_destroy(f->out2);
}
static gopt_status call_text_loader(fx *f) {
    gopt_text_loader_config c = gopt_text_loader_config_default();
    c.batch_size = 3;
    c.seq_len = 8;
    c.order = f->arg ? GOPT_TEXT_STREAMS : GOPT_TEXT_RANDOM;
    gopt_text_loader *l = SENTINEL;
    gopt_status s = gopt_text_loader_create(&c, f->text, &l);
    f->out = l;
    return s;
}
static void ok_text_loader(fx *f) {
    int32_t in[24], tg[24];
    int n = 0;
    int64_t idx;
    assert_ok(gopt_text_loader_next(f->out, in, tg, &n, &idx));
    assert_int_equal(n, 3);
    gopt_text_loader_destroy(f->out);
}

static void test_data(void **state) {
    (void)state;
    acase c1 = {"gopt_dataset_from_memory", NULL, call_from_memory, NULL, ok_dataset, NULL};
    run(&c1);
    acase c2 = {"gopt_dataset_synthetic", NULL, call_synthetic, NULL, ok_dataset, NULL};
    run(&c2);
    acase c3 = {"gopt_dataset_subset", setup_dataset, call_subset, NULL, ok_dataset, NULL};
    run(&c3);
    acase c4 = {NULL, setup_dataset, call_split, fail_split, ok_split, NULL};
    run_case(&c4, 0, "gopt_dataset_split (last images)");
    run_case(&c4, 1, "gopt_dataset_split (random)");
    acase c5 = {"gopt_cifar10_load_files (one file twice)", setup_cifar_file, call_cifar_load, NULL, ok_dataset, NULL};
    run(&c5);
    acase c6 = {"gopt_cifar10_load_dir", setup_cifar_dir, call_cifar_dir, NULL, ok_dataset, teardown_cifar_dir};
    run(&c6);
    acase c7 = {NULL, setup_dataset, call_loader_create, NULL, ok_loader, NULL};
    run_case(&c7, 0, "gopt_loader_create (no prefetch)");
    run_case(&c7, 1, "gopt_loader_create (prefetch thread)");
    acase t1 = {"gopt_text_from_memory", NULL, call_text_from_memory, NULL, ok_text, NULL};
    run(&t1);
    acase t2 = {"gopt_text_load", setup_text_file, call_text_load, NULL, ok_text, NULL};
    run(&t2);
    acase t3 = {"gopt_text_split", setup_text, call_text_split, fail_split, ok_text_split, NULL};
    run(&t3);
    acase t4 = {NULL, setup_text, call_text_loader, NULL, ok_text_loader, NULL};
    run_case(&t4, 0, "gopt_text_loader_create (random windows)");
    run_case(&t4, 1, "gopt_text_loader_create (streams)");
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static char ckpt_dir[128];

/* The files in ckpt_dir (the checkpoint and any temporary file). */
static int dir_entries(void) {
    DIR *d = opendir(ckpt_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void ckpt_path(fx *f) { snprintf(f->path, sizeof f->path, "%s/ck.bin", ckpt_dir); }

static gopt_status call_writer_begin(fx *f) {
    ckpt_path(f);
    gopt_ckpt_writer *w = SENTINEL;
    gopt_status s = gopt_ckpt_writer_begin(f->path, &w);
    f->out = w;
    return s;
}
static void fail_writer_begin(fx *f) {
    assert_null(f->out);
    assert_int_equal(dir_entries(), 0); /* no temporary file left */
}
static void ok_writer(fx *f) { gopt_ckpt_writer_abort(f->out); }

/* f->arg sections added already */
static void setup_writer(fx *f) {
    ckpt_path(f);
    assert_ok(gopt_ckpt_writer_begin(f->path, &f->w));
    for (int i = 0; i < f->arg; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        assert_ok(gopt_ckpt_writer_add_u64(f->w, name, (uint64_t)i * 7));
    }
}
static const char ckpt_blob[] = "a section of some bytes";
static gopt_status call_writer_add(fx *f) { return gopt_ckpt_writer_add(f->w, "blob", ckpt_blob, sizeof ckpt_blob); }
/* commit the writer and read every section back */
static void writer_commit_and_check(fx *f) {
    assert_ok(gopt_ckpt_writer_commit(f->w));
    f->w = NULL;
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(f->path, &c));
    assert_int_equal(gopt_ckpt_section_count(c), f->arg + 1);
    for (int i = 0; i < f->arg; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        uint64_t v = 0;
        assert_ok(gopt_ckpt_get_u64(c, name, &v));
        assert_int_equal(v, (uint64_t)i * 7);
    }
    const void *p;
    size_t n;
    assert_ok(gopt_ckpt_find(c, "blob", &p, &n));
    assert_int_equal(n, sizeof ckpt_blob);
    assert_memory_equal(p, ckpt_blob, n);
    gopt_ckpt_close(c);
    assert_int_equal(dir_entries(), 1);
}
static void fail_writer_add(fx *f) {
    assert_ok(call_writer_add(f));
    writer_commit_and_check(f);
}
static void ok_writer_add(fx *f) { writer_commit_and_check(f); }

/* commit over an existing checkpoint */
static void setup_commit(fx *f) {
    ckpt_path(f);
    gopt_ckpt_writer *w = NULL;
    assert_ok(gopt_ckpt_writer_begin(f->path, &w));
    assert_ok(gopt_ckpt_writer_add_u64(w, "old", 1));
    assert_ok(gopt_ckpt_writer_commit(w));
    assert_ok(gopt_ckpt_writer_begin(f->path, &f->w));
    assert_ok(gopt_ckpt_writer_add_u64(f->w, "new", 2));
}
static gopt_status call_commit(fx *f) {
    gopt_ckpt_writer *w = f->w;
    f->w = NULL; /* freed in every case */
    return gopt_ckpt_writer_commit(w);
}
static void fail_commit(fx *f) {
    /* the previous checkpoint is intact and no temporary file is left */
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(f->path, &c));
    uint64_t v = 0;
    assert_ok(gopt_ckpt_get_u64(c, "old", &v));
    assert_int_equal(v, 1);
    gopt_ckpt_close(c);
    assert_int_equal(dir_entries(), 1);
}
static void setup_ckpt_file(fx *f) {
    f->arg = 20;
    setup_writer(f);
    assert_ok(call_writer_add(f));
    assert_ok(gopt_ckpt_writer_commit(f->w));
    f->w = NULL;
}
static gopt_status call_ckpt_open(fx *f) {
    gopt_ckpt *c = SENTINEL;
    gopt_status s = gopt_ckpt_open(f->path, &c);
    f->out = c;
    return s;
}
static void ok_ckpt(fx *f) {
    assert_int_equal(gopt_ckpt_section_count(f->out), 21);
    gopt_ckpt_close(f->out);
}

static void test_checkpoints(void **state) {
    (void)state;
    snprintf(ckpt_dir, sizeof ckpt_dir, "alloc_fail_ckpt_%d", (int)getpid());
    if (mkdir(ckpt_dir, 0755) != 0) fail_msg("mkdir %s", ckpt_dir);
    acase b = {"gopt_ckpt_writer_begin", NULL, call_writer_begin, fail_writer_begin, ok_writer, NULL};
    run(&b);
    acase a = {NULL, setup_writer, call_writer_add, fail_writer_add, ok_writer_add, NULL};
    run_case(&a, 0, "gopt_ckpt_writer_add (first section)");
    run_case(&a, 16, "gopt_ckpt_writer_add (17th section: the table grows)");
    acase c = {"gopt_ckpt_writer_commit", setup_commit, call_commit, fail_commit, NULL, NULL};
    run(&c);
    acase o = {"gopt_ckpt_open", setup_ckpt_file, call_ckpt_open, NULL, ok_ckpt, NULL};
    run(&o);
    char p[256];
    snprintf(p, sizeof p, "%s/ck.bin", ckpt_dir);
    unlink(p);
    assert_int_equal(rmdir(ckpt_dir), 0);
}

/* ---- dist (a world of one) -------------------------------------------------------------------- */

static gopt_status call_dist_create(fx *f) {
    gopt_dist_config c = gopt_dist_config_default();
    c.zero = f->arg;
    gopt_dist *d = SENTINEL;
    gopt_status s = gopt_dist_create(&c, &d);
    f->out = d;
    return s;
}
static void ok_dist(fx *f) {
    assert_int_equal(gopt_dist_size(f->out), 1);
    gopt_dist_destroy(f->out);
}
static void setup_dist(fx *f) {
    gopt_dist_config c = gopt_dist_config_default();
    c.zero = f->arg;
    assert_ok(gopt_dist_create(&c, &f->dist));
    f->p = small_params();
}
static gopt_status call_dist_optim(fx *f) {
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    gopt_optim *o = SENTINEL;
    gopt_status s = gopt_dist_optim_create(f->dist, &oc, f->p, &o);
    f->out = o;
    return s;
}

/* a world of one with a built net, its optimizer and monitor */
static void setup_dist_net(fx *f) {
    gopt_dist_config c = gopt_dist_config_default();
    c.zero = f->arg;
    assert_ok(gopt_dist_create(&c, &f->dist));
    setup_built_net(f);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    assert_ok(gopt_dist_optim_create(f->dist, &oc, gopt_net_params(f->net), &f->opt));
    gopt_monitor_config mc = gopt_monitor_config_default();
    assert_ok(gopt_monitor_create(&mc, gopt_net_params(f->net), f->opt, &f->mon));
}
static gopt_status call_dist_verify(fx *f) {
    return gopt_dist_verify(f->dist, gopt_net_params(f->net), f->opt, "x", 1);
}
static gopt_status call_dist_broadcast_net(fx *f) { return gopt_dist_broadcast_net(f->dist, f->net); }
static gopt_status call_dist_sync_bn(fx *f) { return gopt_dist_sync_batchnorm(f->dist, f->net, 1); }
/* after the failure the same call succeeds and the net trains */
static void fail_dist_retry(fx *f, gopt_status (*again)(fx *)) {
    assert_ok(again(f));
    layer_spec s = spec_of(GOPT_LAYER_CONV2D);
    net_train(f->net, &s);
}
static void fail_dist_verify(fx *f) { fail_dist_retry(f, call_dist_verify); }
static void fail_dist_broadcast_net(fx *f) { fail_dist_retry(f, call_dist_broadcast_net); }
static void fail_dist_sync_bn(fx *f) { fail_dist_retry(f, call_dist_sync_bn); }

static void test_dist(void **state) {
    (void)state;
    acase v = {NULL, setup_dist_net, call_dist_verify, fail_dist_verify, NULL, NULL};
    run_case(&v, 0, "gopt_dist_verify (world of one)");
    acase b = {NULL, setup_dist_net, call_dist_broadcast_net, fail_dist_broadcast_net, NULL, NULL};
    run_case(&b, 0, "gopt_dist_broadcast_net (world of one)");
    acase sb = {NULL, setup_dist_net, call_dist_sync_bn, fail_dist_sync_bn, NULL, NULL};
    run_case(&sb, 0, "gopt_dist_sync_batchnorm (world of one)");
    acase c = {NULL, NULL, call_dist_create, NULL, ok_dist, NULL};
    run_case(&c, 0, "gopt_dist_create (world of one)");
    run_case(&c, 1, "gopt_dist_create (world of one, zero 1)");
    acase o = {NULL, setup_dist, call_dist_optim, NULL, ok_optim, NULL};
    run_case(&o, 0, "gopt_dist_optim_create");
    run_case(&o, 1, "gopt_dist_optim_create (zero 1)");
}

/* ---- a training step allocates nothing after the first ---------------------------------------- */

static long calls_now(void) { return atomic_load(&n_calls); }

static void test_training_step_allocates_nothing(void **state) {
    (void)state;
    make_optim_variants();
    gopt_dataset *ds = NULL;
    assert_ok(gopt_dataset_synthetic(40, 10, 1, &ds));
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = 4;
    lc.augment = 1;
    lc.prefetch = 1;
    gopt_loader *ld = NULL;
    assert_ok(gopt_loader_create(&lc, ds, &ld));
    gopt_text *txt = NULL;
    assert_ok(gopt_text_from_memory(text_data, sizeof text_data - 1, NULL, NULL, &txt));
    gopt_text_loader_config tc = gopt_text_loader_config_default();
    tc.batch_size = 2;
    tc.seq_len = 5;
    gopt_text_loader *tl = NULL;
    assert_ok(gopt_text_loader_create(&tc, txt, &tl));
    gopt_dist *dist = NULL;
    assert_ok(gopt_dist_create(NULL, &dist));
    long total = 0;
    for (int v = 0; v < n_optim_variants; v++) {
        gopt_net_config nc = gopt_net_config_default();
        nc.max_batch = 4;
        gopt_net *net = NULL;
        assert_ok(gopt_net_create(&nc, &net));
        gopt_layer_config ls[] = {
            gopt_layer_conv2d(3, 4, 3, 2, 1, 0), gopt_layer_batchnorm2d(4, 1), gopt_layer_basic_block(4, 4, 1),
            gopt_layer_maxpool2d(2, 2, 0),       gopt_layer_dropout(0.1f, 3),   gopt_layer_config_default(GOPT_LAYER_FLATTEN),
            gopt_layer_linear(256, 10, 1),
        };
        for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++) assert_ok(gopt_net_add(net, &ls[i], NULL));
        assert_ok(gopt_net_set_recompute(net, 3, 1));
        assert_ok(gopt_net_build(net));
        gopt_params *p = gopt_net_params(net);
        gopt_optim *opt = NULL;
        assert_ok(gopt_dist_optim_create(dist, &optim_variants[v].cfg, p, &opt));
        gopt_sched_config ch[2];
        gopt_sched_config sc = sched_cfg(GOPT_SCHED_SEQUENTIAL, ch);
        gopt_sched *sched = NULL;
        assert_ok(gopt_sched_create(&sc, opt, &sched));
        gopt_monitor_config mc = gopt_monitor_config_default();
        mc.layer_history = 3;
        gopt_monitor *mon = NULL;
        assert_ok(gopt_monitor_create(&mc, p, opt, &mon));
        assert_ok(gopt_dist_attach_monitor(dist, mon, opt));
        gopt_accum *acc = NULL;
        assert_ok(gopt_accum_create(1, &acc));
        size_t sizes[4] = {gopt_optim_state_size(opt), gopt_monitor_state_size(mon), gopt_sched_state_size(sched),
                           gopt_net_state_size(net)};
        size_t big = gopt_params_state_size(p);
        for (int i = 0; i < 4; i++) big = sizes[i] > big ? sizes[i] : big;
        void *blob = malloc(big);
        float *x = malloc(4 * GOPT_IMAGE_BYTES * sizeof(float));
        int32_t y[4];
        int32_t tin[10], ttg[10];
        long after_first = 0;
        for (int step = 0; step < 3; step++) {
            long c0 = calls_now();
            int n = 0;
            assert_ok(gopt_loader_next_into(ld, x, y, &n));
            if (n == 0) {
                assert_ok(gopt_loader_start_epoch(ld, step));
                assert_ok(gopt_loader_next_into(ld, x, y, &n));
            }
            int tn = 0;
            int64_t tidx;
            assert_ok(gopt_text_loader_next(tl, tin, ttg, &tn, &tidx));
            int64_t sh[4] = {n, 3, 32, 32};
            gopt_tensor xt, logits;
            assert_ok(gopt_tensor_view(x, 4, sh, &xt));
            gopt_optim_zero_grad(opt);
            assert_ok(gopt_net_forward(net, &xt, &logits));
            float dl[40];
            for (int i = 0; i < logits.numel; i++) dl[i] = 0.1f * logits.data[i] - (float)(i % 10 == y[i / 10]);
            gopt_tensor dt;
            assert_ok(gopt_tensor_view(dl, logits.ndim, logits.shape, &dt));
            assert_ok(gopt_net_backward(net, &dt));
            assert_ok(gopt_dist_reduce_grads(dist, opt));
            double loss[1] = {1.0 / (step + 1)};
            assert_ok(gopt_dist_sum(dist, loss, 1));
            gopt_monitor_report rep;
            assert_ok(gopt_monitor_before_step(mon, loss[0], &rep));
            int now = 0;
            assert_ok(gopt_accum_add(acc, p, &now));
            assert_ok(gopt_clip_grad_norm(p, 1.0, 2.0, 0, NULL));
            assert_ok(gopt_clip_grad_norm_per_tensor(p, 1.0, 2.0, NULL));
            assert_ok(gopt_clip_grad_value(p, 1.0));
            int64_t clipped;
            assert_ok(gopt_clip_agc(p, 0.01, 1e-3, GOPT_TAG_WEIGHT, &clipped));
            float gn;
            assert_ok(gopt_dist_grad_norm(dist, opt, 2.0, &gn));
            if (rep.apply) {
                assert_ok(gopt_dist_step(dist, opt));
                assert_ok(gopt_monitor_after_step(mon));
            }
            assert_ok(gopt_sched_step(sched));
            /* the checkpoint blobs: saved and loaded without allocating */
            assert_ok(gopt_optim_state_save(opt, blob, sizes[0]));
            assert_ok(gopt_optim_state_load(opt, blob, sizes[0]));
            assert_ok(gopt_monitor_state_save(mon, blob, sizes[1]));
            assert_ok(gopt_monitor_state_load(mon, blob, sizes[1]));
            assert_ok(gopt_sched_state_save(sched, blob, sizes[2]));
            assert_ok(gopt_sched_state_load(sched, blob, sizes[2]));
            assert_ok(gopt_net_state_save(net, blob, sizes[3]));
            assert_ok(gopt_net_state_load(net, blob, sizes[3]));
            assert_ok(gopt_params_state_save(p, blob, gopt_params_state_size(p)));
            assert_ok(gopt_params_state_load(p, blob, gopt_params_state_size(p)));
            unsigned char small[256];
            assert_true(gopt_loader_state_size(ld) <= sizeof small);
            assert_ok(gopt_loader_state_save(ld, small, gopt_loader_state_size(ld)));
            assert_ok(gopt_loader_state_load(ld, small, gopt_loader_state_size(ld)));
            assert_true(gopt_text_loader_state_size(tl) <= sizeof small);
            assert_ok(gopt_text_loader_state_save(tl, small, gopt_text_loader_state_size(tl)));
            assert_ok(gopt_text_loader_state_load(tl, small, gopt_text_loader_state_size(tl)));
            assert_ok(gopt_accum_state_save(acc, small, gopt_accum_state_size(acc)));
            assert_ok(gopt_accum_state_load(acc, small, gopt_accum_state_size(acc)));
            float nrm;
            assert_ok(gopt_norm(gopt_params_grads(p), gopt_params_numel(p), INFINITY, &nrm));
            assert_ok(gopt_monitor_check_input(mon, x, (size_t)n * GOPT_IMAGE_BYTES));
            if (step > 0) after_first += calls_now() - c0;
        }
        if (after_first != 0)
            fail_msg("a training step with %s allocated %ld times after the first", optim_variants[v].label,
                     after_first);
        total += after_first;
        free(blob);
        free(x);
        gopt_accum_destroy(acc);
        gopt_monitor_destroy(mon);
        gopt_sched_destroy(sched);
        gopt_optim_destroy(opt);
        gopt_net_destroy(net);
    }
    /* a recurrent net: forward_tokens, backward through time */
    {
        layer_spec s = spec_of(GOPT_LAYER_EMBEDDING);
        gopt_net *net = net_for(&s);
        build_seq_net(net);
        assert_ok(gopt_net_build(net));
        net_train(net, &s); /* the first steps */
        long c0 = calls_now();
        gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
        (void)oc;
        for (int step = 0; step < 2; step++) {
            int32_t ids[MAXB * 5];
            for (int i = 0; i < MAXB * 5; i++) ids[i] = (i + step) % 10;
            gopt_tensor logits;
            assert_ok(gopt_net_forward_tokens(net, ids, MAXB, &logits));
            float dl[MAXB * 3];
            for (int i = 0; i < MAXB * 3; i++) dl[i] = 0.5f;
            gopt_tensor dt;
            assert_ok(gopt_tensor_view(dl, logits.ndim, logits.shape, &dt));
            assert_ok(gopt_net_backward(net, &dt));
        }
        if (calls_now() != c0) fail_msg("recurrent forward/backward allocated %ld times", calls_now() - c0);
        gopt_net_destroy(net);
    }
    printf("training step (every optimizer, monitor with input check, clip, accum, scheduler, loaders, state blobs): "
           "%ld allocations after the first step\n", total);
    gopt_dist_destroy(dist);
    gopt_text_loader_destroy(tl);
    gopt_text_destroy(txt);
    gopt_loader_destroy(ld);
    gopt_dataset_destroy(ds);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_schedulers_monitor_accum),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_dist),
        cmocka_unit_test(test_training_step_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
