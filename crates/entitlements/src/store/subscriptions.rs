//! Subscriptions and their items, as last applied.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::compute::{Item, SubscriptionState};
use crate::db::schema::{subscription_items as items, subscriptions as subs};
use crate::db::{Conn, Prepared, insert_all, run};
use crate::kinds::SubscriptionStatus;
use crate::snapshot::SnapshotItem;

/// A `subscriptions` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = subs, treat_none_as_null = true)]
pub(crate) struct SubscriptionRow {
    pub id: String,
    pub org_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub past_due_since: Option<i64>,
    pub dunning_invoice: Option<String>,
    pub last_paid_at: Option<i64>,
    pub last_event_created: Option<i64>,
    pub state_read_at: Option<i64>,
    pub updated_at: i64,
    pub dunning_invoice_created: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = items)]
struct NewItem<'a> {
    id: &'a str,
    subscription_id: &'a str,
    price_id: &'a str,
    quantity: i64,
}

/// Creates the subscription row if it is new, locks it until the
/// transaction ends, and returns it.
pub(crate) async fn lock(
    conn: &mut Conn<'_>,
    id: &str,
    customer: Option<&str>,
    now: i64,
) -> Result<SubscriptionRow, Error> {
    let query = diesel::insert_into(subs::table)
        .values((
            subs::id.eq(id),
            subs::customer_id.eq(customer),
            subs::cancel_at_period_end.eq(false),
            subs::updated_at.eq(now),
        ))
        .on_conflict(subs::id)
        .do_update()
        .set(subs::updated_at.eq(now))
        .returning(subs::all_columns)
        .cached();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}

/// [`lock`] for each of `wanted` (id, customer), in id order (so that two
/// transactions lock shared rows in the same order): one statement on
/// PostgreSQL. Ids must be distinct.
pub(crate) async fn lock_many(
    conn: &mut Conn<'_>,
    wanted: &[(&str, Option<&str>)],
    now: i64,
) -> Result<Vec<SubscriptionRow>, Error> {
    let mut wanted = wanted.to_vec();
    wanted.sort_unstable();
    let Conn::Postgres(c) = conn else {
        let mut rows = Vec::with_capacity(wanted.len());
        for (id, customer) in wanted {
            rows.push(lock(conn, id, customer, now).await?);
        }
        return Ok(rows);
    };
    let values: Vec<_> = wanted
        .iter()
        .map(|(id, customer)| {
            (
                subs::id.eq(*id),
                subs::customer_id.eq(*customer),
                subs::cancel_at_period_end.eq(false),
                subs::updated_at.eq(now),
            )
        })
        .collect();
    let query = diesel::insert_into(subs::table)
        .values(values)
        .on_conflict(subs::id)
        .do_update()
        .set(subs::updated_at.eq(now))
        .returning(subs::all_columns)
        .cached();
    Ok(query.get_results(&mut **c).await?)
}

/// Writes every column of the row.
pub(crate) async fn save(conn: &mut Conn<'_>, row: &SubscriptionRow) -> Result<(), Error> {
    let query = diesel::update(subs::table.find(&row.id)).set(row).cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// [`save`] for each row (of distinct, existing subscriptions): one
/// statement on PostgreSQL.
pub(crate) async fn save_many(conn: &mut Conn<'_>, rows: &[SubscriptionRow]) -> Result<(), Error> {
    use diesel::upsert::excluded;
    let Conn::Postgres(c) = conn else {
        for row in rows {
            save(conn, row).await?;
        }
        return Ok(());
    };
    if rows.is_empty() {
        return Ok(());
    }
    let query = diesel::insert_into(subs::table)
        .values(rows)
        .on_conflict(subs::id)
        .do_update()
        .set((
            subs::org_id.eq(excluded(subs::org_id)),
            subs::customer_id.eq(excluded(subs::customer_id)),
            subs::status.eq(excluded(subs::status)),
            subs::current_period_start.eq(excluded(subs::current_period_start)),
            subs::current_period_end.eq(excluded(subs::current_period_end)),
            subs::cancel_at_period_end.eq(excluded(subs::cancel_at_period_end)),
            subs::past_due_since.eq(excluded(subs::past_due_since)),
            subs::dunning_invoice.eq(excluded(subs::dunning_invoice)),
            subs::last_paid_at.eq(excluded(subs::last_paid_at)),
            subs::last_event_created.eq(excluded(subs::last_event_created)),
            subs::state_read_at.eq(excluded(subs::state_read_at)),
            subs::updated_at.eq(excluded(subs::updated_at)),
            subs::dunning_invoice_created.eq(excluded(subs::dunning_invoice_created)),
        ))
        .cached();
    query.execute(&mut **c).await?;
    Ok(())
}

/// Replaces the subscription's items with `new_items`.
pub(crate) async fn replace_items(
    conn: &mut Conn<'_>,
    subscription_id: &str,
    new_items: &[SnapshotItem],
) -> Result<(), Error> {
    replace_items_many(conn, &[(subscription_id, new_items)]).await
}

/// Replaces each subscription's items: one statement to delete and one to
/// insert on PostgreSQL.
pub(crate) async fn replace_items_many(
    conn: &mut Conn<'_>,
    replaced: &[(&str, &[SnapshotItem])],
) -> Result<(), Error> {
    if replaced.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = replaced.iter().map(|(id, _)| *id).collect();
    let delete = diesel::delete(items::table.filter(items::subscription_id.eq_any(&ids)));
    run!(conn, |c| delete.execute(c).await)?;
    let rows: Vec<NewItem> = replaced
        .iter()
        .flat_map(|(subscription_id, new_items)| {
            new_items.iter().map(|item| NewItem {
                id: &item.id,
                subscription_id,
                price_id: &item.price_id,
                quantity: item.quantity,
            })
        })
        .collect();
    insert_all!(conn, items::table, &rows);
    Ok(())
}

/// How many subscriptions are stored (of one organization).
pub(crate) async fn count(conn: &mut Conn<'_>, org_id: Option<&str>) -> Result<i64, Error> {
    let all = subs::table.count();
    Ok(match org_id {
        Some(org_id) => {
            let query = all.filter(subs::org_id.eq(org_id));
            run!(conn, |c| query.get_result(c).await)?
        }
        None => run!(conn, |c| all.get_result(c).await)?,
    })
}

/// Links the customer's subscriptions that wait for an organization.
pub(crate) async fn link_customer(
    conn: &mut Conn<'_>,
    customer: &str,
    org_id: &str,
) -> Result<usize, Error> {
    let query = diesel::update(
        subs::table
            .filter(subs::customer_id.eq(customer))
            .filter(subs::org_id.is_null()),
    )
    .set(subs::org_id.eq(org_id))
    .cached();
    Ok(run!(conn, |c| query.execute(c).await)?)
}

/// The state of every subscription of an organization, with its items.
pub(crate) async fn of_org(
    conn: &mut Conn<'_>,
    org_id: &str,
) -> Result<Vec<SubscriptionState>, Error> {
    Ok(of_orgs(conn, &[org_id])
        .await?
        .into_iter()
        .map(|(row, items)| state(&row, &items))
        .collect())
}

/// Every subscription of these organizations, with its items (in id
/// order).
pub(crate) async fn of_orgs(
    conn: &mut Conn<'_>,
    org_ids: &[&str],
) -> Result<Vec<(SubscriptionRow, Vec<SnapshotItem>)>, Error> {
    let rows_query = subs::table
        .filter(subs::org_id.eq_any(org_ids))
        .order(subs::id)
        .select(subs::all_columns);
    let rows: Vec<SubscriptionRow> = run!(conn, |c| rows_query.load(c).await)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let items_query = items::table
        .filter(items::subscription_id.eq_any(&ids))
        .order((items::subscription_id, items::id))
        .select((
            items::subscription_id,
            items::id,
            items::price_id,
            items::quantity,
        ));
    let loaded: Vec<(String, String, String, i64)> = run!(conn, |c| items_query.load(c).await)?;
    let mut by_sub: HashMap<String, Vec<SnapshotItem>> = HashMap::new();
    for (sub, id, price_id, quantity) in loaded {
        by_sub.entry(sub).or_default().push(SnapshotItem {
            id,
            price_id,
            quantity,
        });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let items = by_sub.remove(&row.id).unwrap_or_default();
            (row, items)
        })
        .collect())
}

/// A stored subscription as computation reads it.
pub(crate) fn state(row: &SubscriptionRow, items: &[SnapshotItem]) -> SubscriptionState {
    SubscriptionState {
        items: items
            .iter()
            .map(|item| Item {
                price_id: item.price_id.clone(),
                quantity: item.quantity,
            })
            .collect(),
        id: row.id.clone(),
        status: row.status.as_deref().map(SubscriptionStatus::parse),
        current_period_start: row.current_period_start,
        current_period_end: row.current_period_end,
        cancel_at_period_end: row.cancel_at_period_end,
        past_due_since: row.past_due_since,
    }
}
