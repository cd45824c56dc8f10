#!/usr/bin/env python3
"""Search latency with document permissions against none (P7's measurement).

  python3 bench/permissions.py load BASE OPERATOR_KEY       # collection `perm`, keys; prints keys as JSON
  python3 bench/permissions.py measure BASE KEY [PRINCIPALS] # 300 searches; prints p50/p99 as JSON

`load` writes the SciFact abstracts as 500 documents of ~10 abstracts (about 10k
chunks), each readable by 1 to 3 of 50 groups (`group:g0`…`group:g49`, seeded), then
makes a reader key in `group:g7` and an admin key. `measure` POSTs SciFact claims to
/v1/collections/perm/search (top_k 5), one client, after 20 warm-up requests.
Stdlib only; loopback only."""
import http.client, json, os, random, sys, time, uuid
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared"))
SCIFACT = os.path.join(SHARED, "eval", "scifact")
DOCUMENTS, GROUPS, REQUESTS, WARMUP = 500, 50, 300, 20


def connect(base):
    u = urlsplit(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def call(conn, method, path, key=None, body=None, headers=None):
    headers = dict(headers or {})
    if key:
        headers["authorization"] = f"Bearer {key}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def upload(conn, key, name, text, access):
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: text/plain\r\n\r\n{text}\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="access"\r\n\r\n{json.dumps(access)}\r\n',
        f"--{boundary}--\r\n",
    ]
    body = "".join(parts).encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    status, data = call(conn, "POST", "/v1/collections/perm/documents?wait=true", key, body, headers)
    if status != 200:
        sys.exit(f"upload {name}: {status} {data[:300]!r}")
    return json.loads(data)["documents"][0]


def load(base, operator):
    conn = connect(base)
    status, data = call(conn, "POST", "/v1/collections", operator, {"name": "perm"})
    if status not in (201, 409):
        sys.exit(f"create collection: {status} {data!r}")
    docs = [json.loads(line) for line in open(os.path.join(SCIFACT, "corpus.jsonl"), encoding="utf-8")]
    rng = random.Random(7)
    per = max(1, len(docs) // DOCUMENTS)
    chunks = 0
    started = time.time()
    for n in range(DOCUMENTS):
        batch = docs[n * per:(n + 1) * per]
        if not batch:
            break
        text = "".join(f"{d['title']}\n\n{d['text']}\n\n" for d in batch)
        groups = [f"group:g{g}" for g in rng.sample(range(GROUPS), rng.randint(1, 3))]
        chunks += upload(conn, operator, f"scifact-{n:03d}.txt", text, groups).get("chunks") or 0
    keys = {}
    for name, spec in [("reader", {"role": "reader", "principals": ["group:g7"]}), ("admin", {"role": "admin"})]:
        status, data = call(conn, "POST", "/v1/keys", operator, spec)
        if status != 201:
            sys.exit(f"key {name}: {status} {data!r}")
        keys[name] = json.loads(data)["key"]
    print(json.dumps({"documents": DOCUMENTS, "chunks": chunks, "load_s": round(time.time() - started, 1), **keys}))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def measure(base, key):
    conn = connect(base)
    claims = [json.loads(line)["text"] for line in open(os.path.join(SCIFACT, "queries.jsonl"), encoding="utf-8")]
    rng = random.Random(11)
    times, results = [], []
    for i in range(WARMUP + REQUESTS):
        body = {"query": rng.choice(claims), "top_k": 5}
        t = time.perf_counter()
        status, data = call(conn, "POST", "/v1/collections/perm/search", key or None, body)
        elapsed = (time.perf_counter() - t) * 1000
        if status != 200:
            sys.exit(f"search: {status} {data[:300]!r}")
        if i >= WARMUP:
            times.append(elapsed)
            results.append(len(json.loads(data)["results"]))
    print(json.dumps({
        "requests": REQUESTS,
        "p50_ms": round(pct(times, 50), 2),
        "p99_ms": round(pct(times, 99), 2),
        "mean_results": round(sum(results) / len(results), 2),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        sys.exit(__doc__)
