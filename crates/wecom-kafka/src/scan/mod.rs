//! Reading one partition backwards (newest record first) or forwards from an offset to its end (blocking;
//! callers use `spawn_blocking`).
//!
//! Kafka only reads forwards, so the backward scan reads the partition in windows of offsets `[end - k, end)`
//! walking down from the end of the log, `k` doubling from [`FIRST_WINDOW`] to [`MAX_WINDOW`]; each window is
//! read forwards with an `assign` at its first offset and then visited newest first. An empty partition costs
//! one watermark request; a stream whose last record is near the top costs a read of the last batch and one
//! small window.
//!
//! **A window is complete when the offsets actually delivered reach its end, or at the end-of-partition
//! event; never because offset arithmetic says so.** Not every offset is delivered: transaction markers
//! (control records) never are, and a broker may serve whole batches only from the first batch *starting* at
//! or after the fetch offset (tansu 0.6 does). So a window may be all gaps, and a partition may end in gaps;
//! waiting for a given offset could wait forever. librdkafka raises the end-of-partition event when its fetch
//! position reaches the end of the log (the high watermark; the reader uses `read_uncommitted`, so never an
//! open transaction's LSO below it); an `assign` bumps the partition's version barrier, so an event of an
//! earlier assignment is never delivered after it.
//!
//! Where the end of the log is: tansu 0.6 answers a watermark request with the *last batch's base offset + 1*,
//! and a fetch from inside that batch delivers nothing and never reaches end-of-partition. So the scans start
//! their top read at `high - 1` (the last batch's first offset there; the last offset elsewhere) and take the
//! end of the log from what that read delivers ([`true_end`]).
//!
//! The window logic runs over [`PartitionLog`]; `kafka.rs` implements it with a librdkafka consumer, and the
//! tests in `sim.rs` with simulated offset layouts (gaps at the tail, in the middle, whole windows of gaps,
//! the watermark quirk).

mod kafka;
#[cfg(test)]
mod sim;

use std::time::{Duration, Instant};

pub(crate) use kafka::{partitions, reader, KafkaLog};

use crate::error::KafkaError;

pub(crate) const FIRST_WINDOW: i64 = 256;
pub(crate) const MAX_WINDOW: i64 = 65_536;
/// How long a read may go without delivering anything (record or end of partition) before the scan fails:
/// the broker is then unreachable, or the fetch position is stuck.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Where a forward read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFrom {
    Offset(i64),
    Beginning,
}

/// What one poll of a partition read yielded.
pub(crate) enum Polled<T> {
    /// Nothing within the poll timeout.
    Idle,
    /// A record of the assigned partition, with what the log's extractor took from it.
    Record { offset: i64, item: Option<T> },
    /// The end-of-partition event of the current assignment.
    End,
    /// A client error (librdkafka retries transport errors itself); the idle timeout bounds the wait.
    Failed(String),
}

/// One partition, read forwards from an assigned offset; each record comes with what the log's extractor
/// took from it (`None`: nothing of interest).
pub(crate) trait PartitionLog {
    type Item;

    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    /// `(low, high)` watermarks as the broker reports them (see the module docs for tansu's `high`).
    fn watermarks(&mut self) -> Result<(i64, i64), KafkaError>;
    /// Starts reading at `from`; anything delivered afterwards belongs to this read.
    fn assign(&mut self, from: ReadFrom) -> Result<(), KafkaError>;
    fn poll(&mut self, timeout: Duration) -> Polled<Self::Item>;
}

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

/// Scans the partition newest first down to its low watermark or `max_records` offsets below the end.
/// `visit` sees what the log's extractor took from each record, newest first, with offsets.
pub(crate) fn scan_back<L: PartitionLog>(
    log: &mut L,
    max_records: u64,
    idle_timeout: Duration,
    mut visit: impl FnMut(i64, L::Item) -> Step,
) -> Result<ScanOutcome, KafkaError> {
    let (lo, hi) = log.watermarks()?;
    let mut out = ScanOutcome::default();
    if hi <= lo {
        return Ok(out);
    }
    let mut window = Vec::new();
    let mut visit_window = |window: &mut Vec<(i64, L::Item)>| {
        window
            .drain(..)
            .rev()
            .any(|(offset, item)| matches!(visit(offset, item), Step::Stop))
    };

    // The top: from `hi - 1` to the end-of-partition event.
    let top = read_window(log, hi - 1, None, idle_timeout, &mut window)?;
    // nothing delivered from `hi - 1` on (a transaction marker, say): everything below `hi - 1` is left
    let (first, last) = top.unwrap_or((hi - 1, hi - 2));
    out.read += last + 1 - first;
    if visit_window(&mut window) {
        out.stopped = true;
        return Ok(out);
    }

    let max_records = i64::try_from(max_records).unwrap_or(i64::MAX);
    let end_of_log = (last + 1).max(hi);
    let floor = lo.max(end_of_log.saturating_sub(max_records));
    let mut end = first;
    let mut k = FIRST_WINDOW;
    while end > floor {
        let start = floor.max(end - k);
        match read_window(log, start, Some(end), idle_timeout, &mut window)? {
            Some((first, _)) => {
                out.read += end - first;
                if visit_window(&mut window) {
                    out.stopped = true;
                    return Ok(out);
                }
                // Offsets in [start, first) were not delivered: gaps, or a batch beginning below `start` that
                // this broker does not serve from `start`. The next window ends at `first`, so they are read
                // then if they exist.
                end = first;
                k = (k * 2).min(MAX_WINDOW);
            }
            // nothing delivered in [start, end): all gaps, or one batch straddling `start`; widen downwards
            None if start > floor => k = k.saturating_mul(2),
            None => {
                end = floor;
                break;
            }
        }
    }
    out.bound_hit = end > lo;
    Ok(out)
}

/// Reads the partition forwards from `from` to its end-of-partition event (or until `visit` stops it), handing
/// what the log's extractor took to `visit` in offset order. Returns how many records were delivered.
pub(crate) fn scan_forward<L: PartitionLog>(
    log: &mut L,
    from: ReadFrom,
    idle_timeout: Duration,
    mut visit: impl FnMut(i64, L::Item) -> Step,
) -> Result<u64, KafkaError> {
    log.assign(from)?;
    let start = match from {
        ReadFrom::Offset(o) => o,
        ReadFrom::Beginning => i64::MIN,
    };
    let mut waiting = Waiting::new(idle_timeout);
    let mut delivered = 0u64;
    loop {
        match log.poll(POLL) {
            Polled::Idle => waiting.idle(log, start)?,
            Polled::Failed(e) => {
                waiting.failed(log, start, e)?;
            }
            Polled::End => return Ok(delivered),
            Polled::Record { offset, item } => {
                waiting.progress();
                if offset < start {
                    continue;
                }
                delivered += 1;
                if let Some(item) = item {
                    if let Step::Stop = visit(offset, item) {
                        return Ok(delivered);
                    }
                }
            }
        }
    }
}

/// The offset after the partition's last record: where a record produced now would land at the earliest
/// (never above it). `high` itself where the broker reports it exactly; the end of the top read where it
/// does not (tansu).
pub(crate) fn true_end<L: PartitionLog>(
    log: &mut L,
    idle_timeout: Duration,
) -> Result<i64, KafkaError> {
    let (lo, hi) = log.watermarks()?;
    if hi <= lo {
        return Ok(hi);
    }
    let mut items = Vec::new();
    let top = read_window(log, hi - 1, None, idle_timeout, &mut items)?;
    Ok(top.map_or(hi, |(_, last)| hi.max(last + 1)))
}

/// Reads `[start, end)` forwards (to the end-of-partition event when `end` is `None`), pushing what the log's
/// extractor took. Complete when a delivered offset reaches `end - 1` or beyond, or at the end-of-partition
/// event. Returns the first and last offsets delivered in the range, `None` when none was.
fn read_window<L: PartitionLog>(
    log: &mut L,
    start: i64,
    end: Option<i64>,
    idle_timeout: Duration,
    out: &mut Vec<(i64, L::Item)>,
) -> Result<Option<(i64, i64)>, KafkaError> {
    log.assign(ReadFrom::Offset(start))?;
    let mut waiting = Waiting::new(idle_timeout);
    let mut served: Option<(i64, i64)> = None;
    loop {
        match log.poll(POLL) {
            Polled::Idle => waiting.idle(log, start)?,
            Polled::Failed(e) => waiting.failed(log, start, e)?,
            Polled::End => return Ok(served),
            Polled::Record { offset, item } => {
                waiting.progress();
                // librdkafka drops offsets below the fetch offset of a compressed batch; be sure anyway
                if offset < start {
                    continue;
                }
                if end.is_some_and(|end| offset >= end) {
                    return Ok(served);
                }
                served = Some((served.map_or(offset, |(first, _)| first), offset));
                if let Some(item) = item {
                    out.push((offset, item));
                }
                if end.is_some_and(|end| offset >= end - 1) {
                    return Ok(served);
                }
            }
        }
    }
}

/// The idle timeout of one read: reset by every delivered record.
struct Waiting {
    idle_timeout: Duration,
    since: Instant,
    last_error: Option<String>,
}

impl Waiting {
    fn new(idle_timeout: Duration) -> Self {
        Waiting {
            idle_timeout,
            since: Instant::now(),
            last_error: None,
        }
    }

    fn progress(&mut self) {
        self.since = Instant::now();
        self.last_error = None;
    }

    fn failed<L: PartitionLog>(
        &mut self,
        log: &L,
        start: i64,
        error: String,
    ) -> Result<(), KafkaError> {
        tracing::debug!(topic = log.topic(), partition = log.partition(), %error, "kafka read error (retried)");
        self.last_error = Some(error);
        self.idle(log, start)
    }

    fn idle<L: PartitionLog>(&self, log: &L, start: i64) -> Result<(), KafkaError> {
        if self.since.elapsed() <= self.idle_timeout {
            return Ok(());
        }
        let last = self
            .last_error
            .as_deref()
            .map(|e| format!(" (last client error: {e})"))
            .unwrap_or_default();
        Err(KafkaError::Read {
            topic: log.topic().into(),
            partition: log.partition(),
            reason: format!(
                "nothing delivered for {:?} reading from offset {start}{last}; check that the brokers are reachable",
                self.idle_timeout
            ),
        })
    }
}
