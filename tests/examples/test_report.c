/* Tests of examples/common/report.h: the charts are written into memory and read back as
 * text: tags nest, text is escaped, the smoothed line sits where the bias-corrected EMA
 * puts it, non-finite values break lines, marks and reference lines are drawn, small
 * multiples share their axes, log axes label powers of ten. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"

/* ---- helpers ---- */

typedef struct out {
    FILE *f;
    char *buf;
    size_t len;
} out;

static FILE *out_open(out *o) {
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    assert_non_null(o->f);
    return o->f;
}

static char *out_close(out *o) {
    assert_int_equal(fclose(o->f), 0);
    return o->buf;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Tags nest (a stack of names; "<x .../>" closes itself), entities are known ones and no
 * raw '<' or '>' stands in text. Returns the number of elements, or fails. */
static int check_nesting(const char *s) {
    char stack[64][16];
    int depth = 0, elements = 0;
    for (const char *p = s; *p;) {
        if (*p == '&') {
            assert_true(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                        strncmp(p, "&quot;", 6) == 0);
            p++;
            continue;
        }
        if (*p == '>') fail_msg("a raw '>' in text at ...%.40s", p);
        if (*p != '<') {
            p++;
            continue;
        }
        const char *end = strchr(p, '>');
        assert_non_null(end);
        for (const char *q = p + 1; q < end; q++)
            if (*q == '<') fail_msg("a raw '<' in text at ...%.40s", p);
        if (p[1] == '!') { /* doctype */
            p = end + 1;
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\n/>");
        assert_true(len > 0 && len < 16);
        if (closing) {
            assert_true(depth > 0);
            depth--;
            if (strlen(stack[depth]) != len || strncmp(stack[depth], name, len) != 0)
                fail_msg("</%.*s> closes <%s>", (int)len, name, stack[depth]);
        } else {
            elements++;
            if (end[-1] != '/' && strncmp(name, "meta", 4) != 0) {
                assert_true(depth < 64);
                memcpy(stack[depth], name, len);
                stack[depth++][len] = '\0';
            }
        }
        p = end + 1;
    }
    if (depth) fail_msg("<%s> is not closed", stack[depth - 1]);
    return elements;
}

/* The points of the polylines inside the first <g class="cls" ...> ... </g> at or after
 * from: all points into xs/ys (up to cap), the number of polylines into *nlines. */
static int group_points(const char *from, const char *cls, double *xs, double *ys, int cap, int *nlines) {
    char key[64];
    snprintf(key, sizeof key, "<g class=\"%s\"", cls);
    const char *g = strstr(from, key);
    assert_non_null(g);
    const char *end = strstr(g, "</g>");
    assert_non_null(end);
    int n = 0;
    *nlines = 0;
    for (const char *p = strstr(g, "<polyline points=\""); p && p < end; p = strstr(p + 1, "<polyline points=\"")) {
        (*nlines)++;
        const char *q = p + strlen("<polyline points=\"");
        while (*q != '"') {
            char *next;
            double x = strtod(q, &next);
            assert_true(next != q && *next == ',');
            double y = strtod(next + 1, &next);
            if (n < cap) {
                xs[n] = x;
                ys[n] = y;
            }
            n++;
            q = next;
            while (*q == ' ') q++;
        }
    }
    return n;
}

/* The concatenated text of the <text> elements in the group <g class="cls" ...> that starts
 * at or after from; *after is set past the group. */
static void group_text(const char *from, const char *cls, char *buf, size_t size, const char **after) {
    char key[64];
    snprintf(key, sizeof key, "<g class=\"%s\"", cls);
    const char *g = strstr(from, key);
    assert_non_null(g);
    const char *end = strstr(g, "</g>");
    assert_non_null(end);
    size_t n = 0;
    int in_tag = 0;
    for (const char *p = strchr(g, '>') + 1; p < end && n + 2 < size; p++) {
        if (*p == '<') {
            in_tag = 1;
            if (strncmp(p, "</text>", 7) == 0) buf[n++] = '|';
        } else if (*p == '>')
            in_tag = 0;
        else if (!in_tag)
            buf[n++] = *p;
    }
    buf[n] = '\0';
    *after = end;
}

/* ---- tests ---- */

static void test_ema_by_hand(void **state) {
    (void)state;
    const double y[] = {1, 2, NAN, 3, INFINITY};
    double sm[5];
    /* beta 0.5: s1 = 0.5 -> 0.5/0.5 = 1; s2 = 1.25 -> 1.25/0.75; NaN skipped; s3 = 2.125 -> /0.875 */
    double last = report_ema(y, 5, 0.5, sm);
    assert_true(fabs(sm[0] - 1.0) < 1e-12);
    assert_true(fabs(sm[1] - 1.25 / 0.75) < 1e-12);
    assert_true(isnan(sm[2]));
    assert_true(fabs(sm[3] - 2.125 / 0.875) < 1e-12);
    assert_true(isnan(sm[4]));
    assert_true(fabs(last - 2.125 / 0.875) < 1e-12);
    /* a constant series is its own smoothing from the first point on (the bias correction) */
    const double c[] = {4, 4, 4};
    assert_true(fabs(report_ema(c, 3, 0.99, sm) - 4) < 1e-12 && fabs(sm[0] - 4) < 1e-12);
    /* nothing finite: NAN, and out may be NULL */
    const double none[] = {NAN, -INFINITY};
    assert_true(isnan(report_ema(none, 2, 0.9, NULL)));
    assert_true(isnan(report_ema(NULL, 0, 0.9, NULL)));
}

/* A 720 x 360 chart without legend has its plot at x 66..702, y 34..316 (report_chart.c's
 * margins); with fixed ranges 0..10 a value v sits at y = 34 + (1 - v/10) * 282. */
static void test_smoothed_line_coordinates(void **state) {
    (void)state;
    const double x[] = {0, 1, 2, 3, 4}, y[] = {1, 2, NAN, 3, 5};
    report_series s = {.name = "loss", .x = x, .y = y, .n = 5};
    report_chart c = report_chart_default();
    c.title = "smoothing";
    c.smooth = 0.5;
    c.legend = 0;
    c.xmin = 0, c.xmax = 10, c.ymin = 0, c.ymax = 10;
    out o;
    report_chart_draw(out_open(&o), &c, &s, 1);
    char *html = out_close(&o);
    check_nesting(html);
    double px[8], py[8];
    int nlines;
    /* raw: faint, two polylines around the NaN */
    assert_int_equal(group_points(html, "raw", px, py, 8, &nlines), 4);
    assert_int_equal(nlines, 2);
    assert_non_null(strstr(html, "stroke-opacity=\"0.25\""));
    assert_true(fabs(py[0] - (34 + 0.9 * 282)) < 0.06 && fabs(px[0] - 66) < 0.06);
    /* smoothed: bold, the EMA values, also broken at the NaN */
    const double ema[] = {1, 1.25 / 0.75, 2.125 / 0.875, (0.5 * 2.125 + 0.5 * 5) / 0.9375};
    assert_int_equal(group_points(html, "smooth", px, py, 8, &nlines), 4);
    assert_int_equal(nlines, 2);
    for (int i = 0; i < 4; i++) assert_true(fabs(py[i] - (34 + (1 - ema[i] / 10) * 282)) < 0.06);
    assert_true(fabs(px[3] - (66 + 0.4 * 636)) < 0.06);
    /* the smoothed group is the bold one, after the raw one */
    assert_true(strstr(html, "class=\"smooth\"") > strstr(html, "class=\"raw\""));
    assert_non_null(strstr(strstr(html, "class=\"smooth\""), "stroke-width=\"2\""));
    free(html);
}

static void test_breaks_marks_hlines(void **state) {
    (void)state;
    const double x[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const double y[] = {NAN, 2, 3, INFINITY, 1, NAN, 4, 1};
    const int marks[] = {1, 3, 99, -1, 5};
    report_series s[3] = {{.name = "a", .x = x, .y = y, .n = 8, .marks = marks, .nmarks = 5, .color = 4, .dashed = 1},
                          {.name = "empty", .x = NULL, .y = NULL, .n = 0},
                          {.name = "b", .x = NULL, .y = y, .n = 3}};
    const double hl[] = {2.5, 100}; /* 100 lies off a fixed range */
    const char *labels[] = {"clip <2.5>", "never"};
    report_chart c = report_chart_default();
    c.title = "breaks";
    c.hlines = hl;
    c.hline_labels = labels;
    c.nhlines = 2;
    c.ymin = 0;
    c.ymax = 5;
    out o;
    report_chart_draw(out_open(&o), &c, s, 3);
    char *html = out_close(&o);
    check_nesting(html);
    double px[16], py[16];
    int nlines;
    /* series a: segments {2,3}, {1} (a dot: the point twice), {4,1} */
    assert_int_equal(group_points(html, "line", px, py, 16, &nlines), 6);
    assert_int_equal(nlines, 3);
    assert_true(px[2] == px[3] && py[2] == py[3]);
    /* pinned colour 4 (#d62728), dashed */
    assert_non_null(strstr(html, "stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"6 3\""));
    /* marks 1, 3 (inf: at the top edge y = 34) and 5 (NaN: top); 99 and -1 ignored */
    assert_int_equal(count(html, "class=\"mark\""), 3);
    assert_non_null(strstr(html, "cy=\"34.0\""));
    /* one reference line drawn, labelled and escaped; the other off the range */
    assert_int_equal(count(html, "class=\"hline\""), 1);
    assert_non_null(strstr(html, "clip &lt;2.5&gt;"));
    assert_null(strstr(html, "never"));
    /* the empty series is in the legend; series b uses x = index */
    assert_non_null(strstr(html, ">empty</text>"));
    free(html);
}

/* 20000 points on a 636 px wide plot: a few points a pixel column, the spike kept. */
static void test_long_series_thinned(void **state) {
    (void)state;
    enum { N = 20000 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = 1 + 0.5 * sin(i * 0.37);
    }
    y[12345] = 10; /* one spike */
    report_series s = {.name = "long", .x = x, .y = y, .n = N};
    report_chart c = report_chart_default();
    c.legend = 0;
    c.ymin = 0, c.ymax = 10;
    out o;
    report_chart_draw(out_open(&o), &c, &s, 1);
    char *html = out_close(&o);
    double *px = malloc(N * sizeof *px), *py = malloc(N * sizeof *py);
    int nlines, n = group_points(html, "line", px, py, N, &nlines);
    assert_int_equal(nlines, 1);
    assert_true(n > 636 && n <= 4 * 637);
    int spike = 0;
    double lowest = 0, highest = 1000;
    for (int i = 0; i < n; i++) {
        spike |= fabs(py[i] - 34) < 0.06; /* y = 10: the top */
        if (i) assert_true(px[i] >= px[i - 1]);
        if (py[i] > lowest) lowest = py[i];
        if (py[i] < highest && fabs(py[i] - 34) > 1) highest = py[i];
    }
    assert_true(spike);
    /* the envelope 0.5 .. 1.5 survives */
    assert_true(fabs(lowest - (34 + 0.95 * 282)) < 0.2 && fabs(highest - (34 + 0.85 * 282)) < 0.2);
    free(px);
    free(py);
    free(html);
    free(x);
    free(y);
}

static void test_escaping_and_long_titles(void **state) {
    (void)state;
    const double x[] = {0, 1}, y[] = {1, 2};
    report_series s = {.name = "<script>&", .x = x, .y = y, .n = 2};
    report_chart c = report_chart_default();
    c.title = "a<b & \"c\"";
    c.xlabel = "x>0";
    out o;
    report_chart_draw(out_open(&o), &c, &s, 1);
    char *html = out_close(&o);
    check_nesting(html);
    assert_non_null(strstr(html, "a&lt;b &amp; &quot;c&quot;"));
    assert_non_null(strstr(html, "&lt;script&gt;&amp;"));
    assert_non_null(strstr(html, "x&gt;0"));
    assert_null(strstr(html, "<script>"));
    free(html);

    char title[400];
    for (int i = 0; i < 399; i++) title[i] = (char)('a' + i % 26);
    title[399] = '\0';
    c.title = title;
    c.width = 300;
    report_chart_draw(out_open(&o), &c, &s, 1);
    html = out_close(&o);
    check_nesting(html);
    /* the visible title is cut with an ellipsis; the full one is the svg's <title> */
    assert_non_null(strstr(html, "\xE2\x80\xA6</text>"));
    assert_int_equal(count(html, title), 1);
    assert_non_null(strstr(html, "width=\"300\""));
    free(html);
}

static void test_log_axes(void **state) {
    (void)state;
    const double x[] = {1, 10, 100, 1000}, y[] = {1e-6, 0, 1e-2, 1e2};
    report_series s = {.name = "g", .x = x, .y = y, .n = 4};
    report_chart c = report_chart_default();
    c.log_x = c.log_y = 1;
    c.ylabel = "norm";
    out o;
    report_chart_draw(out_open(&o), &c, &s, 1);
    char *html = out_close(&o);
    check_nesting(html);
    char buf[1024];
    const char *after;
    group_text(html, "yticks", buf, sizeof buf, &after);
    /* 1e-6 .. 1e2 spans 9 decades: powers of ten as 10 with a superscript */
    assert_non_null(strstr(buf, "10-6|"));
    assert_non_null(strstr(buf, "102|"));
    assert_non_null(strstr(html, "10<tspan dy=\"-5\" font-size=\"8\">-6</tspan>"));
    group_text(after, "xticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "1|10|100|1000|"); /* within 0.001 .. 10000: plain numbers */
    assert_non_null(strstr(html, "norm (log scale)"));
    /* y = 0 is off a log axis: the line breaks there */
    double px[8], py[8];
    int nlines;
    assert_int_equal(group_points(html, "line", px, py, 8, &nlines), 4);
    assert_int_equal(nlines, 2);
    free(html);

    /* under a decade: 1-2-5 ticks */
    const double y2[] = {1.5, 2, 7};
    s.y = y2;
    s.n = 3;
    c.log_x = 0;
    report_chart_draw(out_open(&o), &c, &s, 1);
    html = out_close(&o);
    group_text(html, "yticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "2|3|4|5|6|7|"); /* 2 and 5 alone would be too few */
    free(html);
}

/* A constant series, a near-constant one, NULL options, no series: sane charts. */
static void test_degenerate_charts(void **state) {
    (void)state;
    const double x[] = {0, 1, 2}, flat[] = {2, 2, 2}, near[] = {1, 1 + 1e-15, 1};
    report_series s[2] = {{.name = "flat", .x = x, .y = flat, .n = 3}, {.name = "near", .x = x, .y = near, .n = 3}};
    char buf[512];
    const char *after;
    out o;
    report_chart_draw(out_open(&o), NULL, s, 1);
    char *html = out_close(&o);
    check_nesting(html);
    group_text(html, "yticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "1.8|1.9|2.0|2.1|2.2|"); /* 2 +- 10% */
    free(html);
    report_chart_draw(out_open(&o), NULL, s + 1, 1);
    html = out_close(&o);
    group_text(html, "yticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "0.90|0.95|1.00|1.05|1.10|"); /* not a tick per 1e-16 */
    free(html);
    report_chart_draw(out_open(&o), NULL, NULL, 0);
    html = out_close(&o);
    assert_true(check_nesting(html) > 3);
    assert_null(strstr(html, "<polyline"));
    free(html);
}

static void test_linear_ticks(void **state) {
    (void)state;
    const double x[] = {0, 1e7}, y[] = {0.001, 0.0042};
    report_series s = {.name = "s", .x = x, .y = y, .n = 2};
    report_chart c = report_chart_default();
    c.ymin = 0;
    c.ymax = 0.005;
    out o;
    report_chart_draw(out_open(&o), &c, &s, 1);
    char *html = out_close(&o);
    char buf[1024];
    const char *after;
    group_text(html, "yticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "0.000|0.001|0.002|0.003|0.004|0.005|");
    group_text(after, "xticks", buf, sizeof buf, &after);
    assert_string_equal(buf, "0|1e6|2e6|3e6|4e6|5e6|6e6|7e6|8e6|9e6|1e7|");
    free(html);
}

/* Four panels of different ranges: every panel shows the same ticks, covering them all. */
static void test_small_multiples_share_axes(void **state) {
    (void)state;
    const double x1[] = {0, 50}, y1v[] = {1, 2}, x2[] = {0, 100}, y2v[] = {0.5, 9};
    const double x3[] = {10, 20}, y3v[] = {3, NAN};
    report_series a[2] = {{.name = "SGD", .x = x1, .y = y1v, .n = 2}, {.name = "Adam", .x = x2, .y = y2v, .n = 2}};
    report_series b[2] = {{.name = "Adam", .x = x3, .y = y3v, .n = 2}, {.name = "SGD", .x = x2, .y = y1v, .n = 2}};
    const double clip[] = {5};
    const char *clip_label[] = {"clip 5"};
    report_panel p[4] = {{.title = "base", .s = a, .ns = 2},
                         {.title = "clip", .s = b, .ns = 2, .hlines = clip, .hline_labels = clip_label, .nhlines = 1,
                          .note = "clipped 34% of steps"},
                         {.title = "nothing", .s = NULL, .ns = 0},
                         {.title = "warmup & <more>", .s = a, .ns = 1}};
    report_chart c = report_chart_default();
    c.title = "Loss by variant";
    c.xlabel = "step";
    c.smooth = 0.6;
    out o;
    report_small_multiples(out_open(&o), &c, p, 4, 3);
    char *html = out_close(&o);
    check_nesting(html);
    assert_int_equal(count(html, "<svg"), 1);
    assert_int_equal(count(html, "<g class=\"panel\">"), 4);
    char first_y[512], first_x[512], buf[512];
    const char *at = html;
    group_text(at, "yticks", first_y, sizeof first_y, &at);
    group_text(at, "xticks", first_x, sizeof first_x, &at);
    assert_string_equal(first_y, "2|4|6|8|"); /* 0.5 .. 9 over all panels */
    assert_string_equal(first_x, "0|20|40|60|80|100|"); /* 0 .. 100 */
    for (int k = 1; k < 4; k++) {
        group_text(at, "yticks", buf, sizeof buf, &at);
        assert_string_equal(buf, first_y);
        group_text(at, "xticks", buf, sizeof buf, &at);
        assert_string_equal(buf, first_x);
    }
    assert_int_equal(count(html, "class=\"hline\""), 1);
    assert_non_null(strstr(html, ">clip 5</text>"));
    assert_non_null(strstr(html, "clipped 34% of steps"));
    assert_non_null(strstr(html, "warmup &amp; &lt;more&gt;"));
    /* names repeat across panels: one legend under the grid, each name once, and a name
     * keeps its colour: SGD (first seen) #1f77b4 and Adam #ff7f0e in every panel */
    assert_int_equal(count(html, "<g class=\"legend\">"), 1);
    const char *legend = strstr(html, "<g class=\"legend\">");
    assert_int_equal(count(legend, ">SGD</text>"), 1);
    assert_int_equal(count(legend, ">Adam</text>"), 1);
    assert_int_equal(count(html, "class=\"smooth\" stroke=\"#1f77b4\""), 3);
    assert_int_equal(count(html, "class=\"smooth\" stroke=\"#ff7f0e\""), 2);
    free(html);

    /* one series a panel with distinct names: the titles name them, no legend */
    report_panel single[2] = {{.title = "SGD", .s = a, .ns = 1}, {.title = "Adam", .s = a + 1, .ns = 1}};
    report_small_multiples(out_open(&o), &c, single, 2, 0);
    html = out_close(&o);
    check_nesting(html);
    assert_null(strstr(html, "class=\"legend\""));
    free(html);

    /* a panel without a finite point says so */
    const double nan2[] = {NAN, NAN};
    report_series none = {.name = "x", .x = x1, .y = nan2, .n = 2};
    report_panel blank[2] = {{.title = "has data", .s = a, .ns = 1}, {.title = "diverged at once", .s = &none, .ns = 1}};
    report_small_multiples(out_open(&o), &c, blank, 2, 2);
    html = out_close(&o);
    check_nesting(html);
    assert_int_equal(count(html, ">no data</text>"), 1);
    assert_non_null(strstr(html, ">no data</text>") > strstr(html, "diverged at once") ? html : NULL);
    free(html);

    /* no panels, NULL options: still a well-formed (empty) figure */
    report_small_multiples(out_open(&o), NULL, NULL, 0, 0);
    html = out_close(&o);
    check_nesting(html);
    assert_int_equal(count(html, "<svg"), 1);
    free(html);
}

static void test_fixed_shared_range(void **state) {
    (void)state;
    const double x[] = {0, 1, 2}, y[] = {1, 50, 2};
    report_series s = {.name = "s", .x = x, .y = y, .n = 3};
    report_panel p[2] = {{.title = "one", .s = &s, .ns = 1}, {.title = "two", .s = &s, .ns = 1}};
    report_chart c = report_chart_default();
    c.ymin = 0;
    c.ymax = 4;
    out o;
    report_small_multiples(out_open(&o), &c, p, 2, 2);
    char *html = out_close(&o);
    char buf[512];
    const char *at = html;
    group_text(at, "yticks", buf, sizeof buf, &at);
    assert_string_equal(buf, "0|1|2|3|4|");
    assert_int_equal(count(html, "clip-path=\"url(#rclip"), 2); /* the spike to 50 is clipped */
    free(html);
}

static void test_line_chart_row_page(void **state) {
    (void)state;
    const double x[] = {1, 2, 3}, y[] = {3, 2, 1};
    report_series s[2] = {{.name = "first", .x = x, .y = y, .n = 3}, {.name = "second", .x = x, .y = y, .n = 3}};
    out o;
    FILE *f = out_open(&o);
    report_begin(f, "page <1>");
    report_line_chart(f, "old API", "step", "loss", s, 2, 1);
    const char *cells[] = {"a", "<b>b</b>"};
    fputs("<table>", f);
    report_row(f, 1, 2, cells);
    report_row(f, 0, 2, cells);
    fputs("</table>", f);
    const char *rows[] = {"r0", "r1"}, *cols[] = {"c0", "c1"};
    const double v[] = {1, NAN, 3, 4};
    const int marked[] = {0, 0, 0, 1};
    report_heatmap(f, "heat", rows, 2, cols, 2, v, marked, "div");
    report_end(f);
    char *html = out_close(&o);
    check_nesting(html);
    assert_non_null(strstr(html, "<tr><th>a</th><th><b>b</b></th></tr>\n<tr><td>a</td><td><b>b</b></td></tr>\n"));
    assert_non_null(strstr(html, ">first</text>"));
    assert_non_null(strstr(html, ">second</text>"));
    assert_non_null(strstr(html, "loss (log scale)"));
    assert_int_equal(count(html, "class=\"line\""), 2); /* no smoothing by default */
    /* the page's styles for the lab's pieces */
    assert_non_null(strstr(html, ".time{"));
    assert_non_null(strstr(html, ".findings{"));
    assert_non_null(strstr(html, "nav{"));
    assert_non_null(strstr(html, "<title>page &lt;1&gt;</title>"));
    free(html);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ema_by_hand),
        cmocka_unit_test(test_smoothed_line_coordinates),
        cmocka_unit_test(test_breaks_marks_hlines),
        cmocka_unit_test(test_long_series_thinned),
        cmocka_unit_test(test_escaping_and_long_titles),
        cmocka_unit_test(test_log_axes),
        cmocka_unit_test(test_linear_ticks),
        cmocka_unit_test(test_degenerate_charts),
        cmocka_unit_test(test_small_multiples_share_axes),
        cmocka_unit_test(test_fixed_shared_range),
        cmocka_unit_test(test_line_chart_row_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
