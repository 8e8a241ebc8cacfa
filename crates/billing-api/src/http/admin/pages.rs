//! The console's HTML, rendered on the server. maud escapes every value
//! it is given, so text from Stripe, operators or URLs shows as text.

use std::collections::BTreeMap;

use entitlements::admin::{EventSummary, NotifyFailure, Overview, Session};
use entitlements::compute::SubscriptionState;
use entitlements::grants::Grant;
use entitlements::history::{HistoryEntry, HistoryPage};
use entitlements::{EntitlementView, FeatureValue, Features};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::format::{money, when};

const STYLE: &str = include_str!("console.css");

/// The frame of every page: navigation, search, who is signed in.
pub(crate) fn layout(title: &str, session: Option<&Session>, now: i64, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Billing admin" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(session) = session {
                    header {
                        nav aria-label="Console" {
                            a href="/admin" { "Overview" }
                            a href="/admin/attention" { "Needs attention" }
                        }
                        form role="search" method="get" action="/admin/orgs" {
                            label for="search" { "Search" }
                            input id="search" name="q" type="search" placeholder="org id or cus_…";
                            button type="submit" { "Find" }
                        }
                        form method="post" action="/admin/signout" class="signout" {
                            span {
                                "Signed in as " strong { (session.token_name) }
                                @if session.read_only { " (read-only)" }
                                ", until " (when(session.expires_at, now))
                            }
                            (csrf(session))
                            button type="submit" { "Sign out" }
                            button type="submit" formaction="/admin/signout/everywhere"
                                title="End every session of this token, in every browser" {
                                "Sign out everywhere"
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The sign-in form, with why the last try failed.
pub(crate) fn sign_in(refusal: Option<&str>) -> Markup {
    html! {
        @if let Some(refusal) = refusal { p role="alert" class="refusal" { (refusal) } }
        form method="post" action="/admin/signin" class="stacked" {
            label for="token" { "Admin token" }
            input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
    }
}

/// A refusal or failure, with the way back.
pub(crate) fn problem(message: &str) -> Markup {
    html! {
        p role="alert" class="refusal" { (message) }
        p { a href="/admin" { "Back to the overview" } }
    }
}

/// Organizations by plan, the chart, what needs attention, backlogs.
pub(crate) fn overview(
    overview: &Overview,
    chart: Markup,
    attention: &[EventSummary],
    backlog: &[(String, i64)],
    now: i64,
) -> Markup {
    html! {
        section aria-labelledby="plans" {
            h2 id="plans" { "Organizations by plan" }
            (Table::new(&["Plan", "Status", "Organizations"])
                .numeric(1)
                .empty("No organization has entitlements stored yet.")
                .rows(&overview.plans, |(plan, status, count)| html! {
                    td { (plan) } td { (status) } td class="number" { (count) }
                }))
        }
        section aria-labelledby="events" {
            h2 id="events" { "Webhook events per day, last 30 days" }
            (chart)
        }
        section aria-labelledby="attention" {
            h2 id="attention" { "Needs attention" }
            (events(attention, now))
            p { a href="/admin/attention" { "Every event needing attention" } }
        }
        section aria-labelledby="backlog" {
            h2 id="backlog" { "Notification backlog" }
            (Table::new(&["Endpoint", "Organizations waiting"])
                .numeric(1)
                .empty("No notification endpoint is configured.")
                .rows(backlog, |(endpoint, waiting)| html! {
                    td { (endpoint) } td class="number" { (waiting) }
                }))
        }
    }
}

/// Events as a table, each linked to its organization.
pub(crate) fn events(events: &[EventSummary], now: i64) -> Markup {
    let head = [
        "Received",
        "Event",
        "Type",
        "Organization",
        "Outcome",
        "Detail",
    ];
    Table::new(&head)
        .empty("Nothing needs attention.")
        .rows(events, |event| {
            html! {
                td { (when(event.received_at, now)) }
                td { code { (event.id) } }
                td { (event.event_type) }
                td {
                    @if let Some(org) = &event.org_id { a href=(org_href(org)) { (org) } }
                    @else { "unknown" }
                }
                td { span class={"outcome " (event.outcome)} { (event.outcome) } }
                td { (event.detail.as_deref().unwrap_or("")) }
            }
        })
}

/// The events needing attention, a page at a time, and notifications
/// given up.
pub(crate) fn attention(
    page: &[EventSummary],
    number: usize,
    more: bool,
    failures: &[NotifyFailure],
    now: i64,
) -> Markup {
    html! {
        p { "Events the service could not use as they came: " em { "unlinked" } " (no organization known yet), "
            em { "invalid" } ", or with prices no plan lists. Fix the catalog or the link, then replay them from the organization's page." }
        (events(page, now))
        nav aria-label="Pages" class="pages" {
            @if number > 1 { a href={"/admin/attention?page=" (number - 1)} rel="prev" { "Newer" } }
            span { "Page " (number) }
            @if more { a href={"/admin/attention?page=" (number + 1)} rel="next" { "Older" } }
        }
        h2 { "Notifications given up" }
        @if failures.is_empty() {
            p { "None." }
        } @else {
            ul {
                @for failure in failures {
                    li { (when(failure.at, now)) " " a href=(org_href(&failure.org_id)) { (failure.org_id) } ": " (failure.detail) }
                }
            }
        }
    }
}

/// Search results.
pub(crate) fn found(text: &str, orgs: &[(String, Option<String>)]) -> Markup {
    if orgs.is_empty() {
        return html! {
            p { "No organization's id starts with " q { (text) } ", and no organization has it as its Stripe customer." }
        };
    }
    Table::new(&["Organization", "Stripe customer"]).rows(orgs, |(org, customer)| {
        html! {
            td { a href=(org_href(org)) { (org) } } td { (customer.as_deref().unwrap_or("none")) }
        }
    })
}

/// What the organization page shows.
pub(crate) struct OrgPage<'a> {
    pub view: &'a EntitlementView,
    pub customer: Option<&'a str>,
    pub subscriptions: &'a [SubscriptionState],
    pub grants: &'a [Grant],
    pub history: &'a HistoryPage,
    pub payloads: &'a BTreeMap<String, String>,
    pub plans: Vec<&'a str>,
    pub dashboard: &'a str,
    pub now: i64,
}

/// An organization: entitlements, sources, subscriptions, grants,
/// history.
pub(crate) fn organization(page: &OrgPage<'_>, session: &Session) -> Markup {
    let view = page.view;
    let can_change = !session.read_only;
    html! {
        section aria-labelledby="entitlements" {
            h2 id="entitlements" { "Entitlements" }
            dl class="facts" {
                dt { "Plan" } dd { (view.plan) }
                dt { "Status" } dd { (view.status) }
                dt { "Version" } dd { (view.version) }
                dt { "Stripe customer" } dd { (page.customer.unwrap_or("none")) }
                @if let Some(valid) = view.valid_until { dt { "Valid until" } dd { (when(valid.timestamp(), page.now)) } }
            }
            (features(&view.features))
        }
        section aria-labelledby="sources" {
            h2 id="sources" { "Sources" }
            @if view.sources.is_empty() {
                p { "Nothing grants this organization more than the default plan." }
            } @else {
                ul {
                    @for source in &view.sources {
                        li {
                            (source.kind.as_str()) " " code { (source.id) }
                            @if let Some(plan) = &source.plan { ", plan " (plan) }
                            @if let Some(until) = source.until { ", until " (when(until, page.now)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="subscriptions" {
            h2 id="subscriptions" { "Subscriptions" }
            (Table::new(&["Subscription", "Status", "Period ends", "Items"])
                .empty("None.")
                .rows(page.subscriptions, |sub| html! {
                    td { a href={(page.dashboard) "subscriptions/" (sub.id)} { (sub.id) } }
                    td {
                        (sub.status.as_ref().map_or("unknown", |s| s.as_str()))
                        @if sub.cancel_at_period_end { " (cancels at period end)" }
                    }
                    td { @if let Some(end) = sub.current_period_end { (when(end, page.now)) } }
                    td { @for item in &sub.items { code { (item.price_id) } " × " (item.quantity) br; } }
                }))
        }
        section aria-labelledby="grants" {
            h2 id="grants" { "Grants" }
            (grants(page, session))
            @if can_change { (grant_form(page, session)) }
        }
        section aria-labelledby="history" {
            h2 id="history" { "History" }
            (history(page, session))
        }
    }
}

fn features(features: &Features) -> Markup {
    Table::new(&["Feature", "Value"]).rows(features, |(name, value)| {
        html! {
            td { (name) }
            td {
                @match value {
                    FeatureValue::Flag(true) => "on",
                    FeatureValue::Flag(false) => "off",
                    FeatureValue::Limit(n) => (n),
                }
            }
        }
    })
}

fn grants(page: &OrgPage<'_>, session: &Session) -> Markup {
    let head = ["Grant", "Gives", "Expires", "Reason", "By", "State"];
    Table::new(&head)
        .empty("No grant was ever given.")
        .rows(page.grants, |grant| html! {
            td { code { (grant.id) } br; (when(grant.created_at, page.now)) }
            td {
                @if let Some(plan) = &grant.plan { "plan " (plan) @if grant.quantity != 1 { " × " (grant.quantity) } }
                @for (name, value) in &grant.features {
                    br; (name) ": " @match value { FeatureValue::Flag(on) => (on), FeatureValue::Limit(n) => (n) }
                }
            }
            td { @match grant.expires_at { Some(at) => (when(at, page.now)), None => "never" } }
            td { (grant.reason.as_deref().unwrap_or("")) }
            td { (grant.created_by) }
            td {
                @if let Some(at) = grant.revoked_at {
                    "revoked " (when(at, page.now)) " by " (grant.revoked_by.as_deref().unwrap_or("?"))
                } @else if grant.is_active(page.now) {
                    "active"
                    @if !session.read_only {
                        form method="post" action={(org_href(&grant.org_id)) "/grants/" (grant.id) "/revoke"} {
                            (csrf(session))
                            button type="submit" aria-label={"Revoke " (grant.id)} { "Revoke" }
                        }
                    }
                } @else {
                    "expired"
                }
            }
        })
}

fn grant_form(page: &OrgPage<'_>, session: &Session) -> Markup {
    html! {
        form method="post" action={(org_href(&page.view.org_id)) "/grants"} class="stacked" aria-labelledby="add-grant" {
            h3 id="add-grant" { "Add grant" }
            (csrf(session))
            label for="grant-plan" { "Plan" }
            select id="grant-plan" name="plan" required {
                @for plan in &page.plans { option value=(plan) { (plan) } }
            }
            label for="grant-expires" { "Expires" }
            input id="grant-expires" name="expires" type="datetime-local" aria-describedby="grant-expires-help";
            small id="grant-expires-help" { "UTC; leave empty for a grant that never expires." }
            label for="grant-reason" { "Reason" }
            input id="grant-reason" name="reason" type="text" maxlength="500";
            button type="submit" { "Add grant" }
        }
    }
}

fn history(page: &OrgPage<'_>, session: &Session) -> Markup {
    let org = &page.view.org_id;
    html! {
        @if page.history.entries.is_empty() {
            p { "Nothing has happened to this organization yet." }
        } @else {
            ol class="history" reversed {
                @for entry in &page.history.entries {
                    li {
                        @match entry {
                            HistoryEntry::Event(event) => {
                                (when(event.received_at, page.now)) " "
                                strong { (event.event_type) } " "
                                span class={"outcome " (event.outcome)} { (event.outcome) } " "
                                code { (event.id) }
                                @if let Some(payload) = page.payloads.get(&event.id) {
                                    @if let Some(amount) = money(payload) { " " span class="money" { (amount) } }
                                }
                                @if let Some(detail) = &event.detail { p { (detail) } }
                                @if !session.read_only {
                                    form method="post" action={"/admin/events/" (path_segment(&event.id)) "/replay"} class="inline" {
                                        (csrf(session))
                                        input type="hidden" name="org_id" value=(org);
                                        button type="submit" aria-label={"Replay " (event.id)} { "Replay" }
                                    }
                                }
                                @if let Some(payload) = page.payloads.get(&event.id) {
                                    details { summary { "Payload" } pre { (pretty(payload)) } }
                                }
                            }
                            HistoryEntry::EntitlementChange(change, features) => {
                                (when(change.changed_at, page.now)) " "
                                strong { "Entitlements version " (change.version) } ": plan " (change.plan) ", " (change.status)
                                details { summary { "Features" } (self::features(features)) }
                            }
                            HistoryEntry::Note(note) => {
                                (when(note.noted_at, page.now)) " "
                                strong { (note.action) } ": " (note.detail)
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.history.next {
            nav aria-label="Pages" class="pages" {
                a href={(org_href(org)) "?before=" (next.encode())} rel="next" { "Older entries" }
            }
        }
    }
}

/// A table's headings, and what it shows when it has no row.
struct Table<'a> {
    head: &'a [&'a str],
    numeric: usize,
    empty: Option<&'a str>,
}

impl<'a> Table<'a> {
    /// A table under the headings `head`.
    fn new(head: &'a [&'a str]) -> Self {
        Table {
            head,
            numeric: 0,
            empty: None,
        }
    }

    /// The last `columns` hold numbers (aligned right).
    fn numeric(self, columns: usize) -> Self {
        Table {
            numeric: columns,
            ..self
        }
    }

    /// Shown instead of an empty table.
    fn empty(self, text: &'a str) -> Self {
        Table {
            empty: Some(text),
            ..self
        }
    }

    /// The table of `rows`, each row's cells made by `cells`.
    fn rows<I: IntoIterator>(self, rows: I, cells: impl Fn(I::Item) -> Markup) -> Markup {
        let mut rows = rows.into_iter().peekable();
        if let (Some(text), None) = (self.empty, rows.peek()) {
            return html! { p { (text) } };
        }
        let first_number = self.head.len().saturating_sub(self.numeric);
        html! {
            table {
                thead { tr {
                    @for (column, name) in self.head.iter().enumerate() {
                        th scope="col" class=[(column >= first_number).then_some("number")] { (name) }
                    }
                } }
                tbody { @for row in rows { tr { (cells(row)) } } }
            }
        }
    }
}

/// The hidden field every changing form carries.
fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(session.csrf_token); }
}

/// The organization page's path.
pub(crate) fn org_href(org_id: &str) -> String {
    format!("/admin/orgs/{}", path_segment(org_id))
}

/// Every byte but the unreserved ones (RFC 3986).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one path segment, percent-encoded (a form's `+` for a space
/// would be a literal `+` here).
fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| payload.to_owned())
}
