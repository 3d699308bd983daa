//! What cluster mode needs from Kafka, and nothing about corps: a member of a consumer group on a control
//! topic ([`ControlMember`]), a watch over the owner claims of the cursor topic ([`ClaimWatch`]), and small
//! helpers for compacted topics of keyed records ([`ensure_compacted_topic`], [`KeyedProducer`],
//! [`read_latest`]).
//!
//! The group member runs librdkafka's consumer on a thread of its own: a revocation is answered in
//! librdkafka's rebalance callback, which must not return before the caller has stopped the work of the
//! revoked partitions. So the callback hands the caller a [`ControlEvent::Revoked`] and waits on its reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::client::{client_config, ClientRole};
use crate::config::KafkaConfig;
use crate::context::SinkContext;
use crate::error::KafkaError;
use crate::scan::{partitions, reader, true_end, KafkaLog, IDLE_TIMEOUT, REQUEST_TIMEOUT};
use crate::sink::run_blocking;

/// What the control-topic group member reports, in order.
#[derive(Debug)]
pub enum ControlEvent {
    /// Partitions newly assigned to this member (cooperative: added to what it already has).
    Assigned(Vec<i32>),
    /// A record of an assigned partition; `value: None` is a tombstone.
    Record {
        partition: i32,
        key: String,
        value: Option<Vec<u8>>,
    },
    /// The member has read everything the partition held (raised again after later records).
    CaughtUp(i32),
    /// The partitions are being taken away (revoked in a rebalance, or lost after a session timeout). The
    /// member waits for `done` (up to its revoke timeout) before librdkafka gives them up.
    Revoked {
        partitions: Vec<i32>,
        done: std::sync::mpsc::SyncSender<()>,
    },
    /// A client error (librdkafka retries transport errors itself); for the log and the status.
    Error(String),
}

struct ControlContext {
    inner: SinkContext,
    events: mpsc::Sender<ControlEvent>,
    revoke_timeout: Duration,
}

impl ClientContext for ControlContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.inner.log(level, fac, log_message);
    }

    fn error(&self, error: RdError, reason: &str) {
        self.inner.error(error, reason);
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for ControlContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            if partitions.is_empty() {
                return;
            }
            let (done, wait) = std::sync::mpsc::sync_channel(1);
            if self
                .events
                .blocking_send(ControlEvent::Revoked {
                    partitions: partitions.clone(),
                    done,
                })
                .is_ok()
                && wait.recv_timeout(self.revoke_timeout).is_err()
            {
                tracing::warn!(
                    ?partitions,
                    timeout_secs = self.revoke_timeout.as_secs(),
                    "control partitions revoked before their work stopped (revoke timeout); the claim \
                     epochs fence what is still running"
                );
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            if !partitions.is_empty() {
                let _ = self
                    .events
                    .blocking_send(ControlEvent::Assigned(partitions));
            }
        }
    }
}

/// Settings of a [`ControlMember`].
#[derive(Debug, Clone)]
pub struct MemberSettings {
    pub topic: String,
    pub group_id: String,
    /// This member's name in the group (`client.id`).
    pub member_name: String,
    pub session_timeout: Duration,
    /// How long a revocation waits for the caller to stop the partitions' work.
    pub revoke_timeout: Duration,
}

/// A member of the control topic's consumer group (cooperative-sticky assignment, no offset commits: every
/// assigned partition is read from its beginning, it is compacted). Leaves the group when dropped.
pub struct ControlMember {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlMember {
    /// Joins the group; events go to `events` (bounded: the member waits when the caller lags).
    pub fn join(
        config: &KafkaConfig,
        settings: &MemberSettings,
        events: mpsc::Sender<ControlEvent>,
    ) -> Result<Self, KafkaError> {
        let inner = SinkContext::new(config);
        let redact = inner.redactor();
        let context = ControlContext {
            inner,
            events: events.clone(),
            revoke_timeout: settings.revoke_timeout,
        };
        let session_ms = settings.session_timeout.as_millis().max(1000);
        let mut cc = client_config(
            config,
            ClientRole::GroupConsumer {
                group_id: &settings.group_id,
            },
        );
        cc.set("partition.assignment.strategy", "cooperative-sticky")
            .set("client.id", &settings.member_name)
            .set("session.timeout.ms", session_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (session_ms / 4).max(250).to_string(),
            )
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer<ControlContext> = cc
            .create_with_context(context)
            .map_err(|e| crate::error::client_error(e, &redact))?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(|e| KafkaError::Read {
                topic: settings.topic.clone(),
                partition: -1,
                reason: redact.apply(&e.to_string()).into_owned(),
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("control-member".into())
                .spawn(move || poll_loop(consumer, events, stop))
                .map_err(|e| KafkaError::Task(format!("spawn the control member thread: {e}")))?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Leaves the group (a last revocation of everything assigned is reported first) and waits for the
    /// member's thread. Blocking: call from `spawn_blocking` while the events are still being answered.
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn poll_loop(
    consumer: BaseConsumer<ControlContext>,
    events: mpsc::Sender<ControlEvent>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let event = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    tracing::warn!(
                        partition = m.partition(),
                        offset = m.offset(),
                        "control topic: a record without a UTF-8 key is ignored"
                    );
                    continue;
                };
                ControlEvent::Record {
                    partition: m.partition(),
                    key: key.to_string(),
                    value: m.payload().map(<[u8]>::to_vec),
                }
            }
            Some(Err(RdError::PartitionEOF(p))) => ControlEvent::CaughtUp(p),
            Some(Err(e)) => ControlEvent::Error(
                consumer
                    .context()
                    .inner
                    .redactor()
                    .apply(&e.to_string())
                    .into_owned(),
            ),
        };
        if events.blocking_send(event).is_err() {
            break;
        }
    }
    // leaving the group: librdkafka runs the last revocation through the context
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !consumer.assignment().is_ok_and(|a| a.count() == 0) {
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

/// Creates `topic` compacted with `partitions` partitions when it does not exist; returns its partition
/// count (that of the existing topic when there was one).
pub async fn ensure_compacted_topic(
    config: &KafkaConfig,
    topic: &str,
    partitions_wanted: i32,
) -> Result<usize, KafkaError> {
    let existing = {
        let (config, topic) = (config.clone(), topic.to_string());
        run_blocking(move || {
            let consumer = reader(&config)?;
            match partitions(&consumer, &topic) {
                Ok(p) if !p.is_empty() => Ok(Some(p.len())),
                Ok(_) | Err(KafkaError::MissingTopic { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?
    };
    if let Some(n) = existing {
        return Ok(n);
    }
    let ctx = SinkContext::new(config);
    let redact = ctx.redactor();
    let admin: AdminClient<DefaultClientContext> = client_config(config, ClientRole::Admin)
        .create()
        .map_err(|e| crate::error::client_error(e, &redact))?;
    let new = NewTopic::new(
        topic,
        partitions_wanted,
        TopicReplication::Fixed(i32::from(config.replication_factor)),
    )
    .set("cleanup.policy", "compact")
    .set("segment.ms", "3600000");
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results =
        admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| KafkaError::CreateTopic {
                topic: topic.into(),
                code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
            })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
        }
    }
    // wait until it shows in metadata
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (c, t) = (config.clone(), topic.to_string());
        let found = run_blocking(move || {
            let consumer = reader(&c)?;
            match partitions(&consumer, &t) {
                Ok(p) => Ok(p.len()),
                Err(KafkaError::MissingTopic { .. }) => Ok(0),
                Err(e) => Err(e),
            }
        })
        .await?;
        if found > 0 {
            tracing::info!(topic, partitions = found, "compacted kafka topic created");
            return Ok(found);
        }
        if Instant::now() > deadline {
            return Err(KafkaError::MissingTopic {
                topic: topic.into(),
                reason: "created but not in metadata after 30s".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest record of a key in a compacted topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    /// The record's timestamp (ms since the epoch), when it has one.
    pub timestamp_ms: Option<i64>,
}

/// Reads every partition of `topic` to its end and returns the newest record of each key, tombstones
/// included, ordered by partition then offset.
pub async fn read_latest(
    config: &KafkaConfig,
    topic: &str,
) -> Result<Vec<KeyedRecord>, KafkaError> {
    let (config, topic) = (config.clone(), topic.to_string());
    run_blocking(move || {
        let consumer = reader(&config)?;
        let mut newest: HashMap<String, KeyedRecord> = HashMap::new();
        for p in partitions(&consumer, &topic)? {
            let mut log = KafkaLog::new(&consumer, &topic, p, |m| {
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok())?;
                Some(KeyedRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: key.to_string(),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp_ms: m.timestamp().to_millis(),
                })
            });
            crate::scan::scan_forward(
                &mut log,
                crate::scan::ReadFrom::Beginning,
                IDLE_TIMEOUT,
                |_, r| {
                    newest.insert(r.key.clone(), r);
                    crate::scan::Step::Continue
                },
            )?;
        }
        let mut all: Vec<KeyedRecord> = newest.into_values().collect();
        all.sort_by_key(|r| (r.partition, r.offset));
        Ok(all)
    })
    .await
}

/// A producer of keyed records (values or tombstones) to chosen partitions, acknowledged (`acks=all`).
pub struct KeyedProducer {
    producer: FutureProducer<SinkContext>,
    timeout: Duration,
}

impl KeyedProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let ctx = SinkContext::new(config);
        let redact = ctx.redactor();
        let producer = client_config(config, ClientRole::Producer)
            .create_with_context(ctx)
            .map_err(|e| crate::error::client_error(e, &redact))?;
        Ok(Self {
            producer,
            timeout: Duration::from_millis(u64::from(config.message_timeout_ms)),
        })
    }

    /// Writes `value` (`None`: a tombstone) under `key` to `partition` (`None`: the key's partition) and
    /// returns where it landed once acknowledged.
    pub async fn put(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(i32, i64), KafkaError> {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match self
            .producer
            .send(record, Timeout::After(self.timeout))
            .await
        {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((e, m)) => Err(KafkaError::Publish {
                topic: topic.into(),
                partition: m.partition(),
                seq: 0,
                code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                detail: String::new(),
                fatal: false,
            }),
        }
    }
}

/// Follows the owner claims of the cursor topic (partition 0) from the moment it starts, so a worker can
/// ask, before each publish, whether a newer claim than its own exists ([`ClaimWatch::newest_epoch`]).
pub struct ClaimWatch {
    topic: String,
    config: KafkaConfig,
    shared: Arc<WatchShared>,
    thread: Option<JoinHandle<()>>,
    /// Readers for the end-of-topic requests, reused (a check runs every lease per corp).
    readers: Arc<Mutex<Vec<BaseConsumer<SinkContext>>>>,
}

struct WatchShared {
    /// newest claim epoch per `corp/stream`, of claims written since the watch started
    epochs: Mutex<HashMap<String, u64>>,
    /// the offset after the last record processed
    position: std::sync::atomic::AtomicI64,
    stop: AtomicBool,
}

impl ClaimWatch {
    /// Starts following partition 0 of the cursor topic at its current end.
    pub async fn start(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let topic = config
            .cursor_topic
            .clone()
            .ok_or(KafkaError::NoCursorTopic)?;
        let start = {
            let (c, t) = (config.clone(), topic.clone());
            run_blocking(move || {
                let consumer = reader(&c)?;
                let mut log = KafkaLog::new(&consumer, &t, 0, |_| None::<()>);
                true_end(&mut log, IDLE_TIMEOUT)
            })
            .await?
        };
        let shared = Arc::new(WatchShared {
            epochs: Mutex::new(HashMap::new()),
            position: std::sync::atomic::AtomicI64::new(start),
            stop: AtomicBool::new(false),
        });
        let consumer = reader(config)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(start))
            .map_err(|e| KafkaError::Task(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| KafkaError::Read {
            topic: topic.clone(),
            partition: 0,
            reason: e.to_string(),
        })?;
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("claim-watch".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        // errors: librdkafka retries transport errors itself; a check that waits
                        // too long for the watch fails on its own timeout
                        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                            if let Some((stream, epoch)) = m
                                .key()
                                .zip(m.payload())
                                .and_then(|(k, v)| crate::cursor::parse_claim(k, v))
                            {
                                let mut e = shared.epochs.lock().unwrap_or_else(|p| p.into_inner());
                                let cur = e.entry(stream).or_insert(0);
                                *cur = (*cur).max(epoch);
                            }
                            shared.position.fetch_max(m.offset() + 1, Ordering::SeqCst);
                        }
                    }
                })
                .map_err(|e| KafkaError::Task(format!("spawn the claim watch thread: {e}")))?
        };
        Ok(Self {
            topic,
            config: config.clone(),
            shared,
            thread: Some(thread),
            readers: Arc::default(),
        })
    }

    /// The newest claim epoch of `corp_id`/`stream` written since the watch started (0: none), as of a
    /// moment after this call began: it first finds the end of the cursor topic, then waits until the watch
    /// has read up to there (failing after `timeout`).
    pub async fn newest_epoch(
        &self,
        corp_id: &str,
        stream: &str,
        timeout: Duration,
    ) -> Result<u64, KafkaError> {
        let end = {
            let (c, t, pool) = (
                self.config.clone(),
                self.topic.clone(),
                self.readers.clone(),
            );
            run_blocking(move || {
                let pooled = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let consumer = match pooled {
                    Some(c) => c,
                    None => reader(&c)?,
                };
                let end = {
                    let mut log = KafkaLog::new(&consumer, &t, 0, |_| None::<()>);
                    true_end(&mut log, timeout)
                };
                // a reader that failed is dropped, not reused
                if end.is_ok() {
                    pool.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(consumer);
                }
                end
            })
            .await?
        };
        let deadline = Instant::now() + timeout;
        while self.shared.position.load(Ordering::SeqCst) < end {
            if Instant::now() > deadline {
                return Err(KafkaError::Read {
                    topic: self.topic.clone(),
                    partition: 0,
                    reason: format!(
                        "the claim watch did not reach offset {end} within {}s",
                        timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let key = format!("{corp_id}/{stream}");
        Ok(self
            .shared
            .epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0))
    }
}

impl Drop for ClaimWatch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
