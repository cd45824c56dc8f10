//! PDF text, page by page, through a chain of two parsers chosen by measurement
//! (README "Extraction"; `bench/extractors.sh` repeats it): `pdf_oxide` first
//! (it read every readable file of the shared corpus, with the best text), then
//! `pdf-extract` when pdf_oxide fails or its text looks broken. Each result is
//! judged ([`TextQuality`]) before it is accepted, and the better one is kept.
//! A page that fails is recorded and the others are still read.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Document, OutputError, PlainTextOutput, output_doc_page};
use serde::Serialize;

use super::geometry::{Glyph, page_geometry};
use super::{ExtractError, ExtractedText, panic_message};
use crate::domain::{PageGeometry, Rect};

/// The PDF parsers docqa can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parser {
    PdfOxide,
    PdfExtract,
}

/// Extraction as the server does it: the chain. A PDF of more than
/// `max_pages` pages fails before any page is read.
pub fn extract(bytes: &[u8], max_pages: usize) -> Result<ExtractedText, ExtractError> {
    let mut text = best_of_both(bytes, max_pages)?;
    // Pages a scanner made (no text layer) or whose text is garbled: for OCR.
    text.needs_ocr = text
        .pages
        .iter()
        .enumerate()
        .filter(|(i, page)| !text.unreadable_pages.contains(&(*i as u32 + 1)) && !TextQuality::of_page(page).is_good())
        .map(|(i, _)| i as u32 + 1)
        .collect();
    Ok(text)
}

fn best_of_both(bytes: &[u8], max_pages: usize) -> Result<ExtractedText, ExtractError> {
    let first = catch_unwind(AssertUnwindSafe(|| with_pdf_oxide(bytes, max_pages)))
        .unwrap_or_else(|panic| Err(ExtractError::Panicked(panic_message(&*panic))));
    if let Ok(text) = &first
        && TextQuality::of(text).is_good()
    {
        return first;
    }
    // Encrypted or too long is a verdict on the file, not on the parser.
    if matches!(first, Err(ExtractError::Encrypted | ExtractError::TooManyPages { .. })) {
        return first;
    }
    let second = catch_unwind(AssertUnwindSafe(|| with_pdf_extract(bytes, max_pages)))
        .unwrap_or_else(|panic| Err(ExtractError::Panicked(panic_message(&*panic))));
    match (first, second) {
        (Ok(a), Ok(b)) => Ok(if TextQuality::of(&b).score() > TextQuality::of(&a).score() {
            b
        } else {
            a
        }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(a), Err(_)) => Err(a),
    }
}

/// One parser alone (for the chain and for measuring them).
pub fn extract_with(parser: Parser, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let result = catch_unwind(AssertUnwindSafe(|| match parser {
        Parser::PdfOxide => with_pdf_oxide(bytes, usize::MAX),
        Parser::PdfExtract => with_pdf_extract(bytes, usize::MAX),
    }));
    result.unwrap_or_else(|panic| Err(ExtractError::Panicked(panic_message(&*panic))))
}

/// How trustworthy extracted text looks: enough letters, few replacement
/// characters, and words not torn into single letters ("S u p r e m e").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TextQuality {
    pub alphanumeric: usize,
    pub replacement_share: f32,
    pub single_letter_share: f32,
}

impl TextQuality {
    pub fn of(text: &ExtractedText) -> Self {
        Self::of_pages(text.pages.iter().map(String::as_str))
    }

    pub fn of_page(page: &str) -> Self {
        Self::of_pages(std::iter::once(page))
    }

    fn of_pages<'a>(pages: impl Iterator<Item = &'a str>) -> Self {
        let mut alphanumeric = 0usize;
        let mut replacement = 0usize;
        let mut chars = 0usize;
        let mut words = 0usize;
        let mut single_letters = 0usize;
        for page in pages {
            for c in page.chars() {
                chars += 1;
                alphanumeric += usize::from(c.is_alphanumeric());
                replacement += usize::from(c == '\u{fffd}');
            }
            for word in page.split_whitespace() {
                words += 1;
                let mut letters = word.chars().filter(|c| c.is_alphabetic());
                if letters.next().is_some() && letters.next().is_none() && word.chars().count() == 1 {
                    single_letters += 1;
                }
            }
        }
        Self {
            alphanumeric,
            replacement_share: replacement as f32 / chars.max(1) as f32,
            single_letter_share: single_letters as f32 / words.max(1) as f32,
        }
    }

    /// Good enough to take without asking the next parser. (English prose has
    /// ~3-5 % one-letter words; torn words push it past a third.)
    pub fn is_good(&self) -> bool {
        self.alphanumeric > 0 && self.replacement_share < 0.01 && self.single_letter_share < 0.25
    }

    /// For choosing between two results: letters, minus what looks broken.
    pub fn score(&self) -> f32 {
        self.alphanumeric as f32 * (1.0 - self.replacement_share.min(1.0)) * (1.0 - self.single_letter_share.min(1.0))
    }
}

fn with_pdf_oxide(bytes: &[u8], max_pages: usize) -> Result<ExtractedText, ExtractError> {
    let document =
        pdf_oxide::PdfDocument::from_bytes(bytes.to_vec()).map_err(|e| ExtractError::Corrupt(e.to_string()))?;
    // pdf_oxide returns empty pages for a file it cannot decrypt: ask first.
    // An empty user password opens many "encrypted" files.
    if document.is_encrypted() && !matches!(document.authenticate(b""), Ok(true)) {
        return Err(ExtractError::Encrypted);
    }
    let count = document
        .page_count()
        .map_err(|e| ExtractError::Corrupt(e.to_string()))?;
    if count == 0 {
        return Err(ExtractError::Corrupt("the PDF has no pages".into()));
    }
    if count > max_pages {
        return Err(ExtractError::TooManyPages {
            pages: count,
            limit: max_pages,
        });
    }
    // `extract_text` keeps the reading order of multi-column pages, where
    // `to_plain_text` joins the columns line by line (README "Extraction").
    let mut text = pages_of(count, |index| {
        document
            .extract_text(index)
            .map_err(|e| ExtractError::Corrupt(e.to_string()))
    })?;
    // Where the words stand, for citation boxes: from the same parse (pdf_oxide
    // keeps the page's spans), so it costs little; a page it fails on has none.
    text.geometry = text
        .pages
        .iter()
        .enumerate()
        .map(|(index, page)| {
            if page.trim().is_empty() {
                return None;
            }
            catch_unwind(AssertUnwindSafe(|| text_layer_geometry(&document, index, page)))
                .ok()
                .flatten()
        })
        .collect();
    Ok(text)
}

/// Typical Latin font metrics, in font sizes: how far letters reach above and
/// below the baseline (the font's own figures are not at hand in the spans).
const ASCENT: f32 = 0.75;
const DESCENT: f32 = 0.2;

/// The words of a page's text with their rectangles, from pdf_oxide's glyphs,
/// in PDF points from the top left of the page's media box.
fn text_layer_geometry(document: &pdf_oxide::PdfDocument, index: usize, text: &str) -> Option<PageGeometry> {
    let (x0, y0, x1, y1) = document.get_page_media_box(index).ok()?;
    let (left, top) = (x0.min(x1), y0.max(y1));
    let (width, height) = ((x1 - x0).abs(), (y1 - y0).abs());
    let spans = document.extract_spans(index).ok()?;
    let runs: Vec<Vec<Glyph>> = spans
        .iter()
        .map(|span| {
            span.to_chars()
                .iter()
                .map(|glyph| {
                    // pdf_oxide's box stands on the baseline, one font size high;
                    // a reader's eye (and pdftotext) sees the letters from the
                    // ascender to the descender.
                    let size = glyph.bbox.height;
                    let baseline = if (glyph.origin_y - glyph.bbox.y).abs() <= size {
                        glyph.origin_y
                    } else {
                        glyph.bbox.y
                    };
                    Glyph {
                        c: glyph.char,
                        // PDF space has its origin bottom left, y upwards.
                        rect: Rect {
                            x: glyph.bbox.x - left,
                            y: top - (baseline + ASCENT * size),
                            width: glyph.bbox.width,
                            height: (ASCENT + DESCENT) * size,
                        },
                    }
                })
                .collect()
        })
        .collect();
    Some(page_geometry(text, &runs, width, height))
}

/// Reads every page, each under `catch_unwind`; fails only when no page reads.
fn pages_of(
    count: usize,
    mut page: impl FnMut(usize) -> Result<String, ExtractError>,
) -> Result<ExtractedText, ExtractError> {
    let mut pages = Vec::with_capacity(count);
    let mut unreadable_pages = Vec::new();
    let mut first_failure = None;
    for index in 0..count {
        match catch_unwind(AssertUnwindSafe(|| page(index))) {
            Ok(Ok(text)) => pages.push(clean(&text)),
            Ok(Err(e)) => {
                first_failure.get_or_insert(e);
                unreadable_pages.push(index as u32 + 1);
                pages.push(String::new());
            }
            Err(panic) => {
                first_failure.get_or_insert_with(|| ExtractError::Panicked(panic_message(&*panic)));
                unreadable_pages.push(index as u32 + 1);
                pages.push(String::new());
            }
        }
    }
    if unreadable_pages.len() == pages.len() {
        return Err(first_failure.unwrap_or(ExtractError::NoText));
    }
    if !unreadable_pages.is_empty() {
        tracing::warn!(pages = ?unreadable_pages, "some PDF pages could not be read");
    }
    // A page without text may be a scan: the caller decides (OCR), not the parser.
    Ok(ExtractedText {
        pages,
        unreadable_pages,
        ..Default::default()
    })
}

fn with_pdf_extract(bytes: &[u8], max_pages: usize) -> Result<ExtractedText, ExtractError> {
    let mut document = Document::load_mem(bytes).map_err(|e| match e {
        pdf_extract::Error::Decryption(_) => ExtractError::Encrypted,
        other => ExtractError::Corrupt(other.to_string()),
    })?;
    // Files "encrypted" with an empty user password open without one.
    if document.is_encrypted() && document.decrypt("").is_err() {
        return Err(ExtractError::Encrypted);
    }
    let page_numbers: Vec<u32> = document.get_pages().keys().copied().collect();
    if page_numbers.is_empty() {
        return Err(ExtractError::Corrupt("the PDF has no pages".into()));
    }
    if page_numbers.len() > max_pages {
        return Err(ExtractError::TooManyPages {
            pages: page_numbers.len(),
            limit: max_pages,
        });
    }
    pages_of(page_numbers.len(), |index| {
        page_text(&document, page_numbers[index]).map_err(|e| ExtractError::Corrupt(e.to_string()))
    })
}

fn page_text(document: &Document, number: u32) -> Result<String, OutputError> {
    let mut text = String::new();
    {
        let mut output = PlainTextOutput::new(&mut text);
        output_doc_page(document, &mut output, number)?;
    }
    Ok(text)
}

/// Tidies layout whitespace and glyphs: no control characters, ligatures spelled
/// out, no trailing blanks, at most one empty line in a row.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_lines = 0;
    for line in raw.lines() {
        let mut expanded = String::with_capacity(line.len());
        for c in line.chars() {
            match c {
                '\t' => expanded.push(' '),
                c if c.is_control() => {}
                c if ('\u{fb00}'..='\u{fb06}').contains(&c) => expanded.push_str(&super::expand_ligature(c)),
                c => expanded.push(c),
            }
        }
        let line = expanded;
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank_lines = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pages: &[&str]) -> ExtractedText {
        ExtractedText {
            pages: pages.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn torn_words_and_replacement_characters_are_not_good_text() {
        assert!(TextQuality::of(&text(&["The warranty lasts 24 months from the date of purchase."])).is_good());
        assert!(!TextQuality::of(&text(&["S u p r e m e C o u r t o f O k l a h o m a"])).is_good());
        assert!(!TextQuality::of(&text(&["\u{fffd}\u{fffd}\u{fffd} ab\u{fffd}\u{fffd} cd"])).is_good());
        assert!(!TextQuality::of(&text(&["", "  "])).is_good());
        let torn = TextQuality::of(&text(&["S u p r e m e court"]));
        let whole = TextQuality::of(&text(&["Supreme court"]));
        assert!(whole.score() > torn.score());
    }

    #[test]
    fn clean_keeps_paragraphs_and_drops_noise() {
        assert_eq!(
            clean("\n\n  Title  \n\n\n\nBody\tline\u{0}\nnext \n\n"),
            "  Title\n\nBody line\nnext"
        );
        assert_eq!(clean("ﬁlled and ﬂown, e\u{fb03}cient"), "filled and flown, efficient");
    }
}
