#!/usr/bin/env python3
"""Gold-paragraph recall of docqa's search on the SQuAD `dev` split, next to a plain BM25
run over the very same chunks (read from the server's SQLite catalog).

  python3 bench/squad_recall.py http://127.0.0.1:8090 DATA_DIR [--collection squad-dev]

Uploads the 16 `dev` articles as text (unless the collection already holds them), asks every
`dev` question through POST /v1/collections/{c}/search with top_k=10, and counts a hit when a
returned chunk overlaps the question's gold paragraph (by character span in the article).
Prints recall@1/5/10 and MRR@10 for docqa (hybrid) and for BM25 on the same chunks, as JSON.
Stdlib only; loopback only.
"""
import argparse, collections, json, math, os, re, sqlite3, sys, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SQUAD = os.path.join(HERE, "..", "..", "shared", "eval", "squad")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "peer"))
from docqa_client import Client  # noqa: E402

STOP = set("""a an and are as at be but by for from has have how in is it its of on or that the this
to was were what when where which who whom why will with did do does not no than then there these
those they them he she his her their our your you we i""".split())


def tokens(text):
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOP]


class Bm25:
    def __init__(self, docs, k1=1.2, b=0.75):
        self.tf = [collections.Counter(tokens(d)) for d in docs]
        self.len = [sum(c.values()) for c in self.tf]
        self.avg = sum(self.len) / max(1, len(self.len))
        df = collections.Counter(t for c in self.tf for t in c)
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b
        self.postings = collections.defaultdict(list)
        for i, c in enumerate(self.tf):
            for t in c:
                self.postings[t].append(i)

    def top(self, query, k):
        scores = collections.defaultdict(float)
        for t in set(tokens(query)):
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i in self.postings[t]:
                f = self.tf[i][t]
                scores[i] += idf * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self.len[i] / self.avg))
        return [i for i, _ in sorted(scores.items(), key=lambda x: -x[1])[:k]]


def summarise(ranks, n):
    out = {f"recall@{k}": round(sum(1 for r in ranks if r is not None and r < k) / n, 4) for k in (1, 5, 10)}
    out["mrr@10"] = round(sum(1 / (r + 1) for r in ranks if r is not None and r < 10) / n, 4)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("data_dir")
    ap.add_argument("--collection", default="squad-dev")
    a = ap.parse_args()
    split = json.load(open(os.path.join(SQUAD, "split.json")))["dev"]
    paragraphs = {p["paragraph_id"]: p for p in map(json.loads, open(os.path.join(SQUAD, "paragraphs.jsonl")))}
    questions = [q for q in map(json.loads, open(os.path.join(SQUAD, "questions.jsonl"))) if q["split"] == "dev"]
    files = {p["title"]: p["article_file"] for p in paragraphs.values()}
    title_of = {os.path.basename(f): t for t, f in files.items()}
    articles = {t: open(os.path.join(SQUAD, files[t]), encoding="utf-8").read() for t in split}

    c = Client(a.base, timeout=3600)
    c.post_json("/v1/collections", {"name": a.collection})
    listed = c.get(f"/v1/collections/{a.collection}/documents?limit=500").json()["documents"]
    have = {d["filename"] for d in listed if d["status"] == "ready"}
    t0 = time.perf_counter()
    for title in split:
        if os.path.basename(files[title]) not in have:
            r = c.upload_path(os.path.join(SQUAD, files[title]), collection=a.collection, wait=True)
            assert r.status == 200, r.body[:300]
    upload_s = time.perf_counter() - t0

    # The same chunks, straight from the catalog.
    db = sqlite3.connect(os.path.join(a.data_dir, "docqa.sqlite"))
    rows = db.execute(
        "SELECT d.filename, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.collection = ? ORDER BY d.filename, c.idx", (a.collection,)).fetchall()
    chunk_title = [title_of.get(f) for f, _ in rows]
    chunk_text = [t for _, t in rows]

    def span(title, text):
        start = articles[title].find(text) if title in articles else -1
        return (start, start + len(text)) if start >= 0 else None

    def is_gold(q, title, text):
        if title != q["title"]:
            return False
        s = span(title, text)
        p = paragraphs[q["paragraph_id"]]
        return s is not None and s[0] < p["article_char_end"] and p["article_char_start"] < s[1]

    bm25 = Bm25(chunk_text)
    ranks_docqa, ranks_bm25, latencies = [], [], []
    for q in questions:
        t = time.perf_counter()
        r = c.post_json(f"/v1/collections/{a.collection}/search", {"query": q["question"], "top_k": 10})
        latencies.append((time.perf_counter() - t) * 1000)
        hits = r.json()["results"]
        ranks_docqa.append(next((i for i, h in enumerate(hits) if is_gold(q, title_of.get(h["filename"]), h["text"])), None))
        top = bm25.top(q["question"], 10)
        ranks_bm25.append(next((i for i, j in enumerate(top) if is_gold(q, chunk_title[j], chunk_text[j])), None))
    latencies.sort()
    print(json.dumps({
        "split": "dev", "articles": len(split), "questions": len(questions), "chunks": len(chunk_text),
        "upload_s": round(upload_s, 1),
        "docqa_hybrid": summarise(ranks_docqa, len(questions)),
        "bm25_same_chunks": summarise(ranks_bm25, len(questions)),
        "search_ms_p50": round(latencies[len(latencies) // 2], 1),
        "search_ms_p99": round(latencies[int(len(latencies) * 0.99)], 1),
    }, indent=1))


if __name__ == "__main__":
    main()
