//! What a configured token may do.

use serde::Deserialize;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Scope {
    /// Create Checkout and portal sessions.
    #[serde(rename = "checkout")]
    Checkout,
    /// Read entitlements.
    #[serde(rename = "entitlements:read")]
    EntitlementsRead,
    /// Operate the service (history, replays).
    #[serde(rename = "admin")]
    Admin,
    /// Look at everything the admin console shows, change nothing.
    #[serde(rename = "admin:read")]
    AdminRead,
}

impl Scope {
    /// Its name in the configuration.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scope::Checkout => "checkout",
            Scope::EntitlementsRead => "entitlements:read",
            Scope::Admin => "admin",
            Scope::AdminRead => "admin:read",
        }
    }
}
