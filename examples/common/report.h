/* Offline HTML report pieces for the example programs: inline SVG line charts (linear or
 * log y), a heat map with marked cells, and HTML escaping. No JavaScript, no external
 * files: the page opens anywhere. */
#ifndef GOPT_EXAMPLES_REPORT_H
#define GOPT_EXAMPLES_REPORT_H

#include <stdio.h>

typedef struct report_series {
    const char *name;
    const double *x, *y; /* n points; non-finite y values break the line */
    int n;
} report_series;

/* A line chart of ns series with axes, ticks, a legend and a title. log_y plots log10(y)
 * (non-positive values are skipped). */
void report_line_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                       const report_series *s, int ns, int log_y);

/* A heat map: values[r * ncols + c]; cells with marked[r * ncols + c] != 0 are drawn
 * hatched and labelled with mark_label (e.g. "div"). NAN values are drawn grey. Lower is
 * better: colours run from green (min) to red (max). */
void report_heatmap(FILE *f, const char *title, const char *const *row_names, int nrows,
                    const char *const *col_names, int ncols, const double *values, const int *marked,
                    const char *mark_label);

/* Write s with &, <, >, " escaped. */
void report_escape(FILE *f, const char *s);

/* Start and end a self-contained page. */
void report_begin(FILE *f, const char *title);
void report_end(FILE *f);

#endif
