//! The crate's error type. It knows nothing of HTTP; callers map it.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Everything that can go wrong in the domain and its storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached or is too busy right now; retrying
    /// later may succeed and nothing was half-applied.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Refetch mode could not read the event's subscription from its source
    /// (Stripe) now; retrying later may succeed and nothing was recorded.
    #[error("subscription source unavailable: {0}")]
    SourceUnavailable(String),
    /// A query failed for a reason retrying will not fix.
    #[error("database error")]
    Database(#[source] DieselError),
    /// The database URL names no supported backend.
    #[error("unsupported database url {0:?}: use postgres://... or sqlite://path")]
    UnsupportedUrl(String),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The plan catalog is inconsistent; the message names the key.
    #[error("{0}")]
    Catalog(String),
    /// A grant request is invalid; the message names the field.
    #[error("{0}")]
    InvalidGrant(String),
    /// No grant of the organization has this id.
    #[error("organization has no grant {0:?}")]
    UnknownGrant(String),
    /// The grant was revoked already.
    #[error("grant {0:?} is already revoked")]
    GrantRevoked(String),
    /// A change feed cursor that is malformed, names no change, or is
    /// older than the feed keeps.
    #[error("{0}")]
    BadCursor(String),
    /// The Stripe customer belongs to another organization.
    #[error("customer {customer} belongs to organization {owner}")]
    CustomerTaken {
        /// The customer.
        customer: String,
        /// The organization it belongs to.
        owner: String,
    },
    /// A stored value could not be read back (for example corrupt JSON).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether the failure is transient, so the caller should answer
    /// "try again" (HTTP 503) rather than report a fault.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        let transient = match &error {
            DieselError::DatabaseError(kind, info) => {
                matches!(
                    kind,
                    DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand
                        | DatabaseErrorKind::SerializationFailure
                ) || is_transient_message(info.message())
            }
            DieselError::BrokenTransactionManager => true,
            _ => false,
        };
        if transient {
            Error::Unavailable(error.to_string())
        } else {
            Error::Database(error)
        }
    }
}

/// Lock contention and lost connections that drivers report as plain text.
fn is_transient_message(message: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "database is locked",
        "database is busy",
        "deadlock detected",
        // PostgreSQL's statement_timeout and lock_timeout.
        "canceling statement due to",
        "connection closed",
        "terminating connection",
        "the database system is",
    ];
    let message = message.to_ascii_lowercase();
    MARKERS.iter().any(|marker| message.contains(marker))
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Error::Unavailable(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Corrupt(error.to_string())
    }
}
