//! Text out of a file, page by page. Parsers run in a child process with time
//! and memory limits ([`Extractor`]), or on a low-priority thread with a time
//! limit; either way a parser failure becomes a failed document, not a dead server.

mod delimited;
mod geometry;
mod html;
mod isolated;
mod layout;
mod ocr;
mod odf;
mod office;
pub mod pdf;
mod text;

pub use delimited::delimiter_of;
pub use ocr::Ocr;

pub use isolated::{CHILD_COMMAND, Extractor, IsolationUnavailable, child_main};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{ContentType, PageGeometry};

/// Where a long extraction stands, for the job's progress: pages done, pages in
/// all (OCR of a PDF's scanned pages, one page at a time).
pub type PageProgress = tokio::sync::watch::Sender<(u64, u64)>;

/// A document's text, one entry per page (plain text and Markdown are one page).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtractedText {
    pub pages: Vec<String>,
    /// Pages that could not be read while others could.
    pub unreadable_pages: Vec<u32>,
    /// What was left out on purpose, for the record ("hidden sheet(s) skipped: …").
    #[serde(default)]
    pub notes: Vec<String>,
    /// Pages (1-based) without a usable text layer, for OCR: a scanned page, or
    /// one whose text fails the quality check.
    #[serde(default)]
    pub needs_ocr: Vec<u32>,
    /// Per page, where its words stand (PDF text layers and OCR): for citation
    /// boxes. Empty, or `None` for a page, where the format has no such thing.
    #[serde(default)]
    pub geometry: Vec<Option<PageGeometry>>,
    /// The pages read by OCR, with Tesseract's mean word confidence (0–100).
    #[serde(default)]
    pub ocr_pages: Vec<(u32, Option<f32>)>,
}

impl ExtractedText {
    pub fn has_text(&self) -> bool {
        self.pages.iter().any(|p| p.chars().any(char::is_alphanumeric))
    }

    /// Puts the OCR of one page (1-based) in that page's place: its text, its
    /// words' boxes scaled by `scale` (image pixels to the page's unit) and its
    /// confidence.
    fn take_ocr_page(&mut self, page: u32, mut recognised: ExtractedText, scale: f32) {
        let index = page as usize - 1;
        let Some(slot) = self.pages.get_mut(index) else {
            return;
        };
        *slot = recognised.pages.drain(..).next().unwrap_or_default();
        if self.geometry.len() < self.pages.len() {
            self.geometry.resize(self.pages.len(), None);
        }
        self.geometry[index] = recognised.geometry.drain(..).next().flatten().map(|mut geometry| {
            geometry.width *= scale;
            geometry.height *= scale;
            for word in &mut geometry.words {
                let r = &mut word.rect;
                (r.x, r.y, r.width, r.height) = (r.x * scale, r.y * scale, r.width * scale, r.height * scale);
            }
            geometry
        });
        let confidence = recognised.ocr_pages.first().and_then(|(_, confidence)| *confidence);
        self.ocr_pages.push((page, confidence));
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
    #[error("no extractable text (no text layer, and none found by OCR)")]
    NoText,
    #[error("corrupt: the parser crashed ({0})")]
    Panicked(String),
    #[error("timeout: extraction took longer than {0} s")]
    Timeout(u64),
    #[error("too large: extraction needed more than {0} MiB of memory (EXTRACT_MEMORY_MB)")]
    OutOfMemory(u64),
    #[error("could not read the stored file: {0}")]
    Io(String),
    #[error("too many pages: {pages}, more than MAX_PAGES ({limit})")]
    TooManyPages { pages: usize, limit: usize },
    #[error("too much text: more than MAX_DOCUMENT_CHARS ({limit}) characters")]
    TooMuchText { limit: usize },
    #[error("ocr unavailable: {0}")]
    OcrUnavailable(String),
    #[error("too many pages to OCR: more than OCR_MAX_PAGES ({limit})")]
    TooManyOcrPages { limit: usize },
}

/// How much one document may hold, so that what a server keeps for it is
/// bounded by settings, not by the document (`MAX_PAGES`, `MAX_DOCUMENT_CHARS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractLimits {
    pub max_pages: usize,
    pub max_chars: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_pages: 5_000,
            max_chars: 20_000_000,
        }
    }
}

impl ExtractLimits {
    /// UTF-8 takes at most four bytes a character: a text file larger than
    /// this has too many characters, and is refused before it is read.
    fn max_text_bytes(&self) -> u64 {
        (self.max_chars as u64).saturating_mul(4)
    }
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

/// Removes control characters but line breaks and tabs (a lone CR becomes a
/// line break): NUL cannot be stored in a Postgres text column, and the others
/// only garble what is shown and quoted. Allocates only when there is one.
fn drop_control_characters(page: &mut String) -> bool {
    let keep = |c: char| c == '\n' || c == '\t' || !c.is_control();
    if page.chars().all(keep) {
        return false;
    }
    *page = page
        .chars()
        .filter_map(|c| match c {
            '\r' => Some('\n'),
            c if keep(c) => Some(c),
            _ => None,
        })
        .collect();
    true
}

/// Formats whose text is about as long as the file (markup aside): judged by
/// the file's size before anything parses them.
fn is_text_format(content_type: ContentType) -> bool {
    matches!(
        content_type,
        ContentType::PlainText | ContentType::Markdown | ContentType::Html | ContentType::Csv
    )
}

/// Extracts on the calling thread, catching parser panics, within the default limits.
pub fn extract_bytes(content_type: ContentType, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    extract_within(content_type, bytes, ExtractLimits::default())
}

/// Extracts on the calling thread, catching parser panics.
pub fn extract_within(
    content_type: ContentType,
    bytes: &[u8],
    limits: ExtractLimits,
) -> Result<ExtractedText, ExtractError> {
    let too_much_text = ExtractError::TooMuchText {
        limit: limits.max_chars,
    };
    if is_text_format(content_type) && bytes.len() as u64 > limits.max_text_bytes() {
        return Err(too_much_text);
    }
    let result = catch_unwind(AssertUnwindSafe(|| match content_type {
        ContentType::Pdf => pdf::extract(bytes, limits.max_pages),
        ContentType::PlainText | ContentType::Markdown => text::extract(bytes),
        ContentType::Html => html::extract(bytes),
        ContentType::Csv => delimited::extract(bytes),
        ContentType::Docx
        | ContentType::Pptx
        | ContentType::Xlsx
        | ContentType::Doc
        | ContentType::Ppt
        | ContentType::Xls => office::extract(content_type, bytes),
        ContentType::Odt | ContentType::Odp | ContentType::Ods => odf::extract(content_type, bytes),
        ContentType::Png | ContentType::Jpeg | ContentType::Tiff | ContentType::Webp => Err(
            ExtractError::OcrUnavailable("images are read by the OCR process (Extractor), not in-process".into()),
        ),
    }));
    let extracted = result.map_err(|panic| ExtractError::Panicked(panic_message(&*panic)))??;
    checked(extracted, limits)
}

/// A document's pages within the limits, without control characters, and with text.
fn checked(mut extracted: ExtractedText, limits: ExtractLimits) -> Result<ExtractedText, ExtractError> {
    if extracted.pages.len() > limits.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: extracted.pages.len(),
            limit: limits.max_pages,
        });
    }
    let mut chars = 0usize;
    for (index, page) in extracted.pages.iter_mut().enumerate() {
        // Its words' offsets would no longer hold.
        if drop_control_characters(page)
            && let Some(geometry) = extracted.geometry.get_mut(index)
        {
            *geometry = None;
        }
        chars += page.chars().count();
        if chars > limits.max_chars {
            return Err(ExtractError::TooMuchText {
                limit: limits.max_chars,
            });
        }
    }
    if !extracted.has_text() && extracted.needs_ocr.is_empty() {
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
    limits: ExtractLimits,
) -> Result<ExtractedText, ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    // Judged by its size before it is read into the server's memory.
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if is_text_format(content_type) && size > limits.max_text_bytes() {
        return Err(ExtractError::TooMuchText {
            limit: limits.max_chars,
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(io)?;
    let task = crate::background::run("docqa-extract", move || extract_within(content_type, &bytes, limits));
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
    fn control_characters_do_not_reach_the_text() {
        let mut head = "x".repeat(70_000);
        head.push_str("a\0b\x1b[31mc\rd\te\nf");
        let extracted = extract_bytes(ContentType::PlainText, head.as_bytes()).unwrap();
        assert!(
            extracted.pages[0].ends_with("ab[31mc\nd\te\nf"),
            "{:?}",
            &extracted.pages[0][70_000..]
        );
    }

    #[test]
    fn a_document_over_the_limits_fails_with_their_names() {
        let limits = ExtractLimits {
            max_pages: 5_000,
            max_chars: 1_000,
        };
        let text = "word ".repeat(300);
        let err = extract_within(ContentType::PlainText, text.as_bytes(), limits).unwrap_err();
        assert_eq!(err, ExtractError::TooMuchText { limit: 1_000 });
        assert!(err.to_string().contains("MAX_DOCUMENT_CHARS"));
        // Judged by its size alone: more bytes than four per allowed character.
        let huge = "x".repeat(4_001);
        assert!(matches!(
            extract_within(ContentType::Markdown, huge.as_bytes(), limits),
            Err(ExtractError::TooMuchText { .. })
        ));
        assert!(extract_within(ContentType::PlainText, "word ".repeat(100).as_bytes(), limits).is_ok());
    }

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
