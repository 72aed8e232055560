#!/usr/bin/env python3
"""The PyTorch 1.13 peer of examples/train_text: the same data split (first 90% of the file's
bytes train, last 10% validate, vocabulary = the sorted distinct bytes), the same model
(Embedding(V,E) -> LSTM/GRU/RNN(E,H,L, batch_first, dropout) -> Linear(H,V)), the same
optimizer (Adam, lr 2e-3), global-norm clipping, and the SAME batches: gopt_text_loader's
windows are reproduced bit for bit (xoshiro256** seeded through splitmix64, Lemire's
bounded draw, the loader's stream mixing). Validation is also computed as train_text does:
B contiguous streams of (n-1)/B characters, the state carried from window to window, the
padding of the last window ignored; mean nats per character.

The clock counts training steps only (evaluation excluded, as train_text's --max-seconds).
Prints 'time <s> step <n> val_loss <x>' at every evaluation and 'val loss <x>' last; --log
FILE writes the evaluations as JSON lines (train_seconds, step, val_loss).

  /usr/bin/python3 bench/torch_text.py --data ../shared/data/tinyshakespeare/input.txt \
      --max-seconds 180 --eval-seconds 30 --threads 2
"""
import argparse, json, math, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    """gopt_rng: xoshiro256** seeded by splitmix64 (src/core/tensor.c)."""

    def __init__(self, seed):
        x, s = seed & M64, []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            s.append(z ^ (z >> 31))
        self.s = s

    def u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        m = self.u64() * n
        low = m & M64
        if low < n:
            threshold = ((1 << 64) - n) % n
            while low < threshold:
                m = self.u64() * n
                low = m & M64
        return m >> 64


def stream_rng(seed, tag, a, b):
    """src/io/text.c stream_seed."""
    h = mix64(seed ^ mix64(tag))
    h = mix64(h ^ (a & M64))
    h = mix64(h ^ ((b * 0xD1B54A32D192ED03) & M64))
    return Rng(h)


TAG_WINDOWS, TAG_OFFSET = 11, 12


class Loader:
    """gopt_text_loader: random windows, or B contiguous streams (truncated BPTT)."""

    def __init__(self, ids, B, T, order, seed):
        self.ids, self.B, self.T, self.order, self.seed = ids, B, T, order, seed
        n = len(ids)
        if order == "random":
            self.batches = max(1, (n - 1) // (B * T))
        else:
            self.windows = (n - 1) // (B * T)
            self.batches = self.windows

    def batch_at(self, epoch, index):
        B, T, n = self.B, self.T, len(self.ids)
        if self.order == "random":
            rng = stream_rng(self.seed, TAG_WINDOWS, epoch, index)
            starts = [rng.below(n - T) for _ in range(B)]
        else:
            span = self.windows * T
            slack = (n - 1) - B * span
            off = stream_rng(self.seed, TAG_OFFSET, epoch, 0).below(slack + 1)
            starts = [off + b * span + index * T for b in range(B)]
        idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(T + 1)[None, :]
        w = self.ids[idx]
        return torch.from_numpy(w[:, :T].copy()), torch.from_numpy(w[:, 1:].copy())


class CharModel(nn.Module):
    def __init__(self, arch, V, E, H, L, dropout):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[arch]
        self.rnn = cls(E, H, L, batch_first=True, dropout=dropout)
        self.head = nn.Linear(H, V)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


@torch.no_grad()
def evaluate(model, ids, B, T):
    """Cover-all streams: stream b predicts ids[b*L+1 .. b*L+L], L = (n-1)//B."""
    model.eval()
    n = len(ids)
    L = (n - 1) // B
    W = (L + T - 1) // T
    total, count, state = 0.0, 0, None
    for k in range(W):
        x = np.zeros((B, T), dtype=np.int64)
        y = np.full((B, T), -100, dtype=np.int64)
        valid = min(T, L - k * T)
        for b in range(B):
            s = b * L + k * T
            x[b, :valid] = ids[s:s + valid]
            y[b, :valid] = ids[s + 1:s + valid + 1]
        logits, state = model(torch.from_numpy(x), state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1),
                               ignore_index=-100, reduction="sum")
        total += loss.item()
        count += B * valid
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--order", default="random", choices=["random", "streams"])
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip-norm", type=float, default=1.0)
    ap.add_argument("--cosine-epochs", type=int, default=0,
                    help="CosineAnnealingLR to 0 over N epochs, stepped per batch (train_text's default recipe: "
                         "--lr 6e-3 --cosine-epochs 12); 0: constant LR (the issue's peer: --lr 2e-3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=180)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--eval-seconds", type=float, default=30)
    ap.add_argument("--log", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    raw = np.fromfile(a.data, dtype=np.uint8)
    vocab = np.unique(raw)
    lut = np.full(256, -1, dtype=np.int64)
    lut[vocab] = np.arange(len(vocab))
    ids = lut[raw]
    ntrain = int(len(ids) * 0.9)
    train, val = ids[:ntrain], ids[ntrain:]
    V = len(vocab)
    model = CharModel(a.arch, V, a.embed, a.hidden, a.layers, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loader = Loader(train, a.batch, a.seq_len, a.order, a.seed)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.cosine_epochs * loader.batches)
             if a.cosine_epochs > 0 else None)
    print("torch_text: %d characters, vocabulary %d, train %d, val %d, %d params, %d batches/epoch, torch %s, "
          "%d threads" % (len(ids), V, len(train), len(val), sum(p.numel() for p in model.parameters()),
                          loader.batches, torch.__version__, a.threads), flush=True)
    log = open(a.log, "w") if a.log else None
    train_s, step, epoch, index, state = 0.0, 0, 0, 0, None
    next_eval = a.eval_seconds if a.eval_seconds > 0 else math.inf
    vl = float("nan")
    while True:
        if index == loader.batches:
            epoch, index = epoch + 1, 0
        x, y = loader.batch_at(epoch, index)
        t0 = time.perf_counter()
        if a.order == "streams" and index == 0:
            state = None
        opt.zero_grad(set_to_none=False)
        logits, new_state = model(x, state if a.order == "streams" else None)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss.backward()
        if a.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_norm)
        opt.step()
        if sched is not None and step + 1 < a.cosine_epochs * loader.batches:
            sched.step()
        state = detach(new_state)
        train_s += time.perf_counter() - t0
        step += 1
        index += 1
        done = train_s >= a.max_seconds or (a.max_steps and step >= a.max_steps)
        if train_s >= next_eval or done:
            while next_eval <= train_s:
                next_eval += a.eval_seconds
            vl = evaluate(model, val, a.batch, a.seq_len)
            print("time %.1f step %d epoch %d train_loss %.4f val_loss %.4f tok_s %.0f" %
                  (train_s, step, epoch + 1, loss.item(), vl, step * a.batch * a.seq_len / train_s), flush=True)
            if log:
                log.write(json.dumps({"train_seconds": round(train_s, 3), "step": step, "val_loss": vl}) + "\n")
                log.flush()
        if done:
            break
    if log:
        log.close()
    print("val loss %.4f" % vl)


if __name__ == "__main__":
    main()
