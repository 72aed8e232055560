"""torch.nn.utils.clip_grad_norm_ (L2, active) timing for bench_clip: prints
'tensors <median_ms>' and 'flat <median_ms>'. Usage: torch_clip.py N THREADS REPS"""
import sys, time, statistics
import torch

n, threads, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)

def layout(n):
    # a ResNet-like mix: ~300 tensors, conv kernels and small bias/norm vectors
    sizes, left, i = [], n, 0
    while left > 0:
        s = [64, 256, 512, 2304, 36864, 65536, 147456][i % 7]
        s = min(s, left)
        sizes.append(s); left -= s; i += 1
    return sizes

def bench(sizes):
    ps = [torch.nn.Parameter(torch.empty(s)) for s in sizes]
    for p in ps:
        p.grad = torch.randn(p.numel())
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(ps, 1.0, 2.0)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), len(sizes)

t, k = bench(layout(n))
print("tensors %.4f %d" % (t, k))
t, _ = bench([n])
print("flat %.4f 1" % t)
