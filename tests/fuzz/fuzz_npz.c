/* fuzz_npz: the .npz reader (gopt_net_load_npz_mem and, through a memory file,
 * gopt_net_load_npz) into the two small nets of st_nets.h. The first byte picks the net
 * (bit 0), strict or not (bit 1), the names (bit 2: arena) and the path variant (bit 3),
 * as fuzz_safetensors does (the harness is weights_load.c, shared with it). A refusal must
 * leave every value and buffer of the net as it was, say why and be GOPT_EFORMAT or
 * GOPT_ESHAPE; a strict success must have loaded every tensor. Seeds (corpus/npz): each
 * net's gopt_net_save_npz export in both namings, the same re-written by numpy.savez (zip64
 * extra fields in the local headers), and one numpy.savez_compressed file (refused). */
#include "weights_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fz_weights_load(data, size, gopt_net_load_npz, gopt_net_load_npz_mem);
}
