#!/usr/bin/env python3
"""Paths of the SQuAD article files of one split (`dev` by default), one per line."""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SQUAD = os.path.join(os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared")), "eval", "squad")
split = sys.argv[1] if len(sys.argv) > 1 else "dev"
titles = json.load(open(os.path.join(SQUAD, "split.json")))[split]
files = {}
for line in open(os.path.join(SQUAD, "paragraphs.jsonl"), encoding="utf-8"):
    p = json.loads(line)
    files.setdefault(p["title"], p["article_file"])
for title in titles:
    print(os.path.join(SQUAD, files[title]))
