/* fuzz_trajectory: the trajectory parser of tests/trajectory (traj_parse). It must refuse
 * malformed files with "path:line: what", never crash, leak or allocate without bound. */
#include <string.h>

#include "fuzz.h"
#include "trajectory/traj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    traj t;
    char err[512] = "";
    const char *path = fz_file(data, size);
    if (traj_parse(path, &t, err, sizeof err) == 0) {
        FZ_CHECK(t.steps >= 1 && t.ntensors >= 1, "accepted without steps or tensors");
        traj_free(&t);
    } else {
        FZ_CHECK(err[0] != '\0', "refused without a message");
    }
    fz_file_close();
    return 0;
}
