//! One-time purchases, and what refunds and disputes did to payments.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::Error;
use crate::catalog::{Plan, Terms};
use crate::compute::PurchaseState;
use crate::db::schema::{payments as pays, purchases};
use crate::db::{Conn, Prepared, run};

/// A purchase awaits a delayed payment method.
pub(crate) const PENDING: &str = "pending";
/// A purchase is paid.
pub(crate) const PAID: &str = "paid";
/// A purchase's delayed payment failed.
pub(crate) const FAILED: &str = "failed";

/// A `purchases` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = purchases, treat_none_as_null = true)]
pub(crate) struct PurchaseRow {
    pub id: String,
    pub org_id: String,
    pub customer_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub plan: String,
    pub quantity: i64,
    pub status: String,
    pub paid_at: Option<i64>,
    pub last_event_created: i64,
    pub updated_at: i64,
    /// [`Terms`] as JSON.
    pub terms: Option<String>,
}

/// A `payments` row: what refunds and disputes did to one payment.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, AsChangeset)]
#[diesel(table_name = pays, treat_none_as_null = true)]
pub(crate) struct PaymentRow {
    pub payment_intent_id: String,
    pub refunded: bool,
    pub disputed: bool,
    pub dispute_event_created: Option<i64>,
    pub updated_at: i64,
}

/// Locks a payment's row, creating it unmarked, and returns it. Purchases
/// and their refunds and disputes take this lock first, so either may
/// arrive first and neither misses the other.
pub(crate) async fn lock_payment(
    conn: &mut Conn<'_>,
    payment_intent_id: &str,
    now: i64,
) -> Result<PaymentRow, Error> {
    let query = diesel::insert_into(pays::table)
        .values((
            pays::payment_intent_id.eq(payment_intent_id),
            pays::updated_at.eq(now),
        ))
        .on_conflict(pays::payment_intent_id)
        .do_update()
        .set(pays::updated_at.eq(pays::updated_at))
        .returning(pays::all_columns)
        .cached();
    Ok(run!(conn, |c| query.get_result(c).await)?)
}

/// Stores what a refund or dispute did to a payment.
pub(crate) async fn save_payment(conn: &mut Conn<'_>, row: &PaymentRow) -> Result<(), Error> {
    let query = diesel::update(pays::table.find(&row.payment_intent_id))
        .set(row)
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// The purchase with this Checkout Session id.
pub(crate) async fn get(conn: &mut Conn<'_>, id: &str) -> Result<Option<PurchaseRow>, Error> {
    let query = purchases::table.find(id).select(purchases::all_columns);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// The purchase paid (or being paid) by a payment intent.
pub(crate) async fn of_payment(
    conn: &mut Conn<'_>,
    payment_intent_id: &str,
) -> Result<Option<PurchaseRow>, Error> {
    let query = purchases::table
        .filter(purchases::payment_intent_id.eq(payment_intent_id))
        .select(purchases::all_columns);
    Ok(run!(conn, |c| query.first(c).await.optional())?)
}

/// Stores a purchase, new or changed.
pub(crate) async fn save(conn: &mut Conn<'_>, row: &PurchaseRow) -> Result<(), Error> {
    let query = diesel::insert_into(purchases::table)
        .values(row)
        .on_conflict(purchases::id)
        .do_update()
        .set(row)
        .cached();
    run!(conn, |c| query.execute(c).await)?;
    Ok(())
}

/// Every purchase of an organization, with what its payment suffered.
pub(crate) async fn of_org(conn: &mut Conn<'_>, org_id: &str) -> Result<Vec<PurchaseState>, Error> {
    let purchases = of_orgs(conn, &[org_id]).await?;
    Ok(purchases.into_iter().map(|(_, state)| state).collect())
}

/// Every purchase of these organizations (in id order), with its
/// organization and what its payment suffered.
pub(crate) async fn of_orgs(
    conn: &mut Conn<'_>,
    org_ids: &[&str],
) -> Result<Vec<(String, PurchaseState)>, Error> {
    let query = purchases::table
        .left_join(
            pays::table.on(purchases::payment_intent_id.eq(pays::payment_intent_id.nullable())),
        )
        .filter(purchases::org_id.eq_any(org_ids))
        .order(purchases::id)
        .select((
            purchases::org_id,
            purchases::id,
            purchases::plan,
            purchases::quantity,
            purchases::status,
            purchases::paid_at,
            pays::refunded.nullable(),
            pays::disputed.nullable(),
            purchases::terms,
        ));
    type Loaded = (
        String,
        String,
        String,
        i64,
        String,
        Option<i64>,
        Option<bool>,
        Option<bool>,
        Option<String>,
    );
    let rows: Vec<Loaded> = run!(conn, |c| query.load(c).await)?;
    rows.into_iter()
        .map(
            |(org_id, id, plan, quantity, status, paid_at, refunded, disputed, terms)| {
                let state = PurchaseState {
                    terms: terms.as_deref().map(read_terms).transpose()?,
                    id,
                    plan,
                    quantity,
                    paid_at: paid_at.filter(|_| status == PAID),
                    withdrawn: refunded.unwrap_or(false) || disputed.unwrap_or(false),
                };
                Ok((org_id, state))
            },
        )
        .collect()
}

/// Terms as stored.
pub(crate) fn write_terms(terms: &Terms) -> String {
    serde_json::to_string(terms).unwrap_or_default()
}

fn read_terms(text: &str) -> Result<Terms, Error> {
    serde_json::from_str(text)
        .map_err(|error| Error::Corrupt(format!("a purchase's stored terms: {error}")))
}

/// Which purchases of a plan [`set_terms`] gives today's terms.
pub(crate) enum Reterm<'a> {
    /// Those recorded without terms, of any organization.
    Missing,
    /// Every one of this organization's.
    OfOrg(&'a str),
}

/// Records today's terms of `plan` for its purchases that `which` names,
/// one statement per quantity bought; returns how many.
pub(crate) async fn set_terms(
    conn: &mut Conn<'_>,
    plan: &Plan,
    which: Reterm<'_>,
    now: i64,
) -> Result<usize, Error> {
    let of_plan = purchases::table
        .filter(purchases::plan.eq(&plan.name))
        .select(purchases::quantity)
        .distinct();
    let quantities: Vec<i64> = match which {
        Reterm::Missing => {
            let query = of_plan.filter(purchases::terms.is_null());
            run!(conn, |c| query.load(c).await)?
        }
        Reterm::OfOrg(org_id) => {
            let query = of_plan.filter(purchases::org_id.eq(org_id));
            run!(conn, |c| query.load(c).await)?
        }
    };
    let mut recorded = 0;
    for quantity in quantities {
        let terms = write_terms(&plan.terms(quantity));
        let set = (purchases::terms.eq(&terms), purchases::updated_at.eq(now));
        let of_quantity = purchases::plan
            .eq(&plan.name)
            .and(purchases::quantity.eq(quantity));
        recorded += match which {
            Reterm::Missing => {
                let query = diesel::update(purchases::table)
                    .filter(of_quantity.and(purchases::terms.is_null()))
                    .set(set);
                run!(conn, |c| query.execute(c).await)?
            }
            Reterm::OfOrg(org_id) => {
                let query = diesel::update(purchases::table)
                    .filter(of_quantity.and(purchases::org_id.eq(org_id)))
                    .set(set);
                run!(conn, |c| query.execute(c).await)?
            }
        };
    }
    Ok(recorded)
}

/// The organizations with a purchase of `plan`.
pub(crate) async fn orgs_of_plan(conn: &mut Conn<'_>, plan: &str) -> Result<Vec<String>, Error> {
    let query = purchases::table
        .filter(purchases::plan.eq(plan))
        .select(purchases::org_id)
        .distinct()
        .order(purchases::org_id);
    Ok(run!(conn, |c| query.load(c).await)?)
}
