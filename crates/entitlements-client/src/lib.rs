//! What an internal Rust service uses instead of hand-written HTTP calls
//! to the billing service: typed entitlements from a local cache that the
//! service's change feed keeps current, so a check costs no network call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), entitlements_client::Error> {
//! use entitlements_client::Client;
//!
//! let client = Client::new("http://billing.internal:8080", "a-read-token")?;
//! let acme = client.entitlements("acme").await?;
//! if acme.enabled("sso") && acme.limit("seats").unwrap_or(0) >= 10 {
//!     // ...
//! }
//! # Ok(())
//! # }
//! ```
//!
//! If the service cannot be reached, the last answer keeps serving until
//! its `valid_until`; after that [`Client::entitlements_or`] answers the
//! caller's default.

mod answer;
mod client;
mod follow;

pub use answer::Entitlements;
pub use client::{Client, Error};
