#!/usr/bin/env python3
"""Time torch.optim steps on one flat float32 tensor, for bench_optim --torch.

    python3 bench/torch_optim.py --params N --threads T --reps R --algos adam,sgd,...

Prints one machine-readable line per algorithm:
    torch <algo> <median ns per step> <foreach 0|1>
or  torch <algo> skip <reason>
Hyperparameters match bench_optim's (PyTorch defaults; SGD with momentum 0.9)."""
import argparse
import statistics
import time

import torch

NAMES = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW",
         "adadelta": "Adadelta", "nadam": "NAdam", "radam": "RAdam", "adamax": "Adamax"}
EXTRA = {"sgd": dict(lr=0.01, momentum=0.9)}


# issue 18 (helper "sf"): peers for what torch 1.13 lacks. Schedule-Free AdamW/SGD as
# facebookresearch/schedule_free 1.3's step, transcribed with torch tensor ops (one tensor: its
# foreach path would make the same calls; torch 1.13 has no _foreach_lerp_), and the EMA update of torch.optim.swa_utils.AveragedModel
# (update_parameters with the 1.13 docs' avg_fn) on the same flat tensor.
def sf_step_fn(algo, p):
    y, g = p.detach(), p.grad
    z, v = y.clone(), torch.zeros_like(y)
    st = dict(k=0, weight_sum=0.0, lr_max=-1.0)
    adam = algo == "adamw_schedulefree"
    lr0, beta1, beta2, eps = (0.0025, 0.9, 0.999, 1e-8) if adam else (1.0, 0.9, 0.0, 0.0)

    def step():
        k = st["k"]
        lr = lr0
        lr_max = st["lr_max"] = max(lr, st["lr_max"])
        weight = ((k + 1) ** 0.0) * (lr_max ** 2.0)
        st["weight_sum"] += weight
        ckp1 = weight / st["weight_sum"]
        grad = g
        if adam:  # upstream normalises p.grad in place; a new tensor keeps the input fixed
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            grad = g.div(v.div(1 - beta2 ** (k + 1)).sqrt_().add_(eps))
        y.lerp_(z, ckp1)
        y.add_(grad, alpha=lr * (beta1 * (1 - ckp1) - 1))
        z.sub_(grad, alpha=lr)
        st["k"] = k + 1
    return step


def ema_step_fn(p):
    model = torch.nn.Linear(1, 1, bias=False)
    model.weight = torch.nn.Parameter(p.detach().clone())
    avg = torch.optim.swa_utils.AveragedModel(model, avg_fn=lambda a, m, n: 0.999 * a + (1 - 0.999) * m)
    return lambda: avg.update_parameters(model)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--algos", default="adam")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for algo in a.algos.split(","):
        if algo in ("adamw_schedulefree", "sgd_schedulefree", "ema"):
            p = torch.randn(a.params).requires_grad_()
            p.grad = torch.randn(a.params) * 1e-3
            step = ema_step_fn(p) if algo == "ema" else sf_step_fn(algo, p)
            with torch.no_grad():
                step()  # first touch (the EMA's copy) is not timed
                times = []
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - t0)
            print("torch %s %.0f %d" % (algo, statistics.median(times) * 1e9, 0), flush=True)
            del step, p
            continue
        if algo not in NAMES:
            print("torch %s skip not-in-torch-1.13" % algo, flush=True)
            continue
        p = torch.randn(a.params).requires_grad_()
        p.grad = torch.randn(a.params) * 1e-3
        kw = dict(EXTRA.get(algo, {}))
        foreach = 1
        try:
            opt = getattr(torch.optim, NAMES[algo])([p], foreach=True, **kw)
        except TypeError:
            opt = getattr(torch.optim, NAMES[algo])([p], **kw)
            foreach = 0
        with torch.no_grad():
            opt.step()  # state allocation is not timed
            times = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
        print("torch %s %.0f %d" % (algo, statistics.median(times) * 1e9, foreach), flush=True)
        del opt, p


if __name__ == "__main__":
    main()
