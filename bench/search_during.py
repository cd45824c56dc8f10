#!/usr/bin/env python3
"""Search latency while something else runs: one client POSTs SQuAD `dev` questions to
/v1/search back to back for as long as process PID lives, then prints the peer's load.py JSON
fields (requests, errors, qps, p50/p90/p99/max ms). Stdlib only; loopback only.

  python3 bench/search_during.py http://127.0.0.1:8080 PID"""
import http.client, json, os, random, sys, time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("DOCQA_SHARED_DIR", os.path.join(HERE, "..", "..", "shared"))


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main():
    base, pid = sys.argv[1], int(sys.argv[2])
    u = urlsplit(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing: loopback targets only")
    rows = [json.loads(l) for l in open(os.path.join(SHARED, "eval", "squad", "questions.jsonl"))]
    qs = [r["question"] for r in rows if r.get("split", "dev") == "dev"]
    random.Random(7).shuffle(qs)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    lat, errors, i = [], 0, 0
    t0 = time.perf_counter()
    while alive(pid):
        body = json.dumps({"query": qs[i % len(qs)], "top_k": 5}).encode()
        i += 1
        t = time.perf_counter()
        try:
            conn.request("POST", "/v1/search", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                lat.append((time.perf_counter() - t) * 1000)
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
            errors += 1
    wall = time.perf_counter() - t0
    print(json.dumps({"clients": 1, "wall_s": round(wall, 2), "requests": len(lat) + errors, "errors": errors,
                      "qps": round(len(lat) / wall, 1) if wall else None, "p50_ms": round(pct(lat, 50), 1),
                      "p90_ms": round(pct(lat, 90), 1), "p99_ms": round(pct(lat, 99), 1),
                      "max_ms": round(max(lat), 1) if lat else None}))


if __name__ == "__main__":
    main()
