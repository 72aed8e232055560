#define _POSIX_C_SOURCE 200809L
/* golden_runner FILE...: run every case in each file against libgradopt, print the worst
 * error per case, end with "N passed, M failed". Exit status 0 only if every case passed
 * and every file parsed. A file that cannot be parsed names its line. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"

/* Runners are weak references: a kind whose runner file is not linked is unsupported. */
#pragma weak golden_run_optimizer
#pragma weak golden_run_scheduler
#pragma weak golden_run_clip
#pragma weak golden_run_layer
#pragma weak golden_run_loss
#pragma weak golden_run_average

/* ---- access and comparison helpers --------------------------------------------------- */

const char *golden_kv_get(const golden_kv *kv, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0) return kv[i].value;
    return NULL;
}

const char *golden_cfg(const golden_case *c, const char *key) { return golden_kv_get(c->config, c->nconfig, key); }

double golden_cfg_num(const golden_case *c, const char *key, double dflt) {
    const char *v = golden_cfg(c, key);
    if (!v) return dflt;
    if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0) return 1;
    if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0) return 0;
    if (strcmp(v, "inf") == 0) return INFINITY;
    return strtod(v, NULL);
}

const golden_record *golden_find(const golden_case *c, const char *w0, const char *w1, long i0, long i1) {
    for (int i = 0; i < c->nrecords; i++) {
        const golden_record *r = &c->records[i];
        if (r->nwords < 1 || strcmp(r->words[0], w0) != 0) continue;
        if (w1 && (r->nwords < 2 || strcmp(r->words[1], w1) != 0)) continue;
        if (i0 >= 0 && (r->nidx < 1 || r->idx[0] != i0)) continue;
        if (i1 >= 0 && (r->nidx < 2 || r->idx[1] != i1)) continue;
        return r;
    }
    return NULL;
}

static void note_error(golden_result *r, const char *what, double got, double want, double atol, double rtol) {
    r->compared++;
    if (!isfinite(got) && isfinite(want)) {
        if (!r->nonfinite) snprintf(r->worst_what, sizeof r->worst_what, "%s (got %g, want %g)", what, got, want);
        r->nonfinite++;
        r->worst_ratio = INFINITY;
        return;
    }
    if (!isfinite(want)) {
        if (got == want || (isnan(got) && isnan(want))) return;
        r->worst_ratio = INFINITY;
        snprintf(r->worst_what, sizeof r->worst_what, "%s (got %g, want %g)", what, got, want);
        return;
    }
    double err = fabs(got - want);
    double ratio = err / (atol + rtol * fabs(want));
    if (err > r->worst_abs) r->worst_abs = err;
    if (ratio > r->worst_ratio) {
        r->worst_ratio = ratio;
        snprintf(r->worst_what, sizeof r->worst_what, "%s (got %.9g, want %.9g)", what, got, want);
    }
}

void golden_compare(golden_result *r, const char *what, const float *got, const double *want, int64_t n,
                    double atol, double rtol) {
    char label[96];
    for (int64_t i = 0; i < n; i++) {
        snprintf(label, sizeof label, "%s[%lld]", what, (long long)i);
        note_error(r, label, got[i], want[i], atol, rtol);
    }
}

void golden_compare_scalar(golden_result *r, const char *what, double got, double want, double atol, double rtol) {
    note_error(r, what, got, want, atol, rtol);
}

int golden_fail(golden_result *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- parser ---------------------------------------------------------------------------- */

typedef struct reader {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int lineno;
    char err[512];
} reader;

#define MAX_TOKENS 64

/* Next non-empty line split into tokens (the line buffer is modified); 0 at EOF. Values
 * lines can be long, so they are read by read_values, not split here. */
static int next_line(reader *rd) {
    for (;;) {
        ssize_t n = getline(&rd->line, &rd->cap, rd->f);
        if (n < 0) return 0;
        rd->lineno++;
        while (n > 0 && (rd->line[n - 1] == '\n' || rd->line[n - 1] == '\r')) rd->line[--n] = '\0';
        char *p = rd->line;
        while (isspace((unsigned char)*p)) p++;
        if (*p && *p != '#') return 1;
    }
}

static int split(char *s, char **tok, int max) {
    int n = 0;
    for (char *t = strtok(s, " \t"); t; t = strtok(NULL, " \t")) {
        if (n == max) return -1;
        tok[n++] = t;
    }
    return n;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) return 0;
    *out = v;
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int fail_parse(reader *rd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(rd->err, sizeof rd->err, "%s:%d: ", rd->path, rd->lineno);
    vsnprintf(rd->err + n, sizeof rd->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_kv(reader *rd, char **tok, int ntok, golden_kv *kv, int *nkv) {
    for (int i = 0; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i]) return fail_parse(rd, "expected key=value, got '%s'", tok[i]);
        if (*nkv == GOLDEN_MAX_KV) return fail_parse(rd, "more than %d key=value pairs", GOLDEN_MAX_KV);
        *eq = '\0';
        kv[*nkv].key = dup_str(tok[i]);
        kv[*nkv].value = dup_str(eq + 1);
        (*nkv)++;
    }
    return 0;
}

/* How many numeric indices follow the words of a tensor record: the grammar of FORMAT.md,
 * keyed by the last word (grad/expect carry step and tensor for optimizers, the tensor
 * alone for clipping). */
static int index_count(const char *kind, const char *last_word) {
    if (!strcmp(kind, "average") && (!strcmp(last_word, "param") || !strcmp(last_word, "expect"))) return 2;
    if (!strcmp(last_word, "expect_eval")) return 1; /* Schedule-Free's x after the last step */
    if (!strcmp(last_word, "grad") || !strcmp(last_word, "expect")) return !strcmp(kind, "optimizer") ? 2 : 1;
    if (!strcmp(last_word, "param") || !strcmp(last_word, "input") || !strcmp(last_word, "weight") ||
        !strcmp(last_word, "dinput") || !strcmp(last_word, "dweight"))
        return 1;
    return 0;
}

static int read_values(reader *rd, golden_record *r) {
    if (!next_line(rd)) return fail_parse(rd, "end of file where %lld values were expected", (long long)r->numel);
    r->values = malloc((size_t)r->numel * sizeof *r->values);
    r->fvalues = malloc((size_t)r->numel * sizeof *r->fvalues);
    if (!r->values || !r->fvalues) return fail_parse(rd, "out of memory");
    char *p = rd->line;
    for (int64_t i = 0; i < r->numel; i++) {
        char *end;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) return fail_parse(rd, "%lld values, expected %lld", (long long)i, (long long)r->numel);
        double v = strtod(p, &end);
        if (end == p || (*end && !isspace((unsigned char)*end))) return fail_parse(rd, "value %lld is not a number", (long long)i);
        r->values[i] = v;
        r->fvalues[i] = (float)v;
        p = end;
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return fail_parse(rd, "more than the %lld values the header announced", (long long)r->numel);
    return 0;
}

static int parse_record(reader *rd, golden_case *c, char **tok, int ntok) {
    if (c->nrecords == c->capacity) {
        int cap = c->capacity ? 2 * c->capacity : 16;
        golden_record *n = realloc(c->records, (size_t)cap * sizeof *n);
        if (!n) return fail_parse(rd, "out of memory");
        c->records = n;
        c->capacity = cap;
    }
    golden_record *r = &c->records[c->nrecords];
    memset(r, 0, sizeof *r);
    r->line = rd->lineno;
    c->nrecords++;
    if (!strcmp(tok[0], "group")) {
        r->words[0] = dup_str("group");
        r->nwords = 1;
        if (ntok < 2 || !parse_long(tok[1], &r->idx[0])) return fail_parse(rd, "group needs an index");
        r->nidx = 1;
        return parse_kv(rd, tok + 2, ntok - 2, r->kv, &r->nkv);
    }
    int i = 0;
    while (i < ntok && !isdigit((unsigned char)tok[i][0]) && tok[i][0] != '-' && tok[i][0] != '.') {
        if (r->nwords == GOLDEN_MAX_WORDS) return fail_parse(rd, "too many words in a record");
        r->words[r->nwords++] = dup_str(tok[i++]);
    }
    if (r->nwords == 0) return fail_parse(rd, "a record must start with a word, got '%s'", tok[0]);
    if (ntok - i == 1) { /* scalar */
        if (!parse_double(tok[i], &r->scalar)) return fail_parse(rd, "'%s' is not a number", tok[i]);
        r->is_scalar = 1;
        return 0;
    }
    int nidx = index_count(c->kind, r->words[r->nwords - 1]);
    for (int k = 0; k < nidx; k++, i++) {
        if (i >= ntok || !parse_long(tok[i], &r->idx[k])) return fail_parse(rd, "record '%s' needs %d index(es)", r->words[0], nidx);
    }
    r->nidx = nidx;
    long ndim;
    if (i >= ntok || !parse_long(tok[i], &ndim) || ndim < 1 || ndim > 4)
        return fail_parse(rd, "record '%s': expected a tensor rank 1..4", r->words[0]);
    i++;
    if (ntok - i != ndim) return fail_parse(rd, "record '%s': rank %ld but %d dims", r->words[0], ndim, ntok - i);
    r->ndim = (int)ndim;
    r->numel = 1;
    for (int d = 0; d < 4; d++) r->shape[d] = 1;
    for (int d = 0; d < ndim; d++, i++) {
        long dim;
        if (!parse_long(tok[i], &dim) || dim < 1 || dim > (1L << 28)) return fail_parse(rd, "bad dimension '%s'", tok[i]);
        r->shape[d] = dim;
        r->numel *= dim;
        if (r->numel > (1L << 28)) return fail_parse(rd, "tensor too large");
    }
    return read_values(rd, r);
}

static void free_case(golden_case *c) {
    for (int i = 0; i < c->nconfig; i++) {
        free(c->config[i].key);
        free(c->config[i].value);
    }
    for (int i = 0; i < c->nrecords; i++) {
        golden_record *r = &c->records[i];
        for (int w = 0; w < r->nwords; w++) free(r->words[w]);
        for (int k = 0; k < r->nkv; k++) {
            free(r->kv[k].key);
            free(r->kv[k].value);
        }
        free(r->values);
        free(r->fvalues);
    }
    free(c->records);
    free(c->name);
    free(c->kind);
    memset(c, 0, sizeof *c);
}

/* Parse one case starting after its `case` line. 0 ok, -1 parse error. */
static int parse_case(reader *rd, golden_case *c) {
    char *tok[MAX_TOKENS];
    for (;;) {
        if (!next_line(rd)) return fail_parse(rd, "end of file inside case '%s' (no 'end')", c->name);
        char first[32] = "";
        sscanf(rd->line, " %31s", first);
        if (!strcmp(first, "end")) break;
        /* Values lines are consumed by read_values, so a line here is a record header. */
        int ntok = split(rd->line, tok, MAX_TOKENS);
        if (ntok < 0) return fail_parse(rd, "too many tokens");
        if (!strcmp(tok[0], "kind")) {
            if (ntok != 2) return fail_parse(rd, "kind takes one word");
            if (c->kind) return fail_parse(rd, "a second 'kind' in case '%s'", c->name);
            c->kind = dup_str(tok[1]);
        } else if (!strcmp(tok[0], "config")) {
            if (parse_kv(rd, tok + 1, ntok - 1, c->config, &c->nconfig)) return -1;
        } else {
            if (!c->kind) return fail_parse(rd, "record before 'kind'");
            if (parse_record(rd, c, tok, ntok)) return -1;
        }
    }
    if (!c->kind) return fail_parse(rd, "case '%s' has no kind", c->name);
    return 0;
}

static golden_kind_fn runner_for(const char *kind) {
    if (!strcmp(kind, "optimizer")) return golden_run_optimizer;
    if (!strcmp(kind, "scheduler")) return golden_run_scheduler;
    if (!strcmp(kind, "clip")) return golden_run_clip;
    if (!strcmp(kind, "layer")) return golden_run_layer;
    if (!strcmp(kind, "loss")) return golden_run_loss;
    if (!strcmp(kind, "average")) return golden_run_average;
    return NULL;
}

int golden_run_file(const char *path, int run, FILE *out, int *passed, int *failed) {
    reader rd = {0};
    rd.path = path;
    rd.f = fopen(path, "r");
    if (!rd.f) {
        fprintf(out, "FAIL %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    int status = 0;
    if (!next_line(&rd) || strncmp(rd.line, "gradopt-golden 1", 16) != 0) {
        fprintf(out, "FAIL %s:%d: not a 'gradopt-golden 1' file\n", path, rd.lineno);
        status = -1;
    }
    char *tok[MAX_TOKENS];
    while (status == 0 && next_line(&rd)) {
        int ntok = split(rd.line, tok, MAX_TOKENS);
        if (ntok != 2 || strcmp(tok[0], "case") != 0) {
            fprintf(out, "FAIL %s:%d: expected 'case <name>'\n", path, rd.lineno);
            status = -1;
            break;
        }
        golden_case c = {0};
        c.file = path;
        c.line = rd.lineno;
        c.name = dup_str(tok[1]);
        if (parse_case(&rd, &c)) {
            fprintf(out, "FAIL %s\n", rd.err);
            free_case(&c);
            status = -1;
            break;
        }
        if (!run) {
            (*passed)++;
            free_case(&c);
            continue;
        }
        golden_result r = {0};
        golden_kind_fn fn = runner_for(c.kind);
        int rc = fn ? fn(&c, &r) : golden_fail(&r, "kind '%s' is not supported by this build", c.kind);
        if (rc != 0) {
            fprintf(out, "FAIL %-34s %-9s %s\n", c.name, c.kind, r.error);
            (*failed)++;
        } else if (r.compared == 0) {
            fprintf(out, "FAIL %-34s %-9s compared nothing\n", c.name, c.kind);
            (*failed)++;
        } else if (r.worst_ratio > 1.0 || r.nonfinite) {
            fprintf(out, "FAIL %-34s %-9s worst abs err %.3g, %.3gx tolerance at %s\n", c.name, c.kind, r.worst_abs,
                   r.worst_ratio, r.worst_what);
            (*failed)++;
        } else {
            fprintf(out, "ok   %-34s %-9s worst abs err %.3g (%.3f of tolerance, %ld values)\n", c.name, c.kind,
                   r.worst_abs, r.worst_ratio, r.compared);
            (*passed)++;
        }
        free_case(&c);
    }
    free(rd.line);
    fclose(rd.f);
    return status;
}

#ifndef GOLDEN_NO_MAIN
int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.golden...\n", argv[0]);
        return 2;
    }
    int passed = 0, failed = 0, bad_files = 0;
    for (int i = 1; i < argc; i++)
        if (golden_run_file(argv[i], 1, stdout, &passed, &failed) != 0) bad_files++;
    printf("%d passed, %d failed\n", passed, failed + bad_files);
    return (failed || bad_files) ? 1 : 0;
}
#endif
