//! Room metadata history: snapshots of a room's metadata (name, owner, members, notice: opaque JSON
//! here) with the time they were taken, so that a replay from the archive, or a new process, enriches
//! records exactly as the live run did.
//!
//! One immutable object per snapshot, `rooms/<corp>/<roomid>/<taken_at_ms:020>-<sha:16>.json`, holding
//! the snapshot's JSON bytes; the name carries the first 16 hex digits of their sha256, so a reader
//! checks what it got, and two snapshots taken in the same millisecond never collide. A snapshot equal
//! to the one before it (in time) is not stored again.

use bytes::Bytes;
use serde_json::Value;
use tracing::debug;

use crate::error::LedgerError;
use crate::layout::{self, file_name, parse_snapshot};
use crate::ledger::{sha256_blocking, Ledger};
use crate::manifest::sha256_hex;

/// One room metadata snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSnapshot {
    pub roomid: String,
    pub taken_at_ms: u64,
    pub room: Value,
}

impl Ledger {
    /// Stores a snapshot of `roomid`'s metadata taken at `taken_at_ms`; `Ok(false)` when the newest
    /// snapshot at or before that time is identical (nothing is written).
    pub async fn put_room_snapshot(
        &self,
        roomid: &str,
        taken_at_ms: u64,
        room: &Value,
    ) -> Result<bool, LedgerError> {
        let dir = layout::rooms_dir(&self.inner.corp_enc, roomid)?;
        let bytes = serde_json::to_vec(room)
            .map_err(|e| LedgerError::corrupt(&dir, format!("serialize snapshot: {e}")))?;
        let sha = sha256_hex(&bytes);
        let short = &sha[..16];
        let remembered = self.remembered(roomid);
        let same_as_before = match &remembered {
            // What this process stored last is the newest at or before any later time.
            Some((at, s)) if *at <= taken_at_ms => s == short,
            _ => self
                .snapshot_names(&dir)
                .await?
                .iter()
                .rev()
                .find(|(at, _, _)| *at <= taken_at_ms)
                .is_some_and(|(_, s, _)| s == short),
        };
        if same_as_before {
            return Ok(false);
        }
        let key = layout::room_snapshot(&dir, taken_at_ms, &sha);
        self.inner
            .store
            .put_create(&key, Bytes::from(bytes))
            .await?;
        if remembered.is_none_or(|(at, _)| at <= taken_at_ms) {
            self.remember(roomid, taken_at_ms, short);
        }
        debug!(corp = %self.inner.corp_id, roomid, taken_at_ms, "room snapshot archived");
        Ok(true)
    }

    /// Every snapshot of `roomid`, oldest first (each checked against the hash in its name).
    pub async fn room_snapshots(&self, roomid: &str) -> Result<Vec<RoomSnapshot>, LedgerError> {
        let dir = layout::rooms_dir(&self.inner.corp_enc, roomid)?;
        let mut out = Vec::new();
        for (at, short, key) in self.snapshot_names(&dir).await? {
            out.push(self.read_snapshot(roomid, at, &short, &key).await?);
        }
        Ok(out)
    }

    /// The newest snapshot of `roomid` taken at or before `at_ms`.
    pub async fn room_as_of(
        &self,
        roomid: &str,
        at_ms: u64,
    ) -> Result<Option<RoomSnapshot>, LedgerError> {
        let dir = layout::rooms_dir(&self.inner.corp_enc, roomid)?;
        let names = self.snapshot_names(&dir).await?;
        match names.iter().rev().find(|(at, _, _)| *at <= at_ms) {
            Some((at, short, key)) => Ok(Some(self.read_snapshot(roomid, *at, short, key).await?)),
            None => Ok(None),
        }
    }

    /// (taken_at_ms, short hash, key) of the room's snapshots, oldest first.
    async fn snapshot_names(&self, dir: &str) -> Result<Vec<(u64, String, String)>, LedgerError> {
        let mut out: Vec<(u64, String, String)> = self
            .inner
            .store
            .list(dir)
            .await?
            .into_iter()
            .filter_map(|k| {
                let (at, short) = parse_snapshot(file_name(&k))?;
                Some((at, short.to_owned(), k))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn read_snapshot(
        &self,
        roomid: &str,
        taken_at_ms: u64,
        short: &str,
        key: &str,
    ) -> Result<RoomSnapshot, LedgerError> {
        let store = &self.inner.store;
        let bytes = store.get(key).await?.ok_or_else(|| {
            LedgerError::corrupt(store.location(key), "listed but cannot be read")
        })?;
        let sha = sha256_blocking(bytes.clone()).await?;
        if !sha.starts_with(short) {
            return Err(LedgerError::corrupt(
                store.location(key),
                "the snapshot does not match the hash in its name",
            ));
        }
        let room = serde_json::from_slice(&bytes)
            .map_err(|e| LedgerError::corrupt(store.location(key), format!("not JSON: {e}")))?;
        Ok(RoomSnapshot {
            roomid: roomid.to_owned(),
            taken_at_ms,
            room,
        })
    }

    fn remembered(&self, roomid: &str) -> Option<(u64, String)> {
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(roomid)
            .cloned()
    }

    fn remember(&self, roomid: &str, taken_at_ms: u64, short: &str) {
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(roomid.to_owned(), (taken_at_ms, short.to_owned()));
    }
}
