//! OpenDocument text, presentations and spreadsheets (ODT, ODP, ODS): their
//! `content.xml`, read with `quick-xml` into a small tree and laid out as pages:
//!
//! - a text document is cut into pages where the application that saved it
//!   laid them out (`text:soft-page-break`) and at paragraphs whose style breaks
//!   the page before them;
//! - a presentation has a page per slide (hidden slides skipped), speaker notes
//!   after the slide's text;
//! - a spreadsheet has a page per visible sheet, every row with its column
//!   headers; formulas read as the values saved with them.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::layout::PageWriter;
use super::{ExtractError, ExtractedText};
use crate::domain::ContentType;

/// The largest `content.xml` read (decompressed).
const MAX_CONTENT_BYTES: u64 = 256 * 1024 * 1024;
/// Elements nested deeper than this make the file corrupt (real files nest a few dozen).
const MAX_DEPTH: usize = 256;
/// A row or cell repeated more than this is written this many times (files
/// repeat empty rows to the sheet's end, a million times).
const MAX_REPEAT: usize = 1_000;
/// Columns read in one sheet row.
const MAX_COLUMNS: usize = 16_384;

pub(super) fn extract(content_type: ContentType, bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let corrupt = |e: &dyn std::fmt::Display| ExtractError::Corrupt(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(&e))?;
    if is_encrypted(&mut archive) {
        return Err(ExtractError::Encrypted);
    }
    let part = archive
        .by_name("content.xml")
        .map_err(|_| ExtractError::Corrupt("no content.xml in the OpenDocument package".into()))?;
    let mut xml = String::new();
    part.take(MAX_CONTENT_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|e| corrupt(&e))?;
    if xml.len() as u64 > MAX_CONTENT_BYTES {
        return Err(ExtractError::Corrupt(format!(
            "content.xml is larger than {} MiB",
            MAX_CONTENT_BYTES >> 20
        )));
    }
    let root = parse(&xml).map_err(ExtractError::Corrupt)?;
    drop(xml);
    let styles = Styles::of(&root);
    let body = root
        .child("office:body")
        .ok_or_else(|| ExtractError::Corrupt("no office:body in content.xml".into()))?;
    let mut walker = Walker {
        writer: PageWriter::new(),
        styles: &styles,
        notes: Vec::new(),
    };
    match content_type {
        ContentType::Odt => {
            if let Some(text) = body.child("office:text") {
                walker.blocks(text, 0);
            }
        }
        ContentType::Odp => {
            if let Some(presentation) = body.child("office:presentation") {
                walker.slides(presentation);
            }
        }
        ContentType::Ods => {
            if let Some(spreadsheet) = body.child("office:spreadsheet") {
                walker.sheets(spreadsheet);
            }
        }
        other => return Err(ExtractError::Corrupt(format!("{other} is not an OpenDocument format"))),
    }
    Ok(ExtractedText {
        pages: walker.writer.finish(),
        notes: walker.notes,
        ..Default::default()
    })
}

/// An encrypted package lists `manifest:encryption-data` for its parts.
fn is_encrypted(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> bool {
    let Ok(manifest) = archive.by_name("META-INF/manifest.xml") else {
        return false;
    };
    let mut text = String::new();
    manifest.take(4 << 20).read_to_string(&mut text).is_ok() && text.contains("encryption-data")
}

/// An element of `content.xml`: its qualified name, attributes and children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Child>,
}

#[derive(Debug)]
enum Child {
    Element(Node),
    Text(String),
}

impl Node {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn elements(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(node) => Some(node),
            Child::Text(_) => None,
        })
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.elements().find(|n| n.name == name)
    }

    /// A repeat count attribute, at least one.
    fn repeated(&self, name: &str) -> usize {
        self.attribute(name).and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
    }
}

/// Builds the tree without recursion; deeper than [`MAX_DEPTH`] is an error.
fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let start = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, String> {
        let mut attributes = Vec::new();
        for attribute in e.attributes() {
            let attribute = attribute.map_err(|e| e.to_string())?;
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            attributes.push((attribute.key.0.to_string(), value.into_owned()));
        }
        Ok(Node {
            name: e.name().0.to_string(),
            attributes,
            children: Vec::new(),
        })
    };
    let push_text = |stack: &mut Vec<Node>, text: &str| {
        if let Some(parent) = stack.last_mut() {
            match parent.children.last_mut() {
                Some(Child::Text(last)) => last.push_str(text),
                _ => parent.children.push(Child::Text(text.to_string())),
            }
        }
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if stack.len() > MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                stack.push(start(&e)?);
            }
            Event::Empty(e) => {
                let node = start(&e)?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Child::Element(node));
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                let parent = stack.last_mut().ok_or("unbalanced end tag")?;
                parent.children.push(Child::Element(node));
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::CData(t) => push_text(&mut stack, &t.into_inner()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => match &*r {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err("content.xml ends inside an element".into());
    }
    // The document element itself.
    stack
        .pop()
        .unwrap_or_default()
        .children
        .into_iter()
        .find_map(|c| match c {
            Child::Element(node) => Some(node),
            Child::Text(_) => None,
        })
        .ok_or_else(|| "content.xml is empty".to_string())
}

/// What the automatic styles say about layout: paragraph styles that start a
/// new page, and slide or sheet styles that hide them.
#[derive(Debug, Default)]
struct Styles {
    breaks_page: HashMap<String, bool>,
    hidden: HashMap<String, bool>,
}

impl Styles {
    fn of(root: &Node) -> Self {
        let mut styles = Self::default();
        let Some(automatic) = root.child("office:automatic-styles") else {
            return styles;
        };
        for style in automatic.elements().filter(|n| n.name == "style:style") {
            let Some(name) = style.attribute("style:name") else {
                continue;
            };
            for properties in style.elements() {
                let breaks = matches!(properties.attribute("fo:break-before"), Some("page"));
                let hidden = matches!(properties.attribute("presentation:visibility"), Some("hidden"))
                    || matches!(properties.attribute("table:display"), Some("false"));
                if breaks {
                    styles.breaks_page.insert(name.to_string(), true);
                }
                if hidden {
                    styles.hidden.insert(name.to_string(), true);
                }
            }
        }
        styles
    }

    fn breaks_page(&self, node: &Node) -> bool {
        node.attribute("text:style-name")
            .is_some_and(|s| self.breaks_page.contains_key(s))
    }

    fn hides(&self, node: &Node, attribute: &str) -> bool {
        node.attribute(attribute).is_some_and(|s| self.hidden.contains_key(s))
    }
}

struct Walker<'s> {
    writer: PageWriter,
    styles: &'s Styles,
    notes: Vec<String>,
}

impl Walker<'_> {
    /// Block-level content: paragraphs, headings, lists, tables, sections.
    fn blocks(&mut self, node: &Node, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for child in node.elements() {
            match child.name.as_str() {
                "text:h" | "text:p" => {
                    if self.styles.breaks_page(child) && self.writer.current_chars() > 0 {
                        self.writer.end_page();
                    }
                    let mut inline = Inline::default();
                    inline.collect(child, depth + 1);
                    if child.name == "text:h" {
                        let level = child
                            .attribute("text:outline-level")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(1);
                        self.writer.heading(level, &inline.text);
                    } else {
                        self.writer.paragraph(&inline.text);
                    }
                    for (citation, body) in &inline.footnotes {
                        let text = block_text(body, depth + 1);
                        self.writer.paragraph(&format!("[{citation}] {text}"));
                    }
                    for frame in &inline.frames {
                        self.blocks(frame, depth + 1);
                    }
                    if inline.page_breaks > 0 {
                        self.writer.end_page();
                    }
                }
                "text:soft-page-break" => self.writer.end_page(),
                "text:list" => self.list(child, 0, depth + 1),
                "table:table" => self.table(child),
                "presentation:notes" => {
                    self.writer.paragraph("Speaker notes:");
                    self.blocks(child, depth + 1);
                }
                // Generated or hidden content: a table of contents repeats the headings,
                // comments and tracked changes are not the text.
                "text:table-of-content"
                | "text:illustration-index"
                | "text:alphabetical-index"
                | "office:annotation"
                | "text:tracked-changes"
                | "text:sequence-decls"
                | "text:variable-decls"
                | "office:forms"
                | "draw:page-thumbnail" => {}
                "draw:frame" if child.attribute("presentation:class") == Some("title") => {
                    self.writer.heading(1, &block_text(child, depth + 1));
                }
                // Skips the fields a layout repeats on every slide.
                "draw:frame"
                    if matches!(
                        child.attribute("presentation:class"),
                        Some("page-number" | "date-time" | "footer" | "header")
                    ) => {}
                _ => self.blocks(child, depth + 1),
            }
        }
    }

    fn list(&mut self, list: &Node, level: usize, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for item in list
            .elements()
            .filter(|n| n.name == "text:list-item" || n.name == "text:list-header")
        {
            let mut text = Vec::new();
            for part in item.elements() {
                match part.name.as_str() {
                    "text:list" => {
                        if !text.is_empty() {
                            self.writer.item(level, "-", &text.join(" "));
                            text.clear();
                        }
                        self.list(part, level + 1, depth + 1);
                    }
                    _ => text.push(block_text(part, depth + 1)),
                }
            }
            if !text.is_empty() {
                self.writer.item(level, "-", &text.join(" "));
            }
        }
    }

    /// A table's rows, header rows first (`table:table-header-rows`).
    fn table(&mut self, table: &Node) {
        let mut rows = Vec::new();
        let mut header_rows = 0;
        collect_rows(table, &mut rows, &mut header_rows, 0);
        self.writer.table(&rows, header_rows.max(1));
    }

    fn slides(&mut self, presentation: &Node) {
        let mut hidden = 0;
        for slide in presentation.elements().filter(|n| n.name == "draw:page") {
            if self.styles.hides(slide, "draw:style-name") {
                hidden += 1;
                continue;
            }
            self.blocks(slide, 0);
            self.writer.end_page();
        }
        if hidden > 0 {
            self.notes.push(format!("{hidden} hidden slide(s) skipped"));
        }
    }

    fn sheets(&mut self, spreadsheet: &Node) {
        let mut hidden = Vec::new();
        for sheet in spreadsheet.elements().filter(|n| n.name == "table:table") {
            let name = sheet.attribute("table:name").unwrap_or("Sheet");
            if self.styles.hides(sheet, "table:style-name") {
                hidden.push(name.to_string());
                continue;
            }
            self.writer.heading(1, name);
            self.table(sheet);
            self.writer.end_page();
        }
        if !hidden.is_empty() {
            self.notes
                .push(format!("hidden sheet(s) skipped: {}", hidden.join(", ")));
        }
    }
}

/// Rows under a table, its row groups and header rows included, repeats expanded
/// (up to [`MAX_REPEAT`]) when they hold text.
fn collect_rows(node: &Node, rows: &mut Vec<Vec<String>>, header_rows: &mut usize, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for child in node.elements() {
        match child.name.as_str() {
            "table:table-row" => {
                let row = row_cells(child, depth + 1);
                if row.iter().any(|c| !c.is_empty()) {
                    for _ in 0..child.repeated("table:number-rows-repeated").min(MAX_REPEAT) {
                        rows.push(row.clone());
                    }
                }
            }
            "table:table-header-rows" => {
                let before = rows.len();
                collect_rows(child, rows, header_rows, depth + 1);
                if before == 0 {
                    *header_rows += rows.len();
                }
            }
            "table:table-rows" | "table:table-row-group" => collect_rows(child, rows, header_rows, depth + 1),
            _ => {}
        }
    }
}

/// One row's cells as text; covered cells (under a merge) are empty, so values
/// stay under their headers. Empty cells repeated to the row's end are dropped.
fn row_cells(row: &Node, depth: usize) -> Vec<String> {
    let mut cells = Vec::new();
    let mut pending_empty = 0usize;
    for cell in row
        .elements()
        .filter(|n| n.name == "table:table-cell" || n.name == "table:covered-table-cell")
    {
        let text = block_text(cell, depth + 1);
        let repeat = cell.repeated("table:number-columns-repeated");
        if text.is_empty() {
            pending_empty = pending_empty.saturating_add(repeat);
            continue;
        }
        if cells.len() + pending_empty >= MAX_COLUMNS {
            break;
        }
        cells.extend(std::iter::repeat_n(String::new(), pending_empty));
        pending_empty = 0;
        let room = MAX_COLUMNS - cells.len();
        cells.extend(std::iter::repeat_n(text, repeat.min(MAX_REPEAT).min(room)));
    }
    cells
}

/// The text of a node and everything in it, paragraphs joined by a space.
fn block_text(node: &Node, depth: usize) -> String {
    let mut inline = Inline::default();
    inline.collect(node, depth);
    let mut text = inline.text;
    for frame in &inline.frames {
        text.push(' ');
        text.push_str(&block_text(frame, depth + 1));
    }
    for (_, body) in &inline.footnotes {
        let note = block_text(body, depth + 1);
        if !note.is_empty() {
            text.push(' ');
            text.push_str(&note);
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Inline content of a paragraph: its text, and what is anchored in it.
#[derive(Default)]
struct Inline<'n> {
    text: String,
    /// Footnotes and endnotes: their citation mark and body.
    footnotes: Vec<(String, &'n Node)>,
    /// Frames (text boxes, images with captions) anchored in the paragraph.
    frames: Vec<&'n Node>,
    page_breaks: usize,
}

impl<'n> Inline<'n> {
    fn collect(&mut self, node: &'n Node, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for child in &node.children {
            let element = match child {
                Child::Text(text) => {
                    self.text.push_str(text);
                    continue;
                }
                Child::Element(element) => element,
            };
            match element.name.as_str() {
                "text:s" => {
                    let spaces = element.repeated("text:c").min(MAX_REPEAT);
                    self.text.extend(std::iter::repeat_n(' ', spaces));
                }
                "text:tab" => self.text.push('\t'),
                "text:line-break" => self.text.push('\n'),
                "text:soft-page-break" => self.page_breaks += 1,
                "text:note" => {
                    let citation = element
                        .child("text:note-citation")
                        .map(|c| block_text(c, depth + 1))
                        .unwrap_or_default();
                    if let Some(body) = element.child("text:note-body") {
                        self.text.push_str(&format!("[{citation}]"));
                        self.footnotes.push((citation, body));
                    }
                }
                "draw:frame" | "draw:custom-shape" | "draw:text-box" => self.frames.push(element),
                // A paragraph directly in a cell or a list item, after the first.
                "text:p" | "text:h" => {
                    if !self.text.is_empty() {
                        self.text.push(' ');
                    }
                    self.collect(element, depth + 1);
                }
                "office:annotation" | "office:annotation-end" | "text:tracked-changes" => {}
                _ => self.collect(element, depth + 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(xml: &str, content_type: ContentType) -> (Vec<String>, Vec<String>) {
        let root = parse(xml).unwrap();
        let styles = Styles::of(&root);
        let body = root.child("office:body").unwrap();
        let mut walker = Walker {
            writer: PageWriter::new(),
            styles: &styles,
            notes: Vec::new(),
        };
        match content_type {
            ContentType::Odt => walker.blocks(body.child("office:text").unwrap(), 0),
            ContentType::Odp => walker.slides(body.child("office:presentation").unwrap()),
            _ => walker.sheets(body.child("office:spreadsheet").unwrap()),
        }
        (walker.writer.finish(), walker.notes)
    }

    #[test]
    fn text_keeps_headings_lists_notes_and_page_breaks() {
        let xml = r#"<office:document-content><office:automatic-styles>
            <style:style style:name="P9"><style:paragraph-properties fo:break-before="page"/></style:style>
            </office:automatic-styles><office:body><office:text>
            <text:h text:outline-level="2">Scope &amp; aims</text:h>
            <text:p>Cats<text:s text:c="2"/>purr.<text:note><text:note-citation>1</text:note-citation>
              <text:note-body><text:p>Mostly.</text:p></text:note-body></text:note></text:p>
            <text:list><text:list-item><text:p>first</text:p><text:list><text:list-item><text:p>inner</text:p>
              </text:list-item></text:list></text:list-item></text:list>
            <text:soft-page-break/>
            <text:p>Page two.</text:p>
            <text:p text:style-name="P9">Page three.</text:p>
            </office:text></office:body></office:document-content>"#;
        let (pages, _) = walk(xml, ContentType::Odt);
        assert_eq!(
            pages,
            vec![
                "## Scope & aims\n\nCats  purr.[1]\n\n[1] Mostly.\n\n- first\n  - inner",
                "Page two.",
                "Page three."
            ]
        );
    }

    #[test]
    fn sheets_skip_hidden_ones_and_keep_headers_on_rows() {
        let xml = r#"<office:document-content><office:automatic-styles>
            <style:style style:name="ta2"><style:table-properties table:display="false"/></style:style>
            </office:automatic-styles><office:body><office:spreadsheet>
            <table:table table:name="Costs">
              <table:table-row><table:table-cell><text:p>Item</text:p></table:table-cell>
                <table:table-cell><text:p>Price</text:p></table:table-cell></table:table-row>
              <table:table-row table:number-rows-repeated="2"><table:table-cell><text:p>Pen</text:p></table:table-cell>
                <table:table-cell office:value="4"><text:p>4</text:p></table:table-cell>
                <table:table-cell table:number-columns-repeated="16000"/></table:table-row>
              <table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>
            </table:table>
            <table:table table:name="Secret" table:style-name="ta2"><table:table-row><table:table-cell>
              <text:p>hidden</text:p></table:table-cell></table:table-row></table:table>
            </office:spreadsheet></office:body></office:document-content>"#;
        let (pages, notes) = walk(xml, ContentType::Ods);
        assert_eq!(
            pages,
            vec!["# Costs\n\nItem | Price\nItem: Pen | Price: 4\nItem: Pen | Price: 4"]
        );
        assert_eq!(notes, vec!["hidden sheet(s) skipped: Secret"]);
    }

    #[test]
    fn slides_are_pages_with_their_notes() {
        let xml = r#"<office:document-content><office:body><office:presentation>
            <draw:page draw:name="a"><draw:frame presentation:class="title"><draw:text-box><text:p>Roadmap</text:p>
              </draw:text-box></draw:frame><draw:frame presentation:class="page-number"><draw:text-box><text:p>1</text:p>
              </draw:text-box></draw:frame>
              <presentation:notes><draw:page-thumbnail/><draw:frame><draw:text-box><text:p>Say it slowly.</text:p>
              </draw:text-box></draw:frame></presentation:notes></draw:page>
            <draw:page draw:name="b"><draw:frame><draw:text-box><text:p>Budget</text:p></draw:text-box></draw:frame></draw:page>
            </office:presentation></office:body></office:document-content>"#;
        let (pages, _) = walk(xml, ContentType::Odp);
        assert_eq!(pages, vec!["# Roadmap\n\nSpeaker notes:\n\nSay it slowly.", "Budget"]);
    }

    #[test]
    fn nesting_beyond_the_limit_is_corrupt() {
        let xml = format!("{}{}", "<a>".repeat(MAX_DEPTH + 5), "</a>".repeat(MAX_DEPTH + 5));
        assert!(parse(&xml).unwrap_err().contains("nested deeper"));
    }
}
