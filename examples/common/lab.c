/* See lab.h: what the three scenarios share. */
#define _POSIX_C_SOURCE 200809L
#include "lab.h"

#include <stdlib.h>

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
