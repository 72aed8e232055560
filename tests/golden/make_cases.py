#!/usr/bin/env python3
"""Write extra `kind optimizer` cases (gradopt-golden 1) computed with torch 1.13, to check
that golden_runner handles cases it was not written against. Not used by the build:
    /usr/bin/python3 tests/golden/make_cases.py OUT_DIR
"""
import os
import sys

import torch

CASES = [
    # name, algo, kwargs, tensor shapes, groups [(params, overrides)], steps
    ("x_sgd_nesterov_d0_wd", "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, dampening=0.0, weight_decay=0.01), [(7,), (3, 2)], None, 6),
    ("x_adam_amsgrad_maximize", "Adam", dict(lr=0.02, amsgrad=True, maximize=True, betas=(0.85, 0.95)), [(4, 3), (5,)], None, 7),
    ("x_radam_wd", "RAdam", dict(lr=0.01, weight_decay=0.05, betas=(0.9, 0.99)), [(9,), (2, 2, 2)], None, 9),
    ("x_nadam", "NAdam", dict(lr=0.005, betas=(0.8, 0.9), momentum_decay=0.01, eps=1e-6), [(6,)], None, 7),
    ("x_adamax_wd", "Adamax", dict(lr=0.01, weight_decay=0.02, eps=1e-6, maximize=True), [(3, 3), (4,)], None, 6),
    ("x_adagrad_lr_decay", "Adagrad", dict(lr=0.2, lr_decay=0.05, initial_accumulator_value=0.5), [(11,)], None, 6),
    ("x_rmsprop_centered", "RMSprop", dict(lr=0.003, alpha=0.8, centered=True, maximize=True), [(5,), (2, 3)], None, 6),
    ("x_adadelta_maximize", "Adadelta", dict(lr=0.3, rho=0.8, weight_decay=0.1, maximize=True), [(8,)], None, 5),
    ("x_groups_sgd_lr", "SGD", dict(lr=0.1, momentum=0.9), [(4,), (3,), (2, 2)],
     [([0, 2], dict(lr=0.01)), ([1], dict(lr=0.5, dampening=0.3, weight_decay=0.1))], 6),
    ("x_groups_adam_mixed", "Adam", dict(lr=0.01), [(3,), (4,), (5,)],
     [([1], dict()), ([0, 2], dict(lr=0.05, amsgrad=True, betas=(0.5, 0.9), weight_decay=0.1))], 6),
    ("x_groups_rmsprop", "RMSprop", dict(lr=0.01), [(3,), (4,)],
     [([0], dict(momentum=0.5)), ([1], dict(centered=True, alpha=0.9))], 5),
]


def fmt(t):
    return " ".join("%.9g" % v for v in t.detach().reshape(-1).tolist())


def header(t):
    return "%d %s" % (t.dim(), " ".join(str(d) for d in t.shape))


def kv(k, v):
    if isinstance(v, bool):
        return "%s=%s" % (k, "true" if v else "false")
    if isinstance(v, tuple):
        return "%s=%s" % (k, ",".join(repr(x) for x in v))
    return "%s=%r" % (k, v)


def make(name, algo, kwargs, shapes, groups, steps, seed):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g).requires_grad_() for s in shapes]
    out = ["case " + name, "kind optimizer",
           "config algo=%s " % algo.lower() + " ".join(kv(k, v) for k, v in kwargs.items())]
    for i, p in enumerate(params):
        out += ["param %d %s" % (i, header(p)), fmt(p)]
    if groups:
        pg = []
        for gi, (idx, over) in enumerate(groups):
            out.append(("group %d params=%s " % (gi, ",".join(map(str, idx))) +
                        " ".join(kv(k, v) for k, v in over.items())).rstrip())
            pg.append(dict(params=[params[i] for i in idx], **over))
        opt = getattr(torch.optim, algo)(pg, **kwargs)
    else:
        opt = getattr(torch.optim, algo)(params, **kwargs)
    for step in range(1, steps + 1):
        scale = [1.0, 300.0, 1e-4][step % 3]
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=g) * scale
            out += ["grad %d %d %s" % (step, i, header(p)), fmt(p.grad)]
        opt.step()
        for i, p in enumerate(params):
            out += ["expect %d %d %s" % (step, i, header(p)), fmt(p)]
    out.append("end")
    return "\n".join(out) + "\n"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(d, exist_ok=True)
    for k, c in enumerate(CASES):
        with open(os.path.join(d, c[0] + ".golden"), "w") as f:
            f.write("gradopt-golden 1\n" + make(*c, seed=1000 + k))


if __name__ == "__main__":
    main()
