//! Telling internal services of changes: each configured endpoint is
//! posted every change, signed per Standard Webhooks, in each
//! organization's version order, retried until given up.

mod send;
mod sign;

pub(crate) use send::{Sender, redact, run};
pub use sign::SigningKey;
