//! `billing-api import`: adopts an existing Stripe account. Reads every
//! customer and links those whose metadata names an organization, then
//! every completed Checkout Session and links the customers of those that
//! name one, then applies every subscription as `reconcile` does, and ends
//! with what it could not link. Safe to run again, and while webhooks
//! arrive: a linked customer is left as it is, and subscriptions pass the
//! same stale guards as webhooks.

use std::collections::HashSet;
use std::fmt;

use entitlements::event::CheckoutSessionObject;
use entitlements::{Engine, Error};

use crate::stripe::api::{CustomerRecord, StripeApi};
use crate::stripe::pages::fold_pages;
use crate::stripe::progress::Progress;
use crate::stripe::reconcile::{ReconcileError, Summary, apply_subscriptions, link_by_metadata};

/// What an import did (or, dry, would do), and what it leaves to do by
/// hand.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Customers read from Stripe.
    pub customers: usize,
    /// Completed Checkout Sessions read from Stripe.
    pub checkouts: usize,
    /// Customers linked now (dry: it would link) by the organization their
    /// metadata names.
    pub linked_by_metadata: usize,
    /// Customers linked now (dry: it would link) by the organization a
    /// checkout of theirs names.
    pub linked_by_checkout: usize,
    /// Customers already linked to the organization named for them.
    pub already_linked: usize,
    /// Customers linked to another organization than one named for them;
    /// left as they were.
    pub conflicts: Vec<Conflict>,
    /// The subscriptions applied.
    pub subscriptions: Summary,
    /// Customers with subscriptions but no organization.
    pub unlinked: Vec<Unlinked>,
    /// Dry: subscriptions of customers it would link, which it therefore
    /// could not apply.
    pub awaiting_links: usize,
}

/// A customer linked to another organization than one named for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `cus_...`.
    pub customer: String,
    /// The organization it is linked to.
    pub linked_to: String,
    /// The organization named for it.
    pub named: String,
    /// What named it: "its metadata", or a checkout (`checkout cs_...`).
    pub named_by: String,
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

/// Where an organization was named for a customer.
#[derive(Clone, Copy)]
enum Naming<'a> {
    Metadata,
    Checkout(&'a str),
}

/// Imports the account `api` reads into `engine`'s database (with
/// `dry_run`, writes nothing and says what it would do), showing each
/// pass's advance on the `progress` made for what it reads ("customers",
/// "checkouts", "subscriptions").
pub async fn import(
    engine: &Engine,
    api: &StripeApi,
    dry_run: bool,
    progress: impl Fn(&'static str) -> Progress,
) -> Result<ImportReport, ReconcileError> {
    let run = Adoption {
        report: ImportReport {
            dry_run,
            ..ImportReport::default()
        },
        ..Adoption::default()
    };
    let list =
        move |after: Option<String>| async move { Ok(api.list_customers(after.as_deref()).await?) };
    let customers = move |mut run: Adoption, records: Vec<CustomerRecord>| async move {
        run.report.customers += records.len();
        // The others are read again at the end, only those with
        // subscriptions: an account may have millions.
        for record in &records {
            if let Ok(Some(org)) = engine.org_named_in(&record.metadata) {
                run.adopt(engine, &record.id, &org, Naming::Metadata)
                    .await?;
            }
        }
        Ok(run)
    };
    let id = |record: &CustomerRecord| record.id.clone();
    let run = fold_pages(&mut progress("customers"), list, id, run, customers).await?;
    let list = move |after: Option<String>| async move {
        Ok(api.list_completed_checkouts(after.as_deref()).await?)
    };
    let checkouts = move |mut run: Adoption, sessions: Vec<CheckoutSessionObject>| async move {
        run.report.checkouts += sessions.len();
        for session in &sessions {
            let named = engine.org_named_by_checkout(session);
            if let (Some(customer), Ok(Some(org))) = (&session.customer, named) {
                let naming = Naming::Checkout(&session.id);
                run.adopt(engine, customer, &org, naming).await?;
            }
        }
        Ok(run)
    };
    let id = |session: &CheckoutSessionObject| session.id.clone();
    let Adoption {
        mut report,
        would_link,
        ..
    } = fold_pages(&mut progress("checkouts"), list, id, run, checkouts).await?;
    let mut summary =
        apply_subscriptions(engine, api, None, dry_run, &mut progress("subscriptions")).await?;
    // Dry: once their customers were linked, these would apply.
    for customer in &would_link {
        if let Some(subscriptions) = summary.unlinked_customers.remove(customer) {
            report.awaiting_links += subscriptions.len();
            summary.unlinked -= subscriptions.len();
        }
    }
    let records = link_by_metadata(engine, api, dry_run, &mut summary).await?;
    report.unlinked = summary
        .unlinked_customers
        .iter()
        .map(|(customer, subscriptions)| {
            let record = records.get(customer).and_then(Option::as_ref);
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

/// What a run has found and decided of customers so far.
#[derive(Default)]
struct Adoption {
    /// What it did.
    report: ImportReport,
    /// Customers decided, whichever way.
    decided: HashSet<String>,
    /// Dry: customers it would link.
    would_link: HashSet<String>,
}

impl Adoption {
    /// Links `customer` to `org`, named for it (dry: notes that it
    /// would), unless this run decided it already or it is linked (to it,
    /// or to another: a conflict).
    async fn adopt(
        &mut self,
        engine: &Engine,
        customer: &str,
        org: &str,
        naming: Naming<'_>,
    ) -> Result<(), Error> {
        if !self.decided.insert(customer.to_owned()) {
            return Ok(());
        }
        let named_by = match naming {
            Naming::Metadata => "its metadata".to_owned(),
            Naming::Checkout(session) => format!("checkout {session}"),
        };
        let by = format!("import: {named_by}");
        let linked = match engine.owner_of_customer(customer).await? {
            None if self.report.dry_run => {
                self.would_link.insert(customer.to_owned());
                Ok(())
            }
            None => match engine.link_customer(org, customer, &by).await {
                Ok(_) => Ok(()),
                // Linked by a webhook since it was asked.
                Err(Error::CustomerTaken { owner, .. }) => Err(owner),
                Err(error) => return Err(error),
            },
            Some(owner) => Err(owner),
        };
        let report = &mut self.report;
        let owner = match linked {
            Ok(()) => {
                match naming {
                    Naming::Metadata => report.linked_by_metadata += 1,
                    Naming::Checkout(_) => report.linked_by_checkout += 1,
                }
                return Ok(());
            }
            Err(owner) => owner,
        };
        if owner == org {
            report.already_linked += 1;
        } else {
            report.conflicts.push(Conflict {
                customer: customer.to_owned(),
                linked_to: owner,
                named: org.to_owned(),
                named_by,
            });
        }
        Ok(())
    }
}

/// What to do about a customer with subscriptions and no organization.
fn action(engine: &Engine, customer: &str, record: Option<&CustomerRecord>) -> String {
    let link = format!("billing-api link <org_id> {customer}");
    match record.map(|r| engine.org_named_in(&r.metadata)) {
        None => format!("Stripe has no such customer (deleted?); if it still pays: {link}"),
        Some(Err(reason)) => format!("fix its metadata ({reason}), or {link}"),
        Some(Ok(_)) => format!("{link}, or set its metadata org_id and import again"),
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, link) = match self.dry_run {
            true => ("dry run, nothing changed: ", "would link"),
            false => ("", "linked"),
        };
        writeln!(
            f,
            "{prefix}customers: {} read, {} completed checkouts read; {link} {} by their metadata, {} by a checkout; {} already linked, {} linked elsewhere",
            self.customers,
            self.checkouts,
            self.linked_by_metadata,
            self.linked_by_checkout,
            self.already_linked,
            self.conflicts.len()
        )?;
        writeln!(f, "subscriptions: {}", self.subscriptions)?;
        if self.awaiting_links > 0 {
            writeln!(
                f,
                "{} subscription(s) of customers it would link are not counted above: they apply once linked",
                self.awaiting_links
            )?;
        }
        for c in &self.conflicts {
            writeln!(
                f,
                "{} is linked to {} but {} names {}; left linked to {}",
                c.customer, c.linked_to, c.named_by, c.named, c.linked_to
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
