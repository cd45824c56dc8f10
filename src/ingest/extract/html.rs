//! HTML: the visible text, as one page. Parsed by html5ever (through
//! `scraper`) as a browser would, then walked without recursion, so deeply
//! nested markup cannot overflow the stack. Scripts, styles and other
//! non-rendered elements are dropped; block elements become line breaks and
//! paragraphs; whitespace collapses as it renders (except in `<pre>`).

use ego_tree::iter::Edge;
use scraper::{Html, Node};

use super::{ExtractError, ExtractedText};

/// Elements whose content is never shown as text.
const HIDDEN: &[&str] = &[
    "head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "select",
];

/// Elements that start and end a block of text.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
];

pub fn extract(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let source = std::str::from_utf8(bytes).map_err(|e| ExtractError::Corrupt(format!("not UTF-8: {e}")))?;
    let document = Html::parse_document(source);
    let mut text = TextBuilder::default();
    if let Some(title) = title(&document) {
        text.push_text(&title, false);
        text.end_block();
    }
    let mut hidden_depth = 0usize;
    let mut pre_depth = 0usize;
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if hidden_depth > 0 || HIDDEN.contains(&name) {
                        hidden_depth += 1;
                    } else if name == "br" {
                        text.line_break();
                    } else if BLOCKS.contains(&name) {
                        text.end_block();
                        if name == "pre" {
                            pre_depth += 1;
                        }
                    } else if matches!(name, "td" | "th") {
                        text.push_text(" ", false);
                    }
                }
                Node::Text(t) if hidden_depth == 0 => text.push_text(t, pre_depth > 0),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    let name = element.name();
                    if hidden_depth > 0 {
                        hidden_depth -= 1;
                    } else if BLOCKS.contains(&name) {
                        if name == "pre" {
                            pre_depth = pre_depth.saturating_sub(1);
                        }
                        text.end_block();
                    }
                }
            }
        }
    }
    Ok(ExtractedText {
        pages: vec![text.finish()],
        unreadable_pages: Vec::new(),
    })
}

fn title(document: &Html) -> Option<String> {
    let selector = scraper::Selector::parse("head > title").ok()?;
    let title: String = document.select(&selector).next()?.text().collect();
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

/// Text as it renders: collapsed spaces, lines, and blank lines between blocks.
#[derive(Default)]
struct TextBuilder {
    out: String,
    /// A space is owed before the next word.
    space: bool,
    /// A paragraph break is owed before the next text.
    block: bool,
    line: bool,
}

impl TextBuilder {
    fn push_text(&mut self, raw: &str, preformatted: bool) {
        if preformatted {
            self.flush_breaks();
            self.out.push_str(raw);
            return;
        }
        let starts_with_space = raw.starts_with(char::is_whitespace);
        let ends_with_space = raw.ends_with(char::is_whitespace);
        let mut words = raw.split_whitespace().peekable();
        if words.peek().is_none() {
            self.space |= !raw.is_empty();
            return;
        }
        self.flush_breaks();
        if (self.space || starts_with_space) && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
            self.out.push(' ');
        }
        let mut first = true;
        for word in words {
            if !first {
                self.out.push(' ');
            }
            self.out.push_str(word);
            first = false;
        }
        self.space = ends_with_space;
    }

    fn flush_breaks(&mut self) {
        if self.out.is_empty() {
            self.block = false;
            self.line = false;
            return;
        }
        if self.block {
            self.out.truncate(self.out.trim_end_matches(' ').len());
            self.out.push_str("\n\n");
            self.space = false;
        } else if self.line {
            self.out.truncate(self.out.trim_end_matches(' ').len());
            self.out.push('\n');
            self.space = false;
        }
        self.block = false;
        self.line = false;
    }

    fn end_block(&mut self) {
        self.block = true;
    }

    fn line_break(&mut self) {
        self.line = true;
    }

    fn finish(self) -> String {
        self.out.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        extract(html.as_bytes()).unwrap().pages.remove(0)
    }

    #[test]
    fn visible_text_only_in_paragraphs() {
        let html = r#"<!doctype html><html><head><title>Leave  policy</title>
            <style>p { color: red }</style><script>var secret = "do not index";</script></head>
            <body><nav>Home | About</nav><h1>Annual leave</h1>
            <p>Staff get <b>25 days</b> of leave
               a year.</p><p>Carry-over:<br>at most 5 days.</p>
            <noscript>Enable JavaScript</noscript><ul><li>One</li><li>Two</li></ul></body></html>"#;
        assert_eq!(
            text(html),
            "Leave policy\n\nHome | About\n\nAnnual leave\n\nStaff get 25 days of leave a year.\n\nCarry-over:\nat most 5 days.\n\nOne\n\nTwo"
        );
    }

    #[test]
    fn entities_are_decoded_and_pre_keeps_its_layout() {
        assert_eq!(
            text("<p>Fish &amp; chips &lt;3&nbsp;times</p><pre>a  b\n  c</pre>"),
            "Fish & chips <3 times\n\na  b\n  c"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // (html5ever's scope checks make depth quadratic: 100k levels take ~40 s in
        // a debug build, which the extraction timeout bounds in production.)
        let html = format!("{}deep{}", "<div>".repeat(20_000), "</div>".repeat(20_000));
        assert_eq!(text(&html), "deep");
    }
}
