// docqa's web page in a real browser (Debian's chromium), black-box: a server
// of its own, a PDF of ../shared/corpus uploaded through the page, a question
// whose answer stands on a known page, citation [1] clicked, and the viewer
// checked for that page with a highlight over the quote's box and over ink.
// Screenshots of each step go to the artifacts folder. Run by
// scripts/browser_tests.sh (which installs chromium and these packages).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  CORPUS,
  ROOT,
  callApi,
  launchBrowser,
  openPage,
  overlap,
  screenshot,
  startScriptedLlm,
  useDocqa,
} from "./harness.mjs";

const require = createRequire(import.meta.url);

// multicolumn.pdf: three pages; the EU countries table, with Copenhagen, is on page 3.
const PDF = join(CORPUS, "multicolumn.pdf");
const QUESTION = "What is the capital of Denmark according to the EU countries table?";
const ANSWER_PAGE = 3;
const OPERATOR_KEY = "operator-key-for-the-browser-tests-0123456789";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Uploads through the page's file input and waits for the file's final state. */
async function uploadThroughPage(page, path) {
  const before_ = await page.locator("#uploads li").count();
  await page.getByLabel("Upload").setInputFiles(path);
  await page.waitForFunction((count) => document.querySelectorAll("#uploads li").length > count, before_);
  // The newest item is first; it has a state once ready, duplicate or failed.
  await page.waitForFunction(() => document.querySelector("#uploads li")?.dataset.state, null, { timeout: 180_000 });
  return page.locator("#uploads li").first();
}

/** Asks through the page (button "Ask") and waits for citation [1]. */
async function askThroughPage(page, question) {
  await page.getByRole("textbox", { name: "Question" }).fill(question);
  await page.getByRole("button", { name: "Ask" }).click();
  const first = page.getByRole("link", { name: /^\[1\]/ });
  await first.waitFor({ timeout: 60_000 });
  return first;
}

/**
 * Clicks citation [1] and checks the viewer: the cited page, painted, with a
 * highlight over the citation's first box (as the API gives it) and over ink.
 */
async function checkEvidence(page, link, citation) {
  await link.click();
  const evidence = page.getByRole("region", { name: "Evidence" });
  await page.waitForFunction(
    () => document.getElementById("evidence-view").dataset.paintMs !== undefined,
    null,
    { timeout: 60_000 },
  );
  const view = page.locator("#evidence-view");
  assert.equal(await view.getAttribute("data-page"), String(citation.page));
  assert.match(await evidence.innerText(), new RegExp(`page ${citation.page} of \\d+`));
  // A PDF page is drawn into a canvas, an image shown as it is.
  const canvas = evidence.locator("canvas, .page img");
  assert.equal(await canvas.count(), 1, "one page shown");
  const marks = evidence.locator("mark.highlight");
  const onPage = citation.boxes.filter((box) => box.page === citation.page);
  assert.equal(await marks.count(), onPage.length, "one highlight per box of the quote on the page");

  const shown = await canvas.boundingBox();
  const size = citation.page_sizes.find((s) => s.page === citation.page);
  const box = onPage[0];
  const expected = {
    x: shown.x + (box.x / size.width) * shown.width,
    y: shown.y + (box.y / size.height) * shown.height,
    width: (box.width / size.width) * shown.width,
    height: (box.height / size.height) * shown.height,
  };
  const mark = await marks.first().boundingBox();
  assert.ok(overlap(expected, mark) > 0.8, `the highlight ${JSON.stringify(mark)} covers the quote's box ${JSON.stringify(expected)}`);

  // The highlight lies on printed text: dark pixels of the rendered page under it.
  const ink = await canvas.evaluate((element, rect) => {
    let pixelsOf = element;
    if (element instanceof HTMLImageElement) {
      pixelsOf = document.createElement("canvas");
      pixelsOf.width = element.naturalWidth;
      pixelsOf.height = element.naturalHeight;
      pixelsOf.getContext("2d").drawImage(element, 0, 0);
    }
    const scale = pixelsOf.width / rect.canvas.width;
    const x = Math.max(0, Math.floor((rect.mark.x - rect.canvas.x) * scale));
    const y = Math.max(0, Math.floor((rect.mark.y - rect.canvas.y) * scale));
    const width = Math.max(1, Math.floor(rect.mark.width * scale));
    const height = Math.max(1, Math.floor(rect.mark.height * scale));
    const pixels = pixelsOf.getContext("2d").getImageData(x, y, width, height).data;
    let dark = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 300) dark += 1;
    return dark / (pixels.length / 4);
  }, { canvas: shown, mark });
  assert.ok(ink > 0.03, `text under the highlight (${(ink * 100).toFixed(1)} % dark pixels)`);
  return { paintMs: Number(await view.getAttribute("data-paint-ms")) };
}

function onlyThisServer(seen, server) {
  const elsewhere = seen.requests.map((r) => r.url()).filter((url) => !url.startsWith(`${server.url}/`) && !/^(blob|data):/.test(url));
  assert.deepEqual(elsewhere, [], "no request leaves the server");
}

describe("the web page, authentication off", () => {
  const server = useDocqa("open");

  test("upload a PDF, ask, and see the quote highlighted on its page", async () => {
    const started = performance.now();
    const { page, seen, response, context } = await openPage(browser, server.url);
    const policy = response.headers()["content-security-policy"];
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'self'/);
    assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    const interactiveMs = performance.now() - started;
    let firstLoadBytes = 0;
    const firstLoadRequests = seen.requests.length;
    for (const request of seen.requests) {
      const sizes = await request.sizes();
      firstLoadBytes += sizes.responseBodySize + sizes.responseHeadersSize;
    }
    await screenshot(page, "open-1-loaded");

    // A new collection, made and chosen through the page.
    await page.getByLabel("New collection name").fill("browser");
    await page.getByRole("button", { name: "Create collection" }).click();
    await page.waitForFunction(() => document.getElementById("collection").value === "browser");

    const item = await uploadThroughPage(page, PDF);
    assert.equal(await item.getAttribute("data-state"), "ready", await item.innerText());
    const row = page.locator("#documents tr", { hasText: "multicolumn.pdf" });
    await row.waitFor();
    assert.match(await row.innerText(), /ready\s+3\s+\d+/);
    await screenshot(page, "open-2-uploaded");

    // The same bytes again: the page says so.
    const again = await uploadThroughPage(page, PDF);
    assert.equal(await again.getAttribute("data-state"), "duplicate", await again.innerText());

    // A type docqa does not read: the API's problem, title and detail, on the page.
    const refused = await uploadThroughPage(page, {
      name: "noise.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)),
    });
    assert.equal(await refused.getAttribute("data-state"), "failed");
    assert.match(await refused.innerText(), /Unsupported media type: .+/i);

    const first = await askThroughPage(page, QUESTION);
    const answer = await callApi(server, "/v1/collections/browser/query", { method: "POST", body: { question: QUESTION } });
    const citation = answer.citations[0];
    assert.equal(citation.page, ANSWER_PAGE, JSON.stringify(answer));
    assert.ok(citation.boxes.length > 0, "the citation has boxes");
    assert.equal(await first.innerText(), `[1] multicolumn.pdf, page ${ANSWER_PAGE}`);
    // The streamed answer's text, its markers links to the sources.
    const shownAnswer = await page.locator("#answer").innerText();
    assert.equal(shownAnswer.trim(), answer.answer.trim());
    await screenshot(page, "open-3-answer");

    const { paintMs } = await checkEvidence(page, first, citation);
    await screenshot(page, "open-4-evidence");

    // Search only: passages, no answer.
    await page.getByLabel("Search only (no answer)").check();
    await page.getByRole("button", { name: "Ask" }).click();
    await page.locator("#results li").first().waitFor();
    assert.match(await page.locator("#results").innerText(), /multicolumn\.pdf, page \d/);
    await page.getByLabel("Search only (no answer)").uncheck();

    // Delete, after saying yes.
    page.once("dialog", (dialog) => dialog.accept());
    await row.getByRole("button", { name: "Delete" }).click();
    await row.waitFor({ state: "detached" });
    await screenshot(page, "open-5-deleted");

    onlyThisServer(seen, server);
    assert.deepEqual(seen.errors, [], "no script error");
    console.log(
      `figures: first load ${(firstLoadBytes / 1024).toFixed(1)} KB in ${firstLoadRequests} requests; ` +
        `interactive after ${interactiveMs.toFixed(0)} ms; citation click to highlighted page ${paintMs} ms (3-page PDF, first PDF shown)`,
    );
    await context.close();
  });

  test("at 375 px, by keyboard alone, with no serious accessibility violation", async () => {
    const form = new FormData();
    form.append("file", new Blob([await readFile(PDF)]), "multicolumn.pdf");
    const uploaded = await fetch(`${server.url}/v1/documents?wait=true`, { method: "POST", body: form });
    assert.equal(uploaded.status, 200, await uploaded.text());

    const { page, seen, context } = await openPage(browser, server.url, { width: 375, height: 812 });
    await page.locator("#documents tr", { hasText: "multicolumn.pdf" }).waitFor();

    // Keyboard only: the skip link, the question, Tab to Ask, Enter.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to the question");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "question");
    await page.keyboard.type(QUESTION);
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement.id)) !== "ask"; i += 1) {
      await page.keyboard.press("Tab");
    }
    assert.equal(await page.evaluate(() => document.activeElement.id), "ask");
    await page.keyboard.press("Enter");
    const first = page.getByRole("link", { name: /^\[1\]/ });
    await first.waitFor({ timeout: 60_000 });
    await first.focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("evidence-view").dataset.paintMs !== undefined);
    assert.equal(await page.locator("#evidence-view").getAttribute("data-page"), String(ANSWER_PAGE));
    await screenshot(page, "narrow-1-evidence");

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `nothing wider than 375 px (overflow ${overflow} px)`);

    // axe-core, evaluated in the page (the page's policy allows no injected script tag).
    await page.evaluate(await readFile(require.resolve("axe-core/axe.min.js"), "utf8"));
    const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    const grave = results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    assert.deepEqual(grave, [], "axe: no serious or critical violation");
    onlyThisServer(seen, server);
    await context.close();
  });
});

describe("the web page, formats without boxes", () => {
  const server = useDocqa("text");

  test("a file dropped on the page, and its quote marked in the page's text", async () => {
    const { page, seen, context } = await openPage(browser, server.url);
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    const notes = [
      "# Harbour operations",
      "",
      "The night shift checks every mooring line at two in the morning.",
      "",
      "The harbour crane is serviced each spring by the maintenance crew from Rotterdam.",
      "",
    ].join("\n");
    // A drop of a file, as a browser hands it over.
    await page.evaluate((text) => {
      const files = new DataTransfer();
      files.items.add(new File([text], "harbour.md", { type: "text/markdown" }));
      for (const type of ["dragover", "drop"]) {
        document.getElementById("drop").dispatchEvent(new DragEvent(type, { dataTransfer: files, bubbles: true, cancelable: true }));
      }
    }, notes);
    await page.waitForFunction(() => document.querySelector("#uploads li")?.dataset.state, null, { timeout: 60_000 });
    assert.equal(await page.locator("#uploads li").first().getAttribute("data-state"), "ready");

    const question = "Who services the harbour crane?";
    const first = await askThroughPage(page, question);
    const answer = await callApi(server, "/v1/query", { method: "POST", body: { question } });
    const citation = answer.citations[0];
    assert.equal((citation.boxes || []).length, 0, "a Markdown citation has no boxes");
    await first.click();
    await page.waitForFunction(() => document.getElementById("evidence-view").dataset.paintMs !== undefined);
    const evidence = page.getByRole("region", { name: "Evidence" });
    assert.match(await evidence.innerText(), /harbour\.md, page 1 of 1/);
    const marked = await evidence.locator("mark.highlight").innerText();
    assert.match(marked, /harbour crane is serviced each spring/, "the quote is marked in the page's text");
    assert.equal(await evidence.locator("canvas").count(), 0);
    await screenshot(page, "text-1-evidence");
    onlyThisServer(seen, server);
    assert.deepEqual(seen.errors, [], "no script error");
    await context.close();
  });
});

describe("the web page, images read by OCR", () => {
  const server = useDocqa("image");

  test("a scanned page's quote is highlighted on the image", async () => {
    const { page, seen, context } = await openPage(browser, server.url);
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    const item = await uploadThroughPage(page, join(ROOT, "tests/fixtures/scans/crazyones.png"));
    assert.equal(await item.getAttribute("data-state"), "ready", await item.innerText());
    const question = "Who are the crazy ones?";
    const first = await askThroughPage(page, question);
    const answer = await callApi(server, "/v1/query", { method: "POST", body: { question } });
    assert.ok(answer.citations[0].boxes.length > 0, JSON.stringify(answer.citations[0]));
    await checkEvidence(page, first, answer.citations[0]);
    assert.equal(await page.getByRole("region", { name: "Evidence" }).locator("img").count(), 1);
    await screenshot(page, "image-1-evidence");
    onlyThisServer(seen, server);
    assert.deepEqual(seen.errors, [], "no script error");
    await context.close();
  });
});

describe("the web page, with an LLM", () => {
  let llm;
  before(async () => {
    llm = await startScriptedLlm({ delayMs: 40 });
  });
  after(async () => {
    await llm?.stop();
  });
  const server = useDocqa("llm", () => ({ LLM_BASE_URL: llm.url, LLM_API_KEY: "sk-test", LLM_MODEL: "scripted" }));

  test("the generative answer streams in, then its citation opens the highlighted page", async () => {
    const { page, seen, context } = await openPage(browser, server.url);
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    const item = await uploadThroughPage(page, PDF);
    assert.equal(await item.getAttribute("data-state"), "ready", await item.innerText());

    await page.getByLabel("Generative").check();
    await page.getByRole("textbox", { name: "Question" }).fill(QUESTION);
    await page.getByRole("button", { name: "Ask" }).click();
    // Part of the answer is on the page while the LLM is still writing.
    await page.waitForFunction(() => {
      const answer = document.getElementById("answer");
      return answer.getAttribute("aria-busy") === "true" && answer.textContent.length > 0;
    });
    const partial = await page.locator("#answer").innerText();
    const first = page.getByRole("link", { name: /^\[1\]/ });
    await first.waitFor({ timeout: 60_000 });
    const final = await page.locator("#answer").innerText();
    assert.ok(final.startsWith("The documents say:"), final);
    assert.ok(partial.length < final.length, `streamed: "${partial}" before "${final}"`);
    assert.match(await page.locator("#answer-note").innerText(), /Written by scripted/);

    const answer = await callApi(server, "/v1/query", { method: "POST", body: { question: QUESTION, mode: "generative" } });
    assert.equal(answer.mode, "generative");
    await checkEvidence(page, first, answer.citations[0]);
    await screenshot(page, "llm-1-evidence");
    onlyThisServer(seen, server);
    assert.deepEqual(seen.errors, [], "no script error");
    await context.close();
  });
});

describe("the web page, authentication on", () => {
  const server = useDocqa("secured", { DOCQA_AUTH: "required", DOCQA_ADMIN_KEY: OPERATOR_KEY });

  test("asks for a key, asks again when one is refused, then works with it", async () => {
    const { page, seen, context } = await openPage(browser, server.url);
    const key = page.getByLabel("API key");
    await key.waitFor();
    assert.match(await page.locator("#status").innerText(), /needs an API key/);
    await screenshot(page, "secured-1-asks-for-key");

    await key.fill("not-a-key-of-this-server");
    await page.getByRole("button", { name: "Use key" }).click();
    await page.waitForFunction(() => /refused/.test(document.getElementById("status").textContent));
    assert.match(await page.locator("#error").innerText(), /.+: .+/, "the problem's title and detail");

    await key.fill(OPERATOR_KEY);
    await page.getByRole("button", { name: "Use key" }).click();
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("docqa.key")), OPERATOR_KEY);

    const item = await uploadThroughPage(page, PDF);
    assert.equal(await item.getAttribute("data-state"), "ready", await item.innerText());
    const first = await askThroughPage(page, QUESTION);
    const answer = await callApi(server, "/v1/query", { method: "POST", body: { question: QUESTION }, key: OPERATOR_KEY });
    // The file is read with the key (pdf.js sends it), and the highlight is where the quote is.
    await checkEvidence(page, first, answer.citations[0]);
    await screenshot(page, "secured-2-evidence");
    const files = seen.requests.filter((r) => r.url().endsWith("/file"));
    assert.ok(files.length > 0, "the page read the document's file");
    for (const request of files) assert.equal((await request.allHeaders()).authorization, `Bearer ${OPERATOR_KEY}`);
    onlyThisServer(seen, server);
    assert.deepEqual(seen.errors, [], "no script error");
    await context.close();
  });
});
