#!/usr/bin/env python3
"""OCR quality and speed by resolution, on pages of ../shared/corpus PDFs that have
a text layer: each page rendered as a scanner would (pdftoppm, grey; optionally
turned 2 degrees with speckle noise), read by Tesseract as docqa runs it (TSV, one
thread), and compared with the page's own text (pdftotext): character error rate
= edit distance / reference length, on text with whitespace collapsed.

Also the choice for scanned PDF pages: render the page, or take its embedded image
(`pdfimages`) when the page is one picture.

Usage: bench/ocr.sh [--dpi 100,150,200,300] [--pages 12] [--sources]

--sources measures that choice instead: each page is scanned at 150 and 300 dpi (grey
JPEG, as scanners store pages), wrapped back as an image-only PDF, and read two ways:
rendered at 200 dpi by pdftoppm (what docqa does), or its embedded image taken out
whole by pdfimages. Time is the image step plus Tesseract.
"""

import argparse
import glob
import json
import os
import random
import re
import subprocess
import tempfile
import time

from PIL import Image, ImageFilter
from rapidfuzz.distance import Levenshtein

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpus")
FILES = ["crazyones-pdfa.pdf", "google-doc-document.pdf", "pdflatex-4-pages.pdf", "multicolumn.pdf",
         "002-trivial-libre-office-writer.pdf", "pdflatex-outline.pdf", "libre-office-link.pdf"]


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


def page_text(pdf, page):
    out = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), pdf, "-"], capture_output=True)
    return norm(out.stdout.decode(errors="replace"))


def ocr(image):
    started = time.monotonic()
    out = subprocess.run(["tesseract", image, "stdout", "-l", "eng", "tsv"], capture_output=True,
                         env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    words = [line.split("\t")[11] for line in out.stdout.decode(errors="replace").splitlines()[1:]
             if line.count("\t") >= 11 and line.split("\t")[0] == "5"]
    return norm(" ".join(words)), time.monotonic() - started


def pages(limit):
    chosen = []
    for name in FILES:
        pdf = os.path.join(CORPUS, name)
        info = subprocess.run(["pdfinfo", pdf], capture_output=True).stdout.decode(errors="replace")
        count = int(re.search(r"Pages:\s+(\d+)", info).group(1))
        for page in range(1, min(count, 3) + 1):
            text = page_text(pdf, page)
            if len(text) > 200:
                chosen.append((name, pdf, page, text))
    return chosen[:limit]


def timed(command):
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    return time.monotonic() - started


def sources(chosen):
    """Render at 200 dpi vs take the embedded image, on image-only PDFs scanned at 150 and 300 dpi."""
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scan_dpi in (150, 300):
            results = {"render 200 dpi": [0, 0, 0.0], "embedded image": [0, 0, 0.0]}
            for i, (name, pdf, page, reference) in enumerate(chosen):
                root = os.path.join(tmp, f"s{i}")
                subprocess.run(["pdftoppm", "-r", str(scan_dpi), "-gray", "-png", "-singlefile", "-f", str(page),
                                "-l", str(page), pdf, root], check=True)
                scanned = root + ".pdf"
                Image.open(root + ".png").convert("L").save(scanned, "PDF", resolution=scan_dpi, quality=85)
                for method, result in results.items():
                    out = os.path.join(tmp, f"{method[0]}{i}")
                    if method.startswith("render"):
                        took = timed(["pdftoppm", "-r", "200", "-gray", "-png", "-singlefile", scanned, out])
                        image = out + ".png"
                    else:
                        took = timed(["pdfimages", "-png", scanned, out])
                        image = out + "-000.png"
                    text, ocr_took = ocr(image)
                    result[0] += Levenshtein.distance(text, reference)
                    result[1] += len(reference)
                    result[2] += took + ocr_took
            for method, (errors, chars, seconds) in results.items():
                key = f"scanned {scan_dpi} dpi, {method}"
                report[key] = {"cer": round(errors / max(chars, 1), 4),
                               "pages_per_s": round(len(chosen) / seconds, 2)}
                print(key, report[key], flush=True)
    return report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dpi", default="100,150,200,300")
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--sources", action="store_true")
    args = parser.parse_args()
    random.seed(7)
    chosen = pages(args.pages)
    if args.sources:
        print(json.dumps({"pages": [f"{n} p{p}" for n, _, p, _ in chosen], "by_source": sources(chosen)}, indent=2))
        return
    report = {"pages": [f"{n} p{p}" for n, _, p, _ in chosen], "by_dpi": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dpi in [int(d) for d in args.dpi.split(",")]:
            for variant in ("clean", "skewed+noise"):
                errors, chars, seconds = 0, 0, 0.0
                for i, (name, pdf, page, reference) in enumerate(chosen):
                    root = os.path.join(tmp, f"p{i}")
                    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", "-singlefile", "-f", str(page),
                                    "-l", str(page), pdf, root], check=True)
                    image = root + ".png"
                    if variant != "clean":
                        picture = Image.open(image).convert("L").rotate(2, fillcolor=255)
                        pixels = picture.load()
                        w, h = picture.size
                        for _ in range(w * h // 200):
                            pixels[random.randrange(w), random.randrange(h)] = random.choice((0, 255))
                        picture = picture.filter(ImageFilter.GaussianBlur(0.4))
                        picture.save(image)
                    text, took = ocr(image)
                    errors += Levenshtein.distance(text, reference)
                    chars += len(reference)
                    seconds += took
                report["by_dpi"][f"{dpi} {variant}"] = {
                    "cer": round(errors / max(chars, 1), 4),
                    "pages_per_s": round(len(chosen) / seconds, 2),
                }
                print(dpi, variant, report["by_dpi"][f"{dpi} {variant}"], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
