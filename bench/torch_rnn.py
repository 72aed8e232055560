#!/usr/bin/env python3
"""The PyTorch side of bench_rnn: train_text's default model (Embedding(V,E) -> LSTM(E,H,L,
batch_first) -> Linear(H,V), cross entropy over every step, Adam, clip_grad_norm_) trained on
the batches bench_rnn wrote (--batches FILE: int32, K batches of (B, T+1) token ids; inputs
are the first T of each row, targets the last T). Prints
'TORCH params=<n> tok_s=<median> ms=<median ms/iter> loss=<last> rss_mb=<peak RSS>'."""
import argparse, resource, statistics, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CharModel(nn.Module):
    def __init__(self, arch, V, E, H, L):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[arch]
        self.rnn = cls(E, H, L, batch_first=True)
        self.head = nn.Linear(H, V)

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.head(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", required=True)
    ap.add_argument("--arch", default="lstm")
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip-norm", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, T, V = a.batch, a.seq_len, a.vocab
    data = np.fromfile(a.batches, dtype=np.int32).reshape(-1, B, T + 1).astype(np.int64)
    model = CharModel(a.arch, V, a.embed, a.hidden, a.layers)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    times = []
    for it in range(a.warmup + a.iters):
        w = torch.from_numpy(data[it % len(data)])
        x, y = w[:, :T], w[:, 1:]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_norm)
        opt.step()
        t = time.perf_counter() - t0
        if it >= a.warmup:
            times.append(t)
    med = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("TORCH params=%d tok_s=%.1f ms=%.2f loss=%.4f rss_mb=%.1f torch=%s" %
          (params, B * T / med, 1e3 * med, loss.item(), rss, torch.__version__))


if __name__ == "__main__":
    main()
