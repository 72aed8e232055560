/* bench/common/bench_util.c's bench_row: the line scripts/bench.sh collects. Absent, zero,
 * negative, NaN and infinite values print as "-"; finite positive ones with 6 significant
 * digits; every line is ROW, name, unit, ours, floor, peer separated by single tabs. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench_util.h"

/* What bench_row writes to stdout, captured through a temporary file. */
static void capture_row(const char *name, const char *unit, double ours, double floor_, double peer, char *out,
                        size_t size) {
    char path[] = "/tmp/test_bench_row.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    bench_row(name, unit, ours, floor_, peer);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    ssize_t n = pread(fd, out, size - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
}

static void test_row_values(void **state) {
    (void)state;
    char line[256];
    capture_row("optim.adam", "GB/s", 24.9298, 22.8558, 2.35254, line, sizeof line);
    assert_string_equal(line, "ROW\toptim.adam\tGB/s\t24.9298\t22.8558\t2.35254\n");
    capture_row("data.loader", "img/s", 385985.4, 1315167.0, 17708.8, line, sizeof line);
    assert_string_equal(line, "ROW\tdata.loader\timg/s\t385985\t1.31517e+06\t17708.8\n");
}

static void test_row_absent_values(void **state) {
    (void)state;
    char line[256];
    capture_row("rnn.lstm", "tokens/s", 1819.76, NAN, 0.0, line, sizeof line);
    assert_string_equal(line, "ROW\trnn.lstm\ttokens/s\t1819.76\t-\t-\n");
    capture_row("x", "MB/s", -1.0, INFINITY, -INFINITY, line, sizeof line);
    assert_string_equal(line, "ROW\tx\tMB/s\t-\t-\t-\n");
    /* a peer divided by a missing (NaN) time is NaN: absent, not a number */
    capture_row("ckpt.save", "MB/s", 80.0 / 0.25, 80.0 / 0.2, 80.0 / NAN, line, sizeof line);
    assert_string_equal(line, "ROW\tckpt.save\tMB/s\t320\t400\t-\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_values),
        cmocka_unit_test(test_row_absent_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
