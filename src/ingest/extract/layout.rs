//! Structured documents (Office files, OpenDocument, CSV) laid out as pages of
//! plain text the chunker and the citation check both read: headings as
//! Markdown headings, list items with their markers, and table rows with their
//! column headers, one row a line, so that a chunk never holds a value without
//! the name of its column and never cuts a row (the splitter cuts at line
//! breaks before it cuts inside a line).

/// Between a header and its value in a rendered table row.
const HEADER_SEPARATOR: &str = ": ";
/// Between the cells of a rendered table row.
const CELL_SEPARATOR: &str = " | ";

/// Builds a document's pages, block by block.
#[derive(Debug, Default)]
pub(super) struct PageWriter {
    pages: Vec<String>,
    current: String,
}

impl PageWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A heading, level 1 to 6.
    pub fn heading(&mut self, level: u8, text: &str) {
        let text = one_line(text);
        if text.is_empty() {
            return;
        }
        let marks = "#".repeat(usize::from(level.clamp(1, 6)));
        self.block(&format!("{marks} {text}"));
    }

    pub fn paragraph(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.block(text);
        }
    }

    /// A list item, `depth` 0 at the outermost list; `marker` is "-" or "3.".
    pub fn item(&mut self, depth: usize, marker: &str, text: &str) {
        let text = one_line(text);
        if text.is_empty() {
            return;
        }
        let line = format!("{}{marker} {text}", "  ".repeat(depth.min(8)));
        // Items of one list stay together: a line break between them, a
        // paragraph break before the first.
        if !self.current.is_empty() && !self.current.ends_with('\n') {
            self.current.push_str("\n\n");
        }
        self.current.push_str(&line);
        self.current.push('\n');
    }

    /// A table: the first row with any text is its header row (unless
    /// `header_rows` says more rows are); every later row is one line of
    /// `header: value` pairs, empty cells left out.
    pub fn table(&mut self, rows: &[Vec<String>], header_rows: usize) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| one_line(cell)).collect::<Vec<_>>())
            .filter(|row| row.iter().any(|cell| !cell.is_empty()))
            .collect();
        if rows.is_empty() {
            return;
        }
        let header_rows = header_rows.clamp(1, rows.len());
        // Several header rows read as one: "2024 Revenue" over "Q1" makes "2024 Revenue Q1".
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let headers: Vec<String> = (0..columns)
            .map(|c| {
                let parts: Vec<&str> = rows[..header_rows]
                    .iter()
                    .filter_map(|row| row.get(c).map(String::as_str))
                    .filter(|cell| !cell.is_empty())
                    .collect();
                parts.join(" ")
            })
            .collect();
        let mut text = String::new();
        // The header row once as it stands, so a question about the columns finds them.
        let named: Vec<&str> = headers.iter().map(String::as_str).filter(|h| !h.is_empty()).collect();
        text.push_str(&named.join(CELL_SEPARATOR));
        for row in &rows[header_rows..] {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(_, cell)| !cell.is_empty())
                .map(
                    |(c, cell)| match headers.get(c).filter(|h| !h.is_empty() && *h != cell) {
                        Some(header) => format!("{header}{HEADER_SEPARATOR}{cell}"),
                        None => cell.clone(),
                    },
                )
                .collect();
            text.push('\n');
            text.push_str(&cells.join(CELL_SEPARATOR));
        }
        self.block(&text);
    }

    /// Ends the current page (an explicit page break, a slide, a sheet).
    /// Empty pages are kept: page numbers are the file's own.
    pub fn end_page(&mut self) {
        let page = std::mem::take(&mut self.current);
        self.pages.push(page.trim_end().to_string());
    }

    /// The text written to the current page so far, in characters.
    pub fn current_chars(&self) -> usize {
        self.current.chars().count()
    }

    /// The pages, the last one ended if it holds anything.
    pub fn finish(mut self) -> Vec<String> {
        if !self.current.trim().is_empty() || self.pages.is_empty() {
            self.end_page();
        }
        self.pages
    }

    /// A block of its own: separated from the one before by a paragraph break.
    fn block(&mut self, text: &str) {
        if !self.current.is_empty() {
            while !self.current.ends_with("\n\n") {
                self.current.push('\n');
            }
        }
        self.current.push_str(text);
    }
}

/// A cell or heading on one line: its line breaks and runs of spaces as one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Spreads one page of text over `pages` pages of about equal length, cut at
/// paragraph breaks (else line breaks): for files that declare how many pages
/// they have but not where each begins.
pub(super) fn spread_over(text: &str, pages: usize) -> Vec<String> {
    let total = text.chars().count();
    if pages <= 1 || total == 0 {
        return vec![text.to_string()];
    }
    let per_page = total.div_ceil(pages);
    let mut out: Vec<String> = Vec::with_capacity(pages);
    let mut current = String::new();
    let mut current_chars = 0;
    for paragraph in text.split_inclusive("\n\n") {
        let chars = paragraph.chars().count();
        if current_chars > 0 && current_chars + chars / 2 > per_page && out.len() + 1 < pages {
            out.push(std::mem::take(&mut current).trim_end().to_string());
            current_chars = 0;
        }
        current.push_str(paragraph);
        current_chars += chars;
    }
    out.push(current.trim_end().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_carries_its_column_names() {
        let mut writer = PageWriter::new();
        writer.heading(1, "Costs");
        let rows = vec![
            vec![String::new(), String::new()],
            vec!["Region".into(), "Q1 revenue".into(), "Owner".into()],
            vec!["North".into(), "120".into(), String::new()],
            vec!["South\nEast".into(), "95".into(), "Ana".into()],
        ];
        writer.table(&rows, 1);
        let pages = writer.finish();
        assert_eq!(
            pages,
            vec![
                "# Costs\n\nRegion | Q1 revenue | Owner\nRegion: North | Q1 revenue: 120\n\
                 Region: South East | Q1 revenue: 95 | Owner: Ana"
            ]
        );
    }

    #[test]
    fn two_header_rows_name_a_column_together() {
        let mut writer = PageWriter::new();
        let rows = vec![
            vec!["".into(), "2024".into()],
            vec!["Item".into(), "Q1".into()],
            vec!["Pens".into(), "4".into()],
        ];
        writer.table(&rows, 2);
        assert_eq!(writer.finish(), vec!["Item | 2024 Q1\nItem: Pens | 2024 Q1: 4"]);
    }

    #[test]
    fn pages_are_kept_in_order_even_when_empty() {
        let mut writer = PageWriter::new();
        writer.paragraph("one");
        writer.end_page();
        writer.end_page();
        writer.item(0, "-", "three a");
        writer.item(1, "1.", "three b");
        writer.paragraph("after");
        assert_eq!(writer.finish(), vec!["one", "", "- three a\n  1. three b\n\nafter"]);
    }

    #[test]
    fn declared_pages_share_the_text_at_paragraph_breaks() {
        let text = (1..=9)
            .map(|i| format!("Paragraph {i} {}", "x".repeat(40)))
            .collect::<Vec<_>>()
            .join("\n\n");
        let pages = spread_over(&text, 3);
        assert_eq!(pages.len(), 3);
        assert!(pages[0].starts_with("Paragraph 1") && pages[0].ends_with('x'));
        assert!(pages[1].starts_with("Paragraph 4"), "{pages:?}");
        assert!(pages[2].starts_with("Paragraph 7"), "{pages:?}");
        assert_eq!(spread_over("short", 4), vec!["short"]);
    }
}
