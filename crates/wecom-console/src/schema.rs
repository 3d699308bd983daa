//! The index schema: what is searchable, what is a filter, what is sorted on, and the record itself.
//!
//! The index is the console's only store: each document keeps the record line verbatim (compressed in
//! tantivy's doc store), so pages, transcripts and exports read records from the same snapshot that the
//! search ran on, in both source modes (local files, Kafka).

use tantivy::schema::{
    IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
    STORED, STRING,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, TantivyDocument};

use crate::msg::Msg;
use crate::tokenize::{CjkTokenizer, TOKENIZER_NAME};

/// Bumped when the schema or the analysis changes: an index of another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 1;

/// Field handles of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `Record::text`, analyzed by [`crate::tokenize`], with positions for phrases.
    pub text: tantivy::schema::Field,
    pub msgid: tantivy::schema::Field,
    /// 64-bit hash of the msgid, to find duplicates without a lookup per record.
    pub msgid_hash: tantivy::schema::Field,
    /// The order in which the console indexed the record: the transcript cursor's position.
    pub ingest: tantivy::schema::Field,
    /// `msgtime_ms` (0 when unknown).
    pub time: tantivy::schema::Field,
    pub seq: tantivy::schema::Field,
    pub stream: tantivy::schema::Field,
    pub sender: tantivy::schema::Field,
    pub conv: tantivy::schema::Field,
    pub room: tantivy::schema::Field,
    pub msgtype: tantivy::schema::Field,
    pub has_media: tantivy::schema::Field,
    pub external: tantivy::schema::Field,
    /// On a recall: the msgid of the message it recalls.
    pub recalls: tantivy::schema::Field,
    /// Consent status when the record carries one.
    pub consent: tantivy::schema::Field,
    /// The record line, verbatim.
    pub record: tantivy::schema::Field,
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text_opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER_NAME)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let num_fast = NumericOptions::default().set_fast();
        let num_fast_indexed = NumericOptions::default().set_fast().set_indexed();
        let fields = Fields {
            text: b.add_text_field("text", text_opts),
            msgid: b.add_text_field("msgid", STRING),
            msgid_hash: b.add_u64_field("msgid_hash", num_fast.clone()),
            ingest: b.add_u64_field("ingest", num_fast.clone().set_stored()),
            time: b.add_u64_field("time", num_fast.clone()),
            seq: b.add_u64_field("seq", num_fast),
            stream: b.add_text_field("stream", STRING),
            sender: b.add_text_field("sender", STRING | FAST),
            conv: b.add_text_field("conv", STRING | FAST),
            room: b.add_text_field("room", STRING),
            msgtype: b.add_text_field("msgtype", STRING | FAST),
            has_media: b.add_bool_field("has_media", INDEXED | FAST),
            external: b.add_bool_field("external", num_fast_indexed),
            recalls: b.add_text_field("recalls", STRING),
            consent: b.add_text_field("consent", STRING),
            record: b.add_text_field("record", STORED),
        };
        (b.build(), fields)
    }

    /// Registers the tokenizer the schema names (needed on every open).
    pub fn register_tokenizer(index: &Index) {
        index
            .tokenizers()
            .register(TOKENIZER_NAME, TextAnalyzer::from(CjkTokenizer::default()));
    }

    /// The document of a message; `line` is the record line as read.
    pub fn document(&self, m: &Msg, line: &str, ingest: u64) -> TantivyDocument {
        let r = &m.record;
        let mut d = TantivyDocument::default();
        d.add_text(self.text, &r.text);
        d.add_text(self.msgid, &r.msgid);
        d.add_u64(self.msgid_hash, msgid_hash(&r.corp_id, &r.msgid));
        d.add_u64(self.ingest, ingest);
        d.add_u64(self.time, r.msgtime_ms.unwrap_or(0));
        d.add_u64(self.seq, r.seq);
        d.add_text(self.stream, &r.stream);
        d.add_text(self.sender, r.from.as_deref().unwrap_or(""));
        d.add_text(self.conv, &r.conversation_id);
        if let Some(room) = r.roomid.as_deref().filter(|s| !s.is_empty()) {
            d.add_text(self.room, room);
        }
        d.add_text(self.msgtype, m.msgtype());
        d.add_bool(self.has_media, !r.media.is_empty());
        d.add_bool(self.external, r.external);
        if let Some(target) = m.recalled_msgid() {
            d.add_text(self.recalls, target);
        }
        if let Some(c) = &m.consent {
            d.add_text(self.consent, c.status.to_ascii_lowercase());
        }
        d.add_text(self.record, line);
        d
    }
}

/// FNV-1a 64 of `corp_id`, a separator and `msgid`: stable across runs and versions (it is stored).
pub fn msgid_hash(corp_id: &str, msgid: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in corp_id
        .as_bytes()
        .iter()
        .chain(&[0x1f])
        .chain(msgid.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
