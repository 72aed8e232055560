/* weights_load.c: the harness of fuzz_safetensors and fuzz_npz (weights_load.h). */
#include <string.h>

#include "st_nets.h"
#include "weights_load.h"

static gopt_net *nets[2];
static float *snap[2], *work;
static int64_t snap_n[2];

/* every value of the arena, then every buffer */
static int64_t take(gopt_net *net, float *dst) {
    gopt_params *p = gopt_net_params(net);
    int64_t o = gopt_params_numel(p);
    if (dst) memcpy(dst, gopt_params_values(p), (size_t)o * sizeof(float));
    for (int i = 0; i < gopt_net_buffer_count(net); i++) {
        gopt_net_buffer b;
        FZ_CHECK(gopt_net_buffer_info(net, i, &b) == GOPT_OK, "buffer_info");
        if (dst) memcpy(dst + o, b.value.data, (size_t)b.value.numel * sizeof(float));
        o += b.value.numel;
    }
    return o;
}

static void init(void) {
    int64_t most = 0;
    for (int k = 0; k < 2; k++) {
        nets[k] = st_net(k);
        FZ_CHECK(nets[k], "building net %d: %s", k, gopt_last_error());
        snap_n[k] = take(nets[k], NULL);
        snap[k] = malloc((size_t)snap_n[k] * sizeof(float));
        if (snap_n[k] > most) most = snap_n[k];
    }
    work = malloc((size_t)most * sizeof(float));
}

int fz_weights_load(const uint8_t *data, size_t size, fz_load_path_fn load_path, fz_load_mem_fn load_mem) {
    if (!nets[0]) init();
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    const int k = mode & 1;
    gopt_net *net = nets[k];
    gopt_weights_config c = gopt_weights_config_default();
    c.strict = !(mode & 2);
    c.names = (mode & 4) ? GOPT_NAMES_ARENA : GOPT_NAMES_TORCH;
    take(net, snap[k]);
    gopt_weights_report r;
    memset(&r, 0xA5, sizeof r);
    gopt_clear_error();
    gopt_status s;
    if (mode & 8) {
        s = load_path(net, fz_file(data, size), &c, &r);
        fz_file_close();
    } else {
        s = load_mem(net, data, size, "fuzz", &c, &r);
    }
    const int total = gopt_params_count(gopt_net_params(net)) + gopt_net_buffer_count(net);
    if (s != GOPT_OK) {
        FZ_HAS_DETAIL();
        FZ_CHECK(s == GOPT_EFORMAT || s == GOPT_ESHAPE, "refused with status %d", s);
        take(net, work);
        FZ_CHECK(memcmp(work, snap[k], (size_t)snap_n[k] * sizeof(float)) == 0, "a refused file changed the net");
        return 0;
    }
    FZ_CHECK(r.loaded + r.missing == total && r.loaded >= 0 && r.missing >= 0 && r.unexpected >= 0,
             "report %d + %d of %d tensors", r.loaded, r.missing, total);
    FZ_CHECK(memchr(r.text, 0, sizeof r.text) != NULL, "report text not terminated");
    if (c.strict) FZ_CHECK(r.loaded == total && r.unexpected == 0 && r.text[0] == 0, "strict load incomplete");
    return 0;
}
