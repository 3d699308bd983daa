//! What a run walks and how: the stream (the corp stream or one room's), the run's options, and the
//! summary it returns. Where a stream's state lives on disk is `wecom_store::StreamLayout`'s business.

use std::path::Path;

use wecom_store::StreamLayout;

use crate::error::PipelineError;

/// Which stream to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSel {
    /// The corp-wide stream (`get_chat_data`): the default source.
    Corp,
    /// One room's own stream (`groupchat/get` {roomid, seq}), with its own cursor.
    Room(String),
}

impl StreamSel {
    /// The stream's name in records, cursors and logs: `corp` or `room:<roomid>`.
    pub fn name(&self) -> String {
        match self {
            StreamSel::Corp => "corp".to_string(),
            StreamSel::Room(r) => format!("room:{r}"),
        }
    }

    /// The live stream's local layout: `<data_dir>/<corp>/<stream dir>/`.
    pub fn layout(&self, data_dir: &Path, corp_id: &str) -> Result<StreamLayout, PipelineError> {
        Ok(StreamLayout::live(data_dir, corp_id, &self.name())?)
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stream: StreamSel,
    /// Keep polling once caught up (live tail). When false the run ends at the first empty page.
    pub follow: bool,
    /// Print a progress line to stderr once a second (only honoured when stderr is a terminal).
    pub progress: bool,
}

/// What a run did; printed at the end and checked by tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub stream: String,
    pub started_after_seq: u64,
    pub committed_seq: u64,
    pub items_fetched: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub skipped_already_in_sink: u64,
    pub duplicates_dropped: u64,
    pub elapsed_secs: f64,
}
