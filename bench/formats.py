#!/usr/bin/env python3
"""Extraction speed and memory by format: each file through the extraction child
(`docqa extract-child`, as the server runs it), alone, N times; the median wall
time, pages per second and the child's peak RSS (from wait4).
Images are not here: they are read by Tesseract, measured by bench/ocr.sh.
Usage: bench/formats.py DOCQA_BINARY [--runs 3]"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
OFFICE = os.path.join(ROOT, "tests", "fixtures", "office")
MIME = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "odt": "application/vnd.oasis.opendocument.text",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
}
FILES = [os.path.join(OFFICE, f) for f in sorted(os.listdir(OFFICE))] + [
    os.path.join(CORPUS, f)
    for f in ("GeoTopo-komprimiert.pdf", "multicolumn.pdf", "pdflatex-4-pages.pdf", "google-doc-document.pdf")
]


def run_once(binary, path):
    mime = MIME[path.rsplit(".", 1)[1]]
    started = time.perf_counter()
    child = subprocess.Popen([binary, "extract-child", mime, path, "5000", "20000000"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    lines = [json.loads(line) for line in out.splitlines()]
    pages = sum(1 for line in lines if "page" in line)
    boxes = sum(len(line["geometry"]["words"]) for line in lines if "geometry" in line)
    return elapsed, usage.ru_maxrss / 1024, pages, boxes, status


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    print("| file | KB | pages | word boxes | ms (median of %d) | pages/s | child RSS MiB |" % runs)
    print("|---|---|---|---|---|---|---|")
    for path in FILES:
        measured = [run_once(binary, path) for _ in range(runs)]
        ms = statistics.median(m[0] for m in measured) * 1000
        rss = max(m[1] for m in measured)
        _, _, pages, boxes, status = measured[0]
        print(f"| {os.path.basename(path)} | {os.path.getsize(path) // 1024} | {pages} | {boxes} | "
              f"{ms:.0f} | {pages / (ms / 1000):.0f} | {rss:.0f} |" + ("" if status == 0 else " (exit %d)" % status))


if __name__ == "__main__":
    main()
