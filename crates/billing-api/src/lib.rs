//! The billing service around the `entitlements` domain, in four rooms
//! over shared modules; a room imports the rooms below it, never one
//! beside it (see `docs/architecture.md`):
//!
//! - [`startup`], the composition root: builds the state, mounts the HTTP
//!   groups and starts the background tasks; only `main.rs` names it.
//! - [`http`], [`background`] and [`cli`] side by side: requests, work
//!   done on its own, and subcommands.
//! - [`stripe`] below them: everything that talks to Stripe.
//! - Shared by every room, importing none: [`settings`], `wire` (the
//!   JSON the service answers and sends), [`cache`] (the answers in
//!   memory), [`metrics`] and [`telemetry`].

pub mod background;
pub mod cache;
pub mod cli;
pub mod http;
pub mod metrics;
pub mod settings;
pub mod startup;
pub mod stripe;
pub mod telemetry;
mod wire;
