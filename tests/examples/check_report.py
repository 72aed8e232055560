#!/usr/bin/env python3
"""Run compare_optimizers on a tiny budget and check what it wrote: report.html parses and
holds an SVG chart per figure, the CSVs have their documented columns, the deliberately
exploding setting (plain SGD at a huge LR) is marked diverged while the same setting with
clipping is not, and the report shows both."""
import csv
import html.parser
import os
import subprocess
import sys

binary, out = sys.argv[1], sys.argv[2]
cmd = [binary, "--quick", "--steps", "12", "--sweep-steps", "6", "--train-subset", "1024", "--out", out,
       "--threads", "2"]
proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
print(proc.stdout[-3000:])
if proc.returncode != 0:
    print(proc.stderr)
    sys.exit(f"compare_optimizers exited {proc.returncode}")
assert "SYNTHETIC" in proc.stdout, "the built-in data is not announced"


class Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.svgs, self.figures, self.text = [], 0, 0, []

    def handle_starttag(self, tag, attrs):
        if tag in ("meta", "br", "line", "rect", "polyline", "path", "circle", "stop"):
            return  # void or self-closed in SVG
        self.stack.append(tag)
        self.svgs += tag == "svg"
        self.figures += tag == "figure"

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in ("line", "rect", "polyline", "path", "circle", "stop"):
            return
        if not self.stack or self.stack[-1] != tag:
            raise SystemExit(f"report.html: </{tag}> does not close <{self.stack[-1] if self.stack else None}>")
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


p = Parser()
with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
    p.feed(f.read())
p.close()
assert not p.stack, f"unclosed tags: {p.stack}"
assert p.figures >= 10 and p.svgs == p.figures, f"{p.figures} figures, {p.svgs} svg charts"
text = " ".join(p.text)
for needle in ("Training loss", "Global gradient norm", "Training accuracy", "Final training loss by optimizer and LR",
               "synthetic", "explode: SGD", "diverged", "stable LR range", "LR sensitivity"):
    assert needle.lower() in text.lower(), f"report lacks '{needle}'"

columns = {
    "results.csv": ["phase", "run", "optimizer", "variant", "lr", "step", "epoch", "loss", "acc", "lr_now",
                    "grad_norm", "update_ratio", "applied", "diverged", "val_loss", "val_acc"],
    "summary.csv": ["phase", "run", "optimizer", "variant", "lr", "steps", "initial_loss", "final_loss", "val_loss",
                    "val_acc", "skipped_steps", "diverged", "diverge_step", "seconds"],
    "sweep.csv": ["optimizer", "variant", "stable_lr_min", "stable_lr_max", "best_lr", "best_final_loss",
                  "lr_sensitivity", "diverged_points"],
}
rows = {}
for name, cols in columns.items():
    with open(os.path.join(out, name), newline="") as f:
        r = list(csv.DictReader(f))
    with open(os.path.join(out, name), newline="") as f:
        header = next(csv.reader(f))
    assert header == cols, f"{name}: columns {header}, documented {cols}"
    assert r, f"{name} is empty"
    rows[name] = r

summary = {row["run"]: row for row in rows["summary.csv"]}
explode = [k for k in summary if k.startswith("explode") and not k.endswith("+clip")]
clipped = [k for k in summary if k.startswith("explode") and k.endswith("+clip")]
assert explode and clipped, "no exploding pair in summary.csv"
assert summary[explode[0]]["diverged"] == "1", f"{explode[0]} not marked diverged"
assert summary[clipped[0]]["diverged"] == "0", f"{clipped[0]} marked diverged"
optimizers = {row["optimizer"] for row in rows["sweep.csv"]}
assert len(optimizers) == 11, f"sweep covers {sorted(optimizers)}"
for row in rows["sweep.csv"]:
    sens = float(row["lr_sensitivity"])  # nan when every LR diverged
    assert not sens < 0, f"{row['optimizer']} {row['variant']}: LR sensitivity {sens} < 0"
print(f"ok: report with {p.svgs} SVG charts; '{explode[0]}' diverged, '{clipped[0]}' did not; CSV columns as documented")
