//! The `answer` string of a JSON object, read while the object is still
//! arriving: the LLM streams its structured answer a few characters at a time,
//! and the caller should see the answer text as it comes, not the JSON around
//! it. Only the top-level `answer` key counts; everything else is skipped.

#[derive(Debug, Default)]
pub struct AnswerFieldScanner {
    state: State,
    /// Nesting outside of strings: 1 inside the top-level object.
    depth: u32,
    /// At depth 1, the next string is a key.
    expecting_key: bool,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Outside,
    /// A string that is not the answer; `key` collects it when it is a top-level key.
    OtherString {
        escaped: bool,
        key: Option<String>,
    },
    AfterAnswerKey,
    AfterAnswerColon,
    InAnswer(Decoder),
    Done,
}

/// JSON string escapes, across chunk boundaries.
#[derive(Debug, Default)]
struct Decoder {
    /// After a backslash: the characters of the escape so far.
    escape: Option<String>,
    /// A `\uD8xx` waiting for its low half.
    high_surrogate: Option<u16>,
}

impl AnswerFieldScanner {
    /// Feeds the next piece of the JSON text; returns the answer text it completed.
    pub fn feed(&mut self, piece: &str) -> String {
        let mut out = String::new();
        for c in piece.chars() {
            self.step(c, &mut out);
        }
        out
    }

    fn step(&mut self, c: char, out: &mut String) {
        match &mut self.state {
            State::Done => {}
            State::Outside => match c {
                '{' | '[' => {
                    self.depth += 1;
                    self.expecting_key = self.depth == 1 && c == '{';
                }
                '}' | ']' => self.depth = self.depth.saturating_sub(1),
                ',' if self.depth == 1 => self.expecting_key = true,
                '"' => {
                    let key = (self.depth == 1 && self.expecting_key).then(String::new);
                    self.expecting_key = false;
                    self.state = State::OtherString { escaped: false, key };
                }
                _ => {}
            },
            State::OtherString { escaped, key } => {
                if *escaped {
                    *escaped = false;
                    if let Some(key) = key {
                        key.push(c);
                    }
                } else if c == '\\' {
                    *escaped = true;
                    if let Some(key) = key {
                        key.push(c);
                    }
                } else if c == '"' {
                    let is_answer = key.as_deref() == Some("answer");
                    self.state = if is_answer {
                        State::AfterAnswerKey
                    } else {
                        State::Outside
                    };
                } else if let Some(key) = key {
                    key.push(c);
                }
            }
            State::AfterAnswerKey => match c {
                ':' => self.state = State::AfterAnswerColon,
                c if c.is_whitespace() => {}
                _ => self.state = State::Outside,
            },
            State::AfterAnswerColon => match c {
                '"' => self.state = State::InAnswer(Decoder::default()),
                c if c.is_whitespace() => {}
                // Not a string: there is no answer text to show.
                _ => self.state = State::Done,
            },
            State::InAnswer(decoder) => {
                if decoder.step(c, out) {
                    self.state = State::Done;
                }
            }
        }
    }
}

impl Decoder {
    /// Decodes one character of the string's body; true at its closing quote.
    fn step(&mut self, c: char, out: &mut String) -> bool {
        let Some(escape) = &mut self.escape else {
            match c {
                '\\' => self.escape = Some(String::new()),
                '"' => {
                    self.flush_surrogate(out);
                    return true;
                }
                c => {
                    self.flush_surrogate(out);
                    out.push(c);
                }
            }
            return false;
        };
        escape.push(c);
        if let Some(hex) = escape.strip_prefix('u') {
            if hex.len() < 4 {
                return false;
            }
            let unit = u16::from_str_radix(hex, 16).ok();
            self.escape = None;
            match unit {
                Some(high @ 0xD800..=0xDBFF) => {
                    self.flush_surrogate(out);
                    self.high_surrogate = Some(high);
                }
                Some(low @ 0xDC00..=0xDFFF) => match self.high_surrogate.take() {
                    Some(high) => {
                        let code = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    None => out.push(char::REPLACEMENT_CHARACTER),
                },
                Some(unit) => {
                    self.flush_surrogate(out);
                    out.push(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                None => out.push(char::REPLACEMENT_CHARACTER),
            }
            return false;
        }
        self.escape = None;
        self.flush_surrogate(out);
        out.push(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            other => other, // `"`, `\`, `/` and anything unexpected stand for themselves
        });
        false
    }

    /// A high surrogate with no low half is not a character.
    fn flush_surrogate(&mut self, out: &mut String) {
        if self.high_surrogate.take().is_some() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(json: &str, piece_len: usize) -> String {
        let chars: Vec<char> = json.chars().collect();
        let mut scanner = AnswerFieldScanner::default();
        chars
            .chunks(piece_len)
            .map(|piece| scanner.feed(&piece.iter().collect::<String>()))
            .collect()
    }

    #[test]
    fn the_answer_text_comes_out_decoded_however_the_json_is_cut() {
        let json = r#"{ "answer" : "Line one [1].\nSays \"24 months\" \\ caf\u00e9 \ud83d\ude00 ok", "citations": [{"chunk_id": "a", "quote": "answer"}]}"#;
        let expected = serde_json::from_str::<serde_json::Value>(json).unwrap()["answer"]
            .as_str()
            .unwrap()
            .to_string();
        for piece_len in 1..=json.len() {
            assert_eq!(streamed(json, piece_len), expected, "pieces of {piece_len}");
        }
    }

    #[test]
    fn only_the_top_level_answer_key_counts() {
        // Key order is the model's choice, and nested "answer" keys or values are not the answer.
        let json = r#"{"citations": [{"answer": "nested", "quote": "\"answer\": \"no\""}], "note": "answer", "answer": "yes [1]"}"#;
        assert_eq!(streamed(json, 3), "yes [1]");
        assert_eq!(streamed(r#"{"answer": 42}"#, 1), "");
        assert_eq!(streamed("not json at all", 2), "");
    }
}
