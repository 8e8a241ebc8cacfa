//! `billing-api import`: adopts an existing Stripe account. Reads every
//! customer and links those whose metadata names an organization, then
//! applies every subscription as `reconcile` does, and ends with what it
//! could not link. Safe to run again, and while webhooks arrive: a linked
//! customer is left as it is, and subscriptions pass the same stale guards
//! as webhooks.

use std::collections::HashMap;
use std::fmt;

use entitlements::{Engine, Error};

use crate::progress::Progress;
use crate::reconcile::{ReconcileError, Summary, apply_subscriptions, link_by_metadata};
use crate::stripe_api::{CustomerRecord, StripeApi};

/// What an import did, and what it leaves to do by hand.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Customers read from Stripe.
    pub customers: usize,
    /// Customers linked now, by the organization their metadata names.
    pub linked: usize,
    /// Customers already linked to the organization their metadata names.
    pub already_linked: usize,
    /// Customers linked to another organization than their metadata names;
    /// left as they were.
    pub conflicts: Vec<Conflict>,
    /// The subscriptions applied.
    pub subscriptions: Summary,
    /// Customers with subscriptions but no organization.
    pub unlinked: Vec<Unlinked>,
}

/// A customer whose metadata disagrees with its stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `cus_...`.
    pub customer: String,
    /// The organization it is linked to.
    pub linked_to: String,
    /// The organization its metadata names.
    pub metadata_names: String,
}

/// A customer with subscriptions that no organization could be found for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlinked {
    /// `cus_...`.
    pub customer: String,
    /// Its email, when Stripe has one.
    pub email: Option<String>,
    /// Its subscriptions (`sub_...`).
    pub subscriptions: Vec<String>,
    /// What to do about it.
    pub action: String,
}

/// Imports the account `api` reads into `engine`'s database; `customers`
/// and `subscriptions` show how far each pass has come.
pub async fn import(
    engine: &Engine,
    api: &StripeApi,
    customers: &mut Progress,
    subscriptions: &mut Progress,
) -> Result<ImportReport, ReconcileError> {
    let mut report = ImportReport::default();
    let mut directory = HashMap::new();
    let mut page = api.list_customers(None).await?;
    loop {
        let (records, more) = page;
        let next = async {
            match (more, records.last()) {
                (true, Some(last)) => Some(api.list_customers(Some(&last.id)).await),
                _ => None,
            }
        };
        let (next, linked) = tokio::join!(next, link_page(engine, &records, &mut report));
        linked?;
        customers.page(records.len());
        directory.extend(records.into_iter().map(|r| (r.id.clone(), r)));
        match next {
            Some(next) => page = next?,
            None => break,
        }
    }
    customers.finish();
    let mut summary = apply_subscriptions(engine, api, None, false, subscriptions).await?;
    link_by_metadata(engine, api, &directory, &mut summary).await?;
    report.unlinked = summary
        .unlinked_customers
        .iter()
        .map(|(customer, subscriptions)| {
            let record = directory.get(customer);
            Unlinked {
                customer: customer.clone(),
                email: record.and_then(|r| r.email.clone()),
                subscriptions: subscriptions.clone(),
                action: action(engine, customer, record),
            }
        })
        .collect();
    report.subscriptions = summary;
    Ok(report)
}

/// Links each customer of a page whose metadata names an organization,
/// unless it is linked already.
async fn link_page(
    engine: &Engine,
    records: &[CustomerRecord],
    report: &mut ImportReport,
) -> Result<(), Error> {
    for record in records {
        report.customers += 1;
        let Ok(Some(org)) = engine.org_named_in(&record.metadata) else {
            continue;
        };
        let owner = match engine.owner_of_customer(&record.id).await? {
            None => match engine.link_customer(&org, &record.id, "import").await {
                Ok(_) => {
                    report.linked += 1;
                    continue;
                }
                // Linked by a webhook since it was asked.
                Err(Error::CustomerTaken { owner, .. }) => owner,
                Err(error) => return Err(error),
            },
            Some(owner) => owner,
        };
        if owner == org {
            report.already_linked += 1;
        } else {
            report.conflicts.push(Conflict {
                customer: record.id.clone(),
                linked_to: owner,
                metadata_names: org,
            });
        }
    }
    Ok(())
}

/// What to do about a customer with subscriptions and no organization.
fn action(engine: &Engine, customer: &str, record: Option<&CustomerRecord>) -> String {
    let link = format!("billing-api link <org_id> {customer}");
    match record.map(|r| engine.org_named_in(&r.metadata)) {
        None => format!("deleted in Stripe; if it still pays: {link}"),
        Some(Err(reason)) => format!("fix its metadata ({reason}), or {link}"),
        Some(Ok(_)) => format!("{link}, or set its metadata org_id and import again"),
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "customers: {} read, {} linked by their metadata, {} already linked, {} linked elsewhere",
            self.customers,
            self.linked,
            self.already_linked,
            self.conflicts.len()
        )?;
        writeln!(f, "subscriptions: {}", self.subscriptions)?;
        for conflict in &self.conflicts {
            writeln!(
                f,
                "{} is linked to {} but its metadata names {}; left linked to {}",
                conflict.customer, conflict.linked_to, conflict.metadata_names, conflict.linked_to
            )?;
        }
        if self.unlinked.is_empty() {
            return writeln!(f, "every customer with subscriptions is linked");
        }
        writeln!(
            f,
            "\n{} customer(s) with subscriptions could not be linked:\n",
            self.unlinked.len()
        )?;
        let rows: Vec<[String; 4]> = self
            .unlinked
            .iter()
            .map(|u| {
                [
                    u.customer.clone(),
                    u.email.clone().unwrap_or_else(|| "-".into()),
                    u.subscriptions.join(" "),
                    u.action.clone(),
                ]
            })
            .collect();
        table(
            f,
            ["CUSTOMER", "EMAIL", "SUBSCRIPTIONS", "SUGGESTED ACTION"],
            &rows,
        )
    }
}

/// Writes `rows` under `head` in left-aligned columns two spaces apart.
fn table(f: &mut fmt::Formatter<'_>, head: [&str; 4], rows: &[[String; 4]]) -> fmt::Result {
    let mut widths = head.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| {
        let [a, b, c, d] = cells;
        let [wa, wb, wc, _] = widths;
        writeln!(f, "{a:wa$}  {b:wb$}  {c:wc$}  {d}")
    };
    line(f, head)?;
    for [a, b, c, d] in rows {
        line(f, [a, b, c, d])?;
    }
    Ok(())
}
