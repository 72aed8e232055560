"""Write the README's tutorial files: every fenced code block preceded by a line
`<!-- file: NAME -->` is written to OUTDIR/NAME exactly as the README prints it.

    python3 extract.py README.md OUTDIR NAME...   (fails if a named file is missing)
"""
import os
import sys


def blocks(lines):
    name = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("<!-- file:") and line.endswith("-->"):
            name = line[len("<!-- file:"):-3].strip()
        elif line.startswith("```") and name:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            yield name, "".join(lines[i + 1:j])
            name = None
            i = j
        i += 1


def main():
    readme, outdir, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(readme, encoding="utf-8") as f:
        found = dict(blocks(f.readlines()))
    missing = [w for w in wanted if w not in found]
    if missing:
        sys.exit("extract.py: %s has no block marked <!-- file: %s -->" % (readme, missing[0]))
    os.makedirs(outdir, exist_ok=True)
    for name, text in found.items():
        path = os.path.join(outdir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
