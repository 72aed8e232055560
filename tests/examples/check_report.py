#!/usr/bin/env python3
"""Run the stability lab (compare_optimizers --quick, all three scenarios, no data given so
every scenario falls back to its built-in data) and check what it wrote: report.html
parses, holds a section per scenario that opens with findings carrying numbers and has SVG
charts, the CSV files of every scenario exist with rows, findings.md and timing.csv exist;
and that bad options are clear errors that leave the report in place.
   check_report.py BINARY WORKDIR [SCENARIOS]
SCENARIOS (default all) is passed to --scenario and only those sections are checked: the
sanitizer build, unoptimised, checks sequence,depth (the resnet scenario alone would take
over an hour there even with --quick)."""
import csv
import glob
import html.parser
import os
import re
import shutil
import subprocess
import sys

binary, work = os.path.abspath(sys.argv[1]), sys.argv[2]
scenarios = sys.argv[3] if len(sys.argv) > 3 else "all"
checked = ("resnet", "sequence", "depth") if scenarios == "all" else tuple(scenarios.split(","))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
out = os.path.join(work, "out")
env = {k: v for k, v in os.environ.items() if k not in ("GOPT_CIFAR10_DIR", "GOPT_TEXT_FILE")}


def run(args, timeout=900):
    # cwd = work: no ./data there, so the built-in data is used
    return subprocess.run([binary] + args, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


proc = run(["--quick", "--scenario", scenarios, "--out", out, "--threads", "2"], timeout=3000)
print(proc.stdout[-4000:])
if proc.returncode != 0:
    print(proc.stderr)
    sys.exit(f"compare_optimizers exited {proc.returncode}")
if "resnet" in checked or "depth" in checked:
    assert "BUILT-IN SYNTHETIC" in proc.stdout, "the built-in images are not announced"
if "sequence" in checked:
    assert "BUILT-IN text" in proc.stdout, "the built-in text is not announced"


class Parser(html.parser.HTMLParser):
    VOID = ("meta", "br", "line", "rect", "polyline", "path", "circle", "stop", "hr", "img", "polygon", "ellipse")

    def __init__(self):
        super().__init__()
        self.stack, self.sections, self.current = [], {}, None
        self.in_findings = False

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        a = dict(attrs)
        self.stack.append(tag)
        if tag == "section":
            self.current = a.get("id")
            self.sections[self.current] = {"svg": 0, "findings": "", "text": []}
        elif self.current and tag == "svg":
            self.sections[self.current]["svg"] += 1
        elif self.current and tag == "p" and "findings" in (a.get("class") or ""):
            self.in_findings = True

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            raise SystemExit(f"report.html: </{tag}> does not close <{self.stack[-1] if self.stack else None}>")
        self.stack.pop()
        if tag == "section":
            self.current = None
        if tag == "p":
            self.in_findings = False

    def handle_data(self, data):
        if self.current:
            self.sections[self.current]["text"].append(data)
            if self.in_findings:
                self.sections[self.current]["findings"] += data


with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
    page = f.read()
p = Parser()
p.feed(page)
p.close()
assert not p.stack, f"unclosed tags: {p.stack}"
assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", ""), "the report is not offline"
assert set(p.sections) == set(checked), f"report.html has sections {list(p.sections)}, expected {checked}"
for name in checked:
    assert name in p.sections, f"report.html has no section '{name}' (has {list(p.sections)})"
    s = p.sections[name]
    findings = s["findings"].replace("Findings.", "").strip()
    assert len(findings) > 80 and re.search(r"\d", findings), f"{name}: findings too thin: {findings!r}"
    assert s["svg"] >= 2, f"{name}: {s['svg']} charts"
    files = sorted(glob.glob(os.path.join(out, f"{name}_*.csv")))
    assert files, f"no {name}_*.csv"
    for path in files:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) >= 2, f"{os.path.basename(path)} has no rows"
        assert all(len(r) == len(rows[0]) for r in rows), f"{os.path.basename(path)}: ragged rows"
    print(f"ok: section {name}: {s['svg']} charts, {len(files)} CSV files; findings: {findings[:160]}...")
for name in ("findings.md", "timing.csv"):
    assert os.path.getsize(os.path.join(out, name)) > 0, f"{name} missing or empty"
times = re.findall(r'<span class="time">', page)
assert times, "no wall time in the report"

# bad input: a clear error, exit 2, and the report already there is kept
before = open(os.path.join(out, "report.html"), encoding="utf-8").read()
for args, needle in ((["--scenario", "lstm"], "unknown scenario 'lstm'"),
                     (["--scenario", "depth,bogus"], "unknown scenario 'bogus'"),
                     (["--text", os.path.join(work, "missing.txt")], "missing.txt"),
                     (["--data", work], "no data_batch_1.bin"),
                     (["--threads", "0"], "--threads"),
                     (["--quick", "--frobnicate"], "unknown option '--frobnicate'")):
    r = run(args + ["--out", out], timeout=60)
    assert r.returncode == 2, f"{args}: exit {r.returncode}, stderr {r.stderr!r}"
    assert needle in r.stderr, f"{args}: error {r.stderr!r} does not name {needle!r}"
assert open(os.path.join(out, "report.html"), encoding="utf-8").read() == before, "a refused run changed the report"
print("ok: bad options refused with clear errors; the report was kept")

# what each scenario must show (on the built-in data, --quick)
def rows(name):
    with open(os.path.join(out, name), newline="") as f:
        return list(csv.DictReader(f))


if "resnet" in checked:
    sched = rows("resnet_schedules.csv")
    want = {"constant", "step", "cosine", "one-cycle", "plateau", "warmup+plateau"}
    for opt in ("SGD-Nesterov", "Adam"):
        have = {r["strategy"] for r in sched if r["optimizer"] == opt}
        assert have == want, f"resnet_schedules.csv: {opt} has strategies {sorted(have)}"
    summary = {r["run"]: r for r in rows("resnet_summary.csv")}
    boom = [r for k, r in summary.items() if k.startswith("explode") and r["variant"] == "base"]
    held = [r for k, r in summary.items() if k.startswith("explode") and r["variant"] == "clip"]
    assert boom and boom[0]["diverged"] == "1", "the exploding SGD run is not marked diverged"
    assert held and held[0]["diverged"] == "0", "the clipped twin of the exploding SGD run diverged"
    clipped = [float(r["clipped_fraction"]) for r in summary.values() if r["phase"] == "compare" and r["variant"] == "clip"]
    assert clipped and all(0 < c <= 1 for c in clipped), f"clip thresholds that never bite: {clipped}"

if "resnet" in checked:  # issue 18: the time-to-target table at each frontier optimizer's best sweep LR
    ttt = rows("resnet_time_to_target.csv")
    names = [r["optimizer"] for r in ttt]
    assert names == ["AdamW", "Nesterov", "AdamW-SF", "SGD-SF", "Muon", "Adafactor"], f"time to target: {names}"
    for r in ttt:
        if not r["steps"]:
            continue  # no stable LR in the sweep: said in the report
        steps, every = int(r["steps"]), int(r["eval_every"])
        reached = [r[k] for k in r if k.startswith("steps_to_")]
        assert len(reached) == 3, f"time to target: targets {list(r)}"
        for v in reached:
            assert v == "" or (0 < int(v) <= steps and int(v) % every in (0, steps % every)), f"time to target: {r}"
        # a target reached means the best accuracy got there
        for k in r:
            if k.startswith("steps_to_") and r[k]:
                assert float(r["best_val_acc"]) * 100 >= float(k[len("steps_to_"):]) - 1e-9, f"time to target: {r}"
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert "Time to target (AlgoPerf" in html, "no time-to-target table in the report"
    summary_opts = {r["optimizer"] for r in rows("resnet_summary.csv") if r["phase"] == "compare"}
    assert {"AdamW-SF", "SGD-SF", "Muon", "Adafactor"} <= summary_opts, f"comparison lacks the frontier: {summary_opts}"

if "sequence" in checked:  # issue 18: the character LM's frontier runs
    text = {r["optimizer"] for r in rows("sequence_text.csv")}
    assert {"AdamW", "SGD-Nesterov", "AdamW-SF", "SGD-SF", "Muon", "Adafactor"} <= text, f"character LM: {text}"

if "sequence" in checked:
    adding = rows("sequence_adding.csv")
    base = [r for r in adding if r["model"] == "rnn" and r["variant"] == "base" and r["T"] == "100"]
    clip = [r for r in adding if r["model"] == "rnn" and r["variant"] == "clip norm" and r["T"] == "100"]
    assert base and clip, "no tanh RNN base / clip-norm runs at T=100"
    assert float(base[0]["max_grad_norm"]) > 10 * float(clip[0]["clip_norm"]) > 0, "no explosion beyond the clip threshold"
    assert int(clip[0]["clipped_steps"]) > 0 and clip[0]["diverged"] == "0", "clipping did not bite or did not hold"

if "depth" in checked:
    depth = {(r["depth"], r["activation"], r["variant"]): r for r in rows("depth_runs.csv")}
    plain = float(depth[("50", "sigmoid", "default")]["first_last_ratio_init"])
    for v in ("batchnorm", "residual"):
        other = float(depth[("50", "sigmoid", v)]["first_last_ratio_init"])
        assert plain < 1e-6 and other > 1e-2, f"50-layer sigmoid first/last ratio: default {plain}, {v} {other}"
print(f"ok: what {', '.join(checked)} must show")
