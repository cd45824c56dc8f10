use serde::{Deserialize, Serialize};

use super::{ChunkId, DocumentId};

/// A page that begins inside a chunk's text: from byte `offset` of the chunk's
/// text on, the text stands on `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageBreak {
    pub page: u32,
    pub offset: u32,
}

/// A piece of a document's text, the unit that is embedded, searched and cited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub document_id: DocumentId,
    pub index: u32,
    /// 1-based, inclusive.
    pub page_start: u32,
    pub page_end: u32,
    /// Character span in the document's extracted text (pages joined by a blank line).
    pub char_start: u64,
    pub char_end: u64,
    pub text: String,
    /// Pages that start after the first byte of this chunk.
    pub page_breaks: Vec<PageBreak>,
    /// Its words' rectangles on their pages (PDF and image pages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<super::ChunkLayout>,
}

impl Chunk {
    pub fn id(&self) -> ChunkId {
        ChunkId::for_chunk(self.document_id, self.index)
    }

    /// The page on which the byte at `offset` of this chunk's text stands.
    pub fn page_at(&self, offset: usize) -> u32 {
        page_at(self.page_start, &self.page_breaks, offset)
    }
}

/// The text of one page of a document, put back together from its chunks
/// (which overlap, and may leave the whitespace between them out); `None`
/// when no chunk holds text of that page.
pub fn page_text(chunks: &[Chunk], page: u32) -> Option<String> {
    // (the piece's first character in the document's text, the piece)
    let mut pieces: Vec<(u64, &str)> = chunks
        .iter()
        .filter(|c| (c.page_start..=c.page_end).contains(&page))
        .filter_map(|chunk| {
            let starts = std::iter::once((chunk.page_start, 0))
                .chain(chunk.page_breaks.iter().map(|b| (b.page, b.offset as usize)));
            let bounds: Vec<(u32, usize)> = starts.collect();
            let from = bounds.iter().rev().find(|(p, _)| *p <= page)?.1;
            let to = bounds
                .iter()
                .find(|(p, _)| *p > page)
                .map_or(chunk.text.len(), |(_, offset)| *offset);
            let piece = chunk.text.get(from..to)?;
            let start = chunk.char_start + chunk.text.get(..from)?.chars().count() as u64;
            Some((start, piece))
        })
        .collect();
    pieces.sort_by_key(|(start, _)| *start);
    let mut text = String::new();
    let mut covered = None;
    for (start, piece) in pieces {
        let length = piece.chars().count() as u64;
        match covered {
            Some(end) if start + length <= end => continue,
            Some(end) if start < end => text.extend(piece.chars().skip((end - start) as usize)),
            Some(_) => {
                text.push(' ');
                text.push_str(piece);
            }
            None => text.push_str(piece),
        }
        covered = Some(covered.map_or(start + length, |end: u64| end.max(start + length)));
    }
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

pub fn page_at(page_start: u32, page_breaks: &[PageBreak], offset: usize) -> u32 {
    page_breaks
        .iter()
        .take_while(|b| b.offset as usize <= offset)
        .last()
        .map_or(page_start, |b| b.page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(index: u32, char_start: u64, text: &str, page_start: u32, breaks: &[(u32, u32)]) -> Chunk {
        let page_breaks: Vec<PageBreak> = breaks
            .iter()
            .map(|&(page, offset)| PageBreak { page, offset })
            .collect();
        Chunk {
            document_id: DocumentId(uuid::Uuid::nil()),
            index,
            page_start,
            page_end: page_breaks.last().map_or(page_start, |b| b.page),
            char_start,
            char_end: char_start + text.chars().count() as u64,
            text: text.to_string(),
            page_breaks,
            layout: None,
        }
    }

    #[test]
    fn a_page_is_put_back_together_from_overlapping_chunks() {
        // Document: "Alpha beta. Gamma délta.\n\nEpsilon zeta." (page 2 from char 26).
        let chunks = [
            chunk(0, 0, "Alpha beta. Gamma délta.", 1, &[]),
            chunk(1, 12, "Gamma délta.\n\nEpsilon zeta.", 1, &[(2, 15)]),
        ];
        assert_eq!(page_text(&chunks, 1).as_deref(), Some("Alpha beta. Gamma délta."));
        assert_eq!(page_text(&chunks, 2).as_deref(), Some("Epsilon zeta."));
        assert_eq!(page_text(&chunks, 3), None);
        // Chunks that leave the space between them out get one back.
        let apart = [chunk(0, 0, "One two.", 1, &[]), chunk(1, 9, "Three.", 1, &[])];
        assert_eq!(page_text(&apart, 1).as_deref(), Some("One two. Three."));
    }

    #[test]
    fn page_at_follows_the_breaks() {
        let breaks = [PageBreak { page: 4, offset: 10 }, PageBreak { page: 5, offset: 20 }];
        assert_eq!(page_at(3, &breaks, 0), 3);
        assert_eq!(page_at(3, &breaks, 9), 3);
        assert_eq!(page_at(3, &breaks, 10), 4);
        assert_eq!(page_at(3, &breaks, 25), 5);
        assert_eq!(page_at(7, &[], 100), 7);
    }
}
