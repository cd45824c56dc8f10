//! CSV and TSV: one page, the first row as the header row, every later row one
//! line with its column names (`csv` reads the quoting; the delimiter is the
//! one that splits the first lines into the same number of fields).

use super::layout::PageWriter;
use super::{ExtractError, ExtractedText};

/// Delimiters tried, in order of preference when several fit.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let delimiter = delimiter_of(bytes).unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ExtractError::Corrupt(format!("CSV: {e}")))?;
        rows.push(record.iter().map(str::to_string).collect::<Vec<_>>());
    }
    let mut writer = PageWriter::new();
    writer.table(&rows, 1);
    Ok(ExtractedText {
        pages: writer.finish(),
        ..Default::default()
    })
}

/// The delimiter that cuts every one of the first lines (up to 50 whole lines
/// of `head`) into the same number of fields, at least two; `None` when no
/// delimiter does, or when what it cuts reads as prose (long fields).
pub fn delimiter_of(head: &[u8]) -> Option<u8> {
    // The last line may be cut short by the end of the head.
    let whole = match head.iter().rposition(|&b| b == b'\n') {
        Some(end) => &head[..end],
        None => head,
    };
    let lines: Vec<&[u8]> = whole
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .take(50)
        .collect();
    if lines.len() < 2 {
        return None;
    }
    DELIMITERS.into_iter().find(|&delimiter| {
        let counts: Vec<usize> = lines.iter().map(|line| fields(line, delimiter)).collect();
        let fields_per_line = counts[0];
        let same = counts.iter().all(|&c| c == fields_per_line);
        // Two lines of two fields each is too little to tell a table from two sentences.
        let enough = fields_per_line >= 3 || (fields_per_line == 2 && lines.len() >= 3);
        let bytes: usize = lines.iter().map(|l| l.len()).sum();
        let short_fields = bytes / (lines.len() * fields_per_line.max(1)) <= 40;
        // "Hello, world." is a sentence: a lone comma a line, followed by a space.
        let spaced = lines.iter().map(|l| spaced_delimiters(l, delimiter)).sum::<usize>();
        let prose = fields_per_line == 2 && spaced * 2 > lines.len();
        same && enough && short_fields && !prose
    })
}

/// Delimiters followed by a space.
fn spaced_delimiters(line: &[u8], delimiter: u8) -> usize {
    line.windows(2).filter(|w| w[0] == delimiter && w[1] == b' ').count()
}

/// Fields in one line, delimiters inside double quotes not counted.
fn fields(line: &[u8], delimiter: u8) -> usize {
    let mut quoted = false;
    let mut count = 1;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if b == delimiter && !quoted {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_that_makes_columns() {
        assert_eq!(delimiter_of(b"a,b,c\n1,2,3\n4,\"5,5\",6\n"), Some(b','));
        assert_eq!(delimiter_of(b"name;city\nAna;Porto\nLi;Lyon\nJo;Oslo"), Some(b';'));
        assert_eq!(delimiter_of(b"x\ty\tz\n1\t2\t3\n"), Some(b'\t'));
        // Prose with commas is not a table.
        assert_eq!(
            delimiter_of(b"Hello, world.\nThe cat sat, then it slept.\nWe left, too.\n"),
            None
        );
        assert_eq!(delimiter_of(b"one line, with, commas\n"), None);
    }

    #[test]
    fn rows_keep_their_column_names() {
        let text = extract(b"Region,Revenue,Owner\nNorth,120,\n\"South, East\",95,Ana\n").unwrap();
        assert_eq!(
            text.pages,
            vec![
                "Region | Revenue | Owner\nRegion: North | Revenue: 120\nRegion: South, East | Revenue: 95 | Owner: Ana"
            ]
        );
    }
}
