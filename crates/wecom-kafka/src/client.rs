//! The one place librdkafka client configs are built: producer, admin client, group consumer and the
//! recovery reader all start from the same `[kafka]` section (`bootstrap.servers`, the user's extra
//! `properties` such as SASL/TLS, `message.max.bytes` derived from `max_record_bytes`) and add what their
//! role needs.

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::limits;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole<'a> {
    /// The idempotent producer of the sink (`acks=all`; nothing in `properties` overrides those).
    Producer,
    /// Topic creation and metadata.
    Admin,
    /// A member of consumer group `group_id`: manual offset stores and commits, reading from the
    /// earliest offset when the group has none.
    GroupConsumer { group_id: &'a str },
    /// Assign-and-read without a group (recovery scans): end-of-partition events on, a bounded
    /// prefetch buffer, never a commit.
    Reader,
}

/// The librdkafka config of a client in `role`.
pub fn client_config(config: &KafkaConfig, role: ClientRole<'_>) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &config.properties {
        c.set(k, v);
    }
    // a metadata request for a missing topic must not create it with the broker's defaults
    if !config.properties.contains_key("allow.auto.create.topics") {
        c.set("allow.auto.create.topics", "false");
    }
    c.set("bootstrap.servers", &config.brokers)
        .set("log.connection.close", "false")
        // producers: the per-record and per-batch limit; consumers: fetches take records this big
        .set(
            "message.max.bytes",
            limits::message_max_bytes(config.max_record_bytes).to_string(),
        );
    match role {
        ClientRole::Producer => {
            c.set("compression.type", &config.compression)
                .set("linger.ms", config.linger_ms.to_string())
                .set("batch.size", config.batch_size.to_string())
                .set(
                    "queue.buffering.max.kbytes",
                    config.queue_buffering_max_kbytes.to_string(),
                )
                .set("message.timeout.ms", config.message_timeout_ms.to_string())
                // Java clients hash keys with murmur2: a conversation lands in the same partition
                // whoever publishes it
                .set("partitioner", "murmur2_random");
            // set last so nothing overrides them (validate() also rejects them in `properties`)
            c.set("enable.idempotence", "true").set("acks", "all");
        }
        ClientRole::Admin => {}
        ClientRole::GroupConsumer { group_id } => {
            c.set("group.id", group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest");
        }
        ClientRole::Reader => {
            // librdkafka refuses `assign` without a group id; this one never subscribes nor commits
            c.set("group.id", "wecom-archive-recover")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "true")
                // every record up to the high watermark, also those after another producer's open
                // transaction (ours are never transactional); control records are never delivered
                .set("isolation.level", "read_uncommitted")
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "10")
                // bounds the prefetch buffer: a scan holds one window at a time anyway
                .set("queued.max.messages.kbytes", "16384");
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_keeps_idempotence_whatever_the_properties_say() {
        let mut cfg = KafkaConfig::default();
        cfg.properties
            .insert("security.protocol".into(), "sasl_ssl".into());
        let c = client_config(&cfg, ClientRole::Producer);
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        let g = client_config(&cfg, ClientRole::GroupConsumer { group_id: "g" });
        assert_eq!(g.get("group.id"), Some("g"));
        assert_eq!(g.get("enable.auto.commit"), Some("false"));
        assert_eq!(g.get("acks"), None);
        assert_eq!(c.get("message.max.bytes"), Some("1000422"));
        assert_eq!(c.get("allow.auto.create.topics"), Some("false"));
        let r = client_config(&cfg, ClientRole::Reader);
        assert_eq!(r.get("isolation.level"), Some("read_uncommitted"));
    }
}
