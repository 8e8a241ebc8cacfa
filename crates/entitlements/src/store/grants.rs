//! Grants given by hand, kept after revocation for audit.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::catalog::Features;
use crate::compute::GrantState;
use crate::db::schema::grants;
use crate::db::{Conn, Prepared, run};
use crate::grants::Grant;

/// A `grants` row, in the order of its columns.
type Loaded = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    String,
    Option<i64>,
    Option<String>,
    bool,
);

fn read(row: Loaded) -> Result<Grant, Error> {
    let (id, org_id, plan, features, quantity, expires_at, reason, created_at, created_by) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
    );
    let (revoked_at, revoked_by) = (row.9, row.10);
    let features: Features = match features {
        Some(json) => serde_json::from_str(&json)?,
        None => Features::new(),
    };
    Ok(Grant {
        id,
        org_id,
        plan,
        features,
        quantity,
        expires_at,
        reason,
        created_at,
        created_by,
        revoked_at,
        revoked_by,
    })
}

/// Stores a new grant.
pub(crate) async fn insert(conn: &mut Conn<'_>, grant: &Grant) -> Result<(), Error> {
    let features = match grant.features.is_empty() {
        true => None,
        false => Some(serde_json::to_string(&grant.features)?),
    };
    let query = diesel::insert_into(grants::table)
        .values((
            grants::id.eq(&grant.id),
            grants::org_id.eq(&grant.org_id),
            grants::plan.eq(&grant.plan),
            grants::features.eq(features),
            grants::quantity.eq(grant.quantity),
            grants::expires_at.eq(grant.expires_at),
            grants::reason.eq(&grant.reason),
            grants::created_at.eq(grant.created_at),
            grants::created_by.eq(&grant.created_by),
        ))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Every grant of an organization, newest first.
pub(crate) async fn of_org(conn: &mut Conn<'_>, org_id: &str) -> Result<Vec<Grant>, Error> {
    let query = grants::table
        .filter(grants::org_id.eq(org_id))
        .order((grants::created_at.desc(), grants::id.desc()))
        .select(grants::all_columns);
    let rows: Vec<Loaded> = run!(conn, |c| query.load(c).await)?;
    rows.into_iter().map(read).collect()
}

/// The organization's grant with this id.
pub(crate) async fn get(
    conn: &mut Conn<'_>,
    org_id: &str,
    id: &str,
) -> Result<Option<Grant>, Error> {
    let query = grants::table
        .filter(grants::org_id.eq(org_id))
        .filter(grants::id.eq(id))
        .select(grants::all_columns);
    let row: Option<Loaded> = run!(conn, |c| query.first(c).await.optional())?;
    row.map(read).transpose()
}

/// Marks a grant revoked.
pub(crate) async fn revoke(conn: &mut Conn<'_>, id: &str, by: &str, now: i64) -> Result<(), Error> {
    let query = diesel::update(grants::table.find(id))
        .set((grants::revoked_at.eq(now), grants::revoked_by.eq(by)))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// The organization's grants that are not revoked, as computation reads
/// them (expired ones too: computation decides by the time), and those
/// expired by `now` that the history does not say so of yet, with when.
pub(crate) async fn unrevoked(
    conn: &mut Conn<'_>,
    org_id: &str,
    now: i64,
) -> Result<(Vec<GrantState>, Vec<(String, i64)>), Error> {
    let mut states = Vec::new();
    let mut unnoted = Vec::new();
    for Unrevoked { state, noted, .. } in unrevoked_of(conn, &[org_id]).await? {
        if let Some(at) = expired_unnoted(&state, noted, now) {
            unnoted.push((state.id.clone(), at));
        }
        states.push(state);
    }
    Ok((states, unnoted))
}

/// A grant not revoked, of one organization.
pub(crate) struct Unrevoked {
    pub org_id: String,
    pub state: GrantState,
    /// The history says it expired.
    pub noted: bool,
}

/// When the grant expired, if it did by `now` and the history does not
/// say so yet.
pub(crate) fn expired_unnoted(grant: &GrantState, noted: bool, now: i64) -> Option<i64> {
    grant.expires_at.filter(|at| *at <= now && !noted)
}

/// The grants of these organizations that are not revoked, in id order.
pub(crate) async fn unrevoked_of(
    conn: &mut Conn<'_>,
    org_ids: &[&str],
) -> Result<Vec<Unrevoked>, Error> {
    let query = grants::table
        .filter(grants::org_id.eq_any(org_ids))
        .filter(grants::revoked_at.is_null())
        .order(grants::id)
        .select(grants::all_columns);
    let rows: Vec<Loaded> = run!(conn, |c| query.load(c).await)?;
    rows.into_iter()
        .map(|row| {
            let noted = row.11;
            let grant = read(row)?;
            Ok(Unrevoked {
                org_id: grant.org_id,
                noted,
                state: GrantState {
                    id: grant.id,
                    plan: grant.plan,
                    features: grant.features,
                    quantity: grant.quantity,
                    expires_at: grant.expires_at,
                },
            })
        })
        .collect()
}

/// Records that the history says these grants expired.
pub(crate) async fn note_expired(conn: &mut Conn<'_>, ids: &[&str]) -> Result<(), Error> {
    let query = diesel::update(grants::table.filter(grants::id.eq_any(ids)))
        .set(grants::expiry_noted.eq(true))
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}
