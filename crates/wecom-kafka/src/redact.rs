//! Keeps `[kafka] properties` values (SASL passwords, TLS key passwords, OAuth configs) out of every text that
//! leaves the crate: librdkafka's log lines and the error strings it hands back.

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::KafkaConfig;

/// Keys whose values are redacted whatever they look like.
const SENSITIVE: &[&str] = &[
    "password",
    "secret",
    "token",
    "jaas",
    "username",
    "key",
    "credential",
    "oauthbearer",
];

/// Replaces the values of `[kafka] properties` in texts from librdkafka with `<redacted>`.
#[derive(Clone, Default)]
pub(crate) struct Redactor(Arc<Vec<String>>);

impl Redactor {
    /// Every value of a sensitive-looking key, and every other value that could be a secret (longer than 3
    /// characters, not a plain number or boolean): numbers and flags stay readable in log lines.
    pub(crate) fn new(config: &KafkaConfig) -> Self {
        let mut values: Vec<String> = config
            .properties
            .iter()
            .filter(|(k, v)| {
                let k = k.to_ascii_lowercase();
                let sensitive = SENSITIVE.iter().any(|s| k.contains(s));
                let plain = v.len() <= 3
                    || v.bytes().all(|b| b.is_ascii_digit())
                    || v.eq_ignore_ascii_case("true")
                    || v.eq_ignore_ascii_case("false");
                !v.is_empty() && (sensitive || !plain)
            })
            .map(|(_, v)| v.clone())
            .collect();
        // longest first, so a value containing another is replaced whole
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor(Arc::new(values))
    }

    pub(crate) fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in self.0.iter() {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), "<redacted>"));
            }
        }
        out
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_numbers_and_flags_are_not() {
        let mut c = KafkaConfig::default();
        for (k, v) in [
            ("sasl.password", "pw"),
            ("sasl.username", "svc-user"),
            ("ssl.ca.location", "/etc/ca.pem"),
            ("statistics.interval.ms", "1000"),
            ("enable.ssl.certificate.verification", "false"),
        ] {
            c.properties.insert(k.into(), v.into());
        }
        let r = Redactor::new(&c);
        let s = r.apply("auth pw failed for svc-user with /etc/ca.pem after 1000 ms, verify false");
        assert_eq!(
            s,
            "auth <redacted> failed for <redacted> with <redacted> after 1000 ms, verify false"
        );
        assert!(matches!(r.apply("nothing here"), Cow::Borrowed(_)));
    }
}
