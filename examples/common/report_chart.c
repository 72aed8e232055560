/* Line charts and small multiples of report.h: inline SVG, no script, no external file.
 *
 * A plot is drawn in "axis units": x (or log10 x) and y (or log10 y). Ranges are computed
 * over the finite points (and the reference lines) unless fixed; ticks are 1-2-5 steps on
 * linear axes and powers of ten on log axes. Smoothing is TensorBoard's: a bias-corrected
 * EMA over the finite values (report_ema). Example code, not library code. */
#include "report.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
                                      "#8c6d31", "#843c39", "#7b4173", "#3182bd"};
#define NPALETTE (int)(sizeof palette / sizeof palette[0])
#define MAXTICKS 48
#define FONT_W 0.6 /* average glyph width of the sans-serif font, in font sizes */

report_chart report_chart_default(void) {
    report_chart c;
    memset(&c, 0, sizeof c);
    c.legend = 1; /* width = height = 0: 720 x 360 (a chart) or 340 x 220 (a panel) */
    return c;
}

double report_ema(const double *y, int n, double beta, double *out) {
    double s = 0, decay = 1, last = NAN; /* decay = beta^t after t finite values */
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            if (out) out[i] = NAN;
            continue;
        }
        s = beta * s + (1 - beta) * y[i];
        decay *= beta;
        last = decay < 1 ? s / (1 - decay) : y[i]; /* beta = 1 would never move: keep y */
        if (out) out[i] = last;
    }
    return last;
}

/* The colour of series s, k-th of its chart (or, in small multiples, k-th distinct name). */
static const char *series_colour(const report_series *s, int k) {
    int i = s->color > 0 ? s->color - 1 : k;
    return palette[i % NPALETTE];
}

/* A value in axis units: log10 on a log axis (NAN when not positive), NAN when not finite. */
static double axis_value(double v, int log_axis) {
    if (!isfinite(v)) return NAN;
    if (log_axis) return v > 0 ? log10(v) : NAN;
    return v;
}

static double point_x(const report_series *s, int i) { return s->x ? s->x[i] : (double)i; }

/* Write s escaped, cut with an ellipsis to at most about width_px at font size fs. */
static void write_fitted(FILE *f, const char *s, double width_px, double fs) {
    if (!s) return;
    int max_chars = (int)(width_px / (FONT_W * fs));
    if (max_chars < 2) max_chars = 2;
    int chars = 0;
    const char *cut = NULL;
    for (const char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80) continue; /* a UTF-8 continuation byte */
        if (chars == max_chars - 1) cut = p;
        chars++;
    }
    if (chars <= max_chars) {
        report_escape(f, s);
        return;
    }
    size_t len = (size_t)(cut - s);
    char buf[512];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    report_escape(f, buf);
    fputs("\xE2\x80\xA6", f); /* U+2026 ellipsis */
}

/* A text element (escaped, fitted into width_px when width_px > 0). */
static void text_el(FILE *f, double x, double y, double fs, const char *attrs, const char *s, double width_px) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\"%s%s>", x, y, fs, attrs ? " " : "", attrs ? attrs : "");
    if (width_px > 0)
        write_fitted(f, s, width_px, fs);
    else
        report_escape(f, s);
    fputs("</text>\n", f);
}

/* The estimated width of s in px at font size fs. */
static double text_width(const char *s, double fs) {
    int chars = 0;
    for (const char *p = s; p && *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    return chars * FONT_W * fs;
}

/* The full text as a tooltip when write_fitted would cut it. */
static int needs_cut(const char *s, double width_px, double fs) {
    if (!s) return 0;
    int chars = 0;
    for (const char *p = s; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    return chars > (int)(width_px / (FONT_W * fs));
}

/* ---- ranges and ticks ---- */

typedef struct range {
    double lo, hi;
} range;

static void range_add(range *r, double v) {
    if (!isfinite(v)) return;
    if (v < r->lo) r->lo = v;
    if (v > r->hi) r->hi = v;
}

static void extent(const report_series *s, int ns, const double *hlines, int nh, int log_x, int log_y, range *xr,
                   range *yr) {
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n && s[k].y; i++) {
            double x = axis_value(point_x(&s[k], i), log_x), y = axis_value(s[k].y[i], log_y);
            if (isnan(x) || isnan(y)) continue;
            range_add(xr, x);
            range_add(yr, y);
        }
    for (int j = 0; j < nh && hlines; j++) range_add(yr, axis_value(hlines[j], log_y));
}

/* The final range in axis units: fixed when lo < hi is given (and valid on a log axis),
 * else the data's, padded by pad of its span; never empty. */
static range final_range(range data, double fixed_lo, double fixed_hi, int log_axis, double pad) {
    if (fixed_lo < fixed_hi) {
        range r = {axis_value(fixed_lo, log_axis), axis_value(fixed_hi, log_axis)};
        if (isfinite(r.lo) && isfinite(r.hi)) return r;
        if (isfinite(r.hi)) { /* log axis with lo <= 0: the data's low end, the given top */
            data.hi = r.hi;
            if (!(data.lo < data.hi)) data.lo = data.hi - 1;
            return data;
        }
    }
    if (!(data.lo <= data.hi)) return (range){0, 1};
    if (data.hi - data.lo <= 1e-9 * fmax(fabs(data.lo), fabs(data.hi))) { /* one value (to rounding) */
        double d = log_axis ? 0.5 : fabs(data.lo) > 0 ? 0.1 * fabs(data.lo) : 0.5;
        return (range){data.lo - d, data.hi + d};
    }
    double p = pad * (data.hi - data.lo);
    return (range){data.lo - p, data.hi + p};
}

typedef struct ticks {
    int n;
    double v[MAXTICKS];     /* axis units */
    char label[MAXTICKS][40];
    int power[MAXTICKS];    /* 1: label is an exponent k, drawn as 10^k */
    int nminor;
    double minor[MAXTICKS]; /* unlabelled grid positions (log axes) */
} ticks;

/* "Nice" tick step for a span (1, 2 or 5 times a power of ten). */
static double nice_step(double span, int target) {
    if (!(span > 0)) return 1;
    double raw = span / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

/* A tick label for v on a grid of the given step: fixed decimals for everyday magnitudes,
 * else %g with the digits the step needs and a short exponent (1.5e6, 2e-5). */
static void format_number(char *buf, size_t size, double v, double step) {
    if (fabs(v) < 1e-9 * step) v = 0;
    double a = fabs(v);
    if (a == 0 || (a >= 1e-3 && a < 1e6 && step >= 1e-4)) {
        int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (decimals > 6) decimals = 6;
        snprintf(buf, size, "%.*f", decimals, v);
        return;
    }
    int digits = (int)(floor(log10(a)) - floor(log10(step) + 1e-9)) + 1;
    if (digits < 1) digits = 1;
    if (digits > 6) digits = 6;
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.*g", digits, v);
    char *e = strchr(tmp, 'e'); /* 1.5e+06 -> 1.5e6, 2e-05 -> 2e-5 */
    if (e) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '+') src++;
        else if (*src == '-') *dst++ = *src++;
        while (*src == '0' && src[1]) src++;
        memmove(dst, src, strlen(src) + 1);
    }
    snprintf(buf, size, "%s", tmp);
}

static void linear_ticks(ticks *t, double lo, double hi, int target, int log_axis) {
    /* on a log axis (a span under a decade or so) the steps are in data units */
    double dlo = log_axis ? pow(10, lo) : lo, dhi = log_axis ? pow(10, hi) : hi;
    double step = nice_step(dhi - dlo, target);
    t->n = 0;
    for (double v = ceil(dlo / step - 1e-9) * step; v <= dhi + 1e-9 * step && t->n < MAXTICKS; v += step) {
        if (log_axis && v <= 0) continue;
        t->v[t->n] = log_axis ? log10(v) : v;
        format_number(t->label[t->n], sizeof t->label[0], v, step);
        t->power[t->n++] = 0;
    }
}

static void make_ticks(ticks *t, double lo, double hi, int log_axis, int target) {
    t->n = t->nminor = 0;
    if (!log_axis) {
        linear_ticks(t, lo, hi, target, 0);
        return;
    }
    int p0 = (int)ceil(lo - 1e-9), p1 = (int)floor(hi + 1e-9), count = p1 - p0 + 1;
    if (count >= 2) {
        int stride = 1;
        while ((count + stride - 1) / stride > target + 1) stride = stride == 1 ? 2 : stride == 2 ? 3 : stride == 3 ? 5 : stride * 2;
        int plain = p0 >= -3 && p1 <= 4; /* 0.001 .. 10000 read better as numbers */
        for (int p = p0; p <= p1 && t->n < MAXTICKS; p++) {
            if (p % stride) continue;
            t->v[t->n] = p;
            if (plain)
                snprintf(t->label[t->n], sizeof t->label[0], "%g", pow(10, p));
            else
                snprintf(t->label[t->n], sizeof t->label[0], "%d", p);
            t->power[t->n++] = !plain;
        }
        if (count <= 6 && stride == 1) /* minor grid at 2..9 x 10^p */
            for (int p = p0 - 1; p <= p1; p++)
                for (int m = 2; m <= 9 && t->nminor < MAXTICKS; m++) {
                    double v = p + log10(m);
                    if (v > lo && v < hi) t->minor[t->nminor++] = v;
                }
        return;
    }
    /* under about a decade: 1-2-5 (or 1..9) times powers of ten, else linear steps */
    static const int m125[] = {1, 2, 5}, m19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int pass = 0; pass < 2; pass++) {
        const int *m = pass ? m19 : m125;
        int nm = pass ? 9 : 3;
        t->n = 0;
        for (int p = (int)floor(lo) - 1; p <= (int)ceil(hi); p++)
            for (int j = 0; j < nm && t->n < MAXTICKS; j++) {
                double v = p + log10(m[j]);
                if (v < lo - 1e-9 || v > hi + 1e-9) continue;
                t->v[t->n] = v;
                snprintf(t->label[t->n], sizeof t->label[0], "%g", m[j] * pow(10, p));
                t->power[t->n++] = 0;
            }
        if (t->n >= 3) return;
    }
    linear_ticks(t, lo, hi, target, 1);
}

/* ---- one plot ---- */

typedef struct frame {
    double x0, y0, w, h; /* the plot area in px */
    range xr, yr;        /* axis units */
    int log_x, log_y;
} frame;

static double px_x(const frame *fr, double ax) { return fr->x0 + (ax - fr->xr.lo) / (fr->xr.hi - fr->xr.lo) * fr->w; }
static double px_y(const frame *fr, double ay) { return fr->y0 + (1 - (ay - fr->yr.lo) / (fr->yr.hi - fr->yr.lo)) * fr->h; }

static void tick_label(FILE *f, const ticks *t, int i) {
    if (t->power[i])
        fprintf(f, "10<tspan dy=\"-5\" font-size=\"8\">%s</tspan>", t->label[i]);
    else
        fputs(t->label[i], f);
}

/* Grid lines, tick labels and the frame of a plot. */
static void draw_axes(FILE *f, const frame *fr) {
    ticks xt, yt;
    make_ticks(&yt, fr->yr.lo, fr->yr.hi, fr->log_y, fr->h < 180 ? 4 : 5);
    /* x labels need room side by side: fewer ticks while the widest would touch */
    for (int target = fr->w < 400 ? 4 : 7; target >= 2; target--) {
        make_ticks(&xt, fr->xr.lo, fr->xr.hi, fr->log_x, target);
        size_t widest = 0;
        for (int i = 0; i < xt.n; i++)
            if (strlen(xt.label[i]) + 2 * (size_t)xt.power[i] > widest) widest = strlen(xt.label[i]) + 2 * (size_t)xt.power[i];
        if (xt.n < 2 || (px_x(fr, xt.v[1]) - px_x(fr, xt.v[0])) > FONT_W * 11 * (double)widest + 10) break;
    }
    fputs("<g stroke=\"#f0f0f0\">", f);
    for (int i = 0; i < yt.nminor; i++)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", fr->x0, fr->x0 + fr->w, px_y(fr, yt.minor[i]),
                px_y(fr, yt.minor[i]));
    for (int i = 0; i < xt.nminor; i++)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", px_x(fr, xt.minor[i]), px_x(fr, xt.minor[i]), fr->y0,
                fr->y0 + fr->h);
    fputs("</g>\n<g stroke=\"#ddd\">", f);
    for (int i = 0; i < yt.n; i++)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", fr->x0, fr->x0 + fr->w, px_y(fr, yt.v[i]),
                px_y(fr, yt.v[i]));
    for (int i = 0; i < xt.n; i++)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", px_x(fr, xt.v[i]), px_x(fr, xt.v[i]), fr->y0,
                fr->y0 + fr->h);
    fputs("</g>\n<g class=\"yticks\" font-size=\"11\" fill=\"#444\" text-anchor=\"end\">", f);
    for (int i = 0; i < yt.n; i++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", fr->x0 - 5, px_y(fr, yt.v[i]) + 4);
        tick_label(f, &yt, i);
        fputs("</text>", f);
    }
    fputs("</g>\n<g class=\"xticks\" font-size=\"11\" fill=\"#444\" text-anchor=\"middle\">", f);
    for (int i = 0; i < xt.n; i++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", px_x(fr, xt.v[i]), fr->y0 + fr->h + 15);
        tick_label(f, &xt, i);
        fputs("</text>", f);
    }
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", fr->x0,
            fr->y0, fr->w, fr->h);
}

static void draw_hlines(FILE *f, const frame *fr, const double *hlines, const char *const *labels, int nh) {
    for (int j = 0; j < nh && hlines; j++) {
        double ay = axis_value(hlines[j], fr->log_y);
        if (isnan(ay) || ay < fr->yr.lo || ay > fr->yr.hi) continue;
        double y = px_y(fr, ay);
        fprintf(f, "<line class=\"hline\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-width=\"1\" "
                   "stroke-dasharray=\"5 4\"/>\n",
                fr->x0, fr->x0 + fr->w, y, y);
        if (labels && labels[j] && *labels[j]) {
            /* above the line, at the right; below it when the line is near the top */
            double ty = y - 4 < fr->y0 + 12 ? y + 12 : y - 4;
            text_el(f, fr->x0 + fr->w - 4, ty, 10,
                    "text-anchor=\"end\" fill=\"#333\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"", labels[j],
                    fr->w * 0.6);
        }
    }
}

/* Points of a polyline, thinned per pixel column: of the points falling into one column
 * it keeps the first, the lowest, the highest and the last (in their order), so that a
 * long series keeps its envelope and its spikes with a few points a pixel. */
typedef struct kept {
    double x, y;
    int i; /* index in the series: the order of arrival */
} kept;

typedef struct thinner {
    FILE *f;
    int count;   /* points written in the open polyline */
    int n;       /* points collected in the current column */
    long column; /* the pixel column being collected */
    kept first, lo, hi, last;
    double last_x, last_y; /* the last point written */
} thinner;

static void emit_point(thinner *t, kept p) {
    fprintf(t->f, "%s%.1f,%.1f", t->count ? " " : "<polyline points=\"", p.x, p.y);
    t->count++;
    t->last_x = p.x;
    t->last_y = p.y;
}

static void flush_column(thinner *t) {
    if (!t->n) return;
    kept k[4] = {t->first, t->lo, t->hi, t->last};
    for (int a = 1; a < 4; a++) /* by arrival */
        for (int b = a; b > 0 && k[b].i < k[b - 1].i; b--) {
            kept tmp = k[b];
            k[b] = k[b - 1];
            k[b - 1] = tmp;
        }
    for (int a = 0; a < 4; a++)
        if (a == 0 || k[a].i != k[a - 1].i) emit_point(t, k[a]);
    t->n = 0;
}

static void end_polyline(thinner *t) {
    flush_column(t);
    if (t->count == 1) fprintf(t->f, " %.1f,%.1f", t->last_x, t->last_y); /* a lone point: a dot */
    if (t->count) fputs("\"/>\n", t->f);
    t->count = 0;
}

static void add_point(thinner *t, double x, double y, int i) {
    long column = (long)floor(x);
    if (t->n && column != t->column) flush_column(t);
    kept p = {x, y, i};
    if (!t->n) {
        t->first = t->lo = t->hi = t->last = p;
        t->column = column;
        t->n = 1;
        return;
    }
    if (y < t->lo.y) t->lo = p;
    if (y > t->hi.y) t->hi = p;
    t->last = p;
    t->n++;
}

/* The polylines of one series (values v); a non-finite or non-positive-on-log value ends a
 * polyline. A lone point is drawn as a zero-length line (a dot, with round caps). */
static void draw_line(FILE *f, const frame *fr, const report_series *s, const double *v) {
    thinner t = {.f = f};
    for (int i = 0; i < s->n; i++) {
        double ax = axis_value(point_x(s, i), fr->log_x), ay = axis_value(v[i], fr->log_y);
        if (isnan(ax) || isnan(ay))
            end_polyline(&t);
        else
            add_point(&t, px_x(fr, ax), px_y(fr, ay), i);
    }
    end_polyline(&t);
}

static unsigned clip_counter;

/* Series (raw faint and smoothed bold when c->smooth is set), clipped to the plot area,
 * then the marks as red rings (at the frame's edge when the value is off the plot). */
static void draw_series(FILE *f, const report_chart *c, const frame *fr, const report_series *s, int ns,
                        const int *colour_of) {
    unsigned id = ++clip_counter;
    fprintf(f, "<defs><clipPath id=\"rclip%u\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            id, fr->x0, fr->y0, fr->w, fr->h);
    fprintf(f, "<g clip-path=\"url(#rclip%u)\" fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n", id);
    int smooth = c->smooth > 0 && c->smooth < 1;
    for (int pass = 0; pass < 1 + smooth; pass++)
        for (int k = 0; k < ns; k++) {
            if (s[k].n <= 0 || !s[k].y) continue;
            const double *v = s[k].y;
            double *ema = NULL;
            if (pass == 1) {
                ema = malloc((size_t)s[k].n * sizeof *ema);
                if (!ema) continue;
                report_ema(s[k].y, s[k].n, c->smooth, ema);
                v = ema;
            }
            const char *cls = smooth ? (pass ? "smooth" : "raw") : "line";
            double width = smooth ? (pass ? 2 : 1) : 1.5;
            fprintf(f, "<g class=\"%s\" stroke=\"%s\" stroke-width=\"%g\"%s%s>\n", cls, series_colour(&s[k], colour_of ? colour_of[k] : k), width,
                    smooth && !pass ? " stroke-opacity=\"0.25\"" : "", s[k].dashed ? " stroke-dasharray=\"6 3\"" : "");
            draw_line(f, fr, &s[k], v);
            fputs("</g>\n", f);
            free(ema);
        }
    fputs("</g>\n", f);
    for (int k = 0; k < ns; k++)
        for (int j = 0; j < s[k].nmarks && s[k].marks && s[k].y; j++) {
            int i = s[k].marks[j];
            if (i < 0 || i >= s[k].n) continue;
            double ax = axis_value(point_x(&s[k], i), fr->log_x);
            if (isnan(ax) || ax < fr->xr.lo || ax > fr->xr.hi) continue;
            double y = s[k].y[i], ay = axis_value(y, fr->log_y), py;
            if (isnan(ay)) /* an explosion to inf/NaN: at the top; 0 or -inf on a log axis: bottom */
                py = (isnan(y) || y > 0) ? fr->y0 : fr->y0 + fr->h;
            else
                py = fmin(fmax(px_y(fr, ay), fr->y0), fr->y0 + fr->h);
            fprintf(f, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"none\" stroke=\"#d62728\" "
                       "stroke-width=\"1.6\"/>\n",
                    px_x(fr, ax), py);
        }
}

/* A legend entry: a short line in the series' colour and style, and its name. */
static void legend_entry(FILE *f, double x, double y, const report_series *s, int k, double name_width) {
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s/>", x, x + 20, y, y,
            series_colour(s, k), s->dashed ? " stroke-dasharray=\"6 3\"" : "");
    text_el(f, x + 25, y + 4, 11, NULL, s->name, name_width);
}

static void svg_open(FILE *f, double w, double h, const char *cls, const char *title) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"%s\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "role=\"img\" font-family=\"system-ui,sans-serif\">\n<title>",
            cls, w, h, w, h);
    report_escape(f, title);
    fputs("</title>\n", f);
}

static void axis_labels(FILE *f, const report_chart *c, double cx, double by, double lx, double cy) {
    if (c->xlabel && *c->xlabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" fill=\"#222\">", cx, by);
        report_escape(f, c->xlabel);
        fputs(c->log_x ? " (log scale)</text>\n" : "</text>\n", f);
    }
    if (c->ylabel && *c->ylabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" fill=\"#222\" transform=\"rotate(-90 %.1f %.1f)\">",
                lx, cy, lx, cy);
        report_escape(f, c->ylabel);
        fputs(c->log_y ? " (log scale)</text>\n" : "</text>\n", f);
    }
}

void report_chart_draw(FILE *f, const report_chart *c, const report_series *s, int ns) {
    report_chart d = c ? *c : report_chart_default();
    if (ns < 0 || !s) ns = 0;
    double W = d.width > 0 ? d.width : 720, H = d.height > 0 ? d.height : 360;
    /* the legend column as wide as its longest name needs, within 90 .. 260 px */
    double longest = 0;
    for (int k = 0; k < ns; k++) longest = fmax(longest, text_width(s[k].name, 11));
    double L = 66, T = 34, B = 44, R = d.legend && ns > 0 ? fmin(fmax(12 + 25 + longest + 8, 90), 260) : 18;
    if (d.legend && T + 10 + 16.0 * ns > H - 10) H = T + 20 + 16.0 * ns; /* room for every entry */
    range xr = {INFINITY, -INFINITY}, yr = {INFINITY, -INFINITY};
    extent(s, ns, d.hlines, d.nhlines, d.log_x, d.log_y, &xr, &yr);
    frame fr = {L, T, W - L - R, H - T - B, final_range(xr, d.xmin, d.xmax, d.log_x, 0),
                final_range(yr, d.ymin, d.ymax, d.log_y, 0.04), d.log_x, d.log_y};
    if (fr.w < 40) fr.w = 40;
    if (fr.h < 40) fr.h = 40;
    svg_open(f, W, H, "chart", d.title);
    if (d.title) text_el(f, L, 20, 14, "font-weight=\"bold\"", d.title, W - L - 8);
    draw_axes(f, &fr);
    draw_hlines(f, &fr, d.hlines, d.hline_labels, d.nhlines);
    draw_series(f, &d, &fr, s, ns, NULL);
    axis_labels(f, &d, L + fr.w / 2, H - 8, 14, T + fr.h / 2);
    if (d.legend)
        for (int k = 0; k < ns; k++) legend_entry(f, L + fr.w + 12, T + 8 + 16.0 * k, &s[k], k, R - 12 - 25 - 4);
    fputs("</svg>\n", f);
}

/* ---- small multiples ---- */

static int name_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The distinct series names over the panels, as (panel, series) of their first use, in
 * idx[0..return); *repeat = 1 when a name appears in more than one panel. */
static int distinct_names(const report_panel *p, int np, int (*idx)[2], int cap, int *repeat) {
    int n = 0;
    *repeat = 0;
    for (int a = 0; a < np; a++)
        for (int k = 0; k < p[a].ns && p[a].s; k++) {
            if (!p[a].s[k].name) continue;
            int seen = 0;
            for (int e = 0; e < n && !seen; e++)
                if (name_eq(p[idx[e][0]].s[idx[e][1]].name, p[a].s[k].name)) {
                    seen = 1;
                    if (idx[e][0] != a) *repeat = 1;
                }
            if (!seen && n < cap) {
                idx[n][0] = a;
                idx[n][1] = k;
                n++;
            }
        }
    return n;
}

/* A series' colour index in small multiples: its name's rank among the distinct names, so
 * that one name has one colour in every panel; its position when unnamed. */
static int colour_index(const report_panel *p, const int (*idx)[2], int n, const report_series *s, int k) {
    for (int e = 0; e < n; e++)
        if (name_eq(p[idx[e][0]].s[idx[e][1]].name, s->name)) return e;
    return k;
}

void report_small_multiples(FILE *f, const report_chart *common, const report_panel *p, int np, int cols) {
    report_chart d = common ? *common : report_chart_default();
    if (np < 0 || !p) np = 0;
    if (cols <= 0) cols = np < 3 ? (np > 0 ? np : 1) : 3;
    if (cols > np && np > 0) cols = np;
    int rows = np > 0 ? (np + cols - 1) / cols : 0;
    double gl = d.ylabel && *d.ylabel ? 20 : 0;
    /* by default 340 px a panel, narrower (down to 240) when the row would pass 1060 px */
    double PW = d.width > 0 ? d.width : fmax(240, fmin(340, (1060 - gl) / cols)), PH = d.height > 0 ? d.height : 220;
    int any_note = 0, multi = 0;
    for (int a = 0; a < np; a++) {
        any_note |= p[a].note && *p[a].note;
        multi |= p[a].ns > 1;
    }
    /* margins inside a panel, and around the grid */
    double pl = 50, pr = 12, pt = 24, pb = 24 + (any_note ? 16 : 0);
    double gt = d.title && *d.title ? 30 : 4;
    double gx = d.xlabel && *d.xlabel ? 22 : 0;
    int legend_idx[64][2], repeat = 0;
    int ndistinct = distinct_names(p, np, legend_idx, 64, &repeat);
    int nleg = d.legend && (repeat || multi) ? ndistinct : 0; /* else one series a panel, named by its title */
    double W = gl + cols * PW;
    /* legend entries flow left to right, wrapping */
    double lx = gl + pl, ly = 0, legend_rows = nleg ? 1 : 0;
    for (int e = 0; e < nleg; e++) {
        const char *name = p[legend_idx[e][0]].s[legend_idx[e][1]].name;
        double ew = 25 + fmin(text_width(name, 11), 220) + 18;
        if (lx + ew > W - 8 && lx > gl + pl) {
            lx = gl + pl;
            legend_rows++;
        }
        lx += ew;
    }
    double grid_bottom = gt + rows * PH, H = grid_bottom + gx + legend_rows * 18 + (nleg ? 10 : 4);
    if (np == 0) H = gt + 30;

    range xr = {INFINITY, -INFINITY}, yr = {INFINITY, -INFINITY};
    for (int a = 0; a < np; a++) extent(p[a].s, p[a].s ? p[a].ns : 0, p[a].hlines, p[a].nhlines, d.log_x, d.log_y, &xr, &yr);
    range fx = final_range(xr, d.xmin, d.xmax, d.log_x, 0), fy = final_range(yr, d.ymin, d.ymax, d.log_y, 0.04);

    svg_open(f, W, H, "multiples", d.title);
    if (d.title && *d.title) text_el(f, gl + pl, 20, 14, "font-weight=\"bold\"", d.title, W - gl - pl - 8);
    if (np == 0) text_el(f, gl + pl, gt + 16, 12, "fill=\"#777\"", "(no panels)", 0);
    for (int a = 0; a < np; a++) {
        double ox = gl + (a % cols) * PW, oy = gt + (a / cols) * PH;
        frame fr = {ox + pl, oy + pt, PW - pl - pr, PH - pt - pb, fx, fy, d.log_x, d.log_y};
        fprintf(f, "<g class=\"panel\">\n");
        if (p[a].title && needs_cut(p[a].title, fr.w, 12)) {
            fputs("<title>", f);
            report_escape(f, p[a].title);
            fputs("</title>\n", f);
        }
        text_el(f, fr.x0, oy + 16, 12, "font-weight=\"bold\"", p[a].title, fr.w);
        draw_axes(f, &fr);
        draw_hlines(f, &fr, p[a].hlines, p[a].hline_labels, p[a].nhlines);
        range px_r = {INFINITY, -INFINITY}, py_r = {INFINITY, -INFINITY};
        extent(p[a].s, p[a].s ? p[a].ns : 0, NULL, 0, d.log_x, d.log_y, &px_r, &py_r);
        if (!(px_r.lo <= px_r.hi))
            text_el(f, fr.x0 + fr.w / 2, fr.y0 + fr.h / 2 + 4, 12, "text-anchor=\"middle\" fill=\"#999\"", "no data", 0);
        int colour_of[64];
        for (int k = 0; k < p[a].ns && k < 64; k++) colour_of[k] = colour_index(p, legend_idx, ndistinct, &p[a].s[k], k);
        draw_series(f, &d, &fr, p[a].s, p[a].s ? (p[a].ns < 64 ? p[a].ns : 64) : 0, colour_of);
        if (p[a].note && *p[a].note) text_el(f, fr.x0, fr.y0 + fr.h + 34, 11, "fill=\"#555\" font-style=\"italic\"", p[a].note, fr.w);
        fputs("</g>\n", f);
    }
    if (np > 0) {
        /* the axis labels once: x under the grid, y at its left */
        report_chart labels = d;
        axis_labels(f, &labels, gl + pl + (cols * PW - pl - pr) / 2, grid_bottom + 14, 12, gt + rows * PH / 2);
    }
    lx = gl + pl;
    ly = grid_bottom + gx + 12;
    if (nleg) fputs("<g class=\"legend\">\n", f);
    for (int e = 0; e < nleg; e++) {
        const report_series *s = &p[legend_idx[e][0]].s[legend_idx[e][1]];
        double nw = fmin(text_width(s->name, 11), 220);
        double ew = 25 + nw + 18;
        if (lx + ew > W - 8 && lx > gl + pl) {
            lx = gl + pl;
            ly += 18;
        }
        legend_entry(f, lx, ly, s, e, 220);
        lx += ew;
    }
    if (nleg) fputs("</g>\n", f);
    fputs("</svg>\n", f);
}
