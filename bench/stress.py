#!/usr/bin/env python3
"""Hostile clients and a heavy day against one docqa server, on loopback only,
bounded in time and count (issue P8). Standard library only.

Starts a scripted slow LLM (an OpenAI-compatible /chat/completions that answers
after --llm-secs, counting the calls in flight and those whose caller left) and
the given docqa binary over a fresh data dir, then runs, one after another:

  slow      300 uploads that declare 10 MiB and trickle 1 byte every 5 s, for 30 s
  queries   150 concurrent non-streaming /v1/query calls
  big       one 100 MiB text upload (generated on the fly), ?wait=true, 180 s at most
  text      one 10 MiB text upload that is within the limits and ingests, 900 s at most
  pages     one 2,000-page PDF (a line of text a page), ?wait=true, 600 s at most
  hangups   50 /v1/query calls whose clients close the connection after 0.5 s

and prints, per phase and overall: the server's resident memory peak (VmHWM and
the sampled maximum), the most open file descriptors seen, the most LLM calls in
flight at once, LLM calls that went on after their client left, and answers by
HTTP status (or by the client-side error).

Usage: bench/stress.py BINARY [--llm-secs 5] [--big-mib 100] [--text-mib 10] [--pdf-pages 2000] [--keep]
"""

import argparse
import asyncio
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BOUNDARY = "stressboundary"


class SlowLlm:
    """An OpenAI-compatible chat endpoint that answers after a pause."""

    def __init__(self, pause):
        self.pause = pause
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0
        self.ran_on_after_caller_left = 0
        self.cancelled = 0

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            path = head.split(b" ", 2)[1]
            if b"embeddings" in path:
                raise RuntimeError("no embeddings here")
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                request = json.loads(body)
                prompt = next((m["content"] for m in request["messages"] if m["role"] == "user"), "")
                chunk_id = prompt.split('chunk_id="', 1)[1].split('"', 1)[0] if 'chunk_id="' in prompt else ""
                # The caller hanging up shows as the end of our reading side.
                gone = asyncio.ensure_future(reader.read(1))
                done, _ = await asyncio.wait({gone}, timeout=self.pause)
                if done:
                    self.cancelled += 1
                    return
                gone.cancel()
                answer = {"answer": "Stress answer [1].", "citations": [{"chunk_id": chunk_id, "quote": "warranty"}]}
                payload = json.dumps({
                    "id": "x", "object": "chat.completion", "created": 0, "model": "slow",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(answer)},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(payload)).encode() + b"\r\nconnection: close\r\n\r\n" + payload)
                await writer.drain()
            finally:
                self.in_flight -= 1
        except Exception:
            pass
        finally:
            writer.close()


class Watch:
    """Samples the server's resident memory and open descriptors."""

    def __init__(self, pid):
        self.pid = pid
        self.rss_mib = 0.0
        self.fds = 0
        self.running = True

    def sample(self):
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        self.rss_mib = max(self.rss_mib, int(line.split()[1]) / 1024)
            self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
        except (FileNotFoundError, ProcessLookupError):
            pass

    def hwm_mib(self):
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except FileNotFoundError:
            return None

    async def run(self):
        while self.running:
            self.sample()
            await asyncio.sleep(0.2)


async def request(port, method, path, headers=None, body=b"", read_timeout=120):
    """One HTTP/1.1 request on its own connection: (status or error name, body)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return f"connect: {e.__class__.__name__}", b""
    try:
        lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "connection: close",
                 f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), read_timeout)
        status = raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/") else "no answer"
        return status, raw.split(b"\r\n\r\n", 1)[-1]
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        return e.__class__.__name__, b""
    finally:
        writer.close()


def multipart_head(filename):
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()


async def slow_upload(port, seconds):
    """Declares 10 MiB, then sends a byte every 5 s; what the server answered."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return f"connect: {e.__class__.__name__}"
    head = multipart_head("slow.txt")
    try:
        writer.write((f"POST /v1/documents HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                      f"content-type: multipart/form-data; boundary={BOUNDARY}\r\n"
                      f"content-length: {10 * 1024 * 1024}\r\n\r\n").encode() + head)
        await writer.drain()
        deadline = time.monotonic() + seconds
        answer = asyncio.ensure_future(reader.read(200))
        while time.monotonic() < deadline:
            done, _ = await asyncio.wait({answer}, timeout=5)
            if done:
                raw = answer.result()
                return raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/") else "closed"
            writer.write(b"a")
            await writer.drain()
        answer.cancel()
        return "still held"
    except (OSError, asyncio.IncompleteReadError) as e:
        return e.__class__.__name__
    finally:
        writer.close()


def text_blocks(mib):
    """`mib` MiB of text, one MiB at a time."""
    line = b"Ledger line about shipments, warranties and invoices of the quarter.\n"
    block = (line * (1024 * 1024 // len(line) + 1))[: 1024 * 1024]
    return [block] * mib


def pdf_of_pages(pages):
    """A PDF of `pages` pages, each with one line of its own text (Helvetica)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", None,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for n in range(pages):
        text = f"Page {n + 1} of the ledger records shipment {n * 7919 % 100003} to depot {n % 97}.".encode()
        stream = b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [" % pages + b" ".join(b"%d 0 R" % k for k in kids) + b"] >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def upload_and_wait(port, filename, blocks, seconds):
    """One upload of `blocks` (sent as they come), ?wait=true: (status, document status: error)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return f"connect: {e.__class__.__name__}", ""
    head = multipart_head(filename)
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    try:
        writer.write((f"POST /v1/documents?wait=true HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                      f"content-type: multipart/form-data; boundary={BOUNDARY}\r\nconnection: close\r\n"
                      f"content-length: {len(head) + sum(map(len, blocks)) + len(tail)}\r\n\r\n").encode() + head)
        for block in blocks:
            writer.write(block)
            await writer.drain()
        writer.write(tail)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), seconds)
        status = raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/") else "no answer"
        body = raw.split(b"\r\n\r\n", 1)[-1]
        try:
            document = json.loads(body)["documents"][0]
            detail = f'{document.get("status")}: {document.get("error") or ""}'
        except Exception:
            detail = body[:200].decode(errors="replace")
        return status, detail
    except (OSError, asyncio.TimeoutError) as e:
        return e.__class__.__name__, ""
    finally:
        writer.close()


async def hangup_query(port):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return f"connect: {e.__class__.__name__}"
    body = json.dumps({"question": "How long is the warranty?", "mode": "generative"}).encode()
    writer.write((f"POST /v1/query HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                  f"content-length: {len(body)}\r\n\r\n").encode() + body)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    return "hung up"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--llm-secs", type=float, default=5)
    parser.add_argument("--big-mib", type=int, default=100)
    parser.add_argument("--text-mib", type=int, default=10)
    parser.add_argument("--pdf-pages", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args()

    llm = SlowLlm(args.llm_secs)
    llm_server = await asyncio.start_server(llm.handle, "127.0.0.1", 0)
    llm_port = llm_server.sockets[0].getsockname()[1]
    port = free_port()
    data = tempfile.mkdtemp(prefix="docqa-stress-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCQA_", "LLM_", "OPENAI_", "QDRANT_", "DATABASE_"))}
    env.update({
        "DOCQA_ADDR": f"127.0.0.1:{port}", "DOCQA_DATA_DIR": data, "DOCQA_EXE": args.binary,
        "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1", "LLM_API_KEY": "sk-stress", "LLM_MODEL": "slow",
        "LLM_TIMEOUT_SECS": "120", "RUST_LOG": "warn",
    })
    log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen([args.binary, "serve"], env=env, stdout=log, stderr=log)
    watch = Watch(server.pid)
    watcher = asyncio.ensure_future(watch.run())
    import resource
    report = {"binary": args.binary, "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "phases": {}}
    try:
        for _ in range(600):
            status, _ = await request(port, "GET", "/healthz", read_timeout=2)
            if status == "200":
                break
            await asyncio.sleep(0.2)
        body = multipart_head("terms.txt") + (b"Acme devices carry a warranty of 24 months from the date "
                                               b"of purchase.\n") + f"\r\n--{BOUNDARY}--\r\n".encode()
        await request(port, "POST", "/v1/documents?wait=true",
                      {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}, body)
        watch.sample()
        report["idle_rss_mib"] = round(watch.rss_mib)

        async def phase(name, work, seconds):
            watch.rss_mib, watch.fds = 0.0, 0
            llm.most_in_flight = 0
            started = time.monotonic()
            results = await asyncio.wait_for(work, seconds)
            statuses = collections.Counter(results if isinstance(results, list) else [results])
            report["phases"][name] = {
                "seconds": round(time.monotonic() - started, 1),
                "answers": dict(statuses),
                "rss_peak_mib": round(watch.rss_mib),
                "fds_peak": watch.fds,
                "llm_in_flight_peak": llm.most_in_flight,
            }
            print(name, json.dumps(report["phases"][name]), file=sys.stderr, flush=True)

        await phase("slow", asyncio.gather(*(slow_upload(port, 30) for _ in range(300))), 60)
        async def query_status():
            status, _ = await request(port, "POST", "/v1/query", {"content-type": "application/json"},
                                      json.dumps({"question": "How long is the warranty?",
                                                  "mode": "generative"}).encode())
            return status

        await phase("queries", asyncio.gather(*(query_status() for _ in range(150))), 300)
        async def upload_phase(name, filename, blocks, seconds):
            watch.rss_mib, watch.fds = 0.0, 0
            started = time.monotonic()
            status, detail = await upload_and_wait(port, filename, blocks, seconds)
            report["phases"][name] = {"seconds": round(time.monotonic() - started, 1), "answer": status,
                                      "document": detail[:160], "rss_peak_mib": round(watch.rss_mib),
                                      "fds_peak": watch.fds}
            print(name, json.dumps(report["phases"][name]), file=sys.stderr, flush=True)

        await upload_phase("big", "big.txt", text_blocks(args.big_mib), 180)
        await upload_phase("text", "ledger.txt", text_blocks(args.text_mib), 900)
        await upload_phase("pages", "ledger.pdf", [pdf_of_pages(args.pdf_pages)], 600)
        before = (llm.cancelled, llm.calls)
        await phase("hangups", asyncio.gather(*(hangup_query(port) for _ in range(50))), 30)
        # Calls whose caller left: cancelled by docqa (their connection closed) or ran on.
        await asyncio.sleep(args.llm_secs + 2)
        calls = llm.calls - before[1]
        report["phases"]["hangups"]["llm_calls"] = calls
        report["phases"]["hangups"]["llm_calls_cancelled"] = llm.cancelled - before[0]
        report["phases"]["hangups"]["llm_calls_ran_on"] = calls - (llm.cancelled - before[0])
        report["rss_hwm_mib"] = round(watch.hwm_mib() or 0)
        report["server_alive"] = server.poll() is None
    finally:
        watch.running = False
        watcher.cancel()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        llm_server.close()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
