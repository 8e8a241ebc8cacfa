//! Following the versions other processes write, so that a cache of
//! answers can drop the ones they replaced: PostgreSQL's `LISTEN`, or on
//! SQLite the history of changes read every little while.

use std::pin::pin;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;

use crate::Error;
use crate::db::{Backend, Database};
use crate::store::answers::{self, CHANGES_CHANNEL};

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Following from now on: a change missed before this may exist.
    Following,
    /// Not following any more (and why): until the next `Following`,
    /// changes go unseen.
    Lost(String),
    /// An organization reached a new version.
    Changed {
        /// The organization.
        org_id: String,
        /// Its version.
        version: i64,
    },
}

/// How often the watcher notifies itself to prove notifications arrive.
const BEAT_EVERY: Duration = Duration::from_millis(200);
/// How long without its own heartbeat before the watcher counts itself
/// lost: within the second in which changes are promised to be seen.
const LOST_AFTER: Duration = Duration::from_millis(800);
/// How a heartbeat's payload starts; a change's starts with its version.
const BEAT: &str = "beat ";
/// How long a lost watcher waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most changes read per SQLite poll.
const BATCH: i64 = 1_000;

impl Database {
    /// Reports every change committed to this database, by any process,
    /// to `on`; never returns (abort the task to stop it). SQLite is read
    /// every `poll`.
    pub async fn watch(&self, poll: Duration, mut on: impl FnMut(Signal) + Send) {
        loop {
            let lost = match self.backend() {
                Backend::Postgres => self.listen(&mut on).await,
                Backend::Sqlite => self.poll(poll, &mut on).await,
            };
            on(Signal::Lost(lost.to_string()));
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Follows the channel on a connection of its own until it fails or
    /// stops hearing its own heartbeat: a second connection notifies the
    /// channel every [`BEAT_EVERY`], so a half-open listening connection,
    /// or a pooler that does not pass notifications on, is noticed within
    /// [`LOST_AFTER`] rather than by a query that still works.
    async fn listen(&self, on: &mut (impl FnMut(Signal) + Send)) -> Error {
        let connect = async || {
            AsyncPgConnection::establish(self.url())
                .await
                .map_err(|error| Error::Unavailable(error.to_string()))
        };
        let connected = async {
            let mut listener = connect().await?;
            let beater = connect().await?;
            diesel::sql_query(format!("LISTEN {CHANGES_CHANNEL}"))
                .execute(&mut listener)
                .await?;
            Ok::<_, Error>((listener, beater))
        };
        let (mut listener, mut beater) = match tokio::time::timeout(LOST_AFTER * 4, connected).await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => return error,
            Err(_) => return Error::Unavailable("connecting to listen took too long".into()),
        };
        let beat = format!("{BEAT}{}", uuid::Uuid::new_v4().simple());
        let mut stream = pin!(listener.notifications_stream());
        let mut ticks = tokio::time::interval(BEAT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let mut heard = None;
        loop {
            tokio::select! {
                note = stream.next() => match note {
                    Some(Ok(note)) if note.payload == beat => {
                        if heard.is_none() {
                            on(Signal::Following);
                        }
                        heard = Some(Instant::now());
                    }
                    Some(Ok(note)) => {
                        if let Some(changed) = parse(&note.payload) {
                            on(changed);
                        }
                    }
                    Some(Err(error)) => return error.into(),
                    None => return Error::Unavailable("the listening connection closed".into()),
                },
                _ = ticks.tick() => {
                    if heard.unwrap_or(started).elapsed() > LOST_AFTER {
                        return Error::Unavailable(format!(
                            "no notification came back within {} ms",
                            LOST_AFTER.as_millis()
                        ));
                    }
                    let send = diesel::sql_query("SELECT pg_notify($1, $2)")
                        .bind::<Text, _>(CHANGES_CHANNEL)
                        .bind::<Text, _>(&beat)
                        .execute(&mut beater);
                    match tokio::time::timeout(LOST_AFTER, send).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return error.into(),
                        Err(_) => return Error::Unavailable("the heartbeat hangs".into()),
                    }
                }
            }
        }
    }

    /// Reads the history's new changes every `poll` until a read fails.
    async fn poll(&self, poll: Duration, on: &mut (impl FnMut(Signal) + Send)) -> Error {
        let mut last = match self
            .read(async |conn| answers::last_change(conn).await)
            .await
        {
            Ok(last) => last,
            Err(error) => return error,
        };
        on(Signal::Following);
        let mut behind = false;
        loop {
            // A full batch means more are waiting: read on at once.
            if !behind {
                tokio::time::sleep(poll).await;
            }
            let read = self.read(async |conn| answers::changes_after(conn, last, BATCH).await);
            match read.await {
                Ok(rows) => {
                    behind = i64::try_from(rows.len()) == Ok(BATCH);
                    for (id, org_id, version) in rows {
                        last = id;
                        on(Signal::Changed { org_id, version });
                    }
                }
                Err(error) => return error,
            }
        }
    }
}

/// `<version> <org_id>`.
fn parse(payload: &str) -> Option<Signal> {
    let (version, org_id) = payload.split_once(' ')?;
    Some(Signal::Changed {
        org_id: org_id.to_owned(),
        version: version.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_version_then_the_organization() {
        assert_eq!(
            parse("7 acme corp"),
            Some(Signal::Changed {
                org_id: "acme corp".into(),
                version: 7
            })
        );
        assert_eq!(parse("seven acme"), None);
        assert_eq!(parse("7"), None);
    }
}
