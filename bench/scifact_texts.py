#!/usr/bin/env python3
"""Writes the SciFact abstracts as plain-text files (100 per file) to pad a collection to
~10k chunks for latency measurements: python3 bench/scifact_texts.py OUT_DIR"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared")), "eval", "scifact", "corpus.jsonl")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
docs = [json.loads(line) for line in open(corpus, encoding="utf-8")]
for n in range(0, len(docs), 100):
    with open(os.path.join(out, f"scifact-{n // 100:03d}.txt"), "w", encoding="utf-8") as f:
        for d in docs[n:n + 100]:
            f.write(f"{d['title']}\n\n{d['text']}\n\n")
print(len(docs))
