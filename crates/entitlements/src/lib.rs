//! The domain of the billing service: the plan catalog, subscription state,
//! the event state machine, entitlement computation and their persistence
//! on PostgreSQL or SQLite.

pub mod admin;
pub mod catalog;
mod clock;
pub mod compute;
mod counters;
pub mod db;
mod engine;
mod error;
pub mod event;
pub mod feed;
pub mod grants;
pub mod history;
pub mod kinds;
pub mod notify;
pub mod org;
mod receipt;
mod snapshot;
mod source;
mod store;
mod view;
mod watch;

pub use catalog::{Catalog, FeatureValue, Features, PlanConfig, PlanMode, Terms};
pub use compute::{Policy, Source, SourceKind};
pub use counters::Counters;
pub use db::{Backend, Database, DatabaseOptions};
pub use engine::{ChangeHook, Engine, Linked, Replay, Retention};
pub use error::Error;
pub use event::Event;
pub use kinds::{EventKind, SubscriptionStatus};
pub use receipt::{Change, Delivery, Outcome, Receipt};
pub use snapshot::{SnapshotItem, SubscriptionSnapshot};
pub use source::{SourceError, SubscriptionRead, SubscriptionSource};
pub use view::EntitlementView;
pub use watch::Signal;
