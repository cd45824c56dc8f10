//! Where text stands on its page: the rectangles of words, kept with each chunk
//! so that a verified quote can be given the boxes that cover it on the page
//! (a viewer highlights them) without reading the file again.
//!
//! Coordinates are the page's own: PDF points for PDF pages (origin top left,
//! y downwards, as a viewer draws), pixels for images.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PageBreak;
use super::chunk::page_at;

/// A rectangle on a page, origin top left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Rect {
    fn right(&self) -> f32 {
        self.x + self.width
    }

    fn bottom(&self) -> f32 {
        self.y + self.height
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        Rect {
            x,
            y,
            width: self.right().max(other.right()) - x,
            height: self.bottom().max(other.bottom()) - y,
        }
    }

    /// On the same line: the vertical overlap is most of the smaller height.
    pub fn same_line(&self, other: &Rect) -> bool {
        let overlap = self.bottom().min(other.bottom()) - self.y.max(other.y);
        overlap > 0.5 * self.height.min(other.height)
    }

    /// Coordinates rounded to hundredths (what a viewer can use; shorter JSON).
    fn rounded(self) -> Rect {
        let r = |v: f32| (v * 100.0).round() / 100.0;
        Rect {
            x: r(self.x),
            y: r(self.y),
            width: r(self.width),
            height: r(self.height),
        }
    }
}

/// A word of a text and its rectangle: bytes `start..end` of the text. Written
/// as `[start, end, x, y, width, height]`, since a page has hundreds of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "(u32, u32, f32, f32, f32, f32)", into = "(u32, u32, f32, f32, f32, f32)")]
pub struct WordBox {
    pub start: u32,
    pub end: u32,
    pub rect: Rect,
}

impl From<(u32, u32, f32, f32, f32, f32)> for WordBox {
    fn from((start, end, x, y, width, height): (u32, u32, f32, f32, f32, f32)) -> Self {
        Self {
            start,
            end,
            rect: Rect { x, y, width, height },
        }
    }
}

impl From<WordBox> for (u32, u32, f32, f32, f32, f32) {
    fn from(word: WordBox) -> Self {
        let r = word.rect.rounded();
        (word.start, word.end, r.x, r.y, r.width, r.height)
    }
}

/// One page's size and its words, offsets in the page's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageGeometry {
    pub width: f32,
    pub height: f32,
    pub words: Vec<WordBox>,
}

/// A page's size, given once per page a citation's boxes stand on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageSize {
    pub page: u32,
    pub width: f32,
    pub height: f32,
}

/// The words of one chunk with their rectangles, offsets in the chunk's text;
/// the page of a word follows from the chunk's page breaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkLayout {
    pub pages: Vec<PageSize>,
    pub words: Vec<WordBox>,
}

/// A rectangle a quote covers on its page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteBox {
    pub page: u32,
    #[serde(flatten)]
    pub rect: Rect,
}

impl ChunkLayout {
    /// The layout of the chunk's bytes `start..end` of a document's joined text,
    /// from the geometry of the pages (`page_starts`: where each page's text
    /// begins in the joined text). `None` when none of its pages has geometry.
    pub fn of_span(
        start: usize,
        end: usize,
        first_page: u32,
        last_page: u32,
        page_starts: &[usize],
        geometry: &[Option<PageGeometry>],
    ) -> Option<ChunkLayout> {
        let mut layout = ChunkLayout::default();
        for page in first_page..=last_page {
            let index = page as usize - 1;
            let (Some(Some(page_geometry)), Some(&page_start)) = (geometry.get(index), page_starts.get(index)) else {
                continue;
            };
            layout.pages.push(PageSize {
                page,
                width: page_geometry.width,
                height: page_geometry.height,
            });
            // Words wholly inside the chunk (a quote never leaves its chunk).
            layout.words.extend(page_geometry.words.iter().filter_map(|word| {
                let (word_start, word_end) = (page_start + word.start as usize, page_start + word.end as usize);
                (word_start >= start && word_end <= end).then(|| WordBox {
                    start: (word_start - start) as u32,
                    end: (word_end - start) as u32,
                    rect: word.rect,
                })
            }));
        }
        (!layout.pages.is_empty()).then_some(layout)
    }

    /// The rectangles covering bytes `start..end` of the chunk's text: one per
    /// line (or column) the passage runs over. A word partly inside is cut in
    /// proportion to its characters.
    pub fn boxes(
        &self,
        text: &str,
        page_start: u32,
        page_breaks: &[PageBreak],
        start: usize,
        end: usize,
    ) -> Vec<QuoteBox> {
        let mut boxes: Vec<QuoteBox> = Vec::new();
        for word in &self.words {
            let (word_start, word_end) = (word.start as usize, word.end as usize);
            if word_end <= start || word_start >= end || word_end > text.len() {
                continue;
            }
            let rect = match text.get(word_start..word_end) {
                Some(word_text) if word_start < start || word_end > end => cut(
                    word.rect,
                    word_text,
                    start.saturating_sub(word_start),
                    end.min(word_end) - word_start,
                ),
                _ => word.rect,
            };
            let page = page_at(page_start, page_breaks, word_start);
            match boxes.last_mut() {
                Some(last) if last.page == page && last.rect.same_line(&rect) && rect.x >= last.rect.x => {
                    last.rect = last.rect.union(&rect);
                }
                _ => boxes.push(QuoteBox { page, rect }),
            }
        }
        for quote_box in &mut boxes {
            quote_box.rect = quote_box.rect.rounded();
        }
        boxes
    }

    /// Sizes of the pages `boxes` stand on.
    pub fn sizes_for(&self, boxes: &[QuoteBox]) -> Vec<PageSize> {
        self.pages
            .iter()
            .filter(|size| boxes.iter().any(|b| b.page == size.page))
            .copied()
            .collect()
    }
}

/// The part of a word's rectangle over its bytes `from..to`, by characters.
fn cut(rect: Rect, word: &str, from: usize, to: usize) -> Rect {
    let chars = word.chars().count().max(1) as f32;
    let before = word.get(..from).map_or(0, |s| s.chars().count()) as f32;
    let through = word.get(..to).map_or(chars as usize, |s| s.chars().count()) as f32;
    let per_char = rect.width / chars;
    Rect {
        x: rect.x + before * per_char,
        width: (through - before) * per_char,
        ..rect
    }
}

/// How the text of a run of pages was got, as GET document shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageSource {
    pub first_page: u32,
    pub last_page: u32,
    pub method: ReadMethod,
    /// Tesseract's mean word confidence on the page, 0–100 (OCR pages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadMethod {
    /// The file's own text (text layer, document structure).
    Text,
    /// Optical character recognition of the page's image.
    Ocr,
}

impl PageSource {
    /// Runs of pages read the same way: `ocr` gives the OCR'd pages and their
    /// confidence; every other page of `pages` was read as text. OCR pages stay
    /// one per run, each with its own confidence.
    pub fn runs(pages: u32, ocr: &[(u32, Option<f32>)]) -> Vec<PageSource> {
        let mut runs: Vec<PageSource> = Vec::new();
        for page in 1..=pages {
            let read = ocr.iter().find(|(p, _)| *p == page);
            match (read, runs.last_mut()) {
                (None, Some(last)) if last.method == ReadMethod::Text && last.last_page + 1 == page => {
                    last.last_page = page;
                }
                (None, _) => runs.push(PageSource {
                    first_page: page,
                    last_page: page,
                    method: ReadMethod::Text,
                    ocr_confidence: None,
                }),
                (Some((_, confidence)), _) => runs.push(PageSource {
                    first_page: page,
                    last_page: page,
                    method: ReadMethod::Ocr,
                    ocr_confidence: confidence.map(|c| (c * 10.0).round() / 10.0),
                }),
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(start: u32, end: u32, x: f32, y: f32, width: f32) -> WordBox {
        WordBox {
            start,
            end,
            rect: Rect {
                x,
                y,
                width,
                height: 10.0,
            },
        }
    }

    #[test]
    fn a_quote_gets_one_box_per_line_cut_at_partial_words() {
        //          0123456789012345678901234
        let text = "alpha beta\ngamma delta";
        let layout = ChunkLayout {
            pages: vec![PageSize {
                page: 2,
                width: 600.0,
                height: 800.0,
            }],
            words: vec![
                word(0, 5, 10.0, 100.0, 50.0),
                word(6, 10, 70.0, 100.0, 40.0),
                word(11, 16, 10.0, 115.0, 50.0),
                word(17, 22, 70.0, 115.0, 50.0),
            ],
        };
        // "pha beta\ngamma de": from the 3rd letter of alpha to the 2nd of delta.
        let boxes = layout.boxes(text, 2, &[], 2, 19);
        assert_eq!(boxes.len(), 2, "{boxes:?}");
        assert_eq!(boxes[0].page, 2);
        assert_eq!(
            boxes[0].rect,
            Rect {
                x: 30.0,
                y: 100.0,
                width: 80.0,
                height: 10.0
            }
        );
        assert_eq!(
            boxes[1].rect,
            Rect {
                x: 10.0,
                y: 115.0,
                width: 80.0,
                height: 10.0
            }
        );
        assert_eq!(layout.sizes_for(&boxes).len(), 1);
        assert!(layout.boxes(text, 2, &[], 5, 6).is_empty(), "a space covers no word");
    }

    #[test]
    fn a_chunk_takes_the_words_of_its_span_with_offsets_of_its_own() {
        let geometry = vec![
            Some(PageGeometry {
                width: 100.0,
                height: 200.0,
                words: vec![word(0, 3, 1.0, 1.0, 5.0), word(4, 7, 8.0, 1.0, 5.0)],
            }),
            None,
            Some(PageGeometry {
                width: 100.0,
                height: 200.0,
                words: vec![word(0, 4, 1.0, 1.0, 5.0)],
            }),
        ];
        // Pages "one two", "x", "four" joined by blank lines: starts 0, 9, 12.
        let layout = ChunkLayout::of_span(4, 16, 1, 3, &[0, 9, 12], &geometry).unwrap();
        assert_eq!(layout.pages.iter().map(|p| p.page).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(
            layout.words.iter().map(|w| (w.start, w.end)).collect::<Vec<_>>(),
            vec![(0, 3), (8, 12)]
        );
        assert_eq!(ChunkLayout::of_span(9, 10, 2, 2, &[0, 9, 12], &geometry), None);
    }

    #[test]
    fn word_boxes_are_written_as_short_arrays() {
        let json = serde_json::to_string(&word(3, 8, 1.234, 2.0, 3.5)).unwrap();
        assert_eq!(json, "[3,8,1.23,2.0,3.5,10.0]");
        let back: WordBox = serde_json::from_str(&json).unwrap();
        assert_eq!((back.start, back.end), (3, 8));
    }

    #[test]
    fn text_pages_run_together_and_ocr_pages_stand_alone() {
        let runs = PageSource::runs(5, &[(3, Some(91.26)), (4, None)]);
        let shape: Vec<_> = runs.iter().map(|r| (r.first_page, r.last_page, r.method)).collect();
        assert_eq!(
            shape,
            vec![
                (1, 2, ReadMethod::Text),
                (3, 3, ReadMethod::Ocr),
                (4, 4, ReadMethod::Ocr),
                (5, 5, ReadMethod::Text)
            ]
        );
        assert_eq!(runs[1].ocr_confidence, Some(91.3));
    }
}
