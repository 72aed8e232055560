#!/usr/bin/env bash
# The report generator of scripts/bench.sh (bench/bench_report.py) over fixed input:
#   check.sh PYTHON SOURCE_DIR WORK_DIR
# 1. rows.tsv (human lines mixed in, rows without floor or peer, a PEER merged into its row,
#    a PEER without a row, failed/missing/skipped benchmarks) gives exactly expected.csv, the
#    same markdown on stdout as in the .md, the table rows and notes below, and a well-formed
#    SVG with one bar per ratio; 2. every malformed input is refused (exit 1) naming its line.
set -euo pipefail
py=$1 src=$2 work=$3
here="$src/tests/bench_report"
gen=("$py" "$src/bench/bench_report.py")
rm -rf "$work"; mkdir -p "$work"
fail() { echo "check.sh: $*" >&2; exit 1; }

"${gen[@]}" --rows "$here/rows.tsv" --machine "$here/machine.tsv" --notes "$here/notes.md" \
  --title "fixture" --out "$work/r" >"$work/stdout.md"
diff -u "$here/expected.csv" "$work/r.csv" || fail "the CSV differs from expected.csv"
cmp "$work/stdout.md" "$work/r.md" || fail "stdout is not the markdown file"
for want in '# fixture' '| CPU | Test CPU |' \
  '| optim.adam | GB/s | 20.0 | 25.0 | 10.0 | 0.800x | 2.00x |' \
  '| clip.inactive | GB/s | 40.0 | 50.0 |  | 0.800x |  |' \
  '| data.loader | img/s | 385985 | 1315167 | 17709 | 0.293x | 21.8x |' \
  '| dist.allreduce.1MB | GB/s | 2.00 | 2.50 | 0.500 | 0.800x | 4.00x |' \
  '| bench_clip | | **failed** | | | | |' '| bench_train.resnet8 | | **missing** | | | | |' \
  '| bench_dist | | **skipped** | | | | |' '- **bench_clip failed**: exit status 1' \
  'A fixed note, *in markdown*.'; do
  grep -qxF -- "$want" "$work/r.md" || fail "the markdown lacks the line: $want"
done
grep -q 'not a row' "$work/r.md" && fail "a line that is not a row reached the markdown"
"$py" - "$work/r.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + "svg", root.tag
bars = [r for r in root.iter(ns + "rect") if r.find(ns + "title") is not None]
# ratios in rows.tsv: adam 2, clip.inactive 1, data.loader 2, rnn.lstm 1, dist.allreduce.1MB 2
assert len(bars) == 8, "%d bars, want 8" % len(bars)
assert all(float(b.get("width")) >= 1.0 for b in bars)
texts = [t.text for t in root.iter(ns + "text")]
for want in ("failed", "missing", "skipped", "2.00x", "21.8x", "0.800x"):
    assert want in texts, "no text '%s' in the SVG" % want
PY

# malformed inputs: exit 1, naming the file and line
bad() { # bad EXPECTED_LINE MESSAGE_PART CONTENT
  printf '%b' "$3" >"$work/bad.tsv"
  if "${gen[@]}" --rows "$work/bad.tsv" --out "$work/bad" >/dev/null 2>"$work/bad.err"; then
    fail "accepted: $(cat "$work/bad.tsv")"
  fi
  grep -qF "bad.tsv:$1: " "$work/bad.err" || fail "the error does not name line $1: $(cat "$work/bad.err")"
  grep -qF -- "$2" "$work/bad.err" || fail "the error does not say '$2': $(cat "$work/bad.err")"
}
bad 2 "6 tab-separated fields" 'ROW\ta\tGB/s\t1\t2\t3\nROW\tb\tGB/s\t1\t2\n'
bad 1 "'fast' is not a number" 'ROW\ta\tGB/s\tfast\t2\t3\n'
bad 1 "must be finite and > 0" 'ROW\ta\tGB/s\t-1\t2\t3\n'
bad 1 "must be finite and > 0" 'ROW\ta\tGB/s\t1\tnan\t3\n'
bad 3 "appears twice" 'ROW\ta\tGB/s\t1\t2\t3\nhuman text\nROW\ta\tGB/s\t1\t2\t3\n'
bad 2 "peer of 'a' in MB/s" 'ROW\ta\tGB/s\t1\t2\t-\nPEER\ta\tMB/s\t3\n'
bad 2 "already has a peer" 'ROW\ta\tGB/s\t1\t2\t3\nPEER\ta\tGB/s\t3\n'
bad 1 "needs a value" 'PEER\ta\tGB/s\t-\n'
printf 'only human output\n' >"$work/empty.tsv"
if "${gen[@]}" --rows "$work/empty.tsv" --out "$work/empty" >/dev/null 2>"$work/empty.err"; then
  fail "accepted a file without rows"
fi
grep -qF "holds no ROW" "$work/empty.err" || fail "no-rows error: $(cat "$work/empty.err")"
echo "check.sh: bench_report.py passes"
