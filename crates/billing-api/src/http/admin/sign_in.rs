//! Signing in to the console and out of it (this session, or every
//! session of the operator's token).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{Csrf, console, failure, operator, page, pages, session};
use crate::http::AppState;
use crate::http::error::ApiError;

pub(super) async fn sign_in_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Ok(Some(_)) = session::current(&req, &state).await {
        return session::see_other("/admin").finish();
    }
    page(StatusCode::OK, "Sign in", None, pages::sign_in(None))
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignIn>,
) -> HttpResponse {
    let access = state.throttle.attempt(
        &req,
        || state.tokens.admin_access(form.token.trim()),
        Option::is_none,
    );
    let access = match access {
        Ok(access) => access,
        Err(wait) => return failure(&ApiError::too_many_attempts(wait), None),
    };
    let Some(access) = access else {
        let refusal = "That token is not accepted here.";
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            pages::sign_in(Some(refusal)),
        );
    };
    session::open(&req, &state, access)
        .await
        .unwrap_or_else(|error| failure(&error, None))
}

/// Ends the operator's session; with `EVERYWHERE`, every session of its
/// token, in every browser (after a lost laptop, say); read-only
/// operators may too.
pub(super) async fn sign_out<const EVERYWHERE: bool>(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<Csrf>,
) -> HttpResponse {
    let csrf_token = &form.csrf_token;
    console(async {
        let session = operator(&req, &state).await?;
        if !session::csrf_matches(&session, csrf_token) {
            return Err(session::see_other("/admin").finish());
        }
        session::close(&state, &session, EVERYWHERE)
            .await
            .map_err(|e| failure(&e, Some(&session)))
    })
    .await
}
