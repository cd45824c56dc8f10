//! Images read by OCR (Tesseract, installed by scripts/env.sh): pages of corpus
//! PDFs rasterised as a scanner would (tests/fixtures/scans, written by
//! scripts/make_scan_fixtures.py), a PNG and a two-frame TIFF; and a server
//! without OCR, which still starts and says so.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions};

fn scan(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scans")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn cited_pages(app: &TestApp, id: &str, question: &str) -> Vec<u64> {
    let (status, answer) = app
        .query(json!({"question": question, "filter": {"document_ids": [id]}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["page"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_read_by_ocr_a_page_a_frame_and_cited_on_their_page() {
    let app = TestApp::spawn().await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["ocr"], "available", "{ready}");
    assert!(ready["ocr_detail"].as_str().unwrap().contains("tesseract"), "{ready}");

    let png = app.ingest("scan.bin", scan("crazyones.png")).await;
    let id = png["id"].as_str().unwrap();
    let stored: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
    assert_eq!(stored["content_type"], "image/png", "{stored}");
    assert_eq!(stored["pages"], 1, "{stored}");
    let found = app.hits_in(id, "the round pegs in the square holes").await;
    assert!(
        found[0]["text"]
            .as_str()
            .unwrap()
            .contains("The round pegs in the square holes"),
        "{found:?}"
    );
    assert!(cited_pages(&app, id, "Who are the crazy ones?").await.contains(&1));

    // A page scanned sideways is turned before it is read.
    let sideways = app.ingest("sideways.png", scan("sideways.png")).await;
    let id = sideways["id"].as_str().unwrap();
    let found = app.hits_in(id, "the round pegs in the square holes").await;
    assert!(
        found[0]["text"]
            .as_str()
            .unwrap()
            .contains("The round pegs in the square holes"),
        "{found:?}"
    );

    let tiff = app.ingest("scan.bin", scan("two-pages.tiff")).await;
    let id = tiff["id"].as_str().unwrap();
    let stored: Value = app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap();
    assert_eq!(stored["content_type"], "image/tiff", "{stored}");
    assert_eq!(stored["pages"], 2, "{stored}");
    // Frame 1 is the Zen of Python, frame 2 a blind text.
    let zen = app.hits_in(id, "Beautiful is better than ugly").await;
    assert_eq!(zen[0]["page_start"], 1, "{zen:?}");
    assert!(
        zen[0]["text"]
            .as_str()
            .unwrap()
            .contains("Explicit is better than implicit.")
    );
    let blind = app
        .hits_in(id, "a blind text gives you information about the selected font")
        .await;
    assert_eq!(blind[0]["page_start"], 2, "{blind:?}");
    assert!(
        blind[0]["text"]
            .as_str()
            .unwrap()
            .contains("information about the selected font")
    );
    assert!(
        cited_pages(&app, id, "What does a blind text give you information about?")
            .await
            .contains(&2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scanned_page_of_a_pdf_is_read_by_ocr_and_its_text_pages_stay_as_they_are() {
    let app = TestApp::spawn().await;
    // Page 1 has a text layer, page 2 is a skewed JPEG scan without one.
    let mixed = app.ingest("mixed.pdf", scan("mixed.pdf")).await;
    let id = mixed["id"].as_str().unwrap();
    assert_eq!(mixed["pages"], 2, "{mixed}");
    // Chunks may run over a page break: the hit's pages hold the page asked about.
    let zen = app.hits_in(id, "Beautiful is better than ugly").await;
    assert_eq!(zen[0]["page_end"], 2, "{zen:?}");
    assert!(
        zen[0]["text"]
            .as_str()
            .unwrap()
            .contains("Explicit is better than implicit."),
        "{zen:?}"
    );
    let crazy = app.hits_in(id, "the round pegs in the square holes").await;
    assert_eq!(crazy[0]["page_start"], 1, "{crazy:?}");
    // The text layer's own spelling ("Heres", without the apostrophe OCR would read).
    assert!(
        crazy[0]["text"].as_str().unwrap().contains("Heres to the crazy ones"),
        "{crazy:?}"
    );
    assert!(
        cited_pages(&app, id, "Is explicit better than implicit?")
            .await
            .contains(&2)
    );

    // A scan of a photograph: OCR finds no text, and says so.
    let photo = app
        .ingest_failing("photo.pdf", crate::helpers::corpus("cmyk-image.pdf"))
        .await;
    assert!(
        photo["error"].as_str().unwrap().starts_with("no extractable text"),
        "{photo}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ocr_the_server_is_ready_and_images_fail_with_that_reason() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("OCR_COMMAND", "/nonexistent/tesseract".into())],
        ..Default::default()
    })
    .await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["ocr"], "unavailable", "{ready}");

    let image = app.ingest_failing("scan.png", scan("crazyones.png")).await;
    assert!(
        image["error"].as_str().unwrap().starts_with("ocr unavailable"),
        "{image}"
    );
    // A scanned PDF fails the same way; its text pages would have been kept.
    let scanned = app
        .ingest_failing("scan.pdf", crate::helpers::corpus("cmyk-image.pdf"))
        .await;
    assert!(
        scanned["error"].as_str().unwrap().starts_with("ocr unavailable"),
        "{scanned}"
    );
    let mixed = app.ingest("mixed.pdf", scan("mixed.pdf")).await;
    assert_eq!(mixed["pages"], 2, "{mixed}");
    // Other formats are not affected.
    app.ingest("note.txt", b"The depot opens at seven.".to_vec()).await;
}
