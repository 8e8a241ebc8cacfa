//! The Stripe room: the API client and its rate limit, webhook signature
//! verification, refetching an object's current state, `reconcile` and
//! `import` (paging through Stripe's lists, with their progress), and the
//! signed test events behind `trigger`. It may import the shared modules
//! at the crate's root and the domain, never the rooms that use it
//! (`http`, `background`, `cli`).

pub mod api;
pub mod import;
mod pages;
pub mod progress;
mod rate_limit;
pub mod reconcile;
pub mod refetch;
pub mod signature;
pub mod trigger;
