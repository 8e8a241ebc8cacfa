//! `billing-api trigger`: builds a realistic Stripe event from Stripe's own
//! example objects, signs it with the configured secret and posts it to a
//! running instance, so the whole flow can be tried without Stripe.

use entitlements::{EventKind, PlanMode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::settings::Settings;
use crate::stripe::signature::sign;

const EVENT: &str = include_str!("../../fixtures/stripe/event.json");
const SUBSCRIPTION: &str = include_str!("../../fixtures/stripe/subscription.json");
const CHECKOUT_SESSION: &str = include_str!("../../fixtures/stripe/checkout_session.json");
const INVOICE: &str = include_str!("../../fixtures/stripe/invoice.json");
const CHARGE: &str = include_str!("../../fixtures/stripe/charge.json");
const DISPUTE: &str = include_str!("../../fixtures/stripe/dispute.json");

/// Event types `trigger` can build: every type the service acts on.
pub fn trigger_types() -> impl Iterator<Item = &'static str> {
    EventKind::NAMES.into_iter()
}

/// What to put in the event.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    /// One of [`trigger_types`].
    pub event_type: String,
    /// The organization.
    pub org_id: String,
    /// The plan bought; its first price goes into the subscription.
    pub plan: String,
    /// Seats.
    pub quantity: u64,
    /// Overrides the status the event type implies.
    pub status: Option<String>,
    /// Sets `cancel_at_period_end`.
    pub cancel_at_period_end: bool,
    /// Days from `now` to the period end (negative: already ended).
    pub period_days: i64,
    /// The subscription id (default `sub_trigger_<org>`); a new one starts
    /// a new subscription after a cancellation.
    pub subscription_id: Option<String>,
    /// A checkout's mode (default: the plan's).
    pub mode: Option<PlanMode>,
    /// The purchase (default `trigger_<org>`): its session is
    /// `cs_test_<id>`, its payment intent `pi_<id>`, which the refunds and
    /// disputes built here name too.
    pub purchase_id: Option<String>,
    /// A refund of part of the amount (`refunded: false`).
    pub partial_refund: bool,
    /// The event's `created` and the period start (unix seconds).
    pub now: i64,
}

impl TriggerSpec {
    /// `event_type` for `org_id` at `now`: one unit of plan `pro`, a
    /// 30-day period, and what the event type implies for the rest.
    pub fn new(event_type: &str, org_id: &str, now: i64) -> Self {
        Self {
            event_type: event_type.into(),
            org_id: org_id.into(),
            plan: "pro".into(),
            quantity: 1,
            status: None,
            cancel_at_period_end: false,
            period_days: 30,
            subscription_id: None,
            mode: None,
            purchase_id: None,
            partial_refund: false,
            now,
        }
    }
}

/// Why an event could not be built or delivered.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The event type or plan is not one `trigger` knows.
    #[error("{0}")]
    Invalid(String),
    /// The service could not be reached.
    #[error("could not post to {url}: {source}")]
    Unreachable {
        /// Where it posted.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The service refused the event.
    #[error("the service answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// Builds the event body for `spec`.
pub fn build_event(settings: &Settings, spec: &TriggerSpec) -> Result<Value, TriggerError> {
    let catalog = settings
        .catalog()
        .map_err(|e| TriggerError::Invalid(e.to_string()))?;
    let plan = catalog.plan(&spec.plan).ok_or_else(|| {
        TriggerError::Invalid(format!("--plan: no plan is named {:?}", spec.plan))
    })?;
    let price = plan
        .prices
        .first()
        .ok_or_else(|| TriggerError::Invalid(format!("--plan: {:?} has no price", spec.plan)))?;
    let org = &spec.org_id;
    let ids = Ids {
        subscription: spec
            .subscription_id
            .clone()
            .unwrap_or_else(|| format!("sub_trigger_{org}")),
        customer: format!("cus_trigger_{org}"),
        purchase: spec
            .purchase_id
            .clone()
            .unwrap_or_else(|| format!("trigger_{org}")),
    };
    let mode = spec.mode.unwrap_or(plan.mode);
    let object = match EventKind::parse(&spec.event_type) {
        EventKind::CheckoutSessionCompleted if mode == PlanMode::Payment => {
            purchase_session(spec, &ids)?
        }
        EventKind::CheckoutSessionCompleted => checkout_session(spec, &ids)?,
        EventKind::CheckoutSessionAsyncPaymentSucceeded
        | EventKind::CheckoutSessionAsyncPaymentFailed => purchase_session(spec, &ids)?,
        kind if kind.carries_subscription() => subscription(spec, &ids, price)?,
        EventKind::InvoicePaid | EventKind::InvoicePaymentFailed => invoice(spec, &ids)?,
        EventKind::ChargeRefunded => charge(spec, &ids)?,
        EventKind::ChargeDisputeCreated | EventKind::ChargeDisputeClosed => dispute(spec, &ids)?,
        other => {
            return Err(TriggerError::Invalid(format!(
                "unknown event type {other:?}; one of: {}",
                trigger_types().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let mut event = parse(EVENT)?;
    event["id"] = json!(format!("evt_trigger_{}", uuid::Uuid::new_v4().simple()));
    event["type"] = json!(spec.event_type);
    event["created"] = json!(spec.now);
    event["livemode"] = json!(settings.livemode());
    event["data"] = json!({ "object": object });
    Ok(event)
}

/// Signs `event` with the first configured secret and posts it to `url`;
/// returns the service's answer.
pub async fn deliver(
    settings: &Settings,
    url: &str,
    event: &Value,
) -> Result<String, TriggerError> {
    let secret = settings.stripe.webhook_secrets.first().ok_or_else(|| {
        TriggerError::Invalid("stripe.webhook_secrets is empty: nothing to sign with".into())
    })?;
    let body = event.to_string();
    let now = chrono::Utc::now().timestamp();
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header(
            "Stripe-Signature",
            sign(secret.expose_secret(), now, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|source| TriggerError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(TriggerError::Refused { status, body: text })
    }
}

struct Ids {
    subscription: String,
    customer: String,
    purchase: String,
}

fn checkout_session(spec: &TriggerSpec, ids: &Ids) -> Result<Value, TriggerError> {
    let mut session = parse(CHECKOUT_SESSION)?;
    session["id"] = json!(format!("cs_test_trigger_{}", uuid::Uuid::new_v4().simple()));
    session["mode"] = json!("subscription");
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = Value::Null;
    session["url"] = Value::Null;
    session["client_reference_id"] = json!(spec.org_id);
    session["customer"] = json!(ids.customer);
    session["subscription"] = json!(ids.subscription);
    session["metadata"] = json!({ "org_id": spec.org_id, "plan": spec.plan });
    session["created"] = json!(spec.now);
    Ok(session)
}

/// A payment-mode session: paid, or waiting for a delayed payment
/// (`unpaid`) unless `--status` says otherwise.
fn purchase_session(spec: &TriggerSpec, ids: &Ids) -> Result<Value, TriggerError> {
    let mut session = checkout_session(spec, ids)?;
    let implied = match EventKind::parse(&spec.event_type) {
        EventKind::CheckoutSessionAsyncPaymentFailed => "unpaid",
        _ => "paid",
    };
    session["id"] = json!(format!("cs_test_{}", ids.purchase));
    session["mode"] = json!("payment");
    session["payment_status"] = json!(spec.status.as_deref().unwrap_or(implied));
    session["payment_intent"] = json!(format!("pi_{}", ids.purchase));
    session["subscription"] = Value::Null;
    session["metadata"]["quantity"] = json!(spec.quantity.to_string());
    Ok(session)
}

fn subscription(spec: &TriggerSpec, ids: &Ids, price: &str) -> Result<Value, TriggerError> {
    let implied = match EventKind::parse(&spec.event_type) {
        EventKind::SubscriptionDeleted => "canceled",
        EventKind::SubscriptionPaused => "paused",
        _ => "active",
    };
    let period_end = spec.now + spec.period_days * 86_400;
    let mut sub = parse(SUBSCRIPTION)?;
    sub["id"] = json!(ids.subscription);
    sub["customer"] = json!(ids.customer);
    sub["status"] = json!(spec.status.as_deref().unwrap_or(implied));
    sub["cancel_at_period_end"] = json!(spec.cancel_at_period_end);
    sub["metadata"] = json!({ "org_id": spec.org_id, "plan": spec.plan });
    sub["created"] = json!(spec.now);
    sub["start_date"] = json!(spec.now);
    sub["livemode"] = json!(false);
    for field in [
        "cancel_at",
        "canceled_at",
        "ended_at",
        "trial_start",
        "trial_end",
    ] {
        sub[field] = Value::Null;
    }
    let item = &mut sub["items"]["data"][0];
    item["id"] = json!(format!("si_{}", ids.subscription));
    item["subscription"] = json!(ids.subscription);
    item["price"]["id"] = json!(price);
    item["plan"]["id"] = json!(price);
    item["quantity"] = json!(spec.quantity);
    item["current_period_start"] = json!(spec.now);
    item["current_period_end"] = json!(period_end);
    sub["items"]["url"] = json!(format!(
        "/v1/subscription_items?subscription={}",
        ids.subscription
    ));
    Ok(sub)
}

fn invoice(spec: &TriggerSpec, ids: &Ids) -> Result<Value, TriggerError> {
    let paid = spec.event_type == "invoice.paid";
    let mut invoice = parse(INVOICE)?;
    invoice["id"] = json!(format!("in_{}", ids.subscription));
    invoice["customer"] = json!(ids.customer);
    invoice["subscription"] = Value::Null;
    invoice["parent"] = json!({
        "type": "subscription_details",
        "quote_details": null,
        "subscription_details": { "metadata": { "org_id": spec.org_id }, "subscription": ids.subscription },
    });
    invoice["status"] = json!(if paid { "paid" } else { "open" });
    invoice["attempted"] = json!(true);
    invoice["created"] = json!(spec.now);
    invoice["status_transitions"]["paid_at"] = if paid { json!(spec.now) } else { Value::Null };
    Ok(invoice)
}

fn charge(spec: &TriggerSpec, ids: &Ids) -> Result<Value, TriggerError> {
    let mut charge = parse(CHARGE)?;
    let amount = charge["amount"].as_i64().unwrap_or_default();
    charge["id"] = json!(format!("ch_{}", ids.purchase));
    charge["customer"] = json!(ids.customer);
    charge["payment_intent"] = json!(format!("pi_{}", ids.purchase));
    charge["refunded"] = json!(!spec.partial_refund);
    charge["amount_refunded"] = json!(if spec.partial_refund {
        amount / 2
    } else {
        amount
    });
    charge["created"] = json!(spec.now);
    Ok(charge)
}

/// A dispute with its charge expanded, so that it names the customer:
/// opened (`needs_response`) or closed (`won`) unless `--status` says
/// otherwise.
fn dispute(spec: &TriggerSpec, ids: &Ids) -> Result<Value, TriggerError> {
    let implied = match EventKind::parse(&spec.event_type) {
        EventKind::ChargeDisputeClosed => "won",
        _ => "needs_response",
    };
    let mut dispute = parse(DISPUTE)?;
    let charge = charge(spec, ids)?;
    dispute["id"] = json!(format!("dp_{}", ids.purchase));
    dispute["charge"] = json!({ "id": charge["id"], "object": "charge", "customer": ids.customer });
    dispute["payment_intent"] = charge["payment_intent"].clone();
    dispute["status"] = json!(spec.status.as_deref().unwrap_or(implied));
    dispute["created"] = json!(spec.now);
    Ok(dispute)
}

fn parse(text: &str) -> Result<Value, TriggerError> {
    serde_json::from_str(text).map_err(|e| TriggerError::Invalid(format!("built-in fixture: {e}")))
}
