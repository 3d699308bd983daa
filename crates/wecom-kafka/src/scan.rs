//! Reading one partition backwards, newest record first (blocking; callers use `spawn_blocking`).
//!
//! Kafka only reads forwards, so the partition is read in windows of offsets `[end - k, end)` walking down from
//! the end of the log, `k` doubling from [`FIRST_WINDOW`] to [`MAX_WINDOW`]; each window is read forwards with
//! an `assign` at its first offset and then visited newest first. An empty partition costs one watermark
//! request; a stream whose last record is near the top costs a read of the last batch and one small window.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::client::{client_config, ClientRole};

use crate::config::KafkaConfig;
use crate::context::SinkContext;
use crate::error::{client_error, KafkaError};

pub(crate) const FIRST_WINDOW: i64 = 256;
pub(crate) const MAX_WINDOW: i64 = 65_536;
/// How long one window may take to arrive before the scan fails (the broker is then unreachable).
pub(crate) const WINDOW_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Step {
    Continue,
    Stop,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ScanOutcome {
    /// Offsets covered by the windows read.
    pub read: i64,
    /// `visit` asked to stop.
    pub stopped: bool,
    /// The scan gave up at `max_records` before reaching the low watermark.
    pub bound_hit: bool,
}

/// A consumer for assign-and-read: no group, no commits, end-of-partition events on.
pub(crate) fn reader(config: &KafkaConfig) -> Result<BaseConsumer<SinkContext>, KafkaError> {
    let context = SinkContext::new(config);
    let redact = context.redactor();
    client_config(config, ClientRole::Reader)
        .create_with_context(context)
        .map_err(|e| client_error(e, &redact))
}

/// Partition ids of `topic`, from a metadata request.
pub(crate) fn partitions(
    consumer: &BaseConsumer<SinkContext>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| KafkaError::Metadata {
            topic: topic.into(),
            code: e
                .rdkafka_error_code()
                .unwrap_or(rdkafka::error::RDKafkaErrorCode::Fail),
        })?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| KafkaError::MissingTopic {
            topic: topic.into(),
            reason: "not in metadata".into(),
        })?;
    if let Some(err) = t.error() {
        return Err(KafkaError::MissingTopic {
            topic: topic.into(),
            reason: format!("{:?}", rdkafka::error::RDKafkaErrorCode::from(err)),
        });
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Scans `topic`/`partition` newest first down to its low watermark or `max_records` offsets below the end.
/// `extract` picks what a record contributes (`None` skips it); `visit` sees those newest first.
pub(crate) fn scan_back<T>(
    consumer: &BaseConsumer<SinkContext>,
    topic: &str,
    partition: i32,
    max_records: u64,
    mut extract: impl FnMut(&BorrowedMessage<'_>) -> Option<T>,
    mut visit: impl FnMut(i64, T) -> Step,
) -> Result<ScanOutcome, KafkaError> {
    let (lo, hi) = consumer
        .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
        .map_err(|e| KafkaError::Read {
            topic: topic.into(),
            partition,
            reason: format!("watermarks: {e}"),
        })?;
    let mut out = ScanOutcome::default();
    if hi <= lo {
        return Ok(out);
    }
    let mut window = Vec::new();
    let mut visit_window = |window: &mut Vec<(i64, T)>| {
        window
            .drain(..)
            .rev()
            .any(|(offset, item)| matches!(visit(offset, item), Step::Stop))
    };

    // The top: from the last record to the end of the partition. Reading on to the end-of-partition event
    // (instead of trusting `hi`) also covers brokers whose high watermark is the last *batch*'s base offset + 1
    // (tansu 0.6 does this).
    let top = read_window(
        consumer,
        topic,
        partition,
        hi - 1,
        None,
        &mut extract,
        &mut window,
    )?;
    // nothing served (e.g. the last offset is another producer's transaction marker): scan down from `hi`
    let (first, last) = top.unwrap_or((hi - 1, hi - 1));
    let end_of_log = last + 1;
    out.read += end_of_log - first;
    if visit_window(&mut window) {
        out.stopped = true;
        return Ok(out);
    }

    let max_records = i64::try_from(max_records).unwrap_or(i64::MAX);
    let floor = lo.max(end_of_log.saturating_sub(max_records));
    let mut end = first;
    let mut k = FIRST_WINDOW;
    while end > floor {
        let start = floor.max(end - k);
        match read_window(
            consumer,
            topic,
            partition,
            start,
            Some(end),
            &mut extract,
            &mut window,
        )? {
            Some((first, _)) => {
                out.read += end - first;
                if visit_window(&mut window) {
                    out.stopped = true;
                    return Ok(out);
                }
                // Offsets in [start, first) were not served: either none exist or they sit in a batch that begins
                // below `start` (tansu serves whole batches from the first one *starting* at or after the fetch
                // offset). The next window ends at `first`, so they are read then.
                end = first;
                k = (k * 2).min(MAX_WINDOW);
            }
            // nothing served below `end` from `start`: a batch straddles `start`; widen the window
            None if start > floor => k = k.saturating_mul(2),
            None => break,
        }
    }
    out.bound_hit = end > lo;
    Ok(out)
}

/// Reads offsets `[start, end)` forwards (to the end-of-partition event when `end` is `None`), pushing what
/// `extract` returns. Returns the first and last offsets served in the range, `None` when none was.
#[allow(clippy::too_many_arguments)]
fn read_window<T>(
    consumer: &BaseConsumer<SinkContext>,
    topic: &str,
    partition: i32,
    start: i64,
    end: Option<i64>,
    extract: &mut impl FnMut(&BorrowedMessage<'_>) -> Option<T>,
    out: &mut Vec<(i64, T)>,
) -> Result<Option<(i64, i64)>, KafkaError> {
    let read_err = |reason: String| KafkaError::Read {
        topic: topic.into(),
        partition,
        reason,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| read_err(format!("assign at offset {start}: {e}")))?;
    consumer
        .assign(&tpl)
        .map_err(|e| read_err(format!("assign at offset {start}: {e}")))?;
    let deadline = Instant::now() + WINDOW_TIMEOUT;
    let mut served: Option<(i64, i64)> = None;
    loop {
        if Instant::now() > deadline {
            return Err(read_err(format!(
                "offsets from {start} not read within {}s",
                WINDOW_TIMEOUT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            // only the top read waits for it; below, an end-of-partition event is a late one of the top read
            Some(Err(RdError::PartitionEOF(p))) if p == partition && end.is_none() => {
                return Ok(served)
            }
            Some(Err(RdError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                // transport errors are retried by librdkafka; the deadline bounds the wait
                tracing::debug!(topic, partition, error = %e, "kafka read error during backwards scan");
            }
            Some(Ok(m)) => {
                let offset = m.offset();
                if m.topic() != topic || m.partition() != partition || offset < start {
                    continue;
                }
                if end.is_some_and(|end| offset >= end) {
                    return Ok(served);
                }
                served = Some((served.map_or(offset, |(first, _)| first), offset));
                if let Some(item) = extract(&m) {
                    out.push((offset, item));
                }
                if end.is_some_and(|end| offset >= end - 1) {
                    return Ok(served);
                }
            }
        }
    }
}
