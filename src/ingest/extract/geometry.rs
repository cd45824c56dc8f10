//! A page's words with their rectangles, for citation boxes: the glyphs a
//! parser placed on the page, lined up with the page's extracted text.
//!
//! The text is in reading order and tidied ([`super::pdf`]), the glyphs come in
//! runs (pdf_oxide's spans) in content order. Each run is found in the text
//! near where the previous one ended (else anywhere it is still unplaced), and
//! its glyphs' rectangles go to the characters it covers. A word's box is the
//! union of its characters' rectangles (split where the word runs onto another
//! line).

use crate::domain::{PageGeometry, Rect, WordBox};

/// A glyph and its rectangle in page coordinates (origin top left).
#[derive(Debug, Clone, Copy)]
pub(super) struct Glyph {
    pub c: char,
    pub rect: Rect,
}

/// A run this short is placed only close to where the previous one ended: on
/// its own, "a" or "1." could stand anywhere on the page.
const SHORT_RUN: usize = 3;
/// How far past the previous run (in characters) a short run may be placed.
const SHORT_RUN_REACH: usize = 64;

/// The words of `text` with the rectangles of the glyph `runs` lined up with them.
pub(super) fn page_geometry(text: &str, runs: &[Vec<Glyph>], width: f32, height: f32) -> PageGeometry {
    // The text's visible characters, in order, and where each stands in `text`.
    let mut visible = String::new();
    let mut places: Vec<(usize, usize)> = Vec::new();
    let mut visible_starts: Vec<usize> = Vec::new();
    for (at, c) in text.char_indices().filter(|(_, c)| !c.is_whitespace()) {
        visible_starts.push(visible.len());
        visible.push(c);
        places.push((at, at + c.len_utf8()));
    }
    let mut rects: Vec<Option<Rect>> = vec![None; places.len()];
    let mut cursor = 0usize;
    for run in runs {
        let (needle, needle_rects) = visible_glyphs(run);
        let count = needle_rects.len();
        if count == 0 {
            continue;
        }
        let mut found = place(&visible, &visible_starts, &rects, &needle, count, cursor);
        // A word hyphenated at the end of a line is joined in the text ("Maece-"
        // + "nas"): the run without its hyphen.
        let mut count = count;
        if found.is_none() && count > SHORT_RUN && needle.ends_with('-') {
            count -= 1;
            found = place(
                &visible,
                &visible_starts,
                &rects,
                &needle[..needle.len() - 1],
                count,
                cursor,
            );
        }
        let Some(at) = found else {
            continue;
        };
        for (slot, rect) in rects[at..at + count].iter_mut().zip(needle_rects) {
            *slot = Some(rect);
        }
        cursor = at + count;
    }
    PageGeometry {
        width,
        height,
        words: words(&places, &rects),
    }
}

/// A run's visible characters (ligatures spelled out, each letter a share of
/// the glyph's width) and their rectangles.
fn visible_glyphs(run: &[Glyph]) -> (String, Vec<Rect>) {
    let mut needle = String::new();
    let mut rects = Vec::new();
    for glyph in run.iter().filter(|g| !g.c.is_whitespace()) {
        let letters = super::expand_ligature(glyph.c);
        let count = letters.chars().count().max(1) as f32;
        let share = glyph.rect.width / count;
        for (i, letter) in letters.chars().enumerate() {
            needle.push(letter);
            rects.push(Rect {
                x: glyph.rect.x + share * i as f32,
                width: share,
                ..glyph.rect
            });
        }
    }
    (needle, rects)
}

/// Where (index of the first visible character) a run of `count` characters
/// stands: the first unplaced occurrence from `cursor` on, else from the start.
fn place(
    visible: &str,
    starts: &[usize],
    rects: &[Option<Rect>],
    needle: &str,
    count: usize,
    cursor: usize,
) -> Option<usize> {
    let unplaced = |at: usize| rects[at..at + count].iter().all(Option::is_none);
    let from = |first: usize, limit: usize| -> Option<usize> {
        let mut byte = *starts.get(first)?;
        while let Some(found) = visible.get(byte..).and_then(|rest| rest.find(needle)) {
            let at = starts.partition_point(|&s| s < byte + found);
            if at > limit {
                return None;
            }
            if at + count <= rects.len() && unplaced(at) {
                return Some(at);
            }
            byte += found + needle.chars().next().map_or(1, char::len_utf8);
        }
        None
    };
    if count < SHORT_RUN {
        return from(cursor, cursor + SHORT_RUN_REACH);
    }
    from(cursor, usize::MAX).or_else(|| from(0, usize::MAX))
}

/// The words of `text` (runs without whitespace) and their boxes, one per line
/// a word stands on; words without any placed character are left out.
fn words(places: &[(usize, usize)], rects: &[Option<Rect>]) -> Vec<WordBox> {
    let mut boxes = Vec::new();
    let mut piece: Option<WordBox> = None;
    let mut previous_end = None;
    for (&(start, end), rect) in places.iter().zip(rects) {
        // A gap between two visible characters is whitespace: a new word.
        let new_word = previous_end != Some(start);
        previous_end = Some(end);
        let Some(rect) = rect else {
            if new_word && let Some(done) = piece.take() {
                boxes.push(done);
            }
            continue;
        };
        match &mut piece {
            Some(current) if !new_word && current.rect.same_line(rect) && rect.x >= current.rect.x => {
                current.end = end as u32;
                current.rect = current.rect.union(rect);
            }
            _ => {
                if let Some(done) = piece.take() {
                    boxes.push(done);
                }
                piece = Some(WordBox {
                    start: start as u32,
                    end: end as u32,
                    rect: *rect,
                });
            }
        }
    }
    boxes.extend(piece);
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` from (x, y), 5 wide and 10 high each.
    fn run(text: &str, x: f32, y: f32) -> Vec<Glyph> {
        text.chars()
            .enumerate()
            .map(|(i, c)| Glyph {
                c,
                rect: Rect {
                    x: x + 5.0 * i as f32,
                    y,
                    width: 5.0,
                    height: 10.0,
                },
            })
            .collect()
    }

    fn shape(geometry: &PageGeometry, text: &str) -> Vec<(String, f32, f32, f32)> {
        geometry
            .words
            .iter()
            .map(|w| {
                (
                    text[w.start as usize..w.end as usize].to_string(),
                    w.rect.x,
                    w.rect.y,
                    w.rect.width,
                )
            })
            .collect()
    }

    #[test]
    fn runs_in_another_order_than_the_text_still_find_their_words() {
        // Two columns: the text reads the left one first, the glyphs come row by row.
        let text = "Left one\nLeft two\n\nRight one\nRight two";
        let runs = vec![
            run("Left one", 0.0, 0.0),
            run("Right one", 100.0, 0.0),
            run("Left two", 0.0, 20.0),
            run("Right two", 100.0, 20.0),
        ];
        let geometry = page_geometry(text, &runs, 200.0, 100.0);
        assert_eq!(
            shape(&geometry, text),
            vec![
                ("Left".into(), 0.0, 0.0, 20.0),
                ("one".into(), 25.0, 0.0, 15.0),
                ("Left".into(), 0.0, 20.0, 20.0),
                ("two".into(), 25.0, 20.0, 15.0),
                ("Right".into(), 100.0, 0.0, 25.0),
                ("one".into(), 130.0, 0.0, 15.0),
                ("Right".into(), 100.0, 20.0, 25.0),
                ("two".into(), 130.0, 20.0, 15.0),
            ]
        );
    }

    #[test]
    fn ligatures_and_tidied_whitespace_line_up() {
        let text = "the office filled";
        let mut glyphs = run("the o", 0.0, 0.0);
        glyphs.push(Glyph {
            c: '\u{fb03}',
            rect: Rect {
                x: 25.0,
                y: 0.0,
                width: 9.0,
                height: 10.0,
            },
        });
        glyphs.extend(run("ce  filled", 34.0, 0.0));
        let geometry = page_geometry(text, &[glyphs], 200.0, 100.0);
        let words = shape(&geometry, text);
        assert_eq!(words[1], ("office".into(), 20.0, 0.0, 24.0));
        assert_eq!(words[2].0, "filled");
    }

    #[test]
    fn a_word_hyphenated_across_lines_gets_a_box_on_each() {
        let text = "leo. Maecenas lacinia.";
        let runs = vec![run("leo. Maece-", 0.0, 0.0), run("nas lacinia.", 0.0, 20.0)];
        let geometry = page_geometry(text, &runs, 300.0, 100.0);
        let words = shape(&geometry, text);
        assert_eq!(words[1], ("Maece".into(), 25.0, 0.0, 25.0));
        assert_eq!(words[2], ("nas".into(), 0.0, 20.0, 15.0));
    }

    #[test]
    fn text_without_glyphs_gets_no_boxes_and_short_runs_stay_local() {
        let text = "a heading\n\nbody";
        // A lone "a" after "heading" is not looked for before it.
        let runs = vec![run("heading", 10.0, 0.0), run("a", 200.0, 50.0)];
        let geometry = page_geometry(text, &runs, 300.0, 100.0);
        let words = shape(&geometry, text);
        assert_eq!(words.len(), 1, "{words:?}");
        assert_eq!(words[0].0, "heading");
    }
}
