//! Realistic Stripe events and objects, and reading answers.

use billing_api::settings::Settings;
use billing_api::stripe::trigger::{TriggerSpec, build_event};
use serde_json::Value;

/// A realistic event built the way `billing-api trigger` builds it: for
/// `org` on plan `pro`, one unit, created now, unless told otherwise.
pub struct EventBuilder<'a> {
    settings: &'a Settings,
    spec: TriggerSpec,
    price: Option<String>,
}

impl<'a> EventBuilder<'a> {
    pub fn new(settings: &'a Settings, kind: &str, org: &str) -> Self {
        let spec = TriggerSpec::new(kind, org, now());
        Self {
            settings,
            spec,
            price: None,
        }
    }

    /// Created at `created` (unix seconds).
    pub fn at(mut self, created: i64) -> Self {
        self.spec.now = created;
        self
    }

    /// Of `quantity` units (seats).
    pub fn quantity(mut self, quantity: impl TryInto<u64>) -> Self {
        self.spec.quantity = match quantity.try_into() {
            Ok(quantity) => quantity,
            Err(_) => panic!("a quantity is zero or more"),
        };
        self
    }

    /// About subscription `id` (its item is `si_<id>`).
    pub fn subscription(mut self, id: &str) -> Self {
        self.spec.subscription_id = Some(id.into());
        self
    }

    /// Buying `plan`.
    pub fn plan(mut self, plan: &str) -> Self {
        self.spec.plan = plan.into();
        self
    }

    /// About purchase `id` (session `cs_test_<id>`, payment `pi_<id>`).
    pub fn purchase(mut self, id: &str) -> Self {
        self.spec.purchase_id = Some(id.into());
        self
    }

    /// With this subscription, payment or dispute status.
    pub fn status(mut self, status: &str) -> Self {
        self.spec.status = Some(status.into());
        self
    }

    /// Buying this price, whatever plan it belongs to, if any.
    pub fn price(mut self, price: &str) -> Self {
        self.price = Some(price.into());
        self
    }

    pub fn build(self) -> Value {
        let mut event = build_event(self.settings, &self.spec).expect("event builds");
        if let Some(price) = self.price {
            event["data"]["object"]["items"]["data"][0]["price"]["id"] = price.into();
        }
        event
    }
}

/// A complete subscription as Stripe's API returns it, from Stripe's own
/// example object.
pub fn stripe_subscription(id: &str, org: &str, status: &str, price: &str, quantity: u64) -> Value {
    let mut sub: Value =
        serde_json::from_str(include_str!("../../../fixtures/stripe/subscription.json"))
            .expect("fixture");
    sub["id"] = serde_json::json!(id);
    sub["customer"] = serde_json::json!(format!("cus_trigger_{org}"));
    sub["status"] = serde_json::json!(status);
    sub["cancel_at_period_end"] = serde_json::json!(false);
    sub["metadata"] = serde_json::json!({"org_id": org, "plan": "pro"});
    let item = &mut sub["items"]["data"][0];
    item["id"] = serde_json::json!(format!("si_{id}"));
    item["price"]["id"] = serde_json::json!(price);
    item["quantity"] = serde_json::json!(quantity);
    item["current_period_start"] = serde_json::json!(now());
    item["current_period_end"] = serde_json::json!(now() + 30 * 86_400);
    sub
}

/// A complete customer as Stripe's API returns it, from Stripe's own
/// example object.
pub fn stripe_customer(id: &str, email: Option<&str>, metadata: Value) -> Value {
    let mut customer: Value =
        serde_json::from_str(include_str!("../../../fixtures/stripe/customer.json"))
            .expect("fixture");
    customer["id"] = serde_json::json!(id);
    customer["email"] = serde_json::json!(email);
    customer["metadata"] = metadata;
    customer
}

/// A recorded event in Stripe's own shape, from `tests/fixtures/events`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// Asserts that an answer is the error `code` with status `expected`, and
/// that it explains itself.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, expected: u16, code: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected, Some(code)),
        "{body}"
    );
    assert!(body["message"].is_string(), "{body}");
}
