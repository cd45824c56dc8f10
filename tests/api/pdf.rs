//! Real PDFs from the shared corpus: search hits and citations must stand on the
//! pages they name, checked against each page's text read independently.

use serde_json::{Value, json};

use crate::helpers::{TestApp, alnum, corpus, lines_stand_in, pdf_pages};

/// A run of about a dozen words from `page` (0-based) that no other page has.
fn distinctive_passage(pages: &[String], page: usize) -> Option<String> {
    let words: Vec<&str> = pages[page].split_whitespace().collect();
    let others: Vec<String> = pages
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != page)
        .map(|(_, p)| alnum(p))
        .collect();
    (0..words.len().saturating_sub(12))
        .step_by(7)
        .map(|start| words[start..start + 12].join(" "))
        .find(|passage| alnum(passage).len() > 40 && others.iter().all(|o| !o.contains(&alnum(passage))))
}

/// Every word of `text` is on the reference page, and nine in ten of the
/// page's words are in `text`.
fn words_cover(text: &str, reference: &str) -> bool {
    let (shown, page) = (alnum(text), alnum(reference));
    let every_word = text.split_whitespace().map(alnum).all(|word| page.contains(&word));
    let words: Vec<String> = reference
        .split_whitespace()
        .map(alnum)
        .filter(|w| !w.is_empty())
        .collect();
    let found = words.iter().filter(|word| shown.contains(word.as_str())).count();
    every_word && found * 10 >= words.len() * 9
}

/// Every hit's text stands within the pages it claims.
fn assert_hits_on_their_pages(results: &Value, pages: &[String], document_id: &str) {
    for hit in results["results"].as_array().unwrap() {
        if hit["document_id"] != document_id {
            continue;
        }
        let start = hit["page_start"].as_u64().unwrap() as usize;
        let end = hit["page_end"].as_u64().unwrap() as usize;
        assert!(1 <= start && start <= end && end <= pages.len(), "{hit}");
        let span = pages[start - 1..end].concat();
        assert!(
            lines_stand_in(hit["text"].as_str().unwrap(), &span),
            "hit not on pages {start}-{end}: {hit}"
        );
    }
}

/// Every citation's quote stands on the page it names.
fn assert_citations_on_their_pages(answer: &Value, pages: &[String], document_id: &str) -> Vec<usize> {
    let mut cited_pages = Vec::new();
    for citation in answer["citations"].as_array().unwrap() {
        if citation["document_id"] != document_id {
            continue;
        }
        let page = citation["page"].as_u64().unwrap() as usize;
        let quote = citation["quote"].as_str().unwrap();
        assert!(
            lines_stand_in(quote, &pages[page - 1]),
            "quote not on page {page}: {citation}"
        );
        cited_pages.push(page);
    }
    cited_pages
}

#[tokio::test(flavor = "multi_thread")]
async fn search_hits_and_citations_name_the_right_pages() {
    let app = TestApp::spawn().await;
    let mut checked = 0;
    for file in [
        "multicolumn.pdf",
        "pdflatex-outline.pdf",
        "pdflatex-4-pages.pdf",
        "crazyones-pdfa.pdf",
    ] {
        let bytes = corpus(file);
        let pages = pdf_pages(&bytes);
        let document = app.ingest(file, bytes).await;
        let id = document["id"].as_str().unwrap();
        let stored: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
        assert_eq!(stored["pages"], pages.len(), "{file}");
        // Each page's text, put back together from the chunks, is that page's.
        for (n, reference) in pages.iter().enumerate() {
            let shown: Value = app
                .get(&format!("/v1/documents/{id}/pages/{}", n + 1))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(shown["page"], n + 1, "{shown}");
            let text = shown["text"].as_str().unwrap();
            // Words, not lines: the server's cleaning rejoins lines and
            // pdf-extract's reading order within a page is not stable.
            assert!(words_cover(text, reference), "{file} page {}: {text}", n + 1);
            // And it is this page: the words of a passage no other page has.
            if let Some(passage) = distinctive_passage(&pages, n) {
                let shown = alnum(text);
                let every_word = passage.split_whitespace().all(|word| shown.contains(&alnum(word)));
                assert!(every_word, "{file} page {}: {passage:?} in {text}", n + 1);
            }
        }
        let past_the_end = app.get(&format!("/v1/documents/{id}/pages/{}", pages.len() + 1)).await;
        assert_eq!(past_the_end.status(), 404, "{file}");
        assert_eq!(app.get(&format!("/v1/documents/{id}/pages/0")).await.status(), 422);

        for page in 0..pages.len() {
            let Some(passage) = distinctive_passage(&pages, page) else {
                continue;
            };
            let filter = json!({"document_ids": [id]});
            let found = app
                .search(None, json!({"query": passage, "top_k": 5, "filter": filter}))
                .await;
            assert_hits_on_their_pages(&found, &pages, id);
            // Among the first three: a document that repeats its filler text
            // page after page may rank a near-copy of the passage first.
            let on_page = |hit: &Value| {
                let (start, end) = (
                    hit["page_start"].as_u64().unwrap() as usize,
                    hit["page_end"].as_u64().unwrap() as usize,
                );
                (start..=end).contains(&(page + 1))
            };
            let top3: Vec<&Value> = found["results"].as_array().unwrap().iter().take(3).collect();
            assert!(
                top3.iter().any(|hit| on_page(hit)),
                "{file}: no top hit for page {} in {top3:?}",
                page + 1
            );

            let (status, answer) = app.query(json!({"question": passage, "filter": filter})).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["grounded"], true, "{file} page {}: {answer}", page + 1);
            let cited = assert_citations_on_their_pages(&answer, &pages, id);
            assert!(
                cited.contains(&(page + 1)),
                "{file}: no citation on page {} in {answer}",
                page + 1
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} pages had a distinctive passage");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_pdf_with_a_page_the_parser_cannot_read_is_still_ingested() {
    // Page 14 of this 117-page book makes pdf-extract panic ("missing unicode map").
    let app = TestApp::spawn().await;
    let document = app.ingest("geotopo.pdf", corpus("GeoTopo-komprimiert.pdf")).await;
    let id = document["id"].as_str().unwrap();
    let stored: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
    assert_eq!(stored["pages"], 117, "{stored}");
    assert!(stored["chunks"].as_u64().unwrap() > 100, "{stored}");

    let found = app
        .search(None, json!({"query": "Hausdorff-Raum Definition", "top_k": 5}))
        .await;
    assert!(!found["results"].as_array().unwrap().is_empty());
    assert_eq!(app.get("/healthz").await.status(), 200);
}
