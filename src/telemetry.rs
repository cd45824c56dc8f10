//! Logging through `tracing`: human-readable by default, JSON with
//! `DOCQA_LOG=json`; levels from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    // pdf-extract warns about every odd glyph and qdrant-edge about internals it
    // does not use here; their errors still show.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pdf_extract=error,qdrant_edge=error"));
    let json = std::env::var("DOCQA_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    install_panic_hook();
}

/// Panics (a parser's, say) go to the log with their location instead of raw stderr.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        let message = crate::background::panic_message(info.payload());
        tracing::error!(location = location.as_deref().unwrap_or("?"), %message, "panic");
    }));
}
