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
