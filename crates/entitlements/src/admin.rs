//! What the admin console needs from the store: operators' sessions, the
//! overview's counts, events needing attention, search, an organization's
//! subscriptions and event payloads.

use std::collections::BTreeMap;

use crate::compute::SubscriptionState;
use crate::engine::Engine;
use crate::store::{admin, subscriptions};
use crate::{Error, clock};

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = crate::db::schema::admin_sessions)]
pub struct Session {
    /// SHA-256 of the id the browser holds (hex).
    pub id_digest: String,
    /// The name of the token that signed in.
    pub token_name: String,
    /// Signed in with `admin:read` only.
    pub read_only: bool,
    /// What every changing form must carry.
    pub csrf_token: String,
    /// When it ends (unix seconds).
    pub expires_at: i64,
    /// Which token signed in (a digest of its digest): a session whose
    /// token is replaced ends.
    pub token_fingerprint: String,
}

/// An event as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable)]
pub struct EventSummary {
    /// `evt_...`.
    pub id: String,
    /// Stripe's event type.
    pub event_type: String,
    /// The organization it concerned, if known.
    pub org_id: Option<String>,
    /// What applying it did.
    pub outcome: String,
    /// Why, or what was noticed.
    pub detail: Option<String>,
    /// When it was received (unix seconds).
    pub received_at: i64,
}

/// A notification given up.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable)]
pub struct NotifyFailure {
    /// The organization.
    pub org_id: String,
    /// What the history says.
    pub detail: String,
    /// When (unix seconds).
    pub at: i64,
}

/// The overview's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// Organizations by `(plan, status)`.
    pub plans: Vec<(String, String, i64)>,
    /// Events per day (unix day number) by outcome, the last `days` days.
    pub per_day: BTreeMap<i64, BTreeMap<String, i64>>,
}

impl Engine {
    /// Stores a new session, and forgets every expired one: sessions
    /// nobody signs out of do not pile up.
    pub async fn open_session(&self, session: &Session) -> Result<(), Error> {
        let now = clock::now();
        self.write(async |conn| {
            admin::forget_expired_sessions(conn, now).await?;
            admin::open_session(conn, session).await
        })
        .await
    }

    /// The live session with this digest.
    pub async fn session(&self, id_digest: &str) -> Result<Option<Session>, Error> {
        self.database()
            .read(async |conn| admin::session(conn, id_digest, clock::now()).await)
            .await
    }

    /// Ends the session.
    pub async fn close_session(&self, id_digest: &str) -> Result<(), Error> {
        self.write(async |conn| admin::close_session(conn, id_digest).await)
            .await
    }

    /// Ends every session the token named `token_name` signed in; returns
    /// how many.
    pub async fn close_sessions_of(&self, token_name: &str) -> Result<usize, Error> {
        self.write(async |conn| admin::close_sessions_of(conn, token_name).await)
            .await
    }

    /// Organizations by plan and status, and events per day by outcome
    /// over the last `days` days.
    pub async fn overview(&self, days: i64) -> Result<Overview, Error> {
        let since = (clock::now() / 86_400 - days + 1) * 86_400;
        let (plans, counts) = self
            .database()
            .read(async |conn| {
                Ok((
                    admin::plans(conn).await?,
                    admin::events_per_day(conn, since).await?,
                ))
            })
            .await?;
        let mut per_day: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        for count in counts {
            per_day
                .entry(count.day)
                .or_default()
                .insert(count.outcome, count.events);
        }
        Ok(Overview { plans, per_day })
    }

    /// Events needing attention (unlinked, invalid, or with prices in no
    /// plan), newest first.
    pub async fn attention(&self, limit: usize, offset: usize) -> Result<Vec<EventSummary>, Error> {
        let (limit, offset) = (to_i64(limit), to_i64(offset));
        self.database()
            .read(async |conn| admin::attention(conn, limit, offset).await)
            .await
    }

    /// Notifications given up, newest first.
    pub async fn notify_failures(&self, limit: usize) -> Result<Vec<NotifyFailure>, Error> {
        self.database()
            .read(async |conn| admin::notify_failures(conn, to_i64(limit)).await)
            .await
    }

    /// Organizations whose id starts with `text`, or whose Stripe customer
    /// is `text`: `(org_id, customer)`.
    pub async fn search_orgs(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        self.database()
            .read(async |conn| admin::search(conn, text, to_i64(limit)).await)
            .await
    }

    /// The organization's subscriptions as last applied, with their items.
    pub async fn subscriptions_of(&self, org_id: &str) -> Result<Vec<SubscriptionState>, Error> {
        self.database()
            .read(async |conn| subscriptions::of_org(conn, org_id).await)
            .await
    }

    /// The payloads of these events, by id.
    pub async fn payloads(&self, ids: &[&str]) -> Result<BTreeMap<String, String>, Error> {
        let rows = self
            .database()
            .read(async |conn| admin::payloads(conn, ids).await)
            .await?;
        Ok(rows.into_iter().collect())
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
