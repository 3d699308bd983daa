//! Integration tests of wecom-store: one binary, a module per area.

mod common;
mod crash;
mod cursor;
mod layout;
mod sink;
