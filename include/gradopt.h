/* gradopt.h: the umbrella header of libgradopt. Include this one. */
#ifndef GRADOPT_H
#define GRADOPT_H

#include "gradopt/common.h"
#include "gradopt/status.h"
#include "gradopt/version.h"
#include "gradopt/tensor.h"
#include "gradopt/params.h"
#include "gradopt/optim.h"
#include "gradopt/sched.h"
#include "gradopt/clip.h"
#include "gradopt/monitor.h"
#include "gradopt/data.h"
#include "gradopt/checkpoint.h"
#include "gradopt/text.h"
#include "gradopt/layer.h"
#include "gradopt/custom_layer.h"
#include "gradopt/net.h"
#include "gradopt/loss.h"
#include "gradopt/interop.h"

#endif /* GRADOPT_H */
