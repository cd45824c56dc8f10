//! Office, OpenDocument and CSV files (tests/fixtures/office, written by
//! scripts/make_office_fixtures.py from corpus text around known facts): told
//! apart by their content, not their name; read page by page (page = slide,
//! page = sheet); answers cite the page the fact is on; hidden sheets and
//! slides stay out; table rows keep their column names.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/office")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Case {
    file: &'static str,
    content_type: &'static str,
    pages: u64,
    question: &'static str,
    page: u64,
    /// Text the cited chunk holds, as docqa writes it.
    fact: &'static str,
}

const CASES: &[Case] = &[
    Case {
        file: "report.docx",
        content_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        pages: 3,
        question: "When does the audit committee meet?",
        page: 3,
        fact: "The audit committee meets on the first Tuesday of each quarter",
    },
    Case {
        file: "deck.pptx",
        content_type: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        pages: 3,
        question: "When does the Lisbon office open?",
        page: 3,
        fact: "Lisbon office opens in March 2027",
    },
    Case {
        file: "book.xlsx",
        content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        pages: 2,
        question: "What is the stock value of the label printers?",
        page: 2,
        fact: "Item: Label printer | Unit price: 129 | Units: 40 | Stock value: 5160",
    },
    Case {
        file: "fleet.xls",
        content_type: "application/vnd.ms-excel",
        pages: 1,
        question: "Who drives the Scania truck?",
        page: 1,
        fact: "Truck: Scania R500 | Plate: EL 51877 | Driver: Amalie Skram",
    },
    Case {
        file: "policy.odt",
        content_type: "application/vnd.oasis.opendocument.text",
        pages: 2,
        question: "What is the daily allowance for trips abroad?",
        page: 2,
        fact: "The daily allowance for trips abroad is 85 euros.",
    },
    Case {
        file: "briefing.odp",
        content_type: "application/vnd.oasis.opendocument.presentation",
        pages: 2,
        question: "Where are lost badges replaced?",
        page: 2,
        fact: "lost badges are replaced at the front desk within one hour",
    },
    Case {
        file: "staff.ods",
        content_type: "application/vnd.oasis.opendocument.spreadsheet",
        pages: 2,
        question: "What is the phone extension of Emil Holm?",
        page: 1,
        fact: "Name: Emil Holm | Office: Bergen | Phone extension: 2274",
    },
    Case {
        file: "shipments.csv",
        content_type: "text/csv",
        pages: 1,
        question: "Which carrier takes shipment SH-2001 to Reykjavik?",
        page: 1,
        fact: "Shipment: SH-2001 | Destination: Reykjavik, Iceland | Weight (kg): 640 | Carrier: Eimskip",
    },
];

async fn document_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/documents/{id}")).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_format_is_read_by_its_content_and_cited_on_the_page_of_the_fact() {
    let app = TestApp::spawn().await;
    for case in CASES {
        // A name that says nothing: the bytes decide.
        let document = app.ingest("upload.bin", fixture(case.file)).await;
        let id = document["id"].as_str().unwrap();
        let stored = document_of(&app, id).await;
        assert_eq!(stored["content_type"], case.content_type, "{}: {stored}", case.file);
        assert_eq!(stored["pages"], case.pages, "{}: {stored}", case.file);

        let found = app.hits_in(id, case.question).await;
        let top = &found[0];
        assert!(
            top["text"].as_str().unwrap().contains(case.fact),
            "{}: the top hit does not hold {:?}: {top}",
            case.file,
            case.fact
        );
        assert!(
            top["page_start"].as_u64() <= Some(case.page) && Some(case.page) <= top["page_end"].as_u64(),
            "{}: the top hit is not on page {}: {top}",
            case.file,
            case.page
        );

        let (status, answer) = app
            .query(json!({"question": case.question, "filter": {"document_ids": [id]}}))
            .await;
        assert_eq!(status, 200, "{answer}");
        let citations = answer["citations"].as_array().unwrap();
        assert!(
            citations.iter().any(|c| c["page"] == case.page),
            "{}: no citation on page {} in {answer}",
            case.file,
            case.page
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_sheets_and_slides_stay_out_and_table_rows_keep_their_headers() {
    let app = TestApp::spawn().await;
    let book = app.ingest("book.xlsx", fixture("book.xlsx")).await;
    let deck = app.ingest("deck.pptx", fixture("deck.pptx")).await;
    let staff = app.ingest("staff.ods", fixture("staff.ods")).await;
    let report = app.ingest("report.docx", fixture("report.docx")).await;
    for (document, hidden) in [(&book, "4417"), (&deck, "Bluefin"), (&staff, "99999")] {
        let id = document["id"].as_str().unwrap();
        for hit in app
            .hits_in(id, &format!("vault code merger codename salary {hidden}"))
            .await
        {
            assert!(
                !hit["text"].as_str().unwrap().contains(hidden),
                "hidden content indexed: {hit}"
            );
        }
    }

    // The last row of a 62-row table, pages away from its header row.
    let id = report["id"].as_str().unwrap();
    let found = app.hits_in(id, "Which depot is in Longyearbyen?").await;
    let row = "Region: Arctic | City: Longyearbyen | Manager: Siri Dahl | Capacity (pallets): 75";
    assert!(
        found.iter().any(|hit| hit["text"].as_str().unwrap().contains(row)),
        "{found:?}"
    );
    // Headings stay headings, list items keep their markers, the header once.
    let first_page = app
        .hits_in(id, "Quarterly operations report principles night shift")
        .await;
    let text = first_page
        .iter()
        .find(|hit| hit["page_start"] == 1)
        .map(|hit| hit["text"].as_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(text.contains("# Quarterly operations report"), "{text}");
    assert!(text.contains("- Beautiful is better than ugly."), "{text}");
    assert!(text.contains("night shift at every depot starts at 22:00"), "{text}");
    let header_count: usize = app
        .hits_in(id, "Nordic Logistics internal")
        .await
        .iter()
        .map(|hit| {
            hit["text"]
                .as_str()
                .unwrap()
                .matches("Nordic Logistics - internal")
                .count()
        })
        .sum();
    assert_eq!(header_count, 1, "the page header is written once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zip_that_holds_no_document_is_refused_by_what_it_is() {
    let app = TestApp::spawn().await;
    // A zip of a text file: the central directory lists no Office part.
    let mut zip = Vec::new();
    {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut zip));
        writer
            .start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"just a note").unwrap();
        writer.finish().unwrap();
    }
    let response = app.upload(None, &[("report.docx", zip)], None, true).await;
    let body = assert_problem(response, 415, "/problems/unsupported-media-type").await;
    assert!(body["detail"].as_str().unwrap().contains("application/zip"), "{body}");
    // An Office file whose main part is not XML (the directory says Word) fails as a document.
    let mut broken = Vec::new();
    {
        use std::io::{Read, Write};
        let mut source = zip::ZipArchive::new(std::io::Cursor::new(fixture("report.docx"))).unwrap();
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut broken));
        for i in 0..source.len() {
            let mut entry = source.by_index(i).unwrap();
            let name = entry.name().unwrap().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            if name == "word/document.xml" {
                content = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
            }
            writer
                .start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(&content).unwrap();
        }
        writer.finish().unwrap();
    }
    let document = app.ingest_failing("broken.docx", broken).await;
    assert!(document["error"].as_str().unwrap().starts_with("corrupt"), "{document}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}
