//! Rooms: the `[rooms]` settings of per-room backfill (whether the source can page a room's own stream,
//! how many rooms at once) and of room metadata lookups.
//!
//! ```toml
//! [rooms]
//! paging = true      # the source serves groupchat/get {roomid, seq, limit}; false: filter the corp stream
//! parallel = 4       # rooms backfilled at once
//! ttl_secs = 600     # room metadata cache lifetime
//! max_entries = 4096 # room metadata cache size
//! ```

use serde::Deserialize;

/// The `[rooms]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// The source pages a room's own stream (`groupchat/get` {roomid, seq, limit}): the project's HTTP
    /// contract does; the official service has only the corp stream, so set false there and `--room`
    /// filters the corp stream by roomid instead.
    pub paging: bool,
    /// Rooms backfilled at once.
    pub parallel: usize,
    /// How long a room's metadata is reused before it is looked up again.
    pub ttl_secs: u64,
    /// Rooms whose metadata is kept at most.
    pub max_entries: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            paging: true,
            parallel: 4,
            ttl_secs: 600,
            max_entries: 4096,
        }
    }
}
