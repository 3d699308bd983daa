//! Where a query's terms occur in a text, by the same rule the index matches them ([`crate::tokenize`]):
//! the spans the search page marks and the search API returns.

use std::collections::HashMap;

use crate::query::ParsedQuery;
use crate::tokenize::analyze;

/// Byte ranges of `text` matched by the query's positive terms, sorted and merged.
pub fn spans(text: &str, q: &ParsedQuery) -> Vec<(usize, usize)> {
    let toks = analyze(text);
    let by_pos: HashMap<usize, usize> = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.position, i))
        .collect();
    let mut out = Vec::new();
    for term in q.positive() {
        let Some((first_rel, first_text)) = term.tokens.first() else {
            continue;
        };
        for t in toks.iter().filter(|t| &t.text == first_text) {
            let Some(base) = t.position.checked_sub(*first_rel) else {
                continue;
            };
            let mut end = t.end;
            let matched = term.tokens.iter().all(|(rel, want)| {
                match by_pos.get(&(base + rel)).map(|&i| &toks[i]) {
                    Some(tok) if &tok.text == want => {
                        end = end.max(tok.end);
                        true
                    }
                    _ => false,
                }
            });
            if matched {
                out.push((t.start, end));
            }
        }
    }
    out.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(out.len());
    for (s, e) in out {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Byte ranges as character ranges (what the API returns: JavaScript and most readers count characters).
pub fn char_spans(text: &str, spans: &[(usize, usize)]) -> Vec<(usize, usize)> {
    spans
        .iter()
        .map(|&(s, e)| (text[..s].chars().count(), text[..e].chars().count()))
        .collect()
}

/// A window of `text` of about `max_chars` characters around the first span, with the spans shifted into
/// it. Returns (window, spans, cut at start, cut at end).
pub fn window(
    text: &str,
    spans: &[(usize, usize)],
    max_chars: usize,
) -> (String, Vec<(usize, usize)>, bool, bool) {
    let total = text.chars().count();
    if total <= max_chars {
        return (text.to_owned(), spans.to_vec(), false, false);
    }
    let first_char = spans
        .first()
        .map(|&(s, _)| text[..s].chars().count())
        .unwrap_or(0);
    let start_char = first_char.saturating_sub(max_chars / 3);
    let end_char = (start_char + max_chars).min(total);
    let byte_at = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
    let (bs, be) = (byte_at(start_char), byte_at(end_char));
    let shifted = spans
        .iter()
        .filter(|&&(s, e)| s >= bs && e <= be)
        .map(|&(s, e)| (s - bs, e - bs))
        .collect();
    (
        text[bs..be].to_owned(),
        shifted,
        start_char > 0,
        end_char < total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    fn marked(text: &str, q: &str) -> String {
        let s = spans(text, &parse(q).expect("parses"));
        let mut out = String::new();
        let mut at = 0;
        for (a, b) in s {
            out.push_str(&text[at..a]);
            out.push('[');
            out.push_str(&text[a..b]);
            out.push(']');
            at = b;
        }
        out.push_str(&text[at..]);
        out
    }

    #[test]
    fn marks_what_the_index_matches() {
        assert_eq!(
            marked("这个报价可以再优惠一点吗？", "报价"),
            "这个[报价]可以再优惠一点吗？"
        );
        assert_eq!(marked("好的，收到", "\"好的，收到\""), "[好的，收到]");
        assert_eq!(marked("好的，收到", "的收"), "好的，收到");
        assert_eq!(
            marked("Please REVIEW the contract", "review"),
            "Please [REVIEW] the contract"
        );
        assert_eq!(marked("reviewer", "review"), "reviewer");
        assert_eq!(marked("收到收到", "收到 -到"), "[收到收到]");
        assert_eq!(marked("ａｂ 合同 ab", "ab"), "[ａｂ] 合同 [ab]");
    }

    #[test]
    fn windows_keep_the_first_hit() {
        let text = format!("{}关键{}", "前".repeat(300), "后".repeat(300));
        let s = spans(&text, &parse("关键").expect("parses"));
        let (w, ws, cut_start, cut_end) = window(&text, &s, 60);
        assert!(cut_start && cut_end);
        assert_eq!(&w[ws[0].0..ws[0].1], "关键");
        assert_eq!(char_spans("a关键", &[(1, 7)]), vec![(1, 3)]);
    }
}
