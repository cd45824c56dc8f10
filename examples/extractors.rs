//! One PDF through one parser (or the server's chain), as a JSON line: whether
//! it read, how many pages and characters, how long, how good the text looks,
//! and the text itself for comparison. `bench/extractors.sh` runs it once per
//! file and parser, each in its own process, so a crash costs one line.
//!
//!   cargo run --release --example extractors -- pdf-oxide|pdf-extract|chain FILE

use std::time::Instant;

use docqa::ingest::extract::pdf::{self, Parser, TextQuality};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [parser, file] = args.as_slice() else {
        eprintln!("usage: extractors pdf-oxide|pdf-extract|chain FILE");
        std::process::exit(2);
    };
    let bytes = std::fs::read(file).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(2);
    });
    let started = Instant::now();
    let result = match parser.as_str() {
        "pdf-oxide" => pdf::extract_with(Parser::PdfOxide, &bytes),
        "pdf-extract" => pdf::extract_with(Parser::PdfExtract, &bytes),
        "chain" => pdf::extract(&bytes, usize::MAX),
        other => {
            eprintln!("unknown parser {other}");
            std::process::exit(2);
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let line = match result {
        Ok(text) => json!({
            "file": file, "parser": parser, "ok": true, "ms": ms,
            "pages": text.pages.len(), "unreadable_pages": text.unreadable_pages.len(),
            "chars": text.pages.iter().map(|p| p.chars().count()).sum::<usize>(),
            "quality": TextQuality::of(&text), "text": text.pages,
        }),
        Err(e) => json!({"file": file, "parser": parser, "ok": false, "ms": ms, "error": e.to_string()}),
    };
    println!("{line}");
}
