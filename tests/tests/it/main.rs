//! The integration tests, as one test binary: one module per area, sharing one harness.
//! One binary links the app, the server and the AWS SDK once, where a binary per file linked
//! them once each. Its tests run side by side on threads of one process, so what a test
//! measures of the process (memory, log lines) is kept to that test: see `common::alone` and
//! `common::logs`.
//!
//! Run one area: `cargo test -p tests --test it sign_in::`.

// The server's allocator (server/src/main.rs), so that what the tests measure of memory is
// what production does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

mod accessibility;
mod api;
mod azure;
mod bedrock_region;
mod browser;
mod bundle;
mod chat;
mod checks;
mod config_as_code;
mod daily;
mod discovery;
mod faults;
mod features;
mod forms;
mod gateway;
mod listbox;
mod metrics;
mod modals;
mod model_trust;
mod models;
mod narrow;
mod offline_queries;
mod openapi;
mod secrets;
mod security;
mod sign_in;
mod status;
mod tokens;
mod trust;
mod users_and_audit;
mod vertex;
