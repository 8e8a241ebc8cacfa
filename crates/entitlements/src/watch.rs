//! Following the versions other processes write, so that a cache of
//! answers can drop the ones they replaced: PostgreSQL's `LISTEN`, or on
//! SQLite the history of changes read every little while.

use std::pin::pin;
use std::time::Duration;

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

/// How often the watcher checks that a quiet `LISTEN` connection lives.
const PING_EVERY: Duration = Duration::from_secs(10);
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

    /// Follows the channel on a connection of its own until it fails.
    async fn listen(&self, on: &mut (impl FnMut(Signal) + Send)) -> Error {
        let mut conn = match AsyncPgConnection::establish(self.url()).await {
            Ok(conn) => conn,
            Err(error) => return Error::Unavailable(error.to_string()),
        };
        let listen = diesel::sql_query(format!("LISTEN {CHANGES_CHANNEL}"));
        if let Err(error) = listen.execute(&mut conn).await {
            return error.into();
        }
        on(Signal::Following);
        loop {
            let quiet = {
                let mut stream = pin!(conn.notifications_stream());
                match tokio::time::timeout(PING_EVERY, stream.next()).await {
                    Ok(Some(Ok(note))) => {
                        if let Some(changed) = parse(&note.payload) {
                            on(changed);
                        }
                        false
                    }
                    Ok(Some(Err(error))) => return error.into(),
                    Ok(None) => {
                        return Error::Unavailable("the listening connection closed".into());
                    }
                    Err(_) => true,
                }
            };
            if quiet {
                let ping = diesel::sql_query("SELECT 1").execute(&mut conn);
                match tokio::time::timeout(PING_EVERY, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return error.into(),
                    Err(_) => return Error::Unavailable("the listening connection hangs".into()),
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
