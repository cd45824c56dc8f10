//! Citation rectangles: the boxes of a verified quote must cover the quote's
//! words on the page. The reference is poppler's `pdftotext -bbox` (installed
//! with the OCR tools by scripts/env.sh) on the source PDF: for a text layer,
//! the same file; for a scan, the PDF the image was rendered from.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{TestApp, corpus, shared_dir};

/// A rectangle as (x, y, width, height), origin top left.
type Rect = (f64, f64, f64, f64);
/// A word as pdftotext cuts it, and its boxes.
type Word = (String, Vec<Rect>);

/// The words of one page of a corpus PDF with their boxes (two for a word
/// hyphenated across lines, joined as the text has it), and the page's size.
fn reference_words(pdf: &str, page: u64) -> (Vec<Word>, (f64, f64)) {
    let output = Command::new("pdftotext")
        .args(["-bbox", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(shared_dir().join("corpus").join(pdf))
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) runs");
    assert!(output.status.success(), "pdftotext failed on {pdf}");
    let html = String::from_utf8_lossy(&output.stdout);
    let attribute = |tag: &str, name: &str| -> f64 {
        let at = tag.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
        tag[at..at + tag[at..].find('"').expect("closing quote")]
            .parse()
            .expect("number")
    };
    let page_tag = html.split("<page ").nth(1).expect("a page");
    let size = (attribute(page_tag, "width"), attribute(page_tag, "height"));
    let boxed: Vec<(String, Rect)> = html
        .split("<word ")
        .skip(1)
        .map(|tag| {
            let (x0, y0, x1, y1) = (
                attribute(tag, "xMin"),
                attribute(tag, "yMin"),
                attribute(tag, "xMax"),
                attribute(tag, "yMax"),
            );
            let text = &tag[tag.find('>').expect(">") + 1..tag.find("</word>").expect("</word>")];
            let text = text
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"");
            (text, (x0, y0, x1 - x0, y1 - y0))
        })
        .collect();
    let mut words: Vec<Word> = Vec::new();
    for (text, rect) in boxed {
        match words.last_mut() {
            Some((last, rects)) if last.ends_with('-') && last.len() > 2 => {
                last.pop();
                last.push_str(&text);
                rects.push(rect);
            }
            _ => words.push((text, vec![rect])),
        }
    }
    (words, size)
}

fn normal(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The boxes of the reference words that hold the quote: its letters and
/// digits found among theirs (as pdftotext cuts words is not how a quote is
/// cut), else the run of words with the most words equal.
fn reference_boxes(words: &[Word], quote: &str) -> Vec<Rect> {
    let mut letters = String::new();
    let mut owner = Vec::new();
    for (i, (word, _)) in words.iter().enumerate() {
        for c in normal(word).chars() {
            letters.push(c);
            owner.extend(std::iter::repeat_n(i, c.len_utf8()));
        }
    }
    let wanted = normal(quote);
    let (first, last) = match letters.find(&wanted) {
        Some(at) => (owner[at], owner[at + wanted.len() - 1]),
        None => {
            let tokens: Vec<String> = quote.split_whitespace().map(normal).collect();
            let n = tokens.len();
            let (start, equal) = (0..words.len().saturating_sub(n - 1).max(1))
                .map(|start| {
                    let equal = tokens
                        .iter()
                        .zip(&words[start..])
                        .filter(|(want, (word, _))| **want == normal(word))
                        .count();
                    (start, equal)
                })
                .max_by_key(|&(_, equal)| equal)
                .expect("words");
            assert!(
                equal as f64 >= 0.6 * n as f64,
                "the quote {quote:?} is not on the reference page ({equal} of {n} words)"
            );
            (start, (start + n).min(words.len()) - 1)
        }
    };
    words[first..=last]
        .iter()
        .flat_map(|(_, rects)| rects.iter().copied())
        .collect()
}

/// Intersection over union of the areas two sets of rectangles cover, counted
/// on a grid of `step` units.
fn iou(ours: &[Rect], reference: &[Rect], step: f64) -> f64 {
    let all = ours.iter().chain(reference);
    let x0 = all.clone().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let y0 = all.clone().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let x1 = all.clone().map(|r| r.0 + r.2).fold(f64::NEG_INFINITY, f64::max);
    let y1 = all.map(|r| r.1 + r.3).fold(f64::NEG_INFINITY, f64::max);
    let inside = |rects: &[Rect], x: f64, y: f64| {
        rects
            .iter()
            .any(|r| x >= r.0 && x < r.0 + r.2 && y >= r.1 && y < r.1 + r.3)
    };
    let (mut both, mut either) = (0u64, 0u64);
    let mut y = y0;
    while y < y1 {
        let mut x = x0;
        while x < x1 {
            let (a, b) = (inside(ours, x, y), inside(reference, x, y));
            both += u64::from(a && b);
            either += u64::from(a || b);
            x += step;
        }
        y += step;
    }
    both as f64 / either.max(1) as f64
}

fn rects(citation: &Value, scale: f64) -> Vec<Rect> {
    citation["boxes"]
        .as_array()
        .expect("boxes")
        .iter()
        .map(|b| {
            let v = |k: &str| b[k].as_f64().expect("number") * scale;
            (v("x"), v("y"), v("width"), v("height"))
        })
        .collect()
}

/// The extractive answer's citations of one document (no LLM: the server
/// quotes the best sentences).
async fn citations(app: &TestApp, id: &str, question: &str) -> Vec<Value> {
    let (status, answer) = app
        .query(json!({"question": question, "mode": "extractive", "filter": {"document_ids": [id]}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let citations = answer["citations"].as_array().expect("citations").clone();
    assert!(!citations.is_empty(), "{answer}");
    citations
}

/// Checks every one-page citation of `question` against the reference; returns the IoUs.
async fn check_quotes(app: &TestApp, id: &str, question: &str, source: &str, scale: f64, step: f64) -> Vec<f64> {
    let mut measured = Vec::new();
    for citation in citations(app, id, question).await {
        let page = citation["page"].as_u64().expect("page");
        let boxes = citation["boxes"]
            .as_array()
            .expect("a citation of a PDF or image page has boxes");
        assert!(!boxes.is_empty(), "{citation}");
        if boxes.iter().any(|b| b["page"] != page) {
            continue; // the quote runs onto the next page
        }
        let sizes = citation["page_sizes"].as_array().expect("page_sizes");
        assert_eq!(sizes.len(), 1, "{citation}");
        assert_eq!(sizes[0]["page"], page, "{citation}");
        let (words, (width, height)) = reference_words(source, page);
        let size = |k: &str| sizes[0][k].as_f64().unwrap() * scale;
        assert!(
            (size("width") - width).abs() < 2.0 && (size("height") - height).abs() < 2.0,
            "{citation}"
        );
        let quote = citation["quote"].as_str().unwrap();
        let score = iou(&rects(&citation, scale), &reference_boxes(&words, quote), step);
        assert!(score >= 0.7, "IoU {score:.2} for {quote:?} on page {page}: {citation}");
        measured.push(score);
    }
    measured
}

#[tokio::test(flavor = "multi_thread")]
async fn citation_boxes_of_a_text_layer_cover_the_quote() {
    let app = TestApp::spawn().await;
    let mut measured = Vec::new();
    // Two columns (the text reads one column, then the other), and a Google Docs export.
    let columns = app.ingest("multicolumn.pdf", corpus("multicolumn.pdf")).await;
    let id = columns["id"].as_str().unwrap();
    for question in ["Maecenas lacinia nam ipsum ligula", "Donec bibendum quam in tellus"] {
        measured.extend(check_quotes(&app, id, question, "multicolumn.pdf", 1.0, 0.25).await);
    }
    let zen = app.ingest("zen.pdf", corpus("google-doc-document.pdf")).await;
    let id = zen["id"].as_str().unwrap();
    for question in ["Is explicit better than implicit?", "What should errors never do?"] {
        measured.extend(check_quotes(&app, id, question, "google-doc-document.pdf", 1.0, 0.25).await);
    }
    assert!(measured.len() >= 4, "{measured:?}");
    eprintln!("text layer IoU: {measured:.2?}");

    // Formats without pages on paper have no boxes.
    let text = app
        .ingest(
            "notes.txt",
            b"The warranty lasts twenty-four months from the day of purchase.".to_vec(),
        )
        .await;
    let cited = citations(&app, text["id"].as_str().unwrap(), "How long is the warranty?").await;
    assert!(
        cited[0].get("boxes").is_none() && cited[0].get("page_sizes").is_none(),
        "{cited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn citation_boxes_of_an_ocr_page_cover_the_quote_and_the_document_says_how_pages_were_read() {
    let app = TestApp::spawn().await;
    // crazyones.png is page 1 of crazyones-pdfa.pdf rendered at 150 dpi: its
    // pixels times 72/150 are the PDF's points.
    let png = app
        .ingest("crazyones.png", std::fs::read(fixture("crazyones.png")).unwrap())
        .await;
    let id = png["id"].as_str().unwrap();
    let measured = check_quotes(
        &app,
        id,
        "Who are the crazy ones?",
        "crazyones-pdfa.pdf",
        72.0 / 150.0,
        0.25,
    )
    .await;
    assert!(!measured.is_empty());
    eprintln!("OCR IoU: {measured:.2?}");
    let stored: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
    let sources = stored["page_sources"].as_array().expect("page_sources");
    assert_eq!(sources.len(), 1, "{stored}");
    assert_eq!(sources[0]["method"], "ocr", "{stored}");
    assert!(
        sources[0]["ocr_confidence"].as_f64().is_some_and(|c| c > 50.0),
        "{stored}"
    );

    // A text page and a scanned one: each says how it was read.
    let mixed = app
        .ingest("mixed.pdf", std::fs::read(fixture("mixed.pdf")).unwrap())
        .await;
    let stored: Value = app
        .get(&format!("/v1/documents/{}", mixed["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    let sources = stored["page_sources"].as_array().expect("page_sources");
    let shape: Vec<(u64, u64, &str)> = sources
        .iter()
        .map(|s| {
            (
                s["first_page"].as_u64().unwrap(),
                s["last_page"].as_u64().unwrap(),
                s["method"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape, vec![(1, 1, "text"), (2, 2, "ocr")], "{stored}");
    assert!(sources[0].get("ocr_confidence").is_none(), "{stored}");
    assert!(sources[1]["ocr_confidence"].as_f64().is_some(), "{stored}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scans")
        .join(name)
}
