//! Errors of the Kafka sink, with the class the pipeline acts on ([`KafkaError::class`]).
//!
//! A publish error stops the page without moving the cursor. What happens next depends on the class:
//! - [`ErrorClass::RecordTooLarge`]: one record is bigger than the topic takes. The lines before it are
//!   acknowledged and nothing after it was sent (see [`KafkaError::RecordTooLarge`]): publish the rest of the
//!   page with that record slimmed.
//! - [`ErrorClass::Retriable`]: timeouts, a broker unavailable past `message.timeout.ms`. Some records of the
//!   failed call may be in the topics already: stop, and let the next start's `recover` find them.
//! - [`ErrorClass::Fatal`]: authorization, bad config, missing topic, a fenced or fatal producer. Restarting
//!   cannot help; the message says what the operator should check.
//!
//! Messages name topic, partition and seq, and the librdkafka code. They never contain a `[kafka] properties`
//! value: texts from librdkafka pass through the redactor (`redact.rs`). No variant has a `#[source]`: each
//! says its cause once, in its own message.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

use crate::redact::Redactor;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Stop without moving the cursor; a restart (or a later retry) may succeed.
    Retriable,
    /// A record is too large for the topic: publish it slimmed (the error names its seq) and go on.
    RecordTooLarge,
    /// Needs an operator: stop, do not move the cursor, exit non-zero.
    Fatal,
}

/// Error of the Kafka sink.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("invalid kafka config: {0}")]
    Config(String),
    #[error("kafka client creation failed: {0}")]
    Client(String),
    #[error("no kafka broker of {brokers} answered within {timeout_secs}s ({code}); check [kafka] brokers and that this host can reach them{}", if *secured { ", and the security.protocol, sasl.* and ssl.* entries of [kafka] properties" } else { "" })]
    Unreachable {
        brokers: String,
        timeout_secs: u64,
        code: RDKafkaErrorCode,
        /// `[kafka] properties` sets security options (a failed TLS or SASL handshake looks the same).
        secured: bool,
    },
    #[error("kafka brokers {brokers} refused the connection ({code}); check the security.protocol, sasl.* and ssl.* entries of [kafka] properties")]
    Authentication {
        brokers: String,
        code: RDKafkaErrorCode,
    },
    #[error("creating kafka topic {topic} failed: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("kafka topic {topic} does not exist or has no partitions ({reason}); create it or set create_topics = true")]
    MissingTopic { topic: String, reason: String },
    #[error("kafka metadata of topic {topic} could not be fetched: {code}")]
    Metadata {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("publishing seq {seq} to kafka topic {topic}{} failed: {code}{detail}", partition_suffix(*partition))]
    Publish {
        topic: String,
        /// `-1` when librdkafka had not chosen one.
        partition: i32,
        seq: u64,
        code: RDKafkaErrorCode,
        /// `": <fatal reason>"` when the producer reported a fatal error, else empty.
        detail: String,
        fatal: bool,
    },
    /// Lines `..published` of the `publish` call are acknowledged; the refused line and every line after it
    /// were not sent.
    #[error("record seq {seq} ({bytes} bytes) is larger than kafka topic {topic} takes ({limit} bytes); publish it slimmed")]
    RecordTooLarge {
        topic: String,
        seq: u64,
        bytes: u64,
        limit: u64,
        published: usize,
    },
    #[error("kafka topic {topic}{} refused a batch as too large at seq {seq} ({code}): the topic's max.message.bytes is below what the producer sends; raise it, or lower [kafka] max_record_bytes and batch_size", partition_suffix(*partition))]
    BatchTooLarge {
        topic: String,
        partition: i32,
        seq: u64,
        code: RDKafkaErrorCode,
    },
    #[error("invalid publish line seq {seq}: {reason}")]
    InvalidLine { seq: u64, reason: String },
    #[error("kafka producer was dropped before seq {seq} was acknowledged on topic {topic}")]
    Canceled { topic: String, seq: u64 },
    #[error("reading kafka topic {topic} partition {partition} failed: {reason}")]
    Read {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("kafka flush failed: {code}")]
    Flush { code: RDKafkaErrorCode },
    #[error("cursor record {key} in kafka topic {topic} is invalid: {reason}")]
    Cursor {
        topic: String,
        key: String,
        reason: String,
    },
    #[error("kafka sink has no cursor_topic configured")]
    NoCursorTopic,
    #[error("kafka background task failed: {0}")]
    Task(String),
    /// `publish_guarded`: lines `..published` are acknowledged, the one of `seq` and every later one were
    /// not sent because the caller's ownership lease ran out.
    #[error(
        "stopped publishing before seq {seq}: this worker's ownership lease of the stream ran out"
    )]
    LeaseExpired { seq: u64, published: usize },
}

fn partition_suffix(partition: i32) -> String {
    if partition >= 0 {
        format!(" partition {partition}")
    } else {
        String::new()
    }
}

impl KafkaError {
    /// What the caller should do (see the module docs).
    pub fn class(&self) -> ErrorClass {
        if matches!(self, KafkaError::RecordTooLarge { .. }) {
            ErrorClass::RecordTooLarge
        } else if self.is_fatal() {
            ErrorClass::Fatal
        } else {
            ErrorClass::Retriable
        }
    }

    /// True when retrying or restarting cannot help: stop, do not move the cursor, exit non-zero.
    pub fn is_fatal(&self) -> bool {
        match self {
            KafkaError::Config(_)
            | KafkaError::Client(_)
            | KafkaError::Authentication { .. }
            | KafkaError::CreateTopic { .. }
            | KafkaError::MissingTopic { .. }
            | KafkaError::BatchTooLarge { .. }
            | KafkaError::InvalidLine { .. }
            | KafkaError::Cursor { .. }
            | KafkaError::NoCursorTopic => true,
            KafkaError::Publish { fatal, .. } => *fatal,
            KafkaError::Metadata { code, .. } | KafkaError::Flush { code } => is_fatal_code(*code),
            KafkaError::Unreachable { .. }
            | KafkaError::RecordTooLarge { .. }
            | KafkaError::Canceled { .. }
            | KafkaError::Read { .. }
            | KafkaError::LeaseExpired { .. }
            | KafkaError::Task(_) => false,
        }
    }

    /// The librdkafka code, when there is one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::CreateTopic { code, .. }
            | KafkaError::Metadata { code, .. }
            | KafkaError::Publish { code, .. }
            | KafkaError::BatchTooLarge { code, .. }
            | KafkaError::Unreachable { code, .. }
            | KafkaError::Authentication { code, .. }
            | KafkaError::Flush { code } => Some(*code),
            KafkaError::RecordTooLarge { .. } => Some(RDKafkaErrorCode::MessageSizeTooLarge),
            _ => None,
        }
    }

    /// The seq of the record to slim, for [`ErrorClass::RecordTooLarge`].
    pub fn too_large_seq(&self) -> Option<u64> {
        match self {
            KafkaError::RecordTooLarge { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Codes no retry can cure: authorization and authentication, records the broker will never take, a producer
/// that is fenced or in librdkafka's fatal state, and topics that are not there.
pub fn is_fatal_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Fatal
            | C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::OutOfOrderSequenceNumber
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::Authentication
            | C::SSL
            | C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidMessage
            | C::BadCompression
            | C::UnsupportedCompressionType
            | C::UnsupportedForMessageFormat
            | C::InvalidRequiredAcks
            | C::InvalidTopic
            | C::UnknownTopic
            | C::UnknownPartition
            | C::UnknownTopicOrPartition
            | C::InvalidArgument
            | C::InvalidConfig
            | C::PolicyViolation
    )
}

/// Codes by which a broker or librdkafka refuses a record or batch for its size.
pub(crate) fn is_size_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// Codes of a broker that refuses who we are (as opposed to one that does not answer).
pub(crate) fn is_auth_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::UnsupportedSASLMechanism
            | RDKafkaErrorCode::IllegalSASLState
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}

/// Client-creation errors: `ClientConfig`'s own message quotes the value, which may be a password.
pub(crate) fn client_error(e: RdError, redact: &Redactor) -> KafkaError {
    match e {
        RdError::ClientConfig(_, _, key, _) => {
            KafkaError::Client(format!("librdkafka rejected the value of property {key}"))
        }
        other => KafkaError::Client(redact.apply(&other.to_string()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(code: RDKafkaErrorCode, fatal: bool) -> KafkaError {
        KafkaError::Publish {
            topic: "t".into(),
            partition: 2,
            seq: 7,
            code,
            detail: String::new(),
            fatal,
        }
    }

    #[test]
    fn classes() {
        let check = |e: KafkaError, class: ErrorClass, needles: &[&str]| {
            assert_eq!(e.class(), class, "{e}");
            assert_eq!(e.is_fatal(), class == ErrorClass::Fatal, "{e}");
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{msg:?} should contain {n:?}");
            }
        };
        check(
            publish(RDKafkaErrorCode::TopicAuthorizationFailed, true),
            ErrorClass::Fatal,
            &["topic t partition 2", "seq 7", "TopicAuthorizationFailed"],
        );
        check(
            publish(RDKafkaErrorCode::MessageTimedOut, false),
            ErrorClass::Retriable,
            &["seq 7"],
        );
        check(
            KafkaError::RecordTooLarge {
                topic: "t".into(),
                seq: 9,
                bytes: 5_000_000,
                limit: 1_000_000,
                published: 0,
            },
            ErrorClass::RecordTooLarge,
            &["seq 9", "5000000 bytes", "topic t", "1000000"],
        );
        check(
            KafkaError::BatchTooLarge {
                topic: "t".into(),
                partition: -1,
                seq: 3,
                code: RDKafkaErrorCode::MessageSizeTooLarge,
            },
            ErrorClass::Fatal,
            &["topic t refused", "seq 3", "max_record_bytes"],
        );
        check(
            KafkaError::Unreachable {
                brokers: "h1:9092,h2:9092".into(),
                timeout_secs: 10,
                code: RDKafkaErrorCode::BrokerTransportFailure,
                secured: false,
            },
            ErrorClass::Retriable,
            &["h1:9092,h2:9092", "[kafka] brokers", "10s"],
        );
        assert!(is_fatal_code(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(!is_fatal_code(RDKafkaErrorCode::MessageTimedOut));
        assert!(!is_fatal_code(RDKafkaErrorCode::BrokerTransportFailure));
    }

    #[test]
    fn each_cause_is_said_once() {
        let e = publish(RDKafkaErrorCode::MessageTimedOut, false);
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.to_string().matches("MessageTimedOut").count(), 1, "{e}");
    }

    #[test]
    fn client_config_error_hides_value() {
        let e = client_error(
            RdError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "Invalid value \"hunter2\" for sasl.password".into(),
                "sasl.password".into(),
                "hunter2".into(),
            ),
            &Redactor::default(),
        );
        let s = e.to_string();
        assert!(s.contains("sasl.password") && !s.contains("hunter2"), "{s}");
    }
}
