/* fuzz_safetensors: the safetensors reader (gopt_net_load_safetensors_mem and, through a
 * memory file, gopt_net_load_safetensors) into two small nets (st_nets.h). The first byte
 * picks the net (bit 0), strict or not (bit 1), the names (bit 2: arena) and the path
 * variant (bit 3). A refusal must leave every value and buffer of the net as it was, say
 * why and be GOPT_EFORMAT or GOPT_ESHAPE; a strict success must have loaded every tensor.
 * The harness is weights_load.c, shared with fuzz_npz. */
#include "weights_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fz_weights_load(data, size, gopt_net_load_safetensors, gopt_net_load_safetensors_mem);
}
