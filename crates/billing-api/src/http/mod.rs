//! The HTTP room: what handlers share ([`AppState`]). It depends on the
//! domain, the Stripe client and the settings, never on `startup`, which
//! builds the state and mounts the routes.

mod state;

pub use state::AppState;
