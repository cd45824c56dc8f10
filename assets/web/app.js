// docqa's page: one ES module, no framework, no build step. It speaks the
// public API only (/v1), with the key kept in sessionStorage when the server
// asks for one. pdf.js (assets/web/pdfjs) is loaded the first time a PDF page
// is shown, so the first load stays small.

const KEY_STORAGE = "docqa.key";
const COLLECTION_STORAGE = "docqa.collection";
const JOB_POLL_MS = 500;
// Image types a browser draws (a TIFF scan is shown as its text, like other formats).
const BROWSER_IMAGES = new Set(["image/png", "image/jpeg", "image/webp"]);

const $ = (id) => document.getElementById(id);

const state = {
  collection: sessionStorage.getItem(COLLECTION_STORAGE) || "default",
  documents: new Map(), // id → document, of the current collection
  citations: [],
  pdfs: new Map(), // file URL → pdf.js document (promise)
  evidence: null, // what the viewer shows: {target, document, page}
  shown: 0, // counts evidence requests: a slower earlier one never paints over a later one
};

// ---------------------------------------------------------------- the API

class ProblemError extends Error {
  constructor(problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.problem = problem;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** A refused request's problem+json (or what can be said without one). */
async function problemOf(response) {
  let problem = { title: response.statusText || "Request failed", status: response.status };
  try {
    const body = await response.json();
    if (body && typeof body === "object") {
      // problem+json, or the OpenAI shape's {error: {message}}.
      problem = body.error && typeof body.error === "object"
        ? { ...problem, detail: body.error.message }
        : { ...problem, ...body };
    }
  } catch {
    // Not JSON: the status line says it.
  }
  if (response.status === 401) askForKey(problem);
  return new ProblemError(problem);
}

async function api(path, { method = "GET", body } = {}) {
  const headers = withKey(body === undefined ? {} : { "Content-Type": "application/json" });
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

const inCollection = (rest) => `/v1/collections/${encodeURIComponent(state.collection)}${rest}`;
const fileUrl = (documentId) => inCollection(`/documents/${encodeURIComponent(documentId)}/file`);

// ---------------------------------------------------------------- messages

function say(text) {
  $("status").textContent = text;
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ProblemError ? error.message : `Something went wrong: ${error.message || error}`;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

/** Runs an action, showing what fails instead of throwing. */
async function guarded(action) {
  try {
    clearError();
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function askForKey(problem) {
  const form = $("key-form");
  form.hidden = false;
  $("forget-key").hidden = !apiKey();
  say(apiKey() ? "That key was refused; enter another." : "This server needs an API key.");
  $("key").focus();
}

// ---------------------------------------------------------------- collections and documents

async function loadCollections() {
  const { collections } = await api("/v1/collections");
  const select = $("collection");
  select.replaceChildren(
    ...collections.map((c) => {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = c.description ? `${c.name} — ${c.description}` : c.name;
      return option;
    }),
  );
  if (!collections.some((c) => c.name === state.collection) && collections.length) {
    state.collection = collections[0].name;
  }
  select.value = state.collection;
  await loadDocuments();
}

async function createCollection(event) {
  event.preventDefault();
  const input = $("new-collection");
  const name = input.value.trim();
  await guarded(async () => {
    await api("/v1/collections", { method: "POST", body: { name } });
    input.value = "";
    chooseCollection(name);
    await loadCollections();
    say(`Collection ${name} created.`);
  });
}

function chooseCollection(name) {
  state.collection = name;
  sessionStorage.setItem(COLLECTION_STORAGE, name);
  state.documents.clear();
}

async function loadDocuments() {
  const { documents } = await api(inCollection("/documents?limit=500"));
  state.documents = new Map(documents.map((d) => [d.id, d]));
  const rows = documents.map(documentRow);
  $("documents").replaceChildren(...rows);
  $("no-documents").hidden = documents.length > 0;
}

function documentRow(document_) {
  const row = document.createElement("tr");
  const name = cell(document_.filename, "name");
  name.id = `doc-${document_.id}`;
  const status = cell(document_.status, `state-${document_.status}`);
  if (document_.error) {
    const reason = document.createElement("div");
    reason.className = "muted";
    reason.textContent = document_.error;
    status.append(reason);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Delete";
  remove.setAttribute("aria-describedby", name.id);
  remove.addEventListener("click", () => deleteDocument(document_));
  const actions = cell("");
  actions.append(remove);
  row.append(name, status, cell(document_.pages ?? "–"), cell(document_.chunks ?? "–"), actions);
  return row;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

async function deleteDocument(document_) {
  if (!window.confirm(`Delete ${document_.filename}? Its text and vectors are removed too.`)) return;
  await guarded(async () => {
    await api(inCollection(`/documents/${encodeURIComponent(document_.id)}`), { method: "DELETE" });
    say(`${document_.filename} deleted.`);
    await loadDocuments();
  });
}

// ---------------------------------------------------------------- upload

function uploadFiles(files) {
  const list = [...files];
  if (!list.length) return;
  // One body at a time: the server caps the uploads it receives at once.
  list.reduce((previous, file) => previous.then(() => uploadOne(file)), Promise.resolve());
}

function uploadItem(file) {
  const item = document.createElement("li");
  const name = document.createElement("div");
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `${file.name}: progress`);
  const line = document.createElement("div");
  line.className = "muted";
  line.textContent = "waiting";
  item.append(name, progress, line);
  $("uploads").prepend(item);
  return {
    set(text, fraction, stateName) {
      line.textContent = text;
      if (fraction !== undefined) progress.value = fraction;
      if (stateName) {
        line.className = `state-${stateName}`;
        item.dataset.state = stateName;
      }
    },
  };
}

function uploadOne(file) {
  const item = uploadItem(file);
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", inCollection("/documents"));
    for (const [name, value] of Object.entries(withKey())) request.setRequestHeader(name, value);
    request.responseType = "text";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) item.set(`uploading ${percent(event.loaded / event.total)}`, event.loaded / event.total * 0.5);
    });
    request.addEventListener("load", async () => {
      const response = new Response(request.responseText, {
        status: request.status,
        headers: { "Content-Type": request.getResponseHeader("Content-Type") || "" },
      });
      if (!response.ok) {
        const error = await problemOf(response);
        item.set(`failed: ${error.message}`, 0, "failed");
        resolve();
        return;
      }
      const { documents } = await response.json();
      resolve();
      for (const uploaded of documents) followUpload(uploaded, item);
    });
    request.addEventListener("error", () => {
      item.set("failed: the connection was lost", 0, "failed");
      resolve();
    });
    request.send(form);
  });
}

function percent(fraction) {
  return `${Math.round(fraction * 100)} %`;
}

/** From accepted to ready, duplicate or failed: the job's stage and progress. */
async function followUpload(uploaded, item) {
  if (uploaded.status === "duplicate") {
    item.set("duplicate: these bytes are already in the collection", 1, "duplicate");
    return;
  }
  for (;;) {
    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(uploaded.job_id)}`);
    } catch (error) {
      item.set(`failed: ${error.message}`, undefined, "failed");
      return;
    }
    const fraction = 0.5 + (job.progress?.fraction ?? 0) * 0.5;
    if (job.status === "succeeded") {
      item.set("ready", 1, "ready");
      break;
    }
    if (job.status === "failed") {
      item.set(`failed: ${job.error || "unknown reason"}`, fraction, "failed");
      break;
    }
    const stage = job.progress?.stage ?? job.status;
    const counted = job.progress && job.progress.total > 0 ? ` ${job.progress.done}/${job.progress.total}` : "";
    item.set(`${stage}${counted} (${percent(job.progress?.fraction ?? 0)})`, fraction);
    await new Promise((wake) => setTimeout(wake, JOB_POLL_MS));
  }
  await guarded(loadDocuments);
}

function wireDropZone() {
  const zone = $("drop");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    uploadFiles(event.dataTransfer.files);
  });
  $("upload").addEventListener("change", (event) => {
    uploadFiles(event.target.files);
    event.target.value = "";
  });
}

// ---------------------------------------------------------------- ask and search

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const button = $("ask");
  button.disabled = true;
  clearError();
  try {
    if ($("search-only").checked) await search(question);
    else await answer(question, new FormData($("ask-form")).get("mode"));
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function search(question) {
  $("answer-area").hidden = true;
  const { results } = await api(inCollection("/search"), { method: "POST", body: { query: question, top_k: 10 } });
  const list = $("results");
  list.replaceChildren(
    ...results.map((hit) => {
      const item = document.createElement("li");
      const where = document.createElement("strong");
      where.textContent = `${hit.filename}, page ${hit.page_start}${hit.page_end > hit.page_start ? `–${hit.page_end}` : ""}`;
      const text = document.createElement("div");
      text.textContent = hit.text.length > 400 ? `${hit.text.slice(0, 400)}…` : hit.text;
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = "Show page";
      show.setAttribute("aria-describedby", `result-${hit.chunk_id}`);
      where.id = `result-${hit.chunk_id}`;
      show.addEventListener("click", () =>
        showEvidence({ document_id: hit.document_id, filename: hit.filename, page: hit.page_start, quote: hit.text }),
      );
      item.append(where, text, show);
      return item;
    }),
  );
  $("results-area").hidden = false;
  say(results.length ? `${results.length} passages found.` : "Nothing found.");
}

/** Streams the answer (SSE): deltas as they come, then the verified answer. */
async function answer(question, mode) {
  $("results-area").hidden = true;
  $("answer-area").hidden = false;
  const text = $("answer");
  text.replaceChildren();
  text.setAttribute("aria-busy", "true");
  $("answer-note").textContent = "";
  $("citations").replaceChildren();
  $("citations-heading").hidden = true;
  say("Answering…");
  const response = await fetch(inCollection("/query"), {
    method: "POST",
    headers: withKey({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ question, mode, stream: true }),
  });
  if (!response.ok) {
    text.setAttribute("aria-busy", "false");
    throw await problemOf(response);
  }
  let final = null;
  for await (const { event, data } of serverEvents(response.body)) {
    if (event === "delta") text.append(JSON.parse(data).text);
    else if (event === "answer") final = JSON.parse(data);
    else if (event === "error") {
      text.setAttribute("aria-busy", "false");
      throw new ProblemError(JSON.parse(data));
    }
  }
  text.setAttribute("aria-busy", "false");
  if (!final) throw new Error("the answer stream ended before the answer");
  showAnswer(final);
}

/** `event:`/`data:` blocks of a text/event-stream body; comments are skipped. */
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value_ = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value_;
        else if (field === "data") data.push(value_);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

function showAnswer(result) {
  state.citations = result.citations;
  const byIndex = new Map(result.citations.map((c) => [c.index, c]));
  const text = $("answer");
  text.replaceChildren();
  // `[n]` markers become links to their source.
  const parts = result.answer.split(/(\[\d+\])/);
  for (const part of parts) {
    const marker = /^\[(\d+)\]$/.exec(part);
    const citation = marker && byIndex.get(Number(marker[1]));
    if (!citation) {
      text.append(part);
      continue;
    }
    const link = document.createElement("a");
    link.href = `#citation-${citation.index}`;
    link.className = "marker";
    link.textContent = part;
    // Named apart from the source list, whose links are "[n] …".
    link.setAttribute("aria-label", `source ${citation.index}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      document.querySelector(`#citation-${citation.index} a`)?.focus();
      openCitation(citation);
    });
    text.append(link);
  }
  const notes = [];
  notes.push(result.mode === "extractive" ? "Extractive answer (sentences of the documents)." : `Written by ${result.model}.`);
  if (!result.grounded) notes.push("Nothing in the documents supports an answer.");
  if (result.fallback_reason) notes.push(result.fallback_reason);
  for (const warning of result.warnings || []) notes.push(warning);
  $("answer-note").textContent = notes.join(" ");
  $("citations").replaceChildren(
    ...result.citations.map((citation) => {
      const item = document.createElement("li");
      item.id = `citation-${citation.index}`;
      const link = document.createElement("a");
      link.href = "#evidence";
      link.textContent = `[${citation.index}] ${citation.filename}, page ${citation.page}`;
      link.title = citation.quote;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        openCitation(citation);
      });
      item.append(link);
      return item;
    }),
  );
  $("citations-heading").hidden = result.citations.length === 0;
  const count = result.citations.length;
  say(count ? `Answer with ${count} ${count === 1 ? "source" : "sources"}.` : "Answer without sources.");
}

function openCitation(citation) {
  for (const link of document.querySelectorAll("#citations a")) {
    link.setAttribute("aria-current", String(link.parentElement.id === `citation-${citation.index}`));
  }
  return showEvidence(citation);
}

// ---------------------------------------------------------------- the evidence viewer

async function documentInfo(id) {
  if (!state.documents.has(id)) {
    state.documents.set(id, await api(inCollection(`/documents/${encodeURIComponent(id)}`)));
  }
  return state.documents.get(id);
}

/**
 * Shows `target` ({document_id, filename, page, quote, boxes?, page_sizes?}):
 * a PDF page rendered with the quote's boxes highlighted, an image with its
 * boxes, or the page's text with the quote marked.
 */
async function showEvidence(target, page = target.page) {
  const ticket = ++state.shown;
  const clicked = performance.now();
  const region = $("evidence");
  const view = $("evidence-view");
  view.setAttribute("aria-busy", "true");
  region.scrollIntoView({ block: "start", behavior: "instant" });
  await guarded(async () => {
    const document_ = await documentInfo(target.document_id);
    const pages = document_.pages || page;
    state.evidence = { target, document: document_, page };
    $("evidence-title").textContent = `${document_.filename}, page ${page} of ${pages}`;
    $("evidence-nav").hidden = pages < 2;
    $("previous-page").disabled = page <= 1;
    $("next-page").disabled = page >= pages;
    const boxes = (target.boxes || []).filter((box) => box.page === page);
    let shown;
    if (document_.content_type === "application/pdf") shown = await pdfPage(document_, page, boxes, target.page_sizes);
    else if (BROWSER_IMAGES.has(document_.content_type)) shown = await imagePage(document_, boxes, target.page_sizes);
    else shown = await textPage(document_, page, page === target.page ? target.quote : null);
    if (ticket !== state.shown) return; // a later click won
    view.replaceChildren(shown);
    view.dataset.page = String(page);
    view.dataset.documentId = document_.id;
    await new Promise((painted) => requestAnimationFrame(() => requestAnimationFrame(painted)));
    view.dataset.paintMs = String(Math.round(performance.now() - clicked));
    view.querySelector("mark")?.scrollIntoView({ block: "center", behavior: "instant" });
  });
  view.setAttribute("aria-busy", "false");
  region.focus({ preventScroll: true });
}

function pageFrame(label) {
  const frame = document.createElement("figure");
  frame.className = "page";
  frame.style.margin = "0 auto";
  const caption = document.createElement("figcaption");
  caption.className = "visually-hidden";
  caption.textContent = label;
  frame.append(caption);
  return frame;
}

/** One rectangle per box, in percent of the page: it follows the page's size. */
function highlight(frame, boxes, size) {
  for (const box of boxes) {
    const mark = document.createElement("mark");
    mark.className = "highlight";
    mark.style.left = `${(box.x / size.width) * 100}%`;
    mark.style.top = `${(box.y / size.height) * 100}%`;
    mark.style.width = `${(box.width / size.width) * 100}%`;
    mark.style.height = `${(box.height / size.height) * 100}%`;
    frame.append(mark);
  }
}

let pdfjs = null;

async function pdfLibrary() {
  if (!pdfjs) {
    pdfjs = await import("/ui/pdf.min.mjs");
    pdfjs.GlobalWorkerOptions.workerSrc = "/ui/pdf.worker.min.mjs";
  }
  return pdfjs;
}

async function pdfDocument(documentId) {
  const url = fileUrl(documentId);
  if (!state.pdfs.has(url)) {
    const library = await pdfLibrary();
    const loading = library.getDocument({
      url,
      httpHeaders: withKey(),
      // The page's policy allows no eval; fonts are drawn without it.
      isEvalSupported: false,
      // Only the ranges a shown page needs.
      disableAutoFetch: true,
      disableStream: true,
    }).promise;
    loading.catch(() => state.pdfs.delete(url));
    state.pdfs.set(url, loading);
  }
  return state.pdfs.get(url);
}

async function pdfPage(document_, pageNumber, boxes, sizes) {
  const pdf = await pdfDocument(document_.id);
  const page = await pdf.getPage(pageNumber);
  const natural = page.getViewport({ scale: 1 });
  const width = Math.max(200, Math.min($("evidence-view").clientWidth || 800, 1100));
  const scale = width / natural.width;
  const viewport = page.getViewport({ scale: scale * (window.devicePixelRatio || 1) });
  const canvas = document.createElement("canvas");
  canvas.width = Math.floor(viewport.width);
  canvas.height = Math.floor(viewport.height);
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${document_.filename}, page ${pageNumber}`);
  await page.render({ canvasContext: canvas.getContext("2d"), canvas, viewport }).promise;
  const frame = pageFrame(`${document_.filename}, page ${pageNumber}`);
  frame.style.width = `${width}px`;
  frame.dataset.page = String(pageNumber);
  frame.append(canvas);
  const size = (sizes || []).find((s) => s.page === pageNumber) || { width: natural.width, height: natural.height };
  highlight(frame, boxes, size);
  return frame;
}

async function imagePage(document_, boxes, sizes) {
  const response = await fetch(fileUrl(document_.id), { headers: withKey() });
  if (!response.ok) throw await problemOf(response);
  const image = new Image();
  image.alt = document_.filename;
  image.src = URL.createObjectURL(await response.blob());
  await image.decode();
  const frame = pageFrame(document_.filename);
  frame.style.width = `${Math.min(image.naturalWidth, $("evidence-view").clientWidth || 800)}px`;
  frame.append(image);
  const size = (sizes || [])[0] || { width: image.naturalWidth, height: image.naturalHeight };
  highlight(frame, boxes, size);
  return frame;
}

async function textPage(document_, pageNumber, quote) {
  const page = await api(inCollection(`/documents/${encodeURIComponent(document_.id)}/pages/${pageNumber}`));
  const text = document.createElement("div");
  text.className = "page-text";
  text.dataset.page = String(pageNumber);
  const found = quote ? findQuote(page.text, quote) : null;
  if (!found) {
    text.textContent = page.text || "(this page has no text)";
    return text;
  }
  const mark = document.createElement("mark");
  mark.className = "highlight";
  mark.textContent = page.text.slice(found.start, found.end);
  text.append(page.text.slice(0, found.start), mark, page.text.slice(found.end));
  return text;
}

/** Where the quote stands in the page's text, whatever the whitespace between its words. */
function findQuote(text, quote) {
  const words = quote.split(/\s+/).filter(Boolean);
  for (const count of [words.length, Math.min(words.length, 12)]) {
    if (!count) break;
    const pattern = words
      .slice(0, count)
      .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join("\\s+");
    const match = new RegExp(pattern).exec(text);
    if (match) return { start: match.index, end: match.index + match[0].length };
  }
  return null;
}

function turnPage(step) {
  const current = state.evidence;
  if (!current) return;
  const next = current.page + step;
  if (next < 1 || next > (current.document.pages || 1)) return;
  showEvidence(current.target, next);
}

// ---------------------------------------------------------------- start

function wire() {
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("key").value.trim());
    $("key").value = "";
    $("forget-key").hidden = false;
    state.pdfs.clear();
    say("Key saved for this tab.");
    await guarded(loadCollections);
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    state.pdfs.clear();
    $("forget-key").hidden = true;
    say("Key forgotten.");
  });
  $("collection").addEventListener("change", async (event) => {
    chooseCollection(event.target.value);
    await guarded(loadDocuments);
  });
  $("create-collection").addEventListener("submit", createCollection);
  $("refresh-documents").addEventListener("click", () => guarded(loadDocuments));
  $("ask-form").addEventListener("submit", ask);
  $("previous-page").addEventListener("click", () => turnPage(-1));
  $("next-page").addEventListener("click", () => turnPage(1));
  wireDropZone();
}

wire();
if (apiKey()) {
  $("key-form").hidden = false;
}
guarded(loadCollections);
