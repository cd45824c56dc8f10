#!/usr/bin/env python3
"""Summary of bench/compare.sh's output folder: each server's figures and docqa/peer ratios
(for latency and memory, peer/docqa: above 1 means docqa is better), as JSON.

  python3 bench/compare_summary.py OUT_DIR"""
import json, os, sys

out = sys.argv[1]


def last_json(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return None


def whole_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def number(path):
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None


def server(name):
    d = os.path.join(out, name)
    if not os.path.isdir(d):
        return None
    return {
        "ingest_corpus": last_json(os.path.join(d, "ingest_corpus.txt")),
        "ingest_uda": last_json(os.path.join(d, "ingest_uda.txt")),
        "ingest_squad": last_json(os.path.join(d, "ingest_squad.txt")),
        "ingest_scifact": last_json(os.path.join(d, "ingest_scifact.txt")),
        "search_1_client_small": last_json(os.path.join(d, "load1_small.json")),
        "search_1_client_during_ingest": last_json(os.path.join(d, "load1_during_ingest.json")),
        "search_1_client": last_json(os.path.join(d, "load1.json")),
        "search_8_clients": last_json(os.path.join(d, "load8.json")),
        "squad_dev_recall": whole_json(os.path.join(d, "squad.json")),
        "rss_mib": {"idle": number(os.path.join(d, "rss_idle")), "peak": number(os.path.join(d, "rss_peak")),
                    "after_load": number(os.path.join(d, "rss_after"))},
    }


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def get(s, *path):
    for p in path:
        s = s.get(p) if isinstance(s, dict) else None
    return s


docqa, peer = server("docqa"), server("peer")
embed = whole_json(os.path.join(out, "embed.json"))
summary = {"machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg()}, "embedding": embed, "docqa": docqa, "peer": peer}
if docqa and peer:
    summary["ratios"] = {
        "embedding_tokens_per_s (docqa/torch)": get(embed, "ratio"),
        "ingest_corpus_pages_per_s (docqa/peer)": ratio(get(docqa, "ingest_corpus", "pages_per_s"), get(peer, "ingest_corpus", "pages_per_s")),
        "ingest_uda_pages_per_s (docqa/peer)": ratio(get(docqa, "ingest_uda", "pages_per_s"), get(peer, "ingest_uda", "pages_per_s")),
        "ingest_scifact_chunks_per_s (docqa/peer)": ratio(get(docqa, "ingest_scifact", "chunks_per_s"), get(peer, "ingest_scifact", "chunks_per_s")),
        "search_1_client_p50 (peer/docqa)": ratio(get(peer, "search_1_client", "p50_ms"), get(docqa, "search_1_client", "p50_ms")),
        "search_1_client_p99 (peer/docqa)": ratio(get(peer, "search_1_client", "p99_ms"), get(docqa, "search_1_client", "p99_ms")),
        "search_during_ingest_p99 (peer/docqa)": ratio(get(peer, "search_1_client_during_ingest", "p99_ms"), get(docqa, "search_1_client_during_ingest", "p99_ms")),
        "search_8_clients_qps (docqa/peer)": ratio(get(docqa, "search_8_clients", "qps"), get(peer, "search_8_clients", "qps")),
        "rss_idle (peer/docqa)": ratio(get(peer, "rss_mib", "idle"), get(docqa, "rss_mib", "idle")),
        "rss_peak (peer/docqa)": ratio(get(peer, "rss_mib", "peak"), get(docqa, "rss_mib", "peak")),
    }
print(json.dumps(summary, indent=1))
