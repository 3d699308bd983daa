//! Rooms: the `[rooms]` settings of per-room backfill (whether the source can page a room's own stream,
//! how many rooms at once) and of room metadata lookups, and the room metadata cache that enriches records
//! with `room: {name, member_count}`.
//!
//! ```toml
//! [rooms]
//! paging = true      # the source serves groupchat/get {roomid, seq, limit}; false: filter the corp stream
//! parallel = 4       # rooms backfilled at once
//! enrich = true      # look up room metadata (groupchat/get {roomid}) and add `room` to records
//! ttl_secs = 600     # room metadata cache lifetime
//! max_entries = 4096 # room metadata cache size
//! ```
//!
//! ## The cache
//!
//! [`RoomCache`] looks a room up once per `ttl_secs`, never once per message: concurrent lookups of the
//! same room share one call (single flight, a `tokio::sync::OnceCell` per entry). A lookup that fails is
//! cached as "no info" — for `ttl_secs` when the failure is permanent (an external group the service
//! refuses, errcode 40058/48002, any item-level or fatal error), for [`FAILURE_TTL`] when it was retriable
//! (the client already retried it) — and logged once per room. A missing answer never holds a message back
//! or fails the run: the record simply has no `room`.
//!
//! Who gets which cache: the live run and replays from the service share the one cache of the
//! [`crate::source::Source`] (so a replay running beside the live run enriches exactly as the live run
//! does). With `[archive]` enabled, every lookup's answer is also archived as a room snapshot, and
//! `replay --from-archive` and redrive enrich from that history instead, never calling the service
//! ([`crate::room_history`]); without the archive, redrive gives no `room`. [`RoomCache::offline`] is a
//! view of the same entries that never calls the service (a room not looked up yet gets no `room`).
//!
//! The processor runs on `spawn_blocking` threads, so [`RoomLookup`] blocks on the async cache through a
//! runtime [`Handle`] captured when the processor is built: `Handle::block_on` is allowed on blocking
//! threads (never on the runtime's worker threads, where it would panic), and the call itself is driven by
//! the runtime's reactor as usual. A fresh entry is answered without entering the runtime at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};
use wecom_api::{ApiError, ArchiveClient, ErrorClass};
use wecom_model::api::RoomInfo;
use wecom_model::record::RoomSummary;

/// How long a retriable failure (one that outlasted the client's retry policy) is remembered as "no info".
pub const FAILURE_TTL: Duration = Duration::from_secs(60);

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
    /// Look up room metadata and add `room` (name, member count) to records.
    pub enrich: bool,
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
            enrich: true,
            ttl_secs: 600,
            max_entries: 4096,
        }
    }
}

const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

impl RoomsConfig {
    /// Rejects settings that would turn the cache into a call per message.
    pub fn validate(&self) -> Result<(), String> {
        if self.enrich && self.ttl_secs == 0 {
            return Err(
                "ttl_secs must be at least 1 (set enrich = false to turn lookups off)".into(),
            );
        }
        // `Instant + ttl` must not overflow; a year is far past any useful cache lifetime.
        if self.ttl_secs > MAX_TTL_SECS {
            return Err(format!(
                "ttl_secs = {} is above the maximum of {MAX_TTL_SECS} (one year)",
                self.ttl_secs
            ));
        }
        if self.enrich && self.max_entries == 0 {
            return Err("max_entries must be at least 1".into());
        }
        Ok(())
    }
}

/// Looks one room up: `groupchat/get` {roomid} in production, a closure in tests.
pub type RoomFetch =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<RoomInfo, ApiError>> + Send + Sync>;

/// The clock of the cache (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// What the cache did, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCacheStats {
    /// Lookups sent to the fetch (one per room per TTL).
    pub calls: u64,
    /// Lookups that failed (cached as "no info").
    pub failures: u64,
    /// Answers from a fresh entry.
    pub hits: u64,
}

/// The room metadata cache; see the module docs. Cheap to share (`Arc`).
pub struct RoomCache {
    shared: Arc<Shared>,
    /// `None`: an offline view that answers from the entries only and never calls.
    fetch: Option<RoomFetch>,
    /// Where the answers of lookups go as room history (`[archive]` enabled; room_history.rs).
    snapshots: Option<crate::room_history::SnapshotWriter>,
}

struct Shared {
    corp_id: String,
    ttl: Duration,
    failure_ttl: Duration,
    max_entries: usize,
    clock: Clock,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Rooms whose failure was logged at INFO/WARN (later ones go to DEBUG).
    logged: Mutex<HashSet<String>>,
    calls: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
}

#[derive(Default)]
struct Entry {
    cell: OnceCell<Cached>,
}

#[derive(Clone)]
struct Cached {
    summary: Option<RoomSummary>,
    expires: Instant,
}

impl RoomCache {
    /// A cache over `fetch` with the TTL and size of `cfg`.
    pub fn new(corp_id: &str, cfg: &RoomsConfig, fetch: RoomFetch) -> Self {
        Self::with_clock(corp_id, cfg, fetch, Arc::new(Instant::now))
    }

    /// [`RoomCache::new`] with another clock.
    pub fn with_clock(corp_id: &str, cfg: &RoomsConfig, fetch: RoomFetch, clock: Clock) -> Self {
        let ttl = Duration::from_secs(cfg.ttl_secs.max(1));
        RoomCache {
            shared: Arc::new(Shared {
                corp_id: corp_id.to_string(),
                ttl,
                failure_ttl: FAILURE_TTL.min(ttl),
                max_entries: cfg.max_entries.max(1),
                clock,
                entries: Mutex::default(),
                logged: Mutex::default(),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                hits: AtomicU64::new(0),
            }),
            fetch: Some(fetch),
            snapshots: None,
        }
    }

    /// This cache, archiving the answer of each lookup through `writer`.
    pub fn with_snapshots(mut self, writer: crate::room_history::SnapshotWriter) -> Self {
        self.snapshots = Some(writer);
        self
    }

    /// The snapshot writer, if any (to finish it at shutdown).
    pub fn snapshots(&self) -> Option<&crate::room_history::SnapshotWriter> {
        self.snapshots.as_ref()
    }

    /// A cache that looks rooms up through `client` (`groupchat/get` {roomid}, retried by the client).
    pub fn from_client(client: &ArchiveClient, cfg: &RoomsConfig) -> Self {
        let c = client.clone();
        let fetch: RoomFetch = Arc::new(move |roomid: String| {
            let c = c.clone();
            Box::pin(async move { c.room_info(&roomid).await })
        });
        Self::new(client.corp_id(), cfg, fetch)
    }

    /// A view of the same entries that never calls the service (`replay --from-archive`): it answers what
    /// the cache holds, expired or not, and "no info" for a room not looked up yet or still in flight.
    pub fn offline(&self) -> RoomCache {
        RoomCache {
            shared: self.shared.clone(),
            fetch: None,
            snapshots: None,
        }
    }

    pub fn stats(&self) -> RoomCacheStats {
        RoomCacheStats {
            calls: self.shared.calls.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            hits: self.shared.hits.load(Ordering::Relaxed),
        }
    }

    /// The room's summary, `None` when the room has no (known) metadata.
    pub async fn get(&self, roomid: &str) -> Option<RoomSummary> {
        self.get_at(roomid, None).await
    }

    /// [`RoomCache::get`] for a record at `msgtime_ms`: a lookup it makes is archived as a snapshot taken
    /// then (now, without a msgtime).
    pub async fn get_at(&self, roomid: &str, msgtime_ms: Option<u64>) -> Option<RoomSummary> {
        if roomid.is_empty() {
            return None;
        }
        let Some(fetch) = &self.fetch else {
            return self.peek(roomid);
        };
        let entry = self.entry(roomid);
        let shared = &self.shared;
        let cached = entry
            .cell
            .get_or_init(|| async {
                shared.calls.fetch_add(1, Ordering::Relaxed);
                let result = fetch(roomid.to_string()).await;
                if let (Ok(info), Some(w)) = (&result, &self.snapshots) {
                    w.queue(
                        roomid,
                        msgtime_ms.unwrap_or_else(wecom_store::now_unix_ms),
                        info,
                    );
                }
                shared.settle(roomid, result)
            })
            .await;
        cached.summary.clone()
    }

    /// A fresh entry's answer without waiting (`Some(answer)`), `None` when a lookup is needed. An offline
    /// view always answers.
    pub fn fresh(&self, roomid: &str) -> Option<Option<RoomSummary>> {
        if self.fetch.is_none() || roomid.is_empty() {
            return Some(self.peek(roomid));
        }
        let now = (self.shared.clock)();
        let entries = self.shared.lock_entries();
        let cached = entries.get(roomid)?.cell.get()?;
        (cached.expires > now).then(|| {
            self.shared.hits.fetch_add(1, Ordering::Relaxed);
            cached.summary.clone()
        })
    }

    fn peek(&self, roomid: &str) -> Option<RoomSummary> {
        let entries = self.shared.lock_entries();
        entries
            .get(roomid)
            .and_then(|e| e.cell.get())
            .and_then(|c| c.summary.clone())
    }

    /// The room's entry: the current one when fresh or in flight, a new empty one otherwise.
    fn entry(&self, roomid: &str) -> Arc<Entry> {
        let now = (self.shared.clock)();
        let mut entries = self.shared.lock_entries();
        if let Some(e) = entries.get(roomid) {
            match e.cell.get() {
                None => return e.clone(),
                Some(c) if c.expires > now => {
                    self.shared.hits.fetch_add(1, Ordering::Relaxed);
                    return e.clone();
                }
                Some(_) => {}
            }
        } else if entries.len() >= self.shared.max_entries {
            evict(&mut entries, now, self.shared.max_entries);
        }
        let e = Arc::new(Entry::default());
        entries.insert(roomid.to_string(), e.clone());
        e
    }
}

impl Shared {
    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns a lookup's result into a cache entry; a failure is "no info", logged once per room.
    fn settle(&self, roomid: &str, result: Result<RoomInfo, ApiError>) -> Cached {
        let now = (self.clock)();
        match result {
            Ok(info) => Cached {
                summary: Some(RoomSummary::from(&info)),
                expires: now + self.ttl,
            },
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let retriable = e.class() == ErrorClass::Retriable;
                let ttl = if retriable {
                    self.failure_ttl
                } else {
                    self.ttl
                };
                let first = {
                    let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
                    if logged.len() >= self.max_entries {
                        logged.clear();
                    }
                    logged.insert(roomid.to_string())
                };
                let secs = ttl.as_secs();
                match (first, retriable) {
                    (true, true) => {
                        warn!(corp = %self.corp_id, roomid = %roomid, error = %wecom_model::error_chain(&e), retry_in_secs = secs,
                        "room metadata lookup failed; records of this room go without room info meanwhile")
                    }
                    (true, false) => {
                        info!(corp = %self.corp_id, roomid = %roomid, errcode = ?e.errcode(), error = %e,
                        retry_in_secs = secs, "no room metadata for this room (e.g. an external group); records go without room info")
                    }
                    (false, _) => {
                        debug!(corp = %self.corp_id, roomid = %roomid, error = %wecom_model::error_chain(&e), "room metadata lookup failed again")
                    }
                }
                Cached {
                    summary: None,
                    expires: now + ttl,
                }
            }
        }
    }
}

/// Makes room for one entry: drops the expired ones, then the ones expiring first; entries in flight go
/// last (their waiters keep their own handle on them).
fn evict(entries: &mut HashMap<String, Arc<Entry>>, now: Instant, max: usize) {
    entries.retain(|_, e| e.cell.get().is_none_or(|c| c.expires > now));
    while entries.len() >= max {
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| e.cell.get().map(|c| c.expires))
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                entries.remove(&k);
            }
            None => break,
        }
    }
}

/// Room metadata as the processor uses it: from a blocking thread, through the runtime it was built on —
/// the cache (live runs, replays from the service) or the archive's room history (replays from the
/// archive, redrive; room_history.rs).
#[derive(Clone)]
pub struct RoomLookup {
    from: LookupFrom,
    handle: Handle,
}

#[derive(Clone)]
enum LookupFrom {
    Cache(Arc<RoomCache>),
    History(Arc<crate::room_history::RoomHistory>),
}

impl RoomLookup {
    /// The cache, through the current runtime; `None` outside one.
    pub fn current(cache: Arc<RoomCache>) -> Option<Self> {
        Handle::try_current().ok().map(|handle| RoomLookup {
            from: LookupFrom::Cache(cache),
            handle,
        })
    }

    /// The archive's room history, through the current runtime; `None` outside one.
    pub fn history(history: Arc<crate::room_history::RoomHistory>) -> Option<Self> {
        Handle::try_current().ok().map(|handle| RoomLookup {
            from: LookupFrom::History(history),
            handle,
        })
    }

    /// The room's summary for a record at `msgtime_ms`. Call it from a blocking thread
    /// (`spawn_blocking`), never from async code: on a miss it blocks with `Handle::block_on`.
    pub fn summary(&self, roomid: &str, msgtime_ms: Option<u64>) -> Option<RoomSummary> {
        match &self.from {
            LookupFrom::Cache(cache) => {
                if let Some(answer) = cache.fresh(roomid) {
                    return answer;
                }
                self.handle.block_on(cache.get_at(roomid, msgtime_ms))
            }
            LookupFrom::History(h) => {
                if let Some(answer) = h.ready(roomid, msgtime_ms) {
                    return answer;
                }
                self.handle.block_on(h.as_of(roomid, msgtime_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use wecom_model::api::RoomMember;

    fn info(name: &str, members: usize) -> RoomInfo {
        RoomInfo {
            roomname: name.to_string(),
            members: (0..members)
                .map(|i| RoomMember {
                    memberid: format!("u{i}"),
                    ..RoomMember::default()
                })
                .collect(),
            ..RoomInfo::default()
        }
    }

    fn refused() -> ApiError {
        ApiError::Api {
            endpoint: "groupchat_get",
            corp_id: "c".into(),
            errcode: 48002,
            errmsg: "api forbidden".into(),
        }
    }

    fn busy() -> ApiError {
        ApiError::RetriesExhausted {
            endpoint: "groupchat_get",
            attempts: 3,
            last: Box::new(ApiError::Api {
                endpoint: "groupchat_get",
                corp_id: "c".into(),
                errcode: -1,
                errmsg: "system busy".into(),
            }),
        }
    }

    /// A cache whose fetch counts calls per room, answers by roomid prefix (`ok…`, `ext…`, `busy…`) after
    /// `delay`, and whose clock is moved by hand.
    struct Fixture {
        cache: RoomCache,
        calls: Arc<Mutex<HashMap<String, u64>>>,
        now_ms: Arc<AtomicU64>,
    }

    fn fixture(ttl_secs: u64, max_entries: usize, delay: Duration) -> Fixture {
        let calls = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
        let now_ms = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let clock: Clock = {
            let now_ms = now_ms.clone();
            Arc::new(move || base + Duration::from_millis(now_ms.load(Ordering::SeqCst)))
        };
        let fetch: RoomFetch = {
            let calls = calls.clone();
            Arc::new(move |roomid: String| {
                *calls.lock().unwrap().entry(roomid.clone()).or_default() += 1;
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    if roomid.starts_with("ext") {
                        Err(refused())
                    } else if roomid.starts_with("busy") {
                        Err(busy())
                    } else {
                        Ok(info(&format!("name of {roomid}"), roomid.len()))
                    }
                })
            })
        };
        let cfg = RoomsConfig {
            ttl_secs,
            max_entries,
            ..RoomsConfig::default()
        };
        Fixture {
            cache: RoomCache::with_clock("c", &cfg, fetch, clock),
            calls,
            now_ms,
        }
    }

    impl Fixture {
        fn calls(&self, room: &str) -> u64 {
            self.calls.lock().unwrap().get(room).copied().unwrap_or(0)
        }
        fn advance(&self, d: Duration) {
            self.now_ms
                .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn one_lookup_per_room_per_ttl() {
        let f = fixture(600, 100, Duration::ZERO);
        let want = RoomSummary {
            name: "name of ok1".into(),
            member_count: 3,
        };
        for _ in 0..50 {
            assert_eq!(f.cache.get("ok1").await, Some(want.clone()));
        }
        assert_eq!(f.calls("ok1"), 1);
        f.advance(Duration::from_secs(599));
        assert_eq!(f.cache.fresh("ok1"), Some(Some(want.clone())));
        assert_eq!(f.calls("ok1"), 1);
        f.advance(Duration::from_secs(2));
        assert_eq!(f.cache.fresh("ok1"), None, "expired");
        assert_eq!(f.cache.get("ok1").await, Some(want));
        assert_eq!(f.calls("ok1"), 2);
        assert_eq!(f.cache.stats().calls, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_of_a_room_share_one_call() {
        let f = Arc::new(fixture(600, 100, Duration::from_millis(50)));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let f = f.clone();
                tokio::spawn(async move {
                    let room = if i % 2 == 0 { "okA" } else { "okBB" };
                    f.cache.get(room).await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_some());
        }
        assert_eq!(f.calls("okA"), 1);
        assert_eq!(f.calls("okBB"), 1);
    }

    #[tokio::test]
    async fn failures_are_cached_as_no_info() {
        let f = fixture(600, 100, Duration::ZERO);
        // Refused (external group): no info for the whole TTL.
        for _ in 0..10 {
            assert_eq!(f.cache.get("ext1").await, None);
        }
        assert_eq!(f.calls("ext1"), 1);
        // Retriable after the client's retries: no info for FAILURE_TTL only.
        for _ in 0..10 {
            assert_eq!(f.cache.get("busy1").await, None);
        }
        assert_eq!(f.calls("busy1"), 1);
        f.advance(FAILURE_TTL + Duration::from_secs(1));
        assert_eq!(f.cache.get("busy1").await, None);
        assert_eq!(f.calls("busy1"), 2);
        assert_eq!(f.cache.get("ext1").await, None);
        assert_eq!(f.calls("ext1"), 1, "a refusal is kept for the whole TTL");
        f.advance(Duration::from_secs(600));
        assert_eq!(f.cache.get("ext1").await, None);
        assert_eq!(f.calls("ext1"), 2);
        assert_eq!(f.cache.stats().failures, 4);
    }

    #[tokio::test]
    async fn the_offline_view_never_calls() {
        let f = fixture(600, 100, Duration::ZERO);
        assert!(f.cache.get("ok1").await.is_some());
        let off = f.cache.offline();
        assert!(off.get("ok1").await.is_some());
        assert_eq!(off.get("ok2").await, None);
        f.advance(Duration::from_secs(10_000));
        assert!(
            off.get("ok1").await.is_some(),
            "expired entries still answer"
        );
        assert_eq!(f.calls("ok1"), 1);
        assert_eq!(f.calls("ok2"), 0);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let f = fixture(600, 3, Duration::ZERO);
        for r in ["ok1", "ok2", "ok3", "ok4", "ok5"] {
            assert!(f.cache.get(r).await.is_some());
            f.advance(Duration::from_secs(1));
        }
        assert!(f.cache.shared.lock_entries().len() <= 3);
        // The oldest went first; the newest are still cached.
        assert!(f.cache.get("ok5").await.is_some());
        assert_eq!(f.calls("ok5"), 1);
        assert!(f.cache.get("ok1").await.is_some());
        assert_eq!(f.calls("ok1"), 2);
    }

    #[test]
    fn blocking_lookup_from_a_blocking_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let f = fixture(600, 100, Duration::from_millis(5));
        let cache = Arc::new(f.cache);
        let lookup = rt
            .block_on(async { RoomLookup::current(cache.clone()) })
            .unwrap();
        let got = rt
            .block_on(rt.spawn_blocking(move || {
                (0..20)
                    .map(|_| lookup.summary("ok1", None))
                    .collect::<Vec<_>>()
            }))
            .unwrap();
        assert!(got
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.member_count == 3)));
        assert_eq!(cache.stats().calls, 1);
        assert_eq!(cache.stats().hits, 19);
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: RoomsConfig = toml::from_str("").unwrap();
        assert!(c.enrich);
        assert!(c.validate().is_ok());
        let c: RoomsConfig = toml::from_str("enrich = false\nttl_secs = 0").unwrap();
        assert!(c.validate().is_ok());
        // TOML integers stop at i64::MAX, far past what `Instant` arithmetic survives.
        let huge: RoomsConfig = toml::from_str("ttl_secs = 9223372036854775807").unwrap();
        assert!(huge.validate().unwrap_err().contains("ttl_secs"));
        let c: RoomsConfig = toml::from_str("ttl_secs = 0").unwrap();
        assert!(c.validate().is_err());
    }
}
