//! What a file is, judged by its bytes: magic numbers first (and, for a zip or
//! an OLE2 compound file, what the container holds), then whether it is UTF-8
//! text, then whether that text reads as HTML, Markdown or CSV. The file name
//! is never consulted.

use std::io::{Read, Seek};

use crate::domain::ContentType;

/// How many leading bytes are kept to judge a file.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The verdict on an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Supported(ContentType),
    /// A format we recognise but do not read (named, for the error message).
    Unsupported(&'static str),
    /// A container whose contents decide (see [`open_container`]): the head
    /// alone cannot tell a Word file from any other zip.
    Container(Container),
}

/// Containers that hold documents of several kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// OOXML (docx, pptx, xlsx), OpenDocument (odt, odp, ods), or another zip.
    Zip,
    /// OLE2 compound files: legacy .doc, .ppt, .xls, and encrypted OOXML.
    Ole2,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const OLE2_MAGIC: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";

/// Images, read by OCR.
const IMAGES: &[(&[u8], ContentType)] = &[
    (b"\x89PNG\r\n\x1a\n", ContentType::Png),
    (b"\xff\xd8\xff", ContentType::Jpeg),
    (b"II*\x00", ContentType::Tiff),
    (b"MM\x00*", ContentType::Tiff),
];

/// Binary formats people upload by mistake, so the 415 can say what was sent.
const KNOWN_BINARY: &[(&[u8], &str)] = &[
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
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
    if head.starts_with(ZIP_MAGIC) {
        return Detected::Container(Container::Zip);
    }
    if head.starts_with(OLE2_MAGIC) {
        return Detected::Container(Container::Ole2);
    }
    if let Some((_, image)) = IMAGES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Detected::Supported(*image);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Detected::Supported(ContentType::Webp);
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
    } else if super::extract::delimiter_of(text).is_some() {
        Detected::Supported(ContentType::Csv)
    } else {
        Detected::Supported(ContentType::PlainText)
    }
}

/// Judges a whole file held in memory, containers opened.
pub fn detect_bytes(bytes: &[u8]) -> Detected {
    let head = &bytes[..bytes.len().min(HEAD_BYTES)];
    match detect(head, std::str::from_utf8(bytes).is_ok()) {
        Detected::Container(container) => open_container(std::io::Cursor::new(bytes), container),
        judged => judged,
    }
}

/// What a zip or OLE2 container holds, read from its directory (a zip's central
/// directory and `[Content_Types].xml` or `mimetype`; an OLE2 file's stream
/// names). Blocking; reads a few KiB, never the documents themselves.
pub fn open_container(mut file: impl Read + Seek, container: Container) -> Detected {
    if file.rewind().is_err() {
        return Detected::Unsupported("a zip or OLE2 container that could not be read");
    }
    // A directory a parser cannot make sense of is no document we can read;
    // a panic in that parser must not take the request down.
    let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match container {
        Container::Zip => zip_contents(file),
        Container::Ole2 => ole2_contents(file),
    }));
    judged.unwrap_or(Detected::Unsupported("a corrupt zip or OLE2 container"))
}

fn zip_contents(file: impl Read + Seek) -> Detected {
    const ZIP: Detected = Detected::Unsupported("application/zip (no Office or OpenDocument file inside)");
    let Ok(mut archive) = zip::ZipArchive::new(file) else {
        return Detected::Unsupported("a corrupt zip file");
    };
    // OpenDocument names its type in a `mimetype` entry.
    if let Some(mimetype) = small_entry(&mut archive, "mimetype") {
        return match mimetype.trim() {
            "application/vnd.oasis.opendocument.text" | "application/vnd.oasis.opendocument.text-template" => {
                Detected::Supported(ContentType::Odt)
            }
            "application/vnd.oasis.opendocument.presentation"
            | "application/vnd.oasis.opendocument.presentation-template" => Detected::Supported(ContentType::Odp),
            "application/vnd.oasis.opendocument.spreadsheet"
            | "application/vnd.oasis.opendocument.spreadsheet-template" => Detected::Supported(ContentType::Ods),
            "application/epub+zip" => Detected::Unsupported("application/epub+zip"),
            _ => Detected::Unsupported("an OpenDocument file of a kind not read (drawing, formula, database…)"),
        };
    }
    // OOXML names the content type of its main part in `[Content_Types].xml`.
    let Some(types) = small_entry(&mut archive, "[Content_Types].xml") else {
        return ZIP;
    };
    let main = |kinds: &[&str]| kinds.iter().any(|kind| types.contains(kind));
    if main(&[
        "wordprocessingml.document.main+xml",
        "wordprocessingml.template.main+xml",
        "ms-word.document.macroEnabled.main+xml",
        "ms-word.template.macroEnabledTemplate.main+xml",
    ]) {
        Detected::Supported(ContentType::Docx)
    } else if main(&[
        "presentationml.presentation.main+xml",
        "presentationml.slideshow.main+xml",
        "presentationml.template.main+xml",
        "ms-powerpoint.presentation.macroEnabled.main+xml",
        "ms-powerpoint.slideshow.macroEnabled.main+xml",
    ]) {
        Detected::Supported(ContentType::Pptx)
    } else if main(&[
        "spreadsheetml.sheet.main+xml",
        "spreadsheetml.template.main+xml",
        "ms-excel.sheet.macroEnabled.main+xml",
        "ms-excel.template.macroEnabled.main+xml",
    ]) {
        Detected::Supported(ContentType::Xlsx)
    } else {
        ZIP
    }
}

/// A zip entry of at most 1 MiB, as text.
fn small_entry<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, name: &str) -> Option<String> {
    let entry = archive.by_name(name).ok()?;
    let mut text = String::new();
    entry.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

fn ole2_contents(file: impl Read + Seek) -> Detected {
    let Ok(cfb) = office_oxide::cfb::CfbReader::new(file) else {
        return Detected::Unsupported("a corrupt OLE2 compound file");
    };
    if cfb.has_stream("EncryptedPackage") {
        Detected::Unsupported("a password-protected Office file (remove the password to upload it)")
    } else if cfb.has_stream("WordDocument") {
        Detected::Supported(ContentType::Doc)
    } else if cfb.has_stream("Workbook") || cfb.has_stream("Book") {
        Detected::Supported(ContentType::Xls)
    } else if cfb.has_stream("PowerPoint Document") {
        Detected::Supported(ContentType::Ppt)
    } else {
        Detected::Unsupported("application/x-ole-storage (no Word, Excel or PowerPoint document inside)")
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
        assert_eq!(detect(b"GIF89a....", false), Detected::Unsupported("image/gif"));
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\nxxxx", false),
            Detected::Supported(ContentType::Png)
        );
        assert_eq!(
            detect(b"RIFF\x10\x00\x00\x00WEBPVP8 ", false),
            Detected::Supported(ContentType::Webp)
        );
        assert_eq!(
            detect(b"MM\x00*\x00\x00\x00\x08", false),
            Detected::Supported(ContentType::Tiff)
        );
        assert_eq!(detect(b"PK\x03\x04rest", false), Detected::Container(Container::Zip));
        assert!(matches!(detect(&[0, 159, 146, 150], false), Detected::Unsupported(_)));
    }

    #[test]
    fn tables_of_values_are_csv_and_prose_is_not() {
        assert_eq!(
            detect(b"id,name,city\n1,Ana,Porto\n2,Li,Lyon\n", true),
            Detected::Supported(ContentType::Csv)
        );
        assert_eq!(
            detect(b"Dear team, hello.\nWe met, and agreed.\nThanks, all.\n", true),
            Detected::Supported(ContentType::PlainText)
        );
    }

    #[test]
    fn a_zip_without_a_document_is_refused_by_name() {
        use std::io::Write;
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut bytes);
        zip.start_file("notes.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"hello").unwrap();
        zip.finish().unwrap();
        bytes.set_position(0);
        assert!(matches!(
            open_container(bytes, Container::Zip),
            Detected::Unsupported(name) if name.starts_with("application/zip")
        ));
        let garbage = std::io::Cursor::new(b"PK\x03\x04 not really a zip".to_vec());
        assert!(matches!(
            open_container(garbage, Container::Zip),
            Detected::Unsupported(_)
        ));
        let garbage = std::io::Cursor::new([OLE2_MAGIC, &[0u8; 600][..]].concat());
        assert!(matches!(
            open_container(garbage, Container::Ole2),
            Detected::Unsupported(_)
        ));
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
