//! The bookkeeping of outbound notifications: which version of which
//! organization each endpoint must be sent next. Endpoints take in the
//! change feed (so no change that commits late is missed); one
//! organization's versions go out one after another, each only once the
//! one before was sent or given up; organizations do not wait for each
//! other. A sender holds an organization for a while (a lease), so that
//! several replicas do not send the same message in the normal case.

use crate::engine::Engine;
use crate::feed::FeedChange;
use crate::store::{Cause, feed, installation, notes, notify};
use crate::{Error, clock};

/// A version due for an endpoint, held by the caller until it reports.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message's id: the same on every attempt.
    pub message_id: String,
    /// The change to send.
    pub change: FeedChange,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Since when attempts fail (unix seconds).
    pub failing_since: Option<i64>,
    /// Until when (unix ms) the sender holds it: its report counts only
    /// while nobody else took it since (0 for a message sent by hand).
    pub held_until_ms: i64,
}

/// What became of an attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The endpoint answered 2xx: the next version goes.
    Sent,
    /// Tried again at `at_ms` (unix ms).
    Retry {
        /// When.
        at_ms: i64,
        /// Why the attempt failed.
        error: String,
    },
    /// Given up: recorded as failed, and the next version goes.
    GiveUp {
        /// Why the last attempt failed.
        error: String,
    },
}

/// The most changes one take-in reads.
pub const TAKE_IN_PAGE: usize = 1000;

impl Engine {
    /// Starts the endpoint at the feed's end if it is new to the database,
    /// so that it is sent every change made from now on (the service does
    /// this before it serves, not when its sender first runs).
    pub async fn notify_start(&self, endpoint: &str) -> Result<(), Error> {
        self.write(async |conn| notify::endpoint_position(conn, endpoint).await)
            .await
            .map(drop)
    }

    /// Takes in the changes made since the endpoint last looked (up to
    /// [`TAKE_IN_PAGE`]): each organization changed is due its new versions.
    /// Returns how many changes were taken in.
    pub async fn notify_take_in(&self, endpoint: &str) -> Result<usize, Error> {
        self.sequence_changes().await?;
        let (newest, taken) = self
            .database()
            .read(async |conn| {
                Ok((
                    feed::newest(conn).await?,
                    notify::taken_in(conn, endpoint).await?,
                ))
            })
            .await?;
        if taken.is_some_and(|taken| taken >= newest) {
            return Ok(0);
        }
        self.write(async |conn| {
            let from = notify::endpoint_position(conn, endpoint).await?;
            let rows = feed::after(conn, from, i64::MIN, TAKE_IN_PAGE as i64).await?;
            for row in &rows {
                notify::want(conn, endpoint, &row.org_id, row.version).await?;
            }
            if let Some(position) = rows.last().and_then(|row| row.feed_position) {
                notify::advance(conn, endpoint, position).await?;
            }
            Ok(rows.len())
        })
        .await
    }

    /// Up to `limit` organizations' next versions due for the endpoint,
    /// each held for the caller for `lease_ms`.
    pub async fn notify_due(
        &self,
        endpoint: &str,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<Outgoing>, Error> {
        let now_ms = clock::now_ms();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let due = self
            .database()
            .read(async |conn| notify::due(conn, endpoint, now_ms, limit).await)
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let until_ms = now_ms + lease_ms;
        // One transaction holds them all.
        let (installation, held) = self
            .write(async |conn| {
                let mut held = Vec::with_capacity(due.len());
                for pending in &due {
                    let (org_id, version) = (pending.org_id.as_str(), pending.sent_version + 1);
                    if !notify::lease(conn, endpoint, pending, now_ms, until_ms).await? {
                        continue;
                    }
                    match feed::at_version(conn, org_id, version).await? {
                        Some(row) => held.push((pending, row)),
                        // Never stored (nothing to say): on to the next.
                        None => {
                            let held = notify::Held {
                                endpoint,
                                org_id,
                                version,
                                until_ms,
                            };
                            notify::sent(conn, &held).await?;
                        }
                    }
                }
                Ok((installation::id(conn).await?, held))
            })
            .await?;
        let mut outgoing = Vec::with_capacity(held.len());
        for (pending, row) in held {
            let change = FeedChange::from_row(row)?;
            outgoing.push(Outgoing {
                message_id: message_id(&installation, change.position),
                change,
                attempts: u32::try_from(pending.attempts).unwrap_or_default(),
                failing_since: pending.failing_since,
                held_until_ms: until_ms,
            });
        }
        Ok(outgoing)
    }

    /// Records what became of a round of attempts, in one transaction: a
    /// version sent or given up lets the organization's next one go (a
    /// version given up is noted in its history); a failed one is tried
    /// again later.
    pub async fn notify_report(
        &self,
        endpoint: &str,
        reports: &[(Outgoing, Outcome)],
    ) -> Result<(), Error> {
        if reports.is_empty() {
            return Ok(());
        }
        let now = clock::now();
        self.write(async |conn| {
            for (outgoing, outcome) in reports {
                let view = &outgoing.change.entitlements;
                let (org_id, version) = (view.org_id.as_str(), view.version);
                let held = notify::Held {
                    endpoint,
                    org_id,
                    version,
                    until_ms: outgoing.held_until_ms,
                };
                match outcome {
                    Outcome::Sent => {
                        notify::sent(conn, &held).await?;
                    }
                    Outcome::Retry { at_ms, error } => {
                        let failure = notify::Failure {
                            attempts: i32::try_from(outgoing.attempts + 1).unwrap_or(i32::MAX),
                            failing_since: outgoing.failing_since.unwrap_or(now),
                            error,
                            retry_at_ms: *at_ms,
                        };
                        notify::failed(conn, &held, &failure).await?;
                    }
                    Outcome::GiveUp { error } => {
                        // Another sender took it since: its report counts.
                        if !notify::sent(conn, &held).await? {
                            continue;
                        }
                        let detail = format!(
                            "version {version} ({}) not delivered to {endpoint} after {} attempts: {error}",
                            outgoing.message_id,
                            outgoing.attempts + 1
                        );
                        notes::add(conn, org_id, "notify_failed", Cause::Time, &detail, now)
                            .await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// The message `message_id` names, to send again by hand: one of this
    /// database's (`msg_<installation>_<feed position>`, or `msg_<feed
    /// position>` as ids were before they named the database).
    pub async fn notify_message(&self, message_id: &str) -> Result<Option<Outgoing>, Error> {
        let Some(named) = message_id.strip_prefix("msg_") else {
            return Ok(None);
        };
        let (database, position) = match named.split_once('_') {
            Some((database, position)) => (Some(database), position),
            None => (None, named),
        };
        let Ok(position) = position.parse::<i64>() else {
            return Ok(None);
        };
        let row = self
            .database()
            .read(async |conn| {
                let ours = installation::id(conn).await?;
                if database.is_some_and(|database| database != ours) {
                    return Ok(None);
                }
                feed::at_position(conn, position).await
            })
            .await?;
        row.map(|row| {
            Ok(Outgoing {
                message_id: message_id.to_owned(),
                change: FeedChange::from_row(row)?,
                attempts: 0,
                failing_since: None,
                held_until_ms: 0,
            })
        })
        .transpose()
    }

    /// Organizations with a version waiting for the endpoint.
    pub async fn notify_backlog(&self, endpoint: &str) -> Result<i64, Error> {
        self.database()
            .read(async |conn| notify::backlog(conn, endpoint).await)
            .await
    }
}

/// The id of the message carrying the feed's change at `position`: unique
/// across databases, since it names this one's installation.
fn message_id(installation: &str, position: i64) -> String {
    format!("msg_{installation}_{position}")
}
