#!/usr/bin/env python3
"""Write extra frontier cases (gradopt-golden 1, FORMAT.md "frontier/", "kind average",
"sched=swalr") for Schedule-Free AdamW/SGD, L1, weight averaging and SWALR, with other sizes
and hyperparameters than ../shared/golden/frontier, computed with torch 1.13 in float32:
    /usr/bin/python3 tests/golden/make_frontier_sf_cases.py tests/golden/frontier
Not used by the build; its output (x_sf_*.golden) is committed and run by ctest.

- Schedule-Free: a line-by-line transcription of facebookresearch/schedule_free 1.3's
  AdamWScheduleFree / SGDScheduleFree single-tensor step (foreach=False), .train() before the
  first step, .eval() after the last (expect_eval).
- L1 (not in any reference library): g += l1*sign(p) after maximize's g = -g and before
  everything else, given to torch.optim's own algorithm as the gradient it negates:
  p.grad = g + l1*sign(p), or g - l1*sign(p) with maximize (then -grad = -g + l1*sign(p)).
- Averaging: torch.optim.swa_utils.AveragedModel (default SWA avg_fn; EMA through the
  avg_fn of the 1.13 docs, decay*avg + (1-decay)*p).
- SWALR: torch.optim.swa_utils.SWALR over torch.optim.SGD, optimizer.step() then
  scheduler.step(); alone and after a CosineAnnealingLR in a SequentialLR.
"""
import math
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_cases import fmt, header, kv  # noqa: E402  (the case format's writers)

warnings.filterwarnings("ignore")


# ---- Schedule-Free (schedule_free 1.3, single-tensor path) -------------------------------

class ScheduleFree:
    """AdamWScheduleFree (adam=True) or SGDScheduleFree (adam=False), one group; l1 is ours."""

    def __init__(self, params, adam, lr, betas=(0.9, 0.999), momentum=0.9, eps=1e-8, weight_decay=0.0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0, l1=0.0):
        self.params, self.adam, self.lr = params, adam, lr
        self.beta1 = betas[0] if adam else momentum
        self.beta2, self.eps, self.decay = betas[1], eps, weight_decay
        self.warmup_steps, self.r, self.weight_lr_power, self.l1 = warmup_steps, r, weight_lr_power, l1
        self.k, self.weight_sum, self.lr_max, self.train_mode = 0, 0.0, -1.0, False
        self.state = {}

    @torch.no_grad()
    def eval(self):
        if self.train_mode:
            for p in self.params:
                if p in self.state:
                    p.lerp_(end=self.state[p]["z"], weight=1 - 1 / self.beta1)
            self.train_mode = False

    @torch.no_grad()
    def train(self):
        if not self.train_mode:
            for p in self.params:
                if p in self.state:
                    p.lerp_(end=self.state[p]["z"], weight=1 - self.beta1)
            self.train_mode = True

    @torch.no_grad()
    def step(self):
        assert self.train_mode
        k = self.k
        sched = (k + 1) / self.warmup_steps if k < self.warmup_steps else 1.0
        bias_correction2 = 1 - self.beta2 ** (k + 1)
        lr = self.lr * sched
        lr_max = self.lr_max = max(lr, self.lr_max)
        weight = ((k + 1) ** self.r) * (lr_max ** self.weight_lr_power)
        weight_sum = self.weight_sum = self.weight_sum + weight
        try:
            ckp1 = weight / weight_sum
        except ZeroDivisionError:
            ckp1 = 0
        for p in self.params:
            if p not in self.state:
                self.state[p] = dict(z=torch.clone(p))
                if self.adam:
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p)
            y, z = p, self.state[p]["z"]
            grad = p.grad.clone()
            if self.l1 != 0:
                grad = grad.add(torch.sign(y), alpha=self.l1)
            if self.adam:
                exp_avg_sq = self.state[p]["exp_avg_sq"]
                exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
                denom = exp_avg_sq.div(bias_correction2).sqrt_().add_(self.eps)
                grad = grad.div_(denom)
            if self.decay != 0:
                grad.add_(y, alpha=self.decay)
            y.lerp_(end=z, weight=ckp1)
            y.add_(grad, alpha=lr * (self.beta1 * (1 - ckp1) - 1))
            z.sub_(grad, alpha=lr)
        self.k = k + 1


SF_CASES = [
    # name, algo, kwargs, shapes, steps
    ("x_sf_adamw_big_r", "adamw_schedulefree",
     dict(lr=0.004, betas=(0.95, 0.98), eps=1e-7, weight_decay=0.02, warmup_steps=3, r=2.0, weight_lr_power=1.0),
     [(33,), (4, 6), (2, 3, 2)], 9),
    ("x_sf_adamw_l1_power0", "adamw_schedulefree",
     dict(lr=0.01, betas=(0.8, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.5, weight_lr_power=0.0, l1=0.003),
     [(17,), (5, 5)], 8),
    ("x_sf_sgd_warmup_l1", "sgd_schedulefree",
     dict(lr=0.3, momentum=0.75, weight_decay=0.01, warmup_steps=5, r=1.0, weight_lr_power=2.0, l1=0.01),
     [(9,), (3, 7)], 10),
    ("x_sf_sgd_long_warmup", "sgd_schedulefree",
     dict(lr=2.0, momentum=0.95, weight_decay=0.0, warmup_steps=12, r=0.0, weight_lr_power=3.0),
     [(40,)], 7),
]


def make_sf(name, algo, kwargs, shapes, steps, seed):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g) for s in shapes]
    out = ["case " + name, "kind optimizer", "config algo=%s " % algo + " ".join(kv(k, v) for k, v in kwargs.items())]
    for i, p in enumerate(params):
        out += ["param %d %s" % (i, header(p)), fmt(p)]
    opt = ScheduleFree(params, adam=algo.startswith("adamw"), **kwargs)
    opt.train()
    for step in range(1, steps + 1):
        scale = [1.0, 300.0, 1e-4][step % 3]
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=g) * scale
            out += ["grad %d %d %s" % (step, i, header(p)), fmt(p.grad)]
        opt.step()
        for i, p in enumerate(params):
            out += ["expect %d %d %s" % (step, i, header(p)), fmt(p)]
    opt.eval()
    for i, p in enumerate(params):
        out += ["expect_eval %d %s" % (i, header(p)), fmt(p)]
    out.append("end")
    return "\n".join(out) + "\n"


# ---- L1 on torch.optim's algorithms --------------------------------------------------------

L1_CASES = [
    ("x_sf_l1_adam_wd_maximize", "Adam", dict(lr=0.01, weight_decay=0.05, maximize=True, amsgrad=True), 0.02,
     [(13,), (3, 4)], 7),
    ("x_sf_l1_rmsprop", "RMSprop", dict(lr=0.005, momentum=0.5, centered=True), 0.05, [(6,), (2, 5)], 6),
    ("x_sf_l1_sgd_nesterov_wd", "SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01), 0.1,
     [(21,)], 8),
    ("x_sf_l1_adagrad", "Adagrad", dict(lr=0.1, lr_decay=0.01), 0.05, [(4, 4)], 5),
]


def make_l1(name, algo, kwargs, l1, shapes, steps, seed):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g).requires_grad_() for s in shapes]
    with torch.no_grad():
        params[0][0] = 0.0  # sign(0) = 0
    out = ["case " + name, "kind optimizer",
           "config algo=%s l1=%r " % (algo.lower(), l1) + " ".join(kv(k, v) for k, v in kwargs.items())]
    for i, p in enumerate(params):
        out += ["param %d %s" % (i, header(p)), fmt(p)]
    opt = getattr(torch.optim, algo)(params, **kwargs)
    sgn = -1.0 if kwargs.get("maximize") else 1.0
    for step in range(1, steps + 1):
        scale = [1.0, 300.0, 1e-4][step % 3]
        for i, p in enumerate(params):
            gr = torch.randn(p.shape, generator=g) * scale
            out += ["grad %d %d %s" % (step, i, header(p)), fmt(gr)]
            p.grad = gr.add(torch.sign(p.detach()), alpha=sgn * l1)
        opt.step()
        for i, p in enumerate(params):
            out += ["expect %d %d %s" % (step, i, header(p)), fmt(p)]
    out.append("end")
    return "\n".join(out) + "\n"


# ---- weight averaging (AveragedModel) -----------------------------------------------------------

class Holder(torch.nn.Module):
    def __init__(self, tensors):
        super().__init__()
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(t.clone()) for t in tensors])


AVG_CASES = [
    ("x_sf_average_swa_long", "swa", None, [(7,), (2, 9), (3, 2, 2)], 12),
    ("x_sf_average_ema_099", "ema", 0.99, [(31,), (4,)], 10),
    ("x_sf_average_ema_0", "ema", 0.0, [(5, 3)], 4),
]


def make_avg(name, kind, decay, shapes, updates, seed):
    g = torch.Generator().manual_seed(seed)
    model = Holder([torch.randn(*s, generator=g) for s in shapes])
    if kind == "ema":
        avg = torch.optim.swa_utils.AveragedModel(model, avg_fn=lambda a, m, n: decay * a + (1 - decay) * m)
        cfg = "config average=ema decay=%r" % decay
    else:
        avg = torch.optim.swa_utils.AveragedModel(model)
        cfg = "config average=swa"
    out = ["case " + name, "kind average", cfg]
    for u in range(1, updates + 1):
        with torch.no_grad():
            for p in model.ps:  # a training step's worth of change
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
        for i, p in enumerate(model.ps):
            out += ["param %d %d %s" % (u, i, header(p)), fmt(p)]
        avg.update_parameters(model)
        for i, p in enumerate(avg.module.ps):
            out += ["expect %d %d %s" % (u, i, header(p)), fmt(p)]
    out.append("end")
    return "\n".join(out) + "\n"


# ---- SWALR ------------------------------------------------------------------------------------------

SWALR_CASES = [
    # name, base_lr, steps, swalr kwargs, cosine T_max before it (None: alone), milestone
    ("x_sf_swalr_cos_long", 0.5, 20, dict(swa_lr=0.01, anneal_epochs=12, anneal_strategy="cos"), None, None),
    ("x_sf_swalr_linear_1", 0.05, 6, dict(swa_lr=0.2, anneal_epochs=1, anneal_strategy="linear"), None, None),
    ("x_sf_swalr_zero_epochs", 0.1, 5, dict(swa_lr=0.03, anneal_epochs=0, anneal_strategy="cos"), None, None),
    ("x_sf_swalr_after_cosine", 0.1, 14, dict(swa_lr=0.02, anneal_epochs=4, anneal_strategy="cos"), 10, 6),
]


def make_swalr(name, base_lr, steps, kw, t_max, milestone):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    if t_max is None:
        sched = torch.optim.swa_utils.SWALR(opt, **kw)
        cfg = "config base_lr=%r steps=%d sched=swalr " % (base_lr, steps) + " ".join("%s=%s" % (k, v) for k, v in kw.items())
    else:
        first = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
        then = torch.optim.swa_utils.SWALR(opt, **kw)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [first, then], milestones=[milestone])
        cfg = ("config base_lr=%r steps=%d sched=sequential first=cosine(T_max=%d) then=swalr(%s) milestones=%d" %
               (base_lr, steps, t_max, ",".join("%s=%s" % (k, v) for k, v in kw.items()), milestone))
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    out = ["case " + name, "kind scheduler", cfg, "expect lr 1 %d" % len(lrs), " ".join("%.9g" % v for v in lrs), "end"]
    return "\n".join(out) + "\n"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(d, exist_ok=True)
    files = []
    for k, c in enumerate(SF_CASES):
        files.append((c[0], make_sf(*c, seed=2000 + k)))
    for k, c in enumerate(L1_CASES):
        files.append((c[0], make_l1(*c, seed=2100 + k)))
    for k, c in enumerate(AVG_CASES):
        files.append((c[0], make_avg(*c, seed=2200 + k)))
    for c in SWALR_CASES:
        files.append((c[0], make_swalr(*c)))
    for name, text in files:
        with open(os.path.join(d, name + ".golden"), "w") as f:
            f.write("gradopt-golden 1\n" + text)


if __name__ == "__main__":
    main()
