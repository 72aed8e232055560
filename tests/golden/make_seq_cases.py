#!/usr/bin/env python3
"""Write the sequence cases of tests/golden/cases (gradopt-golden 1) with torch 1.13:
time-distributed cross entropy with ignore_index (and label smoothing, which PyTorch then
also averages over the non-ignored rows only), an embedding with many repeated ids, a
time-distributed linear. With --c, print instead the small case test_loss.c embeds.
    /usr/bin/python3 tests/golden/make_seq_cases.py tests/golden/cases
"""
import os
import sys

import torch
import torch.nn.functional as F


def fmt(t):
    return " ".join("%.9g" % v for v in t.detach().reshape(-1).tolist())


def cf(v):
    s = "%.9g" % v
    return s + ("" if any(ch in s for ch in ".en") else ".0") + "f"


def rec(tag, t):
    return ["%s %d %s" % (tag, t.dim(), " ".join(str(d) for d in t.shape)), fmt(t)]


def ce_seq(name, shape, ignore_index, smoothing, seed, n_ignored):
    g = torch.Generator().manual_seed(seed)
    C = shape[-1]
    z = (torch.randn(*shape, generator=g) * 3).requires_grad_()
    y = torch.randint(0, C, shape[:-1], generator=g)
    flat = y.reshape(-1)
    idx = torch.randperm(flat.numel(), generator=g)[:n_ignored]
    flat[idx] = ignore_index
    loss = F.cross_entropy(z.reshape(-1, C), flat, ignore_index=ignore_index, label_smoothing=smoothing)
    loss.backward()
    out = ["case " + name, "kind loss",
           "config loss=cross_entropy_seq ignore_index=%d label_smoothing=%r" % (ignore_index, smoothing)]
    out += rec("input 0", z) + rec("target", flat.float()) + ["expect_loss %.9g" % loss.item()]
    out += rec("expect dinput 0", z.grad) + ["end"]
    return out, (z, flat, loss, z.grad)


def embedding(name, V, E, shape, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(V, E, generator=g).requires_grad_()
    ids = torch.randint(0, V, shape, generator=g)
    ids.view(-1)[: shape[-1]] = ids.view(-1)[0]  # the first sequence repeats one id
    out_t = F.embedding(ids, w)
    dout = torch.randn(out_t.shape, generator=g)
    (out_t * dout).sum().backward()
    out = ["case " + name, "kind layer", "config layer=embedding num_embeddings=%d embedding_dim=%d" % (V, E)]
    out += rec("input 0", ids.float()) + rec("weight 0", w) + rec("dout", dout)
    out += rec("expect out", out_t) + rec("expect dweight 0", w.grad) + ["end"]
    return out


def linear_td(name, N, T, F_in, F_out, seed):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(F_in, F_out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(F_out, F_in, generator=g))
        lin.bias.copy_(torch.randn(F_out, generator=g))
    x = torch.randn(N, T, F_in, generator=g).requires_grad_()
    y = lin(x)
    dout = torch.randn(y.shape, generator=g)
    (y * dout).sum().backward()
    out = ["case " + name, "kind layer", "config layer=linear in=%d out=%d bias=true" % (F_in, F_out)]
    out += rec("input 0", x) + rec("weight 0", lin.weight) + rec("weight 1", lin.bias) + rec("dout", dout)
    out += rec("expect out", y) + rec("expect dinput 0", x.grad)
    out += rec("expect dweight 0", lin.weight.grad) + rec("expect dweight 1", lin.bias.grad) + ["end"]
    return out


def main():
    if "--c" in sys.argv:  # (2,3,4) logits, ignore_index -1, smoothing 0.2, two rows ignored
        _, (z, y, loss, dz) = ce_seq("c", (2, 3, 4), -1, 0.2, 7, 2)
        print("static const float seq_z[24] = {%s};" % ", ".join(cf(v) for v in z.reshape(-1).tolist()))
        print("static const int32_t seq_y[6] = {%s};" % ", ".join(str(int(v)) for v in y.tolist()))
        print("static const float seq_loss = %s;" % cf(loss.item()))
        print("static const float seq_dz[24] = {%s};" % ", ".join(cf(v) for v in dz.reshape(-1).tolist()))
        return
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(d, exist_ok=True)
    cases = {
        "cross_entropy_seq_ignore": ce_seq("cross_entropy_seq_ignore", (3, 5, 7), -100, 0.0, 1, 4)[0],
        # ignore_index 2 is a valid class: its rows are skipped, the class still gets probability
        "cross_entropy_seq_smoothing_ignore": ce_seq("cross_entropy_seq_smoothing_ignore", (2, 6, 5), 2, 0.1, 2, 3)[0],
        "embedding_repeated_ids": embedding("embedding_repeated_ids", 6, 3, (4, 7), 3),
        "linear_time_distributed": linear_td("linear_time_distributed", 3, 5, 4, 6, 4),
    }
    for name, lines in cases.items():
        with open(os.path.join(d, name + ".golden"), "w") as f:
            f.write("gradopt-golden 1\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
