/* Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with clang -fsanitize=fuzzer it is a
 * libFuzzer binary (scripts/fuzz.sh); built by any compiler with replay.c instead, it runs
 * the inputs named on its command line (files or directories) once each, which is how ctest
 * replays the seed and regression corpus in tests/fuzz/corpus/<target>/ on every build.
 *
 * A target aborts (FZ_CHECK) when the library breaks a promise of its headers on some input:
 * a failed load that changed the object, a success without the promised effect, an error
 * without a detail message. Crashes, leaks and undefined behaviour are the sanitizers' to
 * report. */
#ifndef GOPT_TESTS_FUZZ_H
#define GOPT_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <gradopt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)                                                         \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz check failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fprintf(stderr, "\n  last library error: %s\n", gopt_last_error());    \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* A failing call must say why. */
#define FZ_HAS_DETAIL() FZ_CHECK(gopt_last_error()[0] != '\0', "an error without a detail message")

/* The bytes as a file the library can open by path: an anonymous memory file (memfd)
 * reached as /proc/self/fd/N, so no file system is touched. Returns the path (static
 * buffer) or NULL; fz_file_close releases it. */
const char *fz_file(const void *data, size_t size);
void fz_file_close(void);

#endif /* GOPT_TESTS_FUZZ_H */
