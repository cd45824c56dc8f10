#!/usr/bin/env python3
"""Dense retrieval quality of ONNX exports of all-MiniLM-L6-v2 on SciFact test (BEIR): nDCG@10
and recall@100 of each model given, same tokenizer, mean pooling, cosine, exact search.

  python embed_quality.py TOKENIZER_JSON MODEL.onnx [MODEL.onnx ...]

Needs numpy, onnxruntime and tokenizers (scripts/export_onnx.py's environment). The published
anchor for the fp32 model is 0.645 nDCG@10 (MTEB); an int8 export should be within 0.01 of the
fp32 export measured in the same run."""
import json, math, os, sys, time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SCIFACT = os.path.join(os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared")), "eval", "scifact")


def load():
    corpus = [json.loads(l) for l in open(os.path.join(SCIFACT, "corpus.jsonl"), encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(os.path.join(SCIFACT, "queries.jsonl"), encoding="utf-8"))}
    qrels = {}
    with open(os.path.join(SCIFACT, "qrels", "test.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.strip().split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    return corpus, {q: queries[q] for q in qrels}, qrels


def embed(session, tokenizer, texts, batch=32):
    names = {i.name for i in session.get_inputs()}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 0), dtype=np.float32)
    vectors = [None] * len(texts)
    for n in range(0, len(order), batch):
        idx = order[n:n + batch]
        enc = tokenizer.encode_batch([texts[i] for i in idx])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        h = session.run(None, feed)[0]
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for i, row in zip(idx, v):
            vectors[i] = row
    return np.stack(vectors) if vectors else out


def ndcg_at_10(ranked, rels):
    dcg = sum(rels.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
    ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(rels.values(), reverse=True)[:10]))
    return dcg / ideal if ideal else 0.0


def main():
    tokenizer = Tokenizer.from_file(sys.argv[1])
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()
    corpus, queries, qrels = load()
    doc_ids = [d["_id"] for d in corpus]
    doc_texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    qids = list(queries)
    for path in sys.argv[2:]:
        options = ort.SessionOptions()
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        t = time.perf_counter()
        docs = embed(session, tokenizer, doc_texts)
        qs = embed(session, tokenizer, [queries[q] for q in qids])
        seconds = time.perf_counter() - t
        scores = qs @ docs.T
        ndcg = recall = 0.0
        for row, qid in zip(scores, qids):
            top = np.argsort(-row)[:100]
            ranked = [doc_ids[i] for i in top]
            ndcg += ndcg_at_10(ranked, qrels[qid])
            recall += len(set(ranked) & set(qrels[qid])) / len(qrels[qid])
        print(json.dumps({"model": os.path.basename(path), "queries": len(qids), "docs": len(doc_ids),
                          "ndcg@10": round(ndcg / len(qids), 4), "recall@100": round(recall / len(qids), 4),
                          "embed_seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
