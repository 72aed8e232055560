#!/usr/bin/env python3
"""The report of scripts/bench.sh: from the benchmarks' machine-readable lines, a CSV, a
markdown page (machine, table, notes) and an SVG bar chart of the ratios. Python standard
library only.

    python3 bench/bench_report.py --rows ROWS --out PREFIX [--machine FILE] [--notes FILE]
                                  [--title TEXT]

ROWS holds tab-separated lines, any other line is ignored (so a program's whole stdout can
be given):
    ROW<TAB>name<TAB>unit<TAB>ours<TAB>floor<TAB>peer    one figure; floor/peer "-" if absent
    PEER<TAB>name<TAB>unit<TAB>value                     the peer of row `name`, measured by
                                                         another program (same unit)
    FAIL<TAB>benchmark<TAB>why                           the benchmark failed
    MISSING<TAB>benchmark<TAB>why                        it ran but printed no rows
    SKIP<TAB>benchmark<TAB>why                           it was not run (e.g. no MPI)
Every unit is "higher is better", so ours/floor > 1 is faster than the floor and ours/peer > 1
faster than the peer. Numbers must be finite and > 0 (or "-"); a malformed ROW/PEER line, a
duplicate row name or a PEER of another unit is an error (exit 1, naming the line).
MACHINE: lines "key<TAB>value", shown in that order. NOTES: markdown appended under "Notes".
Writes PREFIX.csv (name,unit,ours,floor,peer,ours_over_floor,ours_over_peer), PREFIX.md and
PREFIX.svg, and prints the markdown page on stdout."""
import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

STATUS_KINDS = ("FAIL", "MISSING", "SKIP")
STATUS_WORD = {"FAIL": "failed", "MISSING": "missing", "SKIP": "skipped"}


class ReportError(Exception):
    pass


def parse_number(text, where):
    if text == "-":
        return None
    try:
        v = float(text)
    except ValueError:
        raise ReportError("%s: '%s' is not a number or '-'" % (where, text))
    if not math.isfinite(v) or v <= 0:
        raise ReportError("%s: %s must be finite and > 0 (or '-')" % (where, text))
    return v


def read_rows(path):
    """Rows in order of first appearance: dicts name, unit, ours, floor, peer, status, why."""
    rows, index = [], {}
    peers = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            kind = line.split("\t", 1)[0]
            if kind not in ("ROW", "PEER") + STATUS_KINDS or "\t" not in line:
                continue
            where = "%s:%d" % (path, no)
            fields = line.split("\t")
            if kind == "ROW":
                if len(fields) != 6:
                    raise ReportError("%s: a ROW line has 6 tab-separated fields, this one %d" % (where, len(fields)))
                _, name, unit = fields[:3]
                if not name or not unit:
                    raise ReportError("%s: empty name or unit" % where)
                if name in index:
                    raise ReportError("%s: row '%s' appears twice" % (where, name))
                ours, flo, peer = (parse_number(x, where) for x in fields[3:])
                index[name] = len(rows)
                rows.append(dict(name=name, unit=unit, ours=ours, floor=flo, peer=peer, status=None, why=""))
            elif kind == "PEER":
                if len(fields) != 4:
                    raise ReportError("%s: a PEER line has 4 tab-separated fields, this one %d" % (where, len(fields)))
                v = parse_number(fields[3], where)
                if v is None:
                    raise ReportError("%s: a PEER line needs a value" % where)
                peers.append((where, fields[1], fields[2], v))
            else:
                if len(fields) < 2 or not fields[1]:
                    raise ReportError("%s: a %s line names its benchmark" % (where, kind))
                rows.append(dict(name=fields[1], unit="-", ours=None, floor=None, peer=None, status=kind,
                                 why="\t".join(fields[2:])))
    for where, name, unit, v in peers:
        if name in index:
            r = rows[index[name]]
            if r["unit"] != unit:
                raise ReportError("%s: peer of '%s' in %s, the row is in %s" % (where, name, unit, r["unit"]))
            if r["peer"] is not None:
                raise ReportError("%s: row '%s' already has a peer" % (where, name))
            r["peer"] = v
        else:  # the peer ran, ours did not print this row: keep the peer, ours stays empty
            index[name] = len(rows)
            rows.append(dict(name=name, unit=unit, ours=None, floor=None, peer=v, status=None, why=""))
    return rows


def ratio(a, b):
    return a / b if a is not None and b is not None else None


def csv_number(v):
    return "" if v is None else "%.6g" % v


def md_number(v):
    if v is None:
        return ""
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%#.3g" % v


def md_ratio(v):
    return "" if v is None else md_number(v) + "x"


def write_csv(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "unit", "ours", "floor", "peer", "ours_over_floor", "ours_over_peer"])
        for r in rows:
            if r["status"]:
                w.writerow([r["name"], "-", STATUS_WORD[r["status"]], "", "", "", ""])
            else:
                w.writerow([r["name"], r["unit"], csv_number(r["ours"]), csv_number(r["floor"]), csv_number(r["peer"]),
                            csv_number(ratio(r["ours"], r["floor"])), csv_number(ratio(r["ours"], r["peer"]))])


def md_cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows, machine, notes, title):
    out = ["# " + title, ""]
    if machine:
        out += ["| machine | |", "|---|---|"]
        out += ["| %s | %s |" % (md_cell(k), md_cell(v)) for k, v in machine]
        out.append("")
    out += ["| benchmark | unit | ours | floor | peer | ours/floor | ours/peer |",
            "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r["status"]:
            out.append("| %s | | **%s** | | | | |" % (md_cell(r["name"]), STATUS_WORD[r["status"]]))
        else:
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                md_cell(r["name"]), md_cell(r["unit"]), md_number(r["ours"]), md_number(r["floor"]),
                md_number(r["peer"]), md_ratio(ratio(r["ours"], r["floor"])), md_ratio(ratio(r["ours"], r["peer"]))))
    out += ["", "Every unit is higher-is-better: ours/floor > 1 is faster than the floor, ours/peer > 1 faster "
            "than the peer. An empty cell was not measured in this run."]
    bad = [r for r in rows if r["status"]]
    if notes.strip() or bad:
        out += ["", "## Notes", ""]
        for r in bad:
            out.append("- **%s %s**: %s" % (r["name"], STATUS_WORD[r["status"]], r["why"] or "(no detail)"))
        if bad:
            out.append("")
        if notes.strip():
            out.append(notes.strip())
    return "\n".join(out) + "\n"


# ---- the SVG ------------------------------------------------------------------------------
FLOOR_COLOUR, PEER_COLOUR = "#4c78a8", "#f58518"


def nice_bounds(values):
    lo = min(values + [1.0])
    hi = max(values + [1.0])
    lo = 10 ** math.floor(math.log10(lo) + 1e-9)
    hi = 10 ** math.ceil(math.log10(hi) - 1e-9)
    if hi <= lo:
        hi = lo * 10
    return lo, hi


def svg(rows, title, subtitle):
    label_w, plot_w, right_w = 300, 560, 70
    bar_h, gap, top = 11, 10, 86
    width = label_w + plot_w + right_w
    ratios = []
    for r in rows:
        for v in (ratio(r["ours"], r["floor"]), ratio(r["ours"], r["peer"])):
            if v is not None:
                ratios.append(v)
    lo, hi = nice_bounds(ratios)
    llo, lhi = math.log10(lo), math.log10(hi)

    def x(v):
        v = min(max(v, lo), hi)
        return label_w + (math.log10(v) - llo) / (lhi - llo) * plot_w

    row_h = 2 * bar_h + gap
    height = top + row_h * len(rows) + 40
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">' % (width, height, width, height),
         '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (width, height),
         '<text x="10" y="22" font-size="16" font-weight="bold">%s</text>' % escape(title),
         '<text x="10" y="40" fill="#444">%s</text>' % escape(subtitle)]
    # legend
    o += ['<rect x="10" y="50" width="14" height="10" fill="%s"/>' % FLOOR_COLOUR,
          '<text x="30" y="59">ours / floor</text>',
          '<rect x="130" y="50" width="14" height="10" fill="%s"/>' % PEER_COLOUR,
          '<text x="150" y="59">ours / peer (PyTorch 1.13)</text>',
          '<text x="360" y="59" fill="#444">log scale; right of the 1.0 line: ours is faster</text>']
    plot_top, plot_bottom = top - 8, top + row_h * len(rows)
    # decades and 2x, 5x sub-ticks
    d = llo
    while d <= lhi + 1e-9:
        for m, major in ((1, True), (2, False), (5, False)):
            v = m * 10 ** d
            if v < lo * (1 - 1e-9) or v > hi * (1 + 1e-9):
                continue
            xv = x(v)
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1"/>' % (
                xv, plot_top, xv, plot_bottom, "#ccc" if major else "#eee"))
            if major or (hi / lo) <= 1000:
                o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#444" font-size="11">%s</text>' % (
                    xv, plot_bottom + 14, escape("%gx" % float("%.3g" % v))))
        d += 1
    one = x(1.0)
    for i, r in enumerate(rows):
        y0 = top + i * row_h
        if i % 2 == 0:
            o.append('<rect x="0" y="%d" width="%d" height="%d" fill="#f7f7f7"/>' % (y0 - gap // 2, width, row_h))
        label = r["name"] + ("" if r["status"] else " (%s)" % r["unit"])
        o.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (label_w - 8, y0 + bar_h + 4, escape(label)))
        if r["status"]:
            o.append('<text x="%.1f" y="%d" fill="#c00" font-weight="bold">%s</text>' % (
                one + 6, y0 + bar_h + 4, STATUS_WORD[r["status"]]))
            continue
        for k, (v, colour) in enumerate(((ratio(r["ours"], r["floor"]), FLOOR_COLOUR),
                                         (ratio(r["ours"], r["peer"]), PEER_COLOUR))):
            yb = y0 + k * bar_h
            if v is None:
                continue
            xv = x(v)
            x0, w = (one, xv - one) if xv >= one else (xv, one - xv)
            o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>' % (
                x0, yb, max(w, 1.0), bar_h - 1, colour, escape(r["name"]),
                escape(("ours/floor " if k == 0 else "ours/peer ") + md_ratio(v))))
            tx = min(max(xv, one) + 4, label_w + plot_w + 4) if xv >= one else max(xv - 4, label_w - 4)
            anchor = "start" if xv >= one else "end"
            if xv < one and xv - 4 < label_w + 40:  # no room left of the bar: write it right of the line
                tx, anchor = one + 4, "start"
            o.append('<text x="%.1f" y="%d" font-size="10" text-anchor="%s">%s</text>' % (
                tx, yb + bar_h - 2, anchor, escape(md_ratio(v))))
    o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="1.5"/>' % (
        one, plot_top, one, plot_bottom))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def read_machine(path):
    items = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            k, _, v = line.partition("\t")
            items.append((k, v))
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--out", required=True, help="PREFIX of PREFIX.md, .csv, .svg")
    ap.add_argument("--machine")
    ap.add_argument("--notes")
    ap.add_argument("--title", default="libgradopt benchmarks")
    a = ap.parse_args(argv)
    try:
        rows = read_rows(a.rows)
        machine = read_machine(a.machine) if a.machine else []
        notes = open(a.notes, encoding="utf-8").read() if a.notes else ""
    except (OSError, ReportError) as e:
        print("bench_report: %s" % e, file=sys.stderr)
        return 1
    if not rows:
        print("bench_report: %s holds no ROW, PEER, FAIL, MISSING or SKIP line" % a.rows, file=sys.stderr)
        return 1
    md = markdown(rows, machine, notes, a.title)
    sub = "; ".join("%s %s" % (k, v) for k, v in machine if k in ("CPU", "date", "commit"))
    try:
        write_csv(rows, a.out + ".csv")
        with open(a.out + ".md", "w", encoding="utf-8") as f:
            f.write(md)
        with open(a.out + ".svg", "w", encoding="utf-8") as f:
            f.write(svg(rows, a.title, sub))
    except OSError as e:
        print("bench_report: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
