/* gopt_net_freeze (gradopt/net.h): freezing by tensor or layer name, through the public
 * accessors only (gopt_net_params, gopt_params_info, gopt_net_find_layer).
 *
 * The name is tried as a tensor ("fc.weight"), then as a layer (gopt_net_find_layer:
 * gopt_layer_set_frozen sets the layer's flag and each of its tensors'), then as a part of a
 * layer by the prefix of its tensors' names ("layer1.0.conv1." inside a basic block). What
 * the optimizers, clipping, the layers' backward and the net's backward skip read each
 * tensor's flag. */
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
    int layer;
    if (gopt_net_find_layer(net, name, &layer) == GOPT_OK) /* a layer, with parameters or not */
        GOPT_RETURN(gopt_layer_set_frozen(gopt_net_layer(net, layer), on));
    gopt_clear_error();
    int matched = 0; /* a part of a layer: "layer1.0.conv1" inside a basic block */
    for (int i = 0; len > 0 && i < gopt_params_count(p); i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        if (strncmp(info.name, name, len) != 0 || info.name[len] != '.') continue;
        GOPT_TRY(gopt_params_set_frozen(p, i, on));
        matched++;
    }
    if (!matched)
        return GOPT_FAIL(GOPT_ERANGE, "name '%s' is neither a tensor nor a layer of the net", name);
    return GOPT_OK;
}
