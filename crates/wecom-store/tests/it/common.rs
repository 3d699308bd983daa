//! Shared helpers: deterministic test lines and readers.

use std::collections::BTreeMap;
use std::path::Path;

use wecom_store::{read_lines, LineKind, OutputLine};

/// Every fifth seq is a dead letter, so most batches touch both directories.
pub fn kind_of(seq: u64) -> LineKind {
    if matches!(seq % 5, 0) {
        LineKind::DeadLetter
    } else {
        LineKind::Record
    }
}

/// The JSON the tests write for `seq`: deterministic, of varying length.
pub fn json_of(seq: u64) -> Vec<u8> {
    let pad = "x".repeat((seq % 13) as usize * 3);
    let kind = match kind_of(seq) {
        LineKind::Record => "record",
        LineKind::DeadLetter => "dead_letter",
    };
    format!(r#"{{"schema":"test/1","seq":{seq},"kind":"{kind}","pad":"{pad}"}}"#).into_bytes()
}

pub fn line(seq: u64) -> OutputLine {
    OutputLine {
        kind: kind_of(seq),
        seq,
        json: json_of(seq),
    }
}

pub fn lines(seqs: impl IntoIterator<Item = u64>) -> Vec<OutputLine> {
    seqs.into_iter().map(line).collect()
}

/// All lines of a sink directory, in order.
pub fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    read_lines(dir)
        .expect("list segments")
        .collect::<Result<Vec<_>, _>>()
        .expect("read lines")
}

pub fn seq_of(json: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(json).expect("valid json line");
    v["seq"].as_u64().expect("seq field")
}

/// The conservation check: every seq in `1..=n` is in exactly one line, in the right directory,
/// with the exact bytes it was written with.
pub fn assert_exactly_once(messages: &Path, deadletter: &Path, n: u64) {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for (dir, kind) in [
        (messages, LineKind::Record),
        (deadletter, LineKind::DeadLetter),
    ] {
        for json in read_all(dir) {
            let seq = seq_of(&json);
            assert_eq!(kind_of(seq), kind, "seq {seq} in the wrong directory");
            assert_eq!(json, json_of(seq), "seq {seq} has different bytes");
            *seen.entry(seq).or_default() += 1;
        }
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dupes.is_empty(), "duplicated seqs: {dupes:?}");
    let missing: Vec<_> = (1..=n).filter(|s| !seen.contains_key(s)).collect();
    assert!(missing.is_empty(), "missing seqs: {missing:?}");
    let extra: Vec<_> = seen.keys().filter(|s| **s > n || **s == 0).collect();
    assert!(extra.is_empty(), "unexpected seqs: {extra:?}");
}

/// SplitMix64: enough randomness for choosing crash points, reproducible from a printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn from_env_or_time(var: &str) -> (Self, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng::new(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
