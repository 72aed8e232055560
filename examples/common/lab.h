/* The stability lab behind compare_optimizers: three scenarios, each a function that runs
 * its experiments, writes its CSV files into the output directory and returns one section of
 * report.html (HTML from after the section heading on) plus its findings in a few sentences.
 *
 *   resnet    CIFAR-10 (or the built-in synthetic images): optimizers x {base, clip, warmup},
 *             the LR sweep, and the LR strategies (constant, step, cosine, one-cycle,
 *             ReduceLROnPlateau, warmup then ReduceLROnPlateau) for SGD-Nesterov and Adam.
 *   sequence  the adding problem (T = 100, 200; tanh RNN and LSTM; seeds) and the character
 *             language model (tiny-shakespeare or the built-in text): optimizers x {base,
 *             clip by norm, clip by value, warmup} and an LR sweep.
 *   depth     plain MLPs of 10, 20 and 50 layers (sigmoid, tanh, ReLU x default, Xavier, He
 *             init) against the same depth with BatchNorm and with residual blocks: per-layer
 *             gradient norms at init and in training, the monitor's flags, which runs learn.
 *
 * Conventions every scenario keeps, so that a run is reproducible and checkable:
 *  - Same options (seed, threads, quick): every number in its CSV files and in its HTML is
 *    identical run to run, except wall times. Wall times appear only in the CSV file
 *    "timing.csv" (appended rows: scenario,item,seconds, written through lab_timing) and in
 *    the HTML inside <span class="time">...</span>.
 *  - CSV files are named "<scenario>_<what>.csv" (resnet_runs.csv, sequence_adding.csv, ...).
 *  - It prints progress to stdout (one line per run; with o->tty, a \r progress line too)
 *    and errors to stderr; it returns 0, or -1 after printing the error.
 * Example code, not library code. */
#ifndef GOPT_EXAMPLES_LAB_H
#define GOPT_EXAMPLES_LAB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct lab_options {
    const char *out_dir;   /* exists; CSV files go here */
    const char *cifar_dir; /* CIFAR-10 binary directory, or NULL: the built-in synthetic images */
    const char *text_path; /* a text file, or NULL: the built-in text */
    int quick;             /* every scenario smaller: all three together in a few minutes */
    int threads;           /* as set with gopt_set_threads (already applied) */
    uint64_t seed;
    int tty;               /* stdout is a terminal */
    FILE *timing;          /* timing.csv, open for appending (may be NULL) */
} lab_options;

typedef struct lab_section {
    char *html;          /* malloc'd, NUL-terminated: the body of the section (h3 subsections,
                            tables, figures); the driver writes the h2 heading, data and
                            findings before it */
    char findings[2048]; /* two or three plain-text sentences with numbers (no HTML), the
                            section's headline; also printed and put in findings.md */
    char data[512];      /* which data it ran on, e.g. "CIFAR-10 (40000 train, 2000 val
                            images from DIR)" or "the BUILT-IN SYNTHETIC images (no CIFAR-10
                            found)" (plain text) */
    int builtin_data;    /* 1: ran on built-in data because the real data was not given */
} lab_section;

int lab_resnet(const lab_options *o, lab_section *out);
int lab_sequence(const lab_options *o, lab_section *out);
int lab_depth(const lab_options *o, lab_section *out);

/* Append "scenario,item,seconds" to o->timing (when open). */
void lab_timing(const lab_options *o, const char *scenario, const char *item, double seconds);

/* The median of the finite values among the first min(count, n) of v (at most 256 of
 * them; NAN when there are none): the scenarios set clip thresholds from it. */
double lab_median_first(const double *v, int count, int n);

/* A growing string for the section's HTML (open_memstream underneath). */
typedef struct lab_html {
    FILE *f;
    char *buf;
    size_t len;
} lab_html;
int lab_html_open(lab_html *h);            /* 0, or -1 (out of memory, printed) */
char *lab_html_close(lab_html *h);         /* the string (caller frees), NULL on failure */

#endif
