/* gopt_net_freeze (gradopt/net.h): freezing by tensor or layer name, through the public
 * accessors only (gopt_net_params, gopt_params_count, gopt_params_info).
 *
 * A layer's tensors are "<layer name>.<suffix>" (gopt_net_add registers them under the
 * layer's name), so a layer is found by the prefix of its tensors' names. Until the net
 * exposes its layers by name (gopt_net_find_layer), a layer without parameters is not
 * found (there is nothing to freeze in it either), and the layer's own flag (l->frozen,
 * gopt_layer_set_frozen) is not set: what the optimizers, clipping and the layers' backward
 * read is each tensor's flag, which this sets. */
#include "core/common.h"
#include "gradopt/net.h"

gopt_status gopt_net_freeze(gopt_net *net, const char *name, int on) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(name);
    if (on != 0 && on != 1) return GOPT_FAIL(GOPT_EINVAL, "on = %d must be 0 or 1", on);
    gopt_params *p = gopt_net_params(net);
    if (!p) return GOPT_FAIL(GOPT_EINVAL, "the net has no parameter arena");
    const size_t len = strlen(name);
    for (int i = 0; len > 0 && i < gopt_params_count(p); i++) { /* a tensor's name first */
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        if (strcmp(info.name, name) == 0) GOPT_RETURN(gopt_params_set_frozen(p, i, on));
    }
    int matched = 0;
    for (int i = 0; len > 0 && i < gopt_params_count(p); i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        if (strncmp(info.name, name, len) != 0 || info.name[len] != '.') continue;
        GOPT_TRY(gopt_params_set_frozen(p, i, on));
        matched++;
    }
    if (!matched)
        return GOPT_FAIL(GOPT_ERANGE, "name '%s' is neither a tensor of the net nor a layer with parameters", name);
    return GOPT_OK;
}
