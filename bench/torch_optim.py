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


# issue 18 (helper "muon"): peers for Adafactor and Muon, which torch 1.13 lacks: the
# single-tensor paths of torch.optim.Adafactor (2.5+) and torch.optim.Muon (2.9+) transcribed
# with torch 1.13 tensor ops (as tests/golden/make_frontier_cases.py does; Muon's iteration
# in float32, as ours), on bench_optim's shapes: Adafactor over a (N/1024, 1024) matrix and
# over a vector of N and over a (N/9216, 1024, 3, 3) convolution weight (wd 0.01), Muon on one 512x512 matrix (PyTorch's defaults).
def adafactor_step_fn(p, lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.01):
    grad = p.grad
    st = dict(step=0)
    if grad.dim() > 1:
        st["row"] = grad.new_zeros(grad.shape[:-1] + (1,))
        st["col"] = grad.new_zeros(grad.shape[:-2] + (1, grad.shape[-1]))
    else:
        st["var"] = torch.zeros_like(grad)
    eps1 = torch.finfo(p.dtype).eps if eps1 is None else eps1

    def step():
        st["step"] += 1
        t = float(st["step"])
        w = t ** beta2_decay
        alpha = max(eps2, p.norm(2).item() / (p.numel() ** 0.5)) * min(lr, 1 / t ** 0.5)
        p.mul_(1 - lr * weight_decay)
        if grad.dim() > 1:
            st["row"].lerp_(torch.linalg.vector_norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1)), w)
            st["col"].lerp_(torch.linalg.vector_norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2)), w)
            var = st["row"] @ st["col"]
            var.div_(st["row"].mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            st["var"].lerp_(grad * grad, w)
            var = st["var"].clone()
        update = var.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
        denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
        p.add_(update, alpha=-alpha / denom)
    return step


def muon_step_fn(p, lr=1e-3, weight_decay=0.1, momentum=0.95, coeffs=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5):
    buf = torch.zeros_like(p)
    a, b, c = coeffs

    def step():
        grad = p.grad
        buf.lerp_(grad, 1 - momentum)
        x = grad.lerp(buf, momentum)
        tall = x.size(0) > x.size(1)
        if tall:
            x = x.T
        x = x / x.norm().clamp(min=eps)
        for _ in range(ns_steps):
            gram = x @ x.T
            x = a * x + (b * gram + c * gram @ gram) @ x
        if tall:
            x = x.T
        p.mul_(1 - lr * weight_decay)
        p.add_(x, alpha=-lr * max(1, p.size(0) / p.size(1)) ** 0.5)
    return step


def time_step(step, reps):
    with torch.no_grad():
        step()  # first touch is not timed
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e9


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
        if algo in ("adafactor", "muon"):
            shapes = [("adafactor", (a.params // 1024, 1024)), ("adafactor-1d", (a.params // 1024 * 1024,)),
                      ("adafactor-conv", (max(a.params // 9216, 1), 1024, 3, 3))] \
                if algo == "adafactor" else [("muon-ns512", (512, 512))]
            for name, shape in shapes:
                p = torch.rand(*shape) - 0.5
                p.grad = (torch.rand(*shape) - 0.5) * (1e-3 if algo == "adafactor" else 1.0)
                step = adafactor_step_fn(p) if algo == "adafactor" else muon_step_fn(p)
                print("torch %s %.0f %d" % (name, time_step(step, a.reps), 0), flush=True)
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
