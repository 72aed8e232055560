#!/usr/bin/env python3
"""Write whole-training trajectories (`gradopt-trajectory 1`, tests/trajectory/FORMAT.md)
computed with PyTorch 1.13, for build/tests/trajectory_runner:

    /usr/bin/python3 tests/trajectory/make_trajectories.py [OUT_DIR]
        the cases checked in under tests/trajectory/cases (the default OUT_DIR)
    /usr/bin/python3 tests/trajectory/make_trajectories.py --random N --seed S OUT_DIR
        N random trajectories: optimizer, hyperparameters, scheduler (any kind, nested ones
        too), group layout, clipping, accumulation, Lookahead, skipped steps, length and
        resume point drawn from seed S

Each step is the loop a PyTorch user writes:
    for micro in 1..k: (loss_micro / k).backward()          # grads accumulate
    if the monitor runs: skip the update when a gradient or the loss is non-finite
                         (GradScaler's rule: scaler.step(optimizer) skips optimizer.step())
    else / when applied: clip_grad_norm_ or clip_grad_value_; optimizer.step()
    scheduler.step() (ReduceLROnPlateau: scheduler.step(metric)), skipped step or not
    optimizer.zero_grad()
Gradients are those of a quadratic loss 0.5 * sum(a * (p - target)^2) at PyTorch's current
parameters plus noise, so they follow the trajectory; they are written to the file and the C
runner replays them. A resume point k runs the trajectory a second time from fresh objects
loaded with torch.save'd state_dicts of step k, and the file is written only if both runs are
bit-identical.

The one place the expected values are not PyTorch's: a value a schedule computes that the
optimizer would refuse (after the last step: OneCycle's linear extrapolation below 0 or a
momentum >= 1, LinearLR's -1e-18 by rounding; mid-run: a cosine chained after a scheduler that
took the LR below eta_min goes negative). gradopt's rule (include/gradopt/sched.h, "End of a
schedule") gives the schedule's final value there; the rule is applied here inside the
schedulers (RuleOneCycleLR, RuleLinearLR, RuleCosineAnnealingLR) and each replacement is
noted in the file.
"""
import io
import math
import os
import random
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float32)
L = torch.optim.lr_scheduler

MOMENTUM_ALGOS = ("sgd", "rmsprop")
BETA_ALGOS = ("adam", "adamw", "nadam", "radam", "adamax")
TORCH_OPT = dict(sgd="SGD", adam="Adam", adamw="AdamW", rmsprop="RMSprop", adagrad="Adagrad",
                 adadelta="Adadelta", nadam="NAdam", radam="RAdam", adamax="Adamax")


# ---- gradopt's end-of-schedule rule, inside the PyTorch schedulers -----------------------
NOTES = []


class RuleOneCycleLR(L.OneCycleLR):
    def get_lr(self):
        lrs = super().get_lr()  # also writes the cycled momentum into the groups
        out = []
        for g, (group, lr) in enumerate(zip(self.optimizer.param_groups, lrs)):
            if not (math.isfinite(lr) and lr >= 0):
                NOTES.append("onecycle step %d group %d: PyTorch's lr %.9g -> final value %.9g"
                             % (self.last_epoch, g, lr, group["min_lr"]))
                lr = group["min_lr"]
            out.append(lr)
            if self.cycle_momentum:
                key = "betas" if self.use_beta1 else "momentum"
                m = group["betas"][0] if self.use_beta1 else group["momentum"]
                if not (0 <= m < 1):
                    NOTES.append("onecycle step %d group %d: PyTorch's momentum %.9g -> final value %.9g"
                                 % (self.last_epoch, g, m, group["max_momentum"]))
                    m = group["max_momentum"]
                    group[key] = (m, *group["betas"][1:]) if self.use_beta1 else m
        return out


class RuleLinearLR(L.LinearLR):
    def get_lr(self):
        out = []
        for g, (lr, base) in enumerate(zip(super().get_lr(), self.base_lrs)):
            if not (math.isfinite(lr) and lr >= 0):
                NOTES.append("linear step %d group %d: PyTorch's lr %.3g -> final value %.9g"
                             % (self.last_epoch, g, lr, base * self.end_factor))
                lr = base * self.end_factor
            out.append(lr)
        return out


class RuleCosineAnnealingLR(L.CosineAnnealingLR):
    def get_lr(self):
        out = []
        for g, lr in enumerate(super().get_lr()):
            if not (math.isfinite(lr) and lr >= 0):
                NOTES.append("cosine step %d group %d: PyTorch's lr %.9g -> final value %.9g"
                             % (self.last_epoch, g, lr, self.eta_min))
                lr = self.eta_min
            out.append(lr)
        return out


class Lookahead:
    """Zhang et al. 2019, Alg. 1, as gradopt's lookahead_k/alpha: the slow weights start at
    the parameters before the first step; after every k-th inner step slow += alpha*(fast -
    slow) and fast = slow. PyTorch 1.13 has none."""

    def __init__(self, opt, k, alpha):
        self.opt, self.k, self.alpha, self.steps, self.slow = opt, k, alpha, 0, None

    def step(self):
        params = [p for g in self.opt.param_groups for p in g["params"]]
        if self.slow is None:
            self.slow = [p.detach().clone() for p in params]
        self.opt.step()
        self.steps += 1
        if self.steps % self.k == 0:
            with torch.no_grad():
                for p, s in zip(params, self.slow):
                    s.add_(p - s, alpha=self.alpha)
                    p.copy_(s)

    def state_dict(self):
        return dict(steps=self.steps, slow=self.slow)

    def load_state_dict(self, d):
        self.steps, self.slow = d["steps"], d["slow"]


# ---- building PyTorch objects from a case description -------------------------------------
def lambda_fn(spec, g):
    fn = spec["fn"]
    rates = spec.get("rate", [0.9])
    rate = rates[g] if len(rates) > 1 else rates[0]
    if fn == "exp":
        return lambda e: rate ** e
    if fn == "warmup":
        w = spec["warmup"]
        return lambda e: min(1.0, (e + 1) / w)
    raise ValueError(fn)


def make_sched(spec, opt):
    k = spec["kind"]
    a = {x: v for x, v in spec.items() if x not in ("kind", "children", "fn", "rate", "warmup")}
    if k == "step":
        return L.StepLR(opt, **a)
    if k == "multistep":
        return L.MultiStepLR(opt, **a)
    if k == "exponential":
        return L.ExponentialLR(opt, **a)
    if k == "cosine":
        return RuleCosineAnnealingLR(opt, **a)
    if k == "cosine_warm_restarts":
        return L.CosineAnnealingWarmRestarts(opt, **a)
    if k == "onecycle":
        a = dict(a)
        if "max_lrs" in a:
            a["max_lr"] = a.pop("max_lrs")
        return RuleOneCycleLR(opt, **a)
    if k == "linear":
        return RuleLinearLR(opt, **a)
    if k == "constant":
        return L.ConstantLR(opt, **a)
    if k == "polynomial":
        return L.PolynomialLR(opt, **a)
    if k == "lambda":
        return L.LambdaLR(opt, [lambda_fn(spec, g) for g in range(len(opt.param_groups))])
    if k == "sequential":
        kids = [make_sched(c, opt) for c in spec["children"]]
        return L.SequentialLR(opt, kids, milestones=a["milestones"])
    if k == "chained":
        return L.ChainedScheduler([make_sched(c, opt) for c in spec["children"]])
    if k == "plateau":
        a = dict(a)
        if "min_lrs" in a:
            a["min_lr"] = a.pop("min_lrs")
        return L.ReduceLROnPlateau(opt, **a)
    raise ValueError(k)


def build(case, values):
    """Fresh parameters (copies of `values`), optimizer, scheduler, Lookahead."""
    params = [v.clone().requires_grad_() for v in values]
    groups = []
    for g, over in enumerate(case["groups"]):
        ps = [params[i] for i, tg in enumerate(case["tensor_groups"]) if tg == g]
        groups.append(dict(params=ps, **over))
    opt = getattr(torch.optim, TORCH_OPT[case["algo"]])(groups, **case["optim"])
    sched = make_sched(case["sched"], opt) if case.get("sched") else None
    la = Lookahead(opt, *case["lookahead"]) if case.get("lookahead") else None
    return params, opt, sched, la


def momentum_of(case, group):
    if case["algo"] in MOMENTUM_ALGOS:
        return group["momentum"]
    if case["algo"] in BETA_ALGOS:
        return group["betas"][0]
    return None


def problem(case, seed):
    """Initial values, curvatures, targets and noise of the quadratic loss."""
    gen = torch.Generator().manual_seed(seed)
    shapes = case["shapes"]
    f32 = torch.float32
    init = [torch.randn(*s, generator=gen, dtype=f32) for s in shapes]
    target = [torch.randn(*s, generator=gen, dtype=f32) for s in shapes]
    curv = [torch.rand(*s, generator=gen, dtype=f32) * 1.5 + 0.5 for s in shapes]
    return init, target, curv, gen


def run(case, seed, resume_at=None, saved=None, replay=None):
    """Run the whole trajectory. With resume_at, the objects are rebuilt fresh after that step
    from a torch.save'd copy of every state (saved receives the blob's size). replay (the
    record of an earlier run) replaces the computed gradients and losses: a run in float64 over the same
    gradients tells how far float32 rounding alone can move a trajectory (--conditioning)."""
    init, target, curv, gen = problem(case, seed)
    if replay is not None:
        init = [v.to(torch.get_default_dtype()) for v in init]
    params, opt, sched, la = build(case, init)
    k = case.get("accum", 1)
    bad = case.get("nonfinite", {})
    rec = dict(grads={}, losses={}, metrics={}, lr={}, mom={}, applied={}, params={})

    def note_lrs(step):
        for g, group in enumerate(opt.param_groups):
            rec["lr"][(step, g)] = group["lr"]
            m = momentum_of(case, group)
            if m is not None:
                rec["mom"][(step, g)] = m

    note_lrs(0)
    for step in range(1, case["steps"] + 1):
        scale = case["grad_scale"][(step - 1) % len(case["grad_scale"])]
        loss_sum = 0.0
        for micro in range(1, k + 1):
            for i, p in enumerate(params):
                d = p.detach() - target[i]
                g = (curv[i] * d + 0.3 * torch.randn(p.shape, generator=gen)) * scale
                if (step, micro, i) in bad:
                    g.view(-1)[0] = bad[(step, micro, i)]
                g = torch.tensor([float("%.9g" % v) for v in g.view(-1).tolist()]).view(p.shape)
                if replay is not None:
                    g = replay["grads"][(step, micro, i)].to(p.dtype)
                rec["grads"][(step, micro, i)] = g
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.add_(g / k) if k > 1 else p.grad.add_(g)
            loss = float("%.9g" % sum(0.5 * float((c * (p.detach() - t) ** 2).sum())
                                      for p, t, c in zip(params, target, curv)))
            if replay is not None:
                loss = replay["losses"][(step, micro)]
            rec["losses"][(step, micro)] = loss
            loss_sum += loss
        applied = True
        if case.get("monitor"):
            applied = all(bool(torch.isfinite(p.grad).all()) for p in params) and math.isfinite(loss_sum)
            rec["applied"][step] = applied
        if applied:
            clip = case.get("clip")
            if clip and clip[0] == "norm":
                torch.nn.utils.clip_grad_norm_(params, clip[1], norm_type=clip[2])
            elif clip and clip[0] == "value":
                torch.nn.utils.clip_grad_value_(params, clip[1])
            (la or opt).step()
        if sched is not None:
            if isinstance(sched, L.ReduceLROnPlateau):
                metric = float("%.17g" % (loss_sum / k * case.get("metric_scale", 1.0)))
                rec["metrics"][step] = metric
                sched.step(metric)
            else:
                sched.step()
        opt.zero_grad(set_to_none=False)
        note_lrs(step)
        for i, p in enumerate(params):
            rec["params"][(step, i)] = p.detach().clone()
        if step == resume_at:
            buf = io.BytesIO()
            torch.save(dict(params=[p.detach().clone() for p in params], opt=opt.state_dict(),
                            sched=sched.state_dict() if sched else None,
                            la=la.state_dict() if la else None, gen=gen.get_state()), buf)
            saved.append(len(buf.getvalue()))
            buf.seek(0)
            st = torch.load(buf)
            params, opt, sched, la = build(case, init)  # fresh objects, as a new process would
            with torch.no_grad():
                for p, v in zip(params, st["params"]):
                    p.copy_(v)
            opt.load_state_dict(st["opt"])
            if sched is not None:
                sched.load_state_dict(st["sched"])
            if la is not None:
                la.load_state_dict(st["la"])
            gen.set_state(st["gen"])
    return rec


# ---- writing -------------------------------------------------------------------------------
def fmt_tensor(t):
    return " ".join("%.9g" % v for v in t.reshape(-1).tolist())


def dims(shape):
    return "%d %s" % (len(shape), " ".join(str(d) for d in shape))


def kv(key, v):
    if isinstance(v, bool):
        return "%s=%s" % (key, "true" if v else "false")
    if isinstance(v, (list, tuple)):
        return "%s=%s" % (key, ",".join(repr(x) for x in v))
    return "%s=%s" % (key, v if isinstance(v, str) else repr(v))


def sched_lines(spec):
    def one(s):
        return " ".join(kv(k, v) for k, v in s.items() if k != "children")
    out = ["sched " + one(spec)]
    for i, c in enumerate(spec.get("children", [])):
        out.append("child %d %s" % (i, one(c)))
    return out


def conditioning(case, seed, rec):
    """How far float32 rounding alone moves this trajectory: PyTorch in float64 over the same
    gradients and losses, the worst |p32 - p64| / (1e-5 + 1e-4 |p64|) over every parameter
    after every step. Above ~0.25 the reference cannot tell a correct float32 implementation
    from a wrong one at the tolerance (e.g. centered RMSprop whose value-clipped gradients
    are constant, where sqrt(sq - ga^2) cancels)."""
    global NOTES
    keep = NOTES
    torch.set_default_dtype(torch.float64)
    try:
        ref = run(case, seed, replay=rec)
    finally:
        torch.set_default_dtype(torch.float32)
        NOTES = keep
    worst = 0.0
    for key, p in rec["params"].items():
        want = ref["params"][key]
        r = ((p.double() - want).abs() / (1e-5 + 1e-4 * want.abs())).max().item()
        worst = max(worst, r if math.isfinite(r) else math.inf)
    return worst


WELL_CONDITIONED = 0.25


def write_case(case, seed, path, max_conditioning=None):
    """Write the case; returns its notes, or None when it is worse conditioned than
    max_conditioning (nothing is written then)."""
    global NOTES
    NOTES = []
    rec = run(case, seed)
    notes = list(NOTES)
    cond = conditioning(case, seed, rec)
    if max_conditioning is not None and cond > max_conditioning:
        return None
    if case.get("resume"):
        saved = []
        NOTES = []
        rec2 = run(case, seed, resume_at=case["resume"], saved=saved)
        for key in rec:
            a, b = rec[key], rec2[key]
            if a.keys() != b.keys():
                raise SystemExit("%s: resumed run differs in %s" % (case["name"], key))
            for x in a:
                if torch.is_tensor(a[x]):
                    na, nb = torch.isnan(a[x]), torch.isnan(b[x])
                    same = torch.equal(na, nb) and torch.equal(a[x][~na], b[x][~nb])
                else:
                    same = a[x] == b[x]
                if not same:
                    raise SystemExit("%s: PyTorch's resumed run differs from the uninterrupted run at %s %s"
                                     % (case["name"], key, x))
    init = problem(case, seed)[0]
    out = ["gradopt-trajectory 1", "name " + case["name"]]
    for line in case.get("doc", "").splitlines():
        out.append("# " + line)
    for n in notes:
        out.append("# rule (sched.h, end of a schedule): " + n)
    out.append("# conditioning: PyTorch float32 vs float64 over these gradients: %.3g of the tolerance" % cond)
    out.append("optim algo=%s %s" % (case["algo"], " ".join(kv(k, v) for k, v in case["optim"].items())))
    for g, over in enumerate(case["groups"]):
        if over:
            out.append("group %d %s" % (g, " ".join(kv(k, v) for k, v in over.items())))
    if case.get("lookahead"):
        out.append("lookahead k=%d alpha=%r" % tuple(case["lookahead"]))
    if case.get("sched"):
        out += sched_lines(case["sched"])
    clip = case.get("clip")
    if clip and clip[0] == "norm":
        out.append("clip norm max_norm=%r norm_type=%s" % (clip[1], "inf" if clip[2] == math.inf else repr(clip[2])))
    elif clip:
        out.append("clip value clip_value=%r" % clip[1])
    if case.get("accum", 1) > 1:
        out.append("accum k=%d" % case["accum"])
    if case.get("monitor"):
        out.append("monitor skip_nonfinite=true")
    if case.get("resume"):
        out.append("resume %d" % case["resume"])
    out.append("steps %d" % case["steps"])
    for i, v in enumerate(init):
        out += ["tensor %d group=%d %s" % (i, case["tensor_groups"][i], dims(v.shape)), fmt_tensor(v)]
    ngroups = len(case["groups"])
    for g in range(ngroups):
        out.append("expect lr 0 %d %.17g" % (g, rec["lr"][(0, g)]))
        if (0, g) in rec["mom"]:
            out.append("expect momentum 0 %d %.17g" % (g, rec["mom"][(0, g)]))
    k = case.get("accum", 1)
    for step in range(1, case["steps"] + 1):
        out.append("# step %d" % step)
        for micro in range(1, k + 1):
            for i, v in enumerate(init):
                out += ["grad %d %d %d %s" % (step, micro, i, dims(v.shape)), fmt_tensor(rec["grads"][(step, micro, i)])]
            out.append("loss %d %d %.9g" % (step, micro, rec["losses"][(step, micro)]))
        if step in rec["metrics"]:
            out.append("metric %d %.17g" % (step, rec["metrics"][step]))
        if step in rec["applied"]:
            out.append("expect applied %d %d" % (step, int(rec["applied"][step])))
        for g in range(ngroups):
            out.append("expect lr %d %d %.17g" % (step, g, rec["lr"][(step, g)]))
            if (step, g) in rec["mom"]:
                out.append("expect momentum %d %d %.17g" % (step, g, rec["mom"][(step, g)]))
        for i, v in enumerate(init):
            out += ["expect param %d %d %s" % (step, i, dims(v.shape)), fmt_tensor(rec["params"][(step, i)])]
    out.append("end")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return notes


# ---- the checked-in cases -------------------------------------------------------------------
def case(name, algo, optim, sched=None, steps=20, shapes=((4, 3), (5,)), tensor_groups=None, groups=None,
         clip=None, accum=1, lookahead=None, monitor=False, nonfinite=None, resume=None,
         grad_scale=(1.0, 4.0, 0.5), doc="", **extra):
    c = dict(name=name, algo=algo, optim=optim, sched=sched, steps=steps, shapes=list(shapes),
             tensor_groups=list(tensor_groups or [0] * len(shapes)), groups=list(groups or [{}]),
             clip=clip, accum=accum, lookahead=lookahead, monitor=monitor, nonfinite=nonfinite or {},
             resume=resume, grad_scale=list(grad_scale), doc=doc)
    c.update(extra)
    return c


TWO = dict(shapes=((4, 3), (5,), (2, 2, 2)), tensor_groups=(0, 1, 0))
NAN, INF = float("nan"), float("inf")

CASES = [
    case("issue20_onecycle_linear", "sgd", dict(lr=0.01, momentum=0.9),
         dict(kind="onecycle", max_lr=0.01, total_steps=20, pct_start=0.25, anneal_strategy="linear"),
         clip=("norm", 1.0, 2.0),
         doc="Issue 20: OneCycle linear, max_lr 0.01, total_steps 20, stepped after each of 20 optimizer\n"
             "steps. PyTorch's LR after step 20 is -0.000666624; every status is checked to the end."),
    case("step_sgd_dampening_clipvalue", "sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3),
         dict(kind="step", step_size=5, gamma=0.5), clip=("value", 0.8)),
    case("multistep_adagrad_clipinf", "adagrad", dict(lr=0.3, lr_decay=0.01, initial_accumulator_value=0.1),
         dict(kind="multistep", milestones=[4, 9, 9, 15], gamma=0.5), clip=("norm", 2.0, math.inf)),
    case("exponential_rmsprop_centered_groups", "rmsprop", dict(lr=0.01, momentum=0.5, centered=True, alpha=0.9),
         dict(kind="exponential", gamma=0.9), groups=[dict(weight_decay=0.01), dict(lr=0.003, weight_decay=0.0)],
         clip=("norm", 3.0, 2.0), **TWO),
    case("cosine_adamw_amsgrad_past_tmax", "adamw", dict(lr=0.02, amsgrad=True, weight_decay=0.05),
         dict(kind="cosine", T_max=10, eta_min=1e-3), steps=26, clip=("norm", 1.5, 2.0),
         doc="Past T_max the recursive cosine rises again (PyTorch 1.13)."),
    case("warm_restarts_adam", "adam", dict(lr=0.05, betas=(0.8, 0.95)),
         dict(kind="cosine_warm_restarts", T_0=3, T_mult=2, eta_min=0.001), steps=24, clip=("value", 2.0)),
    case("onecycle_cos_adam_beta1_groups", "adam", dict(lr=0.01, weight_decay=1e-4),
         dict(kind="onecycle", max_lrs=[0.05, 0.01], total_steps=20, base_momentum=0.8, max_momentum=0.92),
         groups=[dict(weight_decay=1e-3), dict(lr=0.002, weight_decay=0.0)], clip=("norm", 1.0, 2.0),
         doc="OneCycle cycles Adam's beta1; per-group max_lrs; two groups with different LR and wd.", **TWO),
    case("onecycle_three_phase_linear_nadam", "nadam", dict(lr=0.01),
         dict(kind="onecycle", max_lr=0.02, total_steps=16, pct_start=0.3, anneal_strategy="linear",
              three_phase=True), steps=16, clip=("norm", 2.0, 2.0)),
    case("onecycle_linear_sgd_nesterov_groups", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
         dict(kind="onecycle", max_lrs=[0.2, 0.05], total_steps=18, anneal_strategy="linear"),
         groups=[{}, dict(lr=0.05, weight_decay=0.0)], steps=18, clip=("norm", 1.0, 2.0),
         doc="OneCycle cycles SGD's momentum, two groups, run to its end.", **TWO),
    case("linear_to_zero_radam", "radam", dict(lr=0.01, weight_decay=0.01),
         dict(kind="linear", start_factor=0.3, end_factor=0.0, total_iters=20), steps=24,
         doc="LinearLR to 0: PyTorch's last value is about -1e-18 (rounding)."),
    case("linear_warmup_sgd_groups", "sgd", dict(lr=0.1, momentum=0.8),
         dict(kind="linear", start_factor=0.1, end_factor=1.0, total_iters=6), groups=[{}, dict(lr=0.3)],
         clip=("value", 1.0), **TWO),
    case("constant_adadelta", "adadelta", dict(lr=1.0, rho=0.85, weight_decay=0.01),
         dict(kind="constant", factor=0.5, total_iters=7)),
    case("polynomial_adamax_groups", "adamax", dict(lr=0.02),
         dict(kind="polynomial", total_iters=15, power=2.0), groups=[{}, dict(lr=0.05, weight_decay=0.01)],
         steps=20, **TWO),
    case("lambda_sgd_groups", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-3),
         dict(kind="lambda", fn="exp", rate=[0.9, 0.8]), groups=[{}, dict(lr=0.02)], **TWO),
    case("sequential_warmup_cosine_nadam", "nadam", dict(lr=0.005, weight_decay=0.01),
         dict(kind="sequential", milestones=[5], children=[
             dict(kind="linear", start_factor=0.2, end_factor=1.0, total_iters=5),
             dict(kind="cosine", T_max=15, eta_min=1e-4)]), clip=("norm", 1.0, 2.0)),
    case("chained_exponential_multistep_adam", "adam", dict(lr=0.02),
         dict(kind="chained", children=[dict(kind="exponential", gamma=0.95),
                                        dict(kind="multistep", milestones=[6, 12], gamma=0.3)])),
    case("chained_step_cosine_below_eta_min", "rmsprop", dict(lr=0.003478, alpha=0.97),
         dict(kind="chained", children=[dict(kind="step", step_size=1, gamma=0.6461),
                                        dict(kind="cosine", T_max=13, eta_min=1e-4)]), steps=22,
         doc="StepLR takes the LR below the cosine's eta_min; past T_max the recursive cosine then\n"
             "overshoots below 0 (PyTorch steps with -4.6e-6 from step 15 on): gradopt gives eta_min."),
    case("plateau_adam_groups_min_lrs", "adam", dict(lr=0.05, weight_decay=1e-3),
         dict(kind="plateau", factor=0.5, patience=1, threshold=0.05, min_lrs=[0.01, 0.004]),
         groups=[{}, dict(lr=0.02, weight_decay=0.0)], steps=24, clip=("norm", 5.0, 2.0),
         doc="ReduceLROnPlateau on the training loss, per-group min_lrs.", **TWO),
    case("accum4_sgd_cosine_clip", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True),
         dict(kind="cosine", T_max=12), accum=4, steps=12, clip=("norm", 1.0, 2.0),
         doc="Gradient accumulation over 4 micro-batches: (loss/4).backward() each."),
    case("lookahead_sgd_step", "sgd", dict(lr=0.1, momentum=0.9),
         dict(kind="step", step_size=7, gamma=0.5), lookahead=(5, 0.5), steps=22, clip=("norm", 2.0, 2.0)),
    case("monitor_skip_onecycle_sgd", "sgd", dict(lr=0.1, momentum=0.9),
         dict(kind="onecycle", max_lr=0.1, total_steps=16, anneal_strategy="linear"), steps=16, monitor=True,
         nonfinite={(5, 1, 0): NAN, (11, 1, 1): INF}, clip=("norm", 1.0, 2.0),
         doc="Steps 5 and 11 have a non-finite gradient: the update is skipped (GradScaler's rule) and\n"
             "the scheduler still steps, so OneCycle ends at step 16 as sized."),
    case("monitor_skip_accum_adam_plateau", "adam", dict(lr=0.05),
         dict(kind="plateau", factor=0.5, patience=2, threshold=0.02), steps=18, monitor=True, accum=2,
         nonfinite={(4, 2, 1): NAN, (9, 1, 0): -INF}),
    case("resume_onecycle_adam_groups", "adam", dict(lr=0.01, amsgrad=True),
         dict(kind="onecycle", max_lrs=[0.03, 0.01], total_steps=20, anneal_strategy="linear"),
         groups=[{}, dict(lr=0.001, weight_decay=0.02)], resume=9, clip=("norm", 1.0, 2.0), **TWO),
    case("resume_everything", "sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-4),
         dict(kind="sequential", milestones=[4], children=[
             dict(kind="linear", start_factor=0.25, end_factor=1.0, total_iters=4),
             dict(kind="cosine_warm_restarts", T_0=5, T_mult=2)]),
         groups=[{}, dict(lr=0.01, weight_decay=0.0)], lookahead=(3, 0.6), accum=3, monitor=True,
         nonfinite={(6, 2, 2): NAN}, clip=("norm", 1.0, 2.0), steps=20, resume=11,
         doc="Every state saved at step 11 (parameters, optimizer with Lookahead, scheduler, monitor,\n"
             "accumulator) and loaded into fresh objects.", **TWO),
    case("resume_plateau_rmsprop", "rmsprop", dict(lr=0.01, momentum=0.3),
         dict(kind="plateau", factor=0.3, patience=1, cooldown=2, threshold=0.05, min_lrs=[1e-4, 1e-3]),
         groups=[{}, dict(lr=0.03)], steps=20, resume=7, clip=("value", 0.5), **TWO),
]


# ---- random trajectories ------------------------------------------------------------------------
def r4(x):
    return float("%.4g" % x)


def random_optim(rng, algo):
    wd = rng.choice([0.0, r4(10 ** rng.uniform(-4, -1.5))])
    betas = (r4(rng.uniform(0.7, 0.95)), r4(rng.uniform(0.9, 0.999)))
    if algo == "sgd":
        mom = rng.choice([0.0, r4(rng.uniform(0.5, 0.95))])
        o = dict(lr=r4(10 ** rng.uniform(-2, -0.7)), momentum=mom, weight_decay=wd)
        if mom > 0 and rng.random() < 0.5:
            o["nesterov"] = True
        elif mom > 0:
            o["dampening"] = r4(rng.uniform(0, 0.3))
        return o
    if algo in ("adam", "adamw"):
        return dict(lr=r4(10 ** rng.uniform(-3, -1.3)), betas=betas, amsgrad=rng.random() < 0.4,
                    weight_decay=wd, eps=rng.choice([1e-8, 1e-6]))
    if algo == "rmsprop":
        return dict(lr=r4(10 ** rng.uniform(-3, -1.7)), alpha=r4(rng.uniform(0.8, 0.99)),
                    centered=rng.random() < 0.5, momentum=rng.choice([0.0, r4(rng.uniform(0.3, 0.9))]),
                    weight_decay=wd)
    if algo == "adagrad":
        return dict(lr=r4(10 ** rng.uniform(-1.3, -0.3)), lr_decay=rng.choice([0.0, r4(rng.uniform(0, 0.05))]),
                    initial_accumulator_value=rng.choice([0.0, r4(rng.uniform(0, 0.5))]), weight_decay=wd)
    if algo == "adadelta":
        return dict(lr=r4(rng.uniform(0.5, 1.5)), rho=r4(rng.uniform(0.8, 0.95)), weight_decay=wd)
    if algo == "nadam":
        return dict(lr=r4(10 ** rng.uniform(-3, -1.7)), betas=betas, momentum_decay=r4(rng.uniform(0.002, 0.01)),
                    weight_decay=wd)
    return dict(lr=r4(10 ** rng.uniform(-3, -1.3)), betas=betas, weight_decay=wd)  # radam, adamax


def onecycle_ok(T, pct, three):
    ends = [pct * T - 1, 2 * pct * T - 2, T - 1] if three else [pct * T - 1, T - 1]
    start = 0.0
    for e in ends:
        if e == start:
            return False
        start = e
    return True


def random_sched(rng, steps, ngroups, algo, kinds, span):
    """A scheduler that runs `span` steps (its own total_steps / milestones fit)."""
    k = rng.choice(kinds)
    if k == "step":
        return dict(kind=k, step_size=rng.randint(1, max(1, span // 2)), gamma=r4(rng.uniform(0.3, 0.9)))
    if k == "multistep":
        ms = sorted(rng.randint(1, span) for _ in range(rng.randint(1, 4)))
        return dict(kind=k, milestones=ms, gamma=r4(rng.uniform(0.2, 0.9)))
    if k == "exponential":
        return dict(kind=k, gamma=r4(rng.uniform(0.8, 0.99)))
    if k == "cosine":
        return dict(kind=k, T_max=rng.randint(1, span + 5), eta_min=rng.choice([0.0, 1e-4]))
    if k == "cosine_warm_restarts":
        return dict(kind=k, T_0=rng.randint(1, max(1, span // 2)), T_mult=rng.randint(1, 3),
                    eta_min=rng.choice([0.0, 1e-4]))
    if k == "onecycle":
        while True:
            T = span + rng.choice([0, 0, 0, rng.randint(1, 5)])
            pct = r4(rng.uniform(0.1, 0.6))
            three = rng.random() < 0.3
            if onecycle_ok(T, pct, three):
                break
        d = dict(kind=k, total_steps=T, pct_start=pct, anneal_strategy=rng.choice(["cos", "linear"]),
                 three_phase=three, div_factor=r4(rng.uniform(5, 30)), final_div_factor=rng.choice([1e4, 100.0, 3.0]))
        if ngroups > 1 and rng.random() < 0.6:
            d["max_lrs"] = [r4(10 ** rng.uniform(-2.5, -1)) for _ in range(ngroups)]
        else:
            d["max_lr"] = r4(10 ** rng.uniform(-2.5, -1))
        if algo in ("adagrad", "adadelta"):
            d["cycle_momentum"] = False
        elif rng.random() < 0.5:
            lo = r4(rng.uniform(0.5, 0.9))
            d.update(base_momentum=lo, max_momentum=r4(rng.uniform(lo, 0.99)))
        return d
    if k == "linear":
        return dict(kind=k, start_factor=r4(rng.uniform(0.05, 1.0)), end_factor=rng.choice([0.0, 1.0, r4(rng.uniform(0, 1))]),
                    total_iters=rng.randint(1, span))
    if k == "constant":
        return dict(kind=k, factor=r4(rng.uniform(0.1, 1.0)), total_iters=rng.randint(1, span))
    if k == "polynomial":
        return dict(kind=k, total_iters=rng.randint(1, span), power=rng.choice([1.0, 2.0, r4(rng.uniform(0.3, 3))]))
    if k == "lambda":
        if rng.random() < 0.5:
            return dict(kind=k, fn="warmup", warmup=rng.randint(1, span))
        return dict(kind=k, fn="exp", rate=[r4(rng.uniform(0.8, 1.0)) for _ in range(rng.choice([1, ngroups]))])
    if k == "plateau":
        d = dict(kind=k, mode="min", factor=r4(rng.uniform(0.1, 0.7)), patience=rng.randint(0, 3),
                 threshold=r4(rng.uniform(0, 0.1)), threshold_mode=rng.choice(["rel", "abs"]),
                 cooldown=rng.randint(0, 2), eps=1e-8)
        if ngroups > 1 and rng.random() < 0.5:
            d["min_lrs"] = [r4(10 ** rng.uniform(-5, -3)) for _ in range(ngroups)]
        else:
            d["min_lr"] = rng.choice([0.0, 1e-4])
        return d
    basic = ["step", "multistep", "exponential", "cosine", "cosine_warm_restarts", "linear", "constant",
             "polynomial", "lambda"]
    if k == "sequential":
        n = rng.randint(2, 3)
        ms = sorted(rng.sample(range(1, max(n, span)), n - 1))
        kids = [random_sched(rng, steps, ngroups, algo, basic, span) for _ in range(n)]
        if rng.random() < 0.3:  # OneCycle last, sized to end with the run
            kids[-1] = random_sched(rng, steps, ngroups, algo, ["onecycle"], max(1, span - ms[-1]))
        return dict(kind=k, milestones=ms, children=kids)
    # chained: at most one onecycle, which sets the LR the others then scale
    kids = [random_sched(rng, steps, ngroups, algo, basic + ["onecycle"], span)]
    kids.append(random_sched(rng, steps, ngroups, algo, basic, span))
    rng.shuffle(kids)
    return dict(kind=k, children=kids)


ALL_KINDS = ["step", "multistep", "exponential", "cosine", "cosine_warm_restarts", "onecycle", "linear", "constant",
             "polynomial", "lambda", "sequential", "chained", "plateau"]


def random_case(rng, idx):
    algo = rng.choice(sorted(TORCH_OPT))
    optim = random_optim(rng, algo)
    nt = rng.randint(1, 4)
    shapes = [tuple(rng.randint(1, 5) for _ in range(rng.randint(1, 3))) for _ in range(nt)]
    ng = rng.randint(1, min(3, nt))
    tg = list(range(ng)) + [rng.randrange(ng) for _ in range(nt - ng)]
    rng.shuffle(tg)
    groups = [{}]
    for g in range(1, ng):
        over = dict(lr=r4(optim["lr"] * rng.uniform(0.1, 3)), weight_decay=rng.choice([0.0, r4(rng.uniform(0, 0.02))]))
        if algo in BETA_ALGOS and rng.random() < 0.3:
            over["betas"] = (r4(rng.uniform(0.7, 0.95)), r4(rng.uniform(0.9, 0.999)))
        groups.append(over)
    steps = rng.randint(5, 40)
    kinds = ALL_KINDS if rng.random() < 0.9 else [None]
    sched = random_sched(rng, steps, ng, algo, kinds, steps) if kinds[0] else None
    if sched and (sched["kind"] == "onecycle" or any(c["kind"] == "onecycle" for c in sched.get("children", []))):
        if algo in MOMENTUM_ALGOS and (sched.get("cycle_momentum", True) or sched["kind"] == "chained"):
            if not optim.get("momentum"):
                optim["momentum"] = 0.9
    clip = rng.choice([None, ("norm", r4(rng.uniform(0.5, 5)), rng.choice([2.0, 2.0, 1.0, 3.0, math.inf])),
                       ("value", r4(rng.uniform(0.2, 3)))])
    accum = rng.choice([1, 1, 2, 3, 4])
    monitor = rng.random() < 0.35
    nonfinite = {}
    if monitor:
        for _ in range(rng.randint(0, 2)):
            nonfinite[(rng.randint(1, steps), rng.randint(1, accum), rng.randrange(nt))] = rng.choice([NAN, INF, -INF])
    c = case("random_%03d" % idx, algo, optim, sched, steps=steps, shapes=shapes, tensor_groups=tg, groups=groups,
             clip=clip, accum=accum, lookahead=(rng.randint(2, 6), r4(rng.uniform(0.3, 0.8))) if rng.random() < 0.25 else None,
             monitor=monitor, nonfinite=nonfinite, resume=rng.randint(1, steps - 1) if rng.random() < 0.5 else None,
             grad_scale=[r4(10 ** rng.uniform(-1, 1)) for _ in range(rng.randint(1, 4))],
             metric_scale=1.0)
    return c


def main():
    args = sys.argv[1:]
    if args and args[0] == "--random":
        if len(args) != 5 or args[2] != "--seed":
            raise SystemExit("usage: make_trajectories.py --random N --seed S OUT_DIR")
        n, seed, out = int(args[1]), int(args[3]), args[4]
        os.makedirs(out, exist_ok=True)
        rng = random.Random(seed)
        rejected = []
        for i in range(n):
            while True:  # draw again while the reference itself is off by more than a quarter of the tolerance
                c = random_case(rng, i)
                if write_case(c, seed * 1000 + i, os.path.join(out, c["name"] + ".traj"), WELL_CONDITIONED) is not None:
                    break
                rejected.append("%s/%s" % (c["algo"], c["sched"]["kind"] if c["sched"] else "-"))
        print("wrote %d random trajectories to %s; %d draws rejected as ill-conditioned (PyTorch float32 vs "
              "float64 over the same gradients > %g of the tolerance)%s" % (n, out, len(rejected), WELL_CONDITIONED,
                                                                            ": " + " ".join(rejected) if rejected else ""))
        return
    out = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
    os.makedirs(out, exist_ok=True)
    for i, c in enumerate(CASES):
        notes = write_case(c, 20000 + i, os.path.join(out, c["name"] + ".traj"), WELL_CONDITIONED)
        if notes is None:
            raise SystemExit("%s: ill-conditioned (PyTorch float32 vs float64 > %g of the tolerance)"
                             % (c["name"], WELL_CONDITIONED))
        for n in notes:
            print("%s: %s" % (c["name"], n))
    print("wrote %d trajectories to %s" % (len(CASES), out))


if __name__ == "__main__":
    main()
