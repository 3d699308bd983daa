//! The simulator over real HTTP (port 0), driven by a plain reqwest client: one test binary, a module
//! per area.

mod common;
mod consent;
mod formats;
mod http;
mod live;
mod notify;
mod oversized;
