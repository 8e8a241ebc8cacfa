//! The billing service: HTTP API, Stripe client, webhook verification,
//! configuration and command line around the `entitlements` domain.

pub mod admin;
pub mod auth;
mod background;
pub mod cache;
mod checkout;
pub mod cli;
mod dispute;
pub mod error;
pub mod http;
pub mod import;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod org_id;
pub mod progress;
pub mod rate_limit;
pub mod reconcile;
pub mod refetch;
pub mod routes;
pub mod settings;
pub mod signature;
pub mod startup;
pub mod stripe_api;
pub mod telemetry;
pub mod throttle;
pub mod trigger;
mod wire;
