//! What the workspace's benchmarks (under the top-level `benches/`) share: the child processes a bench
//! binary starts from itself ([`child`]: the simulator in a process of its own, the SDK workers) and the
//! measurements they report ([`measure`]: the RSA ceiling of the machine, peak RSS, percentiles).
//!
//! Nothing else depends on this crate, so the benches' heavy dependencies (criterion, rdkafka's consumer)
//! stay out of every library's dependency tree.

pub mod child;
pub mod measure;
