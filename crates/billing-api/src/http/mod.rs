//! The HTTP room: the JSON API (`routes`), the admin console (`admin`),
//! the OpenAPI document, and what they share: the state handlers see
//! ([`AppState`]), mounting, bearer tokens and their throttle, the
//! crate's error type mapped to HTTP answers (`error`), the `OrgId`
//! extractor, Checkout validation, and the metrics middleware. It may
//! import the Stripe room and the shared modules at the crate's root,
//! never `background`, `cli` or `startup` (which builds the state and
//! mounts every group); the API and the console do not import each other.

pub mod admin;
pub mod auth;
pub(crate) mod checkout;
pub(crate) mod count_request;
pub(crate) mod dispute;
pub mod error;
mod mount;
pub mod openapi;
pub(crate) mod org_call;
pub mod org_id;
pub mod routes;
mod state;
pub mod throttle;

pub(crate) use mount::{mount, serve};
pub use state::AppState;
