/* The example programs' OpenMP wait policy (see gopt_set_threads in gradopt/common.h for the
 * measurements): passive unless the user chose one. The OpenMP runtime reads OMP_WAIT_POLICY
 * once, when the process starts, so the only way for a program to default it is to set it
 * and execute itself again, before anything else runs.
 *
 * wait_policy_default_passive(argv): first thing in main(). When neither OMP_WAIT_POLICY nor
 * GOMP_SPINCOUNT is set, sets OMP_WAIT_POLICY=passive and re-executes /proc/self/exe with the
 * same arguments (the same process id, so mpirun and shells see no difference); the second
 * start finds the variable set and returns at once. If the re-execution fails (no /proc),
 * it returns and the program runs with the runtime's default. */
#ifndef GOPT_EXAMPLES_WAIT_POLICY_H
#define GOPT_EXAMPLES_WAIT_POLICY_H

void wait_policy_default_passive(char **argv);

#endif
