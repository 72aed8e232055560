/* trajectory_runner [--workdir DIR] FILE.traj...: replay whole training trajectories
 * computed with PyTorch 1.13 (tests/trajectory/FORMAT.md) through libgradopt's public API.
 * Prints one line per file (worst error as a fraction of the tolerance) and ends with
 * "N passed, M failed". Exit status 0 only if every file parsed and passed. A file that
 * cannot be parsed is a failure naming its line. The resume checkpoint goes to DIR ($TMPDIR
 * or /tmp by default) and is removed afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traj.h"

int main(int argc, char **argv) {
    const char *workdir = getenv("TMPDIR");
    if (!workdir || !*workdir) workdir = "/tmp";
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "--workdir")) {
        workdir = argv[2];
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [--workdir DIR] FILE.traj...\n", argv[0]);
        return 2;
    }
    int passed = 0, failed = 0;
    for (int i = first; i < argc; i++) {
        static traj t;
        char err[768];
        if (traj_parse(argv[i], &t, err, sizeof err) != 0) {
            printf("FAIL %s\n", err);
            failed++;
            continue;
        }
        traj_result r;
        int rc = traj_replay(&t, workdir, &r);
        if (rc != 0) {
            printf("FAIL %-40s %s\n", t.name, r.error);
            failed++;
        } else if (r.compared == 0) {
            printf("FAIL %-40s compared nothing\n", t.name);
            failed++;
        } else if (r.worst_ratio > 1.0 || r.nonfinite) {
            printf("FAIL %-40s worst abs err %.3g, %.3gx tolerance at %s%s\n", t.name, r.worst_abs, r.worst_ratio,
                   r.worst_what, r.resumed ? " (plain or resumed run)" : "");
            failed++;
        } else {
            printf("ok   %-40s worst abs err %.3g (%.3f of tolerance at %s; %ld values, %d steps%s)\n", t.name,
                   r.worst_abs, r.worst_ratio, r.worst_what[0] ? r.worst_what : "-", r.compared, t.steps,
                   r.resumed ? ", resumed run identical" : "");
            passed++;
        }
        traj_free(&t);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
