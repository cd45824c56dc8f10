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

/// Deeper markup is refused before it is parsed: a browser's tree builder
/// checks the stack of open elements at every tag, so a file of a million
/// nested `<div>`s takes minutes. Real pages stay far below.
pub const MAX_NESTING: usize = 1_000;

pub fn extract(bytes: &[u8]) -> Result<ExtractedText, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let source = std::str::from_utf8(bytes).map_err(|e| ExtractError::Corrupt(format!("not UTF-8: {e}")))?;
    if nesting_depth(source) > MAX_NESTING {
        return Err(ExtractError::Corrupt(format!(
            "HTML nested more than {MAX_NESTING} elements deep"
        )));
    }
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
        ..Default::default()
    })
}

/// Elements that have no end tag, or whose end tag may be left out: they do
/// not deepen the tree however many there are.
const NOT_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "p", "li",
    "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "caption", "rt", "rp",
    "html", "head", "body",
];

/// How deep the markup nests, read from its tags alone (without building a
/// tree): an upper bound of the depth a parser would reach, for the limit.
fn nesting_depth(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(offset) = source[at..].find('<') {
        at += offset + 1;
        let rest = &source[at..];
        if rest.starts_with("!--") {
            at += rest.find("-->").map_or(rest.len(), |end| end + 3);
            continue;
        }
        let closing = rest.starts_with('/');
        let name_start = at + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name = source[name_start..name_start + name_len].to_ascii_lowercase();
        // No tag is complete after one that never ends.
        let Some(tag_end) = source[name_start..].find('>').map(|end| name_start + end) else {
            break;
        };
        at = tag_end;
        if NOT_NESTING.contains(&name.as_str()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else if !source[..tag_end].ends_with('/') {
            depth += 1;
            deepest = deepest.max(depth);
            // Their content is text, not markup.
            if matches!(name.as_str(), "script" | "style" | "textarea" | "title") {
                let close = format!("</{name}");
                at = bytes[tag_end..]
                    .windows(close.len())
                    .position(|w| w.eq_ignore_ascii_case(close.as_bytes()))
                    .map_or(source.len(), |end| tag_end + end);
            }
        }
    }
    deepest
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

    #[test]
    fn markup_nested_too_deep_is_refused_before_parsing() {
        let deep = format!(
            "<html><body>{}text{}</body></html>",
            "<div>".repeat(50_000),
            "</div>".repeat(50_000)
        );
        let err = extract(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nested more than"), "{err}");
        // Unclosed paragraphs and list items, void elements, comments and
        // scripts do not count as nesting.
        let page = format!(
            "<html><body>{}<!-- <div><div> --><script>if (a<b) {{ '<div>'.repeat(9) }}</script>{}</body></html>",
            "<p>para<br><img src=x>".repeat(5_000),
            "<ul><li>one<li>two</ul>".repeat(1_000)
        );
        assert!(nesting_depth(&page) < 10, "{}", nesting_depth(&page));
        assert!(extract(page.as_bytes()).is_ok());
        assert_eq!(nesting_depth("<div><div><div/></div>"), 2);
        assert_eq!(nesting_depth(&"<a<a".repeat(100_000)), 0);
    }

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
    fn nesting_up_to_the_limit_is_read() {
        // (html5ever's scope checks make depth quadratic: 100k levels took ~40 s
        // in a debug build, hence the limit before parsing.)
        let html = format!("{}deep{}", "<div>".repeat(MAX_NESTING), "</div>".repeat(MAX_NESTING));
        assert_eq!(text(&html), "deep");
    }
}
