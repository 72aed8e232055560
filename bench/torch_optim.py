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
