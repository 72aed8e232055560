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
    /* optional (0/NULL: off) */
    const int *marks;    /* indices i of points to mark with a red ring (e.g. the monitor's
                            spikes or explosions), nmarks of them */
    int nmarks;
    int color;           /* 1-based palette index to pin a colour across charts (0: by position) */
    int dashed;          /* draw dashed */
} report_series;

/* Options of a chart (report_chart_default() gives the defaults in brackets). */
typedef struct report_chart {
    const char *title, *xlabel, *ylabel;
    int log_x, log_y;       /* log10 axes (non-positive values skipped) [0, 0] */
    double smooth;          /* in (0, 1): also draw each series smoothed by a bias-corrected
                               EMA with this beta (as TensorBoard's smoothing), bold, with the
                               raw series as a faint line of the same colour [0: raw only] */
    double xmin, xmax;      /* fixed x range when xmin < xmax [auto] */
    double ymin, ymax;      /* fixed y range when ymin < ymax (data units, not log) [auto] */
    const double *hlines;   /* horizontal dashed reference lines at these y values ... */
    const char *const *hline_labels; /* ... labelled (may be NULL) */
    int nhlines;
    int width, height;      /* px [720 x 360; small multiples 340 x 220] (0: the default) */
    int legend;             /* 1: legend at the right [1; small multiples 0, the title names
                               the panel] */
} report_chart;

report_chart report_chart_default(void);

/* The bias-corrected EMA of report_chart.smooth (TensorBoard's smoothing) over y[0..n):
 * s_t = beta s_{t-1} + (1 - beta) y_t with s_0 = 0, out = s_t / (1 - beta^t), where t counts
 * the finite values so far; a non-finite y[i] leaves the state as it is and gives out[i] = NAN.
 * out may be NULL. Returns the last smoothed value (NAN when no y is finite). */
double report_ema(const double *y, int n, double beta, double *out);

/* A chart of ns series with the given options. */
void report_chart_draw(FILE *f, const report_chart *c, const report_series *s, int ns);

/* One panel of a small-multiples grid. */
typedef struct report_panel {
    const char *title;        /* the panel's heading (e.g. "Adam + clip") */
    const report_series *s;
    int ns;
    const double *hlines;     /* per-panel reference lines (e.g. the clip threshold) */
    const char *const *hline_labels;
    int nhlines;
    const char *note;         /* a line of text under the panel, e.g. "clipped 34% of steps" */
} report_panel;

/* A grid of np panels, `cols` per row, sharing one x and one y range (computed over all
 * panels unless `common` fixes them) so that panels compare at a glance; one legend for
 * the grid under it when the panels' series share names. common's title heads the grid. */
void report_small_multiples(FILE *f, const report_chart *common, const report_panel *p, int np, int cols);

/* A table row helper: writes "<tr>" + cells + "</tr>"; each cell is HTML (not escaped). */
void report_row(FILE *f, int header, int ncells, const char *const *cells);

/* A line chart of ns series with axes, ticks, a legend and a title. log_y plots log10(y)
 * (non-positive values are skipped). Shorthand for report_chart_draw with the defaults. */
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
