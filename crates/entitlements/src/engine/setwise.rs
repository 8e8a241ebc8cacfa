//! Subscription states applied set-wise. A run of a batch's jobs that
//! each bring a subscription's whole state (its events, or reconciliation's
//! reads) reads what it touches in a few statements for the whole run:
//! which events are recorded, the subscriptions (locked, in id order), the
//! organizations (locked, in id order, after the subscriptions, like the
//! single-event path) with their sources and answers. Each job then
//! applies in arrival order, in memory, through the same `transition`,
//! `compute` and `decide` as everywhere else, with the same outcome it
//! would have alone; and the run writes what changed with one statement
//! per table (on PostgreSQL; SQLite runs one per row, in place).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Engine;
use super::apply::{org_from_payload, stale};
use super::batch::{Applied, Work};
use super::receive::{Refetched, conclude};
use super::recompute::{GRANT_EXPIRED, Recomputed, Stored, expiry_detail};
use super::transition::{Input, Next, Source, transition};
use crate::Error;
use crate::clock::now;
use crate::compute::{PurchaseState, Sources, SubscriptionState, compute};
use crate::db::Conn;
use crate::event::{Event, SubscriptionObject, org_id_in};
use crate::receipt::{Delivery, Outcome, Receipt};
use crate::snapshot::{SnapshotItem, SubscriptionSnapshot};
use crate::source::SubscriptionRead;
use crate::store::answers::{EntitlementRow, NewChange};
use crate::store::events::{NewEvent, Placement};
use crate::store::grants::{Unrevoked, expired_unnoted};
use crate::store::subscriptions::SubscriptionRow;
use crate::store::{
    Cause, answers, events, grants, notes, organizations, purchases, subscriptions,
};

/// Whether a job brings a subscription's whole state, and so applies
/// set-wise.
pub(super) fn brings_state(work: &Work) -> bool {
    match work {
        Work::Listed(_) => true,
        Work::Delivery { event, .. } => event.kind.carries_subscription(),
    }
}

/// A job of the run, as read before anything is locked.
enum Prepared<'j> {
    /// A redelivery (recorded before, or earlier in this transaction).
    Duplicate,
    /// Recorded (when an event brought it) with this receipt, applying
    /// nothing.
    Refused {
        event: Option<(&'j Event, &'j str)>,
        receipt: Receipt,
    },
    /// A state to apply, with the event that brought it (none for a read).
    State {
        event: Option<(&'j Event, &'j str)>,
        source: Source<'j>,
        state: Cow<'j, SubscriptionSnapshot>,
        read_at_ms: Option<i64>,
        named_org: Option<String>,
    },
}

/// What a job came to, its event not recorded yet.
enum Done<'j> {
    Duplicate,
    Recorded {
        event: Option<(&'j Event, &'j str)>,
        receipt: Receipt,
        placement: Option<Placement>,
    },
}

impl Engine {
    /// Applies a run of state-bringing jobs (see the module's comment),
    /// answering each one's result in order. `recorded` holds the events
    /// recorded earlier in the transaction, and gains this run's.
    pub(super) async fn apply_states<'j>(
        &self,
        conn: &mut Conn<'_>,
        works: &[&'j Work],
        recorded: &mut HashSet<String>,
    ) -> Result<Vec<Applied>, Error> {
        let now = now();
        let asked: Vec<&str> = works
            .iter()
            .filter_map(|work| match work {
                Work::Delivery { event, .. } if !recorded.contains(&event.id) => {
                    Some(event.id.as_str())
                }
                _ => None,
            })
            .collect();
        recorded.extend(events::existing(conn, &asked).await?);
        let prepared: Vec<Prepared<'j>> = works
            .iter()
            .map(|work| self.prepare(work, recorded))
            .collect();

        let mut wanted: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for job in &prepared {
            if let Prepared::State { state, .. } = job {
                wanted
                    .entry(state.id.as_str())
                    .or_insert(state.customer.as_deref());
            }
        }
        let wanted: Vec<(&str, Option<&str>)> = wanted.into_iter().collect();
        let mut space = Workspace::default();
        for row in subscriptions::lock_many(conn, &wanted, now).await? {
            space.subs.insert(row.id.clone(), Held::locked(row));
        }
        let mut orgs: BTreeSet<String> = space
            .subs
            .values()
            .filter_map(|held| held.row.org_id.clone())
            .collect();
        for job in &prepared {
            if let Prepared::State {
                named_org: Some(org),
                ..
            } = job
            {
                orgs.insert(org.clone());
            }
        }
        let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
        space.hold(conn, &orgs, now).await?;
        let now = now_after_locks(now);

        let mut done = Vec::with_capacity(prepared.len());
        for job in prepared {
            done.push(self.apply_prepared(conn, &mut space, job, now).await?);
        }
        space.write(conn).await?;

        let rows: Vec<NewEvent> = done
            .iter()
            .filter_map(|done| match done {
                Done::Recorded {
                    event: Some((event, payload)),
                    receipt,
                    placement,
                } => Some(NewEvent::new(event, payload, receipt, *placement, now)),
                _ => None,
            })
            .collect();
        let new: HashSet<String> = events::record_many(conn, &rows)
            .await?
            .into_iter()
            .collect();
        answers::announce(conn, &space.announced()).await?;
        Ok(done
            .into_iter()
            .map(|done| match done {
                Done::Duplicate => Applied::Done(Delivery::Duplicate),
                Done::Recorded {
                    event: Some((event, _)),
                    ..
                } if !new.contains(&event.id) => Applied::Raced,
                Done::Recorded { receipt, .. } => Applied::Done(Delivery::Recorded(receipt)),
            })
            .collect())
    }

    /// Reads a job: a redelivery, an event refused as it stands, or the
    /// state to apply and the organization its metadata names.
    fn prepare<'j>(&self, work: &'j Work, recorded: &mut HashSet<String>) -> Prepared<'j> {
        let (event, payload, refetched) = match work {
            Work::Listed(fresh) => {
                let state = Cow::Borrowed(&fresh.subscription);
                return self.state(None, Source::listed(fresh), state, Some(fresh));
            }
            Work::Delivery {
                event,
                payload,
                refetched,
            } => (event, payload.as_str(), refetched),
        };
        if !recorded.insert(event.id.clone()) {
            return Prepared::Duplicate;
        }
        let refuse = |receipt| Prepared::Refused {
            event: Some((event, payload)),
            receipt,
        };
        if let Some(rejected) = self.other_mode(event) {
            return refuse(rejected);
        }
        let source = Source::of(event);
        match refetched {
            Some(Refetched::Unreadable(reason)) => refuse(Receipt::invalid(reason.clone())),
            Some(Refetched::State(fresh)) => self.state(
                Some((event, payload)),
                source,
                Cow::Borrowed(&fresh.subscription),
                Some(fresh),
            ),
            None => match event.object::<SubscriptionObject>() {
                Ok(sub) => {
                    let state = Cow::Owned(SubscriptionSnapshot::from(sub));
                    self.state(Some((event, payload)), source, state, None)
                }
                Err(reason) => refuse(Receipt::invalid(reason)),
            },
        }
    }

    /// A state to apply, or refused when its metadata names an invalid
    /// organization.
    fn state<'j>(
        &self,
        event: Option<(&'j Event, &'j str)>,
        source: Source<'j>,
        state: Cow<'j, SubscriptionSnapshot>,
        fresh: Option<&'j SubscriptionRead>,
    ) -> Prepared<'j> {
        match org_from_payload(org_id_in(&state.metadata, &self.org_id_keys)) {
            Ok(named_org) => Prepared::State {
                event,
                source,
                read_at_ms: fresh.map(|f| f.read_at_ms),
                state,
                named_org,
            },
            Err(invalid) => Prepared::Refused {
                event,
                receipt: invalid.subscription(&state.id),
            },
        }
    }

    /// Applies one job in memory: what the single-event path does with
    /// the subscription's state, against the workspace.
    async fn apply_prepared<'j>(
        &self,
        conn: &mut Conn<'_>,
        space: &mut Workspace,
        job: Prepared<'j>,
        now: i64,
    ) -> Result<Done<'j>, Error> {
        let (event, receipt) = match job {
            Prepared::Duplicate => return Ok(Done::Duplicate),
            Prepared::Refused { event, receipt } => (event, receipt),
            Prepared::State {
                event,
                source,
                state,
                read_at_ms,
                named_org,
            } => {
                let receipt = self
                    .apply_state(conn, space, source, &state, read_at_ms, named_org, now)
                    .await?;
                (event, receipt)
            }
        };
        let placement = match (&receipt.org_id, event) {
            (Some(org_id), Some(_)) => Some(Placement {
                position: space.next_position(conn, org_id, now).await?,
                at: crate::clock::now(),
            }),
            _ => None,
        };
        Ok(Done::Recorded {
            event,
            receipt,
            placement,
        })
    }

    #[expect(clippy::too_many_arguments, reason = "the parts of one prepared state")]
    async fn apply_state(
        &self,
        conn: &mut Conn<'_>,
        space: &mut Workspace,
        source: Source<'_>,
        sub: &SubscriptionSnapshot,
        read_at_ms: Option<i64>,
        named_org: Option<String>,
        now: i64,
    ) -> Result<Receipt, Error> {
        let row = space.row(&sub.id)?.clone();
        let org_id = match (named_org, &row.org_id, sub.customer.as_deref()) {
            (Some(org), _, _) => Some(org),
            (None, Some(org), _) => Some(org.clone()),
            (None, None, customer) => match customer.or(row.customer_id.as_deref()) {
                Some(customer) => space.org_of_customer(conn, customer).await?,
                None => None,
            },
        };
        let input = Input::State {
            state: sub,
            source,
            read_at_ms,
            org_id: org_id.as_deref(),
        };
        let Next { mut row, left } = match transition(&row, input) {
            Ok(next) => next,
            Err(refusal) => return Ok(stale(row, &sub.id, refusal)),
        };
        for org in row.org_id.iter().chain(&left) {
            space.hold(conn, &[org], now).await?;
        }
        row.updated_at = now;
        space.save(row.clone(), &sub.items);

        let mut receipt = Receipt::new(Outcome::Applied)
            .org(row.org_id.clone())
            .subscription(&sub.id);
        if let Some(left) = &left {
            self.recompute_held(space, left, source.id.into(), now)?;
            receipt = receipt.note(format!("moved from organization {left}"));
        }
        let Some(org_id) = row.org_id else {
            return Ok(Receipt {
                outcome: Outcome::Unlinked,
                ..receipt
            }
            .detail("no organization known yet; the checkout event will link it"));
        };
        let recomputed = self.recompute_held(space, &org_id, source.id.into(), now)?;
        Ok(conclude(receipt, recomputed))
    }

    /// [`Engine::recompute`] of a held organization, in memory.
    fn recompute_held(
        &self,
        space: &mut Workspace,
        org_id: &str,
        cause: Cause<'_>,
        now: i64,
    ) -> Result<Recomputed, Error> {
        if self.counters.rules_outdated() {
            let org = space.org(org_id)?;
            let row = match &org.answer {
                Some(answer) => EntitlementRow {
                    recheck_at: Some(now),
                    ..answer.clone()
                },
                None => self.deferred_default(org_id, now)?,
            };
            let version = row.version;
            org.store(row);
            return Ok(Recomputed::deferred(version));
        }
        let subscriptions = space.states_of(org_id);
        let org = space.org(org_id)?;
        for grant in &mut org.grants {
            if let Some(at) = expired_unnoted(&grant.state, grant.noted, now) {
                grant.noted = true;
                org.position += 1;
                let note = (org.position, grant.state.id.clone(), expiry_detail(at), now);
                org.notes.push(note);
            }
        }
        let sources = Sources {
            subscriptions,
            purchases: org.purchases.clone(),
            grants: org.grants.iter().map(|g| g.state.clone()).collect(),
        };
        let computed = compute(&self.catalog, &sources, now, self.policy);
        let decision = self.decide(org_id, org.answer.as_ref(), &computed, now)?;
        match &decision.store {
            Some(Stored::Changed(row)) => {
                org.position += 1;
                org.changes.push(NewChange::new(row, cause, org.position)?);
                org.store(row.clone());
            }
            Some(Stored::Settled { recheck_at }) => {
                if let Some(answer) = &org.answer {
                    let row = EntitlementRow {
                        rules: Some(self.rules.to_string()),
                        recheck_at: *recheck_at,
                        ..answer.clone()
                    };
                    org.store(row);
                }
            }
            None => {}
        }
        Ok(self.recomputed(org_id, computed, &decision))
    }
}

/// The time once the run's locks are held (see [`organizations::lock`]),
/// never before the time they were asked at.
fn now_after_locks(asked: i64) -> i64 {
    now().max(asked)
}

/// What the run has read and changed.
#[derive(Default)]
struct Workspace {
    /// The subscriptions it locked, and those of the organizations it
    /// holds, by id.
    subs: BTreeMap<String, Held>,
    /// The organizations it holds (locked), by id.
    orgs: BTreeMap<String, HeldOrg>,
    /// The organization each customer was created for, as looked up.
    owners: HashMap<String, Option<String>>,
}

/// A subscription as the run sees it.
struct Held {
    row: SubscriptionRow,
    items: Vec<SnapshotItem>,
    /// Changed by the run: to write.
    saved: bool,
}

impl Held {
    fn locked(row: SubscriptionRow) -> Self {
        Self {
            row,
            items: Vec::new(),
            saved: false,
        }
    }
}

/// An organization the run holds.
struct HeldOrg {
    /// The last history position taken.
    position: i64,
    /// Whether the run took positions (to write back).
    moved: bool,
    answer: Option<EntitlementRow>,
    /// The answer changed: to write.
    answer_changed: bool,
    grants: Vec<Unrevoked>,
    purchases: Vec<PurchaseState>,
    /// History rows to write.
    changes: Vec<NewChange>,
    /// Grants expired: (position, grant id, detail, when noted).
    notes: Vec<(i64, String, String, i64)>,
}

impl HeldOrg {
    fn store(&mut self, answer: EntitlementRow) {
        self.answer = Some(answer);
        self.answer_changed = true;
    }
}

impl Workspace {
    /// Locks the organizations not held yet (in id order) and reads their
    /// subscriptions, purchases, grants and answers.
    async fn hold(&mut self, conn: &mut Conn<'_>, org_ids: &[&str], now: i64) -> Result<(), Error> {
        let new: Vec<&str> = org_ids
            .iter()
            .copied()
            .filter(|org| !self.orgs.contains_key(*org))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        for (org_id, position) in organizations::lock_many(conn, &new, now).await? {
            let held = HeldOrg {
                position,
                moved: false,
                answer: None,
                answer_changed: false,
                grants: Vec::new(),
                purchases: Vec::new(),
                changes: Vec::new(),
                notes: Vec::new(),
            };
            self.orgs.insert(org_id, held);
        }
        for (row, items) in subscriptions::of_orgs(conn, &new).await? {
            let held = self
                .subs
                .entry(row.id.clone())
                .or_insert_with(|| Held::locked(row));
            if !held.saved {
                held.items = items;
            }
        }
        for grant in grants::unrevoked_of(conn, &new).await? {
            let org = self.org(&grant.org_id.clone())?;
            org.grants.push(grant);
        }
        for (org_id, purchase) in purchases::of_orgs(conn, &new).await? {
            self.org(&org_id)?.purchases.push(purchase);
        }
        for answer in answers::of_orgs(conn, &new).await? {
            let org_id = answer.org_id.clone();
            self.org(&org_id)?.answer = Some(answer);
        }
        Ok(())
    }

    fn org(&mut self, org_id: &str) -> Result<&mut HeldOrg, Error> {
        self.orgs
            .get_mut(org_id)
            .ok_or_else(|| Error::Corrupt(format!("organization {org_id} is not held")))
    }

    fn row(&self, sub_id: &str) -> Result<&SubscriptionRow, Error> {
        self.subs
            .get(sub_id)
            .map(|held| &held.row)
            .ok_or_else(|| Error::Corrupt(format!("subscription {sub_id} is not locked")))
    }

    fn save(&mut self, row: SubscriptionRow, items: &[SnapshotItem]) {
        let held = Held {
            row,
            items: items.to_vec(),
            saved: true,
        };
        self.subs.insert(held.row.id.clone(), held);
    }

    /// The organization's subscriptions as computation reads them.
    fn states_of(&self, org_id: &str) -> Vec<SubscriptionState> {
        self.subs
            .values()
            .filter(|held| held.row.org_id.as_deref() == Some(org_id))
            .map(|held| subscriptions::state(&held.row, &held.items))
            .collect()
    }

    /// Takes the organization's next history position, holding it first.
    async fn next_position(
        &mut self,
        conn: &mut Conn<'_>,
        org_id: &str,
        now: i64,
    ) -> Result<i64, Error> {
        self.hold(conn, &[org_id], now).await?;
        let org = self.org(org_id)?;
        org.position += 1;
        org.moved = true;
        Ok(org.position)
    }

    /// [`organizations::org_of_customer`], seeing the run's changes: the
    /// organization the customer was created for, else the one of its most
    /// recently changed linked subscription.
    async fn org_of_customer(
        &mut self,
        conn: &mut Conn<'_>,
        customer: &str,
    ) -> Result<Option<String>, Error> {
        let owner = match self.owners.get(customer) {
            Some(owner) => owner.clone(),
            None => {
                let owner = organizations::owner_of_customer(conn, customer).await?;
                self.owners.insert(customer.to_owned(), owner.clone());
                owner
            }
        };
        if owner.is_some() {
            return Ok(owner);
        }
        let linked_here = self
            .subs
            .values()
            .filter(|held| held.saved && held.row.customer_id.as_deref() == Some(customer))
            .filter_map(|held| held.row.org_id.clone())
            .next_back();
        match linked_here {
            Some(org) => Ok(Some(org)),
            None => organizations::linked_org_of_customer(conn, customer).await,
        }
    }

    /// The versions to announce.
    fn announced(&self) -> Vec<(&str, i64)> {
        self.orgs
            .iter()
            .flat_map(|(org_id, org)| org.changes.iter().map(|c| (org_id.as_str(), c.version())))
            .collect()
    }

    /// Writes what the run changed: one statement per table.
    async fn write(&self, conn: &mut Conn<'_>) -> Result<(), Error> {
        let saved: Vec<&Held> = self.subs.values().filter(|held| held.saved).collect();
        let rows: Vec<SubscriptionRow> = saved.iter().map(|held| held.row.clone()).collect();
        subscriptions::save_many(conn, &rows).await?;
        let items: Vec<(&str, &[SnapshotItem])> = saved
            .iter()
            .map(|held| (held.row.id.as_str(), held.items.as_slice()))
            .collect();
        subscriptions::replace_items_many(conn, &items).await?;
        let mut expired = Vec::new();
        for (org_id, org) in &self.orgs {
            for (position, grant_id, detail, at) in &org.notes {
                let about = Cause::Grant(grant_id);
                notes::add_at(conn, org_id, *position, GRANT_EXPIRED, about, detail, *at).await?;
                expired.push(grant_id.as_str());
            }
        }
        if !expired.is_empty() {
            grants::note_expired(conn, &expired).await?;
        }
        let answers: Vec<EntitlementRow> = self
            .orgs
            .values()
            .filter(|org| org.answer_changed)
            .filter_map(|org| org.answer.clone())
            .collect();
        answers::save_many(conn, &answers).await?;
        let changes: Vec<NewChange> = self
            .orgs
            .values()
            .flat_map(|org| org.changes.iter().cloned())
            .collect();
        answers::record_changes(conn, &changes).await?;
        let positions: Vec<(&str, i64)> = self
            .orgs
            .iter()
            .filter(|(_, org)| org.moved || !org.changes.is_empty() || !org.notes.is_empty())
            .map(|(org_id, org)| (org_id.as_str(), org.position))
            .collect();
        organizations::set_positions(conn, &positions).await
    }
}
