//! Stripe's disputes name their charge by id alone, and only the charge
//! names the customer: before a dispute is stored, its charge is read and
//! the dispute's `charge` expanded to `{id, object, customer}` (as Stripe's
//! `expand[]=charge` would), so that the dispute of a subscription's
//! payment is recorded against its organization, and one that arrives
//! before its customer is linked is cleared by linking that customer.

use entitlements::event::PaymentObject;
use entitlements::{Event, EventKind};
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::stripe::api::StripeApi;

/// The event and its payload, a dispute's charge expanded when it names
/// no customer. A charge Stripe cannot find, or without a Stripe key,
/// leaves the event as it came; Stripe unreachable refuses it (Stripe
/// delivers it again).
pub(crate) async fn with_charge_customer(
    stripe: Option<&StripeApi>,
    event: Event,
    text: String,
) -> Result<(Event, String), ApiError> {
    let Some(charge) = unexpanded_charge(&event) else {
        return Ok((event, text));
    };
    let Some(api) = stripe else {
        return Ok((event, text));
    };
    let customer = match api.retrieve_charge_customer(&charge).await {
        Ok(Some(customer)) => customer,
        Ok(None) => return Ok((event, text)),
        Err(failure) if failure.is_permanent() => {
            tracing::warn!(charge, %failure, "the dispute's charge cannot be read");
            return Ok((event, text));
        }
        Err(failure) => {
            return Err(ApiError::StripeUnavailable(format!(
                "the dispute's charge {charge}: {failure}"
            )));
        }
    };
    let mut payload: Value =
        serde_json::from_str(&text).map_err(|e| ApiError::MalformedEvent(e.to_string()))?;
    payload["data"]["object"]["charge"] =
        json!({"id": charge, "object": "charge", "customer": customer});
    let text = payload.to_string();
    let event =
        Event::parse(text.as_bytes()).map_err(|e| ApiError::MalformedEvent(e.to_string()))?;
    Ok((event, text))
}

/// The charge id of a dispute that names no customer.
fn unexpanded_charge(event: &Event) -> Option<String> {
    if !matches!(
        event.kind,
        EventKind::ChargeDisputeCreated | EventKind::ChargeDisputeClosed
    ) {
        return None;
    }
    let dispute: PaymentObject = event.object().ok()?;
    if dispute.customer_id().is_some() {
        return None;
    }
    dispute.charge?.as_str().map(str::to_owned)
}
