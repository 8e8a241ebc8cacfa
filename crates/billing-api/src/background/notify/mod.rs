//! Telling internal services of changes: each configured endpoint is
//! posted every change, signed per Standard Webhooks, in each
//! organization's version order, retried until given up.

mod send;

pub(crate) use send::{Sender, run};
