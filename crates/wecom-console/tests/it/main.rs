//! Integration tests of the console: a real server over a temporary data directory.

#[path = "../../benches/synth.rs"]
mod synth;

mod access;
mod common;
mod kafka;
mod pages;
mod search;
mod transcript;
mod voice;
