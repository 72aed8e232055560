#!/usr/bin/env python3
"""The PyTorch side of bench_data: CIFAR-10's training pipeline (a new permutation each
epoch, RandomCrop(32, padding=4) with zero padding, RandomHorizontalFlip, ToTensor +
Normalize(CIFAR-10 mean, std)) in plain torch tensors, vectorised over the batch (no
torchvision), over an in-memory uint8 dataset (N, 3, 32, 32) of random bytes.

    python3 bench/torch_data.py [--images 50000] [--batch 128] [--batches 100] [--reps 7] [--threads 1]

Each rep times --batches consecutive batches (float32 (B, 3, 32, 32) + int64 labels).
Prints 'TORCH img_s=<median> ms_batch=<median ms per batch> torch=<version>'."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


class Pipeline:
    def __init__(self, images, labels, batch, pad=4):
        self.images, self.labels, self.batch, self.pad = images, labels, batch, pad
        self.epoch, self.pos = 0, 0
        self.gen = torch.Generator().manual_seed(1)
        self.perm = torch.randperm(len(images), generator=self.gen)
        self.ar = torch.arange(32)
        self.scale = (1.0 / (255.0 * STD)).view(1, 3, 1, 1)
        self.shift = (-MEAN / STD).view(1, 3, 1, 1)

    def next(self):
        B, P = self.batch, self.pad
        if self.pos + B > len(self.perm):  # drop_last: a new epoch
            self.epoch += 1
            self.perm = torch.randperm(len(self.images), generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + B]
        self.pos += B
        x = F.pad(self.images[idx], (P, P, P, P))  # (B, 3, 40, 40) uint8, zeros outside
        dy = torch.randint(0, 2 * P + 1, (B,), generator=self.gen)
        dx = torch.randint(0, 2 * P + 1, (B,), generator=self.gen)
        flip = torch.randint(0, 2, (B,), generator=self.gen).bool()
        rows = (dy[:, None] + self.ar)  # (B, 32)
        cols = torch.where(flip[:, None], 31 - self.ar, self.ar) + dx[:, None]  # (B, 32)
        b = torch.arange(B)[:, None, None]
        # x[b, :, rows, cols] -> (B, 32, 32, 3): advanced indexes first, the sliced channel last
        crop = x.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]
        out = crop.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return out.contiguous(), self.labels[idx]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (a.images, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(a.images) % 10
    pipe = Pipeline(images, labels, a.batch)
    sink = 0.0
    times = []
    for r in range(a.reps + 1):  # rep 0: warm-up
        t0 = time.perf_counter()
        for _ in range(a.batches):
            x, y = pipe.next()
            sink += float(x[0, 0, 0, 0])
        t = time.perf_counter() - t0
        if r > 0:
            times.append(t)
    med = statistics.median(times)
    print("TORCH img_s=%.1f ms_batch=%.3f torch=%s" % (a.batches * a.batch / med, 1e3 * med / a.batches,
                                                       torch.__version__))


if __name__ == "__main__":
    main()
