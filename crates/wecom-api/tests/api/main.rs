//! Integration tests of the client against scripted fake servers on 127.0.0.1:0.

mod callback;
mod calls;
mod consent;
mod errors;
mod fatal;
mod limits;
mod media;
mod retry;
mod support;
mod token;
