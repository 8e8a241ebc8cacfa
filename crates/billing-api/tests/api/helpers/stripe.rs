//! The fake Stripe: mocks of its routes and its answers.

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockBuilder, ResponseTemplate};

/// A mock of `verb route` on the fake Stripe, to constrain and answer.
pub fn stripe_call(verb: &str, route: impl Into<String>) -> MockBuilder {
    Mock::given(method(verb)).and(path(route))
}

/// Stripe's answer: `status` with a JSON body.
pub fn answer(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}
