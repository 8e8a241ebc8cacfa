//! The HTTP room: what handlers share ([`AppState`]) and how they are
//! mounted. It depends on the domain, the Stripe client and the settings,
//! never on `startup`, which builds the state and mounts every group.

mod mount;
mod state;

pub(crate) use mount::{mount, serve};
pub use state::AppState;
