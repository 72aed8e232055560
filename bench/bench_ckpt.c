#define _POSIX_C_SOURCE 200809L
/* bench_ckpt: save and load MB/s of a checkpoint through gradopt/checkpoint.h: a synthetic
 * parameter arena of --params floats (one tensor, default 10M = 40 MB) plus the state of SGD
 * with momentum 0.9 after one step (the momentum buffer, 40 MB more), as a trainer saves it:
 *   save = gopt_params_state_save + gopt_optim_state_save into buffers allocated beforehand,
 *          gopt_ckpt_writer_begin, two sections, commit (which fsyncs the file, renames it
 *          over the target and fsyncs the directory);
 *   load = gopt_ckpt_open (reads and checks every CRC) + gopt_ckpt_find of both sections +
 *          gopt_params_state_load + gopt_optim_state_load + close.
 * Against the floor, the same bytes through plain POSIX calls (one thread):
 *   save floor = open(O_CREAT|O_TRUNC) + write of the checkpoint's size + fsync + close;
 *   load floor = open + read of the whole file into a buffer + close;
 * and (--torch) the peer: torch.save of {"model": state_dict, "optim": state_dict} of the
 * same sizes followed by flush + fsync, and torch.load + load_state_dict into the model and
 * the optimizer (bench/torch_ckpt.py). All files go to one fresh temporary directory under
 * --dir (default $TMPDIR or /tmp), so all three write to the same file system; loads read
 * the file just written (from the page cache: the figures are not cold-disk reads).
 *
 *   bench_ckpt [--params N] [--reps R] [--dir DIR] [--torch] [--python PATH] [--quick]
 *
 * Medians over R reps, ours and the floor alternated rep by rep. MB = 1e6 bytes of the file.
 * Machine-readable rows (bench_row):
 *   ROW ckpt.save MB/s ours floor torch
 *   ROW ckpt.load MB/s ours floor torch */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gradopt.h>
#include <gradopt/checkpoint.h>

#include "bench_util.h"
#include "cli.h"

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_ckpt: %s: %s (%s)\n", what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

static void die_errno(const char *what, const char *path) {
    fprintf(stderr, "bench_ckpt: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void floor_save(const char *path, const char *buf, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die_errno("open", path);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die_errno("write", path);
        off += (size_t)w;
    }
    if (fsync(fd) != 0) die_errno("fsync", path);
    if (close(fd) != 0) die_errno("close", path);
}

static void floor_load(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die_errno("open", path);
    size_t off = 0;
    for (;;) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die_errno("read", path);
        if (r == 0 || (off += (size_t)r) == n) break;
    }
    if (off != n) {
        fprintf(stderr, "bench_ckpt: %s: read %zu of %zu bytes\n", path, off, n);
        exit(1);
    }
    close(fd);
}

typedef struct opts {
    int64_t n;
    int reps, torch, quick;
    const char *python, *dir;
} opts;

/* --quick: smaller and fewer, in order (the options given after it still win) */
static int opt_quick(void *base, const char *name, const char *value) {
    opts *o = base;
    (void)name, (void)value;
    o->quick = 1;
    o->n = 2500000;
    o->reps = 3;
    return 0;
}

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--params", "N", CLI_I64, OO(n), 1, 4e9, NULL, "floats in the parameter arena"),
    CLI_O("--reps", "R", CLI_INT, OO(reps), 1, 1000000, NULL, "repetitions (medians)"),
    CLI_O("--dir", "DIR", CLI_STR, OO(dir), 0, 0, NULL, "where the files are written"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "time torch.save / torch.load too (bench/torch_ckpt.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
    {"--quick", NULL, CLI_FN, 0, 0, 0, "", "--params 2500000 --reps 3 (options after it still win)", opt_quick, 0},
};
#undef OO
#define USAGE "bench_ckpt [options]"

int main(int argc, char **argv) {
    opts o = {.n = 10000000, .reps = 5, .dir = getenv("TMPDIR")};
    if (!o.dir || !*o.dir) o.dir = "/tmp";
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    int64_t n = o.n;
    int reps = o.reps, torch = o.torch, quick = o.quick;
    const char *python = o.python, *dir = o.dir;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s/bench_ckpt.XXXXXX", dir) >= (int)sizeof tmp || !mkdtemp(tmp))
        die_errno("mkdtemp in", dir);
    char path[4200], fpath[4200];
    snprintf(path, sizeof path, "%s/ckpt.bin", tmp);
    snprintf(fpath, sizeof fpath, "%s/floor.bin", tmp);

    /* the model: one tensor of n floats, SGD momentum 0.9 stepped once (its buffer exists) */
    gopt_params *p;
    gopt_status s = gopt_params_create(&p);
    if (s) die("gopt_params_create", s);
    int64_t shape[1] = {n};
    if ((s = gopt_params_add(p, "w", 1, shape, GOPT_TAG_WEIGHT, NULL)) || (s = gopt_params_finalize(p)))
        die("gopt_params_add", s);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.01f;
    oc.momentum = 0.9f;
    gopt_optim *opt;
    if ((s = gopt_optim_create(&oc, p, &opt))) die("gopt_optim_create", s);
    float *pv = gopt_params_values(p), *gv = gopt_params_grads(p);
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    for (int64_t i = 0; i < n; i++) {
        pv[i] = gopt_rng_uniform(&rng) - 0.5f;
        gv[i] = 1e-3f * (gopt_rng_uniform(&rng) - 0.5f);
    }
    if ((s = gopt_optim_step(opt))) die("gopt_optim_step", s);

    const size_t psize = gopt_params_state_size(p), osize = gopt_optim_state_size(opt);
    char *pblob = malloc(psize), *oblob = malloc(osize);
    if (!pblob || !oblob) die("state buffers", GOPT_ENOMEM);
    /* one save to learn the file size, and a check that a load restores what was saved */
    if ((s = gopt_params_state_save(p, pblob, psize)) || (s = gopt_optim_state_save(opt, oblob, osize)))
        die("state_save", s);
    gopt_ckpt_writer *w;
    if ((s = gopt_ckpt_writer_begin(path, &w)) || (s = gopt_ckpt_writer_add(w, "params", pblob, psize)) ||
        (s = gopt_ckpt_writer_add(w, "optim", oblob, osize)) || (s = gopt_ckpt_writer_commit(w)))
        die("checkpoint save", s);
    struct stat st;
    if (stat(path, &st) != 0) die_errno("stat", path);
    const size_t bytes = (size_t)st.st_size;
    char *fbuf = malloc(bytes), *rbuf = malloc(bytes);
    if (!fbuf || !rbuf) die("floor buffers", GOPT_ENOMEM);
    memcpy(fbuf, pblob, psize < bytes ? psize : bytes); /* real bytes, every page touched */
    if (bytes > psize) memcpy(fbuf + psize, oblob, bytes - psize < osize ? bytes - psize : osize);
    const float probe = pv[n / 2]; /* what every save holds at n/2 */

    printf("bench_ckpt: %lld params + SGD momentum state, checkpoint file %.1f MB (params blob %zu + optim blob "
           "%zu bytes), %d reps (medians), directory %s%s\n",
           (long long)n, 1e-6 * (double)bytes, psize, osize, reps, tmp, quick ? " (quick)" : "");
    double *ts = malloc(sizeof(double) * (size_t)reps), *tl = malloc(sizeof(double) * (size_t)reps);
    double *fs = malloc(sizeof(double) * (size_t)reps), *fl = malloc(sizeof(double) * (size_t)reps);
    if (!ts || !tl || !fs || !fl) die("timing buffers", GOPT_ENOMEM);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        if ((s = gopt_params_state_save(p, pblob, psize)) || (s = gopt_optim_state_save(opt, oblob, osize)))
            die("state_save", s);
        if ((s = gopt_ckpt_writer_begin(path, &w)) || (s = gopt_ckpt_writer_add(w, "params", pblob, psize)) ||
            (s = gopt_ckpt_writer_add(w, "optim", oblob, osize)) || (s = gopt_ckpt_writer_commit(w)))
            die("checkpoint save", s);
        double t1 = bench_now();
        if (r == 0) pv[n / 2] = probe + 1.0f; /* the load below must put the saved value back */
        floor_save(fpath, fbuf, bytes);
        double t2 = bench_now();
        gopt_ckpt *c;
        const void *d1, *d2;
        size_t n1, n2;
        if ((s = gopt_ckpt_open(path, &c)) || (s = gopt_ckpt_find(c, "params", &d1, &n1)) ||
            (s = gopt_ckpt_find(c, "optim", &d2, &n2)) || (s = gopt_params_state_load(p, d1, n1)) ||
            (s = gopt_optim_state_load(opt, d2, n2)))
            die("checkpoint load", s);
        gopt_ckpt_close(c);
        double t3 = bench_now();
        floor_load(fpath, rbuf, bytes);
        double t4 = bench_now();
        if (pv[n / 2] != probe) {
            fprintf(stderr, "bench_ckpt: the loaded parameters differ from the saved ones\n");
            return 1;
        }
        ts[r] = t1 - t0;
        fs[r] = t2 - t1;
        tl[r] = t3 - t2;
        fl[r] = t4 - t3;
    }
    const double mb = 1e-6 * (double)bytes;
    const double save = mb / bench_median(ts, reps), save_floor = mb / bench_median(fs, reps);
    const double load = mb / bench_median(tl, reps), load_floor = mb / bench_median(fl, reps);
    printf("save: %8.1f MB/s   floor (write + fsync): %8.1f MB/s   ours/floor = %.3f\n", save, save_floor,
           save / save_floor);
    printf("load: %8.1f MB/s   floor (read):          %8.1f MB/s   ours/floor = %.3f\n", load, load_floor,
           load / load_floor);

    double tsave = NAN, tload = NAN;
    if (torch) {
        char args[4400];
        snprintf(args, sizeof args, "--params %lld --reps %d --dir '%s'", (long long)n, reps, tmp);
        FILE *f = bench_torch_open(python, "torch_ckpt.py", args);
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *q;
            if (strncmp(line, "TORCH", 5)) continue;
            fputs(line, stdout);
            if ((q = strstr(line, "save_mb_s="))) tsave = atof(q + 10);
            if ((q = strstr(line, "load_mb_s="))) tload = atof(q + 10);
        }
        int rc = f ? pclose(f) : -1;
        if (isfinite(tsave) && isfinite(tload))
            printf("torch: save %.1f MB/s, load %.1f MB/s -> ours/torch save %.2fx, load %.2fx\n", tsave, tload,
                   save / tsave, load / tload);
        else
            printf("torch run failed (python3 with torch not found, or bench/torch_ckpt.py failed, status %d)\n", rc);
    }
    bench_row("ckpt.save", "MB/s", save, save_floor, tsave);
    bench_row("ckpt.load", "MB/s", load, load_floor, tload);

    unlink(path);
    unlink(fpath);
    if (rmdir(tmp) != 0) fprintf(stderr, "bench_ckpt: warning: rmdir %s: %s\n", tmp, strerror(errno));
    free(pblob);
    free(oblob);
    free(fbuf);
    free(rbuf);
    free(ts);
    free(tl);
    free(fs);
    free(fl);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
    return 0;
}
