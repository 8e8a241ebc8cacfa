//! Checkout as a service: a request validated into what to buy, then the
//! organization's Stripe customer (created once, reused) and a Checkout
//! Session for it; and the customer portal for those who bought.

use entitlements::PlanMode;
use entitlements::catalog::Plan;
use serde::Deserialize;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::org_id::OrgId;
use crate::stripe::api::{Session, SessionRequest, StripeApi};

/// The most units one checkout buys.
pub(crate) const MAX_QUANTITY: u64 = 10_000;
/// The longest free trial.
pub(crate) const MAX_TRIAL_DAYS: u32 = 730;

/// What the SaaS backend asks for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutRequest {
    #[schema(value_type = String)]
    pub(crate) org_id: OrgId,
    plan: Option<String>,
    price_id: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    quantity: Option<u64>,
    customer_email: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    trial_days: Option<u32>,
    allow_promotion_codes: Option<bool>,
}

/// A Checkout Session for the request's organization: a payment for a plan
/// sold once, else a subscription, refused when the organization already
/// holds a granting subscription.
pub(crate) async fn create_session(
    state: &AppState,
    req: CheckoutRequest,
) -> Result<(Session, String), ApiError> {
    let (bought, price_id) = resolve_price(state, &req)?;
    let (plan, once) = (bought.name.clone(), bought.mode == PlanMode::Payment);
    if once && req.trial_days.is_some() {
        return Err(ApiError::InvalidRequest(format!(
            "trial_days: plan {plan:?} is sold once and has no trial"
        )));
    }
    let quantity = req.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::InvalidRequest(format!(
            "quantity: must be between 1 and {MAX_QUANTITY}"
        )));
    }
    if req
        .trial_days
        .is_some_and(|d| !(1..=MAX_TRIAL_DAYS).contains(&d))
    {
        return Err(ApiError::InvalidRequest(format!(
            "trial_days: must be between 1 and {MAX_TRIAL_DAYS}"
        )));
    }
    if req
        .customer_email
        .as_deref()
        .is_some_and(|e| !e.contains('@') || e.chars().count() > 512)
    {
        return Err(ApiError::InvalidRequest(
            "customer_email: not an email address".into(),
        ));
    }
    let urls = &state.settings.checkout;
    let success_url = req.success_url.as_deref().unwrap_or(&urls.success_url);
    let cancel_url = req.cancel_url.as_deref().unwrap_or(&urls.cancel_url);
    check_redirect(state, "success_url", success_url)?;
    check_redirect(state, "cancel_url", cancel_url)?;
    let stripe = state.stripe.as_ref().ok_or(ApiError::StripeNotConfigured)?;

    let org_id = req.org_id.clone();
    let (view, customer) = state
        .with_engine(async move |engine| {
            let view = engine.entitlements(&org_id).await?;
            Ok((view, engine.customer_of(&org_id).await?))
        })
        .await?;
    // Buying once is allowed beside anything; a second subscription is not.
    if !once && view.has_subscription() {
        return Err(ApiError::AlreadySubscribed(req.org_id.to_string()));
    }
    let customer = match customer {
        Some(customer) => customer,
        None => create_customer(state, stripe, &req.org_id, req.customer_email.as_deref()).await?,
    };
    let session = stripe
        .create_checkout_session(&SessionRequest {
            org_id: &req.org_id,
            plan: &plan,
            price_id: &price_id,
            quantity,
            customer: &customer,
            success_url,
            cancel_url,
            trial_days: req.trial_days,
            allow_promotion_codes: req.allow_promotion_codes,
            once,
        })
        .await?;
    Ok((session, plan))
}

/// A customer portal session for an organization that has a Stripe
/// customer; returns its URL.
pub(crate) async fn open_portal(
    state: &AppState,
    org_id: OrgId,
    return_url: Option<&str>,
) -> Result<String, ApiError> {
    let return_url = return_url.unwrap_or(&state.settings.checkout.success_url);
    check_redirect(state, "return_url", return_url)?;
    let stripe = state.stripe.as_ref().ok_or(ApiError::StripeNotConfigured)?;
    let org = org_id.clone();
    let customer = state
        .with_engine(async move |engine| engine.customer_of(&org).await)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: "no_customer",
            message: format!("organization {org_id:?} has no Stripe customer yet"),
        })?;
    Ok(stripe.create_portal_session(&customer, return_url).await?)
}

/// Creates the organization's Stripe customer and stores it; returns the
/// customer the organization has afterwards (a concurrent checkout may have
/// stored the same one first).
async fn create_customer(
    state: &AppState,
    stripe: &StripeApi,
    org_id: &OrgId,
    email: Option<&str>,
) -> Result<String, ApiError> {
    let org = org_id.clone();
    let attempt = state
        .with_engine(async move |engine| engine.customer_attempt(&org).await)
        .await?;
    let created = match stripe.create_customer(org_id, attempt).await {
        Ok(created) => created,
        Err(failure) => {
            if failure.is_server_side() {
                let org = org_id.clone();
                state
                    .with_engine(async move |engine| engine.next_customer_attempt(&org).await)
                    .await?;
            }
            return Err(failure.into());
        }
    };
    if let Some(email) = email {
        stripe.set_customer_email(&created, email).await?;
    }
    let org = org_id.clone();
    state
        .with_engine(async move |engine| engine.remember_customer(&org, &created).await)
        .await
}

/// A count, which JSON may write as `3` or `3.0` (both are integers to JSON
/// Schema); a fraction or a negative number is refused.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX.into()).contains(f))
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {number}")))
}

/// The plan and price to buy: `plan` (its first price) or `price_id`
/// (which must belong to a plan), exactly one of the two.
fn resolve_price<'s>(
    state: &'s AppState,
    req: &CheckoutRequest,
) -> Result<(&'s Plan, String), ApiError> {
    let catalog = state.engine.catalog();
    match (&req.plan, &req.price_id) {
        (None, None) => Err(ApiError::InvalidRequest(
            "plan: either plan or price_id is required".into(),
        )),
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
            "price_id: give either plan or price_id, not both".into(),
        )),
        (None, Some(price)) => {
            let owner = catalog
                .plan_for_price(price)
                .ok_or_else(|| ApiError::NotFound {
                    code: "unknown_price",
                    message: format!("price_id: {price:?} belongs to no plan"),
                })?;
            Ok((owner, price.clone()))
        }
        (Some(plan), None) => {
            let found = catalog.plan(plan).ok_or_else(|| ApiError::NotFound {
                code: "unknown_plan",
                message: format!("plan: no plan is named {plan:?}"),
            })?;
            let price = found.prices.first().ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "plan: {plan:?} has no price and cannot be bought"
                ))
            })?;
            Ok((found, price.clone()))
        }
    }
}

/// Refuses a redirect URL that does not lie on an allowed origin.
fn check_redirect(state: &AppState, field: &str, url: &str) -> Result<(), ApiError> {
    if state.settings.redirect_allowed(url) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "{field}: must be an absolute URL on an origin in checkout.allowed_redirect_origins"
        )))
    }
}
