//! Prints what docqa extracts from files: pages, characters per page, time.
//! `cargo run --release --example extract -- FILE…`

use std::time::Instant;

use docqa::domain::ContentType;
use docqa::ingest::detect::{Detected, detect_bytes};
use docqa::ingest::extract::extract_bytes;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        let content_type = match detect_bytes(&bytes) {
            Detected::Supported(t) => t,
            Detected::Unsupported(what) => {
                println!("{path}: unsupported ({what})");
                continue;
            }
            Detected::Container(_) => {
                println!("{path}: a container that could not be opened");
                continue;
            }
        };
        let started = Instant::now();
        let result = extract_bytes(content_type, &bytes);
        let ms = started.elapsed().as_millis();
        match result {
            Ok(text) => {
                let chars: Vec<usize> = text.pages.iter().map(|p| p.chars().count()).collect();
                let first: String = text
                    .pages
                    .iter()
                    .find(|p| !p.trim().is_empty())
                    .map(|p| p.chars().take(70).collect())
                    .unwrap_or_default();
                println!(
                    "{path}: {} pages in {ms} ms, chars {:?}, unreadable {:?}, first {:?}",
                    chars.len(),
                    &chars[..chars.len().min(8)],
                    text.unreadable_pages,
                    first
                );
                if std::env::var("SHOW").is_ok() {
                    for (i, p) in text.pages.iter().enumerate() {
                        println!("--- page {} ---\n{p}", i + 1);
                    }
                }
            }
            Err(e) => println!(
                "{path}: {e} ({ms} ms, {})",
                if content_type == ContentType::Pdf {
                    "pdf"
                } else {
                    "text"
                }
            ),
        }
    }
}
