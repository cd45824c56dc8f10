//! `docqa eval` end to end with the real binary: tiny datasets in the
//! benchmarks' own formats, whose right answers are known.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::fixtures::pdf_with_pages;
use crate::helpers::{model_dir, onnx_vars};

fn eval(data: &Path, dataset: &str) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docqa"));
    command
        .args(["eval", dataset, "--quiet", "--json", "-", "--data"])
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMBEDDER", "local")
        .env("EMBED_MODEL_DIR", model_dir())
        .env("RUST_LOG", "error");
    for (k, v) in onnx_vars() {
        command.env(k, v);
    }
    let output = command.output().expect("docqa eval runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn mode<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["retrieval"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["retrieval"] == name)
        .unwrap_or_else(|| panic!("{report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn scifact_format_scores_are_the_known_ones() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("scifact");
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    write_lines(
        &dir.join("corpus.jsonl"),
        &[
            json!({"_id": "101", "title": "Volcanic eruptions", "text": "Basaltic lava flows from shield volcanoes in Hawaii erupt effusively."}),
            json!({"_id": "102", "title": "Honeybee navigation", "text": "Foraging honeybees communicate the direction of nectar with a waggle dance."}),
            json!({"_id": "103", "title": "Tidal locking", "text": "The Moon always shows the same face to Earth because of tidal locking."}),
            json!({"_id": "104", "title": "Sourdough fermentation", "text": "Lactobacilli and wild yeasts leaven sourdough bread and make it sour."}),
        ],
    );
    write_lines(
        &dir.join("queries.jsonl"),
        &[
            json!({"_id": "1", "text": "honeybees waggle dance nectar direction"}),
            json!({"_id": "2", "text": "shield volcanoes basaltic lava Hawaii"}),
            // Judged against an abstract it shares no word with: BM25 cannot find it.
            json!({"_id": "3", "text": "sourdough lactobacilli yeasts bread"}),
            json!({"_id": "4", "text": "not judged, so not asked"}),
        ],
    );
    std::fs::write(
        dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\n1\t102\t1\n2\t101\t1\n3\t103\t1\n",
    )
    .unwrap();

    let report = eval(data.path(), "scifact");
    assert_eq!(report["ingest"]["ready"], 4, "{report}");
    let bm25 = mode(&report, "bm25");
    assert_eq!(bm25["questions"], 3);
    // Two of three at rank 1, the third never: nDCG@10 = R@1 = MRR = 2/3.
    for metric in ["ndcg_at_10", "recall_at_1", "recall_at_10", "mrr_at_10"] {
        assert!(
            (bm25[metric].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
            "{metric}: {bm25}"
        );
    }
    let hybrid = mode(&report, "hybrid");
    assert!(hybrid["recall_at_1"].as_f64().unwrap() >= 2.0 / 3.0 - 1e-9, "{hybrid}");
    assert!(
        hybrid["ndcg_at_10"].as_f64().unwrap() < 1.0,
        "query 3's judged abstract is not about it: {hybrid}"
    );
    assert!(
        mode(&report, "dense")["recall_at_1"].as_f64().unwrap() >= 2.0 / 3.0 - 1e-9,
        "{report}"
    );
    assert_eq!(report["search_latency"]["requests"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn squad_format_finds_gold_paragraphs_and_scores_answers() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("squad");
    std::fs::create_dir_all(dir.join("articles")).unwrap();
    let paragraphs = [
        (
            "Lighthouses",
            "The Eddystone Lighthouse stands on dangerous rocks fourteen kilometres south of Rame Head in Cornwall. Its present tower was designed by James Douglass and first lit in 1882.",
        ),
        (
            "Lighthouses",
            "A Fresnel lens concentrates the lamp's light into a beam. Augustin-Jean Fresnel invented the lens in 1822 for French lighthouses.",
        ),
        (
            "Glaciers",
            "The Aletsch Glacier is the largest glacier in the Alps, about twenty kilometres long, in the canton of Valais in Switzerland.",
        ),
        (
            "Glaciers",
            "Glacial retreat since 1850 has exposed moraines; the Rhone Glacier lost more than a kilometre of length during the twentieth century.",
        ),
    ];
    let mut paragraph_lines = Vec::new();
    for title in ["Lighthouses", "Glaciers"] {
        let mut article = String::new();
        for (j, (_, text)) in paragraphs.iter().filter(|(t, _)| *t == title).enumerate() {
            if !article.is_empty() {
                article.push_str("\n\n");
            }
            let start = article.chars().count();
            article.push_str(text);
            paragraph_lines.push(json!({
                "paragraph_id": format!("{title}#{j}"), "title": title, "split": "dev",
                "article_file": format!("articles/{title}.txt"),
                "article_char_start": start, "article_char_end": article.chars().count(), "context": text
            }));
        }
        std::fs::write(dir.join(format!("articles/{title}.txt")), article).unwrap();
    }
    write_lines(&dir.join("paragraphs.jsonl"), &paragraph_lines);
    let question = |q: &str, paragraph: &str, answer: &str| {
        json!({"id": q, "question": q, "title": paragraph.split('#').next(), "split": "dev", "paragraph_id": paragraph,
               "answers": [{"text": answer, "paragraph_char_start": 0, "article_char_start": 0}]})
    };
    write_lines(
        &dir.join("questions.jsonl"),
        &[
            question(
                "Who designed the present tower of the Eddystone Lighthouse?",
                "Lighthouses#0",
                "James Douglass",
            ),
            question("In what year did Fresnel invent his lens?", "Lighthouses#1", "1822"),
            question("Which canton is the Aletsch Glacier in?", "Glaciers#0", "Valais"),
            question(
                "How much length did the Rhone Glacier lose in the twentieth century?",
                "Glaciers#1",
                "more than a kilometre",
            ),
        ],
    );
    std::fs::write(
        dir.join("split.json"),
        json!({"dev": ["Lighthouses", "Glaciers"], "heldout": []}).to_string(),
    )
    .unwrap();

    let report = eval(data.path(), "squad");
    assert_eq!(report["ingest"]["ready"], 2, "{report}");
    let hybrid = mode(&report, "hybrid");
    assert_eq!(hybrid["questions"], 4);
    assert_eq!(
        hybrid["recall_at_10"], 1.0,
        "every gold paragraph is in these two articles: {report}"
    );
    assert!(report.get("notes").is_none(), "every chunk was located: {report}");
    let answers = &report["answers"];
    assert_eq!(answers["questions"], 4);
    assert!(
        answers["contains_gold"].as_f64().unwrap() >= 0.75,
        "the answer sentences are the gold ones: {report}"
    );
    assert_eq!(report["query_latency"]["requests"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn uda_format_scores_gold_pages_and_citations() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("uda");
    for sub in ["wiki_nq_docs", "fin_docs"] {
        std::fs::create_dir_all(dir.join("pdfs").join(sub)).unwrap();
    }
    let filler = "Visitors reach the museum by the coastal footpath, and the cafe opens at ten in summer and at eleven in winter.";
    std::fs::write(
        dir.join("pdfs/wiki_nq_docs/Lighthouses.pdf"),
        pdf_with_pages(&[
            "The Eddystone Lighthouse stands on dangerous rocks south of Rame Head in Cornwall. Its present tower was designed by James Douglass and first lit in 1882.",
            "A Fresnel lens concentrates the lamp's light into a beam. Augustin-Jean Fresnel invented the lens in 1822 for French lighthouses.",
            filler,
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.join("pdfs/fin_docs/Glaciers.pdf"),
        pdf_with_pages(&[
            "Glacial retreat since 1850 has exposed moraines across the Alps, and meltwater lakes have formed below many tongues.",
            "The Aletsch Glacier is the largest glacier in the Alps, about twenty kilometres long, in the canton of Valais in Switzerland.",
        ]),
    )
    .unwrap();
    write_lines(
        &dir.join("nq_qa.jsonl"),
        &[json!({
            "subset": "nq", "doc_name": "Lighthouses", "pdf": "pdfs/wiki_nq_docs/Lighthouses.pdf", "q_uid": "1",
            "question": "who designed the present tower of the eddystone lighthouse",
            "answers": {"short_answer": "James Douglass", "long_answer": "Its present tower was designed by James Douglass and first lit in 1882."}
        })],
    );
    write_lines(
        &dir.join("fin_qa.jsonl"),
        &[json!({
            "subset": "fin", "doc_name": "Glaciers", "pdf": "pdfs/fin_docs/Glaciers.pdf", "q_uid": "G/page_2.pdf-1",
            "question": "in which canton is the aletsch glacier?", "answers": {"answer_1": "Valais", "answer_2": "0"},
            "gold_page_1based_hint": "2"
        })],
    );
    write_lines(
        &dir.join("tat_qa.jsonl"),
        &[json!({
            "subset": "tat", "doc_name": "Lighthouses", "pdf": "pdfs/wiki_nq_docs/Lighthouses.pdf", "q_uid": "2",
            "question": "In what year did Fresnel invent the lens?", "answers": {"answer": "['1822']"},
            "extended": null, "answer_type": "span"
        })],
    );
    // A free-form answer written nowhere in the PDF: asked, but not scored on pages.
    write_lines(
        &dir.join("feta_qa.jsonl"),
        &[json!({
            "subset": "feta", "doc_name": "Lighthouses", "pdf": "pdfs/wiki_nq_docs/Lighthouses.pdf", "q_uid": "3",
            "question": "What does a Fresnel lens do?", "answers": {"answer": "It bundles light so that ships see it from far away."}
        })],
    );

    let report = eval(data.path(), "uda");
    assert_eq!(report["ingest"]["ready"], 2, "{report}");
    let hybrid = mode(&report, "hybrid");
    assert_eq!(hybrid["questions"], 3, "three questions have gold pages: {report}");
    assert_eq!(hybrid["recall_at_10"], 1.0, "{report}");
    assert!(hybrid["recall_at_1"].as_f64().unwrap() >= 2.0 / 3.0 - 1e-9, "{report}");
    let all = report["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subset"] == "all")
        .unwrap();
    assert_eq!(
        (
            all["questions"].as_u64(),
            all["located"].as_u64(),
            all["extractable"].as_u64()
        ),
        (Some(4), Some(3), Some(3)),
        "{report}"
    );
    assert!(all["cites_gold_page"].as_f64().unwrap() >= 2.0 / 3.0 - 1e-9, "{report}");
    assert!(
        report["answers"]["contains_gold"].as_f64().unwrap() >= 2.0 / 3.0 - 1e-9,
        "{report}"
    );
    let fin = report["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subset"] == "fin")
        .unwrap();
    assert_eq!(
        fin["page_recall_at_5"], 1.0,
        "the hinted page is the Aletsch page: {report}"
    );
    assert_eq!(report["query_latency"]["requests"], 4);
}
