//! Text out of a file, page by page. Parsers run in a child process with time
//! and memory limits ([`Extractor`]), or on a low-priority thread with a time
//! limit; either way a parser failure becomes a failed document, not a dead server.

mod html;
mod isolated;
pub mod pdf;
mod text;

pub use isolated::{CHILD_COMMAND, Extractor, IsolationUnavailable, child_main};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::ContentType;

/// A document's text, one entry per page (plain text and Markdown are one page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractedText {
    pub pages: Vec<String>,
    /// Pages that could not be read while others could.
    pub unreadable_pages: Vec<u32>,
}

impl ExtractedText {
    pub fn has_text(&self) -> bool {
        self.pages.iter().any(|p| p.chars().any(char::is_alphanumeric))
    }
}

/// Why a document could not be read. The `Display` text is what the document's
/// `error` field shows.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
pub enum ExtractError {
    #[error("encrypted: the PDF needs a password")]
    Encrypted,
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("no extractable text (scanned?)")]
    NoText,
    #[error("corrupt: the parser crashed ({0})")]
    Panicked(String),
    #[error("timeout: extraction took longer than {0} s")]
    Timeout(u64),
    #[error("too large: extraction needed more than {0} MiB of memory (EXTRACT_MEMORY_MB)")]
    OutOfMemory(u64),
    #[error("could not read the stored file: {0}")]
    Io(String),
}

/// A typographic ligature (U+FB00..FB06, as PDF fonts often encode "fi") as
/// the letters it stands for, so that "ﬁlled" is found by "filled"; any other
/// character as itself.
pub fn expand_ligature(c: char) -> std::borrow::Cow<'static, str> {
    let letters = match c {
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        '\u{fb05}' | '\u{fb06}' => "st",
        other => return std::borrow::Cow::Owned(other.to_string()),
    };
    std::borrow::Cow::Borrowed(letters)
}

/// Extracts on the calling thread, catching parser panics.
pub fn extract_bytes(content_type: ContentType, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let result = catch_unwind(AssertUnwindSafe(|| match content_type {
        ContentType::Pdf => pdf::extract(bytes),
        ContentType::PlainText | ContentType::Markdown => text::extract(bytes),
        ContentType::Html => html::extract(bytes),
    }));
    let extracted = result.map_err(|panic| ExtractError::Panicked(panic_message(&*panic)))??;
    if !extracted.has_text() {
        return Err(ExtractError::NoText);
    }
    Ok(extracted)
}

/// Reads and extracts a stored file on a low-priority thread, giving up after `timeout`.
///
/// A parser stuck in a loop keeps its thread until it ends; the document fails at
/// the deadline either way. [`Extractor`] isolates better, in a child process.
pub(crate) async fn extract_in_thread(
    path: &Path,
    content_type: ContentType,
    timeout: Duration,
) -> Result<ExtractedText, ExtractError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| ExtractError::Io(e.to_string()))?;
    let task = crate::background::run("docqa-extract", move || extract_bytes(content_type, &bytes));
    match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(ExtractError::Timeout(timeout.as_secs())),
        Ok(Err(thread)) => Err(ExtractError::Panicked(thread.to_string())),
        Ok(Ok(result)) => result,
    }
}

pub(crate) use crate::background::panic_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let result = catch_unwind(|| -> Result<(), ExtractError> { panic!("bad length of hexstring") });
        let message = panic_message(&*result.unwrap_err());
        assert_eq!(message, "bad length of hexstring");
    }

    #[test]
    fn random_bytes_behind_a_pdf_header_are_corrupt() {
        let mut bytes = b"%PDF-1.4\n".to_vec();
        bytes.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        let err = extract_bytes(ContentType::Pdf, &bytes).unwrap_err();
        assert!(
            matches!(err, ExtractError::Corrupt(_) | ExtractError::Panicked(_)),
            "{err:?}"
        );
    }

    #[test]
    fn whitespace_is_no_text() {
        assert_eq!(
            extract_bytes(ContentType::PlainText, b"  \n\n \t "),
            Err(ExtractError::NoText)
        );
    }
}
