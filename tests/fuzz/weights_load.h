/* The harness shared by fuzz_safetensors and fuzz_npz: a weights reader (its path and its
 * memory entry point) loading into the two small nets of st_nets.h. The first byte picks the
 * net (bit 0), strict or not (bit 1), the names (bit 2: arena) and the path variant (bit 3).
 * A refusal must leave every value and buffer of the net as it was, say why and be
 * GOPT_EFORMAT or GOPT_ESHAPE; a strict success must have loaded every tensor. */
#ifndef GOPT_TESTS_FUZZ_WEIGHTS_LOAD_H
#define GOPT_TESTS_FUZZ_WEIGHTS_LOAD_H

#include "fuzz.h"

typedef gopt_status (*fz_load_path_fn)(gopt_net *net, const char *path, const gopt_weights_config *cfg,
                                       gopt_weights_report *report);
typedef gopt_status (*fz_load_mem_fn)(gopt_net *net, const void *data, size_t size, const char *label,
                                      const gopt_weights_config *cfg, gopt_weights_report *report);

/* One fuzz input through load_path or load_mem; aborts (FZ_CHECK) on a broken promise. */
int fz_weights_load(const uint8_t *data, size_t size, fz_load_path_fn load_path, fz_load_mem_fn load_mem);

#endif
