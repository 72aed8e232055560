#!/usr/bin/env python3
"""The PyTorch peer of bench_dist's allreduce mode: torch.distributed.all_reduce (SUM) over
the gloo backend followed by the 1/P scale, in place on one float32 tensor, with 2 processes
(torch.multiprocessing.spawn, init_method file:// in a temporary directory, 1 thread each) on
the sizes bench_dist times: 0.1, 1, 10 and 100 MB (1e6 bytes) and the ResNet-20 gradient
(272474 floats, the same model as bench/torch_train.py).

    python3 bench/torch_dist.py [--quick] [--repeat N] [--world 2]

Each sample: barrier, k calls (k = ceil(target / bytes), target 200 MB, quick 40 MB, k <= 2000),
the slowest rank's time / k; --repeat samples (default 9, quick 3), medians. The result is
checked (every rank holds (P + 1) / 2 after averaging rank + 1) before timing. Rank 0 prints
one line per size for scripts/bench.sh, algbw = bytes / time in GB/s (1e9 bytes/s):
    PEER<TAB>dist.allreduce.<label><TAB>GB/s<TAB><algbw>
and a human-readable line before it."""
import argparse
import math
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SIZES = [("0.1MB", 0.1e6), ("1MB", 1e6), ("10MB", 10e6), ("100MB", 100e6), ("resnet20", 4.0 * 272474)]


def worker(rank, world, init, repeat, target):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    for label, size in SIZES:
        n = int(size / 4)
        nbytes = 4.0 * n
        k = min(2000, math.ceil(target / nbytes))
        buf = torch.full((n,), float(rank + 1))
        dist.all_reduce(buf)
        buf.div_(world)
        want = 0.5 * (world + 1)
        for i in (0, n // 2, n - 1):
            if buf[i].item() != want:
                raise SystemExit("torch_dist: rank %d: %s gave %g at %d, want %g" % (rank, label, buf[i].item(), i, want))
        times = []
        for _ in range(repeat):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(k):
                dist.all_reduce(buf)
                buf.div_(world)
            t = torch.tensor([(time.perf_counter() - t0) / k], dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            times.append(t.item())
        med = statistics.median(times)
        if rank == 0:
            print("torch %s gloo: %s %.0f bytes k=%d median %.1f us algbw %.3f GB/s" %
                  (torch.__version__, label, nbytes, k, 1e6 * med, nbytes / med * 1e-9), flush=True)
            print("PEER\tdist.allreduce.%s\tGB/s\t%.6g" % (label, nbytes / med * 1e-9), flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=0)
    ap.add_argument("--world", type=int, default=2)
    a = ap.parse_args()
    repeat = a.repeat or (3 if a.quick else 9)
    target = 40e6 if a.quick else 200e6
    with tempfile.TemporaryDirectory(prefix="torch_dist.") as d:
        init = "file://" + os.path.join(d, "rendezvous")
        mp.spawn(worker, args=(a.world, init, repeat, target), nprocs=a.world, join=True)


if __name__ == "__main__":
    main()
