// What the browser tests share: a docqa server of their own on a free port
// (the binary scripts/browser_tests.sh names), Debian's chromium through
// playwright-core, screenshots into the artifacts folder, and the API as a
// plain client (for what the test must know independently of the page).

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { after, before } from "node:test";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");
export const CORPUS = join(sharedDir(), "corpus");
export const ARTIFACTS = process.env.BROWSER_TEST_ARTIFACTS || join(tmpdir(), "docqa-browser-artifacts");
const BIN = process.env.BROWSER_TEST_DOCQA_BIN;

/** ../shared as the Rust tests find it: DOCQA_SHARED_DIR, a `shared` beside an ancestor, or /work/shared. */
function sharedDir() {
  if (process.env.DOCQA_SHARED_DIR) return process.env.DOCQA_SHARED_DIR;
  const candidates = [];
  for (let dir = ROOT; ; dir = dirname(dir)) {
    candidates.push(join(dir, "shared"));
    if (dirname(dir) === dir) break;
  }
  candidates.push("/work/shared");
  const found = candidates.find((candidate) => existsSync(join(candidate, "corpus")));
  if (!found) throw new Error("the shared corpus was not found: set DOCQA_SHARED_DIR to the folder holding corpus/");
  return found;
}
const CHROMIUM = process.env.BROWSER_TEST_CHROMIUM || "/usr/bin/chromium";

async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** Starts docqa on a free port with an empty data dir; `stop()` ends it. */
export async function startDocqa(name, vars = {}) {
  if (!BIN) throw new Error("BROWSER_TEST_DOCQA_BIN is not set (run scripts/browser_tests.sh)");
  await mkdir(ARTIFACTS, { recursive: true });
  const port = await freePort();
  const data = await mkdtemp(join(tmpdir(), "docqa-browser-"));
  const env = { ...process.env, DOCQA_ADDR: `127.0.0.1:${port}`, DOCQA_DATA_DIR: join(data, "data"), DOCQA_EXE: BIN, RUST_LOG: "warn", ...vars };
  // The server refuses settings it does not know; these are the tests' own.
  for (const key of Object.keys(env)) if (key.startsWith("BROWSER_TEST_")) delete env[key];
  const child = spawn(BIN, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(join(ARTIFACTS, `${name}-server.log`));
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docqa exited (${child.exitCode}); see ${name}-server.log`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("docqa did not become ready in 120 s");
    await new Promise((wake) => setTimeout(wake, 200));
  }
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
      await rm(data, { recursive: true, force: true });
    },
  };
}

/**
 * A docqa server for the tests of the enclosing `describe`: started before
 * them, stopped after. `vars` may be a function, called at start (for values
 * known only then, such as a stand-in LLM's address).
 */
export function useDocqa(name, vars = {}) {
  const server = {};
  before(async () => {
    Object.assign(server, await startDocqa(name, typeof vars === "function" ? vars() : vars));
  });
  after(async () => {
    await server.stop?.();
  });
  return server;
}

export async function launchBrowser() {
  // --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** A page that records every request it makes and every script error. */
export async function openPage(browser, url, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const seen = { requests: [], errors: [] };
  page.on("request", (request) => seen.requests.push(request));
  page.on("pageerror", (error) => seen.errors.push(String(error)));
  // A refused request (the 401 or 415 a test provokes) is the browser's own
  // console line, not the page's error: the page shows it (checked apart).
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) seen.errors.push(message.text());
  });
  const response = await page.goto(`${url}/`);
  return { context, page, seen, response };
}

export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The API as a plain client. */
export async function callApi(server, path, { method = "GET", body, key } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The share of `a` that `b` covers. */
export function overlap(a, b) {
  const width = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const height = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (width <= 0 || height <= 0) return 0;
  return (width * height) / (a.width * a.height);
}

/**
 * A stand-in for an OpenAI-compatible LLM (the only part the tests may fake),
 * so docqa's real client runs: it answers citing the first source with its
 * first eight words, streamed in 7-character pieces, each `delayMs` apart
 * (the page must show the answer as it comes). `stop()` ends it.
 */
export async function startScriptedLlm({ delayMs = 30 } = {}) {
  const { createServer: createHttpServer } = await import("node:http");
  const server = createHttpServer(async (request, response) => {
    let raw = "";
    for await (const part of request) raw += part;
    const body = JSON.parse(raw);
    const prompt = body.messages.find((m) => m.role === "user")?.content || "";
    const source = /<source chunk_id="([^"]+)"[^>]*>\n([\s\S]*?)\n<\/source>/.exec(prompt);
    const words = source ? source[2].trimStart().match(/\S+/g) || [] : [];
    const quote = words.slice(0, 8).join(" ");
    const content = JSON.stringify({
      answer: `The documents say: ${quote} [1].`,
      citations: source ? [{ chunk_id: source[1], quote }] : [],
    });
    if (!body.stream) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({
        id: "chatcmpl-scripted", object: "chat.completion", created: 0, model: "scripted",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }));
      return;
    }
    response.writeHead(200, { "content-type": "text/event-stream" });
    for (let i = 0; i < content.length; i += 7) {
      const chunk = {
        id: "chatcmpl-scripted", object: "chat.completion.chunk", created: 0, model: "scripted",
        choices: [{ index: 0, delta: { content: content.slice(i, i + 7) }, finish_reason: null }],
      };
      response.write(`data: ${JSON.stringify(chunk)}\n\n`);
      await new Promise((wake) => setTimeout(wake, delayMs));
    }
    response.end("data: [DONE]\n\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}/v1`,
    async stop() {
      server.closeAllConnections();
      server.close();
    },
  };
}
