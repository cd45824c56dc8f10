// The web page's figures (not a test: bench/web_page.sh runs it): the first
// load's weight, the time until the page is usable, and the time from a click
// on citation [1] to the highlighted page painted, for a 117-page PDF of
// ../shared/corpus (GeoTopo-komprimiert.pdf), with pdf.js loaded cold (a new
// browser context each run) and warm (the same document clicked again).

import { join } from "node:path";

import { CORPUS, callApi, launchBrowser, startDocqa } from "./harness.mjs";
import { readFile } from "node:fs/promises";

const RUNS = Number(process.env.RUNS || 5);
const PDF = join(CORPUS, "GeoTopo-komprimiert.pdf");
const QUESTION = "Welche Voraussetzungen an U und V stellt der Satz von Seifert und van Kampen?";

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const server = await startDocqa("measure");
const browser = await launchBrowser();
try {
  const form = new FormData();
  form.append("file", new Blob([await readFile(PDF)]), "GeoTopo-komprimiert.pdf");
  const uploaded = await (await fetch(`${server.url}/v1/documents?wait=true`, { method: "POST", body: form })).json();
  const pages = uploaded.documents[0].pages;
  const answer = await callApi(server, "/v1/query", { method: "POST", body: { question: QUESTION } });
  const cited = answer.citations[0];
  const runs = [];
  for (let run = 0; run < RUNS; run += 1) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const requests = [];
    page.on("request", (request) => requests.push(request));
    const started = performance.now();
    await page.goto(`${server.url}/`);
    await page.locator("#collection option[value=default]").waitFor({ state: "attached" });
    const interactive = performance.now() - started;
    const firstLoad = requests.slice();
    let bytes = 0;
    for (const request of firstLoad) {
      const sizes = await request.sizes();
      bytes += sizes.responseBodySize + sizes.responseHeadersSize;
    }
    await page.getByRole("textbox", { name: "Question" }).fill(QUESTION);
    await page.getByRole("button", { name: "Ask" }).click();
    const first = page.getByRole("link", { name: /^\[1\]/ });
    await first.waitFor({ timeout: 60_000 });
    const painted = async () => {
      await page.evaluate(() => delete document.getElementById("evidence-view").dataset.paintMs);
      await first.click();
      await page.waitForFunction(() => document.getElementById("evidence-view").dataset.paintMs !== undefined);
      return Number(await page.locator("#evidence-view").getAttribute("data-paint-ms"));
    };
    const cold = await painted();
    const warm = await painted();
    const highlights = await page.locator("#evidence mark.highlight").count();
    const fileRequests = requests.filter((r) => r.url().endsWith("/file")).length;
    runs.push({ bytes, firstLoadRequests: firstLoad.length, fileRequests, interactive, cold, warm, highlights });
    await context.close();
  }
  console.log(
    JSON.stringify(
      {
        pdf: "GeoTopo-komprimiert.pdf",
        pages,
        cited_page: cited.page,
        runs: RUNS,
        first_load_kb: +(median(runs.map((r) => r.bytes)) / 1024).toFixed(1),
        first_load_requests: runs[0].firstLoadRequests,
        file_range_requests: runs[0].fileRequests,
        interactive_ms_median: Math.round(median(runs.map((r) => r.interactive))),
        citation_to_painted_ms_cold_median: median(runs.map((r) => r.cold)),
        citation_to_painted_ms_warm_median: median(runs.map((r) => r.warm)),
        highlights: runs[0].highlights,
        all: runs,
      },
      null,
      2,
    ),
  );
} finally {
  await browser.close();
  await server.stop();
}
