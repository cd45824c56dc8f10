#!/usr/bin/env python3
"""P10's measurements, against a running docqa whose LLM is bench/scripted_llm.py:

1. Follow-up rewriting. tests/fixtures/conversations.json holds 20 conversations
   of 3 turns over ../shared/corpus, each turn with the page its answer stands on.
   Each turn's question is searched (top 5) three ways: as asked; as docqa's rule
   rewrites it (a conversation in `extractive` mode, whose answers say their
   `retrieval_query`); as docqa's LLM rewrite gives it (mode `auto`: the scripted
   LLM answers the rewrite with the fixture's hand-written standalone question, so
   this is the ceiling of a perfect rewriter, through docqa's real rewrite path).
   A turn counts when a top-5 chunk of its file spans its page.
2. Streaming overhead: time to the first answer text, native SSE (`/query`, first
   `delta` event) against the OpenAI shape (`/chat/completions`, first chunk with
   content), same questions, alternating, 3 rounds.

  python3 bench/followups.py BASE      # prints a JSON report
Stdlib only; loopback only.
"""
import http.client
import json
import os
import statistics
import sys
import time
import uuid
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared"))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "conversations.json")
COLLECTION = "followups"


def connect(base):
    u = urlsplit(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def call(conn, method, path, body=None, headers=None):
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, (json.loads(data) if data else None)


def upload(conn, name):
    with open(os.path.join(SHARED, "corpus", name), "rb") as f:
        pdf = f.read()
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/pdf\r\n\r\n").encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
    status, data = call(conn, "POST", f"/v1/collections/{COLLECTION}/documents?wait=true", body,
                        {"content-type": f"multipart/form-data; boundary={boundary}"})
    if status != 200:
        sys.exit(f"upload {name}: {status} {data}")
    return data["documents"][0]


def hit(conn, query, expect):
    status, data = call(conn, "POST", f"/v1/collections/{COLLECTION}/search", {"query": query, "top_k": 5})
    if status != 200:
        sys.exit(f"search: {status} {data}")
    return any(r["filename"] == expect["filename"] and r["page_start"] <= expect["page"] <= r["page_end"]
               for r in data["results"])


def rewritten(conn, conversations, mode):
    """The retrieval query of every turn, as docqa rewrites it in `mode`."""
    queries = []
    for conversation in conversations:
        status, created = call(conn, "POST", f"/v1/collections/{COLLECTION}/conversations")
        if status != 201:
            sys.exit(f"conversation: {status} {created}")
        for turn in conversation["turns"]:
            status, answer = call(conn, "POST", f"/v1/conversations/{created['id']}/messages",
                                  {"content": turn["question"], "mode": mode, "top_k": 5})
            if status != 200:
                sys.exit(f"message: {status} {answer}")
            if answer.get("warnings"):
                print(f"warning: {answer['warnings']}", file=sys.stderr)
            queries.append(answer["retrieval_query"])
    return queries


def first_text_ms(base, path, body, marker):
    """Milliseconds from sending to the first bytes holding `marker`."""
    conn = connect(base)
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    conn.request("POST", path, body=payload, headers={"content-type": "application/json"})
    response = conn.getresponse()
    seen = b""
    while True:
        piece = response.read1(65536)
        if not piece:
            sys.exit(f"{path}: the stream ended before {marker!r}: {seen[-300:]!r}")
        seen += piece
        if marker in seen:
            took = (time.perf_counter() - started) * 1000
            response.read()
            conn.close()
            return took


def percentile(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))], 1)


def main(base):
    fixture = json.load(open(FIXTURE, encoding="utf-8"))
    conversations = fixture["conversations"]
    conn = connect(base)
    status, _ = call(conn, "POST", "/v1/collections", {"name": COLLECTION})
    if status not in (201, 409):
        sys.exit(f"collection: {status}")
    files = sorted({t["expect"]["filename"] for c in conversations for t in c["turns"]})
    started = time.time()
    pages = sum(upload(conn, name).get("pages") or 0 for name in files)
    ingest_s = round(time.time() - started, 1)

    turns = [(i, t) for c in conversations for i, t in enumerate(c["turns"])]
    asked = [t["question"] for _, t in turns]
    by_rule = rewritten(conn, conversations, "extractive")
    by_llm = rewritten(conn, conversations, "auto")
    report = {"files": len(files), "pages": pages, "ingest_s": ingest_s, "turns": len(turns), "top_5": {}}
    for method, queries in [("as asked", asked), ("rule", by_rule), ("LLM (scripted: hand-written standalone)", by_llm)]:
        hits = [hit(conn, q, t["expect"]) for q, (_, t) in zip(queries, turns)]
        first = [h for h, (i, _) in zip(hits, turns) if i == 0]
        follow = [h for h, (i, _) in zip(hits, turns) if i > 0]
        report["top_5"][method] = {
            "first turns": f"{sum(first)}/{len(first)}",
            "follow-ups": f"{sum(follow)}/{len(follow)}",
            "all": round(sum(hits) / len(hits), 3),
        }
    report["rule_examples"] = [{"asked": a, "rule": r} for a, r, (i, _) in zip(asked, by_rule, turns) if i > 0][:4]

    questions = [c["turns"][0]["question"] for c in conversations]
    native, openai = [], []
    for _ in range(3):
        for question in questions:
            native.append(first_text_ms(base, f"/v1/collections/{COLLECTION}/query",
                                        {"question": question, "mode": "generative", "stream": True},
                                        b"event: delta"))
            openai.append(first_text_ms(base, "/v1/chat/completions",
                                        {"model": COLLECTION, "stream": True, "mode": "generative",
                                         "messages": [{"role": "user", "content": question}]},
                                        b'"content":"T'))  # the first text ("The documents say…")
    report["time_to_first_text_ms"] = {
        "native SSE": {"p50": percentile(native, 50), "p90": percentile(native, 90), "n": len(native)},
        "OpenAI chunks": {"p50": percentile(openai, 50), "p90": percentile(openai, 90), "n": len(openai)},
        "p50 difference": round(statistics.median(openai) - statistics.median(native), 1),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
