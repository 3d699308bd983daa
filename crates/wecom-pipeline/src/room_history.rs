//! Room metadata history: every room lookup of the live run is kept as a snapshot in the raw archive
//! (`Ledger::put_room_snapshot`, `[archive]` enabled), so that `replay --from-archive` and redrive — in any
//! process, without calling the service — enrich records with the `room` the live run gave them.
//!
//! - **Writing** ([`SnapshotWriter`]): a lookup answered by the service queues its snapshot, taken at the
//!   msgtime of the record that asked for it; one task writes the queue to the archive. The queue is
//!   bounded: when the archive cannot keep up, a snapshot is dropped (WARN) rather than a message held
//!   back. A snapshot equal to the room's previous one is not stored again (the ledger checks).
//! - **Reading** ([`RoomHistory`]): a record at msgtime `m` gets the room's newest snapshot taken at or
//!   before `m`, or, for a record older than every snapshot, the oldest one — in the live run such a
//!   record got the first lookup's answer too. Each room's snapshots are read once per run.
//!
//! So a replay's `room` equals the live run's as long as the live run's lookups came in msgtime order —
//! which holds while a room's metadata does not change, and otherwise up to the records processed around
//! a lookup whose answer changed (chunks are decrypted in parallel). A lookup that failed in the live run
//! (no `room`) may be answered from a later snapshot in a replay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, OnceCell};
use tracing::{debug, warn};
use wecom_ledger::Ledger;
use wecom_model::api::RoomInfo;
use wecom_model::record::RoomSummary;

/// Snapshots waiting to be written, at most.
const QUEUE: usize = 1024;

enum Queued {
    Snapshot(String, u64, Value),
    /// Answered once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Queues room snapshots for the raw archive; cheap to clone.
#[derive(Clone)]
pub struct SnapshotWriter {
    tx: Arc<Mutex<Option<mpsc::Sender<Queued>>>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SnapshotWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(ledger: Ledger) -> Self {
        let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let (roomid, at, room) = match q {
                    Queued::Snapshot(r, at, v) => (r, at, v),
                    Queued::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                match ledger.put_room_snapshot(&roomid, at, &room).await {
                    Ok(stored) => {
                        debug!(roomid = %roomid, taken_at_ms = at, stored, "room snapshot")
                    }
                    Err(e) => {
                        warn!(corp = %ledger.corp_id(), roomid = %roomid, error = %wecom_model::error_chain(&e),
                        "room metadata history: a snapshot could not be archived; a replay from the archive may enrich this room's records differently")
                    }
                }
            }
        });
        SnapshotWriter {
            tx: Arc::new(Mutex::new(Some(tx))),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues the snapshot of `info` taken at `taken_at_ms`; never waits.
    pub fn queue(&self, roomid: &str, taken_at_ms: u64, info: &RoomInfo) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(tx) = tx else { return };
        if let Err(e) = tx.try_send(Queued::Snapshot(
            roomid.to_owned(),
            taken_at_ms,
            snapshot_json(info),
        )) {
            warn!(roomid = %roomid, error = %e, "room metadata history: snapshot dropped (the archive is behind)");
        }
    }

    /// Waits until every snapshot queued so far is written (a run does before it returns, so that a
    /// replay from the archive right after it finds them).
    pub async fn flush(&self) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(tx) = tx else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is queued and stops the task.
    pub async fn finish(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The raw archive, opened for room history (no signing key: snapshots are not signed).
pub(crate) fn open_ledger(cfg: &crate::config::Validated) -> Result<Ledger, crate::PipelineError> {
    let mut archive = cfg.archive.clone();
    archive.signing = None;
    Ledger::open(&archive, &cfg.data_dir, &cfg.corp_id)
        .map_err(|e| crate::PipelineError::archive(&cfg.corp_id, e))
}

/// What a snapshot holds: the room's metadata without the call's envelope.
fn snapshot_json(info: &RoomInfo) -> Value {
    let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("errcode");
        o.remove("errmsg");
    }
    v
}

/// A room's snapshots: (taken_at_ms, summary), oldest first.
type Snapshots = Vec<(u64, Option<RoomSummary>)>;

/// The archive's room history as the processor reads it (see the module docs).
pub struct RoomHistory {
    ledger: Ledger,
    max_rooms: usize,
    rooms: Mutex<HashMap<String, Arc<OnceCell<Snapshots>>>>,
}

impl RoomHistory {
    pub fn new(ledger: Ledger, max_rooms: usize) -> Self {
        Self {
            ledger,
            max_rooms: max_rooms.max(1),
            rooms: Mutex::default(),
        }
    }

    /// [`RoomHistory::as_of`] without waiting, when the room's snapshots are read already.
    pub fn ready(&self, roomid: &str, msgtime_ms: Option<u64>) -> Option<Option<RoomSummary>> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let snaps = rooms.get(roomid)?.get()?;
        Some(pick(snaps, msgtime_ms))
    }

    /// The room as a record at `msgtime_ms` saw it; `None` when the archive has no snapshot of it.
    pub async fn as_of(&self, roomid: &str, msgtime_ms: Option<u64>) -> Option<RoomSummary> {
        if roomid.is_empty() {
            return None;
        }
        let cell = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            if !rooms.contains_key(roomid) && rooms.len() >= self.max_rooms {
                rooms.clear();
            }
            rooms.entry(roomid.to_owned()).or_default().clone()
        };
        let snaps = cell
            .get_or_init(|| async {
                match self.ledger.room_snapshots(roomid).await {
                    Ok(list) => list
                        .into_iter()
                        .map(|s| {
                            let info = serde_json::from_value::<RoomInfo>(s.room).ok();
                            (s.taken_at_ms, info.as_ref().map(RoomSummary::from))
                        })
                        .collect(),
                    Err(e) => {
                        warn!(corp = %self.ledger.corp_id(), roomid = %roomid, error = %wecom_model::error_chain(&e),
                            "room metadata history unreadable; records of this room go without room info");
                        Vec::new()
                    }
                }
            })
            .await;
        pick(snaps, msgtime_ms)
    }
}

/// The newest snapshot at or before `at`, else the oldest.
fn pick(snaps: &Snapshots, at: Option<u64>) -> Option<RoomSummary> {
    let n = at.map_or(snaps.len(), |at| snaps.partition_point(|(t, _)| *t <= at));
    let i = n.saturating_sub(1);
    snaps.get(i).and_then(|(_, s)| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_model::api::RoomMember;
    use wecom_store::Objects;

    fn info(name: &str, members: usize) -> RoomInfo {
        RoomInfo {
            errcode: 0,
            errmsg: "ok".into(),
            roomname: name.into(),
            members: (0..members)
                .map(|i| RoomMember {
                    memberid: format!("u{i}"),
                    jointime: 1,
                })
                .collect(),
            ..RoomInfo::default()
        }
    }

    #[tokio::test]
    async fn snapshots_written_live_are_read_back_as_of_msgtime() {
        let ledger = Ledger::new(Objects::in_memory(), "corp1", None).unwrap();
        let w = SnapshotWriter::start(ledger.clone());
        w.queue("wr1", 1_000, &info("first", 3));
        w.queue("wr1", 5_000, &info("renamed", 4));
        w.queue("wr1", 6_000, &info("renamed", 4));
        w.finish().await;
        assert_eq!(
            ledger.room_snapshots("wr1").await.unwrap().len(),
            2,
            "an equal snapshot is not stored again"
        );
        let snap = &ledger.room_snapshots("wr1").await.unwrap()[0];
        assert!(
            snap.room.get("errcode").is_none(),
            "the envelope is not kept"
        );

        let h = RoomHistory::new(ledger, 10);
        async fn h_name(h: &RoomHistory, at: Option<u64>) -> Option<(String, u32)> {
            h.as_of("wr1", at).await.map(|s| (s.name, s.member_count))
        }
        assert_eq!(
            h_name(&h, Some(500)).await,
            Some(("first".into(), 3)),
            "older than every snapshot"
        );
        assert_eq!(h_name(&h, Some(4_999)).await, Some(("first".into(), 3)));
        assert_eq!(h_name(&h, Some(5_000)).await, Some(("renamed".into(), 4)));
        assert_eq!(h_name(&h, None).await, Some(("renamed".into(), 4)));
        assert_eq!(h.as_of("wr-unknown", Some(1)).await, None);
    }
}
