//! What a file is, judged by its bytes: magic numbers first, then whether it is
//! UTF-8 text, then whether that text reads as Markdown. The file name is never
//! consulted.

use crate::domain::ContentType;

/// How many leading bytes are kept to judge a file.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The verdict on an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Supported(ContentType),
    /// A format we recognise but do not read (named, for the error message).
    Unsupported(&'static str),
}

/// Binary formats people upload by mistake, so the 415 can say what was sent.
const KNOWN_BINARY: &[(&[u8], &str)] = &[
    (b"PK\x03\x04", "application/zip (also docx, xlsx, pptx, epub)"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword (OLE2)"),
    (b"\x1f\x8b", "application/gzip"),
    (b"{\\rtf", "application/rtf"),
    (b"\x7fELF", "application/x-executable"),
];

/// Judges a file from its first bytes (`head`, at most [`HEAD_BYTES`]) and whether
/// the whole of it is valid UTF-8.
pub fn detect(head: &[u8], whole_is_utf8: bool) -> Detected {
    // PDF readers accept the header anywhere in the first KiB.
    if head.len() >= 5 && head[..head.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
        return Detected::Supported(ContentType::Pdf);
    }
    if let Some((_, name)) = KNOWN_BINARY.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Detected::Unsupported(name);
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    if !whole_is_utf8 || text.contains(&0) {
        return Detected::Unsupported("application/octet-stream (binary, or text that is not UTF-8)");
    }
    let start = String::from_utf8_lossy(&text[..text.len().min(512)])
        .trim_start()
        .to_ascii_lowercase();
    if looks_like_html(&start) {
        return Detected::Supported(ContentType::Html);
    }
    if looks_like_markdown(&String::from_utf8_lossy(text)) {
        Detected::Supported(ContentType::Markdown)
    } else {
        Detected::Supported(ContentType::PlainText)
    }
}

/// HTML by its opening: a doctype, `<html>`, or a document that starts with a
/// head or body element (after an optional XML declaration or comment).
fn looks_like_html(start: &str) -> bool {
    let mut rest = start;
    loop {
        rest = rest.trim_start();
        if rest.starts_with("<?xml") || rest.starts_with("<!--") {
            let close = if rest.starts_with("<?xml") { "?>" } else { "-->" };
            match rest.find(close) {
                Some(end) => rest = &rest[end + close.len()..],
                None => return false,
            }
        } else {
            break;
        }
    }
    ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|opening| rest.starts_with(opening))
}

/// Markdown if enough lines carry its syntax: headings, fences, lists with
/// links or emphasis, tables.
fn looks_like_markdown(text: &str) -> bool {
    let mut score = 0;
    for line in text.lines().take(400) {
        let line = line.trim_start();
        let heading = line.starts_with('#') && line.trim_start_matches('#').starts_with(' ');
        let fence = line.starts_with("```") || line.starts_with("~~~");
        let link = line.contains("](") && line.contains('[');
        let emphasis = line.contains("**") || line.contains("__");
        let table = line.starts_with('|') && line.ends_with('|');
        if heading || fence {
            score += 2;
        } else if link || emphasis || table {
            score += 1;
        }
        if score >= 2 {
            return true;
        }
    }
    false
}

/// Validates UTF-8 across buffer boundaries without holding the whole file.
#[derive(Debug, Default)]
pub struct Utf8Validator {
    /// The incomplete sequence at the end of the last buffer (at most 3 bytes).
    carry: Vec<u8>,
    invalid: bool,
}

impl Utf8Validator {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.invalid {
            return;
        }
        let mut joined;
        let data = if self.carry.is_empty() {
            bytes
        } else {
            joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(bytes);
            &joined[..]
        };
        match std::str::from_utf8(data) {
            Ok(_) => self.carry.clear(),
            Err(e) if e.error_len().is_none() => {
                // Truncated sequence at the end: keep it for the next buffer.
                self.carry = data[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.invalid = true,
        }
    }

    pub fn is_valid(&self) -> bool {
        !self.invalid && self.carry.is_empty()
    }

    /// No invalid sequence so far (one may still be cut at the end).
    pub fn is_valid_so_far(&self) -> bool {
        !self.invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_is_known_by_its_header() {
        assert_eq!(detect(b"%PDF-1.7\n...", false), Detected::Supported(ContentType::Pdf));
        assert_eq!(detect(b"\n\n%PDF-1.4", false), Detected::Supported(ContentType::Pdf));
    }

    #[test]
    fn text_and_markdown_are_told_apart_by_content() {
        assert_eq!(
            detect(b"Just a note.\nAnother line.", true),
            Detected::Supported(ContentType::PlainText)
        );
        assert_eq!(
            detect(b"# Title\n\nSome *text* here.\n", true),
            Detected::Supported(ContentType::Markdown)
        );
    }

    #[test]
    fn binaries_are_refused_with_a_name() {
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\nxxxx", false),
            Detected::Unsupported("image/png")
        );
        assert!(matches!(detect(&[0, 159, 146, 150], false), Detected::Unsupported(_)));
    }

    #[test]
    fn html_is_known_by_its_opening() {
        for html in [
            &b"<!DOCTYPE html><html>"[..],
            b"  <html lang=\"en\"><body>x</body></html>",
            b"<?xml version=\"1.0\"?>\n<!-- saved --><html xmlns=\"http://www.w3.org/1999/xhtml\">",
            b"<body><p>fragment</p></body>",
        ] {
            assert_eq!(
                detect(html, true),
                Detected::Supported(ContentType::Html),
                "{}",
                String::from_utf8_lossy(html)
            );
        }
        // A text that merely mentions a tag is text.
        assert_eq!(
            detect(b"Use <html> to start a page.", true),
            Detected::Supported(ContentType::PlainText)
        );
    }

    #[test]
    fn utf8_is_validated_across_buffers() {
        let text = "naïve café — ok".as_bytes();
        for split in 0..text.len() {
            let mut v = Utf8Validator::default();
            v.feed(&text[..split]);
            v.feed(&text[split..]);
            assert!(v.is_valid(), "split at {split}");
        }
        let mut v = Utf8Validator::default();
        v.feed(b"abc\xff");
        assert!(!v.is_valid());
        let mut v = Utf8Validator::default();
        v.feed(b"abc\xc3");
        assert!(!v.is_valid(), "a truncated sequence at the end is invalid");
    }
}
