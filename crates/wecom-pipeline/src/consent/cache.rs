//! The consent cache: one status per [`Subject`], reused for `ttl_secs`, shared by every run of the
//! process (like the room metadata cache, rooms.rs).
//!
//! [`ConsentCache::resolve`] takes the subjects a page needs at once: fresh ones are answered from the
//! cache, subjects another run is already looking up are waited for (single flight: one call per subject,
//! however many runs or pages ask), and the rest are looked up — pairs with `check_single_agree`, at most
//! [`MAX_PAIRS`] per call, rooms with one `check_room_agree` per room. A failed lookup is "no status" for
//! [`crate::rooms::FAILURE_TTL`] when it was retriable (the client already retried it), for the TTL
//! otherwise; the first failure is logged at WARN, the next ones at DEBUG until a lookup succeeds again.
//! A lookup that takes longer than [`LOOKUP_TIMEOUT`] (retries included) is a retriable failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tracing::{debug, warn};
use wecom_api::{AgreeInfo, ApiError, ArchiveClient, ErrorClass, RoomAgreeInfo};

use super::{ConsentConfig, Stamp, Subject, UNANSWERED};
use crate::rooms::{Clock, FAILURE_TTL};

/// Most pairs sent in one `check_single_agree` call (the service's limit).
pub const MAX_PAIRS: usize = 100;

/// How long one lookup may take, the client's retries included: the sink waits for it, so a service
/// that rate limits for a minute (45009) costs records their consent rather than holding them back.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Looks pairs up: `check_single_agree` in production, a closure in tests.
pub type PairFetch = Arc<
    dyn Fn(Vec<(String, String)>) -> BoxFuture<'static, Result<Vec<AgreeInfo>, ApiError>>
        + Send
        + Sync,
>;

/// Looks a room's external members up: `check_room_agree` {roomid} in production.
pub type RoomFetch =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<Vec<RoomAgreeInfo>, ApiError>> + Send + Sync>;

/// What the cache did, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentCacheStats {
    /// Calls made (one per batch of at most [`MAX_PAIRS`] pairs, one per room).
    pub calls: u64,
    /// Subjects looked up by those calls.
    pub looked_up: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Subjects answered from a fresh entry.
    pub hits: u64,
}

/// The consent cache; see the module docs. Cheap to share (`Arc`).
pub struct ConsentCache {
    corp_id: String,
    ttl: Duration,
    failure_ttl: Duration,
    /// [`LOOKUP_TIMEOUT`] (shorter in tests).
    timeout: Duration,
    max_entries: usize,
    clock: Clock,
    pairs: PairFetch,
    rooms: RoomFetch,
    entries: Mutex<HashMap<Subject, Slot>>,
    /// A failure was logged at WARN since the last success.
    warned: AtomicBool,
    calls: AtomicU64,
    looked_up: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
}

enum Slot {
    Ready {
        stamp: Option<Stamp>,
        expires: Instant,
    },
    /// Being looked up; the sender's side says `true` once the entry is `Ready`.
    Pending(watch::Receiver<bool>),
}

impl ConsentCache {
    /// A cache over the two lookups with the TTL and size of `cfg`.
    pub fn new(
        corp_id: &str,
        cfg: &ConsentConfig,
        pairs: PairFetch,
        rooms: RoomFetch,
        clock: Clock,
    ) -> Self {
        let ttl = Duration::from_secs(cfg.ttl_secs.max(1));
        ConsentCache {
            corp_id: corp_id.to_owned(),
            ttl,
            failure_ttl: FAILURE_TTL.min(ttl),
            timeout: LOOKUP_TIMEOUT,
            max_entries: cfg.max_entries.max(1),
            clock,
            pairs,
            rooms,
            entries: Mutex::default(),
            warned: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            looked_up: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// A cache that looks consent up through `client` (retried by the client).
    pub fn from_client(client: &ArchiveClient, cfg: &ConsentConfig) -> Self {
        let c = client.clone();
        let pairs: PairFetch = Arc::new(move |pairs: Vec<(String, String)>| {
            let c = c.clone();
            Box::pin(async move { c.check_single_agree(&pairs).await })
        });
        let c = client.clone();
        let rooms: RoomFetch = Arc::new(move |roomid: String| {
            let c = c.clone();
            Box::pin(async move { c.check_room_agree(&roomid).await })
        });
        Self::new(client.corp_id(), cfg, pairs, rooms, Arc::new(Instant::now))
    }

    pub fn stats(&self) -> ConsentCacheStats {
        ConsentCacheStats {
            calls: self.calls.load(Ordering::Relaxed),
            looked_up: self.looked_up.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// The status of each of `subjects` (`None`: unknown, the lookup failed), looking up what is not fresh.
    pub async fn resolve(&self, subjects: Vec<Subject>) -> HashMap<Subject, Option<Stamp>> {
        let mut out = HashMap::new();
        let mut mine: Vec<(Subject, watch::Sender<bool>)> = Vec::new();
        let mut theirs: Vec<(Subject, watch::Receiver<bool>)> = Vec::new();
        {
            let now = (self.clock)();
            let mut entries = self.lock();
            for s in subjects {
                if out.contains_key(&s)
                    || mine.iter().any(|(m, _)| *m == s)
                    || theirs.iter().any(|(t, _)| *t == s)
                {
                    continue;
                }
                match entries.get(&s) {
                    Some(Slot::Ready { stamp, expires }) if *expires > now => {
                        self.hits.fetch_add(1, Ordering::Relaxed);
                        out.insert(s, stamp.clone());
                        continue;
                    }
                    // A lookup whose owner went away (its run was cancelled) is taken over.
                    Some(Slot::Pending(rx)) if rx.has_changed().is_ok() => {
                        theirs.push((s, rx.clone()));
                        continue;
                    }
                    Some(_) => {}
                    None if entries.len() >= self.max_entries => {
                        evict(&mut entries, now, self.max_entries)
                    }
                    None => {}
                }
                let (tx, rx) = watch::channel(false);
                entries.insert(s.clone(), Slot::Pending(rx));
                mine.push((s, tx));
            }
        }
        self.look_up(mine, &mut out).await;
        for (s, mut rx) in theirs {
            // Err: the owner went away without an answer; the entry then says nothing.
            let _ = rx.wait_for(|done| *done).await;
            let stamp = match self.lock().get(&s) {
                Some(Slot::Ready { stamp, .. }) => stamp.clone(),
                _ => None,
            };
            out.insert(s, stamp);
        }
        out
    }

    /// Sets `subject`'s status from an agree / disagree message, fresh for the TTL — unless the cache
    /// holds a status learned later (a replay walking old messages must not undo a newer answer).
    pub fn observe(&self, subject: &Subject, stamp: Stamp) {
        let now = (self.clock)();
        let mut entries = self.lock();
        if let Some(Slot::Ready {
            stamp: Some(known), ..
        }) = entries.get(subject)
        {
            if known.checked_at_ms > stamp.checked_at_ms {
                return;
            }
        }
        if !entries.contains_key(subject) && entries.len() >= self.max_entries {
            evict(&mut entries, now, self.max_entries);
        }
        entries.insert(
            subject.clone(),
            Slot::Ready {
                stamp: Some(stamp),
                expires: now + self.ttl,
            },
        );
    }

    /// Looks up the subjects this call claimed and settles their entries.
    async fn look_up(
        &self,
        mine: Vec<(Subject, watch::Sender<bool>)>,
        out: &mut HashMap<Subject, Option<Stamp>>,
    ) {
        let mut pairs = Vec::new();
        let mut rooms: BTreeMap<String, Vec<(Subject, watch::Sender<bool>)>> = BTreeMap::new();
        for (s, tx) in mine {
            match (&s.userid, &s.roomid) {
                (Some(_), _) => pairs.push((s, tx)),
                (None, Some(r)) => rooms.entry(r.clone()).or_default().push((s, tx)),
                (None, None) => {
                    // Not a subject the service can answer for (no member, no room).
                    self.settle_at(&s, Err(false), wall_ms(), out);
                    let _ = tx.send(true);
                }
            }
        }
        let mut rest = pairs.into_iter().peekable();
        while rest.peek().is_some() {
            let batch: Vec<_> = rest.by_ref().take(MAX_PAIRS).collect();
            let request = batch
                .iter()
                .map(|(s, _)| (s.userid.clone().unwrap_or_default(), s.external.clone()))
                .collect();
            let answer = self.call(batch.len(), (self.pairs)(request)).await;
            let now_ms = wall_ms();
            for (s, tx) in batch {
                let result = match &answer {
                    Ok(infos) => Ok(infos
                        .iter()
                        .find(|i| {
                            Some(&i.userid) == s.userid.as_ref() && i.external_openid == s.external
                        })
                        .map(|i| i.agree_status.as_str().to_owned())),
                    Err(retriable) => Err(*retriable),
                };
                self.settle_at(&s, result, now_ms, out);
                let _ = tx.send(true);
            }
        }
        for (roomid, batch) in rooms {
            let answer = self.call(batch.len(), (self.rooms)(roomid)).await;
            let now_ms = wall_ms();
            for (s, tx) in batch {
                let result = match &answer {
                    Ok(infos) => Ok(infos
                        .iter()
                        .find(|i| i.external_openid == s.external)
                        .map(|i| i.agree_status.as_str().to_owned())),
                    Err(retriable) => Err(*retriable),
                };
                self.settle_at(&s, result, now_ms, out);
                let _ = tx.send(true);
            }
        }
    }

    /// Makes one call; `Err(retriable)` when it failed (logged here).
    async fn call<T>(
        &self,
        subjects: usize,
        call: BoxFuture<'static, Result<T, ApiError>>,
    ) -> Result<T, bool> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.looked_up.fetch_add(subjects as u64, Ordering::Relaxed);
        let Ok(answer) = tokio::time::timeout(self.timeout, call).await else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            if self.warned.swap(true, Ordering::Relaxed) {
                debug!(corp = %self.corp_id, subjects, "consent lookup timed out again");
            } else {
                warn!(corp = %self.corp_id, subjects, timeout_secs = self.timeout.as_secs(),
                    "consent lookup timed out (the service is slow or rate limiting); records of these contacts go without consent until a lookup succeeds");
            }
            return Err(true);
        };
        match answer {
            Ok(v) => {
                self.warned.store(false, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let retriable = e.class() == ErrorClass::Retriable;
                if self.warned.swap(true, Ordering::Relaxed) {
                    debug!(corp = %self.corp_id, subjects, error = %wecom_model::error_chain(&e), "consent lookup failed again");
                } else {
                    warn!(corp = %self.corp_id, subjects, error = %wecom_model::error_chain(&e),
                        "consent lookup failed; records of these contacts go without consent until a lookup succeeds");
                }
                Err(retriable)
            }
        }
    }

    /// `result`: `Ok(Some(status))`, `Ok(None)` (no answer: [`UNANSWERED`]), `Err(retriable)` (failed).
    fn settle_at(
        &self,
        s: &Subject,
        result: Result<Option<String>, bool>,
        now_ms: u64,
        out: &mut HashMap<Subject, Option<Stamp>>,
    ) {
        let now = (self.clock)();
        let (stamp, ttl) = match result {
            Ok(status) => (
                Some(Stamp {
                    status: status.unwrap_or_else(|| UNANSWERED.to_owned()),
                    checked_at_ms: now_ms,
                }),
                self.ttl,
            ),
            Err(true) => (None, self.failure_ttl),
            Err(false) => (None, self.ttl),
        };
        self.lock().insert(
            s.clone(),
            Slot::Ready {
                stamp: stamp.clone(),
                expires: now + ttl,
            },
        );
        out.insert(s.clone(), stamp);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Slot>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes room for one entry: drops the expired ones, then the ones expiring first; entries being looked
/// up stay (their owner settles them).
fn evict(entries: &mut HashMap<Subject, Slot>, now: Instant, max: usize) {
    entries.retain(|_, e| !matches!(e, Slot::Ready { expires, .. } if *expires <= now));
    while entries.len() >= max {
        let victim = entries
            .iter()
            .filter_map(|(k, e)| match e {
                Slot::Ready { expires, .. } => Some((*expires, k)),
                Slot::Pending(_) => None,
            })
            .min_by_key(|(at, _)| *at)
            .map(|(_, k)| k.clone());
        match victim {
            Some(k) => {
                entries.remove(&k);
            }
            None => break,
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use wecom_api::AgreeStatus;

    fn pair(i: usize) -> Subject {
        Subject {
            external: format!("wm{i:030}"),
            userid: Some(format!("user{}", i % 7)),
            roomid: None,
        }
    }

    fn room_member(room: &str, i: usize) -> Subject {
        Subject {
            external: format!("wo{i:030}"),
            userid: None,
            roomid: Some(room.to_owned()),
        }
    }

    /// Pairs of even externals agree, odd ones are absent (never answered); rooms "r*" answer for
    /// members below 3; room "busy" fails retriably.
    struct Fixture {
        cache: ConsentCache,
        /// The size of each check_single_agree request.
        batches: Arc<Mutex<Vec<usize>>>,
        room_calls: Arc<AtomicU64>,
        now_ms: Arc<AtomicU64>,
    }

    fn fixture(ttl_secs: u64, delay: Duration) -> Fixture {
        let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
        let room_calls = Arc::new(AtomicU64::new(0));
        let now_ms = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let clock: Clock = {
            let now_ms = now_ms.clone();
            Arc::new(move || start + Duration::from_millis(now_ms.load(Ordering::SeqCst)))
        };
        let pairs: PairFetch = {
            let batches = batches.clone();
            Arc::new(move |req: Vec<(String, String)>| {
                batches.lock().unwrap().push(req.len());
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(req
                        .into_iter()
                        .filter(|(_, e)| e.ends_with(['0', '2', '4', '6', '8']))
                        .map(|(userid, external_openid)| AgreeInfo {
                            userid,
                            external_openid,
                            agree_status: AgreeStatus::Agree,
                            status_change_time: 1,
                        })
                        .collect())
                })
            })
        };
        let rooms: RoomFetch = {
            let room_calls = room_calls.clone();
            Arc::new(move |roomid: String| {
                room_calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if roomid == "busy" {
                        return Err(ApiError::Api {
                            endpoint: "check_room_agree",
                            corp_id: "c".into(),
                            errcode: -1,
                            errmsg: "system busy".into(),
                        });
                    }
                    Ok((0..3)
                        .map(|i| RoomAgreeInfo {
                            external_openid: format!("wo{i:030}"),
                            agree_status: AgreeStatus::Disagree,
                            status_change_time: 1,
                        })
                        .collect())
                })
            })
        };
        let cfg = ConsentConfig {
            ttl_secs,
            ..ConsentConfig::default()
        };
        Fixture {
            cache: ConsentCache::new("c", &cfg, pairs, rooms, clock),
            batches,
            room_calls,
            now_ms,
        }
    }

    fn status(got: &HashMap<Subject, Option<Stamp>>, s: &Subject) -> Option<String> {
        got.get(s).cloned().flatten().map(|s| s.status)
    }

    #[tokio::test]
    async fn pairs_are_looked_up_in_batches_of_at_most_100() {
        let f = fixture(600, Duration::ZERO);
        let subjects: Vec<Subject> = (0..250).map(pair).collect();
        let got = f.cache.resolve(subjects.clone()).await;
        assert_eq!(*f.batches.lock().unwrap(), [100, 100, 50]);
        assert_eq!(got.len(), 250);
        assert_eq!(status(&got, &pair(4)).as_deref(), Some("Agree"));
        assert_eq!(status(&got, &pair(5)).as_deref(), Some(UNANSWERED));
        // Fresh now: no call at all.
        let again = f.cache.resolve(subjects).await;
        assert_eq!(f.batches.lock().unwrap().len(), 3);
        assert_eq!(again, got);
        assert_eq!(f.cache.stats().hits, 250);
        // Past the TTL, looked up again (with a new checked_at).
        f.now_ms.fetch_add(601_000, Ordering::SeqCst);
        f.cache.resolve(vec![pair(1), pair(2)]).await;
        assert_eq!(*f.batches.lock().unwrap(), [100, 100, 50, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_resolves_share_one_lookup_per_subject() {
        let f = Arc::new(fixture(600, Duration::from_millis(50)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move {
                    let subjects = (0..30)
                        .map(pair)
                        .chain((0..5).map(|i| room_member("r1", i)));
                    f.cache.resolve(subjects.collect()).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let looked_up: usize = f.batches.lock().unwrap().iter().sum();
        assert_eq!(looked_up, 30, "each pair looked up once");
        assert_eq!(f.room_calls.load(Ordering::SeqCst), 1, "the room once");
        assert!(answers.iter().all(|a| *a == answers[0]));
        assert_eq!(
            status(&answers[0], &room_member("r1", 1)).as_deref(),
            Some("Disagree")
        );
        assert_eq!(
            status(&answers[0], &room_member("r1", 4)).as_deref(),
            Some(UNANSWERED)
        );
    }

    #[tokio::test]
    async fn a_failure_is_no_status_and_is_retried_after_the_failure_ttl() {
        let f = fixture(600, Duration::ZERO);
        let s = room_member("busy", 1);
        for _ in 0..3 {
            assert_eq!(status(&f.cache.resolve(vec![s.clone()]).await, &s), None);
        }
        assert_eq!(f.room_calls.load(Ordering::SeqCst), 1);
        assert_eq!(f.cache.stats().failures, 1);
        f.now_ms
            .fetch_add(FAILURE_TTL.as_millis() as u64 + 1, Ordering::SeqCst);
        f.cache.resolve(vec![s]).await;
        assert_eq!(f.room_calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_lookup_that_outlasts_the_timeout_is_a_failure_not_a_wait() {
        let mut f = fixture(600, Duration::from_secs(3600));
        f.cache.timeout = Duration::from_millis(20);
        let s = pair(2);
        // Answered (Agree) only after an hour: `None` means the timeout gave up on it.
        assert_eq!(status(&f.cache.resolve(vec![s.clone()]).await, &s), None);
        assert_eq!(f.cache.stats().failures, 1);
    }

    #[tokio::test]
    async fn a_message_sets_the_status_for_the_ttl() {
        let f = fixture(600, Duration::ZERO);
        let s = pair(3);
        let stamp = Stamp {
            status: "Agree".into(),
            checked_at_ms: 42,
        };
        f.cache.observe(&s, stamp.clone());
        assert_eq!(f.cache.resolve(vec![s.clone()]).await[&s], Some(stamp));
        assert!(f.batches.lock().unwrap().is_empty());
        f.now_ms.fetch_add(601_000, Ordering::SeqCst);
        assert_eq!(
            status(&f.cache.resolve(vec![s.clone()]).await, &s).as_deref(),
            Some(UNANSWERED)
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let mut f = fixture(600, Duration::ZERO);
        f.cache.max_entries = 10;
        for i in 0..5 {
            f.cache
                .resolve((i * 10..i * 10 + 10).map(pair).collect())
                .await;
            f.now_ms.fetch_add(1, Ordering::SeqCst);
        }
        assert!(f.cache.lock().len() <= 10);
    }
}
