//! Word, PowerPoint and Excel files, OOXML and the legacy binary formats, read
//! by `office_oxide` into its document model and laid out as pages:
//!
//! - a presentation has a page per slide (hidden slides skipped), speaker notes
//!   after the slide's text;
//! - a workbook has a page per visible sheet, the sheet's name as its heading,
//!   every row with its column headers; formulas read as the values the file
//!   saved with them;
//! - a word-processing file is cut into pages at its explicit page and section
//!   breaks; without any, its text is spread over the page count the file
//!   declares (`docProps/app.xml`), an estimate.

use std::io::{Cursor, Read};

use office_oxide::ir::{Element, List, Section, SectionBreakType, Table, inline_to_text};
use office_oxide::options::ParseOptions;
use office_oxide::{Document, DocumentFormat};

use super::layout::{PageWriter, spread_over};
use super::{ExtractError, ExtractedText};
use crate::domain::ContentType;

/// Tables nested in cells, lists in lists: deeper than this is read as text.
const MAX_DEPTH: usize = 32;

pub(super) fn extract(content_type: ContentType, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let format = match content_type {
        ContentType::Docx => DocumentFormat::Docx,
        ContentType::Doc => DocumentFormat::Doc,
        ContentType::Pptx => DocumentFormat::Pptx,
        ContentType::Ppt => DocumentFormat::Ppt,
        ContentType::Xlsx => DocumentFormat::Xlsx,
        ContentType::Xls => DocumentFormat::Xls,
        other => return Err(ExtractError::Corrupt(format!("{other} is not an Office format"))),
    };
    let document = Document::from_reader_with(Cursor::new(bytes.to_vec()), format, &ParseOptions::default())
        .map_err(|e| corrupt_or_encrypted(&e.to_string()))?;
    let ir = document.to_ir();
    let mut notes = Vec::new();
    let pages = match format {
        DocumentFormat::Pptx | DocumentFormat::Ppt => slides(&ir.sections, &mut notes),
        DocumentFormat::Xlsx | DocumentFormat::Xls => sheets(&ir.sections, &mut notes),
        _ => {
            let declared = if format == DocumentFormat::Docx {
                declared_pages(bytes)
            } else {
                None
            };
            word_pages(&ir.sections, declared)
        }
    };
    Ok(ExtractedText {
        pages,
        notes,
        ..Default::default()
    })
}

/// Encrypted files say so; anything else the reader refused is corrupt.
fn corrupt_or_encrypted(message: &str) -> ExtractError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("encrypt") || lower.contains("password") {
        ExtractError::Encrypted
    } else {
        ExtractError::Corrupt(message.chars().take(300).collect())
    }
}

fn slides(sections: &[Section], notes: &mut Vec<String>) -> Vec<String> {
    let mut writer = PageWriter::new();
    let mut hidden = 0;
    for slide in sections {
        if slide.hidden {
            hidden += 1;
            continue;
        }
        if let Some(title) = slide.title.as_deref() {
            // Most slides repeat their title as the first shape's text.
            if !starts_with_title(&slide.elements, title) {
                writer.heading(1, title);
            }
        }
        elements(&mut writer, &slide.elements, 0);
        if let Some(speaker) = slide.speaker_notes.as_deref().filter(|n| !n.is_empty()) {
            writer.paragraph("Speaker notes:");
            elements(&mut writer, speaker, 0);
        }
        writer.end_page();
    }
    if hidden > 0 {
        notes.push(format!("{hidden} hidden slide(s) skipped"));
    }
    writer.finish()
}

fn starts_with_title(elements: &[Element], title: &str) -> bool {
    match elements.first() {
        Some(Element::Heading(h)) => inline_to_text(&h.content).trim() == title.trim(),
        Some(Element::Paragraph(p)) => inline_to_text(&p.content).trim() == title.trim(),
        _ => false,
    }
}

fn sheets(sections: &[Section], notes: &mut Vec<String>) -> Vec<String> {
    let mut writer = PageWriter::new();
    let mut hidden = Vec::new();
    for sheet in sections {
        let name = sheet.title.as_deref().unwrap_or("Sheet");
        if sheet.hidden {
            hidden.push(name.to_string());
            continue;
        }
        writer.heading(1, name);
        elements(&mut writer, &sheet.elements, 0);
        writer.end_page();
    }
    if !hidden.is_empty() {
        notes.push(format!("hidden sheet(s) skipped: {}", hidden.join(", ")));
    }
    writer.finish()
}

/// A word-processing document's pages: at its page breaks when it has any,
/// else its text spread over the pages it declares.
fn word_pages(sections: &[Section], declared: Option<usize>) -> Vec<String> {
    let mut writer = PageWriter::new();
    let mut breaks = 0;
    let mut first_header = true;
    let mut footer: Option<&[Element]> = None;
    for (i, section) in sections.iter().enumerate() {
        if i > 0 && section.break_type != SectionBreakType::Continuous {
            writer.end_page();
            breaks += 1;
        }
        // Headers and footers once, not on every page they repeat on.
        if let Some(header) = section.first_page_header.as_ref().or(section.header.as_ref())
            && first_header
        {
            elements(&mut writer, &header.content, 0);
            first_header = false;
        }
        if let Some(f) = section.footer.as_ref() {
            footer = Some(&f.content);
        }
        for element in &section.elements {
            let starts_page = match element {
                Element::Paragraph(p) => p.page_break_before,
                Element::Heading(h) => h.page_break_before,
                _ => false,
            };
            if starts_page && writer.current_chars() > 0 {
                writer.end_page();
                breaks += 1;
            }
            if matches!(element, Element::PageBreak) {
                writer.end_page();
                breaks += 1;
            } else {
                elements(&mut writer, std::slice::from_ref(element), 0);
            }
        }
    }
    if let Some(footer) = footer {
        elements(&mut writer, footer, 0);
    }
    let pages = writer.finish();
    match declared {
        Some(declared) if breaks == 0 && declared > 1 && pages.len() == 1 => spread_over(&pages[0], declared),
        _ => pages,
    }
}

/// The page count a DOCX declares in `docProps/app.xml` (`<Pages>`), as the
/// application that saved it last counted.
fn declared_pages(bytes: &[u8]) -> Option<usize> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let part = archive.by_name("docProps/app.xml").ok()?;
    let mut xml = String::new();
    // The part is a few hundred bytes; anything much larger is not it.
    part.take(1 << 20).read_to_string(&mut xml).ok()?;
    let start = xml.find("<Pages>")? + "<Pages>".len();
    let end = start + xml[start..].find("</Pages>")?;
    xml[start..end].trim().parse().ok().filter(|&n| n > 0 && n <= 100_000)
}

/// Writes block elements, in order.
fn elements(writer: &mut PageWriter, elements: &[Element], depth: usize) {
    for element in elements {
        match element {
            Element::Heading(h) => writer.heading(h.clamped_level(), &inline_to_text(&h.content)),
            Element::Paragraph(p) => writer.paragraph(&inline_to_text(&p.content)),
            Element::Table(table) if depth < MAX_DEPTH => {
                let (rows, header_rows) = table_rows(table, depth);
                writer.table(&rows, header_rows);
            }
            Element::List(list) if depth < MAX_DEPTH => list_items(writer, list, 0, depth),
            Element::TextBox(tb) if depth < MAX_DEPTH => self::elements(writer, &tb.content, depth + 1),
            Element::Footnote(note) | Element::Endnote(note) if depth < MAX_DEPTH => {
                // Comments come as endnotes marked "Comment…": a reviewer's remark, not the text.
                if note.marker.as_deref().is_some_and(|m| m.starts_with("Comment")) {
                    continue;
                }
                let marker = note.marker.clone().unwrap_or_else(|| note.id.to_string());
                let text = block_text(&note.content, depth + 1);
                writer.paragraph(&format!("[{marker}] {text}"));
            }
            Element::CodeBlock(code) => writer.paragraph(&code.content),
            Element::Table(_) | Element::List(_) | Element::TextBox(_) | Element::Footnote(_) | Element::Endnote(_) => {
                writer.paragraph(&block_text(std::slice::from_ref(element), depth + 1));
            }
            // Pictures (no OCR here), rules, breaks and shapes carry no text.
            _ => {}
        }
    }
}

fn list_items(writer: &mut PageWriter, list: &List, level: usize, depth: usize) {
    let start = list.start_number.unwrap_or(1);
    for (i, item) in list.items.iter().enumerate() {
        let marker = if list.ordered {
            format!("{}.", start as usize + i)
        } else {
            "-".to_string()
        };
        writer.item(level, &marker, &block_text(&item.content, depth + 1));
        if let Some(nested) = &item.nested
            && depth < MAX_DEPTH
        {
            list_items(writer, nested, level + 1, depth + 1);
        }
    }
}

/// A table's rows as cell texts, cells spanning several columns followed by
/// empty ones so that every value stays under its header; and how many rows
/// at the top are header rows (at least one).
fn table_rows(table: &Table, depth: usize) -> (Vec<Vec<String>>, usize) {
    let rows = table
        .rows
        .iter()
        .map(|row| {
            let mut cells = Vec::with_capacity(row.cells.len());
            for cell in &row.cells {
                cells.push(block_text(&cell.content, depth + 1));
                for _ in 1..cell.col_span.clamp(1, 1_000) {
                    cells.push(String::new());
                }
            }
            cells
        })
        .collect();
    let header_rows = table
        .rows
        .iter()
        .take_while(|row| row.is_header || row.repeat_as_header)
        .count()
        .max(1);
    (rows, header_rows)
}

/// The plain text of block elements, on one line per block.
fn block_text(elements: &[Element], depth: usize) -> String {
    let mut parts = Vec::new();
    for element in elements {
        match element {
            Element::Heading(h) => parts.push(inline_to_text(&h.content)),
            Element::Paragraph(p) => parts.push(inline_to_text(&p.content)),
            Element::CodeBlock(code) => parts.push(code.content.clone()),
            _ if depth >= MAX_DEPTH => {}
            Element::Table(table) => {
                for row in &table.rows {
                    for cell in &row.cells {
                        parts.push(block_text(&cell.content, depth + 1));
                    }
                }
            }
            Element::List(list) => {
                for item in &list.items {
                    parts.push(block_text(&item.content, depth + 1));
                }
            }
            Element::TextBox(tb) => parts.push(block_text(&tb.content, depth + 1)),
            Element::Footnote(note) | Element::Endnote(note) => parts.push(block_text(&note.content, depth + 1)),
            _ => {}
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts.join(" ")
}
