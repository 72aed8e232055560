/* See report.h. */
#include "report.h"

#include <math.h>
#include <string.h>

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
          "svg.multiples,svg.chart{max-width:100%;height:auto}\n"
          ".multiples-grid{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}\n"
          ".time{color:#888;font-size:.9em;font-variant-numeric:tabular-nums}\n"
          ".findings{background:#eef5fc;border-left:4px solid #3182bd;padding:.6em 1em;margin:1em 0}\n"
          "nav{background:#f8f8f8;border:1px solid #ddd;padding:.4em 1.2em;margin:1em 0;display:inline-block}\n"
          "nav ul{margin:.3em 0;padding-left:1.2em}nav li{margin:.15em 0}nav a{text-decoration:none;color:#1f5f9f}\n"
          "nav a:hover{text-decoration:underline}figcaption{color:#555;font-size:.9em;margin-top:.3em}\n"
          "</style>\n</head>\n<body>\n",
          f);
}

void report_end(FILE *f) { fputs("</body>\n</html>\n", f); }

void report_line_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel, const report_series *s,
                       int ns, int log_y) {
    report_chart c = report_chart_default();
    c.title = title;
    c.xlabel = xlabel;
    c.ylabel = ylabel;
    c.log_y = log_y;
    report_chart_draw(f, &c, s, ns);
}

void report_row(FILE *f, int header, int ncells, const char *const *cells) {
    const char *tag = header ? "th" : "td";
    fputs("<tr>", f);
    for (int i = 0; i < ncells; i++) fprintf(f, "<%s>%s</%s>", tag, cells && cells[i] ? cells[i] : "", tag);
    fputs("</tr>\n", f);
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
