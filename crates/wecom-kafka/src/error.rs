//! Errors of the Kafka sink, with the class the pipeline acts on.
//!
//! Every publish error stops the pipeline without moving the cursor (some records of the failed call may be in
//! the topic already; the next start's `recover` finds them). `is_fatal` tells whether restarting can help:
//! fatal errors (authorization, record too large, fenced or fatal producer, bad config, missing topic) need an
//! operator; the others (timeouts, broker unavailable past `message.timeout.ms`) may pass on a restart.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

/// Error of the Kafka sink. Messages name topic, partition and librdkafka code, never a property value.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("invalid kafka config: {0}")]
    Config(String),
    #[error("kafka client creation failed: {0}")]
    Client(String),
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
    #[error("publishing seq {seq} to kafka topic {topic} failed: {code}{detail}")]
    Publish {
        topic: String,
        seq: u64,
        code: RDKafkaErrorCode,
        /// `": <fatal reason>"` when the producer reported a fatal error, else empty.
        detail: String,
        fatal: bool,
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
    #[error("cursor record for {key} in kafka topic {topic} is invalid: {reason}")]
    Cursor {
        topic: String,
        key: String,
        reason: String,
    },
    #[error("kafka sink has no cursor_topic configured")]
    NoCursorTopic,
    #[error("kafka background task failed: {0}")]
    Task(String),
}

impl KafkaError {
    /// True when retrying or restarting cannot help: stop, do not move the cursor, exit non-zero.
    pub fn is_fatal(&self) -> bool {
        match self {
            KafkaError::Config(_)
            | KafkaError::Client(_)
            | KafkaError::CreateTopic { .. }
            | KafkaError::MissingTopic { .. }
            | KafkaError::InvalidLine { .. }
            | KafkaError::Cursor { .. }
            | KafkaError::NoCursorTopic => true,
            KafkaError::Publish { fatal, .. } => *fatal,
            KafkaError::Metadata { code, .. } | KafkaError::Flush { code } => is_fatal_code(*code),
            KafkaError::Canceled { .. } | KafkaError::Read { .. } | KafkaError::Task(_) => false,
        }
    }

    /// The librdkafka code, when there is one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::CreateTopic { code, .. }
            | KafkaError::Metadata { code, .. }
            | KafkaError::Publish { code, .. }
            | KafkaError::Flush { code } => Some(*code),
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

/// Client-creation errors: `ClientConfig`'s own message quotes the value, which may be a password.
pub(crate) fn client_error(e: RdError) -> KafkaError {
    match e {
        RdError::ClientConfig(_, _, key, _) => {
            KafkaError::Client(format!("librdkafka rejected the value of property {key}"))
        }
        other => KafkaError::Client(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let publish = |code, fatal| KafkaError::Publish {
            topic: "t".into(),
            seq: 7,
            code,
            detail: String::new(),
            fatal,
        };
        let e = publish(RDKafkaErrorCode::MessageSizeTooLarge, true);
        assert!(e.is_fatal());
        let msg = e.to_string();
        assert!(
            msg.contains("topic t") && msg.contains("seq 7") && msg.contains("MessageSizeTooLarge"),
            "{msg}"
        );
        assert!(!publish(RDKafkaErrorCode::MessageTimedOut, false).is_fatal());
        assert!(is_fatal_code(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(!is_fatal_code(RDKafkaErrorCode::MessageTimedOut));
        assert!(!is_fatal_code(RDKafkaErrorCode::BrokerTransportFailure));
    }

    #[test]
    fn client_config_error_hides_value() {
        let e = client_error(RdError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for sasl.password".into(),
            "sasl.password".into(),
            "hunter2".into(),
        ));
        let s = e.to_string();
        assert!(s.contains("sasl.password") && !s.contains("hunter2"), "{s}");
    }
}
