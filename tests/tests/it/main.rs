//! The integration tests, as one test binary: one module per area, sharing one harness.
//! One binary links the app, the server and the AWS SDK once, where a binary per file linked
//! them once each. Its tests run side by side on threads of one process, so what a test
//! measures of the process (memory, log lines) is kept to that test: see `common::alone` and
//! `common::logs`.
//!
//! Run one area: `cargo test -p tests --test it sign_in::`.

mod common;

mod accessibility;
mod azure;
mod browser;
mod chat;
mod checks;
mod faults;
mod features;
mod forms;
mod listbox;
mod metrics;
mod modals;
mod model_trust;
mod models;
mod narrow;
mod offline_queries;
mod secrets;
mod security;
mod sign_in;
mod trust;
mod users_and_audit;
