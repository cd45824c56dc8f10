//! Logging through `tracing`: human-readable by default, JSON with
//! `DOCQA_LOG=json`; levels from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    // pdf-extract warns about every odd glyph and qdrant-edge about internals it
    // does not use here; their errors still show.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pdf_extract=error,qdrant_edge=error"));
    let json = std::env::var("DOCQA_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only for a person at a terminal: escape codes in a log file or a
    // collector are noise, and a way to hide text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
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
        let message = Sanitized(message);
        tracing::error!(location = location.as_deref().unwrap_or("?"), %message, "panic");
    }));
}

/// Text a client or a document chose (an id from a path, a parser's message, a
/// serde error quoting a field), fit for one log line: control characters and
/// invisible format characters are written escaped (`\n`, `\u{1b}`), so no
/// such text can end a log line early, forge the next one or drive a terminal.
pub struct Sanitized<T>(pub T);

impl<T: std::fmt::Display> std::fmt::Display for Sanitized<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        // Writes through an escaping adapter: no copy of the text is made.
        struct Escaping<'a, 'b>(&'a mut std::fmt::Formatter<'b>);
        impl Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for c in s.chars() {
                    if c.is_control() || is_format(c) {
                        write!(self.0, "{}", c.escape_default())?;
                    } else {
                        self.0.write_char(c)?;
                    }
                }
                Ok(())
            }
        }
        write!(Escaping(f), "{}", self.0)
    }
}

/// Bidirectional controls, zero-width characters and the byte order mark.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::Sanitized;

    #[test]
    fn client_text_stays_on_one_line() {
        let forged = "abc\nINFO request done status=200\u{1b}[2J\u{202e}";
        assert_eq!(
            Sanitized(forged).to_string(),
            "abc\\nINFO request done status=200\\u{1b}[2J\\u{202e}"
        );
        assert_eq!(Sanitized("Grüße, ok").to_string(), "Grüße, ok");
    }
}
