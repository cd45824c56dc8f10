//! PDF text through `pdf-extract`, page by page. Unlike the crate's own
//! by-pages function (which stops at the first page that fails), a bad page is
//! recorded and the others are still read.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Document, OutputError, PlainTextOutput, output_doc_page};

use super::{ExtractError, ExtractedText, panic_message};

pub fn extract(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
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

    let mut pages = Vec::with_capacity(page_numbers.len());
    let mut unreadable_pages = Vec::new();
    let mut first_failure = None;
    for number in page_numbers {
        let page = catch_unwind(AssertUnwindSafe(|| page_text(&document, number)));
        match page {
            Ok(Ok(text)) => pages.push(clean(&text)),
            Ok(Err(e)) => {
                first_failure.get_or_insert_with(|| ExtractError::Corrupt(e.to_string()));
                unreadable_pages.push(number);
                pages.push(String::new());
            }
            Err(panic) => {
                first_failure.get_or_insert_with(|| ExtractError::Panicked(panic_message(&*panic)));
                unreadable_pages.push(number);
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
    Ok(ExtractedText {
        pages,
        unreadable_pages,
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

/// Tidies layout whitespace: no control characters, no trailing blanks, at most
/// one empty line in a row.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_lines = 0;
    for line in raw.lines() {
        let line: String = line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
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

    #[test]
    fn clean_keeps_paragraphs_and_drops_noise() {
        assert_eq!(clean("\n\n  Title  \n\n\n\nBody\tline\u{0}\nnext \n\n"), "  Title\n\nBody line\nnext");
    }
}
