/* See lab.h: what the three scenarios share. */
#define _POSIX_C_SOURCE 200809L
#include "lab.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lab_median_first(const double *v, int count, int n) {
    double buf[256];
    int k = 0;
    for (int i = 0; i < count && i < n && k < 256; i++)
        if (isfinite(v[i])) buf[k++] = v[i];
    if (!k) return NAN;
    qsort(buf, (size_t)k, sizeof buf[0], cmp_double);
    return k % 2 ? buf[k / 2] : 0.5 * (buf[k / 2 - 1] + buf[k / 2]);
}

void lab_timing(const lab_options *o, const char *scenario, const char *item, double seconds) {
    if (!o || !o->timing) return;
    fprintf(o->timing, "%s,%s,%.3f\n", scenario, item, seconds);
    fflush(o->timing);
}

int lab_html_open(lab_html *h) {
    h->buf = NULL;
    h->len = 0;
    h->f = open_memstream(&h->buf, &h->len);
    if (!h->f) {
        fprintf(stderr, "error: out of memory (report section)\n");
        return -1;
    }
    return 0;
}

char *lab_html_close(lab_html *h) {
    if (!h->f) return NULL;
    int bad = ferror(h->f);
    if (fclose(h->f) || bad) {
        free(h->buf);
        h->buf = NULL;
        fprintf(stderr, "error: out of memory (report section)\n");
    }
    h->f = NULL;
    char *s = h->buf;
    h->buf = NULL;
    return s;
}
