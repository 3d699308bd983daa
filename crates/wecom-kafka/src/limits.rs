//! Record sizes: what `max_record_bytes` counts, and the librdkafka and broker limits derived from it so that a
//! record within `max_record_bytes` is never refused for its size, by librdkafka or by a topic the sink created.
//!
//! A record's size is its key, its value and its headers' names and values ([`crate::PublishLine::record_bytes`]).
//! On the wire it also carries a record frame (at most 36 bytes, librdkafka's `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`),
//! two length varints per header (at most 10 bytes), and it travels in a record batch (a 61-byte header). The
//! broker's `max.message.bytes` bounds a whole batch; librdkafka's `message.max.bytes` bounds each record at
//! `produce()` time and each batch it builds. Setting `message.max.bytes` to `max_record_bytes` plus the
//! worst-case framing of one record alone in a batch makes both hold at once.

/// Headers a line may carry (the pipeline sends six); bounds the framing overhead.
pub(crate) const MAX_HEADERS: usize = 32;

const RECORD_FRAME: u64 = 36;
const HEADER_FRAME: u64 = 10;
const HEADER_COUNT_VARINT: u64 = 5;
const BATCH_HEADER: u64 = 61;

/// Worst-case bytes a record alone in a batch adds to its [`record_bytes`](crate::PublishLine::record_bytes).
pub const RECORD_OVERHEAD: u64 =
    BATCH_HEADER + RECORD_FRAME + HEADER_COUNT_VARINT + HEADER_FRAME * MAX_HEADERS as u64;

/// librdkafka refuses `message.max.bytes` above this.
pub(crate) const LIBRDKAFKA_MAX: u64 = 1_000_000_000;

/// Smallest accepted `max_record_bytes`: a slim record (ids, a reference to the full body) must fit.
pub(crate) const MIN_RECORD_BYTES: u64 = 16 * 1024;

/// Records above this size are sent alone (see `publish`): a broker that refuses one as too large must not see
/// records of the same page queued behind it.
pub(crate) const SOLO_RECORD_BYTES: u64 = 64 * 1024;

/// librdkafka's `message.max.bytes` (and the `max.message.bytes` of topics the sink creates) for
/// `max_record_bytes`.
pub(crate) fn message_max_bytes(max_record_bytes: u64) -> u64 {
    max_record_bytes + RECORD_OVERHEAD
}

/// The largest record a topic with `max.message.bytes = topic_limit` takes whatever the framing.
pub(crate) fn record_limit(topic_limit: u64) -> u64 {
    topic_limit.saturating_sub(RECORD_OVERHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limit_fits_a_default_broker() {
        // Apache Kafka's default max.message.bytes
        let broker_default = 1_048_588;
        assert!(message_max_bytes(1_000_000) <= broker_default);
        assert_eq!(record_limit(message_max_bytes(123_456)), 123_456);
        assert_eq!(record_limit(10), 0);
    }
}
