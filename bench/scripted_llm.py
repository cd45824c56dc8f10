#!/usr/bin/env python3
"""A scripted OpenAI-compatible LLM for the bench scripts (stdlib only), so that
docqa's real LLM client code runs without a provider:

- an answer request (`cited_answer`) gets an answer citing the first source with
  its first eight words, streamed in 7-character pieces when asked to stream;
- a rewrite request (`standalone_question`) gets the standalone question the
  rewrites file names for (first question of the conversation, last question),
  else the last question as it is.

  python3 bench/scripted_llm.py PORT [REWRITES.json]

REWRITES.json: tests/fixtures/conversations.json (its hand-written `standalone`
questions are what this "LLM" answers).
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REWRITES = {}


def load_rewrites(path):
    for conversation in json.load(open(path, encoding="utf-8"))["conversations"]:
        first = conversation["turns"][0]["question"]
        for turn in conversation["turns"][1:]:
            REWRITES[(first, turn["question"])] = turn["standalone"]


def first_source(prompt):
    """(chunk id, its first eight words verbatim) of the first source."""
    match = re.search(r'<source chunk_id="([^"]+)"[^>]*>\n(.*?)\n</source>', prompt, re.S)
    if not match:
        return "", ""
    text = match.group(2).lstrip()
    words = list(re.finditer(r"\S+", text))
    return match.group(1), text[: words[min(7, len(words) - 1)].end()] if words else ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        prompt = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("name")
        if schema == "standalone_question":
            last = prompt.rsplit("Last question: ", 1)[-1].strip()
            asked = re.findall(r"^Question: (.*)$", prompt, re.M)
            standalone = REWRITES.get((asked[0] if asked else last, last), last)
            content = json.dumps({"question": standalone})
        else:
            chunk_id, quote = first_source(prompt)
            content = json.dumps({"answer": f"The documents say: {quote} [1].",
                                  "citations": [{"chunk_id": chunk_id, "quote": quote}] if chunk_id else []})
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(0, len(content), 7):
                chunk = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                         "model": "scripted", "choices": [{"index": 0, "delta": {"content": content[i:i + 7]},
                                                           "finish_reason": None}]}
                self.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self.write_chunk(b"data: [DONE]\n\n")
            self.write_chunk(b"")
            return
        reply = json.dumps({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def write_chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        load_rewrites(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
