#!/usr/bin/env python3
"""Writes the image fixtures in tests/fixtures/scans/ (committed; rerun only to
change them): pages of ../shared/corpus PDFs rasterised with poppler's pdftoppm,
as a scan would give them.

  crazyones.png  crazyones-pdfa.pdf page 1, 150 dpi, 8-bit grey
  sideways.png   the same page turned 90 degrees, as a page fed into a scanner sideways
  two-pages.tiff google-doc-document.pdf page 1 and pdflatex-4-pages.pdf page 1, 150 dpi,
                 1-bit, CCITT G4, two frames
  mixed.pdf      page 1 crazyones-pdfa.pdf as it is (a text layer); page 2 a scan without one:
                 google-doc-document.pdf page 1 at 200 dpi, grey, turned 2 degrees, JPEG

Needs: pdftoppm, pdfseparate, pdfunite (Debian poppler-utils), pip install pillow
Usage: python3 scripts/make_scan_fixtures.py
"""

import glob
import os
import subprocess
import tempfile

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "scans")
CORPUS = os.path.join(HERE, "..", "..", "shared", "corpus")


def render(pdf, first, last, dpi, mode, directory):
    prefix = os.path.join(directory, "page")
    subprocess.run(["pdftoppm", "-r", str(dpi), mode, "-f", str(first), "-l", str(last),
                    os.path.join(CORPUS, pdf), prefix], check=True)
    return sorted(glob.glob(prefix + "*"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        [png] = render("crazyones-pdfa.pdf", 1, 1, 150, "-gray", tmp)
        Image.open(png).save(os.path.join(OUT, "crazyones.png"), optimize=True)
        Image.open(png).rotate(90, expand=True).save(os.path.join(OUT, "sideways.png"), optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        pages = render("google-doc-document.pdf", 1, 1, 150, "-mono", os.path.join(tmp))
        os.makedirs(os.path.join(tmp, "b"))
        pages += render("pdflatex-4-pages.pdf", 1, 1, 150, "-mono", os.path.join(tmp, "b"))
        frames = [Image.open(p).convert("1") for p in pages]
        frames[0].save(os.path.join(OUT, "two-pages.tiff"), compression="group4", save_all=True,
                       append_images=frames[1:], dpi=(150, 150))
    with tempfile.TemporaryDirectory() as tmp:
        [grey] = render("google-doc-document.pdf", 1, 1, 200, "-gray", tmp)
        scan = Image.open(grey).convert("L").rotate(2, expand=False, fillcolor=255)
        scanned = os.path.join(tmp, "scanned.pdf")
        scan.save(scanned, "PDF", resolution=200, quality=75)
        text_page = os.path.join(tmp, "text.pdf")
        subprocess.run(["pdfseparate", "-f", "1", "-l", "1", os.path.join(CORPUS, "crazyones-pdfa.pdf"),
                        text_page], check=True)
        subprocess.run(["pdfunite", text_page, scanned, os.path.join(OUT, "mixed.pdf")], check=True)
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))
