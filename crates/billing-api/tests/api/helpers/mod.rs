//! The test harness: the real app on a random port over a fresh database.

mod app;
mod binary;
mod db;
mod events;
mod proxy;
mod stripe;

pub use app::*;
pub use binary::*;
pub use db::*;
pub use events::*;
pub use proxy::*;
pub use stripe::*;
