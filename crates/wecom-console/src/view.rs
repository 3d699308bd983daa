//! Reading the index: timelines and search results in time order with stable paging, transcripts in
//! ingest order, single messages, and which messages were recalled. Blocking (CPU and mmap reads):
//! the server calls these from blocking threads.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::index::SegmentId;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, Term};
use tantivy::{DocAddress, DocId, Order, Score, SegmentReader};

use crate::error::ConsoleError;
use crate::index::Archive;
use crate::msg::Msg;
use crate::query::{self, Filters, ParsedQuery};

/// A place in time order: message time, then ingest number (unique), so pages never overlap or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeKey {
    pub time: u64,
    pub ingest: u64,
}

impl TimeKey {
    pub fn of(m: &Msg) -> TimeKey {
        TimeKey {
            time: m.record.msgtime_ms.unwrap_or(0),
            ingest: m.ingest,
        }
    }

    /// `time.ingest`, as it appears in page links.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.time, self.ingest)
    }

    pub fn decode(s: &str) -> Option<TimeKey> {
        let (t, i) = s.split_once('.')?;
        Some(TimeKey {
            time: t.parse().ok()?,
            ingest: i.parse().ok()?,
        })
    }
}

/// Which side of an anchor a page lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The newest messages.
    Newest,
    /// Messages strictly older than the key, newest first.
    Before(TimeKey),
    /// Messages strictly newer than the key (shown newest first too).
    After(TimeKey),
    /// The oldest messages (for exports, in time order).
    Oldest,
}

/// One page of messages, newest first (except [`Anchor::Oldest`]/[`TimeView::chronological`] pages).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub msgs: Vec<Msg>,
    /// Messages matching the query, all pages together.
    pub total: usize,
    pub has_older: bool,
    pub has_newer: bool,
}

type Key = Option<(u64, u64)>;

/// Documents left out of a result although its query matches them, per segment.
///
/// Excluding a phrase with a `MustNot` clause trips a debug assertion in tantivy 0.27's phrase scorer
/// (a freshly positioned scorer asked to seek behind its first document), so negated phrases are
/// collected first and left out here instead.
pub type Excluded = Arc<HashMap<SegmentId, HashSet<DocId>>>;

/// The sort key of every matching document relative to an anchor: `None` for documents on the wrong
/// side (or excluded), which sort last and are dropped.
fn keyed(
    anchor: Anchor,
    excluded: Excluded,
) -> impl Fn(&SegmentReader) -> Box<dyn Fn(DocId, Score) -> Key> + Send + Sync + 'static {
    move |seg: &SegmentReader| {
        let ff = seg.fast_fields();
        let time = ff.column_first_or_default::<u64>("time").ok();
        let ingest = ff.column_first_or_default::<u64>("ingest").ok();
        let skip = excluded.get(&seg.segment_id()).cloned().unwrap_or_default();
        Box::new(move |doc: DocId, _score: Score| -> Key {
            let (Some(t), Some(i)) = (&time, &ingest) else {
                return None;
            };
            if skip.contains(&doc) {
                return None;
            }
            let k = TimeKey {
                time: t.get_val(doc),
                ingest: i.get_val(doc),
            };
            let flip = |k: TimeKey| Some((u64::MAX - k.time, u64::MAX - k.ingest));
            match anchor {
                Anchor::Newest => Some((k.time, k.ingest)),
                Anchor::Before(a) => (k < a).then_some((k.time, k.ingest)),
                Anchor::After(a) if k > a => flip(k),
                Anchor::After(_) => None,
                Anchor::Oldest => flip(k),
            }
        })
    }
}

impl Archive {
    /// Up to `limit` messages matching `query` on one side of `anchor`, with the total and whether more
    /// exist on either side. Pages are newest first, except `Oldest`/`After` with `chronological`.
    pub fn page(
        &self,
        query: &dyn Query,
        anchor: Anchor,
        limit: usize,
        chronological: bool,
    ) -> Result<Page, ConsoleError> {
        self.page_excluding(query, &Excluded::default(), anchor, limit, chronological)
    }

    fn page_excluding(
        &self,
        query: &dyn Query,
        excluded: &Excluded,
        anchor: Anchor,
        limit: usize,
        chronological: bool,
    ) -> Result<Page, ConsoleError> {
        let limit = limit.max(1);
        let searcher = self.searcher();
        let top = TopDocs::with_limit(limit + 1).tweak_score(keyed(anchor, excluded.clone()));
        let (matched, hits) = searcher
            .search(query, &(Count, top))
            .map_err(ConsoleError::index)?;
        let total = matched - excluded.values().map(HashSet::len).sum::<usize>();
        let hits: Vec<DocAddress> = hits
            .into_iter()
            .filter(|(k, _)| k.is_some())
            .map(|(_, a)| a)
            .collect();
        let more = hits.len() > limit;
        let mut msgs = hits
            .into_iter()
            .take(limit)
            .map(|a| self.load(&searcher, a))
            .collect::<Result<Vec<_>, _>>()?;
        // `After` and `Oldest` collect in ascending order.
        let ascending = matches!(anchor, Anchor::After(_) | Anchor::Oldest);
        if ascending != chronological {
            msgs.reverse();
        }
        let (mut has_older, mut has_newer) = match anchor {
            Anchor::Newest => (more, false),
            Anchor::Before(_) => (more, true),
            Anchor::After(_) => (true, more),
            Anchor::Oldest => (false, more),
        };
        // The side we came from is only a guess: check it against the page's edge.
        let edge = |newest: bool| {
            let keys = msgs.iter().map(TimeKey::of);
            if newest {
                keys.max()
            } else {
                keys.min()
            }
        };
        if matches!(anchor, Anchor::Before(_)) {
            has_newer = match edge(true) {
                Some(k) => self.exists(query, excluded, Anchor::After(k))?,
                None => false,
            };
        }
        if matches!(anchor, Anchor::After(_)) {
            has_older = match edge(false) {
                Some(k) => self.exists(query, excluded, Anchor::Before(k))?,
                None => false,
            };
        }
        Ok(Page {
            msgs,
            total,
            has_older,
            has_newer,
        })
    }

    fn exists(
        &self,
        query: &dyn Query,
        excluded: &Excluded,
        anchor: Anchor,
    ) -> Result<bool, ConsoleError> {
        let top = TopDocs::with_limit(1).tweak_score(keyed(anchor, excluded.clone()));
        let hits = self
            .searcher()
            .search(query, &top)
            .map_err(ConsoleError::index)?;
        Ok(hits.iter().any(|(k, _)| k.is_some()))
    }

    /// A conversation's messages around `anchor`, newest first.
    pub fn timeline(&self, conv: &str, anchor: Anchor, limit: usize) -> Result<Page, ConsoleError> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.conv, conv),
            IndexRecordOption::Basic,
        );
        self.page(&q, anchor, limit, false)
    }

    /// Search results newest first; an empty query with no filter finds nothing.
    pub fn search(
        &self,
        q: &ParsedQuery,
        filters: &Filters,
        anchor: Anchor,
        limit: usize,
    ) -> Result<Page, ConsoleError> {
        // Negated phrases are left out after matching (see [`Excluded`]); negated words stay clauses.
        let (phrases, kept): (Vec<_>, Vec<_>) = q
            .terms
            .iter()
            .cloned()
            .partition(|t| t.negated && t.tokens.len() > 1);
        let base_q = ParsedQuery { terms: kept };
        let base: Box<dyn Query> = if base_q.is_empty() && filters.is_empty() && !phrases.is_empty()
        {
            Box::new(AllQuery)
        } else {
            query::build(&self.fields, &base_q, filters)
        };
        if phrases.is_empty() {
            return self.page(base.as_ref(), anchor, limit, false);
        }
        let searcher = self.searcher();
        let mut excluded: HashMap<SegmentId, HashSet<DocId>> = HashMap::new();
        for mut phrase in phrases {
            phrase.negated = false;
            let both = BooleanQuery::new(vec![
                (Occur::Must, base.box_clone()),
                (
                    Occur::Must,
                    query::build(
                        &self.fields,
                        &ParsedQuery {
                            terms: vec![phrase],
                        },
                        &Filters::default(),
                    ),
                ),
            ]);
            for addr in searcher
                .search(&both, &DocSetCollector)
                .map_err(ConsoleError::index)?
            {
                let seg = searcher.segment_reader(addr.segment_ord).segment_id();
                excluded.entry(seg).or_default().insert(addr.doc_id);
            }
        }
        self.page_excluding(base.as_ref(), &Arc::new(excluded), anchor, limit, false)
    }

    /// Messages of `filters` (conversation, time range, ...) in time order, `limit` at a time after
    /// `after` (for exports).
    pub fn chronological(
        &self,
        filters: &Filters,
        after: Option<TimeKey>,
        limit: usize,
    ) -> Result<Page, ConsoleError> {
        let mut clauses = query::filter_clauses(&self.fields, filters);
        clauses.push((Occur::Must, Box::new(AllQuery)));
        let q = BooleanQuery::new(clauses);
        let anchor = after.map_or(Anchor::Oldest, Anchor::After);
        self.page(&q, anchor, limit, true)
    }

    /// A conversation's messages indexed after ingest number `after`, in ingest order, at most `limit`,
    /// restricted to `[from_ms, until_ms)` when given. Returns them, whether more exist, and the highest
    /// ingest number of the snapshot they were read from (every record up to it was visible).
    pub fn transcript(
        &self,
        conv: &str,
        after: u64,
        from_ms: Option<u64>,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Msg>, bool, u64), ConsoleError> {
        let limit = limit.max(1);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.conv, conv),
                    IndexRecordOption::Basic,
                )),
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Excluded(Term::from_field_u64(self.fields.ingest, after)),
                    Bound::Unbounded,
                )),
            ),
        ];
        if from_ms.is_some() || until_ms.is_some() {
            clauses.push((
                Occur::Must,
                query::time_range(&self.fields, from_ms, until_ms),
            ));
        }
        let q = BooleanQuery::new(clauses);
        let searcher = self.searcher();
        let top = TopDocs::with_limit(limit + 1).order_by_u64_field("ingest", Order::Asc);
        let hits = searcher.search(&q, &top).map_err(ConsoleError::index)?;
        let more = hits.len() > limit;
        let msgs = hits
            .into_iter()
            .take(limit)
            .map(|(_, a)| self.load(&searcher, a))
            .collect::<Result<Vec<_>, _>>()?;
        let top = TopDocs::with_limit(1).order_by_u64_field("ingest", Order::Desc);
        let snapshot_max = searcher
            .search(&AllQuery, &top)
            .map_err(ConsoleError::index)?
            .first()
            .and_then(|(v, _)| *v)
            .unwrap_or(0);
        Ok((msgs, more, snapshot_max))
    }

    /// The message with this msgid.
    pub fn by_msgid(&self, msgid: &str) -> Result<Option<Msg>, ConsoleError> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.msgid, msgid),
            IndexRecordOption::Basic,
        );
        let searcher = self.searcher();
        let hits = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(ConsoleError::index)?;
        hits.first()
            .map(|(_, a)| self.load(&searcher, *a))
            .transpose()
    }

    /// For each msgid that a recall in the index recalls: the recall message's msgid.
    pub fn recalled(&self, msgids: &[&str]) -> Result<HashMap<String, String>, ConsoleError> {
        if msgids.is_empty() {
            return Ok(HashMap::new());
        }
        let q = TermSetQuery::new(
            msgids
                .iter()
                .map(|m| Term::from_field_text(self.fields.recalls, m)),
        );
        let searcher = self.searcher();
        let hits = searcher
            .search(&q, &TopDocs::with_limit(msgids.len() * 2).order_by_score())
            .map_err(ConsoleError::index)?;
        let mut out = HashMap::new();
        for (_, a) in hits {
            let recall = self.load(&searcher, a)?;
            if let Some(target) = recall.recalled_msgid() {
                out.insert(target.to_owned(), recall.record.msgid.clone());
            }
        }
        Ok(out)
    }

    /// The highest ingest number visible now (0 for an empty index).
    pub fn max_ingest(&self) -> Result<u64, ConsoleError> {
        let top = TopDocs::with_limit(1).order_by_u64_field("ingest", Order::Desc);
        let hits = self
            .searcher()
            .search(&AllQuery, &top)
            .map_err(ConsoleError::index)?;
        Ok(hits.first().and_then(|(v, _)| *v).unwrap_or(0))
    }
}
