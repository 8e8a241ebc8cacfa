//! Each organization's stored answer (its entitlements at its current
//! version) and the history of its changes.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::catalog::Features;
use crate::compute::{Computed, Entitlement, Source};
use crate::db::schema::{entitlement_changes as changes, entitlements as ents};
use crate::db::{Conn, Prepared, insert_all, run};
use crate::store::{Cause, organizations};

/// An `entitlements` row.
#[derive(Debug, Clone, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = ents, treat_none_as_null = true)]
pub(crate) struct EntitlementRow {
    pub org_id: String,
    pub plan: String,
    pub status: String,
    pub features: String,
    pub subscription_id: Option<String>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub grace_until: Option<i64>,
    pub valid_until: Option<i64>,
    pub version: i64,
    pub updated_at: i64,
    pub rules: Option<String>,
    pub recheck_at: Option<i64>,
    pub sources: String,
}

impl EntitlementRow {
    pub(crate) fn new(
        org_id: &str,
        computed: &Computed,
        version: i64,
        now: i64,
        rules: &str,
    ) -> Result<Self, Error> {
        let e = &computed.entitlement;
        Ok(Self {
            org_id: org_id.to_owned(),
            plan: e.plan.clone(),
            status: e.status.clone(),
            features: serde_json::to_string(&e.features)?,
            subscription_id: e.subscription_id.clone(),
            current_period_end: e.current_period_end,
            cancel_at_period_end: e.cancel_at_period_end,
            grace_until: e.grace_until,
            valid_until: e.valid_until,
            version,
            updated_at: now,
            rules: Some(rules.to_owned()),
            recheck_at: computed.recheck_at,
            sources: serde_json::to_string(&e.sources)?,
        })
    }

    /// Whether the stored answer must be computed again before it is
    /// served: it was computed under other rules (the catalog or the
    /// policy changed), or time alone has changed it since (a grace period
    /// or a canceled subscription's last period ended and no event said so).
    pub(crate) fn due(&self, now: i64, rules: &str) -> bool {
        self.rules.as_deref() != Some(rules) || self.recheck_at.is_some_and(|at| at <= now)
    }

    pub(crate) fn entitlement(&self) -> Result<Entitlement, Error> {
        let features: Features = serde_json::from_str(&self.features)?;
        let sources: Vec<Source> = serde_json::from_str(&self.sources)?;
        Ok(Entitlement {
            plan: self.plan.clone(),
            status: self.status.clone(),
            features,
            subscription_id: self.subscription_id.clone(),
            current_period_end: self.current_period_end,
            cancel_at_period_end: self.cancel_at_period_end,
            grace_until: self.grace_until,
            valid_until: self.valid_until,
            sources,
        })
    }
}

/// The organization's materialized entitlements, if any event set them.
pub(crate) async fn get(
    conn: &mut Conn<'_>,
    org_id: &str,
) -> Result<Option<EntitlementRow>, Error> {
    let query = ents::table.find(org_id).select(ents::all_columns);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// The stored answers of these organizations (those that have one).
pub(crate) async fn of_orgs(
    conn: &mut Conn<'_>,
    org_ids: &[&str],
) -> Result<Vec<EntitlementRow>, Error> {
    let query = ents::table
        .filter(ents::org_id.eq_any(org_ids))
        .select(ents::all_columns);
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Stores each row (of distinct organizations) whole: one statement on
/// PostgreSQL.
pub(crate) async fn save_many(conn: &mut Conn<'_>, rows: &[EntitlementRow]) -> Result<(), Error> {
    use diesel::upsert::excluded;
    let Conn::Postgres(c) = conn else {
        for row in rows {
            let upsert = diesel::insert_into(ents::table)
                .values(row)
                .on_conflict(ents::org_id)
                .do_update()
                .set(row)
                .cached();
            run!(conn, |c| upsert.execute(c).await)?;
        }
        return Ok(());
    };
    if rows.is_empty() {
        return Ok(());
    }
    let upsert = diesel::insert_into(ents::table)
        .values(rows)
        .on_conflict(ents::org_id)
        .do_update()
        .set((
            ents::plan.eq(excluded(ents::plan)),
            ents::status.eq(excluded(ents::status)),
            ents::features.eq(excluded(ents::features)),
            ents::subscription_id.eq(excluded(ents::subscription_id)),
            ents::current_period_end.eq(excluded(ents::current_period_end)),
            ents::cancel_at_period_end.eq(excluded(ents::cancel_at_period_end)),
            ents::grace_until.eq(excluded(ents::grace_until)),
            ents::valid_until.eq(excluded(ents::valid_until)),
            ents::version.eq(excluded(ents::version)),
            ents::updated_at.eq(excluded(ents::updated_at)),
            ents::rules.eq(excluded(ents::rules)),
            ents::recheck_at.eq(excluded(ents::recheck_at)),
            ents::sources.eq(excluded(ents::sources)),
        ))
        .cached();
    upsert.execute(&mut **c).await?;
    Ok(())
}

/// Records that the organization's unchanged answer was computed under
/// `rules` and holds until `recheck_at`.
pub(crate) async fn settle(
    conn: &mut Conn<'_>,
    org_id: &str,
    rules: &str,
    recheck_at: Option<i64>,
) -> Result<(), Error> {
    let query = diesel::update(ents::table.find(org_id))
        .set((ents::rules.eq(rules), ents::recheck_at.eq(recheck_at)))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Leaves the organization's answer to be computed by a process whose
/// rules are in force: it is marked due at `now` (the sweep recomputes it
/// within a second), stored as `default` at version 0 if there was none;
/// returns its version.
pub(crate) async fn defer(
    conn: &mut Conn<'_>,
    default: &EntitlementRow,
    now: i64,
) -> Result<i64, Error> {
    let query = diesel::insert_into(ents::table)
        .values(default)
        .on_conflict(ents::org_id)
        .do_update()
        .set(ents::recheck_at.eq(now))
        .returning(ents::version)
        .cached();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}

/// Up to `limit` organizations whose stored answer was computed under
/// other rules than `rules`.
pub(crate) async fn computed_under_other_rules(
    conn: &mut Conn<'_>,
    rules: &str,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let query = ents::table
        .filter(ents::rules.is_null().or(ents::rules.ne(rules)))
        .select(ents::org_id)
        .order(ents::org_id)
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// Up to `limit` organizations whose stored answer time alone has changed
/// by `now` (see [`EntitlementRow::due`]), the longest due first.
pub(crate) async fn due_by(
    conn: &mut Conn<'_>,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let query = ents::table
        .filter(ents::recheck_at.le(now))
        .select(ents::org_id)
        .order(ents::recheck_at)
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}

/// The PostgreSQL channel every new version is announced on, as
/// `<version> <org_id>`.
pub(crate) const CHANGES_CHANNEL: &str = "billing_entitlements";

/// Announces each organization's new version to other replicas: on
/// PostgreSQL one `NOTIFY` each, delivered when the transaction commits,
/// sent by one statement; SQLite has no such thing (its watchers read the
/// history instead).
pub(crate) async fn announce(conn: &mut Conn<'_>, versions: &[(&str, i64)]) -> Result<(), Error> {
    if let Conn::Postgres(c) = conn
        && !versions.is_empty()
    {
        let payloads: Vec<String> = versions
            .iter()
            .map(|(org_id, version)| format!("{version} {org_id}"))
            .collect();
        diesel::sql_query("SELECT pg_notify($1, payload) FROM unnest($2) AS payload")
            .bind::<diesel::sql_types::Text, _>(CHANGES_CHANNEL)
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(payloads)
            .cached()
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// A history row: an organization's answer at a new version, and what
/// caused it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = changes, treat_none_as_null = true)]
pub(crate) struct NewChange {
    org_id: String,
    version: i64,
    event_id: Option<String>,
    grant_id: Option<String>,
    plan: String,
    status: String,
    features: String,
    changed_at: i64,
    position: i64,
    answer: Option<String>,
}

impl NewChange {
    /// The version it records.
    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    /// The history row of `row`, caused by `cause`, at `position`.
    pub(crate) fn new(
        row: &EntitlementRow,
        cause: Cause<'_>,
        position: i64,
    ) -> Result<Self, Error> {
        let (event_id, grant_id) = cause.ids();
        Ok(Self {
            org_id: row.org_id.clone(),
            version: row.version,
            event_id: event_id.map(str::to_owned),
            grant_id: grant_id.map(str::to_owned),
            plan: row.plan.clone(),
            status: row.status.clone(),
            features: row.features.clone(),
            changed_at: row.updated_at,
            position,
            answer: Some(serde_json::to_string(&row.entitlement()?)?),
        })
    }
}

/// Stores the row and a history entry naming what caused it, at
/// the organization's next history position. The caller holds the
/// organization's lock.
pub(crate) async fn save_change(
    conn: &mut Conn<'_>,
    row: &EntitlementRow,
    cause: Cause<'_>,
) -> Result<(), Error> {
    save_many(conn, std::slice::from_ref(row)).await?;
    let position = organizations::next_position(conn, &row.org_id, row.updated_at).await?;
    record_changes(conn, &[NewChange::new(row, cause, position)?]).await
}

/// Stores history rows: one statement on PostgreSQL.
pub(crate) async fn record_changes(conn: &mut Conn<'_>, rows: &[NewChange]) -> Result<(), Error> {
    insert_all!(conn, changes::table, rows);
    Ok(())
}

/// The newest history position of any change: where following starts.
pub(crate) async fn last_change(conn: &mut Conn<'_>) -> Result<i64, Error> {
    let query = changes::table.select(diesel::dsl::max(changes::id));
    Ok(run!(conn, |c| query.first::<Option<i64>>(c).await)?.unwrap_or(0))
}

/// Up to `limit` changes after `after`, oldest first: (id, org, version).
/// Only SQLite reads them this way: its one writer commits ids in order.
pub(crate) async fn changes_after(
    conn: &mut Conn<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String, i64)>, Error> {
    let query = changes::table
        .filter(changes::id.gt(after))
        .order(changes::id)
        .select((changes::id, changes::org_id, changes::version))
        .limit(limit);
    Ok(run!(conn, |c| query.load(c).await)?)
}
