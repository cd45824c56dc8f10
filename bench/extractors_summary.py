#!/usr/bin/env python3
"""Summary of bench/extractors.sh: per parser, files read, median token F1 and
median bigram F1 (word pairs: sensitive to reading order, e.g. columns joined line
by line) against pdftotext's reading-order text (files pdftotext reads), pages/s,
and where they failed. JSON on stdout."""
import collections, json, os, re, statistics, sys

out = sys.argv[1]
tokens = lambda text: re.findall(r"\w+", text.lower())
words = lambda text: collections.Counter(tokens(text))
pairs = lambda text: (lambda t: collections.Counter(zip(t, t[1:])))(tokens(text))

def f1(a, b):
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)

results = collections.defaultdict(list)
for line in open(os.path.join(out, "results.jsonl")):
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        continue
    ref_path = os.path.join(out, os.path.basename(row["file"]) + ".ref.txt")
    ref_text = open(ref_path, errors="replace").read() if os.path.exists(ref_path) else ""
    ref = words(ref_text)
    row["reference_readable"] = sum(ref.values()) > 20
    if row.get("ok"):
        text = "\n".join(row.pop("text"))
        row["f1"] = f1(words(text), ref) if row["reference_readable"] else None
        row["bigram_f1"] = f1(pairs(text), pairs(ref_text)) if row["reference_readable"] else None
    results[row["parser"]].append(row)

summary = {}
for parser, rows in results.items():
    readable = [r for r in rows if r["reference_readable"]]
    read = [r for r in readable if r.get("ok")]
    f1s = [r["f1"] for r in read if r.get("f1") is not None]
    bigram_f1s = [r["bigram_f1"] for r in read if r.get("bigram_f1") is not None]
    ms = sum(r.get("ms", 0) for r in rows if r.get("ok"))
    pages = sum(r.get("pages", 0) for r in rows if r.get("ok"))
    summary[parser] = {
        "files": len(rows),
        "readable_by_pdftotext": len(readable),
        "read_of_readable": len(read),
        "median_f1": round(statistics.median(f1s), 3) if f1s else None,
        "median_bigram_f1": round(statistics.median(bigram_f1s), 3) if bigram_f1s else None,
        "mean_bigram_f1": round(statistics.mean(bigram_f1s), 3) if bigram_f1s else None,
        "f1_below_0.8": sorted(os.path.basename(r["file"]) for r in read if r.get("f1") is not None and r["f1"] < 0.8),
        "pages_per_s": round(pages / (ms / 1000), 1) if ms else None,
        "failed": sorted(f'{os.path.basename(r["file"])}: {r.get("error", "")[:80]}' for r in readable if not r.get("ok")),
    }
print(json.dumps(summary, indent=2))
