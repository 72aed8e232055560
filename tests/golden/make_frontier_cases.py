#!/usr/bin/env python3
"""Write extra frontier/ cases (gradopt-golden 1, FORMAT.md section "frontier/") for Muon and
Adafactor, of other sizes and hyperparameters than ../shared/golden/frontier's, so that
golden_runner is checked on cases it was not written against:
    /usr/bin/python3 tests/golden/make_frontier_cases.py tests/golden/frontier

PyTorch 1.13 has neither optimizer: each step below is a line-by-line transcription of the
single-tensor path of torch.optim.Muon (PyTorch 2.9+, torch/optim/_muon.py) and
torch.optim.Adafactor (2.5+, torch/optim/_adafactor.py), run in float32 with torch 1.13's
own tensor operations (lerp_, vector_norm, matmul, clamp, rsqrt). As FORMAT.md says, the
Newton-Schulz iteration runs in float32 (PyTorch's in bfloat16), and a tensor of more than
two dims is the matrix (shape[0], numel/shape[0]) for Muon. A `group ... algo=adamw` line
is torch.optim.AdamW (1.13's own) over that group's tensors, stepped beside Muon. Not used
by the build; the files it writes are committed.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_cases import fmt, header  # noqa: E402  (the case format's writers)

MUON = dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315),
            eps=1e-7, ns_steps=5, adjust_lr_fn="original")
ADAFACTOR = dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, maximize=False)

CASES = [
    # name, algo, overrides, shapes, adamw group (tensor indices, AdamW kwargs) or None, steps
    ("x_muon_wide_tall_match_rms", "muon",
     dict(lr=0.03, weight_decay=0.05, momentum=0.9, ns_steps=3, adjust_lr_fn="match_rms_adamw"),
     [(7, 20), (20, 7)], None, 5),
    ("x_muon_conv_coeffs_plain", "muon",
     dict(lr=0.01, weight_decay=0.0, momentum=0.8, nesterov=False, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-5,
          ns_steps=7),
     [(8, 2, 3, 3), (3, 1, 1, 1), (4, 6)], None, 4),
    ("x_muon_square_ns0", "muon", dict(lr=0.05, ns_steps=0, momentum=0.5), [(5, 5)], None, 3),
    ("x_muon_adamw_groups_long", "muon", dict(lr=0.02, weight_decay=0.01, momentum=0.95),
     [(16, 9), (6, 4, 3, 3), (9,), (6,), (10, 16)],
     ([2, 3, 4], dict(lr=0.004, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)), 6),
    ("x_adafactor_batched_dims", "adafactor", dict(lr=0.02, beta2_decay=-0.6),
     [(3, 4, 5), (6,), (2, 3, 2, 2)], None, 6),
    ("x_adafactor_tall_wide_wd_maximize", "adafactor",
     dict(lr=0.1, weight_decay=0.1, d=2.0, eps=(1e-20, 1e-2), maximize=True), [(40, 3), (3, 40), (1, 9)], None, 6),
    ("x_adafactor_many_rows", "adafactor", dict(lr=0.005, beta2_decay=-1.0, d=1.2), [(70, 33), (33,)], None, 5),
    # convolution weights: batches of small matrices (3x3 in more than one 64-matrix block, 5x5, 1x1, 1x7)
    ("x_adafactor_conv_kernels", "adafactor", dict(lr=0.03, weight_decay=0.02, beta2_decay=-0.7),
     [(70, 4, 3, 3), (5, 3, 5, 5), (6, 3, 1, 1), (2, 2, 1, 7), (9,)], None, 5),
    # eps1 large enough that the clamp acts in some rows and not others (both forms of U)
    ("x_adafactor_conv_clamped", "adafactor", dict(lr=0.05, eps=(20.0, 1e-3), maximize=True),
     [(40, 2, 3, 3), (3, 2, 2, 4)], None, 4),
]


def kv(k, v):
    if isinstance(v, bool):
        return "%s=%s" % (k, "true" if v else "false")
    if isinstance(v, tuple):
        return "%s=%s" % (k, ",".join("none" if x is None else repr(x) for x in v))
    if isinstance(v, str):
        return "%s=%s" % (k, v)
    return "%s=%r" % (k, v)


# ---- torch.optim.Muon, single tensor, float32 Newton-Schulz ------------------------------

def zeropower_via_newtonschulz(grad, ns_coefficients, ns_steps, eps):
    a, b, c = ns_coefficients
    ortho_grad = grad.clone()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = b * gram_matrix + c * gram_matrix @ gram_matrix
        ortho_grad = a * ortho_grad + gram_update @ ortho_grad
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


def adjust_lr(lr, adjust_lr_fn, rows, cols):
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


def muon_step(params, bufs, h):
    for param, buf in zip(params, bufs):
        grad = param.grad
        rows = grad.shape[0]
        cols = grad.numel() // rows
        buf.lerp_(grad, 1 - h["momentum"])
        update = grad.lerp(buf, h["momentum"]) if h["nesterov"] else buf
        update = zeropower_via_newtonschulz(update.reshape(rows, cols), h["ns_coefficients"], h["ns_steps"], h["eps"])
        adjusted_lr = adjust_lr(h["lr"], h["adjust_lr_fn"], rows, cols)
        param.mul_(1 - h["lr"] * h["weight_decay"])
        param.add_(update.reshape(param.shape), alpha=-adjusted_lr)


# ---- torch.optim.Adafactor, single tensor ------------------------------------------------

def adafactor_step(params, state, h):
    lr, eps1, eps2 = h["lr"], h["eps"][0], h["eps"][1]
    for param in params:
        grad = param.grad if not h["maximize"] else -param.grad
        st = state.setdefault(id(param), {})
        if not st:
            st["step"] = torch.tensor(0.0)
            if grad.dim() > 1:
                row_shape = list(grad.shape)
                row_shape[-1] = 1
                st["row_var"] = grad.new_zeros(row_shape)
                col_shape = list(grad.shape)
                col_shape[-2] = 1
                st["col_var"] = grad.new_zeros(col_shape)
            else:
                st["variance"] = torch.zeros_like(grad)
        if eps1 is None:
            eps1 = torch.finfo(param.dtype).eps
        st["step"] += 1
        step_float = st["step"].item()
        one_minus_beta2_t = step_float ** h["beta2_decay"]
        rho_t = min(lr, 1 / (step_float ** 0.5))
        alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * rho_t
        if h["weight_decay"] != 0:
            param.mul_(1 - lr * h["weight_decay"])
        if grad.dim() > 1:
            row_var, col_var = st["row_var"], st["col_var"]
            row_mean = torch.linalg.vector_norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1))
            row_var.lerp_(row_mean, one_minus_beta2_t)
            col_mean = torch.linalg.vector_norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2))
            col_var.lerp_(col_mean, one_minus_beta2_t)
            var_estimate = row_var @ col_var
            var_estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            variance = st["variance"]
            variance.lerp_(grad * grad, one_minus_beta2_t)
            var_estimate = variance.clone()
        update = var_estimate.clamp_(min=eps1 * eps1).rsqrt_()
        update.mul_(grad)
        denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * h["d"]))
        param.add_(update, alpha=-alpha / denom)


def make(name, algo, over, shapes, group, steps, seed):
    h = dict(MUON if algo == "muon" else ADAFACTOR)
    h.update(over)
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g) for s in shapes]
    out = ["case " + name, "kind optimizer", "config algo=%s " % algo + " ".join(kv(k, v) for k, v in h.items())]
    for i, p in enumerate(params):
        out += ["param %d %s" % (i, header(p)), fmt(p)]
    own = list(range(len(params)))
    adamw = None
    if group:
        idx, akw = group
        own = [i for i in own if i not in idx]
        out.append("group 0 params=%s" % ",".join(map(str, own)))
        out.append("group 1 params=%s algo=adamw " % ",".join(map(str, idx)) + " ".join(kv(k, v) for k, v in akw.items()))
        adamw = torch.optim.AdamW([params[i] for i in idx], **akw)
    bufs = [torch.zeros_like(params[i]) for i in own]
    state = {}
    for step in range(1, steps + 1):
        scale = [1.0, 30.0, 1e-2][step % 3]
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=g) * scale
            out += ["grad %d %d %s" % (step, i, header(p)), fmt(p.grad)]
        with torch.no_grad():
            mine = [params[i] for i in own]
            if algo == "muon":
                muon_step(mine, bufs, h)
            else:
                adafactor_step(mine, state, h)
            if adamw:
                adamw.step()
        for i, p in enumerate(params):
            out += ["expect %d %d %s" % (step, i, header(p)), fmt(p)]
    out.append("end")
    return "\n".join(out) + "\n"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(1)
    for k, c in enumerate(CASES):
        with open(os.path.join(d, c[0] + ".golden"), "w") as f:
            f.write("gradopt-golden 1\n" + make(*c, seed=1800 + k))


if __name__ == "__main__":
    main()
