/* See wait_policy.h. */
#define _POSIX_C_SOURCE 200809L
#include "wait_policy.h"

#include <stdlib.h>
#include <unistd.h>

void wait_policy_default_passive(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return; /* the user's choice, or our own re-exec */
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure: then run on with the runtime's default */
    unsetenv("OMP_WAIT_POLICY");
}
