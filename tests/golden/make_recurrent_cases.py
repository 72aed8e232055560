#!/usr/bin/env python3
"""Write recurrent layer cases (gradopt-golden 1, FORMAT.md section "kind layer: recurrent
and sequence layers") computed with PyTorch 1.13's torch.nn.RNN / LSTM / GRU (batch_first),
for sizes, depths, sequence lengths and options that ../shared does not cover. Not used by
the build; the committed tests/golden/cases/r_*.golden came from the fixed list:
    /usr/bin/python3 tests/golden/make_recurrent_cases.py OUT_DIR            # the fixed list
    /usr/bin/python3 tests/golden/make_recurrent_cases.py OUT_DIR --random 40 --seed 7 [--max-hidden 100]
Hidden sizes of 64 and more split the fused recurrent loop over two threads (with
OMP_NUM_THREADS=2) and sizes that are not multiples of 16 use its
partial panels.
"""
import os
import random
import sys

import torch

# name, layer, input_size, hidden_size, num_layers, bias, nonlinearity, N, T
FIXED = [
    ("r_rnn_relu_3layer_nobias", "rnn", 5, 7, 3, False, "relu", 3, 9),
    ("r_rnn_tanh_2layer_t50", "rnn", 2, 9, 2, True, "tanh", 2, 50),
    ("r_lstm_wide_odd", "lstm", 9, 19, 2, True, None, 3, 8),
    ("r_lstm_4layer_nobias", "lstm", 3, 4, 4, False, None, 3, 6),
    ("r_lstm_n1_t1", "lstm", 4, 3, 1, True, None, 1, 1),
    ("r_gru_nobias", "gru", 6, 5, 1, False, None, 4, 7),
    ("r_gru_3layer_t25", "gru", 3, 6, 3, True, None, 2, 25),
    ("r_gru_wide_odd", "gru", 11, 13, 2, True, None, 3, 10),
]


def fmt(t):
    return " ".join("%.9g" % v for v in t.detach().reshape(-1).tolist())


def header(t):
    return "%d %s" % (t.dim(), " ".join(str(d) for d in t.shape))


def make(name, layer, I, H, L, bias, nonlinearity, N, T, seed):
    torch.manual_seed(seed)
    if layer == "rnn":
        m = torch.nn.RNN(I, H, L, nonlinearity=nonlinearity, bias=bias, batch_first=True)
    elif layer == "lstm":
        m = torch.nn.LSTM(I, H, L, bias=bias, batch_first=True)
    else:
        m = torch.nn.GRU(I, H, L, bias=bias, batch_first=True)
    x = torch.randn(N, T, I, requires_grad=True)
    h0 = (0.5 * torch.randn(L, N, H)).requires_grad_()
    c0 = (0.5 * torch.randn(L, N, H)).requires_grad_()
    dout, dhn, dcn = torch.randn(N, T, H), torch.randn(L, N, H), torch.randn(L, N, H)
    if layer == "lstm":
        out, (hn, cn) = m(x, (h0, c0))
        loss = (out * dout).sum() + (hn * dhn).sum() + (cn * dcn).sum()
    else:
        out, hn = m(x, h0)
        loss = (out * dout).sum() + (hn * dhn).sum()
    params = list(m.parameters())  # PyTorch's order: per layer w_ih, w_hh, b_ih, b_hh
    loss.backward()
    cfg = "config layer=%s input_size=%d hidden_size=%d num_layers=%d bias=%s batch_first=true" % (
        layer, I, H, L, "true" if bias else "false")
    if layer == "rnn":
        cfg += " nonlinearity=" + nonlinearity
    o = ["case " + name, "kind layer", cfg]
    o += ["input 0 " + header(x), fmt(x), "input 1 " + header(h0), fmt(h0)]
    if layer == "lstm":
        o += ["input 2 " + header(c0), fmt(c0)]
    for i, p in enumerate(params):
        o += ["weight %d %s" % (i, header(p)), fmt(p)]
    o += ["dout " + header(dout), fmt(dout), "dout_hn " + header(dhn), fmt(dhn)]
    if layer == "lstm":
        o += ["dout_cn " + header(dcn), fmt(dcn)]
    o += ["expect out " + header(out), fmt(out), "expect hn " + header(hn), fmt(hn)]
    if layer == "lstm":
        o += ["expect cn " + header(cn), fmt(cn)]
    o += ["expect dinput 0 " + header(x), fmt(x.grad), "expect dinput 1 " + header(h0), fmt(h0.grad)]
    if layer == "lstm":
        o += ["expect dinput 2 " + header(c0), fmt(c0.grad)]
    for i, p in enumerate(params):
        o += ["expect dweight %d %s" % (i, header(p)), fmt(p.grad)]
    o.append("end")
    return "gradopt-golden 1\n" + "\n".join(o) + "\n"


def random_cases(count, seed, max_hidden):
    rng = random.Random(seed)
    cases = []
    for k in range(count):
        layer = rng.choice(["rnn", "lstm", "gru"])
        nl = rng.choice(["tanh", "relu"]) if layer == "rnn" else None
        cases.append(("rand_%d_%s" % (k, layer), layer, rng.randint(1, 24), rng.randint(1, max_hidden), rng.randint(1, 4),
                      rng.random() < 0.7, nl, rng.randint(1, 6), rng.randint(1, 40)))
    return cases


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out_dir = args[0]
    cases, base = FIXED, 5000
    if "--random" in args:
        seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 1
        max_hidden = int(args[args.index("--max-hidden") + 1]) if "--max-hidden" in args else 40
        cases, base = random_cases(int(args[args.index("--random") + 1]), seed, max_hidden), 9000 + 1000 * seed
    os.makedirs(out_dir, exist_ok=True)
    for k, c in enumerate(cases):
        with open(os.path.join(out_dir, c[0] + ".golden"), "w") as f:
            f.write(make(*c, seed=base + k))


if __name__ == "__main__":
    main()
