#define _POSIX_C_SOURCE 200809L
/* Parser of `gradopt-trajectory 1` files (tests/trajectory/FORMAT.md). Every malformed input
 * is an error naming the file and line; nothing is trusted: counts, indices, shapes and the
 * order of records are checked before anything is stored. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traj.h"

typedef struct reader {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int lineno;
    char *err;
    size_t errsize;
} reader;

#define MAX_TOKENS 64

static int fail(reader *rd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(rd->err, rd->errsize, "%s:%d: ", rd->path, rd->lineno > 0 ? rd->lineno : 1);
    if (n < 0 || (size_t)n >= rd->errsize) n = 0;
    vsnprintf(rd->err + n, rd->errsize - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Next line that is neither empty nor a comment; 0 at end of file, -1 on a NUL byte. */
static int next_line(reader *rd) {
    for (;;) {
        ssize_t n = getline(&rd->line, &rd->cap, rd->f);
        if (n < 0) return 0;
        rd->lineno++;
        if ((size_t)n != strlen(rd->line)) return fail(rd, "NUL byte in the line");
        while (n > 0 && (rd->line[n - 1] == '\n' || rd->line[n - 1] == '\r')) rd->line[--n] = '\0';
        char *p = rd->line;
        while (isspace((unsigned char)*p)) p++;
        if (*p && *p != '#') return 1;
    }
}

static int split(char *s, char **tok, int max) {
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == max) return -1;
        tok[n++] = t;
    }
    return n;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return 0;
    *out = v;
    return 1;
}

const char *traj_get(const traj_kvs *k, const char *key) {
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->kv[i].key, key)) return k->kv[i].value;
    return NULL;
}

static int parse_kvs(reader *rd, const char *what, char **tok, int ntok, traj_kvs *out) {
    if (out->present) return fail(rd, "second '%s' line", what);
    out->present = 1;
    out->line = rd->lineno;
    for (int i = 0; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i] || !eq[1]) return fail(rd, "%s: expected key=value, got '%s'", what, tok[i]);
        *eq = '\0';
        if (strlen(tok[i]) >= sizeof out->kv[0].key) return fail(rd, "%s: key '%.40s...' is too long", what, tok[i]);
        if (strlen(eq + 1) >= sizeof out->kv[0].value) return fail(rd, "%s: value of '%s' is too long", what, tok[i]);
        if (traj_get(out, tok[i])) return fail(rd, "%s: key '%s' given twice", what, tok[i]);
        if (out->n == TRAJ_MAX_KV) return fail(rd, "%s: more than %d keys", what, TRAJ_MAX_KV);
        strcpy(out->kv[out->n].key, tok[i]);
        strcpy(out->kv[out->n].value, eq + 1);
        out->n++;
    }
    return 0;
}

/* The values line after a tensor header: exactly n numbers (nan and inf allowed). */
static int read_values(reader *rd, float *dst, int64_t n, const char *what) {
    int r = next_line(rd);
    if (r < 0) return -1;
    if (r == 0) return fail(rd, "end of file where the %lld values of %s were expected", (long long)n, what);
    char *p = rd->line;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) return fail(rd, "%s: %lld values, expected %lld", what, (long long)i, (long long)n);
        double v = strtod(p, &end);
        if (end == p || (*end && !isspace((unsigned char)*end)))
            return fail(rd, "%s: value %lld is not a number", what, (long long)i);
        dst[i] = (float)v;
        p = end;
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return fail(rd, "%s: more than the %lld values the header announced", what, (long long)n);
    return 0;
}

/* "<ndim> <d0> ..." at tok[0..]: exactly ndim dims must follow. */
static int parse_shape(reader *rd, char **tok, int ntok, int *ndim, int64_t shape[4], int64_t *numel) {
    long nd, d;
    if (ntok < 1 || !parse_int(tok[0], 1, 4, &nd)) return fail(rd, "expected a tensor rank 1..4");
    if (ntok - 1 != nd) return fail(rd, "rank %ld but %d dims", nd, ntok - 1);
    *numel = 1;
    for (int i = 0; i < nd; i++) {
        if (!parse_int(tok[1 + i], 1, TRAJ_MAX_NUMEL, &d)) return fail(rd, "bad dimension '%s'", tok[1 + i]);
        shape[i] = d;
        *numel *= d;
        if (*numel > TRAJ_MAX_NUMEL) return fail(rd, "tensor larger than %ld elements", TRAJ_MAX_NUMEL);
    }
    *ndim = (int)nd;
    return 0;
}

/* Called at the first per-step record: the layout is fixed from here on. */
static int freeze(reader *rd, traj *t) {
    if (t->grad) return 0;
    if (!t->steps) return fail(rd, "per-step record before 'steps'");
    if (t->ntensors == 0) return fail(rd, "per-step record before any 'tensor'");
    t->numel = 0;
    for (int i = 0; i < t->ntensors; i++) {
        if (!t->tensor[i].present) return fail(rd, "tensor %d is missing (tensors are 0..%d)", i, t->ntensors - 1);
        t->tensor[i].offset = t->numel;
        t->numel += t->tensor[i].numel;
    }
    if (t->numel * (int64_t)t->steps * t->accum > 64L * TRAJ_MAX_NUMEL)
        return fail(rd, "%d steps x %d micro-batches x %lld values is too large", t->steps, t->accum, (long long)t->numel);
    size_t sm = (size_t)t->steps * (size_t)t->accum, s = (size_t)t->steps, nt = (size_t)t->ntensors;
    t->grad = calloc(sm * (size_t)t->numel, sizeof *t->grad);
    t->grad_seen = calloc(sm * nt, 1);
    t->loss = calloc(sm, sizeof *t->loss);
    t->loss_seen = calloc(sm, 1);
    t->metric = calloc(s, sizeof *t->metric);
    t->metric_seen = calloc(s, 1);
    t->exp_lr = calloc((s + 1) * TRAJ_MAX_GROUPS, sizeof *t->exp_lr);
    t->exp_mom = calloc((s + 1) * TRAJ_MAX_GROUPS, sizeof *t->exp_mom);
    t->lr_seen = calloc((s + 1) * TRAJ_MAX_GROUPS, 1);
    t->mom_seen = calloc((s + 1) * TRAJ_MAX_GROUPS, 1);
    t->exp_applied = malloc(s);
    t->exp_param = calloc(s * (size_t)t->numel, sizeof *t->exp_param);
    t->param_seen = calloc(s * nt, 1);
    if (!t->grad || !t->grad_seen || !t->loss || !t->loss_seen || !t->metric || !t->metric_seen || !t->exp_lr ||
        !t->exp_mom || !t->lr_seen || !t->mom_seen || !t->exp_applied || !t->exp_param || !t->param_seen)
        return fail(rd, "out of memory");
    memset(t->exp_applied, -1, s);
    return 0;
}

static int parse_step_record(reader *rd, traj *t, char **tok, int ntok) {
    long step, micro, idx, g;
    const char *w = tok[0];
    if (freeze(rd, t)) return -1;
    if (!strcmp(w, "grad") || (!strcmp(w, "expect") && ntok > 1 && !strcmp(tok[1], "param"))) {
        int is_grad = !strcmp(w, "grad");
        int at = is_grad ? 1 : 2, need = is_grad ? 3 : 2;
        if (ntok < at + need) return fail(rd, "%s: expected %s<tensor> <ndim> <dims>", w, is_grad ? "<step> <micro> " : "<step> ");
        if (!parse_int(tok[at], 1, t->steps, &step)) return fail(rd, "%s: step '%s' is not in 1..%d", w, tok[at], t->steps);
        micro = 1;
        if (is_grad && !parse_int(tok[at + 1], 1, t->accum, &micro))
            return fail(rd, "grad: micro-batch '%s' is not in 1..%d (accum)", tok[at + 1], t->accum);
        const char *ti = tok[at + need - 1];
        if (!parse_int(ti, 0, t->ntensors - 1, &idx)) return fail(rd, "%s: tensor '%s' is not in 0..%d", w, ti, t->ntensors - 1);
        int ndim;
        int64_t shape[4], numel;
        if (parse_shape(rd, tok + at + need, ntok - at - need, &ndim, shape, &numel)) return -1;
        const traj_tensor *x = &t->tensor[idx];
        if (ndim != x->ndim || memcmp(shape, x->shape, (size_t)ndim * sizeof *shape))
            return fail(rd, "%s: shape differs from tensor %ld's", w, idx);
        char what[64];
        snprintf(what, sizeof what, "%s of step %ld tensor %ld", is_grad ? "grad" : "expect param", step, idx);
        if (is_grad) {
            size_t row = (size_t)(step - 1) * (size_t)t->accum + (size_t)(micro - 1);
            unsigned char *seen = &t->grad_seen[row * (size_t)t->ntensors + (size_t)idx];
            if (*seen) return fail(rd, "%s (micro-batch %ld) given twice", what, micro);
            *seen = 1;
            return read_values(rd, t->grad + row * (size_t)t->numel + x->offset, numel, what);
        }
        unsigned char *seen = &t->param_seen[(size_t)(step - 1) * (size_t)t->ntensors + (size_t)idx];
        if (*seen) return fail(rd, "%s given twice", what);
        *seen = 1;
        return read_values(rd, t->exp_param + (size_t)(step - 1) * (size_t)t->numel + x->offset, numel, what);
    }
    double v;
    if (!strcmp(w, "loss")) {
        if (ntok != 4) return fail(rd, "loss: expected 'loss <step> <micro> <value>'");
        if (!parse_int(tok[1], 1, t->steps, &step)) return fail(rd, "loss: step '%s' is not in 1..%d", tok[1], t->steps);
        if (!parse_int(tok[2], 1, t->accum, &micro)) return fail(rd, "loss: micro-batch '%s' is not in 1..%d", tok[2], t->accum);
        if (!parse_num(tok[3], &v)) return fail(rd, "loss: '%s' is not a number", tok[3]);
        size_t row = (size_t)(step - 1) * (size_t)t->accum + (size_t)(micro - 1);
        if (t->loss_seen[row]) return fail(rd, "loss of step %ld micro-batch %ld given twice", step, micro);
        t->loss_seen[row] = 1;
        t->loss[row] = v;
        return 0;
    }
    if (!strcmp(w, "metric")) {
        if (ntok != 3) return fail(rd, "metric: expected 'metric <step> <value>'");
        if (!parse_int(tok[1], 1, t->steps, &step)) return fail(rd, "metric: step '%s' is not in 1..%d", tok[1], t->steps);
        if (!parse_num(tok[2], &v)) return fail(rd, "metric: '%s' is not a number", tok[2]);
        if (t->metric_seen[step - 1]) return fail(rd, "metric of step %ld given twice", step);
        t->metric_seen[step - 1] = 1;
        t->metric[step - 1] = v;
        return 0;
    }
    if (!strcmp(w, "expect") && ntok > 1 && !strcmp(tok[1], "applied")) {
        long a;
        if (ntok != 4) return fail(rd, "expect applied: expected 'expect applied <step> 0|1'");
        if (!parse_int(tok[2], 1, t->steps, &step)) return fail(rd, "expect applied: step '%s' is not in 1..%d", tok[2], t->steps);
        if (!parse_int(tok[3], 0, 1, &a)) return fail(rd, "expect applied: '%s' is not 0 or 1", tok[3]);
        if (t->exp_applied[step - 1] >= 0) return fail(rd, "expect applied of step %ld given twice", step);
        t->exp_applied[step - 1] = (signed char)a;
        return 0;
    }
    if (!strcmp(w, "expect") && ntok > 1 && (!strcmp(tok[1], "lr") || !strcmp(tok[1], "momentum"))) {
        int is_lr = !strcmp(tok[1], "lr");
        if (ntok != 5) return fail(rd, "expect %s: expected 'expect %s <step> <group> <value>'", tok[1], tok[1]);
        if (!parse_int(tok[2], 0, t->steps, &step)) return fail(rd, "expect %s: step '%s' is not in 0..%d", tok[1], tok[2], t->steps);
        if (!parse_int(tok[3], 0, t->ngroups - 1, &g)) return fail(rd, "expect %s: group '%s' is not in 0..%d", tok[1], tok[3], t->ngroups - 1);
        if (!parse_num(tok[4], &v)) return fail(rd, "expect %s: '%s' is not a number", tok[1], tok[4]);
        size_t at = (size_t)step * TRAJ_MAX_GROUPS + (size_t)g;
        unsigned char *seen = is_lr ? &t->lr_seen[at] : &t->mom_seen[at];
        if (*seen) return fail(rd, "expect %s of step %ld group %ld given twice", tok[1], step, g);
        *seen = 1;
        (is_lr ? t->exp_lr : t->exp_mom)[at] = v;
        return 0;
    }
    return fail(rd, "unknown record '%s'", w);
}

/* Header records: they must all come before the first per-step record. */
static int parse_header_record(reader *rd, traj *t, char **tok, int ntok) {
    const char *w = tok[0];
    long v;
    if (t->grad) return fail(rd, "'%s' after the first per-step record", w);
    if (!strcmp(w, "name")) {
        if (ntok != 2 || strlen(tok[1]) >= sizeof t->name) return fail(rd, "name: expected one word of < %zu bytes", sizeof t->name);
        if (t->name[0]) return fail(rd, "second 'name' line");
        strcpy(t->name, tok[1]);
        return 0;
    }
    if (!strcmp(w, "optim")) return parse_kvs(rd, "optim", tok + 1, ntok - 1, &t->optim);
    if (!strcmp(w, "lookahead")) return parse_kvs(rd, "lookahead", tok + 1, ntok - 1, &t->lookahead);
    if (!strcmp(w, "sched")) return parse_kvs(rd, "sched", tok + 1, ntok - 1, &t->sched);
    if (!strcmp(w, "monitor")) return parse_kvs(rd, "monitor", tok + 1, ntok - 1, &t->monitor);
    if (!strcmp(w, "child")) {
        if (ntok < 2 || !parse_int(tok[1], 0, TRAJ_MAX_CHILDREN - 1, &v))
            return fail(rd, "child: expected 'child <index 0..%d> key=value...'", TRAJ_MAX_CHILDREN - 1);
        if (v != t->nchildren) return fail(rd, "child %ld: children must be numbered 0, 1, ... in order (expected %d)", v, t->nchildren);
        t->nchildren++;
        return parse_kvs(rd, "child", tok + 2, ntok - 2, &t->child[v]);
    }
    if (!strcmp(w, "group")) {
        if (ntok < 2 || !parse_int(tok[1], 0, TRAJ_MAX_GROUPS - 1, &v))
            return fail(rd, "group: expected 'group <index 0..%d> key=value...'", TRAJ_MAX_GROUPS - 1);
        if (v + 1 > t->ngroups) t->ngroups = (int)v + 1;
        return parse_kvs(rd, "group", tok + 2, ntok - 2, &t->group[v]);
    }
    if (!strcmp(w, "clip")) {
        if (ntok < 2 || (strcmp(tok[1], "norm") && strcmp(tok[1], "value"))) return fail(rd, "clip: expected 'clip norm|value key=value...'");
        strcpy(t->clip_mode, tok[1]);
        return parse_kvs(rd, "clip", tok + 2, ntok - 2, &t->clip);
    }
    if (!strcmp(w, "accum")) {
        if (t->accum != 1 || ntok != 2 || strncmp(tok[1], "k=", 2) || !parse_int(tok[1] + 2, 1, TRAJ_MAX_ACCUM, &v))
            return fail(rd, "accum: expected one 'accum k=<1..%d>' line", TRAJ_MAX_ACCUM);
        t->accum = (int)v;
        return 0;
    }
    if (!strcmp(w, "steps") || !strcmp(w, "resume")) {
        int *dst = !strcmp(w, "steps") ? &t->steps : &t->resume;
        if (*dst || ntok != 2 || !parse_int(tok[1], 1, TRAJ_MAX_STEPS, &v)) return fail(rd, "%s: expected one '%s <1..%d>' line", w, w, TRAJ_MAX_STEPS);
        *dst = (int)v;
        return 0;
    }
    if (!strcmp(w, "tensor")) {
        long g = 0;
        if (ntok < 4 || !parse_int(tok[1], 0, TRAJ_MAX_TENSORS - 1, &v) || strncmp(tok[2], "group=", 6) ||
            !parse_int(tok[2] + 6, 0, TRAJ_MAX_GROUPS - 1, &g))
            return fail(rd, "tensor: expected 'tensor <index 0..%d> group=<0..%d> <ndim> <dims>'", TRAJ_MAX_TENSORS - 1,
                        TRAJ_MAX_GROUPS - 1);
        traj_tensor *x = &t->tensor[v];
        if (x->present) return fail(rd, "tensor %ld given twice", v);
        if (parse_shape(rd, tok + 3, ntok - 3, &x->ndim, x->shape, &x->numel)) return -1;
        if (t->numel + x->numel > TRAJ_MAX_NUMEL) return fail(rd, "tensors larger than %ld elements together", TRAJ_MAX_NUMEL);
        t->numel += x->numel; /* recomputed in index order by freeze */
        x->present = 1;
        x->line = rd->lineno;
        x->group = (int)g;
        if (g + 1 > t->ngroups) t->ngroups = (int)g + 1;
        if (v + 1 > t->ntensors) t->ntensors = (int)v + 1;
        x->init = malloc((size_t)x->numel * sizeof *x->init);
        if (!x->init) return fail(rd, "out of memory");
        char what[32];
        snprintf(what, sizeof what, "tensor %ld", v);
        return read_values(rd, x->init, x->numel, what);
    }
    return fail(rd, "unknown record '%s'", w);
}

void traj_free(traj *t) {
    for (int i = 0; i < TRAJ_MAX_TENSORS; i++) free(t->tensor[i].init);
    free(t->grad);
    free(t->grad_seen);
    free(t->loss);
    free(t->loss_seen);
    free(t->metric);
    free(t->metric_seen);
    free(t->exp_lr);
    free(t->exp_mom);
    free(t->lr_seen);
    free(t->mom_seen);
    free(t->exp_applied);
    free(t->exp_param);
    free(t->param_seen);
    memset(t, 0, sizeof *t);
}

/* What must hold once the whole file is read. */
static int check_complete(reader *rd, traj *t) {
    if (!t->name[0]) return fail(rd, "no 'name' line");
    if (!t->optim.present) return fail(rd, "no 'optim' line");
    if (!t->grad) return fail(rd, "no per-step records");
    if (t->nchildren && !t->sched.present) return fail(rd, "'child' lines without a 'sched' line");
    if (t->resume >= t->steps) return fail(rd, "resume %d must be before the last step %d", t->resume, t->steps);
    for (int g = 0; g < t->ngroups; g++) {
        int used = 0;
        for (int i = 0; i < t->ntensors; i++) used |= t->tensor[i].group == g;
        if (!used) return fail(rd, "group %d holds no tensor", g);
    }
    for (int s = 1; s <= t->steps; s++)
        for (int m = 1; m <= t->accum; m++)
            for (int i = 0; i < t->ntensors; i++)
                if (!t->grad_seen[((size_t)(s - 1) * (size_t)t->accum + (size_t)(m - 1)) * (size_t)t->ntensors + (size_t)i])
                    return fail(rd, "no grad for step %d micro-batch %d tensor %d", s, m, i);
    return 0;
}

int traj_parse(const char *path, traj *t, char *err, size_t errsize) {
    memset(t, 0, sizeof *t);
    t->path = path;
    t->accum = 1;
    reader rd = {0};
    rd.path = path;
    rd.err = err;
    rd.errsize = errsize;
    rd.f = fopen(path, "r");
    if (!rd.f) {
        snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = next_line(&rd);
    if (rc == 0) rc = fail(&rd, "empty file");
    else if (rc > 0 && strcmp(rd.line, "gradopt-trajectory 1") != 0) rc = fail(&rd, "not a 'gradopt-trajectory 1' file");
    else rc = 0;
    int ended = 0;
    char *tok[MAX_TOKENS];
    while (rc == 0) {
        int r = next_line(&rd);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 0) {
            if (!ended) rc = fail(&rd, "end of file before 'end'");
            break;
        }
        if (ended) {
            rc = fail(&rd, "text after 'end'");
            break;
        }
        int ntok = split(rd.line, tok, MAX_TOKENS);
        if (ntok < 0) {
            rc = fail(&rd, "more than %d words", MAX_TOKENS);
            break;
        }
        if (!strcmp(tok[0], "end")) {
            if (ntok != 1) rc = fail(&rd, "'end' takes nothing");
            else rc = check_complete(&rd, t);
            ended = 1;
            continue;
        }
        int per_step = !strcmp(tok[0], "grad") || !strcmp(tok[0], "loss") || !strcmp(tok[0], "metric") || !strcmp(tok[0], "expect");
        rc = per_step ? parse_step_record(&rd, t, tok, ntok) : parse_header_record(&rd, t, tok, ntok);
    }
    free(rd.line);
    fclose(rd.f);
    if (rc) traj_free(t);
    return rc ? -1 : 0;
}
