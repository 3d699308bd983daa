//! How text becomes search terms: Chinese, Japanese and Korean characters one token each, other letters
//! and digits as lowercase words.
//!
//! **Why unigrams and not jieba.** A compliance search must not miss a message: a segmenter such as jieba
//! splits by a dictionary, so a query for a name, product or phrase it segments differently from the
//! message finds nothing (搜索 "报价单" misses "这个报价单" when the dictionary cut "这个报/价单"). Indexing every
//! CJK character at its own position and searching a query as a *phrase* of its characters matches exactly
//! the messages that contain the query as a substring, whatever its length (one character included), with no
//! dictionary to ship or keep current. The cost is longer posting lists for common characters; the bench
//! (`cargo bench -p wecom-console --bench index`) measures the search latency that results on a million
//! messages. Bigrams would shorten the lists but cannot match one-character queries nor query edges without
//! extra machinery.
//!
//! The text is cut into **runs**: maximal sequences of CJK characters, or of other letters and digits.
//! Everything else (spaces, punctuation, emoji) only separates runs. A CJK run yields one token per
//! character at consecutive positions; a word run yields one lowercase token. Between two runs the position
//! skips one, so a phrase never matches across a separator it did not ask for. Full-width ASCII (ｏｋ, １２)
//! is read as ASCII. Word tokens longer than [`MAX_WORD_BYTES`] are dropped (base64 blobs, not words).
//!
//! The resulting matching rule, which the search tests check against a brute-force scan: a query term
//! matches a text when its runs appear one after another in the text's runs, where the first and last
//! run, when CJK, may be the end and the start of a longer run (a single CJK run: anywhere inside one),
//! and every other run must be a whole run of the text. Words are compared case-insensitively.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name under which the tokenizer is registered in the index.
pub const TOKENIZER_NAME: &str = "wecom_cjk";
/// Word tokens longer than this (in UTF-8 bytes) are not indexed.
pub const MAX_WORD_BYTES: usize = 64;

/// One token: its normalized text, position, and byte range in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    pub text: String,
    pub position: usize,
    pub start: usize,
    pub end: usize,
}

/// Whether `c` is indexed one character at a time (Han, kana, hangul, bopomofo).
pub fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2EBEF
        | 0x2F800..=0x2FA1F
        | 0x30000..=0x3134F
        | 0x3040..=0x309F
        | 0x30A0..=0x30FF
        | 0x31F0..=0x31FF
        | 0x3100..=0x312F
        | 0x31A0..=0x31BF
        | 0x1100..=0x11FF
        | 0x3130..=0x318F
        | 0xAC00..=0xD7AF)
}

/// Full-width ASCII forms read as ASCII.
fn fold_width(c: char) -> char {
    match u32::from(c) {
        v @ 0xFF01..=0xFF5E => char::from_u32(v - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Sep,
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Sep
    }
}

/// The tokens of `text` (see the module docs).
pub fn analyze(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    // Position of the next token; a run boundary adds one more.
    let mut next_pos = 0usize;
    let mut iter = text.char_indices().peekable();
    let mut first_run = true;
    while let Some(&(start, raw)) = iter.peek() {
        let c = fold_width(raw);
        match class(c) {
            Class::Sep => {
                iter.next();
            }
            Class::Cjk => {
                if !first_run {
                    next_pos += 1;
                }
                first_run = false;
                while let Some(&(i, raw)) = iter.peek() {
                    let c = fold_width(raw);
                    if class(c) != Class::Cjk {
                        break;
                    }
                    iter.next();
                    out.push(Tok {
                        text: c.to_string(),
                        position: next_pos,
                        start: i,
                        end: i + raw.len_utf8(),
                    });
                    next_pos += 1;
                }
            }
            Class::Word => {
                if !first_run {
                    next_pos += 1;
                }
                first_run = false;
                let mut word = String::new();
                let mut end = start;
                while let Some(&(i, raw)) = iter.peek() {
                    let c = fold_width(raw);
                    if class(c) != Class::Word {
                        break;
                    }
                    iter.next();
                    word.extend(c.to_lowercase());
                    end = i + raw.len_utf8();
                }
                if word.len() <= MAX_WORD_BYTES {
                    out.push(Tok {
                        text: word,
                        position: next_pos,
                        start,
                        end,
                    });
                }
                next_pos += 1;
            }
        }
    }
    out
}

/// The tantivy side of [`analyze`].
#[derive(Clone, Default)]
pub struct CjkTokenizer {
    token: Token,
}

pub struct CjkTokenStream<'a> {
    tokens: std::vec::IntoIter<Tok>,
    token: &'a mut Token,
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream<'a> {
        self.token.reset();
        CjkTokenStream {
            tokens: analyze(text).into_iter(),
            token: &mut self.token,
        }
    }
}

impl TokenStream for CjkTokenStream<'_> {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(t) => {
                self.token.text = t.text;
                self.token.position = t.position;
                self.token.offset_from = t.start;
                self.token.offset_to = t.end;
                self.token.position_length = 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[(&str, usize)]) {
        let got: Vec<(String, usize)> = analyze(text)
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect();
        let want: Vec<(String, usize)> = expected
            .iter()
            .map(|(t, p)| ((*t).to_owned(), *p))
            .collect();
        assert_eq!(got, want, "{text:?}");
    }

    #[test]
    fn runs_positions_and_gaps() {
        check("好的，收到", &[("好", 0), ("的", 1), ("收", 3), ("到", 4)]);
        check("Please review", &[("please", 0), ("review", 2)]);
        check("报价ok", &[("报", 0), ("价", 1), ("ok", 3)]);
        check("ＯＫ１２", &[("ok12", 0)]);
        check("谢谢！👍", &[("谢", 0), ("谢", 1)]);
        check("¥12,800.00", &[("12", 0), ("800", 2), ("00", 4)]);
        check("", &[]);
        check("…！", &[]);
        check(
            "カタカナ한국",
            &[
                ("カ", 0),
                ("タ", 1),
                ("カ", 2),
                ("ナ", 3),
                ("한", 4),
                ("국", 5),
            ],
        );
    }

    #[test]
    fn long_words_are_dropped_but_keep_their_place() {
        let blob = "a".repeat(MAX_WORD_BYTES + 1);
        check(&format!("x {blob} y"), &[("x", 0), ("y", 4)]);
    }

    #[test]
    fn offsets_point_into_the_original() {
        let text = "会议 Notes：预算";
        for t in analyze(text) {
            let orig = &text[t.start..t.end];
            assert_eq!(orig.to_lowercase(), t.text);
        }
    }
}
