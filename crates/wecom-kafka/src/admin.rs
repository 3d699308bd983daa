//! The cluster side of the sink: can the brokers be reached, which topics exist with how many partitions and
//! what record size they take, and creating the missing ones. [`KafkaSink::check`] reports it for
//! `wecom-archive check`; `connect` runs the same probe first, so an unreachable broker or a refused login is
//! one clear error instead of a start that hangs on librdkafka's retries.
//!
//! The probe's client logs at debug only: a broker that does not answer is reported once, by the error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use serde::Serialize;

use crate::client::{client_config, ClientRole};
use crate::config::KafkaConfig;
use crate::context::SinkContext;
use crate::error::{client_error, is_auth_code, KafkaError};
use crate::limits;
use crate::scan::REQUEST_TIMEOUT;
use crate::sink::{run_blocking, KafkaSink};

/// How long `connect` waits for newly created topics to show up in metadata.
const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicRole {
    Messages,
    Media,
    DeadLetter,
    Recalls,
    Cursor,
}

/// One configured topic as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCheck {
    pub role: TopicRole,
    pub name: String,
    /// Partition count; `None` when the topic does not exist.
    pub partitions: Option<usize>,
    /// Missing, and `connect` would create it (`create_topics = true`).
    pub will_create: bool,
    /// The topic's `max.message.bytes`, when the broker describes it.
    pub max_message_bytes: Option<u64>,
}

/// What [`KafkaSink::check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The brokers the cluster advertises, as `id host:port`.
    pub brokers: Vec<String>,
    pub topics: Vec<TopicCheck>,
    /// The largest record the sink would publish: `max_record_bytes`, lowered to what the messages and
    /// dead-letter topics take.
    pub max_record_bytes: u64,
}

impl CheckReport {
    /// Topics that do not exist.
    pub fn missing(&self) -> impl Iterator<Item = &TopicCheck> {
        self.topics.iter().filter(|t| t.partitions.is_none())
    }

    /// Nothing stands in the way of `connect`: every topic exists or would be created.
    pub fn ok(&self) -> bool {
        self.missing().all(|t| t.will_create)
    }
}

impl KafkaSink {
    /// Checks the `[kafka]` section against the cluster without changing anything: the brokers answer within
    /// a timeout, each topic exists (with its partition count and record size limit), and whether `connect`
    /// would create the missing ones. An unreachable broker is [`KafkaError::Unreachable`], a refused login
    /// [`KafkaError::Authentication`].
    pub async fn check(config: &KafkaConfig) -> Result<CheckReport, KafkaError> {
        config.validate()?;
        Admin::new(config)?.check().await
    }
}

/// An admin client of the `[kafka]` section.
pub(crate) struct Admin {
    client: Arc<AdminClient<SinkContext>>,
    config: Arc<KafkaConfig>,
}

impl Admin {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Admin, KafkaError> {
        let context = SinkContext::quiet(config);
        let redact = context.redactor();
        let client = client_config(config, ClientRole::Admin)
            .create_with_context(context)
            .map_err(|e| client_error(e, &redact))?;
        Ok(Admin {
            client: Arc::new(client),
            config: Arc::new(config.clone()),
        })
    }

    fn topics(&self) -> Vec<(TopicRole, String)> {
        let t = &self.config.topics;
        let mut out = vec![
            (TopicRole::Messages, t.messages.clone()),
            (TopicRole::Media, t.media.clone()),
            (TopicRole::DeadLetter, t.deadletter.clone()),
            (TopicRole::Recalls, t.recalls.clone()),
        ];
        if let Some(c) = &self.config.cursor_topic {
            out.push((TopicRole::Cursor, c.clone()));
        }
        out
    }

    pub(crate) async fn check(&self) -> Result<CheckReport, KafkaError> {
        let client = self.client.clone();
        let config = self.config.clone();
        let wanted = self.topics();
        let names: Vec<String> = wanted.iter().map(|(_, n)| n.clone()).collect();
        // all topics: a metadata request naming a missing topic may create it on brokers that auto-create
        let (brokers, found) = run_blocking(move || {
            let md = client
                .inner()
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map_err(|e| {
                    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    if is_auth_code(code) {
                        KafkaError::Authentication {
                            brokers: config.brokers.clone(),
                            code,
                        }
                    } else {
                        KafkaError::Unreachable {
                            brokers: config.brokers.clone(),
                            timeout_secs: REQUEST_TIMEOUT.as_secs(),
                            code,
                            secured: config.properties.keys().any(|k| {
                                k.starts_with("security.")
                                    || k.starts_with("sasl.")
                                    || k.starts_with("ssl.")
                            }),
                        }
                    }
                })?;
            let brokers = md
                .brokers()
                .iter()
                .map(|b| format!("{} {}:{}", b.id(), b.host(), b.port()))
                .collect::<Vec<_>>();
            let found = names
                .iter()
                .map(|name| {
                    md.topics()
                        .iter()
                        .find(|t| t.name() == name && t.error().is_none())
                        .map(|t| t.partitions().len())
                        .filter(|&n| n > 0)
                })
                .collect::<Vec<_>>();
            Ok((brokers, found))
        })
        .await?;

        let existing: Vec<&str> = wanted
            .iter()
            .zip(&found)
            .filter(|(_, p)| p.is_some())
            .map(|((_, n), _)| n.as_str())
            .collect();
        let sizes = self.max_message_bytes(&existing).await;
        let topics: Vec<TopicCheck> = wanted
            .into_iter()
            .zip(found)
            .map(|((role, name), partitions)| TopicCheck {
                role,
                max_message_bytes: sizes.iter().find(|(n, _)| *n == name).map(|(_, s)| *s),
                will_create: partitions.is_none() && self.config.create_topics,
                partitions,
                name,
            })
            .collect();
        let max_record_bytes = topics
            .iter()
            .filter(|t| matches!(t.role, TopicRole::Messages | TopicRole::DeadLetter))
            .filter_map(|t| t.max_message_bytes.map(limits::record_limit))
            .fold(self.config.max_record_bytes, u64::min);
        Ok(CheckReport {
            brokers,
            topics,
            max_record_bytes,
        })
    }

    /// `max.message.bytes` of each topic the broker describes; brokers that do not describe (or an ACL that
    /// forbids it) leave a topic out.
    async fn max_message_bytes(&self, topics: &[&str]) -> Vec<(String, u64)> {
        if topics.is_empty() {
            return Vec::new();
        }
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = match self.client.describe_configs(specs.iter(), &opts).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "kafka topic configs not described");
                return Vec::new();
            }
        };
        topics
            .iter()
            .zip(results)
            .filter_map(|(topic, r)| {
                let value = r.ok()?.get("max.message.bytes")?.value.clone()?;
                Some((topic.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// Creates the topics `report` lists as missing, then waits until they show in metadata. New topics take
    /// records of the configured `max_record_bytes`; the cursor topic is compacted and has one partition.
    pub(crate) async fn create_missing(
        &self,
        report: &CheckReport,
    ) -> Result<CheckReport, KafkaError> {
        let c = &self.config;
        let repl = || TopicReplication::Fixed(i32::from(c.replication_factor));
        let max_message = limits::message_max_bytes(c.max_record_bytes).to_string();
        let new: Vec<NewTopic<'_>> = report
            .missing()
            .map(|t| {
                let topic = if t.role == TopicRole::Cursor {
                    // one partition: the cursor functions read and write partition 0 only; segments roll
                    // hourly so the log cleaner can compact them (the active segment never is)
                    NewTopic::new(&t.name, 1, repl())
                        .set("cleanup.policy", "compact")
                        .set("segment.ms", "3600000")
                } else {
                    NewTopic::new(&t.name, c.partitions, repl())
                };
                topic.set("max.message.bytes", &max_message)
            })
            .collect();
        let opts = AdminOptions::new()
            .operation_timeout(Some(REQUEST_TIMEOUT))
            .request_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(5)));
        let results = self
            .client
            .create_topics(new.iter(), &opts)
            .await
            .map_err(|e| KafkaError::CreateTopic {
                topic: report
                    .missing()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
            })?;
        for r in results {
            match r {
                Ok(topic) => tracing::info!(%topic, "kafka topic created"),
                // another process created it in between: fine
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(%topic, "kafka topic already exists")
                }
                Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
            }
        }
        // new topics may take a moment to show in metadata (real Kafka)
        let deadline = Instant::now() + TOPIC_VISIBLE_TIMEOUT;
        loop {
            let report = self.check().await?;
            let missing = report.missing().next().cloned();
            match missing {
                None => return Ok(report),
                Some(t) if Instant::now() > deadline => {
                    return Err(KafkaError::MissingTopic {
                        topic: t.name.clone(),
                        reason: format!(
                            "created but not in metadata after {}s",
                            TOPIC_VISIBLE_TIMEOUT.as_secs()
                        ),
                    })
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}
