/* fuzz_golden: the reference-case parser of tests/golden (golden_run_file with run = 0).
 * It must refuse malformed files with a message naming the line, never crash or leak. */
#include "fuzz.h"
#include "golden/golden.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    int passed = 0, failed = 0;
    golden_run_file(fz_file(data, size), 0, sink, &passed, &failed);
    fz_file_close();
    FZ_CHECK(failed == 0 && passed >= 0, "parse-only run counted failures");
    return 0;
}
