//! `StreamLayout`: the one owner of where a stream's local state lives on disk.
//!
//! ```text
//! <data_dir>/<corp>/<stream dir>/            corp stream: `corp`; room stream `room:<id>`: `room-<id>`
//!   .lock                                    one process per stream directory
//!   <stream>.cursor.json                     the committed seq (CursorStore)
//!   messages/seg-<first seq>.ndjson          records
//!   deadletter/seg-<first seq>.ndjson        dead letters; deadletter/resolved.ndjson: redriven seqs
//!   status.json                              what `wecom-archive status` reports
//!   media-events/events-NNNNNN.ndjson        the media worker's events
//!   cursors/                                 the media worker's position and cursor
//!   media-status.json                        the media worker's status
//! <data_dir>/<corp>/replays/<name>/          a replay: replay.json + one stream directory per stream
//! ```
//!
//! Every name from outside (corp id, room id, replay name) goes through [`encode_component`], so two
//! streams never share a directory. Names made of `[A-Za-z0-9_.-]` (all real corp and room ids) are
//! unchanged, so existing directories keep their names.

use std::path::{Path, PathBuf};

use crate::names::encode_component;
use crate::StoreError;

const CORP_STREAM: &str = "corp";
const ROOM_PREFIX: &str = "room:";
const MESSAGES_DIR: &str = "messages";
const DEADLETTER_DIR: &str = "deadletter";
const RESOLVED_FILE: &str = "resolved.ndjson";
const LOCK_FILE: &str = ".lock";
const STATUS_FILE: &str = "status.json";
const CURSOR_SUFFIX: &str = ".cursor.json";
const MEDIA_EVENTS_DIR: &str = "media-events";
const MEDIA_CURSORS_DIR: &str = "cursors";
const MEDIA_STATUS_FILE: &str = "media-status.json";
const REPLAYS_DIR: &str = "replays";
const REPLAY_REQUEST_FILE: &str = "replay.json";

/// The on-disk places of one stream's local state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLayout {
    dir: PathBuf,
    stream: String,
}

impl StreamLayout {
    /// The live stream `stream` (`corp` or `room:<roomid>`) of `corp_id` under `data_dir`.
    pub fn live(data_dir: &Path, corp_id: &str, stream: &str) -> Result<Self, StoreError> {
        Ok(Self {
            dir: corp_dir(data_dir, corp_id)?.join(stream_dir_name(stream)?),
            stream: stream.to_owned(),
        })
    }

    /// `stream` inside a replay's root directory (see [`replay_root`]).
    pub fn in_replay(root: &Path, stream: &str) -> Result<Self, StoreError> {
        Ok(Self {
            dir: root.join(stream_dir_name(stream)?),
            stream: stream.to_owned(),
        })
    }

    /// A stream directory that is already known (found by a scan, or given by a test).
    pub fn at(dir: impl Into<PathBuf>, stream: &str) -> Self {
        Self {
            dir: dir.into(),
            stream: stream.to_owned(),
        }
    }

    /// The stream's name (`corp`, `room:<roomid>`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// The committed cursor's file (what [`crate::CursorStore`] in [`StreamLayout::dir`] reads and writes).
    pub fn cursor_path(&self) -> Result<PathBuf, StoreError> {
        Ok(self.dir.join(cursor_file_name(&self.stream)?))
    }

    pub fn messages_dir(&self) -> PathBuf {
        self.dir.join(MESSAGES_DIR)
    }

    pub fn deadletter_dir(&self) -> PathBuf {
        self.dir.join(DEADLETTER_DIR)
    }

    /// The seqs of dead letters that redrive turned into records.
    pub fn resolved_path(&self) -> PathBuf {
        self.deadletter_dir().join(RESOLVED_FILE)
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join(STATUS_FILE)
    }

    pub fn media_events_dir(&self) -> PathBuf {
        self.dir.join(MEDIA_EVENTS_DIR)
    }

    /// The media worker's position and cursor files.
    pub fn media_cursors_dir(&self) -> PathBuf {
        self.dir.join(MEDIA_CURSORS_DIR)
    }

    pub fn media_status_path(&self) -> PathBuf {
        self.dir.join(MEDIA_STATUS_FILE)
    }
}

/// `<data_dir>/<corp>`: every stream and replay of a corp.
pub fn corp_dir(data_dir: &Path, corp_id: &str) -> Result<PathBuf, StoreError> {
    Ok(data_dir.join(encode_component(corp_id)?))
}

/// `<data_dir>/<corp>/replays/<name>`: the root of a named replay.
pub fn replay_root(data_dir: &Path, corp_id: &str, name: &str) -> Result<PathBuf, StoreError> {
    Ok(corp_dir(data_dir, corp_id)?
        .join(REPLAYS_DIR)
        .join(encode_component(name)?))
}

/// The request a replay was started with, kept in its root.
pub fn replay_request_path(root: &Path) -> PathBuf {
    root.join(REPLAY_REQUEST_FILE)
}

/// The directory name of a stream: `corp`, `room-<encoded roomid>`, or `other-<encoded name>` for any
/// other name. The three shapes cannot meet: a stream literally named `room-x` is `other-room-x`, not the
/// directory of the room `x`.
pub fn stream_dir_name(stream: &str) -> Result<String, StoreError> {
    if stream == CORP_STREAM {
        return Ok(CORP_STREAM.to_owned());
    }
    match stream.strip_prefix(ROOM_PREFIX) {
        Some(room) => Ok(format!("room-{}", encode_component(room)?)),
        None => Ok(format!("other-{}", encode_component(stream)?)),
    }
}

/// `<encoded stream>.cursor.json`.
pub fn cursor_file_name(stream: &str) -> Result<String, StoreError> {
    Ok(format!("{}{CURSOR_SUFFIX}", encode_component(stream)?))
}

/// The stream a cursor file name belongs to (the inverse of [`cursor_file_name`]); `None` for any
/// other file, including the temp files of an atomic write.
pub fn stream_of_cursor_file(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(CURSOR_SUFFIX)?;
    crate::names::decode_component(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_named_like_a_room_directory_is_not_that_room() {
        let room = stream_dir_name("room:x").unwrap();
        let other = stream_dir_name("room-x").unwrap();
        assert_eq!(room, "room-x");
        assert_ne!(room, other);
        assert_ne!(
            stream_dir_name("corp").unwrap(),
            stream_dir_name("other-corp").unwrap()
        );
    }

    #[test]
    fn rooms_whose_names_differ_never_share_a_directory() {
        let data = Path::new("/d");
        let a = StreamLayout::live(data, "wwc", "room:a.b").expect("a.b");
        let b = StreamLayout::live(data, "wwc", "room:a_b").expect("a_b");
        let c = StreamLayout::live(data, "wwc", "room:a:b").expect("a:b");
        assert_ne!(a.dir(), b.dir());
        assert_ne!(a.dir(), c.dir());
        assert_ne!(b.dir(), c.dir());
        assert_ne!(a.cursor_path().expect("c"), b.cursor_path().expect("c"));
    }

    #[test]
    fn existing_names_are_kept() {
        let l = StreamLayout::live(Path::new("data"), "wwsimcorp0001", "corp").expect("corp");
        assert_eq!(l.dir(), Path::new("data/wwsimcorp0001/corp"));
        assert_eq!(
            l.cursor_path().expect("cursor"),
            Path::new("data/wwsimcorp0001/corp/corp.cursor.json")
        );
        let r = StreamLayout::live(Path::new("data"), "wwc", "room:wrAbc-1_x").expect("room");
        assert_eq!(r.dir(), Path::new("data/wwc/room-wrAbc-1_x"));
        assert_eq!(
            stream_of_cursor_file("room%3AwrAbc.cursor.json").as_deref(),
            Some("room:wrAbc")
        );
        assert_eq!(stream_of_cursor_file(".corp.cursor.json.tmp"), None);
    }
}
