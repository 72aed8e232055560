/* Checkpoint writes under faults (issue 15, "Fault injection"; the guarantee is in
 * gradopt/checkpoint.h, "Crash safety"):
 *   - kill -9 at random moments while a child rewrites a checkpoint of 2-3 MB in a loop
 *     (KILL_TRIALS trials, random delays): the file at the path is always a complete old or
 *     new checkpoint, at most the killed writer's temporary file is left, none after the
 *     next write;
 *   - RLIMIT_FSIZE below one checkpoint (in a child): GOPT_EIO naming the limit, the process
 *     lives, its signal mask, pending set and dispositions unchanged, the previous checkpoint
 *     intact, no temporary file; the retry without the limit equals an unfailed save;
 *   - temporary files: dead writers' removed, live writers' kept (this process and another),
 *     other names kept; three processes writing one path at once never fail;
 *   - a directory without write permission.
 * `test_ckpt_fault disk`: a full disk and exhausted inodes (a small tmpfs) and a read-only
 * mount, in a private mount namespace (ckpt_fault_disk.h); exit 77 (ctest SKIP) saying why
 * when no namespace can be made. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers shared with the disk tests --------------------------------------------------- */

static char workdir[512];

/* dir/name in one of 8 rotating buffers: keep a directory itself in a test_dir */
static const char *in_dir(const char *dir, const char *name) {
    static char p[8][1100];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

typedef struct test_dir {
    char path[520];
} test_dir;

/* dir/name, kept as long as the test needs it */
static test_dir joined(const char *dir, const char *name) {
    test_dir d;
    snprintf(d.path, sizeof d.path, "%.450s/%s", dir, name);
    return d;
}

/* workdir/name, created */
static test_dir make_dir(const char *name) {
    test_dir d;
    d = joined(workdir, name);
    assert_int_equal(mkdir(d.path, 0755), 0);
    return d;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The writer's temporary files of dir/<base>: "<base>.tmp." and six letters or digits,
 * regular files. */
static int count_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = strlen(base);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *x = e->d_name + n + 5;
        if (strncmp(e->d_name, base, n) != 0 || strncmp(e->d_name + n, ".tmp.", 5) != 0 || strlen(x) != 6) continue;
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= (x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') || (x[i] >= '0' && x[i] <= '9');
        struct stat st;
        if (ok && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) count++;
    }
    closedir(d);
    return count;
}

static unsigned char *read_all(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
        size_t done = 0;
        ssize_t r;
        while (done < (size_t)st.st_size && (r = read(fd, buf + done, (size_t)st.st_size - done)) > 0) done += (size_t)r;
        *size = done;
    }
    close(fd);
    return buf;
}

static int same_bytes(const char *path, const unsigned char *want, size_t want_size) {
    size_t n = 0;
    unsigned char *got = read_all(path, &n);
    int same = got && n == want_size && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

/* In a forked child: report and leave with 1 (the parent's cmocka assertion names the child). */
#define CHILD_CHECK(cond, ...)                                                                \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "child, line %d: %s: ", __LINE__, #cond);                          \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, " (last error: %s)\n", gopt_last_error());                        \
            _exit(1);                                                                         \
        }                                                                                     \
    } while (0)

static void wait_child_ok(pid_t pid, const char *what) {
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("%s: the child was killed by signal %d%s", what, WTERMSIG(status),
                 WTERMSIG(status) == SIGXFSZ ? " (SIGXFSZ: exit status 153 in a shell)" : "");
    if (WEXITSTATUS(status) != 0) fail_msg("%s: the child exited with %d", what, WEXITSTATUS(status));
}

/* A model whose state goes into the checkpoints: a 240 KB weight, a bias, Adam's moments. */
typedef struct model {
    gopt_params *params;
    gopt_optim *opt;
    int steps;
} model;

static void model_make(model *m) {
    memset(m, 0, sizeof *m);
    assert_ok(gopt_params_create(&m->params));
    int64_t w[2] = {300, 200}, b[1] = {200};
    assert_ok(gopt_params_add(m->params, "w", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(m->params, "b", 1, b, GOPT_TAG_BIAS, NULL));
    assert_ok(gopt_params_finalize(m->params));
    float *v = gopt_params_values(m->params);
    for (int64_t i = 0; i < gopt_params_numel(m->params); i++) v[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    gopt_optim_config c = gopt_optim_config_default(GOPT_ALGO_ADAM);
    assert_ok(gopt_optim_create(&c, m->params, &m->opt));
}

static void model_steps(model *m, int n) {
    for (int k = 0; k < n; k++, m->steps++) {
        float *g = gopt_params_grads(m->params);
        for (int64_t i = 0; i < gopt_params_numel(m->params); i++)
            g[i] = (float)(((i + 31 * m->steps) * 104729) % 2001 - 1000) / 1000.0f;
        assert_ok(gopt_optim_step(m->opt));
    }
}

static void model_free(model *m) {
    gopt_optim_destroy(m->opt);
    gopt_params_destroy(m->params);
}

/* Save params, optimizer and step, plus `pad` bytes in a last section (0: none). The first
 * failure's status is returned, with its detail in gopt_last_error(). */
static gopt_status model_save(const model *m, const char *path, size_t pad) {
    gopt_ckpt_writer *w = NULL;
    gopt_status s = gopt_ckpt_writer_begin(path, &w);
    if (s != GOPT_OK) return s;
    size_t np = gopt_params_state_size(m->params), no = gopt_optim_state_size(m->opt);
    size_t most = np > no ? np : no;
    unsigned char *buf = malloc((most > pad ? most : pad) + 1);
    if (!buf) {
        gopt_ckpt_writer_abort(w);
        return GOPT_ENOMEM;
    }
    s = gopt_params_state_save(m->params, buf, np);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, "params", buf, np);
    if (s == GOPT_OK) s = gopt_optim_state_save(m->opt, buf, no);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, "optim", buf, no);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add_u64(w, "step", (uint64_t)m->steps);
    if (s == GOPT_OK && pad) {
        for (size_t i = 0; i < pad; i++) buf[i] = (unsigned char)(i * 13);
        s = gopt_ckpt_writer_add(w, "pad", buf, pad);
    }
    free(buf);
    if (s == GOPT_OK) return gopt_ckpt_writer_commit(w);
    gopt_ckpt_writer_abort(w);
    return s;
}

#include "ckpt_fault_disk.h"

/* ---- kill -9 at random moments -------------------------------------------------------------- */

#define KILL_TRIALS 120
enum { PHASE_BETWEEN, PHASE_BEGIN, PHASE_ADD, PHASE_COMMIT, PHASES };
static const char *const phase_names[PHASES] = {"between writes", "in begin", "between/in adds", "in commit"};

typedef struct kill_shared {
    volatile uint64_t committed; /* the last seq this child committed (0: none yet) */
    volatile int phase;
} kill_shared;

/* Checkpoint number seq: sections "seq", "a", "b" (2-3 MB of words derived from seq), "end". */
static size_t payload_words(uint64_t seq) { return (256u << 10) + (size_t)(seq % 5) * 32768u; }
static uint64_t payload_word(uint64_t seq, size_t k) {
    return (seq * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)k * 0xD6E8FEB86659FD93ull);
}

static gopt_status write_numbered(const char *path, uint64_t seq, uint64_t *buf, kill_shared *sh) {
    size_t n = payload_words(seq), half = n / 2;
    for (size_t k = 0; k < n; k++) buf[k] = payload_word(seq, k);
    gopt_ckpt_writer *w = NULL;
    if (sh) sh->phase = PHASE_BEGIN;
    gopt_status s = gopt_ckpt_writer_begin(path, &w);
    if (s != GOPT_OK) return s;
    if (sh) sh->phase = PHASE_ADD;
    s = gopt_ckpt_writer_add_u64(w, "seq", seq);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, "a", buf, half * sizeof *buf);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, "b", buf + half, (n - half) * sizeof *buf);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add_u64(w, "end", seq);
    if (s != GOPT_OK) {
        gopt_ckpt_writer_abort(w);
        return s;
    }
    if (sh) sh->phase = PHASE_COMMIT;
    s = gopt_ckpt_writer_commit(w);
    if (s == GOPT_OK && sh) {
        sh->committed = seq;
        sh->phase = PHASE_BETWEEN;
    }
    return s;
}

/* The file at path is one complete numbered checkpoint: returns its number. */
static uint64_t check_numbered(const char *path) {
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(path, &c));
    uint64_t seq = 0, end = 0;
    assert_ok(gopt_ckpt_get_u64(c, "seq", &seq));
    assert_ok(gopt_ckpt_get_u64(c, "end", &end));
    assert_int_equal(seq, end);
    size_t n = payload_words(seq), half = n / 2, size_a, size_b;
    const void *a, *b;
    assert_ok(gopt_ckpt_find(c, "a", &a, &size_a));
    assert_ok(gopt_ckpt_find(c, "b", &b, &size_b));
    assert_int_equal(size_a, half * 8);
    assert_int_equal(size_b, (n - half) * 8);
    const uint64_t *wa = a, *wb = b;
    for (size_t k = 0; k < half; k++)
        if (wa[k] != payload_word(seq, k)) fail_msg("checkpoint %llu: word %zu differs", (unsigned long long)seq, k);
    for (size_t k = half; k < n; k++)
        if (wb[k - half] != payload_word(seq, k)) fail_msg("checkpoint %llu: word %zu differs", (unsigned long long)seq, k);
    gopt_ckpt_close(c);
    return seq;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_kill9_random_moments(void **state) {
    (void)state;
    test_dir td = make_dir("kill");
    const char *dir = td.path;
    test_dir path_ = joined(dir, "ck.bin");
    const char *path = path_.path;
    uint64_t *buf = malloc(payload_words(4) * sizeof *buf);
    assert_non_null(buf);
    kill_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    /* one write cycle, measured: the delays span 2.5 cycles, so that kills land in every phase */
    double t0 = now_seconds();
    uint64_t seq = 1;
    for (; seq <= 3; seq++) assert_ok(write_numbered(path, seq, buf, NULL));
    double cycle = (now_seconds() - t0) / 3;
    seq--;
    double max_delay = 2.5 * cycle + 0.001;
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    int landed[PHASES] = {0}, after_rename = 0, left_one = 0, commits_in_children = 0;
    double delays[KILL_TRIALS];
    for (int trial = 0; trial < KILL_TRIALS; trial++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        double delay = max_delay * (double)(rng >> 11) / 9007199254740992.0;
        delays[trial] = delay;
        sh->committed = 0;
        sh->phase = PHASE_BETWEEN;
        uint64_t before = seq;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (uint64_t s = before + 1;; s++)
                if (write_numbered(path, s, buf, sh) != GOPT_OK) {
                    fprintf(stderr, "child: %s\n", gopt_last_error());
                    _exit(3);
                }
        }
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) fail_msg("trial %d: the writer failed by itself", trial);
        int phase = sh->phase;
        uint64_t committed = sh->committed ? sh->committed : before;
        if (sh->committed) commits_in_children += (int)(sh->committed - before);
        /* the previous checkpoint loads, and the file is the last committed one, or the one
         * being committed when the kill came after its rename */
        uint64_t found = check_numbered(path);
        if (found != committed && !(phase == PHASE_COMMIT && found == committed + 1))
            fail_msg("trial %d: checkpoint %llu at the path, the last committed is %llu (killed %s)", trial,
                     (unsigned long long)found, (unsigned long long)committed, phase_names[phase]);
        landed[phase]++;
        after_rename += found == committed + 1;
        int temps = count_temps(dir, "ck.bin");
        if (temps > 1 || (phase == PHASE_BETWEEN && temps != 0))
            fail_msg("trial %d: %d temporary files after a kill %s", trial, temps, phase_names[phase]);
        left_one += temps;
        /* the next successful write removes what the dead writer left */
        seq = found + 1;
        assert_ok(write_numbered(path, seq, buf, NULL));
        assert_int_equal(count_temps(dir, "ck.bin"), 0);
        assert_int_equal(check_numbered(path), seq);
    }
    qsort(delays, KILL_TRIALS, sizeof delays[0], cmp_double);
    printf("kill -9: %d trials, one write cycle (2-3 MB, fsync) %.1f ms, delays %.2f..%.2f ms (median %.2f); "
           "landed %s %d, %s %d, %s %d, %s %d (of which %d after the rename: the new checkpoint in place); "
           "%d commits by the children; a temporary file left after %d kills, none after the next write\n",
           KILL_TRIALS, 1e3 * cycle, 1e3 * delays[0], 1e3 * delays[KILL_TRIALS - 1], 1e3 * delays[KILL_TRIALS / 2],
           phase_names[0], landed[0], phase_names[1], landed[1], phase_names[2], landed[2], phase_names[3], landed[3],
           after_rename, commits_in_children, left_one);
    /* kills must have landed mid-write, or the test proves little */
    assert_true(landed[PHASE_ADD] + landed[PHASE_COMMIT] >= KILL_TRIALS / 4);
    munmap(sh, sizeof *sh);
    free(buf);
    rm_rf(dir);
}

/* ---- RLIMIT_FSIZE and the signal state ---------------------------------------------------- */

typedef struct signal_state {
    struct sigaction action;
    int blocked, pending;
} signal_state;

static signal_state signal_state_now(void) {
    signal_state s;
    memset(&s, 0, sizeof s);
    sigaction(SIGXFSZ, NULL, &s.action);
    sigset_t mask, pending;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    sigpending(&pending);
    s.blocked = sigismember(&mask, SIGXFSZ);
    s.pending = sigismember(&pending, SIGXFSZ);
    return s;
}

static int same_signal_state(const signal_state *a, const signal_state *b) {
    return a->action.sa_handler == b->action.sa_handler && a->action.sa_flags == b->action.sa_flags &&
           a->blocked == b->blocked && a->pending == b->pending;
}

static void set_fsize_limit(rlim_t limit) {
    struct rlimit r;
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &r) == 0, "getrlimit");
    r.rlim_cur = limit == RLIM_INFINITY ? r.rlim_max : limit;
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &r) == 0, "setrlimit %llu", (unsigned long long)limit);
}

static volatile sig_atomic_t xfsz_delivered;
static void on_xfsz(int sig) {
    (void)sig;
    xfsz_delivered++;
}

/* Under `limit` bytes: GOPT_EIO naming the limit and the path, nothing left, the previous
 * checkpoint as it was, the signal state as it was. Returns the step the message names. */
static const char *save_over_limit(const model *m, const char *dir, const char *path, rlim_t limit,
                                   const unsigned char *prev, size_t prev_size) {
    static char stage[64];
    signal_state before = signal_state_now();
    set_fsize_limit(limit);
    gopt_clear_error();
    gopt_status s = model_save(m, path, 0);
    set_fsize_limit(RLIM_INFINITY);
    signal_state after = signal_state_now();
    CHILD_CHECK(s == GOPT_EIO, "limit %llu: status %d", (unsigned long long)limit, (int)s);
    CHILD_CHECK(strstr(gopt_last_error(), "RLIMIT_FSIZE") && strstr(gopt_last_error(), path) &&
                    strstr(gopt_last_error(), "File too large"),
                "limit %llu: unclear message", (unsigned long long)limit);
    CHILD_CHECK(count_temps(dir, "ck.bin") == 0, "limit %llu: a temporary file is left", (unsigned long long)limit);
    CHILD_CHECK(same_bytes(path, prev, prev_size), "limit %llu: the previous checkpoint changed",
                (unsigned long long)limit);
    CHILD_CHECK(same_signal_state(&before, &after), "limit %llu: signal state changed (blocked %d->%d, pending %d->%d)",
                (unsigned long long)limit, before.blocked, after.blocked, before.pending, after.pending);
    const char *e = gopt_last_error();
    snprintf(stage, sizeof stage, "%s",
             strstr(e, "writing the header") ? "header" : strstr(e, "section table") ? "table"
             : strstr(e, "writing section") ? "section" : strstr(e, "padding") ? "padding" : "?");
    return stage;
}

static void rlimit_child(const char *dir) {
    test_dir path_ = joined(dir, "ck.bin"), ref_ = joined(dir, "ref.bin");
    const char *path = path_.path, *ref = ref_.path;
    model m;
    model_make(&m);
    model_steps(&m, 3);
    CHILD_CHECK(model_save(&m, path, 0) == GOPT_OK, "previous checkpoint");
    size_t prev_size = 0, ref_size = 0;
    unsigned char *prev = read_all(path, &prev_size);
    model_steps(&m, 2);
    CHILD_CHECK(model_save(&m, ref, 0) == GOPT_OK, "reference checkpoint");
    unsigned char *want = read_all(ref, &ref_size);
    CHILD_CHECK(prev && want && ref_size > 100000, "read back");
    /* SIGXFSZ left at its default action (which ends the process), unblocked */
    const rlim_t limits[] = {10, 64, 100, 4096, ref_size / 3, ref_size - 200, ref_size - 1};
    int seen_header = 0, seen_section = 0, seen_table = 0;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const char *stage = save_over_limit(&m, dir, path, limits[i], prev, prev_size);
        seen_header |= !strcmp(stage, "header");
        seen_section |= !strcmp(stage, "section");
        seen_table |= !strcmp(stage, "table");
    }
    CHILD_CHECK(seen_header && seen_section && seen_table, "not every step failed once (%d %d %d)", seen_header,
                seen_section, seen_table);
    /* a writer whose add failed: its file is gone at once, later calls say why */
    set_fsize_limit(4096);
    gopt_ckpt_writer *w = NULL;
    CHILD_CHECK(gopt_ckpt_writer_begin(path, &w) == GOPT_OK, "begin under 4096 bytes");
    CHILD_CHECK(gopt_ckpt_writer_add(w, "big", want, ref_size) == GOPT_EIO, "add past the limit");
    set_fsize_limit(RLIM_INFINITY);
    CHILD_CHECK(count_temps(dir, "ck.bin") == 0, "the temporary file outlived the failed add");
    CHILD_CHECK(gopt_ckpt_writer_add(w, "small", "x", 1) == GOPT_ESTATE, "add after a failure");
    CHILD_CHECK(gopt_ckpt_writer_commit(w) == GOPT_ESTATE, "commit after a failure");
    /* the caller blocked SIGXFSZ: still blocked, and not left pending by our write */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    save_over_limit(&m, dir, path, ref_size / 2, prev, prev_size);
    /* ... with one already pending: it stays pending (and is the only one) */
    raise(SIGXFSZ);
    save_over_limit(&m, dir, path, ref_size / 2, prev, prev_size);
    const struct timespec zero = {0, 0};
    CHILD_CHECK(sigtimedwait(&set, NULL, &zero) == SIGXFSZ, "the caller's pending SIGXFSZ was taken");
    CHILD_CHECK(sigtimedwait(&set, NULL, &zero) < 0, "a second SIGXFSZ is pending");
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    /* ignored, and handled: the disposition stays, the handler never runs */
    signal(SIGXFSZ, SIG_IGN);
    save_over_limit(&m, dir, path, ref_size / 2, prev, prev_size);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_xfsz;
    sigaction(SIGXFSZ, &sa, NULL);
    save_over_limit(&m, dir, path, ref_size / 2, prev, prev_size);
    CHILD_CHECK(xfsz_delivered == 0, "the handler ran %d times", (int)xfsz_delivered);
    signal(SIGXFSZ, SIG_DFL);
    /* the limit lifted: the retry writes what an unfailed save wrote (no state changed) */
    CHILD_CHECK(model_save(&m, path, 0) == GOPT_OK, "retry");
    CHILD_CHECK(same_bytes(path, want, ref_size), "the retry differs from an unfailed save");
    CHILD_CHECK(count_temps(dir, "ck.bin") == 0, "temporary files after the retry");
    free(prev);
    free(want);
    model_free(&m);
    _exit(0);
}

static void test_file_size_limit(void **state) {
    (void)state;
    test_dir td = make_dir("rlimit");
    const char *dir = td.path;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) rlimit_child(dir);
    wait_child_ok(pid, "checkpoint saves under RLIMIT_FSIZE");
    rm_rf(dir);
}

/* ---- temporary files of dead and live writers ----------------------------------------------- */

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_dead_and_live_temporaries(void **state) {
    (void)state;
    test_dir td = make_dir("stale");
    const char *dir = td.path;
    test_dir path_ = joined(dir, "ck.bin");
    const char *path = path_.path;
    model m;
    model_make(&m);
    assert_ok(model_save(&m, path, 0));
    /* a writer killed between adds: its file stays until the next begin */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gopt_ckpt_writer *w = NULL;
        CHILD_CHECK(gopt_ckpt_writer_begin(path, &w) == GOPT_OK, "begin");
        CHILD_CHECK(gopt_ckpt_writer_add(w, "a", "abc", 3) == GOPT_OK, "add");
        raise(SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(count_temps(dir, "ck.bin"), 1);
    /* a name of the writer's form nobody holds (removed), and names that are not (kept) */
    touch(in_dir(dir, "ck.bin.tmp.Ab3dE9"));
    const char *kept[] = {"ck.bin.tmp.abc", "ck.bin.tmp.abcdefg", "ck.bin.tmp.ab-def", "other.bin.tmp.ABCDEF",
                          "ck.bin.tmpXABCDEF", "xck.bin.tmp.ABCDEF", "victim"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) touch(in_dir(dir, kept[i]));
    assert_int_equal(mkdir(in_dir(dir, "ck.bin.tmp.DIR123"), 0755), 0);
    assert_int_equal(symlink("victim", in_dir(dir, "ck.bin.tmp.LNK123")), 0);
    assert_int_equal(count_temps(dir, "ck.bin"), 2);
    /* a live writer in this process */
    gopt_ckpt_writer *w1 = NULL, *w2 = NULL;
    assert_ok(gopt_ckpt_writer_begin(path, &w1));
    assert_int_equal(count_temps(dir, "ck.bin"), 1); /* its own: the dead one's and Ab3dE9 are gone */
    assert_false(exists(in_dir(dir, "ck.bin.tmp.Ab3dE9")));
    assert_ok(gopt_ckpt_writer_add_u64(w1, "who", 1));
    /* a live writer in another process, waiting for the parent's go to commit */
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gopt_ckpt_writer *w = NULL;
        char c = 'r';
        CHILD_CHECK(gopt_ckpt_writer_begin(path, &w) == GOPT_OK, "begin");
        CHILD_CHECK(gopt_ckpt_writer_add_u64(w, "who", 2) == GOPT_OK, "add");
        CHILD_CHECK(write(ready[1], &c, 1) == 1 && read(go[0], &c, 1) == 1, "pipe");
        CHILD_CHECK(gopt_ckpt_writer_commit(w) == GOPT_OK, "commit after another writer's begin");
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(count_temps(dir, "ck.bin"), 2);
    assert_ok(gopt_ckpt_writer_begin(path, &w2)); /* removes neither live writer's file */
    assert_int_equal(count_temps(dir, "ck.bin"), 3);
    assert_ok(gopt_ckpt_writer_add_u64(w2, "who", 3));
    assert_ok(gopt_ckpt_writer_commit(w1));
    assert_int_equal(write(go[1], "g", 1), 1);
    wait_child_ok(pid, "a second writer of the same path");
    assert_ok(gopt_ckpt_writer_commit(w2)); /* the last commit wins */
    gopt_ckpt *ck = NULL;
    uint64_t who = 0;
    assert_ok(gopt_ckpt_open(path, &ck));
    assert_ok(gopt_ckpt_get_u64(ck, "who", &who));
    assert_int_equal(who, 3);
    gopt_ckpt_close(ck);
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (!exists(in_dir(dir, kept[i]))) fail_msg("%s was removed", kept[i]);
    assert_true(exists(in_dir(dir, "ck.bin.tmp.DIR123")) && exists(in_dir(dir, "ck.bin.tmp.LNK123")));
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
    model_free(&m);
    rm_rf(dir);
}

/* Three processes rewrite one path at once: each begin cleans up while the others create
 * and commit their files; no commit may fail (a cleaner must never take a live file, also
 * not one just created and not yet locked) and the file is always whole. */
#define RACE_WRITERS 3
#define RACE_COMMITS 150

static void test_concurrent_writers(void **state) {
    (void)state;
    test_dir td = make_dir("race");
    const char *dir = td.path;
    test_dir path_ = joined(dir, "ck.bin");
    const char *path = path_.path;
    pid_t pids[RACE_WRITERS];
    fflush(NULL);
    for (int k = 0; k < RACE_WRITERS; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            unsigned char blob[3000];
            for (int i = 0; i < RACE_COMMITS; i++) {
                memset(blob, k * 64 + i % 64, sizeof blob);
                gopt_ckpt_writer *w = NULL;
                CHILD_CHECK(gopt_ckpt_writer_begin(path, &w) == GOPT_OK, "writer %d, commit %d: begin", k, i);
                CHILD_CHECK(gopt_ckpt_writer_add(w, "blob", blob, sizeof blob) == GOPT_OK, "writer %d: add", k);
                CHILD_CHECK(gopt_ckpt_writer_commit(w) == GOPT_OK, "writer %d, commit %d", k, i);
                gopt_ckpt *c = NULL;
                CHILD_CHECK(gopt_ckpt_open(path, &c) == GOPT_OK, "writer %d, commit %d: open", k, i);
                gopt_ckpt_close(c);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < RACE_WRITERS; k++) wait_child_ok(pids[k], "concurrent writer");
    gopt_ckpt *c = NULL;
    assert_ok(gopt_ckpt_open(path, &c));
    gopt_ckpt_close(c);
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    rm_rf(dir);
}

/* ---- a directory the process may not write ------------------------------------------------- */

/* What a forked child still needs of its parent's heap, kept reachable from a global: a
 * child leaves with _exit, and Valgrind's leak check at its exit would otherwise call the
 * parent's buffers lost (scripts/valgrind.sh). */
static void *volatile child_keeps;

static void test_unwritable_directory(void **state) {
    (void)state;
    /* under /tmp, which every user may traverse (the user below must read the old file) */
    char dir[] = "/tmp/gopt_ckpt_fault_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    test_dir path_ = joined(dir, "ck.bin");
    const char *path = path_.path;
    model m;
    model_make(&m);
    assert_ok(model_save(&m, path, 0));
    size_t prev_size;
    unsigned char *prev = read_all(path, &prev_size);
    child_keeps = prev;
    model_steps(&m, 1);
    int root = geteuid() == 0;
    if (!root) assert_int_equal(chmod(dir, 0555), 0); /* root writes anyway: a user without rights below */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (root)
            CHILD_CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0, "becoming nobody");
        gopt_status s = model_save(&m, path, 0);
        CHILD_CHECK(s == GOPT_EIO && strstr(gopt_last_error(), "Permission denied") &&
                        strstr(gopt_last_error(), "no permission to create files") && strstr(gopt_last_error(), path),
                    "status %d", (int)s);
        CHILD_CHECK(same_bytes(path, prev, prev_size), "the previous checkpoint changed");
        _exit(0);
    }
    wait_child_ok(pid, "a checkpoint in a directory without write permission");
    printf("unwritable directory (%s): %s\n", root ? "as user nobody" : "chmod 0555", "clear GOPT_EIO, old file intact");
    assert_int_equal(chmod(dir, 0755), 0);
    assert_ok(model_save(&m, path, 0)); /* allowed again: the retry works */
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    free(prev);
    model_free(&m);
    rm_rf(dir);
}

static int setup_workdir(void **state) {
    (void)state;
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    snprintf(workdir, sizeof workdir, "%s/gopt_ckpt_fault_XXXXXX", cwd);
    return mkdtemp(workdir) ? 0 : -1;
}

static int teardown_workdir(void **state) {
    (void)state;
    rm_rf(workdir);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "disk")) return disk_main();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_random_moments),   cmocka_unit_test(test_file_size_limit),
        cmocka_unit_test(test_dead_and_live_temporaries), cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_unwritable_directory),
    };
    return cmocka_run_group_tests(tests, setup_workdir, teardown_workdir);
}
