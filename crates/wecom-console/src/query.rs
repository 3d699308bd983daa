//! The search box's language and the filters beside it, turned into a tantivy query.
//!
//! A query is whitespace-separated terms, all of which must match; `"…"` keeps a phrase with spaces as
//! one term; a leading `-` excludes a term. Each term is analyzed like the indexed text
//! ([`crate::tokenize`]) and searched as a phrase of its tokens, so `报价单` finds exactly the messages
//! containing 报价单. There are no operators beyond that: a reviewer's query means what it says.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{IndexRecordOption, Term};

use crate::schema::Fields;
use crate::tokenize::analyze;

/// Terms in one query, at most.
pub const MAX_TERMS: usize = 16;
/// Tokens in one term, at most.
pub const MAX_TERM_TOKENS: usize = 64;

/// One term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// As typed (without quotes and the `-`).
    pub raw: String,
    pub negated: bool,
    /// Tokens with their position relative to the first.
    pub tokens: Vec<(usize, String)>,
}

/// A parsed query: the terms that have at least one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    pub terms: Vec<QueryTerm>,
}

/// Why a query was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query has more than {MAX_TERMS} terms")]
    TooManyTerms,
    #[error("the term {0:?} is longer than {MAX_TERM_TOKENS} tokens")]
    TermTooLong(String),
}

impl ParsedQuery {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms that must match (what the highlighter marks).
    pub fn positive(&self) -> impl Iterator<Item = &QueryTerm> {
        self.terms.iter().filter(|t| !t.negated)
    }
}

/// Splits and analyzes a query (see the module docs).
pub fn parse(q: &str) -> Result<ParsedQuery, QueryError> {
    let mut raw_terms: Vec<(bool, String)> = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut negated = false;
        if c == '-' {
            chars.next();
            negated = true;
        }
        let mut term = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                term.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                term.push(c);
                chars.next();
            }
        }
        raw_terms.push((negated, term));
    }
    let mut terms = Vec::new();
    for (negated, raw) in raw_terms {
        let toks = analyze(&raw);
        if toks.is_empty() {
            continue;
        }
        if toks.len() > MAX_TERM_TOKENS {
            return Err(QueryError::TermTooLong(raw));
        }
        let base = toks[0].position;
        terms.push(QueryTerm {
            tokens: toks
                .into_iter()
                .map(|t| (t.position - base, t.text))
                .collect(),
            raw,
            negated,
        });
        if terms.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms);
        }
    }
    Ok(ParsedQuery { terms })
}

/// The filters beside the search box (and of the search API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Sender userid.
    pub sender: Option<String>,
    pub conversation: Option<String>,
    /// Room id (`wr…`).
    pub room: Option<String>,
    /// From this time on (Unix ms, inclusive).
    pub from_ms: Option<u64>,
    /// Before this time (Unix ms, exclusive).
    pub until_ms: Option<u64>,
    /// Any of these msgtypes (empty: all).
    pub msgtypes: Vec<String>,
    pub has_media: Option<bool>,
    /// Conversations with an external contact.
    pub external: Option<bool>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self == &Filters::default()
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// The query for one term on the text field.
fn text_query(f: &Fields, term: &QueryTerm) -> Box<dyn Query> {
    if term.tokens.len() == 1 {
        let t = Term::from_field_text(f.text, &term.tokens[0].1);
        return Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs));
    }
    let terms = term
        .tokens
        .iter()
        .map(|(pos, tok)| (*pos, Term::from_field_text(f.text, tok)))
        .collect();
    Box::new(PhraseQuery::new_with_offset(terms))
}

/// A time range on the `time` field: `[from, until)`.
pub fn time_range(f: &Fields, from_ms: Option<u64>, until_ms: Option<u64>) -> Box<dyn Query> {
    let lower = match from_ms {
        Some(v) => Bound::Included(Term::from_field_u64(f.time, v)),
        None => Bound::Unbounded,
    };
    let upper = match until_ms {
        Some(v) => Bound::Excluded(Term::from_field_u64(f.time, v)),
        None => Bound::Unbounded,
    };
    Box::new(RangeQuery::new(lower, upper))
}

/// The clauses of the filters (all must hold).
pub fn filter_clauses(f: &Fields, filters: &Filters) -> Vec<(Occur, Box<dyn Query>)> {
    let mut out: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let text_term = |field, v: &str| term_query(Term::from_field_text(field, v));
    if let Some(s) = &filters.sender {
        out.push((Occur::Must, text_term(f.sender, s)));
    }
    if let Some(c) = &filters.conversation {
        out.push((Occur::Must, text_term(f.conv, c)));
    }
    if let Some(r) = &filters.room {
        out.push((Occur::Must, text_term(f.room, r)));
    }
    if filters.from_ms.is_some() || filters.until_ms.is_some() {
        out.push((
            Occur::Must,
            time_range(f, filters.from_ms, filters.until_ms),
        ));
    }
    if !filters.msgtypes.is_empty() {
        let terms = filters
            .msgtypes
            .iter()
            .map(|m| Term::from_field_text(f.msgtype, m));
        out.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
    }
    if let Some(b) = filters.has_media {
        out.push((
            Occur::Must,
            term_query(Term::from_field_bool(f.has_media, b)),
        ));
    }
    if let Some(b) = filters.external {
        out.push((
            Occur::Must,
            term_query(Term::from_field_bool(f.external, b)),
        ));
    }
    out
}

/// The whole query: every positive term, no negated one, every filter. An empty query with no filter
/// matches nothing (a search box submitted empty is not "show everything").
pub fn build(f: &Fields, q: &ParsedQuery, filters: &Filters) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for term in &q.terms {
        let occur = if term.negated {
            Occur::MustNot
        } else {
            Occur::Must
        };
        clauses.push((occur, text_query(f, term)));
    }
    clauses.extend(filter_clauses(f, filters));
    if q.positive().next().is_none() {
        if filters.is_empty() && q.is_empty() {
            return Box::new(EmptyQuery);
        }
        // Only negations and filters: everything else is the base set.
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(q: &str) -> Vec<(bool, Vec<(usize, String)>)> {
        parse(q)
            .expect("parses")
            .terms
            .into_iter()
            .map(|t| (t.negated, t.tokens))
            .collect()
    }

    fn toks(list: &[(usize, &str)]) -> Vec<(usize, String)> {
        list.iter().map(|(p, t)| (*p, (*t).to_owned())).collect()
    }

    #[test]
    fn terms_phrases_and_negation() {
        assert_eq!(
            terms("报价 -Friday"),
            vec![
                (false, toks(&[(0, "报"), (1, "价")])),
                (true, toks(&[(0, "friday")]))
            ]
        );
        assert_eq!(
            terms("\"review the\"  ，"),
            vec![(false, toks(&[(0, "review"), (2, "the")]))]
        );
        assert_eq!(
            terms("\"unterminated 短"),
            vec![(false, toks(&[(0, "unterminated"), (2, "短")]))]
        );
        assert!(parse("").expect("empty").is_empty());
        assert!(parse("！！ -").expect("punctuation").is_empty());
    }

    #[test]
    fn limits() {
        let many = (0..=MAX_TERMS)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(parse(&many), Err(QueryError::TooManyTerms));
        let long = "字".repeat(MAX_TERM_TOKENS + 1);
        assert!(matches!(parse(&long), Err(QueryError::TermTooLong(_))));
    }
}
