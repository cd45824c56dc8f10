//! Plain text and Markdown: the text itself, as one page. Markdown stays as
//! written, so that quotes from it are found verbatim.

use super::{ExtractError, ExtractedText};

pub fn extract(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| ExtractError::Corrupt(format!("not UTF-8: {e}")))?;
    Ok(ExtractedText {
        pages: vec![text.replace("\r\n", "\n")],
        ..Default::default()
    })
}
