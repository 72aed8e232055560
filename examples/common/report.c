/* See report.h. */
#include "report.h"

#include <math.h>
#include <string.h>

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
                                      "#8c6d31", "#843c39", "#7b4173", "#3182bd"};
#define NPALETTE (int)(sizeof palette / sizeof palette[0])

void report_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void report_begin(FILE *f, const char *title) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    report_escape(f, title);
    fputs("</title>\n<style>\n"
          "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}\n"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\n"
          "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\n"
          ".note{background:#fff6d5;border:1px solid #e6c84c;padding:.6em 1em}\n"
          "figure{margin:1.5em 0}svg{background:#fff;border:1px solid #ddd}\n"
          ".bad{color:#b00;font-weight:bold}\n"
          "</style>\n</head>\n<body>\n",
          f);
}

void report_end(FILE *f) { fputs("</body>\n</html>\n", f); }

/* "Nice" tick step for a range (1, 2 or 5 times a power of ten). */
static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

void report_line_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel, const report_series *s,
                       int ns, int log_y) {
    const double W = 720, H = 360, L = 70, R = 170, T = 34, B = 46;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            double y = s[k].y[i];
            if (!isfinite(y) || (log_y && y <= 0)) continue;
            if (log_y) y = log10(y);
            xmin = fmin(xmin, s[k].x[i]);
            xmax = fmax(xmax, s[k].x[i]);
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
        }
    if (!isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax <= xmin) xmax = xmin + 1;
    if (ymax <= ymin) ymax = ymin + 1;
    double pad = 0.04 * (ymax - ymin);
    ymin -= pad;
    ymax += pad;
    double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x) - xmin) / (xmax - xmin) * pw)
#define PY(y) (T + (1 - ((y) - ymin) / (ymax - ymin)) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\">\n", W, H, W, H);
    fputs("<title>", f);
    report_escape(f, title);
    fputs("</title>\n", f);
    fprintf(f, "<text x=\"%g\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", L);
    report_escape(f, title);
    fputs("</text>\n", f);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#999\"/>\n", L, T, pw, ph);
    /* y ticks: in log mode at integer powers of ten (and halves when the range is small) */
    double ystep = log_y ? fmax(1.0, nice_step(ymax - ymin, 5)) : nice_step(ymax - ymin, 5);
    if (log_y && ymax - ymin < 2) ystep = nice_step(ymax - ymin, 4);
    for (double y = ceil(ymin / ystep) * ystep; y <= ymax + 1e-12; y += ystep) {
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", L, L + pw, PY(y), PY(y));
        if (log_y)
            fprintf(f, "<text x=\"%g\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", L - 4, PY(y) + 4,
                    pow(10, y));
        else
            fprintf(f, "<text x=\"%g\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n", L - 4, PY(y) + 4,
                    fabs(y) < 1e-12 ? 0.0 : y);
    }
    double xstep = nice_step(xmax - xmin, 6);
    for (double x = ceil(xmin / xstep) * xstep; x <= xmax + 1e-12; x += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n", PX(x), T + ph + 16, x);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"12\" text-anchor=\"middle\">", L + pw / 2, H - 8);
    report_escape(f, xlabel);
    fprintf(f, "</text>\n<text x=\"14\" y=\"%g\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 %g)\">", T + ph / 2,
            T + ph / 2);
    report_escape(f, ylabel);
    fputs(log_y ? " (log scale)</text>\n" : "</text>\n", f);
    for (int k = 0; k < ns; k++) {
        const char *colour = palette[k % NPALETTE];
        int open = 0;
        for (int i = 0; i < s[k].n; i++) {
            double y = s[k].y[i];
            int ok = isfinite(y) && !(log_y && y <= 0);
            if (!ok) {
                if (open) fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            if (log_y) y = log10(y);
            if (!open) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colour);
            fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(y));
            open = 1;
        }
        if (open) fputs("\"/>\n", f);
        double ly = T + 8 + 15 * k;
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>", L + pw + 10,
                L + pw + 28, ly, ly, colour);
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\">", L + pw + 32, ly + 4);
        report_escape(f, s[k].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}

void report_heatmap(FILE *f, const char *title, const char *const *row_names, int nrows, const char *const *col_names,
                    int ncols, const double *values, const int *marked, const char *mark_label) {
    const double L = 150, T = 50, cw = 62, ch = 24;
    double W = L + cw * ncols + 20, H = T + ch * nrows + 40;
    double vmin = INFINITY, vmax = -INFINITY;
    for (int i = 0; i < nrows * ncols; i++)
        if (isfinite(values[i]) && !(marked && marked[i])) {
            vmin = fmin(vmin, values[i]);
            vmax = fmax(vmax, values[i]);
        }
    if (!isfinite(vmin)) vmin = 0, vmax = 1;
    if (vmax <= vmin) vmax = vmin + 1e-9;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" role=\"img\">\n", W, H, W, H);
    fputs("<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
          "<rect width=\"6\" height=\"6\" fill=\"#f3c4c4\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b00\" stroke-width=\"2\"/>"
          "</pattern></defs>\n<title>",
          f);
    report_escape(f, title);
    fputs("</title>\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", f);
    report_escape(f, title);
    fputs("</text>\n", f);
    for (int c = 0; c < ncols; c++) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"middle\">", L + cw * c + cw / 2, T - 6);
        report_escape(f, col_names[c]);
        fputs("</text>\n", f);
    }
    for (int r = 0; r < nrows; r++) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">", L - 6, T + ch * r + ch / 2 + 4);
        report_escape(f, row_names[r]);
        fputs("</text>\n", f);
        for (int c = 0; c < ncols; c++) {
            int i = r * ncols + c;
            double x = L + cw * c, y = T + ch * r;
            if (marked && marked[i]) {
                fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"url(#hatch)\" stroke=\"#fff\"/>", x, y, cw, ch);
                fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"middle\" fill=\"#700\">", x + cw / 2, y + ch / 2 + 4);
                report_escape(f, mark_label);
                fputs("</text>\n", f);
            } else if (!isfinite(values[i])) {
                fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#ccc\" stroke=\"#fff\"/>\n", x, y, cw, ch);
            } else {
                double t = (values[i] - vmin) / (vmax - vmin); /* 0 best (green) .. 1 worst (red) */
                int red = (int)(60 + 195 * t), green = (int)(190 - 130 * t), blue = 80;
                fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"rgb(%d,%d,%d)\" stroke=\"#fff\"/>", x, y, cw,
                        ch, red, green, blue);
                fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"middle\" fill=\"#fff\">%.3g</text>\n", x + cw / 2,
                        y + ch / 2 + 4, values[i]);
            }
        }
    }
    fputs("</svg>\n", f);
}
