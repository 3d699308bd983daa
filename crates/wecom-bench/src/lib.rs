//! Holder crate for the workspace's criterion benchmarks, which live under the top-level `benches/`.
//! It has no code of its own: the benches depend on the library crates as dev-dependencies so that
//! criterion stays out of every library's dependency tree.
