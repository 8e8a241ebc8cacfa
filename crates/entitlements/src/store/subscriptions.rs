//! Subscriptions and their items, as last applied.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::compute::{Item, SubscriptionState};
use crate::db::schema::{subscription_items as items, subscriptions as subs};
use crate::db::{Conn, Prepared, run};
use crate::kinds::SubscriptionStatus;
use crate::snapshot::SnapshotItem;

/// A `subscriptions` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, AsChangeset)]
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

/// Writes every column of the row.
pub(crate) async fn save(conn: &mut Conn<'_>, row: &SubscriptionRow) -> Result<(), Error> {
    let query = diesel::update(subs::table.find(&row.id)).set(row).cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Replaces the subscription's items with `new_items`.
pub(crate) async fn replace_items(
    conn: &mut Conn<'_>,
    subscription_id: &str,
    new_items: &[SnapshotItem],
) -> Result<(), Error> {
    let delete = diesel::delete(items::table.filter(items::subscription_id.eq(subscription_id)));
    run!(conn, |c| delete.execute(c).await)?;
    // One statement per item: SQLite cannot take diesel's batch insert here,
    // and a subscription has few items.
    for item in new_items {
        let row = NewItem {
            id: &item.id,
            subscription_id,
            price_id: &item.price_id,
            quantity: item.quantity,
        };
        let insert = diesel::insert_into(items::table).values(&row).cached();
        run!(conn, |c| insert.execute(c).await)?;
    }
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
    let rows_query = subs::table
        .filter(subs::org_id.eq(org_id))
        .order(subs::id)
        .select(subs::all_columns);
    let rows: Vec<SubscriptionRow> = run!(conn, |c| rows_query.load(c).await)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let items_query = items::table
        .filter(items::subscription_id.eq_any(&ids))
        .order((items::subscription_id, items::id))
        .select((items::subscription_id, items::price_id, items::quantity));
    let loaded: Vec<(String, String, i64)> = run!(conn, |c| items_query.load(c).await)?;
    let mut by_sub: HashMap<String, Vec<Item>> = HashMap::new();
    for (sub, price_id, quantity) in loaded {
        by_sub
            .entry(sub)
            .or_default()
            .push(Item { price_id, quantity });
    }
    Ok(rows
        .into_iter()
        .map(|row| SubscriptionState {
            items: by_sub.remove(&row.id).unwrap_or_default(),
            id: row.id,
            status: row.status.as_deref().map(SubscriptionStatus::parse),
            current_period_start: row.current_period_start,
            current_period_end: row.current_period_end,
            cancel_at_period_end: row.cancel_at_period_end,
            past_due_since: row.past_due_since,
        })
        .collect())
}
