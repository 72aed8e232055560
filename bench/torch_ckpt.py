#!/usr/bin/env python3
"""The PyTorch side of bench_ckpt: torch.save / torch.load of a checkpoint of the same size,
{"model": model.state_dict(), "optim": opt.state_dict()} for a model holding one float32
parameter of --params elements and SGD(lr=0.01, momentum=0.9) after one step (its momentum
buffer), in a file of --dir (bench_ckpt's temporary directory: the same file system).

    python3 bench/torch_ckpt.py --params N --reps R --dir DIR

save = torch.save into an open file, flush, os.fsync, close (a crash-safe save needs the
fsync; torch.save alone leaves the bytes in the page cache); load = torch.load +
load_state_dict into the model and the optimizer. Medians over R reps; MB = 1e6 bytes of the
file. Prints 'TORCH save_mb_s=<x> load_mb_s=<y> bytes=<file size> torch=<version>'."""
import argparse
import os
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.rand(a.params) - 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.w.grad = (torch.rand(a.params) - 0.5) * 1e-3
    opt.step()
    path = os.path.join(a.dir, "torch_ckpt.pt")
    saves, loads = [], []
    try:
        for _ in range(a.reps):
            t0 = time.perf_counter()
            with open(path, "wb") as f:
                torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            t1 = time.perf_counter()
            ck = torch.load(path)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optim"])
            del ck
            t2 = time.perf_counter()
            saves.append(t1 - t0)
            loads.append(t2 - t1)
        size = os.path.getsize(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    mb = size / 1e6
    print("TORCH save_mb_s=%.1f load_mb_s=%.1f bytes=%d torch=%s" %
          (mb / statistics.median(saves), mb / statistics.median(loads), size, torch.__version__), flush=True)


if __name__ == "__main__":
    main()
